"""Geometric transforms that move an image, its mask and its boxes together.

Every function is pure: it takes a :class:`Sample` and returns a new one. Conventions, stated once:

* Boxes are ``xyxy`` in pixel-edge coordinates: pixel (row r, column c) covers ``[c, c + 1) x [r, r + 1)``, so the
  box of a mask region is ``(min col, min row, max col + 1, max row + 1)`` and an image of width W spans ``[0, W]``.
* Resizing maps edges to edges (``align_corners=False``): a box scales by exactly the size ratio, images are
  resampled bilinearly (antialiased when shrinking) and masks with ``nearest-exact``, whose pixel centres land on
  the same grid, so a resized mask's bounding box stays within half a pixel of the resized box.
* Cropping is exact (integer offsets). A window may reach past the image: that part is padded with 0 in the image and
  ``fill_mask`` in the mask (255 = ignore, or 0 where the padding really is background).
* A box that a crop cuts is clipped to the window and dropped when less than ``min_visible`` of its area remains or
  when it becomes narrower or shorter than ``min_side`` pixels. Masks are never edited by the drop rule: the clipped
  box of a non-rectangular object may be looser than its visible pixels (as in torchvision), never tighter.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

IGNORE = 255  # mask value for pixels that no loss or metric should count


class Sample(NamedTuple):
    """One image with its targets.

    Attributes:
        image: uint8 (C, H, W).
        mask: uint8 (H, W) class index per pixel (0 background, 255 ignore), or None.
        boxes: float32 (k, 4) xyxy in pixels.
        labels: int64 (k,) foreground class of each box.
    """

    image: torch.Tensor
    mask: torch.Tensor | None
    boxes: torch.Tensor
    labels: torch.Tensor


def hflip(sample: Sample) -> Sample:
    """Mirror left to right."""
    image, mask, boxes, labels = sample
    w = image.shape[-1]
    flipped = boxes.clone()
    flipped[:, 0] = w - boxes[:, 2]
    flipped[:, 2] = w - boxes[:, 0]
    return Sample(image.flip(-1), None if mask is None else mask.flip(-1), flipped, labels)


def resize(sample: Sample, size: tuple[int, int]) -> Sample:
    """Resize to ``size`` = (height, width); boxes scale by the size ratio of each axis."""
    image, mask, boxes, labels = sample
    h, w = image.shape[-2:]
    nh, nw = int(size[0]), int(size[1])
    if nh < 1 or nw < 1:
        raise ValueError(f"resize: target size {size} must be at least 1 x 1")
    if (nh, nw) == (h, w):
        return sample
    x = F.interpolate(image[None].float(), size=(nh, nw), mode="bilinear", align_corners=False,
                      antialias=nh < h or nw < w)
    image = x[0].round_().clamp_(0, 255).to(torch.uint8)
    if mask is not None:
        mask = F.interpolate(mask[None, None].float(), size=(nh, nw), mode="nearest-exact")[0, 0].to(torch.uint8)
    scale = torch.tensor([nw / w, nh / h, nw / w, nh / h], dtype=torch.float32)
    return Sample(image, mask, boxes * scale, labels)


def clip_boxes(boxes: torch.Tensor, labels: torch.Tensor, height: int, width: int, *, min_visible: float = 0.3,
               min_side: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Clip boxes to ``[0, width] x [0, height]``; drop those with less than ``min_visible`` of their area left or a
    side shorter than ``min_side`` pixels."""
    if boxes.numel() == 0:
        return boxes.reshape(0, 4), labels.reshape(0)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    clipped = torch.stack([boxes[:, 0].clamp(0, width), boxes[:, 1].clamp(0, height),
                           boxes[:, 2].clamp(0, width), boxes[:, 3].clamp(0, height)], dim=1)
    bw, bh = (clipped[:, 2] - clipped[:, 0]).clamp(min=0), (clipped[:, 3] - clipped[:, 1]).clamp(min=0)
    keep = (bw >= min_side) & (bh >= min_side) & (bw * bh >= min_visible * area) & (bw > 0) & (bh > 0)
    return clipped[keep], labels[keep]


