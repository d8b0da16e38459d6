"""The Clover poller and webhook receiver: order changes into `clover.orders.raw`."""
