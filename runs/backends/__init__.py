"""Execution backends: where a run's work actually happens (Redis workers, Kubernetes Jobs)."""

from runs.backends.base import Backend, get_backend

__all__ = ["Backend", "get_backend"]
