#!/bin/sh
# The system programs the test suite drives, from Debian's packages, installed when missing (`make prerequisites`,
# which `make test` runs first): the tests themselves install nothing.
#   prometheus, promtool - the real scraper and rule tester (tests/streams/operations/test_prometheus.py)
#   stunnel4             - TLS in front of the embedded Tansu broker (tests/streams/operations/test_security.py)
#   openssl              - the security tests' throwaway certificates
#   tmux                 - the field-unit terminal driven as a user would (tests/streams/field_unit)
#   chromium             - the field-unit web app in a real browser, through Playwright (which cannot download
#                          its own browser here): tests/streams/field_unit/test_web_app.py
set -eu
missing=""
need() { command -v "$2" >/dev/null 2>&1 || [ -x "$2" ] || missing="$missing $1"; }
need prometheus /usr/bin/prometheus
need stunnel4 stunnel4
need openssl openssl
need tmux tmux
need chromium /usr/bin/chromium
[ -z "$missing" ] && exit 0
echo "installing Debian packages:$missing"
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
  echo "not root and no sudo: install them with apt-get install -y$missing" >&2; exit 1; fi
# a package's service is not started here (containers usually deny it too): the tests start their own
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod 755 "$policy"
  trap '$SUDO rm -f "$policy"' EXIT
fi
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y --no-install-recommends $missing >/dev/null 2>&1; then
  $SUDO apt-get update >/dev/null
  $SUDO apt-get install -y --no-install-recommends $missing >/dev/null
fi
