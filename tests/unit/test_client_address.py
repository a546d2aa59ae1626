"""The client's address for login throttling: X-Forwarded-For only from a trusted proxy."""

from ipaddress import ip_network

import pytest
from django.test import RequestFactory

from accounts.throttle import counted_address
from core import client_address as client_address_module
from core.client_address import client_address

PROXIES = [ip_network("10.0.0.0/8"), ip_network("fd00::/8")]


def address(peer: str | None, forwarded: str | None = None) -> str | None:
    meta = {} if forwarded is None else {"HTTP_X_FORWARDED_FOR": forwarded}
    request = RequestFactory().get("/", **meta)
    if peer is None:
        del request.META["REMOTE_ADDR"]
    else:
        request.META["REMOTE_ADDR"] = peer
    return client_address(request)


@pytest.fixture(autouse=True)
def _proxies(settings):
    settings.TRUSTED_PROXIES = PROXIES


def test_an_untrusted_peer_is_the_client_whatever_it_forwards():
    assert address("203.0.113.5") == "203.0.113.5"
    assert address("203.0.113.5", "198.51.100.1") == "203.0.113.5"
    assert address("203.0.113.5", "10.0.0.1, 198.51.100.1") == "203.0.113.5"


def test_with_no_trusted_proxies_the_header_is_never_read(settings):
    settings.TRUSTED_PROXIES = []

    assert address("10.0.0.1", "198.51.100.1") == "10.0.0.1"


def test_from_a_trusted_proxy_the_right_most_untrusted_entry_is_the_client():
    assert address("10.0.0.1", "198.51.100.1") == "198.51.100.1"
    # What the client sent, to the left, proves nothing.
    assert address("10.0.0.1", "192.0.2.66, 10.1.1.1, 198.51.100.1") == "198.51.100.1"
    # Trusted proxies on the way are skipped.
    assert address("10.0.0.1", "192.0.2.66, 198.51.100.1, 10.0.0.3, 10.0.0.2") == "198.51.100.1"
    assert address("fd00::1", "2001:db8::7") == "2001:db8::7"


def test_a_chain_of_trusted_proxies_only_gives_the_left_most():
    assert address("10.0.0.1", "10.0.0.3, 10.0.0.2") == "10.0.0.3"


@pytest.mark.parametrize(
    "forwarded", [None, "", " ", "unknown", "1.2.3", "203.0.113.5, nonsense", "203.0.113.5,,"]
)
def test_a_missing_or_unparsable_header_gives_the_peer(forwarded):
    assert address("10.0.0.1", forwarded) == "10.0.0.1"


@pytest.mark.parametrize(
    ("forwarded", "client"),
    [
        ("198.51.100.1:4711", "198.51.100.1"),
        ("[2001:db8::7]:443", "2001:db8::7"),
        ("[2001:db8::7]", "2001:db8::7"),
        ("::ffff:198.51.100.1", "198.51.100.1"),
        ("fe80::1%eth0", "fe80::1"),
    ],
)
def test_addresses_are_read_as_proxies_write_them(forwarded, client):
    assert address("10.0.0.1", forwarded) == client


def test_a_dual_stack_socket_reports_ipv4_peers_as_ipv4():
    assert address("::ffff:10.0.0.1", "198.51.100.1") == "198.51.100.1"
    assert address("::ffff:203.0.113.5") == "203.0.113.5"


def test_no_request_or_no_peer_gives_no_address():
    assert client_address(None) is None
    assert address(None) is None
    assert address("") is None
    assert address("not an address", "198.51.100.1") is None


def test_ipv4_addresses_are_counted_alone_ipv6_ones_by_their_64():
    assert counted_address("198.51.100.1") == "198.51.100.1"
    assert counted_address("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::"
    assert counted_address(None) is None


# -- A proxy in front that nobody trusts ---------------------------------------------------------

UNTRUSTED_PROXY_WARNING = "carries X-Forwarded-For, but no proxy is trusted"


@pytest.fixture
def fresh_process(monkeypatch, settings, caplog):
    """No proxy trusted, and no warning given yet in this process."""
    settings.TRUSTED_PROXIES = []
    monkeypatch.setattr(
        client_address_module, "_warned_of_an_untrusted_proxy", False, raising=False
    )
    caplog.set_level("WARNING", logger="core.client_address")
    return caplog


def warnings_logged(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]


def test_a_private_peer_forwarding_with_no_proxy_trusted_is_warned_about_once(fresh_process):
    assert address("10.1.2.3", "198.51.100.1") == "10.1.2.3"  # still not believed
    assert address("10.1.2.4", "198.51.100.2") == "10.1.2.4"
    assert address("fd00::5", "198.51.100.3") == "fd00::5"

    [warning] = warnings_logged(fresh_process)
    assert warning.startswith(
        f"A request from 10.1.2.3, a private address, {UNTRUSTED_PROXY_WARNING}"
    )
    assert "Set DJANGO_TRUSTED_PROXIES" in warning


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted"),
    [
        ("10.1.2.3", None, []),  # no proxy in front: nothing forwarded
        ("203.0.113.5", "198.51.100.1", []),  # a public client writing the header itself
        ("10.1.2.3", "198.51.100.1", PROXIES),  # trusted, as configured
        ("192.168.1.9", "198.51.100.1", PROXIES),  # some proxies are trusted: not this one
    ],
    ids=["no header", "public peer", "trusted proxy", "proxies configured"],
)
def test_nothing_is_warned_about_otherwise(fresh_process, settings, peer, forwarded, trusted):
    settings.TRUSTED_PROXIES = trusted

    address(peer, forwarded)

    assert warnings_logged(fresh_process) == []
