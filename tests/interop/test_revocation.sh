#!/usr/bin/env bash
# Revocation and the CRL: `scepctl revoke` on the CA host, a CRL the CA
# signs (number, thisUpdate/nextUpdate, reason codes) served over plain
# HTTP at the CRL distribution point put in issued certificates, that
# `openssl verify -crl_check` uses; a revoked certificate cannot renew.
# Serials are found as openssl x509 -serial, -text and pki --print show them;
# scepctl --help gives each command's options.
. "$(dirname "$0")/lib.sh"
interop_init revocation
server_start
fetch_ca_chain
server_stop
CRL_URL="$BASE/crl/ca.crl"
# refused_at_start SERVICE SECTION KEY VALUE REGEX: the service started
# alone with KEY = VALUE exits 1 with a line matching REGEX.
refused_at_start() {
	local rc=0
	set_conf "$2" "$3" "$4"
	timeout -s KILL 20 "$BUILD_DIR/$1" --config "$DATA/scepd.conf" > "$WORK/refused.out" 2>&1 || rc=$?
	[ $rc = 1 ] && grep -q -- "$5" "$WORK/refused.out" ||
		{ cat "$WORK/refused.out"; fail "[$2] $3 = $4: exit $rc, want 1 and a line matching: $5"; }
}
check "a CRLURL OpenSSL would split at its comma stops the CA at start, named"
# (it failed every issuance, or gave a second distribution point)
for bad in "$CRL_URL?a=1,b=2" "$CRL_URL,URI:http://elsewhere.example/crl" "ftp://example.com/ca.crl"; do
	refused_at_start scepd-ca ca CRLURL "$bad" "\[ca\] CRLURL: .* is not an http://, https:// or ldap:// URL"
done
set_conf ca CRLURL "$CRL_URL"
check "a CRLPath no request could reach, or one taken from SCEP or the admin page, stops the frontend at start, named"
# (the distribution point stayed 404 for good, or took over a SCEP path:
# the CRL is matched first)
for bad in "crl/ca.crl:does not start with '/'" "/certsrv/mscep/mscep.dll:is a SCEP path (Paths)" \
	"/certsrv/mscep/mscep.dll/pkiclient.exe:is a SCEP path (Paths)" "/certsrv/mscep_admin/ca.crl:is under AdminPath" \
	"/metrics:is the server's own"; do
	refused_at_start scepd-frontend frontend CRLPath "${bad%%:*}" "\[frontend\] CRLPath: '${bad%%:*}' ${bad#*:}"
done
# Nor may the admin page take a SCEP path (it is routed first: every
# device got 404).
refused_at_start scepd-frontend frontend AdminPath /CertSrv \
	"\[frontend\] AdminPath: '/CertSrv' holds '/certsrv/mscep/mscep.dll', a SCEP path (Paths)"
refused_at_start scepd-frontend frontend AdminPath /scep/PKIclient.exe \
	"\[frontend\] AdminPath: '/scep/PKIclient.exe' holds '/scep/pkiclient.exe', a SCEP path (Paths)"
set_conf frontend AdminPath /certsrv/mscep_admin
set_conf frontend CRLPath /crl/ca.crl
set_conf ca CRLValidityHours 24
cat >> "$DATA/scepd.conf" <<'EOF'

[template.IPSECIntermediateOffline]
RenewalWindow = 100
EOF
server_start

# crl NAME: the CRL over HTTP into $WORK/NAME.crl (DER) and .pem
crl() {
	local code
	code=$(curl -s -D "$WORK/$1.headers" -o "$WORK/$1.crl" -w '%{http_code} %{content_type}' "$CRL_URL")
	[ "$code" = "200 application/pkix-crl" ] || fail "GET $CRL_URL: $code"
	openssl crl -inform DER -in "$WORK/$1.crl" -out "$WORK/$1.pem" 2>/dev/null || fail "$1: not a DER CRL"
	openssl crl -in "$WORK/$1.pem" -CAfile "$CA_PEM" -noout 2>&1 | grep -q "verify OK" ||
		fail "$1: the CRL's signature does not verify against the CA"
	openssl crl -in "$WORK/$1.pem" -noout -text > "$WORK/$1.txt"
}

check "issued certificates carry the CRL distribution point"
ios_enroll "$(challenge)" "CN=to be revoked" "$WORK/a.pem" "$URL" --key "$WORK/a.key" >/dev/null || fail "enroll a"
ios_enroll "$(challenge)" "CN=stays valid" "$WORK/b.pem" >/dev/null || fail "enroll b"
openssl x509 -in "$WORK/a.pem" -noout -ext crlDistributionPoints | grep -q "URI:$CRL_URL" ||
	fail "no CRL distribution point $CRL_URL in the certificate"

check "the CRL over HTTP: signed by the CA, numbered, valid CRLValidityHours, empty"
crl first
grep -q "No Revoked Certificates" "$WORK/first.txt" || fail "a fresh CA's CRL lists something"
n1=$(awk '/X509v3 CRL Number/ { getline; gsub(/ /, ""); print }' "$WORK/first.txt")
[ -n "$n1" ] || fail "no CRL number"
last=$(date -d "$(sed -n 's/ *Last Update: //p' "$WORK/first.txt")" +%s)
next=$(date -d "$(sed -n 's/ *Next Update: //p' "$WORK/first.txt")" +%s)
# thisUpdate 5 minutes back (relying parties whose clock is behind),
# nextUpdate CRLValidityHours from when it was made.
[ $((next - last)) = $((86400 + 300)) ] || fail "nextUpdate - thisUpdate = $((next - last)) s, want CRLValidityHours = 24 and 300 s backdated"

check "a cache on the way keeps the CRL no longer than the frontend's copy is fresh"
# max_age NAME: the Cache-Control max-age of the CRL fetched as NAME.
max_age() { tr -d '\r' < "$WORK/$1.headers" | sed -n 's/^[Cc]ache-[Cc]ontrol: max-age=\([0-9]*\)$/\1/p'; }
[ "$(max_age first)" = 60 ] || fail "a CRL just fetched from the CA: Cache-Control $(grep -i cache-control "$WORK/first.headers")"
sleep 2
crl aged
age=$(max_age aged)
[ -n "$age" ] && [ "$age" -le 58 ] ||
	fail "the frontend's copy, 2 s old, is given max-age=${age:-none} (a cache would keep it past the minute)"

