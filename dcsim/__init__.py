"""dcsim: compositional power-trace generation for LLM-inference datacenters."""
from dcsim.errors import DcsimInputError

__all__ = ["DcsimInputError"]
__version__ = "0.1.0"
