"""What a chip can do: cited YAML profiles, their validation, calibration of this machine, the roofline model."""

from chipfit.hw.calibrate import calibrate
from chipfit.hw.chip import (
    DTYPES,
    HOROWITZ_45NM,
    KINDS,
    Chip,
    EnergyTable,
    list_chips,
    load_chip,
    parse_chip,
    user_chip_dir,
)

__all__ = ["DTYPES", "HOROWITZ_45NM", "KINDS", "Chip", "EnergyTable", "calibrate", "list_chips", "load_chip",
           "parse_chip", "user_chip_dir"]
