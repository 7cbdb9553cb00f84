"""Real data for training: Fashion-MNIST from its Debian package, and class-per-folder image trees."""

from chipfit.data.datasets import (
    FASHION_CLASSES,
    DataBundle,
    Split,
    fashion_mnist_dir,
    load_data,
    load_fashion_mnist,
    load_folder,
)
from chipfit.data.dense import DenseBundle, DenseSplit, load_dense
from chipfit.data.idx import IdxError, read_idx, write_idx

__all__ = ["FASHION_CLASSES", "DataBundle", "IdxError", "Split", "fashion_mnist_dir", "load_data",
           "load_fashion_mnist", "load_folder", "read_idx", "write_idx"]
__all__ += ["DenseBundle", "DenseSplit", "load_dense"]
