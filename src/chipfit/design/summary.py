"""The design's report: ``report.html`` (one self-contained page) and the figures it embeds (``figures/*.png``).

What it shows: what was asked and what was delivered against the budgets; the zoo's networks at the same input on
the same target; the search's candidates and front; the chosen network's roofline, per-layer latency bars (names,
memory-bound hatched) and the ShuffleNetV2 guideline findings; the int8 step and its accuracy drop; latency
predicted (chipfit's models) beside measured (this machine's runtime); the training curve and confusion matrix.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

from chipfit.design.search import front
from chipfit.report.html import Page

REQUIRED_FIGURES = ("front.png", "roofline.png", "layers.png", "curve.png", "confusion.png", "latency.png")


def arch_text(describe: Any) -> str:
    """A searched network in one line: each stage's width and its blocks (identity slots left out)."""
    if not isinstance(describe, dict) or "stages" not in describe:
        return str(describe)
    parts = []
    for st in describe["stages"]:
        blocks = [b.replace("quadra_", "").replace("mbconv_", "") for b in st["blocks"] if b != "identity"]
        parts.append(f"{st['width']}ch [{' '.join(blocks)}]")
    return " | ".join(parts)


def _ms(s: float | None) -> str:
    return "-" if s is None else f"{s * 1e3:.4g} ms"


