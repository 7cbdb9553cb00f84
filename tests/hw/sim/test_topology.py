"""The topology reader's refusals that fuzzing found: each one line, naming the file, the row and the column."""

from __future__ import annotations

import pytest

from chipfit.hw.sim.topology import MAX_DIM, read_topology

HEADER = "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,"


def _write(tmp_path, rows: str, header: str = HEADER):
    p = tmp_path / "t.csv"
    p.write_text(f"{header}\n{rows}\n")
    return p


def test_a_superscript_digit_in_a_sparsity_ratio_is_no_crash(tmp_path):
    """'²'.isdigit() is true but int('²') fails: the check let it through to a bare int() error."""
    p = _write(tmp_path, "c, 8, 8, 3, 3, 4, 4, 1, ²:4,", header=HEADER + " Sparsity,")
    with pytest.raises(ValueError, match=r"t\.csv: row 2 \(layer 'c'\), column 'Sparsity': '²:4' is not an N:M "
                                         r"ratio such as 2:4"):
        read_topology(p)


def test_a_huge_number_is_refused_in_a_short_message(tmp_path):
    p = _write(tmp_path, f"c, 8, 8, 3, {'9' * 400}, 4, 4, 1,")
    with pytest.raises(ValueError) as e:
        read_topology(p)
    msg = str(e.value)
    assert msg.startswith(f"{p}: row 2 (layer 'c'), column 'Filter Width': must be a positive whole number up to "
                          f"{MAX_DIM}, got '9999") and len(msg.replace(str(p), "")) < 200
    with pytest.raises(ValueError, match=rf"column 'Channels': must be a positive whole number up to {MAX_DIM}, "
                                         r"got 0"):
        read_topology(_write(tmp_path, "c, 8, 8, 3, 3, 0, 4, 1,"))


def test_a_long_cell_and_a_long_name_are_cut(tmp_path):
    p = _write(tmp_path, f"{'n' * 500}, 8, 8, 3, 3, {'x' * 500}, 4, 1,")
    with pytest.raises(ValueError, match=r"column 'Channels': 'xxx+\.\.\.' is not a whole number") as e:
        read_topology(p)
    assert len(str(e.value).replace(str(p), "")) < 150
