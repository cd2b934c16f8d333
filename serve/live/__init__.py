"""The WebSocket live feed: one stream hub per replica reading Redis, one sender per client."""
