"""The Profile: what a network costs, op by op and in total, fused or unfused.

``analyze`` turns a captured :class:`Graph` into a :class:`Profile` with no chip in mind: counts only. A hardware
model (``chipfit.hw.roofline``, the simulator) estimates time and energy from it and answers with an
``Estimate``; ``chipfit.profile`` keeps those beside the counts in :attr:`Profile.estimates`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from chipfit.cost.fusion import fusion_groups
from chipfit.cost.graph import Graph
from chipfit.cost.records import CONVENTIONS, Cost, OpNode, Precision, TensorRef, sum_costs


@dataclass
class Layer:
    """One execution unit: a single op, or a fused chain (conv + bn + act + add) run as one kernel.

    Attributes:
        name: ``module:kind`` of the head op, with the fused kinds joined by ``+``.
        module: qualified module name of the head op.
        module_type: its class name.
        op_type: the head op's category (conv, linear, norm, act, ...).
        kinds: canonical kinds of the ops in the unit.
        nodes: indices of the graph nodes in the unit.
        input_shapes: input shapes of the head op (weights included).
        output_shape: shape of the unit's output.
        cost: params, MACs, FLOPs and bytes.
        reads: tensors the unit reads from outside itself.
        writes: tensors it writes for others.
    """

    name: str
    module: str
    module_type: str
    op_type: str
    kinds: list[str]
    nodes: list[int]
    input_shapes: list[tuple[int, ...]]
    output_shape: tuple[int, ...]
    cost: Cost
    reads: list[TensorRef] = field(default_factory=list, repr=False)
    writes: list[TensorRef] = field(default_factory=list, repr=False)

    @property
    def fused(self) -> bool:
        return len(self.nodes) > 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "module": self.module,
            "module_type": self.module_type,
            "op_type": self.op_type,
            "kinds": self.kinds,
            "input_shapes": [list(s) for s in self.input_shapes],
            "output_shape": list(self.output_shape),
            **self.cost.to_dict(),
        }


@dataclass
class Profile:
    """Cost of one network on one input, at one precision.

    Attributes:
        model_name: label of the network.
        input_shapes: shapes of the network's inputs.
        precision: bit widths in use.
        fused: whether ``layers`` and ``total`` assume fused execution (conv + bn + act + add as one kernel).
        layers: execution units in the chosen mode; ``layers_unfused`` / ``layers_fused`` hold both.
        unsupported: aten/ONNX op name -> count, for ops no handler costs (never counted as zero silently).
        graph: the captured op graph.
        estimates: ``fused`` / ``unfused`` -> the hardware ``Estimate`` of that mode, when a chip was given
            (``chipfit.profile(..., hw=...)``); empty otherwise.
        notes: what the reader should know about the counts.
        guidelines: the ShuffleNetV2 guidelines checked on this profile (:mod:`chipfit.cost.guidelines`).
    """

    model_name: str
    input_shapes: list[tuple[int, ...]]
    precision: Precision
    fused: bool
    layers_unfused: list[Layer]
    layers_fused: list[Layer]
    unsupported: dict[str, int]
    graph: Graph
    estimates: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    guidelines: dict[str, Any] = field(default_factory=dict)

    # --- views ---
    @property
    def layers(self) -> list[Layer]:
        return self.layers_fused if self.fused else self.layers_unfused

    @property
    def estimate(self) -> Any:
        """The hardware estimate in the profile's mode, or ``None`` when no chip was given."""
        return self.estimates.get("fused" if self.fused else "unfused")

    def _mode_layers(self, fused: bool | None) -> list[Layer]:
        return self.layers if fused is None else (self.layers_fused if fused else self.layers_unfused)

    def total_for(self, fused: bool | None = None) -> Cost:
        """Whole-network cost; ``fused`` picks the mode (default: the profile's)."""
        tot = sum_costs(layer.cost for layer in self._mode_layers(fused))
        return replace(tot, params=self.graph.params)

    @property
    def total(self) -> Cost:
        """Whole-network cost in the profile's mode: params, macs, flops, bytes_read, bytes_written."""
        return self.total_for()

    def by_op_type(self, fused: bool | None = None) -> dict[str, Cost]:
        """Costs summed per op type; a fused unit counts under its head op's type."""
        return _group(self._mode_layers(fused), lambda layer: layer.op_type)

    def by_module(self, depth: int | None = None, fused: bool | None = None) -> dict[str, Cost]:
        """Costs summed per module; ``depth`` truncates module names to that many dotted parts."""
        return _group(self._mode_layers(fused), lambda layer: module_key(layer, depth))

    @property
    def op_count(self) -> int:
        """Operators that compute or move bytes (views excluded), unfused."""
        return len(self.layers_unfused)

    @property
    def peak_activation_bytes(self) -> float:
        return self.memory["peak_activation_bytes_fused" if self.fused else "peak_activation_bytes_unfused"]

    @cached_property
    def memory(self) -> dict[str, float]:
        internal = _internal_buffers(self.graph, self.layers_fused)
        return {
            "peak_activation_bytes_unfused": self.graph.peak_activation_bytes(self.precision),
            "peak_activation_bytes_fused": self.graph.peak_activation_bytes(self.precision, internal),
            "weight_bytes": sum(
                t.nbytes(self.precision) for t in _unique_weights(self.graph)
            ),
        }

    def structure(self) -> dict[str, int]:
        depth, width = self.graph.depth_and_width()
        return {"op_count": self.op_count, "fused_units": len(self.layers_fused), "depth": depth, "width": width}

    def fusion(self) -> dict[str, Any]:
        """What fusing saves: bytes, latency (when a chip was given; else ``None``), and the fused chains found."""
        u, f = self.total_for(False), self.total_for(True)
        chains: dict[str, int] = {}
        for layer in self.layers_fused:
            if layer.fused:
                key = "+".join(layer.kinds)
                chains[key] = chains.get(key, 0) + 1
        lu, lf = (getattr(self.estimates.get(m), "latency_s", None) for m in ("unfused", "fused"))
        return {
            "groups": sum(chains.values()),
            "chains": dict(sorted(chains.items(), key=lambda kv: -kv[1])),
            "bytes_unfused": u.bytes,
            "bytes_fused": f.bytes,
            "bytes_saved": u.bytes - f.bytes,
            "latency_unfused_s": lu,
            "latency_fused_s": lf,
            "latency_saved_s": None if lu is None or lf is None else lu - lf,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model_name,
            "input_shapes": [list(s) for s in self.input_shapes],
            "precision": {"name": self.precision.name, "weight_bits": self.precision.weight_bits,
                          "act_bits": self.precision.act_bits, "compute": self.precision.compute},
            "execution": "fused" if self.fused else "unfused",
            "capture": self.graph.capture,
            "total": self.total.to_dict(),
            "total_unfused": self.total_for(False).to_dict(),
            "total_fused": self.total_for(True).to_dict(),
            "by_op_type": {k: v.to_dict() for k, v in self.by_op_type().items()},
            "by_module": {k: v.to_dict() for k, v in self.by_module(depth=2).items()},
            "structure": self.structure(),
            "memory": self.memory,
            "fusion": self.fusion(),
            "guidelines": self.guidelines,
            "layers": self.layer_rows(),
            "unsupported": dict(self.unsupported),
            "estimates": {k: v.to_dict() for k, v in self.estimates.items()},
            "conventions": CONVENTIONS,
            "notes": self.notes,
        }

    def layer_rows(self) -> list[dict[str, Any]]:
        """One dict per layer of the profile's mode: its counts, and its estimated time when a chip was given."""
        est = self.estimate
        xs = list(est.layers) if est is not None and len(est.layers) == len(self.layers) else [None] * len(self.layers)
        return [_with_estimate(layer.to_dict(), x) for layer, x in zip(self.layers, xs, strict=True)]

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, default=_json_default)


