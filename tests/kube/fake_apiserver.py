"""An in-process Kubernetes API server for tests.

The real ``kubernetes`` client talks to it over real HTTP, so tests exercise the
client's serialisation, error mapping and ``watch.Watch`` streaming instead of
mocks. Only the slice of the API the project uses exists: ``batch/v1`` Jobs and
``v1`` Pods (create/get/list/delete/watch), and ``v1`` Secrets (create/get/delete) for
the per-run token. Deleting a Job with a Background/Foreground policy removes its
dependents (its pods and every object whose ownerReferences name the Job), as the
garbage collector does. Tests drive controller-side state
(job status, pods) through Python methods, as the job controller would.
"""

from __future__ import annotations

import copy
import json
import queue
import re
import select
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    import kubernetes.client

Obj = dict[str, Any]
# resource -> (apiVersion, kind, qualified resource used in messages, group, URL prefix)
_KINDS = {
    "jobs": ("batch/v1", "Job", "jobs.batch", "batch", "/apis/batch/v1"),
    "pods": ("v1", "Pod", "pods", "", "/api/v1"),
    "secrets": ("v1", "Secret", "secrets", "", "/api/v1"),
}
_PATH = re.compile(
    r"^(?P<prefix>/apis/batch/v1|/api/v1)/namespaces/(?P<ns>[^/]+)/(?P<res>jobs|pods|secrets)"
    r"(?:/(?P<name>[^/]+))?/?$"
)
_REASONS = {
    400: "BadRequest",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "AlreadyExists",
    410: "Expired",
    422: "Invalid",
    503: "ServiceUnavailable",
}
_END, _DROP = object(), object()  # watch queue sentinels: graceful end / abrupt close


