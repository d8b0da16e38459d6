"""The Faust stream: Clover orders into locker order events per store.

`transform` is the pure part (no I/O), `ledger` the stateful part (versions and PINs
in Redis), `processor` puts them together for one batch, `app` runs it in Faust.
"""

from streams.ledger import MemoryLedger, OrderLedger, RedisLedger
from streams.processor import OrderProcessor
from streams.record import Output, RawRecord
from streams.transform import OrderDraft, Reason, draft_order, finish, read_record

__all__ = [
    "MemoryLedger",
    "OrderDraft",
    "OrderLedger",
    "OrderProcessor",
    "Output",
    "RawRecord",
    "Reason",
    "RedisLedger",
    "draft_order",
    "finish",
    "read_record",
]
