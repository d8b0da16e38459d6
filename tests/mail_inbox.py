"""A real SMTP server on loopback (aiosmtpd) that keeps every mail it receives."""

from __future__ import annotations

from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import Message

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from lockerlink.embedded import free_port


class Inbox:
    """An aiosmtpd handler keeping every message it receives."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        assert isinstance(envelope.content, bytes)
        # The default policy unfolds long headers, so a subject reads as it was sent.
        self.messages.append(
            message_from_bytes(envelope.content, policy=policy.default)
        )
        return "250 OK"

    def subjects(self) -> list[str]:
        return [str(message["Subject"]).strip() for message in self.messages]


@pytest.fixture
def smtp_inbox() -> Iterator[tuple[Inbox, int]]:
    """A started SMTP server on a free port: (its inbox, its port)."""
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()
