"""A user's own benchmark command as a latency source: ``chipfit measure MODEL --runtime remote --runner CMD
--parse REGEX``.

The command is whatever measures on the device: ``adb shell /data/local/tmp/benchmark_model --graph={model}``,
``ssh board ./bench {model}``, ``benchmark_app -m {model}``. ``{model}`` is replaced by the model's path. The
command is split like a shell would (``shlex``) and run without a shell, unless it holds shell operators (``|``,
``>``, ``<``, ``;``, ``&``, ``&&``, ``||``, parentheses) outside quotes: then it runs under ``/bin/sh`` with the path
quoted. Variables (``$HOME``) and globs are expanded only in that case; ``FOO=1 cmd`` needs ``env FOO=1 cmd``.

The REGEX has one group holding a number (a group named ``value`` when there are several); an optional group named
``unit`` holds its unit (``ns``, ``us``/``µs``, ``ms``, ``s``), otherwise ``unit`` says it (ms by default). Every
match in the command's output (stdout and stderr together) is one sample: benchmark tools print several.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
from pathlib import Path

UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "usec": 1e-6, "ms": 1e-3, "msec": 1e-3, "s": 1.0,
         "sec": 1.0}
SHELL_OPERATORS = set("|&;<>()")
TAIL_LINES = 10


def _tail(output: str, n: int = TAIL_LINES) -> str:
    lines = [x for x in output.splitlines() if x.strip()]
    if not lines:
        return "\n  (it printed nothing)"
    return "\n" + "\n".join(f"  | {x}" for x in lines[-n:])


def needs_shell(command: str) -> bool:
    """Whether ``command`` holds a shell operator (``|``, ``>``, ``;``, ``&&``, ...) outside quotes."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        return any(tok and set(tok) <= SHELL_OPERATORS for tok in lexer)
    except ValueError as e:  # an unclosed quote
        raise ValueError(f"--runner {command!r} cannot be split into words: {e}") from None


def runner_args(command: str, model: str | Path) -> tuple[list[str] | str, bool]:
    """The command to run for ``model``: (argv, False), or (a shell line, True) when it needs a shell."""
    if "{model}" not in command:
        raise ValueError(f"--runner must contain {{model}}, where the model's path goes (e.g. 'benchmark_model "
                         f"--graph={{model}}'); got {command!r}")
    if needs_shell(command):
        return command.replace("{model}", shlex.quote(str(model))), True
    try:
        words = shlex.split(command)
    except ValueError as e:
        raise ValueError(f"--runner {command!r} cannot be split into words: {e}") from None
    return [w.replace("{model}", str(model)) for w in words], False


def compile_parse(regex: str) -> tuple[re.Pattern[str], int | str]:
    """The compiled REGEX and the group holding the number (``value``, or the first group that is not ``unit``)."""
    try:
        pattern = re.compile(regex)
    except re.error as e:
        raise ValueError(f"--parse {regex!r} is not a valid regular expression: {e}") from None
    names = pattern.groupindex
    if "value" in names:
        return pattern, "value"
    unit_index = names.get("unit")
    groups = [i for i in range(1, pattern.groups + 1) if i != unit_index]
    if not groups:
        raise ValueError(f"--parse {regex!r} has no group: put the number in parentheses, e.g. "
                         r"'avg ([0-9.]+) ms'")
    return pattern, groups[0]


def unit_scale(unit: str) -> float:
    """Seconds per ``unit`` (``ns``, ``us``, ``ms``, ``s``)."""
    try:
        return UNITS[unit.strip().lower()]
    except KeyError:
        raise ValueError(f"unit must be one of us, ms, s (or ns), not {unit!r}") from None


def parse_samples(output: str, regex: str, *, unit: str = "ms") -> list[float]:
    """Every number REGEX finds in ``output``, in seconds; ``[]`` when nothing matches."""
    pattern, group = compile_parse(regex)
    default = unit_scale(unit)
    out = []
    for m in pattern.finditer(output):
        text = m.group(group)
        try:
            value = float(text)
        except (TypeError, ValueError):
            raise ValueError(f"--parse {regex!r} matched {m.group(0)!r}, whose group {text!r} is not a number") \
                from None
        given = m.groupdict().get("unit")
        out.append(value * (unit_scale(given) if given else default))
    return out


def run_process(args: list[str] | str, *, timeout_s: float, shell: bool = False, env: dict[str, str] | None = None,
                merge: bool = True) -> tuple[int, str, str]:
    """Run a command in its own process group; (exit code, stdout, stderr), stderr in stdout when ``merge``.

    Raises:
        TimeoutError: it ran past ``timeout_s``; its whole process group (its children too: ``adb``, ``ssh``) was
            killed. The message is the output it had printed.
    """
    proc = subprocess.Popen(args, shell=shell, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT if merge else subprocess.PIPE, text=True, errors="replace",
                            start_new_session=True)
    try:
        out, errs = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError, AttributeError):
            proc.kill()
        try:  # a child that left the group may hold the pipe open: do not wait for it long
            out, errs = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, errs = "", ""
        raise TimeoutError((out or "") + (errs or "")) from None
    return proc.returncode, out or "", errs or ""


def run_remote(runner: str, model: str | Path, parse: str, *, unit: str = "ms",
               timeout_s: float = 300.0) -> list[float]:
    """Run the user's benchmark command once for ``model`` and read its latency samples (seconds) from its output.

    Args:
        runner: the command, with ``{model}`` where the path goes (see the module docstring).
        model: the model file, passed to the command as it is (it may name a path on the device).
        parse: a regular expression with one group around the number.
        unit: the numbers' unit where REGEX has no ``unit`` group: ``us``, ``ms`` or ``s``.
        timeout_s: the most seconds the command may run; then its process group is killed.

    Raises:
        ValueError: a command without ``{model}``, a REGEX that does not compile or has no group, a command that
            cannot be started, exits non-zero, runs past ``timeout_s`` or prints no matching line; the message ends
            with the last 10 lines it printed.
    """
    args, shell = runner_args(runner, model)
    compile_parse(parse)
    unit_scale(unit)
    shown = args if isinstance(args, str) else shlex.join(args)
    try:
        code, output, _ = run_process(args, timeout_s=timeout_s, shell=shell)
    except TimeoutError as e:
        raise ValueError(f"runner did not finish in {timeout_s:g} s (killed): {shown}{_tail(str(e))}") from None
    except OSError as e:
        raise ValueError(f"runner cannot be started: {shown}: {e.strerror or e}") from None
    if code != 0:
        raise ValueError(f"runner exited with code {code}: {shown}{_tail(output)}")
    samples = parse_samples(output, parse, unit=unit)
    if not samples:
        raise ValueError(f"runner printed no line matching {parse!r}: {shown}{_tail(output)}")
    return samples
