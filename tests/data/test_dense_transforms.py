"""Transforms of chipfit.data.dense keep every box on its object's mask pixels (rectangles: box == mask's bbox)."""

from __future__ import annotations

import pytest
import torch

from chipfit.data.dense.transforms import (
    IGNORE,
    Sample,
    augment,
    clip_boxes,
    crop,
    hflip,
    letterbox,
    random_crop,
    random_scale,
    resize,
)

# rectangles (x1, y1, x2, y2) in pixel edges on a 40 x 60 image; object i has class i and mask value i + 1
RECTS = [(3, 4, 20, 15), (30, 10, 58, 37), (10, 22, 25, 38)]


def rect_sample(rects=RECTS, h: int = 40, w: int = 60, channels: int = 3) -> Sample:
    image = torch.zeros((channels, h, w), dtype=torch.uint8)
    mask = torch.zeros((h, w), dtype=torch.uint8)
    for i, (x1, y1, x2, y2) in enumerate(rects):
        image[:, y1:y2, x1:x2] = 60 + 60 * i
        mask[y1:y2, x1:x2] = i + 1
    boxes = torch.tensor(rects, dtype=torch.float32)
    return Sample(image, mask, boxes, torch.arange(len(rects)))


def mask_box(mask: torch.Tensor, value: int) -> list[float] | None:
    ys, xs = (mask == value).nonzero(as_tuple=True)
    if not len(ys):
        return None
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


def assert_aligned(s: Sample, tol: float) -> None:
    """Each box encloses exactly its object's mask pixels (within ``tol`` px), labels intact, boxes inside."""
    h, w = s.mask.shape
    assert s.image.shape[-2:] == s.mask.shape
    assert s.boxes.dtype == torch.float32 and s.labels.dtype == torch.int64 and len(s.boxes) == len(s.labels)
    for box, label in zip(s.boxes.tolist(), s.labels.tolist(), strict=True):
        mb = mask_box(s.mask, label + 1)
        assert mb is not None, f"box {box} of class {label} has no mask pixels left"
        assert max(abs(a - b) for a, b in zip(box, mb, strict=True)) <= tol, (box, mb)
        assert 0 <= box[0] < box[2] <= w and 0 <= box[1] < box[3] <= h


def test_hflip_is_exact_and_an_involution():
    s = rect_sample()
    f = hflip(s)
    assert_aligned(f, 0)
    assert f.boxes[0].tolist() == [60 - 20, 4, 60 - 3, 15]
    back = hflip(f)
    assert torch.equal(back.image, s.image) and torch.equal(back.mask, s.mask) and torch.equal(back.boxes, s.boxes)


@pytest.mark.parametrize("size", [(40, 60), (80, 120), (20, 30), (57, 41), (33, 97), (13, 17)])
def test_resize_keeps_boxes_on_mask_pixels(size):
    s = resize(rect_sample(), size)
    assert s.image.shape == (3, *size) and s.mask.shape == size and s.image.dtype == torch.uint8
    assert_aligned(s, 0.5 + 1e-4)
    sy, sx = size[0] / 40, size[1] / 60
    assert torch.allclose(s.boxes[1], torch.tensor([30 * sx, 10 * sy, 58 * sx, 37 * sy]))


def test_resize_keeps_mask_values_and_flat_images():
    s = rect_sample()
    r = resize(s, (97, 23))
    assert set(r.mask.unique().tolist()) <= set(s.mask.unique().tolist())
    flat = Sample(torch.full((1, 40, 60), 77, dtype=torch.uint8), None, s.boxes, s.labels)
    assert (resize(flat, (13, 91)).image == 77).all()  # a constant image stays constant when resampled


@pytest.mark.parametrize("window", [(0, 0, 40, 60), (5, 8, 20, 30), (-7, -9, 50, 70), (10, 25, 40, 60),
                                    (30, 50, 30, 30), (-20, -20, 30, 30)])
def test_crop_is_exact_and_pads(window):
    top, left, h, w = window
    s = crop(rect_sample(), top, left, h, w, fill_mask=IGNORE)
    assert s.image.shape == (3, h, w) and s.mask.shape == (h, w)
    assert_aligned(s, 0)
    # pixels from outside the original image are padding: image 0, mask IGNORE
    ys = torch.arange(h)[:, None] + top
    xs = torch.arange(w)[None, :] + left
    outside = (ys < 0) | (ys >= 40) | (xs < 0) | (xs >= 60)
    assert (s.mask[outside] == IGNORE).all() and (s.image[:, outside] == 0).all()


