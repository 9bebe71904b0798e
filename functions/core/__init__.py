"""Cross-cutting pieces of the control plane: configuration, security, errors, observability."""
