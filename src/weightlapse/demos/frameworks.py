"""Choosing the framework a demo trains with."""

from __future__ import annotations

import importlib.util
import os
import sys

from weightlapse.errors import MissingDependencyError, WeightlapseError

FRAMEWORKS = ("torch", "keras")


def check_framework(framework: str, keras_backend: str | None = None) -> None:
    """Fails early, naming the extra to install; sets KERAS_BACKEND before keras loads."""
    if framework not in FRAMEWORKS:
        raise WeightlapseError(f"framework={framework!r}: choose one of {', '.join(FRAMEWORKS)}.")
    if framework == "torch" and importlib.util.find_spec("torch") is None:
        raise MissingDependencyError("torch", "torch")
    if framework == "keras":
        if importlib.util.find_spec("keras") is None:
            raise MissingDependencyError("keras", "keras")
        wanted = keras_backend or os.environ.get("KERAS_BACKEND")
        if wanted is None:
            wanted = "torch" if importlib.util.find_spec("torch") else "tensorflow"
        if "keras" in sys.modules and sys.modules["keras"].backend.backend() != wanted:
            raise WeightlapseError(
                f"Keras is already loaded with the {sys.modules['keras'].backend.backend()!r} "
                f"backend; {wanted!r} must be chosen before keras is imported."
            )
        os.environ["KERAS_BACKEND"] = wanted
