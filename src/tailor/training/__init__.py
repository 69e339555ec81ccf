"""MLflow runs, Optuna tuning and registry aliases shared by all models: filled by the models issue."""
