"""Surrogate models: the exact GP on descriptors."""
