"""``simulate``: a network on a systolic-array accelerator, layer by layer: cycles, stalls, traffic, energy.

Conventions: a MAC is one multiply-add; cycles are array clock cycles; bytes follow ``bits`` (one word = bits / 8
bytes; weights may be narrower, ``weight_bits``, down to binary); energy is MACs x pJ/MAC + vector operations x
pJ/op + SRAM bytes x pJ/byte +
DRAM bytes x pJ/byte, with the architecture's table (Horowitz 45 nm defaults). Compute cycles follow SCALE-Sim's
conventions exactly (:mod:`chipfit.hw.sim.systolic`); DRAM traffic follows its read-buffer model
(:mod:`chipfit.hw.sim.memory`); stalls come from the DRAM bandwidth (none when it is unlimited, as in SCALE-Sim's
CALC mode). Vector-unit layers (element-wise, pooling, normalisation) read their inputs from and write their outputs
to DRAM (no fusion with the producing layer is modelled).
"""

from __future__ import annotations

import csv
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chipfit.hw.sim.arch import Arch, load_arch
from chipfit.hw.sim.layers import SimLayer, layers_from_profile, read_topology
from chipfit.hw.sim.memory import LayerFitsNoBufferError, Traffic, layer_traffic
from chipfit.hw.sim.multichip import Pipeline, pipeline
from chipfit.hw.sim.systolic import Mapping, Sparsity, map_layer, vector_cycles

BIT_DTYPES = {4: "int4", 8: "int8", 16: "int16", 32: "fp32"}
WEIGHT_BITS = (1, 2, 4, 8, 16, 32)


@dataclass
class LayerResult:
    """One layer on the accelerator.

    Attributes:
        name, kind: the layer.
        compute_cycles: array (or vector-unit) cycles, SCALE-Sim's convention for array layers.
        stall_cycles: cycles waiting for DRAM.
        total_cycles: compute + stall.
        utilisation: MACs / (total cycles x PEs); 0 for vector-unit layers.
        macs: multiply-adds executed (after sparsity).
        dram_read_bytes, dram_write_bytes, sram_read_bytes, sram_write_bytes: traffic.
        energy_j: MAC + vector + SRAM + DRAM energy.
        output_bytes: the activation the layer produces (what a pipeline cut sends on).
        dataflow, folds: the mapping (empty for vector-unit layers).
        chip: pipeline stage it runs on.
        detail: per-operand word counts and the mapping.
        note: how the layer was mapped where it matters.
    """

    name: str
    kind: str
    compute_cycles: int
    stall_cycles: int
    total_cycles: int
    utilisation: float
    macs: int
    dram_read_bytes: float
    dram_write_bytes: float
    sram_read_bytes: float
    sram_write_bytes: float
    energy_j: float
    output_bytes: float = 0.0
    dataflow: str = ""
    folds: int = 0
    chip: int = 0
    detail: dict[str, Any] = field(default_factory=dict)
    note: str = ""


CSV_FIELDS = ("name", "kind", "chip", "dataflow", "folds", "compute_cycles", "stall_cycles", "total_cycles",
              "utilisation", "macs", "dram_read_bytes", "dram_write_bytes", "sram_read_bytes", "sram_write_bytes",
              "energy_j", "note")


