"""A tiny host object for worker-process tests: what a spawned worker's JAX sees (kept out of the test
module, which a worker would otherwise import with pytest and everything it imports)."""

import os


class ProbeRecipe:
    def build(self) -> "Probe":
        return Probe()


class Probe:
    def xla_setup(self) -> dict:
        """The platform JAX runs on and the size of XLA's CPU thread pool, after one computation."""
        import jax
        import jax.numpy as jnp

        (jnp.ones((64, 64)) @ jnp.ones((64, 64))).block_until_ready()
        names = [open(f"/proc/self/task/{tid}/comm").read().strip() for tid in os.listdir("/proc/self/task")]
        return {"platform": jax.devices()[0].platform, "xla_threads": names.count("tf_XLAEigen")}
