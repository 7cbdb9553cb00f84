"""Reading the user's image and mask files with errors that name the file, and the on-disk cache."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")
MASK_SUFFIXES = (".png", ".tif", ".tiff", ".bmp")
_GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


def cache_dir(*parts: str) -> Path:
    """``$CHIPFIT_CACHE/<parts>``, else ``~/.cache/chipfit/<parts>`` (not created here)."""
    root = os.environ.get("CHIPFIT_CACHE")
    return Path(root).expanduser().joinpath(*parts) if root else Path.home().joinpath(".cache", "chipfit", *parts)


def _open(path: Path, what: str):
    from PIL import Image

    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} not found")
    try:
        img = Image.open(path)
        img.load()
    except Exception as e:  # PIL raises half a dozen types for a bad file; the user needs the name, not the stack
        raise ValueError(f"{path}: not a readable {what} ({type(e).__name__}: {e})") from None
    return img


def to_uint8(a: np.ndarray) -> np.ndarray:
    """Bytes as they are; wider data (16-bit, float) scaled so that the image's maximum becomes 255."""
    if a.dtype == np.uint8:
        return a
    a = a.astype(np.float64)
    lo, hi = min(float(a.min()), 0.0), float(a.max())
    if hi <= 255 and lo >= 0:
        return np.rint(a).astype(np.uint8)
    return np.rint((a - lo) * (255.0 / max(hi - lo, 1e-12))).astype(np.uint8)


def read_image(path: Path) -> np.ndarray:
    """An image file as uint8, (H, W) for grey images or (H, W, 3) for colour ones (alpha dropped)."""
    img = _open(path, "image")
    if img.mode in _GREY_MODES:
        a = np.array(img.convert("L") if img.mode in ("1", "LA") else img)
        return to_uint8(a)
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    return np.array(img.convert("RGB"))


def read_mask(path: Path) -> np.ndarray:
    """A class-index mask (palette PNG: palette index = class; or a grey index image) as uint8 (H, W)."""
    img = _open(path, "mask")
    if img.mode not in ("P", "L", "1", "I", "I;16", "I;16B", "I;16L", "I;16N"):
        raise ValueError(f"{path}: a {img.mode} mask; masks must hold one class index per pixel (a palette PNG, "
                         "or a grey PNG whose value is the class: 0 background, 1..K classes, 255 ignore)")
    a = np.array(img)
    if a.ndim != 2:
        raise ValueError(f"{path}: mask has shape {a.shape}, expected a single-channel image")
    if a.dtype == bool:
        return a.astype(np.uint8)
    if a.size and int(a.max()) > 255:
        raise ValueError(f"{path}: mask value {int(a.max())} exceeds 255; class indices must fit in a byte")
    return a.astype(np.uint8)


def save_npz_atomic(path: Path, **arrays: np.ndarray) -> None:
    """Write a compressed .npz so that a reader never sees half a file (temporary file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
