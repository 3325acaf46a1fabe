#!/usr/bin/env bash
# Apple configuration profiles from the admin area
# (AdminPath/profile.mobileconfig): signed by the RA so that it verifies
# against the GetCACert CA, a well-formed plist with the subject in the
# order given, a fresh challenge and a new PayloadUUID each time, and a
# challenge that really enrolls the iOS-like client with that subject.
# Unsigned with SignProfiles = 0; 400, 401, 403, 405, 409, 429 and 503
# where due.
. "$(dirname "$0")/lib.sh"
interop_init profile
command -v plistutil >/dev/null || fail "plistutil is not installed (scripts/deps.sh --test)"
command -v python3 >/dev/null || fail "python3 is not installed"
server_start
fetch_ca_chain

grep -q "ExternalURL is not set: configuration profiles will give devices this machine's Listen = 127.0.0.1:$PORT" "$SERVER_LOG" ||
	fail "no warning that profiles name a loopback URL without ExternalURL"
CRED=$(cat "$DATA/admin.credentials")
PROFILE_URL="$BASE/certsrv/mscep_admin/profile.mobileconfig"
SUBJECT_Q='O=Fabrikam,OU=IT,CN=Robs%20IPad'
openssl x509 -in "$CA_PEM" -outform DER -out "$WORK/ca.der"
CA_SHA1=$(openssl x509 -in "$CA_PEM" -noout -fingerprint -sha1 | sed 's/.*=//; s/://g')
CA_CN=$(openssl x509 -in "$CA_PEM" -noout -subject -nameopt RFC2253,utf8,-esc_msb |
	sed -n 's/^subject=.*CN=\([^,]*\).*/\1/p')

# get_profile OUT QUERY [curl args]: the answer in OUT, its headers in
# OUT.headers; prints "STATUS CONTENT-TYPE".
get_profile() {
	local out=$1 query=$2
	shift 2
	curl -s -o "$out" -D "$out.headers" -w '%{http_code} %{content_type}' \
		"$@" "$PROFILE_URL?$query" || fail "GET $PROFILE_URL?$query: no answer"
}

# Checks a profile's plist with plistlib (after plistutil has parsed it
# too): check_plist FILE URL ORGANIZATION SUBJECT-JSON KEYSIZE USAGE
# SAN-JSON. Prints "TOP-UUID SCEP-UUID ROOT-UUID CHALLENGE".
cat > "$WORK/check_plist.py" <<'EOF'
import json, os, plistlib, re, sys

path, url, org, subject, keysize, usage, sans, ca_der, ca_sha1, ca_cn = sys.argv[1:]
with open(path, "rb") as f:
    p = plistlib.load(f)
problems = []
def want(what, got, expected):
    if got != expected:
        problems.append(f"{what}: {got!r}, want {expected!r}")
UUID = re.compile(r"^[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}$")
def header(what, d, ptype):
    want(f"{what} PayloadType", d.get("PayloadType"), ptype)
    want(f"{what} PayloadVersion", d.get("PayloadVersion"), 1)
    for k in ("PayloadIdentifier", "PayloadDisplayName"):
        if not isinstance(d.get(k), str) or not d[k]:
            problems.append(f"{what}: no {k}")
    if not UUID.match(str(d.get("PayloadUUID"))):
        problems.append(f"{what} PayloadUUID {d.get('PayloadUUID')!r} is not a v4 UUID")
header("profile", p, "Configuration")
want("PayloadOrganization", p.get("PayloadOrganization"), org)
content = p.get("PayloadContent", [])
want("payload types", [c.get("PayloadType") for c in content],
     ["com.apple.security.scep", "com.apple.security.root"])
if len(content) == 2:
    scep, root = content
    header("SCEP payload", scep, "com.apple.security.scep")
    header("root payload", root, "com.apple.security.root")
    s = scep.get("PayloadContent", {})
    want("URL", s.get("URL"), url)
    want("Name", s.get("Name"), ca_cn)
    want("Subject", s.get("Subject"), json.loads(subject))
    want("Keysize", s.get("Keysize"), int(keysize))
    want("Key Type", s.get("Key Type"), "RSA")
    want("Key Usage", s.get("Key Usage"), int(usage))
    want("Retries", s.get("Retries"), int(os.environ.get("RETRIES", "3")))
    want("RetryDelay", s.get("RetryDelay"), int(os.environ.get("RETRY_DELAY", "10")))
    want("KeyIsExtractable", (type(s.get("KeyIsExtractable")), s.get("KeyIsExtractable")),
         (bool, os.environ.get("KEY_EXTRACTABLE") == "1"))
    fp = s.get("CAFingerprint")
    want("CAFingerprint", fp.hex().upper() if isinstance(fp, bytes) else fp, ca_sha1)
    want("SubjectAltName", s.get("SubjectAltName"), json.loads(sans))
    if not isinstance(s.get("Challenge"), str) or len(s["Challenge"]) < 8:
        problems.append(f"Challenge: {s.get('Challenge')!r}")
    with open(ca_der, "rb") as f:
        want("root payload content (the CA certificate)", root.get("PayloadContent"), f.read())
    uuids = [p.get("PayloadUUID"), scep.get("PayloadUUID"), root.get("PayloadUUID")]
    if len(set(uuids)) != 3:
        problems.append(f"PayloadUUIDs repeat within the profile: {uuids}")
if problems:
    print("; ".join(problems), file=sys.stderr)
    sys.exit(1)
