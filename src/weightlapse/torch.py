"""PyTorch recording: `weightlapse.torch.watch(model, run, optimizer=opt)`."""

from weightlapse.integrations.torch import TorchWatcher, watch

__all__ = ["TorchWatcher", "watch"]
