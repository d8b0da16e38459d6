"""The operators' audit trail: who replayed or re-drove what, over which window.

One JSON object per line in ``<data dir>/audit/operations.jsonl``, and the same line in
the log. The file is local to the machine the command ran on.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def audit_path(data_dir: Path) -> Path:
    return data_dir / "audit" / "operations.jsonl"


def operator() -> str:
    """The OS user running the command."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


def write_audit(data_dir: Path, what: str, **details: Any) -> dict[str, Any]:
    """Append one audit line (who, what, when, details) and log it."""
    entry: dict[str, Any] = {
        "at": datetime.now(UTC).isoformat(),
        "who": operator(),
        "what": what,
        **details,
    }
    path = audit_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry, default=str) + "\n")
    log.info("audit: %s", what, extra={"audit": entry})
    return entry


def read_audit(data_dir: Path) -> list[dict[str, Any]]:
    path = audit_path(data_dir)
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]