@dataclass
class SimResult:
    """A network on an accelerator: per-layer records and totals."""

    model: str
    arch: Arch
    dataflow: str
    batch: int
    bits: int
    sparsity: str | None
    layers: list[LayerResult]
    pipeline: Pipeline | None = None
    notes: list[str] = field(default_factory=list)
    weight_bits: int | None = None  # None: the same as ``bits``

    @property
    def total(self) -> dict[str, float]:
        """cycles, time_s (at the clock), energy_j, inferences_per_s, inferences_per_j, macs, DRAM and SRAM bytes,
        stall_cycles; with several chips, time_s is the pipeline's latency and inferences_per_s its throughput."""
        cycles = sum(x.total_cycles for x in self.layers)
        energy = sum(x.energy_j for x in self.layers)
        if self.pipeline is not None:
            link = sum(s.transfer_bytes for s in self.pipeline.stages) * self.arch.energy.dram_pj_per_byte * 1e-12
            energy += link
            time_s, ips = self.pipeline.latency_s, self.pipeline.inferences_per_s
        else:
            time_s = cycles / self.arch.clock_hz
            ips = self.batch / time_s if time_s else float("inf")
        return {
            "cycles": cycles,
            "compute_cycles": sum(x.compute_cycles for x in self.layers),
            "stall_cycles": sum(x.stall_cycles for x in self.layers),
            "time_s": time_s,
            "energy_j": energy,
            "inferences_per_s": ips,
            "inferences_per_j": self.batch / energy if energy else float("inf"),
            "macs": sum(x.macs for x in self.layers),
            "dram_read_bytes": sum(x.dram_read_bytes for x in self.layers),
            "dram_write_bytes": sum(x.dram_write_bytes for x in self.layers),
            "sram_read_bytes": sum(x.sram_read_bytes for x in self.layers),
            "sram_write_bytes": sum(x.sram_write_bytes for x in self.layers),
            "chips": len(self.pipeline.stages) if self.pipeline else 1,
            "batch": self.batch,
        }

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "arch": self.arch.to_dict(), "dataflow": self.dataflow, "batch": self.batch,
                "bits": self.bits, "weight_bits": self.weight_bits or self.bits, "sparsity": self.sparsity,
                "layers": [asdict(x) for x in self.layers],
                "total": self.total, "pipeline": self.pipeline.to_dict() if self.pipeline else None,
                "notes": self.notes}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, default=_json_default)

    def to_csv(self, path: str | Path) -> Path:
        """One row per layer (the fields of :data:`CSV_FIELDS`)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
            w.writeheader()
            for x in self.layers:
                w.writerow(asdict(x))
        return path


def _json_default(o: Any) -> Any:
    if isinstance(o, float) and (math.isinf(o) or math.isnan(o)):
        return None
    return str(o)


# --- one layer ----------------------------------------------------------------------------------------------------


def _check_fits(layer: SimLayer, mp: Mapping, arch: Arch, bits: int, weight_bits: int) -> None:
    """The stationary operand of one fold must sit in its SRAM; name the layer when it cannot."""
    tile = min(mp.sr, arch.rows) * min(mp.sc, arch.cols)
    sram, what = {"ws": (arch.filter_sram_bytes, "filter"), "is": (arch.ifmap_sram_bytes, "ifmap"),
                  "os": (arch.ofmap_sram_bytes, "ofmap")}[mp.dataflow]
    bits = weight_bits if mp.dataflow == "ws" else bits
    need = tile * bits / 8
    if need > sram:
        raise LayerFitsNoBufferError(
            f"layer {layer.name!r} fits no buffer: one {mp.dataflow} fold keeps {min(mp.sr, arch.rows)} x "
            f"{min(mp.sc, arch.cols)} words ({need:,.0f} B at {bits} bits) stationary, more than the {what} SRAM of "
            f"{arch.name} ({sram:,} B); give a larger SRAM, fewer bits or a smaller array")


def _array_layer(layer: SimLayer, arch: Arch, dataflow: str, bits: int, sparsity: Sparsity | None,
                 weight_bits: int | None = None) -> LayerResult:
    """``weight_bits`` (default ``bits``) sets the bytes of weights in SRAM and DRAM; the multiply runs at the wider
    of the two widths (an 8-bit array multiplies 4-bit or binary weights at its 8-bit cost and speed)."""
    wb = bits / 8
    weight_bits = weight_bits or bits
    mac_bits = max(bits, weight_bits)
    note = layer.note
    sp = sparsity
    if layer.sparsity and sp is None:
        sp = Sparsity.parse(layer.sparsity)
        if sp is not None and "nm" not in arch.sparsity:
            note = (note + "; " if note else "") + f"{layer.sparsity} sparsity ignored: {arch.name} is dense"
            sp = None
    mp = map_layer(layer, dataflow, arch.rows, arch.cols, bits=mac_bits, word_bits=arch.word_bits, sparsity=sp)
    _check_fits(layer, mp, arch, bits, weight_bits)
    t: Traffic = layer_traffic(layer, mp, rows=arch.rows, cols=arch.cols, bits=bits,
                               ifmap_sram=arch.ifmap_sram_bytes, filter_sram=arch.filter_sram_bytes,
                               ofmap_sram=arch.ofmap_sram_bytes, psum_to_dram=arch.psum_to_dram)
    # sparse weights carry their indices: log2(M) bits per kept weight for N:M, index_bits for unstructured
    meta_bits = 0.0
    if sp is not None:
        meta_bits = math.log2(sp.m) if sp.kind == "nm" else arch.index_bits
    wbytes = (weight_bits + meta_bits) / 8
    psum_b = (t.psum_bits or bits) / 8
    out_elems = mp.groups * mp.m * mp.n * (1 / 3 if layer.kind == "quadconv" else 1)
    spilled = t.ofmap_dram_writes - (out_elems if t.psum_bits else 0)
    dram_r = t.ifmap_dram_reads * wb + t.filter_dram_reads * wbytes + t.psum_dram_reads * psum_b
    dram_w = (out_elems * wb + spilled * psum_b) if t.psum_bits else t.ofmap_dram_writes * wb
    sram_r = (t.ifmap_sram_reads * wb + t.filter_sram_reads * wbytes + t.ofmap_sram_reads * psum_b
              + dram_w)  # what leaves the chip is read from the ofmap SRAM
    sram_w = (t.ifmap_dram_reads * wb + t.filter_dram_reads * wbytes + t.psum_dram_reads * psum_b
              + t.ofmap_sram_writes * wb)
    compute = mp.cycles
    vec_ops = layer.fused_ops  # fused followers run on the vector unit as the output leaves the array
    if layer.kind == "quadconv":  # conv_a * conv_b + conv_c on the vector unit, after the array
        vec_ops += int(2 * out_elems)
    if vec_ops:
        compute += math.ceil(vec_ops / arch.vector_lanes)
    if layer.fused_reads:  # a residual's other operand, a layer scale: read from DRAM through the SRAM
        dram_r += layer.fused_reads * wb
        sram_r += layer.fused_reads * wb
        sram_w += layer.fused_reads * wb
    macs = mp.groups * mp.m * mp.k * mp.n
    stall = _stall(compute, dram_r + dram_w, t.fill_words * wb, arch)
    dtype = BIT_DTYPES[mac_bits]
    e = arch.energy
    energy = (macs * e.mac_pj[dtype] + vec_ops * e.add_pj[dtype] + (sram_r + sram_w) * e.sram_pj_per_byte
              + (dram_r + dram_w) * e.dram_pj_per_byte) * 1e-12
    total = compute + stall
    util = macs / (total * arch.rows * arch.cols) if total else 0.0
    detail = {k: v for k, v in asdict(t).items() if k != "psum_bits"}
    detail.update({"groups": mp.groups, "m": mp.m, "k": mp.k, "n": mp.n, "fold_cycles": mp.fold_cycles,
                   "width_passes": mp.passes, "packed_groups": mp.packed})
    if sp is not None:
        detail["sparsity"] = sp.label()
    if layer.fused:
        detail["fused"] = list(layer.fused)
    return LayerResult(layer.name, layer.kind, compute, stall, total, util, macs, dram_r, dram_w, sram_r, sram_w,
                       energy, output_bytes=out_elems * wb, dataflow=dataflow, folds=mp.folds, detail=detail,
                       note=note)


def _vector_layer(layer: SimLayer, arch: Arch, bits: int) -> LayerResult:
    wb = bits / 8
    compute = vector_cycles(layer, arch.vector_lanes)
    dram_r = (layer.in_elems + layer.weight_elems) * wb
    dram_w = layer.out_elems * wb
    stall = _stall(compute, dram_r + dram_w, 0.0, arch)
    e = arch.energy
    energy = (layer.vector_ops * e.add_pj[BIT_DTYPES[bits]] + 2 * (dram_r + dram_w) * e.sram_pj_per_byte
              + (dram_r + dram_w) * e.dram_pj_per_byte) * 1e-12
    return LayerResult(layer.name, layer.kind, compute, stall, compute + stall, 0.0, 0, dram_r, dram_w,
                       dram_r + dram_w, dram_r + dram_w, energy, output_bytes=dram_w, note=layer.note,
                       detail={"vector_ops": layer.vector_ops})


def _stall(compute: int, dram_bytes: float, fill_bytes: float, arch: Arch) -> int:
    """Cycles lost to DRAM: the first window loads before compute, the rest overlaps it (double buffering)."""
    bpc = arch.dram_bytes_per_cycle
    if bpc is None:
        return 0
    fill = math.ceil(fill_bytes / bpc)
    rest = math.ceil(max(dram_bytes - fill_bytes, 0.0) / bpc)
    return fill + max(compute, rest) - compute


# --- the network --------------------------------------------------------------------------------------------------


def _resolve(model_or_profile: Any, input_shape: Any, fuse: bool) -> tuple[list[SimLayer], str]:
    # a Profile's module is loaded when one exists; checking this way keeps a CSV run free of torch
    profile_cls = getattr(sys.modules.get("chipfit.cost.profile"), "Profile", None)
    if profile_cls is not None and isinstance(model_or_profile, profile_cls):
        return layers_from_profile(model_or_profile, fuse), model_or_profile.model_name
    if isinstance(model_or_profile, (str, Path)) and str(model_or_profile).lower().endswith(".csv"):
        path = Path(model_or_profile)
        if not path.is_file():
            raise ValueError(f"topology {path}: no such file")
        return read_topology(path), path.stem
    if isinstance(model_or_profile, Sequence) and model_or_profile and all(
            isinstance(x, SimLayer) for x in model_or_profile):
        return list(model_or_profile), "layers"
    # a module, a built-in name, a factory path or an ONNX file: the cost engine captures it once
    from chipfit.api import profile

    prof = profile(model_or_profile, input_shape=input_shape)
    return layers_from_profile(prof, fuse), prof.model_name


def simulate(model_or_profile: Any, arch: str | Path | Arch, *, dataflow: str | None = None, batch: int = 1,
             bits: int = 8, chips: int = 1, sparsity: str | float | None = None,
             input_shape: Sequence[int] | str | None = None, weight_bits: int | None = None,
             fuse: bool = False, layer_weight_bits: dict[str, int] | None = None) -> SimResult:
    """Simulate a network on a systolic-array accelerator.

    Args:
        model_or_profile: an ``nn.Module``, a built-in model name, a ``package.module:factory`` path, an ``.onnx``
            file, a SCALE-Sim topology ``.csv``, an existing :class:`~chipfit.cost.Profile` (its layers and shapes
            are used as they are, not captured again), or a list of :class:`SimLayer`.
        arch: a built-in architecture name (:func:`list_archs`), a YAML file, a SCALE-Sim ``.cfg``, or an
            :class:`Arch`.
        dataflow: ``ws``, ``os`` or ``is``; the architecture's own by default.
        batch: images per inference run (weights are reused across them).
        bits: width of weights and activations: 4, 8, 16 or 32.
        chips: split the network over this many chips as a layer pipeline.
        sparsity: weight sparsity, ``"2:4"`` (N:M) or the fraction of zero weights (``0.5``, unstructured).
        input_shape: input shape for a model that does not define one.
        weight_bits: width of the weights where it differs from ``bits`` (1, 2, 4, 8, 16 or 32): it sets their
            bytes in SRAM and DRAM; multiplies still run at the wider of the two widths.
        layer_weight_bits: weight widths of single layers, by module name (the part of a layer's name before
            ``:``), overriding ``weight_bits`` there: mixed precision, e.g. a binary network whose first and last
            layers keep 8-bit weights.
        fuse: run each conv/linear with its BatchNorm, activations and element-wise followers as one layer, as a
            deployment compiler does (models and profiles only; topology CSVs and layer lists are taken as given).

    Raises:
        ValueError: bad arguments, unreadable files, a sparsity the architecture does not exploit, or a layer that
            fits no buffer (naming the layer).
    """
    arch = load_arch(arch)
    dataflow = dataflow or arch.dataflow
    if dataflow not in ("ws", "os", "is"):
        raise ValueError(f"dataflow must be ws, os or is, not {dataflow!r}")
    if bits not in BIT_DTYPES:
        raise ValueError(f"bits must be one of {', '.join(map(str, BIT_DTYPES))}, not {bits}")
    for wb in [weight_bits, *(layer_weight_bits or {}).values()]:
        if wb is not None and wb not in WEIGHT_BITS:
            raise ValueError(f"weight_bits must be one of {', '.join(map(str, WEIGHT_BITS))}, not {wb}")
    per_layer = dict(layer_weight_bits or {})
    if batch < 1 or chips < 1:
        raise ValueError("batch and chips must be at least 1")
    sp = Sparsity.parse(sparsity)
    if sp is not None and sp.kind not in arch.sparsity:
        have = ", ".join(arch.sparsity) or "none"
        raise ValueError(f"{arch.name} does not exploit {sp.kind} sparsity (it supports: {have}); pick an "
                         "architecture that does (edge-npu: N:M, eyeriss-like: unstructured) or drop --sparsity")
    layers, name = _resolve(model_or_profile, input_shape, fuse)
    notes = []
    if fuse and not any(x.fused for x in layers):
        notes.append("fuse: no layer was fused (a topology CSV or a layer list is taken as given, and fusion needs "
                     "a conv or linear followed by its BN, activation or element-wise op)")
    results = []
    for layer in layers:
        layer = layer.with_batch(layer.batch * batch) if batch != 1 else layer
        if layer.on_array:
            wbits = per_layer.get(layer.name.split(":")[0], weight_bits)
            results.append(_array_layer(layer, arch, dataflow, bits, sp, wbits))
        else:
            results.append(_vector_layer(layer, arch, bits))
    pipe = None
    if chips > 1:
        pipe = pipeline([x.total_cycles for x in results], [x.output_bytes for x in results],
                        [x.macs for x in results], chips=chips, clock_hz=arch.clock_hz,
                        link_bytes_per_s=arch.link_bandwidth_bytes_per_s, links=arch.links, batch=batch)
        for st in pipe.stages:
            for x in results[st.first:st.last + 1]:
                x.chip = st.chip
        notes.extend(pipe.notes)
    if arch.dram_bandwidth_bytes_per_s is None:
        notes.append("DRAM bandwidth unlimited: no stall cycles (as SCALE-Sim's CALC mode)")
    return SimResult(name, arch, dataflow, batch, bits, sp.label() if sp else None, results, pipe, notes,
                     weight_bits=weight_bits)
