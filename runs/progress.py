"""The progress convention for checkpoints, read by the admin's progress bars.

A checkpoint says how far its run has got with `data.progress`, a number from
0 to 1, or with `data.step` and `data.of` (step 3 of 10), as the built-in
`sleep` task does. A run's progress is what its latest checkpoint says;
anything else in `data` is left alone, and a checkpoint without either shows
no bar.
"""

from __future__ import annotations

from typing import Any


def fraction(data: Any) -> float | None:
    """0..1 from a checkpoint's data, or None when it states no progress."""
    if not isinstance(data, dict):
        return None
    value = data.get("progress")
    if _number(value):
        return min(1.0, max(0.0, float(value)))
    step, of = data.get("step"), data.get("of")
    if _number(step) and _number(of) and of > 0:
        return min(1.0, max(0.0, float(step) / float(of)))
    return None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