print(*uuids, s["Challenge"])
EOF
check_plist() {
	local file=$1
	plistutil -i "$file" -o "$file.bplist" 2> "$file.plistutil.err"
	# plistutil 2.2 exits 0 even when it cannot parse: look at what it wrote.
	[ "$(head -c 8 "$file.bplist" 2>/dev/null)" = bplist00 ] ||
		fail "plistutil cannot parse $file: $(cat "$file.plistutil.err")"
	python3 -c 'import plistlib,sys; plistlib.load(open(sys.argv[1],"rb"))' "$file.bplist" ||
		fail "plistutil's binary plist of $file does not load"
	shift
	python3 "$WORK/check_plist.py" "$file" "$@" "$WORK/ca.der" "$CA_SHA1" "$CA_CN" ||
		fail "$file: the profile is not as asked"
}

SUBJECT_JSON='[[["O","Fabrikam"]],[["OU","IT"]],[["CN","Robs IPad"]]]'

check "a profile downloads as application/x-apple-aspen-config, an attachment"
r=$(get_profile "$WORK/p1" "subject=$SUBJECT_Q&keysize=2048&usage=5" -u "$CRED")
[ "$r" = "200 application/x-apple-aspen-config" ] || fail "profile: '$r', want '200 application/x-apple-aspen-config': $(head -c 300 "$WORK/p1")"
grep -qi '^Content-Disposition: attachment; filename="scep.mobileconfig"' "$WORK/p1.headers" ||
	fail "no Content-Disposition attachment scep.mobileconfig: $(cat "$WORK/p1.headers")"
grep -qi '^Cache-Control: no-store' "$WORK/p1.headers" || fail "a profile with a password may be cached"

check "it is CMS SignedData, SHA-256, content attached, by the RA signing certificate, verifying against the CA"
openssl cms -verify -inform DER -in "$WORK/p1" -CAfile "$CA_PEM" -purpose any \
	-signer "$WORK/p1.signer.pem" -out "$WORK/p1.xml" 2> "$WORK/p1.verify" ||
	fail "openssl cms -verify: $(cat "$WORK/p1.verify")"
grep -q 'Verification successful' "$WORK/p1.verify" || fail "no 'Verification successful': $(cat "$WORK/p1.verify")"
[ "$(openssl x509 -in "$WORK/p1.signer.pem" -noout -fingerprint -sha256)" = \
	"$(openssl x509 -in "$RA_SIG_PEM" -noout -fingerprint -sha256)" ] ||
	fail "signer $(openssl x509 -in "$WORK/p1.signer.pem" -noout -subject) is not the RA signing certificate"
openssl cms -cmsout -print -inform DER -in "$WORK/p1" > "$WORK/p1.print"
grep -A1 -E '^ *digestAlgorithm:' "$WORK/p1.print" | grep -q 'algorithm: sha256 ' ||
	fail "the signer's digest is not SHA-256: $(grep -A1 -E '^ *digestAlgorithm:' "$WORK/p1.print")"
head -c 5 "$WORK/p1.xml" | grep -q '<?xml' || fail "the signed content is not an XML plist"

check "the plist parses; Subject O, OU, CN in that order; Keysize 2048, Key Usage 5, CAFingerprint, KeyIsExtractable false, the CA as root payload"
out=$(check_plist "$WORK/p1.xml" "$URL" scepd "$SUBJECT_JSON" 2048 5 null)
read -r top1 scep1 root1 pw1 <<< "$out"
[ -n "$pw1" ] || fail "no challenge read from the first profile"
echo "   PayloadUUID $top1, challenge of ${#pw1} characters"

check "the RA signs the frontend's profiles only: one taken over gets no Wi-Fi payload, key access for all apps or other root signed"
# ra_sign_profile plays the frontend on the RA's socket. The profile the
# frontend made is signed again; each change of it is refused, with why.
ra_sign() {
	"$BUILD_DIR/tests/ra_sign_profile" --endpoint "ipc://$DATA/run/ra.sock" --profile "$1" --out "$WORK/resigned.der"
}
out=$(ra_sign "$WORK/p1.xml") || fail "the RA did not sign the frontend's own profile again: $out"
openssl cms -verify -inform DER -in "$WORK/resigned.der" -CAfile "$CA_PEM" -purpose any -out /dev/null 2> /dev/null ||
	fail "the profile signed again does not verify"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/other-root.key" \
	-subj "/CN=Other Root" -days 30 -addext basicConstraints=critical,CA:TRUE -out "$WORK/other-root.pem" 2> /dev/null
openssl x509 -in "$WORK/other-root.pem" -outform DER -out "$WORK/other-root.der"
python3 - "$WORK/p1.xml" "$WORK/other-root.der" "$WORK/changed" <<'EOF2'
import plistlib, sys
src, other, out = sys.argv[1:]
def changed(name, change):
    p = plistlib.load(open(src, "rb"))
    change(p)
    plistlib.dump(p, open(f"{out}-{name}.xml", "wb"))
changed("wifi", lambda p: p["PayloadContent"].append(
    {"PayloadType": "com.apple.wifi.managed", "PayloadVersion": 1, "SSID_STR": "corp"}))
changed("allapps", lambda p: p["PayloadContent"][0]["PayloadContent"].update(AllowAllAppsAccess=True))
def other_root(p):
    [root] = [q for q in p["PayloadContent"] if q["PayloadType"] == "com.apple.security.root"]
    root["PayloadContent"] = open(other, "rb").read()
changed("root", other_root)
EOF2
for want in "wifi:a payload of type \"com.apple.wifi.managed\", not SCEP or a CA certificate" \
	"allapps:a SCEP setting \"AllowAllAppsAccess\" scepd does not write" \
	"root:a com.apple.security.root payload with a certificate not of [ra] CACertificate"; do
	name=${want%%:*}
	rc=0
	out=$(ra_sign "$WORK/changed-$name.xml") || rc=$?
	[ $rc = 2 ] || fail "the RA answered a profile with $name: exit $rc, want 2 (refused): $out"
	[ "$out" = "REFUSED: ${want#*:}" ] || fail "refusal of $name: '$out', want 'REFUSED: ${want#*:}'"
	echo "   $name: $out"
