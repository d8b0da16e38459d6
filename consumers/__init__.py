"""Per-store delivery of locker order events to locker servers, replay and re-drive."""
