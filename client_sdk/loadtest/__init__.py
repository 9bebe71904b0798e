"""``meet load-test``: accounts, the engine that runs virtual participants, the report."""
