"""A Sentry ingest stand-in on loopback: accepts envelopes and keeps their events."""

from __future__ import annotations

import gzip
import json
from typing import Any

from aiohttp import web


def parse_envelope(body: bytes) -> list[dict[str, Any]]:
    """The event and transaction payloads of one Sentry envelope."""
    lines = body.split(b"\n")
    items: list[dict[str, Any]] = []
    index = 1  # line 0 is the envelope header
    while index < len(lines):
        if not lines[index].strip():
            index += 1
            continue
        header = json.loads(lines[index])
        length = header.get("length")
        if length is not None:
            rest = b"\n".join(lines[index + 1 :])
            payload, remainder = rest[:length], rest[length + 1 :]
            lines = [b"", *remainder.split(b"\n")]
            index = 1
        else:
            payload = lines[index + 1]
            index += 2
        if header.get("type") in ("event", "transaction"):
            items.append(json.loads(payload))
    return items


class SentryIngest:
    """Collects what sentry-sdk sends to `/api/<project>/envelope/`."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.raw_bodies: list[bytes] = []
        self.app = web.Application()
        self.app.router.add_post("/api/{project}/envelope/", self._envelope)

    async def _envelope(self, request: web.Request) -> web.Response:
        body = await request.read()  # aiohttp already undid Content-Encoding
        if body[:2] == b"\x1f\x8b":
            body = gzip.decompress(body)
        self.raw_bodies.append(body)
        self.events.extend(parse_envelope(body))
        return web.json_response({"id": "0" * 32})
