"""`--web.config.file`: TLS and basic auth for the exporter's own server.

The file has the web configuration format that Prometheus exporters share (node_exporter's
`--web.config.file`): `tls_server_config` (a certificate and key, optionally client
certificates verified against a CA) and `basic_auth_users` (user name to bcrypt hash).
Unknown keys are errors. Paths are relative to the file's own folder.

The file, and the certificate, key and CA files it names, are read again when they change:
at most every `reload_interval` seconds, on the next new connection or `/metrics` request.
A bad change is logged once and the last good configuration stays. A new connection gets
the newest certificate: the listening socket holds one `ssl.SSLContext` (`_NewestContext`)
that hands each new connection to a context loaded afresh from the files, so a rotated
certificate, key or CA needs no restart. Switching between HTTP and HTTPS does.

Basic auth guards `/metrics` only (see `exporter/exposition/server.py`). bcrypt is slow on
purpose, so a successful check is remembered, keyed by digests of the user, the hash and
the password (never the password itself), in a bounded cache; checks run in a thread, at
most two at once, so a flood of wrong passwords cannot stall scrapes.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import os
import re
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import structlog
import yaml

from exporter.errors import GpuworkError

log = structlog.get_logger(component="web")

RELOAD_INTERVAL = 5.0  # seconds between two looks at the files' mtimes
CACHE_SIZE = 1024  # successful (user, hash, password) checks remembered
BCRYPT_CONCURRENCY = 2  # bcrypt checks running at once
BCRYPT_MAX_PASSWORD = 72  # bcrypt reads no further; htpasswd and Go truncate there too

# Checked against when the user is unknown, so that an unknown user costs as long as a
# wrong password and the answer's time does not tell which user names exist.
_DUMMY_HASH = b"$2b$10$ixWJ.3JAnkkJqdfPSDVcKulYTfHmNZipYAz55Cemla7Adak1hQ5gK"
_BCRYPT_HASH = re.compile(r"^\$2[aby]\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}$")

_TOP_KEYS = ("tls_server_config", "basic_auth_users")
_TLS_KEYS = (
    "cert_file",
    "key_file",
    "client_ca_file",
    "client_auth_type",
    "min_version",
    "max_version",
)
# Keys of the shared format that this exporter does not implement: an error that says so,
# rather than a setting silently ignored.
_UNSUPPORTED_KEYS = {
    "http_server_config",
    "rate_limit",
    "cert",
    "key",
    "client_ca",
    "cipher_suites",
    "curve_preferences",
    "prefer_server_cipher_suites",
    "client_allowed_sans",
}
_CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
_UNVERIFIED_CLIENT_AUTH = ("RequestClientCert", "RequireAnyClientCert")
_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
_OLD_VERSIONS = ("TLS10", "TLS11")


class WebConfigError(GpuworkError, ValueError):
    """A web config file that cannot be used; one line naming the file and the problem."""


@dataclass(frozen=True, slots=True)
class TlsServerConfig:
    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None
    client_auth_type: str = "NoClientCert"
    min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    max_version: ssl.TLSVersion | None = None

    @property
    def files(self) -> tuple[Path, ...]:
        named = (self.cert_file, self.key_file, self.client_ca_file)
        return tuple(path for path in named if path is not None)


@dataclass(frozen=True, slots=True)
class WebConfig:
    tls: TlsServerConfig | None = None
    users: Mapping[str, bytes] = field(default_factory=dict)  # user name -> bcrypt hash

    @property
    def files(self) -> tuple[Path, ...]:
        return self.tls.files if self.tls else ()


def _mapping(value: object, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        raise ValueError(f"{where}: expected a mapping")
    return value


def _check_keys(given: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
    for key in given:
        if key in known:
            continue
        if key in _UNSUPPORTED_KEYS:
            raise ValueError(f"{where}{key}: not supported by gpuwork-exporter")
        at = f"{where.rstrip('.')}: " if where else ""
        raise ValueError(f"{at}unknown key {key!r} (known: {', '.join(known)})")


def _version(value: object, key: str) -> ssl.TLSVersion:
    if value in _OLD_VERSIONS:
        raise ValueError(f"tls_server_config.{key}: {value} is not supported, TLS12 is the lowest")
    if not isinstance(value, str) or value not in _VERSIONS:
        raise ValueError(f"tls_server_config.{key}: {value!r} is not one of TLS12, TLS13")
    return _VERSIONS[value]


def _tls(section: Mapping[str, Any], directory: Path) -> TlsServerConfig:
    _check_keys(section, _TLS_KEYS, "tls_server_config.")

    def path(key: str) -> Path | None:
        value = section.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise ValueError(f"tls_server_config.{key}: expected a file path")
        return directory / value

    cert, key = path("cert_file"), path("key_file")
    if cert is None or key is None:
        raise ValueError("tls_server_config: cert_file and key_file are both required")
    auth = section.get("client_auth_type") or "NoClientCert"
    if auth in _UNVERIFIED_CLIENT_AUTH:
        raise ValueError(
            f"tls_server_config.client_auth_type: {auth} (a client certificate that is not "
            "verified) is not supported; use RequireAndVerifyClientCert or VerifyClientCertIfGiven"
        )
    if auth not in _CLIENT_AUTH:
        raise ValueError(
            f"tls_server_config.client_auth_type: {auth!r} is not one of {', '.join(_CLIENT_AUTH)}"
        )
    ca = path("client_ca_file")
    if auth != "NoClientCert" and ca is None:
        raise ValueError(f"tls_server_config: client_auth_type {auth} needs a client_ca_file")
    if auth == "NoClientCert" and ca is not None:
        raise ValueError(
            "tls_server_config: client_ca_file is set but client_auth_type is NoClientCert; "
            "set RequireAndVerifyClientCert or VerifyClientCertIfGiven"
        )
    low = _version(section.get("min_version") or "TLS12", "min_version")
    high = _version(section["max_version"], "max_version") if section.get("max_version") else None
    if high is not None and high < low:
        raise ValueError("tls_server_config: max_version is lower than min_version")
    return TlsServerConfig(cert, key, ca, auth, low, high)


def _users(section: Mapping[str, Any]) -> dict[str, bytes]:
    users = {}
    for user, hashed in section.items():
        if not user or ":" in user:
            raise ValueError(f"basic_auth_users: {user!r} is not a user name (empty, or has ':')")
        if not isinstance(hashed, str) or not _BCRYPT_HASH.match(hashed):
            raise ValueError(
                f"basic_auth_users.{user}: not a bcrypt hash (expected $2b$, $2a$ or $2y$, "
                "a cost and 53 characters)"
            )
        users[user] = hashed.encode()
    return users


def parse_web_config(text: str, directory: Path) -> WebConfig:
    """The file's text -> WebConfig; ValueError with one line naming the problem."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise ValueError(f"not YAML{where}: {problem}") from error
    top = _mapping(document, "the file")
    _check_keys(top, _TOP_KEYS, "")
    tls_section = _mapping(top.get("tls_server_config"), "tls_server_config")
    tls = _tls(tls_section, directory) if tls_section else None  # empty: plain HTTP
    return WebConfig(tls, _users(_mapping(top.get("basic_auth_users"), "basic_auth_users")))


