#!/usr/bin/env bash
# Installs the Debian packages vigil's tests and demo need: nmap (the
# scanner's engine) and the daemons of the network-namespace lab
# (internal/lab). Idempotent: when everything is installed it changes
# nothing and needs no root.
#
#   sudo bash scripts/install-deps.sh
#
# Daemon packages normally start their service on install. The lab runs its
# own copies inside network namespaces and needs none of them, and a stock
# telnetd or FTP server on a workstation is a hazard, so while this script
# installs, services are kept from starting (policy-rc.d). They stay enabled
# for the next boot: disable the ones you do not want, e.g.
#   systemctl disable --now vsftpd redis-server mosquitto snmpd inetutils-inetd smbd nmbd nginx slapd postgresql
set -euo pipefail

packages=(
  # the scanner
  nmap
  # network-namespace lab plumbing
  iproute2 nftables procps
  # lab daemons
  vsftpd redis-server mosquitto snmpd inetutils-inetd inetutils-telnetd
  samba nginx-light openssh-server openssh-client openssl
  # clients the lab tests talk to the daemons with
  snmp smbclient
  # directory server and clients for the LDAP identity tests
  slapd ldap-utils
  # database server for the PostgreSQL store's tests (internal/pgtest runs
  # its own throwaway cluster on 127.0.0.1; the packaged one is not used)
  postgresql
  # headless browser for the dashboard's end-to-end tests (integration/e2e)
  chromium
  # systemd-analyze, to verify the site agent's shipped unit file
  systemd
  # certificates, build and test tooling
  ca-certificates make git poppler-utils
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages already installed"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}" >&2
  echo "install-deps: run as root to install them: sudo bash scripts/install-deps.sh" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive

# Keep newly installed services from starting now (see above), unless a
# policy is already in place, which is then left as it is.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# vigil install-deps: do not start services during install\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi

apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "install-deps: done"
