"""Where a webhook may be sent, and sending to exactly the address that was vetted.

A callback URL is chosen by a clinic's admin, so without a check the server would POST wherever it
is told: to itself (``127.0.0.1``), to the cloud metadata service (``169.254.169.254``), to the
hospital's private network, and the recorded error would say which ports are open. So a URL's host
must resolve only to public addresses, checked at registration and again at every delivery (DNS
can change), and the delivery connects to the address it checked (not to a second lookup of the
name, which DNS rebinding could answer differently) while sending the name's Host header and
verifying TLS for the name. ``WEBHOOK_ALLOWED_NETWORKS`` names the exceptions (CIDRs).

Every refusal reads the same and every failure to talk HTTP reads the same, so neither the error
text nor the delivery's state tells an internal name from a missing one, or an open port from a
closed one."""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

REFUSED_TARGET_MESSAGE = (
    "Webhooks go only to public internet addresses: this host is, or resolves to, a loopback, private, "
    "link-local, multicast or reserved address, or does not resolve."
)
CONNECTION_FAILED_MESSAGE = "Connection failed (no HTTP response)."

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class WebhookTargetRefused(Exception):
    """The URL's host is not a public address (or not an allow-listed one)."""

    def __init__(self) -> None:
        super().__init__(REFUSED_TARGET_MESSAGE)


@dataclass(frozen=True)
class WebhookTarget:
    """A URL whose every address has been vetted; deliveries connect to ``addresses`` only."""

    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple[str, ...]


def _allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    try:
        return [ipaddress.ip_network(cidr) for cidr in settings.WEBHOOK_ALLOWED_NETWORKS]
    except ValueError as error:
        raise ImproperlyConfigured(f"WEBHOOK_ALLOWED_NETWORKS: {error}") from error


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form carries (mapped ::ffff:a.b.c.d, 6to4 2002::/16, NAT64 64:ff9b::/96)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _is_public(address: IPAddress) -> bool:
    # is_global alone is not enough on Python 3.11: it calls multicast, ::a.b.c.d and fec0::/10 global.
    special = address.is_multicast or address.is_reserved or address.is_link_local or address.is_loopback
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return _is_public(embedded)
        special = special or address.is_site_local
    return address.is_global and not address.is_unspecified and not special


def webhook_address_allowed(address: IPAddress) -> bool:
    """Public, or inside a network the operator allow-listed (an IPv4 in IPv6 form counts as its IPv4)."""
    if _is_public(address):
        return True
    forms = [address]
    if isinstance(address, ipaddress.IPv6Address) and _embedded_ipv4(address) is not None:
        forms.append(_embedded_ipv4(address))
    return any(form in network for form in forms for network in _allowed_networks() if form.version == network.version)


def webhook_target_resolve(url: str) -> WebhookTarget:
    """Resolve every A/AAAA address of the URL's host and vet each one; raise WebhookTargetRefused."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    except ValueError as error:
        raise WebhookTargetRefused() from error
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise WebhookTargetRefused()
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise WebhookTargetRefused() from error
    addresses = tuple(dict.fromkeys(info[4][0] for info in infos))
    # One internal address is enough to refuse: which one a client picks is not ours to choose.
    if not addresses or not all(webhook_address_allowed(ipaddress.ip_address(a.split("%")[0])) for a in addresses):
        raise WebhookTargetRefused()
    path = parts.path or "/"
    return WebhookTarget(
        scheme=parts.scheme.lower(),
        host=parts.hostname,
        port=port,
        path=f"{path}?{parts.query}" if parts.query else path,
        addresses=addresses,
    )


def _connect_pinned(target: WebhookTarget, timeout: float) -> socket.socket:
    """A TCP connection to one of the vetted addresses, never to a fresh lookup of the name."""
    last_error: OSError = OSError("no address")
    for address in target.addresses:
        try:
            return socket.create_connection((address, target.port), timeout=timeout)
        except OSError as error:
            last_error = error
    raise last_error


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, target: WebhookTarget, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)  # Host header: the name
        self._target = target

    def connect(self) -> None:
        self.sock = _connect_pinned(self._target, self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, target: WebhookTarget, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout, context=ssl.create_default_context())
        self._target = target

    def connect(self) -> None:
        sock = _connect_pinned(self._target, self.timeout)
        # SNI and certificate checked against the name, as a browser would, over the pinned socket.
        self.sock = self._context.wrap_socket(sock, server_hostname=self._target.host)


def webhook_target_post(*, target: WebhookTarget, body: bytes, headers: dict, timeout: float) -> tuple[int | None, str]:
    """POST to the vetted target; (status code or None, error text). Redirects are not followed:
    a 3xx is an answer like any other non-2xx. Every way of getting no HTTP answer (refused, reset,
    timed out, TLS failed, not HTTP) reads the same, so the record is not a port scanner."""
    connection_class = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    connection = connection_class(target, timeout)
    try:
        connection.request("POST", target.path, body=body, headers=headers)
        status = connection.getresponse().status
    except (OSError, http.client.HTTPException, ValueError):
        return None, CONNECTION_FAILED_MESSAGE
    finally:
        connection.close()
    return status, "" if 200 <= status < 300 else f"HTTP {status}"