class KubeStatusError(Exception):
    """An API failure, rendered as a ``Status`` body with the matching HTTP code."""

    def __init__(self, code: int, message: str, details: Obj | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.details = code, message, details

    def status(self) -> Obj:
        body = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": _REASONS.get(self.code, "InternalError"),
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


@dataclass(frozen=True)
class DeleteCall:
    """One DELETE request as the client sent it (recorded even when it 404s)."""

    kind: str  # "jobs", "pods" or "secrets"
    namespace: str
    name: str
    propagation_policy: str | None


@dataclass
class _Event:
    rv: int
    res: str
    namespace: str
    labels: dict[str, str]
    line: bytes  # serialised at emit time so later mutations can't leak into history


@dataclass
class _Watcher:
    res: str
    namespace: str
    selector: list[tuple[str, str, str | None]]
    bookmarks: bool
    conn: socket.socket
    queue: queue.Queue[Any] = field(default_factory=queue.Queue)


def parse_label_selector(text: str) -> list[tuple[str, str, str | None]]:
    """Parse ``k=v``, ``k==v``, ``k!=v``, ``k`` and ``!k`` terms, comma-separated."""
    reqs: list[tuple[str, str, str | None]] = []
    for term in filter(None, (t.strip() for t in text.split(","))):
        if "(" in term or " " in term:
            raise KubeStatusError(400, f"unsupported (set-based) label selector term: {term!r}")
        if "!=" in term:
            key, value = term.split("!=", 1)
            reqs.append(("!=", key, value))
        elif "=" in term:
            key, value = re.split("==?", term, maxsplit=1)
            reqs.append(("=", key, value))
        elif term.startswith("!"):
            reqs.append(("!", term[1:], None))
        else:
            reqs.append(("exists", term, None))
    return reqs


def _matches(reqs: list[tuple[str, str, str | None]], labels: dict[str, str]) -> bool:
    for op, key, value in reqs:
        ok = {
            "=": labels.get(key) == value,
            "!=": labels.get(key) != value,
            "!": key not in labels,
            "exists": key in labels,
        }[op]
        if not ok:
            return False
    return True


def _labels(obj: Obj) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


class FakeKubeAPI:
    """Thread-safe in-memory API server; use as a context manager or start()/stop()."""

    def __init__(self) -> None:
        # RLock so wait_for() predicates may call the locking accessors (get_job, jobs, ...).
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._store: dict[str, dict[tuple[str, str], Obj]] = {"jobs": {}, "pods": {}, "secrets": {}}
        self._rv = 0
        self._history: list[_Event] = []
        self._history_floor = 0  # watches from an rv below this get 410 Expired
        self._watchers: list[_Watcher] = []
        self._conns: set[socket.socket] = set()
        self._deletes: list[DeleteCall] = []
        self._requests: list[tuple[str, str, bool]] = []
        self._unavailable = False
        self._failures: list[list[Any]] = []  # [method, path prefix, code, times left]
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._port = 0  # remembered so a stop()/start() "outage" keeps the same URL

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> Self:
        if self._server is None:
            self._server = _Server(("127.0.0.1", self._port), _Handler)
            self._server.api = self
            self._port = self._server.server_address[1]
            self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Make the server unreachable (refused connections); in-memory state is kept."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        self.drop_watches()
        # Keep-alive connections would otherwise still be served by their handler threads.
        with self._lock:
            conns, self._conns = list(self._conns), set()
        for conn in conns:
            _shutdown(conn)
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if not self._port:
            raise RuntimeError("FakeKubeAPI was never started")
        return f"http://127.0.0.1:{self._port}"

    def client_configuration(self) -> kubernetes.client.Configuration:
        import kubernetes.client

        cfg = kubernetes.client.Configuration(host=self.url)
        cfg.api_key = {"authorization": "fake-token"}
        cfg.api_key_prefix = {"authorization": "Bearer"}
        return cfg

    def api_client(self) -> kubernetes.client.ApiClient:
        import kubernetes.client

        return kubernetes.client.ApiClient(self.client_configuration())

    # -- fault controls ----------------------------------------------------------------------
    def drop_watches(self) -> None:
        """Abruptly close every open watch connection (no terminating chunk is sent)."""
        with self._lock:
            watchers, self._watchers = self._watchers, []
            for w in watchers:
                w.queue.put(_DROP)
            self._changed.notify_all()
        for w in watchers:  # shut down here, so the client sees EOF as soon as we return
            _shutdown(w.conn)

    def compact(self) -> None:
        """Forget event history: watches from any rv older than now get 410 Expired."""
        with self._lock:
            self._history.clear()
            self._history_floor = self._rv

    def set_unavailable(self, unavailable: bool = True) -> None:
        """Answer every request with 503 (use stop() for a refused connection)."""
        with self._lock:
            self._unavailable = unavailable

    def fail_requests(self, method: str, path_prefix: str, code: int = 500, times: int = 1) -> None:
        """Answer the next `times` matching requests with `code` (e.g. one failing create)."""
        with self._lock:
            self._failures.append([method.upper(), path_prefix, code, times])

    def request_count(self, method: str, path_prefix: str = "/", watch: bool | None = None) -> int:
        with self._lock:
            return sum(
                1
                for m, p, w in self._requests
                if m == method.upper() and p.startswith(path_prefix) and watch in (None, w)
            )

    @property
    def open_watches(self) -> int:
        with self._lock:
            return len(self._watchers)

    @property
    def resource_version(self) -> int:
        with self._lock:
            return self._rv

    # -- state helpers for tests -------------------------------------------------------------
    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Block until predicate() is true; re-checked on every change or request.

        The predicate runs under the server lock: inspect state with the helpers here,
        never make API calls from it (the handler threads would block on that lock).
        """
        with self._changed:
            return self._changed.wait_for(predicate, timeout)

    def create_job(self, namespace: str, body: Obj) -> Obj:
        return self._create("jobs", namespace, body)

    def get_job(self, namespace: str, name: str) -> Obj | None:
        with self._lock:
            return copy.deepcopy(self._store["jobs"].get((namespace, name)))

    def jobs(self, namespace: str) -> list[Obj]:
        return self._items("jobs", namespace, [])

    def pods(self, namespace: str) -> list[Obj]:
        return self._items("pods", namespace, [])

    def secrets(self, namespace: str) -> list[Obj]:
        return self._items("secrets", namespace, [])

    def get_secret(self, namespace: str, name: str) -> Obj | None:
        with self._lock:
            return copy.deepcopy(self._store["secrets"].get((namespace, name)))

    @property
    def deletes(self) -> list[DeleteCall]:
        with self._lock:
            return list(self._deletes)

    def set_job_status(self, namespace: str, name: str, status: Obj) -> Obj:
        return self._merge_status("jobs", namespace, name, status)

    def set_pod_status(self, namespace: str, pod_name: str, status: Obj) -> Obj:
        return self._merge_status("pods", namespace, pod_name, status)

    def add_pod_for_job(
        self,
        namespace: str,
        job_name: str,
        phase: str = "Running",
        container_statuses: list[Obj] | None = None,
    ) -> Obj:
        """Create a pod the way the job controller would (labels, ownerReference)."""
        with self._lock:
            job = self._get("jobs", namespace, job_name)
            template = (job.get("spec") or {}).get("template") or {}
            uid = job["metadata"]["uid"]
            labels = {
                **_labels(job),
                **_labels(template),
                "job-name": job_name,
                "controller-uid": uid,
                "batch.kubernetes.io/job-name": job_name,
                "batch.kubernetes.io/controller-uid": uid,
            }
            spec = copy.deepcopy(template.get("spec") or {})
            # V1PodSpec requires containers; give template-less fake jobs a placeholder.
            spec.setdefault("containers", [{"name": "main", "image": "fake"}])
            status: Obj = {"phase": phase}
            if container_statuses is not None:
                status["containerStatuses"] = container_statuses
            owner = {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "name": job_name,
                "uid": uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
            name = f"{job_name}-{uuid.uuid4().hex[:5]}"  # controller-style random suffix
            meta = {"name": name, "labels": labels, "ownerReferences": [owner]}
            return self._create("pods", namespace, {"metadata": meta, "spec": spec, "status": status})

    def delete_job_behind_our_back(self, namespace: str, name: str) -> None:
        """Delete as another actor would: emits DELETED, not recorded in deletes, pods kept."""
        self._delete("jobs", namespace, name, None)

    # -- internals (all state changes go through here, under the lock) ----------------------
    def _get(self, res: str, ns: str, name: str) -> Obj:
        obj = self._store[res].get((ns, name))
        if obj is None:
            raise KubeStatusError(
                404,
                f'{_KINDS[res][2]} "{name}" not found',
                {"name": name, "group": _KINDS[res][3], "kind": res},
            )
        return obj

    def _items(self, res: str, ns: str, selector: list[tuple[str, str, str | None]]) -> list[Obj]:
        with self._lock:
            return copy.deepcopy(
                [
                    o
                    for (n, _), o in sorted(self._store[res].items())
                    if n == ns and _matches(selector, _labels(o))
                ]
            )

    def _emit(self, res: str, type_: str, obj: Obj) -> None:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        event = _Event(
            self._rv,
            res,
            obj["metadata"]["namespace"],
            dict(_labels(obj)),
            json.dumps({"type": type_, "object": obj}).encode() + b"\n",
        )
        self._history.append(event)
        for w in self._watchers:
            if w.res == res and w.namespace == event.namespace and _matches(w.selector, event.labels):
                w.queue.put(event.line)
        self._changed.notify_all()

    def _create(self, res: str, ns: str, body: Obj) -> Obj:
        obj = copy.deepcopy(body)
        meta = obj.get("metadata") or {}
        name = meta.get("name")
        if not name:
            kind = _KINDS[res][1] + (f".{_KINDS[res][3]}" if _KINDS[res][3] else "")
            raise KubeStatusError(422, f'{kind} "" is invalid: metadata.name: Required value')
        with self._lock:
            if (ns, name) in self._store[res]:
                raise KubeStatusError(
                    409,
                    f'{_KINDS[res][2]} "{name}" already exists',
                    {"name": name, "group": _KINDS[res][3], "kind": res},
                )
            obj["apiVersion"], obj["kind"] = _KINDS[res][:2]
            meta.update(
                namespace=ns,
                uid=str(uuid.uuid4()),
                creationTimestamp=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            )
            obj["metadata"] = meta
            obj.setdefault("status", {})
            self._store[res][(ns, name)] = obj
            self._emit(res, "ADDED", obj)
            return copy.deepcopy(obj)

    def _merge_status(self, res: str, ns: str, name: str, status: Obj) -> Obj:
        with self._lock:
            obj = self._get(res, ns, name)
            obj["status"] = {**(obj.get("status") or {}), **copy.deepcopy(status)}
            self._emit(res, "MODIFIED", obj)
            return copy.deepcopy(obj)

    def _delete(self, res: str, ns: str, name: str, policy: str | None) -> Obj:
        with self._lock:
            uid = self._get(res, ns, name)["metadata"]["uid"]
            dependents = [
                (dep_res, dep["metadata"]["name"])
                for dep_res in ("pods", "secrets")
                for dep in self._store[dep_res].values()
                if res == "jobs"
                and policy in ("Background", "Foreground")
                and dep["metadata"]["namespace"] == ns
                and (
                    (dep_res == "pods" and _labels(dep).get("job-name") == name)
                    or any(ref.get("uid") == uid for ref in dep["metadata"].get("ownerReferences") or [])
                )
            ]
            # Foreground removes dependents before the owner; Background after (as the GC does).
            for dep_res, dep_name in dependents if policy == "Foreground" else []:
                self._delete(dep_res, ns, dep_name, None)
            obj = self._store[res].pop((ns, name))
            self._emit(res, "DELETED", obj)
            for dep_res, dep_name in dependents if policy == "Background" else []:
                self._delete(dep_res, ns, dep_name, None)
            return copy.deepcopy(obj)

    def _list(self, res: str, ns: str, selector: list[tuple[str, str, str | None]]) -> Obj:
        with self._lock:
            # Real list responses omit kind/apiVersion on items; the list carries them.
            items = [
                {k: v for k, v in o.items() if k not in ("kind", "apiVersion")}
                for o in self._items(res, ns, selector)
            ]
            return {
                "kind": _KINDS[res][1] + "List",
                "apiVersion": _KINDS[res][0],
                "metadata": {"resourceVersion": str(self._rv)},
                "items": items,
            }

    def _open_watch(
        self,
        res: str,
        ns: str,
        selector: list[tuple[str, str, str | None]],
        rv: int,
        bookmarks: bool,
        conn: socket.socket,
    ) -> _Watcher:
        w = _Watcher(res, ns, selector, bookmarks, conn)
        with self._lock:
            if rv and rv < self._history_floor:
                # What the real server does for a compacted rv: HTTP 200, one ERROR event, end.
                err = KubeStatusError(410, f"too old resource version: {rv} ({self._history_floor})")
                w.queue.put(json.dumps({"type": "ERROR", "object": err.status()}).encode() + b"\n")
                w.queue.put(_END)
                return w
            if rv:  # resume: replay history newer than rv, then live events
                for ev in self._history:
                    if ev.rv > rv and (ev.res, ev.namespace) == (res, ns) and _matches(w.selector, ev.labels):
                        w.queue.put(ev.line)
            else:  # no rv / "0": synthetic ADDED for the current state, then live events
                for obj in self._items(res, ns, w.selector):
                    w.queue.put(json.dumps({"type": "ADDED", "object": obj}).encode() + b"\n")
            self._watchers.append(w)  # same lock as _emit, so no event falls between replay and live
            self._changed.notify_all()
            return w

    def _close_watch(self, w: _Watcher) -> None:
        with self._lock:
            if w in self._watchers:
                self._watchers.remove(w)
            self._changed.notify_all()

    def _bookmark(self, res: str) -> bytes:
        with self._lock:
            obj = {
                "kind": _KINDS[res][1],
                "apiVersion": _KINDS[res][0],
                "metadata": {"resourceVersion": str(self._rv)},
            }
        return json.dumps({"type": "BOOKMARK", "object": obj}).encode() + b"\n"


def _shutdown(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed by the peer or by the handler


def _client_gone(conn: socket.socket) -> bool:
    # A watching client never sends anything, so "readable" means EOF (it hung up).
    try:
        readable, _, _ = select.select([conn], [], [], 0)
        return bool(readable) and conn.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # stop() must not wait for handler threads parked on keep-alive reads
    api: FakeKubeAPI

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # dropped/stopped connections raise in handler threads by design; keep test output clean


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked watch streams, as the real server
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle's
        # algorithm and the client's delayed ACK add ~40 ms to every response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.api._lock:
            self.server.api._conns.add(self.connection)

    def finish(self) -> None:
        with self.server.api._lock:
            self.server.api._conns.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_DELETE = do_PUT = do_PATCH = do_GET

    def _send_json(self, code: int, body: Obj) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _dispatch(self) -> None:
        api = self.server.api
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        is_watch = query.get("watch") in ("true", "1")
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        with api._lock:
            api._requests.append((self.command, url.path, is_watch))
            api._changed.notify_all()
            unavailable = api._unavailable
            injected = None
            for failure in api._failures:
                if failure[0] == self.command and url.path.startswith(failure[1]) and failure[3] > 0:
                    failure[3] -= 1
                    injected = failure[2]
                    break
        try:
            if unavailable:
                raise KubeStatusError(503, "the server is currently unable to handle the request")
            if injected is not None:
                raise KubeStatusError(injected, f"injected failure {injected}")
            body = json.loads(raw) if raw else {}
            code, result = self._route(api, url.path, query, body, is_watch)
            if result is not None:
                self._send_json(code, result)
        except KubeStatusError as e:
            self._send_json(e.code, e.status())
        except json.JSONDecodeError as e:
            self._send_json(400, KubeStatusError(400, f"invalid JSON body: {e}").status())

    def _route(
        self, api: FakeKubeAPI, path: str, query: dict[str, str], body: Obj, is_watch: bool
    ) -> tuple[int, Obj | None]:
        if self.command == "GET" and path.rstrip("/") == "/version":
            return 200, {
                "major": "1",
                "minor": "30",
                "gitVersion": "v1.30.0-fake",
                "gitCommit": "fake",
                "gitTreeState": "clean",
                "buildDate": "2024-01-01T00:00:00Z",
                "goVersion": "go1.22",
                "compiler": "gc",
                "platform": "linux/amd64",
            }
        if self.command == "GET" and path.rstrip("/") == "/apis/batch/v1":
            jobs = {
                "name": "jobs",
                "singularName": "job",
                "namespaced": True,
                "kind": "Job",
                "verbs": ["create", "delete", "get", "list", "watch"],
            }
            return 200, {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": "batch/v1",
                "resources": [jobs],
            }
        m = _PATH.match(path)
        if not m or _KINDS[m["res"]][4] != m["prefix"]:
            raise KubeStatusError(404, "the server could not find the requested resource")
        res, ns, name = m["res"], m["ns"], m["name"]
        if name is None and self.command == "GET":
            if is_watch:
                self._watch(api, res, ns, query)
                return 200, None
            return 200, api._list(res, ns, parse_label_selector(query.get("labelSelector", "")))
        if name is None and self.command == "POST":
            return 201, api._create(res, ns, body)
        if name is not None and self.command == "GET":
            with api._lock:
                return 200, copy.deepcopy(api._get(res, ns, name))
        if name is not None and self.command == "DELETE":
            policy = body.get("propagationPolicy") or query.get("propagationPolicy")
            with api._lock:
                api._deletes.append(DeleteCall(res, ns, name, policy))
            obj = api._delete(res, ns, name, policy)
            if res != "jobs":
                return 200, obj  # pod/secret deletion answers with the (deleted) object
            details = {"name": name, "group": "batch", "kind": "jobs", "uid": obj["metadata"]["uid"]}
            return 200, {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": details,
            }
        raise KubeStatusError(405, f"{self.command} is not supported by the fake API server")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _watch(self, api: FakeKubeAPI, res: str, ns: str, query: dict[str, str]) -> None:
        # Validate before the 200 goes out, so bad requests still get a proper error status.
        selector = parse_label_selector(query.get("labelSelector", ""))
        rv_text, timeout = query.get("resourceVersion", ""), query.get("timeoutSeconds", "")
        if rv_text and not rv_text.isdigit():
            raise KubeStatusError(400, f"invalid resource version: {rv_text!r}")
        deadline = time.monotonic() + int(timeout) if timeout.isdigit() and int(timeout) > 0 else None
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        # Registered only once the headers are out: a drop_watches() racing with this request
        # then breaks the response body (as a real drop would), never the request itself,
        # which urllib3 would silently retry.
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
        w = api._open_watch(res, ns, selector, int(rv_text or 0), bookmarks, self.connection)
        try:
            while True:
                # Short waits only so a client that hung up is noticed; events wake us at once.
                wait = 0.25 if deadline is None else min(0.25, deadline - time.monotonic())
                if wait <= 0:  # timeoutSeconds elapsed: end the stream cleanly like the real server
                    if w.bookmarks:
                        self._chunk(api._bookmark(res))
                    break
                try:
                    item = w.queue.get(timeout=wait)
                except queue.Empty:
                    if _client_gone(self.connection):
                        self.close_connection = True
                        return
                    continue
                if item is _DROP:
                    self.close_connection = True
                    return
                if item is _END:
                    break
                self._chunk(item)
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True
        finally:
            api._close_watch(w)
