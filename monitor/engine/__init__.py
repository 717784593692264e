"""The engine: the catalog compiled into a plan, and a step function over (state, event, now)."""

from .engine import DUPLICATE, LATE, TOO_OLD, Engine
from .outcome import Outcome, RuleError
from .state import CustomerState, EngineState

__all__ = ["DUPLICATE", "LATE", "TOO_OLD", "CustomerState", "Engine", "EngineState", "Outcome", "RuleError"]
