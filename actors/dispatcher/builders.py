"""`positional_builder` for the dispatcher's hot messages; it lives in the runtime (`runtime._builders`)."""

from runtime import positional_builder

__all__ = ["positional_builder"]
