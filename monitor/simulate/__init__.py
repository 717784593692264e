"""A deterministic simulator of customers moving through buy, get, pay, help and leave."""

from .generator import Simulation
from .scenarios import SCENARIOS, Scenario

__all__ = ["SCENARIOS", "Scenario", "Simulation"]
