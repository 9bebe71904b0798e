"""Operations: metrics, logs, health and drain."""
