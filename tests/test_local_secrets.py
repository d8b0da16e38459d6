"""Development secrets: made once, private to their owner, reused."""

from __future__ import annotations

import stat
from pathlib import Path

from lockerlink.local_secrets import admin_credential, local_secret
from lockerlink.settings import Settings


def test_secret_is_made_once_with_owner_only_permissions(tmp_path: Path) -> None:
    first = local_secret(tmp_path, "example")
    assert len(first) >= 40
    assert local_secret(tmp_path, "example") == first
    mode = stat.S_IMODE((tmp_path / "secrets" / "example").stat().st_mode)
    assert mode == 0o600


def test_configured_admin_credential_wins(tmp_path: Path) -> None:
    configured = Settings(data_dir=tmp_path, admin_credential="from-settings")
    assert admin_credential(configured) == "from-settings"
    assert not (tmp_path / "secrets").exists()
    made = admin_credential(Settings(data_dir=tmp_path))
    assert made != "from-settings" and made == admin_credential(
        Settings(data_dir=tmp_path)
    )
