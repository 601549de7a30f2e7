"""PyTorch Lightning: `WeightlapseCallback` records the model at every optimizer step,
and `WeightlapseLogger` puts what `self.log` logs and the hyperparameters into the run.

    trainer = L.Trainer(callbacks=[WeightlapseCallback("runs/lit", gradients=True)],
                        logger=WeightlapseLogger("runs/lit"))

Both record on global rank 0 only. The callback hooks the optimizers Lightning drives, so
step k holds the weights after the k-th optimizer step and the gradients that step used:
after accumulation, unscaling (16-mixed) and clipping; with manual optimization, what is
in .grad when `opt.step()` runs; with several optimizers, each step's own parameters.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from weightlapse.errors import MissingDependencyError, WeightlapseError
from weightlapse.integrations.fsdp import records_on_every_rank
from weightlapse.integrations.meta import as_dict, json_safe
from weightlapse.integrations.torch import Probes, TorchWatcher, watch
from weightlapse.run_writer import RunWriter, create

try:
    from lightning.pytorch.callbacks import Callback
    from lightning.pytorch.loggers import Logger
    from lightning.pytorch.utilities import rank_zero_only
except ImportError:  # the older package name
    try:
        from pytorch_lightning.callbacks import Callback
        from pytorch_lightning.loggers import Logger
        from pytorch_lightning.utilities import rank_zero_only
    except ImportError as exc:  # pragma: no cover - exercised without lightning
        raise MissingDependencyError("lightning", "lightning") from exc


class WeightlapseLogger(Logger):
    """A Lightning logger writing into a weightlapse run at `path`: metrics join the
    recorded step they belong to (Lightning's `global_step`); hyperparameters go to the
    run's metadata. With a `WeightlapseCallback` in the Trainer, both share one run;
    alone, the run holds the metrics only. `options` are those of `weightlapse.create`.
    """

    def __init__(self, path: str | Path, **options: Any) -> None:
        super().__init__()
        self.path = Path(path)
        self.options = options
        self._run: RunWriter | None = None
        self._watcher: TorchWatcher | None = None
        self._hyperparameters: dict[str, Any] = {}
        self._warned_closed = False

    # ---- what Lightning asks of a logger ------------------------------------------------
    @property
    def name(self) -> str:
        return "lightning_logs"  # Lightning's own folder name, for its checkpoints

    @property
    def version(self) -> str:
        return self.path.name

    @property
    def save_dir(self) -> None:
        # None: checkpoints go under the Trainer's default_root_dir, as Lightning's own
        # loggers put them (lightning_logs/<run name>/checkpoints), never inside the run.
        return None

    @property
    def experiment(self) -> RunWriter | None:
        """The run written into (None on ranks other than 0)."""
        return self._run

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        self._hyperparameters.update(json_safe(as_dict(params)))
        if self._run is not None:
            self._run.set_meta(hyperparameters=self._hyperparameters)

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        scalars = {k: float(v) for k, v in metrics.items()}
        if self._watcher is not None:
            # They belong to the optimizer step just taken (Lightning's `step` counts
            # batches, which differs from optimizer steps with several optimizers).
            self._watcher.log_scalars(**scalars)
            return
        run = self._open()
        if run.closed:
            self._warn_closed()
            return
        step = int(step if step is not None else (run.last_step or -1) + 1)
        if run.recorder.add_scalars(step, scalars):
            return  # joined the step already recorded
        if run.last_step is not None and step <= run.last_step:
            return  # a step long gone: Lightning counts up, this does not happen in fit
        run.log(step, {}, snapshot=False, **scalars)

    @rank_zero_only
    def finalize(self, status: str) -> None:
        if self._watcher is not None:
            self._watcher.close()
        elif self._run is not None:
            self._run.close()

    # ---- the callback's side ------------------------------------------------------------
    def _open(self, **options: Any) -> RunWriter:
        if self._run is None:
            self._run = create(self.path, **{**self.options, **options})
            if self._hyperparameters:
                self._run.set_meta(hyperparameters=self._hyperparameters)
        return self._run

    def _attach(self, watcher: TorchWatcher) -> None:
        self._watcher = watcher

    def _warn_closed(self) -> None:
        if not self._warned_closed:
            self._warned_closed = True
            warnings.warn(
                f"weightlapse: the run {self.path} closed when fit ended; metrics logged "
                "after it (trainer.test, trainer.validate) are not recorded.",
                stacklevel=3,
            )


class WeightlapseCallback(Callback):
    """Records the LightningModule while `trainer.fit` runs, on global rank 0.

    `run`: a path for a new run, or a RunWriter; leave it out when the Trainer has a
    `WeightlapseLogger`, whose run is then shared. `options` are those of
    `weightlapse.create` (gradients=True, every=..., snapshots=...); the probe arguments
    those of `weightlapse.torch.watch`.
    """

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
        super().__init__()
        self.target = run
        self.options = options
        self.probes = Probes(probe_inputs, activations, attributions, probe_targets)
        self.watcher: TorchWatcher | None = None

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        logger = next((lg for lg in trainer.loggers if isinstance(lg, WeightlapseLogger)), None)
        if self.target is None and logger is None:
            raise WeightlapseError(
                "WeightlapseCallback() has no run to record into: give it a path "
                '(WeightlapseCallback("runs/a")) or add a WeightlapseLogger to the Trainer.'
            )
        if self.watcher is not None:
            return
        if trainer.global_rank != 0 and not records_on_every_rank(pl_module):
            return  # one writer: rank 0 (DDP's replicas are equal; FSDP's shards are not)
        if logger is not None and self.target is None:
            run: Any = logger._open(**self.options)
            options: dict[str, Any] = {}
        else:
            run, options = self.target, self.options
            if logger is not None:
                raise WeightlapseError(
                    "Both WeightlapseCallback(run) and a WeightlapseLogger are given: the "
                    "callback records into the logger's run, so leave out its run argument."
                )
        self.watcher = watch(
            pl_module,
            run,
            optimizer=list(trainer.optimizers),
            rank_zero_only=False,  # the global rank is checked above (also for Fabric/TPU)
            **self.probes.watch_options(),
            **options,
        )
        self.watcher.global_step = max(self.watcher.global_step, int(trainer.global_step))
        if logger is not None:
            logger._attach(self.watcher)

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        if self.watcher is not None:
            self.watcher.epoch = int(trainer.current_epoch)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if self.watcher is not None:  # per-epoch schedules record here
            self.watcher.epoch_end()
            self.watcher.epoch = int(trainer.current_epoch)

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        self._close()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self._close()  # what was recorded stays, and the run says it ended

    def _close(self) -> None:
        if self.watcher is not None:
            self.watcher.close()


__all__ = ["WeightlapseCallback", "WeightlapseLogger"]
