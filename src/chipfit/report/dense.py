"""Pictures of dense predictions (PNG): held-out images with their true and predicted boxes or masks side by side,
and the per-image score spread of a test split."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from chipfit.report.plots import _plt, save


def _palette(n: int) -> np.ndarray:
    """Background black, then one distinct colour per class (tab20, cycled)."""
    import matplotlib

    cmap = matplotlib.colormaps["tab20"]
    return np.array([(0, 0, 0)] + [cmap(i % 20)[:3] for i in range(n)])


def _image(img: Any) -> np.ndarray:
    a = np.asarray(img, dtype=np.float32)
    if a.ndim == 3 and a.shape[0] in (1, 3):
        a = a.transpose(1, 2, 0)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    lo, hi = float(a.min()), float(a.max())
    return (a - lo) / (hi - lo) if hi > lo else a * 0


def _overlay(img: np.ndarray, mask: np.ndarray, palette: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    rgb = np.stack([img] * 3, -1) if img.ndim == 2 else img
    m = np.asarray(mask).astype(np.int64)
    colour = palette[np.clip(m, 0, len(palette) - 1)]
    fg = ((m > 0) & (m != 255))[..., None]
    return np.where(fg, (1 - alpha) * rgb + alpha * colour, rgb)


def predictions_png(images: Sequence[Any], truths: Sequence[dict[str, Any]], preds: Sequence[dict[str, Any]],
                    classes: Sequence[str], path: str | Path, title: str, *, score_threshold: float = 0.3) -> Path:
    """One row per image: the image with its true boxes/mask, then with the predicted ones.

    Args:
        images: (C, H, W) arrays (any scale; each is stretched to its own range).
        truths: per image ``{"boxes": (k, 4), "labels": (k,)}`` and/or ``{"mask": (H, W)}``.
        preds: per image ``{"boxes", "scores", "labels"}`` and/or ``{"mask"}``.
        classes: foreground class names (label i, mask value i + 1).
        score_threshold: predicted boxes drawn from this score.
    """
    plt = _plt()
    n = len(images)
    pal = _palette(len(classes))
    fig, axes = plt.subplots(n, 2, figsize=(6.4, 3.1 * n), squeeze=False)
    for r, (img, t, p) in enumerate(zip(images, truths, preds, strict=True)):
        base = _image(img)
        for c, (what, d) in enumerate((("truth", t), ("prediction", p))):
            ax = axes[r][c]
            shown = _overlay(base, d["mask"], pal) if d.get("mask") is not None else base
            ax.imshow(shown, cmap="gray" if shown.ndim == 2 else None, interpolation="nearest")
            boxes = np.asarray(d.get("boxes", np.zeros((0, 4))), dtype=np.float32).reshape(-1, 4)
            labels = np.asarray(d.get("labels", np.zeros(len(boxes))), dtype=np.int64).reshape(-1)
            scores = d.get("scores")
            scores = np.ones(len(boxes)) if scores is None else np.asarray(scores, dtype=np.float32).reshape(-1)
            for (x1, y1, x2, y2), lab, sc in zip(boxes, labels, scores, strict=True):
                if sc < score_threshold:
                    continue
                colour = pal[1 + int(lab) % len(classes)]
                ax.add_patch(plt.Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, lw=1.4,
                                           edgecolor=colour))
                text = classes[int(lab)] if c == 0 else f"{classes[int(lab)]} {sc:.2f}"
                ax.text(x1, y1 - 1, text, color=colour, fontsize=6, va="bottom")
            ax.set_title(what, fontsize=8)
            ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save(fig, path)


def per_image_png(values: Sequence[float], path: str | Path, title: str, xlabel: str) -> Path:
    """Histogram of one score per test image (per-image IoU, or recall of the boxes at IoU 0.5)."""
    plt = _plt()
    v = np.asarray([x for x in values if x == x], dtype=np.float64)  # NaN: an image with nothing to score
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.hist(v, bins=20, range=(0, 1), color="#1f77b4")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("images")
    ax.set_title(f"{title} (median {np.median(v):.3f}, {len(v)} images)" if len(v) else title, fontsize=9)
    fig.tight_layout()
    return save(fig, path)
