"""Many locker sandboxes in a child process, so they do not share the bench's CPU.

`python -m bench.locker_farm COUNT LATENCY_MS` starts COUNT sandboxes on loopback,
prints one JSON line with their base URLs, and serves until its stdin closes.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from types import TracebackType

from sandbox.locker import LockerFaults, LockerSandbox


async def _serve(count: int, latency_ms: float) -> None:
    lockers = [
        LockerSandbox(faults=LockerFaults(latency_s=latency_ms / 1000))
        for _ in range(count)
    ]
    urls = [await locker.start() for locker in lockers]
    print(json.dumps(urls), flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    for locker in lockers:
        await locker.stop()


class LockerFarm:
    """Starts the farm as a child process; ``urls`` are its lockers' base URLs."""

    def __init__(self, count: int, latency_ms: float) -> None:
        self.count = count
        self.latency_ms = latency_ms
        self.urls: list[str] = []
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> LockerFarm:
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.locker_farm",
                str(self.count),
                str(self.latency_ms),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        self.urls = json.loads(self._process.stdout.readline())
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._process is None:
            return
        assert self._process.stdin is not None
        self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


if __name__ == "__main__":
    asyncio.run(_serve(int(sys.argv[1]), float(sys.argv[2])))
