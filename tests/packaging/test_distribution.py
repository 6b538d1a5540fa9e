"""The distribution as someone installs it: the wheel carries its data, installs into a fresh virtual environment
and runs the main job; the image's lock file matches the pins; the licence and changelog ship."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _pins(requirements: list[str]) -> dict[str, str]:
    pins = {}
    for requirement in requirements:
        name, _, version = requirement.partition("==")
        pins[re.sub(r"[-_.]+", "-", name.split("[")[0]).lower()] = version
    return pins


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--wheel-dir", str(out), str(ROOT)], check=True, capture_output=True, timeout=600)
    (built,) = out.glob("patrol_dispatch-*.whl")
    return built


def test_the_wheel_carries_the_data_the_verbs_read(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("processors/data/catalogue.yaml", "processors/data/roster.jsonl", "streams/samples/reports.jsonl",
                   "streams/sink/migrations/0001_audit_log.sql", "streams/__main__.py"):
        assert needed in names, needed
    assert any(name.endswith("licenses/LICENSE") or name.endswith("/LICENSE") for name in names)


@pytest.mark.integration
def test_patrol_up_sample_runs_from_the_wheel_in_a_fresh_environment(wheel, tmp_path):
    # a fresh environment with the wheel and its pinned dependencies (pip's cache serves them), run from a
    # directory with no source tree in it: what was not packaged is not there
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", f"{wheel}[embedded]"],
                             capture_output=True, text=True, timeout=1200)
    assert install.returncode == 0, install.stderr[-3000:]
    work = tmp_path / "elsewhere"
    work.mkdir()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PATROL_") and k != "PYTHONPATH"}
    version = subprocess.run([str(env_dir / "bin" / "patrol"), "--version"], cwd=work, env=clean,
                             capture_output=True, text=True, timeout=120)
    assert version.stdout.strip() == f"patrol-dispatch {PYPROJECT['project']['version']}"
    up = subprocess.run([str(env_dir / "bin" / "patrol"), "up", "--sample"], cwd=work, capture_output=True,
                        text=True, timeout=900, env={**clean, "PATROL_DATA_DIR": str(tmp_path / "data"),
                                                     "PATROL_EMBEDDED_BROKER": os.environ.get(
                                                         "PATROL_EMBEDDED_BROKER", "auto")})
    assert up.returncode == 0, (up.stdout[-3000:], up.stderr[-3000:])
    assert "incidents created" in up.stdout


def test_the_image_lock_pins_what_pyproject_pins():
    lock = (ROOT / "requirements.lock").read_text()
    locked = dict(re.findall(r"^([A-Za-z0-9_.-]+)==([^\s\\]+)", lock, re.M))
    locked = {re.sub(r"[-_.]+", "-", k).lower(): v for k, v in locked.items()}
    for name, version in _pins(PYPROJECT["project"]["dependencies"]).items():
        assert locked.get(name) == version, f"{name}: pyproject pins {version}, requirements.lock has " \
                                            f"{locked.get(name)} (run `make lock`)"
    # the extras stay out of the image
    for extra in ("bench", "dashboards", "embedded", "dev"):
        for name in _pins(PYPROJECT["project"]["optional-dependencies"][extra]):
            if name not in _pins(PYPROJECT["project"]["dependencies"]):
                assert name not in locked, f"{name} ({extra}) is in requirements.lock"
    assert lock.count("--hash=sha256:") >= len(locked)
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "--require-hashes -r /tmp/requirements.lock" in dockerfile


def test_licence_and_changelog_ship_with_the_source():
    assert "Apache License" in (ROOT / "LICENSE").read_text() and PYPROJECT["project"]["license"] == "Apache-2.0"
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## {PYPROJECT['project']['version']}" in changelog
