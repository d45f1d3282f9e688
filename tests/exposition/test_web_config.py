"""`--web.config.file` (exporter/exposition/web_config.py) through real HTTPS on loopback.

Every test serves the real aiohttp app (`make_app`) on a real `web.TCPSite` with the
context `WebConfigFile` gives it, and talks to it with aiohttp's client: certificates made
here with `cryptography` (a CA, server and client certificates), passwords hashed with
bcrypt. The files are rewritten under the running server to show reloads.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import ipaddress
import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import bcrypt
import pytest
import structlog
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from structlog.testing import LogCapture

from exporter.cli import build_exposition, main
from exporter.exposition import web_config
from exporter.exposition.server import make_app
from exporter.exposition.web_config import WebConfigError, WebConfigFile, load_web_config
from exporter.settings import FLAGS
from tests.support.paths import REPO

RELOAD = 0.1  # the tests' reload interval, in seconds
AFTER_RELOAD = 3 * RELOAD
PASSWORD = "s3cret"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
LOOPBACK = "127.0.0.1"


@pytest.fixture(autouse=True)
def logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[LogCapture]:
    """Every structlog event, whatever another test configured (level, caching); no
    GPUWORK_* variable of the caller leaks in, main's logging setup does not leak out."""
    for flag in FLAGS:
        monkeypatch.delenv(flag.env, raising=False)
    saved = structlog.get_config()
    capture = LogCapture()
    structlog.configure(
        processors=[capture],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        cache_logger_on_first_use=False,
    )
    yield capture
    structlog.configure(**saved)


# -- certificates ------------------------------------------------------------------------------


@dataclass
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())  # fmt: skip


