"""Small data for the search tests: a synthetic bundle in memory, and a class-per-folder tree of PNGs on disk."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from chipfit.data.datasets import DataBundle, Split


def synthetic_bundle(n: int = 96, side: int = 28, classes: int = 10, seed: int = 0) -> DataBundle:
    """Images whose class is written in their brightness pattern (learnable in a few steps), split 64/16/16 %."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    images = torch.rand(n, 1, side, side, generator=g) * 0.3
    for c in range(classes):
        rows = slice(2 * c % side, 2 * c % side + 3)
        images[labels == c, :, rows, :] += 0.7
    images = (images * 255).clamp(0, 255).to(torch.uint8)
    a, b = int(n * 0.64), int(n * 0.8)
    return DataBundle("synthetic", [str(c) for c in range(classes)], Split(images[:a], labels[:a]),
                      Split(images[a:b], labels[a:b]), Split(images[b:], labels[b:]), mean=[0.5], std=[0.3],
                      augment=False)


@pytest.fixture
def tiny_data() -> DataBundle:
    return synthetic_bundle()


@pytest.fixture(scope="session")
def png_tree(tmp_path_factory) -> Path:
    """train/ and test/ folders of 28x28 grey PNGs, two classes (dark and bright), 24 images each."""
    from PIL import Image

    root = tmp_path_factory.mktemp("pngs")
    g = torch.Generator().manual_seed(0)
    for split, n in (("train", 24), ("test", 8)):
        for c, base in (("dark", 40), ("bright", 200)):
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(n):
                px = (base + torch.randint(-30, 30, (28, 28), generator=g)).clamp(0, 255).to(torch.uint8)
                Image.fromarray(px.numpy(), mode="L").save(d / f"{i}.png")
    return root
