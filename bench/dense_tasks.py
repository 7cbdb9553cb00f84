"""Detection and segmentation (issue 17): backbones compared on Fashion-MNIST scenes, the real tree-crown and nuclei
sets, int8 post-training quantization of a detector and a segmenter, and the networks at the design talk's
resolutions on jetson-tx2 and journey-3.

    .venv/bin/python bench/dense_tasks.py scenes      # 2 tasks x 3 backbones (QuadraNet, MobileNetV2, ShuffleNetV2)
    .venv/bin/python bench/dense_tasks.py real        # trees (detection), nuclei (segmentation)
    .venv/bin/python bench/dense_tasks.py int8        # PTQ of the scenes' QuadraNet and MobileNetV2 networks
    .venv/bin/python bench/dense_tasks.py resolution  # modelled latency at 1024x2048 / 384x1280
    .venv/bin/python bench/dense_tasks.py report      # bench/results/dense_tasks.md + .json + PNGs

Runs go to runs/bench_dense/ (a finished run is read back, an interrupted one resumed). Same recipe and seed for every
backbone of a task: AdamW lr 2e-3, cosine with 0.5 warm-up epochs, batch 32, flips and 0.75-1.25 zoom, seed 0.
Metric figures do not depend on the machine's load; the seconds do (run it alone). --smoke: a seconds-long pass.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import shutil
import time
from pathlib import Path

ROOT = Path(__file__).parents[1]
WORK = ROOT / "runs" / "bench_dense"
RESULTS = ROOT / "bench" / "results"
BACKBONES = ("quadranet", "mobilenetv2", "shufflenetv2")
ARCH = {"segment": "bisenet", "detect": "fcos"}
# the chips of the scenes' latency: (name, precision, model)
CHIPS = (("jetson-tx2", "fp16", "roofline"), ("edge-npu", "int8", "simulator"))
BIG = {"segment": ("bisenet_quadranet", "bisenet_mobilenetv2", "fastscnn"),
       "detect": ("fcos_quadranet", "fcos_mobilenetv2")}
BIG_CHIPS = (("jetson-tx2", "fp16"), ("journey-3", "int8"))
REAL = {"trees": ("detect", "fcos_quadranet_s", {"tile": 200}, 15, 8),
        "nuclei": ("segment", "bisenet_quadranet_s", {"tile": 128}, 60, 4)}


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def cpu_flags() -> str:
    text = Path("/proc/cpuinfo").read_text()
    return ", ".join(f for f in ("avx2", "avx512f", "avx512_vnni") if f" {f}" in text)


def _cfg(out: Path, epochs: int, batch: int, seed: int, smoke: bool):
    from chipfit.train import TrainConfig

    resume = (out / "last.pt").is_file()
    return TrainConfig(epochs=1 if smoke else epochs, batch_size=batch, lr=2e-3, warmup_epochs=0.0 if smoke else 0.5,
                       seed=seed, out=str(out), resume=resume, force=not resume and out.exists(), progress=False,
                       threads=2, max_steps_per_epoch=3 if smoke else None)


def _run(out: Path, model: str, data: str, task: str, epochs: int, batch: int, seed: int, smoke: bool,
         options: dict) -> dict:
    """Train (or read back) one run; its report plus the wall time."""
    from chipfit.api import train_dense

    if (out / "report.json").is_file():
        return json.loads((out / "report.json").read_text())
    t0 = time.perf_counter()
    _, report = train_dense(model, data, _cfg(out, epochs, batch, seed, smoke), task=task, data_options=options)
    if report is None:
        raise SystemExit(f"interrupted: run the same command to continue ({out})")
    report["wall_s"] = time.perf_counter() - t0
    (out / "report.json").write_text(json.dumps(report, indent=2))
    return report


def _latency(module, shape: tuple[int, ...]) -> dict:
    """Modelled latency and energy on the scenes' two chips."""
    from chipfit.api import profile, simulate

    res = {}
    for chip, prec, how in CHIPS:
        if how == "roofline":
            est = profile(module, shape, hw=chip, precision=prec).estimate
        else:
            est = simulate(module, chip, input_shape=shape, precision=prec).estimate()
        res[chip] = {"precision": prec, "model": how, "latency_ms": est.latency_s * 1e3,
                     "energy_uj": est.energy_j * 1e6 if est.energy_j is not None else None}
    return res


