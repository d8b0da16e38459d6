"""Per-store delivery of locker order events to locker servers, replay and re-drive."""

from consumers.alerts import Alert, AlertHook, AlertKind, log_alert
from consumers.delivery import CENTRAL_GROUP, DeliveryService, in_store_group
from consumers.locker_api import Answer, LockerApi, Verdict, classify
from consumers.locker_client import EventRejected, KafkaLockerClient, locker_group
from consumers.replay import StoreReplay, replay_raw
from consumers.store_lane import DeliveryOptions

__all__ = [
    "CENTRAL_GROUP",
    "Alert",
    "AlertHook",
    "AlertKind",
    "Answer",
    "DeliveryOptions",
    "DeliveryService",
    "EventRejected",
    "KafkaLockerClient",
    "LockerApi",
    "StoreReplay",
    "Verdict",
    "classify",
    "in_store_group",
    "locker_group",
    "log_alert",
    "replay_raw",
]