def _uj(j: float | None) -> str:
    return "-" if j is None else f"{j * 1e6:.4g} uJ"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _front_png(cands: list[dict[str, Any]], chosen_key: str, label: str, budget: float | None, zoo: list[dict],
               path: Path) -> Path:
    plt = _plt()
    key = f"{label} latency_s"
    fig, ax = plt.subplots(figsize=(7, 4.2))
    uniq = list({c["key"]: c for c in cands}.values())
    for ok, colour, name in ((False, "#bbbbbb", "breaks a budget"), (True, "#1f77b4", "within the budgets")):
        pts = [c for c in uniq if c["feasible"] == ok]
        ax.scatter([c["values"][key] * 1e3 for c in pts], [c["accuracy"] for c in pts], s=14, color=colour,
                   label=f"candidate, {name}")
    fr = front(uniq, key)
    ax.plot([c["values"][key] * 1e3 for c in fr], [c["accuracy"] for c in fr], color="#1f77b4", lw=1,
            label="front (estimated accuracy, latency)")
    ch = next(c for c in uniq if c["key"] == chosen_key)
    ax.scatter([ch["values"][key] * 1e3], [ch["accuracy"]], marker="*", s=220, color="#d62728", zorder=5,
               label="chosen")
    if budget:
        ax.axvline(budget * 1e3, color="#d62728", ls="--", lw=1, label="latency budget")
    lo = min(c["accuracy"] for c in uniq)
    for z in zoo:
        t = z["latency_s"].get(label)
        if t is not None:
            ax.axvline(t * 1e3, color="#2ca02c", lw=0.6, alpha=0.6)
            ax.text(t * 1e3, lo, z["name"], rotation=90, fontsize=6, color="#2ca02c", va="bottom", ha="right")
    ax.set_xlabel(f"latency on {label} (ms, modelled)")
    ax.set_ylabel("accuracy estimated by the supernet")
    ax.set_title("search: every candidate; green lines: the zoo's networks' latency", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _curve_png(history: list[dict[str, Any]], path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ep = [h["epoch"] for h in history]
    ax.plot(ep, [h["train_loss"] for h in history], marker="o", label="training loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax2 = ax.twinx()
    ax2.plot(ep, [h["val_acc"] for h in history], marker="s", color="#d62728", label="validation accuracy")
    ax2.set_ylabel("validation accuracy")
    fig.legend(fontsize=7, loc="center right")
    ax.set_title("training of the chosen network", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _latency_png(rows: list[tuple[str, float | None, float | None]], path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.4))
    names = [r[0] for r in rows]
    x = range(len(rows))
    ax.bar([i - 0.2 for i in x], [(r[1] or 0) * 1e3 for r in rows], width=0.4, label="predicted (chipfit)")
    ax.bar([i + 0.2 for i in x], [(r[2] or 0) * 1e3 for r in rows], width=0.4, label="measured (this machine)")
    ax.set_xticks(list(x), names, fontsize=8)
    ax.set_ylabel("ms per image")
    ax.legend(fontsize=7)
    ax.set_title("latency on this machine: predicted vs measured", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(design: Any) -> Path:
    """Write ``report.html`` (and ``figures/``) for a design whose other stages are done; returns its path."""
    from chipfit.api import profile
    from chipfit.cost import count
    from chipfit.hw import load_chip
    from chipfit.hw.roofline import estimate as roofline_estimate
    from chipfit.load import load_model
    from chipfit.nas.run import zoo_baselines
    from chipfit.report.plots import latency_bars, roofline_plot

    cfg, out, st = design.cfg, design.out, design.state.data
    done = st["done"]
    figs = out / "figures"
    figs.mkdir(exist_ok=True)
    label = design.label
    train = json.loads((out / "train" / "report.json").read_text())
    search = done["search"]
    comp = done["compress"]
    q = comp[comp["chosen"]]
    dep = done["deploy"]
    cands = [json.loads(line) for line in (out / "search" / "candidates.jsonl").read_text().splitlines()
             if line.strip()]

    # the chosen network, costed on the target in its deployed precision
    prof = profile(str(out / "train"), hw=cfg.hw, precision=cfg.precision)
    prof.model_name = "the design"
    roofline_plot(prof, figs / "roofline.png")
    latency_bars(prof, figs / "layers.png", top=40)
    sim = design.latency.evaluate_network(load_model(out / "train").module, design.data.input_shape(1), "chosen")[0]
    target_est = sim[label]

    zoo = zoo_baselines(design.space, design.latency)
    _front_png(cands, search["chosen"]["key"], label, cfg.latency_budget_s, zoo, figs / "front.png")
    _curve_png(train["history"], figs / "curve.png")
    (figs / "confusion.png").write_bytes((out / "train" / "confusion.png").read_bytes())

    # predicted (chipfit's host roofline) vs measured (the runtime on this machine)
    host = load_chip("host")
    model = load_model(out / "train").module.eval()
    shape = design.data.input_shape(1)
    host_fp32 = roofline_estimate(count(model, shape), host, fused=True).latency_s
    host_int8 = None
    if "int8" in host.peak_ops_per_s:
        from chipfit.cost import Precision

        host_int8 = roofline_estimate(count(model, shape, Precision.parse("int8")), host, fused=True).latency_s
    lat_rows = [("float32", host_fp32, q.get("ort_float_s")), ("int8", host_int8, dep.get("measured_s"))]
    _latency_png(lat_rows, figs / "latency.png")

    page = Page(f"chipfit design: a network for {cfg.hw}",
                f"{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M} · data {cfg.data} · space {cfg.space} · "
                f"latency by {design.source} · {sum(st['elapsed'].values()) / 60:.1f} of {cfg.minutes:g} minutes")
    page.heading("Asked and delivered")
    rows, status = [], []

    def row(what: str, got: Any, budget: Any, ok: bool | None) -> None:
        rows.append([what, got, budget, "-" if ok is None else ("within" if ok else "over")])
        status.append(None if ok is None else ("ok" if ok else "bad"))

    acc_int8 = q["int8_accuracy"]
    row("test accuracy, float32", f"{train['test_accuracy']:.4f}", "-", None)
    row(f"test accuracy, int8 ({comp['chosen'].upper()})", f"{acc_int8:.4f}", "-", None)
    lat = target_est.latency_s
    row(f"latency on {cfg.hw} ({design.source}, {cfg.precision})", _ms(lat),
        _ms(cfg.latency_budget_s), None if cfg.latency_budget_s is None else lat <= cfg.latency_budget_s)
    en = target_est.energy_j
    row(f"energy on {cfg.hw} ({design.source}, {cfg.precision})", _uj(en), _uj(cfg.energy_budget_j),
        None if cfg.energy_budget_j is None or en is None else en <= cfg.energy_budget_j)
    row("parameters", f"{train['params']:,}", "-" if cfg.params_budget is None else f"{cfg.params_budget:,.0f}",
        None if cfg.params_budget is None else train["params"] <= cfg.params_budget)
    row("MACs per image", f"{train['macs']:,}", "-", None)
    row("size of the int8 weights", f"{q['size_int8'] / 1e3:,.1f} kB", "-", None)
    row(f"measured latency, int8 on this machine ({dep['runtime']})", _ms(dep.get("measured_s")), "-", None)
    page.table(["", "delivered", "budget", ""], rows, status=status)
    page.text(f"The network (stage width [blocks: kernel k, MLP expansion e]): "
              f"{arch_text(search['chosen']['describe'])}. Files: search/chosen.json (its config), train/best.pt, "
              f"{q['folder']}/compressed.pt, deploy/{dep['deploy_file']}.")

    page.heading(f"The zoo's networks on the same target ({label}), modelled")
    zrows, zstat = [], []
    for z in sorted(zoo, key=lambda z: z["latency_s"][label]):
        ok = (cfg.latency_budget_s is None or z["latency_s"][label] <= cfg.latency_budget_s) and \
             (cfg.params_budget is None or z["params"] <= cfg.params_budget) and \
             (cfg.energy_budget_j is None or (z["energy_j"][label] or 0) <= cfg.energy_budget_j)
        zrows.append([z["name"], _ms(z["latency_s"][label]), _uj(z["energy_j"][label]), f"{z['params']:,}",
                      f"{z['macs']:,}", "within" if ok else "over"])
        zstat.append("ok" if ok else "bad")
    zrows.append(["this design", _ms(lat), _uj(en), f"{train['params']:,}", f"{train['macs']:,}", "within"])
    zstat.append("ok")
    page.table(["network", "latency", "energy", "params", "MACs", "budgets"], zrows, status=zstat)
    zoo_done = done.get("zoo") or {}
    if zoo_done.get("trained"):
        page.text(f"The best zoo network within the budgets, {zoo_done['name']}, trained with the same recipe "
                  f"({zoo_done['epochs']} epochs): test accuracy {zoo_done['test_accuracy']:.4f} against the "
                  f"design's {train['test_accuracy']:.4f}.")
    else:
        page.text(zoo_done.get("note", "The zoo's networks were not trained in this run (--zoo-epochs N trains the "
                                       "best one within the budgets with the same recipe)."))

    page.heading("Search")
    page.text(f"{search['candidates']} candidates ({search['distinct']} distinct, {search['feasible']} within the "
              f"budgets) in {st['plan']['search']['generations']} generations of {st['plan']['search']['population']}"
              f", scored with a supernet trained {st['plan']['supernet']['epochs']} epoch(s)"
              + (f" of {st['plan']['supernet']['steps']} steps" if st['plan']['supernet'].get('steps') else "")
              + ". Estimated accuracy is the supernet's, on 2,000 validation images.")
    page.figure(figs / "front.png", "Every candidate of the search: estimated accuracy against modelled latency")
    key = f"{label} latency_s"
    fr = front(cands, key)
    page.table(["network", "estimated accuracy", "latency", "params", "MACs", "budgets"],
               [[arch_text(c["describe"]), f"{c['accuracy']:.4f}",
                 _ms(c["values"][key]), f"{c['params']:,}", f"{c['macs']:,}",
                 "within" if c["feasible"] else "over"] for c in fr],
               status=["ok" if c["feasible"] else "bad" for c in fr])

    page.heading(f"The chosen network on {cfg.hw}")
    page.grid([(figs / "roofline.png", f"Roofline of {cfg.hw} ({cfg.precision}): each layer at its arithmetic "
                                       "intensity"),
               (figs / "layers.png", f"Per-layer latency by the roofline of {cfg.hw} (hatched: memory-bound); the "
                                     f"{design.source} gives {_ms(lat)} for the whole network")])
    findings = prof.guidelines.get("warnings", []) if prof.guidelines else []
    page.text("ShuffleNetV2 guidelines (G1 equal channel widths, G2 group convolutions, G3 fragmentation, G4 "
              "element-wise ops):")
    page.table(["finding"], [[w] for w in findings] or [["no guideline warning"]])

    page.heading("int8")
    crows = []
    for lab in ("ptq", "qat"):
        if lab in comp:
            c = comp[lab]
            crows.append([lab.upper(), f"{c['float_accuracy']:.4f}", f"{c['int8_accuracy']:.4f}",
                          f"{100 * c['drop']:+.2f}", f"{c['size_float'] / 1e3:,.1f} kB",
                          f"{c['size_int8'] / 1e3:,.1f} kB"])
    page.table(["step", "float test accuracy", "int8 test accuracy", "drop (points)", "size float", "size int8"],
               crows)
    page.text(f"Post-training int8 (BatchNorm folded, per-channel weights, activations per tensor from 512 training "
              f"images); quantization-aware training follows when it loses more than {100 * cfg.qat_threshold:g} "
              "point(s).")

    page.heading("Latency: predicted and measured")
    page.figure(figs / "latency.png", "chipfit's host roofline against the runtime on this machine")
    page.table(["network", "predicted (host roofline)", "measured", "measured / predicted"],
               [[n, _ms(p), _ms(m), "-" if not (p and m) else f"{m / p:.2f}x"] for n, p, m in lat_rows])
    page.text(f"int8 measured with chipfit's protocol (3 fresh processes x 30 runs, median; spread "
              f"{dep.get('spread') or 0:.1%}); float32 once in ONNX Runtime. The target's own latency "
              f"({_ms(lat)}) is modelled by the {design.source}: no {cfg.hw} was at hand to measure.")

    page.heading("Training")
    page.grid([(figs / "curve.png", f"{train['epochs']} epochs, {train['train_seconds']:.0f} s"),
               (figs / "confusion.png", "Confusion matrix on the test set (float32)")])
    page.heading("Reproduce")
    fixed = "".join(f" --{k.replace('_', '-')} {getattr(cfg, k)}" for k in (
        "supernet_epochs", "supernet_steps", "generations", "epochs", "steps_per_epoch") if getattr(cfg, k))
    page.text("chipfit design --hw " + cfg.hw + (f" --latency {cfg.latency_budget_s * 1e3:g}ms"
                                                  if cfg.latency_budget_s else "")
              + (f" --energy {cfg.energy_budget_j * 1e6:g}uJ" if cfg.energy_budget_j else "")
              + (f" --params {cfg.params_budget:g}" if cfg.params_budget else "")
              + f" --data {cfg.data} --minutes {cfg.minutes:g}{fixed} --out {out}"
              + f" (plan followed: {json.dumps(st['plan'])})")
    return page.write(out / "report.html")
