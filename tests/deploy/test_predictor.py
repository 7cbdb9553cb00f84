"""The predictor: recovers a known latency formula, lists unseen kernels, refuses another machine, loads as text."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch.nn as nn

from chipfit.cost import count
from chipfit.deploy.build import fit_all, fit_correction, fit_survival
from chipfit.deploy.kernels import FEATURES, FusionRules, kernels
from chipfit.deploy.predictor import Predictor, environment, fit_type


def _synthetic(n, seed):
    """Conv-like feature rows and the latency of a known formula: 2 ns per MAC + 0.1 ns per byte + 1 us."""
    rng = np.random.default_rng(seed)
    rows = np.zeros((n, len(FEATURES)))
    macs = 10 ** rng.uniform(3, 8, n)
    nbytes = 10 ** rng.uniform(3, 7, n)
    rows[:, FEATURES.index("macs")] = macs
    rows[:, FEATURES.index("bytes_read")] = nbytes
    rows[:, FEATURES.index("out_elems")] = nbytes / 8
    return rows, 2e-9 * macs + 1e-10 * nbytes + 1e-6


def test_trees_recover_a_known_latency_formula():
    x, y = _synthetic(400, 0)
    model = fit_type("conv", x, y)
    xt, yt = _synthetic(100, 1)
    xt = xt[(xt[:, 0] > 2e3) & (xt[:, 0] < 5e7)]  # inside the training range
    yt = 2e-9 * xt[:, FEATURES.index("macs")] + 1e-10 * xt[:, FEATURES.index("bytes_read")] + 1e-6
    err = model.predict(xt) / yt - 1
    assert np.sqrt(np.mean(err**2)) < 0.1
    assert model.cv_error is not None and model.cv_error < 0.15


def test_a_kernel_larger_than_any_measured_scales_with_its_work():
    """Trees alone would give a kernel 100x larger than the training range the largest one's time; per unit of work
    (work_size) they scale it."""
    x, y = _synthetic(400, 0)
    small = x[:, FEATURES.index("macs")] < 1e6
    model = fit_type("conv", x[small], y[small], cv=False)
    xt = np.zeros((1, len(FEATURES)))
    xt[0, FEATURES.index("macs")] = 1e8
    xt[0, FEATURES.index("bytes_read")] = 1e6
    xt[0, FEATURES.index("out_elems")] = 1e6 / 8
    truth = 2e-9 * 1e8 + 1e-10 * 1e6 + 1e-6
    assert model.predict(xt)[0] == pytest.approx(truth, rel=0.3)
    assert model.predict(xt)[0] > 20 * y[small].max()


def test_an_attentions_work_counts_its_scores():
    """batch x heads = 8, L = 64, d = 1: 8 x 64 x 64 scores, which its softmax and mask run over, against 2 x 8 x 64 x
    64 MACs; a conv's work is its outputs and MACs / 8."""
    from chipfit.deploy.predictor import work_size

    x = np.zeros((1, len(FEATURES)))
    x[0, FEATURES.index("macs")] = 2 * 8 * 64 * 64
    x[0, FEATURES.index("out_elems")] = 8 * 64
    x[0, FEATURES.index("w_out")] = 1
    assert work_size(x, "attention")[0] == 8 * 64 + 8 * 64 * 64 + 2 * 8 * 64 * 64 / 64 + 1
    assert work_size(x, "conv")[0] == 8 * 64 + 2 * 8 * 64 * 64 / 8 + 1


def test_few_samples_give_a_scale_model():
    x, y = _synthetic(5, 0)
    m = fit_type("act.relu", x, y)
    assert m.booster is None and m.samples == 5 and np.all(m.predict(x) > 0)


