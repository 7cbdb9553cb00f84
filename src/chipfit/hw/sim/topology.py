"""SCALE-Sim topology CSVs as simulator layers.

SCALE-Sim topology CSVs (conv: ``Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels,
Num Filter, Strides,`` with an optional N:M sparsity column; GEMM: ``Layer, M, N, K,``; a trailing comma on every row)
keep SCALE-Sim's conventions: no padding (inputs come pre-padded), the output size ceil((H - R + s) / s), and a layer
whose name contains ``DP`` is depthwise (here one grouped layer, not SCALE-Sim's one layer per channel).
"""

from __future__ import annotations

from pathlib import Path

from chipfit.hw.sim.workload import SimLayer

CONV_COLUMNS = ("Layer name", "IFMAP Height", "IFMAP Width", "Filter Height", "Filter Width", "Channels",
                "Num Filter", "Strides")
GEMM_COLUMNS = ("Layer", "M", "N", "K")
MAX_DIM = 2**31 - 1  # SCALE-Sim's own dimensions are 32-bit integers; larger is a typo, not a layer


def _show(cell: str, most: int = 40) -> str:
    text = repr(cell)
    return text if len(text) <= most else text[:most - 4] + "...'"


def scalesim_out(size: int, filt: int, stride: int) -> int:
    """SCALE-Sim's output size: ceil((H - R + s) / s), one more than a framework's when (H - R) % s != 0."""
    return -(-(size - filt + stride) // stride)


def read_topology(path: str | Path) -> list[SimLayer]:
    """Layers of a SCALE-Sim topology CSV (conv or GEMM format, told apart by the header).

    Raises:
        ValueError: naming the file, the row and the column, for missing columns, non-numbers, a filter larger than
            its input, or an empty file.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: cannot read the topology: {e}") from None
    lines = [(i + 1, ln.strip()) for i, ln in enumerate(text.splitlines()) if ln.strip()]
    if not lines:
        raise ValueError(f"{path}: the topology is empty; the first row must be the header "
                         f"({', '.join(CONV_COLUMNS)},)")
    header = [h.strip().lower() for h in lines[0][1].split(",") if h.strip()]
    gemm = len(header) >= 4 and header[1:4] == ["m", "n", "k"]
    columns = GEMM_COLUMNS if gemm else CONV_COLUMNS
    if not gemm and (len(header) < len(CONV_COLUMNS) or not header[1].startswith("ifmap")):
        raise ValueError(f"{path}: row {lines[0][0]}: the header must be '{', '.join(CONV_COLUMNS)},' (conv) or "
                         f"'{', '.join(GEMM_COLUMNS)},' (GEMM)")
    out = []
    for lineno, line in lines[1:]:
        cells = [c.strip() for c in line.split(",")]
        if cells and cells[-1] == "":
            cells = cells[:-1]  # SCALE-Sim ends every row with a comma
        name = cells[0] if cells else ""
        where = f"{path}: row {lineno}" + (f" (layer {_show(name)})" if name else "")
        if len(cells) < len(columns):
            missing = ", ".join(columns[len(cells):])
            raise ValueError(f"{where}: expected {len(columns)} columns ({', '.join(columns)}), found {len(cells)}; "
                             f"missing {missing}")
        vals = []
        for col, cell in zip(columns[1:], cells[1:len(columns)], strict=True):
            try:
                v = int(cell)
            except ValueError:
                raise ValueError(f"{where}, column '{col}': {_show(cell)} is not a whole number") from None
            if not 0 < v <= MAX_DIM:
                got = v if abs(v) <= MAX_DIM else _show(cell)
                raise ValueError(f"{where}, column '{col}': must be a positive whole number up to {MAX_DIM}, "
                                 f"got {got}")
            vals.append(v)
        sparsity = _sparsity_cell(cells[len(columns)], where) if len(cells) > len(columns) else None
        if gemm:
            m, n, k = vals
            out.append(SimLayer(name, "gemm", m=m, k=k, n=n, sparsity=sparsity))
            continue
        h, w, r, s, c, nf, st = vals
        for col, f, size in (("Filter Height", r, h), ("Filter Width", s, w)):
            if f > size:
                raise ValueError(f"{where}, column '{col}': the filter ({f}) is larger than the input ({size})")
        dp = "DP" in name
        out.append(SimLayer(name, "dwconv" if dp and c > 1 else "conv", in_h=h, in_w=w, in_c=c,
                            out_h=scalesim_out(h, r, st), out_w=scalesim_out(w, s, st), filt_h=r, filt_w=s,
                            num_filters=nf * c if dp else nf, stride=(st, st), groups=c if dp else 1,
                            sparsity=sparsity, module_type="scalesim-topology"))
    if not out:
        raise ValueError(f"{path}: the topology has a header but no layers")
    return out


def _sparsity_cell(cell: str, where: str) -> str | None:
    if not cell:
        return None
    parts = cell.split(":")
    # isdecimal, not isdigit: int() refuses superscripts such as '²', which isdigit accepts
    if len(parts) != 2 or not all(p.strip().isdecimal() and len(p.strip()) <= 6 for p in parts) or \
            not 0 < int(parts[0]) <= int(parts[1]):
        raise ValueError(f"{where}, column 'Sparsity': {_show(cell)} is not an N:M ratio such as 2:4")
    return None if parts[0].strip() == parts[1].strip() else f"{int(parts[0])}:{int(parts[1])}"
