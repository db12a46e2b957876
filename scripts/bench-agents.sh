#!/usr/bin/env bash
# Agent ingest benchmark (issue 8): AGENTS simulated site agents (default
# 500), one per synthetic site, each pushing a day of scans (SCANS_PER_DAY,
# default 6) through the real agent protocol to one `vigil serve` on
# 127.0.0.1 — first on a throwaway PostgreSQL cluster (127.0.0.1, from
# the Debian postgresql package), then on SQLite, in the same run.
# Prints sustained observations/s, p50/p90/p99/max push latency per batch
# kind and the server's RSS for each, and the ratio. See docs/benchmarks.md.
#
#   scripts/bench-agents.sh                 # 500 agents, 6 scans each
#   AGENTS=50 scripts/bench-agents.sh       # smaller, quicker
#
# Nothing is scanned: the synthetic configuration has no schedules and the
# server runs with --only identity; all traffic is on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${AGENTS:=500}" "${SCANS_PER_DAY:=6}" "${OUT:=${TMPDIR:-/tmp}/bench-agents}"

mkdir -p bin
go build -o bin/vigil ./cmd/vigil
go build -o bin/vigil-agentload ./internal/synth/cmd/vigil-agentload

status=0
for db in postgres sqlite; do
  echo "--- $db" >&2
  bin/vigil-agentload --vigil bin/vigil --db "$db" --agents "$AGENTS" --scans-per-day "$SCANS_PER_DAY" \
    --json "$OUT-$db.json" --server-log "$OUT-$db.server.log" || status=$?
done
python3 - "$OUT-postgres.json" "$OUT-sqlite.json" <<'PY' || true
import json, sys
pg, lite = (json.load(open(p)) for p in sys.argv[1:3])
print(f"postgres / sqlite: ingest {pg['observations_per_second'] / lite['observations_per_second']:.2f}x, "
      f"p99 observations batch {pg['latency_ms']['observations']['p99'] / lite['latency_ms']['observations']['p99']:.2f}x, "
      f"peak RSS {pg['hwm_mib'] / lite['hwm_mib']:.2f}x")
PY
exit $status
