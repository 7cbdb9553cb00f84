"""The user's layouts (image + mask folders, Pascal VOC, COCO): tiny hand-made folders load, and each mistake is
rejected with a message naming the file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from chipfit.data.dense import detect_format, load_dense
from chipfit.data.dense._instances import connected_components, instance_boxes
from chipfit.data.dense.formats import _rle_from_string
from tests.data.test_dense_transforms import mask_box

H, W = 32, 48
PALETTE = [0, 0, 0, 200, 0, 0, 0, 200, 0] + [0] * (3 * 252) + [255, 255, 255]


def scene(i: int, h: int = H, w: int = W) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int, int, int, int]]]:
    """An RGB image with two rectangles (class 1 and class 2), its mask, and (x1, y1, x2, y2, value) per object."""
    img = np.full((h, w, 3), 10, np.uint8)
    mask = np.zeros((h, w), np.uint8)
    objs = [(2 + i, 3, 14 + i, 12, 1), (w - 20, h - 15, w - 4, h - 2 - i % 3, 2)]
    for x1, y1, x2, y2, v in objs:
        img[y1:y2, x1:x2] = 90 * v
        mask[y1:y2, x1:x2] = v
    return img, mask, objs


def save_mask(path: Path, mask: np.ndarray, palette: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.frombytes("P" if palette else "L", (mask.shape[1], mask.shape[0]), np.ascontiguousarray(mask).tobytes())
    if palette:
        im.putpalette(PALETTE)
    im.save(path)


def save_image(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)


def mask_folder(root: Path, n: int = 6, classes: list[str] | None = ("cat", "dog"), palette: bool = True) -> Path:
    for i in range(n):
        img, mask, _ = scene(i)
        save_image(root / "images" / f"im{i}.png", img)
        save_mask(root / "masks" / f"im{i}.png", mask, palette)
    if classes:
        (root / "classes.txt").write_text("\n".join(classes) + "\n")
    return root


def assert_boxes_on_masks(split, tol: float = 0.0) -> None:
    for i in range(len(split)):
        for box, label in zip(split.boxes[i].tolist(), split.labels[i].tolist(), strict=True):
            mb = mask_box(split.masks[i], label + 1)
            assert mb is not None and max(abs(a - b) for a, b in zip(box, mb, strict=True)) <= tol, (box, mb)


# ---- image + mask folders ---------------------------------------------------------------------------------------

def test_mask_folder_loads_with_classes_and_component_boxes(tmp_path):
    root = mask_folder(tmp_path / "d")
    assert detect_format(root) == "masks"
    b = load_dense(root, "both", val_fraction=0.34, seed=0)
    assert b.classes == ["cat", "dog"] and b.num_classes == 2 and b.task == "both"
    assert len(b.train) == 4 and len(b.val) == 2 and b.test is b.val
    assert b.train.images.shape == (4, 3, H, W) and b.train.masks.shape == (4, H, W)
    assert set(b.train.masks.unique().tolist()) == {0, 1, 2}
    assert all(len(bx) == 2 for bx in b.train.boxes)
    assert_boxes_on_masks(b.train)
    i = int(Path(b.train.names[0]).stem[2:])
    _, _, objs = scene(i)
    assert b.train.boxes[0].tolist() == [list(map(float, o[:4])) for o in objs]
    assert b.train.names[0].endswith(".png") and str(root) in b.train.names[0]


def test_grey_index_masks_without_classes_txt_and_segment_only(tmp_path):
    root = mask_folder(tmp_path / "d", classes=None, palette=False)
    b = load_dense(root, "segment", val_fraction=0.0)
    assert b.classes == ["class1", "class2"]
    assert all(len(bx) == 0 for bx in b.train.boxes)  # boxes are made only when the task needs them
    with pytest.raises(ValueError, match="classes"):
        root2 = tmp_path / "empty_masks"
        save_image(root2 / "images" / "a.png", scene(0)[0])
        save_mask(root2 / "masks" / "a.png", np.zeros((H, W), np.uint8))
        load_dense(root2, "segment")


def test_classes_txt_may_name_the_background_first(tmp_path):
    root = mask_folder(tmp_path / "d", classes=["background", "cat", "dog"])
    assert load_dense(root, "segment").classes == ["cat", "dog"]


def test_mask_folder_split_subfolders(tmp_path):
    root = tmp_path / "d"
    for split, n in (("train", 3), ("val", 2), ("test", 1)):
        mask_folder(root / split, n, classes=None)
    (root / "classes.txt").write_text("cat\ndog\n")
    b = load_dense(root, "detect")
    assert (len(b.train), len(b.val), len(b.test)) == (3, 2, 1)
    assert b.train.masks is None  # a detect bundle carries no masks
    assert all("val" in n for n in b.val.names) and all("test" in n for n in b.test.names)


def test_images_of_other_sizes_are_letterboxed_with_their_masks(tmp_path):
    root = mask_folder(tmp_path / "d", n=3)
    img, mask, _ = scene(1, h=64, w=48)  # taller: fit to 32 rows, padded left and right
    save_image(root / "images" / "tall.png", img)
    save_mask(root / "masks" / "tall.png", mask)
    b = load_dense(root, "both", val_fraction=0.0)
    i = [Path(n).stem for n in b.train.names].index("tall")
    assert b.train.images.shape[1:] == (3, H, W)
    m = b.train.masks[i]
    assert (m[:, :12] == 255).all() and (m[:, -12:] == 255).all()  # padding is ignore
    assert_boxes_on_masks(b.train, tol=0.5 + 1e-4)
    b2 = load_dense(root, "both", val_fraction=0.0, image_size=(20, 40))
    assert b2.image_size == (20, 40)
    assert_boxes_on_masks(b2.train, tol=0.5 + 1e-4)


def test_grey_images_stay_one_channel(tmp_path):
    root = tmp_path / "d"
    for i in range(2):
        img, mask, _ = scene(i)
        save_image(root / "images" / f"g{i}.png", img[:, :, 0])
        save_mask(root / "masks" / f"g{i}.png", mask)
    assert load_dense(root, "segment", val_fraction=0.0).in_chans == 1


def test_mask_folder_errors_name_the_file(tmp_path):
    root = mask_folder(tmp_path / "a", n=2)
    (root / "masks" / "im1.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"im1\.png: image without a mask"):
        load_dense(root, "segment")

    root = mask_folder(tmp_path / "b", n=2)
    save_mask(root / "masks" / "orphan.png", np.zeros((H, W), np.uint8))
    with pytest.raises(FileNotFoundError, match=r"orphan\.png: mask without an image"):
        load_dense(root, "segment")

    root = mask_folder(tmp_path / "c", n=2)
    save_mask(root / "masks" / "im0.png", np.zeros((H + 1, W), np.uint8))
    with pytest.raises(ValueError, match=r"im0\.png: mask is 48x33 but its image .*im0\.png is 48x32"):
        load_dense(root, "segment")

    root = mask_folder(tmp_path / "d", n=2)
    bad = scene(0)[1]
    bad[0, 0] = 3
    save_mask(root / "masks" / "im0.png", bad)
    with pytest.raises(ValueError, match=r"masks/im0\.png: mask value 3, but .*classes\.txt names only 2 classes"):
        load_dense(root, "segment")

    root = mask_folder(tmp_path / "e", n=2)
    Image.fromarray(scene(0)[0]).save(root / "masks" / "im0.png")
    with pytest.raises(ValueError, match=r"masks/im0\.png: a RGB mask"):
        load_dense(root, "segment")

    root = mask_folder(tmp_path / "f", n=2)
    (root / "images" / "im1.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(ValueError, match=r"images/im1\.png: not a readable image"):
        load_dense(root, "segment")

    with pytest.raises(ValueError, match="empty"):
        (tmp_path / "g").mkdir()
        load_dense(tmp_path / "g")
    (tmp_path / "h").mkdir()
    (tmp_path / "h" / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match=r"h: no detection/segmentation data recognised"):
        load_dense(tmp_path / "h")
    save_image(tmp_path / "j" / "images" / "a.png", scene(0)[0])
    with pytest.raises(FileNotFoundError, match=r"j/masks: folder not found"):
        load_dense(tmp_path / "j")
    with pytest.raises(FileNotFoundError, match="neither"):
        load_dense(tmp_path / "nowhere")
    with pytest.raises(TypeError, match="unknown option"):
        load_dense(mask_folder(tmp_path / "i", n=2), n_train=3)
    with pytest.raises(ValueError, match="task must be"):
        load_dense(tmp_path / "i", "classify")


# ---- Pascal VOC -------------------------------------------------------------------------------------------------

def voc_xml(filename: str, objects: list[tuple[str, float, float, float, float]], size=(W, H)) -> str:
    objs = "".join(f"<object><name>{n}</name><difficult>0</difficult><bndbox><xmin>{a}</xmin><ymin>{b}</ymin>"
                   f"<xmax>{c}</xmax><ymax>{d}</ymax></bndbox></object>" for n, a, b, c, d in objects)
    return (f"<annotation><folder>x</folder><filename>{filename}</filename><size><width>{size[0]}</width>"
            f"<height>{size[1]}</height><depth>3</depth></size>{objs}</annotation>")


def voc_folder(root: Path, n: int = 4, split_files: bool = False) -> Path:
    (root / "Annotations").mkdir(parents=True)
    for i in range(n):
        save_image(root / "JPEGImages" / f"v{i}.png", scene(i)[0])
        objs = [("dog", 3 + i, 4, 14 + i, 12), ("cat", 29, 18, 44, 30)] if i % 2 == 0 else [("dog", 1, 1, W, H)]
        (root / "Annotations" / f"v{i}.xml").write_text(voc_xml(f"v{i}.png", objs))
    if split_files:
        (root / "ImageSets" / "Main").mkdir(parents=True)
        (root / "ImageSets" / "Main" / "train.txt").write_text("v0\nv1\n")
        (root / "ImageSets" / "Main" / "val.txt").write_text("v2\n")
        (root / "ImageSets" / "Main" / "test.txt").write_text("v3\n")
    return root


def test_voc_loads_one_based_boxes_and_sorted_classes(tmp_path):
    root = voc_folder(tmp_path / "voc")
    assert detect_format(root) == "voc"
    b = load_dense(root, val_fraction=0.0)
    assert b.classes == ["cat", "dog"] and b.task == "detect" and b.train.masks is None
    i = [Path(n).stem for n in b.train.names].index("v0")
    assert b.train.boxes[i].tolist() == [[2, 3, 14, 12], [28, 17, 44, 30]]  # xmin - 1, ymin - 1, xmax, ymax
    assert b.train.labels[i].tolist() == [1, 0]
    assert b.train.boxes[[Path(n).stem for n in b.train.names].index("v1")].tolist() == [[0, 0, W, H]]
    b.train.check(b.num_classes)


def test_voc_image_sets_and_images_next_to_the_xml(tmp_path):
    b = load_dense(voc_folder(tmp_path / "voc", split_files=True))
    assert [Path(n).stem for n in b.train.names] == ["v0", "v1"]
    assert [Path(n).stem for n in b.val.names] == ["v2"] and [Path(n).stem for n in b.test.names] == ["v3"]
    flat = tmp_path / "flat"
    flat.mkdir()
    save_image(flat / "a.png", scene(0)[0])
    (flat / "a.xml").write_text(voc_xml("a", [("tree", 5, 5, 10, 10)]))  # filename without its suffix
    b = load_dense(flat, val_fraction=0.0)
    assert b.classes == ["tree"] and b.train.boxes[0].tolist() == [[4, 4, 10, 10]]


def test_voc_rejects_segment_tasks(tmp_path):
    with pytest.raises(ValueError, match="boxes only"):
        load_dense(voc_folder(tmp_path / "voc"), "segment")


def test_voc_errors_name_the_file(tmp_path):
    root = voc_folder(tmp_path / "a", n=2)
    (root / "JPEGImages" / "v1.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"Annotations/v1\.xml: its image 'v1\.png' is in none of"):
        load_dense(root)

    root = voc_folder(tmp_path / "b", n=2)
    (root / "Annotations" / "v1.xml").write_text(voc_xml("v1.png", [("dog", 1, 1, W + 3, 10)]))
    with pytest.raises(ValueError, match=r"v1\.png: box 0 .* lies outside the 48x32 image"):
        load_dense(root)

    root = voc_folder(tmp_path / "c", n=2)
    (root / "Annotations" / "v1.xml").write_text(voc_xml("v1.png", [("dog", 1, 1, 10, 10), ("dog", 9, 1, 5, 10)]))
    with pytest.raises(ValueError, match=r"v1\.png: box 1 .* is empty: need x2 > x1"):
        load_dense(root)

    root = voc_folder(tmp_path / "d", n=2)
    (root / "Annotations" / "v0.xml").write_text("<annotation><filename>v0.png</filename>")
    with pytest.raises(ValueError, match=r"v0\.xml: not a readable Pascal VOC xml"):
        load_dense(root)

    root = voc_folder(tmp_path / "e", n=2)
    (root / "Annotations" / "v0.xml").write_text(voc_xml("v0.png", [("dog", 1, 1, 10, 10)], size=(50, 32)))
    with pytest.raises(ValueError, match=r"v0\.png: image is 48x32 but its annotation says 50x32"):
        load_dense(root)

    root = voc_folder(tmp_path / "f", n=2)
    (root / "Annotations" / "v0.xml").write_text(voc_xml("v0.png", [("dog", 1, 1, "ten", 10)]))
    with pytest.raises(ValueError, match=r"v0\.xml: object 0: a <bndbox> coordinate is not a number"):
        load_dense(root)


def test_voc_box_overhanging_by_less_than_a_pixel_is_clipped(tmp_path):
    root = voc_folder(tmp_path / "a", n=1)
    (root / "Annotations" / "v0.xml").write_text(voc_xml("v0.png", [("dog", 0.5, 1, W + 0.8, H + 1)]))
    b = load_dense(root, val_fraction=0.0)
    assert b.train.boxes[0].tolist() == [[0, 0, W, H]]


# ---- COCO -------------------------------------------------------------------------------------------------------

def rle_to_string(counts: list[int]) -> str:
    """pycocotools' rleToString, written out independently of the decoder under test."""
    out = []
    for i, x in enumerate(counts):
        if i > 2:
            x -= counts[i - 2]
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = x != -1 if c & 0x10 else x != 0
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def rle_counts(region: np.ndarray) -> list[int]:
    flat = region.T.ravel().astype(np.int8)  # column-major, as COCO
    change = np.flatnonzero(np.diff(np.concatenate([[0], flat, [2]])) != 0)
    counts = np.diff(np.concatenate([[0], change])).tolist()
    return counts if flat[0] == 0 else [0, *counts]


