"""The symbolic computer: DSL types, functions and the incremental interpreter. Pure Python, no JAX."""
