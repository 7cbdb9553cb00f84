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
is the top level's job (``chipfit.simulate``). The records it returns are in :mod:`chipfit.hw.sim.result`, the
precisions it takes in :mod:`chipfit.hw.sim.precision`.
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from chipfit.cost.records import Precision
from chipfit.hw.sim.arch import Arch, load_arch
from chipfit.hw.sim.memory import LayerFitsNoBufferError, Traffic, layer_traffic
from chipfit.hw.sim.multichip import pipeline
from chipfit.hw.sim.precision import ACT_BITS, BIT_DTYPES, WEIGHT_BITS, precision_from_bits, sim_precision
from chipfit.hw.sim.result import CSV_FIELDS, LayerResult, SimResult
from chipfit.hw.sim.systolic import Mapping, Sparsity, map_layer, vector_cycles
from chipfit.hw.sim.topology import read_topology
from chipfit.hw.sim.workload import SimLayer, layers_from_profile

# the records and precision helpers lived here before they had modules of their own; importing them from here works
__all__ = ["ACT_BITS", "BIT_DTYPES", "CSV_FIELDS", "WEIGHT_BITS", "LayerResult", "SimResult", "precision_from_bits",
           "sim_precision", "simulate"]


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