def _with_estimate(row: dict[str, Any], x: Any) -> dict[str, Any]:
    """A layer's counts with its estimated time beside them (absent keys when no chip was given)."""
    if x is not None:
        row.update({k: v for k, v in x.to_dict().items() if k != "name"})
    return row


def _json_default(o: Any) -> Any:
    if isinstance(o, float) and o != o:  # NaN
        return None
    return str(o)


def module_key(layer: Layer, depth: int | None = None) -> str:
    """The module a layer counts under in :meth:`Profile.by_module`: its name cut to ``depth`` dotted parts."""
    name = layer.module or "<root>"
    return ".".join(name.split(".")[:depth]) if depth else name


def _group(layers: list[Layer], key: Callable[[Layer], str]) -> dict[str, Cost]:
    out: dict[str, Cost] = {}
    for layer in layers:
        k = key(layer)
        out[k] = out.get(k, Cost()) + layer.cost
    return dict(sorted(out.items(), key=lambda kv: -kv[1].flops))


def _unique_weights(graph: Graph) -> list[TensorRef]:
    seen: dict[int, TensorRef] = {}
    for n in graph.nodes:
        if n.op_type == "view":
            continue
        for t in n.read_tensors():
            if t.role == "weight":
                seen.setdefault(t.buffer, t)
    return list(seen.values())


