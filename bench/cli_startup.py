"""How long the command line takes to answer: `chipfit simulate` on a SCALE-Sim topology CSV and `chipfit models`.

Time to first output is measured from the start of the process to the first byte it writes on stdout, and to its
exit; each command runs ``--repeats`` times, interleaved (A, B, A, B, ...) so that drift of this shared machine hits
all alike, and the medians are reported. With ``--base DIR`` (a checkout of an older commit, its ``src`` used through
PYTHONPATH with this venv's packages) the same commands of that version run interleaved with ours, for a ratio
measured in one run.

Writes bench/results/cli_startup.md. Usage: .venv/bin/python bench/cli_startup.py [--repeats 7] [--base /tmp/base]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOPO = """Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,
conv1, 224, 224, 7, 7, 3, 64, 2,
conv2, 56, 56, 3, 3, 64, 64, 1,
conv3, 28, 28, 3, 3, 128, 128, 1,
fc, 1, 1, 1, 1, 512, 1000, 1,
"""


def cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                flags = Path("/proc/cpuinfo").read_text()
                extra = [f for f in ("avx2", "avx512f", "avx512_vnni") if f" {f}" in flags]
                return f"{line.split(':', 1)[1].strip()} ({', '.join(extra)}), {os.cpu_count()} cores"
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(seconds to the first byte on stdout, seconds to exit)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    assert p.stdout is not None
    first = p.stdout.read(1)
    t1 = time.perf_counter()
    p.stdout.read()
    if p.wait() != 0 or not first:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {p.returncode})")
    return t1 - t0, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--base", type=Path, default=None, help="checkout of an older version to compare with")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        topo = Path(tmp) / "resnet_part.csv"
        topo.write_text(TOPO)
        ours = dict(os.environ)
        runs = {"ours: simulate CSV": ([sys.executable, "-m", "chipfit.cli", "simulate", str(topo), "--hw",
                                        "edge-npu"], ours),
                "ours: models": ([sys.executable, "-m", "chipfit.cli", "models"], ours)}
        if args.base:
            old = {**os.environ, "PYTHONPATH": str(args.base / "src")}
            runs["base: simulate CSV"] = ([sys.executable, "-m", "chipfit.cli", "simulate", str(topo), "--arch",
                                           "edge-npu"], old)
            runs["base: models"] = ([sys.executable, "-m", "chipfit.cli", "models"], old)
        samples: dict[str, list[tuple[float, float]]] = {k: [] for k in runs}
        for _ in range(args.repeats):
            for name, (cmd, env) in runs.items():
                samples[name].append(timed(cmd, env))
    lines = ["# Command-line start-up", "", f"Machine: {cpu()}; Python {platform.python_version()}. Medians of "
             f"{args.repeats} interleaved runs (from process start).", "",
             "| command | first output (s) | exit (s) |", "|---|---:|---:|"]
    med = {}
    for name, xs in samples.items():
        med[name] = (statistics.median(x[0] for x in xs), statistics.median(x[1] for x in xs))
        lines.append(f"| {name} | {med[name][0]:.3f} | {med[name][1]:.3f} |")
    if args.base:
        lines += ["", f"Ratios (base / ours, exit): simulate CSV "
                  f"{med['base: simulate CSV'][1] / med['ours: simulate CSV'][1]:.1f}x, models "
                  f"{med['base: models'][1] / med['ours: models'][1]:.1f}x. The base `models` counted every network "
                  "by default; ours lists them (`--counts` counts)."]
    out = ROOT / "bench" / "results" / "cli_startup.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
