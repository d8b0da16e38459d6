"""JSON Schema files of the events lockerlink publishes, for locker vendors."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from schemas.locker_order import SCHEMA_VERSION, LockerOrderEvent
from schemas.token_rotation import TokenRotationEvent

SCHEMA_DIR = Path(__file__).resolve().parent / "json"
_ID_BASE = "https://lockerlink.invalid/schemas/"

_EXPORTED: dict[str, type[BaseModel]] = {
    f"locker-order.v{SCHEMA_VERSION}.json": LockerOrderEvent,
    "token-rotation.v1.json": TokenRotationEvent,
}


def exported_schemas() -> dict[str, str]:
    """File name to JSON Schema text, for every exported event."""
    files: dict[str, str] = {}
    for name, model in _EXPORTED.items():
        schema = model.model_json_schema(mode="serialization")
        document = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": _ID_BASE + name,
            **schema,
        }
        files[name] = json.dumps(document, indent=2, sort_keys=True) + "\n"
    return files


def write_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Write every exported schema into ``directory``; return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in exported_schemas().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
