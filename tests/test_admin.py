"""The operators' admin: runs listed, filtered and searched; the run page with
its spec and checkpoints; cancel and retry through the service layer."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pytest
from django.urls import reverse
from django.utils import timezone

from runs import services, tokens
from runs.models import Run
from tests.factories import new_run

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/runs/run/"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """The admin fixtures create users; a slow hasher would dominate these tests."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def run_page(run: Run | str) -> str:
    return reverse("admin:runs_run_change", args=[getattr(run, "pk", run)])


def listed_ids(response) -> set[str]:
    assert response.status_code == 200, response.content[:500]
    return set(re.findall(r'href="/admin/runs/run/([0-9a-f-]{36})/change/', response.content.decode()))


def test_the_run_list_shows_status_mode_age_duration_checkpoints_and_labels(admin_client):
    run = new_run(metadata={"labels": {"team": "ml", "env": "prod"}})
    services.set_run_status(run.id, "running")
    services.append_checkpoints(run.id, [{"type": "step", "data": 1}, {"type": "step", "data": 2}])

    response = admin_client.get(CHANGELIST)

    page = response.content.decode()
    assert listed_ids(response) == {str(run.id)}
    for column in ("status", "mode", "age", "duration", "checkpoint count", "labels"):
        assert column in page.lower()
    assert "run-status-running" in page
    assert "env=prod, team=ml" in page  # PostgreSQL keeps jsonb keys sorted
    assert '<td class="field-checkpoint_count">2</td>' in page


def test_the_run_list_filters_by_status_mode_and_created_date(admin_client):
    redis_run = new_run("redis")
    canceled = new_run("redis")
    services.cancel_run(canceled.id)
    old = new_run("redis")
    Run.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=40))

    assert listed_ids(admin_client.get(CHANGELIST, {"status__exact": "canceled"})) == {str(canceled.id)}
    assert listed_ids(admin_client.get(CHANGELIST, {"mode__exact": "k8s"})) == set()
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    past_7_days = {
        "created_at__gte": str(today - timedelta(days=7)),
        "created_at__lt": str(today + timedelta(days=1)),
    }
    assert listed_ids(admin_client.get(CHANGELIST, past_7_days)) == {str(redis_run.id), str(canceled.id)}


def test_the_run_list_searches_by_id_and_by_label(admin_client):
    tagged_dict = new_run(metadata={"labels": {"team": "ml"}})
    tagged_list = new_run(metadata={"labels": ["nightly", "gpu"]})
    other = new_run(metadata={"labels": {"team": "web"}})

    assert listed_ids(admin_client.get(CHANGELIST, {"q": str(other.id)})) == {str(other.id)}
    assert listed_ids(admin_client.get(CHANGELIST, {"q": "team=ml"})) == {str(tagged_dict.id)}
    assert listed_ids(admin_client.get(CHANGELIST, {"q": "nightly"})) == {str(tagged_list.id)}
    assert listed_ids(admin_client.get(CHANGELIST, {"q": "team"})) == {str(tagged_dict.id), str(other.id)}
    assert listed_ids(admin_client.get(CHANGELIST, {"q": "nothing-like-this"})) == set()


def test_the_run_page_shows_the_spec_pretty_printed_and_nothing_editable(admin_client):
    run, _ = services.create_run(mode="redis", spec={"task": "sleep", "input": {"seconds": 3}})

    page = admin_client.get(run_page(run)).content.decode()

    assert "&quot;seconds&quot;: 3" in page  # indented JSON, escaped
    assert "<input" not in re.sub(r"<input type=\"hidden\"[^>]*>|<input[^>]*(search|csrf)[^>]*>", "", page)
    assert 'name="_save"' not in page
    assert admin_client.post(run_page(run), {"status": "completed"}).status_code == 403
    assert Run.objects.get(pk=run.pk).status == "pending"


def test_nobody_adds_or_deletes_runs_in_the_admin(admin_client):
    run = new_run()

    assert admin_client.get("/admin/runs/run/add/").status_code == 403
    assert (
        admin_client.post(reverse("admin:runs_run_delete", args=[run.pk]), {"post": "yes"}).status_code == 403
    )
    assert Run.objects.filter(pk=run.pk).exists()


def test_the_run_page_pages_checkpoints_oldest_first_showing_the_newest_page(admin_client, settings):
    settings.ADMIN_CHECKPOINTS_PER_PAGE = 5
    run = new_run()
    services.append_checkpoints(run.id, [{"type": f"step-{n}", "data": n} for n in range(1, 13)])

    last = admin_client.get(run_page(run)).content.decode()
    first = admin_client.get(run_page(run), {"cp": "1"}).content.decode()

    assert re.findall(r"<td>(step-\d+)</td>", last) == ["step-11", "step-12"]
    assert "page 3 of 3" in last
    assert re.findall(r"<td>(step-\d+)</td>", first) == [f"step-{n}" for n in range(1, 6)]
    assert 'data-append="0"' in first and 'data-append="1"' in last


def test_the_run_page_shortens_large_checkpoint_data(admin_client):
    run = new_run()
    services.append_checkpoints(run.id, [{"type": "big", "data": {"blob": "x" * 50_000}}])

    page = admin_client.get(run_page(run)).content.decode()

    assert "x" * 1900 in page and "x" * 5000 not in page
    assert "characters in all: see the API for the rest" in page


