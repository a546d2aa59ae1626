"""Who sent a request: the TCP peer, or the client a trusted proxy names in X-Forwarded-For.

Shared by the login limits (accounts.throttle) and the request id (observability), which must
both believe a forwarded header only from a proxy in settings.TRUSTED_PROXIES.
"""

import ipaddress

from django.conf import settings
from django.http import HttpRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


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
    if peer is None or not _trusted(peer):
        return None if peer is None else str(peer)
    client = peer
    for entry in reversed(request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")):
        hop = _parse_ip(entry)
        if hop is None:
            return str(peer)
        client = hop
        if not _trusted(hop):
            break
    return str(client)


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
