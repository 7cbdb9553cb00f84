"""The user's own detection/segmentation data, in the three common layouts, recognised from the folder's contents.

* **Image + mask folders**: ``root/images/<stem>.png|jpg|...`` with ``root/masks/<stem>.png`` (a palette PNG whose
  palette index is the class, or a grey PNG whose value is the class: 0 background, 1..K classes, 255 ignore).
  Class names come from ``root/classes.txt`` (one per line, background left out; a first line ``background`` is
  skipped), else ``class1..classK`` with K the largest value found. Boxes (for ``detect``/``both``) are the
  8-connected regions of each class, at least 2 px on each side; touching objects of one class merge into one box.
* **Pascal VOC**: ``root/Annotations/*.xml`` (or the xml files in ``root``) with the images in ``root/JPEGImages``
  or next to the xml, found by the xml's ``<filename>``. Classes are the sorted union of the ``<name>`` tags. VOC
  boxes are 1-based inclusive pixel indices, converted as detectron2 does: ``x1 = xmin - 1, x2 = xmax``.
  Boxes only: no masks.
* **COCO JSON**: ``root/annotations.json``, or the single ``*.json`` in ``root``, or a json file given directly;
  images next to the json, under ``root`` or ``root/images`` (or ``root/<split>``, ``root/images/<split>``).
  ``bbox`` is ``[x, y, width, height]`` in pixels; category ids map to 0..K-1 in increasing id order. Polygon and
  RLE ``segmentation`` fields become masks (crowd regions are marked 255, ignore, and give no box).

Splits: ``train/``, ``val/``, ``test/`` subfolders each holding one layout (COCO: json files whose names contain
train, val or test; VOC: ``ImageSets/Main/{train,val,test}.txt``). Without a validation split one is carved from
train by image (``val_fraction``, ``seed``); without a test split the validation split doubles as test.

Images whose size differs from ``image_size`` (default: the most common size among the training images) are
letterboxed to it: resized to fit with their aspect ratio kept, then padded (mask padding is 255, ignore), with boxes
and masks transformed the same way. All grey images stay one channel; otherwise all become RGB.

Every mistake in the data raises ValueError or FileNotFoundError naming the file: a missing image or mask, an
unreadable file, a box with x2 <= x1 or reaching more than 1 px outside its image (within 1 px it is clipped), a mask
whose size differs from its image's, a mask value above the number of classes (other than 255), an empty folder.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from chipfit.data.dense._instances import connected_components, instance_boxes
from chipfit.data.dense._io import IMAGE_SUFFIXES, MASK_SUFFIXES, read_image, read_mask
from chipfit.data.dense.records import TASKS, DenseBundle, DenseSplit, carve, stats
from chipfit.data.dense.transforms import IGNORE, Sample, letterbox

SPLITS = ("train", "val", "test")
BOX_TOLERANCE = 1.0  # pixels a box may overhang its image (rounding in the user's tool) before it is an error
FORMATS = {"masks": "image + mask folders", "voc": "Pascal VOC", "coco": "COCO JSON"}


@dataclass
class _Item:
    name: str
    image: np.ndarray  # uint8 (H, W) or (H, W, 3)
    mask: np.ndarray | None  # uint8 (H, W)
    boxes: np.ndarray  # float32 (k, 4)
    labels: np.ndarray  # int64 (k,)


def detect_format(path: str | Path) -> str:
    """``masks``, ``voc`` or ``coco``, from what the folder holds (a .json file path is COCO)."""
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() == ".json":
            return "coco"
        raise ValueError(f"{path}: a file, but only a COCO .json file can be given directly (or give a folder)")
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such folder")
    for base in (path, *(path / s for s in SPLITS)):
        if (base / "images").is_dir() and (base / "masks").is_dir():
            return "masks"
    for base in (path, *(path / s for s in SPLITS)):
        if (base / "Annotations").is_dir() or any(base.glob("*.xml")):
            return "voc"
    for base in (path, *(path / s for s in SPLITS)):
        if any(base.glob("*.json")):
            return "coco"
    if not any(path.iterdir()):
        raise ValueError(f"{path}: the folder is empty")
    if (path / "images").is_dir():
        raise FileNotFoundError(f"{path / 'masks'}: folder not found; {path / 'images'} needs a masks/ folder beside "
                                "it (or give Pascal VOC xml files or a COCO .json)")
    raise ValueError(f"{path}: no detection/segmentation data recognised. Expected images/ + masks/ folders, Pascal "
                     "VOC (Annotations/*.xml + JPEGImages/), or a COCO annotations .json (each optionally under "
                     "train/, val/, test/)")


def load_dense_folder(path: str | Path, task: str = "detect", *, val_fraction: float = 0.1, seed: int = 0,
                      image_size: int | tuple[int, int] | None = None) -> DenseBundle:
    """Load the user's data in any of the three layouts (see the module's docstring)."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    path = Path(path)
    fmt = detect_format(path)
    if fmt == "masks":
        classes, splits = _load_masks(path, task)
    elif fmt == "voc":
        if task != "detect":
            raise ValueError(f"{path}: Pascal VOC annotations hold boxes only, so task={task!r} has no masks to "
                             "learn; use task='detect', or image + mask folders / COCO polygons for segmentation")
        classes, splits = _load_voc(path)
    else:
        classes, splits = _load_coco(path, task)
    if not splits.get("train"):
        raise ValueError(f"{path}: no training images found ({FORMATS[fmt]})")
    need_masks = task != "detect"
    if need_masks and any(it.mask is None for items in splits.values() for it in items):
        raise ValueError(f"{path}: task={task!r} needs masks, but some images have none")
    grey = all(it.image.ndim == 2 for items in splits.values() for it in items)
    size = _target_size(image_size, splits["train"])
    built = {name: _to_split(items, size, grey, need_masks) for name, items in splits.items() if items}
    if "val" in built:
        train, val = built["train"], built["val"]
    else:
        train, val = carve(built["train"], val_fraction, seed)
    test = built.get("test", val)
    mean, std = stats(train.images)
    return DenseBundle(str(path), task, classes, train, val, test, mean, std)


