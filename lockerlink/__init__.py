"""What every lockerlink component shares: settings, logging, connections, the CLI."""

from lockerlink.errors import ConfigError, LockerlinkError
from lockerlink.settings import Settings, load_settings

__all__ = ["ConfigError", "LockerlinkError", "Settings", "load_settings"]
