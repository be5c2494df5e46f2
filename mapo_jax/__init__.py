"""mapo_jax: Memory Augmented Policy Optimization (Liang et al., NeurIPS 2018) in JAX/Flax."""

__version__ = "0.1.0"