def _target_size(image_size: int | tuple[int, int] | None, items: list[_Item]) -> tuple[int, int]:
    if image_size is not None:
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"image_size must be a positive int or (height, width), got {image_size!r}")
        return int(size[0]), int(size[1])
    return Counter(it.image.shape[:2] for it in items).most_common(1)[0][0]


def _to_split(items: list[_Item], size: tuple[int, int], grey: bool, need_masks: bool) -> DenseSplit:
    images, masks, boxes, labels = [], [], [], []
    for it in items:
        a = it.image if grey or it.image.ndim == 3 else np.repeat(it.image[:, :, None], 3, axis=2)
        img = torch.from_numpy(np.ascontiguousarray(a[None] if a.ndim == 2 else a.transpose(2, 0, 1)))
        mask = torch.from_numpy(np.ascontiguousarray(it.mask)) if need_masks else None
        s = letterbox(Sample(img, mask, torch.from_numpy(it.boxes).float().reshape(-1, 4),
                             torch.from_numpy(it.labels).long().reshape(-1)), size, fill_mask=IGNORE)
        images.append(s.image)
        masks.append(s.mask)
        boxes.append(s.boxes)
        labels.append(s.labels)
    return DenseSplit(torch.stack(images), torch.stack(masks) if need_masks else None, boxes, labels,
                      [it.name for it in items])