def scenes(args) -> None:
    from chipfit.load import load_model

    options = {"n_train": 400, "n_test": 100} if args.smoke else {}
    out = {}
    for task in ("segment", "detect"):
        for bb in BACKBONES:
            name = f"{ARCH[task]}_{bb}_s"
            if f"{task}/{bb}" in args.skip:
                continue
            for seed in args.seeds:
                key = f"{task}/{bb}/seed{seed}"
                run_dir = WORK / "scenes" / f"{name}_seed{seed}"
                print(f"== {key}: {name}", flush=True)
                epochs = args.detect_epochs if task == "detect" and args.detect_epochs else args.epochs
                rep = _run(run_dir, name, "fmnist-scenes", task, epochs, 32, seed, args.smoke, options)
                loaded = load_model(run_dir)
                rep["latency"] = _latency(loaded.module, tuple(rep["input_shape"]))
                out[key] = {k: rep[k] for k in ("model", "task", "score", "test_score", "best_val_score", "test",
                                                "params", "macs", "input_shape", "train_seconds", "epochs",
                                                "history", "latency")}
                print(f"   test {rep['score']} {rep['test_score']:.4f}, {rep['macs'] / 1e6:.1f} M MACs, "
                      f"{rep['train_seconds']:.0f} s", flush=True)
    _save("scenes", out)


def real(args) -> None:
    out = {}
    for data, (task, model, options, epochs, batch) in REAL.items():
        run_dir = WORK / "real" / f"{data}_{model}"
        print(f"== {data}: {model}", flush=True)
        t0 = time.perf_counter()
        rep = _run(run_dir, model, data, task, epochs, batch, 0, args.smoke, options)
        from chipfit.data.dense import load_dense

        bundle = load_dense(data, task, **options)
        out[data] = {"model": model, "task": task, "score": rep["score"], "test_score": rep["test_score"],
                     "test": rep["test"], "params": rep["params"], "macs": rep["macs"],
                     "input_shape": rep["input_shape"], "epochs": rep["epochs"],
                     "train_seconds": rep["train_seconds"], "history": rep["history"],
                     "tiles": {s: len(getattr(bundle, s)) for s in ("train", "val", "test")},
                     "boxes": {s: int(sum(len(b) for b in getattr(bundle, s).boxes)) for s in ("train", "val", "test")},
                     "seconds": time.perf_counter() - t0}
        print(f"   test {rep['score']} {rep['test_score']:.4f}", flush=True)
    _save("real", out)


def int8(args) -> None:
    """PTQ (fold BN, int8 weights per channel, activations per tensor, min-max over 512 training images) of the
    scenes' networks; the score before and after on the same test scenes."""
    from chipfit.compress import compress
    from chipfit.compress.config import CompressConfig, QuantConfig
    from chipfit.data.dense import load_dense
    from chipfit.load import load_model
    from chipfit.train.dense import make_task

    out = {}
    for task in ("segment", "detect"):
        options = {"n_train": 400, "n_test": 100} if args.smoke else {}
        data = load_dense("fmnist-scenes", task, seed=args.seeds[0], **options)
        for bb in ("quadranet", "mobilenetv2"):
            if f"{task}/{bb}" in args.skip:
                continue
            name = f"{ARCH[task]}_{bb}_s"
            run_dir = WORK / "scenes" / f"{name}_seed{args.seeds[0]}"
            for per_channel in (True,):
                loaded = load_model(run_dir)
                if loaded.norm:
                    data.mean, data.std = loaded.norm["mean"], loaded.norm["std"]
                q = dataclasses.replace(QuantConfig.from_name("int8"), per_channel=per_channel)
                t0 = time.perf_counter()
                res = compress(loaded.module, CompressConfig(quant=q, calib_images=512), data, progress=False,
                               task=make_task(task))
                key = f"{task}/{bb}/{'per-channel' if per_channel else 'per-tensor'}"
                out[key] = {"model": name, "score": "miou" if task == "segment" else "map50",
                            "float": res.baseline["accuracy"], "int8": res.compressed["accuracy"],
                            "drop_points": 100 * (res.baseline["accuracy"] - res.compressed["accuracy"]),
                            "size_float": res.baseline["size_bytes"], "size_int8": res.compressed["size_bytes"],
                            "latency_edge_npu_ms": res.compressed["latency_s"] * 1e3,
                            "seconds": time.perf_counter() - t0}
                print(f"== {key}: {out[key]['float']:.4f} -> {out[key]['int8']:.4f} "
                      f"({out[key]['drop_points']:+.2f} points)", flush=True)
    _save("int8", out)


