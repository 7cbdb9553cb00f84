"""Shared helpers: tiny SCALE-Sim configs and topologies written to tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

CFG = """[general]
run_name = t

[run_presets]
InterfaceBandwidth: CALC
UseRamulatorTrace: False

[architecture_presets]
ArrayHeight: {rows}
ArrayWidth: {cols}
IfmapSramSzkB: {kb}
FilterSramSzkB: {kb}
OfmapSramSzkB: {kb}
IfmapOffset: 0
FilterOffset: 10000000
OfmapOffset: 20000000
Dataflow: {df}
Bandwidth: 10
ReadRequestBuffer: 32
WriteRequestBuffer: 32

[sparsity]
SparsitySupport: false
"""

TOPO = """Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,
a, 5, 5, 2, 2, 3, 5, 2,
b, 6, 6, 3, 3, 2, 7, 1,
c, 8, 8, 1, 1, 16, 4, 1,
"""


@pytest.fixture
def scalesim_files(tmp_path: Path):
    """(topology, {dataflow: cfg}) for a 4x3 array with 1 kB buffers: the layers of the hand-computed tests."""
    topo = tmp_path / "topo.csv"
    topo.write_text(TOPO)
    cfgs = {}
    for df in ("ws", "os", "is"):
        cfgs[df] = tmp_path / f"{df}.cfg"
        cfgs[df].write_text(CFG.format(rows=4, cols=3, kb=1, df=df))
    return topo, cfgs