def test_the_run_page_carries_a_stream_token_for_this_run_and_the_resume_point(admin_client):
    run = new_run()
    [checkpoint] = services.append_checkpoints(run.id, [{"type": "step"}])

    page = admin_client.get(run_page(run)).content.decode()

    token = re.search(r'data-token="([^"]+)"', page).group(1)
    assert tokens.verify(token, kind=tokens.STREAM, run_id=str(run.id))
    assert f'data-events-url="/runs/{run.id}/events"' in page
    assert f'data-last-event-id="{checkpoint.ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}"' in page
    assert "runs/admin-live.js" in page


def test_the_page_script_gets_a_fresh_stream_token_by_post_only(admin_client, client):
    run = new_run()
    url = reverse("admin:runs_run_stream_token", args=[run.pk])

    fresh = admin_client.post(url)

    assert fresh.status_code == 200
    assert fresh.json()["status"] == "pending"
    assert tokens.verify(fresh.json()["token"], kind=tokens.STREAM, run_id=str(run.id))
    assert admin_client.get(url).status_code == 405
    assert client.post(url).status_code == 302  # anonymous: sent to the login page


def test_the_cancel_action_cancels_through_the_service_layer_and_skips_finished_runs(admin_client):
    running = new_run()
    services.set_run_status(running.id, "running")
    done = new_run()
    services.set_run_status(done.id, "running")
    services.set_run_status(done.id, "completed")

    response = admin_client.post(
        CHANGELIST,
        {
            "action": "cancel_selected",
            "_selected_action": [str(running.pk), str(done.pk)],
            "index": "0",
            "confirmed": "yes",
        },
        follow=True,
    )

    assert response.status_code == 200
    running.refresh_from_db()
    assert running.status == "canceled" and running.finished_at is not None
    assert Run.objects.get(pk=done.pk).status == "completed"
    page = response.content.decode()
    assert "Canceled 1 run(s)." in page and f"Not canceled (already finished): {done.pk}" in page


def test_the_retry_action_creates_a_linked_run_from_the_same_spec(admin_client):
    original, _ = services.create_run(
        mode="redis", spec={"task": "sleep", "input": {"seconds": 1}}, metadata={"labels": ["x"]}, owner="ana"
    )
    services.cancel_run(original.id)

    retry_it = {"action": "retry_selected", "_selected_action": [str(original.pk)], "index": "0"}
    admin_client.post(CHANGELIST, {**retry_it, "confirmed": "yes"})

    retry = Run.objects.get(retry_of=original)
    assert (retry.status, retry.mode, retry.spec, retry.metadata, retry.owner) == (
        "pending",
        "redis",
        original.spec,
        original.metadata,
        "ana",
    )


def test_the_run_page_buttons_cancel_and_retry(admin_client):
    run = new_run()

    asked = admin_client.get(reverse("admin:runs_run_cancel", args=[run.pk]))
    assert asked.status_code == 200 and Run.objects.get(pk=run.pk).status == "pending"
    cancel = admin_client.post(reverse("admin:runs_run_cancel", args=[run.pk]), {"confirmed": "yes"})
    retry = admin_client.post(reverse("admin:runs_run_retry", args=[run.pk]), {"confirmed": "yes"})

    assert cancel.status_code == retry.status_code == 302
    assert Run.objects.get(pk=run.pk).status == "canceled"
    assert Run.objects.filter(retry_of=run).count() == 1


def test_staff_without_the_change_permission_can_look_but_not_cancel(client, django_user_model):
    from django.contrib.auth.models import Permission

    viewer = django_user_model.objects.create_user("viewer", password="x", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_run"))
    client.force_login(viewer)
    run = new_run()

    page = client.get(run_page(run)).content.decode()
    denied = client.post(reverse("admin:runs_run_cancel", args=[run.pk]), {"confirmed": "yes"})

    assert "Cancel run" not in page
    assert denied.status_code == 403
    assert Run.objects.get(pk=run.pk).status == "pending"


def test_an_unknown_run_page_redirects_home_with_a_message(admin_client):
    response = admin_client.get(run_page("00000000-0000-0000-0000-000000000000"))

    assert response.status_code == 302


def test_the_admin_static_files_are_served_by_the_app_itself(client):
    script = client.get("/admin/static/runs/admin-live.js")
    admin_css = client.get("/admin/static/admin/css/base.css")

    assert script.status_code == 200 and b"EventSource" in b"".join(script)  # a streamed file
    assert script["Content-Type"].startswith("text/javascript")
    assert admin_css.status_code == 200
    assert not script.cookies  # no session machinery for static files
    # Anything else under the prefix is the admin's own: to the login page.
    assert client.get("/admin/static/runs/no-such-file.js").status_code == 302


@pytest.mark.django_db(transaction=True)
def test_the_admin_and_its_static_files_work_under_the_asgi_server(asgi_server):
    login = httpx.get(f"{asgi_server.url}/admin/login/")
    script = httpx.get(f"{asgi_server.url}/admin/static/runs/admin-live.js")
    revalidated = httpx.get(
        f"{asgi_server.url}/admin/static/runs/admin-live.js",
        headers={"If-None-Match": script.headers["ETag"]},
    )

    assert login.status_code == 200 and "csrftoken" in login.cookies
    assert script.status_code == 200 and "EventSource" in script.text
    assert revalidated.status_code == 304 and revalidated.content == b""