def test_correction_recovers_scale_and_per_kernel_cost():
    ks = np.array([1e-4, 5e-4, 2e-3, 1e-2, 3e-4])
    nk = np.array([10, 40, 60, 200, 30])
    dw = np.array([5e-5, 1e-4, 1e-4, 4e-3, 1e-5])
    meas = 0.8 * ks + 1.5 * dw + 2e-6 * nk
    c = fit_correction([{"conv": a, "dwconv": b} for a, b in zip(ks, dw, strict=True)], list(nk), [0] * 5,
                       list(meas), prior=0.0)
    assert c["scales"]["conv"] == pytest.approx(0.8, rel=1e-3) and c["scales"]["dwconv"] == pytest.approx(1.5, rel=1e-3)
    assert c["per_kernel_s"] == pytest.approx(2e-6, rel=1e-2) and c["train_rmspe"] < 1e-6


def test_networks_measured_in_a_slow_process_are_left_out_of_the_correction():
    """Twelve networks of 1.2x their kernels' sum, two of them measured 1.5x slower (a slow process): the robust fit
    names those two and recovers 1.2; a plain least-squares fit is pulled towards them."""
    rng = np.random.default_rng(0)
    ks = rng.uniform(1e-4, 1e-2, 12)
    meas = 1.2 * ks * (1 + rng.normal(0, 0.01, 12))
    meas[[3, 8]] *= 1.5
    args = ([{"conv": a} for a in ks], [10] * 12, [0] * 12, list(meas))
    c = fit_correction(*args, prior=0.0, offset=0.0)
    assert [i for i, _ in c["outliers"]] == [3, 8] and c["networks"] == 10
    assert c["scales"]["conv"] == pytest.approx(1.2, rel=0.01) and c["outliers"][0][1] == pytest.approx(1.5, rel=0.03)
    plain = fit_correction(*args, prior=0.0, offset=0.0, robust=False)
    assert plain["outliers"] == [] and plain["scales"]["conv"] > 1.22


def test_a_byte_term_without_its_bytes_stays_zero():
    ks = np.array([1e-4, 5e-4, 2e-3, 1e-2, 3e-4, 4e-3])
    act = np.array([1e5, 4e6, 2e6, 3e7, 1e6, 5e5])
    c = fit_correction([{"conv": a} for a in ks], [10] * 6, [0] * 6, list(ks + 1e-11 * act), prior=0.0,
                       act_bytes=list(act))
    assert c["per_weight_byte_s"] == pytest.approx(0, abs=1e-20) and c["per_act_byte_s"] == pytest.approx(1e-11,
                                                                                                         rel=1e-2)


def test_correction_recovers_the_cost_of_fetching_weights():
    """Inside a network, weights come from memory: 0.05 ns a byte on top of the kernels' own time."""
    ks = np.array([1e-4, 5e-4, 2e-3, 1e-2, 3e-4, 4e-3])
    wb = np.array([1e5, 4e6, 2e6, 3e7, 1e6, 5e5])
    meas = ks + 5e-11 * wb
    c = fit_correction([{"conv": a} for a in ks], [10] * 6, [0] * 6, list(meas), prior=0.0, weight_bytes=list(wb),
                       act_bytes=[0.0] * 6)
    assert c["per_weight_byte_s"] == pytest.approx(5e-11, rel=1e-2)
    assert c["scales"]["conv"] == pytest.approx(1, rel=1e-2)


def test_the_correction_never_fits_a_negative_per_kernel_cost():
    """Networks measured below their kernels' sum by 1 us a kernel: a negative per-kernel term would fit them exactly
    and carry that to a network of many more small kernels (on two networks it predicted a third at -0.1 ms); the
    term stays at 0 and the group scale takes the difference."""
    args = ([{"conv": 1e-4}, {"conv": 4e-4}], [100, 150], [0, 0], [0.5e-4, 3e-4])
    few = fit_correction(*args, prior=0.3, offset=5e-6)
    assert few["per_kernel_s"] >= 0 and few["networks"] == 2
    many = fit_correction([{"conv": 1e-4 * (1 + i)} for i in range(12)], [100 + 10 * i for i in range(12)], [0] * 12,
                          [1e-4 * (1 + i) - 1e-6 * (100 + 10 * i) for i in range(12)], prior=0.0, offset=0.0)
    assert many["per_kernel_s"] == pytest.approx(0.0, abs=1e-12) and many["scales"]["conv"] < 1


