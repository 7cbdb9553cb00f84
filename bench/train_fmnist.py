"""Fashion-MNIST: a small QuadraNet against MobileNetV2, ShuffleNetV2, ConvNeXt, HorNet and Swin variants for 28x28,
on the same recipe (the demo's: AdamW, cosine with warm-up, label smoothing 0.1, flips, batch 128), one seed each.

Test accuracy (official test set, once, at the end), parameters, MACs and training time, written to
bench/results/train_fmnist.md; each run's folder (checkpoints, metrics, report, confusion matrix) stays in
runs/bench_fmnist/<model>. A finished run is not trained again (delete its folder to redo it).
Usage: .venv/bin/python bench/train_fmnist.py [--epochs 5] [--seed 0] [--models quadranet_s28,...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from chipfit.api import train as run
from chipfit.train import TrainConfig

MODELS = ["quadranet_s28", "mobilenetv2_s28", "shufflenetv2_s28", "convnext_s28", "hornet_s28", "swin_s28"]
ROOT = Path(__file__).parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--crop-pad", type=int, default=0, help="random-crop padding (0: flips only, as the demo)")
    args = ap.parse_args()
    rows = []
    for name in args.models.split(","):
        out = ROOT / "runs" / "bench_fmnist" / name
        if (out / "report.json").is_file():
            report = json.loads((out / "report.json").read_text())
        else:
            cfg = TrainConfig(epochs=args.epochs, batch_size=128, lr=3e-3, warmup_epochs=0.3, seed=args.seed,
                              out=str(out), resume=(out / "last.pt").is_file())
            _, report = run(name, "fashion-mnist", cfg, crop_pad=args.crop_pad)
        rows.append(report)
        print(f"{name}: test {report['test_accuracy']:.4f}, {report['train_seconds']:.0f} s", flush=True)
    lines = ["# Fashion-MNIST, same recipe for every network", "",
             f"{args.epochs} epochs, batch 128, AdamW lr 3e-3 (cosine, 0.3 warm-up epochs), weight decay 0.05, label "
             f"smoothing 0.1, flips" + (f", random crop (pad {args.crop_pad})" if args.crop_pad else "") +
             f", seed {args.seed}; 54k train / 6k validation split of "
             "the training set, test accuracy on the official 10k test set. CPU, 2 threads.", "",
             "| model | test accuracy | best val accuracy | params | MACs | train time (s) |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['test_accuracy']:.4f} | {r['best_val_accuracy']:.4f} | {r['params']:,} | "
                     f"{r['macs'] / 1e6:.2f} M | {r['train_seconds']:.0f} |")
    out = ROOT / "bench" / "results" / "train_fmnist.md"
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
