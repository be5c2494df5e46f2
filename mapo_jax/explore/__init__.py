"""Exploration: Bloom filters and systematic / random program search. Pure Python, no JAX."""
