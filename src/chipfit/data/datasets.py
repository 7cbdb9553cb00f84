"""Image classification data: Fashion-MNIST (Debian package) and the user's class-per-folder trees.

Everything lives in memory as uint8 tensors (N, C, H, W); batches are normalised and augmented on the fly
with vectorised tensor ops (random crop with padding, horizontal flip), which is fast on a small CPU.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from chipfit.data.idx import IdxError, read_idx

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


@dataclass
class Split:
    """Images (uint8, N x C x H x W) and integer labels."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])


class ImageSplits:
    """What every bundle of image splits derives from its training images and statistics (classification here,
    detection and segmentation in :mod:`chipfit.data.dense`): channels, size, one input's shape, normalisation."""

    @property
    def in_chans(self) -> int:
        return int(self.train.images.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.train.images.shape[2]), int(self.train.images.shape[3])

    def input_shape(self, batch: int = 1) -> tuple[int, int, int, int]:
        return (batch, self.in_chans, *self.image_size)

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float().div_(255)
        mean = torch.tensor(self.mean).view(1, -1, 1, 1)
        std = torch.tensor(self.std).view(1, -1, 1, 1)
        return (x - mean) / std


@dataclass
class DataBundle(ImageSplits):
    """Train/validation/test splits with what a model needs to know about them.

    Attributes:
        name: ``fashion-mnist`` or the folder's path.
        classes: class names, index = label.
        train, val, test: the splits (val is carved from train, deterministically; test only for the final figure).
        mean, std: per-channel normalisation (from the training split).
        augment: random crop with ``pad`` pixels and horizontal flips for training batches.
    """

    name: str
    classes: list[str]
    train: Split
    val: Split
    test: Split
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    augment: bool = True
    pad: int = 2
    flip: bool = True

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def batches(self, split: str, batch_size: int, *, train: bool = False, generator: torch.Generator | None = None,
                rank: int = 0, world: int = 1, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches of (normalised images, labels).

        Args:
            split: train, val or test.
            batch_size: images per batch and per process.
            train: shuffle and augment (needs ``generator``, which makes the order reproducible).
            rank, world: this process's share when several processes train together.
            start: skip this many batches (resuming inside an epoch).
        """
        data: Split = getattr(self, split)
        n = len(data)
        order = torch.randperm(n, generator=generator) if train else torch.arange(n)
        per_rank = n // world if train else -(-n // world)
        order = order[rank * per_rank:(rank + 1) * per_rank] if train else order[rank::world]
        nb = -(-len(order) // batch_size) if not train else len(order) // batch_size
        for b in range(nb):
            idx = order[b * batch_size:(b + 1) * batch_size]
            aug_seed = torch.randint(0, 2**31 - 1, (1,), generator=generator).item() if train else 0
            if b < start:
                continue
            x = data.images[idx]
            if train and self.augment:
                x = _augment(x, self.pad, self.flip, torch.Generator().manual_seed(aug_seed))
            yield self.normalise(x), data.labels[idx]


def _augment(x: torch.Tensor, pad: int, flip: bool, g: torch.Generator) -> torch.Tensor:
    """Random crop after zero padding, and a horizontal flip for half the images: one gather, no loop."""
    n, c, h, w = x.shape
    if pad:
        xp = torch.nn.functional.pad(x, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (n,), generator=g)
        dx = torch.randint(0, 2 * pad + 1, (n,), generator=g)
        rows = (dy[:, None] + torch.arange(h)[None, :])  # n x h
        cols = (dx[:, None] + torch.arange(w)[None, :])  # n x w
        xp = xp.gather(2, rows[:, None, :, None].expand(n, c, h, w + 2 * pad))
        x = xp.gather(3, cols[:, None, None, :].expand(n, c, h, w))
    if flip:
        mask = torch.rand(n, generator=g) < 0.5
        x = torch.where(mask[:, None, None, None], x.flip(3), x)
    return x


def _split(images: torch.Tensor, labels: torch.Tensor, val_fraction: float, seed: int) -> tuple[Split, Split]:
    """Deterministic train/validation split (the same seed gives the same split on any machine)."""
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must lie in [0, 1), got {val_fraction}")
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(labels), generator=g)
    n_val = int(round(len(labels) * val_fraction))
    val, train = perm[:n_val], perm[n_val:]
    return Split(images[train], labels[train]), Split(images[val], labels[val])


def _stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    x = images.float().div(255)
    return x.mean(dim=(0, 2, 3)).tolist(), x.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist()


def fashion_mnist_dir() -> Path:
    """Where the Fashion-MNIST idx files are: $CHIPFIT_DATA (the files themselves, or a fashion-mnist folder in it),
    else the Debian package's folder; a clear error naming both if neither has them."""
    env = os.environ.get("CHIPFIT_DATA")
    candidates = []
    if env:
        candidates += [Path(env), Path(env) / "fashion-mnist"]
    candidates.append(FASHION_DIR)
    for c in candidates:
        if all((c / f).is_file() for f in FASHION_FILES.values()):
            return c
    where = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(
        f"Fashion-MNIST not found (looked in {where}). Install the Debian package as root: "
        f"`apt-get update && apt-get install dataset-fashion-mnist` (files land in {FASHION_DIR}), or put "
        f"{', '.join(FASHION_FILES.values())} in a folder and set CHIPFIT_DATA to it."
    )


def load_fashion_mnist(val_fraction: float = 0.1, seed: int = 0, root: str | Path | None = None) -> DataBundle:
    """Fashion-MNIST: 60k training images (split into train/val), 10k test images, 28x28 grey, 10 classes."""
    root = Path(root) if root else fashion_mnist_dir()
    arrays = {k: read_idx(root / f, expect_ndim=3 if "images" in k else 1) for k, f in FASHION_FILES.items()}
    for k, a in arrays.items():
        file = root / FASHION_FILES[k]
        if a.dtype != np.uint8:
            raise IdxError(f"{file}: holds {a.dtype.name} data; Fashion-MNIST's {k.replace('_', ' ')} are unsigned "
                           "bytes (type code 0x08)")
        if a.size == 0:
            raise IdxError(f"{file}: holds no data (its header says {' x '.join(map(str, a.shape))})")
    for part in ("train", "test"):
        ni, nl = len(arrays[f"{part}_images"]), len(arrays[f"{part}_labels"])
        if ni != nl:
            raise IdxError(f"{root}: {ni} {part} images but {nl} labels ({FASHION_FILES[f'{part}_images']}, "
                           f"{FASHION_FILES[f'{part}_labels']})")
        labels = arrays[f"{part}_labels"]
        if int(labels.max()) >= len(FASHION_CLASSES):
            raise IdxError(f"{root / FASHION_FILES[f'{part}_labels']}: label {int(labels.max())} outside 0..9")
    tr_x = torch.from_numpy(arrays["train_images"].copy()).unsqueeze(1)
    tr_y = torch.from_numpy(arrays["train_labels"].astype(np.int64))
    te_x = torch.from_numpy(arrays["test_images"].copy()).unsqueeze(1)
    te_y = torch.from_numpy(arrays["test_labels"].astype(np.int64))
    train, val = _split(tr_x, tr_y, val_fraction, seed)
    mean, std = _stats(train.images)
    # horizontal flips are fine for clothes (a shirt mirrored is a shirt)
    return DataBundle("fashion-mnist", list(FASHION_CLASSES), train, val, Split(te_x, te_y), mean, std)


def load_folder(root: str | Path, val_fraction: float = 0.1, seed: int = 0, image_size: int | None = None,
                grey: bool | None = None) -> DataBundle:
    """A class-per-folder tree: ``root/train/<class>/*.png`` (+ optional ``root/val``, ``root/test``).

    Without ``val``, the validation split is carved from ``train``; without ``test``, ``val`` doubles as test.
    Images are resized to ``image_size`` (default: the first image's size) and kept grey if all are grey.
    """
    from PIL import Image

    root = Path(root)
    train_dir = root / "train"
    if not train_dir.is_dir():
        raise FileNotFoundError(f"{root}: expected a class-per-folder tree with {train_dir}/<class>/<image files>")
    classes = sorted(p.name for p in train_dir.iterdir() if p.is_dir())
    if len(classes) < 2:
        raise ValueError(f"{train_dir}: found {len(classes)} class folder(s); need at least 2")

    def read(split_dir: Path) -> Split | None:
        if not split_dir.is_dir():
            return None
        xs, ys = [], []
        for label, cls in enumerate(classes):
            for f in sorted((split_dir / cls).glob("*")) if (split_dir / cls).is_dir() else []:
                if f.suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                try:
                    img = Image.open(f)
                    img.load()
                except Exception as e:
                    raise ValueError(f"{f}: not a readable image ({e})") from None
                xs.append(img)
                ys.append(label)
        if not xs:
            raise ValueError(f"{split_dir}: no images in the class folders {classes}")
        return Split(*_to_tensor(xs, ys))

    def _to_tensor(imgs, labels):
        nonlocal image_size, grey
        if grey is None:
            grey = all(i.mode in ("L", "1", "I;16", "I") for i in imgs)
        size = image_size or imgs[0].size[0]
        arr = np.stack([np.asarray(i.convert("L" if grey else "RGB").resize((size, size))) for i in imgs])
        arr = arr[:, None] if grey else arr.transpose(0, 3, 1, 2)
        return torch.from_numpy(np.ascontiguousarray(arr)), torch.tensor(labels, dtype=torch.int64)

    full_train = read(train_dir)
    val = read(root / "val")
    if val is None:
        train, val = _split(full_train.images, full_train.labels, val_fraction, seed)
    else:
        train = full_train
    test = read(root / "test") or val
    mean, std = _stats(train.images)
    return DataBundle(str(root), classes, train, val, test, mean, std, flip=False)


def load_data(spec: str | Path, val_fraction: float = 0.1, seed: int = 0) -> DataBundle:
    """``fashion-mnist`` or a path to a class-per-folder tree."""
    if str(spec).lower() in ("fashion-mnist", "fashion_mnist", "fmnist"):
        return load_fashion_mnist(val_fraction, seed)
    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(f"data {spec!r}: neither 'fashion-mnist' nor an existing folder")
    return load_folder(path, val_fraction, seed)
