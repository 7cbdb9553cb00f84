"""``simulate``: a network on a systolic-array accelerator, layer by layer: cycles, stalls, traffic, energy.

Conventions: a MAC is one multiply-add; cycles are array clock cycles; bytes follow the precision (one activation
word = activation bits / 8 bytes; weights may be narrower, down to binary, and single layers may keep other widths:
``Precision.overrides``); energy is MACs x pJ/MAC + vector operations x pJ/op + SRAM bytes x pJ/byte + DRAM bytes x
pJ/byte, with the target's table (Horowitz 45 nm defaults). Compute cycles follow SCALE-Sim's
conventions exactly (:mod:`chipfit.hw.sim.systolic`); DRAM traffic follows its read-buffer model
(:mod:`chipfit.hw.sim.memory`); stalls come from the DRAM bandwidth (none when it is unlimited, as in SCALE-Sim's
CALC mode). Unfused, vector-unit layers (element-wise, pooling, normalisation) read their inputs from and write
their outputs to DRAM; fused (the default, as deployment compilers run a network), each conv/linear runs with its
BatchNorm, activations and element-wise followers as one layer (:mod:`chipfit.hw.sim.workload`).

The target is a chip with an ``array`` section (``--hw edge-npu``), an :class:`Arch`, or a SCALE-Sim ``.cfg``; the
network a :class:`~chipfit.cost.Profile`, an ``nn.Module`` or ONNX file (costed here through
:func:`chipfit.cost.count`), a SCALE-Sim topology CSV, or a list of :class:`SimLayer`. Loading a network by name
is the top level's job (``chipfit.simulate``).
"""

from __future__ import annotations

import csv
import json
import math
import sys
import warnings
from collections.abc import Mapping as MappingABC
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chipfit.cost.records import Precision
from chipfit.hw.estimate import Estimate, LayerEstimate
from chipfit.hw.sim.arch import Arch, load_arch
from chipfit.hw.sim.memory import LayerFitsNoBufferError, Traffic, layer_traffic
from chipfit.hw.sim.multichip import Pipeline, pipeline
from chipfit.hw.sim.systolic import Mapping, Sparsity, map_layer, vector_cycles
from chipfit.hw.sim.topology import read_topology
from chipfit.hw.sim.workload import SimLayer, layers_from_profile

BIT_DTYPES = {4: "int4", 8: "int8", 16: "int16", 32: "fp32"}
ACT_BITS = tuple(BIT_DTYPES)
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
    """A network on an accelerator: per-layer records and totals.

    ``bits`` and ``weight_bits`` are the precision's activation and weight widths.
    """

    model: str
    arch: Arch
    dataflow: str
    batch: int
    precision: Precision
    sparsity: str | None
    layers: list[LayerResult]
    pipeline: Pipeline | None = None
    notes: list[str] = field(default_factory=list)
    fused: bool = True

    @property
    def bits(self) -> int:
        return self.precision.act_bits

    @property
    def weight_bits(self) -> int:
        return self.precision.weight_bits

    def estimate(self) -> Estimate:
        """The simulation as the estimate record every latency source returns (source ``simulator``).

        A layer is memory-bound when moving its DRAM bytes at the target's bandwidth takes longer than its compute.
        """
        clock = self.arch.clock_hz
        bpc = self.arch.dram_bytes_per_cycle
        layers = []
        for x in self.layers:
            dram = x.dram_read_bytes + x.dram_write_bytes
            memory = dram / bpc if bpc else 0.0
            layers.append(LayerEstimate(x.name, x.total_cycles / clock, x.energy_j,
                                        "memory" if memory > x.compute_cycles else "compute",
                                        x.compute_cycles / clock, memory / clock, dram))
        tot = self.total
        return Estimate("simulator", self.arch.name, self.model, self.precision.name, self.fused, tot["time_s"],
                        tot["energy_j"], tuple(layers), tuple(self.notes),
                        {k: tot[k] for k in ("cycles", "stall_cycles", "inferences_per_s", "inferences_per_j",
                                             "chips", "batch")} | {"dataflow": self.dataflow})

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
                "precision": self.precision.name, "bits": self.bits, "weight_bits": self.weight_bits,
                "fused": self.fused, "sparsity": self.sparsity,
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
                 weight_bits: int, dtype: str) -> LayerResult:
    """``weight_bits`` sets the bytes of weights in SRAM and DRAM; the multiply runs at the wider of the two widths
    (an 8-bit array multiplies 4-bit or binary weights at its 8-bit cost and speed), its energy at ``dtype``."""
    wb = bits / 8
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
    # the records' count, less the weights sparsity skips (mp.k is the kept share of the reduction)
    _, _, k, _ = layer.gemm()
    macs = layer.macs // k * mp.k if mp.k != k else layer.macs
    stall = _stall(compute, dram_r + dram_w, t.fill_words * wb, arch)
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


