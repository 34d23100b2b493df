"""Which webhook URLs taskito may send to. Checked when a subscription is stored and again
before every delivery: the host's every address must be public (not loopback, link-local,
private, multicast or unspecified) and its name not a local one. ``TASKITO_WEBHOOKS_ALLOW_PRIVATE=1``
turns the guard off (for webhooks inside one's own network)."""

from __future__ import annotations

import ipaddress
import os
import socket
from urllib.parse import urlsplit

#: Host names that always stay inside the network.
BLOCKED_SUFFIXES = (".local", ".internal", ".intranet", ".lan", ".private")
BLOCKED_NAMES = ("localhost",)
ALLOW_PRIVATE_ENV = "TASKITO_WEBHOOKS_ALLOW_PRIVATE"


class UnsafeWebhookUrl(ValueError):
    """A webhook URL whose host is, or resolves to, an address inside the network."""


def private_allowed() -> bool:
    return os.environ.get(ALLOW_PRIVATE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def split_url(url: object) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of an http(s) URL; ValueError if it is not one."""
    if not isinstance(url, str):
        raise ValueError(f"webhook url must be a string starting with http:// or https://, got {url!r}")
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"webhook url must start with http:// or https:// and name a host, got {url!r}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ValueError(f"webhook url has a bad port: {url!r}") from None
    return parts.scheme, parts.hostname.lower().rstrip("."), port


def blocked_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return bool(
        ip.is_loopback
        or ip.is_link_local
        or ip.is_private
        or ip.is_multicast
        or ip.is_unspecified
        or ip.is_reserved
    )


def resolve_safe(url: str) -> tuple[str, str, int, list[str]]:
    """``(scheme, host, port, addresses)`` of a URL taskito may send to, the addresses
    being those a delivery connects to; raises ``UnsafeWebhookUrl`` for any other."""
    scheme, host, port = split_url(url)
    allow = private_allowed()
    if not allow and (host in BLOCKED_NAMES or host.endswith(BLOCKED_SUFFIXES)):
        raise UnsafeWebhookUrl(f"webhook url {url!r} names a local host ({host})")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeWebhookUrl(f"webhook url {url!r}: cannot resolve {host}: {exc}") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not allow:
        bad = [a for a in addresses if blocked_address(a)]
        if bad:
            raise UnsafeWebhookUrl(
                f"webhook url {url!r} resolves to a private or reserved address ({', '.join(bad)}); "
                f"set {ALLOW_PRIVATE_ENV}=1 to allow it"
            )
    return scheme, host, port, addresses


def check_webhook_url(url: str) -> str:
    """The URL, stripped, if taskito may send to it; raises ``ValueError`` (not http(s)) or
    ``UnsafeWebhookUrl``."""
    resolve_safe(url)
    return url.strip()
