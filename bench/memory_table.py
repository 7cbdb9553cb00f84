"""QuadraNet's memory table (Table II), measured: 24 blocks, batch 64, 64 and 128 channels.

For SkipBlock, ConvBlock, SwinBlock, HorBlock, QuadraBlock (plain autograd) and QuadraBlock (memory-efficient):
- the bytes autograd saves for backward, exactly (torch.autograd.graph.saved_tensors_hooks; each storage counted
  once, parameters excluded);
- the process's peak resident memory during forward + backward, above what it held before (each configuration in a
  fresh subprocess, read from getrusage's ru_maxrss).
Spatial size 14x14 (the size of a 224-input network's third stage) fits this 24 GiB machine; HorBlock uses gnConv
order 3, SwinBlock window 7 with heads = channels / 32.

Writes bench/results/memory_table.md. Usage: .venv/bin/python bench/memory_table.py [--size 14] [--batch 64]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

BLOCKS = [("SkipBlock", "skip", {}), ("ConvBlock", "conv", {}), ("SwinBlock", "swin", {}),
          ("HorBlock", "hor", {"order": 3}), ("QuadraBlock (plain autograd)", "quadra", {"memory_efficient": False}),
          ("QuadraBlock (memory-efficient)", "quadra", {"memory_efficient": True})]

CHILD = r"""
import json, resource, sys, torch
from chipfit.models.blocks import MetaBlock
from chipfit.models.config import BlockConfig
torch.manual_seed(0)
kind, opts, dim, size, batch, depth = json.loads(sys.argv[1])
net = torch.nn.Sequential(*[MetaBlock(dim, BlockConfig(kind, **opts), shift=(i % 2 == 1)) for i in range(depth)])
x = torch.randn(batch, dim, size, size)
params = {p.untyped_storage().data_ptr() for p in net.parameters()}
seen, saved = set(), 0
def pack(t):
    global saved
    s = t.untyped_storage()
    key = s.data_ptr()
    if key not in seen and key not in params:
        seen.add(key)
        saved += s.nbytes()
    return t
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()
before = rss()
with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
    out = net(x)
out.sum().backward()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
print(json.dumps({"saved": saved, "peak": peak}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=14)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--depth", type=int, default=24)
    args = ap.parse_args()
    rows = {}
    for dim in (64, 128):
        for label, kind, opts in BLOCKS:
            res = subprocess.run([sys.executable, "-c", CHILD, json.dumps([kind, opts, dim, args.size, args.batch,
                                                                          args.depth])],
                                 capture_output=True, text=True, check=True)
            rows[(label, dim)] = json.loads(res.stdout.strip().splitlines()[-1])
            print(label, dim, rows[(label, dim)], flush=True)
    gib = 2**30
    lines = ["# Memory of 24 stacked blocks, training (forward + backward)", "",
             f"Batch {args.batch}, {args.depth} blocks, {args.size}x{args.size} maps, fp32, CPU. 'saved' = bytes "
             "autograd keeps for backward (each storage once, parameters excluded); 'peak' = the process's peak "
             "resident memory above its level before the forward pass.", "",
             "| block | saved, 64 ch (GiB) | peak, 64 ch (GiB) | saved, 128 ch (GiB) | peak, 128 ch (GiB) | "
             "saved vs HorBlock (128 ch) | saved vs SwinBlock (128 ch) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    hor, swin = rows[("HorBlock", 128)]["saved"], rows[("SwinBlock", 128)]["saved"]
    for label, _, _ in BLOCKS:
        a, b = rows[(label, 64)], rows[(label, 128)]
        lines.append(f"| {label} | {a['saved'] / gib:.2f} | {a['peak'] / gib:.2f} | {b['saved'] / gib:.2f} | "
                     f"{b['peak'] / gib:.2f} | {100 * (b['saved'] / hor - 1):+.0f}% | "
                     f"{100 * (b['saved'] / swin - 1):+.0f}% |")
    out = Path(__file__).parent / "results" / "memory_table.md"
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
