"""Sections of BENCHMARKS.md and the file they are kept in."""

from __future__ import annotations

import platform
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

BENCHMARKS_MD = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
_SECTION = re.compile(
    r"<!-- bench:(?P<name>[a-z_]+):begin -->\n(?P<body>.*?)"
    r"<!-- bench:(?P=name):end -->",
    re.DOTALL,
)


@dataclass
class Section:
    """One benchmark's results: a title, rows of figures, and notes."""

    name: str
    title: str
    command: str
    rows: list[tuple[str, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, what: str, figure: str, against_baseline: str = "") -> None:
        self.rows.append((what, figure, against_baseline))

    def render(self) -> str:
        measured = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        lines = [
            f"## {self.title}",
            "",
            f"Command: `{self.command}`; measured {measured} on "
            f"{platform.machine()}, Python {platform.python_version()}.",
            "",
            "| measurement | figure | against the baseline |",
            "|---|---|---|",
            *(f"| {a} | {b} | {c} |" for a, b, c in self.rows),
        ]
        if self.notes:
            lines += ["", *(f"- {note}" for note in self.notes)]
        return "\n".join(lines) + "\n"


HEADER = """# Benchmarks

Produced by `make bench` (all) or `.venv/bin/python -m bench NAME` (one section).
Every figure stands beside a baseline measured in the same run on the same machine,
which is shared and noisy: read the ratios, not the absolute numbers.
"""


def write_sections(sections: list[Section], path: Path = BENCHMARKS_MD) -> None:
    """Replace the named sections in BENCHMARKS.md, keeping the others as they were."""
    kept: dict[str, str] = {}
    if path.exists():
        for match in _SECTION.finditer(path.read_text(encoding="utf-8")):
            kept[match.group("name")] = match.group("body")
    for section in sections:
        kept[section.name] = section.render()
    parts = [HEADER]
    for name in sorted(kept):
        parts.append(
            f"<!-- bench:{name}:begin -->\n{kept[name]}<!-- bench:{name}:end -->"
        )
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