done
grep -q "refused to sign a configuration profile from frontend: a payload of type \"com.apple.wifi.managed\"" "$SERVER_LOG" ||
	fail "the RA's refusal is not logged"
# A key given twice: libplist reads the last, and the RA signs what it read,
# written again, not the bytes sent (a device might read the first).
python3 - "$WORK/p1.xml" "$WORK/twice.xml" <<'EOF2'
import sys
src, out = sys.argv[1:]
s = open(src).read()
at = s.index("<dict>") + len("<dict>")
wifi = ("<key>PayloadContent</key><array><dict><key>PayloadType</key>"
        "<string>com.apple.wifi.managed</string></dict></array>")
open(out, "w").write(s[:at] + wifi + s[at:])
EOF2
out=$(ra_sign "$WORK/twice.xml") || fail "a profile with PayloadContent twice, the frontend's last: $out"
openssl cms -verify -inform DER -in "$WORK/resigned.der" -CAfile "$CA_PEM" -purpose any -out "$WORK/twice.signed" 2> /dev/null ||
	fail "the profile with a key twice, signed, does not verify"
! grep -q "com.apple.wifi.managed" "$WORK/twice.signed" || fail "the RA signed the bytes sent, with a payload it never checked"
grep -q "com.apple.security.scep" "$WORK/twice.signed" || fail "the profile signed has lost its SCEP payload"
echo "   PayloadContent twice: signed as read, one PayloadContent, no Wi-Fi payload"

check "a second download has new PayloadUUIDs and a new challenge"
r=$(get_profile "$WORK/p2" "subject=$SUBJECT_Q" -u "$CRED")
[ "$r" = "200 application/x-apple-aspen-config" ] || fail "second profile: '$r'"
openssl cms -verify -inform DER -in "$WORK/p2" -CAfile "$CA_PEM" -purpose any -out "$WORK/p2.xml" 2> "$WORK/p2.verify" ||
	fail "second profile: $(cat "$WORK/p2.verify")"
out=$(check_plist "$WORK/p2.xml" "$URL" scepd "$SUBJECT_JSON" 2048 5 null)
read -r top2 scep2 root2 pw2 <<< "$out"
[ "$top1" != "$top2" ] && [ "$scep1" != "$scep2" ] && [ "$root1" != "$root2" ] ||
	fail "PayloadUUIDs repeat across downloads: $top1 $scep1 $root1 / $top2 $scep2 $root2"
[ "$pw1" != "$pw2" ] || fail "both profiles carry the same challenge"
# One PayloadIdentifier for one server, subject and usage: a device
# replaces the older profile with it, and keeps one for another (below).
ident() { python3 -c 'import plistlib, sys; print(plistlib.load(open(sys.argv[1], "rb"))["PayloadIdentifier"])' "$1"; }
[ "$(ident "$WORK/p1.xml")" = "$(ident "$WORK/p2.xml")" ] ||
	fail "two profiles of one subject and usage have PayloadIdentifiers $(ident "$WORK/p1.xml") and $(ident "$WORK/p2.xml")"

check "the profile's URL, challenge, subject, key size and CAFingerprint enroll the iOS-like client, subject in Apple's order"
# scep_settings FILE: the SCEP payload's URL, subject, Keysize,
# CAFingerprint (hex) and Challenge, a line each.
scep_settings() {
	python3 -c '
import plistlib, sys
s = plistlib.load(open(sys.argv[1], "rb"))["PayloadContent"][0]["PayloadContent"]
print(s["URL"])
print(",".join(f"{t}={v}" for rdn in s["Subject"] for t, v in rdn))
print(s["Keysize"])
print(s["CAFingerprint"].hex())
print(s["Challenge"])' "$1"
}
out=$(scep_settings "$WORK/p1.xml")
{ read -r p_url; read -r p_subject; read -r p_keysize; read -r p_fp; read -r p_pw; } <<< "$out"
echo "   URL $p_url, subject $p_subject, Keysize $p_keysize, CAFingerprint $p_fp"
rc=0
[ "$p_pw" = "$pw1" ] || fail "scep_settings read the Challenge '$p_pw', check_plist '$pw1'"
ios_enroll "$pw1" "$p_subject" "$WORK/cert.pem" "$p_url" --keysize "$p_keysize" --ca-fingerprint "$p_fp" || rc=$?
[ $rc = 0 ] || fail "enrollment with the profile's challenge: iOS client exit $rc, want 0"
verify_cert "$WORK/cert.pem"
subj=$(openssl x509 -in "$WORK/cert.pem" -noout -subject -nameopt oneline)
[ "$subj" = "subject=O = Fabrikam, OU = IT, CN = Robs IPad" ] ||
	fail "issued subject '$subj', want 'subject=O = Fabrikam, OU = IT, CN = Robs IPad'"
openssl x509 -in "$WORK/cert.pem" -noout -text | grep -q 'Public-Key: (2048 bit)' ||
	fail "the issued certificate's key is not the profile's 2048 bits"

check "bad queries are 400 with a clear text, and cost no password"
bad() {
	local query=$1 want=$2 r
	r=$(get_profile "$WORK/bad" "$query" -u "$CRED")
	[ "${r%% *}" = 400 ] || fail "?$query: status ${r%% *}, want 400"
	grep -qi -- "$want" "$WORK/bad" || fail "?$query: the 400 says '$(cat "$WORK/bad")', not '$want'"
	echo "   ?$query -> 400 $(head -n1 "$WORK/bad")"
}
bad "subject=$SUBJECT_Q&keysize=1024" "keysize must be 2048 or 4096"
bad "subject=$SUBJECT_Q&keysize=3072" "keysize must be 2048 or 4096 (of Apple's SCEP key sizes, 1024 is too small)"
# What the CA would refuse costs no password either (X.520's limits).
bad "subject=C=USA,CN=Robs%20IPad" "subject: C=USA is not a value X.520 allows"
bad "subject=O=Fabrikam,CN=$(head -c 65 /dev/zero | tr '\0' x)" "is not a value X.520 allows (C: two letters; CN, O, OU: 1 to 64 characters"