def issue(name: str, *, by: Issued | None = None, serial: int | None = None,
          ca: bool = False, client: bool = False) -> Issued:  # fmt: skip
    """A certificate for `name`, signed by `by` (self-signed without): a CA, a server
    certificate for 127.0.0.1 and localhost, or a client certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(by.cert.subject if by else subject)
        .public_key(key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                          content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False,
                          encipher_only=False, decipher_only=False), critical=True)  # fmt: skip
    elif client:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOOPBACK)),
                                         x509.DNSName("localhost")]), critical=False)  # fmt: skip
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
    return Issued(builder.sign(by.key if by else key, hashes.SHA256()), key)


@dataclass
class Pki:
    """A CA and what it signed, written to `folder`: ca.pem, server.pem, server-key.pem,
    client.pem, client-key.pem."""

    folder: Path
    ca: Issued
    server: Issued
    client: Issued

    def write_server(self, server: Issued) -> None:
        self.server = server
        (self.folder / "server.pem").write_bytes(server.cert_pem)
        (self.folder / "server-key.pem").write_bytes(server.key_pem)

    def client_context(self, *, with_cert: bool = False, client: Issued | None = None,
                       maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:  # fmt: skip
        context = ssl.create_default_context(cadata=self.ca.cert_pem.decode())
        if maximum is not None:
            context.maximum_version = maximum
        if with_cert or client:
            chosen = client or self.client
            name = f"client-{id(chosen)}"
            (self.folder / f"{name}.pem").write_bytes(chosen.cert_pem)
            (self.folder / f"{name}-key.pem").write_bytes(chosen.key_pem)
            context.load_cert_chain(self.folder / f"{name}.pem", self.folder / f"{name}-key.pem")
        return context


@pytest.fixture(scope="module")
def authority() -> tuple[Issued, Issued, Issued]:
    ca = issue("gpuwork test CA", ca=True)
    server, client = (
        issue("gpuwork exporter", by=ca, serial=1001),
        issue("client", by=ca, client=True),
    )
    return ca, server, client


@pytest.fixture
def pki(tmp_path: Path, authority: tuple[Issued, Issued, Issued]) -> Pki:
    ca, server, client = authority
    folder = tmp_path / "tls"
    folder.mkdir()
    (folder / "ca.pem").write_bytes(ca.cert_pem)
    pki = Pki(folder, ca, server, client)
    pki.write_server(server)
    return pki


TLS = "tls_server_config:\n  cert_file: tls/server.pem\n  key_file: tls/server-key.pem\n"
MUTUAL = TLS + "  client_ca_file: tls/ca.pem\n  client_auth_type: RequireAndVerifyClientCert\n"
USERS = f"basic_auth_users:\n  prometheus: {HASH}\n"


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "web.yml"
    path.write_text(text)
    return path


# -- the server --------------------------------------------------------------------------------


@dataclass
class Served:
    config: WebConfigFile
    url: str  # scheme, host and port


@contextlib.asynccontextmanager
async def serving(path: Path) -> AsyncIterator[Served]:
    """The real app on a real site on loopback, as `exporter/cli.py` starts it."""
    config = WebConfigFile(path, reload_interval=RELOAD)
    app = make_app(build_exposition(), lambda: True, authorize=config.authorized)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, LOOPBACK, 0, ssl_context=config.ssl_context)
    await site.start()
    port = runner.addresses[0][1]
    scheme = "https" if config.ssl_context else "http"
    try:
        yield Served(config, f"{scheme}://{LOOPBACK}:{port}")
    finally:
        await runner.cleanup()


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


Answer = tuple[int, str, dict[str, str]]


async def get(url: str, *, context: ssl.SSLContext | None = None,
              headers: dict[str, str] | None = None) -> Answer:  # fmt: skip
    """One request on a new connection: status, body, headers."""
    connector = aiohttp.TCPConnector(ssl=context if context is not None else False,
                                     force_close=True)  # fmt: skip
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(url, headers=headers or {}, timeout=aiohttp.ClientTimeout(total=5)) as answer,
    ):
        return answer.status, await answer.text(), dict(answer.headers)


async def served_serial(url: str, context: ssl.SSLContext) -> int:
    """The serial number of the certificate a new connection is served (no SNI: an IP)."""
    host, port = url.removeprefix("https://").split(":")
    _, writer = await asyncio.open_connection(host, int(port), ssl=context)
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        return int(x509.load_der_x509_certificate(der).serial_number)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()


# -- plain, TLS, basic auth --------------------------------------------------------------------


async def test_an_empty_config_serves_plain_http_without_auth(tmp_path: Path) -> None:
    async with serving(write_config(tmp_path, "")) as served:
        assert served.config.ssl_context is None
        status, body, _ = await get(f"{served.url}/metrics")

    assert status == 200
    assert "process_cpu_seconds_total" in body


async def test_no_flag_is_no_config() -> None:
    assert load_web_config("") is None


async def test_tls_alone_serves_https_and_no_plain_http(tmp_path: Path, pki: Pki) -> None:
    async with serving(write_config(tmp_path, TLS)) as served:
        assert served.url.startswith("https://")
        status, body, _ = await get(f"{served.url}/metrics", context=pki.client_context())
        assert status == 200
        assert "process_cpu_seconds_total" in body
        with pytest.raises(aiohttp.ClientError):
            await get(served.url.replace("https://", "http://") + "/metrics")


async def test_basic_auth_guards_metrics_and_leaves_the_probes_open(
    tmp_path: Path, pki: Pki
) -> None:
    async with serving(write_config(tmp_path, TLS + USERS)) as served:
        context = pki.client_context()
        metrics = f"{served.url}/metrics"

        right = await get(metrics, context=context, headers=basic("prometheus", PASSWORD))
        wrong = await get(metrics, context=context, headers=basic("prometheus", "guess"))
        unknown = await get(metrics, context=context, headers=basic("mallory", PASSWORD))
        missing = await get(metrics, context=context)
        not_basic = await get(metrics, context=context, headers={"Authorization": "Bearer x"})
        garbled = await get(metrics, context=context, headers={"Authorization": "Basic !!"})
        probes = [await get(f"{served.url}{path}", context=context)
                  for path in ("/healthz", "/readyz")]  # fmt: skip

    assert right[0] == 200 and "process_cpu_seconds_total" in right[1]
    for status, body, headers in (wrong, unknown, missing, not_basic, garbled):
        assert status == 401
        assert headers["WWW-Authenticate"].startswith("Basic")
        assert "process_cpu" not in body
    assert [(status, body) for status, body, _ in probes] == [(200, "ok\n"), (200, "ready\n")]


async def test_basic_auth_over_plain_http(tmp_path: Path) -> None:
    async with serving(write_config(tmp_path, USERS)) as served:
        assert (await get(f"{served.url}/metrics"))[0] == 401
        assert (await get(f"{served.url}/metrics", headers=basic("prometheus", PASSWORD)))[0] == 200


async def test_a_right_password_is_checked_with_bcrypt_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checks: list[bytes] = []
    checkpw = bcrypt.checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        checks.append(password)
        return checkpw(password, hashed)

    monkeypatch.setattr(web_config.bcrypt, "checkpw", counting)
    config = WebConfigFile(write_config(tmp_path, USERS), reload_interval=RELOAD)
    right, wrong = basic("prometheus", PASSWORD), basic("prometheus", "guess")

    assert [await config.authorized(right["Authorization"]) for _ in range(3)] == [True] * 3
    assert [await config.authorized(wrong["Authorization"]) for _ in range(2)] == [False] * 2
    assert checks == [PASSWORD.encode(), b"guess", b"guess"]  # failures are never cached


async def test_the_cache_of_checks_is_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(web_config, "CACHE_SIZE", 3)
    users = {f"user{i}": bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode() for i in range(5)}
    text = "basic_auth_users:\n" + "".join(f"  {u}: {h}\n" for u, h in users.items())
    config = WebConfigFile(write_config(tmp_path, text), reload_interval=RELOAD)

    for user in users:
        assert await config.authorized(basic(user, "pw")["Authorization"])

    assert len(config._cache) == 3


# -- client certificates and versions -------------------------------------------------------


async def test_a_required_client_certificate(tmp_path: Path, pki: Pki) -> None:
    stranger_ca = issue("another CA", ca=True)
    stranger = issue("stranger", by=stranger_ca, client=True)
    async with serving(write_config(tmp_path, MUTUAL)) as served:
        metrics = f"{served.url}/metrics"
        assert (await get(metrics, context=pki.client_context(with_cert=True)))[0] == 200
        with pytest.raises(aiohttp.ClientError):  # the handshake fails
            await get(metrics, context=pki.client_context())
        with pytest.raises(aiohttp.ClientError):
            await get(metrics, context=pki.client_context(client=stranger))


async def test_a_client_certificate_verified_if_given(tmp_path: Path, pki: Pki) -> None:
    stranger = issue("stranger", by=issue("another CA", ca=True), client=True)
    text = MUTUAL.replace("RequireAndVerifyClientCert", "VerifyClientCertIfGiven")
    async with serving(write_config(tmp_path, text)) as served:
        metrics = f"{served.url}/metrics"
        assert (await get(metrics, context=pki.client_context()))[0] == 200
        assert (await get(metrics, context=pki.client_context(with_cert=True)))[0] == 200
        with pytest.raises(aiohttp.ClientError):
            await get(metrics, context=pki.client_context(client=stranger))


async def test_min_version_refuses_older_clients(tmp_path: Path, pki: Pki) -> None:
    async with serving(write_config(tmp_path, TLS + "  min_version: TLS13\n")) as served:
        metrics = f"{served.url}/metrics"
        assert (await get(metrics, context=pki.client_context()))[0] == 200
        with pytest.raises(aiohttp.ClientError):
            await get(metrics, context=pki.client_context(maximum=ssl.TLSVersion.TLSv1_2))


# -- reloads -------------------------------------------------------------------------------------


async def test_a_rotated_certificate_is_served_to_new_connections(tmp_path: Path, pki: Pki) -> None:
    async with serving(write_config(tmp_path, TLS)) as served:
        context = pki.client_context()
        assert await served_serial(served.url, context) == 1001

        pki.write_server(issue("gpuwork exporter", by=pki.ca, serial=1002))
        await asyncio.sleep(AFTER_RELOAD)

        assert await served_serial(served.url, context) == 1002
        assert (await get(f"{served.url}/metrics", context=context))[0] == 200


async def test_a_rotated_client_ca_and_auth_type_apply_without_a_restart(
    tmp_path: Path, pki: Pki
) -> None:
    path = write_config(tmp_path, TLS)
    async with serving(path) as served:
        metrics = f"{served.url}/metrics"
        assert (await get(metrics, context=pki.client_context()))[0] == 200

        path.write_text(MUTUAL)
        await asyncio.sleep(AFTER_RELOAD)

        assert (await get(metrics, context=pki.client_context(with_cert=True)))[0] == 200
        with pytest.raises(aiohttp.ClientError):
            await get(metrics, context=pki.client_context())


async def test_a_changed_password_applies_and_the_old_one_stops(tmp_path: Path) -> None:
    path = write_config(tmp_path, USERS)
    async with serving(path) as served:
        metrics = f"{served.url}/metrics"
        assert (await get(metrics, headers=basic("prometheus", PASSWORD)))[0] == 200

        new_hash = bcrypt.hashpw(b"rotated", bcrypt.gensalt(rounds=4)).decode()
        path.write_text(f"basic_auth_users:\n  prometheus: {new_hash}\n")
        await asyncio.sleep(AFTER_RELOAD)

        assert (await get(metrics, headers=basic("prometheus", PASSWORD)))[0] == 401
        assert (await get(metrics, headers=basic("prometheus", "rotated")))[0] == 200


@pytest.mark.parametrize(
    "change",
    ["yaml", "unknown_key", "not_bcrypt", "bad_cert", "mismatched_key", "to_plain_http"],
)
async def test_a_bad_change_at_run_time_keeps_the_last_good_config(
    tmp_path: Path, pki: Pki, change: str, logs: LogCapture
) -> None:
    path = write_config(tmp_path, TLS + USERS)
    async with serving(path) as served:
        context, metrics = pki.client_context(), f"{served.url}/metrics"
        right = basic("prometheus", PASSWORD)
        assert (await get(metrics, context=context, headers=right))[0] == 200

        if change == "yaml":
            path.write_text(TLS + USERS + "basic_auth_users: [\n")
        elif change == "unknown_key":
            path.write_text(TLS + "  cert_fiel: x.pem\n" + USERS)
        elif change == "not_bcrypt":
            path.write_text(TLS + "basic_auth_users:\n  prometheus: plaintext\n")
        elif change == "bad_cert":
            (pki.folder / "server.pem").write_text("not a certificate\n")
        elif change == "mismatched_key":
            (pki.folder / "server-key.pem").write_bytes(issue("other").key_pem)
        else:
            path.write_text(USERS)
        await asyncio.sleep(AFTER_RELOAD)
        answers = [await get(metrics, context=context, headers=right) for _ in range(3)]
        missing = await get(metrics, context=context)
        await asyncio.sleep(AFTER_RELOAD)
        serial = await served_serial(served.url, context)

    assert [status for status, _, _ in answers] == [200, 200, 200]
    assert missing[0] == 401  # the old users still apply
    assert serial == 1001
    errors = [entry for entry in logs.entries if entry["log_level"] == "error"]
    assert len(errors) == 1, logs.entries  # logged once, not at every look
    assert str(path) in errors[0]["error"]


async def test_a_fixed_file_is_picked_up_after_a_bad_change(tmp_path: Path, pki: Pki) -> None:
    path = write_config(tmp_path, TLS)
    async with serving(path) as served:
        context = pki.client_context()
        missing = TLS.replace("tls/server.pem", "tls/next.pem")
        path.write_text(missing)
        await asyncio.sleep(AFTER_RELOAD)
        assert await served_serial(served.url, context) == 1001  # next.pem is not there yet

        (pki.folder / "next.pem").write_bytes(pki.server.cert_pem)
        pki.write_server(issue("gpuwork exporter", by=pki.ca, serial=1003))
        (pki.folder / "next.pem").write_bytes(pki.server.cert_pem)
        await asyncio.sleep(AFTER_RELOAD)

        assert await served_serial(served.url, context) == 1003


# -- refused at start ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("tls_server_config: [\n", "not YAML at line"),
        ("- a list\n", "the file: expected a mapping"),
        ("tls_server_confg: {}\n", "unknown key 'tls_server_confg'"),
        ("http_server_config: {http2: false}\n", "http_server_config: not supported"),
        (TLS + "  cert_fiel: a.pem\n", "tls_server_config: unknown key 'cert_fiel'"),
        ("tls_server_config:\n  cert_file: tls/server.pem\n", "cert_file and key_file are both"),
        (TLS.replace("tls/server.pem", "tls/absent.pem"), "No such file or directory"),
        (TLS.replace("tls/server.pem", "tls/ca.pem"), "the key does not match the certificate"),
        (TLS.replace("tls/server.pem", "tls/server-key.pem"), "not a PEM certificate"),
        (TLS + "  client_auth_type: RequireAnyClientCert\n", "RequireAnyClientCert (a client"),
        (TLS + "  client_auth_type: Sometimes\n", "'Sometimes' is not one of NoClientCert"),
        (TLS + "  client_auth_type: RequireAndVerifyClientCert\n", "needs a client_ca_file"),
        (TLS + "  client_ca_file: tls/ca.pem\n", "client_auth_type is NoClientCert"),
        (MUTUAL.replace("tls/ca.pem", "tls/server-key.pem"), "client_ca_file"),
        (TLS + "  min_version: TLS10\n", "TLS10 is not supported, TLS12 is the lowest"),
        (TLS + "  min_version: TLS13\n  max_version: TLS12\n", "max_version is lower"),
        ("basic_auth_users:\n  prometheus: plaintext\n", "basic_auth_users.prometheus: not a"),
        ("basic_auth_users:\n  prometheus: 12\n", "not a bcrypt hash"),
        (f"basic_auth_users:\n  'a:b': {HASH}\n", "is not a user name"),
        ("basic_auth_users: [prometheus]\n", "basic_auth_users: expected a mapping"),
    ],
)
def test_a_bad_file_is_refused_at_start_naming_the_problem(
    tmp_path: Path, pki: Pki, text: str, problem: str
) -> None:
    path = write_config(tmp_path, text)
    with pytest.raises(WebConfigError) as refused:
        load_web_config(str(path))

    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"web config file {path}: ")
    assert problem in message


def test_an_encrypted_key_is_refused_without_a_prompt(tmp_path: Path, pki: Pki) -> None:
    encrypted = pki.server.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    )
    (pki.folder / "server-key.pem").write_bytes(encrypted)
    with pytest.raises(WebConfigError, match="the key is encrypted"):
        load_web_config(str(write_config(tmp_path, TLS)))


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(WebConfigError, match="cannot read it: No such file or directory"):
        load_web_config(str(tmp_path / "absent.yml"))


def test_main_exits_2_with_one_line_naming_the_problem(
    tmp_path: Path, pki: Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, TLS + "  cert_fiel: a.pem\n")

    assert main(["--simulate", "small", "--web.config.file", str(path)]) == 2

    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith(f"gpuwork-exporter: web config file {path}: ")
    assert "unknown key 'cert_fiel'" in captured.err


def test_main_reads_the_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GPUWORK_WEB_CONFIG_FILE", str(tmp_path / "absent.yml"))

    assert main(["--simulate", "small"]) == 2

    assert "absent.yml: cannot read it" in capsys.readouterr().err


# -- the real process ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def test_the_exporter_serves_https_with_basic_auth(tmp_path: Path, pki: Pki) -> None:
    port = free_port()
    base = f"https://{LOOPBACK}:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPUWORK_")}
    env["GPUWORK_WEB_CONFIG_FILE"] = str(write_config(tmp_path, TLS + USERS))
    argv = [sys.executable, "-m", "exporter", "--simulate", "small", "--collect.interval",
            "200ms", "--web.listen-address", f"{LOOPBACK}:{port}"]  # fmt: skip
    process = subprocess.Popen(argv, cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    context = pki.client_context()

    def fetch(path: str, headers: dict[str, str] | None = None) -> int:
        request = urllib.request.Request(f"{base}{path}", headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=5, context=context) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as error:
            return error.code

    try:
        deadline = time.monotonic() + 15
        while True:
            assert process.poll() is None, "the exporter exited before it was ready"
            with contextlib.suppress(OSError):
                if fetch("/readyz") == 200:
                    break
            assert time.monotonic() < deadline, "/readyz did not answer 200 in time"
            time.sleep(0.05)
        assert fetch("/healthz") == 200
        assert fetch("/metrics") == 401
        assert fetch("/metrics", basic("prometheus", PASSWORD)) == 200
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
        assert process.returncode == 0, stderr.decode()
        assert b"scheme=https" in stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
