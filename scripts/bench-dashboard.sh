#!/usr/bin/env bash
# Dashboard load benchmark (issue 6): `vigil serve` on 127.0.0.1 over a
# synthetic organisation (300 locations, 15,000 assets, a year of daily
# scans; internal/synth), 50 concurrent users (each its own session, ~1 s
# between pages; THINK=0s for none) on
# the portfolio and findings pages and their /api/v1 twins; prints
# p50/p90/p99/max per route and the server's RSS. See docs/benchmarks.md.
#
#   scripts/bench-dashboard.sh                       # defaults
#   DAYS=30 DURATION=20s scripts/bench-dashboard.sh  # smaller, quicker
#   THINK=0s scripts/bench-dashboard.sh              # no pause between requests: saturation
#
# The dataset is generated once and cached (keyed by generator version and
# sizes) under $VIGIL_SYNTH_CACHE (default ~/.cache/vigil-synth); a year
# takes tens of minutes on 2 cores the first time (docs/benchmarks.md).
# Nothing is scanned: the generated configuration has no schedules and the
# server runs with --only identity.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${VIGIL_SYNTH_CACHE:=$HOME/.cache/vigil-synth}"
: "${LOCATIONS:=300}" "${ASSETS:=15000}" "${DAYS:=365}"
: "${CLIENTS:=50}" "${DURATION:=60s}" "${WARMUP:=5s}" "${THINK:=1s}"
: "${ROUTES:=/,/findings,/api/v1/portfolio,/api/v1/findings}"
: "${OUT:=${TMPDIR:-/tmp}/bench-dashboard.json}"
export VIGIL_SYNTH_CACHE

mkdir -p bin
go build -o bin/vigil ./cmd/vigil
go build -o bin/vigil-synth ./internal/synth/cmd/vigil-synth
go build -o bin/vigil-load ./internal/synth/cmd/vigil-load

data=$(bin/vigil-synth --cache "$VIGIL_SYNTH_CACHE" --locations "$LOCATIONS" --assets "$ASSETS" --days "$DAYS")
echo "dataset: $data" >&2
python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print("generated in", m["took"], "| scans", m["scans"], "| findings", m["findings"], "| db", m["db_bytes"]>>20, "MiB")' "$data/synth.json" >&2 || true

exec bin/vigil-load --vigil bin/vigil --data "$data" --clients "$CLIENTS" --duration "$DURATION" \
  --warmup "$WARMUP" --think "$THINK" --routes "$ROUTES" --json "$OUT" --server-log "${OUT%.json}.server.log"
