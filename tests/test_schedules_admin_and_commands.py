"""Schedules in the admin and from the terminal, through the service layer."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from runs.models import Run
from schedules import services
from schedules.models import Schedule, ScheduleTick

pytestmark = pytest.mark.django_db

SPEC = {"task": "sleep", "input": {"seconds": 1}}


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def hourly(**fields):
    return services.create_schedule(name="hourly", cron="0 * * * *", mode="redis", spec=SPEC, **fields)


def run_command(name: str, *args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(name, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_the_list_shows_next_fire_time_and_last_run(admin_client):
    schedule = hourly()
    run = services.trigger_schedule(schedule.id)

    page = admin_client.get(reverse("admin:schedules_schedule_changelist")).content.decode()

    assert "hourly" in page and "0 * * * * (UTC)" in page
    assert schedule.next_fire_at.strftime("%Y-%m-%dT%H:00:00") in page
    assert str(run.id) in page


def test_creating_a_schedule_in_the_admin_goes_through_the_service_layer(admin_client):
    response = admin_client.post(
        reverse("admin:schedules_schedule_add"),
        {
            "name": "from the admin",
            "owner": "ops",
            "cron": "*/5 * * * *",
            "timezone": "Europe/Berlin",
            "mode": "redis",
            "spec": json.dumps(SPEC),
            "metadata": "{}",
            "overlap": "skip",
            "catchup": "latest",
        },
    )

    assert response.status_code == 302, response.content.decode()[:3000]
    schedule = Schedule.objects.get(name="from the admin")
    assert (
        schedule.owner == "ops"
        and schedule.next_fire_at is not None
        and schedule.next_fire_at > timezone.now()
    )


def test_a_bad_cron_in_the_admin_is_shown_on_the_field(admin_client):
    response = admin_client.post(
        reverse("admin:schedules_schedule_add"),
        {
            "name": "bad",
            "cron": "99 * * * *",
            "timezone": "UTC",
            "mode": "redis",
            "spec": json.dumps(SPEC),
            "metadata": "{}",
            "overlap": "skip",
            "catchup": "latest",
        },
    )

    assert response.status_code == 200
    assert "not a valid cron expression" in response.context["adminform"].form.errors["cron"][0]
    assert not Schedule.objects.exists()


def test_pause_resume_and_trigger_actions(admin_client):
    schedule = hourly()
    url = reverse("admin:schedules_schedule_changelist")

    admin_client.post(url, {"action": "pause_selected", "_selected_action": [str(schedule.id)]})
    assert Schedule.objects.get(pk=schedule.pk).paused is True
    admin_client.post(url, {"action": "resume_selected", "_selected_action": [str(schedule.id)]})
    assert Schedule.objects.get(pk=schedule.pk).paused is False
    admin_client.post(url, {"action": "trigger_selected", "_selected_action": [str(schedule.id)]})
    assert Run.objects.filter(schedule_id=schedule.id).count() == 1


def test_a_schedules_page_lists_its_recent_runs_and_skips(admin_client):
    start = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=5)
    schedule = services.create_schedule(
        name="hourly", cron="0 * * * *", mode="redis", spec=SPEC, catchup="none", now=start
    )
    services.fire_due(start + timedelta(hours=3, seconds=5))  # two missed, one on time

    page = admin_client.get(reverse("admin:schedules_schedule_change", args=[schedule.id])).content.decode()

    [run] = Run.objects.filter(schedule_id=schedule.id)
    assert str(run.id) in page
    assert "missed" in page
    assert ScheduleTick.objects.filter(schedule=schedule, outcome="skipped").count() == 1


def test_schedules_list_prints_rows_or_json():
    schedule = hourly(owner="alice")
    hourly(owner="bob", paused=True)

    out, _ = run_command("schedules_list", "--owner", "alice")
    assert out.splitlines()[0].startswith("id") and str(schedule.id) in out and "bob" not in out
    out, _ = run_command("schedules_list", "--json", "--paused", "false")
    assert [json.loads(line)["id"] for line in out.splitlines()] == [str(schedule.id)]


def test_schedules_trigger_pause_and_resume():
    schedule = hourly()

    out, _ = run_command("schedules_trigger", str(schedule.id))
    assert Run.objects.get(pk=out.strip()).schedule_id == schedule.id
    out, _ = run_command("schedules_pause", str(schedule.id))
    assert out.strip() == f"{schedule.id}: paused" and Schedule.objects.get(pk=schedule.pk).paused
    out, _ = run_command("schedules_resume", str(schedule.id))
    assert (
        out.startswith(f"{schedule.id}: resumed; next fire")
        and not Schedule.objects.get(pk=schedule.pk).paused
    )


@pytest.mark.parametrize("name", ["schedules_trigger", "schedules_pause", "schedules_resume"])
def test_an_unknown_schedule_is_a_clear_command_error(name):
    with pytest.raises(CommandError, match="no schedule 'nope'"):
        run_command(name, "nope")


@pytest.mark.parametrize(
    "name", ["schedules_list", "schedules_trigger", "schedules_pause", "schedules_resume"]
)
def test_every_command_has_help(name):
    from django.core.management import load_command_class

    assert load_command_class("schedules", name).help
