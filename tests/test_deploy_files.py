"""Docker cannot run where the suite runs, so the image and compose stack are
checked statically: what they expose, run and configure must match the code."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from django.core.management import get_commands

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
APP_SERVICES = ("migrate", "orchestrator", "worker", "scheduler", "webhooks")
# Commands another issue delivers: until it lands, a check naming one skips
# (saying so) instead of failing; once it exists, the check applies in full.
LANDING_WITH = {
    "runworker": "the Redis worker (manage.py runworker)",
    "k8s_reconcile": "the Kubernetes reconciler",
}
_ENV_READ = re.compile(
    r"""(?:env_(?:str|bool|int|int_map|float|list|duration)|os\.environ\.get|os\.getenv)\(\s*["']([A-Z][A-Z0-9_]*)["']"""
)


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    return [
        (parts[0].upper(), parts[1] if len(parts) > 1 else "")
        for parts in (line.strip().split(None, 1) for line in joined.splitlines())
        if parts
    ]


# Read by the code but set by the platform, not by an operator.
PLATFORM_SET = {"KUBERNETES_SERVICE_HOST"}


def settings_read() -> set[str]:
    """Every environment variable the service's code reads that an operator sets."""
    names: set[str] = set()
    for app in ("orchestrator", "runs", "schedules"):
        for path in ROOT.glob(f"{app}/**/*.py"):
            names.update(_ENV_READ.findall(path.read_text()))
    return names - PLATFORM_SET


_ENV_LINE = re.compile(r"^(#?)([A-Z][A-Z0-9_]*)=(.*)$")


def env_example(*, unset_too: bool = True) -> dict[str, str]:
    """NAME=value lines, and `#NAME=` lines (listed, left unset) unless told not to."""
    pairs = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        match = _ENV_LINE.match(line)
        if match and (unset_too or not match.group(1)):
            pairs[match.group(2)] = match.group(3)
    return pairs


# --- .env.example ---


def test_env_example_lists_exactly_the_settings_the_service_reads():
    listed, read = set(env_example()), settings_read()

    assert read - listed == set(), "read by the code but missing from .env.example"
    assert listed - read == set(), "in .env.example but read by nothing"


def test_env_example_explains_every_setting():
    lines = (ROOT / ".env.example").read_text().splitlines()
    for index, line in enumerate(lines):
        if _ENV_LINE.match(line):
            above = index - 1
            while above >= 0 and _ENV_LINE.match(lines[above]):
                above -= 1  # settings grouped under one comment
            assert lines[above].startswith("# "), f"{line.split('=')[0]} has no comment above it"


def test_compose_sets_only_settings_the_service_reads():
    read = settings_read()
    for name in APP_SERVICES:
        assert set(SERVICES[name].get("environment", {})) <= read, name


# --- docker-compose.yml ---


def test_compose_runs_the_stack_the_guide_describes():
    assert set(SERVICES) == {
        "postgres", "redis", "migrate", "orchestrator", "worker", "scheduler", "webhooks"
    }
    assert SERVICES["orchestrator"]["ports"] == ["7070:7070"]
    assert SERVICES["orchestrator"]["environment"]["PORT"] == "7070"


@pytest.mark.parametrize("name", ["postgres", "redis"])
def test_stateful_services_keep_data_in_named_volumes_and_report_health(name):
    service = SERVICES[name]

    volumes = [volume.split(":")[0] for volume in service["volumes"]]
    assert volumes and all(volume in COMPOSE["volumes"] for volume in volumes)
    assert service["healthcheck"]["test"]


def test_migrations_run_once_before_the_server_and_worker_start():
    assert SERVICES["migrate"]["restart"] == "no"
    assert SERVICES["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("orchestrator", "worker", "scheduler"):
        depends = SERVICES[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["redis"]["condition"] == "service_healthy"
    assert SERVICES["webhooks"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_the_app_reaches_postgres_and_redis_by_their_service_names():
    postgres = SERVICES["postgres"]["environment"]
    for name in APP_SERVICES:
        env = SERVICES[name]["environment"]
        database = urlsplit(env["DATABASE_URL"])
        assert (database.hostname, database.username, database.password, database.path) == (
            "postgres",
            postgres["POSTGRES_USER"],
            postgres["POSTGRES_PASSWORD"],
            f"/{postgres['POSTGRES_DB']}",
        )
        assert urlsplit(env["REDIS_URL"]).hostname == "redis"
        assert env["SECRET_KEY"].startswith("${SECRET_KEY:?")  # refuse to start without one


def test_services_without_an_http_server_do_not_inherit_the_image_health_check():
    assert SERVICES["worker"]["healthcheck"] == {"disable": True}
    assert SERVICES["scheduler"]["healthcheck"] == {"disable": True}
    assert SERVICES["migrate"]["healthcheck"] == {"disable": True}
    assert SERVICES["webhooks"]["healthcheck"] == {"disable": True}


@pytest.mark.parametrize("service", ["migrate", "worker", "scheduler", "webhooks"])
def test_compose_commands_name_manage_py_commands_that_exist(service):
    command = SERVICES[service]["command"]

    assert command[:2] == ["python", "manage.py"]
    assert command[2] in get_commands()


# --- Dockerfile ---


def test_the_image_is_slim_python_311_and_runs_as_a_non_root_user():
    steps = dockerfile()

    assert steps[0] == ("FROM", "python:3.11-slim")
    users = [args for instruction, args in steps if instruction == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert [i for i, _ in steps].index("USER") < [i for i, _ in steps].index("CMD")


def test_dependencies_install_in_their_own_layer_before_the_code_is_copied():
    steps = dockerfile()
    copies = [index for index, (instruction, _) in enumerate(steps) if instruction == "COPY"]
    install = next(i for i, (ins, args) in enumerate(steps) if ins == "RUN" and "pip install" in args)

    assert steps[copies[0]][1] == "requirements.txt ./"
    assert copies[0] < install < copies[1]
    assert steps[copies[1]][1] == ". ."


def test_the_image_collects_static_files_and_serves_gunicorn_with_uvicorn_workers_on_7070():
    steps = dict(dockerfile())
    gunicorn_conf = (ROOT / "orchestrator" / "gunicorn.conf.py").read_text()

    assert "manage.py collectstatic --noinput" in steps["RUN"]
    assert steps["EXPOSE"] == "7070"
    assert json.loads(steps["CMD"]) == [
        "gunicorn",
        "orchestrator.asgi:application",
        "-c",
        "orchestrator/gunicorn.conf.py",
    ]
    assert 'worker_class = "uvicorn_worker.UvicornWorker"' in gunicorn_conf
    assert "WEB_CONCURRENCY" in gunicorn_conf and "PORT=7070" in steps["ENV"]


def test_the_collectstatic_step_finds_the_admin_files(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "--dry-run"],
        cwd=ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "SECRET_KEY": "collectstatic-only",
        },  # as in the image: nothing else set
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert re.search(r"\d+ static files? copied", result.stdout)


def test_docker_ignores_local_state_but_keeps_what_the_image_needs():
    ignored = (ROOT / ".dockerignore").read_text().splitlines()

    assert {".git", ".venv", ".env", "*.sqlite3", "staticfiles"} <= set(ignored)
    for needed in ("manage.py", "requirements.txt", "orchestrator", "runs", "schemas"):
        assert needed not in ignored


@pytest.mark.django_db(transaction=True)
def test_the_image_health_check_command_passes_against_a_live_server(asgi_server):
    [healthcheck] = [args for instruction, args in dockerfile() if instruction == "HEALTHCHECK"]
    command = json.loads(healthcheck.split("CMD", 1)[1])
    env = {"PATH": "/usr/bin:/bin", "PORT": str(asgi_server.port)}

    passing = subprocess.run([sys.executable, *command[1:]], env=env, capture_output=True, timeout=30)
    failing = subprocess.run(
        [sys.executable, *command[1:]], env={**env, "PORT": "9"}, capture_output=True, timeout=30
    )

    assert command[0] == "python"
    assert passing.returncode == 0, passing.stderr
    assert failing.returncode != 0


# --- the guides ---


def test_the_guides_name_only_manage_py_commands_that_exist():
    named = set()
    for guide in ("orchestrator-local-dev.md", "operations.md"):
        named.update(re.findall(r"manage\.py (\w+)", (ROOT / "docs" / "guides" / guide).read_text()))

    assert {"createsuperuser", "migrate", "runs_prune"} <= named
    assert {"runworker", "k8s_reconcile"} <= named
    assert {name for name in named if name not in get_commands()} - {"help"} == set()


def test_the_settings_load_from_a_copy_of_env_example(tmp_path):
    env = env_example(unset_too=False)
    env.update({"PATH": "/usr/bin:/bin", "SECRET_KEY": "example-secret-for-the-check"})

    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "check"],
        cwd=tmp_path,  # anything written to the working directory lands here, and is caught
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout
    assert list(tmp_path.iterdir()) == []


def test_optional_settings_are_left_unset_rather_than_set_empty():
    # An empty PROMETHEUS_MULTIPROC_DIR, for one, means "write metric files here".
    assert [name for name, value in env_example(unset_too=False).items() if value == ""] == ["SECRET_KEY"]


def test_compose_says_whether_its_worker_runs_commands():
    text = (ROOT / "docker-compose.yml").read_text()

    assert SERVICES["worker"]["environment"]["WORKER_ALLOW_COMMAND"] == "false"
    said_why = text.split("WORKER_ALLOW_COMMAND:")[0].rstrip().splitlines()[-1]
    assert said_why.strip().startswith("#"), "the setting comes with a comment saying why"