def check_boxes(boxes: np.ndarray, width: int, height: int, where: str) -> np.ndarray:
    """Boxes (k, 4) xyxy checked against their image: ValueError naming ``where`` for an empty box or one reaching
    more than :data:`BOX_TOLERANCE` px outside; the ones within tolerance are clipped."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    for i, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
        if not all(np.isfinite([x1, y1, x2, y2])):
            raise ValueError(f"{where}: box {i} has a non-finite coordinate ({x1}, {y1}, {x2}, {y2})")
        if x2 <= x1 or y2 <= y1:
            raise ValueError(f"{where}: box {i} (x1={x1:g}, y1={y1:g}, x2={x2:g}, y2={y2:g}) is empty: need x2 > x1 "
                             "and y2 > y1")
        t = BOX_TOLERANCE
        if x1 < -t or y1 < -t or x2 > width + t or y2 > height + t:
            raise ValueError(f"{where}: box {i} (x1={x1:g}, y1={y1:g}, x2={x2:g}, y2={y2:g}) lies outside the "
                             f"{width}x{height} image")
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
    if ((boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])).any():
        raise ValueError(f"{where}: a box lies along the edge of the {width}x{height} image with no area inside it")
    return boxes


# ---- image + mask folders ---------------------------------------------------------------------------------------

def _read_classes(root: Path) -> list[str] | None:
    file = root / "classes.txt"
    if not file.is_file():
        return None
    try:
        names = [line.strip() for line in file.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{file}: not a readable text file ({e})") from None
    if names and names[0].lower() in ("background", "_background_", "bg"):
        names = names[1:]
    if not names:
        raise ValueError(f"{file}: lists no classes (one foreground class name per line, background left out)")
    return names


def _mask_pairs(base: Path) -> list[tuple[Path, Path]]:
    images_dir, masks_dir = base / "images", base / "masks"
    for d in (images_dir, masks_dir):
        if not d.is_dir():
            raise FileNotFoundError(f"{d}: folder not found (image + mask folders need both images/ and masks/)")
    images = _by_stem(sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), images_dir)
    masks = _by_stem(sorted(p for p in masks_dir.iterdir() if p.suffix.lower() in MASK_SUFFIXES), masks_dir)
    if not images:
        raise ValueError(f"{images_dir}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    for stem, m in masks.items():
        if stem not in images:
            raise FileNotFoundError(f"{m}: mask without an image: no {images_dir / stem}.png (or .jpg, ...)")
    pairs = []
    for stem, img in images.items():
        if stem not in masks:
            raise FileNotFoundError(f"{img}: image without a mask: expected {masks_dir / stem}.png")
        pairs.append((img, masks[stem]))
    return pairs


def _by_stem(files: list[Path], folder: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for f in files:
        if f.stem in out:
            raise ValueError(f"{folder}: two files share the name {f.stem!r} ({out[f.stem].name}, {f.name})")
        out[f.stem] = f
    return out


def _load_masks(root: Path, task: str) -> tuple[list[str], dict[str, list[_Item]]]:
    bases = {s: root / s for s in SPLITS if (root / s / "images").is_dir()}
    if not bases:
        bases = {"train": root}
    elif "train" not in bases:
        raise FileNotFoundError(f"{root}: split folders {sorted(bases)} but no {root / 'train'}/images")
    classes = _read_classes(root)
    raw = {s: [(img, m, read_image(img), read_mask(m)) for img, m in _mask_pairs(b)] for s, b in bases.items()}
    for pairs in raw.values():
        for img, m, a, mask in pairs:
            if mask.shape != a.shape[:2]:
                raise ValueError(f"{m}: mask is {mask.shape[1]}x{mask.shape[0]} but its image {img} is "
                                 f"{a.shape[1]}x{a.shape[0]}")
    if classes is None:
        top = max((int(mask[mask != IGNORE].max(initial=0)) for p in raw.values() for *_, mask in p), default=0)
        if top == 0:
            raise ValueError(f"{root}: no mask holds a foreground class (values 1..K); add {root / 'classes.txt'} "
                             "to name the classes")
        classes = [f"class{i}" for i in range(1, top + 1)]
    k = len(classes)
    splits: dict[str, list[_Item]] = {}
    for s, pairs in raw.items():
        items = []
        for img, m, a, mask in pairs:
            bad = mask[(mask > k) & (mask != IGNORE)]
            if bad.size:
                src = f"{root / 'classes.txt'} names" if (root / "classes.txt").is_file() else "there are"
                raise ValueError(f"{m}: mask value {int(bad.max())}, but {src} only {k} classes (values 1..{k}; "
                                 "0 background, 255 ignore)")
            boxes, labels = np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
            if task != "segment":
                inst, cls = connected_components(mask, IGNORE)
                b, _ = instance_boxes(inst, len(cls))
                keep = ((b[:, 2] - b[:, 0]) >= 2) & ((b[:, 3] - b[:, 1]) >= 2)
                boxes, labels = b[keep], cls[keep] - 1
            items.append(_Item(str(img), a, mask, boxes, labels))
        splits[s] = items
    return classes, splits


# ---- Pascal VOC -------------------------------------------------------------------------------------------------

def _text(node: ET.Element, tag: str, where: str) -> str:
    child = node.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise ValueError(f"{where}: missing <{tag}>")
    return child.text.strip()


def read_voc_xml(xml: Path, image_dirs: list[Path], *, one_based: bool = True
                 ) -> tuple[Path, np.ndarray, list[str], tuple[int, int] | None]:
    """One VOC annotation file: (image path, float32 (k, 4) xyxy boxes in pixel edges, class names, (width, height)
    from ``<size>`` or None). The image is looked up by ``<filename>`` in ``image_dirs``. ``one_based``: the VOC
    devkit's 1-based inclusive indices (``x1 = xmin - 1``); False reads xmin..xmax as pixel edges already."""
    try:
        root = ET.parse(xml).getroot()
    except (ET.ParseError, OSError) as e:
        raise ValueError(f"{xml}: not a readable Pascal VOC xml file ({e})") from None
    filename = (root.findtext("filename") or "").strip() or xml.stem
    candidates = [d / filename for d in image_dirs]
    if not Path(filename).suffix:
        candidates += [d / (filename + s) for d in image_dirs for s in IMAGE_SUFFIXES]
    image = next((c for c in candidates if c.is_file()), None)
    if image is None:
        raise FileNotFoundError(f"{xml}: its image {filename!r} is in none of "
                                f"{', '.join(str(d) for d in dict.fromkeys(image_dirs))}")
    size = None
    node = root.find("size")
    if node is not None:
        try:
            w, h = int(float(node.findtext("width") or 0)), int(float(node.findtext("height") or 0))
        except ValueError:
            raise ValueError(f"{xml}: <size> holds a non-number") from None
        size = (w, h) if w > 0 and h > 0 else None
    boxes, names = [], []
    for i, obj in enumerate(root.findall("object")):
        where = f"{xml}: object {i}"
        names.append(_text(obj, "name", where))
        bb = obj.find("bndbox")
        if bb is None:
            raise ValueError(f"{where}: missing <bndbox>")
        try:
            x1, y1, x2, y2 = (float(_text(bb, t, where)) for t in ("xmin", "ymin", "xmax", "ymax"))
        except ValueError as e:
            raise ValueError(f"{where}: a <bndbox> coordinate is not a number ({e})") from None
        off = 1.0 if one_based else 0.0
        boxes.append([x1 - off, y1 - off, x2, y2])
    return image, np.asarray(boxes, np.float32).reshape(-1, 4), names, size


