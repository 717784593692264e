"""The event contract as data (docs/EVENTS.md): kinds, declarations, and the decoder compiled from them."""

from .decoder import Decoder
from .model import Contract, Declaration, Field, Source

__all__ = ["Contract", "Declaration", "Decoder", "Field", "Source"]
