"""Time to profile networks of 10, 50 and 200 blocks: chipfit vs fvcore vs one forward pass.

Interleaved in one run, medians of repeats, written to bench/results/profile_speed.md.
Usage: .venv/bin/python bench/profile_speed.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from chipfit.cost import analyze, capture_torch
from chipfit.cost.guidelines import check
from chipfit.models import create_model


class Block(nn.Module):
    """A ConvNeXt-style residual block: depthwise 7x7, LayerNorm, MLP with GELU, layer scale."""

    def __init__(self, dim: int):
        super().__init__()
        self.dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.pw1, self.pw2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), 1e-6))

    def forward(self, x):
        y = self.norm(self.dw(x).permute(0, 2, 3, 1))
        return x + (self.pw2(F.gelu(self.pw1(y))) * self.gamma).permute(0, 3, 1, 2)


class Stack(nn.Module):
    def __init__(self, blocks: int, dim: int = 64):
        super().__init__()
        self.stem = nn.Conv2d(3, dim, 4, 4)
        self.blocks = nn.Sequential(*[Block(dim) for _ in range(blocks)])
        self.head = nn.Linear(dim, 1000)

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)).mean((2, 3)))


def resnet50() -> nn.Module:
    """ResNet-50 (bottlenecks [3, 4, 6, 3], torchvision's shapes), built here so torchvision is not needed."""

    class Bottleneck(nn.Module):
        def __init__(self, cin: int, mid: int, stride: int):
            super().__init__()
            cout = 4 * mid
            self.body = nn.Sequential(
                nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
                nn.Conv2d(mid, mid, 3, stride, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
                nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout))
            self.down = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                         if stride != 1 or cin != cout else nn.Identity())

        def forward(self, x):
            return F.relu(self.body(x) + self.down(x))

    layers, cin = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                   nn.MaxPool2d(3, 2, 1)], 64
    for i, n in enumerate((3, 4, 6, 3)):
        for j in range(n):
            layers.append(Bottleneck(cin, 64 * 2**i, 2 if j == 0 and i > 0 else 1))
            cin = 256 * 2**i
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 1000)).eval()


def chipfit_profile(model, shape):
    prof = analyze(capture_torch(model, input_shape=shape))
    prof.guidelines = check(prof)
    return prof.total.macs


def fvcore_count(model, shape):
    from fvcore.nn import FlopCountAnalysis

    fa = FlopCountAnalysis(model, torch.zeros(shape))
    fa.unsupported_ops_warnings(False)
    fa.uncalled_modules_warnings(False)
    return fa.total()


def forward(model, shape):
    with torch.no_grad():
        model(torch.zeros(shape))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "profile_speed.md"))
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    shape = (1, 3, 224, 224)
    rows = []
    for blocks in (10, 50, 200):
        model = Stack(blocks).eval()
        fns = {"chipfit": chipfit_profile, "fvcore": fvcore_count, "forward": forward}
        times: dict[str, list[float]] = {k: [] for k in fns}
        for f in fns.values():  # warm-up
            f(model, shape)
        for _ in range(args.repeats):
            for k, f in fns.items():  # interleaved
                t = time.perf_counter()
                f(model, shape)
                times[k].append(time.perf_counter() - t)
        med = {k: statistics.median(v) for k, v in times.items()}
        ops = len(capture_torch(model, input_shape=shape).compute_nodes())
        rows.append((blocks, ops, med))
        print(blocks, ops, {k: f"{v * 1e3:.1f} ms" for k, v in med.items()}, flush=True)
    zoo_rows = []
    for name in ("resnet50", "swin_t", "convnext_t", "quadranet36_t", "hornet_t"):
        model = resnet50() if name == "resnet50" else create_model(name).eval()
        fns = {"chipfit": chipfit_profile, "fvcore": fvcore_count, "forward": forward}
        times = {k: [] for k in fns}
        for f in fns.values():
            f(model, shape)
        for _ in range(args.repeats):
            for k, f in fns.items():
                t = time.perf_counter()
                f(model, shape)
                times[k].append(time.perf_counter() - t)
        med = {k: statistics.median(v) for k, v in times.items()}
        zoo_rows.append((name, med))
        print(name, {k: f"{v * 1e3:.1f} ms" for k, v in med.items()}, flush=True)
    lines = [
        "# Profile speed: chipfit vs fvcore vs one forward pass",
        "",
        f"ConvNeXt-style blocks (dim 64) at {'x'.join(map(str, shape))}, fp32, CPU threads: "
        f"{torch.get_num_threads()}; median of {args.repeats} interleaved repeats. chipfit = meta capture + costing"
        " + guidelines.",
        "",
        "| blocks | ops | chipfit ms | fvcore ms | forward ms | fvcore / chipfit | chipfit ms per op |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for blocks, ops, m in rows:
        lines.append(f"| {blocks} | {ops} | {m['chipfit'] * 1e3:.1f} | {m['fvcore'] * 1e3:.1f} | "
                     f"{m['forward'] * 1e3:.1f} | {m['fvcore'] / m['chipfit']:.1f}x | "
                     f"{m['chipfit'] * 1e3 / ops:.3f} |")
    lines += ["", "Networks of the zoo (and a torchvision-shaped ResNet-50 built here), same protocol:", "",
              "| model | chipfit ms | fvcore ms | forward ms | fvcore / chipfit | forward / chipfit |",
              "|---|---:|---:|---:|---:|---:|"]
    for name, m in zoo_rows:
        lines.append(f"| {name} | {m['chipfit'] * 1e3:.1f} | {m['fvcore'] * 1e3:.1f} | {m['forward'] * 1e3:.1f} | "
                     f"{m['fvcore'] / m['chipfit']:.1f}x | {m['forward'] / m['chipfit']:.1f}x |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
