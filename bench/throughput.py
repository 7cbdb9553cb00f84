"""Throughput (images/s), inference and training, of QuadraNet vs HorNet vs ConvNeXt vs Swin at matched size:
T-size at 224x224 with batch 8, and the small-input variants at 32x32 with batch 64. All models interleaved in one
run (round-robin), medians of the repeats, ratios to HorNet. Training = forward + backward + AdamW step.

Writes bench/results/throughput.md. Usage: .venv/bin/python bench/throughput.py [--repeats 5] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from chipfit.models import create_model

GROUPS = {
    "224x224, batch 8": (["quadranet36_t", "quadranet36_t:plain", "hornet_t", "convnext_t", "swin_t"], 8, 224, 3),
    "32x32, batch 64": (["quadranet_s32", "quadranet_s32:plain", "hornet_s32", "convnext_s32", "swin_s32"], 64, 32, 3),
}


def build(spec: str, device: str) -> torch.nn.Module:
    name, _, variant = spec.partition(":")
    kw = {"memory_efficient": False} if variant == "plain" else {}
    return create_model(name, **kw).to(device)


def step_time(model, x, y, train: bool, opt=None) -> float:
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    sync()
    t = time.perf_counter()
    if train:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    else:
        with torch.no_grad():
            model(x)
    sync()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "throughput.md"))
    args = ap.parse_args()
    dev = args.device
    where = torch.cuda.get_device_name() if dev == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    lines = [f"# Throughput on {where} (images/s, median of {args.repeats} interleaved repeats)", "",
             "`:plain` = QuadraNet with plain autograd instead of the memory-efficient recompute (the default).", ""]
    for title, (specs, batch, size, chans) in GROUPS.items():
        models = {s: build(s, dev) for s in specs}
        opts = {s: torch.optim.AdamW(m.parameters(), lr=1e-4) for s, m in models.items()}
        x = torch.randn(batch, chans, size, size, device=dev)
        classes = next(iter(models.values())).config.num_classes
        y = torch.randint(0, classes, (batch,), device=dev)
        times = {(s, mode): [] for s in specs for mode in ("infer", "train")}
        for s, m in models.items():  # warm-up
            m.eval()
            step_time(m, x, y, False)
            m.train()
            step_time(m, x, y, True, opts[s])
        for _ in range(args.repeats):
            for s, m in models.items():
                m.eval()
                times[(s, "infer")].append(step_time(m, x, y, False))
                m.train()
                times[(s, "train")].append(step_time(m, x, y, True, opts[s]))
        ips = {k: batch / statistics.median(v) for k, v in times.items()}
        base = specs[2]  # HorNet
        lines += [f"## {title}", "", "| model | inference img/s | vs HorNet | training img/s | vs HorNet |",
                  "|---|---:|---:|---:|---:|"]
        for s in specs:
            lines.append(f"| {s} | {ips[(s, 'infer')]:.1f} | {ips[(s, 'infer')] / ips[(base, 'infer')]:.2f}x | "
                         f"{ips[(s, 'train')]:.1f} | {ips[(s, 'train')] / ips[(base, 'train')]:.2f}x |")
        lines.append("")
        print("\n".join(lines[-len(specs) - 4:]), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
