"""PyTorch recording: `weightlapse.torch.watch(model, run, optimizer=opt)`."""

from weightlapse.integrations.torch import TorchOps, TorchWatcher, watch

__all__ = ["TorchOps", "TorchWatcher", "watch"]
