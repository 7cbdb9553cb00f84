"""The supernet: a path equals the zoo network holding its sliced weights, kernels share by centre crop, widths by
prefix, BatchNorm recalibration is the average of batch statistics, training resumes and checkpoints name their
space."""

from __future__ import annotations

import random

import pytest
import torch

from chipfit.nas.space import Arch, Op, SearchSpace, SpaceError, StageSpace, load_space
from chipfit.nas.supernet import (
    SlicedBatchNorm,
    Supernet,
    estimate_accuracy,
    extract,
    load_supernet,
    train_supernet,
)
from chipfit.train import CheckpointError, TrainConfig


def _perturbed(space: SearchSpace, seed: int = 0) -> Supernet:
    """A supernet with weights far from their initial values (zeros, ones), so equalities are not trivial."""
    torch.manual_seed(seed)
    net = Supernet(space)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn_like(p) * 0.2 + (1.0 if p.ndim == 1 else 0.0))
    return net


@pytest.mark.parametrize("name", ["quadranet_s28", "mbconv_s28"])
def test_path_equals_the_zoo_network_with_its_weights(name, one_thread):
    space = load_space(name)
    net = _perturbed(space)
    x = torch.randn(4, 1, 28, 28)
    rng = random.Random(1)
    archs = [space.sample(rng) for _ in range(4)] + [space.largest()]
    for arch in archs:
        net.recalibrate(arch, [torch.randn(8, 1, 28, 28) for _ in range(2)])
        net.set_arch(arch).eval()
        zoo = extract(net, arch).eval()
        with torch.no_grad():
            a, b = net(x), zoo(x)
        assert a.std() > 0.1  # a real output, not a collapsed one
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    # and two different points give different functions
    with torch.no_grad():
        outs = [extract(net, a).eval()(x) for a in archs[:2]]
    assert (outs[0] - outs[1]).abs().max() > 1e-3


def test_kernels_share_by_centre_crop(one_thread):
    space = load_space("quadranet_s28")
    net = _perturbed(space).eval()
    ops = space.stages[0].slot_ops(0)
    k3 = next(i for i, o in enumerate(ops) if o == Op("quadra", 3, 2.0))
    k7 = next(i for i, o in enumerate(ops) if o == Op("quadra", 7, 2.0))
    base = space.largest()

    def with_op(k: int) -> Arch:
        return Arch(base.widths, ((k, base.ops[0][1]),) + base.ops[1:], base.resolution)

    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        y3, y7 = net.set_arch(with_op(k3))(x), net.set_arch(with_op(k7))(x)
        w = net.slots[0][0]["quadra"].mixer.a.weight
        w[:, :, 0, 0] += 5.0  # a corner: outside the centre 3x3
        z3, z7 = net.set_arch(with_op(k3))(x), net.set_arch(with_op(k7))(x)
        w[:, :, 3, 3] += 5.0  # the centre
        c3 = net.set_arch(with_op(k3))(x)
    torch.testing.assert_close(y3, z3)
    assert (y7 - z7).abs().max() > 1e-3
    assert (z3 - c3).abs().max() > 1e-3


def test_widths_share_by_prefix(one_thread):
    space = load_space("quadranet_s28")
    net = _perturbed(space).eval()
    big = space.largest()
    narrow = Arch((0,) + big.widths[1:], big.ops, big.resolution)  # stage 0 at 16 of 32 channels
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        before = net.set_arch(narrow)(x)
        net.stem.weight[20:] += torch.randn_like(net.stem.weight[20:])  # channels the narrow stem does not have
        after_narrow, after_wide = net.set_arch(narrow)(x), net.set_arch(big)(x)
        net.stem.weight[:16] += torch.randn_like(net.stem.weight[:16])  # (a constant would vanish in LayerNorm)
        changed = net.set_arch(narrow)(x)
    torch.testing.assert_close(before, after_narrow)
    assert after_wide.isfinite().all()
    assert (changed - before).abs().max() > 1e-3


