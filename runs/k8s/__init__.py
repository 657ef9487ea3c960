"""Kubernetes mode: Job manifests, the API client, and the reconciler that follows Jobs."""
