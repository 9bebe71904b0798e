"""Media the SDK publishes and records."""