check "scepctl revoke: the serial with its reason in the next CRL; verify -crl_check refuses it"
serial=$(openssl x509 -in "$WORK/a.pem" -noout -serial | cut -d= -f2)
# By an operator whose user name is not UTF-8 (it goes into the record):
# the revocation failed as an internal error.
revoked_from=$(date +%s)
env -u SUDO_USER USER=$'op\xe9rateur' "$SCEPCTL" --data-dir "$DATA" revoke "$serial" --reason keyCompromise 2> "$WORK/revoke.err" ||
	{ cat "$WORK/revoke.err"; fail "scepctl revoke"; }
cat "$WORK/revoke.err"
rc=0
"$SCEPCTL" --data-dir "$DATA" revoke "$serial" 2> "$WORK/again.err" || rc=$?
[ $rc = 1 ] && grep -q "already revoked" "$WORK/again.err" || fail "a second revoke: exit $rc, $(cat "$WORK/again.err")"
rc=0
"$SCEPCTL" --data-dir "$DATA" revoke 00AA --reason keyCompromise 2> "$WORK/unknown.err" || rc=$?
[ $rc = 1 ] && grep -q "no such serial" "$WORK/unknown.err" || fail "unknown serial: exit $rc"
rc=0
"$SCEPCTL" --data-dir "$DATA" revoke "$(openssl x509 -in "$WORK/b.pem" -noout -serial | cut -d= -f2)" \
	--reason bored 2> "$WORK/reason.err" || rc=$?
