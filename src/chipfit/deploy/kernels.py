"""Kernels as a runtime executes them, read off chipfit's cost records.

A runtime does not run a network op by op: ONNX Runtime folds a batch norm into the convolution before it, runs
conv + ReLU as one kernel, and leaves a GELU after a conv as a kernel of its own; a permute that PyTorch keeps as a
free view becomes a real Transpose. :func:`kernels` walks a :class:`~chipfit.cost.profile.Profile` (counts computed
once, by the cost stage) and splits or merges its ops the way the runtime's :class:`FusionRules` say, so that a
latency predictor can cost each executed kernel.

Each kernel carries the same numeric features whatever its type (:data:`FEATURES`); a type's regressor uses those
that vary for it. Kernel types are named after what runs: ``conv``, ``dwconv`` (groups > 1), ``gemm``, ``attention``,
``layer_norm``, ``batch_norm``, ``act.<kind>``, ``eltwise.<kind>``, ``reduce.<kind>``, ``pool.<kind>``,
``transpose``, ``concat``, ``split``, ``copy.<op>``, and on ONNX Runtime ``reorder.in`` / ``reorder.out`` (the
layout changes around blocked convolutions); a view that only renames a tensor is not a kernel. On ONNX Runtime a
transpose that a split alone reads (attention's q, k, v) is one kernel per piece: the runtime splits first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chipfit.cost.profile import Profile
from chipfit.cost.records import OpNode

FEATURES = ("macs", "flops", "bytes_read", "bytes_written", "weight_bytes", "out_elems", "in_elems", "c_in", "c_out",
            "kernel", "stride", "groups", "h_in", "w_in", "h_out", "w_out", "rows", "fused", "inputs", "net_bytes")
# ``net_bytes``: what all the network's kernels read and write in one inference, the same for each of its kernels
# (for a kernel measured alone, its own bytes). Whether a layer's weights are still in the last-level cache from the
# inference before depends on it: a 1280 x 1000 classifier (5 MB of weights) took 151 us inside a 224-pixel
# MobileNetV2 and about 70 us inside a 28-pixel one (ONNX Runtime, AMD EPYC with a 32 MB L3).
_NET, _MOVED = FEATURES.index("net_bytes"), (FEATURES.index("bytes_read"), FEATURES.index("bytes_written"))


def with_net_bytes(features: tuple[float, ...], net_bytes: float | None = None) -> tuple[float, ...]:
    """``features`` with ``net_bytes`` set (to the kernel's own bytes when None: a kernel measured alone)."""
    own = features[_MOVED[0]] + features[_MOVED[1]]
    return features[:_NET] + (float(own if net_bytes is None else net_bytes),) + features[_NET + 1:]
HEADS = ("conv", "linear")
CONTEXT_TYPES = ("transpose", "eltwise.add", "eltwise.mul", "reorder.in", "reorder.out")
# ONNX Runtime on x86 runs convolutions in a blocked channel layout (NCHWc, blocks of 8 or 16 channels) and reorders
# a tensor into it before a conv whose producer cannot run blocked, and back after one whose consumer cannot. Ops
# that run blocked too: a reorder is never needed between them and a conv.
NCHWC_KINDS = ("conv", "add", "relu", "hardtanh", "max_pool", "avg_pool", "batch_norm")
TRANSPOSES = ("aten.permute.default", "aten.transpose.int", "aten.t.default", "Transpose")
SPLITS = ("aten.split.Tensor", "aten.split_with_sizes.default", "aten.unbind.int", "aten.chunk.default", "Split")


@dataclass(frozen=True)
class FusionRules:
    """Which op chains a runtime runs as one kernel.

    Attributes:
        runtime: the runtime these rules describe (``ort``, ``openvino``).
        chains: chain descriptor (see :func:`chain_key`, e.g. ``conv|batch_norm|relu``) -> how many of its followers
            the head absorbs, as measured on the runtime (:mod:`chipfit.deploy.fusion`).
        default_absorb: follower kinds absorbed when a chain was never measured: a prefix of the chain made of these.
        nchwc_block: channels per block of ONNX Runtime's blocked conv layout on this CPU, read from the runtime
            (:func:`chipfit.deploy.fusion.nchwc_block`: 8 with AVX2, 16 with AVX-512, 0 where it has none); a conv
            whose channels are no multiple of it runs unblocked, without reorders.
    """

    runtime: str
    chains: dict[str, int] = field(default_factory=dict)
    default_absorb: tuple[str, ...] = ("batch_norm", "relu", "hardtanh", "sigmoid")
    nchwc_block: int = 8

    def absorbed(self, key: str) -> tuple[int, bool]:
        """(followers absorbed, whether the chain was measured) for the chain descriptor ``key``."""
        if key in self.chains:
            return self.chains[key], True
        n = 0
        for part in key.split("|")[1:]:
            if part.split(".")[0] not in self.default_absorb:
                break
            n += 1
        return n, False

    def to_dict(self) -> dict[str, Any]:
        return {"runtime": self.runtime, "chains": dict(self.chains), "default_absorb": list(self.default_absorb),
                "nchwc_block": self.nchwc_block}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FusionRules:
        return cls(d["runtime"], {str(k): int(v) for k, v in d.get("chains", {}).items()},
                   tuple(d.get("default_absorb", cls.default_absorb)), int(d.get("nchwc_block", 8)))


@dataclass(frozen=True)
class Kernel:
    """One kernel the runtime executes.

    Attributes:
        type: what runs (see the module's text).
        chain: the chain descriptor of the ops it holds (``conv|batch_norm|relu``).
        name: ``module:kinds`` of its head op.
        features: one value per name of :data:`FEATURES`.
        measured_rule: False when the chain's fusion was inferred, not measured on the runtime.
        spec: what rebuilds it alone (shapes and options), for sampling it in isolation.
        context: ``type<producer>consumer`` for the kernel types a runtime's graph optimizer may remove or merge
            (:data:`CONTEXT_TYPES`: transposes it cancels, adds and multiplies it folds); ``""`` otherwise.
        shape: its (first) output's shape, what pairs it with a node the runtime profiled.
        op: the name the ONNX exporter gives its head op (``permute_3``: the fourth ``aten.permute``), which a
            runtime keeps on the node while the op survives (ONNX Runtime's ``node_permute_3``); for a transpose
            that a clone makes contiguous, its permute's.
    """

    type: str
    chain: str
    name: str
    features: tuple[float, ...]
    measured_rule: bool = True
    spec: dict[str, Any] = field(default_factory=dict, compare=False)
    context: str = ""
    shape: tuple[int, ...] = ()
    op: str = ""


def _follower_tag(node: OpNode, running: set[int]) -> str:
    """A follower's kind, with ``.w`` when it reads a weight (a layer scale, a bias) and ``.a`` when it reads a
    second activation (a residual add, a gating multiply)."""
    others = [t for t in node.read_tensors() if t.buffer not in running]
    if any(t.role == "weight" or t.role == "const" for t in others):
        return f"{node.kind}.w"
    if others:
        return f"{node.kind}.a"
    return node.kind


def chain_key(nodes: list[OpNode]) -> str:
    """``head|follower|...``: the descriptor under which a runtime's fusion of this chain is looked up."""
    parts = [nodes[0].kind]
    running = {t.buffer for t in nodes[0].outputs}  # buffers, not tensors: views between chained ops share them
    for n in nodes[1:]:
        parts.append(_follower_tag(n, running))
        running = {t.buffer for t in n.outputs}
    return "|".join(parts)


def _act_shape(node: OpNode) -> tuple[int, ...]:
    for t in node.inputs:
        if t.role in ("act", "input"):
            return t.shape
    return node.inputs[0].shape if node.inputs else ()


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _type_of(head: OpNode) -> str:
    k, t = head.kind, head.op_type
    if k == "conv":
        return "dwconv" if int(head.attrs.get("groups", 1)) > 1 else "conv"
    if k == "linear" or k == "matmul":
        return "gemm" if k == "linear" else "matmul"
    if k in ("attention", "layer_norm", "batch_norm"):
        return k
    if t == "copy":
        if head.target in ("aten.clone.default", "aten.contiguous.default"):
            return "transpose"  # a clone in a traced graph makes a permuted view contiguous: ONNX's Transpose
        if head.target in ("aten.cat.default", "Concat"):
            return "concat"
        return "copy." + head.target.split(".")[1 if head.target.startswith("aten.") else 0]
    if t in ("act", "eltwise", "reduce", "pool", "norm", "softmax", "interp"):
        return f"{t}.{k}"
    return f"{t}.{k}"


def _features(nodes: list[OpNode], profile: Profile, layer: Any = None) -> tuple[float, ...]:
    """The kernel's features; its counts come from the cost stage's own record (``layer``, a fused or single-op
    :class:`~chipfit.cost.profile.Layer`) when the kernel is one, else they are summed over its nodes."""
    head, last = nodes[0], nodes[-1]
    if layer is not None:
        c = layer.cost
        macs, flops, br, bw, wb = c.macs, c.flops, c.bytes_read, c.bytes_written, c.weight_bytes
        n_inputs = sum(1 for t in layer.reads if t.role in ("act", "input"))
    else:
        prec = profile.precision
        produced = {t.tid for n in nodes for t in n.outputs}
        reads: dict[int, Any] = {}
        for n in nodes:
            for t in n.read_tensors():
                if t.tid not in produced:
                    reads.setdefault(t.tid, t)
        macs, flops = sum(n.macs for n in nodes), sum(n.flops for n in nodes)
        br = sum(t.nbytes(prec) for t in reads.values())
        bw = sum(t.nbytes(prec) for t in last.written_tensors())
        wb = sum(t.nbytes(prec) for t in reads.values() if t.role == "weight")
        n_inputs = sum(1 for t in reads.values() if t.role in ("act", "input"))
    x = _act_shape(head)
    out = last.outputs[0].shape if last.outputs else ()
    w = next((t.shape for t in head.inputs if t.role == "weight" and len(t.shape) >= 2), ())
    c_in = x[1] if len(x) == 4 else (x[-1] if x else 0)
    c_out = out[1] if len(out) == 4 else (out[-1] if out else 0)
    if head.kind == "linear" and w:
        c_out = w[-1] if head.attrs.get("b_transposed") is False else w[0]
    stride = head.attrs.get("stride", (1, 1))
    vals = {
        "macs": macs,
        "flops": flops,
        "bytes_read": br,
        "bytes_written": bw,
        "weight_bytes": wb,
        "out_elems": _numel(out),
        "in_elems": _numel(x),
        "c_in": c_in,
        "c_out": c_out,
        "kernel": w[-1] if head.kind == "conv" and len(w) == 4 else 0,
        "stride": stride[0] if isinstance(stride, (tuple, list)) else stride,
        "groups": int(head.attrs.get("groups", 1)),
        "h_in": x[2] if len(x) == 4 else 0,
        "w_in": x[3] if len(x) == 4 else 0,
        "h_out": out[2] if len(out) == 4 else 0,
        "w_out": out[3] if len(out) == 4 else 0,
        "rows": _numel(x[:-1]) if head.kind in ("linear", "layer_norm") and x else 0,
        "fused": len(nodes) - 1,
        "inputs": n_inputs,
        "net_bytes": 0.0,  # set by kernels() once the network's kernels are all known
    }
    return tuple([float(vals[f]) for f in FEATURES])


def _steps(nodes: list[OpNode]) -> list[dict[str, Any]]:
    """Per follower: the shape of the running tensor it reads and the shapes/roles of its other inputs."""
    steps = []
    running = {t.buffer for t in nodes[0].outputs}
    for n in nodes[1:]:
        ins = n.read_tensors()
        x = next((t for t in ins if t.buffer in running), None)
        steps.append({"x": list(x.shape) if x is not None else [],
                      "others": [[list(t.shape), t.role] for t in ins if t.buffer not in running]})
        running = {t.buffer for t in n.outputs}
    return steps


def _spec(nodes: list[OpNode], key: str) -> dict[str, Any]:
    """What rebuilds the kernel alone: the head's activation shape, its options, and the chain."""
    head = nodes[0]
    w = next((list(t.shape) for t in head.inputs if t.role == "weight" and len(t.shape) >= 2), [])
    spec: dict[str, Any] = {"chain": key, "target": head.target, "input": list(_act_shape(head)),
                            "output": list(nodes[-1].outputs[0].shape) if nodes[-1].outputs else [],
                            "inputs": [list(t.shape) for t in head.inputs if t.role in ("act", "input")],
                            "weights": [list(t.shape) for t in head.inputs if t.role in ("weight", "const")],
                            "kernel": list(head.attrs.get("kernel", ())),
                            "steps": _steps(nodes)}
    if head.kind == "conv":
        spec.update(weight=w, stride=list(head.attrs.get("stride", (1, 1))),
                    padding=list(head.attrs.get("padding", (0, 0))), groups=int(head.attrs.get("groups", 1)),
                    bias=sum(1 for t in head.inputs if t.role == "weight") > 1)
    elif head.kind == "linear":
        spec.update(weight=w, transposed=bool(head.attrs.get("b_transposed", False)),
                    bias=sum(1 for t in head.inputs if t.role == "weight") > 1)
    elif head.kind == "attention":
        spec.update(mask=bool(head.attrs.get("has_mask", False)))
    return spec


def _readers(graph) -> dict[int, list[int]]:
    """tensor id -> the nodes that read it (views included, so a chain of views can be followed)."""
    out: dict[int, list[int]] = {}
    for n in graph.nodes:
        for t in n.inputs:
            out.setdefault(t.tid, []).append(n.idx)
    return out


def _producer(graph, idx: int) -> str:
    deps = graph.deps()[idx]
    return graph.nodes[deps[0]].kind if deps else "input"


def _consumer(graph, readers: dict[int, list[int]], idx: int) -> str:
    """The kind of the first non-view node that reads node ``idx``'s output, following views."""
    j = _consumer_node(graph, readers, idx)
    return "output" if j is None else graph.nodes[j].kind


def _consumer_node(graph, readers: dict[int, list[int]], idx: int) -> int | None:
    nodes = graph.nodes
    frontier = [r for t in nodes[idx].outputs for r in readers.get(t.tid, [])]
    seen = set()
    while frontier:
        j = frontier.pop(0)
        if j in seen:
            continue
        seen.add(j)
        if nodes[j].op_type != "view":
            return j
        frontier.extend(r for t in nodes[j].outputs for r in readers.get(t.tid, []))
    return None


def kernels(profile: Profile, rules: FusionRules, *, specs: bool = True) -> list[Kernel]:
    """The kernels ``profile``'s network runs as on the runtime ``rules`` describe: the fused layers in execution
    order, then the views the runtime executes (transposes, splits). ``specs=False`` leaves out what rebuilds each
    kernel alone (only sampling needs it; prediction is faster without)."""
    graph = profile.graph
    nodes = graph.nodes
    readers = _readers(graph)

    def context(type_: str, first: OpNode, last: OpNode, tag: str = "") -> str:
        if type_ not in CONTEXT_TYPES:
            return ""
        return f"{type_}{tag}<{_producer(graph, first.idx)}>{_consumer(graph, readers, last.idx)}"

    single = {layer.nodes[0]: layer for layer in profile.layers_unfused}
    names = export_names(graph)
    out: list[Kernel] = []
    for layer in profile.layers_fused:
        chain = [nodes[i] for i in layer.nodes]
        if chain[0].op_type in HEADS and len(chain) > 1:
            key = chain_key(chain)
            n_abs, measured = rules.absorbed(key)
            groups = [chain[:1 + n_abs]] + [[n] for n in chain[1 + n_abs:]]
        else:
            groups, measured = [[n] for n in chain], True
        for g in groups:
            key = chain_key(g)
            t = _type_of(g[0])
            tag = ".w" if any(x.role in ("weight", "const") for x in g[0].read_tensors()) else ""
            record = layer if len(g) == len(chain) else single.get(g[0].idx) if len(g) == 1 else None
            out.append(Kernel(t, key, f"{g[0].module or '<root>'}:{'+'.join(n.kind for n in g)}",
                              _features(g, profile, record), measured, _spec(g, key) if specs else {},
                              context(t, g[0], g[-1], tag), _out_shape(g[-1]), names[g[0].idx]))
            if t in ("conv", "dwconv") and rules.runtime == "ort":
                for r_type, shape, ctx in _reorders(g[0], g[-1], graph, readers, rules.nchwc_block):
                    out.append(Kernel(r_type, r_type, f"{g[0].module or '<root>'}:{r_type}",
                                      tensor_features(shape), True, {"chain": r_type, "input": list(shape)}, ctx,
                                      tuple(shape)))
    # Views that the runtime executes: a transpose that no clone makes contiguous becomes a Transpose, a split
    # copies its pieces. Other views (reshape, alias, unsqueeze) only rename a tensor.
    for n in nodes:
        if n.op_type != "view":
            continue
        if n.target in TRANSPOSES:
            c = _consumer_node(graph, readers, n.idx)
            if c is not None and nodes[c].target in ("aten.clone.default", "aten.contiguous.default"):
                continue
            feats = _features([n], profile, single.get(n.idx))
            split = _split_after(n, graph, readers) if rules.runtime == "ort" else None
            parts = len(split.outputs) if split is not None else 1
            spec = (_spec([n], "transpose") if split is None else _piece_spec(n, split)) if specs else {}
            for _ in range(parts):
                out.append(Kernel("transpose", "transpose", f"{n.module or '<root>'}:transpose",
                                  _part(feats, parts), True, spec, context("transpose", n, n),
                                  _out_shape(split if split is not None else n), names[n.idx] if split is None else ""))
        elif n.target in SPLITS:
            out.append(Kernel("split", "split", f"{n.module or '<root>'}:split", _features([n], profile), True,
                              _spec([n], "split") if specs else {}, shape=_out_shape(n)))
    total = float(sum(k.features[_MOVED[0]] + k.features[_MOVED[1]] for k in out))
    # the constructor, not dataclasses.replace: 4x faster, and a search costs many networks
    return [Kernel(k.type, k.chain, k.name, with_net_bytes(k.features, total), k.measured_rule, k.spec, k.context,
                   k.shape, k.op) for k in out]


def export_names(graph) -> list[str]:
    """Per node, the name the ONNX exporter (torch.export) gives it: the op's name, numbered from its second
    occurrence on (``permute``, ``permute_1``, ...); a clone that makes a permuted view contiguous (exported as
    that Transpose) takes its view's name."""
    seen: dict[str, int] = {}
    out = []
    for n in graph.nodes:
        base = n.target.split(".")[1] if n.target.startswith("aten.") else n.target
        k = seen.get(base, 0)
        seen[base] = k + 1
        out.append(f"{base}_{k}" if k else base)
    made_by = {t.tid: n.idx for n in graph.nodes for t in n.outputs}
    for n in graph.nodes:
        if n.target in ("aten.clone.default", "aten.contiguous.default") and n.inputs:
            src = made_by.get(n.inputs[0].tid)
            if src is not None and graph.nodes[src].target in TRANSPOSES:
                out[n.idx] = out[src]
    return out


def _out_shape(node: OpNode) -> tuple[int, ...]:
    return tuple(int(d) for d in node.outputs[0].shape) if node.outputs else ()


def _split_after(n: OpNode, graph, readers: dict[int, list[int]]) -> OpNode | None:
    """The split that alone reads transpose ``n``'s output, if one does. ONNX Runtime moves such a transpose past the
    split: it splits first and transposes each piece (attention's q, k and v), so the one transpose runs as one per
    piece."""
    rs = [r for t in n.outputs for r in readers.get(t.tid, [])]
    if len(rs) == 1 and graph.nodes[rs[0]].target in SPLITS and len(graph.nodes[rs[0]].outputs) > 1:
        return graph.nodes[rs[0]]
    return None


def _piece_spec(n: OpNode, split: OpNode) -> dict[str, Any]:
    """What rebuilds one piece's transpose alone: the untransposed tensor cut to one along the axis the split takes
    (the one of as many elements as pieces), transposed to a piece with its leading unit axis."""
    spec = _spec([n], "transpose")
    x, parts = list(spec["input"]), len(split.outputs)
    x[next((i for i, d in enumerate(x) if d == parts), 0)] = 1
    return {**spec, "input": x, "output": [1, *_out_shape(split)], "pieces": parts}


_PER_PIECE = tuple(i for i, f in enumerate(FEATURES) if f in ("flops", "bytes_read", "bytes_written", "out_elems",
                                                               "in_elems"))


def _part(features: tuple[float, ...], parts: int) -> tuple[float, ...]:
    """A data-moving kernel's features for one of ``parts`` equal pieces of its tensor."""
    if parts == 1:
        return features
    return tuple(v / parts if i in _PER_PIECE else v for i, v in enumerate(features))


def tensor_features(shape: tuple[int, ...] | list[int], bits: int = 32) -> tuple[float, ...]:
    """Features of a kernel that only moves one tensor (a layout reorder): its elements, channels, map and bytes."""
    n = _numel(tuple(shape))
    c, h, w = (shape[1], shape[2], shape[3]) if len(shape) == 4 else (shape[-1] if shape else 0, 0, 0)
    vals = dict.fromkeys(FEATURES, 0.0)
    vals.update(bytes_read=n * bits / 8, bytes_written=n * bits / 8, out_elems=n, in_elems=n, c_in=c, c_out=c,
                h_in=h, w_in=w, h_out=h, w_out=w, inputs=1, net_bytes=2 * n * bits / 8)
    return tuple(float(vals[f]) for f in FEATURES)


def _reorders(head: OpNode, last: OpNode, graph, readers, block: int) -> list[tuple[str, tuple[int, ...], str]]:
    """(type, tensor shape, context) of the layout reorders ONNX Runtime puts around a conv kernel on x86, whose
    blocked layout takes ``block`` channels a block (0: none)."""
    x, out = _act_shape(head), (last.outputs[0].shape if last.outputs else ())
    if block <= 0 or len(x) != 4 or len(out) != 4 or out[1] % block:
        return []  # convolutions the blocked layout does not take run as they are
    found = []
    prod, cons = _producer(graph, head.idx), _consumer(graph, readers, last.idx)
    if x[1] % block == 0 and prod not in NCHWC_KINDS:
        found.append(("reorder.in", x, f"reorder.in<{prod}>conv"))
    if cons not in NCHWC_KINDS:
        found.append(("reorder.out", out, f"reorder.out<conv>{cons}"))
    return found


def chains(profile: Profile) -> list[dict[str, Any]]:
    """The spec of every whole conv/linear chain chipfit's own fusion finds (before a runtime's rules split it):
    what :func:`chipfit.deploy.fusion.detect` asks the runtime about."""
    nodes = profile.graph.nodes
    out = []
    for layer in profile.layers_fused:
        chain = [nodes[i] for i in layer.nodes]
        if chain[0].op_type in HEADS and len(chain) > 1:
            out.append(_spec(chain, chain_key(chain)))
    return out


def view_count(profile: Profile) -> int:
    """Views that are not kernels (reshape, alias, unsqueeze): each still costs the runtime a node."""
    return sum(1 for n in profile.graph.nodes if n.op_type == "view" and n.target not in TRANSPOSES + SPLITS)
