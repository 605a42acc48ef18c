"""Causal active learning (Fox and Ghosh 2024): LiNGAM graphs, a causal design, interventions."""
