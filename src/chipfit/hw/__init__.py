"""What a chip can do: cited YAML profiles, their validation, calibration of this machine, the roofline model."""

from chipfit.hw.chip import HOROWITZ_45NM, Chip, EnergyTable, list_chips, load_chip, parse_chip, user_chip_dir

__all__ = ["HOROWITZ_45NM", "Chip", "EnergyTable", "list_chips", "load_chip", "parse_chip", "user_chip_dir"]
