"""Writing one section of docs/BENCHMARKS.md from a benchmark that runs on its own."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS_MD = ROOT / "docs" / "BENCHMARKS.md"


def replace_section(document: str, heading: str, new_section: str) -> str:
    """`document` with the section under `heading` (up to the next "## ") replaced by, or appended as, the new one."""
    start = document.find(heading)
    if start < 0:
        return document.rstrip("\n") + "\n\n" + new_section
    end = document.find("\n## ", start + len(heading))
    return document[:start] + new_section + ("" if end < 0 else document[end:])


def update_section(heading: str, new_section: str, path: Path = BENCHMARKS_MD) -> None:
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    path.write_text(replace_section(text, heading, new_section))
    print(f"updated {path}")
