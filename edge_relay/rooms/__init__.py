"""Meetings on a relay: rooms, their participants, and each participant's peer connection."""