def test_rle_string_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(20):
        counts = rng.integers(0, 3000, rng.integers(1, 40)).tolist()
        assert _rle_from_string(rle_to_string(counts)) == counts


def coco_folder(root: Path, n: int = 3, segment: bool = True) -> Path:
    images, anns = [], []
    for i in range(n):
        img, _, objs = scene(i)
        save_image(root / "images" / f"c{i}.png", img)
        images.append({"id": 100 + i, "file_name": f"c{i}.png", "width": W, "height": H})
        for j, (x1, y1, x2, y2, v) in enumerate(objs):
            ann = {"id": 10 * i + j, "image_id": 100 + i, "category_id": 7 if v == 1 else 3,
                   "bbox": [x1, y1, x2 - x1, y2 - y1], "iscrowd": 0}
            if segment:
                region = np.zeros((H, W), bool)
                region[y1:y2, x1:x2] = True
                ann["segmentation"] = ([[x1, y1, x2 - 1, y1, x2 - 1, y2 - 1, x1, y2 - 1]] if j == 0 else
                                       {"size": [H, W], "counts": rle_to_string(rle_counts(region))})
            anns.append(ann)
    data = {"images": images, "annotations": anns,
            "categories": [{"id": 7, "name": "shirt"}, {"id": 3, "name": "bag"}]}
    root.mkdir(parents=True, exist_ok=True)
    (root / "annotations.json").write_text(json.dumps(data))
    return root


