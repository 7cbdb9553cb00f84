"""The remote runtime: a user's own benchmark command (here a small Python script) that succeeds, fails, hangs,
prints nothing, or is given wrongly; `chipfit measure --runtime remote` through typer's runner."""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from chipfit.cli import app
from chipfit.deploy import measure, run_remote
from chipfit.deploy.remote import needs_shell, parse_samples, runner_args

runner = CliRunner()
BENCH = '''
import subprocess, sys, time
mode, model = sys.argv[1], sys.argv[2]
if mode == "ok":
    print("loading", model)
    for t in (1.25, 1.5, 1.75):
        print(f"avg {t} ms")
elif mode == "units":
    print("run 1: 250 us"); print("run 2: 0.5 ms")
elif mode == "fail":
    print("cannot open the device", file=sys.stderr)
    sys.exit(3)
elif mode == "hang":  # a child too, as adb and ssh have: the whole group must go
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    open(sys.argv[3], "w").write(str(child.pid))
    print("started", flush=True)
    time.sleep(60)
'''
PARSE = r"avg ([0-9.]+) ms"


@pytest.fixture
def bench(tmp_path):
    script = tmp_path / "bench.py"
    script.write_text(BENCH)
    return f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}"


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "model.tflite"
    path.write_bytes(b"")
    return path


def test_every_match_is_a_sample_in_seconds(bench, model):
    assert run_remote(f"{bench} ok {{model}}", model, PARSE) == pytest.approx([1.25e-3, 1.5e-3, 1.75e-3])
    assert run_remote(f"{bench} ok {{model}}", model, PARSE, unit="us") == pytest.approx([1.25e-6, 1.5e-6, 1.75e-6])
    got = run_remote(f"{bench} units {{model}}", model, r"run \d: ([0-9.]+) (?P<unit>us|ms)")
    assert got == pytest.approx([250e-6, 0.5e-3])


def test_measure_runs_the_runner_once_per_process(bench, model, monkeypatch):
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    m = measure(model, runtime="remote", runner=f"{bench} ok {{model}}", parse=PARSE, processes=2)
    assert m.runtime == "remote" and m.runtime_version is None and m.threads is None and m.repeats is None
    assert m.samples_s == [pytest.approx([1.25e-3, 1.5e-3, 1.75e-3])] * 2
    assert m.median_s == pytest.approx(1.5e-3) and m.spread == 0.0 and m.sigma == 0.0
    assert m.settings["parse"] == PARSE and m.settings["shell"] is False and "{model}" in m.settings["runner"]
    assert "2 runs of the runner (6 samples in all)" in m.estimate(target="board").notes[0]


def test_a_failing_runner_gives_its_exit_code_and_last_lines(bench, model):
    with pytest.raises(ValueError) as e:
        run_remote(f"{bench} fail {{model}}", model, PARSE)
    assert str(e.value).startswith("runner exited with code 3") and "cannot open the device" in str(e.value)


def test_a_hanging_runner_is_killed_with_its_children(bench, model, tmp_path):
    pid_file = tmp_path / "child.pid"
    start = time.monotonic()
    with pytest.raises(ValueError) as e:
        run_remote(f"{bench} hang {{model}} {shlex.quote(str(pid_file))}", model, PARSE, timeout_s=1)
    assert time.monotonic() - start < 30  # not the 60 s the command sleeps
    assert str(e.value).startswith("runner did not finish in 1 s") and "started" in str(e.value)
    child = int(pid_file.read_text())
    for _ in range(100):  # the child, killed with the group, is gone (or a zombie) once the kernel says so
        status = Path(f"/proc/{child}/status")
        if not status.exists() or "\nState:\tZ" in status.read_text():
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"the runner's child {child} outlived the time-out")


def test_a_runner_that_prints_no_match_says_so(bench, model):
    with pytest.raises(ValueError, match="runner printed no line matching") as e:
        run_remote(f"{bench} quiet {{model}}", model, PARSE)
    assert "printed nothing" in str(e.value)
    with pytest.raises(ValueError, match="no line matching"):
        run_remote(f"{bench} ok {{model}}", model, r"p50 ([0-9.]+)")


@pytest.mark.parametrize("command,parse,message", [
    ("{bench} ok", PARSE, "--runner must contain {model}"),
    ("{bench} ok {model}", "avg ([0-9.]+", "not a valid regular expression"),
    ("{bench} ok {model}", "avg [0-9.]+ ms", "has no group"),
    ("{bench} ok {model}", "(avg) [0-9.]+ ms", "is not a number"),
    ("{bench} 'ok {model}", PARSE, "cannot be split"),
])
def test_a_mistaken_command_or_regex_is_one_clear_error(bench, model, command, parse, message):
    with pytest.raises(ValueError, match=message.replace("{", r"\{").replace("}", r"\}")):
        run_remote(command.replace("{bench}", bench), model, parse)


def test_a_bad_unit_is_refused(bench, model):
    with pytest.raises(ValueError, match="unit must be one of"):
        run_remote(f"{bench} ok {{model}}", model, PARSE, unit="minutes")
    assert parse_samples("t 2 s", r"t (\d) (?P<unit>\w+)") == [2.0]


def test_a_shell_is_used_only_for_shell_operators_outside_quotes(bench, model):
    assert not needs_shell("ssh board 'bench {model} | tail -1'") and not needs_shell("bench --graph={model}")
    assert needs_shell("bench {model} | tail -1") and needs_shell("bench {model} 2>&1") and needs_shell("a && b")
    argv, shell = runner_args("bench --graph={model} -v", "/tmp/a b.onnx")
    assert argv == ["bench", "--graph=/tmp/a b.onnx", "-v"] and shell is False
    line, shell = runner_args("bench {model} | tail -1", "/tmp/a b.onnx")
    assert line == "bench '/tmp/a b.onnx' | tail -1" and shell is True
    assert run_remote(f"{bench} ok {{model}} | tail -n 1", model, PARSE) == pytest.approx([1.75e-3])


def test_cli_remote_measures_and_writes_json(bench, model, tmp_path):
    out = tmp_path / "remote.json"
    r = runner.invoke(app, ["measure", str(model), "--runtime", "remote", "--runner", f"{bench} ok {{model}}",
                            "--parse", PARSE, "--processes", "2", "--json", str(out)])
    assert r.exit_code == 0, r.output
    d = json.loads(out.read_text())
    assert d["runtime"] == "remote" and len(d["samples_s"]) == 2 and d["model"] == str(model)


def test_cli_remote_without_model_placeholder_is_one_line_exit_2(bench, model):
    r = runner.invoke(app, ["measure", str(model), "--runtime", "remote", "--runner", f"{bench} ok",
                            "--parse", PARSE])
    assert r.exit_code == 2
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --runner must contain {model}"), r.output
