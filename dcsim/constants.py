"""The few numbers every stage shares, each defined once.

- :data:`STEP_S`: the 250 ms grid. The shipped configurations are calibrated on 250 ms nvidia-smi samples, so it
  is the only simulation step for now.
- :data:`SLOTS_PER_SERVER`: continuous-batching slots per server (the paper's FIFO-64 queue).
- :data:`DAY_S`: seconds in a day (diurnal profiles, the production day).
- :data:`LEVELS`: the levels of the power tree, top down.
"""
from __future__ import annotations

STEP_S = 0.25
SLOTS_PER_SERVER = 64
DAY_S = 86400.0
LEVELS = ("site", "row", "rack", "server")
