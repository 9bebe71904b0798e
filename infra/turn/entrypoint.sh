#!/bin/sh
# coturn in a TURN task (infra/constructs/turn_service.py); also what tests/infra/test_turn_image.py runs.
#
# 1. The addresses: the task's private IP (ECS task metadata) and its public IP, which only STUN can tell
#    from inside the task (Fargate's metadata has the private address only; the internet gateway maps
#    the public one 1:1, ports preserved). coturn must put the public one in its relayed addresses
#    (--external-ip=PUBLIC/PRIVATE), else clients are handed a 10.x address. TURN_PUBLIC_IP /
#    TURN_PRIVATE_IP skip the lookups (local runs).
# 2. The secrets: secret_sync.py copies the TURN secret's pending, current and previous versions from
#    Secrets Manager into coturn's SQLite secret table once (or the task fails), then keeps doing so in
#    the background: rotation needs no restart (infra/runtime/turn_secret_rotation.py).
# 3. coturn, from flags only (Debian's /etc/turnserver.conf logs to syslog): TURN over UDP and TCP on
#    TURN_PORT; TLS is terminated by the NLB on 443 and arrives here as plain TCP; relayed ports
#    TURN_MIN_PORT-TURN_MAX_PORT; no relaying into private or loopback networks (the VPC, metadata).
set -eu

: "${TURN_REALM:?TURN_REALM is required}"
: "${TURN_SECRET_ID:?TURN_SECRET_ID is required}"
TURN_PORT=${TURN_PORT:-3478}
TURN_MIN_PORT=${TURN_MIN_PORT:-49152}
TURN_MAX_PORT=${TURN_MAX_PORT:-65535}
TURN_DB=${TURN_DB:-/var/lib/coturn/turndb}
TURN_HOME=${TURN_HOME:-/opt/meetup-turn}
TURN_PYTHON=${TURN_PYTHON:-python3}
TURN_BINARY=${TURN_BINARY:-turnserver}
TURN_STUN_SERVERS=${TURN_STUN_SERVERS:-stun.l.google.com:19302 stun.cloudflare.com:3478}
TURN_DENY_PEERS=${TURN_DENY_PEERS:-0.0.0.0-0.255.255.255 10.0.0.0-10.255.255.255 100.64.0.0-100.127.255.255 127.0.0.0-127.255.255.255 169.254.0.0-169.254.255.255 172.16.0.0-172.31.255.255 192.168.0.0-192.168.255.255}

private_ip=${TURN_PRIVATE_IP:-}
if [ -z "$private_ip" ]; then
    private_ip=$("$TURN_PYTHON" -c 'import json, os, urllib.request as u
meta = json.load(u.urlopen(os.environ["ECS_CONTAINER_METADATA_URI_V4"], timeout=5))
print(meta["Networks"][0]["IPv4Addresses"][0])')
fi

# The first STUN server that answers (each bounded: turnutils_stunclient retries forever on silence).
stun_public_ip() {
    for server in $TURN_STUN_SERVERS; do
        host=${server%:*}
        port=${server##*:}
        address=$(getent ahostsv4 "$host" | awk 'NR == 1 { print $1 }') || continue
        [ -n "$address" ] || continue
        answer=$(timeout 3 turnutils_stunclient -p "$port" "$address" 2>/dev/null |
            sed -n 's/.*UDP reflexive addr: \([0-9.]*\):.*/\1/p' | head -n 1) || true
        if [ -n "$answer" ]; then
            echo "$answer"
            return 0
        fi
    done
    return 1
}

public_ip=${TURN_PUBLIC_IP:-}
delay=1
while [ -z "$public_ip" ]; do
    public_ip=$(stun_public_ip) && break
    echo "turn: no STUN server answered; retrying in ${delay} s" >&2
    sleep "$delay"
    delay=$((delay * 2 > 60 ? 60 : delay * 2))
done
echo "turn: public address ${public_ip}, private address ${private_ip}" >&2

mkdir -p "$(dirname "$TURN_DB")"
echo "$private_ip" > "${TURN_DB}.address"  # for healthcheck.sh
"$TURN_PYTHON" "$TURN_HOME/secret_sync.py" --once
"$TURN_PYTHON" "$TURN_HOME/secret_sync.py" &

set --
for range in $TURN_DENY_PEERS; do
    set -- "$@" "--denied-peer-ip=$range"
done

exec "$TURN_BINARY" -c /dev/null \
    --listening-ip="$private_ip" \
    --relay-ip="$private_ip" \
    --external-ip="$public_ip/$private_ip" \
    --listening-port="$TURN_PORT" \
    --min-port="$TURN_MIN_PORT" \
    --max-port="$TURN_MAX_PORT" \
    --use-auth-secret \
    --userdb="$TURN_DB" \
    --realm="$TURN_REALM" \
    --fingerprint \
    --no-tls \
    --no-dtls \
    --no-tcp-relay \
    --no-cli \
    --no-multicast-peers \
    --no-software-attribute \
    --stale-nonce=600 \
    --log-file=stdout \
    --simple-log \
    --pidfile="${TURN_DB}.pid" \
    "$@" ${TURN_EXTRA_ARGS:-}
