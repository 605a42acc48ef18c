"""Tests of the reference data sets."""
