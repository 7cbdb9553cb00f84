"""Fashion-MNIST scenes: deterministic, boxes on their articles' pixels, splits from disjoint source images, cached."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from chipfit.data.datasets import FASHION_FILES, fashion_mnist_dir
from chipfit.data.dense import load_dense
from chipfit.data.dense import scenes as scenes_mod
from chipfit.data.dense.scenes import _options, load_scene_arrays, make_scenes, resize_articles, scenes_path
from chipfit.data.idx import read_idx

SMALL = {"n_train": 64, "n_test": 32}


@pytest.fixture(scope="module")
def fmnist():
    try:
        root = fashion_mnist_dir()
    except FileNotFoundError as e:
        pytest.skip(f"Fashion-MNIST is not installed here ({str(e).splitlines()[0][:200]})")
    return {k: read_idx(root / f) for k, f in FASHION_FILES.items()}


@pytest.fixture(scope="module")
def cache(tmp_path_factory, fmnist):
    """A private cache folder, so that the tests neither read nor fill the user's."""
    mp = pytest.MonkeyPatch()
    folder = tmp_path_factory.mktemp("cache")
    mp.setenv("CHIPFIT_CACHE", str(folder))
    yield folder
    mp.undo()


@pytest.fixture(scope="module")
def bundle(cache):
    return load_dense("fmnist-scenes", "both", seed=0, **SMALL)


def test_resize_articles_is_exact_on_flat_images_and_identity():
    a = np.full((3, 28, 28), 200, np.uint8)
    for side in (16, 28, 33, 48):
        assert (resize_articles(a, side) == 200).all()
    rng = np.random.default_rng(0)
    b = rng.integers(0, 256, (4, 28, 28)).astype(np.uint8)
    assert np.array_equal(resize_articles(b, 28), b)


def test_scenes_are_deterministic_per_seed(fmnist):
    imgs, labs = fmnist["train_images"], fmnist["train_labels"]
    a = make_scenes(imgs, labs, 50, seed=3)
    b = make_scenes(imgs, labs, 50, seed=3)
    c = make_scenes(imgs, labs, 50, seed=4)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["images"], c["images"])


def test_image_pixels_masks_and_boxes_agree(fmnist):
    imgs, labs = fmnist["train_images"], fmnist["train_labels"]
    sc = make_scenes(imgs, labs, 400, seed=1, max_objects=5)
    assert sc["images"].shape == (400, 1, 96, 96) and sc["masks"].shape == (400, 96, 96)
    assert np.array_equal(sc["images"][:, 0] > 0, sc["masks"] > 0)  # only an article's own pixels are pasted
    obj = sc["objects"]
    assert obj[:, 7].sum() == len(sc["boxes"]) == sc["counts"].sum()
    assert sc["counts"].min() >= 1 and sc["counts"].max() <= 5
    assert (obj[:, 6] >= 16).all() and (obj[:, 6] <= 48).all() and ((obj[:, 4:6] + obj[:, 6:7]) <= 96).all()
    assert (obj[:, 7] == 0).any(), "with 5 articles some must be hidden enough to lose their box"
    starts = np.concatenate([[0], np.cumsum(sc["counts"])])
    checked = 0
    for s in range(400):
        rows = obj[obj[:, 0] == s]
        if len(set(rows[:, 3].tolist())) < len(rows):
            continue  # two articles of one class share a mask value: the mask cannot tell them apart
        boxes, labels = sc["boxes"][starts[s]:starts[s + 1]], sc["labels"][starts[s]:starts[s + 1]]
        assert labels.tolist() == rows[rows[:, 7] == 1, 3].tolist()
        for box, label in zip(boxes.tolist(), labels.tolist(), strict=True):
            ys, xs = np.nonzero(sc["masks"][s] == label + 1)
            assert box == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
            checked += 1
    assert checked > 200


def test_the_top_article_is_its_source_image_resized(fmnist):
    """By construction: each split's top article is pixel for pixel the resized source image it names."""
    for part in ("train", "test"):
        imgs, labs = fmnist[f"{part}_images"], fmnist[f"{part}_labels"]
        sc = make_scenes(imgs, labs, 30, seed=2)
        obj = sc["objects"]
        for s in range(30):
            top = obj[obj[:, 0] == s][-1]
            _, _, src, cls, x, y, side, kept = top.tolist()
            art = resize_articles(imgs[src:src + 1], side)[0]
            fg = art > 16
            patch = sc["images"][s, 0, y:y + side, x:x + side]
            assert kept == 1 and cls == labs[src]
            assert np.array_equal(patch[fg], art[fg])
            assert (sc["masks"][s, y:y + side, x:x + side][fg] == cls + 1).all()


