"""Compression on Fashion-MNIST: a trained small QuadraNet and MobileNetV2 (from bench/train_fmnist.py), quantized,
pruned and distilled; accuracy, size, MACs, modelled latency/energy on a chip, and ONNX Runtime latency on this CPU.

Variants per network: float; int8 post-training quantization per-tensor and per-channel (our fake-quant, and the
same network through ONNX Runtime's quantize_static for comparison); int8 QAT; int4 and binary weights (PTQ and
QAT); unstructured and channel pruning at 30/50/70% with fine-tuning. Then distillation: a narrow QuadraNet student
trained alone against the same student distilled from the trained MobileNetV2 (logits, and logits + features).

Each variant's folder stays in runs/bench_compress/<net>/<variant> (compressed.pt, model.onnx, report.json); a
finished variant is read back, not redone. Writes bench/results/compress_fmnist.md and .json.
Usage: .venv/bin/python bench/compress_fmnist.py [--steps 200] [--nets quadranet_s28,mobilenetv2_s28]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from chipfit.compress import CompressConfig, DistillConfig, PruneConfig, QuantConfig, compress
from chipfit.data import load_data
from chipfit.deploy import export_compressed, export_float, ort_latency
from chipfit.load import load_model
from chipfit.train import TrainConfig, TrainHooks, fit

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "runs" / "bench_compress"
RESULTS = ROOT / "bench" / "results"
NETS = ("quadranet_s28", "mobilenetv2_s28")


def variants(steps: int) -> list[tuple[str, CompressConfig]]:
    q = QuantConfig.from_name
    base = CompressConfig(max_steps_per_epoch=steps, qat_epochs=0, finetune_epochs=1)
    v = [("float (BN folded)", base),
         ("int8 PTQ per-tensor", base.replace(quant=q("int8"))),
         ("int8 PTQ per-channel", base.replace(quant=q("int8", per_channel=True))),
         ("int8 PTQ per-channel, percentile", base.replace(quant=q("int8", per_channel=True,
                                                                   calibration="percentile"))),
         ("int8 QAT per-channel", base.replace(quant=q("int8", per_channel=True), qat_epochs=1)),
         ("int4 weights PTQ", base.replace(quant=q("int4", per_channel=True))),
         ("int4 weights QAT", base.replace(quant=q("int4", per_channel=True), qat_epochs=1)),
         ("int8 PTQ per-channel, asymmetric weights", base.replace(quant=q("int8", per_channel=True,
                                                                           symmetric=False))),
         ("int4 weights PTQ, asymmetric", base.replace(quant=q("int4", per_channel=True, symmetric=False))),
         ("binary weights PTQ", base.replace(quant=q("binary", per_channel=True))),
         ("binary weights QAT", base.replace(quant=q("binary", per_channel=True), qat_epochs=1)),
         ("int4 weights PTQ, first/last/depthwise 8-bit", base.replace(quant=q("int4", per_channel=True,
                                                                              keep_8bit="edges+depthwise"))),
         ("binary weights PTQ, first/last/depthwise 8-bit", base.replace(quant=q("binary", per_channel=True,
                                                                                keep_8bit="edges+depthwise"))),
         ("binary weights QAT, first/last/depthwise 8-bit", base.replace(quant=q("binary", per_channel=True,
                                                                                keep_8bit="edges+depthwise"),
                                                                         qat_epochs=1)),
         # binary networks keep a BatchNorm after each binary conv (XNOR-Net, Bi-Real Net): no folding
         ("binary weights QAT, first/last/depthwise 8-bit, BN kept", base.replace(
             fold=False, quant=q("binary", per_channel=True, keep_8bit="edges+depthwise"), qat_epochs=1)),
         ("fp16", base.replace(quant=q("fp16")))]
    for amount in (0.3, 0.5, 0.7):
        v.append((f"prune {amount:.0%} unstructured", base.replace(prune=PruneConfig(amount))))
    for amount in (0.3, 0.5, 0.7):
        v.append((f"prune {amount:.0%} unstructured, per layer", base.replace(prune=PruneConfig(amount,
                                                                                                 scope="layer"))))
    for amount in (0.3, 0.5, 0.7):
        v.append((f"prune {amount:.0%} channels", base.replace(prune=PruneConfig(amount, structured=True))))
    for amount in (0.3, 0.5, 0.7):  # the residual streams whole, only the widths one layer writes
        v.append((f"prune {amount:.0%} hidden channels", base.replace(prune=PruneConfig(amount, structured=True,
                                                                                        groups="hidden"))))
    for amount in (0.3, 0.5, 0.7):  # per-group fractions from measured sensitivity, for the uniform cut's MACs
        v.append((f"prune {amount:.0%} channels, sensitivity", base.replace(
            prune=PruneConfig(amount, structured=True, allocation="sensitivity"))))
    # the same pruning with a whole epoch (422 steps) of fine-tuning: how much the short budget costs
    full = base.replace(max_steps_per_epoch=None)
    v.append(("prune 50% unstructured, full epoch", full.replace(prune=PruneConfig(0.5))))
    v.append(("prune 50% channels, full epoch", full.replace(prune=PruneConfig(0.5, structured=True))))
    v.append(("prune 50% hidden channels, full epoch", full.replace(prune=PruneConfig(0.5, structured=True,
                                                                                      groups="hidden"))))
    v.append(("prune 50% channels, sensitivity, full epoch", full.replace(
        prune=PruneConfig(0.5, structured=True, allocation="sensitivity"))))
    return v


def slug(label: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in label).strip("_").replace("__", "_")


def run_variant(net: str, label: str, cfg: CompressConfig, data, report_only: bool = False) -> dict | None:
    out = RUNS / net / slug(label)
    if (out / "report.json").is_file():
        return fill_fused(net, out, json.loads((out / "report.json").read_text()))
    if report_only:
        return None
    model = load_model(ROOT / "runs" / "bench_fmnist" / net / "best.pt").module
    t = time.perf_counter()
    baseline = copy.deepcopy(model)
    res = compress(model, cfg, data, out=out, resume=(out / "finetune").exists() or (out / "qat").exists(),
                   progress=False, model_name=net)
    export_compressed(res, out, data.input_shape(1), data=data, baseline_model=baseline)
    rep = res.report
    rep["seconds"] = time.perf_counter() - t
    rep["onnx_accuracy"] = onnx_accuracy(out / "model.onnx", data)
    (out / "report.json").write_text(json.dumps(rep, indent=2))
    return rep


def fill_fused(net: str, out: Path, rep: dict) -> dict:
    """Fused-layer latency/energy (``simulate(fuse=True)``) for reports written before chipfit measured them: the
    physical network is rebuilt from the float checkpoint and the variant's pruning plan; the figures depend on its
    shapes, bit widths and sparsity, not on its weights."""
    from chipfit.compress.fold import fold_bn
    from chipfit.compress.prune import apply_plan
    from chipfit.hw.sim import precision_from_bits, simulate
    from chipfit.train.checkpoint import load_checkpoint

    if all("latency_fused_s" in rep[k] for k in ("baseline", "compressed")):
        return rep
    state = load_checkpoint(out / "compressed.pt")
    plan = json.loads(state.get("prune_plan") or "null")
    for key in ("baseline", "compressed"):
        r = rep[key]
        model = load_model(ROOT / "runs" / "bench_fmnist" / net / "best.pt").module
        model.eval()
        if key == "compressed":
            fold_bn(model)
            if plan:
                apply_plan(model, plan)
        bits = r["bits"] if r["bits"] in (4, 8, 16, 32) else 8
        # edge-npu skips no unstructured zeros: dense, as the report says
        tot = simulate(model, r["arch"], precision=precision_from_bits(bits, r["weight_bits"]),
                       input_shape=(1, 1, 28, 28), fused=True).total
        r["latency_fused_s"], r["energy_fused_j"] = tot["time_s"], tot["energy_j"]
    (out / "report.json").write_text(json.dumps(rep, indent=2))
    return rep


SKIP_ARCH, SKIP_PRECISION = "eyeriss-v1", "int16"


def zero_skip(net: str, rows: list[dict]) -> list[dict]:
    """The unstructured variants on an architecture that skips zero weights (edge-npu does not): the BN-folded
    network at its measured weight sparsity, fused layers, 16-bit data."""
    from chipfit.compress.fold import fold_bn
    from chipfit.hw.sim import simulate

    model = load_model(ROOT / "runs" / "bench_fmnist" / net / "best.pt").module
    fold_bn(model.eval())
    out = []
    for x in [r for r in rows if r["variant"].startswith("float")] + [r for r in rows if "unstructured" in
                                                                       r["variant"]]:
        sp = round(x["weight_sparsity"] or 0.0, 4)
        tot = simulate(model, SKIP_ARCH, precision=SKIP_PRECISION, sparsity=sp if sp > 0.01 else None,
                       input_shape=(1, 1, 28, 28), fused=True).total
        out.append({"variant": x["variant"], "accuracy": x["accuracy"], "weight_sparsity": sp, "macs": tot["macs"],
                    "latency_s": tot["time_s"], "energy_j": tot["energy_j"],
                    "dram_bytes": tot["dram_read_bytes"] + tot["dram_write_bytes"]})
    return out


def onnx_accuracy(path: Path, data, limit: int | None = None) -> float:
    """Top-1 of an ONNX file on the test split, one image per run (the files have a fixed batch of 1)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    x = data.normalise(data.test.images[:limit]).numpy()
    y = data.test.labels[:limit].numpy()
    pred = np.array([sess.run(None, {name: x[i:i + 1]})[0].argmax() for i in range(len(x))])
    return float((pred == y).mean())


