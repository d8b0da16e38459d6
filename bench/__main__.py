"""Run benchmarks: `python -m bench` for all, `python -m bench NAME ...` for some."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import pkgutil
import sys
from pathlib import Path

from bench.report import BENCHMARKS_MD, Section, write_sections


def _available() -> list[str]:
    here = Path(__file__).resolve().parent
    return sorted(
        m.name.removeprefix("bench_")
        for m in pkgutil.iter_modules([str(here)])
        if m.name.startswith("bench_")
    )


def _run_one(name: str) -> Section:
    module = importlib.import_module(f"bench.bench_{name}")
    result = module.run()
    if inspect.isawaitable(result):
        result = asyncio.run(result)  # type: ignore[arg-type]
    assert isinstance(result, Section)
    return result


def main(argv: list[str]) -> int:
    names = argv or _available()
    unknown = sorted(set(names) - set(_available()))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; have {_available()}")
        return 2
    sections = []
    for name in names:
        print(f"bench {name} ...", flush=True)
        section = _run_one(name)
        print(section.render(), flush=True)
        sections.append(section)
    write_sections(sections)
    print(f"wrote {BENCHMARKS_MD}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
