"""PyTorch Lightning recording: `WeightlapseCallback` and `WeightlapseLogger`."""

from weightlapse.integrations.lightning import WeightlapseCallback, WeightlapseLogger

__all__ = ["WeightlapseCallback", "WeightlapseLogger"]