def ort_static(net: str, data, per_channel: bool, method: str = "MinMax") -> dict:
    """The trained float network through ONNX Runtime's own post-training quantization (QDQ, int8)."""
    from chipfit.deploy import ort_quantize_static

    model = load_model(ROOT / "runs" / "bench_fmnist" / net / "best.pt").module
    model.eval()
    shape = data.input_shape(1)
    idx = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(0))[:512]
    calib = list(data.normalise(data.train.images[idx]).split(1))
    with tempfile.TemporaryDirectory() as tmp:
        f = export_float(model, Path(tmp) / "float.onnx", shape)
        q = Path(tmp) / "int8.onnx"
        ort_quantize_static(f, q, calib, per_channel=per_channel, method=method)
        return {"accuracy": onnx_accuracy(q, data), "size_bytes": q.stat().st_size,
                "ort_latency_s": ort_latency(q, shape), "float_ort_latency_s": ort_latency(f, shape)}


def distillation(data, epochs: int, teacher_net: str, train: bool = True) -> list[dict]:
    """A QuadraNet student at a third of quadranet_s28's width, alone and distilled from a trained teacher."""
    from chipfit.api import write_train_report as write_report
    from chipfit.compress.distill import distill_hooks, freeze_teacher
    from chipfit.models import build_model, create_model

    teacher_path = ROOT / "runs" / "bench_fmnist" / teacher_net / "best.pt"
    rows = []
    for label, dcfg in (("student alone", None),
                        ("student + KD (logits, T=4)", DistillConfig(str(teacher_path))),
                        ("student + KD (logits + features)", DistillConfig(str(teacher_path), feature_weight=1.0))):
        out = RUNS / "distill" / slug(label)
        if (out / "report.json").is_file():
            rep = json.loads((out / "report.json").read_text())
        elif not train:
            continue
        else:
            ref = create_model("quadranet_s28", num_classes=10, in_chans=1).config
            stages = tuple(dataclasses.replace(s, channels=s.channels // 3) for s in ref.stages)
            torch.manual_seed(0)
            student = build_model(ref.replace(stages=stages, name="quadranet_s28_narrow"))
            hooks = TrainHooks()
            if dcfg is not None:
                teacher = freeze_teacher(load_model(dcfg.teacher).module)
                hooks = distill_hooks(student, teacher, dcfg, torch.zeros(data.input_shape(1)))
            cfg = TrainConfig(epochs=epochs, batch_size=128, lr=3e-3, warmup_epochs=0.3, seed=0, out=str(out),
                              resume=(out / "last.pt").is_file(), progress=False)
            result = fit(student, data, cfg, hooks=hooks)
            rep = write_report(result, data, "quadranet_s28_narrow", cfg)
        rows.append({"variant": label, "test_accuracy": rep["test_accuracy"], "params": rep["params"],
                     "macs": rep["macs"], "train_seconds": rep["train_seconds"]})
        print(f"distill {label}: {rep['test_accuracy']:.4f}", flush=True)
    return rows


def fmt_bytes(b: float) -> str:
    return f"{b / 1024:,.1f} KiB"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200, help="optimiser steps per fine-tuning / QAT epoch")
    ap.add_argument("--nets", default=",".join(NETS))
    ap.add_argument("--distill-epochs", type=int, default=2)
    ap.add_argument("--teacher", default="mobilenetv2_s28")
    ap.add_argument("--skip-distill", action="store_true")
    ap.add_argument("--report-only", action="store_true", help="write the tables from finished variants only")
    args = ap.parse_args()
    torch.set_num_threads(2)
    data = load_data("fashion-mnist", seed=0)
    data.pad = 0  # the training recipe's augmentation: flips only
    results: dict = {"steps": args.steps, "distill_epochs": args.distill_epochs, "nets": {}}
    for net in [n for n in args.nets.split(",") if n]:
        rows = []
        for label, cfg in variants(args.steps):
            rep = run_variant(net, label, cfg, data, args.report_only)
            if rep is None:
                continue
            c = rep["compressed"]
            rows.append({"variant": label, **{k: c.get(k) for k in ("accuracy", "size_bytes", "macs", "dense_macs",
                                                                  "latency_s", "energy_j", "latency_fused_s",
                                                                  "energy_fused_j", "ort_latency_s",
                                                                  "weight_sparsity", "params")},
                         "onnx_accuracy": rep.get("onnx_accuracy"), "onnx_max_abs_diff": (rep.get("onnx") or {}).get(
                             "max_abs_diff"), "baseline": rep["baseline"]})
            print(f"{net} {label}: acc {c['accuracy']:.4f}, onnx {rep.get('onnx_accuracy')}", flush=True)
        ort_rows = []
        for pc in (False, True) if rows else ():
            cache = RUNS / net / f"ort_static_{'per_channel' if pc else 'per_tensor'}.json"
            if cache.is_file():
                r = json.loads(cache.read_text())
            elif args.report_only:
                continue
            else:
                r = ort_static(net, data, pc)
                cache.write_text(json.dumps(r))
            ort_rows.append({"variant": f"ORT quantize_static int8 {'per-channel' if pc else 'per-tensor'}", **r})
            print(f"{net} ORT static per_channel={pc}: {r['accuracy']:.4f}", flush=True)
        if rows:
            results["nets"][net] = {"rows": rows, "ort": ort_rows, "zero_skip": zero_skip(net, rows)}
    if not args.skip_distill:
        results["distill"] = distillation(data, args.distill_epochs, args.teacher, train=not args.report_only)
    (RESULTS / "compress_fmnist.json").write_text(json.dumps(results, indent=2))
    write_md(results)


def write_md(results: dict) -> None:
    lines = ["# Compression on Fashion-MNIST", "",
             "Written by `bench/compress_fmnist.py`. Networks: the 3-epoch runs of bench/train_fmnist.py "
             "(runs/bench_fmnist/<net>/best.pt; training is not bitwise reproducible from one machine to another, so "
             "the float accuracy below can differ from bench/results/train_fmnist.md by a few tenths). "
             "Accuracy: official 10k test set. BatchNorm folded in every variant "
             "(after pruning and its fine-tuning, which run with BatchNorm; after channel pruning its statistics are "
             "re-estimated on the calibration images). Unstructured pruning: global magnitude unless 'per layer'. "
             "Channel pruning: every dependency group (residual streams, hidden widths, head) cut by the same "
             "fraction; 'hidden channels' leaves the residual streams (channels several layers write and add) whole "
             "and cuts the others by that fraction (`--prune-groups hidden`); 'sensitivity' picks a fraction per group "
             "from the measured output change of cutting it alone, for the MACs the uniform cut leaves "
             "(`--prune-allocation sensitivity`). "
             f"Fine-tuning and QAT: one epoch capped at {results['steps']} steps of 128 images, AdamW lr 5e-4. "
             "Calibration: 512 training images, min-max unless noted. Size: parameter storage (weights at their bit "
             "width, biases int32; sparse tensors as values + 4-bit indices when smaller). Latency and energy: "
             "`chipfit simulate` on edge-npu (32x32 int8 array, 512 KB; float runs as 32-bit data, 16 passes), "
             "every layer by itself; 'fused' runs each conv with its activation and element-wise followers as one "
             "layer (`--fuse`, what a deployment compiler does). "
             "ORT: ONNX Runtime 1 image, median of 50 runs on this 2-core CPU; 'ONNX acc.' is the exported "
             "model.onnx run through ONNX Runtime on the whole test set.", ""]
    for net, r in results["nets"].items():
        b = r["rows"][0]["baseline"]
        lines += [f"## {net}", "",
                  f"Float baseline (before folding): accuracy {b['accuracy']:.4f}, {fmt_bytes(b['size_bytes'])}, "
                  f"{b['macs'] / 1e6:.2f} M MACs, modelled {b['latency_s'] * 1e3:.3f} ms / {b['energy_j'] * 1e6:.2f} "
                  f"uJ (fused {b['latency_fused_s'] * 1e3:.3f} ms / {b['energy_fused_j'] * 1e6:.2f} uJ), ORT "
                  f"{b.get('ort_latency_s', 0) * 1e3:.3f} ms.", "",
                  "| variant | accuracy | vs float (pp) | ONNX acc. | size | MACs | modelled latency | modelled energy "
                  "| fused latency | fused energy | ORT latency |", "|---|" + "---:|" * 10]
        for x in r["rows"]:
            d = (x["accuracy"] - b["accuracy"]) * 100
            oa = "-" if x["onnx_accuracy"] is None else f"{x['onnx_accuracy']:.4f}"
            lines.append(f"| {x['variant']} | {x['accuracy']:.4f} | {d:+.2f} | {oa} | {fmt_bytes(x['size_bytes'])} | "
                         f"{x['macs'] / 1e6:.2f} M | {x['latency_s'] * 1e3:.3f} ms | {x['energy_j'] * 1e6:.2f} uJ | "
                         f"{x['latency_fused_s'] * 1e3:.3f} ms | {x['energy_fused_j'] * 1e6:.2f} uJ | "
                         f"{x['ort_latency_s'] * 1e3:.3f} ms |")
        for x in r["ort"]:
            d = (x["accuracy"] - b["accuracy"]) * 100
            lines.append(f"| {x['variant']} | {x['accuracy']:.4f} | {d:+.2f} | {x['accuracy']:.4f} | "
                         f"file {fmt_bytes(x['size_bytes'])} | - | - | - | - | - | {x['ort_latency_s'] * 1e3:.3f} ms "
                         f"(float file {x['float_ort_latency_s'] * 1e3:.3f} ms) |")
        lines.append("")
        if r.get("zero_skip"):
            lines += [f"Unstructured sparsity on a chip that skips zero weights ({SKIP_ARCH}, {SKIP_PRECISION} data, "
                      "fused layers; edge-npu above does not skip them, so its latency does not move):", "",
                      "| variant | accuracy | weight sparsity | MACs executed | latency | energy | DRAM bytes |",
                      "|---|---:|---:|---:|---:|---:|---:|"]
            for x in r["zero_skip"]:
                lines.append(f"| {x['variant']} | {x['accuracy']:.4f} | {x['weight_sparsity']:.1%} | "
                             f"{x['macs'] / 1e6:.2f} M | {x['latency_s'] * 1e3:.3f} ms | {x['energy_j'] * 1e6:.1f} uJ "
                             f"| {x['dram_bytes'] / 1024:,.0f} KiB |")
            lines.append("")
    if results.get("distill"):
        lines += ["## Distillation", "",
                  "A QuadraNet student at a third of quadranet_s28's width, trained from scratch with the "
                  f"train_fmnist recipe for {results['distill_epochs']} epoch(s), alone or distilled from the "
                  "trained MobileNetV2 teacher (seed 0).", "",
                  "| student | test accuracy | params | MACs | train s |", "|---|---:|---:|---:|---:|"]
        for x in results["distill"]:
            lines.append(f"| {x['variant']} | {x['test_accuracy']:.4f} | {x['params']:,} | {x['macs'] / 1e6:.2f} M | "
                         f"{x['train_seconds']:.0f} |")
    (RESULTS / "compress_fmnist.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS / 'compress_fmnist.md'}")


if __name__ == "__main__":
    main()
