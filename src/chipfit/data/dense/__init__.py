"""Dense-task data (detection and segmentation): records, transforms that keep boxes and masks aligned, the user's
image + mask / Pascal VOC / COCO folders, Fashion-MNIST scenes, and the real tree-crown and nuclei sets."""

from chipfit.data.dense.formats import detect_format, load_dense_folder
from chipfit.data.dense.load import load_dense
from chipfit.data.dense.real import FetchError, load_nuclei, load_trees
from chipfit.data.dense.records import DenseBundle, DenseSplit
from chipfit.data.dense.scenes import load_scenes, make_scenes
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

__all__ = ["IGNORE", "DenseBundle", "DenseSplit", "FetchError", "Sample", "augment", "clip_boxes", "crop",
           "detect_format", "hflip", "letterbox", "load_dense", "load_dense_folder", "load_nuclei", "load_scenes",
           "load_trees", "make_scenes", "random_crop", "random_scale", "resize"]