def _load_voc(root: Path) -> tuple[list[str], dict[str, list[_Item]]]:
    bases = {s: root / s for s in SPLITS if (root / s).is_dir() and _voc_xmls(root / s)}
    lists = {s: root / "ImageSets" / "Main" / f"{s}.txt" for s in SPLITS}
    parsed: dict[str, list] = {}
    if bases:
        if "train" not in bases:
            raise FileNotFoundError(f"{root}: split folders {sorted(bases)} but no {root / 'train'} with xml files")
        for s, b in bases.items():
            parsed[s] = [read_voc_xml(x, _voc_image_dirs(b, x)) for x in _voc_xmls(b)]
    else:
        xmls = _voc_xmls(root)
        if not xmls:
            raise ValueError(f"{root}: no Pascal VOC .xml files (in {root / 'Annotations'} or {root})")
        every = {x.stem: read_voc_xml(x, _voc_image_dirs(root, x)) for x in xmls}
        if lists["train"].is_file():
            for s, f in lists.items():
                if f.is_file():
                    stems = f.read_text().split()
                    missing = [st for st in stems if st not in every]
                    if missing:
                        raise FileNotFoundError(f"{f}: lists {missing[0]!r} but there is no "
                                                f"{xmls[0].parent / missing[0]}.xml")
                    parsed[s] = [every[st] for st in stems]
        else:
            parsed["train"] = list(every.values())
    classes = sorted({n for recs in parsed.values() for _, _, names, _ in recs for n in names})
    index = {c: i for i, c in enumerate(classes)}
    splits = {}
    for s, recs in parsed.items():
        items = []
        for image, boxes, names, size in recs:
            a = read_image(image)
            h, w = a.shape[:2]
            if size is not None and size != (w, h):
                raise ValueError(f"{image}: image is {w}x{h} but its annotation says {size[0]}x{size[1]} <size>")
            b = check_boxes(boxes, w, h, str(image))
            items.append(_Item(str(image), a, None, b, np.asarray([index[n] for n in names], np.int64)))
        splits[s] = items
    return classes, splits


