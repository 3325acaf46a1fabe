#!/usr/bin/env bash
# The run command: installs what is missing, builds, and starts the whole
# server (all four services) on 127.0.0.1:8080. As root (a fresh machine)
# each service runs as a user of its own, made by scripts/users.sh, with
# data in /var/lib/scepd (a clone in /root could not be passed by those
# users); otherwise as the caller, with data in ./var. A demo CA is made
# there on first start. Arguments go to scepd, e.g.
#   scripts/run.sh --listen 127.0.0.1:9090 --data-dir /srv/scepd
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/deps.sh"
# scripts/test.sh builds the same directory with test-only requests
# (SCEPD_TEST_HOOKS); what runs for real never has them.
"$top/scripts/build.sh" "$top/build" -DSCEPD_TEST_HOOKS=OFF
# A relative --data-dir or --config is the caller's: made absolute before
# the cd (after it, ./var is the clone's).
# getopt_long takes a long option's prefix (--data, --conf).
args=()
prev=
for arg in "$@"; do
	case "$prev" in
	--d* | --c* | -d | -c)
		[[ "$prev" == *=* ]] || [ -n "$arg" ] ||
			{ echo "run.sh: $prev: an empty value" >&2; exit 2; }
		[[ "$prev" == *=* || "$arg" == /* ]] || arg="$PWD/$arg" ;;
	esac
	case "$arg" in
	--d*= | --c*=) echo "run.sh: $arg: an empty value" >&2; exit 2 ;;
	--d*=[!/]* | --c*=[!/]*) arg="${arg%%=*}=$PWD/${arg#*=}" ;;
	-d[!/]* | -c[!/]*) arg="${arg:0:2}$PWD/${arg:2}" ;;
	esac
	args+=("$arg")
	prev=$arg
done
set -- ${args[@]+"${args[@]}"}
cd "$top"
if [ "$(id -u)" != 0 ]; then
	exec "$top/build/scepd" "$@"
fi
for arg in "$@"; do
	case "$arg" in
	# A configuration of the operator's (its User keys decide), or help
	# (no users made for it). getopt_long takes -cFILE and --conf too.
	-c* | --c* | -h | --h*)
		exec "$top/build/scepd" "$@" ;;
	esac
done
"$top/scripts/users.sh"
# A later --data-dir in "$@" wins.
exec "$top/build/scepd" --service-users --data-dir /var/lib/scepd "$@"
