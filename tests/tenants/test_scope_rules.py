"""Every endpoint has a scope rule, and a key without that scope gets a 403 naming it.

The rules' coverage is taken from the URL map itself: an endpoint added
without a rule (or a view method added without one) fails here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from tenants import rules, scopes
from tests.conftest import assert_wire

pytestmark = pytest.mark.django_db

VIEW_METHODS = ("get", "post", "put", "patch", "delete")


def endpoints() -> Iterator[tuple[str, str, Any]]:
    """(route, url name, view callback) of every URL the service answers, outside the admin."""

    def walk(patterns: list[Any], prefix: str, namespace: str | None) -> Iterator[tuple[str, str, Any]]:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                if pattern.namespace in rules.UNGUARDED_NAMESPACES:
                    continue
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern), pattern.namespace)
            elif isinstance(pattern, URLPattern):
                yield prefix + str(pattern.pattern), pattern.name or "", pattern.callback

    yield from walk(get_resolver().url_patterns, "", None)


def methods_of(callback: Any) -> set[str] | None:
    """The methods a view serves (a DRF view's handlers); None for a plain function view."""
    view_class = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
    if view_class is None:
        return None
    return {name.upper() for name in VIEW_METHODS if hasattr(view_class, name)}


def test_every_endpoint_and_every_method_of_it_has_a_scope_rule():
    missing = []
    for route, name, callback in endpoints():
        if name in rules.UNGUARDED:
            continue
        rule = rules.RULES.get(name)
        if rule is None:
            missing.append(f"{route} ({name or 'unnamed'}): no rule")
            continue
        served = methods_of(callback)
        for method in sorted((served or set()) - set(rule)):
            missing.append(f"{method} {route} ({name}): no rule for this method")
    assert not missing, "add these to tenants/rules.py:\n" + "\n".join(missing)


def test_every_rule_names_a_known_endpoint_and_scope():
    names = {name for _, name, _ in endpoints()}
    assert set(rules.RULES) <= names
    assert {scope for rule in rules.RULES.values() for scope in rule.values()} <= {*scopes.ALL, rules.ANY_KEY}


def _path(route: str) -> str:
    # Any id: the scope is checked before the view looks anything up.
    filled = route
    for param in (
        "<str:run_id>",
        "<str:schedule_id>",
        "<str:webhook_id>",
        "<str:delivery_id>",
        "<str:key_id>",
    ):
        filled = filled.replace(param, "6f1c1f4e-8d8a-4d8c-9a53-3b1b0f7c2a11")
    assert "<" not in filled, route
    return "/" + filled


CASES = [
    (method, _path(route), scope)
    for route, name, _ in endpoints()
    for method, scope in rules.RULES.get(name, {}).items()
    if scope != rules.ANY_KEY
]


@pytest.mark.parametrize(("method", "path", "scope"), CASES, ids=[f"{m} {p}" for m, p, _ in CASES])
def test_a_key_without_the_endpoints_scope_gets_a_403_naming_it(api, tenant_key, method, path, scope):
    others = [s for s in scopes.ALL if s != scope]
    response = getattr(api.client, method.lower())(path, headers=tenant_key("acme", others))

    assert response.status_code == 403, response.content
    body = response.json()
    assert_wire("run.schema.json#/$defs/errorResponse", body)
    assert (body["error"], body["code"], body["details"]) == ("forbidden", "missing_scope", {"scope": scope})


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [case for case in CASES if not case[1].endswith("/events")],
    ids=[f"{m} {p}" for m, p, _ in CASES if not p.endswith("/events")],
)
def test_a_key_with_only_the_endpoints_scope_passes_the_check(api, tenant_key, method, path, scope):
    response = getattr(api.client, method.lower())(path, headers=tenant_key("acme", [scope]))

    assert response.status_code not in (401, 403), response.content
    assert response.status_code < 500, response.content


def test_the_master_key_and_worker_tokens_are_not_judged_by_scopes(api, master, db):
    from runs import services, tokens

    run, _ = services.create_run(mode="redis", spec={"task": "sleep"})
    assert api.get("/audit", **master).status_code == 200
    assert api.get("/api-keys", **master).status_code == 200
    token, _ = tokens.mint(tokens.WORKER, str(run.id))
    worker = {"Authorization": f"Bearer {token}"}
    assert api.patch(f"/runs/{run.id}", {"status": "running"}, **worker).status_code == 200
    assert api.get("/runs", **worker).status_code == 401


def test_any_key_may_scrape_metrics_when_they_need_a_key(api, tenant_key, settings):
    settings.METRICS_REQUIRE_AUTH = True

    assert api.get("/metrics").status_code == 401
    assert api.get("/metrics", **tenant_key("acme", [scopes.AUDIT_READ])).status_code == 200
