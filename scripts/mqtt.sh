#!/usr/bin/env bash
# Start / stop a throwaway Mosquitto MQTT broker on 127.0.0.1 for the tests and benchmarks.
#   scripts/mqtt.sh start   -> prints "127.0.0.1:PORT" on stdout (last line)
#   scripts/mqtt.sh stop
# Installs Debian's mosquitto with apt when missing (needs root); says so plainly when it can't.
set -euo pipefail
PORT=${CITYOPS_MQTT_PORT:-18830}
STATE=${CITYOPS_MQTT_STATE:-/tmp/cityops-mqtt-$PORT}
cmd=${1:-start}

stop_broker() {
  if [ -f "$STATE/pid" ]; then
    pid=$(cat "$STATE/pid" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
  fi
  rm -rf "$STATE"
}

if [ "$cmd" = stop ]; then stop_broker; exit 0; fi

BIN=$(command -v mosquitto || ls /usr/sbin/mosquitto 2>/dev/null || true)
if [ -z "$BIN" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "cityops: mosquitto missing and not root: cannot install it; MQTT tests are skipped" >&2
    exit 3
  fi
  echo "cityops: installing mosquitto with apt ..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq mosquitto >&2 || { apt-get update -qq >&2 && apt-get install -y -qq mosquitto >&2; }
  BIN=$(command -v mosquitto || echo /usr/sbin/mosquitto)
fi

# a broker of ours already running on the port is reused; `restart` makes a fresh one
if [ "$cmd" = start ] && [ -f "$STATE/pid" ] && kill -0 "$(cat "$STATE/pid" 2>/dev/null)" 2>/dev/null; then
  echo "127.0.0.1:$PORT"
  exit 0
fi
stop_broker
mkdir -p "$STATE"
cat > "$STATE/mosquitto.conf" <<CONF
listener $PORT 127.0.0.1
allow_anonymous true
persistence false
max_inflight_messages 1000
max_queued_messages 1000000
max_queued_bytes 0
message_size_limit 16777216
log_dest file $STATE/log
pid_file $STATE/pid
CONF
if [ "$(id -u)" = 0 ]; then echo "user root" >> "$STATE/mosquitto.conf"; fi
"$BIN" -c "$STATE/mosquitto.conf" -d
for _ in $(seq 1 50); do
  if (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null; then echo "127.0.0.1:$PORT"; exit 0; fi
  sleep 0.1
done
echo "cityops: mosquitto did not start (see $STATE/log)" >&2
exit 1
