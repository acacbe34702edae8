#!/usr/bin/env bash
# Install the Debian packages the tests drive as real peers (rsyslog, its TLS driver, rsync, logger,
# chromium for the console's browser tests, a Korean font so its screenshots of the Korean locale show text),
# only those that are missing. Idempotent; needs root and the package registry when something is missing.
set -euo pipefail
want=(rsyslog rsyslog-gnutls rsync bsdutils chromium fonts-nanum)
missing=()
for pkg in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "system-deps: missing ${missing[*]}; install them: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "system-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# The image's policy-rc.d keeps rsyslog from starting a system daemon; tests run their own rsyslogd.
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
