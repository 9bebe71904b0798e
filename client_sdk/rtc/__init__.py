"""The SDK's WebRTC side: the connection to a relay."""
