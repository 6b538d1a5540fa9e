"""The AsyncAPI document and the JSON Schemas under docs/schemas: current with the models, and valid to the AsyncAPI
parser itself (npm @asyncapi/parser, pinned in tools/asyncapi; `make test` installs it)."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from streams.cli import app
from streams.runtime.topics import CONTRACT_TOPICS

ROOT = Path(__file__).resolve().parents[3]
COMMITTED = ROOT / "docs" / "schemas"
VALIDATOR = ROOT / "tools" / "asyncapi"


def parse(document: dict, tmp_path: Path) -> tuple[int, list[dict]]:
    """The parser's exit code and its diagnostics (and, last, what it parsed)."""
    if not (VALIDATOR / "node_modules" / "@asyncapi" / "parser").is_dir() or shutil.which("node") is None:
        pytest.fail("the AsyncAPI parser is not installed: `make test` runs `npm ci` in tools/asyncapi "
                    "(needs node and npm)")
    path = tmp_path / "asyncapi.json"
    path.write_text(json.dumps(document))
    done = subprocess.run(["node", "validate.mjs", str(path)], cwd=VALIDATOR, capture_output=True, text=True,
                          timeout=120)
    return done.returncode, [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def test_the_committed_schemas_are_what_patrol_schemas_writes_now(tmp_path):
    result = CliRunner().invoke(app, ["schemas", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    written = {p.name: p.read_text() for p in tmp_path.iterdir()}
    committed = {p.name: p.read_text() for p in COMMITTED.iterdir()}
    assert sorted(committed) == sorted(written)
    stale = [name for name in written if written[name] != committed[name]]
    assert not stale, f"docs/schemas is out of date: run `patrol schemas --out docs/schemas` ({stale})"


def test_the_asyncapi_parser_accepts_the_document_with_every_contract_topic(tmp_path):
    document = json.loads((COMMITTED / "asyncapi.json").read_text())
    code, diagnostics = parse(document, tmp_path)
    errors = [d for d in diagnostics if d.get("severity") == 0]
    assert code == 0 and not errors, errors
    assert sorted(diagnostics[-1]["channels"]) == sorted(CONTRACT_TOPICS)
    assert document["asyncapi"].startswith("3.0")
    # each topic says its key
    for channel in document["channels"].values():
        (ref,) = channel["messages"].values()
        message = document["components"]["messages"][ref["$ref"].rsplit("/", 1)[1]]
        assert message["bindings"]["kafka"]["key"]["description"].startswith("the record key")


def test_the_parser_refuses_a_document_that_breaks_the_specification(tmp_path):
    # the check above can fail: the same document with a message its channel does not have
    document = json.loads((COMMITTED / "asyncapi.json").read_text())
    broken = copy.deepcopy(document)
    operation = next(iter(broken["operations"].values()))
    operation["messages"] = [{"$ref": "#/channels/nowhere/messages/Nothing"}]
    code, diagnostics = parse(broken, tmp_path)
    assert code != 0 and any(d.get("severity") == 0 for d in diagnostics)
