"""``design(cfg)``: from a chip and a budget to a trained, int8-compressed, exported and measured network, and its
report, in one time box.

Stages, each in its own folder of ``cfg.out`` and each resumable (the same command continues a killed run; a
finished stage is read back, not run again; ``state.json`` holds what each stage decided and found):

    supernet/  the search space's weight-sharing supernet (the training engine: Ctrl-C and resume are exact)
    search/    evolution over the supernet with the budgets as hard limits (:mod:`chipfit.design.search`):
               candidates.jsonl, chosen.json (the network, a ModelConfig file)
    train/     the chosen network trained from scratch (best.pt, metrics.jsonl, report.json, confusion.png)
    compress/  int8 post-training quantization (BatchNorm folded, per-channel weights), and quantization-aware
               training when PTQ loses more than ``qat_threshold``: compressed.pt, model.onnx (QDQ), report.json
    deploy/    the int8 file for the runtime, its manifest and its measurement on this machine
    zoo/       with ``zoo_epochs``: the best zoo network within the budgets, trained with the same recipe
    report.html  one self-contained page (:mod:`chipfit.design.summary`)

The time box: the supernet and the search get a share of ``cfg.minutes`` (``SHARES``), training what is left but
``RESERVE_S``; each turns its time into epochs, steps or generations from this machine's measured speed when the
stage starts; the lengths are written to ``state.json`` before the stage runs, so a resumed run follows the same
plan. Lengths given in the config are used as they are.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import torch

from chipfit.design.config import DesignConfig
from chipfit.design.search import best, evolve

STAGES = ("supernet", "search", "train", "compress", "deploy", "zoo", "report")
# shares of the time box, by stage (what is left after training covers compression, export, measuring, the report)
SHARES = {"supernet": 0.25, "search": 0.08}
# seconds kept for what follows training (int8 calibration and test, export, measurement, report); training gets the
# rest of the time box
RESERVE_S = 60.0
BATCH = 128
LR = 3e-3


class DesignError(ValueError):
    """A design that cannot be made as asked (no network meets the budgets, a resumed run asked otherwise)."""


class _State:
    """``state.json``: what was asked, each stage's plan and result; written atomically after every change."""

    def __init__(self, out: Path, cfg: DesignConfig, resume: bool, force: bool):
        self.path = out / "state.json"
        self.out = out
        held = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
        if self.path.is_file():
            st = json.loads(self.path.read_text())
            if force:
                st = None
            elif st.get("asked") != cfg.asked():
                diff = sorted(k for k in cfg.asked() if st.get("asked", {}).get(k) != cfg.asked()[k])
                raise DesignError(f"{out} holds a design asked otherwise ({', '.join(diff)} differ): run it with the "
                                  "same options to continue it, or give another --out (or --force to start afresh)")
        elif held and not force:
            raise DesignError(f"{out} already holds files ({', '.join(held[:4])}): give another --out, or --force")
        else:
            st = None
        self.data = st or {"asked": cfg.asked(), "plan": {}, "done": {}, "started": time.time(), "elapsed": {}}
        self.fresh = st is None
        out.mkdir(parents=True, exist_ok=True)
        self.save()

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1))
        os.replace(tmp, self.path)

    def done(self, stage: str) -> dict[str, Any] | None:
        return self.data["done"].get(stage)

    def finish(self, stage: str, result: dict[str, Any], seconds: float) -> None:
        self.data["done"][stage] = result
        self.data["elapsed"][stage] = self.data["elapsed"].get(stage, 0.0) + seconds
        self.save()

    def plan(self, stage: str, make: Any) -> dict[str, Any]:
        """The stage's plan: the one kept, or ``make()`` written down before the stage starts."""
        if stage not in self.data["plan"]:
            self.data["plan"][stage] = make()
            self.save()
        return self.data["plan"][stage]

    def spent(self) -> float:
        return sum(self.data["elapsed"].values())


