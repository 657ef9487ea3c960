"""Deliveries made from the run journal.

Placeholder until the journal exists: nothing to fan out.
"""

from __future__ import annotations

BATCH = 500


def fan_out(limit: int = BATCH) -> int:
    return 0
