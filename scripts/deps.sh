#!/usr/bin/env bash
# Installs the Debian 12 packages scepd needs that are missing.
#   scripts/deps.sh          what building and running needs
#   scripts/deps.sh --test   and what the test suite needs (real SCEP
#                            clients, clang for fuzzing, ...)
set -euo pipefail

build_pkgs=(build-essential cmake pkg-config openssl libssl-dev libzmq3-dev
	liblmdb-dev libprotobuf-c-dev protobuf-c-compiler libmicrohttpd-dev
	libcmocka-dev libinih-dev libjansson-dev libcurl4-openssl-dev curl
	libplist-dev libseccomp-dev lmdb-utils)
test_pkgs=(scep certmonger dbus strongswan-pki libstrongswan-extra-plugins python3
	clang libclang-rt-14-dev
	iproute2 procps valgrind libplist-utils wrk chromium
	docker-compose python3-yaml python3-cryptography systemd
	softhsm2 libengine-pkcs11-openssl haproxy faketime)

want=("${build_pkgs[@]}")
[ "${1:-}" = "--test" ] && want+=("${test_pkgs[@]}")

missing=()
for p in "${want[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "scepd: missing packages: ${missing[*]}; run as root or install them" >&2
	exit 1
fi
echo "scepd: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >&2
apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
