"""PyTorch recording: `weightlapse.torch.watch(model, run, optimizer=opt)`."""

from weightlapse.integrations.torch import IdleWatcher, TorchWatcher, watch

__all__ = ["IdleWatcher", "TorchWatcher", "watch"]
