"""The array the simulator runs, found from a target spec: :func:`load_arch` and :func:`list_archs`.

A target is a chip whose profile has an ``array:`` section (:mod:`chipfit.hw.array`), a SCALE-Sim ``.cfg``, or an
:class:`Arch`. The old architecture names (``tpu-v1-like``, ...) and old-format architecture files still load, with a
``DeprecationWarning`` naming what replaces them.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from chipfit.hw.array import DATAFLOWS, SPARSITY_KINDS, Arch, _is_old_arch, parse_arch, parse_array, parse_scalesim_cfg
from chipfit.hw.chip import Chip, deprecated_name, list_chips, load_chip, parse_chip
from chipfit.hw.cited import read_yaml

_SUFFIXES = (".yaml", ".yml")
__all__ = ["DATAFLOWS", "SPARSITY_KINDS", "Arch", "deprecated_name", "deprecation_message", "list_archs",
           "load_arch", "parse_arch", "parse_array", "parse_scalesim_cfg"]


# --- finding and loading -----------------------------------------------------------------------------------------


def list_archs() -> list[str]:
    """Names of the chips that can be simulated (their profile has an ``array:`` section), sorted.

    A profile that fails to load is left out (``chipfit hw list`` shows its error).
    """
    names = []
    for name in list_chips():
        try:
            if load_chip(name).array is not None:
                names.append(name)
        except ValueError:
            continue
    return names


def _array_of(chip: Chip) -> Arch:
    if chip.array is None:
        raise ValueError(f"chip {chip.name!r} has no modelled array to simulate (its profile {chip.path} has no "
                         f"'array' section). Targets that can be simulated: {', '.join(list_archs())}; a SCALE-Sim "
                         ".cfg works too.")
    return chip.array


def deprecation_message(old: str, new: str) -> str:
    """The one line that says an old architecture name is deprecated and names the target replacing it."""
    return f"'{old}' is deprecated: use --hw {new} (the chip profile now carries its simulator array)"


def load_arch(spec: str | Path | Chip | Arch) -> Arch:
    """The systolic array to simulate: a target's :attr:`Chip.array`, a SCALE-Sim ``.cfg``'s, or ``spec`` itself.

    Args:
        spec: a chip name (one of :func:`list_archs`), a :class:`~chipfit.hw.Chip`, a chip profile (YAML with an
            ``array:`` section), a SCALE-Sim ``.cfg``, or an :class:`Arch` (returned as is). An old
            architecture name (``tpu-v1-like``) or old-format architecture YAML still loads, with a
            ``DeprecationWarning``.

    Raises:
        ValueError: unknown name (with close names), missing file, a chip with no array (naming those that have
            one), or a file that fails validation (naming the file and the field).
    """
    if isinstance(spec, Arch):
        return spec
    if isinstance(spec, Chip):
        return _array_of(spec)
    new = deprecated_name(spec)
    if new is not None:
        warnings.warn(deprecation_message(str(spec), new), DeprecationWarning, stacklevel=2)
        return _array_of(load_chip(new))
    text = str(spec)
    path = Path(text).expanduser()
    if not text.endswith(".cfg") and (isinstance(spec, Path) or text.endswith(_SUFFIXES) or path.is_file()):
        if not path.is_file():
            raise ValueError(f"target file {text}: no such file")
        data = read_yaml(path)
        if _is_old_arch(data):
            warnings.warn(f"{path}: an architecture file of its own is deprecated: move its fields (less name, "
                          "description) under 'array:' in a chip profile (chipfit hw show tpu-v1 shows one)",
                          DeprecationWarning, stacklevel=2)
            return parse_arch(data, str(path), path=str(path))
        return _array_of(parse_chip(data, str(path), path=str(path)))
    return _array_of(load_chip(spec))
