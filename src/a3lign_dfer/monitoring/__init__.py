"""Drift monitoring of the deployed model: reference profile, per-video columns, Evidently reports."""
