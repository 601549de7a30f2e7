"""Keras 3 recording: `weightlapse.keras.Recorder(run)` is a `keras.callbacks.Callback`."""

from weightlapse.integrations.keras import Recorder

__all__ = ["Recorder"]
