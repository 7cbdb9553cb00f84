"""`chipfit search`: hardware-aware architecture search over a space, with latency budgets on one or more chips."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from chipfit.cli._common import console, fail, user_errors

_COUNT = {"": 1, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9}


def parse_count(text: str, option: str) -> float:
    """``1M``, ``500k``, ``2.5e6`` -> a number; anything else names the option."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?\d+)?)\s*([kKMG]?)\s*", text)
    if not m:
        fail(f"{option} {text!r}: a count such as 1M, 500k or 250000")
    return float(m.group(1)) * _COUNT[m.group(2)]


def _per_target(values: list[str], n: int, option: str) -> list[str | None]:
    """One value per --hw (in order), or one for all; ``-`` or ``none`` leaves a target without it."""
    if not values:
        return [None] * n
    if len(values) == 1 and n > 1:
        values = values * n
    if len(values) != n:
        fail(f"{option}: give one per --hw ({n}) or one for all, in the order of --hw; got {len(values)}")
    return [None if v.lower() in ("-", "none") else v for v in values]


def search(
    space: Annotated[str, typer.Argument(help="built-in space (quadranet_s28, mbconv_s28, quadranet, mbconv) or a "
                                              "space file (.json/.yaml)")] = "quadranet_s28",
    data: Annotated[str, typer.Option(help="fashion-mnist or a class-per-folder tree")] = "fashion-mnist",
    hw: Annotated[list[str] | None, typer.Option("--hw", help="a target chip; repeat for several")] = None,
    latency: Annotated[list[str] | None, typer.Option("--latency", help="latency budget per --hw, e.g. 0.4ms "
                                                                        "(- for none)")] = None,
    energy_budget: Annotated[list[str] | None, typer.Option("--energy-budget", help="energy budget per --hw, e.g. "
                                                                                   "50uJ")] = None,
    source: Annotated[list[str] | None, typer.Option("--source", help="per --hw: roofline, simulator, measured "
                                                                      "(host) or predicted (default: simulator "
                                                                      "where the chip has an array)")] = None,
    precision: Annotated[list[str] | None, typer.Option("--precision", help="per --hw (default: the chip's)")]
    = None,
    predictor: Annotated[str | None, typer.Option(help="latency predictor folder (--source predicted)")] = None,
    params: Annotated[str | None, typer.Option("--params", help="parameter budget, e.g. 1M")] = None,
    strategy: Annotated[str, typer.Option(help="nsga2, tpe, random or gradient (ProxylessNAS)")] = "nsga2",
    trials: Annotated[int, typer.Option(min=1, help="candidates in all (a resumed search continues to it)")] = 100,
    population: Annotated[int, typer.Option(min=2)] = 16,
    energy: Annotated[bool, typer.Option("--energy", help="energy per target as objectives too")] = False,
    out: Annotated[Path, typer.Option(help="search folder: pareto.json, front/, plots, study.db, supernet/")]
    = Path("search"),
    supernet: Annotated[str | None, typer.Option(help="a trained supernet (last.pt); default: train one in "
                                                      "OUT/supernet")] = None,
    supernet_epochs: Annotated[int, typer.Option(min=1)] = 3,
    supernet_steps: Annotated[int | None, typer.Option(min=1, help="at most this many steps per epoch")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="supernet and gradient-search batch")] = 128,
    n_val: Annotated[int, typer.Option(min=1, help="validation images per accuracy estimate")] = 2000,
    widths: Annotated[str, typer.Option(help="gradient: largest, smallest or per-stage channels")] = "largest",
    grad_steps: Annotated[int, typer.Option(min=1)] = 300,
    grad_loss: Annotated[str, typer.Option(help="gradient: mul (CE x (log LAT / log T)^beta) or add")] = "mul",
    beta: float = 0.6,
    lam: Annotated[float, typer.Option("--lambda")] = 1.0,
    retrain: Annotated[int, typer.Option(min=0, help="retrain the K best front networks from scratch")] = 0,
    retrain_epochs: Annotated[int, typer.Option(min=1)] = 3,
    storage: Annotated[str | None, typer.Option(help="Optuna storage: a file or a database URL shared by "
                                                     "workers (default OUT/study.db)")] = None,
    study: Annotated[str | None, typer.Option(help="study name in the storage")] = None,
    seed: int = 0,
    describe: Annotated[bool, typer.Option("--describe", help="print the space's choices and size, and stop")]
    = False,
    sample: Annotated[int, typer.Option(min=0, help="with --describe: print N sampled architectures")] = 0,
    hw_space: Annotated[str | None, typer.Option("--hw-space", help="search the accelerator too: npu, edge, "
                                                                    "chip:NAME or a .json/.yaml space file")] = None,
    area: Annotated[str | None, typer.Option("--area", help="with --hw-space: area budget, e.g. 10mm2")] = None,
    power: Annotated[str | None, typer.Option("--power", help="with --hw-space: peak-power budget, e.g. 2W")]
    = None,
    hw_inner: Annotated[int, typer.Option("--hw-inner", min=0, help="with --hw-space: 0 searches the accelerator's "
                                                                    "choices with the network's; N gives each "
                                                                    "network the best of N explored accelerators")]
    = 0,
    hw_pick: Annotated[str, typer.Option("--hw-pick", help="with --hw-inner: which explored accelerator a network "
                                                           "gets: search (a gene weighing latency against "
                                                           "energy), latency, l3e1, edp, l1e3 or energy")]
    = "search",
    supernet_only: Annotated[bool, typer.Option("--supernet-only", help="train the supernet in OUT/supernet and "
                                                                        "stop (the step to run under torchrun)")]
    = False,
) -> None:
    """Search a space for the most accurate network within latency, energy and parameter budgets on one or more
    chips; Ctrl-C stops after the current candidate and the same command continues."""
    with user_errors():
        if describe:
            _describe(space, sample, seed)
            return
        from chipfit.hw.explore import parse_area, parse_power
        from chipfit.nas.gradient import GradientConfig
        from chipfit.nas.latency import Target, parse_energy, parse_latency
        from chipfit.nas.run import SearchConfig

        if hw_space is not None and hw is None:
            from chipfit.hw.space import load_hw_space

            hw = [load_hw_space(hw_space).base]
        chips = hw or ["edge-npu"]
        n = len(chips)
        srcs = [s or _default_source(c) for s, c in zip(_per_target(source or [], n, "--source"), chips,
                                                        strict=True)]
        lats = _per_target(latency or [], n, "--latency")
        ens = _per_target(energy_budget or [], n, "--energy-budget")
        precs = _per_target(precision or [], n, "--precision")
        targets = tuple(Target(c, s, parse_latency(lb) if lb else None, parse_energy(eb) if eb else None, p,
                               predictor if s == "predicted" else None)
                        for c, s, lb, eb, p in zip(chips, srcs, lats, ens, precs, strict=True))
        cfg = SearchConfig(space=space, data=data, targets=targets,
                           params_budget=parse_count(params, "--params") if params else None, strategy=strategy,
                           trials=trials, population=population, energy=energy, out=str(out), supernet=supernet,
                           supernet_epochs=supernet_epochs, supernet_steps=supernet_steps, batch_size=batch_size,
                           n_val=n_val,
                           widths=widths, gradient=GradientConfig(steps=grad_steps, batch_size=batch_size,
                                                                  loss=grad_loss, beta=beta, lam=lam, seed=seed),
                           seed=seed, storage=storage, study_name=study, hw_space=hw_space,
                           area_budget_mm2=parse_area(area) if area else None,
                           power_budget_w=parse_power(power) if power else None, hw_inner=hw_inner,
                           hw_pick=hw_pick)
        if supernet_only:
            from chipfit.nas.run import train_only

            info = train_only(cfg)
            if info.get("interrupted"):
                raise typer.Exit(130)
            console.print(f"supernet in {escape(str(out))}/supernet (largest network's validation accuracy "
                          f"{info['largest_val_accuracy']:.4f}); run the same command without --supernet-only to "
                          "search", highlight=False)
            return
        from chipfit.api import search as run

        outcome = run(cfg, retrain=retrain, retrain_epochs=retrain_epochs)
        if outcome.interrupted:
            console.print(f"interrupted; run the same command to continue ({escape(str(out))})", highlight=False)
            raise typer.Exit(130)
        _summary(outcome)
        if outcome.infeasible:
            fail("; ".join(outcome.infeasible))


