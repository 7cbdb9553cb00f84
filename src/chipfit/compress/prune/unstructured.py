"""Unstructured magnitude pruning with the gradual AGP schedule (Zhu & Gupta 2017).

The prunable weights are those of every conv, linear and quadratic layer except the first (whose few weights see the
raw image) and the classifier. ``scope="global"`` (the default) removes the smallest-magnitude weights of all of them
together, one threshold for the network, so layers with many small weights lose more; ``scope="layer"`` removes the
same fraction from every tensor. On the trained mobilenetv2_s28 with BatchNorm folded, before any fine-tuning, 50%
global kept 0.8915 accuracy (2,000 test images) against 0.1625 per layer: per-layer pruning cuts each 3x3 depthwise
filter as hard as the wide 1x1 convs. Magnitudes are those of the deployed weights: where a BatchNorm follows the
layer (it is folded only after fine-tuning), |w| is scaled by the BN's gamma / sqrt(var + eps) of its output channel,
so that the ranking is the one of the folded network (raw weights before a BN have arbitrary scales: on
mobilenetv2_s28, 70% global pruning on raw weights ended at 0.4586 after fine-tuning against 0.8920 on folded ones).
The target sparsity rises as
s_t = s_f + (s_i - s_f) (1 - t / T)^3 over the first ``fraction`` of the fine-tuning steps, then stays at s_f; after
every optimiser step the weights below the tensor's threshold are set to zero again, so weights the optimiser moved
off zero are pruned again unless they grew past the kept ones. The zeros live in the weights themselves: no mask
buffers, so the state_dict and the exported ONNX are those of the dense network.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from chipfit.layers import QuadraConv2d, QuadraLinear

WEIGHTED = (nn.Conv2d, nn.Linear, QuadraConv2d, QuadraLinear)


def prunable(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """(name, weight) of every conv/linear/quadratic weight except the first layer's and the last linear's."""
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, WEIGHTED)]
    if len(layers) > 2:
        layers = layers[1:-1]
    return [(f"{n}.{pn}", p) for n, m in layers for pn, p in m.named_parameters(recurse=False) if p.ndim >= 2]


SCOPES = ("global", "layer")


def deployed_scales(model: nn.Module) -> dict[int, torch.Tensor]:
    """id(weight) -> per-output-channel factor that BatchNorm folding will apply to it (quadratic: f_a and f_c)."""
    from chipfit.compress.fold import bn_pairs, bn_scale

    out = {}
    for layer, bn in bn_pairs(model):
        s = bn_scale(bn).detach().abs()
        for w in (layer.weight_a, layer.weight_c) if isinstance(layer, (QuadraConv2d, QuadraLinear)) else (
                layer.weight,):
            out[id(w)] = s
    return out


def _magnitude(w: torch.Tensor, scales: dict[int, torch.Tensor] | None) -> torch.Tensor:
    s = (scales or {}).get(id(w))
    m = w.detach().abs()
    return m * s.view((-1,) + (1,) * (w.ndim - 1)) if s is not None else m


@torch.no_grad()
def prune_magnitude(weights: list[tuple[str, torch.Tensor]], sparsity: float, scope: str = "layer",
                    scales: dict[int, torch.Tensor] | None = None) -> None:
    """Zero the ``sparsity`` fraction of smallest |w| (times ``scales[id(w)]`` per output channel, when given): of
    each tensor (``layer``) or of all of them together (``global``); ties broken by position."""
    if scope not in SCOPES:
        raise ValueError(f"pruning scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    if scope == "layer":
        for _, w in weights:
            k = int(round(sparsity * w.numel()))
            if k > 0:
                w.view(-1)[_magnitude(w, scales).flatten().argsort()[:k]] = 0
        return
    flat = torch.cat([_magnitude(w, scales).flatten() for _, w in weights])
    k = int(round(sparsity * flat.numel()))
    if k <= 0:
        return
    drop = torch.zeros(flat.numel(), dtype=torch.bool)
    drop[flat.argsort()[:k]] = True
    start = 0
    for _, w in weights:
        n = w.numel()
        w.view(-1)[drop[start:start + n]] = 0
        start += n


def sparsity(model: nn.Module) -> dict[str, float]:
    """Zero fraction per prunable tensor, and ``total`` over all of them."""
    ws = prunable(model)
    out = {n: float((w == 0).float().mean()) for n, w in ws}
    n = sum(w.numel() for _, w in ws)
    out["total"] = sum(int((w == 0).sum()) for _, w in ws) / n if n else 0.0
    return out


class AGPSchedule:
    """The pruning hook: ``step(step, total)`` after each optimiser step (a ``TrainHooks.after_step``)."""

    def __init__(self, model: nn.Module, final: float, fraction: float = 0.5, initial: float = 0.0,
                 scope: str = "global"):
        if scope not in SCOPES:
            raise ValueError(f"pruning scope must be one of {', '.join(SCOPES)}, got {scope!r}")
        if not 0.0 <= final < 1.0:
            raise ValueError(f"final sparsity must lie in [0, 1), got {final}")
        self.model, self.weights = model, prunable(model)
        if not self.weights:
            raise ValueError("nothing to prune: no conv/linear weights besides the first and last layer")
        self.final, self.fraction, self.initial, self.scope = final, fraction, initial, scope

    def target(self, step: int, total: int) -> float:
        ramp = max(1, round(self.fraction * total))
        if self.fraction == 0 or step >= ramp:
            return self.final
        return self.final + (self.initial - self.final) * (1 - step / ramp) ** 3

    def step(self, step: int, total: int) -> None:
        prune_magnitude(self.weights, self.target(step, total), self.scope, deployed_scales(self.model))