def test_crop_drop_rule():
    s = rect_sample([(0, 0, 10, 10)], 10, 10)
    assert len(crop(s, 0, 0, 10, 5).boxes) == 1  # half left: kept
    assert len(crop(s, 0, 0, 10, 2).boxes) == 0  # 20% left: dropped
    assert len(crop(s, 0, 0, 10, 4, min_visible=0.5).boxes) == 0
    assert len(crop(s, 0, 0, 10, 3, min_visible=0.1, min_side=4).boxes) == 0  # too narrow
    assert len(crop(s, 20, 20, 5, 5).boxes) == 0  # nothing of it inside


def test_clip_boxes_closed_form():
    boxes = torch.tensor([[-5.0, 0, 5, 10], [-8.0, 0, 2, 10], [8.0, 8, 9.5, 20], [1.0, 1, 3, 3]])
    kept, labels = clip_boxes(boxes, torch.arange(4), 10, 10)
    assert labels.tolist() == [0, 3]  # 50% kept; 20% dropped; 1.5 px wide dropped; untouched kept
    assert kept.tolist() == [[0, 0, 5, 10], [1, 1, 3, 3]]


@pytest.mark.parametrize("size", [(40, 60), (30, 30), (64, 40), (10, 100)])
def test_letterbox_fits_keeps_aspect_and_alignment(size):
    s = letterbox(rect_sample(), size)
    assert s.image.shape == (3, *size) and s.mask.shape == size
    assert_aligned(s, 0.5 + 1e-4)
    scale = min(size[0] / 40, size[1] / 60)
    widths = (s.boxes[:, 2] - s.boxes[:, 0]) / torch.tensor([17.0, 28, 15])
    assert torch.allclose(widths, torch.full((3,), scale), rtol=0.05)


@pytest.mark.parametrize("seed", range(40))
def test_random_scale_and_augment_keep_alignment(seed):
    g = torch.Generator().manual_seed(seed)
    s = rect_sample()
    for out in (random_scale(s, g, scale=(0.5, 1.6), shift=6), augment(s, g, scale=(0.6, 1.5), shift=4),
                random_crop(s, (25, 35), g), random_crop(s, (50, 70), g)):
        assert_aligned(out, 0.5 + 1e-4)
    out = augment(s, g)
    assert out.image.shape == s.image.shape and out.mask.shape == s.mask.shape


def test_random_transforms_keep_every_object_that_stays_whole():
    """An object whose mask pixels do not touch the output's border was not cut: its box must survive."""
    for seed in range(60):
        g = torch.Generator().manual_seed(seed)
        out = augment(rect_sample(), g, scale=(0.5, 1.5), shift=8)
        h, w = out.mask.shape
        for value in range(1, 4):
            mb = mask_box(out.mask, value)
            if mb and mb[0] > 0 and mb[1] > 0 and mb[2] < w and mb[3] < h:
                assert value - 1 in out.labels.tolist(), (seed, value, mb)


def test_random_transforms_are_reproducible():
    a = augment(rect_sample(), torch.Generator().manual_seed(3), shift=5)
    b = augment(rect_sample(), torch.Generator().manual_seed(3), shift=5)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_samples_without_masks_or_boxes():
    s = Sample(torch.zeros((1, 20, 20), dtype=torch.uint8), None, torch.zeros((0, 4)), torch.zeros(0, dtype=torch.long))
    for out in (hflip(s), resize(s, (10, 30)), crop(s, -3, 4, 12, 12), letterbox(s, (7, 9)),
                augment(s, torch.Generator().manual_seed(0))):
        assert out.mask is None and out.boxes.shape == (0, 4) and out.labels.shape == (0,)


def test_bad_arguments_raise_value_errors():
    with pytest.raises(ValueError, match="scale range"):
        random_scale(rect_sample(), scale=(1.2, 0.8))
    with pytest.raises(ValueError, match="at least 1 x 1"):
        resize(rect_sample(), (0, 5))
