"""The first commands a newcomer types: each works as the README writes it,
or says at once what is wrong."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from django.contrib.auth import get_user_model

from tests import servers
from tests.servers import ROOT

pytestmark = pytest.mark.django_db(transaction=True)


def manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if key != "SECRET_KEY"}
    environment.update(env)
    argv = [sys.executable, "manage.py", *args]
    return subprocess.run(argv, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60)


def test_a_wrong_database_url_names_the_real_cause_in_the_first_line_within_seconds():
    wrong = servers.test_database_url().rsplit("/", 1)[0] + "/no_such_database_here"

    started = time.monotonic()
    result = manage("migrate", "--noinput", DATABASE_URL=wrong, SECRET_KEY="x")
    elapsed = time.monotonic() - started

    assert result.returncode != 0
    first_line = result.stderr.strip().splitlines()[0]
    assert 'database "no_such_database_here" does not exist' in first_line
    assert first_line.startswith("cannot connect to the database of DATABASE_URL")
    assert elapsed < 5


def test_createsuperuser_finds_the_key_make_run_wrote(tmp_path):
    key_file = tmp_path / ".secret_key"
    key_file.write_text("a-development-key-written-by-make-run\n")

    result = manage(
        "createsuperuser", "--noinput", "--username", "admin", "--email", "admin@example.com",
        DATABASE_URL=servers.test_database_url(), SECRET_KEY_FILE=str(key_file),
        DJANGO_SUPERUSER_PASSWORD="a-long-enough-password",
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert get_user_model().objects.filter(username="admin", is_superuser=True).exists()


def test_the_readme_gives_the_createsuperuser_command_of_the_checkout_environment():
    readme = (ROOT / "README.md").read_text()

    assert ".venv/bin/python manage.py createsuperuser" in readme
    assert "`python manage.py createsuperuser`" not in readme
