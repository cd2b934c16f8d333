"""Forecasting: datasets from the bars table, leakage-safe features, walk-forward splits,
PyTorch models and baselines, Ray Tune search, MLflow tracking and promotion."""