def crop(sample: Sample, top: int, left: int, height: int, width: int, *, fill_mask: int = IGNORE,
         min_visible: float = 0.3, min_side: float = 2.0) -> Sample:
    """The window of ``height x width`` pixels whose top-left corner is (``top``, ``left``).

    The window may reach outside the image (negative offsets or beyond the far edge): that part is padded.
    """
    image, mask, boxes, labels = sample
    c, h, w = image.shape
    out = torch.zeros((c, height, width), dtype=image.dtype)
    y0, y1 = max(top, 0), min(top + height, h)
    x0, x1 = max(left, 0), min(left + width, w)
    if y1 > y0 and x1 > x0:
        out[:, y0 - top:y1 - top, x0 - left:x1 - left] = image[:, y0:y1, x0:x1]
    new_mask = None
    if mask is not None:
        new_mask = torch.full((height, width), fill_mask, dtype=mask.dtype)
        if y1 > y0 and x1 > x0:
            new_mask[y0 - top:y1 - top, x0 - left:x1 - left] = mask[y0:y1, x0:x1]
    # boxes lie inside the image, so clipping them to the window leaves only what lies inside both
    shifted = boxes - torch.tensor([left, top, left, top], dtype=boxes.dtype)
    shifted, labels = clip_boxes(shifted, labels, height, width, min_visible=min_visible, min_side=min_side)
    return Sample(out, new_mask, shifted, labels)


def letterbox(sample: Sample, size: tuple[int, int], *, fill_mask: int = IGNORE) -> Sample:
    """Resize to fit ``size`` = (height, width) keeping the aspect ratio, then pad evenly on both sides."""
    h, w = sample.image.shape[-2:]
    th, tw = int(size[0]), int(size[1])
    if (h, w) == (th, tw):
        return sample
    s = min(th / h, tw / w)
    nh, nw = max(1, min(th, round(h * s))), max(1, min(tw, round(w * s)))
    out = resize(sample, (nh, nw))
    return crop(out, -((th - nh) // 2), -((tw - nw) // 2), th, tw, fill_mask=fill_mask, min_visible=0.0,
                min_side=0.0)


def random_crop(sample: Sample, size: tuple[int, int], generator: torch.Generator | None = None, *,
                fill_mask: int = IGNORE, min_visible: float = 0.3, min_side: float = 2.0) -> Sample:
    """A window of ``size`` = (height, width) at a uniformly random position (padded if the image is smaller)."""
    h, w = sample.image.shape[-2:]
    th, tw = int(size[0]), int(size[1])
    top = _randint(min(0, h - th), max(0, h - th), generator)
    left = _randint(min(0, w - tw), max(0, w - tw), generator)
    return crop(sample, top, left, th, tw, fill_mask=fill_mask, min_visible=min_visible, min_side=min_side)


def random_scale(sample: Sample, generator: torch.Generator | None = None, *, scale: tuple[float, float] = (0.75, 1.25),
                 shift: int = 0, fill_mask: int = IGNORE, min_visible: float = 0.3, min_side: float = 2.0) -> Sample:
    """Resize by a factor drawn uniformly from ``scale``, then crop (zoomed in) or pad (zoomed out) back to the
    original size at a random position, which may move ``shift`` pixels further each way."""
    h, w = sample.image.shape[-2:]
    lo, hi = scale
    if not 0 < lo <= hi:
        raise ValueError(f"random_scale: scale range {scale} must satisfy 0 < low <= high")
    f = lo + (hi - lo) * float(torch.rand((), generator=generator))
    nh, nw = max(1, round(h * f)), max(1, round(w * f))
    out = resize(sample, (nh, nw))
    top = _randint(min(0, nh - h) - shift, max(0, nh - h) + shift, generator)
    left = _randint(min(0, nw - w) - shift, max(0, nw - w) + shift, generator)
    return crop(out, top, left, h, w, fill_mask=fill_mask, min_visible=min_visible, min_side=min_side)


def augment(sample: Sample, generator: torch.Generator | None = None, *, flip: bool = True,
            scale: tuple[float, float] | None = (0.75, 1.25), shift: int = 0, fill_mask: int = IGNORE,
            min_visible: float = 0.3, min_side: float = 2.0) -> Sample:
    """The training augmentation: a horizontal flip half the time, then :func:`random_scale` (skipped when ``scale``
    is None and ``shift`` is 0). The output has the input's size."""
    if flip and float(torch.rand((), generator=generator)) < 0.5:
        sample = hflip(sample)
    if scale is not None or shift:
        sample = random_scale(sample, generator, scale=scale or (1.0, 1.0), shift=shift, fill_mask=fill_mask,
                              min_visible=min_visible, min_side=min_side)
    return sample


def _randint(lo: int, hi: int, generator: torch.Generator | None) -> int:
    """Uniform integer in [lo, hi], both ends included."""
    return lo + int(torch.randint(0, hi - lo + 1, (), generator=generator))
