"""The MLflow model registry as training and serving both see it: where it is, the aliases,
and the pyfunc wrapper models are logged with and loaded through (no training code here)."""