def test_a_correction_that_extrapolates_below_the_call_overhead_falls_back_to_the_kernels_sum(tmp_path):
    folder = _predictor(tmp_path, types=("conv", "gemm", "reorder.out"))
    m = json.loads((folder / "predictor.json").read_text())
    m["correction"] = {"scales": {}, "per_kernel_s": -1.0, "offset_s": 5e-6}  # -1 s a kernel: below anything
    (folder / "predictor.json").write_text(json.dumps(m))
    res = Predictor.load(folder).predict(count(_net(), (1, 3, 8, 8)))
    assert res.latency_s == pytest.approx(res.kernel_s + 5e-6) and res.kernel_s > 0
    assert any("correction gives" in n and "kernels' sum" in n for n in res.notes)


def test_a_measured_offset_is_kept_and_the_rest_fitted_around_it():
    """Networks of 1.2x their kernels plus a 20 us call: with the call given, the scale comes back and the offset is
    the one given; a wrong one given is kept too (it is a measurement) and the fit error shows it."""
    ks = np.array([1e-4, 5e-4, 2e-3, 1e-2, 3e-4])
    meas = 1.2 * ks + 2e-5
    args = ([{"conv": a} for a in ks], [10, 40, 5, 20, 80], [0] * 5, list(meas))  # kernel counts unlike the call
    c = fit_correction(*args, prior=0.0, offset=2e-5)
    assert c["offset_s"] == 2e-5 and c["scales"]["conv"] == pytest.approx(1.2, rel=1e-3) and c["train_rmspe"] < 1e-6
    wrong = fit_correction(*args, prior=0.0, offset=0.0)
    assert wrong["offset_s"] == 0.0 and wrong["train_rmspe"] > 1e-3


def test_in_network_labels_of_a_network_profiled_slow_are_scaled_to_its_measured_latency():
    """A network whose profiled nodes sum to 2x its measured latency (the profiling process ran slow): its labels are
    halved; one whose nodes sum to less (the rest is call overhead) keeps them."""
    from torch import nn

    from chipfit.cost import count
    from chipfit.deploy.build import in_network_rows

    prof = count(nn.Sequential(nn.Conv2d(8, 8, 3, padding=1)).eval(), (1, 8, 8, 8))
    node = [["c", "Conv", [1, 8, 8, 8], 4e-5]]
    slow = {"measured_s": 2e-5, "nodes": node}
    fast = {"measured_s": 5e-5, "nodes": node}
    rows, _ = in_network_rows([(prof, slow), (prof, fast)], FusionRules("ort"))
    assert [r["s"] for r in rows] == pytest.approx([2e-5, 4e-5])


def _predictor(tmp_path, types=("conv", "reorder.in", "reorder.out")):
    x, y = _synthetic(200, 0)
    rows = [{"type": t, "features": list(r), "s": float(s)} for t in types for r, s in zip(x, y, strict=True)]
    env = environment("ort", 1)
    p = Predictor({"environment": env, "fusion": FusionRules("ort", {"conv|batch_norm.w|relu": 2}).to_dict(),
                   "correction": {"scales": {"conv": 1.0}, "per_kernel_s": 1e-6, "per_view_s": 0.0,
                                  "offset_s": 0.0}},
                  fit_all(rows))
    p.save(tmp_path / "pred")
    return tmp_path / "pred"


def _net():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
                         nn.Linear(8 * 64, 10)).eval()


def test_unseen_kernels_are_listed_never_zero(tmp_path):
    pred = Predictor.load(_predictor(tmp_path))
    res = pred.predict(count(_net(), (1, 3, 8, 8)))
    assert [u.split(" ")[1] for u in res.unknown] == ["(gemm)"]
    assert res.latency_s > 0 and not res.complete
    assert any("never seen" in n for n in res.estimate("host", "net").notes)