def _internal_buffers(graph: Graph, fused_layers: list[Layer]) -> set[int]:
    internal: set[int] = set()
    for layer in fused_layers:
        if layer.fused:
            keep = {t.buffer for t in layer.writes}
            for i in layer.nodes[:-1]:
                internal.update(t.buffer for t in graph.nodes[i].outputs if t.buffer not in keep)
    return internal


def _make_layer(graph: Graph, idxs: list[int], precision: Precision) -> Layer:
    nodes: list[OpNode] = [graph.nodes[i] for i in idxs]
    head = nodes[0]
    produced = {t.tid for n in nodes for t in n.outputs}
    folded_bn = len(nodes) > 1 and nodes[1].kind == "batch_norm"
    reads: dict[int, TensorRef] = {}
    for n in nodes:
        for t in n.read_tensors():
            if t.tid in produced:
                continue
            if folded_bn and n is nodes[1] and t.role == "weight":
                continue  # batch-norm parameters are folded into the head's weights
            reads.setdefault(t.tid, t)
    writes = nodes[-1].written_tensors()
    br = sum(t.nbytes(precision) for t in reads.values())
    wb = sum(t.nbytes(precision) for t in reads.values() if t.role == "weight")
    bw = sum(t.nbytes(precision) for t in writes)
    cost = Cost(
        params=sum(n.params() for n in nodes),
        macs=sum(n.macs for n in nodes),
        flops=sum(n.flops for n in nodes),
        bytes_read=br,
        bytes_written=bw,
        weight_bytes=wb,
        ops=len(nodes),
    )
    kinds = [n.kind for n in nodes]
    return Layer(
        name=f"{head.module or '<root>'}:{'+'.join(kinds)}",
        module=head.module,
        module_type=head.module_type,
        op_type=head.op_type,
        kinds=kinds,
        nodes=list(idxs),
        input_shapes=[t.shape for t in head.inputs],
        output_shape=nodes[-1].outputs[0].shape if nodes[-1].outputs else (),
        cost=cost,
        reads=list(reads.values()),
        writes=writes,
    )


def analyze(graph: Graph, precision: Precision | str = "fp32", fused: bool = True) -> Profile:
    """Cost every op of ``graph`` at ``precision``, in both execution modes (no chip yet)."""
    precision = Precision.parse(precision)
    real = [n.idx for n in graph.nodes if n.op_type != "view"]
    unfused = [_make_layer(graph, [i], precision) for i in real]
    fused_layers = [_make_layer(graph, g, precision) for g in fusion_groups(graph)]
    unsupported: dict[str, int] = {}
    for n in graph.nodes:
        if not n.supported:
            unsupported[n.target] = unsupported.get(n.target, 0) + 1
    return Profile(
        model_name=graph.model_name,
        input_shapes=[t.shape for t in graph.inputs],
        precision=precision,
        fused=fused,
        layers_unfused=unfused,
        layers_fused=fused_layers,
        unsupported=unsupported,
        graph=graph,
    )
