"""Three Apache Kafka KRaft nodes on this machine: the production shape (deploy/kubernetes/20-kafka.yaml) for the
broker-failure tests.

Each node is broker and controller in one JVM, on free loopback ports, and all three are the controller quorum's
voters; one cluster id is formatted into each node's own log directory. Internal topics and every topic created
without saying otherwise get three replicas, and a write is acknowledged once two have it (min.insync.replicas),
so one node may fail without losing an acknowledged write. The nodes are children that die with us
(streams.operations.embedded.spawn_child), their data in a directory of the run that is removed when the cluster stops.
A node can be SIGKILLed and started again on its own data and ports, as a crashed broker is restarted.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import shutil
import signal
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from streams.runtime.clients import admin_at

from streams.operations.embedded import free_port, spawn_child, stop_child
from streams.operations.embedded_kafka import (START_TIMEOUT_S, claim_data_dir, cluster_id, fetch_libs, format_storage,
                                    java_command, server_properties, tail)

POLL_S = 0.2


class NodeExited(Exception):
    """A node we wait for has exited: no point in waiting longer."""


@dataclass
class KafkaNode:
    node_id: int
    port: int
    controller_port: int
    config: Path | None = None
    log: Path | None = None
    process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass(frozen=True)
class PartitionState:
    """Where one partition stands: its leader (-1 while it has none), its replicas and those in sync."""

    topic: str
    partition: int
    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


class KafkaCluster:
    """A KRaft cluster of `size` nodes (each broker and controller) on free loopback ports, its data in the
    workdir. `partitions`: of a topic the cluster creates on first use (auto.create.topics.enable)."""

    idempotence = True  # Kafka grants producer ids: our producers are idempotent on it

    def __init__(self, workdir: Path, cache_dir: Path, partitions: int = 1, size: int = 3):
        self.workdir = Path(workdir)
        self.cache_dir = Path(cache_dir)
        self.partitions = partitions
        ports: list[int] = []
        while len(ports) < 2 * size:
            if (port := free_port()) not in ports:
                ports.append(port)
        self.nodes = {i: KafkaNode(i, ports[2 * i - 2], ports[2 * i - 1]) for i in range(1, size + 1)}
        self.data: Path | None = None
        self._java: list[str] = []
        self._owner = None  # a lock on the data directory, held while we live

    @property
    def bootstrap(self) -> str:
        """Every node's address: a client reaches the cluster through whichever answers."""
        return ",".join(node.address for node in self.nodes.values())

    def start(self) -> "KafkaCluster":
        libs = fetch_libs(self.cache_dir)
        self.data, self._owner = claim_data_dir(self.workdir)
        self._java = java_command(libs, self.data)
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes.values())
        cid = cluster_id()
        try:
            for node in self.nodes.values():
                home = self.data / f"node-{node.node_id}"
                home.mkdir()
                node.config = home / "server.properties"
                node.config.write_text(server_properties(
                    node.port, node.controller_port, home / "logs", self.partitions, node_id=node.node_id,
                    voters=voters, replicas=len(self.nodes)))
                node.log = self.workdir / f"kafka-node-{node.node_id}.log"
            with concurrent.futures.ThreadPoolExecutor(len(self.nodes)) as pool:
                # one cluster id in every node's log directory, as `kafka-storage.sh format` on each node does
                list(pool.map(lambda n: format_storage(self._java, cid, n.config), self.nodes.values()))
                for node in self.nodes.values():
                    self._spawn(node)
                # in a thread of its own, so that start() may be called inside a running event loop
                pool.submit(asyncio.run, self._until_registered(set(self.nodes), START_TIMEOUT_S)).result()
        except Exception as exc:
            self.stop()
            logs = "\n".join(f"{n.log}:\n{tail(n.log, 1500)}" for n in self.nodes.values() if n.log)
            raise RuntimeError(f"the Kafka cluster did not start: {exc}\n{logs}") from exc
        return self

    def _spawn(self, node: KafkaNode) -> None:
        node.process = spawn_child([*self._java, "kafka.Kafka", str(node.config)], log=node.log,
                                   death_signal=signal.SIGKILL)

    def kill(self, node_id: int) -> None:
        """A crash of one node: SIGKILL, no controlled shutdown; its data stays for a restart."""
        node = self.nodes[node_id]
        node.process.send_signal(signal.SIGKILL)
        node.process.wait(10)

    def shut_down(self, node_id: int, timeout: float = 60.0) -> None:
        """A controlled shutdown of one node (SIGTERM: it hands its leaderships over first), as a rolling restart
        does; its data stays for a restart. It blocks until the node is gone: in async code, run it in a thread."""
        stop_child(self.nodes[node_id].process, signal.SIGTERM, timeout)

    async def restart(self, node_id: int, timeout: float = START_TIMEOUT_S) -> None:
        """Start a node that was killed again, on its own data and ports; returns once the cluster's metadata
        names it again (it may still be catching up: `until_in_sync`)."""
        node = self.nodes[node_id]
        if node.alive:
            raise RuntimeError(f"node {node_id} is running")
        self._spawn(node)
        await self._until_registered({node_id}, timeout)

    async def leader(self, topic: str, partition: int) -> int:
        """The node leading `topic`'s `partition` now (-1 while none does)."""
        for state in await self.partition_states([topic]):
            if state.partition == partition:
                return state.leader
        raise LookupError(f"{topic} has no partition {partition}")

    async def partition_states(self, topics: list[str] | None = None) -> list[PartitionState]:
        """Leader, replicas and in-sync replicas of every partition of `topics` (all topics when None)."""
        async def describe(admin: AIOKafkaAdminClient) -> list[dict]:
            return await admin.describe_topics(topics if topics is not None else await admin.list_topics())

        described = await self._ask(describe)
        states = []
        for topic in described:
            if topic["error_code"]:
                raise LookupError(f"{topic['topic']}: error code {topic['error_code']}")
            for p in topic["partitions"]:
                states.append(PartitionState(topic["topic"], p["partition"], p["leader"], tuple(p["replicas"]),
                                             tuple(p["isr"])))
        return states

    async def until_in_sync(self, node_id: int, timeout: float = 120.0) -> None:
        """Until `node_id` is in the in-sync replicas of every partition it holds a replica of, every topic's."""
        async def in_sync() -> bool:
            lagging = [s for s in await self.partition_states() if node_id in s.replicas and node_id not in s.isr]
            return not lagging

        await _until(in_sync, timeout, f"node {node_id} rejoining every in-sync replica set")

    async def _until_registered(self, node_ids: set[int], timeout: float) -> None:
        """Until a metadata request names the nodes: the controllers registered them and they take requests."""
        async def registered() -> bool:
            for node_id in node_ids:
                node = self.nodes[node_id]
                if not node.alive:
                    raise NodeExited(f"Kafka node {node_id} exited with code {node.process.returncode}; "
                                       f"its log, {node.log}:\n{tail(node.log)}")
            async with self._admin() as admin:
                brokers = {b["node_id"] for b in (await admin.describe_cluster())["brokers"]}
            return node_ids <= brokers

        await _until(registered, timeout, f"Kafka nodes {sorted(node_ids)} answering metadata requests")

    async def _ask(self, request: Callable[[AIOKafkaAdminClient], Awaitable], timeout: float = 30.0):
        """`request`'s answer from the cluster. The admin client sends to a node of the metadata it has, and
        that may be one just killed, which the cluster names until the controller fences it: then again."""
        answer = []

        async def answered() -> bool:
            async with self._admin() as admin:
                answer.append(await request(admin))
            return True

        await _until(answered, timeout, "answer from the cluster")
        return answer[0]

    def _admin(self) -> "_Admin":
        live = [n.address for n in self.nodes.values() if n.alive] or [self.bootstrap]
        return _Admin(",".join(live))

    def stop(self) -> None:
        # SIGKILL, all at once: the data goes anyway, and a controlled shutdown of the last nodes would wait for
        # a controller quorum that has already gone
        for node in self.nodes.values():
            if node.process is not None:
                stop_child(node.process, signal.SIGKILL)
        if self.data is not None:
            shutil.rmtree(self.data, ignore_errors=True)
        if self._owner is not None:
            self._owner.close()


class _Admin:
    """An admin client for one request or a few: started on entry, closed on exit."""

    def __init__(self, bootstrap: str):
        self.client = admin_at(bootstrap, request_timeout_ms=5000)

    async def __aenter__(self) -> AIOKafkaAdminClient:
        try:
            await self.client.start()
        except BaseException:
            await self.client.close()
            raise
        return self.client

    async def __aexit__(self, *exc) -> None:
        await self.client.close()


async def _until(probe: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    """Await `probe()` until it is true; a Kafka error of a node that is on its way (a refused connection, a
    partition without a leader yet) is one more try; a node that exited ends the wait at once."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Exception | None = None
    while True:
        try:
            if await probe():
                return
        except NodeExited:
            raise
        except Exception as exc:  # noqa: BLE001 - a cluster on its way answers with all sorts of errors
            last = exc
        if loop.time() > deadline:
            raise TimeoutError(f"no {what} within {timeout:.0f} s" + (f" (last error: {last!r})" if last else ""))
        await asyncio.sleep(POLL_S)
