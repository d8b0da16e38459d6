"""Starting an aiohttp site, with a port that is taken said in one line."""

from __future__ import annotations

import errno

from aiohttp import web

from lockerlink.errors import PortUnavailable


async def start_site(
    site: web.TCPSite,
    what: str,
    host: str,
    port: int,
    *,
    runner: web.AppRunner | None = None,
) -> None:
    """``site.start()``; `PortUnavailable` naming ``what`` when it cannot bind.

    Given the site's ``runner``, a failure cleans it up, for callers that would
    otherwise leave it set up behind them.
    """
    try:
        await site.start()
    except OSError as exc:
        if runner is not None:
            await runner.cleanup()
        reason = (
            "the address is already in use"
            if exc.errno == errno.EADDRINUSE
            else (exc.strerror or type(exc).__name__)
        )
        raise PortUnavailable(
            f"{what} cannot listen on {host}:{port}: {reason}", host=host, port=port
        ) from exc