bad "subject=$SUBJECT_Q&keysize=2048x" "keysize must be"
bad "subject=$SUBJECT_Q&usage=3" "usage must be 1"
bad "keysize=2048" "subject is missing or empty"
bad "subject=" "subject is missing or empty"
bad "subject=Fabrikam" "not TYPE=value"
bad "subject=O=Fabrikam,,CN=x" "attribute 2 is not TYPE=value"
bad "subject=O=Fabrikam,CN=" "CN has an empty value"
bad "subject=O=Fabrikam,XYZ=1" "unknown attribute type 'XYZ'"
bad "subject=CN=a\\q" "escape only"
bad "subject=CN=a%01b" "not UTF-8 text"
bad "subject=$SUBJECT_Q&subject=CN=x" "subject is given more than once"
bad "subject=$SUBJECT_Q&keysiz=2048" "unknown parameter 'keysiz'"
bad "subject=$SUBJECT_Q&dns=bad%20name" "not a valid dNSName"
# IA5String names: iOS drops, silently, one it cannot write in ASCII.
bad "subject=$SUBJECT_Q&rfc822=j%C3%B6rg@fabrikam.example" "not a valid rfc822Name"
bad "subject=$SUBJECT_Q&uri=https://b%C3%BCcher.example/" "not a valid uniformResourceIdentifier"
# Apple's CSR builder makes room for 10 names (and writes past it); the
# ten of p3 below are made.
bad "subject=$SUBJECT_Q$(for i in $(seq 9); do printf '&dns=d%s.fabrikam.example' "$i"; done)&rfc822=a@fabrikam.example&uri=https://fabrikam.example/a" \
	"more than 10 subjectAltNames (dns=, rfc822= and uri= together): iOS makes room for 10"

check "escaped commas, multi-valued RDNs and subjectAltNames come through as given"
# Ten subjectAltNames, as many as iOS makes room for.
more_dns=$(for i in $(seq 6); do printf '&dns=d%s.fabrikam.example' "$i"; done)
r=$(get_profile "$WORK/p3" "subject=O=Fabrikam\\,%20Inc.,OU=IT%2BL=Berlin,CN=Robs%20IPad&keysize=4096&usage=1&dns=ipad.fabrikam.example&dns=rob.fabrikam.example$more_dns&rfc822=rob@fabrikam.example&uri=https://fabrikam.example/rob" -u "$CRED")
[ "$r" = "200 application/x-apple-aspen-config" ] || fail "profile with SANs: '$r': $(head -c 300 "$WORK/p3")"
openssl cms -verify -inform DER -in "$WORK/p3" -CAfile "$CA_PEM" -purpose any -out "$WORK/p3.xml" 2> "$WORK/p3.verify" ||
	fail "profile with SANs: $(cat "$WORK/p3.verify")"
check_plist "$WORK/p3.xml" "$URL" scepd \
	'[[["O","Fabrikam, Inc."]],[["OU","IT"],["L","Berlin"]],[["CN","Robs IPad"]]]' 4096 1 \
	'{"dNSName":["ipad.fabrikam.example","rob.fabrikam.example","d1.fabrikam.example","d2.fabrikam.example","d3.fabrikam.example","d4.fabrikam.example","d5.fabrikam.example","d6.fabrikam.example"],"rfc822Name":["rob@fabrikam.example"],"uniformResourceIdentifier":["https://fabrikam.example/rob"]}' > /dev/null

r=$(get_profile "$WORK/p4" "subject=$SUBJECT_Q&usage=4" -u "$CRED")
[ "$r" = "200 application/x-apple-aspen-config" ] || fail "encryption-only profile: '$r'"
openssl cms -verify -inform DER -in "$WORK/p4" -CAfile "$CA_PEM" -purpose any -out "$WORK/p4.xml" 2> /dev/null ||
	fail "encryption-only profile does not verify"
# NDES's pair (a signing and an encryption certificate) both stay on a device.
[ "$(ident "$WORK/p4.xml")" != "$(ident "$WORK/p1.xml")" ] && [ "$(ident "$WORK/p3.xml")" != "$(ident "$WORK/p1.xml")" ] ||
	fail "profiles of another usage or subject share the PayloadIdentifier $(ident "$WORK/p1.xml"): a device would replace one with the other"
echo "   PayloadIdentifiers: $(ident "$WORK/p1.xml") (twice), $(ident "$WORK/p4.xml") (usage 4), $(ident "$WORK/p3.xml")"

check "no credentials: 401; a wrong password: 401; POST: 405"
r=$(get_profile "$WORK/noauth" "subject=$SUBJECT_Q")
[ "${r%% *}" = 401 ] || fail "without credentials: ${r%% *}, want 401"
grep -qi '^WWW-Authenticate: Basic' "$WORK/noauth.headers" || fail "the 401 asks for no Basic credentials"
r=$(get_profile "$WORK/wrongpw" "subject=$SUBJECT_Q" -u "${CRED%%:*}:not-the-password")
[ "${r%% *}" = 401 ] || fail "with a wrong password: ${r%% *}, want 401"
r=$(get_profile "$WORK/post" "subject=$SUBJECT_Q" -u "$CRED" -X POST -d '')
[ "${r%% *}" = 405 ] || fail "POST: ${r%% *}, want 405"

check "a user without the enroll right: 403"
printf 'reader-pw\n' | "$SCEPCTL" --data-dir "$DATA" passwd --rights mdm reader 2> /dev/null ||
	fail "scepctl passwd --rights mdm reader failed"
