"""How the `runs_*` commands print runs, checkpoints and events in a terminal."""

from __future__ import annotations

import json
from typing import Any

from runs.admission_display import waiting_text

LIST_HEADER = (
    f"{'ID':36}  {'STATUS':9}  {'WAITING':12}  {'PRI':>3}  {'MODE':5}  {'CREATED':27}  {'CKPTS':>6}  OWNER"
)


def run_row(run: dict[str, Any]) -> str:
    """One line of `runs_list`, from a run's wire form."""
    waiting = (run.get("waitingFor") or {}).get("reason") or "-"
    return (
        f"{run['id']:36}  {run['status']:9}  {waiting:12}  {run.get('priority', 5):>3}  {run['mode']:5}  "
        f"{run['createdAt']:27}  "
        f"{run['checkpointCount']:>6}  {run.get('owner', '')}"
    )


def run_details(run: dict[str, Any]) -> list[str]:
    """The labelled fields of `runs_show`, from a run's wire form."""
    lines = [
        f"id:           {run['id']}",
        f"status:       {run['status']}",
        f"waiting for:  {waiting_text(run.get('waitingFor'))}",
        f"mode:         {run['mode']}",
        f"owner:        {run.get('owner', '')}",
        f"attempt:      {run['attempt']}",
        f"priority:     {run.get('priority', 5)}",
        f"created:      {run['createdAt']}",
        f"started:      {run['startedAt'] or '-'}",
        f"finished:     {run['finishedAt'] or '-'}",
        f"checkpoints:  {run['checkpointCount']}",
    ]
    if run.get("retryOf"):
        lines.append(f"retry of:     {run['retryOf']}")
    if run.get("error"):
        lines.append(f"error:        {compact(run['error'])}")
    if run.get("retry"):
        lines.append(f"retry:        {compact(run['retry'])}")
    lines.append(f"metadata:     {compact(run.get('metadata') or {})}")
    lines.append("spec:")
    lines.extend("  " + line for line in json.dumps(run.get("spec"), indent=2, sort_keys=True).splitlines())
    return lines


def checkpoint_line(checkpoint: dict[str, Any]) -> str:
    return (
        f"{checkpoint['ts']}  #{checkpoint['seq']:<5} {checkpoint['type']}  {compact(checkpoint.get('data'))}"
    )


def status_line(event: str, body: dict[str, Any]) -> str:
    run = body.get("run") or {}
    stamp = run.get("updatedAt") or ""
    return f"{stamp:27} {event}: {body.get('status', run.get('status', '?'))}"


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def json_line(record: dict[str, Any]) -> str:
    """One record of a command's `--json` output: a JSON object on one line."""
    return json.dumps(record, separators=(",", ":"))
