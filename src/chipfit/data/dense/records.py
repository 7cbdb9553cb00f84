"""Detection and segmentation data in memory: uint8 images and masks, per-image boxes, batches augmented on the fly.

Boxes are ``xyxy`` float32 in pixel-edge coordinates (see :mod:`chipfit.data.dense.transforms`); labels count the
foreground classes from 0, while mask value ``i + 1`` is ``classes[i]`` (0 = background, 255 = ignore).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from chipfit.data.datasets import ImageSplits
from chipfit.data.dense.transforms import IGNORE, Sample, augment

TASKS = ("detect", "segment", "both")


@dataclass
class DenseSplit:
    """Images of one size with their masks and boxes.

    Attributes:
        images: uint8 (N, C, H, W).
        masks: uint8 (N, H, W), class index per pixel (0 background, 255 ignore); None when the data has no masks.
        boxes: per image, float32 (k, 4) xyxy in pixels, inside the image.
        labels: per image, int64 (k,) in 0..num_classes-1.
        names: where each image came from (a file path, or "fmnist-scenes train 17"), for messages and plots.
    """

    images: torch.Tensor
    masks: torch.Tensor | None
    boxes: list[torch.Tensor]
    labels: list[torch.Tensor]
    names: list[str]

    def __post_init__(self) -> None:
        n = int(self.images.shape[0])
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(f"DenseSplit: images must be uint8 (N, C, H, W), got {self.images.dtype} "
                             f"{tuple(self.images.shape)}")
        if self.masks is not None and (self.masks.dtype != torch.uint8 or tuple(self.masks.shape) != (
                n, *self.images.shape[2:])):
            raise ValueError(f"DenseSplit: masks must be uint8 (N, H, W) = {(n, *self.images.shape[2:])}, got "
                             f"{self.masks.dtype} {tuple(self.masks.shape)}")
        if not len(self.boxes) == len(self.labels) == len(self.names) == n:
            raise ValueError(f"DenseSplit: {n} images but {len(self.boxes)} box sets, {len(self.labels)} label sets "
                             f"and {len(self.names)} names")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def sample(self, i: int) -> Sample:
        """Image ``i`` and its targets."""
        return Sample(self.images[i], None if self.masks is None else self.masks[i], self.boxes[i], self.labels[i])

    def subset(self, index: torch.Tensor | list[int]) -> DenseSplit:
        """The images at ``index``, in that order."""
        idx = torch.as_tensor(index, dtype=torch.int64)
        ids = idx.tolist()
        return DenseSplit(self.images[idx], None if self.masks is None else self.masks[idx],
                          [self.boxes[i] for i in ids], [self.labels[i] for i in ids], [self.names[i] for i in ids])

    def check(self, num_classes: int) -> None:
        """Raise ValueError naming the image if a box leaves the image or is empty, or a label or mask value is out
        of range (what every loader guarantees; for data built by hand)."""
        h, w = self.images.shape[2:]
        for name, b, lab in zip(self.names, self.boxes, self.labels, strict=True):
            if b.dtype != torch.float32 or b.ndim != 2 or b.shape[1] != 4 or lab.dtype != torch.int64 or \
                    lab.shape != (b.shape[0],):
                raise ValueError(f"{name}: boxes must be float32 (k, 4) and labels int64 (k,), got {b.dtype} "
                                 f"{tuple(b.shape)} and {lab.dtype} {tuple(lab.shape)}")
            if b.numel() and not ((b[:, 0] >= 0).all() and (b[:, 1] >= 0).all() and (b[:, 2] <= w).all()
                                  and (b[:, 3] <= h).all() and (b[:, 2] > b[:, 0]).all() and (b[:, 3] > b[:, 1]).all()):
                raise ValueError(f"{name}: a box is empty or leaves the {w}x{h} image: {b.tolist()}")
            if lab.numel() and not (int(lab.min()) >= 0 and int(lab.max()) < num_classes):
                raise ValueError(f"{name}: label outside 0..{num_classes - 1}: {lab.tolist()}")
        if self.masks is not None:
            bad = (self.masks > num_classes) & (self.masks != IGNORE)
            if bad.any():
                i = int(bad.flatten(1).any(1).nonzero()[0])
                raise ValueError(f"{self.names[i]}: mask value {int(self.masks[i][bad[i]].max())} but only "
                                 f"{num_classes} classes")


@dataclass
class DenseBundle(ImageSplits):
    """Train/validation/test splits for detection and/or segmentation.

    Attributes:
        name: the data's name (``fmnist-scenes``, ``trees``, ``nuclei``) or the folder's path.
        task: ``detect``, ``segment`` or ``both``: which targets are meant to be learnt. Masks are None for a
            ``detect`` bundle; boxes are always there, except that image + mask folders loaded for ``segment`` skip
            finding them (empty box lists).
        classes: foreground class names; label ``i`` and mask value ``i + 1`` are ``classes[i]``.
        train, val, test: the splits (test only for the final figure).
        mean, std: per-channel normalisation (from the training split).
        augment: flip/scale/shift training batches.
        flip: mirror half of the training images left to right.
        scale: range of the random zoom (then cropped or padded back to the image size); None for no zoom.
        shift: extra random translation, in pixels, of the window after zooming (a random crop with padding).
        fill_mask: mask value of the padding that a zoom-out adds (255 ignore; 0 where padding is background).
        min_visible, min_side: a box cut by the window is dropped below this fraction of its area or this side.
    """

    name: str
    task: str
    classes: list[str]
    train: DenseSplit
    val: DenseSplit
    test: DenseSplit
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    augment: bool = True
    flip: bool = True
    scale: tuple[float, float] | None = (0.75, 1.25)
    shift: int = 0
    fill_mask: int = IGNORE
    min_visible: float = 0.3
    min_side: float = 2.0

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")

    @property
    def num_classes(self) -> int:
        """Foreground classes (a segmentation head needs ``num_classes + 1`` outputs with background)."""
        return len(self.classes)

    def batches(self, split: str, batch_size: int, *, train: bool = False, generator: torch.Generator | None = None,
                rank: int = 0, world: int = 1, start: int = 0) -> Iterator[tuple[torch.Tensor, dict]]:
        """Batches of (normalised images (B, C, H, W), targets).

        ``targets`` holds ``masks`` (int64 (B, H, W), or None when the data has none), ``boxes`` (list of float32
        (k, 4)) and ``labels`` (list of int64 (k,)).

        Args:
            split: train, val or test.
            batch_size: images per batch and per process.
            train: shuffle, drop the last partial batch, and augment (``generator`` makes all of it reproducible).
            rank, world: this process's share when several processes train together.
            start: skip this many batches (resuming inside an epoch).
        """
        data: DenseSplit = getattr(self, split)
        n = len(data)
        order = torch.randperm(n, generator=generator) if train else torch.arange(n)
        per_rank = n // world if train else -(-n // world)
        order = order[rank * per_rank:(rank + 1) * per_rank] if train else order[rank::world]
        nb = len(order) // batch_size if train else -(-len(order) // batch_size)
        for b in range(nb):
            idx = order[b * batch_size:(b + 1) * batch_size]
            aug_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator)) if train else 0
            if b < start:
                continue
            ids = idx.tolist()
            if train and self.augment:
                g = torch.Generator().manual_seed(aug_seed)
                samples = [augment(data.sample(i), g, flip=self.flip, scale=self.scale, shift=self.shift,
                                   fill_mask=self.fill_mask, min_visible=self.min_visible, min_side=self.min_side)
                           for i in ids]
                x = torch.stack([s.image for s in samples])
                masks = None if data.masks is None else torch.stack([s.mask for s in samples]).long()
                boxes, labels = [s.boxes for s in samples], [s.labels for s in samples]
            else:
                x = data.images[idx]
                masks = None if data.masks is None else data.masks[idx].long()
                boxes, labels = [data.boxes[i] for i in ids], [data.labels[i] for i in ids]
            yield self.normalise(x), {"masks": masks, "boxes": boxes, "labels": labels}


def carve(split: DenseSplit, val_fraction: float, seed: int) -> tuple[DenseSplit, DenseSplit]:
    """Deterministic train/validation split by image (the same seed gives the same split on any machine)."""
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must lie in [0, 1), got {val_fraction}")
    perm = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))
    n_val = int(round(len(split) * val_fraction))
    return split.subset(perm[n_val:].sort().values), split.subset(perm[:n_val].sort().values)


def stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of uint8 images on the 0..1 scale (in chunks: no float copy of all)."""
    c = images.shape[1]
    total, sq = torch.zeros(c, dtype=torch.float64), torch.zeros(c, dtype=torch.float64)
    for chunk in images.split(512):
        x = chunk.double().div_(255)
        total += x.sum(dim=(0, 2, 3))
        sq += x.square_().sum(dim=(0, 2, 3))
    count = max(images.numel() // max(c, 1), 1)
    mean = total / count
    var = (sq / count - mean.square()).clamp_min(0) * count / max(count - 1, 1)
    return mean.tolist(), var.sqrt().clamp_min(1e-3).tolist()