def test_saved_as_text_and_loaded_without_pickle(tmp_path):
    folder = _predictor(tmp_path, types=("conv", "gemm", "reorder.out"))
    text = (folder / "kernels" / "conv.txt").read_text()
    assert text.startswith("tree")  # LightGBM's own text format
    manifest = json.loads((folder / "predictor.json").read_text())
    assert manifest["features"] == list(FEATURES) and manifest["environment"]["runtime"] == "ort"
    prof = count(_net(), (1, 3, 8, 8))
    a = Predictor.load(folder).predict(prof)
    b = Predictor.load(folder).predict(prof)
    assert a.complete and a.latency_s == b.latency_s
    est = a.estimate("ort", "net")
    assert est.source == "predicted" and est.latency_s == a.latency_s


def test_refuses_another_cpu_or_runtime_version(tmp_path):
    folder = _predictor(tmp_path)
    m = json.loads((folder / "predictor.json").read_text())
    m["environment"]["cpu"] = "Some Other CPU"
    (folder / "predictor.json").write_text(json.dumps(m))
    with pytest.raises(ValueError, match="another machine.*Some Other CPU"):
        Predictor.load(folder)
    assert Predictor.load(folder, check=False).models  # --any-machine
    with pytest.raises(ValueError, match="built for 1 thread.*not 2"):
        Predictor.load(folder, check=False).check_threads(2)


def test_a_folder_without_a_predictor_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no predictor"):
        Predictor.load(tmp_path)
    (tmp_path / "predictor.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a predictor"):
        Predictor.load(tmp_path)


def test_a_predictor_of_an_older_format_is_refused_with_the_command_to_rebuild(tmp_path):
    folder = _predictor(tmp_path)
    m = json.loads((folder / "predictor.json").read_text())
    m["format"] -= 1
    (folder / "predictor.json").write_text(json.dumps(m))
    with pytest.raises(ValueError, match=f"of format {m['format']}, this chipfit reads format {m['format'] + 1}.*"
                                         "chipfit predictor build"):
        Predictor.load(folder)


def test_kernels_follow_the_predictor_rules(tmp_path):
    pred = Predictor.load(_predictor(tmp_path, types=("conv", "gemm")))
    ks = kernels(count(_net(), (1, 3, 8, 8)), pred.rules)
    assert [k.type for k in ks] == ["conv", "reorder.out", "gemm"]


def test_survival_recovers_the_share_of_kernels_the_optimizer_keeps():
    """Networks with transposes in two contexts; the runtime keeps all of one kind and a quarter of the other."""
    rng = np.random.default_rng(0)
    contexts, executed = [], []
    for _ in range(20):
        a, b = int(rng.integers(0, 20)), int(rng.integers(0, 20))
        contexts.append({"transpose<layer_norm>conv": a, "transpose<copy>conv": b})
        executed.append({"Transpose": b + a / 4, "Conv": 10})
    s = fit_survival(contexts, executed, prior=0.0)
    assert s["transpose<layer_norm>conv"] == pytest.approx(0.25, abs=1e-6)
    assert s["transpose<copy>conv"] == pytest.approx(1.0, abs=1e-6)
    assert 0.25 < s["transpose"] < 1.0 and "eltwise.add" not in s


def test_training_networks_take_every_family_in_turn():
    from chipfit.deploy.build import training_networks
    from chipfit.models.sample import FAMILIES

    nets = training_networks(len(FAMILIES), 5)
    assert sorted(cfg.name.split("_r")[0] for cfg, _ in nets) == sorted(FAMILIES)  # names: family_rNNNNNN_size
    again = training_networks(len(FAMILIES), 5)
    assert [c.name for c, _ in nets] == [c.name for c, _ in again]  # a seed gives the same set
    # every other one an ImageNet head, named so (a log of measured networks keys them by name)
    assert all(c.num_classes == 1000 for c, _ in nets[1::2])
    assert len({c.name for c, _ in nets}) == len(nets)
    heads = [p.layers_fused[-1].cost.weight_bytes for c, p in nets if c.num_classes == 1000]
    assert min(heads) >= 4 * 1000 * 8  # the head linear layer's fp32 weights, 1000 outputs


