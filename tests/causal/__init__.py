"""Tests of the causal design and interventions."""