[ $rc = 1 ] && grep -q "unknown reason" "$WORK/reason.err" || fail "unknown reason: exit $rc"
# The frontend keeps the CRL a minute; a restart also shows it persists.
server_restart
crl second
grep -q "Serial Number: $serial" "$WORK/second.txt" || { cat "$WORK/second.txt"; fail "the revoked serial is not listed"; }
grep -A5 "Serial Number: $serial" "$WORK/second.txt" | grep -q "Key Compromise" || fail "no keyCompromise reason"
n2=$(awk '/X509v3 CRL Number/ { getline; gsub(/ /, ""); print }' "$WORK/second.txt")
[ $((16#$n2)) -gt $((16#$n1)) ] || fail "CRL number $n2 is not above $n1"
cat "$CA_PEM" > "$WORK/chain.pem"
rc=0
openssl verify -crl_check -CAfile "$WORK/chain.pem" -CRLfile "$WORK/second.pem" "$WORK/a.pem" > "$WORK/va.out" 2>&1 || rc=$?
[ $rc != 0 ] && grep -q "certificate revoked" "$WORK/va.out" || { cat "$WORK/va.out"; fail "verify -crl_check accepted the revoked certificate"; }
openssl verify -crl_check -CAfile "$WORK/chain.pem" -CRLfile "$WORK/second.pem" "$WORK/b.pem" >/dev/null ||
	fail "verify -crl_check refused the valid certificate"
# A relying party whose clock is two minutes behind: the CRL made at
# the revocation is current for it too (OpenSSL: "CRL is not yet valid").
openssl verify -crl_check -attime $(($(date +%s) - 120)) -CAfile "$WORK/chain.pem" -CRLfile "$WORK/second.pem" \
	"$WORK/b.pem" > "$WORK/vb-behind.out" 2>&1 ||
	{ cat "$WORK/vb-behind.out"; fail "verify -crl_check two minutes behind refused the valid certificate"; }
"$SCEPCTL" --data-dir "$DATA" show "$serial" > "$WORK/show-revoked.json" || fail "scepctl show"
# When and by whom (the user name as scepctl found it, its byte that is
# not UTF-8 written \xHH), not only the log's to tell.
python3 - "$WORK/show-revoked.json" "$revoked_from" <<'PY' || { cat "$WORK/show-revoked.json"; fail "scepctl show: not revoked, or not when and by whom"; }
import calendar, json, sys, time
e = json.load(open(sys.argv[1]))
assert e["status"] == "revoked" and e["reason"] == "keyCompromise", e
assert e["revoked_by"] == "scepctl (op\\xE9rateur)", e["revoked_by"]
at = calendar.timegm(time.strptime(e["revoked_at"], "%Y-%m-%dT%H:%M:%SZ"))
assert int(sys.argv[2]) <= at <= time.time(), (e["revoked_at"], sys.argv[2])
assert "hold_final_at" not in e, e
PY
"$SCEPCTL" --data-dir "$DATA" list 2>/dev/null |
	grep -q "  $serial  .*  revoked: keyCompromise [0-9T:-]*Z by scepctl (op\\\\xE9rateur)$" ||
	{ "$SCEPCTL" --data-dir "$DATA" list; fail "scepctl list does not say revoked, when and by whom"; }
[ "$("$SCEPCTL" --data-dir "$DATA" list 2>/dev/null | grep -c "revoked: ")" = 1 ] ||
	fail "scepctl list says revoked of a certificate not revoked"

check "serials as openssl x509 -text and pki --print show them (lower-case pairs and colons), or with spaces: show and revoke find them"
# "    60:af:55:..." on the line after "Serial Number:" (16 bytes, too many
# for openssl to print it in decimal).
colon=$(openssl x509 -in "$WORK/b.pem" -noout -text | awk '/Serial Number:/ { getline; print; exit }')
plain=$(openssl x509 -in "$WORK/b.pem" -noout -serial | cut -d= -f2)
echo "   $plain as '$colon'"
case $colon in *[0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]*) ;; *) fail "openssl x509 -text printed the serial as '$colon'" ;; esac
"$SCEPCTL" --data-dir "$DATA" show "$colon" > "$WORK/show-colon.json" 2>&1 || { cat "$WORK/show-colon.json"; fail "scepctl show '$colon'"; }
grep -q "\"serial\": \"$plain\"" "$WORK/show-colon.json" || { cat "$WORK/show-colon.json"; fail "scepctl show '$colon' found another serial"; }
"$SCEPCTL" --data-dir "$DATA" revoke "${colon// /}" --reason superseded 2> "$WORK/revoke-colon.err" ||
	{ cat "$WORK/revoke-colon.err"; fail "scepctl revoke ${colon// /}"; }
spaced=$(echo "$colon" | tr 'a-f:' 'A-F ')
"$SCEPCTL" --data-dir "$DATA" show "$spaced" | grep -q '"status": "revoked"' ||
	fail "scepctl show '$spaced' does not say revoked"
for bad in "${plain:0:1}:${plain:1}" "${plain:0:2}::${plain:2}" "${plain:0:2}:${plain:2}" "$plain:"; do
	rc=0
	"$SCEPCTL" --data-dir "$DATA" show "$bad" > /dev/null 2> "$WORK/bad.err" || rc=$?
	if [ $rc != 1 ] || ! grep -q "no such serial" "$WORK/bad.err"; then
		fail "scepctl show '$bad' (separators not between pairs): exit $rc, $(cat "$WORK/bad.err")"
	fi
done
echo "   separators not between pairs are refused"

check "on this host only root or the CA's own user may speak as scepctl: another user who can reach the CA's socket cannot revoke"
# As a taken-over RA of its own user could: it declares its origin itself.
ios_enroll "$(challenge)" "CN=only root revokes" "$WORK/c.pem" "$URL" >/dev/null || fail "enroll c"
b_serial=$(openssl x509 -in "$WORK/c.pem" -noout -serial | cut -d= -f2)
chmod o+x "$WORK" "$DATA" "$DATA/run"
chmod o+r "$DATA/scepd.conf"
chmod o+rw "$DATA/run/ca.sock"
from=$(log_mark)
rc=0
setpriv --reuid=65534 --regid=65534 --clear-groups \
	"$SCEPCTL" --data-dir "$DATA" revoke "$b_serial" --reason keyCompromise > "$WORK/nobody.out" 2>&1 || rc=$?
chmod o-x "$WORK" "$DATA" "$DATA/run"
chmod o-r "$DATA/scepd.conf"
chmod o-rw "$DATA/run/ca.sock"
[ $rc != 0 ] || { cat "$WORK/nobody.out"; fail "user nobody revoked a certificate as scepctl"; }
grep -q "not permitted" "$WORK/nobody.out" || { cat "$WORK/nobody.out"; fail "user nobody: exit $rc without the CA's refusal (did it reach the CA?)"; }
logged "$from" "security: request .* declares origin 'scepctl' from user 65534, neither root nor this service's" ||
	fail "the CA did not log the refusal"
"$SCEPCTL" --data-dir "$DATA" show "$b_serial" | grep -q '"status": "issued"' || fail "the certificate is no longer issued (revoked?)"
echo "   refused: $(grep -m1 'not permitted' "$WORK/nobody.out")"

check "scepctl --help gives every option of each command's own usage line; COMMAND --help needs no data directory"
"$SCEPCTL" --help > "$WORK/help.txt" || fail "scepctl --help"
cmds=$(sed -n '/^commands:/,/^exit status/s/^  \([a-z-]\+\) .*/\1/p' "$WORK/help.txt")
[ "$(echo "$cmds" | wc -w)" -ge 8 ] || fail "scepctl --help lists the commands: $(echo "$cmds" | xargs)"
for cmd in $cmds; do
	# A command's help needs no data directory.
	"$SCEPCTL" --data-dir "$WORK/nowhere" "$cmd" --help > "$WORK/help-$cmd.txt" || fail "scepctl $cmd --help"
	# The usage line and those that go on with its options.
	for opt in $(awk 'NR == 1 || /^ +\[/ { print; next } { exit }' "$WORK/help-$cmd.txt" |
		grep -oE -- '--[a-z-]+' | grep -vx -- '--data-dir'); do
		grep -qE -- "^  $cmd .*$opt\b" "$WORK/help.txt" || fail "scepctl --help does not give $cmd's $opt"
	done
done
echo "   $(echo "$cmds" | xargs)"

check "a certificate of this CA the ledger does not hold: refused without --not-in-ledger, naming it; an earlier CRL imported (scepctl import-crl, README 'An existing CA'): its entries on scepd's CRL with their dates and reasons, once; a CRL not this CA's, a delta, an indirect one, removeFromCRL refused whole; a hold made final; 4,500 entries in three CRLs"
rc=0
"$SCEPCTL" --data-dir "$DATA" revoke 7F0011 2> "$WORK/foreign.err" || rc=$?
[ $rc = 1 ] && grep -q -- "no such serial in the ledger.*--not-in-ledger" "$WORK/foreign.err" ||
	{ cat "$WORK/foreign.err"; fail "a serial not in the ledger without --not-in-ledger: exit $rc"; }
rc=0
"$SCEPCTL" --data-dir "$DATA" revoke "$(openssl x509 -in "$WORK/b.pem" -noout -serial | cut -d= -f2)" --not-in-ledger 2> "$WORK/foreign.err" || rc=$?
[ $rc = 1 ] && grep -q "the ledger holds this certificate" "$WORK/foreign.err" ||
	{ cat "$WORK/foreign.err"; fail "--not-in-ledger for a serial the ledger holds: exit $rc"; }
# A short serial as `openssl x509 -text` writes it after its decimal
# form ("4096 (0x1000)"): 0x1000 is read as hex 1000, and the answer
# names the serial as the CA read it (a decimal "4096" would be 0x4096).
"$SCEPCTL" --data-dir "$DATA" revoke 0x7f1000 --not-in-ledger 2> "$WORK/foreign.err" ||
	{ cat "$WORK/foreign.err"; fail "revoke 0x7f1000 --not-in-ledger"; }
grep -q "serial 0*7F1000 (hex) revoked" "$WORK/foreign.err" ||
	{ cat "$WORK/foreign.err"; fail "the revocation does not name the serial as read (7F1000, hex)"; }
# ARGUMENTS:STATUS: --date without the flag or not a time (usage, 2), a
# date to come, a serial of 21 octets (refused, 1).
for bad in "7F0012 --date 2024-05-01T10:00:00Z:2" "7F0012 --not-in-ledger --date 2024-05-01:2" \
	"7F0012 --not-in-ledger --date 2099-01-01T00:00:00Z:1" "0102030405060708090A0B0C0D0E0F101112131415 --not-in-ledger:1"; do
	rc=0
	# shellcheck disable=SC2086 # the arguments, split
	"$SCEPCTL" --data-dir "$DATA" revoke ${bad%:*} 2> "$WORK/foreign.err" || rc=$?
	[ $rc = "${bad##*:}" ] || { cat "$WORK/foreign.err"; fail "revoke ${bad%:*}: exit $rc, want ${bad##*:}"; }
done
# gencrl NAME INDEX-LINES [CRL-EXTENSIONS] [KEY CERT]: $WORK/NAME.crl
# (PEM, number 4096), as the CA's software before scepd made it from its
# index, signed with the CA key (or KEY, CERT's).
gencrl() {
	"$SRC_DIR/tests/tools/gencrl.sh" "$WORK/$1.crl" "${4:-$DATA/ca/ca.key}" "${5:-$DATA/ca/ca.pem}" "$2" "${3:-}" ||
		fail "openssl ca -gencrl $1"
}
# import NAME FILE: scepctl import-crl FILE, its output in $WORK/NAME.out;
# its exit status.
import() {
	local rc=0
	"$SCEPCTL" --data-dir "$DATA" import-crl "$2" > "$WORK/$1.out" 2>&1 || rc=$?
	return $rc
}
# The CA's CRL from before scepd: a serial of 20 octets revoked for
# keyCompromise, a short one without a reason, one on hold.
r='R\t301231235959Z\t'
gencrl old "${r}240501100000Z,keyCompromise\t7A1B2C3D4E5F60718293A4B5C6D7E8F901234567\tunknown\t/CN=old 1\n${r}230102030405Z\t1F\tunknown\t/CN=old 2\n${r}250303030303Z,certificateHold,holdInstructionReject\t2B\tunknown\t/CN=old 3\n"
# Refused whole, nothing put on the CRL: another key under the CA's name,
# a delta CRL, an indirect one, one with an unknown critical extension,
# an entry removeFromCRL (each beside an
# entry that alone would be taken), not a CRL.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -keyout "$WORK/other.key" \
	-subj "$(openssl x509 -in "$DATA/ca/ca.pem" -noout -subject -nameopt compat | sed 's/^subject=//')" \
	-out "$WORK/other.pem" 2>/dev/null || fail "a certificate under the CA's name with another key"
good="${r}240601000000Z\t7E0001\tunknown\t/CN=x\n"
gencrl other-key "$good" '' "$WORK/other.key" "$WORK/other.pem"
gencrl delta "$good" '2.5.29.27 = critical,DER:02:02:03:E7'
gencrl indirect "$good" 'issuingDistributionPoint = critical,@idp\n[idp]\nindirectCRL = TRUE'
gencrl partition "$good" 'issuingDistributionPoint = critical,@idp\n[idp]\nonlysomereasons = keyCompromise'
gencrl remove "${good}${r}240501100000Z,removeFromCRL\t7E0002\tunknown\t/CN=y\n"
# An extension marked critical that the reader does not know (RFC 5280:
# such a CRL decides no status): it was imported, the extension ignored.
gencrl critical "$good" '1.3.6.1.4.1.99999.1 = critical,ASN1:NULL'
# And what the CA would refuse (a request of the import stopping it
# halfway): serial 0, a revocation after the CRL was made.
gencrl zero "${good}${r}240501100000Z\t00\tunknown\t/CN=y\n"
gencrl future "${good}${r}491231000000Z\t7E0003\tunknown\t/CN=y\n"
# As AD CS makes them: thisUpdate 10 minutes before it signs
# (ClockSkewMinutes), an entry revoked in between: taken.
faketime_lib
LD_PRELOAD="$FAKETIME_LIB" FAKETIME=-600 gencrl adcs "${r}$(date -u -d @$(($(date +%s) - 60)) +%y%m%d%H%M%SZ)\t7E0005\tunknown\t/CN=z\n"
head -c 300 /dev/urandom > "$WORK/garbage.crl"
mark=$(log_mark)
for bad in "other-key:signature is not the CA key's" "delta:a delta CRL" "indirect:an indirect CRL" \
	"partition:a partitioned CRL" \
	"critical:a critical extension 1.3.6.1.4.1.99999.1 this reader does not know" \
	"remove:reason code 8 is not a revocation" "zero:serial is not a positive number" \
	"future:after this machine's time" "garbage:not a CRL"; do
	rc=0
	import "refused-${bad%%:*}" "$WORK/${bad%%:*}.crl" || rc=$?
	[ $rc = 1 ] && grep -q "${bad#*:}" "$WORK/refused-${bad%%:*}.out" ||
		{ cat "$WORK/refused-${bad%%:*}.out"; fail "import-crl of ${bad%%:*}: exit $rc, want 1 saying '${bad#*:}'"; }
done
! logged "$mark" "revoked serial 0*7E000" || fail "a refused CRL put an entry on the CRL"
gencrl empty ''
import empty "$WORK/empty.crl" && grep -q "lists no certificate" "$WORK/empty.out" ||
	{ cat "$WORK/empty.out"; fail "import-crl of an empty CRL"; }
# A dry run first: counted, nothing written (the import after it puts
# all three).
mark=$(log_mark)
"$SCEPCTL" --data-dir "$DATA" import-crl --dry-run "$WORK/old.crl" > "$WORK/old-dry.out" 2>&1 &&
	grep -q "3 entries: 3 would be put on the CRL, 0 made final from a hold, 0 there already (dry run: nothing written)" "$WORK/old-dry.out" ||
	{ cat "$WORK/old-dry.out"; fail "import-crl --dry-run of the CA's earlier CRL"; }
! logged "$mark" "revoked serial\|issued CRL number" || fail "the dry run revoked or issued a CRL"
# Imported twice: the second run finds each entry there already.
import old-first "$WORK/old.crl" && grep -q "3 entries: 3 put on the CRL, 0 made final from a hold, 0 there already" "$WORK/old-first.out" ||
	{ cat "$WORK/old-first.out"; fail "import-crl of the CA's earlier CRL"; }
openssl crl -in "$WORK/old.crl" -outform DER -out "$WORK/old.der"
import old-again "$WORK/old.der" && grep -q "3 entries: 0 put on the CRL, 0 made final from a hold, 3 there already" "$WORK/old-again.out" ||
	{ cat "$WORK/old-again.out"; fail "import-crl of the same CRL again (DER)"; }
# Three revocations, each once, logged as revoke logs them.
[ "$(grep -c "revoked serial .*, not in the ledger, revoked .* from CRL number 4096;" "$SERVER_LOG")" = 3 ] ||
	{ grep "revoked serial" "$SERVER_LOG"; fail "the earlier CRL's three entries were not each revoked once"; }
logged 1 "revoked serial 7A1B2C3D4E5F60718293A4B5C6D7E8F901234567 (keyCompromise, not in the ledger, revoked 2024-05-01T10:00:00Z)" ||
	fail "the log does not say the serial is not in the ledger, with its date"
logged 1 "imported 3 entries of CRL number 4096 by scepctl" || fail "the import's summary is not logged"
import adcs "$WORK/adcs.crl" && grep -q "1 entry: 1 put on the CRL" "$WORK/adcs.out" ||
	{ cat "$WORK/adcs.out"; fail "import-crl of a CRL with an entry after its thisUpdate (AD CS)"; }
server_restart
crl imported
grep -A4 "Serial Number: 7A1B2C3D4E5F60718293A4B5C6D7E8F901234567" "$WORK/imported.txt" > "$WORK/entry1.txt"
grep -q "Revocation Date: May  1 10:00:00 2024 GMT" "$WORK/entry1.txt" && grep -q "Key Compromise" "$WORK/entry1.txt" ||
	{ cat "$WORK/imported.txt"; fail "the 20-octet entry is not on scepd's CRL with its date and reason"; }
grep -A3 "Serial Number: 1F$" "$WORK/imported.txt" > "$WORK/entry2.txt"
grep -q "Revocation Date: Jan  2 03:04:05 2023 GMT" "$WORK/entry2.txt" && ! grep -q "Reason Code" "$WORK/entry2.txt" ||
	{ cat "$WORK/imported.txt"; fail "the short entry is not on scepd's CRL with its date and no reason"; }
grep -A4 "Serial Number: 2B$" "$WORK/imported.txt" | grep -q "Certificate Hold" ||
	{ cat "$WORK/imported.txt"; fail "the entry on hold is not on scepd's CRL as a hold"; }
openssl crl -in "$WORK/imported.pem" -CAfile "$CA_PEM" -noout 2>&1 | grep -q "verify OK" || fail "the CRL does not verify"
"$SCEPCTL" --data-dir "$DATA" unrevoke 2B 2> "$WORK/unrevoke-foreign.err" ||
	{ cat "$WORK/unrevoke-foreign.err"; fail "unrevoke of a hold the ledger does not hold"; }
rc=0
"$SCEPCTL" --data-dir "$DATA" revoke 1F --not-in-ledger --date 2024-02-31T00:00:00Z 2> "$WORK/foreign.err" || rc=$?
[ $rc = 2 ] || { cat "$WORK/foreign.err"; fail "--date 2024-02-31: exit $rc, want 2"; }
server_restart
crl released
! grep -q "Serial Number: 2B$" "$WORK/released.txt" || fail "the released hold is still on the CRL"
# A hold not in the ledger made final: logged as such, without a date
# (it keeps the hold's), as a restore reads it.
for reason in certificateHold keyCompromise; do
	"$SCEPCTL" --data-dir "$DATA" revoke 2C --not-in-ledger --reason $reason 2>/dev/null || fail "revoke 2C ($reason)"
done
logged 1 "revoked serial 0*2C (keyCompromise, was on hold, not in the ledger) by" ||
	fail "a hold not in the ledger made final is not logged as not in the ledger"
# A later CRL of the old CA lists a hold as final: made final, keeping the
# hold's date.
"$SCEPCTL" --data-dir "$DATA" revoke 2D --not-in-ledger --reason certificateHold --date 2025-01-01T00:00:00Z 2>/dev/null ||
	fail "revoke 2D on hold"
gencrl later "${r}250601000000Z,keyCompromise\t2D\tunknown\t/CN=old 4\n"
import later "$WORK/later.crl" && grep -q "1 entry: 0 put on the CRL, 1 made final from a hold, 0 there already" "$WORK/later.out" ||
	{ cat "$WORK/later.out"; fail "import-crl of a CRL listing a hold as final"; }
# A CRL of thousands: 2,000 entries a request, one CRL each.
for ((i = 1; i <= 4500; i++)); do printf "${r}240101000000Z,superseded\t%06X\tunknown\t/CN=n%d\n" $((0x500000 + i)) $i; done > "$WORK/many.index"
gencrl many "@$WORK/many.index"
mark=$(log_mark)
t0=$(date +%s%N)
import many "$WORK/many.crl" && grep -q "4500 entries: 4500 put on the CRL" "$WORK/many.out" ||
	{ cat "$WORK/many.out"; fail "import-crl of 4,500 entries"; }
echo "   4,500 entries imported in $((($(date +%s%N) - t0) / 1000000)) ms"
[ "$(tail -n "+$mark" "$SERVER_LOG" | grep -c "issued CRL number")" = 3 ] ||
	fail "4,500 entries did not issue three CRLs (2,000 a request)"
server_restart
crl many
[ "$(grep -cE "Serial Number: 50[01][0-9A-F]{3}$" "$WORK/many.txt")" = 4500 ] || fail "the CRL does not list the 4,500 entries"
grep -A4 "Serial Number: 2D$" "$WORK/many.txt" > "$WORK/entry2d.txt"
grep -q "Revocation Date: Jan  1 00:00:00 2025 GMT" "$WORK/entry2d.txt" && grep -q "Key Compromise" "$WORK/entry2d.txt" ||
	{ cat "$WORK/entry2d.txt"; fail "the hold made final by the import: not keyCompromise at the hold's date"; }

check "the CA's own checks of an import (tests/tools/ca_import, where scepctl would refuse first): all or nothing, 5 minutes of clock skew, its CA certificate, numbered above the imported CRL"
ca_import() { "$BUILD_DIR/tests/ca_import" --endpoint "ipc://$DATA/run/ca.sock" "$@"; }
now=$(date +%s)
mark=$(log_mark)
rc=0
ca_import --ca-cert "$CA_PEM" "7E0101:$((now - 100))" "7E0102:$((now + 3600))" > "$WORK/cai.out" || rc=$?
[ $rc = 2 ] && grep -q "serial 0*7E0102: its revocation date is not a past time" "$WORK/cai.out" ||
	{ cat "$WORK/cai.out"; fail "an entry dated an hour ahead: exit $rc, want the request refused naming it"; }
! logged "$mark" "revoked serial 0*7E0101 " || fail "the request refused put its other entry on the CRL"
ca_import --ca-cert "$CA_PEM" "7E0101:$((now - 100))" > "$WORK/cai.out" && grep -q "^added 1 " "$WORK/cai.out" ||
	{ cat "$WORK/cai.out"; fail "the entry of the refused request was in the ledger already"; }
ca_import --ca-cert "$CA_PEM" "7E0103:$((now + 120)):keyCompromise" > "$WORK/cai.out" &&
	grep -q "^added 1 " "$WORK/cai.out" || { cat "$WORK/cai.out"; fail "an entry dated 2 minutes ahead (clock skew) refused"; }
when=$(sed -n 's/.*revoked serial 0*7E0103 (keyCompromise, not in the ledger, revoked \([^)]*\)).*/\1/p' "$SERVER_LOG")
[ -n "$when" ] && [ "$(date -d "$when" +%s)" -le $(($(date +%s) + 1)) ] ||
	fail "the entry dated 2 minutes ahead is not revoked now (logged: '$when')"
for bad in "--ca-cert $WORK/other.pem:not checked with this CA's certificate" "--ca-cert -:not checked with this CA's certificate" \
	"--ca-cert $CA_PEM --by $(printf 'x%.0s' {1..300}):longer than 255 bytes"; do
	rc=0
	# shellcheck disable=SC2086 # the options, split
	ca_import ${bad%%:*} "7E0104:$((now - 100))" > "$WORK/cai.out" || rc=$?
	[ $rc = 2 ] && grep -q "${bad#*:}" "$WORK/cai.out" || { cat "$WORK/cai.out"; fail "ca_import ${bad%%:*}: exit $rc"; }
done
big=$((now * 1000))
ca_import --ca-cert "$CA_PEM" --from-number $big "7E0103:$((now - 100))" > "$WORK/cai.out" &&
	grep -q "^added 0 unchanged 1 made_final 0 crl_number $((big + 1))$" "$WORK/cai.out" ||
	{ cat "$WORK/cai.out"; fail "an imported CRL numbered $big: the CRL issued is not numbered above it"; }
# An empty CRL's number (a request without entries), and one that leaves
# no room above it.
ca_import --ca-cert "$CA_PEM" --from-number $((big + 1000)) > "$WORK/cai.out" &&
	grep -q "^added 0 unchanged 0 made_final 0 crl_number $((big + 1001))$" "$WORK/cai.out" ||
	{ cat "$WORK/cai.out"; fail "an empty CRL numbered $((big + 1000)): the CRL issued is not numbered above it"; }
rc=0
ca_import --ca-cert "$CA_PEM" --from-number 9223372036854775807 > "$WORK/cai.out" || rc=$?
[ $rc = 2 ] && grep -q "leaves no room above it" "$WORK/cai.out" || { cat "$WORK/cai.out"; fail "a CRL number of 2^63 - 1: exit $rc"; }

check "a revoked certificate cannot renew"
rc=0
"$IOS_CLIENT" --url "$URL" --subject "CN=to be revoked" --out "$WORK/renew.pem" \
	--renew-cert "$WORK/a.pem" --renew-key "$WORK/a.key" --key "$WORK/new.key" > "$WORK/renew.log" 2>&1 || rc=$?
[ $rc = 2 ] && grep -q "is revoked" "$WORK/renew.log" || { cat "$WORK/renew.log"; fail "revoked renewal: exit $rc"; }

check "re-enrolling with the revoked certificate's key (its transactionID) does not hand it out again"
rc=0
again_pw=$(challenge)
ios_enroll "$again_pw" "CN=to be revoked" "$WORK/again.pem" "$URL" --key "$WORK/a.key" >/dev/null || rc=$?
[ $rc = 2 ] && grep -q "^failInfo: badRequest" "$WORK/again.pem.log" &&
	grep -q "certificate $serial of this transactionID is revoked: enroll with a new key" "$WORK/again.pem.log" ||
	fail "the same key after revocation: exit $rc, want FAILURE naming the revoked serial"
# The new password sent with it paid for nothing: the new key uses it.
ios_enroll "$again_pw" "CN=to be revoked" "$WORK/fresh.pem" "$URL" --key "$WORK/fresh.key" >/dev/null ||
	fail "a new key after revocation, with the password the refused request sent, was refused"
verify_cert "$WORK/fresh.pem"

check "a key revoked for keyCompromise is certified no more, under whatever transactionID (a client's own, or a renewal bringing it)"
# Under another transactionID only the ledger's transactionID was looked
# up: the CA certified the compromised key again.
pw=$(challenge)
compromised_refused() { # NAME: the request's log names the revoked serial
	[ $rc = 2 ] && grep -q "^failInfo: badRequest" "$WORK/$1.pem.log" &&
		grep -q "the request's key is that of certificate $serial, revoked for keyCompromise: enroll with a new key" "$WORK/$1.pem.log" ||
		{ cat "$WORK/$1.pem.log"; fail "$1: the compromised key: exit $rc, want FAILURE naming $serial"; }
}
rc=0
ios_enroll "$pw" "CN=to be revoked" "$WORK/other-txid.pem" "$URL" --key "$WORK/a.key" --txid "MY-OWN-TXID-1" >/dev/null || rc=$?
compromised_refused other-txid
rc=0
ios_enroll "$pw" "CN=another name" "$WORK/other-name.pem" "$URL" --key "$WORK/a.key" --txid "MY-OWN-TXID-2" >/dev/null || rc=$?
compromised_refused other-name
rc=0
"$IOS_CLIENT" --url "$URL" --subject "CN=to be revoked" --out "$WORK/renew-compromised.pem" \
	--renew-cert "$WORK/fresh.pem" --renew-key "$WORK/fresh.key" --key "$WORK/a.key" --txid "MY-OWN-TXID-R" > "$WORK/renew-compromised.pem.log" 2>&1 || rc=$?
compromised_refused renew-compromised
# The same modulus with another exponent (whoever holds the key knows its
# factors): another SubjectPublicKeyInfo, the same compromised key.
python3 - "$WORK/a.key" "$WORK/a-other-e.key" <<'PY' || fail "a key of a.key's modulus with another exponent"
import math, sys
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
key = serialization.load_pem_private_key(open(sys.argv[1], "rb").read(), None)
n = key.private_numbers()
p, q = n.p, n.q
lam = (p - 1) * (q - 1) // math.gcd(p - 1, q - 1)
e = next(e for e in (3, 5, 17, 257, 65539, 65541, 65543) if e != n.public_numbers.e and math.gcd(e, lam) == 1)
d = pow(e, -1, lam)
other = rsa.RSAPrivateNumbers(p, q, d, d % (p - 1), d % (q - 1), rsa.rsa_crt_iqmp(p, q),
                              rsa.RSAPublicNumbers(e, p * q)).private_key()
open(sys.argv[2], "wb").write(other.private_bytes(serialization.Encoding.PEM,
    serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()))
PY
rc=0
ios_enroll "$pw" "CN=to be revoked" "$WORK/other-e.pem" "$URL" --key "$WORK/a-other-e.key" --txid "MY-OWN-TXID-E" >/dev/null || rc=$?
compromised_refused other-e
# The password the refusals brought paid for nothing.
ios_enroll "$pw" "CN=new key for the same password" "$WORK/new-key.pem" "$URL" >/dev/null ||
	fail "a new key with the password the compromised key's requests brought was refused"

check "a ledger an older build kept (no index of compromised keys): indexed from its revocations at the CA's first start"
server_stop
old="$WORK/ca-older"
mkdir -p "$old"
for db in $(mdb_dump -l "$DATA/db/ca"); do
	[ "$db" != compromised ] || continue
	mdb_dump -s "$db" "$DATA/db/ca" > "$WORK/dump.$db" || fail "mdb_dump -s $db"
	if [ "$db" = meta ]; then
		# Without the mark that the index was made (keys in hex).
		python3 - "$WORK/dump.$db" <<'PY'
import sys
lines = open(sys.argv[1]).read().split("\n")
mark = " " + b"compromised_index".hex()
out, i = [], 0
while i < len(lines):
    if lines[i] == mark:
        i += 2
        continue
    out.append(lines[i])
    i += 1
open(sys.argv[1], "w").write("\n".join(out))
PY
		! grep -qx "$(printf ' %s' "$(printf compromised_index | od -An -tx1 | tr -d ' \n')")" "$WORK/dump.$db" ||
			fail "the mark is still in the dump of meta"
	fi
	mdb_load -s "$db" -f "$WORK/dump.$db" "$old" 2> "$WORK/load.err" || { cat "$WORK/load.err"; fail "mdb_load -s $db"; }
done
! mdb_dump -l "$old" | grep -qx compromised || fail "the older ledger has the index"
rm -rf "$DATA/db/ca.newer" && mv "$DATA/db/ca" "$DATA/db/ca.newer" && cp -a "$old" "$DATA/db/ca"
chown -R --reference="$DATA/db/ca.newer" "$DATA/db/ca"
server_start
grep -q "scepd-ca.*ledger: the index of compromised keys made again from [0-9]* certificates\?: those revoked for keyCompromise" "$SERVER_LOG" ||
	fail "the CA did not index the compromised keys of an older ledger"
rc=0
ios_enroll "$(challenge)" "CN=to be revoked" "$WORK/older-ledger.pem" "$URL" --key "$WORK/a.key" --txid "MY-OWN-TXID-3" >/dev/null || rc=$?
compromised_refused older-ledger

check "certificateHold: released by scepctl unrevoke (the next CRL leaves it out), or made final with another reason"
ios_enroll "$(challenge)" "CN=to be held" "$WORK/h.pem" "$URL" --key "$WORK/h.key" >/dev/null || fail "enroll h"
b_serial=$(openssl x509 -in "$WORK/h.pem" -noout -serial | cut -d= -f2)
# Typed in any case, a reason is the same reason.
"$SCEPCTL" --data-dir "$DATA" revoke "$b_serial" --reason certificatehold 2> "$WORK/hold.err" || fail "hold: $(cat "$WORK/hold.err")"
rc=0
"$SCEPCTL" --data-dir "$DATA" revoke "$b_serial" --reason certificateHold 2> "$WORK/hold2.err" || rc=$?
[ $rc = 1 ] && grep -q "already on hold" "$WORK/hold2.err" || fail "a second hold: exit $rc"
# On hold, it is revoked for renewal and GetCert (a hold may become final).
rc=0
"$IOS_CLIENT" --url "$URL" --subject "CN=to be held" --out "$WORK/held-renew.pem" \
	--renew-cert "$WORK/h.pem" --renew-key "$WORK/h.key" --key "$WORK/held-new.key" > "$WORK/held-renew.log" 2>&1 || rc=$?
[ $rc = 2 ] && grep -q "is revoked" "$WORK/held-renew.log" || { cat "$WORK/held-renew.log"; fail "a renewal signed by a held certificate: exit $rc"; }
rc=0
"$IOS_CLIENT" --url "$URL" --subject "CN=x" --out "$WORK/held-getcert.pem" --message-type 21 \
	--issuer-serial "$WORK/h.pem" --renew-cert "$WORK/h.pem" --renew-key "$WORK/h.key" > "$WORK/held-getcert.log" 2>&1 || rc=$?
[ $rc = 2 ] && grep -q "failInfoText: the signer certificate is revoked" "$WORK/held-getcert.log" ||
	{ cat "$WORK/held-getcert.log"; fail "GetCert signed by a held certificate: exit $rc"; }
server_restart # the frontend keeps a CRL a minute
crl held
grep -A5 "Serial Number: $b_serial" "$WORK/held.txt" | grep -q "Certificate Hold" || fail "the held serial is not in the CRL"
"$SCEPCTL" --data-dir "$DATA" unrevoke "$b_serial" 2> "$WORK/unrevoke.err" || { cat "$WORK/unrevoke.err"; fail "unrevoke"; }
grep -q "released from its hold" "$WORK/unrevoke.err" || fail "unrevoke said: $(cat "$WORK/unrevoke.err")"
grep -q "released serial $b_serial from its certificateHold" "$SERVER_LOG" || fail "the release was not logged"
server_restart
crl released
! grep -q "Serial Number: $b_serial" "$WORK/released.txt" || fail "the released serial is still in the CRL"
openssl verify -crl_check -CAfile "$WORK/chain.pem" -CRLfile "$WORK/released.pem" "$WORK/h.pem" >/dev/null ||
	fail "verify -crl_check refused the released certificate"
"$SCEPCTL" --data-dir "$DATA" list 2>/dev/null | grep "  $b_serial  " | grep -q "revoked" && fail "list still says the released one is revoked"
# On hold again, then revoked for good: the reason changes, the date of
# the hold stays, no release.
"$SCEPCTL" --data-dir "$DATA" revoke "$b_serial" --reason CertificateHold 2>/dev/null || fail "hold again"
server_restart
crl held2
held_date=$(grep -A1 "Serial Number: $b_serial" "$WORK/held2.txt" | sed -n 's/.*Revocation Date: //p')
[ -n "$held_date" ] || fail "the held serial is not in the CRL"
sleep 1
"$SCEPCTL" --data-dir "$DATA" revoke "$b_serial" --reason keyCompromise 2>/dev/null || fail "a held certificate revoked for good"
"$SCEPCTL" --data-dir "$DATA" show "$b_serial" > "$WORK/show-final.json" || fail "scepctl show"
# The hold's date stays the revocation's; when it became final is shown.
python3 - "$WORK/show-final.json" <<'PY' || { cat "$WORK/show-final.json"; fail "show: not keyCompromise, or the hold's date or its end not shown"; }
import json, sys
e = json.load(open(sys.argv[1]))
assert e["status"] == "revoked" and e["reason"] == "keyCompromise", e
assert e["revoked_at"] < e["hold_final_at"], e
PY
# A hold made final for keyCompromise: its key is certified no more.
rc=0
ios_enroll "$(challenge)" "CN=to be held" "$WORK/held-final.pem" "$URL" --key "$WORK/h.key" --txid "MY-OWN-TXID-H" >/dev/null || rc=$?
[ $rc = 2 ] && grep -q "the request's key is that of certificate $b_serial, revoked for keyCompromise" "$WORK/held-final.pem.log" ||
	{ cat "$WORK/held-final.pem.log"; fail "the key of a hold made final for keyCompromise: exit $rc"; }
server_restart
crl final
grep -A5 "Serial Number: $b_serial" "$WORK/final.txt" | grep -q "Key Compromise" || fail "the final reason is not in the CRL"
[ "$(grep -A1 "Serial Number: $b_serial" "$WORK/final.txt" | sed -n 's/.*Revocation Date: //p')" = "$held_date" ] ||
	fail "the revocation date moved when the hold became final"
for s in "$b_serial" "$serial"; do
	rc=0
	"$SCEPCTL" --data-dir "$DATA" unrevoke "$s" 2> "$WORK/unrevoke2.err" || rc=$?
	[ $rc = 1 ] && grep -q "not on hold" "$WORK/unrevoke2.err" || fail "unrevoke of a final revocation: exit $rc: $(cat "$WORK/unrevoke2.err")"
done
rc=0
"$SCEPCTL" --data-dir "$DATA" unrevoke "$(openssl x509 -in "$WORK/fresh.pem" -noout -serial | cut -d= -f2)" 2> "$WORK/unrevoke3.err" || rc=$?
[ $rc = 1 ] && grep -q "not on hold" "$WORK/unrevoke3.err" || fail "unrevoke of a valid certificate: exit $rc"

check "a CRL made while the clock ran 4 days ahead is replaced once the clock is right"
# Relying parties refuse a CRL whose thisUpdate is to come: it was served
# for half its validity (CRLValidityHours = 24: 12 h after the 4 days).
server_stop
at_offset $((4 * 86400)) server_start
crl ahead
server_restart
crl corrected
ahead=$(date -d "$(openssl crl -in "$WORK/ahead.pem" -noout -lastupdate | cut -d= -f2)" +%s)
corrected=$(date -d "$(openssl crl -in "$WORK/corrected.pem" -noout -lastupdate | cut -d= -f2)" +%s)
[ $((ahead - $(date +%s))) -gt 86400 ] || fail "the CRL made under faketime is not ahead (thisUpdate $ahead)"
[ "$corrected" -le "$(date +%s)" ] || fail "the CRL served after the clock was corrected is still ahead (thisUpdate $corrected)"
openssl verify -crl_check -CAfile "$WORK/chain.pem" -CRLfile "$WORK/corrected.pem" "$WORK/fresh.pem" > "$WORK/vc.out" 2>&1 ||
	{ cat "$WORK/vc.out"; fail "verify -crl_check with the corrected CRL"; }
echo "   thisUpdate $((ahead - $(date +%s))) s ahead, then $(( $(date +%s) - corrected )) s ago"

check "the CA certificate and key replaced, db/ca kept: the CRL served is the new CA's"
server_stop
ca_replace "$DATA" 2048
server_start
CA_PEM="$DATA/ca/ca.pem"
crl replaced
grep -q "Serial Number: $b_serial" "$WORK/replaced.txt" || fail "the new CA's CRL lost the revoked serials"

check "the CRL due again (18 h on, past half its 24 h) and no new one can be stored: the stored one, still valid, is served"
# (a full map or disk: none at all before, and relying parties that
# require a CRL refused every certificate)
curl -sf -o "$WORK/stored.crl" "$CRL_URL" || fail "GET the CRL"
server_stop
from=$(log_mark)
SCEPD_TEST_CRL_UNSTORABLE=1 at_offset $((18 * 3600)) server_start
code=$(curl -s -o "$WORK/due.crl" -w '%{http_code}' "$CRL_URL")
[ "$code" = 200 ] || fail "GET the CRL when none can be stored: HTTP $code"
cmp -s "$WORK/due.crl" "$WORK/stored.crl" || fail "the CRL served is not the one stored"
logged "$from" "scepd-ca.*CRL: a new one cannot be stored (the database is full" ||
	{ tail -20 "$SERVER_LOG"; fail "the log does not say why the stored CRL is served"; }
server_stop

check "CRLValidityHours lowered from 24 to 2: the next CRL is valid 2 hours, the stored one (24) is not served on"
set_conf ca CRLValidityHours 2
from=$(log_mark)
server_start
crl lowered
last=$(date -d "$(sed -n 's/ *Last Update: //p' "$WORK/lowered.txt")" +%s)
next=$(date -d "$(sed -n 's/ *Next Update: //p' "$WORK/lowered.txt")" +%s)
# (thisUpdate backdated up to 300 s: not before the CA certificate's
# notBefore, a few seconds ago when this CA was made.)
[ $((next - last)) -ge 7200 ] && [ $((next - last)) -le $((7200 + 300)) ] ||
	fail "nextUpdate - thisUpdate = $((next - last)) s after CRLValidityHours = 2 (and at most 300 s backdated)"
ca_from=$(date -d "$(openssl x509 -in "$CA_PEM" -noout -startdate | cut -d= -f2)" +%s)
[ "$last" -ge "$ca_from" ] || fail "thisUpdate $last is before the CA certificate's notBefore $ca_from"
logged "$from" "scepd-ca.*CRL: the stored one is valid until .* past CRLValidityHours = 2" ||
	fail "the log does not say why a new CRL was made"
server_stop

check "the CA certified again with the same key and name: the first GetCRL makes a CRL under the new certificate (the stored one, made under the old, was parsed at each GetCRL until its half-life)"
openssl req -x509 -new -key "$DATA/ca/ca.key" -days 3650 \
	-subj "$(openssl x509 -in "$DATA/ca/ca.pem" -noout -subject -nameopt compat | sed 's/^subject=//')" \
	-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
	-addext "subjectKeyIdentifier=hash" -out "$WORK/ca-again.pem" 2>/dev/null || fail "openssl req: the CA again"
cp "$WORK/ca-again.pem" "$DATA/ca/ca.pem"
from=$(log_mark)
server_start
crl recertified
await_logged "$from" "scepd-ca.*issued CRL number" 10 ||
	fail "no CRL was made under the CA's new certificate: the one of the old is served, parsed each time"
server_stop

pass "revoke, CRL over HTTP at the distribution point, verify -crl_check, no renewal when revoked, no reissue of a revoked transaction, a key revoked for keyCompromise never certified again (an older ledger indexed), certificateHold released or made final"
