"""Sections of ``docs/benchmarks.md``: each benchmark command owns the text between its
``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` markers and rewrites only that."""

from __future__ import annotations

from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def markers(section: str) -> tuple[str, str]:
    return f"<!-- {section}:start -->", f"<!-- {section}:end -->"


def write_section(section: str, block: str, doc: Path = DOC) -> None:
    """Replace the section's block in ``doc`` (or append it when the markers are absent).

    ``block`` must start and end with the section's markers (see :func:`markers`).
    """
    text = doc.read_text() if doc.exists() else "# Benchmarks\n\n"
    start, end = markers(section)
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    doc.write_text(text)
