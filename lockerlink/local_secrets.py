"""Secrets a development machine makes for itself when none is configured.

Production sets every secret explicitly; on a laptop or in the demo, lockerlink
creates a high-entropy value once, keeps it in the data directory readable only by
its owner, and reuses it on the next start.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pydantic import SecretStr

from lockerlink.settings import Settings


def local_secret(data_dir: Path, name: str, nbytes: int = 32) -> str:
    """The secret stored as ``data_dir/secrets/name``, made on first use (mode 0600)."""
    folder = data_dir / "secrets"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / name
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        pass
    value = secrets.token_urlsafe(nbytes)
    # O_EXCL: if two processes race, one creates the file and the other reads it.
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="utf-8").strip()
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(value)
    return value


def admin_credential(settings: Settings) -> str:
    """The admin credential: from settings, else this machine's own."""
    configured: SecretStr | None = settings.admin_credential
    if configured is not None:
        return configured.get_secret_value()
    return local_secret(settings.data_dir, "admin-credential")


def admin_credential_path(settings: Settings) -> Path:
    return settings.data_dir / "secrets" / "admin-credential"
