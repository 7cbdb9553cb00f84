"""The simulator's precisions: activation widths the array runs, weight widths it stores, checked.

``precision_from_bits`` builds a :class:`~chipfit.cost.records.Precision` from widths; ``sim_precision`` takes what
``simulate`` is given (a name, a :class:`Precision` or the old ``bits`` spellings) and checks it.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping as MappingABC

from chipfit.cost.records import Precision

BIT_DTYPES = {4: "int4", 8: "int8", 16: "int16", 32: "fp32"}
ACT_BITS = tuple(BIT_DTYPES)
WEIGHT_BITS = (1, 2, 4, 8, 16, 32)


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
