"""Co-design benchmark (issue 18): accelerator fronts of fixed networks, joint vs network-only search at equal area,
the in-memory and binary engines beside the systolic array, and how fast candidates are scored.

    .venv/bin/python bench/codesign.py fronts      # 4 networks x the built-in 'npu' space, built-in chips placed
    .venv/bin/python bench/codesign.py joint       # quadranet_s28 x 'edge' space under edge-npu's area vs chip:edge-npu
    .venv/bin/python bench/codesign.py tune        # the network-only front's networks on every 'edge' design
    .venv/bin/python bench/codesign.py engines     # isaac-like / xnor vs edge-npu at equal area on the zoo
    .venv/bin/python bench/codesign.py retrain     # train the compared networks from scratch (3 rows x 2, 3 epochs)
    .venv/bin/python bench/codesign.py report      # bench/results/codesign.md + .json (+ PNGs)

Work goes to runs/bench_codesign/ (resumable: explore logs and Optuna studies). The joint stage needs the supernet
trained by bench/search_fmnist.py (runs/bench_search/quadranet_s28/supernet/last.pt) or trains one (--supernet-epochs).
Add --smoke for a seconds-long pass. The array-size trend is bench/codesign_trend.py. Run on a quiet machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import platform
import time
from pathlib import Path

WORK = Path("runs/bench_codesign")
RESULTS = Path("bench/results")
SUPERNET = Path("runs/bench_search/quadranet_s28/supernet/last.pt")
NETWORKS = (("quadranet_s28", (1, 1, 28, 28)), ("mobilenetv2_s28", (1, 1, 28, 28)),
            ("quadranet36_t", (1, 3, 224, 224)), ("mobilenetv2_100", (1, 3, 224, 224)))
PLACE = ("edge-npu", "eyeriss-v1", "tpu-v1")


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _layers(name: str, shape: tuple[int, ...]):
    import torch

    from chipfit.cost import count
    from chipfit.hw.sim import layers_from_profile
    from chipfit.models import create_model

    torch.manual_seed(0)
    model = create_model(name, in_chans=shape[1]) if shape[1] == 1 else create_model(name)
    return layers_from_profile(count(model, shape), True)


def fronts(smoke: bool) -> None:
    from chipfit.api import explore

    out = {}
    for name, shape in NETWORKS[:2] if smoke else NETWORKS:
        trials = 60 if smoke else (3000 if shape[-1] == 28 else 1000)
        layers = _layers(name, shape)
        t0 = time.perf_counter()
        rep = explore(layers, "npu", out=WORK / "fronts" / name, trials=trials, seed=0)
        rep["model"] = name
        out[name] = {"trials": trials, "front": len(rep["front"]), "stats": rep["stats"], "placed": rep["placed"],
                     "seconds": time.perf_counter() - t0, "layers": len(layers),
                     "front_designs": [d for d in rep["designs"] if d["pareto"]]}
        from chipfit.report.explore import explore_plots

        for p in explore_plots(rep, RESULTS):
            p.rename(RESULTS / f"codesign_front_{name}_{p.stem.split('_')[-1]}.png")
        print(name, out[name]["front"], "front designs;", f"{rep['stats']['designs_per_s'] or 0:.1f}/s",
              [(p["chip"], round(p["placement"]["epsilon"] or 0, 3)) for p in rep["placed"]], flush=True)
    (WORK / "fronts.json").write_text(json.dumps(out, indent=2))


def joint(smoke: bool, supernet_epochs: int) -> None:
    from chipfit.hw.area import area
    from chipfit.hw.sim import load_arch
    from chipfit.nas.latency import Target
    from chipfit.nas.run import SearchConfig, search

    budget = area(load_arch("edge-npu")).total_mm2
    sn = str(SUPERNET) if SUPERNET.is_file() else None
    common = {"space": "quadranet_s28", "supernet": sn, "supernet_epochs": supernet_epochs, "n_val": 300 if smoke
              else 2000, "population": 8 if smoke else 24, "seed": 0,
              "targets": (Target("edge-npu", "simulator", precision="int8"),)}
    runs = {"network_only": ("chip:edge-npu", 20 if smoke else 400, 0),
            "joint": ("edge", 40 if smoke else 400, 0),
            "nested": ("edge", 20 if smoke else 400, 50 if smoke else 200)}
    prev = json.loads((WORK / "joint.json").read_text()) if (WORK / "joint.json").is_file() and not smoke else {}
    out = {"area_budget_mm2": budget, "supernet": sn}
    for label, (hw, trials, inner) in runs.items():
        if label in prev and prev[label].get("trials") == trials:  # a finished run: its study holds every trial
            out[label] = prev[label]
            continue
        cfg = SearchConfig(hw_space=hw, area_budget_mm2=budget, trials=trials, out=str(WORK / "joint" / label),
                           hw_inner=inner, **common)
        t0 = time.perf_counter()
        res = search(cfg)
        rep = res.report
        out[label] = {"hw_space": hw, "trials": trials, "inner": inner, "seconds": time.perf_counter() - t0,
                      "stats": rep["stats"],
                      "front": [{k: c[k] for k in ("trial", "accuracy_estimate", "latency_s", "energy_j", "area_mm2",
                                                   "peak_w", "hw_key", "params", "macs")}
                                for c in rep["candidates"] if c["pareto"]],
                      "feasible": [{k: c[k] for k in ("trial", "accuracy_estimate", "latency_s", "energy_j",
                                                      "area_mm2", "hw_key")} for c in rep["candidates"]
                                   if c["feasible"]]}
        print(label, len(out[label]["front"]), "front points", f"{out[label]['seconds']:.0f} s", flush=True)
    out["comparison"] = compare(out["network_only"]["front"], out["joint"]["feasible"])
    out["comparison_nested"] = compare(out["network_only"]["front"], out["nested"]["feasible"])
    (WORK / "joint.json").write_text(json.dumps(out, indent=2))


def compare(net_only: list[dict], joint: list[dict]) -> list[dict]:
    """For each network-only front point: the most accurate joint candidate at no more latency and energy, and the
    fastest / least-energy joint candidate at no less accuracy."""
    rows = []
    for p in sorted(net_only, key=lambda c: c["latency_s"]):
        same = [c for c in joint if c["latency_s"] <= p["latency_s"] and c["energy_j"] <= p["energy_j"]]
        best = max(same, key=lambda c: c["accuracy_estimate"]) if same else None
        acc_ok = [c for c in joint if c["accuracy_estimate"] >= p["accuracy_estimate"]]
        fast = min(acc_ok, key=lambda c: c["latency_s"]) if acc_ok else None
        lean = min(acc_ok, key=lambda c: c["energy_j"]) if acc_ok else None
        rows.append({"net_only": p, "joint_best_at_equal_latency_energy": best,
                     "accuracy_gain": best["accuracy_estimate"] - p["accuracy_estimate"] if best else None,
                     "latency_ratio_at_equal_accuracy": fast["latency_s"] / p["latency_s"] if fast else None,
                     "energy_ratio_at_equal_accuracy": lean["energy_j"] / p["energy_j"] if lean else None,
                     "fast": fast, "lean": lean})
    return rows


def engines(smoke: bool) -> None:
    from chipfit.hw.area import area, area_factor
    from chipfit.hw.explore import evaluate
    from chipfit.hw.sim import ISAAC_LIKE, XNOR_ENGINE, CrossbarCapacityError, load_arch

    npu = load_arch("edge-npu")
    budget = area(npu).total_mm2  # 45 nm
    xbar = dataclasses.replace(ISAAC_LIKE, io_mm2=0.0, io_w=0.0)  # edge-npu has no chip links: compare cores
    tile45 = (xbar.with_tiles(2).area_mm2 - xbar.with_tiles(1).area_mm2) * area_factor(45) / area_factor(xbar.node_nm)
    fixed45 = xbar.with_tiles(1).area_mm2 * area_factor(45) / area_factor(xbar.node_nm) - tile45
    tiles_eq = max(1, math.floor((budget - fixed45) / tile45))
    unit45 = dataclasses.replace(XNOR_ENGINE, units=XNOR_ENGINE.units + 1).area_mm2 - XNOR_ENGINE.area_mm2
    units_eq = max(1, XNOR_ENGINE.units + math.floor((budget - XNOR_ENGINE.area_mm2) / unit45))
    xnor = dataclasses.replace(XNOR_ENGINE, units=units_eq)
    nets = NETWORKS[:2] if smoke else (*NETWORKS[:2], ("shufflenetv2_s28", (1, 1, 28, 28)),
                                       ("convnext_s28", (1, 1, 28, 28)), *NETWORKS[2:])
    out = {"budget_mm2_45nm": budget, "isaac_tile_mm2_45nm": tile45, "isaac_tiles_at_budget": tiles_eq,
           "xnor_units_at_budget": units_eq, "xnor_area_mm2": xnor.area_mm2, "networks": {}}
    for name, shape in nets:
        layers = _layers(name, shape)
        row = {}
        d = evaluate(layers, npu)
        row["edge-npu"] = {"latency_s": d.latency_s, "energy_j": d.energy_j, "area_mm2": d.area_mm2}
        for label, eng in (("isaac_equal_area", xbar.with_tiles(tiles_eq)), ("xnor_equal_area", xnor)):
            try:
                t0 = time.perf_counter()
                r = eng.run(layers)
                dt = time.perf_counter() - t0
            except CrossbarCapacityError as e:
                row[label] = {"error": str(e)}
                continue
            kinds: dict[str, list[float]] = {}
            for x in r.layers:
                kinds.setdefault(x.kind, []).append(x.utilisation)
            row[label] = {"latency_s": r.latency_s, "period_s": r.period_s, "energy_j": r.energy_j,
                          "energy_by_part": r.energy_by_part(), "seconds": dt,
                          "utilisation_by_kind": {k: sum(v) / len(v) for k, v in kinds.items()},
                          "slowest": [(x.name, x.kind, x.time_s)
                                      for x in sorted(r.layers, key=lambda x: -x.time_s)[:3]],
                          "extra": {k: v for k, v in r.extra.items() if isinstance(v, (int, float, str))}}
        # the smallest crossbar engine that holds the network
        need = None
        try:
            xbar.with_tiles(100000).run(layers)
            lo, hi = 1, 100000
            while lo < hi:
                mid = (lo + hi) // 2
                try:
                    xbar.with_tiles(mid).run(layers)
                    hi = mid
                except CrossbarCapacityError:
                    lo = mid + 1
            need = lo
            r = xbar.with_tiles(need).run(layers)
            row["isaac_min_tiles"] = {"tiles": need, "area_mm2_45nm": fixed45 + need * tile45,
                                      "latency_s": r.latency_s, "period_s": r.period_s, "energy_j": r.energy_j}
        except CrossbarCapacityError as e:
            row["isaac_min_tiles"] = {"error": str(e)}
        out["networks"][name] = row
        print(name, json.dumps({k: {kk: vv for kk, vv in v.items() if kk in ("latency_s", "energy_j", "error",
                                                                             "tiles")} for k, v in row.items()}),
              flush=True)
    (WORK / "engines.json").write_text(json.dumps(out, indent=2, default=str))


def tune(smoke: bool) -> None:
    """The same networks, another accelerator: each network-only front network with the accelerator of space `edge`
    (every design, under edge-npu's area) that is fastest at no more energy than edge-npu gives it, and the one
    leanest at no more latency. Accuracy is the network's own, so this isolates what the accelerator adds."""
    from chipfit.hw.area import area
    from chipfit.hw.explore import Budgets, evaluate, explore
    from chipfit.hw.sim import layers_from_profile, load_arch
    from chipfit.hw.space import load_hw_space
    from chipfit.models import ModelConfig, build_model
    from chipfit.nas._estimate import _Counts

    npu = load_arch("edge-npu")
    budget = area(npu).total_mm2
    space = load_hw_space("edge")
    pareto = json.loads((WORK / "joint" / "network_only" / "pareto.json").read_text())
    front = sorted((c for c in pareto["candidates"] if c["pareto"]), key=lambda c: c["latency_s"])
    rows = []
    for c in front[:2] if smoke else front:
        cfg = ModelConfig.from_dict(c["config"])
        layers = layers_from_profile(_Counts(build_model(cfg), (1, 1, 28, 28), cfg.name).profile("int8"), True)
        base = evaluate(layers, npu)
        t0 = time.perf_counter()
        ex = explore(layers, space, trials=200 if smoke else space.size(), budgets=Budgets(area_mm2=budget))
        dt = time.perf_counter() - t0
        ok = [d for d in ex.designs if d.feasible]
        fast = min((d for d in ok if d.energy_j <= base.energy_j), key=lambda d: d.latency_s, default=None)
        lean = min((d for d in ok if d.latency_s <= base.latency_s), key=lambda d: d.energy_j, default=None)
        edp = min(ok, key=lambda d: d.latency_s * d.energy_j)
        rows.append({"trial": c["trial"], "accuracy_estimate": c["accuracy_estimate"], "edge_npu": base.to_dict(),
                     "fastest_at_its_energy": fast.to_dict() if fast else None,
                     "leanest_at_its_latency": lean.to_dict() if lean else None, "min_edp": edp.to_dict(),
                     "designs": len(ex.designs), "seconds": dt})
        print(c["trial"], f"{base.latency_s * 1e3:.4g} ms {base.energy_j * 1e6:.4g} uJ ->",
              f"{fast.latency_s * 1e3:.4g} ms" if fast else "-", f"{lean.energy_j * 1e6:.4g} uJ" if lean else "-",
              flush=True)
    (WORK / "tune.json").write_text(json.dumps({"area_budget_mm2": budget, "rows": rows}, indent=2, default=str))


def retrain(rows: int, epochs: int) -> None:
    """Train from scratch (the zoo's recipe, as chipfit search --retrain does) the network-only front point and the
    nested search's best candidate at no more latency and energy, for the ``rows`` fastest network-only points."""
    import torch

    from chipfit.api import train
    from chipfit.train import TrainConfig

    torch.set_num_threads(2)

    j = json.loads((WORK / "joint.json").read_text())
    nested = {c["trial"]: c for c in json.loads((WORK / "joint" / "nested" / "pareto.json").read_text())["candidates"]}
    net_only = {c["trial"]: c for c in
                json.loads((WORK / "joint" / "network_only" / "pareto.json").read_text())["candidates"]}
    done = json.loads((WORK / "retrain.json").read_text()) if (WORK / "retrain.json").is_file() else {}
    def trial_of(b: dict) -> int:  # older joint.json files kept no trial numbers in their feasible lists
        if "trial" in b:
            return b["trial"]
        return next(c["trial"] for c in nested.values() if c["feasible"] and c["hw_key"] == b["hw_key"]
                    and c["latency_s"] == b["latency_s"] and c["energy_j"] == b["energy_j"])

    picked, seen = [], set()
    for r in j["comparison_nested"]:  # rows whose nested candidates differ
        b = r["joint_best_at_equal_latency_energy"]
        if b and trial_of(b) not in seen and len(picked) < rows:
            b["trial"] = trial_of(b)
            seen.add(b["trial"])
            picked.append(r)
    for i, row in enumerate(picked):
        for label, trial, pool in (("network_only", row["net_only"]["trial"], net_only),
                                   ("nested", row["joint_best_at_equal_latency_energy"]["trial"], nested)):
            key = f"{i}_{label}"
            if key in done:
                continue
            c = pool[trial]
            cfg_file = WORK / "retrain" / f"{key}.json"
            cfg_file.parent.mkdir(parents=True, exist_ok=True)
            cfg_file.write_text(json.dumps(c["config"], indent=2))
            run = WORK / "retrain" / key
            tc = TrainConfig(epochs=epochs, batch_size=128, lr=3e-3, warmup_epochs=0.3, seed=0, out=str(run),
                             resume=(run / "last.pt").is_file())
            _, rep = train(str(cfg_file), "fashion-mnist", tc, crop_pad=0)
            done[key] = {"trial": trial, "accuracy_estimate": c["accuracy_estimate"], "latency_s": c["latency_s"],
                         "energy_j": c["energy_j"], "area_mm2": c["area_mm2"], "hw_key": c["hw_key"],
                         "params": c["params"], "test_accuracy": rep["test_accuracy"], "epochs": epochs,
                         "train_seconds": rep["train_seconds"]}
            (WORK / "retrain.json").write_text(json.dumps(done, indent=2))
            print(key, done[key]["test_accuracy"], flush=True)


def _f(x: float | None, scale: float = 1.0, digits: int = 4) -> str:
    return "-" if x is None else f"{x * scale:.{digits}g}"


def report() -> None:
    parts = {k: json.loads((WORK / f"{k}.json").read_text()) for k in ("fronts", "joint", "tune", "engines", "retrain")
             if (WORK / f"{k}.json").is_file()}
    parts["cpu"] = cpu_model()
    (RESULTS / "codesign.json").write_text(json.dumps(parts, indent=2, default=str))
    lines = ["# Co-design benchmark (bench/codesign.py)", "", f"Machine: {parts['cpu']}, 2 cores. Area at 45 nm "
             "(chipfit.hw.area), energy = simulator dynamic energy + leakage.", ""]
    if "fronts" in parts:
        lines += ["## Accelerator fronts of fixed networks (space `npu`, 171,072 points; NSGA-free 'refine': half "
                  "random, then the front's neighbours)", "",
                  "| network | designs | front | designs/s | chip | area mm2 | latency ms | energy uJ | epsilon | "
                  "latency at <= area | energy at <= area |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for name, r in parts["fronts"].items():
            for p in r["placed"]:
                d, pl = p["design"], p["placement"]
                lines.append(f"| {name} | {r['stats']['designs']} | {r['front']} | "
                             f"{_f(r['stats']['designs_per_s'], 1, 3)} | {p['chip']} | {_f(d['area_mm2'], 1, 3)} | "
                             f"{_f(d['latency_s'], 1e3)} | {_f(d['energy_j'], 1e6)} | {_f(pl.get('epsilon'), 1, 3)} | "
                             f"{_f(pl.get('latency_ratio_at_area'), 1, 3)}x | "
                             f"{_f(pl.get('energy_ratio_at_area'), 1, 3)}x |")
        lines += ["", "epsilon < 1: an explored design is 1/epsilon times better in latency, energy and area at once "
                  "(the chip sits inside the front); the last two columns: the best explored latency / energy at no "
                  "more area, as a ratio to the chip's.", ""]
    if "joint" in parts:
        j = parts["joint"]
        lines += ["## Joint vs network-only search at equal area (quadranet_s28 on Fashion-MNIST, supernet "
                  "estimates)", "", f"Area budget: edge-npu's {j['area_budget_mm2']:.4g} mm2 (45 nm). Network-only: "
                  f"{j['network_only']['trials']} NSGA-II trials on chip:edge-npu. Joint, flat: "
                  f"{j['joint']['trials']} trials whose genes hold the network and the accelerator (space `edge`: "
                  "8-64 x 8-64 PEs, ws/os/is, 64 KiB-2 MiB SRAM, 4 splits, 4-16 GB/s, dense/N:M; 6,912 designs). "
                  + (f"Joint, nested: {j['nested']['trials']} trials over the network and a latency-energy weight, "
                     f"each network's accelerator the best of {j['nested']['inner']} explored for it."
                     if "nested" in j else ""), ""]
        for key, title in (("comparison", "flat"), ("comparison_nested", "nested")):
            if key not in j:
                continue
            lines += [f"### {title}", "", "| network-only front point (acc, ms, uJ) | joint best at <= its latency and "
                      "energy (acc, ms, uJ, mm2, accelerator) | acc gain | joint latency at >= its acc | joint energy "
                      "at >= its acc |", "|---|---|---|---|---|"]
            for row in j[key]:
                p, b = row["net_only"], row["joint_best_at_equal_latency_energy"]
                bj = (f"{b['accuracy_estimate']:.4f}, {_f(b['latency_s'], 1e3)}, {_f(b['energy_j'], 1e6)}, "
                      f"{_f(b['area_mm2'], 1, 3)}, {b['hw_key']}") if b else "none"
                lines.append(f"| {p['accuracy_estimate']:.4f}, {_f(p['latency_s'], 1e3)}, {_f(p['energy_j'], 1e6)} "
                             f"| {bj} | {_f(row['accuracy_gain'], 1, 3)} | "
                             f"{_f(row['latency_ratio_at_equal_accuracy'], 1, 3)}x | "
                             f"{_f(row['energy_ratio_at_equal_accuracy'], 1, 3)}x |")
            lines.append("")
        for k in ("network_only", "joint", "nested"):
            if k not in j:
                continue
            st = j[k]["stats"]
            lines.append(f"- {k}: {j[k]['seconds']:.0f} s, {st['networks']} networks scored for accuracy "
                         f"({st['accuracy_seconds']:.0f} s), {st['hw_evaluations']} accelerator evaluations "
                         f"({_f(st.get('hw_evals_per_s'), 1, 3)}/s)")
        lines.append("")
    if "tune" in parts:
        t = parts["tune"]
        lines += ["### The same networks on a co-designed accelerator (every design of `edge` under edge-npu's area)",
                  "", "| network (est. acc) | edge-npu ms / uJ | fastest at <= its energy: ms / uJ / mm2 (design) | "
                  "leanest at <= its latency: ms / uJ / mm2 (design) |", "|---|---|---|---|"]
        for r in t["rows"]:
            b, f, le = r["edge_npu"], r["fastest_at_its_energy"], r["leanest_at_its_latency"]

            def d3(d, ref):
                return ("none" if d is None else
                        f"{_f(d['latency_s'], 1e3)} ({d['latency_s'] / ref['latency_s']:.3g}x) / "
                        f"{_f(d['energy_j'], 1e6)} ({d['energy_j'] / ref['energy_j']:.3g}x) / "
                        f"{_f(d['area_mm2'], 1, 3)} ({d['key']})")
            lines.append(f"| trial {r['trial']} ({r['accuracy_estimate']:.4f}) | {_f(b['latency_s'], 1e3)} / "
                         f"{_f(b['energy_j'], 1e6)} | {d3(f, b)} | {d3(le, b)} |")
        lines.append(f"\n{t['rows'][0]['designs']} designs per network in {t['rows'][0]['seconds']:.1f} s.\n")
    if "retrain" in parts:
        lines += ["### Retrained from scratch (3 epochs, the zoo's recipe, test split)", "",
                  "| row | search | est. acc | test acc | latency ms | energy uJ | area mm2 | accelerator |",
                  "|---|---|---|---|---|---|---|---|"]
        for key, r in sorted(parts["retrain"].items()):
            i, label = key.split("_", 1)
            lines.append(f"| {i} | {label} | {r['accuracy_estimate']:.4f} | {r['test_accuracy']:.4f} | "
                         f"{_f(r['latency_s'], 1e3)} | {_f(r['energy_j'], 1e6)} | {_f(r['area_mm2'], 1, 3)} | "
                         f"{r['hw_key']} |")
        lines.append("")
    if "engines" in parts:
        e = parts["engines"]
        lines += ["## In-memory (ISAAC-like) and binary (XNOR) engines beside the systolic array at equal area", "",
                  f"Budget {e['budget_mm2_45nm']:.3g} mm2 at 45 nm (edge-npu): ISAAC-like with "
                  f"{e['isaac_tiles_at_budget']} tiles ({e['isaac_tile_mm2_45nm']:.3g} mm2 per tile scaled from 32 nm, "
                  f"no HyperTransport), XNOR engine with {e['xnor_units_at_budget']} units ({e['xnor_area_mm2']:.3g} "
                  "mm2).", "",
                  "| network | edge-npu ms / uJ | ISAAC equal area ms / uJ | ISAAC tiles to hold it (mm2) ms / uJ | "
                  "XNOR ms / uJ | crossbar utilisation by kind |", "|---|---|---|---|---|---|"]
        for name, r in e["networks"].items():
            def cell(x):
                return "does not fit" if "error" in x else f"{_f(x['latency_s'], 1e3)} / {_f(x['energy_j'], 1e6)}"
            m = r["isaac_min_tiles"]
            mt = "-" if "error" in m else f"{m['tiles']} ({m['area_mm2_45nm']:.3g}) {cell(m)}"
            src = r["isaac_equal_area"] if "error" not in r["isaac_equal_area"] else {}
            ut = ", ".join(f"{k} {v:.1%}" for k, v in src.get("utilisation_by_kind", {}).items())
            lines.append(f"| {name} | {cell(r['edge-npu'])} | {cell(r['isaac_equal_area'])} | {mt} | "
                         f"{cell(r['xnor_equal_area'])} | {ut} |")
        lines.append("")
    (RESULTS / "codesign.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stage", choices=("fronts", "joint", "tune", "engines", "retrain", "report"))
    ap.add_argument("--rows", type=int, default=3, help="retrain: comparison rows")
    ap.add_argument("--epochs", type=int, default=3, help="retrain: epochs")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--supernet-epochs", type=int, default=3)
    a = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    import torch

    torch.set_num_threads(1)
    {"fronts": lambda: fronts(a.smoke), "joint": lambda: joint(a.smoke, a.supernet_epochs),
     "engines": lambda: engines(a.smoke), "retrain": lambda: retrain(a.rows, a.epochs),
     "tune": lambda: tune(a.smoke), "report": report}[a.stage]()


if __name__ == "__main__":
    main()
