"""Which channels must go together: dependency groups read off the traced network.

The network is traced with ``torch.fx`` (the layers of :mod:`chipfit.compress.prune.layers` as single calls) and
every channel of every map is followed as a variable. A conv or linear reads its input's variables and makes new
ones; depthwise convs, norms, layer scales and activations pass them on; a residual add or an element-wise product
of two maps ties its operands' variables one to one (so a stage's residual stream is one set of variables, from the
layer that opens the stage through every block's adds, norms and layer scales to the next stage's downsampling
layer); a concatenation joins the lists. Tied variables form a *class*: one channel that is kept or removed as a
whole in every layer it touches. Classes whose layers share a tensor dimension form a *group* (a stage's stream, one
block's hidden width), and pruning removes the same fraction of every group.

Channels are *frozen* (never pruned) where their position matters to something the table cannot shrink: the
network's input and output, channel splits and shuffles (ShuffleNetV2: a split needs equal halves and a shuffle
interleaves them), grouped convs that are not depthwise, operands broadcast against parameters, and any op not
listed below. Freezing is always safe: a network whose ops are not understood is simply pruned less.
"""

from __future__ import annotations

import operator
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F
from torch.fx.passes.shape_prop import ShapeProp, TensorMetadata

from chipfit.compress.prune.layers import LEAVES, slices
from chipfit.layers import channel_shuffle

Use = tuple[str, str, int]  # (layer name, role, channel position in that layer)


@dataclass
class Chan:
    """The channel variables of one map, and which dimension holds its channels."""

    vars: list[int]
    dim: int


@dataclass
class ChannelGroup:
    """Channels pruned at one rate: ``classes[i]`` lists the (layer, role, position) uses of the i-th channel."""

    name: str
    classes: list[list[Use]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.classes)

    @property
    def writers(self) -> list[str]:
        """The layers that write these channels (a residual stream has several, tied by its adds)."""
        return sorted({layer for uses in self.classes[:1] for layer, role, _ in uses if role == "out"})

    @property
    def is_stream(self) -> bool:
        """Whether several layers add into these channels (a residual stream), not one layer's own width."""
        return len(self.writers) > 1


class TraceError(ValueError):
    """The network cannot be traced for channel pruning (a user-facing error)."""


class _Tracer(fx.Tracer):
    def __init__(self):
        super().__init__(autowrap_functions=(channel_shuffle,))

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, LEAVES) or super().is_leaf_module(m, qualname)


_UNARY = {F.gelu, F.relu, F.relu6, F.silu, F.hardswish, F.dropout, torch.relu, torch.sigmoid, torch.tanh,
          operator.neg, "relu", "sigmoid", "tanh", "contiguous", "clone", "float", "neg"}
_BINARY = {operator.add, operator.sub, operator.mul, operator.truediv, operator.iadd, operator.imul, torch.add,
           torch.sub, torch.mul, torch.div, "add", "sub", "mul", "div", "add_", "mul_"}
_REDUCE = {torch.mean, torch.sum, torch.amax, "mean", "sum", "amax"}
_SPLIT = {torch.chunk, torch.split, torch.tensor_split, "chunk", "split", "tensor_split"}
_POOL = {F.adaptive_avg_pool2d, F.avg_pool2d, F.max_pool2d}


class _Analysis:
    def __init__(self):
        self.parent: list[int] = []
        self.frozen: set[int] = set()
        self.uses: dict[int, list[Use]] = defaultdict(list)

    # --- union-find over channel variables ---
    def new(self, n: int, frozen: bool = False) -> list[int]:
        ids = list(range(len(self.parent), len(self.parent) + n))
        self.parent.extend(ids)
        if frozen:
            self.frozen.update(ids)
        return ids

    def find(self, v: int) -> int:
        while self.parent[v] != v:
            self.parent[v] = self.parent[self.parent[v]]
            v = self.parent[v]
        return v

    def tie(self, a: list[int], b: list[int]) -> None:
        for x, y in zip(a, b, strict=True):
            rx, ry = self.find(x), self.find(y)
            if rx != ry:
                self.parent[max(rx, ry)] = min(rx, ry)

    def freeze(self, value: Any) -> None:
        for c in _chans(value):
            self.frozen.update(c.vars)

    def fresh(self, meta: Any, frozen: bool = True) -> Any:
        """New variables for an op's output (channels on dim 1), mirroring its tuple structure."""
        if isinstance(meta, TensorMetadata):
            return Chan(self.new(meta.shape[1], frozen), 1) if len(meta.shape) >= 2 else None
        if isinstance(meta, (tuple, list)):
            return [self.fresh(m, frozen) for m in meta]
        return None

    def opaque(self, node: fx.Node, env: dict) -> Any:
        """An op we do not follow: everything it reads is frozen, its outputs are new frozen variables."""
        for a in _flat(node.args) + _flat(node.kwargs):
            if isinstance(a, fx.Node):
                self.freeze(env.get(a))
        return self.fresh(node.meta.get("tensor_meta"))


