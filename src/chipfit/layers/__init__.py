"""Reusable layers: quadratic neurons, channels-first LayerNorm, DropPath, LayerScale, spatial mixers."""
