#!/usr/bin/env bash
# Makes the users `scepd --service-users` runs the four services as, each
# with a group of its name (as deploy/systemd/scepd.sysusers), and the
# memberships that let a client reach its servers' sockets and no other:
# the RA is in groups scepd-ca and scepd-challenge, the frontend in
# scepd-ra and scepd-challenge. The frontend is in no group that reaches
# the CA. Run as root; users and groups that exist are kept, their
# memberships among these groups made as above.
set -euo pipefail
if [ "$(id -u)" != 0 ]; then
	echo "users.sh: run as root (it adds system users)" >&2
	exit 1
fi
# One at a time (run.sh, tests): useradd and gpasswd lock /etc/group
# each for itself, not this script's checks and changes together.
exec 9>> /run/scepd-users.lock # /run: root's alone to write (not /run/lock)
flock 9
nologin=/usr/sbin/nologin
[ -x "$nologin" ] || nologin=/bin/false
for svc in ca challenge ra frontend; do
	name=scepd-$svc
	getent group "$name" >/dev/null || groupadd --system "$name"
	if ! getent passwd "$name" >/dev/null; then
		useradd --system --gid "$name" --no-create-home \
			--home-dir /nonexistent --shell "$nologin" \
			--comment "scepd $svc" "$name"
	fi
done
usermod --append --groups scepd-ca,scepd-challenge scepd-ra
usermod --append --groups scepd-ra,scepd-challenge scepd-frontend
# And no other: a membership added by hand (the frontend in scepd-ca)
# would undo what the users are for.
for pair in frontend:ca ca:ra ca:challenge ca:frontend challenge:ca \
	challenge:ra challenge:frontend ra:frontend; do
	user=scepd-${pair%%:*} group=scepd-${pair#*:}
	if id -nG "$user" | tr ' ' '\n' | grep -qx "$group"; then
		gpasswd --delete "$user" "$group" >/dev/null
		echo "users.sh: $user taken out of group $group"
	fi
done
