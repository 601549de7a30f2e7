"""Hugging Face `transformers.Trainer`: `WeightlapseCallback` records the model at every
optimizer step, with the Trainer's logged metrics and its `TrainingArguments`.

    trainer = Trainer(model, args, train_dataset=ds,
                      callbacks=[WeightlapseCallback("runs/bert", gradients=True)])

The optimizer the Trainer hands callbacks is accelerate's wrapper; the torch optimizer
inside it is hooked, so step k holds the weights after the k-th update and the gradients
it used (accumulated, unscaled and clipped). Only the world's process zero records.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from weightlapse.errors import MissingDependencyError, WeightlapseError
from weightlapse.integrations.fsdp import records_on_every_rank
from weightlapse.integrations.meta import json_safe
from weightlapse.integrations.torch import Probes, TorchWatcher, watch
from weightlapse.run_writer import RunWriter

try:
    from transformers import TrainerCallback
except ImportError as exc:  # pragma: no cover - exercised without transformers
    raise MissingDependencyError("transformers", "huggingface") from exc


class WeightlapseCallback(TrainerCallback):
    """Records a `transformers.Trainer`'s model into `run` (a path or a RunWriter; by
    default `<output_dir>/weightlapse`). `options` are those of `weightlapse.create`
    (gradients=True, every=..., snapshots=...); the probe arguments those of
    `weightlapse.torch.watch`."""

    def __init__(
        self,
        run: RunWriter | str | Path | None = None,
        *,
        probe_inputs: Any = None,
        activations: Sequence[str] = (),
        attributions: Sequence[str] = (),
        probe_targets: Any = None,
        **options: Any,
    ) -> None:
        self.target = run
        self.options = options
        self.probes = Probes(probe_inputs, activations, attributions, probe_targets)
        self.watcher: TorchWatcher | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        model, optimizer = kwargs.get("model"), kwargs.get("optimizer")
        if self.watcher is not None:
            return
        every_rank = model is not None and records_on_every_rank(model)
        if not state.is_world_process_zero and not every_rank:
            return  # one writer: process zero (DDP's replicas are equal; FSDP's are not)
        if model is None or optimizer is None:
            raise WeightlapseError(
                "WeightlapseCallback got no model or optimizer from the Trainer at "
                "on_train_begin; it needs transformers.Trainer (or a subclass) to call it."
            )
        target = self.target or Path(args.output_dir) / "weightlapse"
        self.watcher = watch(
            model,
            target,
            optimizer=optimizer,
            rank_zero_only=False,  # process zero is checked above, by the Trainer's count
            **self.probes.watch_options(),
            **self.options,
        )
        self.watcher.global_step = max(self.watcher.global_step, int(state.global_step))
        meta: dict[str, Any] = {"training_arguments": json_safe(args.to_dict())}
        config = getattr(model, "config", None)
        if hasattr(config, "to_dict"):
            meta["model_config"] = json_safe(config.to_dict())
        self.watcher.run.set_meta(**meta)

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any
    ) -> None:
        if self.watcher is None or not logs:
            return
        scalars = {
            k: float(v)
            for k, v in logs.items()
            if isinstance(v, numbers.Real) and not isinstance(v, bool)
        }
        if self.watcher.global_step != state.global_step:  # a skipped (fp16 overflow) step
            scalars["trainer_global_step"] = float(state.global_step)
        self.watcher.log_scalars(**scalars)

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.watcher is not None:  # per-epoch schedules record here
            self.watcher.epoch_end()

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.watcher is not None:
            self.watcher.close()


__all__ = ["WeightlapseCallback"]
