"""Compression configs: presets, validation with messages that say what to do, dict round trip."""

from __future__ import annotations

import pytest

from chipfit.compress import CompressConfig, DistillConfig, PruneConfig, QuantConfig


@pytest.mark.parametrize(("name", "w", "a"), [("int8", 8, 8), ("int4", 4, 8), ("binary", 1, 8)])
def test_presets(name, w, a):
    q = QuantConfig.from_name(name, per_channel=True)
    assert (q.weight_bits, q.act_bits, q.per_channel, q.fp16) == (w, a, True, False)
    assert q.name == f"w{w}a{a}"
    assert QuantConfig.from_name("fp16").name == "fp16"


@pytest.mark.parametrize(("kw", "match"), [({"weight_bits": 0}, "weight_bits"), ({"weight_bits": 9}, "weight_bits"),
                                           ({"act_bits": 1}, "act_bits"), ({"calibration": "max"}, "calibration"),
                                           ({"percentile": 40.0}, "percentile"), ({"quadratic": "all"}, "quadratic")])
def test_quant_rejects(kw, match):
    with pytest.raises(ValueError, match=match):
        QuantConfig(**kw)


def test_other_rejects():
    with pytest.raises(ValueError, match="unknown quantization 'int2'"):
        QuantConfig.from_name("int2")
    with pytest.raises(ValueError, match="prune amount"):
        PruneConfig(1.0)
    with pytest.raises(ValueError, match="must be all or hidden"):
        PruneConfig(0.5, True, groups="streams")
    with pytest.raises(ValueError, match="structured"):
        PruneConfig(0.5, groups="hidden")
    with pytest.raises(ValueError, match="uniform or sensitivity"):
        PruneConfig(0.5, True, allocation="greedy")
    with pytest.raises(ValueError, match="structured"):
        PruneConfig(0.5, allocation="sensitivity")
    with pytest.raises(ValueError, match="temperature"):
        DistillConfig("t.pt", temperature=0)
    with pytest.raises(ValueError, match="qat_epochs needs a quantization"):
        CompressConfig(qat_epochs=1)
    with pytest.raises(ValueError, match="finetune_epochs"):
        CompressConfig(finetune_epochs=-1)


def test_round_trip():
    c = CompressConfig(quant=QuantConfig.from_name("int4", per_channel=True), prune=PruneConfig(0.3, True),
                       distill=DistillConfig("teacher.pt", feature_weight=1.0), qat_epochs=2)
    assert CompressConfig.from_dict(c.to_dict()) == c
