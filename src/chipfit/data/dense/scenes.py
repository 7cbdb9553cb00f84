"""Fashion-MNIST scenes: a few clothing articles pasted on a black canvas, for detection and segmentation.

Each scene holds 1..``max_objects`` articles (uniformly), each scaled to a random square side in
``min_side..max_side`` pixels and placed wholly inside the canvas at a random position. An article's pixels are the
ones brighter than ``threshold`` after scaling; only those are pasted, so the image's lit pixels and the mask agree
exactly. Articles are pasted in order and later ones cover earlier ones: a covered article's box is recomputed from
its still-visible pixels, and an article with less than ``min_visible`` of its pixels left (or a box side under 2 px)
loses its box; its visible pixels keep their class in the mask. Mask value = Fashion-MNIST class + 1.

Which articles go where: test scenes use only the 10k Fashion-MNIST test images. The 60k training images are
partitioned (seeded) into a validation pool (``val_fraction`` of them) and a training pool; validation scenes
(``round(n_train * val_fraction)`` of the ``n_train``) use only the first, training scenes only the second, so no
article appears in two splits.

Generation is vectorised numpy (articles resized per size group by one matrix product each, pasted per object slot
and size with fancy indexing), and integer-exact: the resize weights are integers and the products stay below 2**53,
so the same options and seed give the same bytes on any machine (with NumPy's ``Generator`` streams, which NumPy
has kept stable since 1.17 without promising it across versions). Results are cached as an .npz in
``$CHIPFIT_CACHE/scenes`` (else ``~/.cache/chipfit/scenes``), named by a hash of every option.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from chipfit.data.datasets import FASHION_CLASSES, FASHION_FILES, fashion_mnist_dir
from chipfit.data.dense._io import cache_dir, save_npz_atomic
from chipfit.data.dense.records import TASKS, DenseBundle, DenseSplit, stats
from chipfit.data.idx import read_idx

SCENES_VERSION = 1  # bump when the generator changes what a given seed produces: old cache files stop matching
_ONE = 1 << 12  # resize weights are multiples of 1/4096
OBJECT_COLUMNS = ("scene", "slot", "source", "class", "x", "y", "side", "kept")


def resize_articles(articles: np.ndarray, side: int) -> np.ndarray:
    """Resize uint8 (m, h, w) images to (m, side, side): separable triangle filter (bilinear, antialiased when
    shrinking, edges mapped to edges), integer weights, exact integer arithmetic."""
    a = _weights(articles.shape[1], side)
    b = _weights(articles.shape[2], side)
    tmp = articles.astype(np.float64) @ b.T.astype(np.float64)  # (m, h, side), integers < 2**20
    out = a.astype(np.float64) @ tmp  # (m, side, side), integers < 2**32: exact in float64 whatever the BLAS
    return ((out.astype(np.int64) + (1 << 23)) >> 24).astype(np.uint8)


def _weights(n_in: int, n_out: int) -> np.ndarray:
    scale = n_in / n_out
    support = max(scale, 1.0)
    centre = (np.arange(n_out) + 0.5) * scale
    w = np.clip(1.0 - np.abs((np.arange(n_in)[None, :] + 0.5 - centre[:, None]) / support), 0.0, None)
    w /= w.sum(axis=1, keepdims=True)
    q = np.rint(w * _ONE).astype(np.int64)
    q[np.arange(n_out), w.argmax(axis=1)] += _ONE - q.sum(axis=1)  # rows sum to exactly 4096
    return q


def make_scenes(images: np.ndarray, labels: np.ndarray, n: int, *, pool: np.ndarray | None = None,
                seed: int | Sequence[int] = 0, canvas: int | tuple[int, int] = 96, max_objects: int = 4,
                min_side: int = 16, max_side: int = 48, threshold: int = 16, min_visible: float = 0.4,
                chunk: int = 2048) -> dict[str, np.ndarray]:
    """``n`` scenes of articles drawn from ``images[pool]`` (uint8 (P, h, w), with class ``labels``).

    Returns:
        ``images`` uint8 (n, 1, H, W); ``masks`` uint8 (n, H, W); ``boxes`` float32 (M, 4) and ``labels`` int64
        (M,) of the kept articles, scene by scene in paste order, ``counts`` int64 (n,) of them per scene; and
        ``objects`` int64 (T, 8), one row per pasted article with the columns :data:`OBJECT_COLUMNS`
        (``source`` indexes ``images``; ``kept`` is 1 when the article has a box).
    """
    hgt, wid = (canvas, canvas) if isinstance(canvas, int) else canvas
    pool = np.arange(len(images)) if pool is None else np.asarray(pool, np.int64)
    _check_options(n, hgt, wid, max_objects, min_side, max_side, threshold, min_visible)
    if n and not len(pool):
        raise ValueError("make_scenes: the pool of source images is empty")
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    count = rng.integers(1, max_objects + 1, n)
    total = int(count.sum())
    scene = np.repeat(np.arange(n), count)
    slot = np.arange(total) - np.repeat(np.cumsum(count) - count, count)
    src = pool[rng.integers(0, len(pool), total)] if total else np.zeros(0, np.int64)
    side = rng.integers(min_side, max_side + 1, total)
    x = rng.integers(0, wid - side + 1)
    y = rng.integers(0, hgt - side + 1)
    cls = labels[src].astype(np.int64)

    out_img = np.zeros((n, hgt, wid), np.uint8)
    out_mask = np.zeros((n, hgt, wid), np.uint8)
    inst = np.zeros((n, hgt, wid), np.uint8)  # paste slot + 1 of the article on top
    area = np.zeros(total, np.int64)
    arts: dict[int, np.ndarray] = {}
    row = np.zeros(total, np.int64)  # each object's row in its size group
    for s in np.unique(side).tolist():
        sel = np.nonzero(side == s)[0]
        arts[s] = resize_articles(images[src[sel]], s)
        row[sel] = np.arange(len(sel))
        area[sel] = (arts[s] > threshold).sum(axis=(1, 2))
    ar = np.arange(max(max_side, 1))
    for k in range(max_objects):
        at_k = slot == k
        for s in np.unique(side[at_k]).tolist():
            g = np.nonzero(at_k & (side == s))[0]
            art = arts[s][row[g]]
            fg = art > threshold
            sc = scene[g][:, None, None]
            rr = (y[g][:, None] + ar[:s])[:, :, None]
            cc = (x[g][:, None] + ar[:s])[:, None, :]
            out_img[sc, rr, cc] = np.where(fg, art, out_img[sc, rr, cc])
            out_mask[sc, rr, cc] = np.where(fg, (cls[g] + 1).astype(np.uint8)[:, None, None], out_mask[sc, rr, cc])
            inst[sc, rr, cc] = np.where(fg, np.uint8(k + 1), inst[sc, rr, cc])

    first = np.cumsum(count) - count  # object index of slot 0 of each scene
    visible = np.zeros(total, np.int64)
    boxes = np.zeros((total, 4), np.float32)
    for lo in range(0, n, chunk):
        hi = min(lo + chunk, n)
        for k in range(max_objects):
            here = np.nonzero(count[lo:hi] > k)[0]
            if not len(here):
                continue
            m = inst[lo + here] == k + 1
            rows, cols = m.any(axis=2), m.any(axis=1)
            obj = first[lo + here] + k
            visible[obj] = m.sum(axis=(1, 2))
            boxes[obj] = np.stack([cols.argmax(1), rows.argmax(1), wid - cols[:, ::-1].argmax(1),
                                   hgt - rows[:, ::-1].argmax(1)], axis=1)
    bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    kept = (area > 0) & (visible > 0) & (visible >= min_visible * area) & (bw >= 2) & (bh >= 2)
    objects = np.stack([scene, slot, src, cls, x, y, side, kept.astype(np.int64)], axis=1).astype(np.int64)
    return {"images": out_img[:, None], "masks": out_mask, "boxes": boxes[kept], "labels": cls[kept],
            "counts": np.bincount(scene[kept], minlength=n).astype(np.int64), "objects": objects.reshape(-1, 8)}


def _check_options(n: int, hgt: int, wid: int, max_objects: int, min_side: int, max_side: int, threshold: int,
                   min_visible: float) -> None:
    if n < 0:
        raise ValueError(f"fmnist-scenes: the number of scenes must be >= 0, got {n}")
    if min(hgt, wid) < 2:
        raise ValueError(f"fmnist-scenes: canvas {hgt}x{wid} is too small")
    if not 1 <= max_objects <= 250:
        raise ValueError(f"fmnist-scenes: max_objects must lie in 1..250, got {max_objects}")
    if not 2 <= min_side <= max_side <= min(hgt, wid):
        raise ValueError(f"fmnist-scenes: need 2 <= min_side ({min_side}) <= max_side ({max_side}) <= the canvas's "
                         f"shorter side ({min(hgt, wid)})")
    if not 0 <= threshold < 255:
        raise ValueError(f"fmnist-scenes: threshold must lie in 0..254, got {threshold}")
    if not 0 <= min_visible <= 1:
        raise ValueError(f"fmnist-scenes: min_visible must lie in [0, 1], got {min_visible}")


def _options(val_fraction: float, seed: int, n_train: int, n_test: int, canvas: int | tuple[int, int],
             max_objects: int, min_side: int, max_side: int, threshold: int, min_visible: float) -> dict:
    hgt, wid = (canvas, canvas) if isinstance(canvas, int) else (int(canvas[0]), int(canvas[1]))
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must lie in [0, 1), got {val_fraction}")
    _check_options(min(n_train, n_test), hgt, wid, max_objects, min_side, max_side, threshold, min_visible)
    return {"version": SCENES_VERSION, "val_fraction": float(val_fraction), "seed": int(seed),
            "n_train": int(n_train), "n_test": int(n_test), "canvas": [hgt, wid], "max_objects": int(max_objects),
            "min_side": int(min_side), "max_side": int(max_side), "threshold": int(threshold),
            "min_visible": float(min_visible)}


def scenes_path(options: dict) -> Path:
    """The cache file of the scenes made with ``options`` (the dict :func:`load_scenes` builds)."""
    key = hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir("scenes") / f"fmnist-scenes-{key}.npz"


def _generate(opts: dict, root: Path | None) -> dict[str, np.ndarray]:
    root = Path(root) if root else fashion_mnist_dir()
    arr = {k: read_idx(root / f, expect_ndim=3 if "images" in k else 1) for k, f in FASHION_FILES.items()}
    n_src = len(arr["train_images"])
    perm = np.random.default_rng(np.random.SeedSequence([opts["seed"], 3])).permutation(n_src)
    n_pool_val = int(round(n_src * opts["val_fraction"]))
    pools = {"train": np.sort(perm[n_pool_val:]), "val": np.sort(perm[:n_pool_val]),
             "test": np.arange(len(arr["test_images"]))}
    n_val = int(round(opts["n_train"] * opts["val_fraction"]))
    sizes = {"train": opts["n_train"] - n_val, "val": n_val, "test": opts["n_test"]}
    kw = {k: opts[k] for k in ("max_objects", "min_side", "max_side", "threshold", "min_visible")}
    out: dict[str, np.ndarray] = {"options": np.frombuffer(json.dumps(opts, sort_keys=True).encode(), np.uint8)}
    for stream, split in enumerate(("train", "val", "test")):
        part = "test" if split == "test" else "train"
        sc = make_scenes(arr[f"{part}_images"], arr[f"{part}_labels"], sizes[split], pool=pools[split],
                         seed=[opts["seed"], stream], canvas=tuple(opts["canvas"]), **kw)
        out.update({f"{split}_{k}": v for k, v in sc.items()})
    return out


def load_scene_arrays(options: dict, *, root: str | Path | None = None, cache: bool = True) -> dict[str, np.ndarray]:
    """The arrays of all three splits (``train_images``, ``val_objects``, ...; see :func:`make_scenes`), read from
    the cache when it holds them, else generated (and cached when ``cache``)."""
    path = scenes_path(options)
    if cache and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files}
            if json.loads(arrays["options"].tobytes()) == json.loads(json.dumps(options, sort_keys=True)):
                return arrays
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            pass  # a damaged or foreign cache file: make the scenes again and replace it
    arrays = _generate(options, Path(root) if root else None)
    if cache:
        save_npz_atomic(path, **arrays)
    return arrays


def load_scenes(task: str = "both", *, val_fraction: float = 0.1, seed: int = 0, n_train: int = 8000,
                n_test: int = 2000, canvas: int | tuple[int, int] = 96, max_objects: int = 4, min_side: int = 16,
                max_side: int = 48, threshold: int = 16, min_visible: float = 0.4, cache: bool = True,
                root: str | Path | None = None) -> DenseBundle:
    """Fashion-MNIST scenes as a bundle (grey, one channel; 10 classes, named as Fashion-MNIST's).

    Args:
        task: detect (masks left out), segment or both.
        val_fraction: share of ``n_train`` scenes (and of the source articles) held out for validation.
        seed: all randomness; the same seed gives the same scenes on any machine.
        n_train, n_test: scenes made for train + validation, and for test.
        canvas: image side, or (height, width).
        max_objects, min_side, max_side: articles per scene (1..max_objects) and their side in pixels.
        threshold: grey level above which an article's pixel is part of it.
        min_visible: an article covered beyond this leaves the boxes.
        cache: read and write the .npz cache.
        root: folder of the Fashion-MNIST idx files (default: :func:`chipfit.data.datasets.fashion_mnist_dir`).
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    opts = _options(val_fraction, seed, n_train, n_test, canvas, max_objects, min_side, max_side, threshold,
                    min_visible)
    arrays = load_scene_arrays(opts, root=root, cache=cache)
    splits = {s: _split(arrays, s, keep_masks=task != "detect") for s in ("train", "val", "test")}
    mean, std = stats(splits["train"].images)
    # the canvas is black: padding added by a zoom-out is background, not unknown
    return DenseBundle("fmnist-scenes", task, list(FASHION_CLASSES), splits["train"], splits["val"], splits["test"],
                       mean, std, fill_mask=0)


def _split(arrays: dict[str, np.ndarray], split: str, keep_masks: bool) -> DenseSplit:
    counts = arrays[f"{split}_counts"].tolist()
    boxes = torch.from_numpy(arrays[f"{split}_boxes"].astype(np.float32)).split(counts)
    labels = torch.from_numpy(arrays[f"{split}_labels"].astype(np.int64)).split(counts)
    images = torch.from_numpy(arrays[f"{split}_images"])
    masks = torch.from_numpy(arrays[f"{split}_masks"]) if keep_masks else None
    return DenseSplit(images, masks, list(boxes), list(labels), [f"fmnist-scenes {split} {i}" for i in
                                                                    range(len(counts))])
