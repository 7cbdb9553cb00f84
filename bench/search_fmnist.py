"""Hardware-aware search on Fashion-MNIST: how well the supernet ranks, what the search finds against the zoo, the
QuadraNet space against the MBConv space, and what it costs.

Two steps, so the two spaces can run side by side (one thread each, on the two cores):

    .venv/bin/python bench/search_fmnist.py run --space quadranet_s28     # supernet, ranking, searches, retrains
    .venv/bin/python bench/search_fmnist.py run --space mbconv_s28
    .venv/bin/python bench/search_fmnist.py report                        # bench/results/search_fmnist.md

Each stage keeps its result in runs/bench_search/SPACE/ (a finished stage is not run again; delete its file to
redo it). Accuracy figures do not depend on the machine's load; times are CPU-seconds of the process (getrusage),
each pipeline on one thread.

Stages of ``run``:
1. supernet: single-path uniform sampling, batch 128, AdamW lr 3e-3 (cosine, 0.3 warm-up epochs), label
   smoothing 0.1, flips; epochs per space below.
2. ranking: 12 architectures drawn with a fixed seed; each trained alone with a short recipe (steps below, same
   optimiser) and estimated by the supernet on the whole validation split; Kendall tau between the two.
3. searches: NSGA-II with hard constraints, one per row (target, budget); plus one unconstrained multi-objective
   search over (accuracy, latency on cortex-a76, myriad-x, a100) for the space comparison.
4. retrain: the best feasible network of each row, from scratch with the zoo baselines' recipe (3 epochs, as
   bench/train_fmnist.py, no crop), test accuracy; its latency re-estimated with `chipfit simulate` / `chipfit
   profile` (independent of the search's LatencyModel).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import time
from pathlib import Path

ROOT = Path(__file__).parents[1]
WORK = ROOT / "runs" / "bench_search"
RESULTS = ROOT / "bench" / "results"

# per space: supernet epochs, stand-alone steps for the ranking, trials per row, accuracy-estimate images
SETTINGS = {
    "quadranet_s28": {"supernet_epochs": 3, "rank_steps": 420, "trials": 100, "n_val": 2000, "calib": 4,
                      "compare_trials": 150, "retrain_rows": 4},
    "mbconv_s28": {"supernet_epochs": 2, "rank_steps": 200, "trials": 60, "n_val": 1000, "calib": 2,
                   "compare_trials": 100, "retrain_rows": 1},
}
# (chip, source, budget): the zoo's latencies on these targets put the budgets between its networks
ROWS = [("edge-npu", "simulator", 0.15e-3), ("edge-npu", "simulator", 0.30e-3),
        ("cortex-a76", "roofline", 0.42e-3), ("cortex-a76", "roofline", 0.60e-3)]
# the QuadraNet paper's budgets at 224 px (A76 300 ms, Myriad 30 ms, A100 3 ms)
PAPER = {"cortex-a76": 300e-3, "myriad-x": 30e-3, "a100": 3e-3}
# the zoo baselines on Fashion-MNIST (bench/results/train_fmnist.md: 3 epochs, the recipe used for retraining)
ZOO_ACC = {"quadranet_s28": 0.8860, "mobilenetv2_s28": 0.9018, "shufflenetv2_s28": 0.9067, "convnext_s28": 0.8839,
           "hornet_s28": 0.8803, "swin_s28": 0.8567}
RANK_ARCHS = 12
SMOKE_STEPS: int | None = None  # --smoke: every training a few steps, to check the pipeline end to end


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def kendall_tau(a: list[float], b: list[float]) -> float:
    """Kendall's tau-b (ties in either list counted as neither concordant nor discordant)."""
    n, conc, disc, ta, tb = len(a), 0, 0, 0, 0
    for i in range(n):
        for j in range(i + 1, n):
            da, db = a[i] - a[j], b[i] - b[j]
            if da == 0 and db == 0:
                continue
            if da == 0:
                ta += 1
            elif db == 0:
                tb += 1
            elif (da > 0) == (db > 0):
                conc += 1
            else:
                disc += 1
    denom = ((conc + disc + ta) * (conc + disc + tb)) ** 0.5
    return (conc - disc) / denom if denom else float("nan")


def cached(path: Path, fn):
    if path.is_file():
        return json.loads(path.read_text())
    value = fn()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2))
    return value