r=$(get_profile "$WORK/noright" "subject=$SUBJECT_Q" -u reader:reader-pw)
[ "${r%% *}" = 403 ] || fail "a user without enroll: ${r%% *}, want 403"
grep -q "permission to enroll" "$WORK/noright" || fail "the 403 says '$(cat "$WORK/noright")'"

check "SignProfiles = 0: a plain XML plist, with ExternalURL and ProfileOrganization"
set_conf frontend SignProfiles 0
set_conf frontend ExternalURL "https://scep.fabrikam.example/certsrv/mscep/mscep.dll"
set_conf frontend ProfileOrganization "Fabrikam IT"
server_restart
r=$(get_profile "$WORK/p4" "subject=$SUBJECT_Q&keysize=4096" -u "$CRED")
[ "$r" = "200 application/x-apple-aspen-config" ] || fail "unsigned profile: '$r'"
head -c 5 "$WORK/p4" | grep -q '<?xml' || fail "with SignProfiles = 0 the body is not an XML plist: $(head -c 40 "$WORK/p4" | od -c | head -2)"
out=$(check_plist "$WORK/p4" "https://scep.fabrikam.example/certsrv/mscep/mscep.dll" \
	"Fabrikam IT" "$SUBJECT_JSON" 4096 5 null)
read -r _ _ _ pw4 <<< "$out"
[ -n "$pw4" ] || fail "no challenge in the unsigned profile"

check "PasswordMax outstanding passwords: 429 \"The password cache is full.\""
# The profiles above left four passwords outstanding (the one the
# enrollment used is not; the 400s cost none): this is the fifth of
# PasswordMax = 5.
r=$(get_profile "$WORK/p5" "subject=$SUBJECT_Q" -u "$CRED")
[ "${r%% *}" = 200 ] || fail "the 5th outstanding password: ${r%% *}, want 200 (did a 400 cost a password?): $(cat "$WORK/p5")"
r=$(get_profile "$WORK/full" "subject=$SUBJECT_Q" -u "$CRED")
[ "${r%% *}" = 429 ] || fail "past PasswordMax: ${r%% *}, want 429"
grep -q "The password cache is full." "$WORK/full" || fail "the 429 says '$(cat "$WORK/full")'"

check "a profile whose URL's path another validator checks ([challenge.paths]): 409 naming it, no password spent"
# Its devices would present a one-time password to the MDM's validator,
# each refusal counted against their address.
add_conf_section validator.mdm
set_conf validator.mdm Module webhook
set_conf validator.mdm URL "http://127.0.0.1:9/challenge" # never asked
add_conf_section challenge.paths
set_conf challenge.paths /certsrv/mscep/mscep.dll mdm
# The URL's query is no part of its path.
set_conf frontend ExternalURL "https://scep.fabrikam.example/certsrv/mscep/mscep.dll?profile=1"
server_restart
n1=$(outstanding)
r=$(get_profile "$WORK/mdm-path" "subject=$SUBJECT_Q" -u "$CRED")
[ "${r%% *}" = 409 ] && grep -q "SCEP path /certsrv/mscep/mscep.dll is checked by validator mdm (\[challenge.paths\]), which takes no one-time password" "$WORK/mdm-path" ||
	fail "a profile for a path of the MDM's validator: '$r': $(cat "$WORK/mdm-path")"
n2=$(outstanding)
[ "$n2" = "$n1" ] || fail "outstanding passwords: $n1 before, $n2 after a profile refused for its path's validator"
echo "   $(cat "$WORK/mdm-path")"
sed -i '\|^/certsrv/mscep/mscep.dll = mdm$|d' "$DATA/scepd.conf"
# A path none of Paths is (a proxy's that rewrites it) is said at start.
set_conf frontend ExternalURL "https://scep.fabrikam.example/pki/scep"
from=$(log_mark)
server_restart
logged "$from" "ExternalURL = https://scep.fabrikam.example/pki/scep: its path is none of \[frontend\] Paths" ||
	fail "an ExternalURL path none of Paths is not logged at start"
set_conf frontend ExternalURL "https://scep.fabrikam.example/certsrv/mscep/mscep.dll"

check "UseSinglePassword = 1: 409, as the shared password is kept only as a hash"
set_conf challenge UseSinglePassword 1
set_conf challenge SinglePassword "shared-secret-1"
server_restart
r=$(get_profile "$WORK/single" "subject=$SUBJECT_Q" -u "$CRED")
[ "${r%% *}" = 409 ] || fail "with UseSinglePassword = 1: ${r%% *}, want 409: $(cat "$WORK/single")"
grep -q "UseSinglePassword" "$WORK/single" || fail "the 409 says '$(cat "$WORK/single")'"

check "the challenge service or the RA unreachable: 503 with Retry-After"
set_conf frontend RPCTimeout 300
set_conf frontend ChallengeEndpoint "ipc://run/nothing-here.sock"
server_restart
r=$(get_profile "$WORK/nochal" "subject=$SUBJECT_Q" -u "$CRED")
[ "${r%% *}" = 503 ] || fail "challenge service unreachable: ${r%% *}, want 503"
grep -qi '^Retry-After:' "$WORK/nochal.headers" || fail "the 503 has no Retry-After"
grep -q "challenge service" "$WORK/nochal" || fail "the 503 says '$(cat "$WORK/nochal")'"
set_conf frontend RAEndpoint "ipc://run/nothing-here.sock"
server_restart
r=$(get_profile "$WORK/nora" "subject=$SUBJECT_Q" -u "$CRED")
[ "${r%% *}" = 503 ] || fail "RA unreachable: ${r%% *}, want 503"
grep -q "RA did not answer" "$WORK/nora" || fail "the 503 says '$(cat "$WORK/nora")'"

