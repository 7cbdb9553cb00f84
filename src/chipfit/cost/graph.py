"""The captured op graph and the analyses that need only its structure (no chip).

- edges: op B depends on op A when B reads a buffer whose latest writer is A;
- depth: the longest dependency chain, in ops; width: the most ops on one level of an as-soon-as-possible
  schedule, i.e. ops that could run in parallel;
- peak activation memory from buffer liveness (a buffer lives from its first writer to its last reader).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from chipfit.cost.records import OpNode, Precision, TensorRef


@dataclass
class Graph:
    """Ops in execution order plus the network's inputs and outputs.

    Attributes:
        nodes: every captured op (views included, with zero cost) in execution order.
        inputs: the network's input tensors.
        outputs: the network's output tensors.
        source: ``torch`` or ``onnx``.
        model_name: a label for reports.
        params: trainable parameters, each counted once.
        capture: how the graph was captured (``meta``, ``real`` or ``onnx``).
    """

    nodes: list[OpNode]
    inputs: list[TensorRef]
    outputs: list[TensorRef]
    source: str
    model_name: str
    params: int
    capture: str = "meta"
    _deps: list[list[int]] | None = field(default=None, repr=False)

    def compute_nodes(self) -> list[OpNode]:
        """Ops that do work or move bytes (views excluded)."""
        return [n for n in self.nodes if n.op_type != "view"]

    def deps(self) -> list[list[int]]:
        """For each node (by idx), the idx of the non-view nodes it depends on."""
        if self._deps is None:
            writer: dict[int, int] = {}  # buffer -> idx of its latest real writer
            deps: list[list[int]] = []
            for n in self.nodes:
                d = sorted({writer[t.buffer] for t in n.inputs if t.buffer in writer})
                deps.append(d)
                if n.op_type != "view":
                    for t in n.outputs:
                        writer[t.buffer] = n.idx
            self._deps = deps
        return self._deps

    def levels(self) -> list[int]:
        """ASAP level of each node: 1 + the deepest dependency; views take their producer's level."""
        lv = [0] * len(self.nodes)
        deps = self.deps()
        for n in self.nodes:
            base = max((lv[d] for d in deps[n.idx]), default=0)
            lv[n.idx] = base if n.op_type == "view" else base + 1
        return lv

    def depth_and_width(self) -> tuple[int, int]:
        """(longest dependency chain in ops, most ops on one ASAP level)."""
        lv = self.levels()
        counts: dict[int, int] = {}
        for n in self.compute_nodes():
            counts[lv[n.idx]] = counts.get(lv[n.idx], 0) + 1
        return (max(counts) if counts else 0), (max(counts.values()) if counts else 0)

    def consumers(self) -> dict[int, list[int]]:
        """node idx -> the idx of the nodes that depend on it."""
        out: dict[int, list[int]] = {n.idx: [] for n in self.nodes}
        for n in self.nodes:
            for d in self.deps()[n.idx]:
                out[d].append(n.idx)
        return out

    def peak_activation_bytes(self, precision: Precision, skip: Iterable[int] = ()) -> float:
        """Peak bytes of live activations (inputs and intermediate tensors; weights excluded).

        Args:
            precision: bit widths.
            skip: buffers never materialised (e.g. tensors inside a fused group).
        """
        skip = set(skip)
        size: dict[int, float] = {}
        last_use: dict[int, int] = {}
        first_def: dict[int, int] = {}
        for t in self.inputs:
            size[t.buffer] = t.nbytes(precision)
            first_def[t.buffer] = -1
        for n in self.nodes:
            for t in n.inputs:
                if t.role in ("act", "input"):
                    last_use[t.buffer] = n.idx
            if n.op_type == "view":
                continue
            for t in n.outputs:
                if t.role == "act" and t.buffer not in first_def and t.buffer not in skip:
                    first_def[t.buffer] = n.idx
                    size[t.buffer] = t.nbytes(precision)
        end = len(self.nodes)
        for t in self.outputs:
            last_use[t.buffer] = end
        events: dict[int, float] = {}
        for b, start in first_def.items():
            events[start] = events.get(start, 0.0) + size[b]
            stop = last_use.get(b, start) + 1  # freed after its last reader
            events[stop] = events.get(stop, 0.0) - size[b]
        live = peak = 0.0
        for step in sorted(events):
            live += events[step]
            peak = max(peak, live)
        return peak