def _flat(x: Any) -> list:
    if isinstance(x, (list, tuple)):
        return [y for v in x for y in _flat(v)]
    if isinstance(x, dict):
        return [y for v in x.values() for y in _flat(v)]
    return [x]


def _chans(value: Any) -> list[Chan]:
    return [v for v in _flat(value) if isinstance(v, Chan)]


def _shape(node: Any) -> tuple[int, ...] | None:
    meta = node.meta.get("tensor_meta") if isinstance(node, fx.Node) else None
    return tuple(meta.shape) if isinstance(meta, TensorMetadata) else None


def _arg(node: fx.Node, i: int, name: str, default: Any) -> Any:
    return node.args[i] if len(node.args) > i else node.kwargs.get(name, default)


def trace(model: nn.Module, example: torch.Tensor) -> fx.GraphModule:
    """The network as an fx graph with shapes, run once on ``example``."""
    try:
        graph = _Tracer().trace(model)
    except Exception as e:  # fx raises many types for code it cannot follow
        raise TraceError(f"{type(model).__name__} cannot be traced for channel pruning ({type(e).__name__}: {e}); "
                         "use unstructured pruning") from e
    gm = fx.GraphModule(model, graph)
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(example)
    finally:
        model.train(was)
    return gm


def _step(a: _Analysis, gm: fx.GraphModule, node: fx.Node, env: dict) -> Any:  # noqa: C901 - one op table
    meta = node.meta.get("tensor_meta")
    if node.op == "placeholder":
        return a.fresh(meta)
    if node.op == "get_attr":
        return "const"
    if node.op == "output":
        a.freeze([env.get(x) for x in _flat(node.args) if isinstance(x, fx.Node)])
        return None
    if node.op == "call_module":
        return _module(a, gm, node, env)
    target = node.target
    args = [env.get(x) if isinstance(x, fx.Node) else x for x in node.args]
    x = args[0] if args else None
    if target in _UNARY or target in _POOL:
        return x if isinstance(x, Chan) else a.opaque(node, env)
    if target == channel_shuffle:
        a.freeze(x)
        g = _arg(node, 1, "groups", 2)
        n = len(x.vars)
        return Chan([x.vars[(j % g) * (n // g) + j // g] for j in range(n)], x.dim)
    if target in _BINARY:
        y = args[1] if len(args) > 1 else None
        if isinstance(x, Chan) and isinstance(y, Chan) and _shape(node.args[0]) == _shape(node.args[1]) \
                and x.dim == y.dim:
            a.tie(x.vars, y.vars)
            return x
        if isinstance(x, Chan) and isinstance(y, (int, float)) or isinstance(y, Chan) and isinstance(x, (int, float)):
            return x if isinstance(x, Chan) else y
        return a.opaque(node, env)
    if target is operator.getitem:
        if isinstance(x, list):
            return x[node.args[1]]
        idx = node.args[1] if isinstance(node.args[1], tuple) else (node.args[1],)
        if isinstance(x, Chan) and len(idx) > x.dim and all(i == slice(None) for i in idx[:x.dim + 1]) \
                and Ellipsis not in idx:
            return x
        return a.opaque(node, env)
    if target in ("size", "dim") or target is getattr:
        return None
    if not isinstance(x, Chan):
        return a.opaque(node, env)
    shape_in = _shape(node.args[0])
    if target is torch.cat or target is torch.concat:
        parts = args[0]
        d = _arg(node, 1, "dim", 0) % len(_shape(node.args[0][0]))
        if all(isinstance(p, Chan) and p.dim == d for p in parts):
            return Chan([v for p in parts for v in p.vars], d)
        return a.opaque(node, env)
    if target in _SPLIT:
        d = _arg(node, 2, "dim", 0) % len(shape_in)
        if d == x.dim:  # a split needs its parts at fixed sizes
            a.freeze(x)
            out, k = [], 0
            for m in meta:
                out.append(Chan(x.vars[k:k + m.shape[d]], d))
                k += m.shape[d]
            return out
        return [x for _ in meta]
    if target in ("permute",):
        dims = list(node.args[1:]) if not isinstance(node.args[1], (list, tuple)) else list(node.args[1])
        return Chan(x.vars, [d % len(shape_in) for d in dims].index(x.dim))
    if target in ("transpose",) or target is torch.transpose:
        d0, d1 = (node.args[1] % len(shape_in), node.args[2] % len(shape_in))
        return Chan(x.vars, d1 if x.dim == d0 else d0 if x.dim == d1 else x.dim)
    if target in _REDUCE:
        dims = _arg(node, 1, "dim", None)
        if dims is None:
            return a.opaque(node, env)
        dims = [d % len(shape_in) for d in (dims if isinstance(dims, (list, tuple)) else [dims])]
        if x.dim in dims:
            return a.opaque(node, env)
        keep = _arg(node, 2, "keepdim", False)
        return Chan(x.vars, x.dim if keep else x.dim - sum(d < x.dim for d in dims))
    if target in ("flatten", "reshape", "view") or target in (torch.flatten, torch.reshape):
        out = tuple(meta.shape)
        if out[:x.dim + 1] == shape_in[:x.dim + 1]:  # only dims after the channels merge or split
            return x
        return a.opaque(node, env)
    return a.opaque(node, env)


def _module(a: _Analysis, gm: fx.GraphModule, node: fx.Node, env: dict) -> Any:
    layer = gm.get_submodule(node.target)
    x = env.get(node.args[0]) if node.args and isinstance(node.args[0], fx.Node) else None
    roles = slices(layer) if len(node.args) == 1 and not node.kwargs else None
    if roles is None or not isinstance(x, Chan):
        return a.opaque(node, env)
    if not roles:  # activations, pooling, dropout: every channel stays where it is, whatever its dimension
        return x
    ndim = len(_shape(node.args[0]))
    channels_last = isinstance(layer, nn.Linear) or type(layer) is nn.LayerNorm or hasattr(layer, "in_features")
    if x.dim != (ndim - 1 if channels_last else 1):
        return a.opaque(node, env)
    if "through" in roles:
        for j, v in enumerate(x.vars):
            a.uses[v].append((node.target, "through", j))
        return x
    for j, v in enumerate(x.vars):
        a.uses[v].append((node.target, "in", j))
    out = Chan(a.new(_shape(node)[x.dim]), x.dim)
    for i, v in enumerate(out.vars):
        a.uses[v].append((node.target, "out", i))
    return out


def channel_groups(model: nn.Module, example: torch.Tensor) -> list[ChannelGroup]:
    """The network's prunable channel groups, in the order the trace meets them."""
    gm = trace(model, example)
    a = _Analysis()
    env: dict[fx.Node, Any] = {}
    for node in gm.graph.nodes:
        env[node] = _step(a, gm, node, env)
    frozen = {a.find(v) for v in a.frozen}
    members: dict[int, list[Use]] = defaultdict(list)
    for v, uses in a.uses.items():
        r = a.find(v)
        if r not in frozen:
            members[r].extend(uses)
    # classes that cut the same tensor dimension (layer, role) belong to one group
    owner: dict[tuple[str, str], int] = {}
    parent = {r: r for r in members}

    def find(r: int) -> int:
        while parent[r] != r:
            r = parent[r]
        return r

    for r, uses in members.items():
        for layer, role, _ in uses:
            key = (layer, role)
            if key in owner:
                x, y = find(owner[key]), find(r)
                if x != y:
                    parent[max(x, y)] = min(x, y)
            else:
                owner[key] = r
    groups: dict[int, ChannelGroup] = {}
    for r in sorted(members):
        g = find(r)
        if g not in groups:
            layer, role, _ = members[g][0]
            groups[g] = ChannelGroup(f"{layer}:{role}")
        groups[g].classes.append(sorted(members[r]))
    return list(groups.values())
