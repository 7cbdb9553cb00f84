"""One door to every detection/segmentation data set: a name (``fmnist-scenes``, ``trees``, ``nuclei``) or a path."""

from __future__ import annotations

from pathlib import Path

from chipfit.data.dense.formats import load_dense_folder
from chipfit.data.dense.real import load_nuclei, load_trees
from chipfit.data.dense.records import TASKS, DenseBundle
from chipfit.data.dense.scenes import load_scenes

SCENE_NAMES = ("fmnist-scenes", "fashion-mnist-scenes", "scenes")
SCENE_OPTIONS = ("n_train", "n_test", "canvas", "max_objects", "min_side", "max_side", "threshold", "min_visible",
                 "cache", "root")
REAL_OPTIONS = ("tile", "root", "fetch")


def load_dense(spec: str | Path, task: str = "detect", *, val_fraction: float = 0.1, seed: int = 0,
               image_size: int | tuple[int, int] | None = None, **options) -> DenseBundle:
    """Load detection and/or segmentation data.

    Args:
        spec: ``fmnist-scenes`` (Fashion-MNIST articles pasted on a canvas), ``trees`` (tree crowns, boxes),
            ``nuclei`` (cell nuclei, masks and boxes), or a folder / COCO .json of the user's own data (image + mask
            folders, Pascal VOC or COCO; see :mod:`chipfit.data.dense.formats`).
        task: detect, segment or both.
        val_fraction, seed: the validation split carved from train (not for trees and nuclei, whose splits are
            fixed image regions).
        image_size: images are letterboxed to it (folders), the canvas side (scenes), the tile side (trees, nuclei).
        options: for scenes ``n_train``, ``n_test``, ``canvas``, ``max_objects``, ``min_side``, ``max_side``,
            ``threshold``, ``min_visible``, ``cache``, ``root``; for trees and nuclei ``tile``, ``root``, ``fetch``.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    name = str(spec).lower()
    if name in SCENE_NAMES:
        _only(options, SCENE_OPTIONS, name)
        if image_size is not None:
            options.setdefault("canvas", image_size)
        return load_scenes(task, val_fraction=val_fraction, seed=seed, **options)
    if name in ("trees", "nuclei"):
        _only(options, REAL_OPTIONS, name)
        if image_size is not None:
            if not isinstance(image_size, int):
                raise ValueError(f"{name}: tiles are square; give image_size as one int, got {image_size!r}")
            options.setdefault("tile", image_size)
        return (load_trees if name == "trees" else load_nuclei)(task, **options)
    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(f"data {str(spec)!r}: neither {', '.join(SCENE_NAMES[:1] + ('trees', 'nuclei'))} nor "
                                "an existing folder or .json file")
    _only(options, (), str(path))
    return load_dense_folder(path, task, val_fraction=val_fraction, seed=seed, image_size=image_size)


def _only(options: dict, allowed: tuple[str, ...], what: str) -> None:
    extra = sorted(set(options) - set(allowed))
    if extra:
        raise TypeError(f"{what}: unknown option(s) {', '.join(extra)}; it takes "
                        f"{', '.join(allowed) if allowed else 'none beyond val_fraction, seed and image_size'}")