def stage_supernet(space_name: str, work: Path, data) -> dict:
    from chipfit.nas import load_space
    from chipfit.nas.supernet import train_supernet
    from chipfit.train import TrainConfig

    s = SETTINGS[space_name]
    run_dir = work / "supernet"

    def go() -> dict:
        c0 = cpu_s()
        cfg = TrainConfig(epochs=s["supernet_epochs"], batch_size=128, lr=3e-3, warmup_epochs=0.3, seed=0,
                          out=str(run_dir), resume=(run_dir / "last.pt").is_file(), progress=False,
                          max_steps_per_epoch=SMOKE_STEPS)
        res = train_supernet(load_space(space_name), data, cfg)
        return {"epochs": s["supernet_epochs"], "train_seconds": res.train_seconds, "cpu_seconds": cpu_s() - c0,
                "largest_val_accuracy": res.val_accuracy, "largest_test_accuracy": res.test_accuracy,
                "checkpoint": str(run_dir / "last.pt")}

    return cached(work / "supernet.json", go)


def stage_ranking(space_name: str, work: Path, data) -> dict:
    import torch

    from chipfit.models import build_model
    from chipfit.nas import load_space
    from chipfit.nas.supernet import estimate_accuracy, load_supernet
    from chipfit.train import TrainConfig, fit

    s = SETTINGS[space_name]
    space = load_space(space_name)
    rng = random.Random(2026)
    archs = [space.sample(rng) for _ in range(2 if SMOKE_STEPS else RANK_ARCHS)]
    net = load_supernet(work / "supernet" / "last.pt")
    rows = []
    for k, arch in enumerate(archs):
        def one(arch=arch, k=k) -> dict:
            t0 = time.perf_counter()
            est = estimate_accuracy(net, arch, data, n_val=200 if SMOKE_STEPS else len(data.val), calib_batches=8)
            est_s = time.perf_counter() - t0
            torch.manual_seed(0)
            model = build_model(space.expand(arch))
            c0 = cpu_s()
            cfg = TrainConfig(epochs=1, batch_size=128, lr=3e-3, warmup_epochs=0.3, seed=0, progress=False,
                              max_steps_per_epoch=s["rank_steps"])
            res = fit(model, data, cfg)
            val = res.val_accuracy  # the validation pass at the end of its one epoch
            cfgm = space.expand(arch)
            return {"arch": arch.key(), "describe": space.describe(arch), "supernet_val_accuracy": est,
                    "estimate_seconds": est_s, "standalone_val_accuracy": val,
                    "standalone_test_accuracy": res.test_accuracy, "standalone_cpu_seconds": cpu_s() - c0,
                    "steps": s["rank_steps"], "blocks": sum(st.depth for st in cfgm.stages)}

        rows.append(cached(work / "ranking" / f"{k:02d}.json", one))
        print(f"{space_name} ranking {k + 1}/{len(archs)}: supernet {rows[-1]['supernet_val_accuracy']:.4f} "
              f"alone {rows[-1]['standalone_val_accuracy']:.4f}", flush=True)
    tau = kendall_tau([r["supernet_val_accuracy"] for r in rows], [r["standalone_val_accuracy"] for r in rows])
    return {"rows": rows, "kendall_tau": tau}


def _search(space_name: str, work: Path, tag: str, targets, trials: int, objectives_energy: bool = False) -> dict:
    from chipfit.api import search
    from chipfit.nas.run import SearchConfig

    s = SETTINGS[space_name]
    out = work / f"search_{tag}"
    if (out / "pareto.json").is_file() and (out / "done").is_file():
        return json.loads((out / "pareto.json").read_text())
    cfg = SearchConfig(space=space_name, targets=tuple(targets), strategy="nsga2", trials=trials, population=16,
                       out=str(out), supernet=str(work / "supernet" / "last.pt"), n_val=s["n_val"],
                       calib_batches=s["calib"], seed=0, progress=False, energy=objectives_energy)
    c0 = cpu_s()
    outcome = search(cfg, zoo_accuracy=ZOO_ACC)
    rep = outcome.report
    rep["stats"]["process_cpu_seconds"] = cpu_s() - c0
    (out / "pareto.json").write_text(json.dumps(rep, indent=2))
    (out / "done").write_text("")
    return rep