def _refuse_password() -> bytes:
    raise ValueError("the key is encrypted; give an unencrypted key_file")


def _readable(path: Path, key: str) -> None:
    try:
        with path.open("rb"):
            pass
    except OSError as error:
        raise ValueError(f"{key} {path}: {error.strerror or error}") from error


def ssl_context_for(tls: TlsServerConfig) -> ssl.SSLContext:
    """A server context loaded from the files `tls` names; ValueError naming what failed."""
    for key, path in (("cert_file", tls.cert_file), ("key_file", tls.key_file)):
        _readable(path, key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = tls.min_version
    if tls.max_version is not None:
        context.maximum_version = tls.max_version
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file, password=_refuse_password)
    except ssl.SSLError as error:
        reason = (
            "the key does not match the certificate"
            if error.reason == "KEY_VALUES_MISMATCH"
            else f"not a PEM certificate and private key ({error.reason or error})"
        )
        raise ValueError(f"cert_file {tls.cert_file}, key_file {tls.key_file}: {reason}") from error
    except OSError as error:  # gone since it was opened
        raise ValueError(f"cert_file {tls.cert_file}: {error.strerror or error}") from error
    if tls.client_ca_file is not None:
        _readable(tls.client_ca_file, "client_ca_file")
        try:
            context.load_verify_locations(cafile=tls.client_ca_file)
        except ssl.SSLError as error:
            raise ValueError(
                f"client_ca_file {tls.client_ca_file}: no PEM certificate ({error.reason or error})"
            ) from error
        except OSError as error:
            raise ValueError(f"client_ca_file {tls.client_ca_file}: {error.strerror}") from error
    context.verify_mode = _CLIENT_AUTH[tls.client_auth_type]
    return context


@dataclass(frozen=True, slots=True)
class _Loaded:
    config: WebConfig
    context: ssl.SSLContext | None


Signature = tuple[object, ...]


def _signature(paths: tuple[Path, ...]) -> Signature:
    """What changes when a file is written, replaced or swapped (Kubernetes' symlinks)."""
    seen: list[object] = []
    for path in paths:
        try:
            stat = os.stat(path)
        except OSError as error:
            seen.append(error.errno)
        else:
            seen.append((stat.st_dev, stat.st_ino, stat.st_mtime_ns, stat.st_size))
    return tuple(seen)


class _NewestContext(ssl.SSLContext):
    """The context the listening socket holds. It serves no connection itself: asyncio wraps
    each new connection with `wrap_bio`, which hands it to the newest loaded context, whole
    (certificate, key, client CAs, verify mode, versions)."""

    newest: Callable[[], ssl.SSLContext]

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        return self.newest().wrap_bio(incoming, outgoing, server_side, server_hostname, session)


