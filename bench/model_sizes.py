"""Parameters and MACs at 224x224, 1000 classes, counted with chipfit's own profile, against the published figures
(HorNet, ConvNeXt papers) and the figures QuadraNet's structure implies (shared/reference/quadranet.md).

Writes bench/results/model_sizes.md. Usage: .venv/bin/python bench/model_sizes.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

import chipfit

REFERENCE = {  # name: (params M, MACs G, source)
    "hornet_t": (22, 4.0, "HorNet paper"), "hornet_s": (50, 8.8, "HorNet paper"),
    "hornet_b": (87, 15.6, "HorNet paper"),
    "convnext_t": (28.6, 4.5, "ConvNeXt paper"), "swin_t": (28, 4.5, "Swin paper (patch merging; ours: conv)"),
    "mobilenetv2_100": (3.5, 0.300, "MobileNetV2 paper"), "shufflenetv2_x1_0": (2.28, 0.146, "ShuffleNetV2 paper"),
    "shufflenetv2_x0_5": (1.37, 0.041, "ShuffleNetV2 paper"),
    "quadranet36_xxs": (1.85, 0.32, "structure"), "quadranet36_xs": (6.39, 1.12, "structure"),
    "quadranet36_t": (23.6, 4.13, "structure"), "quadranet36_s": (51.6, 9.03, "structure"),
    "quadranet36_b": (90.5, 15.8, "structure"), "quadranet25_t": (16.3, 2.90, "structure"),
    "quadranet25_s": (35.5, 6.34, "structure"), "quadranet25_b": (62.1, 11.1, "structure"),
}


def main() -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    lines = ["# Model sizes at 224x224, 1000 classes (chipfit profile)", "",
             "| model | params (M) | reference | diff | MACs (G) | reference | diff | source |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for name, (p_ref, m_ref, src) in REFERENCE.items():
        t = chipfit.profile(name).total
        p, m = t.params / 1e6, t.macs / 1e9
        lines.append(f"| {name} | {p:.2f} | {p_ref} | {100 * (p / p_ref - 1):+.1f}% | {m:.3f} | {m_ref} | "
                     f"{100 * (m / m_ref - 1):+.1f}% | {src} |")
        print(lines[-1], flush=True)
    out = Path(__file__).parent / "results" / "model_sizes.md"
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
