"""The simulator's layers: built from a chipfit :class:`~chipfit.cost.Profile` or read from a SCALE-Sim topology CSV.

A :class:`SimLayer` is a convolution (``conv``, ``dwconv``, ``quadconv``), a matrix product (``gemm``) or an
operation of the vector unit (``eltwise``, ``pool``, ``norm``). Convolutions keep the network's stride, padding,
dilation and groups; ``in_h``/``in_w`` are the unpadded input (padding is generated on chip, never read from DRAM).

From a profile there is one layer per graph node (views skipped), except that the quadratic convolution, which the
graph shows as three convolutions of one input plus a product and a sum (``conv_a(x) * conv_b(x) + conv_c(x)``), is
recognised and reported as one ``quadconv`` layer. Attention is two batched GEMMs and a softmax.

Fused (``fused=True``, the default) the layers are those a deployment compiler runs: the op chains of
:mod:`chipfit.cost.fusion` (a conv or linear, then its BatchNorm, activations and element-wise ops such as a
residual add or a layer-scale multiply) become the array layer alone, its followers applied by the vector unit to
the output as it leaves the array: their operations stay (``fused_ops``) but their intermediate maps never travel to
memory; only what they read from elsewhere (the residual's other operand, a scale) does (``fused_reads``). A
BatchNorm right after its conv is folded into the weights and disappears.

MACs come from the cost records (the op graph's nodes), not from the layer's dimensions: the dimensions map the layer
onto the array, the records say how much arithmetic there is (for a topology CSV, which has no records, the
dimensions give both).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from chipfit.cost import Profile
    from chipfit.cost.records import OpNode

KINDS = ("conv", "dwconv", "quadconv", "gemm", "eltwise", "pool", "norm")
ARRAY_KINDS = ("conv", "dwconv", "quadconv", "gemm")


@dataclass(frozen=True)
class SimLayer:
    """One layer as the simulator sees it.

    Attributes:
        name: layer name (``module:kind`` from a profile, the CSV's name from a topology).
        kind: conv, dwconv, quadconv, gemm (the systolic array) or eltwise, pool, norm (the vector unit).
        batch: images; convolutions and GEMMs stream ``batch`` times more rows through the same weights.
        in_h, in_w, in_c: unpadded input height, width and channels of a convolution.
        out_h, out_w: output height and width.
        filt_h, filt_w: kernel size.
        num_filters: output channels (per quadconv branch).
        stride, padding, dilation: (height, width) pairs.
        groups: convolution groups; for a GEMM, independent products (batched matmul, attention heads).
        m, k, n: a GEMM's dimensions (per group): (m x k) @ (k x n).
        vector_ops: arithmetic operations of a vector-unit layer.
        in_elems, out_elems: elements a vector-unit layer reads and writes.
        weight_elems: weight elements a vector-unit layer reads (norm scale/shift).
        fused_ops, fused_reads, fused: an array layer's fused followers (``fused=True``): their vector operations,
            the elements they read from memory besides the layer's own output, and their names.
        sparsity: a per-layer N:M ratio from a topology CSV (``"2:4"``), else ``None``.
        record_macs: the multiply-adds the cost records give for the layer at ``source_batch`` images (``None`` for
            a topology CSV).
        source_batch: the batch of the profile the layer came from.
        module_type: class of the module it came from.
        note: why a layer was mapped as it was (unsupported op, transposed conv, ...).
    """

    name: str
    kind: str
    batch: int = 1
    in_h: int = 1
    in_w: int = 1
    in_c: int = 1
    out_h: int = 1
    out_w: int = 1
    filt_h: int = 1
    filt_w: int = 1
    num_filters: int = 1
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    m: int = 0
    k: int = 0
    n: int = 0
    vector_ops: int = 0
    in_elems: int = 0
    out_elems: int = 0
    weight_elems: int = 0
    fused_ops: int = 0
    fused_reads: int = 0
    fused: tuple[str, ...] = ()
    sparsity: str | None = None
    module_type: str = ""
    note: str = ""
    record_macs: int | None = None
    source_batch: int = 1

    @property
    def on_array(self) -> bool:
        return self.kind in ARRAY_KINDS

    def gemm(self) -> tuple[int, int, int, int]:
        """(groups, M, K, N) of the matrix product each group computes; a quadconv's three branches share the
        input, so they are one product with 3 x num_filters columns."""
        if self.kind == "gemm":
            return self.groups, self.batch * self.m, self.k, self.n
        g = self.groups
        m = self.batch * self.out_h * self.out_w
        k = self.filt_h * self.filt_w * (self.in_c // g)
        n = self.num_filters // g * (3 if self.kind == "quadconv" else 1)
        return g, m, k, n

    @property
    def macs(self) -> int:
        """Multiply-adds per run: the cost records' count when the layer came from a profile, else its GEMM's."""
        if not self.on_array:
            return 0
        if self.record_macs is not None:
            return self.record_macs * self.batch // max(self.source_batch, 1)
        g, m, k, n = self.gemm()
        return g * m * k * n

    def with_batch(self, batch: int) -> SimLayer:
        b = max(self.batch, 1)
        if not self.on_array:
            return replace(self, batch=batch, in_elems=self.in_elems * batch // b,
                           out_elems=self.out_elems * batch // b, vector_ops=self.vector_ops * batch // b)
        return replace(self, batch=batch, fused_ops=self.fused_ops * batch // b,
                       fused_reads=self.fused_reads * batch // b)


# --- from a profile -----------------------------------------------------------------------------------------------


def _numel(shape) -> int:
    return math.prod(int(d) for d in shape) if shape else 1


def _conv_layer(node: OpNode, kind: str = "conv", name: str | None = None) -> SimLayer:
    x, w = node.inputs[0].shape, node.inputs[1].shape
    out = node.outputs[0].shape
    a = node.attrs
    groups = int(a.get("groups", 1))
    name = name or node.name
    if a.get("transposed") or len(x) != 4:
        # A transposed or non-2D convolution as the GEMM it is: every input (output) position times the weights.
        if a.get("transposed"):
            m, k, n = _numel(x[2:]) * x[0], w[0] // groups, w[1] * _numel(w[2:])
            note = "transposed conv mapped as a GEMM (inputs x weights, scattered to outputs)"
        else:
            m, k, n = _numel(out[2:]) * out[0], w[1] * _numel(w[2:]), w[0] // groups
            note = f"{len(x) - 2}-d conv mapped as a GEMM"
        return SimLayer(name, "gemm", groups=groups, m=m, k=k, n=n, module_type=node.module_type, note=note,
                        record_macs=node.macs)
    b, c, h, wd = x
    stride, pad, dil = tuple(a.get("stride", (1, 1))), tuple(a.get("padding", (0, 0))), tuple(a.get("dilation", (1, 1)))
    if kind == "conv" and groups > 1 and groups == c and w[1] == 1:
        kind = "dwconv"
    return SimLayer(name, kind, batch=b, in_h=h, in_w=wd, in_c=c, out_h=out[2], out_w=out[3], filt_h=w[2],
                    filt_w=w[3], num_filters=w[0], stride=stride, padding=pad, dilation=dil, groups=groups,
                    module_type=node.module_type, record_macs=node.macs, source_batch=b)


def _gemm_layers(node: OpNode) -> list[SimLayer]:
    if node.kind == "attention":
        q, k, v = (t.shape for t in node.inputs[:3])
        g = _numel(q[:-2])
        lq, e, lk, ev = q[-2], q[-1], k[-2], v[-1]
        per = node.macs // (e + ev)  # the record counts both products: g x lq x lk x (e + ev)
        return [SimLayer(f"{node.name}.qk", "gemm", groups=g, m=lq, k=e, n=lk, module_type=node.module_type,
                         record_macs=per * e),
                SimLayer(f"{node.name}.softmax", "eltwise", vector_ops=g * lq * lk * 5, in_elems=g * lq * lk,
                         out_elems=g * lq * lk, module_type=node.module_type),
                SimLayer(f"{node.name}.pv", "gemm", groups=g, m=lq, k=lk, n=ev, module_type=node.module_type,
                         record_macs=per * ev)]
    a = node.inputs[node.attrs.get("a", 0)].shape
    b = node.inputs[node.attrs.get("b", 1)].shape
    if len(a) == 1:
        a = (1, *a)
    if len(b) == 1:
        b = (*b, 1)
    if node.attrs.get("b_transposed"):
        b = (*b[:-2], b[-1], b[-2])
    m, k, n = a[-2], a[-1], b[-1]
    if len(b) == 2:  # a weight (or a plain matrix): the batch dimensions of a are extra rows
        return [SimLayer(node.name, "gemm", m=_numel(a[:-1]), k=k, n=n, module_type=node.module_type,
                         record_macs=node.macs)]
    nb = max(len(a), len(b)) - 2
    pa, pb = (1,) * (nb + 2 - len(a)) + tuple(a[:-2]), (1,) * (nb + 2 - len(b)) + tuple(b[:-2])
    g = math.prod(max(x, y) for x, y in zip(pa, pb, strict=True))
    return [SimLayer(node.name, "gemm", groups=g, m=m, k=k, n=n, module_type=node.module_type,
                     record_macs=node.macs)]


_VECTOR_KIND = {"norm": "norm", "pool": "pool"}


def _vector_layer(node: OpNode, name: str | None = None) -> SimLayer:
    reads = node.read_tensors()
    act_in = sum(t.numel for t in reads if t.role != "weight")
    weights = sum(t.numel for t in reads if t.role == "weight")
    out = sum(t.numel for t in node.written_tensors())
    ops = node.flops if node.flops else max(act_in, out)  # a copy moves every element once
    note = "" if node.supported else f"no cost handler for {node.target}: one operation per element assumed"
    return SimLayer(name or node.name, _VECTOR_KIND.get(node.op_type, "eltwise"), vector_ops=int(ops),
                    in_elems=act_in, out_elems=out, weight_elems=weights, module_type=node.module_type, note=note)


def _quadconv_groups(nodes: list[OpNode], views: list[OpNode]) -> dict[int, tuple[tuple[int, ...], int]]:
    """Find conv_a(x) * conv_b(x) + conv_c(x), as three convolutions of one input or as one convolution with three
    times the channels whose output is split (through views). Returns head conv index -> (member node indices,
    number of branches the head conv holds: 1 or 3)."""
    produced: dict[int, OpNode] = {}
    for n in [*nodes, *views]:
        for t in n.outputs:
            produced[t.tid] = n

    def source(tid: int) -> OpNode | None:
        node = produced.get(tid)
        while node is not None and node.op_type == "view" and node.inputs:
            node = produced.get(node.inputs[0].tid)
        return node

    found: dict[int, tuple[tuple[int, ...], int]] = {}
    for add in nodes:
        if add.kind != "add" or len(add.inputs) != 2:
            continue
        srcs = [source(t.tid) for t in add.inputs]
        mul = next((s for s in srcs if s is not None and s.kind == "mul" and len(s.inputs) == 2), None)
        other = next((s for s in srcs if s is not mul), None)
        if mul is None or other is None or other.kind != "conv":
            continue
        convs = [source(t.tid) for t in mul.inputs] + [other]
        if any(c is None or c.kind != "conv" for c in convs):
            continue
        ids = {c.idx for c in convs}
        out_ch = add.outputs[0].shape[1] if add.outputs and len(add.outputs[0].shape) > 1 else 0
        if len(ids) == 1 and convs[0].inputs[1].shape[0] == 3 * out_ch:
            found[convs[0].idx] = ((convs[0].idx, mul.idx, add.idx), 3)
        elif len(ids) == 3 and len({c.inputs[0].tid for c in convs}) == 1 and len(
                {(c.inputs[1].shape, tuple(sorted(c.attrs.items()))) for c in convs}) == 1:
            idxs = sorted(ids)
            found[idxs[0]] = ((*idxs, mul.idx, add.idx), 1)
    return found


def layers_from_profile(prof: Profile, fused: bool = True) -> list[SimLayer]:
    """One :class:`SimLayer` per op of the profile's graph (views skipped), quadratic convolutions merged; with
    ``fused`` the followers of each conv/linear folded into it (see the module docstring)."""
    nodes = [n for n in prof.graph.nodes if n.op_type != "view"]
    quad = _quadconv_groups(nodes, [n for n in prof.graph.nodes if n.op_type == "view"])
    skip = {i for members, _ in quad.values() for i in members}
    out: list[SimLayer] = []
    at: dict[int, int] = {}  # node idx -> position of its (last) layer in ``out``
    for node in nodes:
        if node.idx in quad:
            layer = _conv_layer(node, "quadconv", name=f"{node.module or '<root>'}:quadconv")
            members = quad[node.idx][0]
            macs = sum(prof.graph.nodes[i].macs for i in members)  # the branch convs' (the product and sum: none)
            layer = replace(layer, record_macs=macs)
            if quad[node.idx][1] == 3:  # one convolution holding the three branches
                layer = replace(layer, num_filters=layer.num_filters // 3)
            out.append(layer)
        elif node.idx in skip:
            continue
        elif node.kind == "conv":
            out.append(_conv_layer(node))
        elif node.kind in ("linear", "matmul", "attention"):
            out.extend(_gemm_layers(node))
        else:
            out.append(_vector_layer(node))
        at[node.idx] = len(out) - 1
    return _fuse(out, at, prof, skip) if fused else out


def _fuse(layers: list[SimLayer], at: dict[int, int], prof: Profile, skip: set[int]) -> list[SimLayer]:
    from chipfit.cost.fusion import fusion_groups

    gone: set[int] = set()
    for group in fusion_groups(prof.graph):
        head = at.get(group[0])
        if head is None or not layers[head].on_array:
            continue
        ops = reads = 0
        names: list[str] = []
        for idx in group[1:]:
            pos = at.get(idx)
            if idx in skip or pos is None or layers[pos].on_array:
                continue  # a quadratic conv's own product and sum are already part of its layer
            f = layers[pos]
            gone.add(pos)
            names.append(f.name)
            if f.kind == "norm" and len(names) == 1:  # BatchNorm after its conv: folded into the weights
                continue
            ops += f.vector_ops
            reads += max(f.in_elems - f.out_elems, 0) + f.weight_elems  # what the running map does not supply
        if names:
            h = layers[head]
            layers[head] = replace(h, fused_ops=h.fused_ops + ops, fused_reads=h.fused_reads + reads,
                                   fused=h.fused + tuple(names))
    return [x for i, x in enumerate(layers) if i not in gone]
