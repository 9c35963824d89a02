"""Writing one section of docs/BENCHMARKS.md from a benchmark that runs on its own."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS_MD = ROOT / "docs" / "BENCHMARKS.md"


def headings(document: str) -> list[str]:
    """The "## " headings of `document`, in order."""
    return [line for line in document.splitlines() if line.startswith("## ")]


def section_of(document: str, heading: str) -> str | None:
    """The section under `heading` (up to the next "## ", no trailing blank line), or None when there is none."""
    start = document.find(heading)
    if start < 0:
        return None
    end = document.find("\n## ", start + len(heading))
    return (document[start:] if end < 0 else document[start:end]).rstrip("\n") + "\n"


def replace_section(document: str, heading: str, new_section: str) -> str:
    """`document` with its section under `heading` replaced by, or appended as, the new one."""
    old = section_of(document, heading)
    if old is None:
        return document.rstrip("\n") + "\n\n" + new_section
    return document.replace(old, new_section, 1)


def update_section(heading: str, new_section: str, path: Path = BENCHMARKS_MD) -> None:
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    path.write_text(replace_section(text, heading, new_section))
    print(f"updated {path}")