def test_the_offset_is_the_least_call_overhead_the_networks_logged():
    """A call's fixed cost is a floor: one measured in a slow spell must not become the offset."""
    from chipfit.deploy.build import _call_seconds

    assert _call_seconds([{"call_s": 1.37e-4}, {"call_s": 6.7e-5}, {"call_s": 7.1e-5}, {}]) == 6.7e-5
    assert _call_seconds([{}, {"call_s": None}]) is None


def test_only_linear_layers_trees_see_the_networks_traffic():
    from chipfit.deploy.predictor import design

    x, _ = _synthetic(4, 0)
    x[:, FEATURES.index("net_bytes")] = 1e8
    net = FEATURES.index("net_bytes")
    assert np.all(design(x, "gemm")[:, net] > 0) and np.all(design(x, "conv")[:, net] == 0)


def test_samples_logged_before_the_network_traffic_feature_read_as_kernels_alone(tmp_path):
    from chipfit.deploy.build import SampleLog

    old = [1.0] * (len(FEATURES) - 1)
    env = {"cpu": "x"}
    (tmp_path / "s.jsonl").write_text(json.dumps({"type": "conv", "key": "k", "features": old, "s": 1e-5,
                                                  "env": env}) + "\n")
    row = SampleLog(tmp_path / "s.jsonl", env).rows[0]
    assert len(row["features"]) == len(FEATURES) and row["features"][-1] == 2.0  # its own bytes read + written


def test_the_c_api_call_gives_lightgbms_own_predictions():
    from chipfit.deploy.predictor import _raw_predict, design

    x, y = _synthetic(200, 0)
    model = fit_type("conv", x, y, cv=False)
    d = design(_synthetic(37, 3)[0], "conv")
    assert np.array_equal(_raw_predict(model.booster, d), model.booster.predict(d))
    assert np.array_equal(_raw_predict(model.booster, d[:1]), model.booster.predict(d[:1]))


def test_a_network_is_the_sum_of_its_kernels_each_predicted_by_its_own_type(tmp_path):
    """Repeated kernels are predicted once; each type keeps its own view of the features (net_bytes for linear
    layers only, an attention's work): the network equals its kernels' one-by-one predictions, corrected."""
    from chipfit.deploy.kernels import Kernel

    x, y = _synthetic(300, 0)
    net = FEATURES.index("net_bytes")
    x[:, net] = 10 ** np.random.default_rng(1).uniform(5, 8, len(x))
    rows = [{"type": t, "features": list(r), "s": float(s * (1 + r[net] / 1e7 if t == "gemm" else 1))}
            for t in ("conv", "gemm", "attention") for r, s in zip(x, y, strict=True)]
    pred = Predictor({"environment": environment("ort", 1), "fusion": FusionRules("ort", {}).to_dict(),
                      "correction": {"per_kernel_s": 1e-6}}, fit_all(rows))
    xt = x[:4].copy()
    xt[:, FEATURES.index("w_out")] = 4
    feats = [tuple(float(v) for v in r) for r in xt]
    ks = [Kernel(t, t, f"k{i}", feats[i % 2 + 2 * (t == "gemm")])
          for i, t in enumerate(["conv", "gemm", "attention", "conv", "gemm", "attention", "conv", "gemm"])]
    res = pred.predict_kernels(ks)
    one = [float(pred.models[k.type].predict(np.array([k.features]))[0]) for k in ks]
    assert [s for *_, s in res.kernels] == pytest.approx(one, rel=1e-12)
    assert res.kernels[0][2] == res.kernels[6][2] != res.kernels[2][2]  # same features, conv vs attention
    assert res.latency_s == pytest.approx(sum(one) + 1e-6 * len(ks), rel=1e-12)
    # the gemm trees split on net_bytes: the same gemm in a network with more traffic is slower
    light, heavy = (Kernel("gemm", "gemm", "g", tuple(b if j == net else v for j, v in enumerate(ks[1].features)))
                    for b in (2e5, 8e7))
    assert pred.predict_kernels([heavy]).kernel_s > 3 * pred.predict_kernels([light]).kernel_s
