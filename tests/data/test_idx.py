"""The idx parser on good and corrupt files made here, and the data bundles built on it."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch

from chipfit.data import IdxError, load_fashion_mnist, load_folder, read_idx, write_idx
from chipfit.data.datasets import FASHION_FILES, _augment


@pytest.mark.parametrize("suffix", [".gz", ""])
def test_round_trip(tmp_path, suffix):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = write_idx(tmp_path / f"x.idx{suffix}", a)
    assert np.array_equal(read_idx(path), a)
    labels = np.array([3, 1, 4], np.uint8)
    assert np.array_equal(read_idx(write_idx(tmp_path / f"y{suffix}", labels), expect_ndim=1), labels)


def test_header_bytes_are_the_documented_format(tmp_path):
    path = write_idx(tmp_path / "x", np.zeros((2, 5), np.uint8))
    raw = path.read_bytes()
    assert raw[:4] == bytes([0, 0, 0x08, 2]) and raw[4:12] == (2).to_bytes(4, "big") + (5).to_bytes(4, "big")


def test_truncated_file(tmp_path):
    path = write_idx(tmp_path / "x", np.zeros((10, 28, 28), np.uint8))
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(IdxError, match="truncated"):
        read_idx(path)


def test_bad_magic_and_wrong_ndim(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x12\x34\x08\x01" + (3).to_bytes(4, "big") + b"abc")
    with pytest.raises(IdxError, match="bad magic number"):
        read_idx(bad)
    ok = write_idx(tmp_path / "ok", np.zeros(3, np.uint8))
    with pytest.raises(IdxError, match="1 dimensions, expected 3"):
        read_idx(ok, expect_ndim=3)


def test_corrupt_gzip(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + (4).to_bytes(4, "big") + b"abcd")[:-6])
    with pytest.raises(IdxError, match="truncated or corrupt"):
        read_idx(path)


def _fake_fashion(root, n_train=200, n_test=50):
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for part, n in (("train", n_train), ("test", n_test)):
        write_idx(root / FASHION_FILES[f"{part}_images"], rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(root / FASHION_FILES[f"{part}_labels"], (np.arange(n) % 10).astype(np.uint8))
    return root


def test_fashion_layout_split_is_deterministic(tmp_path, monkeypatch):
    monkeypatch.setenv("CHIPFIT_DATA", str(_fake_fashion(tmp_path / "fm")))
    a, b = load_fashion_mnist(val_fraction=0.1, seed=3), load_fashion_mnist(val_fraction=0.1, seed=3)
    assert len(a.train) == 180 and len(a.val) == 20 and len(a.test) == 50
    assert torch.equal(a.val.labels, b.val.labels) and torch.equal(a.train.images, b.train.images)
    assert a.input_shape() == (1, 1, 28, 28) and a.num_classes == 10


def test_missing_data_names_package_path_and_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("CHIPFIT_DATA", str(tmp_path / "nothing"))
    monkeypatch.setattr("chipfit.data.datasets.FASHION_DIR", tmp_path / "nope")
    with pytest.raises(FileNotFoundError) as e:
        load_fashion_mnist()
    msg = str(e.value)
    assert "dataset-fashion-mnist" in msg and "CHIPFIT_DATA" in msg and "nope" in msg


def test_mismatched_image_and_label_counts(tmp_path, monkeypatch):
    root = _fake_fashion(tmp_path / "fm")
    write_idx(root / FASHION_FILES["test_labels"], np.zeros(49, np.uint8))
    monkeypatch.setenv("CHIPFIT_DATA", str(root))
    with pytest.raises(ValueError, match="50 test images but 49 labels"):
        load_fashion_mnist()


def test_augment_is_a_shift_and_flip_of_the_original():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.uint8).reshape(2, 1, 6, 6)
    g = torch.Generator().manual_seed(0)
    y = _augment(x, pad=0, flip=True, g=g)
    for i in range(2):
        assert torch.equal(y[i], x[i]) or torch.equal(y[i], x[i].flip(2))
    z = _augment(x, pad=2, flip=False, g=torch.Generator().manual_seed(1))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(2):  # every output is some 6x6 window of the padded image
        assert any(torch.equal(z[i], padded[i, :, dy:dy + 6, dx:dx + 6]) for dy in range(5) for dx in range(5))


def test_class_folder_tree(tmp_path):
    from PIL import Image

    for split in ("train", "val"):
        for cls in ("cat", "dog"):
            d = tmp_path / split / cls
            d.mkdir(parents=True)
            for i in range(3):
                Image.fromarray(np.full((12, 12), 40 * i, np.uint8)).save(d / f"{i}.png")
    data = load_folder(tmp_path)
    assert data.classes == ["cat", "dog"] and len(data.train) == 6 and len(data.val) == 6
    assert data.input_shape() == (1, 1, 12, 12)
    (tmp_path / "train" / "cat" / "broken.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="broken.png: not a readable image"):
        load_folder(tmp_path)


def test_a_corrupt_deflate_stream_is_an_idx_error(tmp_path):
    """A damaged compressed block raises zlib.error, which is neither an OSError nor an EOFError (fuzzing found it)."""
    data = bytearray(gzip.compress(bytes(range(256)) * 4, mtime=0))
    data[10] = 0xFF  # the first deflate block's header: an invalid block type
    path = tmp_path / "x.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(IdxError, match=r"x\.gz: cannot decompress \(Error -3 .*invalid block type\); the file is "
                                       r"truncated or corrupt"):
        read_idx(path)


def test_dimensions_whose_product_overflows_64_bits(tmp_path):
    """Four dimensions of 65536 need 2^64 bytes: numpy's int64 product wrapped to 0 and matched an empty body."""
    path = tmp_path / "x"
    path.write_bytes(bytes([0, 0, 0x08, 4]) + (65536).to_bytes(4, "big") * 4)
    with pytest.raises(IdxError, match=r"header says 65536 x 65536 x 65536 x 65536 \(18446744073709551616 data "
                                       r"bytes\) but the file holds 0: truncated"):
        read_idx(path)


def test_fashion_files_of_another_type_or_empty_or_with_bad_labels_name_the_file(tmp_path):
    root = _fake_fashion(tmp_path / "fm")
    good = {k: (root / f).read_bytes() for k, f in FASHION_FILES.items()}
    cases = [("train_images", np.zeros((200, 28, 28), ">f4"), r"train-images-idx3-ubyte\.gz: holds float32 data"),
             ("test_labels", np.zeros(0, np.uint8), r"t10k-labels-idx1-ubyte\.gz: holds no data"),
             ("test_labels", np.full(50, 10, np.uint8), r"t10k-labels-idx1-ubyte\.gz: label 10 outside 0\.\.9")]
    for key, array, pattern in cases:
        write_idx(root / FASHION_FILES[key], array)
        with pytest.raises(IdxError, match=pattern):
            load_fashion_mnist(root=root)
        (root / FASHION_FILES[key]).write_bytes(good[key])
