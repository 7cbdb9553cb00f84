"""What a chip can do: cited YAML profiles (one target per chip), their validation, calibration of this machine,
the roofline model. The simulator (``chipfit.hw.sim``) runs a profile's array section."""

from chipfit.hw.calibrate import calibrate
from chipfit.hw.chip import (
    DTYPES,
    HOROWITZ_45NM,
    KINDS,
    Chip,
    EnergyTable,
    deprecated_name,
    list_chips,
    load_chip,
    load_target,
    parse_chip,
    user_chip_dir,
)

__all__ = ["DTYPES", "HOROWITZ_45NM", "KINDS", "Chip", "EnergyTable", "calibrate", "deprecated_name", "list_chips",
           "load_chip", "load_target", "parse_chip", "user_chip_dir"]
