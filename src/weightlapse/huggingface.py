"""Hugging Face Trainer recording: `WeightlapseCallback` for `transformers.Trainer`."""

from weightlapse.integrations.huggingface import WeightlapseCallback

__all__ = ["WeightlapseCallback"]
