"""Per-op cost handlers: pure functions of shapes and attributes, one table for every front end.

Each handler takes the input shapes, output shapes and attributes of one op and returns an
:class:`OpCost` (MACs, FLOPs, and which inputs/outputs it really reads and writes). The PyTorch and ONNX
front ends only translate their op names into the canonical kinds of :data:`TABLE`.

FLOPs per element of the non-MAC ops (approximate instruction counts, fixed here once):

============================  ======  =================================================
op                            FLOPs   counted as
============================  ======  =================================================
relu                          1       max(x, 0)
relu6, hardtanh, clamp        2       min and max
leaky_relu, prelu             2       compare, multiply
sigmoid                       4       neg, exp, add, divide
tanh                          5       two exps, add, subtract, divide (shared terms)
silu (swish)                  5       sigmoid, multiply
gelu                          8       erf (about 5), multiply, add, multiply
hardswish                     4       add, clamp (2), multiply (divide folded)
hardsigmoid                   3       add, clamp (2)
elu, softplus, mish           5-9     exp/log based, see ACT_FLOPS
binary arithmetic             1       add/sub/mul/div/max/min/pow/where per output element
batch norm (inference)        2       x * scale + shift (statistics folded)
layer/group/instance norm     8       mean 1, variance 3, normalise 2, affine 2
softmax                       5       max, subtract, exp, sum, divide
max pool                      k-1     comparisons per output element (k = window size)
average pool                  k       k-1 adds and one multiply per output element
bilinear interpolation        8       4 weights x multiply-add per output element
bicubic interpolation         32      16 weights x multiply-add per output element
reductions (sum/max)          1       per input element; a mean adds one divide per output
============================  ======  =================================================
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from math import prod

Shape = tuple[int, ...]


@dataclass(frozen=True)
class OpCost:
    """What a handler returns: arithmetic and which tensors the op really touches.

    ``reads``/``writes`` name indices of the op's inputs/outputs; ``None`` means all of them.
    """

    macs: int = 0
    flops: int = 0
    reads: tuple[int, ...] | None = None
    writes: tuple[int, ...] | None = None


Handler = Callable[[Sequence[Shape], Sequence[Shape], dict], OpCost]


@dataclass(frozen=True)
class OpKind:
    """A canonical op: its user-facing category and its cost handler."""

    op_type: str
    handler: Handler


TABLE: dict[str, OpKind] = {}


def _register(kinds: Sequence[str], op_type: str) -> Callable[[Handler], Handler]:
    def wrap(fn: Handler) -> Handler:
        for k in kinds:
            TABLE[k] = OpKind(op_type, fn)
        return fn

    return wrap


def numel(shape: Sequence[int]) -> int:
    return int(prod(int(d) for d in shape))


# --- compute-heavy ops -------------------------------------------------------------------------------------------


def conv_macs(x: Shape, w: Shape, out: Shape, groups: int, transposed: bool = False) -> int:
    """MACs of an N-d convolution.

    Forward conv: every output element accumulates ``C_in/groups * prod(kernel)`` products, with ``w`` of shape
    (C_out, C_in/groups, *k). Transposed conv: every *input* element scatters into ``C_out/groups * prod(kernel)``
    outputs, with ``w`` of shape (C_in, C_out/groups, *k).
    """
    if transposed:
        return numel(x) * w[1] * numel(w[2:])
    return numel(out) * w[1] * numel(w[2:])


@_register(["conv"], "conv")
def _conv(ins: Sequence[Shape], outs: Sequence[Shape], attrs: dict) -> OpCost:
    macs = conv_macs(ins[0], ins[1], outs[0], attrs.get("groups", 1), attrs.get("transposed", False))
    return OpCost(macs, 2 * macs, writes=(0,))


def matmul_macs(a: Shape, b: Shape) -> int:
    """MACs of a (batched, broadcast) matrix product a @ b: batch x M x K x N."""
    if len(a) == 1:
        a = (1, *a)
    if len(b) == 1:
        b = (*b, 1)
    m, k = a[-2], a[-1]
    n = b[-1]
    batch = _broadcast(a[:-2], b[:-2])
    return numel(batch) * m * k * n


def _broadcast(a: Shape, b: Shape) -> Shape:
    n = max(len(a), len(b))
    a = (1,) * (n - len(a)) + tuple(a)
    b = (1,) * (n - len(b)) + tuple(b)
    return tuple(max(x, y) for x, y in zip(a, b, strict=True))


def _matmul(ins: Sequence[Shape], outs: Sequence[Shape], attrs: dict) -> OpCost:
    """a @ b, with a = inputs[attrs["a"]] and b = inputs[attrs["b"]]; ``b_transposed`` for torch's linear (W is
    stored out x in). A bias (addmm, Gemm) initialises the accumulator: no extra FLOPs."""
    a, b = ins[attrs.get("a", 0)], ins[attrs.get("b", 1)]
    if attrs.get("b_transposed"):
        b = (*b[:-2], b[-1], b[-2]) if len(b) >= 2 else b
    macs = matmul_macs(a, b)
    return OpCost(macs, 2 * macs)


# The same arithmetic; "linear" when one operand is a weight, "matmul" when both are activations.
_register(["matmul"], "matmul")(_matmul)
_register(["linear"], "linear")(_matmul)


def attention_macs(q: Shape, k: Shape, v: Shape) -> int:
    """MACs of softmax(q k^T) v: q (..., Lq, E), k (..., Lk, E), v (..., Lk, Ev)."""
    batch = numel(_broadcast(q[:-2], k[:-2]))
    lq, e = q[-2], q[-1]
    lk, ev = k[-2], v[-1]
    return batch * lq * lk * (e + ev)


@_register(["attention"], "attention")
def _attention(ins: Sequence[Shape], outs: Sequence[Shape], attrs: dict) -> OpCost:
    q, k, v = ins[0], ins[1], ins[2]
    macs = attention_macs(q, k, v)
    scores = numel(_broadcast(q[:-2], k[:-2])) * q[-2] * k[-2]
    # scale (1) + optional mask add (1) + softmax (5) per score element
    extra = scores * (1 + (1 if attrs.get("has_mask") else 0) + SOFTMAX_FLOPS)
    return OpCost(macs, 2 * macs + extra)


# --- normalisation, activations, element-wise ---------------------------------------------------------------------

SOFTMAX_FLOPS = 5
NORM_FLOPS = {"batch_norm": 2, "layer_norm": 8, "group_norm": 8, "instance_norm": 8, "rms_norm": 6}
ACT_FLOPS = {
    "relu": 1,
    "relu6": 2,
    "hardtanh": 2,
    "leaky_relu": 2,
    "prelu": 2,
    "sigmoid": 4,
    "tanh": 5,
    "silu": 5,
    "gelu": 8,
    "hardswish": 4,
    "hardsigmoid": 3,
    "elu": 5,
    "selu": 6,
    "softplus": 5,
    "mish": 9,
    "erf": 5,
}
ELTWISE_FLOPS = {
    "add": 1,
    "sub": 1,
    "mul": 1,
    "div": 1,
    "neg": 1,
    "abs": 1,
    "pow": 1,
    "sqrt": 1,
    "rsqrt": 1,
    "reciprocal": 1,
    "exp": 1,
    "log": 1,
    "maximum": 1,
    "minimum": 1,
    "clamp": 2,
    "where": 1,
    "fill": 0,
    "sign": 1,
    "floor": 1,
    "round": 1,
    "eq": 1,
    "gt": 1,
    "lt": 1,
    "logical": 1,
}


def _per_output(n_per_elem: int) -> Handler:
    def h(ins: Sequence[Shape], outs: Sequence[Shape], attrs: dict) -> OpCost:
        return OpCost(0, n_per_elem * numel(outs[0]), writes=(0,))

    return h


for _k, _n in NORM_FLOPS.items():
    _register([_k], "norm")(_per_output(_n))
for _k, _n in ACT_FLOPS.items():
    _register([_k], "act")(_per_output(_n))
for _k, _n in ELTWISE_FLOPS.items():
    _register([_k], "eltwise")(_per_output(_n))


@_register(["add_alpha"], "eltwise")
def _add_alpha(ins: Sequence[Shape], outs: Sequence[Shape], attrs: dict) -> OpCost:
    return OpCost(0, 2 * numel(outs[0]))  # x + alpha * y


@_register(["softmax"], "softmax")
def _softmax(ins: Sequence[Shape], outs: Sequence[Shape], attrs: dict) -> OpCost:
    return OpCost(0, SOFTMAX_FLOPS * numel(outs[0]))


# --- pooling, reductions, interpolation --------------------------------------------------------------------------


@_register(["max_pool"], "pool")
def _max_pool(ins: Sequence[Shape], outs: Sequence[Shape], attrs: dict) -> OpCost:
    window = numel(attrs.get("kernel", (1,)))
    # Max-pool's index output (training-only) is not written at inference.
    return OpCost(0, max(window - 1, 1) * numel(outs[0]), writes=(0,))


@_register(["avg_pool"], "pool")
def _avg_pool(ins: Sequence[Shape], outs: Sequence[Shape], attrs: dict) -> OpCost:
    window = numel(attrs.get("kernel", (1,)))
    return OpCost(0, window * numel(outs[0]))


@_register(["adaptive_avg_pool"], "pool")
def _adaptive_avg_pool(ins: Sequence[Shape], outs: Sequence[Shape], attrs: dict) -> OpCost:
    return OpCost(0, numel(ins[0]) + numel(outs[0]))


@_register(["reduce"], "reduce")
def _reduce(ins: Sequence[Shape], outs: Sequence[Shape], attrs: dict) -> OpCost:
    return OpCost(0, numel(ins[0]), reads=(0,), writes=(0,))


@_register(["mean"], "reduce")
def _mean(ins: Sequence[Shape], outs: Sequence[Shape], attrs: dict) -> OpCost:
    """A mean (global average pooling arrives as one): the sum, then one divide per output."""
    return OpCost(0, numel(ins[0]) + numel(outs[0]), reads=(0,), writes=(0,))


INTERP_FLOPS = {"nearest": 0, "linear": 4, "bilinear": 8, "trilinear": 16, "bicubic": 32}


@_register(["interp"], "interp")
def _interp(ins: Sequence[Shape], outs: Sequence[Shape], attrs: dict) -> OpCost:
    mode = attrs.get("mode", "nearest")
    return OpCost(0, INTERP_FLOPS.get(mode, 8) * numel(outs[0]), reads=(0,), writes=(0,))


# --- data movement ----------------------------------------------------------------------------------------------


@_register(["copy"], "copy")
def _copy(ins: Sequence[Shape], outs: Sequence[Shape], attrs: dict) -> OpCost:
    """cat, clone, contiguous, pad, roll, gather: no arithmetic, real bytes (all inputs read, all outputs written)."""
    return OpCost(0, 0, reads=attrs.get("reads"), writes=attrs.get("writes"))


@_register(["view"], "view")
def _view(ins: Sequence[Shape], outs: Sequence[Shape], attrs: dict) -> OpCost:
    """reshape/transpose/slice views and shape arithmetic: no arithmetic and no bytes."""
    return OpCost(0, 0, reads=(), writes=())
