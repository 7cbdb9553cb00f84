"""Random architectures: every family builds at every size, and a seed gives the same network."""

from __future__ import annotations

import random

import pytest
import torch

from chipfit.models import ModelConfig, build_model
from chipfit.models.sample import FAMILIES, SIZES, random_config


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_builds_and_runs_at_small_and_large_sizes(family):
    rng = random.Random(3)
    for size in (SIZES[0], SIZES[-1]):
        cfg = random_config(rng, family, size)
        net = build_model(cfg).eval()
        with torch.no_grad():
            out = net(torch.zeros(1, cfg.in_chans, size, size))
        assert out.shape == (1, cfg.num_classes)
        assert ModelConfig.from_dict(cfg.to_dict()) == cfg


def test_a_seed_gives_the_same_networks_and_another_seed_others():
    a = [random_config(random.Random(1)) for _ in range(3)]
    b = [random_config(random.Random(1)) for _ in range(3)]
    c = [random_config(random.Random(2)) for _ in range(3)]
    assert a == b and a != c


def test_unknown_family_is_refused():
    with pytest.raises(ValueError, match="unknown family"):
        random_config(random.Random(0), "resnet")
