"""Plots and tables of profiles (matplotlib and rich are imported only when used)."""
