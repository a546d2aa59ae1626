"""Read configuration from the environment: typed values, `*_FILE` secrets, clear errors.

Plain functions so that settings parsing can be tested without reloading Django.
"""

import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}

# Values copied from tutorials and templates that must never protect a real deployment.
KNOWN_INSECURE_SECRETS = {"changeme", "secret", "password", "django-insecure", "your-secret-key"}


def get_str(name: str, default: str = "", environ: Mapping[str, str] = os.environ) -> str:
    """A value from NAME, or from the file named by NAME_FILE (Docker/Kubernetes secrets)."""
    file_name = environ.get(f"{name}_FILE")
    if file_name:
        if name in environ:
            raise ImproperlyConfigured(f"Set {name} or {name}_FILE, not both.")
        try:
            return Path(file_name).read_text().strip()
        except OSError as error:
            raise ImproperlyConfigured(
                f"{name}_FILE={file_name} cannot be read: {error.strerror}."
            ) from error
    return environ.get(name, default)


def get_bool(name: str, default: bool, environ: Mapping[str, str] = os.environ) -> bool:
    raw = environ.get(name)
    if raw is None:
        return default
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean: use true or false.")


def get_int(name: str, default: int, environ: Mapping[str, str] = os.environ) -> int:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number.") from None


def get_list(name: str, default: list[str], environ: Mapping[str, str] = os.environ) -> list[str]:
    raw = environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def database_from_environment(environ: Mapping[str, str] = os.environ) -> dict | None:
    """The configured PostgreSQL as Django settings, or None when nothing is configured.

    `DATABASE_URL` wins; otherwise the tutorial-style `DB_HOST`/`DB_PORT`/`DB_NAME`/`DB_USER`/
    `DB_PASS`. None means: use the embedded PostgreSQL.
    """
    url = get_str("DATABASE_URL", environ=environ)
    if url:
        return parse_database_url(url)
    host = environ.get("DB_HOST", "")
    if not host:
        return None
    return {
        "HOST": host,
        "PORT": get_int("DB_PORT", 5432, environ),
        "NAME": environ.get("DB_NAME") or "postgres",
        "USER": environ.get("DB_USER") or "postgres",
        "PASSWORD": get_str("DB_PASS", environ=environ),
        "OPTIONS": {},
    }


def parse_s3_url(name: str, url: str) -> tuple[str, str]:
    """`s3://bucket/prefix` as (bucket, prefix); the prefix may be empty."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ImproperlyConfigured(f"{name}={url!r}: write s3://bucket or s3://bucket/prefix.")
    return parts.netloc, parts.path.strip("/")


def parse_database_url(url: str) -> dict:
    """Django's settings for a libpq URL, which may name several hosts (`h1:p1,h2:p2`).

    Several hosts, as libpq allows, are the members of a high-availability cluster: libpq tries
    them in turn, and `target_session_attrs=read-write` makes it keep the one that takes writes
    (docs/scaling.md). HOST and PORT are then libpq's comma-separated lists.
    """
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql", "pgsql"}:
        raise ImproperlyConfigured(
            f"DATABASE_URL must start with postgres:// (got {parts.scheme or 'no'} scheme)."
        )
    hosts, ports = zip(*map(_host_and_port, _hosts(parts.netloc).split(",")), strict=True)
    name = unquote(parts.path.lstrip("/"))
    if not name:
        raise ImproperlyConfigured("DATABASE_URL names no database (postgres://user@host/NAME).")
    user, _, password = parts.netloc.rpartition("@")[0].partition(":")
    return {
        "HOST": ",".join(hosts),
        "PORT": ports[0] if len(ports) == 1 else ",".join(str(port) for port in ports),
        "NAME": name,
        "USER": unquote(user),
        "PASSWORD": unquote(password),
        "OPTIONS": dict(parse_qsl(parts.query)),
    }


def database_replicas_from_environment(
    primary: dict, environ: Mapping[str, str] = os.environ
) -> list[dict]:
    """Read replicas from `DATABASE_REPLICA_URLS` (comma-separated); empty when unset.

    A replica URL may leave out the user and password: the primary's are used, as with one
    role served by several hosts (CloudNativePG's `-ro` service). Options the URL leaves out
    (`sslmode`, ...) are the primary's too.
    """
    replicas = []
    for url in get_str("DATABASE_REPLICA_URLS", environ=environ).split(","):
        if not url.strip():
            continue
        try:
            replica = parse_database_url(url.strip())
        except ImproperlyConfigured as error:
            raise ImproperlyConfigured(f"DATABASE_REPLICA_URLS: {error}") from None
        if not replica["USER"]:
            replica["USER"], replica["PASSWORD"] = primary["USER"], primary["PASSWORD"]
        elif not replica["PASSWORD"] and replica["USER"] == primary["USER"]:
            replica["PASSWORD"] = primary["PASSWORD"]
        replica["OPTIONS"] = {**primary.get("OPTIONS", {}), **replica["OPTIONS"]}
        replicas.append(replica)
    return replicas


def _hosts(netloc: str) -> str:
    return netloc.rpartition("@")[2]


def _host_and_port(item: str) -> tuple[str, int]:
    """One `host[:port]` as written: urlsplit lowercases hosts, which breaks socket paths.

    A host given as %2Fpath is a Unix socket folder, as libpq allows; [::1] is an IPv6 address.
    """
    if item.startswith("["):  # [IPv6]:port
        host, _, rest = item[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        host, _, port = item.partition(":")
    if not port:
        return unquote(host), 5432
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ImproperlyConfigured("DATABASE_URL has an invalid port.")
    return unquote(host), int(port)


def check_secret_key(key: str) -> str:
    """Refuse keys that are empty, short, or copied from a tutorial."""
    if not key:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set. Generate one with: "
            "python3 -c 'import secrets; print(secrets.token_urlsafe(50))'"
        )
    insecure = (
        len(key) < 50
        or len(set(key)) < 5
        or key.startswith("django-insecure")
        or key.lower() in KNOWN_INSECURE_SECRETS
    )
    if insecure:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is insecure (under 50 characters, repetitive or a known "
            "example). Generate one with: "
            "python3 -c 'import secrets; print(secrets.token_urlsafe(50))'"
        )
    return key


def local_secret_key(data_dir: Path) -> str:
    """The key kept in the local data folder, created on first use.

    Only for the embedded runtime: sessions survive restarts, and nothing has to be configured.
    """
    return kept_secret(data_dir / "secret_key", secrets.token_urlsafe(50))


def private_folder(path: Path) -> Path:
    """`path` as a folder for its owner alone: made mode 0700, or tightened if it is ours.

    The local data folder holds the database, its password, the secret key and the backups.
    Others may keep the right to pass through (x) and nothing else: PostgreSQL run as `nobody`
    (as root without user namespaces) needs it to reach its own files inside.
    """
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    status = path.stat()
    if status.st_uid == os.geteuid() and stat.S_IMODE(status.st_mode) & 0o076:
        path.chmod(0o700)  # made by an older version, as 0755
    return path


def kept_secret(path: Path, new_value: str) -> str:
    """The secret kept in `path` (mode 0600); `new_value` is stored there when there is none."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    private_folder(path.parent)
    # Written aside, then linked into place: two processes starting at once agree on one value.
    draft = path.parent / f".{path.name}.{os.getpid()}"
    with os.fdopen(os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as file:
        file.write(new_value + "\n")
    try:
        os.link(draft, path)
    except FileExistsError:
        new_value = path.read_text().strip()
    finally:
        draft.unlink()
    return new_value
