#!/usr/bin/env bash
# The run command: installs what is missing, builds, and starts the whole
# server (all four services) on 127.0.0.1:8080 with data in ./var; a demo
# CA is made there on first start. Arguments go to scepd, e.g.
#   scripts/run.sh --listen 127.0.0.1:9090 --data-dir /srv/scepd
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/deps.sh"
# scripts/test.sh builds the same directory with test-only requests
# (SCEPD_TEST_HOOKS); what runs for real never has them.
"$top/scripts/build.sh" "$top/build" -DSCEPD_TEST_HOOKS=OFF
cd "$top"
exec "$top/build/scepd" "$@"