def _vector_layer(layer: SimLayer, arch: Arch, bits: int, dtype: str) -> LayerResult:
    wb = bits / 8
    compute = vector_cycles(layer, arch.vector_lanes)
    dram_r = (layer.in_elems + layer.weight_elems) * wb
    dram_w = layer.out_elems * wb
    stall = _stall(compute, dram_r + dram_w, 0.0, arch)
    e = arch.energy
    energy = (layer.vector_ops * e.add_pj[dtype] + 2 * (dram_r + dram_w) * e.sram_pj_per_byte
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


def _is_module(x: Any) -> bool:
    nn = sys.modules.get("torch.nn")  # loaded whenever a module exists; checking this way keeps a CSV run free of torch
    return nn is not None and isinstance(x, nn.Module)


def _resolve(workload: Any, input_shape: Any, fused: bool) -> tuple[list[SimLayer], str]:
    profile_cls = getattr(sys.modules.get("chipfit.cost.profile"), "Profile", None)
    if profile_cls is not None and isinstance(workload, profile_cls):
        return layers_from_profile(workload, fused), workload.model_name
    if isinstance(workload, (str, Path)) and str(workload).lower().endswith(".csv"):
        path = Path(workload)
        if not path.is_file():
            raise ValueError(f"topology {path}: no such file")
        return read_topology(path), path.stem
    if isinstance(workload, Sequence) and workload and all(isinstance(x, SimLayer) for x in workload):
        return list(workload), "layers"
    if _is_module(workload) or (isinstance(workload, (str, Path)) and str(workload).lower().endswith(".onnx")):
        from chipfit.cost import count

        prof = count(workload, input_shape)
        return layers_from_profile(prof, fused), prof.model_name
    raise ValueError(f"cannot simulate {type(workload).__name__} {str(workload)[:80]!r}: give a profile, a module, an "
                     ".onnx file, a SCALE-Sim topology .csv or a list of SimLayer (chipfit.simulate also takes "
                     "built-in names, module:factory paths and checkpoints)")


def precision_from_bits(act_bits: int, weight_bits: int | None = None,
                        overrides: MappingABC[str, int] | None = None) -> Precision:
    """The :class:`Precision` of ``act_bits``-bit activations and ``weight_bits``-bit weights (default the same), with
    single layers' weight widths by module name; its compute dtype is the array's at the wider of the two widths."""
    if act_bits not in BIT_DTYPES:
        raise ValueError(f"bits must be one of {', '.join(map(str, BIT_DTYPES))}, not {act_bits}")
    w = act_bits if weight_bits is None else weight_bits
    if w not in WEIGHT_BITS:
        raise ValueError(f"weight_bits must be one of {', '.join(map(str, WEIGHT_BITS))}, not {w}")
    name = f"w{w}a{act_bits}" if w != act_bits else BIT_DTYPES[act_bits]
    return Precision(name, w, act_bits, BIT_DTYPES[max(act_bits, w)], dict(overrides or {}))


def sim_precision(precision: str | Precision | None = None, *, bits: int | None = None,
                  weight_bits: int | None = None, layer_weight_bits: MappingABC[str, int] | None = None) -> Precision:
    """The simulator's precision, checked: activations of 4, 8, 16 or 32 bits, weights of 1 to 32.

    ``bits``, ``weight_bits`` and ``layer_weight_bits`` are the old spellings (activation and weight widths, and
    single layers' weight widths by module name); they build the same :class:`Precision` and are deprecated.
    """
    if bits is not None or weight_bits is not None:
        if precision is not None:
            raise ValueError("give precision (e.g. 'int8', 'w4a8') or the old bits/weight_bits, not both")
        warnings.warn("simulate(bits=..., weight_bits=...) is deprecated: use precision='int8' or 'wXaY'",
                      DeprecationWarning, stacklevel=3)
        p = precision_from_bits(8 if bits is None else bits, weight_bits)
    else:
        p = Precision.parse(precision or "int8")
    if layer_weight_bits:
        warnings.warn("simulate(layer_weight_bits=...) is deprecated: use a Precision with overrides",
                      DeprecationWarning, stacklevel=3)
        p = Precision(p.name, p.weight_bits, p.act_bits, p.compute, {**p.overrides, **layer_weight_bits})
    if p.act_bits not in ACT_BITS:
        raise ValueError(f"precision {p.name}: the simulator runs activations of {', '.join(map(str, ACT_BITS))} "
                         f"bits, not {p.act_bits} (for binary weights use w1a8)")
    for name, wb in [("", p.weight_bits), *p.overrides.items()]:
        if wb not in WEIGHT_BITS:
            raise ValueError(f"weight_bits{' of ' + name if name else ''} must be one of "
                             f"{', '.join(map(str, WEIGHT_BITS))}, not {wb}")
    return p


def simulate(workload: Any, hw: str | Path | Arch | Any = None, *, precision: str | Precision | None = None,
             fused: bool | None = None, dataflow: str | None = None, batch: int = 1, chips: int = 1,
             sparsity: str | float | None = None, input_shape: Sequence[int] | str | None = None,
             arch: str | Path | Arch | None = None, bits: int | None = None, weight_bits: int | None = None,
             layer_weight_bits: dict[str, int] | None = None, fuse: bool | None = None) -> SimResult:
    """Simulate a network on a systolic-array accelerator.

    Args:
        workload: a :class:`~chipfit.cost.Profile`, an ``nn.Module`` or ``.onnx`` file (with ``input_shape``), a
            SCALE-Sim topology ``.csv``, or a list of :class:`SimLayer`.
        hw: the target: a chip name whose profile has an ``array`` section (``chipfit hw list``), a YAML file, a
            SCALE-Sim ``.cfg``, a :class:`~chipfit.hw.Chip` or an :class:`Arch`.
        precision: ``int8`` (default), ``int16``, ``fp16``, ``fp32``, ``wXaY`` (X-bit weights, Y-bit activations,
            e.g. ``w4a8``, ``w1a8``), or a :class:`Precision` whose ``overrides`` give single layers (by module
            name) other weight widths: mixed precision. Weight bits set their bytes in SRAM and DRAM; multiplies
            run at the wider of the two widths.
        fused: run each conv/linear with its BatchNorm, activations and element-wise followers as one layer, as a
            deployment compiler does (default; profiles and models only: topology CSVs and layer lists are taken
            as given).
        dataflow: ``ws``, ``os`` or ``is``; default: the array's.
        batch: images per run.
        chips: split the network over this many chips as a layer pipeline.
        sparsity: weight sparsity, ``"2:4"`` (N:M) or the fraction of zero weights (``0.5``, unstructured).
        input_shape: input shape for a module or an ONNX file.
        arch, bits, weight_bits, layer_weight_bits, fuse: the old spellings of ``hw``, ``precision`` and ``fused``
            (deprecated; they give the same results).

    Raises:
        ValueError: bad arguments, unreadable files, a sparsity the architecture does not exploit, or a layer that
            fits no buffer (naming the layer).
    """
    if arch is not None:
        if hw is not None:
            raise ValueError("give hw=..., not both hw and arch")
        warnings.warn("simulate(arch=...) is deprecated: use hw=...", DeprecationWarning, stacklevel=2)
        hw = arch
    if hw is None:
        raise ValueError("give the target: hw=NAME (a chip with an array section, chipfit hw list), a YAML file or "
                         "a SCALE-Sim .cfg")
    if fuse is not None:
        if fused is not None:
            raise ValueError("give fused=..., not both fused and fuse")
        warnings.warn("simulate(fuse=...) is deprecated: use fused=...", DeprecationWarning, stacklevel=2)
        fused = fuse
    fused = True if fused is None else fused
    target = load_arch(hw)
    dataflow = dataflow or target.dataflow
    if dataflow not in ("ws", "os", "is"):
        raise ValueError(f"dataflow must be ws, os or is, not {dataflow!r}")
    prec = sim_precision(precision, bits=bits, weight_bits=weight_bits, layer_weight_bits=layer_weight_bits)
    if batch < 1 or chips < 1:
        raise ValueError("batch and chips must be at least 1")
    sp = Sparsity.parse(sparsity)
    if sp is not None and sp.kind not in target.sparsity:
        have = ", ".join(target.sparsity) or "none"
        raise ValueError(f"{target.name} does not exploit {sp.kind} sparsity (it supports: {have}); pick a target "
                         "that does (edge-npu: N:M, eyeriss-v1: unstructured) or drop --sparsity")
    layers, name = _resolve(workload, input_shape, fused)
    notes = []
    from_model = not (isinstance(workload, (str, Path)) and str(workload).lower().endswith(".csv")) and not (
        isinstance(workload, Sequence) and not isinstance(workload, (str, Path)))
    if fused and from_model and not any(x.fused for x in layers):
        notes.append("fused: no layer was fused (fusion needs a conv or linear followed by its BN, activation or "
                     "element-wise op)")
    bits = prec.act_bits
    results = []
    for layer in layers:
        layer = layer.with_batch(layer.batch * batch) if batch != 1 else layer
        if layer.on_array:
            wbits = prec.overrides.get(layer.name.split(":")[0], prec.weight_bits)
            # a layer as wide as the network computes at the precision's dtype; a wider override at its own width
            wide = max(bits, wbits)
            dtype = prec.compute if wide == max(bits, prec.weight_bits) else BIT_DTYPES[wide]
            results.append(_array_layer(layer, target, dataflow, bits, sp, wbits, dtype))
        else:
            results.append(_vector_layer(layer, target, bits, prec.compute if prec.act_bits == max(
                bits, prec.weight_bits) else BIT_DTYPES[bits]))
    pipe = None
    if chips > 1:
        pipe = pipeline([x.total_cycles for x in results], [x.output_bytes for x in results],
                        [x.macs for x in results], chips=chips, clock_hz=target.clock_hz,
                        link_bytes_per_s=target.link_bandwidth_bytes_per_s, links=target.links, batch=batch)
        for st in pipe.stages:
            for x in results[st.first:st.last + 1]:
                x.chip = st.chip
        notes.extend(pipe.notes)
    if target.dram_bandwidth_bytes_per_s is None:
        notes.append("DRAM bandwidth unlimited: no stall cycles (as SCALE-Sim's CALC mode)")
    return SimResult(name, target, dataflow, batch, prec, sp.label() if sp else None, results, pipe, notes,
                     fused=fused)