def _default_source(chip: str) -> str:
    """The simulator for a chip with a modelled array, else the roofline."""
    from chipfit.hw import load_chip
    from chipfit.hw.sim.arch import load_arch

    try:
        load_arch(load_chip(chip))
    except ValueError:
        return "roofline"
    return "simulator"


def _describe(space: str, sample: int, seed: int) -> None:
    import json
    import random

    from chipfit.nas.space import load_space

    sp = load_space(space)
    console.print(f"{sp.name}: {sp.family} skeleton, {sp.size():.4g} architectures ({len(sp.genes())} choices), "
                  f"input {', '.join(map(str, sp.input_sizes))} px", highlight=False)
    for name, opts in sp.genes():
        console.print(f"  {name}: {', '.join(opts)}", highlight=False, markup=False)
    rng = random.Random(seed)
    for _ in range(sample):
        console.print(json.dumps(sp.describe(sp.sample(rng))), highlight=False, markup=False)


def _summary(outcome) -> None:
    from rich.table import Table

    rep = outcome.report
    if rep.get("codesign"):
        _codesign_summary(outcome)
        return
    labels = [t["label"] for t in rep["targets"]]
    tab = Table(title=f"front of {rep['space']['name']} ({rep['stats']['candidates']} candidates, "
                      f"{rep['space_size']:.3g} in the space)")
    for col in ("#", "est. acc", "test acc", *[f"{x} (ms)" for x in labels], "params", "MMACs", "config"):
        tab.add_column(col)
    for n, c in enumerate(sorted(outcome.front, key=lambda c: -c["accuracy_estimate"])):
        r = c.get("retrained")
        tab.add_row(str(n), f"{c['accuracy_estimate']:.4f}", f"{r['test_accuracy']:.4f}" if r else "-",
                    *[f"{c['latency_s'][x] * 1e3:.4g}" for x in labels], f"{c['params']:,}",
                    f"{c['macs'] / 1e6:.2f}", escape(Path(c.get("config_file", "")).name))
    console.print(tab)
    st = rep["stats"]
    eps = st.get("latency_evals_per_s")
    console.print(f"search {st['search_seconds']:.0f} s ({st['search_cpu_seconds'] / 60:.1f} CPU-min), latency "
                  f"evaluations {eps:.1f}/s; wrote {escape(str(outcome.out))}/pareto.json, front/, plots"
                  if eps else f"wrote {escape(str(outcome.out))}/pareto.json", highlight=False)


