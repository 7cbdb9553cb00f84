"""What to quantize in a quadratic layer: the input only, also both branches, or also their product.

The trained quadranet_s28 of bench/train_fmnist.py, BatchNorm folded, post-training quantization calibrated on 512
training images (min-max), test accuracy on the official 10k set. Writes bench/results/quadratic_quant.md.
Usage: .venv/bin/python bench/quadratic_quant.py
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

from chipfit.compress import CompressConfig, QuantConfig
from chipfit.compress.api import calibration_batches
from chipfit.compress.fold import fold_bn
from chipfit.compress.quant import calibrate, quantize
from chipfit.data import load_data
from chipfit.load import load_model
from chipfit.train import evaluate

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    data = load_data("fashion-mnist", seed=0)
    base = load_model(ROOT / "runs" / "bench_fmnist" / "quadranet_s28" / "best.pt").module
    fold_bn(base.eval())
    float_acc = evaluate(base, data, "test")["accuracy"]
    batches = calibration_batches(data, CompressConfig(calib_images=512))
    lines = ["# Quantizing quadratic layers: what to quantize", "",
             f"quadranet_s28 (bench/train_fmnist run), BN folded, PTQ with 512 calibration images (min-max), "
             f"per-channel weights. Float test accuracy {float_acc:.4f}.", "",
             "| weights / activations | quadratic layers quantize | test accuracy | vs float (pp) |",
             "|---|---|---:|---:|"]
    for preset in ("int8", "int4"):
        for mode in ("input", "branches", "product"):
            m = quantize(copy.deepcopy(base), QuantConfig.from_name(preset, per_channel=True, quadratic=mode))
            calibrate(m, batches)
            acc = evaluate(m, data, "test")["accuracy"]
            what = {"input": "input + weights", "branches": "input, weights, f_a(x), f_b(x)",
                    "product": "input, weights, f_a(x), f_b(x), f_a(x) f_b(x)"}[mode]
            lines.append(f"| {QuantConfig.from_name(preset).name} | {what} | {acc:.4f} | "
                         f"{(acc - float_acc) * 100:+.2f} |")
            print(lines[-1], flush=True)
    out = ROOT / "bench" / "results" / "quadratic_quant.md"
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