def test_coco_loads_xywh_boxes_ids_in_order_and_masks(tmp_path):
    root = coco_folder(tmp_path / "coco")
    assert detect_format(root) == "coco" and detect_format(root / "annotations.json") == "coco"
    b = load_dense(root, "both", val_fraction=0.0)
    assert b.classes == ["bag", "shirt"]  # category ids 3, 7 -> labels 0, 1
    i = [Path(n).stem for n in b.train.names].index("c0")
    _, mask, objs = scene(0)
    assert b.train.boxes[i].tolist() == [list(map(float, o[:4])) for o in objs]
    assert b.train.labels[i].tolist() == [1, 0]
    expected = np.where(mask == 1, 2, np.where(mask == 2, 1, 0))  # shirt (label 1) -> 2, bag (label 0) -> 1
    assert torch.equal(b.train.masks[i], torch.from_numpy(expected.astype(np.uint8)))
    assert_boxes_on_masks(b.train)
    assert len(load_dense(root / "annotations.json", val_fraction=0.0).train) == 3


def test_coco_crowd_regions_are_ignored_and_give_no_box(tmp_path):
    root = coco_folder(tmp_path / "coco", n=1)
    data = json.loads((root / "annotations.json").read_text())
    data["annotations"][1]["iscrowd"] = 1
    (root / "annotations.json").write_text(json.dumps(data))
    b = load_dense(root, "both", val_fraction=0.0)
    assert b.train.labels[0].tolist() == [1]
    _, mask, _ = scene(0)
    assert (b.train.masks[0][torch.from_numpy(mask == 2)] == 255).all()


