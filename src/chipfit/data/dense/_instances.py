"""Boxes from label maps: the tight box of each instance, and connected components of a class mask (numpy only)."""

from __future__ import annotations

import numpy as np


def instance_boxes(inst: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Tight xyxy boxes (pixel edges) and pixel counts of the instances 1..n of a label map (0 = none).

    Returns:
        float32 (n, 4) boxes (zeros for an instance with no pixels) and int64 (n,) areas.
    """
    ys, xs = np.nonzero(inst)
    ids = inst[ys, xs].astype(np.int64)
    inside = (ids >= 1) & (ids <= n)
    ys, xs, ids = ys[inside], xs[inside], ids[inside]
    big = np.iinfo(np.int64).max
    x1, y1 = np.full(n + 1, big), np.full(n + 1, big)
    x2, y2 = np.full(n + 1, -1), np.full(n + 1, -1)
    np.minimum.at(x1, ids, xs)
    np.minimum.at(y1, ids, ys)
    np.maximum.at(x2, ids, xs)
    np.maximum.at(y2, ids, ys)
    area = np.bincount(ids, minlength=n + 1)[1:]
    boxes = np.stack([x1[1:], y1[1:], x2[1:] + 1, y2[1:] + 1], axis=1)
    boxes[area == 0] = 0
    return boxes.astype(np.float32), area.astype(np.int64)


def connected_components(mask: np.ndarray, ignore: int = 255) -> tuple[np.ndarray, np.ndarray]:
    """8-connected regions of equal class in a class mask (0 = background and ``ignore`` belong to none).

    Min-label propagation with pointer jumping, vectorised over the whole image: a handful of passes for blob-like
    regions, more for long thin spirals.

    Returns:
        int32 (H, W) instance map (0 = none, 1..n) and the class value of each instance, int64 (n,).
    """
    h, w = mask.shape
    fg = (mask != 0) & (mask != ignore)
    if not fg.any():
        return np.zeros((h, w), np.int32), np.zeros(0, np.int64)
    big = h * w
    lab = np.where(fg, np.arange(h * w).reshape(h, w), big)
    cls = np.pad(np.where(fg, mask.astype(np.int64), -1), 1, constant_values=-1)
    centre = cls[1:-1, 1:-1]
    same = [(dy, dx, cls[1 + dy:h + 1 + dy, 1 + dx:w + 1 + dx] == centre) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
            if dy or dx]
    flat_fg = fg.ravel()
    while True:
        padded = np.pad(lab, 1, constant_values=big)
        new = lab.copy()
        for dy, dx, s in same:
            np.minimum(new, np.where(s, padded[1 + dy:h + 1 + dy, 1 + dx:w + 1 + dx], big), out=new)
        flat = new.ravel()
        for _ in range(2):  # every label is the flat index of a pixel of the same region: follow it
            flat[flat_fg] = flat[flat[flat_fg]]
        if np.array_equal(new, lab):
            break
        lab = new
    roots, inv = np.unique(lab[fg], return_inverse=True)
    out = np.zeros((h, w), np.int32)
    out[fg] = inv.astype(np.int32) + 1
    return out, mask.ravel()[roots].astype(np.int64)
