#!/usr/bin/env bash
# The run command: installs what is missing, builds, and starts the whole
# server (all four services) on 127.0.0.1:8080 with data in ./var; a demo
# CA is made there on first start. Arguments go to scepd, e.g.
#   scripts/run.sh --listen 127.0.0.1:9090 --data-dir /srv/scepd
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/deps.sh"
"$top/scripts/build.sh" "$top/build"
cd "$top"
exec "$top/build/scepd" "$@"
