"""How good is the latency predictor? Noise ceiling, held-out accuracy vs the calibrated roofline, speed, fusion.

Run on a quiet machine (nothing else on the cores):

    .venv/bin/python bench/latency_predictor.py --minutes 10

Before each measurement a canary network is timed in this process (chipfit.deploy.steady): while it runs more
than 15% slower than its fastest (the host's other guests slow this VM for minutes at a time), the bench waits, up
to 2 minutes. Every measurement is kept in runs/bench_latency/held_out.jsonl as it is taken, and a run
again with the same predictor (resumed, or ``--refit``) reuses it; a predictor built on other measurements gets its
held-out networks measured again, at its own time (the same networks measured 0-9% slower five hours apart), unless
``--measured-for BUILD_ID`` names the build whose measurements to score on (when the VM is too unsteady to measure:
on 2026-12-07 it ran 1.5-2x slow for most of an afternoon, and networks measured then came out up to 1.6x slow).

1. Noise ceiling: whole-network latency of 10 held-out networks measured in 5 fresh processes each
   (``chipfit.deploy.measure``); sigma = std/mean of the per-process medians; the share within +-10% that even a
   perfect predictor reaches against one such measurement is P(|Z| < 0.1 / sigma).
2. A predictor built with ``chipfit predictor build`` (``--minutes``), unless ``--predictor`` gives one.
3. Held-out networks the predictor never saw: random samples of the zoo's families (other seeds than the training
   networks) plus the named zoo networks at 28, 32, 64 and 224 pixels, each exported as ``chipfit deploy`` does and
   measured with the protocol (3 processes x 20 runs). Predicted by the predictor and by the roofline on the
   calibrated ``host`` profile (``chipfit hw calibrate``, measured here first).
4. Share within +-5% and +-10%, RMSPE, Spearman rank correlation for both; predictions per second on one core.
5. The kernels each runtime fused, read from the runtime (``chipfit.deploy.fusion``).

Figures go to bench/results/latency_predictor.json and .md, with a scatter plot; the predictor to
runs/bench_latency/predictor (its measured samples and networks are reused when the bench is run again).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
NAMED = ("quadranet_s32", "convnext_s32", "hornet_s32", "swin_s32", "mobilenetv2_s32", "shufflenetv2_s32",
         "mobilenetv2_050", "shufflenetv2_x0_5", "quadranet36_xxs")
SIZES = (28, 32, 64, 224)


def cpu_flags() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "?"
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return " ".join(f for f in ("avx2", "avx512f", "avx512_vnni", "amx_int8") if f in flags)


def held_out(n_random: int, seed: int, named: int = len(NAMED)):
    """(name, ModelConfig) of the evaluation networks: never the training seeds (those start at 10**6)."""
    from chipfit.models import create_model
    from chipfit.models.sample import random_config, with_input_size

    rng = random.Random(7000 + seed)
    nets = [(None, random_config(rng)) for _ in range(n_random)]
    for name in NAMED[:named]:
        base = create_model(name).config
        for size in SIZES:
            try:
                cfg = with_input_size(base, size)
                cfg = replace(cfg, name=f"{name}@{size}")
                cfg.stage_sizes()
                if cfg.family == "metaformer" and any(s.block.kind == "swin" for s in cfg.stages):
                    from chipfit.models import build_model

                    build_model(cfg)  # windows must tile the maps
            except ValueError:
                continue
            nets.append((name, cfg))
    return [(cfg.name, cfg) for _, cfg in nets]


def metrics(pred: list[float], meas: list[float]) -> dict[str, float]:
    from scipy.stats import spearmanr

    p, m = np.asarray(pred), np.asarray(meas)
    e = p / m - 1
    return {"within_5": float(np.mean(np.abs(e) <= 0.05)), "within_10": float(np.mean(np.abs(e) <= 0.10)),
            "rmspe": float(np.sqrt(np.mean(e**2))), "spearman": float(spearmanr(p, m).statistic),
            "median_abs_error": float(np.median(np.abs(e))), "n": len(e)}


def ceiling(sigma: float) -> float:
    return math.erf(0.1 / sigma / math.sqrt(2)) if sigma > 0 else 1.0


def protocol_ceiling(process_medians: list[list[float]], k: int = 3) -> float:
    """The share within +-10% a perfect predictor (one that knows each network's mean over 5 processes) reaches
    against the held-out protocol's figure, the median of ``k`` processes: every ``k`` of the 5 measured process
    medians, their median against the 5's mean."""
    from itertools import combinations

    hits = [abs(statistics.median(c) / statistics.mean(ms) - 1) <= 0.10
            for ms in process_medians for c in combinations(ms, k)]
    return float(np.mean(hits))


def _build_id(pdir: Path) -> str:
    """What names the measurements a predictor was fitted on: a digest of its training networks' log (kept by a
    refit, new with every build that measures)."""
    log = Path(pdir) / "networks.jsonl"
    return hashlib.sha1(log.read_bytes()).hexdigest()[:12] if log.is_file() else "no-network-log"


def _cached(path: Path, key: list) -> dict[str, dict]:
    """Measurements an earlier run of this bench kept in ``path`` on this CPU and runtime (``key``): name -> row."""
    out = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by an interruption
        if row.pop("key", None) == key:
            out[row.pop("name")] = row
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="predictor build budget")
    ap.add_argument("--predictor", type=Path, default=None, help="use this predictor instead of building one")
    ap.add_argument("--refit", action="store_true", help="measure no kernels or training networks: refit the "
                    "predictor on what runs/bench_latency holds from an earlier build")
    ap.add_argument("--runtime", default="ort", choices=("ort", "openvino"))
    ap.add_argument("--random", type=int, default=40, help="random held-out networks (named ones come on top)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tag", default="", help="suffix of the result files")
    ap.add_argument("--named", type=int, default=len(NAMED), help="named zoo networks to take (each at 4 sizes)")
    ap.add_argument("--measured-for", default=None, metavar="BUILD_ID",
                    help="score on the held-out and noise measurements runs/bench_latency keeps for another build "
                    "(the last element of their key), measuring none: for a machine too unsteady to measure again")
    ap.add_argument("--noise-networks", type=int, default=10, help="networks measured in 5 processes for sigma")
    args = ap.parse_args()

    from chipfit.cost import count
    from chipfit.deploy.build import build_predictor, export_network
    from chipfit.deploy.fusion import detect
    from chipfit.deploy.kernels import chains, kernels, view_count
    from chipfit.deploy.measure import measure
    from chipfit.deploy.predictor import Predictor, cpu_name, runtime_version
    from chipfit.hw import calibrate
    from chipfit.hw.roofline import estimate as roofline
    from chipfit.models import build_model

    RESULTS.mkdir(exist_ok=True)
    tag = f"_{args.runtime}{args.tag}" if args.runtime != "ort" or args.tag else ""
    env = {"cpu": cpu_name(), "cpu_flags": cpu_flags(), "cores": os.cpu_count(), "runtime": args.runtime,
           "runtime_version": runtime_version(args.runtime), "threads": args.threads,
           "python": sys.version.split()[0], "when": time.strftime("%Y-%m-%d %H:%M"),
           "load_before": os.getloadavg()[0]}
    out: dict = {"environment": env}
    work = Path(tempfile.mkdtemp(prefix="chipfit-latbench-"))

    # calibrated roofline first (seconds)
    t = time.perf_counter()
    host = calibrate(work / "host.yaml")
    out["calibrate_s"] = time.perf_counter() - t

    # predictor
    if args.predictor is None:
        # kept under runs/: an interrupted build, run again, reuses the samples and networks it had measured
        pdir = RESULTS.parents[1] / "runs" / "bench_latency" / f"predictor{tag}"
        logs = [pdir / "samples.jsonl", pdir / "networks.jsonl"]
        reused = [f.read_text().count("\n") if f.is_file() else 0 for f in logs]
        t = time.perf_counter()
        _, report = build_predictor(pdir, runtime=args.runtime, minutes=args.minutes, threads=args.threads,
                                    seed=args.seed, refit=args.refit,
                                    progress=lambda m, f: print(f"  [{f:4.0%}] {m}", flush=True))
        out["build"] = {"minutes": (time.perf_counter() - t) / 60, "samples": report["samples"],
                        "types": report["types"], "correction": report["correction"], "failed": report["failed"],
                        "in_network_labels": report.get("in_network_labels", {})}
        # an earlier build in the same folder measured these: this build's minutes leave them out
        out["build"].update(reused_samples=reused[0], reused_networks=reused[1], refit=args.refit)
        out["fusion_table"] = report["fusion"]
    else:
        pdir = args.predictor
    pred = Predictor.load(pdir)

    # held-out networks: export, cost, measure
    nets = held_out(args.random, args.seed, args.named)
    from chipfit.deploy.steady import Canary

    canary = Canary.onnx(export_network(nets[0][1], work / "canary.onnx"), args.runtime, args.threads,
                         tolerance=0.15, max_wait_s=120)
    # every measurement is kept as it is taken: an interrupted bench, run again, goes on from there
    cache = RESULTS.parents[1] / "runs" / "bench_latency" / f"held_out{tag}.jsonl"
    cache.parent.mkdir(parents=True, exist_ok=True)
    key = [env[k] for k in ("cpu", "cpu_flags", "runtime", "runtime_version", "threads")] + \
        [args.measured_for or _build_id(pdir)]
    earlier = _cached(cache, key)
    if args.measured_for:
        if not earlier:
            sys.exit(f"{cache} holds no measurements of build {args.measured_for} on this CPU and runtime")
        env["measured_for_build"] = args.measured_for
    if earlier:
        env["measurements_reused_from"] = str(cache)

    def keep(name: str, row: dict) -> dict:
        with cache.open("a") as f:
            f.write(json.dumps({"name": name, "key": key, **row}) + "\n")
        return row

    rows = []
    earlier_names = set(earlier)
    for i, (name, cfg) in enumerate(nets):
        shape = (1, cfg.in_chans, cfg.input_size, cfg.input_size)
        prof = count(build_model(cfg), shape, name=name)
        if name in earlier:
            m = earlier[name]
        elif args.measured_for:
            sys.exit(f"build {args.measured_for}'s measurements in {cache} lack {name}: run without --measured-for")
        else:
            path = export_network(cfg, work / "net.onnx")
            steady, ratio = canary.wait(lambda msg: print("  " + msg, flush=True))
            got = measure(path, runtime=args.runtime, threads=args.threads, processes=3, repeats=20, warmup=5)
            m = keep(name, {"measured_s": got.median_s, "spread": got.spread, "sigma": got.sigma, "canary": ratio,
                            "steady": steady})
        p = pred.predict(prof)
        r = roofline(prof, host, fused=True)
        rows.append({"name": name, "macs": prof.total.macs, **m, "predicted_s": p.latency_s,
                     "unknown": len(p.unknown), "roofline_s": r.latency_s, "input": cfg.input_size})
        print(f"{i + 1:3d}/{len(nets)} {name:32s} measured {m['measured_s'] * 1e3:8.3f} ms  predicted "
              f"{p.latency_s * 1e3:8.3f}  roofline {r.latency_s * 1e3:8.3f}  sigma {m['sigma']:.3f}", flush=True)
    out["networks"] = rows
    out["canary"] = {"waited_s": canary.waited_s, "checks": len(canary.history),
                     "slow_measurements": sum(1 for r in rows if r.get("steady") is False),
                     "max_ratio": max([r.get("canary", 1.0) for r in rows] + canary.history),
                     "reused": sum(1 for name, _ in nets if name in earlier_names)}
    meas = [r["measured_s"] for r in rows]
    out["predictor"] = metrics([r["predicted_s"] for r in rows], meas)
    out["roofline_calibrated"] = metrics([r["roofline_s"] for r in rows], meas)
    # the roofline with its best single scale factor (what a user calibrating by hand on these networks would get)
    k = statistics.median(m / r["roofline_s"] for m, r in zip(meas, rows, strict=True))
    out["roofline_rescaled"] = metrics([k * r["roofline_s"] for r in rows], meas)
    out["roofline_rescaled"]["scale"] = k

    # noise ceiling: 10 networks in 5 fresh processes
    sig = []
    k_noise = args.noise_networks
    for name, cfg in nets[:: max(1, len(nets) // k_noise)][:k_noise]:
        if f"noise:{name}" not in earlier:
            path = export_network(cfg, work / "noise.onnx")
            canary.wait(lambda msg: print("  " + msg, flush=True))
            m = measure(path, runtime=args.runtime, threads=args.threads, processes=5, repeats=20, warmup=5)
            earlier[f"noise:{name}"] = keep(f"noise:{name}", {"sigma": m.sigma, "median_s": m.median_s,
                                                              "medians_s": m.process_medians_s})
        sig.append({"name": name, **earlier[f"noise:{name}"]})
    sigmas = [s["sigma"] for s in sig]
    pooled = math.sqrt(statistics.mean(s**2 for s in sigmas))
    out["noise"] = {"networks": sig, "sigma_pooled": pooled, "sigma_median": statistics.median(sigmas),
                    "ceiling_within_10": statistics.mean(ceiling(s) for s in sigmas),
                    "ceiling_within_10_pooled": ceiling(pooled),
                    "ceiling_within_10_protocol": protocol_ceiling([s["medians_s"] for s in sig])}

    # prediction speed on one core
    import torch

    torch.set_num_threads(1)
    profs = [count(build_model(cfg), (1, cfg.in_chans, cfg.input_size, cfg.input_size)) for _, cfg in nets[:30]]
    kern = [(kernels(p, pred.rules), view_count(p)) for p in profs]
    reps = 5
    t = time.perf_counter()
    for _ in range(reps):
        for ks, v in kern:
            pred.predict_kernels(ks, v)
    per_kernels = (time.perf_counter() - t) / (reps * len(kern))
    t = time.perf_counter()
    for _ in range(reps):
        for p in profs:
            pred.predict(p)
    per_profile = (time.perf_counter() - t) / (reps * len(profs))
    t = time.perf_counter()
    for _ in range(reps):
        pred.predict_many_kernels(kern)
    per_batched = (time.perf_counter() - t) / (reps * len(kern))
    t = time.perf_counter()
    for _ in range(reps):
        pred.predict_many(profs)
    per_batched_profile = (time.perf_counter() - t) / (reps * len(profs))
    t = time.perf_counter()
    for _, cfg in nets[:10]:
        count(build_model(cfg), (1, cfg.in_chans, cfg.input_size, cfg.input_size))
    per_count = (time.perf_counter() - t) / 10
    out["speed"] = {"predictions_per_s_from_kernels": 1 / per_kernels,
                    "predictions_per_s_from_profile": 1 / per_profile,
                    "batched_predictions_per_s_from_kernels": 1 / per_batched,
                    "batched_predictions_per_s_from_profile": 1 / per_batched_profile, "batch": len(kern),
                    "count_s_per_network": per_count, "kernels_per_network": statistics.mean(len(k) for k, _ in kern)}

    # fusion, both runtimes, read from the runtimes themselves
    specs = [s for p in profs for s in chains(p)]
    fusion = {}
    for rt in ("ort", "openvino"):
        try:
            fusion[rt] = detect(specs, rt)[1]
        except ValueError as e:
            fusion[rt] = [{"error": str(e)}]
    out["fusion"] = fusion
    env["load_after"] = os.getloadavg()[0]
    (RESULTS / f"latency_predictor{tag}.json").write_text(json.dumps(out, indent=2))
    write_md(out, RESULTS / f"latency_predictor{tag}.md")
    plot(rows, RESULTS / f"latency_predictor{tag}.png")
    print((RESULTS / f"latency_predictor{tag}.md").read_text())


def _outliers(c: dict) -> str:
    out = c.get("outliers") or []
    return "" if not out else f" ({len(out)} more left out as outliers, measured at " + \
        ", ".join(f"{o['measured_over_fit']:.2f}x" for o in out) + " the fit)"


def write_md(out: dict, path: Path) -> None:
    e = out["environment"]
    lines = [f"# Latency predictor vs calibrated roofline ({e['runtime']} {e['runtime_version']}, {e['threads']} "
             f"thread)", "", f"Machine: {e['cpu']} ({e['cpu_flags']}), {e['cores']} cores, load {e['load_before']:.2f}"
             f" before / {e['load_after']:.2f} after; {e['when']}.", ""]
    n = out["noise"]
    lines += [f"Noise ceiling: sigma across processes {100 * n['sigma_median']:.1f}% (median of "
              f"{len(n['networks'])} networks, pooled {100 * n['sigma_pooled']:.1f}%); a perfect predictor lands "
              f"within +-10% of one process's measurement {100 * n['ceiling_within_10']:.1f}% of the time, and of "
              "the held-out figure (the median of 3 processes) "
              f"{100 * n.get('ceiling_within_10_protocol', float('nan')):.1f}% of the time.", ""]
    if "canary" in out:
        c = out["canary"]
        lines += [f"Machine steadiness: a canary network timed before each measurement ran at most "
                  f"{c['max_ratio']:.2f}x its fastest; {c['waited_s']:.0f} s waited for slow spells in this run; "
                  f"{c['slow_measurements']} measurements taken while the machine stayed slow.", ""]
        if e.get("measured_for_build"):
            lines += [f"Held-out and noise measurements: the {c.get('reused', 0)} taken for build "
                      f"{e['measured_for_build']} in an earlier run on this machine (`--measured-for`); none taken "
                      "in this run.", ""]
    lines += ["| on held-out networks | n | within +-5% | within +-10% | RMSPE | Spearman | median abs error |",
              "|---|---|---|---|---|---|---|"]
    for key, label in (("predictor", "predictor"), ("roofline_calibrated", "roofline, calibrated host"),
                       ("roofline_rescaled", "roofline, calibrated + best scale")):
        m = out[key]
        lines.append(f"| {label} | {m['n']} | {100 * m['within_5']:.1f}% | {100 * m['within_10']:.1f}% | "
                     f"{100 * m['rmspe']:.1f}% | {m['spearman']:.3f} | {100 * m['median_abs_error']:.1f}% |")
    if "build" in out:
        b = out["build"]
        c = b["correction"]
        scales = ", ".join(f"{g} x{s:.2f}" for g, s in c["scales"].items())
        held = f"the {b['reused_samples']} kernel samples and {b['reused_networks']} networks that an earlier build " \
            "in the same folder measured"
        again = f", a refit of {held} (nothing measured; their measuring is not in this time)" if b.get("refit") \
            else f", resumed from {held} (their measuring is not in this time)" \
            if b.get("reused_samples") or b.get("reused_networks") else ""
        lines += ["", f"Build: {b['minutes']:.1f} min on this machine{again}, {b['samples']} kernel samples; "
                  f"whole-network correction from {c['networks']} training networks{_outliers(c)} (fit error "
                  f"{100 * c['train_rmspe']:.1f}% "
                  f"RMSPE): kernel sums {scales}; + {1e6 * c['per_kernel_s']:.2f} us per kernel, "
                  f"{1e6 * c['per_view_s']:.2f} us per view, {1e9 * c.get('per_weight_byte_s', 0):.3f} ns per weight "
                  f"byte, {1e9 * c.get('per_act_byte_s', 0):.3f} ns per activation byte, {1e6 * c['offset_s']:.1f} "
                  "us per network.", "",
                  "| kernel type | samples | labels from | CV error (time-weighted) |", "|---|---|---|---|"]
        lines += [f"| {t} | {v['samples']} | {'inside networks' if v.get('in_network') else 'kernel alone'} | "
                  + ("-" if v["cv_error"] is None else f"{100 * v['cv_error']:.0f}%") + " |"
                  for t, v in b["types"].items()]
    s = out["speed"]
    lines += ["", f"Speed (one core, {s['kernels_per_network']:.0f} kernels a network): one network at a time "
              f"{s['predictions_per_s_from_kernels']:.0f} predictions/s from kernel lists, "
              f"{s['predictions_per_s_from_profile']:.0f}/s from cost profiles; {s['batch']} networks a call "
              f"{s['batched_predictions_per_s_from_kernels']:.0f}/s from kernel lists, "
              f"{s['batched_predictions_per_s_from_profile']:.0f}/s from cost profiles. Costing a network first "
              f"(chipfit.cost.count) takes {1e3 * s['count_s_per_network']:.0f} ms."]
    lines += ["", "Fusion read from each runtime (chain -> compute nodes it ran):", ""]
    for rt, rows in out["fusion"].items():
        for r in rows:
            if "chain" in r:
                lines.append(f"- {rt}: `{r['chain']}` -> {', '.join(r.get('executed', [])) or r.get('error', '')}")
            else:
                lines.append(f"- {rt}: {r.get('error')}")
    path.write_text("\n".join(lines) + "\n")


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = np.array([r["measured_s"] for r in rows]) * 1e3
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.loglog(m, np.array([r["predicted_s"] for r in rows]) * 1e3, "o", ms=4, label="predictor")
    ax.loglog(m, np.array([r["roofline_s"] for r in rows]) * 1e3, "x", ms=4, label="roofline (calibrated host)")
    lo, hi = m.min() / 2, m.max() * 2
    ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
    ax.fill_between([lo, hi], [lo * 0.9, hi * 0.9], [lo * 1.1, hi * 1.1], color="k", alpha=0.08, label="+-10%")
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel("predicted latency (ms)")
    ax.legend()
    ax.set_title("held-out networks")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
