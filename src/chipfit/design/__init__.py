"""``chipfit design``: from a chip and a budget to a trained, int8-compressed, exported and measured network with a
report (search, training, compression and deployment joined in one resumable, time-boxed run)."""

from chipfit.design.config import DesignConfig
from chipfit.design.pipeline import STAGES, Design, DesignError, design

__all__ = ["STAGES", "Design", "DesignConfig", "DesignError", "design"]
