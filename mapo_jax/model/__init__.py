"""The neural half: Flax networks and the pure policy functions."""