def stage_searches(space_name: str, work: Path) -> dict:
    from chipfit.nas.latency import Target

    s = SETTINGS[space_name]
    rows = {}
    for chip, source, budget in ROWS:
        tag = f"{chip}_{budget * 1e3:g}ms"
        rep = _search(space_name, work, tag, [Target(chip, source, latency_budget_s=budget)], s["trials"])
        rows[tag] = rep
        feas = [c for c in rep["candidates"] if c["feasible"]]
        best = max(feas, key=lambda c: c["accuracy_estimate"]) if feas else None
        print(f"{space_name} search {tag}: {len(feas)}/{len(rep['candidates'])} feasible; best estimate "
              f"{best['accuracy_estimate'] if best else None}", flush=True)
    compare = _search(space_name, work, "compare", [Target(c, "roofline") for c in PAPER], s["compare_trials"])
    return {"rows": {k: _slim(v) for k, v in rows.items()}, "compare": _slim(compare)}


def _slim(rep: dict) -> dict:
    """What the report needs of a search (pareto.json holds the rest)."""
    keep = ("accuracy_estimate", "latency_s", "energy_j", "params", "macs", "feasible", "pareto", "describe",
            "config_file", "trial", "key")
    return {"targets": rep["targets"], "stats": rep["stats"], "infeasible": rep["infeasible"], "zoo": rep["zoo"],
            "candidates": [{k: c.get(k) for k in keep} for c in rep["candidates"]], "plots": rep.get("plots", [])}


def best_of(cands: list[dict]) -> dict | None:
    """The front's most accurate feasible point (by the supernet's estimate; ties: the faster)."""
    front = [c for c in cands if c["feasible"] and c["pareto"]]
    return max(front, key=lambda c: (c["accuracy_estimate"], -min(c["latency_s"].values()))) if front else None


def stage_retrain(space_name: str, work: Path, searches: dict) -> dict:
    from chipfit.api import profile, simulate
    from chipfit.api import train as run_train
    from chipfit.hw import load_chip
    from chipfit.train import TrainConfig

    s = SETTINGS[space_name]
    # the rows retrained: all for the first space; for the other, the loosest budgets that some point meets
    tags = list(searches["rows"])
    if s["retrain_rows"] < len(tags):
        met = [t for t in reversed(tags) if best_of(searches["rows"][t]["candidates"]) is not None]
        tags = met[:s["retrain_rows"]]
    out = {}
    for tag in tags:
        rep = searches["rows"][tag]
        best = best_of(rep["candidates"])
        if best is None:
            out[tag] = {"infeasible": rep["infeasible"]}
            continue

        def one(best=best, tag=tag, rep=rep) -> dict:
            run_dir = work / "retrain" / tag
            c0 = cpu_s()
            cfg = TrainConfig(epochs=3, batch_size=128, lr=3e-3, warmup_epochs=0.3, seed=0, out=str(run_dir),
                              resume=(run_dir / "last.pt").is_file(), progress=False,
                              max_steps_per_epoch=SMOKE_STEPS)
            _, report = run_train(best["config_file"], "fashion-mnist", cfg, crop_pad=0)
            t = rep["targets"][0]
            chip = load_chip(t["hw"])
            prec = "fp32" if "fp32" in chip.peak_ops_per_s else chip.best_dtype()  # as the search's targets
            if t["source"] == "simulator":
                again = simulate(best["config_file"], t["hw"], precision=prec).estimate().latency_s
                how = f"chipfit simulate CONFIG --hw {t['hw']} --precision {prec}"
            else:
                again = profile(best["config_file"], hw=t["hw"]).estimate.latency_s
                how = f"chipfit profile CONFIG --hw {t['hw']}"
            return {"config_file": best["config_file"], "describe": best["describe"],
                    "accuracy_estimate": best["accuracy_estimate"], "test_accuracy": report["test_accuracy"],
                    "params": report["params"], "macs": report["macs"], "train_seconds": report["train_seconds"],
                    "cpu_seconds": cpu_s() - c0, "search_latency_s": best["latency_s"][t["label"]],
                    "reestimated_latency_s": again, "reestimated_with": how, "budget_s": t["latency_budget_s"]}

        out[tag] = cached(work / "retrain" / f"{tag}.json", one)
        print(f"{space_name} retrain {tag}: test {out[tag]['test_accuracy']:.4f}", flush=True)
    return out


