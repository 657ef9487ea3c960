"""Deliveries made from the run journal.

Placeholder until the journal exists: nothing to fan out.
"""

from __future__ import annotations


def fan_out(limit: int = 500) -> int:
    return 0