check "a profile whose signature fails after its password was issued gives that password back"
# The CA certificate cached by a first profile, then the RA stopped: the
# password is issued, the RA's signature never comes (503). Kept, it would
# count against PasswordMax, unseen, for its whole lifetime.
set_conf frontend RAEndpoint "ipc://run/ra.sock"
set_conf frontend ChallengeEndpoint "ipc://run/challenge.sock"
set_conf frontend RPCTimeout 1000
set_conf challenge UseSinglePassword 0
set_conf frontend SignProfiles 1
server_restart
"$SCEPCTL" --data-dir "$DATA" challenge --revoke-unused 2>/dev/null || true
r=$(get_profile "$WORK/before" "subject=$SUBJECT_Q" -u "$CRED")
[ "${r%% *}" = 200 ] || fail "a profile before the RA stops: ${r%% *}: $(cat "$WORK/before")"
n1=$(outstanding)
ra=$(pgrep -P "$SERVER_PID" -x scepd-ra) || fail "no scepd-ra"
kill -STOP "$ra"
from=$(log_mark)
r=$(get_profile "$WORK/nosign" "subject=$SUBJECT_Q" -u "$CRED")
kill -CONT "$ra"
[ "${r%% *}" = 503 ] || fail "the RA stopped: ${r%% *}, want 503: $(cat "$WORK/nosign")"
logged "$from" "admin: the password issued for a profile for .*, not handed out, is withdrawn" ||
	fail "no log of the password withdrawn"
n2=$(outstanding)
[ "$n2" = "$n1" ] || fail "outstanding passwords: $n1 before, $n2 after a profile that was not handed out"
echo "   outstanding passwords: $n1 before and after"

check "ProfileKeyIsExtractable = 1: KeyIsExtractable true (Apple's default), signed by the RA, logged at start; ProfileRetries and ProfileRetryDelay (a template with ApprovalRequired: the device polls long enough)"
set_conf frontend ProfileKeyIsExtractable 1
set_conf frontend ProfileRetries 48
set_conf frontend ProfileRetryDelay 300
from=$(log_mark)
server_restart
logged "$from" "scepd-frontend.*ProfileKeyIsExtractable = 1: configuration profiles let devices export the private key" ||
	fail "ProfileKeyIsExtractable = 1 is not logged at start"
r=$(get_profile "$WORK/px" "subject=$SUBJECT_Q&keysize=2048&usage=5" -u "$CRED")
[ "$r" = "200 application/x-apple-aspen-config" ] || fail "profile with ProfileKeyIsExtractable = 1: '$r': $(head -c 300 "$WORK/px")"
openssl cms -verify -inform DER -in "$WORK/px" -CAfile "$CA_PEM" -purpose any -out "$WORK/px.xml" 2> "$WORK/px.verify" ||
	fail "openssl cms -verify: $(cat "$WORK/px.verify")"
KEY_EXTRACTABLE=1 RETRIES=48 RETRY_DELAY=300 check_plist "$WORK/px.xml" "https://scep.fabrikam.example/certsrv/mscep/mscep.dll" \
	"Fabrikam IT" "$SUBJECT_JSON" 2048 5 null > /dev/null
set_conf frontend ProfileKeyIsExtractable 0
set_conf frontend ProfileRetries 3
set_conf frontend ProfileRetryDelay 10

check "an intermediate issuing CA: the root is the one root payload, the intermediate a pkcs1 payload"
# A CA made outside scepd: a root, the issuing CA it certifies ([ca]
# Certificate), RA certificates the issuing CA issued, [ra] CACertificate
# the issuing CA then the root. iOS trusts a root payload as an anchor:
# the intermediate must not be one, and the root must be there.
PKI="$DATA/chain"
mkdir -p "$PKI"
openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 -subj "/O=Fabrikam/CN=Fabrikam Root CA" \
	-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
	-keyout "$PKI/root.key" -out "$PKI/root.pem" 2> /dev/null || fail "openssl: the root CA"
# issue NAME SUBJECT EXTENSIONS: NAME.pem and NAME.key, issued by ISSUER (root or int).
issue() {
	local name=$1 subject=$2 ext=$3 issuer=$4
	openssl req -newkey rsa:2048 -nodes -subj "$subject" -keyout "$PKI/$name.key" \
		-out "$PKI/$name.csr" 2> /dev/null || fail "openssl: the request of $name"
	printf '%b' "$ext" > "$PKI/$name.ext"
	openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/$issuer.pem" -CAkey "$PKI/$issuer.key" \
		-CAcreateserial -days 365 -sha256 -extfile "$PKI/$name.ext" -out "$PKI/$name.pem" 2> /dev/null ||
		fail "openssl: the certificate of $name"
}
issue int "/O=Fabrikam/CN=Fabrikam Issuing CA" \
	'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n' root
