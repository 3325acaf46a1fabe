#!/usr/bin/env bash
# Makes the files a split deployment (docker compose, systemd, Kubernetes)
# gives its services, laid out as a scepd data directory, which is also the
# layout of /etc/scepd in every container and on a systemd host:
#
#   ca/ca.pem ca/ca.key                 a demo CA (RSA 3072), as `scepd` makes it
#   ra/ra-sign.pem ra/ra-sign.key       the RA signing pair (<host>-MSCEP-RA)
#   ra/ra-enc.pem ra/ra-enc.key         the RA encryption pair
#   admin.passwd admin.credentials      the first admin account (read, then delete
#                                       the credentials)
#   keys/NAME.key keys/NAME.pub         CurveZMQ pairs (scepctl keygen) for
#                                       ca, ra, challenge, frontend, scepctl
#   tls/scepd.pem                       with --tls NAME only: a self-signed TLS
#                                       certificate and key for the load balancer
#
# Secret keys are mode 0600, never overwritten: OUTDIR must be missing or
# empty (dot files aside). With --owner UID:GID (as root) every file is given to that user;
# the containers run as 10001:10001 and bind-mount these files as they are.
#
# usage: make-secrets.sh [--bin-dir DIR] [--owner UID:GID] [--tls NAME] OUTDIR
#   DIR holds scepd-init and scepctl (default: where `scepd` is on PATH, else
#   /opt/scepd/bin). In the image: docker run --rm --user 0 --hostname ndes \
#     -v "$PWD/deploy/compose/secrets:/out" --entrypoint scepd-make-secrets \
#     scepd:latest --owner 10001:10001 /out
set -euo pipefail

usage() {
	sed -n 's/^# \{0,1\}//; /^usage:/,/scepd:latest/p' "$0"
}

die() {
	echo "make-secrets: $*" >&2
	exit 1
}

bin_dir=
owner=
tls_name=
while [ $# -gt 0 ]; do
	case $1 in
	--bin-dir) bin_dir=${2:?--bin-dir DIR}; shift 2 ;;
	--owner) owner=${2:?--owner UID:GID}; shift 2 ;;
	--tls) tls_name=${2:?--tls NAME}; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	--) shift; break ;;
	-*) usage >&2; exit 2 ;;
	*) break ;;
	esac
done
[ $# -eq 1 ] || { usage >&2; exit 2; }
out=$1

if [ -z "$bin_dir" ]; then
	if command -v scepd > /dev/null 2>&1; then
		bin_dir=$(dirname "$(command -v scepd)")
	else
		bin_dir=/opt/scepd/bin
	fi
fi
for b in scepd-init scepctl; do
	[ -x "$bin_dir/$b" ] || die "$bin_dir/$b is missing (see --bin-dir)"
done
if [ -n "$tls_name" ] && ! command -v openssl > /dev/null 2>&1; then
	die "--tls needs the openssl command"
fi
# (Dot files such as a .gitignore may be there.)
if [ -e "$out" ] && [ -n "$(find "$out" -mindepth 1 -maxdepth 1 ! -name '.*' 2> /dev/null)" ]; then
	die "$out is not empty: keys are never overwritten"
fi
if [ ! -d "$out" ]; then
	mkdir -p "$out"
	chmod 0700 "$out"
fi
out=$(cd "$out" && pwd)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/scepd-secrets.XXXXXX")
cleanup() {
	rm -rf "$tmp"
}
trap cleanup EXIT

# scepd's first start (scepd-init) makes the CA, the RA certificates and
# the admin account.
if ! "$bin_dir/scepd-init" --data-dir "$tmp/data" --listen 0.0.0.0:8080 \
	> "$tmp/init.log" 2>&1 || [ ! -f "$tmp/data/scepd.conf" ]; then
	grep -v '^Admin credentials' "$tmp/init.log" >&2 || true
	die "scepd-init did not make the CA"
fi

mkdir -m 0700 "$out/ca" "$out/ra"
cp -p "$tmp/data/ca/ca.pem" "$tmp/data/ca/ca.key" "$out/ca/"
cp -p "$tmp/data/ra/ra-sign.pem" "$tmp/data/ra/ra-sign.key" \
	"$tmp/data/ra/ra-enc.pem" "$tmp/data/ra/ra-enc.key" "$out/ra/"
cp -p "$tmp/data/admin/admin.passwd" "$tmp/data/admin.credentials" "$out/"
chmod 0600 "$out"/ca/*.key "$out"/ra/*.key "$out/admin.passwd" "$out/admin.credentials"
chmod 0644 "$out"/ca/*.pem "$out"/ra/*.pem

for name in ca ra challenge frontend scepctl; do
	"$bin_dir/scepctl" --data-dir "$out" keygen "$name" > /dev/null 2> "$tmp/keygen.log" ||
		{ cat "$tmp/keygen.log" >&2; die "scepctl keygen $name failed"; }
done

if [ -n "$tls_name" ]; then
	mkdir -m 0700 "$out/tls"
	openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=$tls_name" \
		-addext "subjectAltName=DNS:$tls_name" -keyout "$tmp/tls.key" \
		-out "$tmp/tls.pem" 2> "$tmp/openssl.log" ||
		{ cat "$tmp/openssl.log" >&2; die "openssl req failed"; }
	(umask 077 && cat "$tmp/tls.pem" "$tmp/tls.key" > "$out/tls/scepd.pem")
fi

if [ -n "$owner" ]; then
	chown -R "$owner" "$out"/ca "$out"/ra "$out"/keys \
		"$out"/admin.passwd "$out"/admin.credentials ${tls_name:+"$out"/tls} ||
		die "chown $owner failed (run as root)"
fi

echo "make-secrets: wrote $out:"
(cd "$out" && find . -type f | sort | sed 's|^\./|  |')
echo "CA: $(openssl x509 -in "$out/ca/ca.pem" -noout -subject 2> /dev/null || echo ca/ca.pem)"
echo "The first admin's user:password is in $out/admin.credentials: read it, then delete it."
