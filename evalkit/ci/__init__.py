"""Verdicts: gates, baselines, the run history and signed sign-off."""
