"""Sanity checks (layerwise shuffle, reinitialization, score inversion): issue 5."""
