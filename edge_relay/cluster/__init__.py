"""Relays as a cluster: the registry (and, later, membership gossip and cascades)."""
