#!/usr/bin/env bash
# Pre-release only: rebuild migration 0001 from the models (no deployed database exists yet).
# Later schema changes must be new, incremental migrations (alembic revision --autogenerate).
set -euo pipefail
cd "$(dirname "$0")/.."
V=cityops/migrations/versions
tmp=$(mktemp -d)
mv $V/0002_*.py "$tmp/"
rm -f $V/0001_initial.py
db=$(mktemp -u /tmp/cityops-mig-XXXX.db)
CITYOPS_DATABASE_URL="sqlite:///$db" .venv/bin/alembic -c alembic.ini revision --autogenerate -m initial --rev-id 0001 >/dev/null
mv "$tmp"/*.py $V/
rm -rf "$tmp" "$db"*
python3 - "$V/0001_initial.py" <<'PY'
import sys
p = sys.argv[1]
s = open(p).read()
if "from sqlalchemy import Text" not in s:
    s = s.replace("from alembic import op\n", "from alembic import op\nfrom sqlalchemy import Text  # noqa: F401\n", 1)
open(p, "w").write(s)
PY
echo "regenerated $V/0001_initial.py"