def test_coco_segment_needs_segmentation(tmp_path):
    root = coco_folder(tmp_path / "coco", segment=False)
    assert load_dense(root, "detect", val_fraction=0.0).train.masks is None
    with pytest.raises(ValueError, match=r"annotations\.json: annotation 0 of .*c0\.png: no 'segmentation'"):
        load_dense(root, "segment")


def test_coco_split_files(tmp_path):
    for split, n in (("train", 3), ("val", 1)):
        coco_folder(tmp_path / "c" / split, n)
    b = load_dense(tmp_path / "c", "detect")
    assert len(b.train) == 3 and len(b.val) == 1


def test_coco_errors_name_the_file(tmp_path):
    def broken(name, edit):
        root = coco_folder(tmp_path / name)
        data = json.loads((root / "annotations.json").read_text())
        edit(data)
        (root / "annotations.json").write_text(json.dumps(data))
        return root

    root = coco_folder(tmp_path / "a")
    (root / "images" / "c1.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"annotations\.json: image 'c1\.png' \(id 101\) is in none of"):
        load_dense(root)
    root = broken("b", lambda d: d["annotations"][2].update(bbox=[40, 2, 12, 5]))
    with pytest.raises(ValueError, match=r"c1\.png \(.*annotations\.json\): box 0 .* lies outside the 48x32 image"):
        load_dense(root)
    root = broken("c", lambda d: d["annotations"][0].update(bbox=[4, 2, 0, 5]))
    with pytest.raises(ValueError, match=r"c0\.png \(.*annotations\.json\): box 0 .* is empty"):
        load_dense(root)
    root = broken("d", lambda d: d["annotations"][0].update(category_id=99))
    with pytest.raises(ValueError, match=r"annotations\.json: annotation 0 of .*category_id 99"):
        load_dense(root)
    root = broken("e", lambda d: d["images"][0].update(width=50))
    with pytest.raises(ValueError, match=r"c0\.png: image is 48x32 but .*annotations\.json says 50x32"):
        load_dense(root)
    root = coco_folder(tmp_path / "f")
    (root / "annotations.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"annotations\.json: not a readable JSON file"):
        load_dense(root)
    root = coco_folder(tmp_path / "g")
    (root / "annotations.json").rename(root / "a.json")
    (root / "b.json").write_text("{}")
    with pytest.raises(ValueError, match="2 .json files"):
        load_dense(root)


# ---- boxes from label maps ------------------------------------------------------------------------------------

def test_connected_components_and_instance_boxes():
    mask = np.zeros((12, 16), np.uint8)
    mask[1:4, 1:5] = 1
    mask[4, 5] = 1  # touches the first region diagonally: the same object (8-connected)
    mask[8:11, 2:6] = 1
    mask[8:11, 6:9] = 2  # touches but another class: another object
    mask[0, 15] = 255
    for i in range(12):  # a long diagonal-free staircase needs many passes
        mask[i, 12 + i % 2] = 1
    inst, cls = connected_components(mask)
    boxes, area = instance_boxes(inst, len(cls))
    found = sorted(zip(boxes.tolist(), cls.tolist(), area.tolist(), strict=True))
    assert found == sorted([([1, 1, 6, 5], 1, 13), ([2, 8, 6, 11], 1, 12), ([6, 8, 9, 11], 2, 9),
                            ([12, 0, 14, 12], 1, 12)])
    assert connected_components(np.zeros((3, 3), np.uint8))[1].size == 0
