#!/bin/sh
# Container health of a TURN task: coturn answers a STUN binding request on its port, and the secret
# table was synced from Secrets Manager within the last three minutes (else, after the next rotation,
# this task would refuse the API's new credentials: better replaced now).
set -eu
TURN_DB=${TURN_DB:-/var/lib/coturn/turndb}
TURN_PORT=${TURN_PORT:-3478}
[ -n "$(find "${TURN_DB}.synced" -mmin -3 2>/dev/null)" ] || { echo "secret sync stale" >&2; exit 1; }
address=$(cat "${TURN_DB}.address")
timeout 3 turnutils_stunclient -p "$TURN_PORT" "$address" | grep -q "reflexive addr"
