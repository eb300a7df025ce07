#!/usr/bin/env bash
# `make test`: lint, types, then the whole suite on SQLite and again on PostgreSQL + PostGIS.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
status=0

echo "== ruff"; $BIN/ruff check cityops bench tests || status=1
echo "== mypy --strict"; $BIN/mypy --strict cityops || status=1

# browser tests need Debian's Chromium and a CJK font (installed here when missing)
bash scripts/browser.sh || echo "cityops: Chromium could not be installed; browser tests will be skipped" >&2

# a throwaway Mosquitto broker for the MQTT ingest tests (installed with apt when missing)
if MQTT_URL=$(bash scripts/mqtt.sh start | tail -n 1); then
  export CITYOPS_MQTT_URL="$MQTT_URL"
  trap 'bash scripts/mqtt.sh stop' EXIT
else
  echo "cityops: MQTT broker could not be started; the MQTT tests start their own or skip" >&2
fi

echo "== pytest on SQLite"
$BIN/pytest -q -n 2 --dist loadfile -p no:cacheprovider tests || status=1

echo "== pytest on PostgreSQL + PostGIS"
if PG_URL=$(bash scripts/pg.sh start | tail -n 1); then
  trap 'bash scripts/pg.sh stop; bash scripts/mqtt.sh stop' EXIT
  CITYOPS_TEST_DATABASE_URL="$PG_URL" $BIN/pytest -q -n 2 --dist loadfile -p no:cacheprovider tests || status=1
else
  if [ "${CI:-}" = true ]; then echo "cityops: PostgreSQL could not be started in CI" >&2; status=1; fi
  echo "cityops: PostgreSQL half NOT run (see above)" >&2
fi
exit $status
