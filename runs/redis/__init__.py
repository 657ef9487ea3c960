"""Redis mode, all of it: the run queue (a Redis Stream with leases and
cancel flags), the backend that puts runs on it, and the reference worker
(`manage.py runworker`) that takes them off."""
