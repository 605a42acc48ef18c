"""Tracking: MLflow logging and extrapolation diagnostics."""