issue ra-sign "/CN=ndes01-MSCEP-RA" 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n' int
issue ra-enc "/CN=ndes01-MSCEP-RA" 'basicConstraints=CA:FALSE\nkeyUsage=critical,keyEncipherment,dataEncipherment\n' int
chmod 600 "$PKI"/*.key # the services refuse key files others may read
cat "$PKI/int.pem" "$PKI/root.pem" > "$PKI/chain.pem"
for c in root int; do
	openssl x509 -in "$PKI/$c.pem" -outform DER -out "$WORK/$c.der"
done
ROOT_SHA1=$(openssl x509 -in "$PKI/root.pem" -noout -fingerprint -sha1 | sed 's/.*=//; s/://g')
set_conf ca Certificate chain/int.pem
set_conf ca Key chain/int.key
set_conf ra CACertificate chain/chain.pem
set_conf ra SigningCertificate chain/ra-sign.pem
set_conf ra SigningKey chain/ra-sign.key
set_conf ra EncryptionCertificate chain/ra-enc.pem
set_conf ra EncryptionKey chain/ra-enc.key
server_restart
"$SCEPCTL" --data-dir "$DATA" challenge --revoke-unused 2>/dev/null || true

# check_chain FILE ROOTS INTERMEDIATES: the profile's certificate payloads
# are exactly the roots (DER files, space-separated; "" none) as
# com.apple.security.root and the intermediates as
# com.apple.security.pkcs1, the SCEP payload names the issuing CA with the
# root's fingerprint (Apple's client hashes the top of the chain it builds
# from GetCACert), and no two payloads share a PayloadIdentifier or
# PayloadUUID.
cat > "$WORK/check_chain.py" <<'EOF2'
import hashlib, plistlib, sys

path, roots, inters, root_sha1, issuing_cn = sys.argv[1:]
with open(path, "rb") as f:
    p = plistlib.load(f)
def ders(names):
    return sorted(open(n, "rb").read() for n in names.split())
problems = []
content = p.get("PayloadContent", [])
types = [c.get("PayloadType") for c in content]
if types.count("com.apple.security.scep") != 1:
    problems.append(f"payload types {types}: not one SCEP payload")
for ptype, want in (("com.apple.security.root", ders(roots)),
                    ("com.apple.security.pkcs1", ders(inters))):
    got = [c.get("PayloadContent") for c in content if c.get("PayloadType") == ptype]
    if sorted(got) != want:
        names = lambda l: [hashlib.sha1(d).hexdigest()[:12] if isinstance(d, bytes) else repr(d) for d in l]
        problems.append(f"{ptype} payloads hold {names(got)} (SHA-1), want {names(want)}")
    for c in content:
        if c.get("PayloadType") == ptype and not str(c.get("PayloadCertificateFileName", "")).endswith(".cer"):
            problems.append(f"{ptype}: PayloadCertificateFileName {c.get('PayloadCertificateFileName')!r}")
other = [t for t in types if t not in ("com.apple.security.scep", "com.apple.security.root",
                                       "com.apple.security.pkcs1")]
if other:
    problems.append(f"unexpected payloads {other}")
ids = [p.get("PayloadIdentifier")] + [c.get("PayloadIdentifier") for c in content]
uuids = [p.get("PayloadUUID")] + [c.get("PayloadUUID") for c in content]
if len(set(ids)) != len(ids) or None in ids:
    problems.append(f"PayloadIdentifiers not distinct: {ids}")
if len(set(uuids)) != len(uuids) or None in uuids:
    problems.append(f"PayloadUUIDs not distinct: {uuids}")
s = next((c.get("PayloadContent", {}) for c in content if c.get("PayloadType") == "com.apple.security.scep"), {})
fp = s.get("CAFingerprint")
if not isinstance(fp, bytes) or fp.hex().upper() != root_sha1:
    problems.append(f"CAFingerprint {fp!r}, want the root's {root_sha1}")
if s.get("Name") != issuing_cn:
    problems.append(f"Name {s.get('Name')!r}, want the issuing CA's {issuing_cn!r}")
if problems:
    print("; ".join(problems), file=sys.stderr)
    sys.exit(1)
print(" ".join(f"{c.get('PayloadType')}={c.get('PayloadIdentifier')}" for c in content))
EOF2
# chain_profile NAME: a signed profile in $WORK/NAME.xml, verified against
# the root (the RA puts [ra] CACertificate into the signature).
chain_profile() {
	local r
	r=$(get_profile "$WORK/$1" "subject=$SUBJECT_Q" -u "$CRED")
	[ "$r" = "200 application/x-apple-aspen-config" ] || fail "$1: '$r': $(head -c 300 "$WORK/$1")"
	openssl cms -verify -inform DER -in "$WORK/$1" -CAfile "$PKI/root.pem" -certfile "$PKI/int.pem" \
		-purpose any -out "$WORK/$1.xml" 2> "$WORK/$1.verify" ||
		fail "$1: openssl cms -verify against the root: $(cat "$WORK/$1.verify")"
}
chain_profile chain1
out=$(python3 "$WORK/check_chain.py" "$WORK/chain1.xml" "$WORK/root.der" "$WORK/int.der" \
	"$ROOT_SHA1" "Fabrikam Issuing CA") || fail "the profile of an intermediate issuing CA is not as it should be"
echo "   $out"
# The device checks GetCACert's answer by the fingerprint as iOS does
# (the top of the chain it builds: the root), then enrolls.
out=$(scep_settings "$WORK/chain1.xml")
{ read -r p_url; read -r p_subject; read -r p_keysize; read -r p_fp; read -r p_pw; } <<< "$out"
# (Its URL is ExternalURL's, https://scep.fabrikam.example/...: the
# test's own instead.)
ios_enroll "$p_pw" "$p_subject" "$WORK/chain1.pem" "$URL" --keysize "$p_keysize" --ca-fingerprint "$p_fp" ||
	fail "the iOS-like client with the profile of an intermediate issuing CA: $(grep CAFingerprint "$WORK/chain1.pem.log")"
grep -q "CAFingerprint: matches.*Fabrikam Root CA" "$WORK/chain1.pem.log" || fail "the fingerprint matched no root"
# The issuing CA's fingerprint (scepd's before) is what iOS refuses.
int_sha1=$(openssl x509 -in "$PKI/int.pem" -noout -fingerprint -sha1 | sed 's/.*=//; s/://g')
rc=0
ios_enroll "$p_pw" "$p_subject" "$WORK/chain1-int.pem" "$URL" --ca-fingerprint "$int_sha1" > /dev/null || rc=$?
[ $rc = 1 ] && grep -q "CAFingerprint: not of the top of the chain: /O=Fabrikam/CN=Fabrikam Root CA" "$WORK/chain1-int.pem.log" ||
	fail "the iOS-like client took the issuing CA's fingerprint: exit $rc"
openssl verify -CAfile "$PKI/root.pem" -untrusted "$PKI/int.pem" "$WORK/chain1.pem" > /dev/null ||
	fail "the certificate of the intermediate issuing CA's profile does not verify against the root"

check "an RA whose chain changed refuses a profile of the frontend's older copy: 500 with why, the password given back"
# [ra] CACertificate held a second root (another PKI's, put there by
# mistake); the RA restarted alone without it: the frontend's copy (fresh
# for a minute) still holds it, whose root payload the RA no longer signs.
openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 -subj "/O=Contoso/CN=Contoso Root CA" \
	-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
	-keyout "$PKI/other-root.key" -out "$PKI/other-root.pem" 2> /dev/null || fail "openssl: the other root"
cat "$PKI/int.pem" "$PKI/root.pem" "$PKI/other-root.pem" > "$PKI/chain-other.pem"
set_conf ra CACertificate chain/chain-other.pem
server_restart
chain_profile two-roots
set_conf ra CACertificate chain/chain.pem
n1=$(outstanding)
ra=$(service_pid scepd-ra)
kill "$ra"
from=$(log_mark)
for _ in $(seq 50); do
	r=$(get_profile "$WORK/stale" "subject=$SUBJECT_Q" -u "$CRED")
	[ "${r%% *}" = 503 ] || break
	sleep 0.2
done
[ "${r%% *}" = 500 ] || fail "a profile of the older chain: '$r', want 500: $(cat "$WORK/stale")"
want="The RA refused to sign the profile: a com.apple.security.root payload with a certificate not of [ra] CACertificate. If [ra] CACertificate just changed, retry: this server asks the RA for it again."
[ "$(cat "$WORK/stale")" = "$want" ] || fail "the 500 says '$(cat "$WORK/stale")', want '$want'"
logged "$from" "profile: the RA refused to sign it: a com.apple.security.root payload" || fail "the frontend does not log the refusal"
n2=$(outstanding)
[ "$n2" = "$n1" ] || fail "outstanding passwords: $n1 before, $n2 after a profile the RA refused"
echo "   $(cat "$WORK/stale")"
# The frontend asked the RA for the chain again: a retry is signed, with
# the one root now (within the minute its copy was fresh for).
for _ in $(seq 20); do
	r=$(get_profile "$WORK/retried" "subject=$SUBJECT_Q" -u "$CRED")
	[ "${r%% *}" = 500 ] || break
	sleep 0.1
done
[ "$r" = "200 application/x-apple-aspen-config" ] || fail "the retry after the refusal: '$r': $(head -c 300 "$WORK/retried")"
openssl cms -verify -inform DER -in "$WORK/retried" -CAfile "$PKI/root.pem" -certfile "$PKI/int.pem" \
	-purpose any -out "$WORK/retried.xml" 2> /dev/null || fail "the retried profile does not verify"
python3 "$WORK/check_chain.py" "$WORK/retried.xml" "$WORK/root.der" "$WORK/int.der" "$ROOT_SHA1" "Fabrikam Issuing CA" > /dev/null ||
	fail "the retried profile is not of the RA's chain now (one root)"
echo "   a retry: 200, the chain with its one root"

check "a chain without its root makes no profile (no fingerprint a device would match): 500 naming the setting, no password spent"
set_conf ra CACertificate chain/int.pem
server_restart
from=$(log_mark)
n1=$(outstanding)
r=$(get_profile "$WORK/noroot" "subject=$SUBJECT_Q" -u "$CRED")
want="No profile: [ra] CACertificate holds no root (self-signed) certificate of the issuing CA: a profile's CAFingerprint must be the root's"
[ "${r%% *}" = 500 ] && grep -qF "$want" "$WORK/noroot" ||
	fail "a profile of a chain without its root: '$r': $(cat "$WORK/noroot"), want 500 '$want ...'"
logged "$from" "profile: not made: \[ra\] CACertificate holds no root.*put the issuing CA's root in \[ra\] CACertificate, after the issuing CA" ||
	fail "the refusal of a chain without its root is not logged"
n2=$(outstanding)
[ "$n2" = "$n1" ] || fail "outstanding passwords: $n1 before, $n2 after a profile refused for want of a root"
echo "   $(head -c 160 "$WORK/noroot")..."
set_conf ra CACertificate chain/chain.pem

check "Listen on every address, no ExternalURL: the profile names this host, read at start"
# It called gethostname per profile, and the sandbox kills the frontend for
# uname: the device got no answer and the frontend restarted.
set_conf frontend ExternalURL ""
set_conf frontend SignProfiles 1
server_restart --listen "0.0.0.0:$PORT"
from=$(log_mark)
r=$(get_profile "$WORK/wild" "subject=$SUBJECT_Q" -u "$CRED")
[ "$r" = "200 application/x-apple-aspen-config" ] || fail "a profile with Listen 0.0.0.0: '$r'"
openssl smime -verify -noverify -inform DER -in "$WORK/wild" -out "$WORK/wild.xml" 2> /dev/null ||
	fail "the profile with Listen 0.0.0.0 does not verify"
want_host=$(hostname | tr 'A-Z' 'a-z')
grep -q "<string>http://$want_host:$PORT/" "$WORK/wild.xml" ||
	{ grep -A1 "<key>URL</key>" "$WORK/wild.xml"; fail "the URL does not name this host ($want_host)"; }
! logged "$from" "scepd-frontend killed by signal" || fail "the frontend was killed serving a profile"
server_stop

pass "signed and unsigned profiles, the RA signing only the frontend's (a changed chain: 500 with why), subject in Apple's order, fresh challenge and UUIDs, enrollment with the profile's challenge, 400/401/403/405/409/429/503, a password not handed out given back, an intermediate issuing CA's chain (root and pkcs1 payloads, the root's CAFingerprint; no root: 500 naming the setting)"