def stage_gradient(space_name: str, work: Path, searches: dict) -> dict:
    """ProxylessNAS's gradient strategy on two rows, at the widths NSGA-II's best point of the row chose (the
    gradient strategy searches ops, not widths): 300 alternations of a weight and an architecture step."""
    from chipfit.nas.gradient import GradientConfig
    from chipfit.nas.latency import Target
    from chipfit.nas.run import SearchConfig, search

    out = {}
    for chip, source, budget in (ROWS[1], ROWS[3]):
        tag = f"{chip}_{budget * 1e3:g}ms"
        best = best_of(searches["rows"][tag]["candidates"])
        widths = ",".join(str(st["width"]) for st in best["describe"]["stages"])

        def one(tag=tag, chip=chip, source=source, budget=budget, widths=widths, best=best) -> dict:
            c0 = cpu_s()
            cfg = SearchConfig(space=space_name, targets=(Target(chip, source, latency_budget_s=budget),),
                               strategy="gradient", out=str(work / f"gradient_{tag}"),
                               supernet=str(work / "supernet" / "last.pt"), n_val=SETTINGS[space_name]["n_val"],
                               calib_batches=SETTINGS[space_name]["calib"], widths=widths, progress=False,
                               gradient=GradientConfig(steps=SMOKE_STEPS or 300, loss="mul", beta=0.6))
            rep = search(cfg).report
            c = rep["candidates"][0]
            return {"widths": widths, "describe": c["describe"], "accuracy_estimate": c["accuracy_estimate"],
                    "latency_s": c["latency_s"], "feasible": c["feasible"], "macs": c["macs"],
                    "table_latency_s": rep["gradient"]["table_latency_s"], "cpu_seconds": cpu_s() - c0,
                    "nsga2_best_estimate": best["accuracy_estimate"], "nsga2_best_latency_s": best["latency_s"]}

        out[tag] = cached(work / "gradient" / f"{tag}.json", one)
        print(f"{space_name} gradient {tag}: estimate {out[tag]['accuracy_estimate']:.4f}, feasible "
              f"{out[tag]['feasible']}", flush=True)
    return out


def cmd_run(args) -> None:
    import torch

    from chipfit.data import load_data

    global SMOKE_STEPS
    torch.set_num_threads(args.threads)
    work = WORK / args.space
    if args.smoke:
        SMOKE_STEPS = 3
        work = Path("/tmp/bench_search_smoke") / args.space
        s = SETTINGS[args.space]
        s.update(rank_steps=3, trials=4, compare_trials=4, n_val=100, calib=1)
    data = load_data("fashion-mnist", seed=0)
    data.pad = 0  # the zoo baselines' recipe: flips, no crop
    t0 = time.perf_counter()
    sn = stage_supernet(args.space, work, data)
    print(f"{args.space} supernet: {sn}", flush=True)
    rank = cached(work / "ranking.json", lambda: stage_ranking(args.space, work, data))
    print(f"{args.space} kendall tau {rank['kendall_tau']:.3f}", flush=True)
    searches = cached(work / "searches.json", lambda: stage_searches(args.space, work))
    retrain = cached(work / "retrain.json", lambda: stage_retrain(args.space, work, searches))
    grad = (cached(work / "gradient.json", lambda: stage_gradient(args.space, work, searches))
            if args.space == "quadranet_s28" else {})
    (work / "summary.json").write_text(json.dumps({"supernet": sn, "ranking": rank, "searches": searches,
                                                   "retrain": retrain, "gradient": grad, "threads": args.threads,
                                                   "wall_seconds_this_run": time.perf_counter() - t0}, indent=2))
    print(f"wrote {work / 'summary.json'}")


def _bound_share(config_file: str, chip: str) -> dict:
    """The share of the roofline latency on ``chip`` spent in memory-bound layers, and which kinds they are."""
    from chipfit.api import profile

    est = profile(config_file, hw=chip).estimate
    total = sum(layer.latency_s for layer in est.layers) or 1.0
    mem = [layer for layer in est.layers if layer.bound == "memory"]
    kinds: dict[str, float] = {}
    for layer in mem:
        kind = layer.name.split(".")[-1].rstrip("0123456789_") or layer.name
        kinds[kind] = kinds.get(kind, 0.0) + layer.latency_s / total
    top = sorted(kinds.items(), key=lambda kv: -kv[1])[:3]
    return {"memory_share": sum(layer.latency_s for layer in mem) / total, "latency_s": est.latency_s,
            "top_memory_bound": [f"{k} {v:.0%}" for k, v in top]}


