#!/usr/bin/env bash
# Refreshes vigil's offline OSV vulnerability database: downloads osv.dev's
# per-ecosystem exports into DB_DIR/osv-scanner/<Ecosystem>/all.zip, the
# layout vigil's software collector reads (docs/software.md). Run it on a
# machine with internet access, then copy DB_DIR to each sensor's osv_db
# (default DATA_DIR/osv), e.g.
#
#   scripts/refresh-osv-db.sh /srv/osv-mirror Go npm PyPI Maven Debian Ubuntu
#   rsync -a --delete /srv/osv-mirror/ sensor-downtown:/var/lib/vigil/osv/
#
# With no ecosystem given it fetches the ones vigil's inputs usually need
# (the list below). Each zip is replaced atomically and only downloaded
# when osv.dev has a newer one. Sensors never download anything: this
# script is the only thing that talks to osv.dev, and neither the tests
# nor CI run it.
set -euo pipefail

usage() {
  echo "usage: $0 DB_DIR [ECOSYSTEM ...]   (ecosystem names as osv.dev spells them: Go npm PyPI Maven Debian Ubuntu Alpine ...)" >&2
  exit 2
}
[[ $# -ge 1 && $1 != -* ]] || usage
db=$1
shift
ecosystems=("$@")
if [[ ${#ecosystems[@]} -eq 0 ]]; then
  ecosystems=(Go npm PyPI Maven NuGet RubyGems Packagist crates.io Debian Ubuntu Alpine)
fi
bucket=${OSV_BUCKET:-https://osv-vulnerabilities.storage.googleapis.com}

command -v curl >/dev/null || { echo "curl not found: apt-get install curl" >&2; exit 1; }

failed=0
for eco in "${ecosystems[@]}"; do
  if [[ $eco == */* || $eco == . || $eco == .. || -z $eco ]]; then
    echo "skipping $eco: not an ecosystem name" >&2
    failed=1
    continue
  fi
  dir="$db/osv-scanner/$eco"
  mkdir -p "$dir"
  tmp=$(mktemp "$dir/.all-XXXXXX.zip")
  url="$bucket/${eco// /%20}/all.zip"
  since=()
  [[ -s $dir/all.zip ]] && since=(--time-cond "$dir/all.zip")
  code=$(curl --silent --show-error --location --fail --retry 3 --retry-delay 5 \
    "${since[@]}" --remote-time --output "$tmp" --write-out '%{http_code}' "$url") || {
    echo "$eco: download of $url failed" >&2
    rm -f "$tmp"
    rmdir "$dir" 2>/dev/null || true
    failed=1
    continue
  }
  if [[ $code == 304 || ! -s $tmp ]]; then
    rm -f "$tmp"
    echo "$eco: up to date"
    continue
  fi
  if [[ $(head -c 2 "$tmp") != PK ]] || { command -v unzip >/dev/null && ! unzip -tqq "$tmp" >/dev/null; }; then
    echo "$eco: $url is not a valid zip; keeping the old database" >&2
    rm -f "$tmp"
    failed=1
    continue
  fi
  chmod 0644 "$tmp"
  mv -f "$tmp" "$dir/all.zip"
  echo "$eco: $(du -h "$dir/all.zip" | cut -f1) from $url"
done
exit $failed
