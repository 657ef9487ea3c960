"""gunicorn settings for the ASGI app: uvicorn workers, timeouts fit for long streams.

Safe by default: it serves on 127.0.0.1 unless HOST (or --bind) says
otherwise, refuses a non-loopback address without ORCHESTRATOR_API_KEY
(unless ALLOW_UNAUTHENTICATED=true), and refuses a port another server
listens on.
"""

import gc
import ipaddress
import os
import socket

worker_class = "uvicorn_worker.UvicornWorker"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '7070')}"
# Event streams stay open for hours: the worker timeout is a heartbeat check,
# not a request deadline, under uvicorn workers.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "20"))
keepalive = 75
accesslog = None
# Each worker listens on a socket of its own (SO_REUSEPORT), and the kernel
# spreads new connections over them evenly. On one shared socket the worker
# that wakes first accepts a whole burst of connections, and a keep-alive
# client stays where it landed: one core did the work of two. Left alone, a
# second server started on the same port by mistake would share it instead
# of failing to start: `on_starting` checks that no one listens there first.
reuse_port = os.environ.get("GUNICORN_REUSE_PORT", "true").lower() in ("1", "true", "yes", "on")
# gunicornc's control socket defaults to one path per user ($HOME/.gunicorn),
# which a second, unrelated server would take over: off unless a path is given.
control_socket = os.environ.get("GUNICORN_CONTROL_SOCKET", "gunicorn.ctl")
control_socket_disable = not os.environ.get("GUNICORN_CONTROL_SOCKET")

# Metrics from every worker, summed at scrape time: prometheus_client's
# multiprocess mode. The directory must be known before any worker imports
# prometheus_client, hence here, in the master.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    import tempfile

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="orchestrator-metrics-")


# Garbage collection in the workers. A worker holding thousands of open
# streams has millions of long-lived objects, and each full (third
# generation) collection walks them all: 0.3-0.7 s with the event loop
# stopped, which was the stream fan-out's latency tail. Python's default
# starts a full collection after 10 second-generation ones; 1000 makes them
# rare without letting garbage grow unbounded (cycles are still found by
# the younger generations, and a full one still runs, only later). And
# gc.freeze(), once the app is loaded, moves every start-up object (modules,
# classes, Django's settings and registries) out of the collector's sight
# for good. GC_THRESHOLDS (three integers, e.g. "700,10,10" for Python's
# default) sets other values.
def _gc_thresholds() -> tuple[int, int, int]:
    raw = os.environ.get("GC_THRESHOLDS", "700,10,1000")
    try:
        first, second, third = (int(part) for part in raw.split(","))
    except ValueError:
        raise RuntimeError(f"GC_THRESHOLDS must be three integers, e.g. 700,10,1000 (got {raw!r})") from None
    return first, second, third


GC_THRESHOLDS = _gc_thresholds()


def post_fork(server, worker):
    gc.set_threshold(*GC_THRESHOLDS)


def post_worker_init(worker):
    # The app is imported now: what exists stays for the process's life.
    gc.collect()
    gc.freeze()


def _is_loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name that may resolve anywhere


def _tcp_addresses(server):
    return [address for address in server.cfg.address if isinstance(address, tuple)]


def _refuse_unauthenticated(server):
    exposed = [host for host, _port in _tcp_addresses(server) if not _is_loopback(host)]
    if not exposed or os.environ.get("ORCHESTRATOR_API_KEY", "").strip():
        return
    if os.environ.get("ALLOW_UNAUTHENTICATED", "").strip().lower() in ("1", "true", "yes", "on"):
        server.log.warning("serving %s without an API key (ALLOW_UNAUTHENTICATED=true)", ", ".join(exposed))
        return
    raise RuntimeError(
        f"refusing to serve {', '.join(exposed)} without ORCHESTRATOR_API_KEY: anyone who reaches "
        "the port could create runs. Set ORCHESTRATOR_API_KEY, serve on 127.0.0.1 (HOST=127.0.0.1), "
        "or set ALLOW_UNAUTHENTICATED=true."
    )


def _refuse_port_in_use(server):
    # With reuse_port the workers' sockets would join another server's
    # SO_REUSEPORT group instead of failing; a probe without it fails on any
    # listener (SO_REUSEADDR lets it past connections still in TIME_WAIT).
    for host, port in _tcp_addresses(server):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host.strip("[]"), port))
            except OSError as exc:
                raise RuntimeError(
                    f"cannot listen on {host}:{port}: port {port} is in use ({exc.strerror})"
                ) from None


def on_starting(server):
    _refuse_unauthenticated(server)
    _refuse_port_in_use(server)
    # Samples of an earlier server run would be summed in; Django is not
    # loaded in the master, so this stays free of project imports.
    from pathlib import Path

    directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink(missing_ok=True)


def child_exit(server, worker):
    # Live gauges of a dead worker (open streams) must stop counting.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
