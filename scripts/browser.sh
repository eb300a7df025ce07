#!/usr/bin/env bash
# Make sure Debian's Chromium and a CJK font are present (for the console's browser tests).
set -euo pipefail
if [ -x /usr/bin/chromium ] && fc-list 2>/dev/null | grep -qi "wenquanyi\|wqy"; then exit 0; fi
if [ "$(id -u)" != 0 ]; then echo "cityops: not root, cannot install chromium" >&2; exit 1; fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq chromium fonts-wqy-microhei >&2
