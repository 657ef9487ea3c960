"""Tests of the fake API server, through the real ``kubernetes`` client over HTTP."""

from __future__ import annotations

import json
import threading
from collections.abc import Generator, Iterator
from typing import Any

import pytest
import urllib3
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from .fake_apiserver import DeleteCall, FakeKubeAPI

pytestmark: list[pytest.MarkDecorator] = []  # plain pytest: no Django, no db fixture

NS = "jobs-ns"
JOBS_PATH = f"/apis/batch/v1/namespaces/{NS}/jobs"


@pytest.fixture
def kube() -> Iterator[FakeKubeAPI]:
    with FakeKubeAPI() as api:
        yield api


@pytest.fixture
def batch(kube: FakeKubeAPI) -> client.BatchV1Api:
    return client.BatchV1Api(kube.api_client())


@pytest.fixture
def core(kube: FakeKubeAPI) -> client.CoreV1Api:
    return client.CoreV1Api(kube.api_client())


def job_body(name: str, labels: dict[str, str] | None = None) -> client.V1Job:
    container = client.V1Container(name="main", image="busybox")
    pod_spec = client.V1PodSpec(containers=[container], restart_policy="Never")
    return client.V1Job(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1JobSpec(template=client.V1PodTemplateSpec(spec=pod_spec)),
    )


