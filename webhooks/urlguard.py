"""Server-side request forgery guard: where a webhook may point.

Only http(s) URLs with a host and no credentials. Unless
WEBHOOK_ALLOW_PRIVATE_NETWORKS is true, every address the host resolves to
must be globally routable: loopback, private, link-local, multicast,
reserved, shared and unspecified addresses are refused. The check runs when
a webhook is created or changed (a 422) and again at every delivery, where
the deliverer connects to exactly the address that passed it
(`webhooks.transport`), so a DNS answer that changes in between cannot send
it anywhere else.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

SCHEMES = ("http", "https")
MAX_URL_LENGTH = 2048
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeDestination(Exception):
    """The URL or the address it leads to is not one webhooks may reach."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int


def parse(url: str) -> Target:
    """The URL's scheme, host and port; UnsafeDestination for anything but a plain http(s) URL."""
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeDestination(f"at most {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise UnsafeDestination("must not contain whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeDestination("not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise UnsafeDestination("only http and https URLs")
    if parts.username is not None or parts.password is not None:
        raise UnsafeDestination("credentials do not belong in a URL; check the signature instead")
    host = parts.hostname
    if not host:
        raise UnsafeDestination("the URL has no host")
    return Target(scheme=scheme, host=host, port=port or (443 if scheme == "https" else 80))


def refusal(address: IPAddress) -> str | None:
    """Why this address may not be reached, or None when it may."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for reason, flag in (
        # Most specific first: Python counts loopback and link-local as private too.
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("unspecified", address.is_unspecified),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
    ):
        if flag:
            return reason
    if not address.is_global:
        return "not globally routable"
    return None


def private_networks_allowed() -> bool:
    return bool(settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS)


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to, each checked; UnsafeDestination when
    it does not resolve or when any address is refused (a name that mixes
    public and private answers is refused whole)."""
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            raise UnsafeDestination(f"the host {host} does not resolve") from None
        addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
    if not private_networks_allowed():
        for address in addresses:
            reason = refusal(address)
            if reason is not None:
                raise UnsafeDestination(f"the host {host} resolves to a {reason} address")
    return [str(address) for address in addresses]


def check(url: str) -> Target:
    """What a new or changed webhook URL must pass: the form, and (unless
    private networks are allowed) where its host resolves to now."""
    target = parse(url)
    if not private_networks_allowed():
        resolve(target.host, target.port)
    return target
