"""The accelerator simulator: a network on a systolic array, layer by layer (``chipfit simulate``).

Compute cycles follow SCALE-Sim's conventions exactly and DRAM traffic its read-buffer model, in closed form or
fold-level arithmetic instead of a cycle loop; beyond SCALE-Sim it models padding and stride as in the network,
grouped and depthwise convolutions, batch, a vector unit, the quadratic convolution, energy, N:M and unstructured
weight sparsity, DRAM-bandwidth stalls and multi-chip pipelines.

Two other kinds of engine run the same layers (:mod:`chipfit.hw.sim.engines`): an in-memory memristor crossbar
(ISAAC / PRIME style, :mod:`chipfit.hw.sim.crossbar`) and a binary XNOR-popcount engine (:mod:`chipfit.hw.sim.binary`).
"""

from chipfit.hw.sim.arch import Arch, deprecated_name, list_archs, load_arch
from chipfit.hw.sim.binary import XNOR_ENGINE, BinaryEngine
from chipfit.hw.sim.crossbar import ISAAC_LIKE, PRIME_LIKE, Crossbar, CrossbarCapacityError
from chipfit.hw.sim.engines import ENGINES, EngineLayer, EngineResult, is_engine, load_engine, simulate_engine
from chipfit.hw.sim.memory import LayerFitsNoBufferError, LayerTooLargeError
from chipfit.hw.sim.simulate import LayerResult, SimResult, precision_from_bits, sim_precision, simulate
from chipfit.hw.sim.topology import read_topology
from chipfit.hw.sim.workload import SimLayer, layers_from_profile

__all__ = ["ENGINES", "ISAAC_LIKE", "PRIME_LIKE", "XNOR_ENGINE", "Arch", "BinaryEngine", "Crossbar",
           "CrossbarCapacityError", "EngineLayer", "EngineResult", "LayerFitsNoBufferError", "LayerResult",
           "LayerTooLargeError", "SimLayer", "SimResult", "deprecated_name", "is_engine", "layers_from_profile",
           "list_archs", "load_arch", "load_engine", "precision_from_bits", "read_topology", "sim_precision",
           "simulate", "simulate_engine"]
