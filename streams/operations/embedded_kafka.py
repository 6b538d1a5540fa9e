"""The embedded Apache Kafka broker: a single KRaft node (broker and controller in one JVM) for development and tests.

Its jars come from Maven Central through `deploy/kafka/pom.xml` (which pins the version), copied once into a cache
directory and reused. The broker runs as a child that cannot outlive us (streams.operations.embedded.spawn_child), on free
loopback ports, with its data in a directory of its own under the workdir that is removed when it stops: every run
starts on an empty broker, as with Tansu. Which embedded broker a run gets is `choose_broker`'s rule.

Secured (`secure=True`), its one client listener is SASL_SSL with SCRAM-SHA-512 users, one per principal of
streams/operations/access.py (and the set-up super user access.ADMIN), behind the ACLs of that table; its certificate is signed
by a CA of its own run (streams/operations/embedded_kafka_security.py). `client_settings` connects as a principal.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import fcntl
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from typing import TYPE_CHECKING

from streams.operations.access import ADMIN, principals
from streams.operations.embedded import client_settings, free_port, spawn_child, stop_child, wait_for_port
from streams.operations.maven import copy_dependencies, fill_once, pom_property

if TYPE_CHECKING:
    from streams.operations.embedded_kafka_security import BrokerSecurity
    from streams.settings import Settings

POM = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "pom.xml"
# the jars without which `kafka.Kafka` does not start, or starts without a log
REQUIRED_JARS = ("kafka_2.13-{v}.jar", "kafka-clients-{v}.jar", "kafka-server-{v}.jar", "kafka-raft-{v}.jar",
                 "kafka-metadata-{v}.jar", "scala-library-", "log4j-core-", "log4j-slf4j-impl-", "slf4j-api-")
START_TIMEOUT_S = 90.0


def kafka_version(pom: Path = POM) -> str:
    """The Kafka version the pom pins (its `kafka.version` property): named there only."""
    return pom_property(pom, "kafka.version")


def choose_broker(choice: str, which: Callable[[str], str | None] = shutil.which, pom: Path = POM) -> str:
    """"kafka" or "tansu" for PATROL_EMBEDDED_BROKER's `choice`: auto takes Kafka where `java` and `mvn` are on the
    PATH (and the pom is there, as in a clone of the repository), Tansu otherwise; the others are taken as said."""
    if choice in ("kafka", "tansu"):
        return choice
    if choice != "auto":
        raise ValueError(f"PATROL_EMBEDDED_BROKER must be kafka, tansu or auto, not {choice!r}")
    return "kafka" if which("java") and which("mvn") and pom.exists() else "tansu"


def _missing_jars(libs: Path, version: str) -> list[str]:
    names = [p.name for p in libs.glob("*.jar")] if libs.is_dir() else []
    return [j.format(v=version) for j in REQUIRED_JARS if not any(n.startswith(j.format(v=version)) for n in names)]


def fetch_libs(cache_dir: Path, pom: Path = POM) -> Path:
    """The directory of Kafka's jars: `<cache_dir>/kafka-<version>/libs`, copied there by Maven on first use
    (once, whoever else asks at the same time: streams.operations.maven.fill_once)."""
    version = kafka_version(pom)

    def copy(directory: Path) -> None:
        try:
            copy_dependencies(pom, directory, f"Apache Kafka {version}")
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n(PATROL_EMBEDDED_BROKER=tansu runs the embedded Tansu broker instead)") from exc
        if missing := _missing_jars(directory, version):
            raise RuntimeError(f"Maven fetched Apache Kafka {version} without {', '.join(missing)}")

    return fill_once(Path(cache_dir).expanduser() / f"kafka-{version}" / "libs",
                     lambda libs: not _missing_jars(libs, version), copy)


def cluster_id() -> str:
    """What `kafka-storage random-uuid` prints: 16 random bytes in URL-safe base64 without padding, and, as Kafka's
    own Uuid.randomUuid makes sure, not starting with "-": the storage tool would read it as an option (one id in
    64 did, and the broker never started)."""
    while True:
        candidate = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not candidate.startswith("-"):
            return candidate


def server_properties(port: int, controller_port: int, log_dirs: Path, partitions: int, listener: str = "PLAINTEXT",
                      security: list[str] = (), *, node_id: int = 1, voters: str | None = None, replicas: int = 1) -> str:
    """One KRaft node's configuration, broker and controller in one JVM. `listener`: the client listener's name and
    protocol (PLAINTEXT or SASL_SSL, whose settings `security` holds). Alone by default; in a cluster
    (streams/operations/kafka_cluster.py) `voters` names every node's controller and `replicas` is the cluster's size."""
    listeners = f"{listener}://127.0.0.1:{port}"
    # a write is acknowledged once two replicas have it (one, alone): one node may fail without losing it
    in_sync = min(2, replicas)
    return "\n".join([
        "process.roles=broker,controller",
        f"node.id={node_id}",
        f"controller.quorum.voters={voters or f'{node_id}@127.0.0.1:{controller_port}'}",
        f"listeners={listeners},CONTROLLER://127.0.0.1:{controller_port}",
        f"advertised.listeners={listeners}",
        "controller.listener.names=CONTROLLER",
        f"listener.security.protocol.map=CONTROLLER:PLAINTEXT,{listener}:{listener}",
        f"inter.broker.listener.name={listener}",
        f"log.dirs={log_dirs}",
        # alone, every internal topic must make do with one replica; in a cluster each has one on every node
        f"offsets.topic.replication.factor={replicas}",
        f"transaction.state.log.replication.factor={replicas}",
        f"transaction.state.log.min.isr={in_sync}",
        f"share.coordinator.state.topic.replication.factor={replicas}",
        f"share.coordinator.state.topic.min.isr={in_sync}",
        f"default.replication.factor={replicas}",
        f"min.insync.replicas={in_sync}",
        # fewer partitions of the internal topics than the 50 a cluster has: quicker to create, nothing to spread
        "offsets.topic.num.partitions=4",
        "transaction.state.log.num.partitions=4",
        # a group's first member is not held back 3 s in case others join
        "group.initial.rebalance.delay.ms=0",
        # a topic a client writes to before it was created (by ensure_topics) comes into being, as on Tansu
        "auto.create.topics.enable=true",
        f"num.partitions={partitions}",
        *security,
        "",
    ])


# the broker's own log, warnings and up, to its stdout, which spawn_child sends to kafka.log in the workdir
LOG4J2 = """\
status = warn
shutdownHook = disable
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.out.ref = out
"""

JVM_OPTIONS = [
    "-Xms64m", "-Xmx512m",
    # a small heap on a small machine: the serial collector keeps no threads of its own busy
    "-XX:+UseSerialGC", "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
]


class EmbeddedKafka:
    """A single-node Apache Kafka (KRaft, combined mode) on free loopback ports, its data in the workdir."""

    idempotence = True  # it grants producer ids: our producers are idempotent on it

    def __init__(self, workdir: Path, cache_dir: Path, partitions: int = 1, secure: bool = False,
                 app_id: str = "patrol-dispatch"):
        """`partitions`: of a topic the broker creates on first use (auto.create.topics.enable). `secure`: SASL_SSL,
        SCRAM users and the ACLs of streams/operations/access.py for the app id `app_id` (see the module's docstring)."""
        self.workdir = Path(workdir)
        self.cache_dir = Path(cache_dir)
        self.partitions = partitions
        self.secure = secure
        self.app_id = app_id
        self.security: "BrokerSecurity | None" = None  # once started secured: its CA file and passwords
        self.port = free_port()
        self.controller_port = free_port()
        while self.controller_port == self.port:
            self.controller_port = free_port()
        self.process: subprocess.Popen | None = None
        self.data: Path | None = None
        self._owner = None  # a lock on the data directory, held while we live

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client_settings(self, settings: "Settings", principal: str = ADMIN) -> "Settings":
        """`settings` pointed at this broker, connecting as `principal` (a name of streams.operations.access) when it is
        secured."""
        plain = client_settings(settings, self)
        return plain if self.security is None else plain.with_overrides(**self.security.client_options(principal))

    def start(self) -> "EmbeddedKafka":
        libs = fetch_libs(self.cache_dir)
        self.data, self._owner = claim_data_dir(self.workdir)
        config = self.data / "server.properties"
        listener, security, scram = "PLAINTEXT", [], []
        if self.secure:
            # imported here: it needs `cryptography` (the embedded extra), which a plaintext broker does not
            from streams.operations.embedded_kafka_security import LISTENER, BrokerSecurity

            self.security = BrokerSecurity.create(self.data, list(principals(self.app_id)))
            listener, security, scram = LISTENER, self.security.server_properties(), self.security.scram_arguments()
        config.write_text(server_properties(self.port, self.controller_port, self.data / "logs", self.partitions,
                                            listener, security))
        java = java_command(libs, self.data)
        log = self.workdir / "kafka.log"
        try:
            format_storage(java, cluster_id(), config, scram)
            self.process = spawn_child([*java, "kafka.Kafka", str(config)], log=log, death_signal=signal.SIGKILL)
            wait_for_port(self.port, START_TIMEOUT_S, self.process, "the embedded Kafka")
            self._wait_for_metadata(START_TIMEOUT_S)
            if self.secure:
                self._as_admin(self._grant, timeout=START_TIMEOUT_S)
        except Exception as exc:
            self.stop()
            raise RuntimeError(f"{exc}; its log, {log}:\n{tail(log)}") from exc
        return self

    def _as_admin(self, work: Callable, timeout: float):
        """`await work(admin)` with a started admin client of the set-up principal, tried until it returns a truthy
        value (or `timeout`); its value.

        Each try runs in a thread of its own, so that start() may be called inside a running event loop."""
        from streams.runtime.clients import admin_at

        options = self._options(ADMIN)

        async def attempt():
            admin = admin_at(self.bootstrap, options, request_timeout_ms=5000)
            try:
                await admin.start()
                return await work(admin)
            finally:
                await admin.close()

        deadline = time.monotonic() + timeout
        last: Exception | None = None
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"the embedded Kafka exited with code {self.process.returncode}")
                try:
                    if done := pool.submit(asyncio.run, attempt()).result():
                        return done
                except Exception as exc:  # noqa: BLE001 - not up yet; said if it never is
                    last = exc
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the embedded Kafka did not answer {getattr(work, '__name__', work)} "
                                       f"within {timeout:.0f} s (last: {last!r})")
                time.sleep(0.2)

    def _options(self, principal: str) -> dict:
        if self.security is None:
            return {}
        from streams.settings import Settings

        return Settings(**self.security.client_options(principal)).kafka_client_options()

    def _wait_for_metadata(self, timeout: float) -> None:
        """Until a metadata request names this broker: the controller has registered it and it takes topics."""
        async def registered(admin) -> bool:
            return bool((await admin.describe_cluster()).get("brokers"))

        self._as_admin(registered, timeout)

    async def _grant(self, admin) -> bool:
        """Create the ACLs of streams/operations/access.py; true once the broker's authorizer holds them all (the controller
        commits them, the broker applies them a moment later), so that none is refused for being early."""
        from streams.operations.embedded_kafka_security import acl_bindings, create_acls, described_acls

        wanted = acl_bindings(principals(self.app_id))
        if missing := wanted - await described_acls(admin):
            await create_acls(admin, missing)
        return wanted <= await described_acls(admin)

    def stop(self) -> None:
        if self.process is not None:
            # SIGTERM: a controlled shutdown (the data goes with it anyway, but a clean exit logs nothing alarming)
            stop_child(self.process, signal.SIGTERM, timeout=20)
        if self.data is not None:
            shutil.rmtree(self.data, ignore_errors=True)
        if self._owner is not None:
            self._owner.close()


