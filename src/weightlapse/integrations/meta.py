"""Framework facts as JSON for the run's metadata (hyperparameters, training arguments)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def as_dict(params: Any) -> dict[str, Any]:
    """A mapping, an argparse.Namespace or an object's attributes as a dict."""
    if isinstance(params, Mapping):
        return dict(params)
    if hasattr(params, "__dict__"):
        return dict(vars(params))
    return {"hyperparameters": params}


def json_safe(value: Any) -> Any:
    """`value` as JSON can hold it: what JSON cannot hold (a dtype, a path, a NaN) is kept
    as its text."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    try:
        json.dumps(value, allow_nan=False)
        return value
    except (TypeError, ValueError):
        return str(value)
