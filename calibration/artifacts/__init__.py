"""Shipped calibrated configurations (one folder each), installed as ``dcsim.artifacts``."""
