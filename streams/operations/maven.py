"""Java artifacts from Maven Central, fetched by Maven from a small pom in the repository into a cache directory:
Apache Kafka's jars for the embedded broker (deploy/kafka/pom.xml), Strimzi's API model and CRD generator for the
deployment tests (deploy/strimzi/pom.xml). Each pom names its version once, as a property read from here."""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

FETCH_TIMEOUT_S = 600.0
_MAVEN_NS = {"m": "http://maven.apache.org/POM/4.0.0"}


def pom_property(pom: Path, name: str) -> str:
    """The value of the property `name` of `pom` (e.g. the version it pins)."""
    node = ET.parse(pom).getroot().find(f"m:properties/m:{name}", _MAVEN_NS)
    if node is None or not (node.text or "").strip():
        raise RuntimeError(f"{pom} does not name {name}")
    return node.text.strip()


def copy_dependencies(pom: Path, directory: Path, what: str) -> None:
    """Copy the dependencies `pom` names, and theirs, into `directory`; `what` names them in an error."""
    done = subprocess.run(
        ["mvn", "-q", "-B", "-Dstyle.color=never", "-f", str(pom), "dependency:copy-dependencies",
         f"-DoutputDirectory={directory}"],
        capture_output=True, text=True, timeout=FETCH_TIMEOUT_S, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise RuntimeError(f"Maven could not fetch {what} ({pom}):\n{(done.stdout + done.stderr)[-3000:]}")


def fill_once(target: Path, complete: Callable[[Path], bool], fill: Callable[[Path], None]) -> Path:
    """`target`, filled by `fill(directory)` unless it is `complete` already.

    A lock beside it makes concurrent first uses (two test runs, two clones) fill it once; `fill` writes into a
    scratch directory that is renamed into place, so an interrupted fill never leaves a half-filled `target`."""
    if complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if complete(target):  # another process filled it while we waited
            return target
        scratch = Path(tempfile.mkdtemp(prefix=f"{target.name}-", dir=target.parent))
        try:
            fill(scratch)
            if not complete(scratch):
                raise RuntimeError(f"{target.name} was not filled: {sorted(p.name for p in scratch.iterdir())[:20]}")
            shutil.rmtree(target, ignore_errors=True)
            scratch.rename(target)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return target
