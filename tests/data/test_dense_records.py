"""DenseSplit / DenseBundle: validation, carving, statistics and batches (shapes, order, augmentation alignment)."""

from __future__ import annotations

import pytest
import torch

from chipfit.data.dense.records import DenseBundle, DenseSplit, carve, stats
from chipfit.data.dense.transforms import Sample
from tests.data.test_dense_transforms import assert_aligned, rect_sample


def synthetic_split(n: int = 10) -> DenseSplit:
    samples = [rect_sample([(2 + i, 3, 20 + i, 15), (30, 10 + i, 55, 30 + i)]) for i in range(n)]
    return DenseSplit(torch.stack([s.image for s in samples]), torch.stack([s.mask for s in samples]),
                      [s.boxes for s in samples], [s.labels for s in samples], [f"synthetic {i}" for i in range(n)])


def synthetic_bundle(n: int = 10, **kw) -> DenseBundle:
    train = synthetic_split(n)
    mean, std = stats(train.images)
    return DenseBundle("synthetic", "both", ["a", "b"], train, synthetic_split(3), synthetic_split(3), mean, std, **kw)


def test_properties_and_normalise():
    b = synthetic_bundle()
    assert b.in_chans == 3 and b.image_size == (40, 60) and b.num_classes == 2
    assert b.input_shape(4) == (4, 3, 40, 60)
    x = b.normalise(b.train.images)
    assert x.dtype == torch.float32
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(x.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-3)


def test_stats_match_a_direct_computation():
    imgs = torch.randint(0, 256, (700, 2, 5, 7), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    mean, std = stats(imgs)
    x = imgs.double() / 255
    assert torch.allclose(torch.tensor(mean, dtype=torch.float64), x.mean(dim=(0, 2, 3)), atol=1e-9)
    assert torch.allclose(torch.tensor(std, dtype=torch.float64), x.std(dim=(0, 2, 3)), atol=1e-9)


def test_split_validates_its_shapes():
    s = synthetic_split(2)
    with pytest.raises(ValueError, match="uint8"):
        DenseSplit(s.images.float(), s.masks, s.boxes, s.labels, s.names)
    with pytest.raises(ValueError, match="masks must be"):
        DenseSplit(s.images, s.masks[:, :5], s.boxes, s.labels, s.names)
    with pytest.raises(ValueError, match="2 images but 1 box sets"):
        DenseSplit(s.images, s.masks, s.boxes[:1], s.labels, s.names)
    s.check(2)
    outside = torch.tensor([[5.0, 5, 70, 9], [1.0, 1, 4, 4]])
    bad = DenseSplit(s.images, s.masks, [s.boxes[0], outside], s.labels, s.names)
    with pytest.raises(ValueError, match="synthetic 1: a box"):
        bad.check(2)
    with pytest.raises(ValueError, match="synthetic 0: label outside"):
        s.check(1)


def test_carve_is_deterministic_and_disjoint():
    s = synthetic_split(20)
    tr, va = carve(s, 0.25, seed=1)
    tr2, va2 = carve(s, 0.25, seed=1)
    assert len(va) == 5 and len(tr) == 15 and va.names == va2.names and tr.names == tr2.names
    assert set(tr.names).isdisjoint(va.names) and set(tr.names) | set(va.names) == set(s.names)
    assert carve(s, 0.25, seed=2)[1].names != va.names
    with pytest.raises(ValueError, match="val_fraction"):
        carve(s, 1.0, seed=0)


def test_batches_shapes_and_plain_order():
    b = synthetic_bundle(10)
    out = list(b.batches("train", 4))
    assert [len(t["boxes"]) for _, t in out] == [4, 4, 2]  # evaluation keeps the partial batch
    x, t = out[0]
    assert x.shape == (4, 3, 40, 60) and x.dtype == torch.float32
    assert t["masks"].shape == (4, 40, 60) and t["masks"].dtype == torch.int64
    assert all(bx.shape == (2, 4) for bx in t["boxes"]) and all(lb.dtype == torch.int64 for lb in t["labels"])
    assert torch.equal(t["boxes"][1], b.train.boxes[1])


def test_training_batches_reproducible_shuffled_and_aligned():
    b = synthetic_bundle(12, scale=(0.6, 1.5), shift=4)

    def run(seed):
        return list(b.batches("train", 5, train=True, generator=torch.Generator().manual_seed(seed)))

    one, two, other = run(0), run(0), run(1)
    assert len(one) == 2  # the partial batch is dropped in training
    for (x1, t1), (x2, t2) in zip(one, two, strict=True):
        assert torch.equal(x1, x2) and torch.equal(t1["masks"], t2["masks"])
        assert all(torch.equal(p, q) for p, q in zip(t1["boxes"], t2["boxes"], strict=True))
    assert not torch.equal(one[0][0], other[0][0])
    for x, t in one:
        assert x.shape == (5, 3, 40, 60)
        for m, bx, lb in zip(t["masks"], t["boxes"], t["labels"], strict=True):
            assert_aligned(Sample(torch.zeros((1, 40, 60), dtype=torch.uint8), m.to(torch.uint8), bx, lb), 0.5 + 1e-4)


def test_start_skips_batches_without_changing_them():
    b = synthetic_bundle(12)
    full = list(b.batches("train", 3, train=True, generator=torch.Generator().manual_seed(5)))
    resumed = list(b.batches("train", 3, train=True, generator=torch.Generator().manual_seed(5), start=2))
    assert len(resumed) == len(full) - 2
    for (x1, _), (x2, _) in zip(full[2:], resumed, strict=True):
        assert torch.equal(x1, x2)


def test_ranks_share_the_data():
    b = synthetic_bundle(10)
    names = []
    for rank in range(2):
        for _, t in b.batches("train", 2, rank=rank, world=2):
            names += [bx[0, 0].item() for bx in t["boxes"]]
    assert sorted(names) == sorted(bx[0, 0].item() for bx in b.train.boxes)


def test_detect_bundle_without_masks_and_bad_task():
    s = synthetic_split(4)
    s = DenseSplit(s.images, None, s.boxes, s.labels, s.names)
    b = DenseBundle("x", "detect", ["a", "b"], s, s, s, [0.5] * 3, [0.2] * 3)
    _, t = next(b.batches("train", 2, train=True, generator=torch.Generator().manual_seed(0)))
    assert t["masks"] is None and len(t["boxes"]) == 2
    with pytest.raises(ValueError, match="task must be one of"):
        DenseBundle("x", "classify", ["a"], s, s, s)
