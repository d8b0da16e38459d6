"""The store registry file, read again by a running process when it changes.

An operator who edits a store's locker endpoint (a new URL, a new timeout, another
credential variable) must not have to restart delivery. `ReloadingRegistry` reads
the file at most every ``check_s`` seconds, on the caller's own path (a small read,
no task to run), and parses it only when its bytes changed. A file that no longer
validates, or cannot be read, leaves the last good registry in force and is reported
once per change.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from lockerlink.errors import ConfigError
from lockerlink.registry import Store, StoreRegistry

log = logging.getLogger(__name__)


class StoreLookup(Protocol):
    """Where a process finds a store's entry: a fixed or a reloading registry."""

    def store(self, store_id: str) -> Store | None: ...


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


class ReloadingRegistry:
    """A `StoreRegistry` from a file, replaced when the file changes."""

    def __init__(
        self,
        path: Path,
        check_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self._check_s = check_s
        self._clock = clock
        self.current = StoreRegistry.from_file(path)
        self._seen = _read(path)
        self._next_check_at = clock() + check_s
        self.reloads = 0

    def store(self, store_id: str) -> Store | None:
        """The store's entry as the file says now (at most ``check_s`` old)."""
        return self.registry().store(store_id)

    def registry(self) -> StoreRegistry:
        """The registry in force, after reading the file again if it changed."""
        now = self._clock()
        if now >= self._next_check_at:
            self._next_check_at = now + self._check_s
            self._reload_if_changed()
        return self.current

    def _reload_if_changed(self) -> None:
        content = _read(self.path)
        if content == self._seen:
            return
        self._seen = content
        if content is None:
            log.warning(
                "store registry file cannot be read; keeping the last one read",
                extra={"path": str(self.path)},
            )
            return
        try:
            fresh = StoreRegistry.from_text(
                content.decode("utf-8", errors="replace"), origin=str(self.path)
            )
        except ConfigError as exc:
            log.warning(
                "store registry file changed but is not valid; keeping the last "
                "good one: %s",
                exc.message,
                extra={"path": str(self.path)},
            )
            return
        self.current = fresh
        self.reloads += 1
        log.info(
            "store registry reloaded",
            extra={"path": str(self.path), "stores": len(fresh.stores)},
        )


def store_lookup(path: Path | None, check_s: float) -> StoreLookup:
    """The registry a long-running process should use: reloading when from a file."""
    if path is None:
        return StoreRegistry.empty()
    return ReloadingRegistry(path, check_s)
