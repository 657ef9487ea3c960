"""Keeps runs in step with their Jobs: watches Jobs and Pods, maps what it
sees to run status through the service layer, and repairs drift.

Two watch loops (Jobs, Pods) resume from the last resourceVersion after a
dropped connection or a server-side timeout, and list again when the server
answers 410 Gone. A periodic resync lists everything again, so an event lost
to a crash or a database outage is applied late rather than never.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone
from kubernetes import watch
from kubernetes.client.rest import ApiException

from runs import metrics, selectors, services, states
from runs.exceptions import AttemptSuperseded, InvalidTransition, RunNotFound
from runs.k8s import client as k8s
from runs.k8s.manifests import attempt_of, job_name, run_id_of, selector
from runs.k8s.objects import delete_run_objects
from runs.k8s.status import (
    Verdict,
    is_failed,
    job_deleted_error,
    job_verdict,
    newest_timestamp,
    parse_timestamp,
    pod_verdict,
)

logger = logging.getLogger("runs.k8s.reconciler")

JOBS, PODS = "jobs", "pods"
_MAX_BACKOFF_SECONDS = 30.0
_MISSING = "missing"  # the status of a run that does not exist


class Reconciler:
    def __init__(
        self,
        *,
        watch_timeout_seconds: int | None = None,
        resync_seconds: float | None = None,
        orphan_grace_seconds: float | None = None,
        backoff_seconds: float = 0.5,
    ) -> None:
        self.namespace = k8s.namespace()
        self.selector = selector(settings.K8S_INSTANCE)
        self.watch_timeout_seconds = watch_timeout_seconds or settings.K8S_WATCH_TIMEOUT_SECONDS
        self.resync_seconds = resync_seconds if resync_seconds is not None else settings.K8S_RESYNC_SECONDS
        self.orphan_grace = timedelta(
            seconds=orphan_grace_seconds
            if orphan_grace_seconds is not None
            else settings.K8S_ORPHAN_GRACE_SECONDS
        )
        self.backoff_seconds = backoff_seconds
        self.relists = {JOBS: 0, PODS: 0}  # how often each loop listed from scratch
        self.resource_versions: dict[str, str | None] = {JOBS: None, PODS: None}
        self._stopping = threading.Event()
        self._watches: dict[str, watch.Watch] = {}
        self._lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------
    def run(self) -> None:
        """Watch until stop(): both watch loops in threads, resync here."""
        threads = [
            threading.Thread(target=self._watch_loop, args=(kind,), name=f"k8s-watch-{kind}", daemon=True)
            for kind in (JOBS, PODS)
        ]
        for thread in threads:
            thread.start()
        try:
            while not self._stopping.is_set():
                self._guarded(self.resync)
                self._stopping.wait(self.resync_seconds)
        finally:
            self.stop()
            for thread in threads:
                # A watch that was opening while stop() ran has its response
                # only now: shut again until the loop has noticed.
                while thread.is_alive():
                    self._shut_watches()
                    thread.join(0.1)
            connection.close()

    def stop(self) -> None:
        """Ask every loop to end; open watch responses are shut so blocked reads return now."""
        self._stopping.set()
        self._shut_watches()

    def _shut_watches(self) -> None:
        with self._lock:
            watches = list(self._watches.values())
        for w in watches:
            w.stop()
            resp = getattr(w, "_resp", None)  # the library keeps the open response here
            if resp is not None:
                try:
                    resp.shutdown()
                except Exception:  # noqa: S110 - best effort: it may be closing already
                    pass

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    # -- resync ------------------------------------------------------------------------------
    def resync(self) -> None:
        """List Jobs and Pods and apply them all; fail open runs whose Job is gone."""
        # Runs first, Jobs second: a run committed after this query created its
        # Job before committing, so the list below cannot miss it.
        cutoff = timezone.now() - self.orphan_grace
        open_runs = selectors.open_k8s_attempts(cutoff)
        jobs, _ = self._list(JOBS)
        pods, _ = self._list(PODS)
        self._handle_listed(JOBS, jobs)
        self._handle_listed(PODS, pods)
        # Each attempt has a Job of its own: only the current attempt's counts.
        present = {(run_id_of(job), attempt_of(job)) for job in jobs}
        for run_id, attempt in sorted(open_runs - present):
            self._job_gone(run_id, attempt)

    # -- watch loops -------------------------------------------------------------------------
    def _watch_loop(self, kind: str) -> None:
        backoff = self.backoff_seconds
        try:
            while not self._stopping.is_set():
                try:
                    if self.resource_versions[kind] is None:
                        self.resource_versions[kind] = self._relist(kind)
                    self._watch_once(kind)
                    backoff = self.backoff_seconds
                except ApiException as exc:
                    if exc.status == 410:
                        logger.info("%s watch expired (410 Gone): listing again", kind)
                        self.resource_versions[kind] = None
                        continue
                    backoff = self._pause(kind, exc, backoff)
                except k8s.CONNECTION_ERRORS as exc:
                    backoff = self._pause(kind, exc, backoff)
                except Exception as exc:
                    # Something we cannot read: start over from a fresh list.
                    logger.exception("%s watch broke; listing again", kind)
                    self.resource_versions[kind] = None
                    backoff = self._pause(kind, exc, backoff)
        finally:
            connection.close()

    def _watch_once(self, kind: str) -> None:
        """One watch request from the last resourceVersion seen, which every
        event moves on (kept across a broken connection, so the next request
        resumes where this one stopped)."""
        w = watch.Watch()
        with self._lock:
            if self._stopping.is_set():
                return
            self._watches[kind] = w
        try:
            for event in w.stream(
                self._list_function(kind),
                self.namespace,
                label_selector=self.selector,
                resource_version=self.resource_versions[kind],
                timeout_seconds=self.watch_timeout_seconds,
                allow_watch_bookmarks=True,
            ):
                obj = event["raw_object"]
                if event["type"] != "BOOKMARK":
                    self._handle(kind, event["type"], obj)
                    self._record_lag(obj)
                rv = (obj.get("metadata") or {}).get("resourceVersion")
                if rv:
                    self.resource_versions[kind] = rv
        finally:
            with self._lock:
                self._watches.pop(kind, None)

    def _relist(self, kind: str) -> str:
        items, rv = self._list(kind)
        self.relists[kind] += 1
        self._handle_listed(kind, items)
        return rv

    def _list(self, kind: str) -> tuple[list[dict[str, Any]], str]:
        raw = self._list_raw(kind, self.selector)
        return raw.get("items") or [], raw["metadata"]["resourceVersion"]

    def _list_raw(self, kind: str, selector: str) -> dict[str, Any]:
        resp = self._list_function(kind)(
            self.namespace,
            label_selector=selector,
            _request_timeout=k8s.request_timeout(),
            _preload_content=False,
        )
        return json.loads(resp.data)

    def _list_function(self, kind: str) -> Any:
        return k8s.batch_api().list_namespaced_job if kind == JOBS else k8s.core_api().list_namespaced_pod

    def _pause(self, kind: str, exc: BaseException, backoff: float) -> float:
        if not self._stopping.is_set():
            logger.warning("%s watch failed (%s); retrying in %.1fs", kind, k8s.describe_error(exc), backoff)
            self._stopping.wait(backoff)
        return min(backoff * 2, _MAX_BACKOFF_SECONDS)

    # -- applying what we see ----------------------------------------------------------------
    def _handle_listed(self, kind: str, items: list[dict[str, Any]]) -> None:
        """Apply a whole list, reading the runs' statuses in one query."""
        close_old_connections()
        run_ids = {run_id for run_id in map(run_id_of, items) if run_id}
        statuses = selectors.run_statuses(run_ids)
        for item in items:
            run_id = run_id_of(item)
            if run_id:
                self._handle(kind, "SYNC", item, statuses.get(run_id, _MISSING))

    def _handle(self, kind: str, event_type: str, obj: dict[str, Any], status: str | None = None) -> None:
        """Apply one object; `status` is its run's when already known (_MISSING: no such run)."""
        run_id = run_id_of(obj)
        if not run_id or not _is_the_runs_own(kind, run_id, obj):
            return
        if status is None:
            close_old_connections()
        try:
            if kind == JOBS:
                self._on_job(run_id, event_type, obj, status)
            elif status is None or not (status == _MISSING or states.is_final(status)):
                self._on_pod(run_id, event_type, obj)
        except Exception:
            # One bad event (or a database blip) must not end the watch; resync retries it.
            logger.exception("could not apply a %s event", kind, extra={"runId": run_id})

    def _on_job(self, run_id: str, event_type: str, job: dict[str, Any], status: str | None) -> None:
        attempt = attempt_of(job)
        name = job_name(run_id, attempt)
        if event_type == "DELETED":
            verdict = job_verdict(job)
            if verdict is not None and states.is_final(verdict.status):
                self._apply(run_id, verdict, attempt)
            else:
                self._job_gone(run_id, attempt)
            return
        if status is None:
            status = selectors.run_status(run_id) or _MISSING
        if status == _MISSING:
            self._maybe_remove_orphan(run_id, job)
            return
        if status == states.CANCELED:
            # Canceled runs keep no Job, even one a retried dispatch created after the cancel.
            if not (job.get("metadata") or {}).get("deletionTimestamp"):
                logger.info("deleting the Job of a canceled run", extra={"runId": run_id})
                delete_run_objects(run_id, attempt)
            return
        if states.is_final(status):
            return
        verdict = job_verdict(job, self._pods_of(name) if is_failed(job) else ())
        if verdict is not None:
            self._apply(run_id, verdict, attempt)

    def _on_pod(self, run_id: str, event_type: str, pod: dict[str, Any]) -> None:
        if event_type == "DELETED":
            return
        verdict = pod_verdict(pod)
        if verdict is None:
            return
        attempt = attempt_of(pod)
        if self._apply(run_id, verdict, attempt) and verdict.status == states.FAILED:
            # The Job would keep waiting for the image until its deadline.
            delete_run_objects(run_id, attempt)

    def _job_gone(self, run_id: str, attempt: int) -> None:
        if self._apply(run_id, Verdict(states.FAILED, job_deleted_error(job_name(run_id, attempt))), attempt):
            logger.warning("Job deleted behind our back: attempt failed", extra={"runId": run_id})
            delete_run_objects(run_id, attempt)  # a Secret orphaned by that delete

    def _apply(self, run_id: str, verdict: Verdict, attempt: int) -> bool:
        """Move the run to the verdict's status; False when it no longer can
        (already final, gone, or on a later attempt than the object's):
        stale events are expected and harmless."""
        try:
            services.record_observed_status(run_id, verdict.status, error=verdict.error, attempt=attempt)
        except (InvalidTransition, RunNotFound, AttemptSuperseded):
            return False
        return True

    def _pods_of(self, name: str) -> list[dict[str, Any]]:
        return self._list_raw(PODS, f"job-name={name}").get("items") or []

    def _maybe_remove_orphan(self, run_id: str, job: dict[str, Any]) -> None:
        # A Job without a run: its create transaction rolled back. Young ones may
        # belong to a transaction that has not committed yet, so they wait.
        created = parse_timestamp((job.get("metadata") or {}).get("creationTimestamp"))
        if created is not None and timezone.now() - created > self.orphan_grace:
            logger.info("deleting an orphaned Job", extra={"runId": run_id})
            delete_run_objects(run_id, attempt_of(job))

    def _record_lag(self, obj: dict[str, Any]) -> None:
        newest = newest_timestamp(obj)
        if newest is not None:
            metrics.RECONCILER_LAG_SECONDS.set(max(0.0, (timezone.now() - newest).total_seconds()))

    def _guarded(self, fn: Any) -> None:
        try:
            fn()
        except (ApiException, *k8s.CONNECTION_ERRORS) as exc:
            logger.warning("resync failed: %s", k8s.describe_error(exc))
        except Exception:
            logger.exception("resync failed")


def _is_the_runs_own(kind: str, run_id: str, obj: dict[str, Any]) -> bool:
    """A label alone is easy to copy: only the run's own Job (by name), and
    pods that Job's controller made, speak for the run."""
    meta = obj.get("metadata") or {}
    name = job_name(run_id, attempt_of(obj))
    if kind == JOBS:
        return meta.get("name") == name
    return (meta.get("labels") or {}).get("job-name") == name
