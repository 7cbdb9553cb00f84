"""Fuzzing every parser chipfit reads user files with, the same seeded runs the tests make (tests/_fuzz.py).

Per parser: how many mutations parsed, how many were refused (by exception type), failures (any other exception,
or a refusal whose message is not one line naming the file), hangs (a call past tests._fuzz.CALL_LIMIT_S) and the
slowest single call. Each parser runs in its own interpreter, so a crash of native code counts too.
Writes bench/results/fuzz_parsers.md.

Usage: .venv/bin/python bench/fuzz_parsers.py [--mutations 2000] [--seed 0] [--targets idx,onnx]
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests._fuzz import CALL_LIMIT_S, TARGETS, Report, run_in_subprocess  # noqa: E402 - after the path is set

RESULTS = ROOT / "bench" / "results"
WHAT = {
    "idx": "`read_idx`, `load_fashion_mnist` (chipfit.data)",
    "topology": "`read_topology` (SCALE-Sim topology CSV)",
    "cfg": "`parse_scalesim_cfg`, `load_chip(x.cfg)`",
    "chip": "`load_chip(x.yaml)` (profiles with and without `array:`)",
    "onnx": "`capture_onnx` (bytes and `ModelProto` mutations)",
    "checkpoint": "`load_model(x.pt)`, `load_checkpoint` (training and compressed)",
}


def table(reports: list[Report], mutations: int, seed: int) -> str:
    import onnx
    import torch

    lines = [
        "# Parser fuzzing",
        "",
        f"`.venv/bin/python bench/fuzz_parsers.py --mutations {mutations} --seed {seed}`: {mutations:,} seeded "
        "mutations per parser (tests/_fuzz.py: byte flips, truncation, insertion and duplication of chunks; for "
        "text, line and field edits and numbers replaced by 0, -1, huge, NaN, inf, empty, text or unicode; for ONNX "
        "and checkpoints, structural edits too). A refusal must be the parser's own ValueError with a one-line "
        f"message naming the file; anything else is a failure, and a call that runs past {CALL_LIMIT_S:g} s a "
        "hang. The slowest call is wall-clock time on this machine "
        f"(Python {platform.python_version()}, torch {torch.__version__}, onnx {onnx.__version__}, "
        f"{platform.machine()}), one run: a guide, not a pass criterion.",
        "",
        "| parser | what is called | mutations | parsed | refused | failures | hangs | slowest call |",
        "|---|---|---:|---:|---|---:|---:|---:|",
    ]
    for r in reports:
        refused = ", ".join(f"{n:,} {t}" for t, n in r.refused.items()) or "0"
        lines.append(f"| {r.name} | {WHAT.get(r.name, '')} | {r.mutations:,} | {r.parsed:,} | {refused} | "
                     f"{len(r.failures)} | {len(r.hangs)} | {r.slowest_s * 1e3:.1f} ms |")
    bad = [(r.name, f) for r in reports for f in r.failures + r.hangs]
    lines.append("")
    if bad:
        lines.append("Failures and hangs (replay one with `.venv/bin/python -m tests._fuzz <parser> --case N`):")
        lines.append("")
        lines += [f"- {name}: {f}" for name, f in bad[:50]]
    else:
        lines.append("No failures and no hangs.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mutations", type=int, default=2000, help="mutations per parser (default 2000)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the runs (case i uses seed * 100000 + i)")
    ap.add_argument("--targets", default=",".join(TARGETS), help=f"comma-separated, of {', '.join(TARGETS)}")
    ap.add_argument("--out", type=Path, default=RESULTS / "fuzz_parsers.md")
    args = ap.parse_args(argv)
    names = [t for t in args.targets.split(",") if t]
    unknown = [t for t in names if t not in TARGETS]
    if unknown:
        ap.error(f"unknown target(s) {', '.join(unknown)}; choose from {', '.join(TARGETS)}")
    reports = []
    for name in names:
        rep = run_in_subprocess(name, args.mutations, args.seed, timeout_s=max(600, args.mutations))
        print(f"{name}: {rep.parsed} parsed, {rep.refused_total} refused, {len(rep.failures)} failures, "
              f"{len(rep.hangs)} hangs", flush=True)
        reports.append(rep)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table(reports, args.mutations, args.seed))
    print(f"wrote {args.out}")
    return 1 if any(r.failures or r.hangs for r in reports) else 0


if __name__ == "__main__":
    raise SystemExit(main())
