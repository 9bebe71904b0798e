"""Tests that play the attacker (issue: hardening): each boundary gets its hostile case."""