def _quiet_latency_rate() -> dict:
    """LatencyModel evaluations per second, on this (quiet) machine: 40 fresh points per space and target."""
    from chipfit.nas import load_space
    from chipfit.nas.latency import LatencyModel, Target

    out = {}
    for space_name in SETTINGS:
        space = load_space(space_name)
        for t in (Target("edge-npu", "simulator"), Target("cortex-a76", "roofline")):
            lm = LatencyModel(space, [t])
            rng = random.Random(7)
            archs = [space.sample(rng) for _ in range(40)]
            t0 = time.perf_counter()
            for a in archs:
                lm.evaluate(a)
            dt = time.perf_counter() - t0
            out[f"{space_name} {t.label()}"] = len(archs) / dt
    return out


def _cpu_model() -> str:
    text = Path("/proc/cpuinfo").read_text()
    model = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), "?")
    flags = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    isa = [f for f in ("avx2", "avx512f", "avx512_vnni") if f" {f}" in flags]
    return f"{model} ({', '.join(isa)})"


def write_report(work: Path = WORK, results: Path = RESULTS) -> None:
    import shutil

    import torch

    torch.set_num_threads(1)
    spaces = {s: json.loads((work / s / "summary.json").read_text()) for s in SETTINGS
              if (work / s / "summary.json").is_file()}
    if not spaces:
        raise SystemExit("no results yet: run `bench/search_fmnist.py run --space ...` first")
    quiet = _quiet_latency_rate()
    L = ["# Hardware-aware search on Fashion-MNIST (`chipfit search`)", "",
         f"Machine: {_cpu_model()}; each space's pipeline on one thread (the two ran side by side on the two "
         "cores; the MBConv retrain ran on two threads after the QuadraNet pipeline had finished); times are the "
         "process's CPU-seconds. Reproduce: `bench/search_fmnist.py run --space "
         "quadranet_s28`, `... run --space mbconv_s28`, then `... report`.", ""]
    # 1. ranking
    L += ["## 1. Does the supernet rank candidates?", "",
          "12 architectures per space, drawn with a fixed seed. *Supernet*: the supernet's weights, BatchNorm "
          "re-estimated on 8 training batches, accuracy on the whole 6k validation split. *Alone*: the network "
          "trained from scratch with a short recipe (steps below; batch 128, AdamW lr 3e-3, cosine, flips), "
          "validation accuracy. A short stand-alone recipe was forced by the 2-core budget: its ranking is itself "
          "noisy, so these taus are a lower-bound view of the supernet's ranking quality.", "",
          "| space | supernet training | stand-alone steps | Kendall tau | supernet acc. range | alone acc. range |",
          "|---|---|---:|---:|---|---|"]
    for name, sm in spaces.items():
        rows = sm["ranking"]["rows"]
        sa = [r["supernet_val_accuracy"] for r in rows]
        al = [r["standalone_val_accuracy"] for r in rows]
        sn = sm["supernet"]
        L.append(f"| {name} | {sn['epochs']} epochs, {sn['cpu_seconds'] / 60:.1f} CPU-min | {rows[0]['steps']} | "
                 f"{sm['ranking']['kendall_tau']:.3f} | {min(sa):.3f}-{max(sa):.3f} | {min(al):.3f}-{max(al):.3f} |")
    L.append("")
    for name, sm in spaces.items():
        L += [f"<details><summary>{name}: the 12 points</summary>", "", "| # | blocks | widths | supernet | alone |",
              "|---:|---:|---|---:|---:|"]
        for k, r in enumerate(sm["ranking"]["rows"]):
            w = ",".join(str(st["width"]) for st in r["describe"]["stages"])
            L.append(f"| {k} | {r['blocks']} | {w} | {r['supernet_val_accuracy']:.4f} | "
                     f"{r['standalone_val_accuracy']:.4f} |")
        L += ["", "</details>", ""]
    # 2. rows against the zoo
    L += ["## 2. Searched networks against the best zoo network within the same budget", "",
          "NSGA-II (population 16) with the budget as a hard constraint, one search per row; the best feasible "
          "point by estimated accuracy is retrained from scratch with the zoo baselines' recipe (3 epochs, batch "
          "128, AdamW lr 3e-3, cosine 0.3 warm-up epochs, weight decay 0.05, label smoothing 0.1, flips, no crop; "
          "bench/train_fmnist.py) and tested once on the 10k test set. Its latency is re-estimated independently "
          "of the search (`chipfit simulate` / `chipfit profile` on the written config file). Zoo accuracies: "
          "bench/results/train_fmnist.md (same recipe).", "",
          "| target | budget | space | trials (feasible) | searched: est. acc | test acc | latency (search / "
          "re-estimated) | MMACs | best zoo in budget | zoo test acc | zoo latency | searched better? |",
          "|---|---:|---|---|---:|---:|---|---:|---|---:|---:|---|"]
    for chip, _source, budget in ROWS:
        tag = f"{chip}_{budget * 1e3:g}ms"
        for name, sm in spaces.items():
            rep = sm["searches"]["rows"][tag]
            label = rep["targets"][0]["label"]
            feas = [c for c in rep["candidates"] if c["feasible"]]
            zoo_in = [z for z in rep["zoo"] if z["latency_s"][label] <= budget and z["name"] in ZOO_ACC]
            zbest = max(zoo_in, key=lambda z: ZOO_ACC[z["name"]]) if zoo_in else None
            ztxt = (f"{zbest['name']} | {ZOO_ACC[zbest['name']]:.4f} | {zbest['latency_s'][label] * 1e3:.3f} ms"
                    if zbest else "none | - | -")
            rt = sm["retrain"].get(tag)
            if not feas:
                L.append(f"| {label} | {budget * 1e3:g} ms | {name} | {len(rep['candidates'])} (0) | - | - | "
                         f"{'; '.join(rep['infeasible'])} | - | {ztxt} | - |")
                continue
            best = best_of(rep["candidates"])
            if rt and "test_accuracy" in rt:
                ok = rt["reestimated_latency_s"] <= budget
                if zbest is None:
                    verdict = "yes (no zoo network fits)"
                else:
                    acc_ok = rt["test_accuracy"] > ZOO_ACC[zbest["name"]]
                    lat_ok = rt["reestimated_latency_s"] <= zbest["latency_s"][label]
                    verdict = {(True, True): "yes", (True, False): "more accurate, but slower than the zoo's",
                               (False, True): "**no**: faster, less accurate",
                               (False, False): "**no**"}[(acc_ok, lat_ok)]
                L.append(f"| {label} | {budget * 1e3:g} ms | {name} | {len(rep['candidates'])} ({len(feas)}) | "
                         f"{rt['accuracy_estimate']:.4f} | {rt['test_accuracy']:.4f} | "
                         f"{rt['search_latency_s'] * 1e3:.3f} / {rt['reestimated_latency_s'] * 1e3:.3f} ms"
                         f"{'' if ok else ' **over budget**'} | {rt['macs'] / 1e6:.2f} | {ztxt} | {verdict} |")
            else:
                L.append(f"| {label} | {budget * 1e3:g} ms | {name} | {len(rep['candidates'])} ({len(feas)}) | "
                         f"{best['accuracy_estimate']:.4f} | not retrained | "
                         f"{best['latency_s'][label] * 1e3:.3f} ms | {best['macs'] / 1e6:.2f} | {ztxt} | - |")
    L.append("")
    # 3. space comparison
    L += ["## 3. QuadraNet space against MBConv space (the paper's comparison, in kind)", "",
          "One unconstrained NSGA-II search per space over (estimated accuracy, roofline latency on cortex-a76, "
          "myriad-x, a100); each budget's answer is the best estimated accuracy among the candidates within it. "
          "Budgets, two ways: (a) the paper's 300 / 30 / 3 ms at 224 px scaled by the pixel ratio (28/224)^2 = "
          "1/64 (MACs scale with pixels): 4.69 / 0.469 / 0.047 ms; (b) the latency of the hand-designed "
          "quadranet_s28 on each chip (a budget that binds at 28 px). Estimated accuracies come from two different "
          "supernets; section 2's retrained figures are the comparable ones.", "",
          "| chip | budget | space | feasible / trials | best est. acc | its MMACs | its latency | smallest latency "
          "reached |", "|---|---|---|---|---:|---:|---:|---:|"]
    for chip, paper in PAPER.items():
        for how in ("(a) pixel-scaled", "(b) = quadranet_s28"):
            for name, sm in spaces.items():
                rep = sm["searches"]["compare"]
                label = f"{chip}/roofline"
                if how.startswith("(a)"):
                    budget = paper * (28 / 224) ** 2
                else:
                    budget = next(z["latency_s"][label] for z in rep["zoo"] if z["name"] == "quadranet_s28")
                cands = rep["candidates"]
                feas = [c for c in cands if c["latency_s"][label] <= budget]
                lo = min(c["latency_s"][label] for c in cands)
                if feas:
                    b = max(feas, key=lambda c: c["accuracy_estimate"])
                    L.append(f"| {chip} | {how}: {budget * 1e3:.3f} ms | {name} | {len(feas)} / {len(cands)} | "
                             f"{b['accuracy_estimate']:.4f} | {b['macs'] / 1e6:.2f} | "
                             f"{b['latency_s'][label] * 1e3:.3f} ms | {lo * 1e3:.3f} ms |")
                else:
                    L.append(f"| {chip} | {how}: {budget * 1e3:.3f} ms | {name} | 0 / {len(cands)} | - | - | - | "
                             f"{lo * 1e3:.3f} ms |")
    L.append("")
    # 4. the best architecture differs between targets
    q = spaces.get("quadranet_s28")
    if q:
        a = q["retrain"].get("edge-npu_0.3ms") or {}
        b = q["retrain"].get("cortex-a76_0.6ms") or {}
        if a.get("config_file") and b.get("config_file"):
            L += ["## 4. The best architecture differs between targets", "",
                  "The best feasible QuadraNet-space networks for edge-npu (simulator, 0.3 ms) and cortex-a76 "
                  "(roofline, 0.6 ms), each costed on both chips' rooflines: the share of latency in memory-bound "
                  "layers and the layer kinds that take most of it.", "",
                  "| | searched for edge-npu 0.3 ms | searched for cortex-a76 0.6 ms |", "|---|---|---|"]
            for k in range(len(a["describe"]["stages"])):
                sa, sb = a["describe"]["stages"][k], b["describe"]["stages"][k]
                L.append(f"| stage {k} | {sa['width']}: {', '.join(sa['blocks'])} | {sb['width']}: "
                         f"{', '.join(sb['blocks'])} |")
            L.append(f"| MMACs / params | {a['macs'] / 1e6:.2f} / {a['params']:,} | {b['macs'] / 1e6:.2f} / "
                     f"{b['params']:,} |")
            for chip in ("edge-npu", "cortex-a76"):
                ba, bb = _bound_share(a["config_file"], chip), _bound_share(b["config_file"], chip)
                L.append(f"| on {chip} (roofline) | {ba['latency_s'] * 1e3:.3f} ms, {ba['memory_share']:.0%} "
                         f"memory-bound ({', '.join(ba['top_memory_bound'])}) | {bb['latency_s'] * 1e3:.3f} ms, "
                         f"{bb['memory_share']:.0%} memory-bound ({', '.join(bb['top_memory_bound'])}) |")
            L.append("")
    if q and q.get("gradient"):
        L += ["## 4b. The gradient strategy (ProxylessNAS) on the same rows", "",
              "Architecture parameters per slot, two-path binarised updates, loss CE x (log E[LAT] / log T)^0.6 "
              "with E[LAT] from the target's additive latency table, 300 alternations of a weight step and an "
              "architecture step (batch 128) from the trained supernet, at the widths of NSGA-II's best point; "
              "the result is the argmax op per slot, estimated like every candidate.", "",
              "| row | widths | gradient: est. acc | its latency (whole network / table) | within budget | "
              "NSGA-II best: est. acc, latency | CPU-min |", "|---|---|---:|---|---|---|---:|"]
        for tag, g in q["gradient"].items():
            lab = next(iter(g["latency_s"]))
            L.append(f"| {tag} | {g['widths']} | {g['accuracy_estimate']:.4f} | {g['latency_s'][lab] * 1e3:.3f} / "
                     f"{g['table_latency_s'][lab] * 1e3:.3f} ms | {'yes' if g['feasible'] else '**no**'} | "
                     f"{g['nsga2_best_estimate']:.4f}, {g['nsga2_best_latency_s'][lab] * 1e3:.3f} ms | "
                     f"{g['cpu_seconds'] / 60:.1f} |")
        L.append("")
    # 5. cost
    L += ["## 5. Search cost", "",
          "CPU-minutes of this run: supernet training + all searches of the space (accuracy estimates and latency "
          "evaluations) + the retrains, against training every distinct evaluated candidate alone with the 3-epoch "
          "recipe (its CPU time per step measured on the ranking's stand-alone runs, times 3 x 421 steps).", "",
          "| space | supernet | searches | retrains | total | distinct candidates | training each alone |",
          "|---|---:|---:|---:|---:|---:|---:|"]
    for name, sm in spaces.items():
        srch = list(sm["searches"]["rows"].values()) + [sm["searches"]["compare"]]
        s_cpu = sum(r["stats"].get("process_cpu_seconds", r["stats"]["search_cpu_seconds"]) for r in srch)
        r_cpu = sum(r.get("cpu_seconds", 0) for r in sm["retrain"].values())
        distinct = len({c["key"] for r in srch for c in r["candidates"]})
        per_step = sum(r["standalone_cpu_seconds"] / r["steps"] for r in sm["ranking"]["rows"]) / len(
            sm["ranking"]["rows"])
        alone = distinct * per_step * 3 * 421
        tot = sm["supernet"]["cpu_seconds"] + s_cpu + r_cpu
        L.append(f"| {name} | {sm['supernet']['cpu_seconds'] / 60:.1f} | {s_cpu / 60:.1f} | {r_cpu / 60:.1f} | "
                 f"{tot / 60:.1f} | {distinct} | {alone / 60:.0f} ({alone / tot:.0f}x) |")
    L += ["", "## 6. Latency evaluations per second", "",
          "Whole-network estimates (capture, cost, hardware model) per second, one thread: in the search loop "
          "(from the searches' own counters, while the other space's pipeline ran on the other core) and on the "
          "quiet machine afterwards (40 fresh points, the first call's set-up included).", "",
          "| space / target | in the loop | quiet |",
          "|---|---:|---:|"]
    for name, sm in spaces.items():
        for tag, r in sm["searches"]["rows"].items():
            if tag.endswith(("0.3ms", "0.6ms")):
                lab = r["targets"][0]["label"]
                L.append(f"| {name} {lab} | {r['stats']['latency_evals_per_s']:.1f} | "
                         f"{quiet.get(f'{name} {lab}', float('nan')):.1f} |")
    L.append("")
    # plots
    for name, sm in spaces.items():
        for tag, r in sm["searches"]["rows"].items():
            for p in r.get("plots", []):
                if tag in ("edge-npu_0.3ms", "cortex-a76_0.6ms") and Path(p).is_file():
                    dst = results / f"search_fmnist_{name}_{tag}.png"
                    shutil.copy(p, dst)
                    L.append(f"![{name} {tag}]({dst.name})")
    (results / "search_fmnist.md").write_text("\n".join(L) + "\n")
    (results / "search_fmnist.json").write_text(json.dumps({"quiet_latency_evals_per_s": quiet, "spaces": {
        n: {"supernet": sm["supernet"], "ranking": sm["ranking"], "retrain": sm["retrain"],
            "rows": {t: {"stats": r["stats"], "infeasible": r["infeasible"]}
                     for t, r in sm["searches"]["rows"].items()}}
        for n, sm in spaces.items()}}, indent=2))
    print(f"wrote {results / 'search_fmnist.md'}")


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--space", choices=list(SETTINGS), required=True)
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--smoke", action="store_true", help="a few steps of everything, in /tmp")
    rp = sub.add_parser("report")
    rp.add_argument("--smoke", action="store_true", help="the smoke run's results, written to /tmp")
    args = ap.parse_args()
    if args.cmd == "run":
        cmd_run(args)
    elif args.smoke:
        write_report(Path("/tmp/bench_search_smoke"), Path("/tmp/bench_search_smoke"))
    else:
        write_report()


if __name__ == "__main__":
    main()
