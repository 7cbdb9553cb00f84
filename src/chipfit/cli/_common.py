"""What every `chipfit` verb shares: the consoles, the help texts, the one error path, output checks.

Every verb takes the model as its first argument (a model spec, :mod:`chipfit.load`), the target as ``--hw`` (a chip
name, a YAML file or a SCALE-Sim ``.cfg``), the precision as ``--precision`` and fusion as ``--fused/--unfused``
(fused by default, as deployment compilers run a network). User mistakes end with a one-line message on stderr and
exit code 2, never a traceback: every verb runs inside :func:`user_errors`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

# Piped output gets wide tables instead of rich's 80-column fallback.
console = Console() if sys.stdout.isatty() else Console(width=160)
err = Console(stderr=True, soft_wrap=True)

MODEL_HELP = ("built-in name (chipfit models), package.module:factory, .onnx, ModelConfig .json, checkpoint or run "
              "folder")
HW_HELP = "target: chip name (chipfit hw list), YAML file or SCALE-Sim .cfg"
PRECISION_HELP = "fp32, fp16, int8, int4, binary or wXaY (X-bit weights, Y-bit activations)"
FUSED_HELP = "fused: each conv/linear runs with its BN, activation and element-wise followers as one kernel"


def fail(message: str, code: int = 2) -> None:
    """Print a user-facing error and exit; never a traceback for a user's mistake."""
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)


def note(message: str) -> None:
    """A one-line warning on stderr (deprecations, unsupported ops)."""
    err.print(escape(message), highlight=False)


def _user_error_types() -> tuple[type[BaseException], ...]:
    from chipfit.cost import CaptureError  # a RuntimeError raised for the model's own failure on its input

    return (ValueError, OSError, CaptureError, FloatingPointError)  # the last: training diverged (a NaN loss)


@contextmanager
def user_errors() -> Iterator[None]:
    """The one error path: a user's mistake (bad value, missing or unwritable file, a model that fails on its input)
    becomes ``error: ...`` and exit code 2; Ctrl-C exits 130 with the message it carries."""
    try:
        yield
    except typer.Exit:
        raise
    except KeyboardInterrupt as e:
        note(str(e) or "interrupted")
        raise typer.Exit(130) from None
    except Exception as e:
        if isinstance(e, _user_error_types()):
            fail(str(e))
        raise


def deprecated_arch(hw: str | None, arch: str | None) -> str | None:
    """``--arch`` is the old name of ``--hw`` (and old architecture names of chip names); say so, once."""
    if arch is not None:
        if hw is not None:
            fail("give --hw only (--arch is its old name)")
        note("deprecated: --arch is now --hw (one name for a target across verbs)")
        hw = arch
    if hw is not None:
        from chipfit.hw import deprecated_name

        new = deprecated_name(hw)
        if new is not None:
            note(f"deprecated: {hw} is now {new} (--hw {new}); the old name works for one release")
    return hw


def outputs_apart(inputs: list[str | Path | None], outputs: list[Path | None]) -> None:
    """Never write over an input, nor two outputs to one file: refuse before any work is done."""
    ins = [Path(p).expanduser().resolve() for p in inputs if p is not None and Path(p).expanduser().is_file()]
    outs = [Path(p).expanduser().resolve() for p in outputs if p is not None]
    for o in outs:
        if o in ins:
            fail(f"{o} is an input of this command: writing there would destroy it; choose another output file")
    if len(set(outs)) < len(outs):
        fail("two outputs (--json, --csv, --plot) name the same file: give each its own")


def write_json(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    console.print(f"wrote {escape(str(path))}", highlight=False)