def resolution(args) -> None:
    from chipfit.api import profile
    from chipfit.models import get_entry

    out = {}
    for task, names in BIG.items():
        for name in names:
            shape = get_entry(name).input_shape
            for chip, prec in BIG_CHIPS:
                t0 = time.perf_counter()
                p = profile(name, hw=chip, precision=prec)
                est = p.estimate
                bound = [la for la in est.layers if la.bound == "memory"]
                out[f"{name}/{chip}"] = {
                    "task": task, "model": name, "chip": chip, "precision": prec, "input_shape": list(shape),
                    "params": p.total.params, "macs": p.total.macs, "latency_ms": est.latency_s * 1e3,
                    "fps": 1 / est.latency_s, "energy_mj": est.energy_j * 1e3 if est.energy_j else None,
                    "memory_bound_layers": len(bound), "layers": len(est.layers),
                    "count_seconds": time.perf_counter() - t0}
                print(f"== {name} on {chip} ({prec}): {out[f'{name}/{chip}']['latency_ms']:.1f} ms", flush=True)
    _save("resolution", out)


def _save(stage: str, data: dict) -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / "results.json"
    allres = json.loads(path.read_text()) if path.is_file() else {}
    allres[stage] = {**allres.get(stage, {}), **data}  # a stage run in parts (--skip) adds to what is there
    allres["cpu"] = {"model": cpu_model(), "flags": cpu_flags(), "python": platform.python_version()}
    path.write_text(json.dumps(allres, indent=1))


def _epoch_seconds(run: dict) -> float:
    """Training seconds of a run, its epochs summed: a resumed run's report times only the part after the resume."""
    return sum(h.get("seconds", 0.0) for h in run.get("history", [])) or run["train_seconds"]


def _f(v, nd=4) -> str:
    return "-" if v is None else f"{v:.{nd}f}"


