#!/usr/bin/env bash
# scripts/demo.sh — vmtrust end to end, on a fresh machine, for a newcomer.
#
# It plays both sides of an image list:
#   the endorser  builds a disk image, lists it, signs the list;
#   the site      verifies the list against its IGTF trust directory,
#                 and refuses it when it is tampered with, expired or revoked.
# Everything happens in one work directory (default /tmp/vmtrust-demo,
# override with VMTRUST_DEMO_DIR), recreated on every run; nothing else on the
# machine is touched. Needs openssl, mkfs.ext4 (e2fsprogs), qemu-img
# (qemu-utils) and bin/vmtrust: run it with 'make demo', which installs and
# builds them first.
#
# Exit status: 0 when every expectation held, non-zero otherwise.
set -Eeuo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${VMTRUST_DEMO_DIR:-/tmp/vmtrust-demo}
VMTRUST_BIN=${VMTRUST_BIN:-$repo/bin/vmtrust}
SPEC_TEMPLATE=$repo/testdata/demo/spec.json.in
MARKER=.vmtrust-demo # marks a work directory this script may delete

if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then
	BOLD=$'\e[1m' CMD=$'\e[36m' OK=$'\e[32m' BAD=$'\e[31m' OFF=$'\e[0m'
else
	BOLD='' CMD='' OK='' BAD='' OFF=''
fi

step_no=0
step_title=setup
declare -a summary=()

die() {
	printf '%sDEMO FAILED%s (step %d, %s): %s\n' "$BAD" "$OFF" "$step_no" "$step_title" "$*" >&2
	exit 1
}
trap 'rc=$?; printf "%sDEMO FAILED%s (step %d, %s): command at line %d exited %d\n" "$BAD" "$OFF" "$step_no" "$step_title" "$LINENO" "$rc" >&2; exit "$rc"' ERR

# step TITLE LINE... — a heading, then a few lines of plain explanation.
step() {
	step_no=$((step_no + 1))
	step_title=$1
	shift
	printf '\n%s== Step %d: %s ==%s\n' "$BOLD" "$step_no" "$step_title" "$OFF"
	local line
	for line in "$@"; do printf '   %s\n' "$line"; done
	echo
}

note() { printf '   %s\n' "$@"; }
ok() { printf '%s   ✓ %s%s\n' "$OK" "$*" "$OFF"; }

