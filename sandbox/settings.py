"""The sandbox's settings, read once from the environment (CONTAINER_TESTS_*)."""

from __future__ import annotations

import contextlib
import os
from configparser import ConfigParser
from dataclasses import dataclass
from pathlib import Path

from .process import SandboxError

DEFAULT_MIRROR = "http://deb.debian.org/debian"


@dataclass(frozen=True)
class Settings:
    engine: str  # auto | machine | private
    images: str  # auto | official | standin
    cache_dir: Path | None  # None: from scratch, nothing kept
    ca_bundle: Path | None
    mirror: str
    build_network: str | None  # the app build's network; default: host on a private engine

    @classmethod
    def from_environment(cls) -> Settings:
        engine = os.environ.get("CONTAINER_TESTS_ENGINE", "auto")
        images = os.environ.get("CONTAINER_TESTS_IMAGES", "auto")
        if engine not in {"auto", "machine", "private"}:
            raise SandboxError(f"CONTAINER_TESTS_ENGINE={engine}: auto, machine or private")
        if images not in {"auto", "official", "standin"}:
            raise SandboxError(f"CONTAINER_TESTS_IMAGES={images}: auto, official or standin")
        cache = os.environ.get("CONTAINER_TESTS_CACHE", "")
        if cache.lower() in {"off", "0", "no", "false"}:
            cache_dir = None
        else:
            cache_dir = Path(cache) if cache else Path.home() / ".cache" / "keepnotes-containers"
        return cls(
            engine=engine,
            images=images,
            cache_dir=cache_dir,
            ca_bundle=find_ca_bundle(),
            mirror=os.environ.get("CONTAINER_TESTS_DEBIAN_MIRROR", DEFAULT_MIRROR),
            build_network=os.environ.get("CONTAINER_TESTS_BUILD_NETWORK") or None,
        )


def find_ca_bundle() -> Path | None:
    """The CA bundle the machine's own pip trusts, to hand to the build as the ca-bundle secret.

    Behind a TLS-inspecting proxy, the image's pip and uv need the proxy's CA; the Dockerfile
    takes it as an optional BuildKit secret. CONTAINER_TESTS_CA_BUNDLE=none turns it off.
    """
    explicit = os.environ.get("CONTAINER_TESTS_CA_BUNDLE")
    if explicit:
        return None if explicit.lower() == "none" else Path(explicit)
    candidates = [
        os.environ.get(name)
        for name in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
    ]
    config_files = [
        Path("/etc/pip.conf"),
        Path("/etc/xdg/pip/pip.conf"),
        Path.home() / ".config" / "pip" / "pip.conf",
        Path.home() / ".pip" / "pip.conf",
    ]
    for config_file in config_files:
        parser = ConfigParser()
        with contextlib.suppress(OSError, ValueError):
            parser.read(config_file)
            candidates.append(parser.get("global", "cert", fallback=None))
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None
