"""Hardware-aware architecture search: spaces as data, a weight-sharing supernet, latency on the targets, and the
strategies (Optuna's evolutionary / multi-objective samplers, ProxylessNAS's gradient).

``space`` (what can be searched), ``supernet`` (accuracy without training every candidate), ``latency`` (targets,
budgets and whole-network estimates), ``table`` (additive tables of parts for the gradient strategy), ``evolve``
(NSGA-II / TPE / random in an Optuna storage), ``gradient`` (architecture parameters with an expected-latency loss) and
``run`` (one search from options to ``pareto.json``). Private modules: ``_estimate`` (``Target``, budgets as text, a
target made ready and a network counted once: shared by ``latency``, which re-exports the public names, and
``table``), ``_records`` (the search's records, public from ``evolve``) and ``_study`` (the Optuna study machinery
behind ``evolve``). Importing the package loads no optuna (the strategies import it when they run).
"""

from chipfit.nas.space import SPACES, Arch, Op, SearchSpace, SpaceError, StageSpace, load_space

__all__ = ["SPACES", "Arch", "Op", "SearchSpace", "SpaceError", "StageSpace", "load_space"]
