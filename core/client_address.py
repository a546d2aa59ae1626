"""Who sent a request: the TCP peer, or the client a trusted proxy names in X-Forwarded-For.

Shared by the login limits (accounts.throttle) and the request id (observability), which must
both believe a forwarded header only from a proxy in settings.TRUSTED_PROXIES.
"""

import ipaddress
import logging

from django.conf import settings
from django.http import HttpRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Where a compose network's or a cluster's proxy lives: trusted by default behind HTTPS.
PRIVATE_NETWORKS = [
    "127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",  # loopback, RFC 1918
    "::1/128", "fc00::/7",  # loopback, unique local
]  # fmt: skip
_PRIVATE = [ipaddress.ip_network(network) for network in PRIVATE_NETWORKS]

logger = logging.getLogger(__name__)
_warned_of_an_untrusted_proxy = False


def client_address(request: HttpRequest | None) -> str | None:
    """The client's IP: the TCP peer, or, when the peer is a trusted proxy, X-Forwarded-For's.

    Each proxy appends the address it received the request from, and the client may have sent
    anything to their left. So the header is read only from a peer in TRUSTED_PROXIES, from
    the right, skipping trusted proxies: the first other address is the client. A header that
    does not parse is not believed at all (the peer is the address); a peer that does not
    parse (no request, a Unix socket) gives None, which is counted as one more address.
    """
    if request is None:
        return None
    peer = _parse_ip(request.META.get("REMOTE_ADDR", ""))
    if peer is None:
        return None
    if not _trusted(peer):
        if not settings.TRUSTED_PROXIES and "HTTP_X_FORWARDED_FOR" in request.META:
            _warn_of_an_untrusted_proxy(peer)
        return str(peer)
    client = peer
    for entry in reversed(request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")):
        hop = _parse_ip(entry)
        if hop is None:
            return str(peer)
        client = hop
        if not _trusted(hop):
            break
    return str(client)


def _warn_of_an_untrusted_proxy(peer: IPAddress) -> None:
    """Once per process: a private peer that forwards is most likely our own proxy, untrusted.

    Then every client behind it has the proxy's address, and one client's failed logins throttle
    everyone. Only with no proxy trusted at all: where some are, the peer is someone else.
    """
    global _warned_of_an_untrusted_proxy
    if _warned_of_an_untrusted_proxy or not any(peer in network for network in _PRIVATE):
        return
    _warned_of_an_untrusted_proxy = True
    logger.warning(
        "A request from %s, a private address, carries X-Forwarded-For, but no proxy is trusted: "
        "every client behind a proxy there counts as that one address, and the failed logins of "
        "one lock out all of them. Set DJANGO_TRUSTED_PROXIES to the proxy's addresses "
        "(docs/configuration.md).",
        peer,
    )


def _parse_ip(text: str) -> IPAddress | None:
    """An address as proxies write it: `1.2.3.4`, `1.2.3.4:80`, `[2001:db8::1]:443`, `::1`."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text.partition("%")[0])  # a zone means nothing here
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped  # a dual-stack socket's view of an IPv4 peer
    return address


def _trusted(address: IPAddress) -> bool:
    return any(address in network for network in settings.TRUSTED_PROXIES)


def peer_is_trusted_proxy(request: HttpRequest) -> bool:
    """The TCP peer is one of settings.TRUSTED_PROXIES: its forwarded headers may be believed."""
    return is_trusted_proxy(request.META.get("REMOTE_ADDR", ""))


def is_trusted_proxy(address: str) -> bool:
    """`address` (REMOTE_ADDR as the server wrote it) is in one of settings.TRUSTED_PROXIES."""
    peer = _parse_ip(address)
    return peer is not None and _trusted(peer)
