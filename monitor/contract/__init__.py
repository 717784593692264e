"""The event contract as data (SPEC section 8): kinds, declarations, and the decoder compiled from them."""

from .decoder import Decoder
from .model import Contract, Declaration, Field, Source

__all__ = ["Contract", "Declaration", "Decoder", "Field", "Source"]