def _seconds_per_step(model: torch.nn.Module, data: Any, steps: int = 8) -> float:
    """Seconds one training step (forward, backward, AdamW) of ``model`` takes on a batch of ``data``: the median of
    ``steps`` after two warm-up steps (the first steps allocate and run slower)."""
    from chipfit.train.engine import param_groups

    opt = torch.optim.AdamW(param_groups(model, 0.05), lr=1e-4)
    x = data.normalise(data.train.images[:BATCH])
    y = data.train.labels[:BATCH]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    times = []
    model.train()
    for i in range(steps + 2):
        t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= 2:
            times.append(time.perf_counter() - t0)
    model.load_state_dict(state)  # the probe leaves no trace in the weights
    return sorted(times)[len(times) // 2]


def _lengths(budget_s: float, step_s: float, steps_per_epoch: int, *, max_epochs: int, eval_share: float = 0.1
             ) -> tuple[int, int | None]:
    """(epochs, steps per epoch or None for all) that fit ``budget_s`` at ``step_s`` per step, validation included.
    Epochs are rounded to the nearest: the probe's step time runs about a quarter above a whole epoch's (measured on
    the demo: 0.164 s probed, 0.13 s per step over an epoch)."""
    steps = max(int(budget_s * (1 - eval_share) / step_s), 20)
    if steps >= steps_per_epoch:
        return min(max_epochs, max(1, round(steps / steps_per_epoch))), None
    return 1, steps


class Design:
    """One design run: ``run()`` goes through the stages it has not finished."""

    def __init__(self, cfg: DesignConfig, *, resume: bool = True, force: bool = False,
                 on_stage: Any = None):
        from chipfit.hw import load_chip
        from chipfit.nas.latency import LatencyModel, Target
        from chipfit.nas.run import SearchConfig, prepare

        self.cfg = cfg
        self.out = Path(cfg.out)
        chip = load_chip(cfg.hw)  # a bad chip fails here, before anything is written
        self.source = cfg.source or ("simulator" if getattr(chip, "array", None) is not None else "roofline")
        self.target = Target(cfg.hw, self.source, cfg.latency_budget_s, cfg.energy_budget_j, cfg.precision)
        self.search_cfg = SearchConfig(space=cfg.space, data=cfg.data, targets=(self.target,),
                                       params_budget=cfg.params_budget, out=str(self.out / "search"),
                                       seed=cfg.seed, progress=cfg.progress, batch_size=BATCH, lr=LR)
        self.space, self.data = prepare(self.search_cfg)
        self.latency = LatencyModel(self.space, (self.target,))
        self.state = _State(self.out, cfg, resume, force)
        self.on_stage = on_stage or (lambda stage, info: None)
        self.label = self.target.label()

    # --- the time box -----------------------------------------------------------------------------------------
    def _budget(self, stage: str) -> float:
        total = self.cfg.minutes * 60
        left = total - self.state.spent()
        if stage == "train":
            return max(left - RESERVE_S, 10.0)
        return max(min(SHARES[stage] * total, left), 10.0)

    def time_left(self) -> float:
        return self.cfg.minutes * 60 - self.state.spent()

    # --- stages -----------------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        for i, stage in enumerate(STAGES):
            if self.state.done(stage) is not None:
                self.on_stage(stage, {"index": i, "skipped": True, "left_s": self.time_left()})
                continue
            self.on_stage(stage, {"index": i, "skipped": False, "left_s": self.time_left()})
            t0 = time.perf_counter()
            result = getattr(self, f"_{stage}")()
            if result.get("interrupted"):
                self.state.data["elapsed"][stage] = self.state.data["elapsed"].get(stage, 0.0) + \
                    time.perf_counter() - t0
                self.state.save()
                raise KeyboardInterrupt(f"interrupted in stage {stage}: run the same command to continue")
            self.state.finish(stage, result, time.perf_counter() - t0)
        return self.state.data

    def _supernet(self) -> dict[str, Any]:
        from dataclasses import replace

        from chipfit.nas.run import supernet_for
        from chipfit.nas.supernet import Supernet

        def make() -> dict[str, Any]:
            if self.cfg.supernet_epochs or self.cfg.supernet_steps:
                return {"epochs": self.cfg.supernet_epochs or 1, "steps": self.cfg.supernet_steps, "planned": False}
            step = _seconds_per_step(Supernet(self.space), self.data)
            epochs, steps = _lengths(self._budget("supernet"), step, len(self.data.train) // BATCH, max_epochs=3)
            return {"epochs": epochs, "steps": steps, "planned": True, "step_s": step}

        plan = self.state.plan("supernet", make)
        scfg = replace(self.search_cfg, supernet_epochs=plan["epochs"], supernet_steps=plan["steps"])
        torch.manual_seed(self.cfg.seed)  # the supernet's initial weights: the same in any process
        self.net, info = supernet_for(scfg, self.space, self.data, self.out / "search")
        return {k: v for k, v in info.items() if k != "checkpoint"} | {"checkpoint": "search/supernet/last.pt"}

    def _ensure_supernet(self) -> Any:
        if getattr(self, "net", None) is None:
            from chipfit.nas.supernet import load_supernet

            self.net = load_supernet(self.out / "search" / "supernet" / "last.pt")
        return self.net

    def _evaluator(self) -> Any:
        from chipfit.nas.run import make_evaluator

        net = self._ensure_supernet()
        net.eval()
        return make_evaluator(self.search_cfg, self.space, net, self.data, self.latency)

    def _search(self) -> dict[str, Any]:
        evaluate = self._evaluator()
        log = self.out / "search" / "candidates.jsonl"

        def make() -> dict[str, Any]:
            if self.cfg.generations:
                return {"generations": self.cfg.generations, "population": self.cfg.population, "planned": False}
            import random

            t0 = time.perf_counter()
            evaluate(self.space.sample(random.Random(f"{self.cfg.seed}:probe")))
            per = time.perf_counter() - t0
            gens = int(self._budget("search") / (per * self.cfg.population))
            return {"generations": min(max(gens, 2), 25), "population": self.cfg.population, "planned": True,
                    "candidate_s": per}

        plan = self.state.plan("search", make)
        bar = _Bar(self.cfg.progress, "search", plan["generations"] * plan["population"])
        with bar:
            cands = evolve(self.space, evaluate, log, generations=plan["generations"], population=plan["population"],
                           seed=self.cfg.seed, on_candidate=lambda rec: bar.advance(
                               f"best feasible {_best_text(rec, bar)}"))
        chosen = best(cands)
        if chosen is None:
            raise DesignError(self._none_feasible(cands))
        path = self.out / "search" / "chosen.json"
        cfg = dict(chosen["config"], name=f"design_{self.cfg.hw}")
        path.write_text(json.dumps(cfg, indent=2))
        return {"candidates": len(cands), "distinct": len({c["key"] for c in cands}),
                "feasible": sum(c["feasible"] for c in cands), "chosen": {k: chosen[k] for k in (
                    "key", "arch", "accuracy", "values", "params", "macs", "describe", "latency_s", "energy_j")},
                "config_file": "search/chosen.json"}

    def _none_feasible(self, cands: list[dict[str, Any]]) -> str:
        parts = []
        for name in cands[0]["limits"] if cands else []:
            low = min(c["limits"][name][0] for c in cands)
            lim = cands[0]["limits"][name][1]
            parts.append(f"{name} <= {_fmt(name, lim)} (smallest reached {_fmt(name, low)})")
        return (f"no network of space {self.space.name!r} meets the budgets among {len(cands)} candidates: "
                f"{'; '.join(parts)}; loosen a budget or give more --minutes")

    def _train(self) -> dict[str, Any]:
        from chipfit.api import train as run_train
        from chipfit.load import load_model
        from chipfit.train import TrainConfig

        chosen = self.out / "search" / "chosen.json"
        run_dir = self.out / "train"

        def make() -> dict[str, Any]:
            if self.cfg.epochs or self.cfg.steps_per_epoch:
                return {"epochs": self.cfg.epochs or 1, "steps_per_epoch": self.cfg.steps_per_epoch, "planned": False}
            model = load_model(chosen, num_classes=self.data.num_classes, in_chans=self.data.in_chans,
                               input_size=self.data.image_size[0]).module
            step = _seconds_per_step(model, self.data)
            epochs, steps = _lengths(self._budget("train"), step, len(self.data.train) // BATCH, max_epochs=30)
            return {"epochs": epochs, "steps_per_epoch": steps, "planned": True, "step_s": step}

        plan = self.state.plan("train", make)
        model: Any = str(chosen)
        if self.cfg.inherit:  # the supernet's weights for this path, then training from there
            from chipfit.models import ModelConfig
            from chipfit.nas.supernet import extract

            arch = self.space.arch_from_dict(self.state.done("search")["chosen"]["arch"])
            torch.manual_seed(self.cfg.seed)
            model = extract(self._ensure_supernet(), arch)
            model.config = ModelConfig.from_dict(json.loads(chosen.read_text()))
        resume = (run_dir / "last.pt").is_file()
        tc = TrainConfig(epochs=plan["epochs"], batch_size=BATCH, lr=LR, warmup_epochs=min(0.3, plan["epochs"]),
                         seed=self.cfg.seed, out=str(run_dir), resume=resume, force=not resume and run_dir.exists(),
                         progress=self.cfg.progress, max_steps_per_epoch=plan["steps_per_epoch"])
        result, report = run_train(model, self.cfg.data, tc, crop_pad=0)
        if report is None:
            return {"interrupted": True}
        return {k: report[k] for k in ("test_accuracy", "best_val_accuracy", "params", "macs", "train_seconds",
                                       "epochs")}

    def _compress(self) -> dict[str, Any]:
        from dataclasses import replace

        from chipfit.api import compress as run_compress
        from chipfit.compress.config import CompressConfig, QuantConfig

        quant = replace(QuantConfig.from_name("int8"), per_channel=True)
        res = {}
        for label, qat in (("ptq", 0), ("qat", 1)):
            out = self.out / ("compress" if label == "ptq" else "compress_qat")
            if (out / "report.json").is_file() and (out / "model.onnx").is_file():
                rep = json.loads((out / "report.json").read_text())
                base, comp = rep["baseline"], rep["compressed"]
            else:
                cc = CompressConfig(quant=quant, calib_images=512, qat_epochs=qat, seed=self.cfg.seed,
                                    batch_size=BATCH)
                r = run_compress(str(self.out / "train"), cc, self.data, out=out, resume=out.is_dir(),
                                 progress=self.cfg.progress, force=out.is_dir())
                base, comp = r.baseline, r.compressed
            res[label] = {"folder": out.name, "float_accuracy": base["accuracy"], "int8_accuracy": comp["accuracy"],
                          "drop": base["accuracy"] - comp["accuracy"], "size_float": base["size_bytes"],
                          "size_int8": comp["size_bytes"], "ort_float_s": base.get("ort_latency_s"),
                          "ort_int8_s": comp.get("ort_latency_s")}
            if label == "ptq" and res["ptq"]["drop"] <= self.cfg.qat_threshold:
                break
        res["chosen"] = "qat" if "qat" in res else "ptq"
        return res

    def _deploy(self) -> dict[str, Any]:
        from chipfit.deploy import deploy_model
        from chipfit.load import load_model

        folder = self.state.done("compress")
        src = self.out / ("compress_qat" if folder["chosen"] == "qat" else "compress")
        loaded = load_model(src)
        out = self.out / "deploy"
        man = deploy_model(loaded.module, out, input_shape=self.data.input_shape(1), runtime=self.cfg.runtime,
                           calib=self.data, model_name=f"design_{self.cfg.hw}", hw=self.cfg.hw, force=True,
                           measure=self.cfg.measure, processes=3, repeats=30)
        meas = man.get("measurement") or {}
        return {"deploy_file": man["deploy_file"], "precision": man["precision"], "runtime": self.cfg.runtime,
                "measured_s": meas.get("median_s"), "spread": meas.get("spread"), "max_abs_diff": man["max_abs_diff"]}

    def _zoo(self) -> dict[str, Any]:
        """The zoo network within the budgets with the most MACs (the likeliest to be the most accurate: a proxy,
        said in the report), trained with the design's recipe, when ``zoo_epochs`` asks for it."""
        from chipfit.api import train as run_train
        from chipfit.nas.run import zoo_baselines
        from chipfit.train import TrainConfig

        if not self.cfg.zoo_epochs:
            return {"trained": False}
        c = self.cfg
        ok = [z for z in zoo_baselines(self.space, self.latency)
              if (c.latency_budget_s is None or z["latency_s"][self.label] <= c.latency_budget_s)
              and (c.params_budget is None or z["params"] <= c.params_budget)
              and (c.energy_budget_j is None or (z["energy_j"][self.label] or 0) <= c.energy_budget_j)]
        if not ok:
            return {"trained": False, "note": "No zoo network for this input meets the budgets."}
        pick = max(ok, key=lambda z: z["macs"])
        run_dir = self.out / "zoo" / pick["name"]
        resume = (run_dir / "last.pt").is_file()
        tc = TrainConfig(epochs=c.zoo_epochs, batch_size=BATCH, lr=LR, warmup_epochs=min(0.3, c.zoo_epochs),
                         seed=c.seed, out=str(run_dir), resume=resume, force=not resume and run_dir.exists(),
                         progress=c.progress)
        _, report = run_train(pick["name"], c.data, tc, crop_pad=0)
        if report is None:
            return {"interrupted": True}
        return {"trained": True, "name": pick["name"], "epochs": c.zoo_epochs, "test_accuracy": report["test_accuracy"],
                "latency_s": pick["latency_s"][self.label], "params": pick["params"]}

    def _report(self) -> dict[str, Any]:
        from chipfit.design.summary import write_report

        path = write_report(self)
        return {"file": path.name}


def _fmt(name: str, v: float) -> str:
    if name.endswith("latency_s"):
        return f"{v * 1e3:.3g} ms"
    if name.endswith("energy_j"):
        return f"{v * 1e6:.3g} uJ"
    return f"{v:,.0f}"


def _best_text(rec: dict[str, Any], bar: _Bar) -> str:
    if rec["feasible"] and rec["accuracy"] > bar.best:
        bar.best = rec["accuracy"]
    return f"{bar.best:.4f}" if bar.best >= 0 else "none yet"


class _Bar:
    """A rich progress bar for the search's candidates (quiet when progress is off)."""

    def __init__(self, enabled: bool, what: str, total: int):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                                 TextColumn("{task.fields[stats]}"), disable=not enabled, transient=True)
        self.task = self.progress.add_task(what, total=total, stats="")
        self.best = -1.0

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def advance(self, stats: str) -> None:
        self.progress.update(self.task, advance=1, stats=stats)


def design(cfg: DesignConfig, *, force: bool = False, on_stage: Any = None) -> dict[str, Any]:
    """Run (or continue) the design ``cfg`` asks for; returns ``state.json``'s content."""
    d = Design(cfg, force=force, on_stage=on_stage)
    return d.run()


__all__ = ["STAGES", "Design", "DesignError", "design"]