def test_recalibration_averages_batch_statistics(one_thread):
    space = load_space("mbconv_s28")
    net = _perturbed(space)
    arch = space.sample(random.Random(0))
    batches = [torch.randn(6, 1, 28, 28) * (1 + k) for k in range(3)]
    assert net.recalibrate(arch, batches) == 3
    # the stem's BatchNorm sees the stem conv's output: its running mean is the mean of the three batch means
    with torch.no_grad():
        c0 = space.stem_channels
        conv = [net.stem(b, c0, stride=space.stem_stride, padding=net._stem_pad) for b in batches]
    want_mean = torch.stack([y.mean((0, 2, 3)) for y in conv]).mean(0)
    want_var = torch.stack([y.var((0, 2, 3), unbiased=True) for y in conv]).mean(0)
    bn = net.stem_norm
    assert isinstance(bn, SlicedBatchNorm) and int(bn.batches) == 3
    torch.testing.assert_close(bn.running_mean[:c0], want_mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(bn.running_var[:c0], want_var, rtol=1e-5, atol=1e-6)
    # a space without BatchNorm has nothing to recalibrate
    assert Supernet(load_space("quadranet_s28")).recalibrate(arch, batches) == 0


def test_training_draws_paths_from_torchs_rng():
    space = load_space("quadranet_s28")
    net = Supernet(space).train()
    torch.manual_seed(3)
    first = [net.current_arch() for _ in range(5)]
    torch.manual_seed(3)
    again = [net.current_arch() for _ in range(5)]
    assert first == again and len({a.key() for a in first}) == 5
    net.eval()
    assert net.current_arch() == space.largest()
    fixed = space.sample(random.Random(0))
    assert net.train().set_arch(fixed).current_arch() == fixed


def test_unsupported_op_kind_is_refused():
    hor = SearchSpace("h", "metaformer", (StageSpace(1, (16,), (Op("hor", 3, 2.0),), stride=1),))
    with pytest.raises(SpaceError, match="hor"):
        Supernet(hor)


def test_train_resume_and_checkpoint(tmp_path, tiny_data, one_thread):
    space = load_space("quadranet_s28")
    cfg = TrainConfig(epochs=2, batch_size=16, lr=1e-3, warmup_epochs=0, out=str(tmp_path / "sn"), progress=False,
                      max_steps_per_epoch=2)
    res = train_supernet(space, tiny_data, cfg)
    assert len(res.history) == 2 and not res.interrupted
    net = load_supernet(tmp_path / "sn" / "last.pt")
    assert net.space.to_dict() == space.to_dict()
    for (k, a), b in zip(net.state_dict().items(), res.model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=k)
    arch = space.sample(random.Random(2))
    acc = estimate_accuracy(net, arch, tiny_data, n_val=10, calib_batches=1, batch_size=8)
    assert 0.0 <= acc <= 1.0
    assert acc == estimate_accuracy(net, arch, tiny_data, n_val=10, calib_batches=1, batch_size=8)
    # resuming with another space is refused, naming what differs
    other = load_space("mbconv_s28")
    with pytest.raises(CheckpointError, match="different architecture"):
        train_supernet(other, tiny_data, TrainConfig(**{**cfg.to_dict(), "resume": True}))


def test_a_zoo_checkpoint_is_not_a_supernet(tmp_path, tiny_data, one_thread):
    from chipfit.models import create_model
    from chipfit.train import fit

    fit(create_model("quadranet_s28"), tiny_data, TrainConfig(epochs=1, batch_size=16, out=str(tmp_path / "z"),
                                                             progress=False, max_steps_per_epoch=1))
    with pytest.raises(CheckpointError, match="not a search supernet"):
        load_supernet(tmp_path / "z" / "last.pt")


DIST = """
import os, sys, torch
sys.path.insert(0, {root!r})
from tests.nas.conftest import synthetic_bundle
from chipfit.nas import load_space
from chipfit.nas.supernet import Supernet
from chipfit.train import TrainConfig, fit
torch.set_num_threads(1)
cfg = TrainConfig(epochs=2, batch_size=8, lr=1e-3, warmup_epochs=0, progress=False, max_steps_per_epoch=2)
net = Supernet(load_space("mbconv_s28"))
init = {{k: v.clone() for k, v in net.state_dict().items()}}
r = fit(net, synthetic_bundle(), cfg)
torch.save({{"state": r.model.state_dict(), "init": init, "epochs": len(r.history)}},
           {out!r} + f"/rank{{os.environ['RANK']}}.pt")
"""


def test_two_processes_train_one_supernet(tmp_path):
    """Under torchrun each process trains one path per step (DistributedDataParallel with unused weights) and
    the ranks end with identical weights."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    script = tmp_path / "dist.py"
    script.write_text(DIST.format(root=str(root), out=str(tmp_path)))
    torchrun = Path(sys.executable).with_name("torchrun")
    res = subprocess.run([str(torchrun), "--nproc_per_node", "2", "--master_port", "29541", str(script)],
                         env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=root, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    ra, rb = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert ra["epochs"] == rb["epochs"] == 2
    a, b = ra["state"], rb["state"]
    assert any(not torch.equal(a[k], ra["init"][k]) for k in a)  # it trained
    for k in a:
        assert torch.equal(a[k], b[k]), k
