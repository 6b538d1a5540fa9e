"""The repository's documents stand on their own: a clone has no directory beside it, and every relative link in a
Markdown file reaches a file of the clone."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"\]\((?!https?://|mailto:|#)([^)#\s]+)(?:#[^)]*)?\)")


def tracked() -> list[Path]:
    names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [ROOT / name for name in names.splitlines()]


# the design notes' directory beside the repository, which a clone does not have (spelled in two parts so
# that this file does not point there itself)
OUTSIDE = "../" + "shared/"


def test_no_file_points_at_a_directory_outside_the_repository():
    pointing = []
    for path in tracked():
        if path.suffix in {".png", ".json"}:
            continue
        text = path.read_text(errors="replace") if path.is_file() else ""
        if OUTSIDE in text:
            pointing.append(str(path.relative_to(ROOT)))
    assert pointing == []


def test_relative_links_in_the_documents_reach_files_of_the_repository():
    broken = []
    for doc in (p for p in tracked() if p.suffix == ".md"):
        for target in LINK.findall(doc.read_text()):
            resolved = (doc.parent / target).resolve()
            if not resolved.exists() or ROOT not in resolved.parents and resolved != ROOT:
                broken.append(f"{doc.relative_to(ROOT)} -> {target}")
    assert broken == []


def test_the_contract_lists_every_setting_and_every_verb():
    from typer.main import get_command

    from streams.cli import app
    from streams.settings import Settings

    contract = (ROOT / "docs" / "contracts.md").read_text()
    missing = [f"PATROL_{name.upper()}" for name in Settings.model_fields if f"PATROL_{name.upper()}`" not in contract]
    assert not missing, f"docs/contracts.md (Settings: every one) lacks {missing}"
    verbs = sorted(get_command(app).commands)
    undocumented = [verb for verb in verbs if f"`patrol {verb}" not in contract]
    assert not undocumented, f"docs/contracts.md (CLI: every verb) lacks {undocumented}"


def test_no_issue_number_or_commit_is_cited_as_a_source():
    cited = []
    for path in tracked():
        if path.suffix not in {".md", ".py", ".yaml", ".yml"} or "schemas" in path.parts:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        cited += [f"{path.relative_to(ROOT)}: {m.group(0)}"
                  for m in re.finditer(r"\bissues? #?\d+(?: and \d+)?\b|\bas of commit [0-9a-f]{7,}", text, re.I)]
    assert not cited, cited


def test_the_readme_architecture_names_every_package_of_the_shell():
    readme = (ROOT / "README.md").read_text()
    architecture = readme[readme.index("## Architecture"):readme.index("\n## ", readme.index("## Architecture") + 3)]
    packages = sorted(p.parent.name for p in (ROOT / "streams").glob("*/__init__.py")
                      if p.parent.name not in {"samples"} and "migrations" not in p.parts)
    missing = [name for name in packages if f"`streams/{name}/`" not in architecture]
    assert not missing, f"README's architecture section does not describe {missing}"
