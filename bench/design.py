"""`chipfit design` (issue 19): interrupted at each stage and resumed against uninterrupted, and the design's network
against the hand-designed QuadraNet demo network.

    .venv/bin/python bench/design.py resume   # a fixed small plan: uninterrupted, then killed (SIGINT) once per stage
    .venv/bin/python bench/design.py hand     # configs/quadranet_s28_demo.json trained with the old demo's recipe
    .venv/bin/python bench/design.py screenshot  # runs/demo/report.html in headless Chromium -> docs/design_report.png
    .venv/bin/python bench/design.py report   # bench/results/design.md + .json (reads runs/demo, the make demo run)

``resume`` starts `chipfit design` in a fresh process, sends SIGINT as soon as the stage under test has begun
(its folder or file appears), runs the same command again to the end, and compares what the two runs delivered with
the uninterrupted run: the chosen network, test accuracy (float and int8), the modelled latency and energy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).parents[1]
WORK = ROOT / "runs" / "bench_design"
RESULTS = ROOT / "bench" / "results"
CHIPFIT = str(Path(sys.executable).parent / "chipfit")
PLAN = ["--hw", "edge-npu", "--latency", "0.3ms", "--minutes", "10", "--supernet-epochs", "1", "--supernet-steps",
        "80", "--generations", "3", "--population", "6", "--epochs", "1", "--steps-per-epoch", "80", "--no-measure"]
# the stage under test -> the path whose appearance says it has begun (relative to the design folder), and how long
# to let it run before the SIGINT
STAGE_MARK = {"supernet": ("search/supernet", 5.0), "search": ("search/candidates.jsonl", 2.0),
              "train": ("train", 6.0), "compress": ("compress", 3.0), "deploy": ("deploy", 1.0),
              "report": ("figures", 0.5)}


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _result(out: Path) -> dict:
    st = json.loads((out / "state.json").read_text())["done"]
    ch = st["search"]["chosen"]
    comp = st["compress"][st["compress"]["chosen"]]
    return {"chosen": ch["key"], "estimated_accuracy": ch["accuracy"],
            "latency_s": next(iter(ch["latency_s"].values())), "energy_j": next(iter(ch["energy_j"].values())),
            "test_accuracy": st["train"]["test_accuracy"],
            "int8_accuracy": comp["int8_accuracy"], "params": st["train"]["params"]}


def _sigint_default() -> None:
    """In the child: SIGINT as an interactive terminal delivers it. A job started in the background of a shell
    inherits SIGINT ignored, and Python then installs no KeyboardInterrupt for it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(out: Path) -> subprocess.Popen:
    return subprocess.Popen([CHIPFIT, "design", *PLAN, "--out", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, preexec_fn=_sigint_default)


def _run(out: Path, stop_at: str | None = None) -> dict:
    t0 = time.perf_counter()
    proc = _start(out)
    info = {"stopped_in": None}
    if stop_at is not None:
        mark, wait = STAGE_MARK[stop_at]
        while proc.poll() is None and not (out / mark).exists():
            time.sleep(0.2)
        time.sleep(wait)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            info["stopped_in"] = stop_at
        first = proc.communicate()[0]
        info["first_rc"] = proc.returncode
        state = json.loads((out / "state.json").read_text())
        info["done_when_stopped"] = list(state["done"])
        info["first_tail"] = first.strip().splitlines()[-1:] if first.strip() else []
        proc = _start(out)
    text = proc.communicate()[0]
    if proc.returncode != 0:
        raise SystemExit(f"design in {out} failed:\n{text[-2000:]}")
    info.update(_result(out), seconds=time.perf_counter() - t0, rc=proc.returncode)
    info["candidates"] = [json.loads(x)["key"] for x in (out / "search" / "candidates.jsonl").read_text().splitlines()
                          if x.strip()]
    return info


def resume(args) -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    res = {}
    path = WORK / "resume.json"
    if path.is_file():
        res = json.loads(path.read_text())
    for stage in (None, *STAGE_MARK):
        key = stage or "uninterrupted"
        if key in res and (stage is None or res[key].get("first_rc") == 130):
            continue
        out = WORK / f"design_{key}"
        if out.exists():
            import shutil

            shutil.rmtree(out)
        print(f"== {key}", flush=True)
        res[key] = _run(out, stage)
        path.write_text(json.dumps(res, indent=1))
        print(f"   {res[key]}", flush=True)


def hand(args) -> None:
    """The hand-designed demo network as the old `make demo` trained it (6 epochs, batch 128, lr 3e-3, warm-up 0.3,
    no crops), then int8 PTQ like the design's, and modelled on the design's target."""
    out = WORK / "hand"
    env = dict(os.environ)
    if not (out / "report.json").is_file():
        cmd = [CHIPFIT, "train", "configs/quadranet_s28_demo.json", "--data", "fashion-mnist", "--epochs", "6",
               "--batch-size", "128", "--lr", "3e-3", "--warmup-epochs", "0.3", "--crop-pad", "0", "--out", str(out)]
        if (out / "last.pt").is_file():
            cmd.append("--resume")
        subprocess.run(cmd, check=True, env=env)
    q = WORK / "hand_int8"
    if not (q / "report.json").is_file():
        subprocess.run([CHIPFIT, "compress", str(out), "--data", "fashion-mnist", "--quantize", "int8", "--per-channel",
                        "--out", str(q), "--force"], check=True, env=env)


def screenshot(args) -> None:
    """The demo's report rendered by headless Chromium (Debian's package): docs/design_report.png (the top of the
    page, for the README) and runs/demo/report_full.png (the whole page, to look at)."""
    import shutil

    html = ROOT / "runs" / "demo" / "report.html"
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("headless Chromium is missing: apt-get install -y chromium")
    (ROOT / "docs").mkdir(exist_ok=True)
    for path, height in ((ROOT / "docs" / "design_report.png", 1500), (html.parent / "report_full.png", 6400)):
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--window-size=1200,{height}", f"--screenshot={path}", html.as_uri()], check=True,
                       capture_output=True, timeout=120)
        print(f"wrote {path}")