def _voc_xmls(base: Path) -> list[Path]:
    ann = base / "Annotations"
    return sorted((ann if ann.is_dir() else base).glob("*.xml"))


def _voc_image_dirs(base: Path, xml: Path) -> list[Path]:
    return list(dict.fromkeys([base / "JPEGImages", xml.parent, base, base / "images"]))


# ---- COCO -------------------------------------------------------------------------------------------------------

def _coco_files(path: Path) -> dict[str, Path]:
    if path.is_file():
        return {"train": path}
    if (path / "annotations.json").is_file():
        return {"train": path / "annotations.json"}
    found = {s: path / s / "annotations.json" for s in SPLITS if (path / s / "annotations.json").is_file()}
    if not found:
        jsons = sorted(path.glob("*.json")) + sorted((path / "annotations").glob("*.json"))
        for s in SPLITS:
            named = [j for j in jsons if s in j.stem.lower().replace("trainval", "train")]
            if len(named) == 1:
                found[s] = named[0]
        if not found:
            if len(jsons) != 1:
                raise ValueError(f"{path}: {len(jsons)} .json files ({', '.join(j.name for j in jsons) or 'none'}); "
                                 "name the COCO file annotations.json, or give its path")
            found = {"train": jsons[0]}
    if "train" not in found:
        raise FileNotFoundError(f"{path}: COCO files for {sorted(found)} but none for train")
    return found


def _load_coco(path: Path, task: str) -> tuple[list[str], dict[str, list[_Item]]]:
    files = _coco_files(path)
    root = path if path.is_dir() else path.parent
    data = {s: _read_json(f) for s, f in files.items()}
    cats = {s: _coco_categories(d, files[s]) for s, d in data.items()}
    ids, classes = cats["train"]
    for s, (other, _) in cats.items():
        if other != ids:
            raise ValueError(f"{files[s]}: its categories {other} differ from {files['train']}'s {ids}")
    index = {cid: i for i, cid in enumerate(ids)}
    splits = {s: _coco_items(d, files[s], root, index, task, s) for s, d in data.items()}
    return classes, splits


def _read_json(file: Path) -> dict:
    try:
        data = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{file}: not a readable JSON file ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise ValueError(f"{file}: not a COCO annotation file (needs an 'images' list, an 'annotations' list and "
                         "'categories')")
    return data


