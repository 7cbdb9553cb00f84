"""Typed records of the cost engine: tensors, ops, precisions and additive cost records.

Conventions (stated once, used everywhere in chipfit):

- A **MAC** is one multiply-add (multiply-accumulate). A convolution's bias is the accumulator's
  initial value and costs no extra MAC.
- **FLOPs** count 2 per MAC plus every other arithmetic operation: element-wise arithmetic,
  normalisation, softmax, pooling, interpolation and activations (ReLU costs 1 per element: it is
  not free). Per-element counts for non-MAC ops are listed in ``chipfit.cost.handlers``.
- **Bytes read** are the weights and inputs an op reads; **bytes written** its outputs. Both follow
  the chosen precision (bits per weight and per activation); integer tensors (indices, masks) keep
  their own width. View ops (reshape, transpose, slicing of a contiguous tensor) read and write
  nothing; ops that copy (cat, clone, contiguous, pad, roll) read and write real bytes.
- **Params** count trainable parameters once, even where several ops share them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields

CONVENTIONS = {
    "mac": "one multiply-add; a bias initialises the accumulator and costs no extra MAC",
    "flops": "2 per MAC plus element-wise, normalisation, softmax, pooling, interpolation and activation "
    "operations (ReLU = 1 per element)",
    "bytes_read": "weights and inputs read by the op, at the chosen precision",
    "bytes_written": "outputs written by the op, at the chosen precision",
    "views": "reshape/transpose/slice views move no bytes; cat/clone/pad/roll copies do",
    "reuse": "a kernel (one op or a fused chain) reads each distinct tensor once, even if it uses it twice",
    "params": "trainable parameters, each counted once",
    "attention": "scaled-dot-product attention is one fused op (the score matrix stays on chip)",
}

_DTYPE_BITS = {"fp32": 32, "fp16": 16, "bf16": 16, "int16": 16, "int8": 8, "int4": 4, "int2": 2, "binary": 1}


@dataclass(frozen=True)
class Precision:
    """Bit widths used to turn element counts into bytes.

    Attributes:
        name: the precision's name, e.g. ``fp32``, ``int8`` or ``w4a8``.
        weight_bits: bits per weight element.
        act_bits: bits per activation element.
        compute: the dtype whose peak and energy apply to the arithmetic (a key of a chip's peaks).
        overrides: weight bit widths of single layers by module name (``stem.0``: 8) for mixed precision, as
            ``chipfit.compress`` leaves them (a binary network whose first and last layers keep 8-bit weights).
    """

    name: str = "fp32"
    weight_bits: int = 32
    act_bits: int = 32
    compute: str = "fp32"
    overrides: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def parse(cls, spec: str | Precision) -> Precision:
        """``fp32``, ``fp16``, ``bf16``, ``int8``, ``int4``, ``binary``, or ``wXaY`` (weights X bits, activations Y)."""
        if isinstance(spec, Precision):
            return spec
        s = str(spec).strip().lower()
        if s in _DTYPE_BITS:
            bits = _DTYPE_BITS[s]
            compute = s if s in ("fp32", "fp16", "bf16", "int16", "int8", "int4") else "int8"
            return cls(s, bits, bits, compute)
        m = re.fullmatch(r"w(\d+)a(\d+)", s)
        if m:
            wb, ab = int(m.group(1)), int(m.group(2))
            if not (1 <= wb <= 32 and 1 <= ab <= 32):
                raise ValueError(f"precision {spec!r}: bit widths must lie in 1..32")
            wider = max(wb, ab)
            compute = "fp32" if wider > 16 else "int16" if wider > 8 else "int8"
            return cls(s, wb, ab, compute)
        raise ValueError(
            f"unknown precision {spec!r}; use one of {', '.join(_DTYPE_BITS)} or wXaY (e.g. w4a8: 4-bit weights, "
            "8-bit activations)"
        )


@dataclass(frozen=True)
class TensorRef:
    """A tensor seen by the engine: its identity, shape and what it is.

    Attributes:
        tid: unique id inside one graph.
        shape: the tensor's shape.
        role: ``input`` (a network input), ``weight`` (parameter or buffer), ``act`` (an activation produced by an
            op) or ``const`` (created inside the forward, e.g. by ``arange``).
        native_bits: bits per element of the captured dtype (used for integer/bool tensors).
        is_float: whether the captured dtype is floating point (precision applies only to those).
        name: parameter/buffer name for weights.
        buffer: id of the storage this tensor lives in (views share their base's buffer).
        is_param: trainable parameter (counts in ``params``) rather than a buffer.
    """

    tid: int
    shape: tuple[int, ...]
    role: str
    native_bits: int = 32
    is_float: bool = True
    name: str = ""
    buffer: int = -1
    is_param: bool = False

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= int(d)
        return n

    def bits(self, precision: Precision) -> int:
        if not self.is_float:
            return self.native_bits
        if self.role == "weight":
            return precision.overrides.get(self.name.rpartition(".")[0], precision.weight_bits)
        return precision.act_bits

    def nbytes(self, precision: Precision) -> float:
        return self.numel * self.bits(precision) / 8


@dataclass
class OpNode:
    """One operation of a captured graph, in execution order.

    Attributes:
        idx: position in execution order.
        target: the framework's op name (``aten.convolution.default`` or ONNX ``Conv``).
        kind: the canonical op handled by the table (``conv``, ``matmul``, ``relu``...), or the target if unsupported.
        op_type: the plain category reported to users (conv, linear, matmul, attention, norm, act, eltwise, pool,
            softmax, reduce, copy, interp, view, unsupported).
        module: qualified name of the module the op belongs to (``layer1.0.conv1``); ``""`` for the root.
        module_type: class name of that module (or the ONNX node's name).
        inputs: tensors read (weights included).
        outputs: tensors written.
        attrs: op attributes (stride, groups, ...).
        macs: multiply-adds.
        flops: arithmetic operations (see the conventions).
        reads: indices of ``inputs`` the op really reads (default all).
        writes: indices of ``outputs`` the op really writes (default all).
        supported: whether a handler costed this op.
    """

    idx: int
    target: str
    kind: str
    op_type: str
    module: str
    module_type: str
    inputs: list[TensorRef]
    outputs: list[TensorRef]
    attrs: dict = field(default_factory=dict)
    macs: int = 0
    flops: int = 0
    reads: tuple[int, ...] | None = None
    writes: tuple[int, ...] | None = None
    supported: bool = True

    @property
    def name(self) -> str:
        return f"{self.module or '<root>'}:{self.kind}"

    def read_tensors(self) -> list[TensorRef]:
        if self.reads is None:
            return list(self.inputs)
        return [self.inputs[i] for i in self.reads if i < len(self.inputs)]

    def written_tensors(self) -> list[TensorRef]:
        if self.writes is None:
            return list(self.outputs)
        return [self.outputs[i] for i in self.writes if i < len(self.outputs)]

    def params(self) -> int:
        return sum(t.numel for t in self.inputs if t.role == "weight" and t.is_param)

    def bytes_read(self, precision: Precision) -> float:
        return sum(t.nbytes(precision) for t in self.read_tensors())

    def weight_bytes(self, precision: Precision) -> float:
        return sum(t.nbytes(precision) for t in self.read_tensors() if t.role == "weight")

    def bytes_written(self, precision: Precision) -> float:
        return sum(t.nbytes(precision) for t in self.written_tensors())


@dataclass(frozen=True)
class Cost:
    """An additive cost record: one op, a fused group, a module, an op type or a whole network.

    Counts only: time, energy and DRAM traffic depend on a chip and come from a hardware model as a
    :class:`chipfit.hw.estimate.Estimate`.
    """

    params: int = 0
    macs: int = 0
    flops: int = 0
    bytes_read: float = 0.0
    bytes_written: float = 0.0
    weight_bytes: float = 0.0
    ops: int = 0

    def __add__(self, other: Cost) -> Cost:
        return Cost(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(Cost)})

    @property
    def bytes(self) -> float:
        """Memory access (the ShuffleNetV2 'MAC'): bytes read plus bytes written."""
        return self.bytes_read + self.bytes_written

    @property
    def intensity(self) -> float:
        """Arithmetic intensity, FLOPs per byte accessed (inf for an op that moves no bytes)."""
        return self.flops / self.bytes if self.bytes else float("inf")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["bytes"] = self.bytes
        d["intensity"] = self.intensity if self.bytes else None
        return d


def sum_costs(costs) -> Cost:
    total = Cost()
    for c in costs:
        total = total + c
    return total
