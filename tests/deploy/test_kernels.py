"""Kernels read off cost records, split or merged by a runtime's fusion rules; each rebuilt alone."""

from __future__ import annotations

import pytest
import torch.nn as nn

from chipfit.cost import count
from chipfit.deploy._samples import UnknownKernel, build
from chipfit.deploy.kernels import FEATURES, FusionRules, chains, kernels, view_count
from chipfit.models import create_model


def _block():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 1),
                         nn.GELU()).eval()


def test_rules_decide_what_the_conv_absorbs():
    prof = count(_block(), (1, 3, 8, 8))
    fused = kernels(prof, FusionRules("openvino", {"conv|batch_norm.w|relu": 2, "conv|gelu": 0}))
    assert [k.type for k in fused] == ["conv", "conv", "act.gelu"]
    assert fused[0].features[FEATURES.index("fused")] == 2
    apart = kernels(prof, FusionRules("openvino", {"conv|batch_norm.w|relu": 0, "conv|gelu": 1}))
    assert [k.type for k in apart] == ["conv", "batch_norm", "act.relu", "conv"]


def test_on_onnx_runtime_blocked_convs_get_their_layout_reorders():
    """conv(3->8) reads the input (no reorder: 3 channels stay plain) and feeds a conv; conv(8->8) feeds a GELU,
    which cannot run blocked: one reorder out, after it."""
    ks = kernels(count(_block(), (1, 3, 8, 8)), FusionRules("ort", {"conv|batch_norm.w|relu": 2, "conv|gelu": 0}))
    assert [k.type for k in ks] == ["conv", "conv", "reorder.out", "act.gelu"]
    assert ks[2].context == "reorder.out<conv>gelu" and ks[2].features[FEATURES.index("out_elems")] == 8 * 8 * 8


def test_features_are_the_cost_records():
    prof = count(_block(), (1, 3, 8, 8))
    k = kernels(prof, FusionRules("ort", {"conv|batch_norm.w|relu": 2}))[0]
    f = dict(zip(FEATURES, k.features, strict=True))
    assert f["macs"] == 8 * 8 * 8 * 3 * 9  # out elements x (C_in x k x k), the closed form of a conv
    assert (f["c_in"], f["c_out"], f["kernel"], f["stride"], f["h_out"]) == (3, 8, 3, 1, 8)


def test_permutes_become_transposes_and_chains_are_listed():
    prof = count(create_model("swin_s32"), (1, 3, 32, 32))
    ks = kernels(prof, FusionRules("ort"))
    types = {k.type for k in ks}
    assert {"transpose", "attention", "layer_norm", "gemm"} <= types
    assert view_count(prof) > 0
    assert all("|" in s["chain"] for s in chains(prof))


@pytest.mark.parametrize("name", ["mobilenetv2_s32", "shufflenetv2_s32", "quadranet_s32", "swin_s32", "hornet_s32"])
def test_every_kernel_of_the_small_zoo_rebuilds_alone_to_its_own_output_shape(name):
    import torch

    prof = count(create_model(name), (1, 3, 32, 32))
    for k in kernels(prof, FusionRules("ort")):
        if k.type.startswith("reorder."):
            continue  # measured with the convs they surround
        mod, shapes = build(k.spec)
        with torch.no_grad():
            out = mod(*[torch.randn(*s) for s in shapes])
        out = out[0] if isinstance(out, tuple) else out
        assert out.numel() == torch.Size(k.spec["output"]).numel(), k.name


def test_a_kernel_with_no_builder_is_refused_by_name():
    with pytest.raises(UnknownKernel, match="no isolated builder"):
        build({"chain": "interp", "target": "aten.upsample_bicubic2d.vec", "input": [1, 3, 8, 8],
               "output": [1, 3, 16, 16], "inputs": [[1, 3, 8, 8]]})


class QKV(nn.Module):
    """Attention's q, k, v taken from one linear: a permute, then an unbind of its first axis."""

    def __init__(self):
        super().__init__()
        self.qkv = nn.Linear(16, 48)

    def forward(self, x):
        q, k, v = self.qkv(x).reshape(1, 64, 3, 2, 8).permute(2, 0, 3, 1, 4).unbind(0)
        return q * k + v


def test_a_transpose_split_after_it_runs_as_one_per_piece_on_onnx_runtime():
    """ONNX Runtime splits first and transposes each piece (its profiler shows three Transposes): three kernels, each
    a third of the tensor; OpenVINO keeps the one transpose."""
    prof = count(QKV().eval(), (1, 64, 16))
    ort = [k for k in kernels(prof, FusionRules("ort")) if k.type == "transpose"]
    ov = [k for k in kernels(prof, FusionRules("openvino")) if k.type == "transpose"]
    out = FEATURES.index("out_elems")
    assert len(ort) == 3 and len(ov) == 1
    assert all(k.features[out] == 64 * 16 and k.shape == (1, 2, 64, 8) for k in ort)
    assert ov[0].features[out] == 3 * 64 * 16 and ov[0].op == "permute"
    import torch

    mod, shapes = build(ort[0].spec)  # a piece measured alone is a piece (with the split's unit axis), not the whole
    assert shapes[0] == [1, 64, 1, 2, 8] and tuple(mod(torch.randn(*shapes[0])).shape) == (1, 1, 2, 64, 8)


@pytest.mark.parametrize("name", ["convnext_s28", "quadranet_s28", "hornet_s32"])
def test_kernel_op_names_are_the_ones_the_onnx_exporter_writes(tmp_path, name):
    """Checked against the exported file itself (its shapes inferred by onnx): every transpose kernel's op name is a
    Transpose node of the file with the kernel's output shape."""
    import onnx

    from chipfit.deploy.onnx import export_float

    model = create_model(name)
    c = model.config
    shape = (1, c.in_chans, c.input_size, c.input_size)
    path = export_float(model.eval(), tmp_path / "n.onnx", shape)
    graph = onnx.shape_inference.infer_shapes(onnx.load(str(path))).graph
    dims = {v.name: tuple(d.dim_value for d in v.type.tensor_type.shape.dim) for v in graph.value_info}
    file = {n.name: dims.get(n.output[0]) for n in graph.node if n.op_type == "Transpose"}
    ks = [k for k in kernels(count(model, shape), FusionRules("openvino")) if k.type == "transpose"]
    assert ks and len({k.op for k in ks}) == len(ks)
    assert all(file.get("node_" + k.op) == k.shape for k in ks)


def test_each_kernel_carries_its_networks_traffic_and_one_measured_alone_its_own():
    from chipfit.deploy.kernels import with_net_bytes

    ks = kernels(count(_block(), (1, 3, 8, 8)), FusionRules("ort", {"conv|batch_norm.w|relu": 2, "conv|gelu": 0}))
    br, bw, net = (FEATURES.index(f) for f in ("bytes_read", "bytes_written", "net_bytes"))
    total = sum(k.features[br] + k.features[bw] for k in ks)
    assert total > 0 and all(k.features[net] == total for k in ks)
    alone = with_net_bytes(ks[0].features)
    assert alone[net] == ks[0].features[br] + ks[0].features[bw] < total and alone[:net] == ks[0].features[:net]
