"""Dense networks leave PyTorch intact: ONNX (torch.export-based exporter) matches PyTorch in ONNX Runtime within 1e-4
and costs the same MACs with no uncosted op; int8 post-training quantization (fold, quantize, calibrate) keeps the
pixel labels and exports as QDQ; the ``compress`` verb measures a dense network by its task's score."""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest
import torch

from chipfit.cost import count
from chipfit.models import create_model, get_entry, list_models

SMALL_SEG = [n for n in list_models(task="segment") if get_entry(n).input_shape[-1] <= 96]
SMALL_DET = [n for n in list_models(task="detect") if get_entry(n).input_shape[-1] <= 96]
# one of each kind by default (quadratic layers, a plain MBv2 stack); the others take 5-10 s each to export
FAST = {"bisenet_quadranet_s", "fastscnn_s", "fcos_quadranet_s"}
TOL = 1e-4


def _params(names: list[str]) -> list:
    return [n if n in FAST else pytest.param(n, marks=pytest.mark.slow) for n in names]


def _inputs(name: str, n: int = 2) -> torch.Tensor:
    return torch.randn(n, *get_entry(name).input_shape[1:], generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("name", _params(SMALL_SEG))
def test_segmenter_onnx_matches_torch(name, tmp_path):
    from chipfit.deploy.onnx import export_float_info, ort_logits

    torch.manual_seed(0)
    model = create_model(name).eval()
    shape = get_entry(name).input_shape
    x = _inputs(name)
    info = export_float_info(model, tmp_path / "seg.onnx", shape, sample=x)
    assert info["exporter"] == "torch.export"
    with torch.no_grad():
        ref = model(x).numpy()
    assert np.abs(ort_logits(str(tmp_path / "seg.onnx"), x) - ref).max() <= TOL
    prof = count(tmp_path / "seg.onnx")
    assert not prof.unsupported
    assert prof.total.macs == count(model, shape).total.macs


@pytest.mark.parametrize("name", _params(SMALL_DET))
def test_detector_onnx_matches_torch(name, tmp_path):
    import onnxruntime as ort

    from chipfit.deploy.onnx import OPSET

    torch.manual_seed(0)
    model = create_model(name).eval()
    shape = get_entry(name).input_shape
    x = _inputs(name, 1)
    log = logging.getLogger("torch.onnx")
    level = log.level
    log.setLevel(logging.ERROR)  # "torchvision is not installed": it is not a dependency
    try:
        with torch.no_grad():
            program = torch.onnx.export(model, (x,), None, dynamo=True, opset_version=OPSET, input_names=["input"],
                                        output_names=["cls", "box", "ctr"], verbose=False)
    finally:
        log.setLevel(level)
    path = tmp_path / "det.onnx"
    path.write_bytes(program.model_proto.SerializeToString())
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in sess.get_outputs()] == ["cls", "box", "ctr"]
    got = sess.run(None, {"input": x.numpy()})
    with torch.no_grad():
        ref = model(x)
    for g, r in zip(got, ref, strict=True):
        assert g.shape == tuple(r.shape) and np.abs(g - r.numpy()).max() <= TOL
    prof = count(path)
    assert not prof.unsupported
    assert prof.total.macs == count(model, shape).total.macs


def _int8(model: torch.nn.Module, shape: tuple[int, ...]):
    from chipfit.compress.config import QuantConfig
    from chipfit.compress.fold import fold_bn
    from chipfit.compress.quant import calibrate, quantize

    model.eval()
    fold_bn(model)
    folded = copy.deepcopy(model)
    cfg = QuantConfig.from_name("int8")
    quantize(model, cfg)
    calibrate(model, list(torch.randn(32, *shape[1:], generator=torch.Generator().manual_seed(2)).split(8)))
    return model.eval(), folded, cfg


@pytest.mark.parametrize("name", ["bisenet_mobilenetv2_s", "fastscnn_s"])
def test_int8_ptq_segmenter_keeps_labels_and_exports_qdq(name, tmp_path):
    from chipfit.compress.config import CompressConfig
    from chipfit.compress.measure import measure
    from chipfit.deploy.onnx import export_onnx

    torch.manual_seed(0)
    model = create_model(name)
    shape = get_entry(name).input_shape
    x = _inputs(name, 4)
    with torch.no_grad():
        ref = model.eval()(x)
    q, folded, cfg = _int8(model, shape)
    with torch.no_grad():
        out = q(x)
    assert (out.argmax(1) == ref.argmax(1)).float().mean() > 0.9  # per-pixel labels
    info = export_onnx(q, tmp_path / "int8.onnx", shape, sample=x[:2])
    assert info["format"] == "QDQ" and info["reference"]["argmax_agreement"] > 0.99
    stats = measure(q, CompressConfig(quant=cfg), None, shape, quant=cfg, float_model=folded)
    assert stats["macs"] == count(folded, shape).total.macs and stats["latency_s"] > 0
    assert not count(folded, shape, "int8").unsupported


def test_int8_ptq_detector_exports_qdq(tmp_path):
    """The fake-quant detector exports as QDQ with its three outputs; deploy's checks expect one ``logits`` output,
    so the file is compared here."""
    import onnxruntime as ort

    from chipfit.deploy.qdq import export_qdq

    torch.manual_seed(0)
    name = "fcos_mobilenetv2_s"
    shape = get_entry(name).input_shape
    q, _, _ = _int8(create_model(name), shape)
    path = export_qdq(q, tmp_path / "det_int8.onnx", shape)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # the fake-quant arithmetic
    x = _inputs(name, 1)
    got = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})
    with torch.no_grad():
        ref = q(x)
    assert len(got) == 3
    for g, r in zip(got, ref, strict=True):
        assert np.abs(g - r.numpy()).max() <= 1e-3 * max(1.0, float(r.abs().max()))


@pytest.mark.parametrize("task", ["segment", "detect"])
def test_compress_verb_int8_on_dense_networks_measures_their_score(task):
    from chipfit.compress import compress
    from chipfit.compress.config import CompressConfig, QuantConfig
    from chipfit.data.dense import load_dense
    from chipfit.train.dense import make_task

    try:
        data = load_dense("fmnist-scenes", task, n_train=48, n_test=16, cache=False)
    except FileNotFoundError as e:
        pytest.skip(f"Fashion-MNIST is not installed: {e}")
    torch.manual_seed(0)
    name = "fastscnn_s" if task == "segment" else "fcos_mobilenetv2_s"
    model = create_model(name, num_classes=data.num_classes, in_chans=data.in_chans, input_size=data.image_size)
    result = compress(model, CompressConfig(quant=QuantConfig.from_name("int8"), calib_images=32), data,
                      progress=False, task=make_task(task))
    for side in (result.baseline, result.compressed):
        assert 0 <= side["accuracy"] <= 1 and side["macs"] > 0
    assert result.compressed["size_bytes"] < 0.5 * result.baseline["size_bytes"]