def _modelled(model: str) -> dict:
    from chipfit.api import simulate

    est = simulate(model, "edge-npu", precision="int8").estimate()
    return {"latency_s": est.latency_s, "energy_j": est.energy_j}


def report(args) -> None:
    from chipfit.cost import count
    from chipfit.load import load_model

    lines = ["# `chipfit design` (bench/design.py)", "", f"Machine: {cpu_model()}, 2 cores.", ""]
    data = {"cpu": cpu_model()}
    demo = ROOT / "runs" / "demo"
    if (demo / "state.json").is_file() and (WORK / "hand" / "report.json").is_file():
        st = json.loads((demo / "state.json").read_text())
        d = st["done"]
        hand_rep = json.loads((WORK / "hand" / "report.json").read_text())
        hand_q = json.loads((WORK / "hand_int8" / "report.json").read_text())
        hm = _modelled(str(WORK / "hand"))
        dm = _modelled(str(demo / "train"))
        hp = count(load_model(WORK / "hand").module, (1, 1, 28, 28)).total
        comp = d["compress"][d["compress"]["chosen"]]
        rows = [("hand-designed quadranet_s28_demo (old make demo: 6 epochs)", hand_rep["test_accuracy"],
                 hand_q["compressed"]["accuracy"], hm, hp.params, hp.macs, hand_rep["train_seconds"]),
                (f"chipfit design ({st['asked']['minutes']:g} min box, {d['train']['epochs']} epochs)",
                 d["train"]["test_accuracy"], comp["int8_accuracy"], dm, d["train"]["params"], d["train"]["macs"],
                 d["train"]["train_seconds"])]
        lines += ["## The design against the hand-designed demo network", "",
                  f"Budget of the design: {json.dumps({k: v for k, v in st['asked'].items() if 'budget' in k})}; "
                  "latency and energy: edge-npu simulator at int8 (batch 1).", "",
                  "| network | test acc float | test acc int8 | edge-npu ms | edge-npu uJ | params | MACs "
                 "| train s (*) |",
                  "|---|---|---|---|---|---|---|---|"]
        for name, acc, acc8, m, p, macs, ts in rows:
            lines.append(f"| {name} | {acc:.4f} | {acc8:.4f} | {m['latency_s'] * 1e3:.4f} | "
                         f"{m['energy_j'] * 1e6:.1f} | {p:,} | {macs:,} | {ts:.0f} |")
        times = json.dumps({k: round(v) for k, v in st["elapsed"].items()})
        lines += ["", "(*) the design's on the quiet machine (2 threads, the timed `make demo`); the hand network's on "
                  "one thread while other benchmarks ran: not comparable.", "",
                  f"Stage times of the design run (s): {times}", ""]
        data["versus"] = {"hand": {"test": hand_rep["test_accuracy"], "int8": hand_q["compressed"]["accuracy"], **hm},
                          "design": {"test": d["train"]["test_accuracy"], "int8": comp["int8_accuracy"], **dm},
                          "elapsed": st["elapsed"], "plan": st["plan"]}
    rpath = WORK / "resume.json"
    if rpath.is_file():
        res = json.loads(rpath.read_text())
        ref = res.get("uninterrupted")
        lines += ["## Interrupted at each stage, then resumed", "",
                  f"A fixed plan (`chipfit design {' '.join(PLAN)}`), so that every run follows the same steps. "
                  "SIGINT once the stage has begun; the same command again; compared with the uninterrupted run (the "
                  "same? column: the chosen network, float and int8 test accuracy, modelled latency and energy, and "
                  "the search's every candidate in order).", "",
                  "| stage hit | stopped? | stages done when stopped | chosen network | test acc | int8 acc | "
                  "latency ms | same? |",
                  "|---|---|---|---|---|---|---|---|"]
        for key, r in res.items():
            if "candidates" not in r:  # runs recorded before the candidate list was kept: read it from their folder
                log = WORK / f"design_{key}" / "search" / "candidates.jsonl"
                r["candidates"] = [json.loads(x)["key"] for x in log.read_text().splitlines() if x.strip()]
            same = all(r[k] == ref[k] for k in ("chosen", "test_accuracy", "int8_accuracy", "latency_s", "energy_j",
                                                "candidates"))
            stopped = {None: "-", 130: "yes (exit 130)"}.get(r.get("first_rc"), "no: it had finished")
            done = ", ".join(r.get("done_when_stopped", [])) or "-"
            lines.append(f"| {key} | {stopped} | {done} | {r['chosen'][:40]}... | "
                         f"{r['test_accuracy']:.4f} | {r['int8_accuracy']:.4f} | {r['latency_s'] * 1e3:.4f} | "
                         f"{'yes' if same else '**no**'} |")
        lines.append("")
        data["resume"] = res
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "design.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "design.json").write_text(json.dumps(data, indent=1))
    print(f"wrote {RESULTS / 'design.md'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stage", choices=("resume", "hand", "screenshot", "report"))
    args = ap.parse_args()
    {"resume": resume, "hand": hand, "screenshot": screenshot, "report": report}[args.stage](args)


if __name__ == "__main__":
    main()