# quote ARGS — a command line as you would type it.
quote() {
	local a out=''
	for a in "$@"; do
		if [[ $a =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then
			out+="$a "
		else
			out+="'${a//\'/\'\\\'\'}' "
		fi
	done
	printf '%s' "${out% }"
}

show() { printf '%s$ %s%s\n' "$CMD" "$*" "$OFF"; }

# run CMD... — show the command, then run it; any failure ends the demo.
run() {
	show "$(quote "$@")"
	"$@"
}

# run_to FILE CMD... — the same, with stdout written to FILE.
run_to() {
	local out=$1
	shift
	show "$(quote "$@") > $out"
	"$@" >"$out"
}

# expect_exit WANT MEANING CMD... — run CMD, which must exit with status WANT.
expect_exit() {
	local want=$1 meaning=$2 rc=0
	shift 2
	show "$(quote "$@")"
	"$@" || rc=$?
	if [ "$rc" -ne "$want" ]; then
		die "expected exit status $want ($meaning) from '$(quote "$@")', got $rc"
	fi
	ok "exit status $rc: $meaning — as expected"
	last_rc=$rc
}

# expect_failure MEANING CMD... — run CMD, which must fail (any non-zero status).
expect_failure() {
	local meaning=$1 rc=0
	shift
	show "$(quote "$@")"
	"$@" || rc=$?
	if [ "$rc" -eq 0 ]; then
		die "'$(quote "$@")' succeeded, but it must refuse: $meaning"
	fi
	ok "refused with exit status $rc: $meaning — as expected"
	last_rc=$rc
}

# The printed commands say "vmtrust ...": this runs the binary just built.
vmtrust() { "$VMTRUST_BIN" "$@"; }

# --- preflight -----------------------------------------------------------------
for cmd in openssl mkfs.ext4 qemu-img sed cmp; do
	command -v "$cmd" >/dev/null 2>&1 || die "$cmd is not installed: run 'make setup' (scripts/setup.sh) as root"
done
[ -x "$VMTRUST_BIN" ] || die "$VMTRUST_BIN is missing: run 'make build' first (or 'make demo', which does everything)"
[ -r "$SPEC_TEMPLATE" ] || die "the spec template $SPEC_TEMPLATE is missing"

case $WORK in
'' | / | /tmp | /tmp/ | "$HOME" | "$repo") die "refusing to use $WORK as the demo work directory: set VMTRUST_DEMO_DIR to a new directory" ;;
esac
if [ -e "$WORK" ]; then
	[ -f "$WORK/$MARKER" ] || die "$WORK exists but was not created by this demo; remove it yourself or set VMTRUST_DEMO_DIR"
	rm -rf -- "$WORK"
fi
mkdir -p -- "$WORK"
WORK=$(cd "$WORK" && pwd)
touch "$WORK/$MARKER"
cd "$WORK"

CA_DN='/DC=org/DC=vmtrust-demo/CN=vmtrust Demo CA'
ENDORSER_DN='/DC=org/DC=vmtrust-demo/O=Demo Site/CN=Demo Endorser'

printf '%svmtrust demo%s — signed, expiring, revocable lists of virtual machine images\n' "$BOLD" "$OFF"
note "binary:   $VMTRUST_BIN" "work dir: $WORK (all files of this demo are here)"

# --- 1. the CA -----------------------------------------------------------------
step "Create a throw-away certificate authority (CA)" \
	"Grid sites trust endorsers through X.509 certificates issued by CAs they" \
	"already trust (IGTF CAs). For the demo we make our own CA with OpenSSL." \
	"Its certificate may sign certificates (CA:TRUE, keyCertSign) and revocation lists (cRLSign)."

mkdir -p ca/issued endorser trust
: >ca/index.txt
echo 1000 >ca/serial
echo 1000 >ca/crlnumber
cat >openssl.cnf <<'EOF'
# Minimal OpenSSL configuration for the vmtrust demo CA. Paths are relative
# to the demo work directory.
[ ca ]
default_ca       = demo_ca

[ demo_ca ]
dir              = ./ca
database         = $dir/index.txt
new_certs_dir    = $dir/issued
serial           = $dir/serial
crlnumber        = $dir/crlnumber
certificate      = $dir/ca.pem
private_key      = $dir/ca.key
default_md       = sha256
default_days     = 365
default_crl_days = 365
crl_extensions   = crl_ext
policy           = policy_any
preserve         = yes
unique_subject   = no
copy_extensions  = none

[ policy_any ]
commonName       = supplied

[ req ]
distinguished_name = req_dn
default_md       = sha256

[ req_dn ]

[ v3_ca ]
basicConstraints       = critical, CA:TRUE
keyUsage               = critical, keyCertSign, cRLSign
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always

[ v3_endorser ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature, nonRepudiation
extendedKeyUsage       = emailProtection
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid, issuer

[ crl_ext ]
authorityKeyIdentifier = keyid:always
EOF
note "openssl.cnf: a minimal 'openssl ca' configuration (database, serials, extensions)."
run openssl genpkey -quiet -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out ca/ca.key
run openssl req -x509 -config openssl.cnf -extensions v3_ca \
	-key ca/ca.key -out ca/ca.pem -days 3650 -subj "$CA_DN"
run openssl x509 -in ca/ca.pem -noout -subject -dates -ext basicConstraints,keyUsage -nameopt compat
summary+=("CA            $CA_DN (ca/ca.pem)")

# --- 2. the endorser -----------------------------------------------------------
step "Issue the endorser's certificate" \
	"The endorser is the person or team who vouches for images. Its key signs the" \
	"image list; its certificate, issued by the CA, says who it is."

run openssl genpkey -quiet -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out endorser/endorser.key
run openssl req -new -config openssl.cnf -key endorser/endorser.key \
	-out endorser/endorser.csr -subj "$ENDORSER_DN"
run openssl ca -batch -config openssl.cnf -extensions v3_endorser -notext -preserveDN \
	-in endorser/endorser.csr -out endorser/endorser.pem
run openssl x509 -in endorser/endorser.pem -noout -subject -issuer -serial -dates -nameopt compat
summary+=("endorser      $ENDORSER_DN (endorser/endorser.pem)")

# --- 3. CRL and trust directory ------------------------------------------------
step "Publish a revocation list (CRL) and lay out the site's trust directory" \
	"A site keeps its trusted CAs IGTF style, as /etc/grid-security/certificates:" \
	"HASH.0 is the CA certificate, HASH.r0 its current CRL, HASH.signing_policy says" \
	"which subject names the CA may certify. HASH is OpenSSL's subject-name hash."

run openssl ca -config openssl.cnf -gencrl -out ca/crl.pem
show "openssl x509 -hash -noout -in ca/ca.pem"
hash=$(openssl x509 -hash -noout -in ca/ca.pem)
echo "$hash"
crl_hash=$(openssl crl -hash -noout -in ca/crl.pem)
[ "$crl_hash" = "$hash" ] || die "the CRL's issuer hash $crl_hash differs from the CA's subject hash $hash"
run cp ca/ca.pem "trust/$hash.0"
run cp ca/crl.pem "trust/$hash.r0"
cat >"trust/$hash.signing_policy" <<EOF
# EACL for the vmtrust demo CA: it may certify names under /DC=org/DC=vmtrust-demo only.
access_id_CA      X509         '$CA_DN'
pos_rights        globus       CA:sign
cond_subjects     globus       '"/DC=org/DC=vmtrust-demo/*"'
EOF
show "cat trust/$hash.signing_policy"
cat "trust/$hash.signing_policy"
run ls -l trust
summary+=("trust dir     trust/ ($hash.0, $hash.r0, $hash.signing_policy)")

# --- 4. a real disk image ------------------------------------------------------
step "Build a small real disk image" \
	"An endorsed image is an ordinary VM disk. We make a tiny one: a root tree with" \
	"an os-release and a few files, turned into an ext4 filesystem (mkfs.ext4 -d, no" \
	"mounting needed), then into a compressed qcow2 as clouds use."

mkdir -p root/etc root/home/demo image
cat >root/etc/os-release <<'EOF'
PRETTY_NAME="vmtrust demo appliance 1"
NAME="vmtrust demo appliance"
VERSION_ID="1"
VERSION="1"
ID=vmtrust-demo
HOME_URL="https://images.vmtrust-demo.example/"
EOF
echo demo-appliance >root/etc/hostname
printf 'root:x:0:0:root:/root:/bin/sh\ndemo:x:1000:1000:Demo user:/home/demo:/bin/sh\n' >root/etc/passwd
printf 'root:x:0:\ndemo:x:1000:\n' >root/etc/group
echo 'Welcome to the vmtrust demo appliance.' >root/etc/motd
echo 'This image exists only to be listed, signed and verified.' >root/home/demo/README
run find root -type f
run mkfs.ext4 -q -F -d root image/disk.raw 16M
run qemu-img convert -O qcow2 -c image/disk.raw image/demo.qcow2
run qemu-img info image/demo.qcow2
summary+=("image         image/demo.qcow2 ($(stat -c %s image/demo.qcow2) bytes, ext4 in qcow2)")

# --- 5. the image list ---------------------------------------------------------
step "Write the image list" \
	"The endorser describes the list and its images in a small spec (from" \
	"testdata/demo/spec.json.in). 'vmtrust imagelist create' measures every image" \
	"(size and sha512), takes hv:dn and hv:ca from the endorser's certificate, and" \
	"writes a HEPiX image list, valid from now for 28 days."

run_to spec.json sed -e 's|@IMAGE_FILE@|image/demo.qcow2|' "$SPEC_TEMPLATE"
run vmtrust imagelist create --spec spec.json --cert endorser/endorser.pem --version 1 -o list.json
run vmtrust imagelist show list.json
expires=$(sed -n 's/^ *"dc:date:expires": *"\([^"]*\)".*/\1/p' list.json | head -n 1)
[ -n "$expires" ] || die "no dc:date:expires in list.json"
summary+=("list          list.json (version 1, expires $expires)")

# --- 6. sign -------------------------------------------------------------------
step "Sign the list" \
	"The signed form is S/MIME: the JSON, then a detached PKCS#7 signature made with" \
	"the endorser's key. This is the file a site downloads."

run vmtrust imagelist sign --cert endorser/endorser.pem --key endorser/endorser.key -o list.signed list.json
show "head -n 6 list.signed"
head -n 6 list.signed | tr -d '\r'
echo '   [...]'
summary+=("signed list   list.signed")

# --- 7. verify with vmtrust ----------------------------------------------------
step "Verify the list as a subscribing site would" \
	"'vmtrust imagelist verify' runs every check vmcatcher runs, and prints each one:" \
	"the signature, the certificate chain to a CA in trust/, the CRL, the CA's" \
	"signing policy, the list's fields, hv:dn/hv:ca against the signer, and expiry." \
	"With --content it writes the verified JSON, and only when every check passed."

expect_exit 0 "every check passed" \
	vmtrust imagelist verify --ca-dir trust --content verified.json list.signed
show "cmp <(tr -d '\\r' < verified.json) <(tr -d '\\r' < list.json)"
cmp <(tr -d '\r' <verified.json) <(tr -d '\r' <list.json) ||
	die "the verified content differs from the list that was signed"
ok "the verified content is exactly the list the endorser wrote"
summary+=("verify        accepted (exit 0)")

# --- 8. interop with OpenSSL ---------------------------------------------------
step "Check the same file with OpenSSL (interoperability)" \
	"Other tools (vmcatcher, cloudkeeper, atrope) verify with OpenSSL. 'openssl smime'" \
	"checks the signature, the chain to trust/ and the CRL (-crl_check) — but not the" \
	"list's expiry, hv:dn/hv:ca or the signing policy, which vmtrust adds."

expect_exit 0 "OpenSSL verification successful" \
	openssl smime -verify -in list.signed -CApath trust -crl_check -purpose any -out openssl-content.json
cmp <(tr -d '\r' <openssl-content.json) <(tr -d '\r' <list.json) ||
	die "the content OpenSSL extracted differs from the list that was signed"
ok "OpenSSL extracts the same JSON"
summary+=("openssl smime accepted (exit 0)")

# --- 9. tampering --------------------------------------------------------------
step "Tamper with the list: one byte changed" \
	"An attacker between the endorser and the site changes the image's download" \
	"address to a look-alike host (vmtrust-demo -> vmtrust-dem0). One byte differs;" \
	"the signature no longer matches the content."

run cp list.signed tampered.signed
run sed -i 's|vmtrust-demo\.example/demo\.qcow2|vmtrust-dem0.example/demo.qcow2|' tampered.signed
show "cmp -l list.signed tampered.signed"
diffs=$(cmp -l list.signed tampered.signed || true)
printf '%s\n' "$diffs"
[ "$(printf '%s\n' "$diffs" | grep -c .)" -eq 1 ] || die "expected exactly one changed byte in tampered.signed"
ok "exactly one byte differs"
expect_exit 15 "tampered content" \
	vmtrust imagelist verify --ca-dir trust --content tampered-content.json tampered.signed
[ ! -e tampered-content.json ] || die "vmtrust wrote the content of a tampered list"
ok "no content was written for the tampered list"
tamper_rc=$last_rc
expect_failure "OpenSSL reports a digest failure" \
	openssl smime -verify -in tampered.signed -CApath trust -crl_check -purpose any -out /dev/null
summary+=("tampered      rejected by vmtrust (exit $tamper_rc) and by openssl")

# --- 10. expiry ----------------------------------------------------------------
step "Expiry: the same list, checked after it expired" \
	"A list is only valid until dc:date:expires ($expires). A site that keeps using" \
	"an old list would keep trusting images the endorser has since withdrawn." \
	"--at checks the list as of a later moment, one day after expiry."

at=$(date -u -d "@$(($(date -u -d "$expires" +%s) + 86400))" +%Y-%m-%dT%H:%M:%SZ)
expect_exit 32 "list expired" \
	vmtrust imagelist verify --ca-dir trust --at "$at" list.signed
summary+=("expired       rejected at $at (exit $last_rc)")

# --- 11. revocation ------------------------------------------------------------
step "Revocation: the endorser's key is compromised" \
	"The CA revokes the endorser's certificate and publishes a new CRL; the site's" \
	"trust directory picks it up (as fetch-crl does). Every list that key signed is" \
	"now refused, even though nothing in the list changed."

run openssl ca -config openssl.cnf -revoke endorser/endorser.pem -crl_reason keyCompromise
run openssl ca -config openssl.cnf -gencrl -out ca/crl-2.pem
show "openssl crl -in ca/crl-2.pem -noout -text | sed -n '/^Revoked/,/^ *Signature Algorithm/p'"
openssl crl -in ca/crl-2.pem -noout -text | sed -n '/^Revoked/,/^ *Signature Algorithm/p'
run cp -r trust trust-after-revocation
run cp ca/crl-2.pem "trust-after-revocation/$hash.r0"
expect_exit 25 "certificate revoked" \
	vmtrust imagelist verify --ca-dir trust-after-revocation list.signed
revoke_rc=$last_rc
expect_failure "OpenSSL reports the certificate revoked" \
	openssl smime -verify -in list.signed -CApath trust-after-revocation -crl_check -purpose any -out /dev/null
summary+=("revoked       rejected by vmtrust (exit $revoke_rc) and by openssl")

# --- summary -------------------------------------------------------------------
trap - ERR
printf '\n%s== Summary ==%s\n' "$BOLD" "$OFF"
printf '   %s\n' "${summary[@]}"
cat <<EOF

   The endorser built a real qcow2 image, listed it and signed the list; the site
   accepted it with vmtrust and with OpenSSL, and refused it when one byte was
   changed (exit 15), when it had expired (exit 32) and when the endorser's
   certificate was revoked (exit 25). All files are in $WORK.
   Try: $VMTRUST_BIN imagelist verify --ca-dir $WORK/trust --json $WORK/list.signed

${OK}Demo finished: every expectation held.${OFF}
EOF
