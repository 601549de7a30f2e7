"""The messages the training side sends the writer thread, in the order it sends them."""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from weightlapse.store.records import StepRecord, TensorInfo


@dataclass
class Register:
    kind: str
    info: TensorInfo
    probe_elements: np.ndarray


@dataclass
class Meta:
    meta: dict[str, Any]


@dataclass
class Step:
    record: StepRecord
    nbytes: int
    submitted: float  # the writer's clock (pacing.now) when the training side sent it


@dataclass
class Flush:
    """Commit everything buffered now."""

    done: threading.Event = field(default_factory=threading.Event)


@dataclass
class Handover:
    """close(): the writer thread stops and the closing thread commits what is left."""


Message = Register | Meta | Step | Flush | Handover


def iter_queue(q: queue.SimpleQueue[Any]) -> list[Any]:
    items = []
    while True:
        try:
            items.append(q.get_nowait())
        except queue.Empty:
            return items
