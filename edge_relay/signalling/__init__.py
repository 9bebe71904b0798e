"""The relay protocol (shared with the SDK) and its WebSocket server."""
