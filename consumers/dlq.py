"""The dead-letter topic for operators: list, show, and re-drive after a fix.

Every dead letter has an id ``<partition>:<offset>`` on `lockers.dead-letter`.
Re-driving one sends the original record (value, key and headers, plus a
``lockerlink-redrive`` header naming the dead letter) back to the topic it came from.

A re-drive is refused, unless forced, when the reason has not changed:

1. where lockerlink can check the reason itself, it checks again: a record dead-
   lettered as ``invalid_event`` must now parse as a locker order event, one
   dead-lettered as ``wrong_store`` must now name the store of its topic;
2. for every reason, a record (same key and value bytes) already re-driven once for
   the same reason is refused: it either came back with the same reason, so the fix
   did not help, or it is still on its way. The re-drives are kept in
   ``<data dir>/dlq-redrives.jsonl`` on the machine that ran them.

``--force`` skips both checks; every re-drive writes an audit line either way.
A dead letter that could not carry its record (``original_omitted``: it was too
large) is refused even when forced: it names where the record still sits.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from consumers.audit import write_audit
from consumers.dead_letters import DeadLetterReason
from consumers.topic_window import read_windows, reader, windows_by_time
from lockerlink.broker import make_producer, start_client
from lockerlink.errors import BrokerError, ConfigError
from schemas.dead_letter import DeadLetter
from schemas.locker_order import LockerOrderEvent
from schemas.topics import DEAD_LETTER, store_of_topic

REDRIVE_HEADER = "lockerlink-redrive"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Entry:
    """One dead letter and where it sits on the dead-letter topic."""

    partition: int
    offset: int
    letter: DeadLetter

    @property
    def id(self) -> str:
        return f"{self.partition}:{self.offset}"

    @property
    def fingerprint(self) -> str:
        """Names the original record by its bytes, across re-drives."""
        digest = hashlib.sha256()
        digest.update(self.letter.original_key() or b"")
        digest.update(b"\x00")
        digest.update(self.letter.original_value())
        return digest.hexdigest()[:32]


@dataclass(frozen=True)
class Filters:
    store_id: str | None = None
    reason: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def match(self, letter: DeadLetter) -> bool:
        return (
            (self.store_id is None or letter.store_id == self.store_id)
            and (self.reason is None or letter.reason == self.reason)
            and (self.since is None or letter.at >= self.since)
            and (self.until is None or letter.at < self.until)
        )


async def list_entries(bootstrap_servers: str, filters: Filters) -> list[Entry]:
    """Every dead letter matching ``filters``, oldest first per partition."""
    consumer = reader(bootstrap_servers)
    await start_client(consumer, bootstrap_servers)
    try:
        windows = await windows_by_time(consumer, DEAD_LETTER, None)
        entries = []
        async for record in read_windows(consumer, windows):
            try:
                letter = DeadLetter.model_validate_json(record.value or b"")
            except ValidationError:
                continue  # not written by lockerlink; nothing to re-drive
            if filters.match(letter):
                entries.append(Entry(record.partition, record.offset, letter))
        return entries
    finally:
        await consumer.stop()


async def find_entries(bootstrap_servers: str, ids: Iterable[str]) -> list[Entry]:
    """The dead letters with these ids; an unknown id is a clear error."""
    wanted = list(ids)
    known = {e.id: e for e in await list_entries(bootstrap_servers, Filters())}
    missing = [i for i in wanted if i not in known]
    if missing:
        raise ConfigError(
            f"no dead letter with id {', '.join(missing)} on {DEAD_LETTER}"
        )
    return [known[i] for i in wanted]


class RedriveLedger:
    """Which records were re-driven for which reason, in a JSON-lines file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> RedriveLedger:
        return cls(data_dir / "dlq-redrives.jsonl")

    def previous(self, entry: Entry) -> dict[str, str] | None:
        if not self.path.exists():
            return None
        for number, line in enumerate(
            self.path.read_text(encoding="utf-8").splitlines(), start=1
        ):
            try:
                row = json.loads(line)
                key = (row["fingerprint"], row["reason"])
            except (ValueError, TypeError, KeyError):
                # A line half written when a re-drive was killed: it vouches for
                # nothing, and must not stop every later re-drive.
                log.warning("unreadable line %d in %s skipped", number, self.path)
                continue
            if key == (entry.fingerprint, entry.letter.reason):
                return dict(row)
        return None

    def record(self, entry: Entry, at: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        row = {
            "fingerprint": entry.fingerprint,
            "reason": entry.letter.reason,
            "dead_letter": entry.id,
            "at": at,
        }
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")


def unchanged_reason(entry: Entry, ledger: RedriveLedger) -> str | None:
    """Why re-driving ``entry`` would fail the same way again, or None."""
    letter = entry.letter
    if letter.reason == DeadLetterReason.INVALID_EVENT:
        try:
            LockerOrderEvent.model_validate_json(letter.original_value())
        except ValidationError as exc:
            return f"still not a locker order event ({exc.error_count()} problem(s))"
    if letter.reason == DeadLetterReason.WRONG_STORE:
        try:
            event = LockerOrderEvent.model_validate_json(letter.original_value())
        except ValidationError:
            return "still not a locker order event"
        if event.store_id != store_of_topic(letter.source_topic):
            return f"still names store {event.store_id!r}"
    previous = ledger.previous(entry)
    if previous is not None:
        return (
            f"already re-driven for {letter.reason!r} at {previous['at']} "
            f"(dead letter {previous['dead_letter']})"
        )
    return None


@dataclass(frozen=True)
class RedriveResult:
    entry: Entry
    sent: bool
    refused_because: str | None = None


async def redrive(
    bootstrap_servers: str,
    entries: list[Entry],
    *,
    data_dir: Path,
    force: bool = False,
    dry_run: bool = False,
) -> list[RedriveResult]:
    """Send each entry's original record back to its topic, unless refused."""
    ledger = RedriveLedger.in_data_dir(data_dir)
    results = []
    producer = make_producer(bootstrap_servers)
    await start_client(producer, bootstrap_servers)
    try:
        for entry in entries:
            refusal = _omitted(entry) or (
                None if force else unchanged_reason(entry, ledger)
            )
            if refusal is not None or dry_run:
                results.append(RedriveResult(entry, False, refusal))
                continue
            await _send_back(producer, entry)
            audit = write_audit(
                data_dir,
                "dlq redrive",
                dead_letter=entry.id,
                reason=entry.letter.reason,
                to=entry.letter.source_topic,
                store=entry.letter.store_id,
                forced=force,
                count=1,
            )
            ledger.record(entry, audit["at"])
            results.append(RedriveResult(entry, True))
    finally:
        await producer.stop()
    return results


def _omitted(entry: Entry) -> str | None:
    """Why even a forced re-drive cannot send this one: it does not hold its record."""
    letter = entry.letter
    if not letter.original_omitted:
        return None
    return (
        "the record was too large to keep in the dead letter; it is at "
        f"{letter.source_topic}/{letter.source_partition}@{letter.source_offset} "
        "(`lockerlink replay raw` re-runs a window of raw records)"
    )


async def _send_back(producer: AIOKafkaProducer, entry: Entry) -> None:
    letter = entry.letter
    headers: list[tuple[str, bytes | None]] = [
        (name, None if value is None else value.encode())
        for name, value in letter.original_headers
    ]
    headers.append((REDRIVE_HEADER, entry.id.encode()))
    try:
        await producer.send_and_wait(
            letter.source_topic,
            key=letter.original_key(),
            value=letter.original_value(),
            headers=headers,
        )
    except KafkaError as exc:
        raise BrokerError(f"cannot re-drive {entry.id}: {exc}") from exc
