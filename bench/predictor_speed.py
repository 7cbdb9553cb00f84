"""Whole-network predictions per second of a latency predictor on one core.

    .venv/bin/python bench/predictor_speed.py --predictor DIR

Thirty held-out networks of bench/latency_predictor.py, costed once (``chipfit.cost.count``, timed too); then
predictions from their kernel lists and from their cost profiles, one network a call and thirty a call, median of
five rounds each, interleaved. Figures go to bench/results/predictor_speed.json and .md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from latency_predictor import RESULTS, cpu_flags, held_out  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--predictor", type=Path, required=True)
    args = ap.parse_args()
    import torch

    from chipfit.cost import count
    from chipfit.deploy.kernels import kernels, view_count
    from chipfit.deploy.predictor import Predictor, cpu_name
    from chipfit.models import build_model

    torch.set_num_threads(1)
    pred = Predictor.load(args.predictor)
    nets = held_out(40, 0)[:30]
    t = time.perf_counter()
    profs = [count(build_model(c), (1, c.in_chans, c.input_size, c.input_size)) for _, c in nets]
    count_s = (time.perf_counter() - t) / len(nets)
    kern = [(kernels(p, pred.rules, specs=False), view_count(p)) for p in profs]
    ways = {"kernel lists, one a call": lambda: [pred.predict_kernels(k, v) for k, v in kern],
            "kernel lists, 30 a call": lambda: pred.predict_many_kernels(kern),
            "cost profiles, one a call": lambda: [pred.predict(p) for p in profs],
            "cost profiles, 30 a call": lambda: pred.predict_many(profs)}
    times: dict[str, list[float]] = {k: [] for k in ways}
    for fn in ways.values():
        fn()  # warm-up
    for _ in range(5):
        for name, fn in ways.items():
            t = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t) / len(nets))
    out = {"cpu": cpu_name(), "cpu_flags": cpu_flags(), "predictor": str(args.predictor),
           "kernels_per_network": statistics.mean(len(k) for k, _ in kern), "count_s_per_network": count_s,
           "predictions_per_s": {k: 1 / statistics.median(v) for k, v in times.items()}}
    (RESULTS / "predictor_speed.json").write_text(json.dumps(out, indent=2))
    lines = [f"# Latency predictor speed, one core ({out['cpu']}, {out['cpu_flags']})", "",
             f"{len(nets)} held-out networks, {out['kernels_per_network']:.0f} kernels each; costing one with "
             f"chipfit.cost.count takes {1e3 * count_s:.0f} ms.", "", "| predictions from | networks/s |", "|---|---|"]
    lines += [f"| {k} | {v:.0f} |" for k, v in out["predictions_per_s"].items()]
    (RESULTS / "predictor_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