def _codesign_summary(outcome) -> None:
    from rich.table import Table

    rep = outcome.report
    tab = Table(title=f"front of {rep['space']['net']['name']} x {rep['space']['hw']['name']} "
                      f"({rep['stats']['candidates']} candidates, {rep['space_size']:.3g} in the joint space)")
    for col in ("#", "est. acc", "test acc", "latency ms", "energy uJ", "area mm2", "peak W", "accelerator",
                "config"):
        tab.add_column(col)
    for n, c in enumerate(sorted(outcome.front, key=lambda c: -c["accuracy_estimate"])):
        r = c.get("retrained")
        tab.add_row(str(n), f"{c['accuracy_estimate']:.4f}", f"{r['test_accuracy']:.4f}" if r else "-",
                    f"{c['latency_s'] * 1e3:.4g}", f"{c['energy_j'] * 1e6:.4g}", f"{c['area_mm2']:.3g}",
                    f"{c['peak_w']:.3g}", escape(c["hw_key"]), escape(Path(c.get("config_file", "")).name))
    console.print(tab)
    st = rep["stats"]
    rate = f", {st['hw_evals_per_s']:.0f} accelerator evaluations/s" if st.get("hw_evals_per_s") else ""
    console.print(f"search {st['search_seconds']:.0f} s ({st['search_cpu_seconds'] / 60:.1f} CPU-min), "
                  f"{st['networks']} networks scored for accuracy{rate}; wrote {escape(str(outcome.out))}/"
                  "pareto.json, front/ (networks and .hw.yaml accelerators), plots", highlight=False)