class WebConfigFile:
    """The web config file as last read well, read again when it or its files change."""

    def __init__(
        self,
        path: str | Path,
        *,
        reload_interval: float = RELOAD_INTERVAL,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self._interval = reload_interval
        self._monotonic = monotonic
        self._current, self._watched = self._load()  # WebConfigError: refused at start
        self._signature: Signature | None = self._stat(self._watched)
        self._checked = monotonic()
        self._cache: OrderedDict[bytes, None] = OrderedDict()
        self._bcrypt = asyncio.Semaphore(BCRYPT_CONCURRENCY)
        self._front: _NewestContext | None = None
        if self._current.context is not None:
            self._front = _NewestContext(ssl.PROTOCOL_TLS_SERVER)
            self._front.newest = self._newest_context

    @property
    def config(self) -> WebConfig:
        self.refresh()
        return self._current.config

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        """For `web.TCPSite`: None serves plain HTTP."""
        return self._front

    def _stat(self, watched: tuple[Path, ...]) -> Signature:
        return _signature((self.path, *watched))

    def _load(self) -> tuple[_Loaded, tuple[Path, ...]]:
        """Read and load everything, with the files the config names; WebConfigError naming
        the file and the problem (`_LoadError`, with the files a parsed config names, to
        watch them even when loading them failed)."""
        watched: tuple[Path, ...] = ()
        try:
            try:
                text = self.path.read_text(encoding="utf-8")
            except OSError as error:
                raise ValueError(f"cannot read it: {error.strerror or error}") from error
            except UnicodeDecodeError as error:
                raise ValueError("not text (UTF-8)") from error
            config = parse_web_config(text, self.path.parent)
            watched = config.files
            context = ssl_context_for(config.tls) if config.tls else None
        except ValueError as error:
            raise _LoadError(f"web config file {self.path}: {error}", watched) from error
        return _Loaded(config, context), watched

    def refresh(self) -> None:
        """Read the files again if they changed, at most every `reload_interval` seconds.
        A bad change is logged once and the last good config stays."""
        now = self._monotonic()
        if now - self._checked < self._interval:
            return
        self._checked = now
        before = self._stat(self._watched)
        if before == self._signature:
            return
        problem = None
        try:
            loaded, named = self._load()
        except _LoadError as error:
            problem, named = str(error), error.watched
        except Exception as error:  # a bug: the server goes on with the last good config
            problem, named = f"web config file {self.path}: {error!r}", ()
        else:
            if (loaded.context is None) != (self._current.context is None):
                problem = (f"web config file {self.path}: switching between HTTP and HTTPS "
                           "needs a restart")  # fmt: skip
            else:
                self._current = loaded
                self._cache.clear()
        # Watch the good config's files and the latest one's, so a fix to either is seen.
        watched = tuple(dict.fromkeys(self._current.config.files + named))
        stable = self._stat(self._watched) == before  # nothing was written while reading
        self._watched, self._signature = watched, self._stat(watched) if stable else None
        if problem is not None:
            log.error("web config not reloaded, keeping the last good one", error=problem)
        else:
            log.info("web config reloaded", file=str(self.path),
                     scheme="https" if self._front else "http",
                     basic_auth_users=len(self._current.config.users))  # fmt: skip

    def _newest_context(self) -> ssl.SSLContext:
        self.refresh()
        assert self._current.context is not None  # HTTPS never turns into HTTP at run time
        return self._current.context

    async def authorized(self, header: str | None) -> bool:
        """Whether an `Authorization` header may read /metrics: always, without users."""
        users = self.config.users
        if not users:
            return True
        credentials = _basic_credentials(header)
        if credentials is None:
            return False
        user, password = credentials
        hashed = users.get(user)
        key = _cache_key(user, hashed or _DUMMY_HASH, password)
        if hashed is not None and key in self._cache:
            self._cache.move_to_end(key)
            return True
        async with self._bcrypt:
            matches = await asyncio.to_thread(_checkpw, password, hashed or _DUMMY_HASH)
        if not (matches and hashed is not None):
            return False
        self._cache[key] = None
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return True


class _LoadError(WebConfigError):
    def __init__(self, message: str, watched: tuple[Path, ...]) -> None:
        super().__init__(message)
        self.watched = watched


def _basic_credentials(header: str | None) -> tuple[str, bytes] | None:
    """`Basic base64(user:password)` -> (user, password); None for anything else."""
    scheme, _, token = (header or "").strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
        user, sep, password = decoded.partition(b":")
        return (user.decode("utf-8"), password) if sep else None
    except (binascii.Error, UnicodeDecodeError):
        return None


def _cache_key(user: str, hashed: bytes, password: bytes) -> bytes:
    digest = hashlib.sha256()
    for part in (user.encode(), hashed, password):
        digest.update(hashlib.sha256(part).digest())
    return digest.digest()


def _checkpw(password: bytes, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password[:BCRYPT_MAX_PASSWORD], hashed)
    except ValueError:  # a hash bcrypt cannot read: never a match
        return False


def load_web_config(path: str, *, reload_interval: float = RELOAD_INTERVAL) -> WebConfigFile | None:
    """`--web.config.file`: None when empty (plain HTTP, no auth); WebConfigError when the
    file cannot be used."""
    return WebConfigFile(path, reload_interval=reload_interval) if path else None
