"""Kernel times from ONNX Runtime's profiler: node by node in a whole network, paired with chipfit's kernels."""

from __future__ import annotations

import json

import pytest
from torch import nn

from chipfit.cost import count
from chipfit.deploy.build import MIN_IN_NETWORK, NetworkLog, fit_all
from chipfit.deploy.fusion import executed_ops, export_sample
from chipfit.deploy.kernels import FEATURES, FusionRules, Kernel, kernels
from chipfit.deploy.profiling import NodeTime, label_kernels, profile_nodes


def _kernel(type_: str, name: str, h: int = 0, w: int = 0, out: int = 0, c_out: int = 0) -> Kernel:
    vals = dict.fromkeys(FEATURES, 0.0)
    vals.update(h_out=h, w_out=w, out_elems=out or 8 * h * w, c_out=c_out)
    return Kernel(type_, type_, name, tuple(float(vals[f]) for f in FEATURES))


class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(16, 16, 3, stride=2, padding=1, groups=16), nn.BatchNorm2d(16), nn.ReLU())
        self.c = nn.Conv2d(16, 32, 1)

    def forward(self, x):
        return self.c(self.b(self.a(x))).mean((2, 3))


@pytest.fixture(scope="module")
def convnet(tmp_path_factory):
    net = ConvNet().eval()
    path = export_sample(net, [[1, 8, 16, 16]], tmp_path_factory.mktemp("prof") / "net.onnx")
    return net, path


def test_nodes_come_in_the_runtimes_order_with_their_shapes(convnet):
    _, path = convnet
    nodes = profile_nodes(path, runs=5)
    ran = [o for o in executed_ops(path, compute_only=False) if o not in ("Constant",)]
    assert sorted(n.op for n in nodes) == sorted(ran)  # every executed node, each once
    convs = [n for n in nodes if n.op in ("Conv", "FusedConv")]
    assert len(convs) == 3 and all(n.seconds > 0 for n in nodes)
    assert [n.shape[-2:] for n in convs] == [(16, 16), (8, 8), (8, 8)]


def test_the_networks_convs_and_mean_get_their_in_network_times(convnet):
    net, path = convnet
    ks = kernels(count(net, (1, 8, 16, 16)), FusionRules("ort"), specs=False)
    nodes = profile_nodes(path, runs=5)
    labels, skipped = label_kernels(ks, nodes)
    got = {ks[i].type for i, _ in labels}
    assert {"conv", "dwconv", "reduce.mean"} <= got and not skipped
    by_name = {n.op: n.seconds for n in nodes}
    mean = next(s for i, s in labels if ks[i].type == "reduce.mean")
    assert mean == by_name.get("ReduceMean", by_name.get("GlobalAveragePool"))


def test_pairs_follow_shapes_not_order():
    ks = [_kernel("conv", "a", 16, 16), _kernel("dwconv", "b", 8, 8)]
    nodes = [NodeTime("n1", "Conv", (1, 16, 8, 8), 2e-6), NodeTime("n0", "FusedConv", (1, 8, 16, 16), 5e-6)]
    labels, skipped = label_kernels(ks, nodes)
    assert sorted(labels) == [(0, 5e-6), (1, 2e-6)] and not skipped


def test_an_nhwc_output_fits_its_map():
    labels, _ = label_kernels([_kernel("layer_norm", "n", 7, 7)],
                              [NodeTime("ln", "LayerNormalization", (1, 7, 7, 8), 1e-6)])
    assert labels == [(0, 1e-6)]


def test_a_class_whose_counts_differ_gives_no_labels_and_says_why():
    ks = [_kernel("conv", "a", 8, 8), _kernel("conv", "b", 8, 8), _kernel("act.gelu", "g", out=64)]
    nodes = [NodeTime("c", "Conv", (1, 8, 8, 8), 1e-6), NodeTime("g", "Gelu", (1, 64), 3e-7)]
    labels, skipped = label_kernels(ks, nodes)
    assert labels == [(2, 3e-7)] and skipped == {"conv": "2 kernels, 1 nodes"}


def test_attentions_matmuls_do_not_stop_the_linears_being_labelled():
    """An attention kernel runs as MatMul nodes too: gemm nodes may outnumber the gemm kernels, paired by shape."""
    ks = [_kernel("gemm", "qkv", out=3 * 64 * 16, c_out=48), _kernel("attention", "attn", out=64 * 16),
          _kernel("gemm", "proj", out=64 * 16, c_out=16)]
    nodes = [NodeTime("qkv", "MatMul", (1, 64, 48), 4e-6), NodeTime("qk", "FusedMatMul", (1, 2, 64, 64), 3e-6),
             NodeTime("av", "MatMul", (1, 2, 64, 8), 2e-6), NodeTime("proj", "MatMul", (1, 64, 16), 1e-6)]
    labels, skipped = label_kernels(ks, nodes)
    assert labels == [(0, 4e-6), (2, 1e-6)] and not skipped


