"""The accelerator simulator: a network on a systolic array, layer by layer (``chipfit simulate``).

Compute cycles follow SCALE-Sim's conventions exactly and DRAM traffic its read-buffer model, in closed form or
fold-level arithmetic instead of a cycle loop; beyond SCALE-Sim it models padding and stride as in the network,
grouped and depthwise convolutions, batch, a vector unit, the quadratic convolution, energy, N:M and unstructured
weight sparsity, DRAM-bandwidth stalls and multi-chip pipelines.
"""

from chipfit.hw.sim.arch import Arch, deprecated_name, list_archs, load_arch
from chipfit.hw.sim.memory import LayerFitsNoBufferError, LayerTooLargeError
from chipfit.hw.sim.simulate import LayerResult, SimResult, precision_from_bits, sim_precision, simulate
from chipfit.hw.sim.topology import read_topology
from chipfit.hw.sim.workload import SimLayer, layers_from_profile

__all__ = ["Arch", "LayerFitsNoBufferError", "LayerResult", "LayerTooLargeError", "SimLayer", "SimResult",
           "deprecated_name", "layers_from_profile", "list_archs", "load_arch", "precision_from_bits", "read_topology",
           "sim_precision", "simulate"]
