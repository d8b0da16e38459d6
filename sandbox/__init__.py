"""Local stand-ins for Clover and for a store's locker server."""