def _coco_categories(data: dict, file: Path) -> tuple[list[int], list[str]]:
    cats = data.get("categories")
    if not isinstance(cats, list) or not cats:
        raise ValueError(f"{file}: no 'categories' list")
    try:
        pairs = sorted((int(c["id"]), str(c["name"])) for c in cats)
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{file}: a category lacks an integer 'id' or a 'name' ({e!r})") from None
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _coco_items(data: dict, file: Path, root: Path, index: dict[int, int], task: str, split: str) -> list[_Item]:
    dirs = list(dict.fromkeys([file.parent, file.parent / "images", root, root / "images", root / split,
                               root / "images" / split]))
    per_image: dict[int, list[dict]] = {}
    for j, ann in enumerate(data.get("annotations") or []):
        try:
            per_image.setdefault(int(ann["image_id"]), []).append(ann)
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{file}: annotation {j} has no integer 'image_id'") from None
    items = []
    for rec in data["images"]:
        try:
            image_id, name = int(rec["id"]), str(rec["file_name"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{file}: image record {rec!r} needs an integer 'id' and a 'file_name'") from None
        image = next((d / name for d in dirs if (d / name).is_file()), None)
        if image is None:
            raise FileNotFoundError(f"{file}: image {name!r} (id {image_id}) is in none of "
                                    f"{', '.join(map(str, dirs))}")
        a = read_image(image)
        h, w = a.shape[:2]
        if rec.get("width") and rec.get("height") and (int(rec["width"]), int(rec["height"])) != (w, h):
            raise ValueError(f"{image}: image is {w}x{h} but {file} says {rec['width']}x{rec['height']}")
        boxes, labels = [], []
        mask = np.zeros((h, w), np.uint8) if task != "detect" else None
        for ann in per_image.get(image_id, []):
            where = f"{file}: annotation {ann.get('id', '?')} of {image}"
            try:
                cid = int(ann["category_id"])
            except (KeyError, TypeError, ValueError):
                raise ValueError(f"{where}: no integer 'category_id'") from None
            if cid not in index:
                raise ValueError(f"{where}: category_id {cid} is not among the categories {sorted(index)}")
            crowd = bool(ann.get("iscrowd", 0))
            if mask is not None:
                seg = ann.get("segmentation")
                if not seg:
                    raise ValueError(f"{where}: no 'segmentation', which task={task!r} needs")
                region = _decode_segmentation(seg, h, w, where)
                mask[region] = IGNORE if crowd else index[cid] + 1
            if crowd:
                continue
            bbox = ann.get("bbox")
            if not isinstance(bbox, list | tuple) or len(bbox) != 4:
                raise ValueError(f"{where}: 'bbox' must be [x, y, width, height], got {bbox!r}")
            try:
                x, y, bw, bh = (float(v) for v in bbox)
            except (TypeError, ValueError):
                raise ValueError(f"{where}: 'bbox' {bbox!r} holds a non-number") from None
            boxes.append([x, y, x + bw, y + bh])
            labels.append(index[cid])
        b = check_boxes(np.asarray(boxes, np.float32), w, h, f"{image} ({file})")
        items.append(_Item(str(image), a, mask, b, np.asarray(labels, np.int64)))
    return items


def _decode_segmentation(seg, h: int, w: int, where: str) -> np.ndarray:
    """COCO polygons (list of flat [x0, y0, x1, y1, ...]), uncompressed RLE or compressed RLE -> bool (h, w)."""
    from PIL import Image, ImageDraw

    if isinstance(seg, list):
        img = Image.new("L", (w, h), 0)
        draw = ImageDraw.Draw(img)
        for poly in seg:
            if not isinstance(poly, list) or len(poly) < 6 or len(poly) % 2:
                raise ValueError(f"{where}: a polygon must be a flat list of at least 3 x, y pairs")
            draw.polygon([(float(poly[i]), float(poly[i + 1])) for i in range(0, len(poly), 2)], fill=1)
        return np.asarray(img, dtype=bool)
    if isinstance(seg, dict) and "counts" in seg:
        size = seg.get("size")
        if not size or [int(v) for v in size] != [h, w]:
            raise ValueError(f"{where}: RLE size {size} differs from the image's [{h}, {w}]")
        counts = seg["counts"]
        counts = _rle_from_string(counts) if isinstance(counts, str) else [int(c) for c in counts]
        if min(counts, default=0) < 0 or sum(counts) != h * w:
            raise ValueError(f"{where}: RLE counts cover {sum(counts)} pixels, the image has {h * w}")
        values = np.zeros(len(counts), bool)
        values[1::2] = True
        flat = np.repeat(values, counts)
        return flat.reshape(w, h).T  # COCO runs go down the columns
    raise ValueError(f"{where}: 'segmentation' is neither polygons nor RLE")


def _rle_from_string(s: str) -> list[int]:
    """pycocotools' compressed RLE (5 bits per character, offset 48, counts after the second stored as deltas)."""
    counts: list[int] = []
    p = 0
    while p < len(s):
        x, k, more = 0, 0, True
        while more:
            c = ord(s[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts
