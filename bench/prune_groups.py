"""Channel dependency groups on every small network of the zoo: how many groups the traced graph gives, how many
channels are prunable and how many stay frozen, and what 30/50/70% channel pruning leaves (parameters, MACs,
modelled latency on edge-npu at int8 with fused layers), cutting every group or only the hidden ones (residual
streams whole). No training: shapes only.

Usage: .venv/bin/python bench/prune_groups.py   (writes bench/results/prune_groups.md and .json)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn as nn

import chipfit
from chipfit.compress.fold import fold_bn
from chipfit.compress.prune import channel_groups, prune_channels
from chipfit.hw.sim import simulate
from chipfit.models import create_model

RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results"
NETS = ("quadranet_s28", "convnext_s28", "hornet_s28", "swin_s28", "mobilenetv2_s28", "shufflenetv2_s28")
X = torch.zeros(1, 1, 28, 28)


def _channels(model: nn.Module) -> int:
    """Output channels of every conv/linear-like layer (what could be pruned at most)."""
    return sum(getattr(m, "out_channels", 0) or getattr(m, "out_features", 0) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear)) or hasattr(m, "weight_a"))


def main() -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    torch.set_num_threads(2)
    rows = []
    for name in NETS:
        net = fold_bn(create_model(name, num_classes=10, in_chans=1).eval())
        t = time.perf_counter()
        groups = channel_groups(net, X)
        seconds = time.perf_counter() - t
        streams = [g for g in groups if g.is_stream]
        row = {"net": name, "groups": len(groups), "stream_groups": len(streams),
               "prunable": sum(len(g) for g in groups), "stream_channels": sum(len(g) for g in streams),
               "channels": _channels(net), "trace_s": seconds, "cuts": {}, "hidden_cuts": {}}
        for key, which in (("cuts", "all"), ("hidden_cuts", "hidden")):
            for amount in (0.0, 0.3, 0.5, 0.7):
                m = fold_bn(create_model(name, num_classes=10, in_chans=1).eval())
                if amount:
                    prune_channels(m, amount, X, groups=which)
                p = chipfit.profile(m, input_shape=tuple(X.shape)).total
                sim = simulate(m, "edge-npu", precision="int8", input_shape=tuple(X.shape), fused=True).total
                row[key][str(amount)] = {"params": p.params, "macs": p.macs, "latency_s": sim["time_s"]}
        rows.append(row)
        print(name, row["groups"], row["prunable"], flush=True)
    (RESULTS / "prune_groups.json").write_text(json.dumps(rows, indent=2))
    lines = ["# Channel dependency groups", "",
             "Written by `bench/prune_groups.py`. Each network BN-folded, traced once on a 1x1x28x28 input. "
             "'stream' groups are written by several layers (a residual stream: every block adds into it); 'prunable' "
             "counts channels in any group, of all conv/linear output channels (the rest are frozen: the logits, and "
             "channels behind splits or shuffles). Latency: `chipfit simulate --hw edge-npu --precision int8` (fused). "
             "'all' cuts every group by the fraction, 'hidden' (`--prune-groups hidden`) leaves the streams whole.", "",
             "| network | cut | groups (streams) | prunable (in streams) / all channels | trace | params kept at "
             "30/50/70% | MACs kept at 30/50/70% | modelled latency float -> 30/50/70% |",
             "|---|---|---:|---:|---:|---|---|---|"]
    amounts = ("0.3", "0.5", "0.7")
    for r in rows:
        for key, which in (("cuts", "all"), ("hidden_cuts", "hidden")):
            c = r[key]
            params = " / ".join(f"{c[a]['params'] / c['0.0']['params']:.0%}" for a in amounts)
            macs = " / ".join(f"{c[a]['macs'] / c['0.0']['macs']:.0%}" for a in amounts)
            lat = " / ".join(f"{c[a]['latency_s'] * 1e3:.3f}" for a in amounts)
            lines.append(f"| {r['net']} | {which} | {r['groups']} ({r['stream_groups']}) | {r['prunable']:,} "
                         f"({r['stream_channels']:,}) / {r['channels']:,} | {r['trace_s']:.2f} s | {params} | {macs} "
                         f"| {c['0.0']['latency_s'] * 1e3:.3f} -> {lat} ms |")
    (RESULTS / "prune_groups.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS / 'prune_groups.md'}")


if __name__ == "__main__":
    main()