def test_splits_come_from_disjoint_fashion_mnist_images(cache, fmnist):
    opts = _options(0.25, 0, 80, 40, 96, 4, 16, 48, 16, 0.4)
    arrays = load_scene_arrays(opts)
    src = {s: set(arrays[f"{s}_objects"][:, 2].tolist()) for s in ("train", "val", "test")}
    assert src["train"].isdisjoint(src["val"])
    assert max(src["test"]) < len(fmnist["test_images"])
    assert len(arrays["train_counts"]) == 60 and len(arrays["val_counts"]) == 20 and len(arrays["test_counts"]) == 40
    # the pools are fixed by the seed: the val articles come from a quarter of the training images
    perm = np.random.default_rng(np.random.SeedSequence([0, 3])).permutation(60000)
    assert src["val"] <= set(perm[:15000].tolist()) and src["train"] <= set(perm[15000:].tolist())
    # the test split's articles are pixel for pixel the t10k images they name
    obj = arrays["test_objects"]
    top = obj[obj[:, 0] == 0][-1]
    art = resize_articles(fmnist["test_images"][top[2]:top[2] + 1], top[6])[0]
    patch = arrays["test_images"][0, 0, top[5]:top[5] + top[6], top[4]:top[4] + top[6]]
    assert np.array_equal(patch[art > 16], art[art > 16])


def test_bundle_shapes_and_boxes(bundle):
    b = bundle
    assert b.name == "fmnist-scenes" and b.num_classes == 10 and b.in_chans == 1 and b.image_size == (96, 96)
    assert (len(b.train), len(b.val), len(b.test)) == (58, 6, 32)
    assert b.fill_mask == 0
    for split in (b.train, b.val, b.test):
        split.check(b.num_classes)
        assert all(len(bx) >= 1 for bx in split.boxes)
    assert b.test.names[5] == "fmnist-scenes test 5"


def test_detect_task_has_no_masks(cache):
    b = load_dense("fmnist-scenes", "detect", **SMALL)
    assert b.train.masks is None
    _, t = next(b.batches("val", 4))
    assert t["masks"] is None


def test_cache_is_written_once_and_reused(cache, bundle, monkeypatch):
    opts = _options(0.1, 0, 64, 32, 96, 4, 16, 48, 16, 0.4)
    path = scenes_path(opts)
    assert path.is_file() and path.parent == cache / "scenes"
    assert json.loads(np.load(path)["options"].tobytes()) == opts
    assert not list(path.parent.glob("*.tmp"))

    def boom(*a, **k):
        raise AssertionError("generated again although the cache holds these scenes")

    monkeypatch.setattr(scenes_mod, "_generate", boom)
    again = load_dense("fmnist-scenes", "both", **SMALL)
    assert torch.equal(again.train.images, bundle.train.images)
    assert all(torch.equal(p, q) for p, q in zip(again.train.boxes, bundle.train.boxes, strict=True))
    with pytest.raises(AssertionError, match="generated again"):
        load_dense("fmnist-scenes", "both", n_train=64, n_test=32, max_objects=3)  # other options, other file


def test_a_damaged_cache_file_is_replaced(cache):
    opts = _options(0.1, 7, 16, 8, 64, 2, 16, 32, 16, 0.4)
    first = load_scene_arrays(opts)
    scenes_path(opts).write_bytes(b"garbage")
    second = load_scene_arrays(opts)
    assert np.array_equal(first["train_images"], second["train_images"])
    assert np.load(scenes_path(opts))["train_images"].shape == (14, 1, 64, 64)


def test_batches_shapes_and_reproducibility(bundle):
    b = bundle
    x, t = next(b.batches("val", 4))
    assert x.shape == (4, 1, 96, 96) and t["masks"].shape == (4, 96, 96) and t["masks"].dtype == torch.int64
    assert len(t["boxes"]) == len(t["labels"]) == 4
    one = list(b.batches("train", 16, train=True, generator=torch.Generator().manual_seed(1)))
    two = list(b.batches("train", 16, train=True, generator=torch.Generator().manual_seed(1)))
    assert len(one) == 3
    for (x1, t1), (x2, t2) in zip(one, two, strict=True):
        assert torch.equal(x1, x2) and torch.equal(t1["masks"], t2["masks"])
        assert all(torch.equal(p, q) for p, q in zip(t1["boxes"], t2["boxes"], strict=True))
        for bx in t1["boxes"]:
            assert bx.numel() == 0 or (bx[:, :2] >= 0).all() and (bx[:, 2:] <= 96).all()


def test_bad_scene_options(cache):
    with pytest.raises(ValueError, match="max_side"):
        load_dense("fmnist-scenes", n_train=8, n_test=8, max_side=120)
    with pytest.raises(TypeError, match="unknown option.*tile"):
        load_dense("fmnist-scenes", tile=3)
    b = load_dense("fmnist-scenes", "segment", image_size=64, n_train=10, n_test=4, max_side=40)
    assert b.image_size == (64, 64)
