"""The Clover OAuth token vault that lockers and the poller trust."""
