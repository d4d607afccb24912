#!/usr/bin/env bash
# Takes a headless Chromium screenshot of a rendered report: screenshot-report.sh <report.html> <out.png>
# Set CHROMIUM to the browser binary to override the lookup (chromium, chromium-browser, google-chrome).
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 <report.html> <out.png>" >&2
  exit 2
fi
html=$1
out=$2
[ -f "$html" ] || { echo "screenshot-report: no such file: $html" >&2; exit 2; }

browser=${CHROMIUM:-}
if [ -z "$browser" ]; then
  for b in chromium chromium-browser google-chrome; do
    if command -v "$b" >/dev/null 2>&1; then browser=$b; break; fi
  done
fi
if [ -z "$browser" ]; then
  echo "screenshot-report: Chromium is not installed (Debian: apt-get install -y chromium), or set CHROMIUM" >&2
  exit 3
fi

url="file://$(realpath "$html")"
out_abs="$(realpath -m "$out")"
mkdir -p "$(dirname "$out_abs")"
rm -f "$out_abs"
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT

timeout 120 "$browser" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --hide-scrollbars \
  --user-data-dir="$profile" --window-size=1200,2400 --screenshot="$out_abs" "$url" >"$profile/log" 2>&1 || {
  echo "screenshot-report: $browser failed:" >&2
  tail -n 20 "$profile/log" >&2
  exit 1
}
if [ ! -s "$out_abs" ]; then
  echo "screenshot-report: $browser wrote no screenshot to $out_abs" >&2
  tail -n 20 "$profile/log" >&2
  exit 1
fi
echo "$out_abs"
