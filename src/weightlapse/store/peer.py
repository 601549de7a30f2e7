"""What the other ranks of a sharded recording hold where rank 0 holds its StoreWriter.

Under FSDP every rank takes part in each recorded step (it reduces its own shard and
writes its own snapshot regions), so every rank runs the same recorder, deciding the
same steps; only rank 0's reaches the store. This is the rest's: it keeps nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from weightlapse.store.location import zarr_store
from weightlapse.store.records import StepRecord, TensorInfo


class PeerStore:
    """The StoreWriter calls a recorder makes, on a rank that does not write the run."""

    stopped = False
    last_committed_step: int | None = None

    def __init__(
        self, path: Any, flush_seconds: float = 2.0, storage_options: dict | None = None
    ) -> None:
        self.path = path
        self.storage_options = storage_options
        self.target = zarr_store(path, storage_options)  # where this rank writes its shards
        self.flush_seconds = flush_seconds
        self.attrs: dict[str, Any] = {"committed_steps": 0}

    def register(self, kind: str, info: TensorInfo, probe_elements: np.ndarray) -> None:
        pass

    def update_meta(self, meta: dict[str, Any]) -> None:
        pass

    def submit(self, record: StepRecord) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass
