"""Deployment: the Kubernetes manifests and the serving sizing they are derived from."""
