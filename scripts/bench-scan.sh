#!/usr/bin/env bash
# Compare `vigil scan` of the network-namespace lab with the plain nmap
# command vigil runs (same targets, ports and options), in the same run.
# Needs root. Prints vigil-s/op, nmap-s/op and the ratio vigil/nmap.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench-scan: needs root (it builds network namespaces)" >&2; exit 2; }
bash scripts/install-deps.sh
exec go test ./integration -run '^$' -bench 'LabScanVsNmap' -benchtime "${BENCHTIME:-3x}" -timeout 60m
