"""JAX recording: `weightlapse.jax.log(run, step, params, opt_state=..., grads=...)`."""

from weightlapse.integrations.jax import create, log, named_leaves

__all__ = ["create", "log", "named_leaves"]