def take(stream: Generator[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """First n events; closing the generator closes the HTTP response."""
    events = [next(stream) for _ in range(n)]
    stream.close()
    return events


def test_create_get_list_delete_job(kube: FakeKubeAPI, batch: client.BatchV1Api) -> None:
    created = batch.create_namespaced_job(NS, job_body("a", {"app": "x", "tier": "t"}))
    batch.create_namespaced_job(NS, job_body("b", {"app": "y"}))
    assert created.metadata.uid and created.metadata.namespace == NS
    assert created.metadata.resource_version == "1" and created.metadata.creation_timestamp is not None

    assert batch.read_namespaced_job("a", NS).metadata.labels == {"app": "x", "tier": "t"}
    names = lambda sel: [j.metadata.name for j in batch.list_namespaced_job(NS, label_selector=sel).items]  # noqa: E731
    assert names("app=x") == ["a"]
    assert names("app,tier") == ["a"]
    assert names("app") == ["a", "b"]
    assert names("app!=x") == ["b"]
    listed = batch.list_namespaced_job(NS)
    assert listed.metadata.resource_version == str(kube.resource_version) == "2"
    assert batch.list_namespaced_job("other").items == []

    background = client.V1DeleteOptions(propagation_policy="Background")
    status = batch.delete_namespaced_job("a", NS, body=background)
    assert status["status"] == "Success"  # v37 types this response as a plain object (dict)
    assert kube.get_job(NS, "a") is None
    assert [j["metadata"]["name"] for j in kube.jobs(NS)] == ["b"]
    assert kube.deletes == [DeleteCall("jobs", NS, "a", "Background")]


def test_conflict_and_not_found_are_status_errors(batch: client.BatchV1Api) -> None:
    batch.create_namespaced_job(NS, job_body("a"))
    with pytest.raises(ApiException) as exc:
        batch.create_namespaced_job(NS, job_body("a"))
    assert exc.value.status == 409
    assert json.loads(exc.value.body)["reason"] == "AlreadyExists"

    with pytest.raises(ApiException) as exc:
        batch.read_namespaced_job("missing", NS)
    assert exc.value.status == 404
    body = json.loads(exc.value.body)
    assert (body["kind"], body["reason"], body["code"]) == ("Status", "NotFound", 404)
    assert body["message"] == 'jobs.batch "missing" not found'
    with pytest.raises(ApiException) as exc:
        batch.delete_namespaced_job("missing", NS)
    assert exc.value.status == 404


def test_watch_sees_added_then_modified(kube: FakeKubeAPI, batch: client.BatchV1Api) -> None:
    batch.create_namespaced_job(NS, job_body("a"))
    stream = watch.Watch().stream(batch.list_namespaced_job, NS, timeout_seconds=5)
    first = next(stream)
    assert (first["type"], first["object"].metadata.name) == ("ADDED", "a")
    kube.set_job_status(NS, "a", {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]})
    (second,) = take(stream, 1)
    assert second["type"] == "MODIFIED"
    assert second["object"].status.succeeded == 1
    assert second["object"].status.conditions[0].type == "Complete"
    assert kube.wait_for(lambda: kube.open_watches == 0)  # the server notices the client hung up


def test_pod_watch_filters_by_label_and_ends_with_bookmark(
    kube: FakeKubeAPI, batch: client.BatchV1Api, core: client.CoreV1Api
) -> None:
    batch.create_namespaced_job(NS, job_body("a"))
    batch.create_namespaced_job(NS, job_body("b"))
    kube.add_pod_for_job(NS, "b", "Running")
    pod = kube.add_pod_for_job(NS, "a", "Pending")
    kube.set_pod_status(NS, pod["metadata"]["name"], {"phase": "Running"})
    w = watch.Watch()
    events = list(
        w.stream(
            core.list_namespaced_pod,
            NS,
            label_selector="job-name=a",
            allow_watch_bookmarks=True,
            timeout_seconds=1,
        )
    )
    assert [e["type"] for e in events] == ["ADDED", "BOOKMARK"]
    assert events[0]["object"].status.phase == "Running"
    assert w.resource_version == str(kube.resource_version)


def test_watch_resumes_from_resource_version(kube: FakeKubeAPI, batch: client.BatchV1Api) -> None:
    rv = batch.create_namespaced_job(NS, job_body("a")).metadata.resource_version
    kube.set_job_status(NS, "a", {"active": 1})
    batch.create_namespaced_job(NS, job_body("b"))
    kube.delete_job_behind_our_back(NS, "a")
    stream = watch.Watch().stream(batch.list_namespaced_job, NS, resource_version=rv, timeout_seconds=5)
    events = take(stream, 3)
    assert [(e["type"], e["object"].metadata.name) for e in events] == [
        ("MODIFIED", "a"),
        ("ADDED", "b"),
        ("DELETED", "a"),
    ]
    assert [int(e["object"].metadata.resource_version) for e in events] == [2, 3, 4]
    assert kube.deletes == []  # behind-our-back deletes are not client calls


def test_watch_after_compaction_gets_410(kube: FakeKubeAPI, batch: client.BatchV1Api) -> None:
    old_rv = batch.create_namespaced_job(NS, job_body("a")).metadata.resource_version
    kube.set_job_status(NS, "a", {"active": 1})
    kube.compact()
    # With timeout_seconds, Watch.stream disables its retry and raises on the ERROR event.
    with pytest.raises(ApiException) as exc:
        list(watch.Watch().stream(batch.list_namespaced_job, NS, resource_version=old_rv, timeout_seconds=5))
    assert exc.value.status == 410 and "Expired" in exc.value.reason
    # Without it, the client retries once from the same rv, then raises.
    with pytest.raises(ApiException) as exc:
        list(watch.Watch().stream(batch.list_namespaced_job, NS, resource_version=old_rv))
    assert exc.value.status == 410
    assert kube.request_count("GET", JOBS_PATH, watch=True) == 3
    # Recovery path: relist, then watch from the list's resourceVersion.
    rv = batch.list_namespaced_job(NS).metadata.resource_version
    stream = watch.Watch().stream(batch.list_namespaced_job, NS, resource_version=rv, timeout_seconds=5)
    batch.create_namespaced_job(NS, job_body("b"))
    assert [(e["type"], e["object"].metadata.name) for e in take(stream, 1)] == [("ADDED", "b")]


def test_drop_watches_ends_open_stream(kube: FakeKubeAPI, batch: client.BatchV1Api) -> None:
    outcome: list[object] = []

    def consume() -> None:
        try:
            outcome.extend(watch.Watch().stream(batch.list_namespaced_job, NS, timeout_seconds=30))
            outcome.append("ended")
        except Exception as e:  # we assert on whatever the client raised
            outcome.append(e)

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    assert kube.wait_for(lambda: kube.open_watches == 1)
    kube.drop_watches()
    thread.join(timeout=5)
    assert not thread.is_alive()
    # No terminating chunk was sent, so urllib3 reports a broken chunked body.
    assert len(outcome) == 1 and isinstance(outcome[0], urllib3.exceptions.ProtocolError)
    assert kube.open_watches == 0


def test_delete_background_removes_job_pods(
    kube: FakeKubeAPI, batch: client.BatchV1Api, core: client.CoreV1Api
) -> None:
    batch.create_namespaced_job(NS, job_body("a", {"app": "x"}))
    batch.create_namespaced_job(NS, job_body("b"))
    pod = kube.add_pod_for_job(NS, "a", "Running")
    kube.add_pod_for_job(NS, "a", "Failed")
    kube.add_pod_for_job(NS, "b", "Succeeded")
    assert pod["metadata"]["labels"]["app"] == "x"
    listed = core.list_namespaced_pod(NS, label_selector="job-name=a")
    assert sorted(p.status.phase for p in listed.items) == ["Failed", "Running"]
    assert core.read_namespaced_pod(pod["metadata"]["name"], NS).metadata.labels["job-name"] == "a"

    batch.delete_namespaced_job("a", NS, body=client.V1DeleteOptions(propagation_policy="Background"))
    assert kube.deletes == [DeleteCall("jobs", NS, "a", "Background")]
    assert core.list_namespaced_pod(NS, label_selector="job-name=a").items == []
    # Without a policy batch/v1 orphans the pods, as the real API does.
    batch.delete_namespaced_job("b", NS)
    assert [p["metadata"]["labels"]["job-name"] for p in kube.pods(NS)] == ["b"]
    assert kube.deletes[-1] == DeleteCall("jobs", NS, "b", None)


def test_unavailable_and_stopped(kube: FakeKubeAPI, batch: client.BatchV1Api) -> None:
    batch.create_namespaced_job(NS, job_body("a"))
    kube.set_unavailable(True)
    with pytest.raises(ApiException) as exc:
        batch.read_namespaced_job("a", NS)
    assert exc.value.status == 503
    kube.set_unavailable(False)
    url = kube.url
    kube.stop()
    with pytest.raises(urllib3.exceptions.MaxRetryError):
        batch.read_namespaced_job("a", NS)
    kube.start()  # same URL, same state: an outage, not a new cluster
    assert kube.url == url
    assert batch.read_namespaced_job("a", NS).metadata.name == "a"


def test_secrets_owned_by_a_job_go_with_it_on_a_background_delete(
    kube: FakeKubeAPI, batch: client.BatchV1Api, core: client.CoreV1Api
) -> None:
    job = batch.create_namespaced_job(NS, job_body("owner"))
    owner = client.V1OwnerReference(api_version="batch/v1", kind="Job", name="owner", uid=job.metadata.uid)
    secret = client.V1Secret(
        metadata=client.V1ObjectMeta(name="owned", owner_references=[owner]), string_data={"k": "v"}
    )
    core.create_namespaced_secret(NS, secret)
    core.create_namespaced_secret(NS, client.V1Secret(metadata=client.V1ObjectMeta(name="loose")))
    with pytest.raises(ApiException) as conflict:
        core.create_namespaced_secret(NS, client.V1Secret(metadata=client.V1ObjectMeta(name="loose")))
    assert conflict.value.status == 409

    assert core.read_namespaced_secret("owned", NS).metadata.owner_references[0].uid == job.metadata.uid
    batch.delete_namespaced_job("owner", NS, propagation_policy="Background")

    assert [s["metadata"]["name"] for s in kube.secrets(NS)] == ["loose"]
    with pytest.raises(ApiException) as gone:
        core.delete_namespaced_secret("owned", NS)
    assert gone.value.status == 404
    assert DeleteCall("secrets", NS, "owned", None) in kube.deletes


def test_fail_requests_answers_the_next_matching_calls_with_an_error(
    kube: FakeKubeAPI, batch: client.BatchV1Api
) -> None:
    kube.fail_requests("POST", JOBS_PATH, code=500, times=2)

    for _ in range(2):
        with pytest.raises(ApiException) as failed:
            batch.create_namespaced_job(NS, job_body("x"))
        assert failed.value.status == 500
    batch.list_namespaced_job(NS)  # other calls are untouched
    assert batch.create_namespaced_job(NS, job_body("x")).metadata.name == "x"
