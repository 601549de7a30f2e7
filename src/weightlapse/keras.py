"""Keras 3 recording: `weightlapse.keras.Recorder(run)` is a `keras.callbacks.Callback`."""

from weightlapse.integrations.keras import KerasOps, Recorder

__all__ = ["KerasOps", "Recorder"]