def report(args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = json.loads((WORK / "results.json").read_text())
    RESULTS.mkdir(parents=True, exist_ok=True)
    cpu = res.get("cpu", {})
    lines = ["# Detection and segmentation (bench/dense_tasks.py)", "",
             f"Machine: {cpu.get('model')} ({cpu.get('flags')}), 2 cores, Python {cpu.get('python')}. "
             "Scores by chipfit.train.dense: mIoU over all classes with background; COCO mAP by pycocotools.", ""]
    sc = res.get("scenes", {})
    if sc:
        lines += ["## Fashion-MNIST scenes: backbones at similar MACs", "",
                  "96x96 grey canvases with 1-4 articles (16-48 px, 10 classes), 7,200 training / 800 validation / "
                  "2,000 test scenes (test scenes built from Fashion-MNIST's test images only). Same recipe and seed "
                  "for every network of a task (epochs below), batch 32, AdamW 2e-3. Latency modelled: jetson-tx2 "
                  "roofline at fp16, edge-npu simulator at int8 (batch 1). Training seconds are the epochs' wall time "
                  "summed (a resumed run's earlier epochs included), on the 2 cores while other jobs shared them: "
                  "not a speed comparison.", ""]
        for task in ("segment", "detect"):
            rows = {k: v for k, v in sc.items() if v["task"] == task}
            if not rows:
                continue
            scores = "test mIoU | pixel acc" if task == "segment" else "test mAP@0.5 | mAP@[.5:.95]"
            head = f"| network | seed | {scores} | params | MMACs | tx2 ms | edge-npu ms | edge-npu uJ | train s |"
            ep = next(iter(rows.values()))["epochs"]
            what = "Segmentation (BiSeNet-style)" if task == "segment" else "Detection (FCOS + PAN)"
            lines += [f"### {what}, {ep} epochs", "",
                      head, "|" + "---|" * (head.count("|") - 1)]
            for k, v in rows.items():
                second = v["test"].get("pixel_accuracy") if task == "segment" else v["test"].get("map")
                lat = v["latency"]
                lines.append(f"| {v['model']} | {k.split('seed')[-1]} | {v['test_score']:.4f} | {_f(second)} | "
                             f"{v['params'] / 1e6:.3f}M | {v['macs'] / 1e6:.1f} | "
                             f"{lat['jetson-tx2']['latency_ms']:.3f} | {lat['edge-npu']['latency_ms']:.3f} | "
                             f"{_f(lat['edge-npu']['energy_uj'], 1)} | {_epoch_seconds(v):.0f} |")
            lines.append("")
        # per-class table for the QuadraNet and MobileNetV2 networks
        for task, key in (("segment", "per_class_iou"), ("detect", "per_class_ap50")):
            rows = {k: v for k, v in sc.items() if v["task"] == task}
            if not rows:
                continue
            classes = list(next(iter(rows.values()))["test"][key])
            lines += [f"Per class ({'IoU' if task == 'segment' else 'AP@0.5'}):", "",
                      "| network | " + " | ".join(classes) + " |", "|---|" + "---|" * len(classes)]
            for v in rows.values():
                lines.append(f"| {v['model']} | " + " | ".join(_f(v['test'][key][c], 3) for c in classes) + " |")
            lines.append("")
        _scene_plots(plt, sc)
        lines += ["![scores vs MACs and modelled latency](dense_tasks.png)", "",
                  "![learning curves](dense_tasks_curves.png)", ""]
        for task in ("segment", "detect"):
            name = f"{ARCH[task]}_quadranet_s"
            src = WORK / "scenes" / f"{name}_seed{args.seeds[0]}" / "predictions.png"
            if src.is_file():
                shutil.copy(src, RESULTS / f"dense_scenes_{task}.png")
                lines += [f"![{name} on held-out scenes](dense_scenes_{task}.png)", ""]
    rl = res.get("real", {})
    if rl:
        lines += ["## Real sets (small: read the numbers as a smoke test on real images, not as a benchmark)", "",
                  "| data | network | tiles train/val/test | boxes train/val/test | epochs | test score | params | "
                  "MMACs |", "|---|---|---|---|---|---|---|---|"]
        for data, v in rl.items():
            t, b = v["tiles"], v["boxes"]
            what = "mIoU" if v["task"] == "segment" else "mAP@0.5"
            extra = f" (mAP {_f(v['test'].get('map'))})" if v["task"] == "detect" else \
                f" (pixel acc {_f(v['test'].get('pixel_accuracy'))})"
            lines.append(f"| {data} | {v['model']} | {t['train']}/{t['val']}/{t['test']} | "
                         f"{b['train']}/{b['val']}/{b['test']} | {v['epochs']} | {what} {v['test_score']:.4f}{extra} "
                         f"| {v['params'] / 1e6:.3f}M | {v['macs'] / 1e6:.1f} |")
            src = WORK / "real" / f"{data}_{v['model']}" / "predictions.png"
            if src.is_file():
                shutil.copy(src, RESULTS / f"dense_{data}.png")
        lines.append("")
        for data in rl:
            if (RESULTS / f"dense_{data}.png").is_file():
                lines += [f"![{data}: held-out tiles, truth and prediction](dense_{data}.png)", ""]
    q = res.get("int8", {})
    if q:
        lines += ["## int8 post-training quantization (goal: <= 1 point lost)", "",
                  "BatchNorm folded, int8 weights and activations, min-max ranges from 512 training scenes; the same "
                  "2,000 test scenes before and after.", "",
                  "| network | weights | float | int8 | drop (points) | size float -> int8 | edge-npu ms (int8) |",
                  "|---|---|---|---|---|---|---|"]
        for k, v in q.items():
            lines.append(f"| {v['model']} ({v['score']}) | {k.split('/')[-1]} | {v['float']:.4f} | {v['int8']:.4f} | "
                         f"{v['drop_points']:+.2f} | {v['size_float'] / 1e6:.2f} MB -> {v['size_int8'] / 1e6:.2f} MB "
                         f"| {v['latency_edge_npu_ms']:.3f} |")
        lines.append("")
    rz = res.get("resolution", {})
    if rz:
        lines += ["## At the design talk's resolutions (modelled, batch 1)", "",
                  "Segmentation at 1024x2048 RGB (19 classes, Cityscapes-like), detection at 384x1280 RGB (3 classes, "
                  "KITTI-like). jetson-tx2 roofline at fp16, journey-3 roofline at int8.", "",
                  "| network | input | params | GMACs | chip | latency ms | fps | energy mJ | memory-bound layers |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for v in rz.values():
            lines.append(f"| {v['model']} | {'x'.join(map(str, v['input_shape'][1:]))} | {v['params'] / 1e6:.2f}M | "
                         f"{v['macs'] / 1e9:.2f} | {v['chip']} ({v['precision']}) | {v['latency_ms']:.1f} | "
                         f"{v['fps']:.1f} | {_f(v['energy_mj'], 1)} | {v['memory_bound_layers']} of {v['layers']} |")
        lines.append("")
    (RESULTS / "dense_tasks.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "dense_tasks.json").write_text(json.dumps(res, indent=1))
    print(f"wrote {RESULTS / 'dense_tasks.md'}")


def _scene_plots(plt, sc: dict) -> None:
    colours = {"quadranet": "#d62728", "mobilenetv2": "#1f77b4", "shufflenetv2": "#2ca02c"}
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.4))
    for r, task in enumerate(("segment", "detect")):
        rows = [v for v in sc.values() if v["task"] == task]
        for c, (xlabel, xs) in enumerate((
                ("MMACs", lambda v: v["macs"] / 1e6),
                ("jetson-tx2 fp16 latency (ms, roofline)", lambda v: v["latency"]["jetson-tx2"]["latency_ms"]),
                ("edge-npu int8 latency (ms, simulator)", lambda v: v["latency"]["edge-npu"]["latency_ms"]))):
            ax = axes[r][c]
            for v in rows:
                bb = v["model"].split("_")[1]
                ax.scatter(xs(v), v["test_score"], color=colours.get(bb, "k"), s=40)
                ax.annotate(bb, (xs(v), v["test_score"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
            ax.set_xlabel(xlabel, fontsize=8)
            ax.set_ylabel("test mIoU" if task == "segment" else "test mAP@0.5", fontsize=8)
            ax.grid(alpha=0.3)
    fig.suptitle("Fashion-MNIST scenes: score against cost (top: BiSeNet-style segmenters, bottom: FCOS detectors)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(RESULTS / "dense_tasks.png", dpi=110)
    plt.close(fig)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, task, key in ((axes[0], "segment", "val_miou"), (axes[1], "detect", "val_map50")):
        for k, v in sc.items():
            if v["task"] != task:
                continue
            bb = v["model"].split("_")[1]
            ax.plot([h["epoch"] for h in v["history"]], [h[key] for h in v["history"]], marker="o",
                    color=colours.get(bb, "k"), label=f"{bb} ({k.split('/')[-1]})")
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(RESULTS / "dense_tasks_curves.png", dpi=110)
    plt.close(fig)


def main() -> None:
    global WORK, RESULTS
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stage", choices=("scenes", "real", "int8", "resolution", "report"))
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--detect-epochs", type=int, default=None, help="the detectors' epochs (default --epochs)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--skip", nargs="*", default=[], help="TASK/BACKBONE pairs left out, e.g. detect/shufflenetv2")
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args()
    if args.smoke:  # a pass that checks the script: its own folder, never bench/results
        WORK = WORK.parent / "bench_dense_smoke"
        RESULTS = WORK / "results"
    {"scenes": scenes, "real": real, "int8": int8, "resolution": resolution, "report": report}[args.stage](args)


if __name__ == "__main__":
    main()