def claim_data_dir(workdir: Path):
    """A new data directory of ours under `workdir` (`kafka-*-data`, with log4j2.properties in it) and the open
    lock file that marks it as a live run's; the data of runs that were killed is removed first."""
    workdir.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(workdir)
    # locked before it is named as data, so that no other run's sweep takes it for abandoned
    new = Path(tempfile.mkdtemp(prefix="kafka-", suffix="-new", dir=workdir))
    owner = open(new / ".owner", "w")
    fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
    data = new.rename(new.with_name(new.name.removesuffix("-new") + "-data"))
    (data / "log4j2.properties").write_text(LOG4J2)
    return data, owner


def java_command(libs: Path, data: Path) -> list[str]:
    """The JVM, its options and class path, logging as `data`/log4j2.properties says: add a main class."""
    return ["java", *JVM_OPTIONS, f"-Dlog4j2.configurationFile={data / 'log4j2.properties'}", "-cp", f"{libs}/*"]


def format_storage(java: list[str], cluster_id: str, config: Path, extra: list[str] = ()) -> None:
    """What `kafka-storage.sh format` does: a KRaft node starts only on a formatted log directory. `extra`: more
    arguments (the SCRAM users of a secured broker)."""
    formatted = subprocess.run(
        [*java, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config), *extra],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    if formatted.returncode != 0:
        raise RuntimeError(f"kafka-storage format failed:\n{(formatted.stdout + formatted.stderr)[-3000:]}")


def _remove_abandoned(workdir: Path) -> None:
    """Remove the data directories of brokers whose parent was killed (stop() never ran): their lock is free."""
    for data in workdir.glob("kafka-*-data"):
        try:
            with open(data / ".owner", "a") as owner:
                fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
                shutil.rmtree(data, ignore_errors=True)
        except OSError:  # held: a broker of a live run
            continue


def tail(log: Path, chars: int = 3000) -> str:
    try:
        return log.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


if __name__ == "__main__":
    # `python -m streams.operations.embedded_kafka`: the embedded broker this environment gets (the Makefile asks)
    from streams.settings import Settings

    print(choose_broker(Settings().embedded_broker))
