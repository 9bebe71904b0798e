"""Request and response bodies, one module per concern. Requests are strict: no coercion, no extras."""
