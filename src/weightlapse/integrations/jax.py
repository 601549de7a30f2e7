"""JAX (Flax, optax, Equinox...): `log(run, step, params, opt_state=..., grads=...)`.

Pytrees are named by their key paths, through JAX's own tree utilities, so any
registered node (Flax structs, optax's named-tuple states, Equinox modules) names its
leaves. Arrays on an accelerator are summarised there by `jax.numpy` and come back in
one small transfer. Called inside a `jit`-ted function, `log` records through
`jax.debug.callback` when the step runs, in order.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

from weightlapse.errors import WeightlapseError
from weightlapse.record.arrays import dtype_name
from weightlapse.record.jax_ops import JaxOps, jax
from weightlapse.run_writer import RunWriter, create


def log(
    run: RunWriter,
    step: Any,
    params: Any,
    *,
    opt_state: Any = None,
    grads: Any = None,
    snapshot: bool | None = None,
    on_device: bool | None = None,
    **scalars: Any,
) -> None:
    """Records `params` (any pytree) at `step`, with the optimizer's state (named
    `opt_state/...`: `opt_state/0/mu/dense/kernel` for optax's Adam) and the gradients
    that update used (the same tree as `params`). Scalars (loss=...) join the step.

    >>> run = weightlapse.create("runs/flax", gradients=True)
    >>> weightlapse.jax.log(run, step, params, opt_state=opt_state, grads=grads, loss=loss)
    """
    if not isinstance(run, RunWriter):
        raise WeightlapseError(
            f"log() records into a RunWriter, got {type(run).__name__}: make one with "
            "run = weightlapse.create(path) (or weightlapse.jax.create(path)) and pass it."
        )
    trees = (step, params, opt_state, grads, scalars)
    if any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(trees)):
        # Inside jit: the values exist only when the compiled step runs.
        record = partial(_log_now, run, snapshot=snapshot, on_device=on_device)
        jax.debug.callback(record, *trees, ordered=True)
        return
    _log_now(run, *trees, snapshot=snapshot, on_device=on_device)


def _log_now(
    run: RunWriter,
    step: Any,
    params: Any,
    opt_state: Any,
    grads: Any,
    scalars: dict[str, Any],
    *,
    snapshot: bool | None,
    on_device: bool | None,
) -> None:
    arrays = named_leaves(params)
    if opt_state is not None:
        arrays.update(named_leaves(opt_state, prefix="opt_state"))
    named_grads = named_leaves(grads) if grads is not None else {}
    unknown = sorted(set(named_grads) - set(arrays))
    if unknown:
        raise WeightlapseError(
            f"grads has leaves params lacks: {unknown[:5]}. Pass the gradients of params "
            "(the same tree: jax.grad(loss)(params))."
        )
    run.log_flat(
        int(np.asarray(step)),
        arrays,
        JaxOps(on_device),
        grads=named_grads,
        dtypes={n: dtype_name(a) for n, a in arrays.items()},
        snapshot=snapshot,
        scalars={k: float(np.asarray(v)) for k, v in scalars.items()},
    )


def named_leaves(tree: Any, prefix: str = "") -> dict[str, Any]:
    """{'dense/kernel': array} from a pytree, by key path; leaves that are not arrays
    (None, empty optax states) are left out."""
    out: dict[str, Any] = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        name = "/".join([prefix, *map(_key_name, path)] if prefix else map(_key_name, path))
        if not hasattr(leaf, "dtype"):
            leaf = jax.numpy.asarray(leaf)
        if name in out:
            raise WeightlapseError(f"Two leaves of the tree are both named {name!r}.")
        out[name or "value"] = leaf
    return out


def _key_name(key: Any) -> str:
    for attr in ("key", "name", "idx"):  # DictKey, GetAttrKey, SequenceKey/FlattenedIndexKey
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


__all__ = ["create", "log", "named_leaves"]
