"""The PyTorch front end against fvcore (an independent counter), and its handling of bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from chipfit.cost import CaptureError, analyze, capture_torch
from tests.cost.nets import NETS

fvcore = pytest.importorskip("fvcore.nn")


def _fvcore_macs(model: nn.Module, shape) -> dict[str, int]:
    fa = fvcore.FlopCountAnalysis(model, torch.zeros(shape))
    fa.unsupported_ops_warnings(False)
    fa.uncalled_modules_warnings(False)
    return dict(fa.by_operator())


@pytest.mark.parametrize("name", sorted(NETS))
def test_macs_match_fvcore(name):
    """fvcore counts one multiply-add as one 'flop' for conv/linear/matmul: exactly our MACs."""
    cls, shape = NETS[name]
    model = cls().eval()
    prof = analyze(capture_torch(model, input_shape=shape), fused=False)
    ours = prof.by_op_type()
    theirs = _fvcore_macs(model, shape)
    assert ours["conv"].macs == theirs.get("conv", 0) if "conv" in ours else "conv" not in theirs
    fv_linear = theirs.get("linear", 0) + theirs.get("addmm", 0)
    fv_matmul = theirs.get("matmul", 0) + theirs.get("bmm", 0) + theirs.get("einsum", 0)
    assert ours["linear"].macs == fv_linear
    assert ours.get("matmul", type(ours["linear"])()).macs == fv_matmul
    assert prof.total.params == sum(p.numel() for p in model.parameters())
    assert not prof.unsupported


def test_meta_and_real_capture_agree():
    cls, shape = NETS["resnet"]
    model = cls().eval()
    meta = analyze(capture_torch(model, input_shape=shape, mode="meta"))
    real = analyze(capture_torch(model, input_shape=shape, mode="real"))
    assert meta.graph.capture == "meta" and real.graph.capture == "real"
    assert meta.total == real.total


def test_model_that_cannot_run_on_meta_falls_back_to_real():
    class DataDependent(nn.Module):
        def forward(self, x):
            return x * 2 if x.sum().item() >= 0 else x  # .item() needs real data

    g = capture_torch(DataDependent(), input_shape=(1, 3, 4, 4))
    assert g.capture == "real"
    assert any(n.kind == "mul" for n in g.nodes)


def test_wrong_input_shape_names_the_shape():
    with pytest.raises(CaptureError, match=r"1x5x8x8.*channels|1x5x8x8"):
        capture_torch(nn.Conv2d(3, 4, 3), input_shape=(1, 5, 8, 8))


def test_module_attribution_and_training_mode_restored():
    cls, shape = NETS["resnet"]
    model = cls()
    model.train()
    g = capture_torch(model, input_shape=shape)
    assert model.training  # restored
    convs = [n for n in g.nodes if n.kind == "conv"]
    assert convs[0].module == "stem.0" and convs[0].module_type == "Conv2d"
    assert any(n.module == "layers.0.conv2" for n in convs)
    assert all(n.kind != "batch_norm" or n.module.startswith(("stem", "layers")) for n in g.nodes)


def test_unsupported_op_is_listed_not_zero():
    class Weird(nn.Module):
        def forward(self, x):
            return torch.fft.rfft(x, dim=-1).abs()

    prof = analyze(capture_torch(Weird(), input_shape=(1, 8)))
    assert prof.unsupported and sum(prof.unsupported.values()) >= 1
    assert any("fft" in k for k in prof.unsupported)
    assert "unsupported" in [lay.op_type for lay in prof.layers]
    assert prof.to_dict()["unsupported"] == prof.unsupported


def test_in_place_ops_and_liveness():
    class Chain(nn.Module):
        def forward(self, x):
            y = x * 2  # 1 new tensor
            y.relu_()  # in place: no new memory
            return y + 1  # another

    prof = analyze(capture_torch(Chain(), input_shape=(1, 1000)))
    assert [n.kind for n in prof.graph.nodes] == ["mul", "relu", "add"]
    # the input dies after the multiply; at most two 4 kB maps are ever alive (x and y, then y and the sum)
    assert prof.graph.peak_activation_bytes(prof.precision) == 2 * 4000


def test_depth_and_width_of_parallel_branches():
    class Branches(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.c = nn.Conv2d(4, 4, 1), nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 5, padding=2)

        def forward(self, x):
            return torch.cat([self.a(x), self.b(x), self.c(x)], 1).relu()

    g = capture_torch(Branches(), input_shape=(1, 4, 8, 8))
    assert g.depth_and_width() == (3, 3)  # conv level, cat, relu; three convs side by side
