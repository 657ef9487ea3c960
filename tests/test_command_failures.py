"""Every long-running command refuses a bad option, or a backend it cannot
reach, with one CommandError line and exit status 1: never a traceback."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from tests.servers import ROOT, process_env

pytestmark = pytest.mark.django_db


def manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=process_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def closed_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["runworker", "--concurrency", "-3"], {}, "--concurrency: -3 is not between 1 and 256"),
        (["runworker", "--concurrency", "0"], {}, "--concurrency: 0 is not between 1 and 256"),
        (["runworker", "--max-runs", "0"], {}, "--max-runs: 0 is not at least 1"),
        (["runworker", "--metrics-port", "99999"], {}, "--metrics-port: 99999 is not between 0 and 65535"),
        (["k8s_reconcile", "--metrics-port", "-1"], {}, "--metrics-port: -1 is not between 0 and 65535"),
        (["k8s_reconcile", "--resync-seconds", "0"], {}, "--resync-seconds: 0 is not positive"),
    ],
)
def test_a_bad_option_is_one_line_and_exit_1(args, env, message):
    result = manage(*args, **env)

    assert result.returncode == 1
    assert result.stderr.strip() == f"CommandError: {message}"


def test_sweep_with_redis_down_names_redis_without_its_password():
    port = closed_port()

    result = manage("runworker", "--sweep", REDIS_URL=f"redis://:hunter2@127.0.0.1:{port}/3")

    assert result.returncode == 1
    expected = f"CommandError: Redis at 127.0.0.1:{port}/3 is unreachable: ConnectionError"
    assert result.stderr.strip() == expected


def test_reconcile_once_without_a_cluster_configuration(tmp_path):
    result = manage(
        "k8s_reconcile",
        "--once",
        K8S_API_HOST="",
        K8S_CONFIG_MODE="kubeconfig",
        K8S_KUBECONFIG=str(tmp_path / "missing-kubeconfig"),
    )

    assert result.returncode == 1
    assert result.stderr.strip().startswith("CommandError: no Kubernetes configuration:")
    assert "Traceback" not in result.stderr


def test_reconcile_once_with_the_cluster_unreachable():
    result = manage("k8s_reconcile", "--once", K8S_API_HOST=f"http://127.0.0.1:{closed_port()}")

    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == "CommandError: Kubernetes API unreachable: MaxRetryError"
    assert "Traceback" not in result.stderr


def test_a_metrics_port_already_taken_is_one_line_and_exit_1():
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))  # noqa: S104 - where the metrics server binds too
        taken.listen()
        port = taken.getsockname()[1]

        result = manage("runworker", "--metrics-port", str(port))

    assert result.returncode == 1
    expected = f"CommandError: --metrics-port: cannot listen on port {port}: Address already in use"
    assert result.stderr.strip() == expected


@pytest.mark.parametrize(
    "args",
    [
        ["runs_list"],
        ["runs_show", "00000000-0000-0000-0000-000000000001"],
        ["runs_cancel", "00000000-0000-0000-0000-000000000001"],
        ["schedules_list"],
        ["apikeys_list"],
        ["k8s_reconcile", "--once"],
    ],
)
def test_a_database_that_cannot_be_reached_is_one_line_without_its_password(args):
    port = closed_port()

    result = manage(
        *args, DATABASE_URL=f"postgres://app:hunter2@127.0.0.1:{port}/orch", DB_POOL_TIMEOUT="0.5"
    )

    assert result.returncode == 1
    # The pool's own warnings (what refused the connection) come first; then the one line.
    assert result.stderr.strip().splitlines()[-1] == (
        f"CommandError: the database at postgresql://app@127.0.0.1:{port}/orch is unreachable: "
        "couldn't get a connection after 0.50 sec"
    )
    assert "Traceback" not in result.stderr and "hunter2" not in result.stderr
