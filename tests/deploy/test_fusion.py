"""Fusion read from the runtimes, on hand-built ONNX graphs whose fusion is known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from chipfit.deploy.fusion import LAYOUT_OPS, detect, executed_ops, nchwc_block
from chipfit.deploy.kernels import FusionRules


def _graph(tmp_path, nodes, inits, x_shape, y_shape, name="g.onnx", opset=17):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)],
                          [numpy_helper.from_array(v.astype(np.float32), k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=9)  # ORT 1.2x reads IR <= 10
    onnx.checker.check_model(m)
    path = tmp_path / name
    onnx.save(m, path)
    return path


def _conv_inits(c=8):
    rng = np.random.default_rng(0)
    return {"w": rng.standard_normal((c, c, 3, 3)), "b": rng.standard_normal(c)}


def conv_relu(tmp_path):
    return _graph(tmp_path, [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
                             helper.make_node("Relu", ["c"], ["y"])], _conv_inits(), [1, 8, 8, 8], [1, 8, 8, 8])


def conv_bn(tmp_path):
    inits = _conv_inits() | {"s": np.ones(8), "o": np.zeros(8), "mu": np.zeros(8), "var": np.ones(8)}
    return _graph(tmp_path, [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
                             helper.make_node("BatchNormalization", ["c", "s", "o", "mu", "var"], ["y"])],
                  inits, [1, 8, 8, 8], [1, 8, 8, 8])


def conv_erf_gelu(tmp_path):
    """Conv then GELU written out as x * 0.5 * (1 + erf(x / sqrt 2)), as exporters once wrote it."""
    inits = _conv_inits() | {"r2": np.array(2**0.5), "one": np.array(1.0), "half": np.array(0.5)}
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Div", ["c", "r2"], ["d"]), helper.make_node("Erf", ["d"], ["e"]),
             helper.make_node("Add", ["e", "one"], ["f"]), helper.make_node("Mul", ["c", "f"], ["g"]),
             helper.make_node("Mul", ["g", "half"], ["y"])]
    return _graph(tmp_path, nodes, inits, [1, 8, 8, 8], [1, 8, 8, 8])


def matmul_add(tmp_path):
    rng = np.random.default_rng(0)
    return _graph(tmp_path, [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["y"])],
                  {"w": rng.standard_normal((16, 32)), "b": rng.standard_normal(32)}, [4, 16], [4, 32])


def test_ort_fuses_conv_relu_and_folds_bn(tmp_path):
    assert len(executed_ops(conv_relu(tmp_path), "ort")) == 1
    assert len(executed_ops(conv_bn(tmp_path), "ort")) == 1


def test_ort_keeps_gelu_apart_from_conv_but_fuses_its_erf_pattern(tmp_path):
    ops = executed_ops(conv_erf_gelu(tmp_path), "ort")
    assert len(ops) == 2 and "Gelu" in ops  # five element-wise nodes became one Gelu kernel, the conv another


def test_ort_turns_matmul_add_into_one_gemm(tmp_path):
    assert executed_ops(matmul_add(tmp_path), "ort") == ["Gemm"]


def test_layout_nodes_are_left_out_only_when_asked(tmp_path):
    path = conv_relu(tmp_path)
    every, compute = executed_ops(path, "ort", compute_only=False), executed_ops(path, "ort")
    assert not set(compute) & LAYOUT_OPS and set(compute) <= set(every)
    assert [op for op in every if op not in LAYOUT_OPS] == compute


def test_openvino_fuses_conv_relu(tmp_path):
    pytest.importorskip("openvino")
    assert executed_ops(conv_relu(tmp_path), "openvino") == ["Convolution"]


def test_unknown_runtime_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown runtime"):
        executed_ops(conv_relu(tmp_path), "tflite")


def _conv_spec(chain, steps):
    return {"chain": chain, "target": "aten.convolution.default", "input": [1, 8, 8, 8], "output": [1, 8, 8, 8],
            "inputs": [[1, 8, 8, 8]], "weights": [[8, 8, 3, 3]], "weight": [8, 8, 3, 3], "stride": [1, 1],
            "padding": [1, 1], "groups": 1, "bias": False, "kernel": [], "steps": steps}


def test_detect_measures_how_many_followers_the_head_absorbs():
    bn = {"x": [1, 8, 8, 8], "others": [[[8], "weight"]] * 4}
    relu = {"x": [1, 8, 8, 8], "others": []}
    gelu = relu
    rules, rows = detect([_conv_spec("conv|batch_norm.w|relu", [bn, relu]), _conv_spec("conv|gelu", [gelu])], "ort")
    assert rules.chains == {"conv|batch_norm.w|relu": 2, "conv|gelu": 0}
    assert {r["chain"]: len(r["executed"]) for r in rows} == {"conv|batch_norm.w|relu": 1, "conv|gelu": 2}


def test_rules_infer_unmeasured_chains_from_known_followers():
    rules = FusionRules("ort", {"conv|gelu": 0})
    assert rules.absorbed("conv|gelu") == (0, True)
    assert rules.absorbed("conv|batch_norm.w|relu|add.a") == (2, False)
    assert FusionRules.from_dict(rules.to_dict()) == rules


def test_the_blocked_layouts_block_is_read_from_the_runtime():
    """ONNX Runtime's block follows the CPU's vector width: 16 channels with AVX-512, 8 with AVX2 (x86)."""
    flags = Path("/proc/cpuinfo").read_text().split()
    want = 16 if "avx512f" in flags else 8 if "avx2" in flags else None
    if want is None:
        pytest.skip("neither AVX2 nor AVX-512: which blocked layout ONNX Runtime takes here is not known to the test")
    assert nchwc_block() == want
