""":class:`LatencyTable`, the gradient strategy's table: the latency and energy of one space's points on one target
as sums of parts.

A gradient search needs the network cut into parts whose times add up (the stem, each stage's entry, each slot's
candidate blocks, the head), each part built alone from the zoo's modules and estimated by the same hardware model,
so that the expected latency under softmax weights over the candidates is a differentiable sum
(:meth:`LatencyTable.expected`). Additive sources: roofline and simulator (per-layer models), and predicted (a sum
over kernels; its per-network offset is counted once, in the constant). A measurement is not a sum of parts:
``measured`` has no table. A table ignores what crosses part boundaries (fusion of a chain across two parts, a
runtime's layout reorders between kernels, concurrent ops); :meth:`LatencyTable.check` says how far its sum is from a
whole-network estimate. Tables are made by :meth:`chipfit.nas.latency.LatencyModel.table` (sharing the model's ready
targets) or :meth:`LatencyTable.build`; ``LatencyTable`` is importable from :mod:`chipfit.nas.latency` too. Units:
seconds and joules throughout.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chipfit.hw.estimate import Estimate
from chipfit.nas._estimate import Target, _Counts, _Resolved
from chipfit.nas.space import Arch, Op, SearchSpace, load_space

if TYPE_CHECKING:  # pragma: no cover
    import torch
    import torch.nn as nn

METRICS = ("latency", "energy")


@dataclass(frozen=True)
class _Part:
    latency_s: float
    energy_j: float | None
    macs: int
    params: int


_NOTHING = _Part(0.0, 0.0, 0, 0)


@dataclass(frozen=True)
class _Layout:
    """The shapes a width choice gives: widths into and out of each stage, map sides entering and inside it."""

    size: int
    stem_width: int
    widths: tuple[int, ...]
    cins: tuple[int, ...]
    maps_in: tuple[int, ...]
    maps: tuple[int, ...]


class LatencyTable:
    """Per-part latencies and energies of one space on one target: ``latency(arch)`` = the sum of its parts.

    Parts (each built alone from the zoo's modules at its input shape and estimated by the target's hardware
    model): the stem (per its width); each stage's entry (metaformer: the LayerNorm + 2x2 stride-2 conv
    downsampler, or LayerNorm + 1x1 projection where a stride-1 stage changes the width; per input and output
    width); each slot's candidate ops (per stage, slot, input width, width and op; mobilenetv2: the first slot takes
    the previous stage's width and carries the stride; identity costs 0); the head (per last width; mobilenetv2:
    the last 1x1 conv to ``head_channels`` too). Parts are stored by what sets their modules and shapes, so equal
    blocks (the later slots of a stage) are estimated once. A part's input and output are intermediate
    activations, as in the network (not boundary tensors, which the roofline always sends through DRAM).

    Parts are estimated when first needed and kept: :meth:`build` fills those of one width choice (or all) up
    front, :meth:`add` those of another; the same table then answers for every point at those widths.
    """

    def __init__(self, space: SearchSpace | str, target: Target, *, _resolved: _Resolved | None = None):
        """An empty table (parts are estimated as they are needed; :meth:`build` fills some up front).

        Args:
            space: a :class:`SearchSpace` or a built-in name / file.
            target: a roofline, simulator or predicted target.

        Raises:
            ValueError: a measured target (no sum of parts), or a mobilenetv2 stage whose first slot may be
                identity (which block carries the stride would depend on the other slots).
        """
        self.space = load_space(space)
        if not isinstance(target, Target):
            raise ValueError(f"target must be a Target, got {type(target).__name__}")
        if target.source == "measured":
            raise ValueError(f"target {target.label()}: a measured latency is not a sum of parts; a table needs "
                             "source roofline, simulator or predicted (LatencyModel measures whole networks)")
        if self.space.family == "mobilenetv2":
            for i, st in enumerate(self.space.stages):
                if not st.fixed_first:
                    raise ValueError(f"space {self.space.name!r} stage {i}: a table of a mobilenetv2 space needs "
                                     "fixed_first stages (an identity first slot moves the stride to another slot)")
        self.target = target
        self._r = _resolved if _resolved is not None else _Resolved(target)
        self._parts: dict[tuple[Any, ...], _Part] = {}
        self._layouts: dict[tuple[tuple[int, ...], int], _Layout] = {}
        self.seconds = 0.0

    @classmethod
    def build(cls, space: SearchSpace | str, target: Target, widths: Arch | None = None, *,
              reuse: LatencyTable | None = None) -> LatencyTable:
        """A table with the parts of ``widths``' width and resolution choices estimated (its ops do not matter:
        every candidate of every slot is), or, with ``None``, the parts of every width choice.

        Args:
            space: the search space.
            target: a roofline, simulator or predicted target.
            widths: a point whose widths (and resolution) to fill; ``None`` for all (every pair of neighbouring
                stage widths: far fewer parts than width combinations, but every candidate at every width).
            reuse: a table of the same space and target whose parts to start from (estimated once, shared).
        """
        table = cls(space, target)
        if reuse is not None:
            if reuse.target != target or reuse.space.to_dict() != table.space.to_dict():
                raise ValueError("reuse: that table belongs to another space or target; its parts do not apply")
            table._parts = reuse._parts
        if widths is None:
            table.add_all()
        else:
            table.add(widths)
        return table

    @property
    def parts(self) -> int:
        """Parts estimated so far (empty stage entries included; identity slots are never stored)."""
        return len(self._parts)

    def add(self, widths: Arch) -> int:
        """Estimate the parts of ``widths``' width and resolution choices not yet in the table; returns how many."""
        self.space.check(widths)
        before = len(self._parts)
        lay = self._layout(widths)
        self._shared_parts(widths, lay)
        for i, st in enumerate(self.space.stages):
            for j in range(st.slots):
                for k in range(len(st.slot_ops(j))):
                    self._slot(lay, i, j, k, widths.key())
        return len(self._parts) - before

    def add_all(self) -> int:
        """Estimate the parts of every width and resolution choice; returns how many were new."""
        before = len(self._parts)
        for r in range(len(self.space.input_sizes)):
            for w in itertools.product(*(range(len(st.widths)) for st in self.space.stages)):
                self.add(Arch(w, tuple((0,) * st.slots for st in self.space.stages), r))
        return len(self._parts) - before

    # --- sums ---

    def latency(self, arch: Arch) -> float:
        """The table's latency of ``arch`` in seconds: :meth:`constant` + the chosen ops' slot latencies."""
        return self._total(arch, "latency")

    def energy(self, arch: Arch) -> float:
        """The table's energy of ``arch`` in joules (roofline and simulator: predicted gives no energy)."""
        return self._total(arch, "energy")

    def macs(self, arch: Arch) -> int:
        """The parts' MACs summed: equal to the whole network's count (a check that the parts are the network)."""
        lay = self._layout(arch)
        parts = self._shared_parts(arch, lay)
        total = sum(p.macs for p in parts)
        for i, ops in enumerate(arch.ops):
            total += sum(self._slot(lay, i, j, k, arch.key()).macs for j, k in enumerate(ops))
        return total

    def constant(self, arch: Arch, *, metric: str = "latency") -> float:
        """What does not depend on the ops: stem + stage entries + head (+ a predictor's per-network offset)."""
        self._check_metric(metric)
        parts = self._shared_parts(arch, self._layout(arch))
        if metric == "latency":
            return self._r.offset_s + sum(p.latency_s for p in parts)
        return sum(self._energy_of(p) for p in parts)

    def slot_latencies(self, arch: Arch) -> list[list[list[float]]]:
        """Per stage, per slot, per candidate op (:meth:`StageSpace.slot_ops`) its latency at ``arch``'s widths."""
        return self._slot_values(arch, "latency")

    def slot_energies(self, arch: Arch) -> list[list[list[float]]]:
        """As :meth:`slot_latencies`, in joules."""
        return self._slot_values(arch, "energy")

    def expected(self, arch: Arch, probs: Sequence[Sequence[torch.Tensor]], *, metric: str = "latency") -> torch.Tensor:
        """The expected latency (or energy) at ``arch``'s widths when each slot holds its candidates with weights
        ``probs``: :meth:`constant` + sum over slots of ``probs[i][j] . slot_latencies(arch)[i][j]``.

        Differentiable in ``probs``; a float64 scalar on their device. One-hot weights at ``arch``'s ops give
        :meth:`latency` exactly.

        Args:
            arch: the point whose widths (and resolution) apply; its ops do not matter.
            probs: per stage, per slot, a 1-D tensor over that slot's candidates (softmax weights, say).
            metric: ``latency`` (seconds) or ``energy`` (joules).
        """
        import torch

        values = self._slot_values(arch, metric)
        if len(probs) != len(values):
            raise ValueError(f"probs: {len(probs)} stages given, the space has {len(values)}")
        device = next((p.device for s in probs for p in s if isinstance(p, torch.Tensor)), None)
        total = torch.tensor(self.constant(arch, metric=metric), dtype=torch.float64, device=device)
        for i, (ps, vs) in enumerate(zip(probs, values, strict=True)):
            if len(ps) != len(vs):
                raise ValueError(f"probs[{i}]: {len(ps)} slots given, stage {i} has {len(vs)}")
            for j, (p, v) in enumerate(zip(ps, vs, strict=True)):
                if not isinstance(p, torch.Tensor) or p.dim() != 1 or p.numel() != len(v):
                    raise ValueError(f"probs[{i}][{j}]: a 1-D tensor of {len(v)} weights (one per candidate) is "
                                     f"needed, got {tuple(p.shape) if isinstance(p, torch.Tensor) else type(p)}")
                total = total + (p.to(torch.float64) * torch.tensor(v, dtype=torch.float64, device=p.device)).sum()
        return total

    def check(self, arch: Arch, whole: Estimate) -> float:
        """The relative difference (table - whole) / whole of :meth:`latency` against a whole-network estimate of
        ``arch`` on this target. The table leaves out what crosses part boundaries (a fused chain across two parts,
        a runtime's reorders between kernels); on the roofline and the simulator the built-in spaces' parts add
        up to the network within rounding (see tests/nas/test_latency.py)."""
        if whole.latency_s <= 0:
            raise ValueError(f"the whole-network estimate of {arch.key()} has latency {whole.latency_s}: nothing to "
                             "compare with")
        return (self.latency(arch) - whole.latency_s) / whole.latency_s

    # --- internals ---

    @staticmethod
    def _check_metric(metric: str) -> None:
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {', '.join(METRICS)}, not {metric!r}")

    def _energy_of(self, part: _Part) -> float:
        if part.energy_j is None:
            raise ValueError(f"target {self._r.label}: source {self.target.source!r} gives no energy")
        return part.energy_j

    def _value(self, part: _Part, metric: str) -> float:
        return part.latency_s if metric == "latency" else self._energy_of(part)

    def _total(self, arch: Arch, metric: str) -> float:
        total = self.constant(arch, metric=metric)
        lay = self._layout(arch)
        for i, ops in enumerate(arch.ops):
            for j, k in enumerate(ops):
                total += self._value(self._slot(lay, i, j, k, arch.key()), metric)
        return total

    def _slot_values(self, arch: Arch, metric: str) -> list[list[list[float]]]:
        self._check_metric(metric)
        lay = self._layout(arch)
        return [[[self._value(self._slot(lay, i, j, k, arch.key()), metric) for k in range(len(st.slot_ops(j)))]
                 for j in range(st.slots)] for i, st in enumerate(self.space.stages)]

    def _layout(self, arch: Arch) -> _Layout:
        self.space.check(arch)
        key = (arch.widths, arch.resolution)
        if key not in self._layouts:
            skel = self._skeleton(arch)
            widths = tuple(self.space.widths_of(arch))
            sizes = skel.stage_sizes()
            self._layouts[key] = _Layout(self.space.input_size(arch), skel.stem_width(), widths,
                                         (skel.stem_width(), *widths[:-1]), (skel.stem_size(), *sizes[:-1]), sizes)
        return self._layouts[key]

    def _skeleton(self, arch: Arch):
        """The network of ``arch``'s widths with no searched blocks: one zoo stage per search stage, empty
        (metaformer: its entry only) or holding one block (mobilenetv2: so that the head sees the last width)."""
        from chipfit.models.config import StageConfig

        cfg = self.space.expand(arch)
        stages = []
        for st, w in zip(self.space.stages, self.space.widths_of(arch), strict=True):
            filler = next((o for o in st.ops if not o.is_identity), Op("skip"))
            depth = 1 if self.space.family == "mobilenetv2" else 0
            stages.append(StageConfig(depth, w, filler.block(self.space.layer_scale, self.space.memory_efficient),
                                      st.stride))
        return cfg.replace(stages=tuple(stages))

    def _shared_parts(self, arch: Arch, lay: _Layout) -> list[_Part]:
        """Stem, entries and head of a layout, estimated where missing (all from one skeleton network)."""
        meta = self.space.family == "metaformer"
        keys: list[tuple[Any, ...]] = [("stem", lay.size, lay.stem_width)]
        if meta:
            keys += [("entry", i, lay.size, lay.cins[i], lay.widths[i]) for i in range(len(lay.widths))]
        keys.append(("head", lay.size, lay.widths[-1]))
        if any(k not in self._parts for k in keys):
            import torch.nn as nn

            from chipfit.models.build import build_model

            net = build_model(self._skeleton(arch))
            c, s = self.space.in_chans, lay.size
            pieces: list[tuple[nn.Module, tuple[int, ...], bool, bool]] = [(net.stem, (1, c, s, s), True, False)]
            if meta:
                pieces += [(net.stages[i], (1, lay.cins[i], lay.maps_in[i], lay.maps_in[i]), False, False)
                           for i in range(len(lay.widths))]
                head = net.head
            else:
                head = nn.Sequential(net.stages[-1], net.head)
            pieces.append((head, (1, lay.widths[-1], lay.maps[-1], lay.maps[-1]), False, True))
            for key, (module, shape, keep_in, keep_out) in zip(keys, pieces, strict=True):
                if key not in self._parts:
                    self._parts[key] = self._estimate(key, module, shape, arch.key(), keep_in, keep_out)
        return [self._parts[k] for k in keys]

    def _slot(self, lay: _Layout, i: int, j: int, k: int, where: str) -> _Part:
        st = self.space.stages[i]
        op = st.slot_ops(j)[k]
        if op.is_identity:
            return _NOTHING
        block = op.block(self.space.layer_scale, self.space.memory_efficient)
        w = lay.widths[i]
        if self.space.family == "metaformer":  # the stage's entry has set the width and map already
            key: tuple[Any, ...] = ("block", op, w, w, 1, lay.maps[i])
        elif j == 0:  # mobilenetv2: the first block takes the previous width and carries the stride
            key = ("block", op, lay.cins[i], w, st.stride, lay.maps_in[i])
        else:
            key = ("block", op, w, w, 1, lay.maps[i])
        if key not in self._parts:
            from chipfit.models.blocks import ConvNeXtBlock, InvertedResidual, MetaBlock

            _, _, cin, cout, stride, side = key
            if op.kind == "mbv2":
                module = InvertedResidual(cin, cout, stride, block.expand_ratio, block.kernel_size)
            elif op.kind == "convnext":
                module = ConvNeXtBlock(cout, block)
            else:
                module = MetaBlock(cout, block, input_resolution=side)
            self._parts[key] = self._estimate(key, module, (1, cin, side, side), where, False, False)
        return self._parts[key]

    def _estimate(self, key: tuple[Any, ...], module: nn.Module, shape: tuple[int, ...], where: str,
                  keep_inputs: bool, keep_outputs: bool) -> _Part:
        if not list(module.children()):
            return _NOTHING  # an empty stage entry (an empty Sequential): no downsampler, nothing runs
        name = "_".join(str(x.label() if isinstance(x, Op) else x) for x in key)
        start = time.perf_counter()
        try:
            counts = _Counts(module, shape, name, keep_inputs=keep_inputs, keep_outputs=keep_outputs)
            est = self._r.estimate(counts)
        except (ValueError, RuntimeError) as e:
            raise ValueError(f"target {self._r.label}: arch {where}: part {name}: {e}") from e
        finally:
            self.seconds += time.perf_counter() - start
        prof = counts.profile(self._r.precision)
        latency = est.latency_s - self._r.offset_s  # the offset is the network's, counted once in the constant
        return _Part(latency, est.energy_j, int(prof.total.macs), int(counts.graph.params))


__all__ = ["METRICS", "LatencyTable"]
