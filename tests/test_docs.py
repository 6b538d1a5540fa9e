"""The repository's documents stand on their own: a clone has no ../shared/, and every relative link in a
Markdown file reaches a file of the clone."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"\]\((?!https?://|mailto:|#)([^)#\s]+)(?:#[^)]*)?\)")


def tracked() -> list[Path]:
    names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [ROOT / name for name in names.splitlines()]


def test_no_file_points_at_a_directory_outside_the_repository():
    pointing = []
    for path in tracked():
        if path.suffix in {".png", ".json"} or path == Path(__file__).resolve():
            continue
        text = path.read_text(errors="replace") if path.is_file() else ""
        if "../shared/" in text:
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
