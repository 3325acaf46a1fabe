#!/usr/bin/env bash
# The admin page in a real browser: headless Chromium, driven through the
# DevTools protocol by tests/tools/browser_admin.py, logs in with HTTP Basic
# credentials (the 401 answered as a user would), reads the password and
# the CA thumbprint from the page and downloads an Apple configuration
# profile from the page's form. The page's password enrolls the iOS-like
# client; the profile is signed by the RA, carries the subject typed into
# the form and a password of its own. The screenshot is kept as
# $BUILD_DIR/test-artefacts/admin_page.png.
. "$(dirname "$0")/lib.sh"
interop_init admin_browser
command -v chromium >/dev/null || fail "chromium is not installed (scripts/deps.sh --test)"
command -v python3 >/dev/null || fail "python3 is not installed"
server_start
fetch_ca_chain

CRED=$(cat "$DATA/admin.credentials")
ADMIN_URL="$BASE/certsrv/mscep_admin/"
ARTEFACTS="$BUILD_DIR/test-artefacts"
# Typed into the form: the browser sends '+' as %2B and ' ' as '+', which
# the server must read back as a multi-valued RDN and a space.
FORM_SUBJECT='O=Fabrikam,OU=IT+L=Berlin,CN=Robs IPad'

check "Chromium logs in, shows a password and the thumbprint, downloads a profile from the page"
rc=0
# Chromium's profile directory goes under $WORK, removed with it.
TMPDIR="$WORK" timeout -s KILL 90 python3 "$SRC_DIR/tests/tools/browser_admin.py" \
	--url "$ADMIN_URL" --user="${CRED%%:*}" --password="${CRED#*:}" \
	--screenshot "$WORK/admin_page.png" --download-dir "$WORK/downloads" \
	--subject "$FORM_SUBJECT" > "$WORK/browser.out" 2> "$WORK/browser.err" || rc=$?
sed 's/^/   | /' "$WORK/browser.err"
[ $rc = 0 ] || fail "browser_admin.py exit $rc: $(tail -n 5 "$WORK/browser.err")"
value() { sed -n "s/^$1=//p" "$WORK/browser.out"; }
PAGE_PW=$(value password)
PAGE_SHA256=$(value sha256)
PROFILE=$(value profile)
echo "   page password $PAGE_PW, profile $PROFILE"

check "the password is 32 upper-case hex digits; the form's subject is CN=device until typed over"
[[ "$PAGE_PW" =~ ^[0-9A-F]{32}$ ]] || fail "password '$PAGE_PW' from the page"
[ "$(value form_subject)" = "CN=device" ] ||
	fail "the form's prefilled subject is '$(value form_subject)', want 'CN=device'"

check "the page's SHA-256 thumbprint is the GetCACert CA's"
want=$(openssl x509 -in "$CA_PEM" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g')
[ "$PAGE_SHA256" = "$want" ] || fail "thumbprint $PAGE_SHA256 on the page, the CA's is $want"

check "the screenshot is a PNG of more than 10 KB, kept as a test artefact"
shot_info=$(python3 - "$WORK/admin_page.png" <<'EOF'
import os, struct, sys
data = open(sys.argv[1], "rb").read()
if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
    sys.exit("not a PNG")
w, h = struct.unpack(">II", data[16:24])
if len(data) <= 10 * 1024 or w < 300 or h < 300:
    sys.exit(f"{w}x{h}, {len(data)} bytes: too small to show the page")
print(f"{w}x{h}, {len(data)} bytes")
EOF
) || fail "screenshot $WORK/admin_page.png: $shot_info"
if command -v file >/dev/null; then
	file -b "$WORK/admin_page.png" | grep -q '^PNG image data' ||
		fail "file(1) says $(file -b "$WORK/admin_page.png")"
fi
mkdir -p "$ARTEFACTS"
cp "$WORK/admin_page.png" "$ARTEFACTS/admin_page.png"
echo "   screenshot ($shot_info): $ARTEFACTS/admin_page.png"

check "the password shown in the browser enrolls the iOS-like client"
rc=0
ios_enroll "$PAGE_PW" "O=Fabrikam,CN=browser-device" "$WORK/cert.pem" || rc=$?
[ $rc = 0 ] || fail "enrollment with the page's password: iOS client exit $rc, want 0"
verify_cert "$WORK/cert.pem"

check "the downloaded profile is signed CMS verifying against the CA, with the form's subject and its own password"
[ -s "$PROFILE" ] || fail "no downloaded profile at '$PROFILE'"
openssl cms -verify -inform DER -in "$PROFILE" -CAfile "$CA_PEM" -purpose any \
	-out "$WORK/plain.xml" 2> "$WORK/profile.verify" ||
	fail "openssl cms -verify: $(cat "$WORK/profile.verify")"
grep -q 'Verification successful' "$WORK/profile.verify" ||
	fail "no 'Verification successful': $(cat "$WORK/profile.verify")"
out=$(python3 - "$WORK/plain.xml" <<'EOF'
import json, plistlib, sys
p = plistlib.load(open(sys.argv[1], "rb"))
s = p["PayloadContent"][0]["PayloadContent"]
print(s["Challenge"])
print(json.dumps(s["Subject"], separators=(",", ":")))
print(s["Keysize"], s["Key Usage"])
EOF
) || fail "the signed content is not the profile plist"
{ read -r PROFILE_PW; read -r subject_json; read -r sizes; } <<< "$out"
[ "$subject_json" = '[[["O","Fabrikam"]],[["OU","IT"],["L","Berlin"]],[["CN","Robs IPad"]]]' ] ||
	fail "the profile's Subject is $subject_json, not what was typed: $FORM_SUBJECT"
[ "$sizes" = "2048 5" ] || fail "Keysize and Key Usage '$sizes', want the form's defaults '2048 5'"
[ -n "$PROFILE_PW" ] || fail "no challenge in the profile"
[ "$PROFILE_PW" != "$PAGE_PW" ] || fail "the profile carries the page's password, not one of its own"
echo "   profile challenge $PROFILE_PW differs from the page's"

pass "Basic login in Chromium, password and thumbprint from the page, enrollment with that password, a signed profile from the page's form; screenshot $ARTEFACTS/admin_page.png"