def test_a_node_of_another_shape_is_not_taken():
    labels, skipped = label_kernels([_kernel("conv", "a", 8, 8)], [NodeTime("c", "Conv", (1, 8, 4, 4), 1e-6)])
    assert labels == [] and "a" in skipped["conv"]


def _rows(type_: str, n: int, seconds: float):
    return [{"type": type_, "features": [float(i + 1)] * len(FEATURES), "s": seconds} for i in range(n)]


def test_enough_in_network_labels_replace_the_samples_measured_alone():
    alone = _rows("conv", 40, 1e-5) + _rows("dwconv", 40, 1e-5)
    inside = _rows("conv", MIN_IN_NETWORK, 2e-5) + _rows("dwconv", MIN_IN_NETWORK - 1, 2e-5)
    models = fit_all(alone, in_network=inside)
    assert models["conv"].samples == MIN_IN_NETWORK and models["dwconv"].samples == 40
    x = [[5.0] * len(FEATURES)]
    assert models["conv"].predict(x)[0] == pytest.approx(2e-5, rel=0.05)
    assert models["dwconv"].predict(x)[0] == pytest.approx(1e-5, rel=0.05)


def test_a_type_only_networks_labelled_is_fitted_on_those():
    models = fit_all(_rows("conv", 20, 1e-5), in_network=_rows("act.gelu", 5, 1e-6))
    assert models["act.gelu"].samples == 5


def test_the_network_log_survives_an_interruption_and_another_machine_is_ignored(tmp_path):
    env = {"cpu": "x"}
    log = NetworkLog(tmp_path / "n.jsonl", env)
    log.add("0:a", 1e-3, {"Conv": 2}, [NodeTime("c", "Conv", (1, 8, 4, 4), 1e-4)])
    with (tmp_path / "n.jsonl").open("a") as f:
        f.write(json.dumps({"name": "1:b", "measured_s": 1.0, "env": {"cpu": "y"}}) + "\n")
        f.write('{"name": "2:c", "meas')  # cut short
    again = NetworkLog(tmp_path / "n.jsonl", env)
    assert list(again.rows) == ["0:a"]
    assert NetworkLog.nodes(again.rows["0:a"]) == [NodeTime("c", "Conv", (1, 8, 4, 4), 1e-4)]


def test_the_deployed_file_pairs_as_the_sample_file_does(tmp_path):
    """The pairing reads op types and shapes, not node names: the torch.export file ``chipfit deploy`` writes (other
    node names than the legacy exporter's) pairs the same kernels."""
    from chipfit.deploy.onnx import export_float

    net = ConvNet().eval()
    path = export_float(net, tmp_path / "net.onnx", (1, 8, 16, 16))
    ks = kernels(count(net, (1, 8, 16, 16)), FusionRules("ort"), specs=False)
    labels, skipped = label_kernels(ks, profile_nodes(path, runs=3))
    assert {ks[i].type for i, _ in labels} >= {"conv", "dwconv", "reduce.mean"} and not skipped


def test_openvinos_counters_label_its_convolutions(convnet):
    pytest.importorskip("openvino")
    from chipfit.deploy.profiling import profile_nodes_openvino

    net, path = convnet
    ks = kernels(count(net, (1, 8, 16, 16)), FusionRules("openvino"), specs=False)
    nodes = profile_nodes_openvino(path, runs=3)
    assert {"Convolution", "GroupConvolution"} <= {n.op for n in nodes} and all(n.seconds > 0 for n in nodes)
    labels, skipped = label_kernels(ks, nodes, "openvino")
    assert sorted(ks[i].type for i, _ in labels) == ["conv", "conv", "dwconv"] and not skipped


def test_groups_timed_in_context_keep_their_scale_and_the_others_may_move():
    from collections import Counter
    from types import SimpleNamespace

    from chipfit.deploy.build import IN_NETWORK_PRIOR, group_priors

    preds = [SimpleNamespace(kernels=[("a", "conv", 9e-6), ("b", "dwconv", 1e-6), ("c", "act.gelu", 1e-6),
                                      ("d", "eltwise.add", 2e-6), ("e", "attention", float("nan"))])]
    got = group_priors(preds, Counter({"conv": MIN_IN_NETWORK, "act.gelu": MIN_IN_NETWORK, "dwconv": 3}))
    assert got == {"conv": IN_NETWORK_PRIOR, "dwconv": 0.3, "elementwise": 0.3}  # gelu 1/3 of its group's time
