"""Server-side request forgery: what webhooks may reach, at creation and at delivery."""

from __future__ import annotations

import ipaddress

import httpcore
import pytest

from webhooks import transport, urlguard


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.8", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.251", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 (an address refused, not bound)
        ("100.64.0.1", "not globally routable"),
        ("::ffff:10.0.0.1", "private"),
    ],
)
def test_non_public_addresses_are_refused(address, reason):
    assert urlguard.refusal(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize("address", ["93.184.215.14", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_pass(address):
    assert urlguard.refusal(ipaddress.ip_address(address)) is None


def test_a_name_that_resolves_to_loopback_is_refused(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = False

    with pytest.raises(urlguard.UnsafeDestination, match="localhost resolves to a loopback address"):
        urlguard.check("http://localhost:9/hook")


def test_the_deliverer_refuses_it_at_connect_time(receiver, settings):
    """Allowed when the webhook was made, refused when it is sent: the check
    runs again where the connection is made, and nothing reaches the receiver."""
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    url = receiver.url.replace("127.0.0.1", "localhost") + "/hook"
    pool = transport.new_pool(1)

    outcome = transport.post(pool, url, {"content-type": "application/json"}, b"{}", timeout=2)

    assert (outcome.kind, outcome.status) == ("refused", None)
    assert "loopback" in outcome.error
    assert receiver.requests == []


def test_when_private_networks_are_allowed_it_connects(receiver, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    url = receiver.url.replace("127.0.0.1", "localhost") + "/hook"

    outcome = transport.post(
        transport.new_pool(1), url, {"content-type": "application/json"}, b"{}", timeout=2
    )

    assert (outcome.kind, outcome.status) == ("succeeded", 204)
    assert [r.path for r in receiver.requests] == ["/hook"]


def test_the_backend_connects_to_the_checked_address(settings, monkeypatch):
    """The address that passed the check is the one the socket is opened to."""
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    monkeypatch.setattr(urlguard, "resolve", lambda host, port: ["93.184.215.14"])
    opened = []
    monkeypatch.setattr(
        httpcore.SyncBackend,
        "connect_tcp",
        lambda self, host, port, *args: opened.append((host, port)) or 1 / 0,
    )

    with pytest.raises(ZeroDivisionError):
        transport.CheckedNetworkBackend().connect_tcp("hooks.example.com", 443)

    assert opened == [("93.184.215.14", 443)]


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "gopher://93.184.215.14/",
        "http:///nohost",
        "http://a b/",
        "http://93.184.215.14:99999/",
    ],
)
def test_only_plain_http_urls(url):
    with pytest.raises(urlguard.UnsafeDestination):
        urlguard.parse(url)
