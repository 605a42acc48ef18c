"""Molecules, SELFIES operators, constraints and conformers."""
