"""Datasets, tables, question annotation and answer matching. Pure Python: no JAX here."""
