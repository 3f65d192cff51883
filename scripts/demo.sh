#!/usr/bin/env bash
# scripts/demo.sh — vmtrust end to end, on a fresh machine, for a newcomer.
#
# It plays both sides of an image list, then inspects images offline:
#   the endorser  builds a disk image, lists it, signs the list, publishes
#                 both on its own HTTPS server, later withdraws the image;
#   the site      verifies the list against its IGTF trust directory and
#                 refuses it when it is tampered with, expired or revoked;
#                 subscribes to it, caches the image, refuses a list signed by
#                 someone else and a replayed old list, and expires the image
#                 once the endorser has withdrawn it;
#   inspection    reads the cached image offline, and a real Debian 12 image
#                 with problems baked in (from scripts/fixtures.sh, read-only).
# Everything happens in one work directory (default /tmp/vmtrust-demo,
# override with VMTRUST_DEMO_DIR), recreated on every run; nothing else on the
# machine is touched. The endorser's web server (openssl s_server) listens on
# 127.0.0.1 only, on a free port in 20000-39999, and is stopped when the demo
# ends, however it ends. Needs openssl, mkfs.ext4 (e2fsprogs), qemu-img
# (qemu-utils), jq, bin/vmtrust and the fixture images: run it with
# 'make demo', which installs and builds them first.
#
# Exit status: 0 when every expectation held, non-zero otherwise.
set -Eeuo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${VMTRUST_DEMO_DIR:-/tmp/vmtrust-demo}
VMTRUST_BIN=${VMTRUST_BIN:-$repo/bin/vmtrust}
SPEC_TEMPLATE=$repo/testdata/demo/spec.json.in
MARKER=.vmtrust-demo # marks a work directory this script may delete
# Real Debian test images (scripts/fixtures.sh builds them once and caches
# them outside the repository; it prints their directory last).
FIXTURES=${VMTRUST_FIXTURE_DIR:-$("$repo/scripts/fixtures.sh" | tail -n 1)}

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

# --- the endorser's web server -------------------------------------------------
# The demo starts one process, openssl s_server, and stops exactly that process
# (by its PID) when it ends, however it ends.
server_pid=''
stop_server() {
	[ -n "$server_pid" ] || return 0
	kill "$server_pid" 2>/dev/null || true
	wait "$server_pid" 2>/dev/null || true
	server_pid=''
}
# --- the private libvirtd ------------------------------------------------------
# The boot step starts one private libvirtd (scripts/libvirt-env.sh start, in
# its own network namespace) and stops exactly that instance, by the namespace
# name it printed, when the demo ends, however it ends.
LIBVIRT_ENV=$repo/scripts/libvirt-env.sh
libvirt_ns=''
stop_libvirt() {
	[ -n "$libvirt_ns" ] || return 0
	bash "$LIBVIRT_ENV" stop "$libvirt_ns" || true
	libvirt_ns=''
	rm -f -- "$WORK/libvirt.netns"
}
# The containment step's network namespaces (unique names), deleted however
# the demo ends; their processes die with them.
demo_netns=()
stop_netns() {
	local ns
	for ns in "${demo_netns[@]}"; do
		ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
		ip netns del "$ns" 2>/dev/null || true
	done
	demo_netns=()
}
cleanup() {
	stop_server
	stop_libvirt
	stop_netns
}
trap cleanup EXIT
trap 'printf "\n%sDEMO INTERRUPTED%s (step %d, %s)\n" "$BAD" "$OFF" "$step_no" "$step_title" >&2; exit 130' INT
trap 'printf "\n%sDEMO INTERRUPTED%s (step %d, %s)\n" "$BAD" "$OFF" "$step_no" "$step_title" >&2; exit 143' TERM

# port_open PORT — something accepts connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start_server — serve www/ over HTTPS on a free port; sets port and server_pid.
start_server() {
	local try p
	port=''
	for try in 1 2 3 4 5 6 7 8 9 10; do
		p=$((20000 + RANDOM % 20000))
		port_open "$p" && continue
		(cd www && exec openssl s_server -WWW -accept "127.0.0.1:$p" \
			-cert ../server/server.pem -key ../server/server.key -quiet) </dev/null >>server.log 2>&1 &
		server_pid=$!
		for _ in {1..50}; do # up to 5 s to start listening
			kill -0 "$server_pid" 2>/dev/null || break
			port_open "$p" && break
			sleep 0.1
		done
		if kill -0 "$server_pid" 2>/dev/null && port_open "$p"; then
			port=$p
			echo "$server_pid" >server.pid
			return 0
		fi
		stop_server # the port was taken after all: try another one
	done
	die "could not start openssl s_server on 127.0.0.1 (tried $try ports in 20000-39999; see $WORK/server.log)"
}

# stop_leftover_server — stop the web server of an earlier run that was killed
# before it could stop it: only the process whose PID that run recorded, and
# only if it still is an s_server serving that run's www/.
stop_leftover_server() {
	local old
	old=$(cat "$WORK/server.pid" 2>/dev/null || true)
	[[ $old =~ ^[0-9]+$ ]] || return 0
	[ "$(readlink "/proc/$old/cwd" 2>/dev/null || true)" = "$(cd "$WORK" && pwd -P)/www" ] || return 0
	tr '\0' ' ' <"/proc/$old/cmdline" 2>/dev/null | grep -q 's_server -WWW' || return 0
	note "stopping the web server left running by an interrupted earlier run (PID $old)"
	kill "$old" 2>/dev/null || true
}

# stop_leftover_libvirt — stop the libvirtd instance of an earlier run that was
# killed before it could stop it: only the namespace that run recorded, and
# only if it is still a live vmtrust-demo-* instance of libvirt-env.sh.
stop_leftover_libvirt() {
	local old
	old=$(cat "$WORK/libvirt.netns" 2>/dev/null || true)
	[[ $old =~ ^vmtrust-demo-[0-9a-f]{8}$ ]] || return 0
	[ -d "${VMTRUST_LIBVIRT_RUN:-/run/vmtrust/libvirt}/$old" ] || return 0
	note "stopping the libvirtd left running by an interrupted earlier run (netns $old)"
	bash "$LIBVIRT_ENV" stop "$old" || true
}

# xml_text S — S escaped for XML text and single-quoted attributes.
xml_text() {
	local s=$1
	s=${s//&/\&amp;}
	s=${s//</\&lt;}
	s=${s//>/\&gt;}
	s=${s//\'/\&#39;}
	printf '%s' "$s"
}

# domain_xml NAME DISK — the minimal TCG domain of internal/vmtest's DomainXML:
# the kit's kernel and initramfs, DISK (qcow2) as vda behind a throw-away
# overlay (<transient/>: the guest never writes the cached image), the serial console
# logged to $consoles/NAME.console.log. The guest prints its marker and powers off.
domain_xml() {
	local name=$1 disk=$2
	cat <<EOF
<domain type='qemu'>
  <name>$(xml_text "$name")</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$(xml_text "$kit/vmlinuz")</kernel>
    <initrd>$(xml_text "$kit/initramfs.cpio.gz")</initrd>
    <cmdline>console=ttyS0 panic=-1 quiet vmtrust.name=$(xml_text "$name")</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='$(xml_text "$disk")'/>
      <target dev='vda' bus='virtio'/>
      <transient/>
    </disk>
    <serial type='file'>
      <source path='$(xml_text "$consoles/$name.console.log")'/>
      <target port='0'/>
    </serial>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
}

# --- the site's view -----------------------------------------------------------
# expect_image STATE ADMISSIBLE — the demo image must be in STATE, admissible
# (true) or not (false), says 'vmtrust images --json'; sets image_path.
expect_image() {
	local got state admissible
	got=$(vmtrust "${SITE_ARGS[@]}" images --json |
		jq -r --arg id "$IMAGE_ID" '.images[] | select(.id == $id) | [.state, .admissible, .path] | @tsv')
	IFS=$'\t' read -r state admissible image_path <<<"$got"
	[ "$state $admissible" = "$1 $2" ] ||
		die "expected image $IMAGE_ID to be $1 with admissible=$2; 'vmtrust images --json' says: ${got:-no such image}"
	ok "image $IMAGE_ID is $1, admissible=$2"
}

# subscription FIELD — one field of the (only) subscription, from 'vmtrust subscriptions --json'.
subscription() {
	vmtrust "${SITE_ARGS[@]}" subscriptions --json | jq -r --arg f "$1" '.subscriptions[0][$f]'
}

# --- preflight -----------------------------------------------------------------
for cmd in openssl mkfs.ext4 qemu-img sed cmp jq sha512sum stat virsh ip; do
	command -v "$cmd" >/dev/null 2>&1 || die "$cmd is not installed: run 'make setup' (scripts/setup.sh) as root"
done
[ -x "$VMTRUST_BIN" ] || die "$VMTRUST_BIN is missing: run 'make build' first (or 'make demo', which does everything)"
[ "$(id -u)" -eq 0 ] || die "the demo boots guests under a private libvirtd and needs root: run 'make demo' as root"
[ -r "$SPEC_TEMPLATE" ] || die "the spec template $SPEC_TEMPLATE is missing"

case $WORK in
'' | / | /tmp | /tmp/ | "$HOME" | "$repo") die "refusing to use $WORK as the demo work directory: set VMTRUST_DEMO_DIR to a new directory" ;;
esac
if [ -e "$WORK" ]; then
	[ -f "$WORK/$MARKER" ] || die "$WORK exists but was not created by this demo; remove it yourself or set VMTRUST_DEMO_DIR"
	stop_leftover_server
	stop_leftover_libvirt
	rm -rf -- "$WORK"
fi
mkdir -p -- "$WORK"
WORK=$(cd "$WORK" && pwd)
touch "$WORK/$MARKER"
cd "$WORK"

CA_DN='/DC=org/DC=vmtrust-demo/CN=vmtrust Demo CA'
ENDORSER_DN='/DC=org/DC=vmtrust-demo/O=Demo Site/CN=Demo Endorser'
OTHER_DN='/DC=org/DC=vmtrust-demo/O=Demo Site/CN=Someone Else'
SERVER_DN='/DC=org/DC=vmtrust-demo/CN=127.0.0.1'
SITE=$WORK/site-state # the site's catalog and image cache
SITE_ARGS=(--config site.toml --state "$SITE")

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

[ v3_tls_server ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature, keyEncipherment
extendedKeyUsage       = serverAuth
subjectAltName         = IP:127.0.0.1
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

# --- 5. the endorser's web server ----------------------------------------------
step "Start the endorser's web server (HTTPS on 127.0.0.1)" \
	"Sites download lists and images over HTTPS. The endorser's server gets a TLS" \
	"certificate for the address 127.0.0.1 (subjectAltName), here from the demo CA." \
	"The server is 'openssl s_server -WWW': it serves the files in www/. It is" \
	"stopped when the demo ends."

mkdir -p server www
run openssl genpkey -quiet -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out server/server.key
run openssl req -new -config openssl.cnf -key server/server.key -out server/server.csr -subj "$SERVER_DN"
run openssl ca -batch -config openssl.cnf -extensions v3_tls_server -notext -preserveDN \
	-in server/server.csr -out server/server.pem
run openssl x509 -in server/server.pem -noout -subject -ext subjectAltName,extendedKeyUsage -nameopt compat
start_server
show "(cd www && openssl s_server -WWW -accept 127.0.0.1:$port -cert ../server/server.pem -key ../server/server.key -quiet) &"
note "web server: PID $server_pid, https://127.0.0.1:$port/ (log: server.log)"
BASE_URL=https://127.0.0.1:$port
LIST_URL=$BASE_URL/image.list
show "openssl s_client -connect 127.0.0.1:$port -CAfile ca/ca.pem -verify_ip 127.0.0.1 -verify_return_error -brief < /dev/null"
tls=$(openssl s_client -connect "127.0.0.1:$port" -CAfile ca/ca.pem -verify_ip 127.0.0.1 \
	-verify_return_error -brief </dev/null 2>&1) || die "TLS connection to the web server failed: $tls"
grep -E '^(Protocol version|Peer certificate|Verification):' <<<"$tls" | sed 's/^/   /'
grep -qx 'Verification: OK' <<<"$tls" || die "the web server's certificate did not verify against ca/ca.pem"
ok "the server's certificate verifies for 127.0.0.1 against the demo CA"
summary+=("web server    $BASE_URL/ (openssl s_server, PID $server_pid, files in www/)")

# --- 6. the image list ---------------------------------------------------------
step "Write the image list" \
	"The endorser describes the list and its images in a small spec (from" \
	"testdata/demo/spec.json.in); its addresses point at the endorser's server." \
	"'vmtrust imagelist create' measures every image (size and sha512), takes hv:dn" \
	"and hv:ca from the endorser's certificate, and writes a HEPiX image list," \
	"valid from now for 28 days."

run_to spec.json sed -e 's|@IMAGE_FILE@|image/demo.qcow2|' -e "s|@BASE_URL@|$BASE_URL|g" "$SPEC_TEMPLATE"
run vmtrust imagelist create --spec spec.json --cert endorser/endorser.pem --version 1 -o list.json
run vmtrust imagelist show list.json
expires=$(jq -r '."hv:imagelist"."dc:date:expires"' list.json)
[[ $expires =~ ^[0-9]{4}-.*Z$ ]] || die "no dc:date:expires in list.json"
IMAGE_ID=$(jq -r '."hv:imagelist"."hv:images"[0]."hv:image"."dc:identifier"' list.json)
IMAGE_SHA512=$(jq -r '."hv:imagelist"."hv:images"[0]."hv:image"."sl:checksum:sha512"' list.json)
IMAGE_URI=$(jq -r '."hv:imagelist"."hv:images"[0]."hv:image"."hv:uri"' list.json)
[ "$IMAGE_URI" = "$BASE_URL/demo.qcow2" ] || die "the image's hv:uri is $IMAGE_URI, not $BASE_URL/demo.qcow2"
[[ $IMAGE_SHA512 =~ ^[0-9a-f]{128}$ ]] || die "no sl:checksum:sha512 for the image in list.json"
summary+=("list          list.json (version 1, expires $expires)")

# --- 7. sign -------------------------------------------------------------------
step "Sign the list" \
	"The signed form is S/MIME: the JSON, then a detached PKCS#7 signature made with" \
	"the endorser's key. This is the file a site downloads."

run vmtrust imagelist sign --cert endorser/endorser.pem --key endorser/endorser.key -o list.signed list.json
show "head -n 6 list.signed"
head -n 6 list.signed | tr -d '\r'
echo '   [...]'
summary+=("signed list   list.signed")

# --- 8. verify with vmtrust ----------------------------------------------------
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

# --- 9. interop with OpenSSL ---------------------------------------------------
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

# --- 10. tampering -------------------------------------------------------------
step "Tamper with the list: one byte changed" \
	"An attacker between the endorser and the site changes the image's download" \
	"address to a server of its own (127.0.0.1 -> 127.0.0.7). One byte differs;" \
	"the signature no longer matches the content."

run cp list.signed tampered.signed
run sed -i "s|//127\.0\.0\.1:$port/demo\.qcow2|//127.0.0.7:$port/demo.qcow2|" tampered.signed
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

# --- 11. expiry ----------------------------------------------------------------
step "Expiry: the same list, checked after it expired" \
	"A list is only valid until dc:date:expires ($expires). A site that keeps using" \
	"an old list would keep trusting images the endorser has since withdrawn." \
	"--at checks the list as of a later moment, one day after expiry."

at=$(date -u -d "@$(($(date -u -d "$expires" +%s) + 86400))" +%Y-%m-%dT%H:%M:%SZ)
expect_exit 32 "list expired" \
	vmtrust imagelist verify --ca-dir trust --at "$at" list.signed
summary+=("expired       rejected at $at (exit $last_rc)")

# --- 12. publish ---------------------------------------------------------------
step "Publish the signed list and the image" \
	"The endorser puts the signed list and the image on its web server. A site" \
	"needs only the list's address, $LIST_URL;" \
	"the list says where the image is and what exactly it must be (size, sha512)."

run cp list.signed www/image.list
run cp image/demo.qcow2 www/demo.qcow2
run ls -l www
summary+=("published     $LIST_URL (version 1)")

# --- 13. the site subscribes ---------------------------------------------------
step "The site trusts the endorser and subscribes to its list" \
	"The site names the endorser it trusts by its certificate's subject and issuer," \
	"then subscribes to the list's address with that endorser as the only allowed" \
	"signer. --ca-bundle ca/ca.pem: only the demo CA is trusted for the server's TLS" \
	"certificate. site.toml is the site's configuration (its trust directory);" \
	"site-state/ holds its catalog and image cache."

toml_trust=${WORK//\\/\\\\}/trust # a TOML string: \ and " escaped
toml_trust=${toml_trust//\"/\\\"}
printf '# vmtrust configuration of the demo site (a real site uses /etc/vmtrust/vmtrust.toml).\ntrust_dir = "%s"\n' \
	"$toml_trust" >site.toml
show "cat site.toml"
cat site.toml
run openssl x509 -in endorser/endorser.pem -noout -subject -issuer -nameopt compat
endorser_dn=$(openssl x509 -in endorser/endorser.pem -noout -subject -nameopt compat)
endorser_dn=${endorser_dn#subject=}
endorser_ca=$(openssl x509 -in endorser/endorser.pem -noout -issuer -nameopt compat)
endorser_ca=${endorser_ca#issuer=}
[ "$endorser_dn" = "$ENDORSER_DN" ] || die "the endorser certificate's subject is '$endorser_dn', expected '$ENDORSER_DN'"
run vmtrust "${SITE_ARGS[@]}" endorser add demo-endorser --dn "$endorser_dn" --ca "$endorser_ca"
run vmtrust "${SITE_ARGS[@]}" endorser list
run vmtrust "${SITE_ARGS[@]}" subscribe "$LIST_URL" --endorser demo-endorser --ca-bundle ca/ca.pem
run vmtrust "${SITE_ARGS[@]}" subscriptions
summary+=("site          site.toml, site-state/ (endorser demo-endorser, 1 subscription)")

# --- 14. update: download and cache --------------------------------------------
step "The site updates: the image is downloaded and cached" \
	"'vmtrust update' fetches the list over HTTPS, verifies it as in step 8 with" \
	"demo-endorser as the only allowed signer, then downloads the image, checks its" \
	"size and sha512 against the list and keeps it read-only in site-state/cache/." \
	"An image may be used (is admissible) only while it is cached there."

expect_exit 0 "list accepted, image cached" vmtrust "${SITE_ARGS[@]}" update
run vmtrust "${SITE_ARGS[@]}" images
run vmtrust "${SITE_ARGS[@]}" subscriptions
show "vmtrust $(quote "${SITE_ARGS[@]}") images --json | jq '.images[] | {id, state, admissible, path}'"
vmtrust "${SITE_ARGS[@]}" images --json | jq '.images[] | {id, state, admissible, path}'
expect_image cached true
cached=$SITE/cache/$IMAGE_ID
[ "$image_path" = "$cached" ] || die "the image's path is $image_path, expected $cached"
[ -f "$cached" ] || die "$cached does not exist"
mode=$(stat -c %a "$cached")
((8#$mode & 8#222)) && die "$cached is writable (mode $mode); the cache keeps images read-only"
ok "$cached exists, mode $mode (read-only)"
show "sha512sum $cached"
sum=$(sha512sum "$cached")
echo "$sum"
[ "${sum%% *}" = "$IMAGE_SHA512" ] || die "the cached file's sha512 differs from the list's sl:checksum:sha512 $IMAGE_SHA512"
ok "its sha512 is the list's sl:checksum:sha512"
summary+=("update        version 1 accepted; image cached in site-state/cache/, admissible")

# --- 14b. inspection ----------------------------------------------------------
step "Inspect the cached image before anyone boots it" \
	"'vmtrust inspect' reads the disk image directly — no boot, no mount — and" \
	"reports the OS, kernels and packages, and findings against the endorsement" \
	"policy: accounts, SSH keys, credentials, setuid files, remote logging, end of" \
	"life. The demo appliance is tiny: it has a login account and no remote logging."

run vmtrust --state "$SITE" inspect "$cached"
show "vmtrust --state $SITE inspect --format json $cached | jq '.findings[] | {severity, rule, path}'"
vmtrust --state "$SITE" inspect --format json "$cached" | jq -c '.findings[] | {severity, rule, path}'
rules=$(vmtrust --state "$SITE" inspect --format json "$cached" | jq -r '[.findings[].rule] | sort | unique | join(" ")')
[[ " $rules " == *" no-remote-logging "* ]] || die "inspect did not report the missing remote logging (rules: $rules)"
ok "findings: $rules"
summary+=("inspect       the cached image read offline: $rules")

step "A user-supplied image with problems baked in: refused by --fail-on" \
	"A real Debian 12 image (debootstrap) with a bad history: SSH host keys baked" \
	"in, authorized_keys, a private key in /root, a grid proxy, passwords, a stray" \
	"setuid shell. Each is found with its path; --fail-on high makes inspect exit 5," \
	"the signal an admission step (or an endorser's pipeline) acts on."

dirty=$FIXTURES/debian12-dirty-gpt.qcow2
[ -f "$dirty" ] || die "no fixture image $dirty (make fixtures builds it)"
expect_exit 5 "findings at or above high" vmtrust --state "$SITE" inspect --fail-on high "$dirty"
vmtrust --state "$SITE" inspect --format json "$dirty" >dirty.json || true
for want in ssh-authorized-keys:/root/.ssh/authorized_keys ssh-host-key:/etc/ssh/ssh_host_ed25519_key \
	private-key:/root/.ssh/id_ed25519 grid-proxy:/tmp/x509up_u1000 setuid-unowned:/usr/local/bin/rootsh \
	account-empty-password:/etc/shadow; do
	jq -e --arg r "${want%%:*}" --arg p "${want#*:}" 'any(.findings[]; .rule == $r and .path == $p)' dirty.json >/dev/null ||
		die "inspect did not find ${want%%:*} at ${want#*:}"
	ok "found ${want%%:*} at ${want#*:}"
done
run vmtrust --state "$SITE" inspect --format cyclonedx -o dirty.cdx.json "$dirty"
ok "CycloneDX SBOM with $(jq '.components | length' dirty.cdx.json) components in dirty.cdx.json"
summary+=("inspect       user image with planted problems: refused by --fail-on high (exit 5)")

step "User-supplied images: registered only after a clean inspection (class 3)" \
	"'vmtrust user-images register' copies a user's image into the site state" \
	"(read-only, sha512 computed while copying), inspects the copy and registers it" \
	"only when no finding reaches block_on (high). The dirty image is refused and" \
	"nothing is kept; a clean debootstrap image is registered and admitted in trust" \
	"class 3 (full containment), but never with host device passthrough."

expect_exit 5 "not registered: findings at or above high" \
	vmtrust "${SITE_ARGS[@]}" user-images register "$dirty" --owner alice
[ -z "$(ls -A "$SITE/user" 2>/dev/null)" ] || die "a refused registration left files in $SITE/user"
ok "nothing was kept of the refused image"
clean=$FIXTURES/debian12-clean.qcow2
[ -f "$clean" ] || die "no fixture image $clean (make fixtures builds it)"
expect_exit 0 "registered: no finding at or above high" \
	vmtrust "${SITE_ARGS[@]}" user-images register "$clean" --owner alice
run vmtrust "${SITE_ARGS[@]}" user-images list
user_image=$(vmtrust "${SITE_ARGS[@]}" user-images list --json | jq -r '.images[0].path')
[ -f "$user_image" ] || die "the registered copy $user_image does not exist"
# user_domain NAME EXTRA — a domain on the registered copy, behind a throw-away overlay.
user_domain() {
	printf '%s\n' "<domain type='qemu'><name>$1</name><devices>" \
		"  <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='$(xml_text "$user_image")'/><target dev='vda' bus='virtio'/><transient/></disk>" \
		"  $2" "</devices></domain>"
}
user_domain demo-user "" >user.xml
user_domain demo-user-hostdev "<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x01' slot='0x00' function='0x0'/></source></hostdev>" >user-hostdev.xml
run cat user-hostdev.xml
expect_exit 0 "allowed in class 3: a registered user image" vmtrust "${SITE_ARGS[@]}" admit user.xml
[ "$(tail -n 1 "$SITE/admission.jsonl" | jq -r '"\(.class) \(.profile)"')" = "3 dmz" ] || die "the user image was not admitted in class 3 with profile dmz"
ok "class 3, containment profile dmz"
expect_exit 6 "denied: a user-supplied image with PCI passthrough" vmtrust "${SITE_ARGS[@]}" admit user-hostdev.xml
summary+=("user images   dirty image not registered (exit 5); clean one registered, class 3; with <hostdev> denied")

# --- 14c. admission under libvirt ---------------------------------------------
step "Boot the admitted image under libvirt; a copy of it is refused" \
	"'vmtrust hook install' writes libvirt's qemu hook: before libvirtd starts a" \
	"domain, it asks vmtrust, which admits a domain only when each of its disks is" \
	"an admissible image in the cache. A private libvirtd (scripts/libvirt-env.sh," \
	"its own network namespace, nothing on the host touched) runs that hook. Two" \
	"TCG guests boot a tiny test kernel: demo-admitted with the cached image as its" \
	"disk, demo-unknown with a byte-identical copy outside the cache — refused, as" \
	"nobody can tell that copy is the endorsed one by the time it is used."

libvirt_begin=$(date +%s%N)
show "$(quote "$LIBVIRT_ENV") build | tail -n 1"
kit=$(bash "$LIBVIRT_ENV" build | tail -n 1)
echo "$kit"
[ -f "$kit/vmlinuz" ] && [ -f "$kit/initramfs.cpio.gz" ] || die "the guest kit $kit has no vmlinuz or initramfs.cpio.gz"
mkdir -p libvirt/hooks libvirt/console
consoles=$WORK/libvirt/console
run vmtrust --config site.toml hook install --path "$WORK/libvirt/hooks/qemu" --state "$SITE"
run cat libvirt/hooks/qemu
show "$(quote "$LIBVIRT_ENV" start demo "$WORK/libvirt/hooks/qemu")"
libvirt_out=$(bash "$LIBVIRT_ENV" start demo "$WORK/libvirt/hooks/qemu")
libvirt_ns=$(sed -n 's/^VMTRUST_LIBVIRT_NETNS=//p' <<<"$libvirt_out")
echo "$libvirt_ns" >libvirt.netns
LIBVIRT_URI=$(sed -n 's/^VMTRUST_LIBVIRT_URI=//p' <<<"$libvirt_out")
printf '%s\n' "$libvirt_out"
[[ $libvirt_ns =~ ^vmtrust-demo-[0-9a-f]{8}$ ]] || die "libvirt-env.sh start printed no VMTRUST_LIBVIRT_NETNS: $libvirt_out"
[ -n "$LIBVIRT_URI" ] || die "libvirt-env.sh start printed no VMTRUST_LIBVIRT_URI: $libvirt_out"
ok "libvirtd up in network namespace $libvirt_ns with the vmtrust hook"

run cp "$cached" libvirt/unknown.qcow2
run cmp "$cached" libvirt/unknown.qcow2
ok "libvirt/unknown.qcow2 is byte-identical to the cached image"
domain_xml demo-admitted "$cached" >libvirt/demo-admitted.xml
domain_xml demo-unknown "$WORK/libvirt/unknown.qcow2" >libvirt/demo-unknown.xml
show "cat libvirt/demo-admitted.xml"
cat libvirt/demo-admitted.xml

note "'vmtrust admit' takes the hook's decision without libvirt:"
expect_exit 0 "allowed: its disk is the cached, admissible image" \
	vmtrust "${SITE_ARGS[@]}" admit libvirt/demo-admitted.xml
expect_exit 6 "denied: its disk is not in the cache" \
	vmtrust "${SITE_ARGS[@]}" admit libvirt/demo-unknown.xml

run virsh -c "$LIBVIRT_URI" define libvirt/demo-admitted.xml
run virsh -c "$LIBVIRT_URI" define libvirt/demo-unknown.xml
boot_begin=$(date +%s%N)
run virsh -c "$LIBVIRT_URI" start demo-admitted
marker="VMTRUST-GUEST-MARKER demo-admitted up"
for _ in $(seq 1 900); do # up to 90 s
	grep -qF "$marker" "$consoles/demo-admitted.console.log" 2>/dev/null && break
	sleep 0.1
done
grep -qF "$marker" "$consoles/demo-admitted.console.log" 2>/dev/null ||
	die "no '$marker' on the console within 90 s; it ends with: $(tail -c 2048 "$consoles/demo-admitted.console.log" 2>/dev/null || true)"
boot_ms=$((($(date +%s%N) - boot_begin) / 1000000))
show "grep VMTRUST-GUEST-MARKER libvirt/console/demo-admitted.console.log"
grep -F VMTRUST-GUEST-MARKER "$consoles/demo-admitted.console.log"
ok "demo-admitted booted: its console shows the marker after ${boot_ms} ms"

show "virsh -c $(quote "$LIBVIRT_URI") start demo-unknown"
if virsh -c "$LIBVIRT_URI" start demo-unknown 2>libvirt/demo-unknown.err; then
	die "virsh start demo-unknown succeeded, but the hook must refuse it"
fi
grep -qF "refused domain demo-unknown" libvirt/demo-unknown.err ||
	die "virsh's error does not say 'refused domain demo-unknown': $(cat libvirt/demo-unknown.err)"
# virsh's error also names the hook's whole environment: show its first line
# and the hook's own line (the full text is in libvirt/demo-unknown.err).
grep -m 1 . libvirt/demo-unknown.err
grep -o 'vmtrust: error: refused domain demo-unknown:.*' libvirt/demo-unknown.err | head -n 1
ok "libvirt refused to start demo-unknown, with vmtrust's reason"
[ ! -e "$consoles/demo-unknown.console.log" ] || die "demo-unknown's guest ran (it has a console log)"
ok "demo-unknown never ran: no console log"

show "tail -n 6 $SITE/admission.jsonl | jq -c '{message_type, time, domain, allow, class, event, reason}'"
tail -n 6 "$SITE/admission.jsonl" | jq -c '{message_type, time, domain, allow, class, event, reason}'
[ "$(jq -r 'select(.message_type == "admission") | "\(.domain) \(.allow)"' "$SITE/admission.jsonl" | tail -n 1)" = "demo-unknown false" ] ||
	die "the last admission decision is not demo-unknown's refusal"
ok "every decision, the hook's included, is recorded in site-state/admission.jsonl, with the domains' stops"

printf '\n%sStopping the private libvirtd (netns %s).%s\n' "$BOLD" "$libvirt_ns" "$OFF"
ns=$libvirt_ns
show "$(quote "$LIBVIRT_ENV") stop $ns"
stop_libvirt
[ ! -e "/run/netns/$ns" ] || die "the network namespace $ns still exists"
ok "libvirtd, its guests and its network namespace are gone"
sum=$(sha512sum "$cached")
[ "${sum%% *}" = "$IMAGE_SHA512" ] || die "booting changed the cached image: its sha512 is no longer the list's"
ok "the cached image is unchanged (sha512 as listed)"
libvirt_s=$((($(date +%s%N) - libvirt_begin) / 1000000))
note "this step took $((libvirt_s / 1000)).$(printf '%03d' $((libvirt_s % 1000))) s (guest boot to marker: ${boot_ms} ms)"
summary+=("libvirt       hook admitted demo-admitted (booted, marker in ${boot_ms} ms), refused demo-unknown (a copy)")

# --- 14d. network containment ---------------------------------------------------
step "Contain a VM's network: no spoofing, counted; quarantine in one step" \
	"A hypervisor (a network namespace with a bridge) and two VMs on veth ports," \
	"built here and deleted at the end. 'vmtrust net apply' pins each VM's MAC and" \
	"addresses (nftables, bridge family, through netlink: a chain per port behind a" \
	"verdict map) and hardens its bridge port against sniffing. VM a then lies about" \
	"its address with ping and with arping: dropped, and counted per reason." \
	"Quarantine cuts a off in both directions; release restores it."

sfx=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
hv=vmtrust-demo-hv-$sfx
va=vmtrust-demo-a-$sfx
vb=vmtrust-demo-b-$sfx
demo_netns=("$va" "$vb" "$hv")
for ns in "$hv" "$va" "$vb"; do run ip netns add "$ns"; done
run ip -n "$hv" link add br0 type bridge
run ip -n "$hv" link set br0 up
net_vm() { # NS PORT MAC ADDR
	ip -n "$hv" link add "$2" type veth peer name eth0 netns "$1"
	ip -n "$hv" link set "$2" master br0 up
	ip -n "$1" link set lo up
	ip -n "$1" link set eth0 address "$3" up
	ip -n "$1" addr add "$4/24" dev eth0
}
show "net_vm $va pa 52:54:00:66:00:02 10.66.0.2; net_vm $vb pb 52:54:00:66:00:03 10.66.0.3"
net_vm "$va" pa 52:54:00:66:00:02 10.66.0.2
net_vm "$vb" pb 52:54:00:66:00:03 10.66.0.3
NET=(vmtrust --state "$SITE" net --netns "$hv")
note "Without containment, a can claim any address on the segment:"
run ip -n "$va" addr add 10.66.0.99/24 dev eth0
expect_exit 0 "uncontained: b answers a ping from a's spoofed address 10.66.0.99" ip netns exec "$va" ping -c 1 -W 2 -I 10.66.0.99 10.66.0.3
expect_exit 0 "uncontained: b answers an ARP request from the spoofed sender" ip netns exec "$va" arping -q -c 1 -w 2 -S 10.66.0.99 -i eth0 10.66.0.3
run "${NET[@]}" apply --port pa --vm demo-a --mac 52:54:00:66:00:02 --ip 10.66.0.2 --class 3
run "${NET[@]}" apply --port pb --vm demo-b --mac 52:54:00:66:00:03 --ip 10.66.0.3 --class 3
expect_exit 0 "a reaches b with its own address" ip netns exec "$va" ping -c 1 -W 2 10.66.0.3
during=$(date -u +%Y-%m-%dT%H:%M:%S.%NZ) # demo-a holds 10.66.0.2 now
expect_failure "a spoofed source address (10.66.0.99) is dropped" ip netns exec "$va" ping -c 2 -W 1 -I 10.66.0.99 10.66.0.3
expect_failure "an ARP request from a spoofed sender address is dropped (b would answer it)" ip netns exec "$va" arping -q -c 2 -w 2 -S 10.66.0.99 -i eth0 10.66.0.3
run "${NET[@]}" status
spoofed=$("${NET[@]}" status --json | jq '[.ports[] | select(.port == "pa") | .kernel.drops["ip-spoof"], .kernel.drops["arp-spoof"]] | map(. // 0) | add')
[ "${spoofed:-0}" -gt 0 ] || die "net status counts no spoofed packet from pa"
ok "$spoofed spoofed packets from demo-a dropped and counted"
run "${NET[@]}" quarantine pa --reason "demo: IDS alert"
expect_failure "quarantined: a cannot reach b" ip netns exec "$va" ping -c 1 -W 1 10.66.0.3
run "${NET[@]}" release pa
expect_exit 0 "released: a reaches b again" ip netns exec "$va" ping -c 1 -W 2 10.66.0.3
show "cat $SITE/net/leases.jsonl | jq -c '{event, port, vm, mac, ipv4}'"
jq -c '{event, port, vm, mac, ipv4}' "$SITE/net/leases.jsonl"
ok "every lease and quarantine is recorded in site-state/net/leases.jsonl for the ledger"
run "${NET[@]}" remove --port pa
run "${NET[@]}" remove --port pb
stop_netns
ok "the demo's namespaces are gone"
summary+=("containment   spoofed IP and ARP from demo-a dropped ($spoofed counted); quarantine on/off; leases recorded")

# --- 14e. the ledger -------------------------------------------------------------
step "The audit ledger: who had 10.66.0.2, provably" \
	"Everything above went into a tamper-evident ledger (site-state/ledger.db): the" \
	"list accepted, the image cached, admission decisions, the VM started and stopped," \
	"each lease and quarantine. Each event is signed by this host's Ed25519 key; the" \
	"events form an RFC 6962 Merkle tree with signed checkpoints (C2SP note format)." \
	"who-had answers from the lease index and proves each event it used."

run vmtrust "${SITE_ARGS[@]}" who-had 10.66.0.2 --at "$during"
who=$(vmtrust "${SITE_ARGS[@]}" who-had 10.66.0.2 --at "$during" --json | jq -r '.lease.VM')
[ "$who" = demo-a ] || die "who-had 10.66.0.2 at $during says '$who', want demo-a"
ok "10.66.0.2 was demo-a's at $during (lease start and end proven in the ledger's tree)"
run vmtrust "${SITE_ARGS[@]}" timeline demo-a
run vmtrust "${SITE_ARGS[@]}" ledger verify
vmtrust "${SITE_ARGS[@]}" ledger checkpoint >"$WORK/checkpoint.note" 2>/dev/null
show "cat checkpoint.note"
cat "$WORK/checkpoint.note"
ledger_size=$(sed -n 2p "$WORK/checkpoint.note")
note "Someone with root on this host rewrites one event in the database file:"
show "sqlite: UPDATE entries SET body = replace(body, 'demo-a', 'demo-x') WHERE body LIKE '%lease.start%demo-a%'"
cp "$SITE/ledger.db" "$WORK/ledger.db.orig"
/usr/bin/python3 - "$SITE/ledger.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("UPDATE entries SET body = replace(body, 'demo-a', 'demo-x') WHERE CAST(body AS TEXT) LIKE '%lease.start%demo-a%'")
db.commit()
PY
expect_exit 7 "ledger verify detects the rewritten event" vmtrust "${SITE_ARGS[@]}" ledger verify
cp "$WORK/ledger.db.orig" "$SITE/ledger.db"
rm -f "$SITE/ledger.db-wal" "$SITE/ledger.db-shm"
expect_exit 0 "the original file verifies again" vmtrust "${SITE_ARGS[@]}" ledger verify
summary+=("ledger        $ledger_size events signed and chained; who-had 10.66.0.2 = demo-a, proven; a rewritten event detected")

# --- 15. refusal: someone else's list ------------------------------------------
step "Refused: a list signed by someone else" \
	"Someone else, with a valid certificate from the same CA, puts a list of their own" \
	"(version 2) on the server. Its signature and certificate chain are fine, but the" \
	"signer is not demo-endorser: update refuses the list (exit 4). The site keeps" \
	"version 1, and the cached image stays admissible."

mkdir -p other
run openssl genpkey -quiet -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out other/other.key
run openssl req -new -config openssl.cnf -key other/other.key -out other/other.csr -subj "$OTHER_DN"
run openssl ca -batch -config openssl.cnf -extensions v3_endorser -notext -preserveDN \
	-in other/other.csr -out other/other.pem
run vmtrust imagelist create --spec spec.json --cert other/other.pem --bump list.json -o other/list.json
run vmtrust imagelist sign --cert other/other.pem --key other/other.key -o www/image.list other/list.json
expect_exit 4 "a subscription failed: its list is not signed by demo-endorser" \
	vmtrust "${SITE_ARGS[@]}" update
run vmtrust "${SITE_ARGS[@]}" subscriptions
last_error=$(subscription last_error)
[[ $last_error == *"$OTHER_DN"*"not an authorised endorser"* ]] ||
	die "the subscription's last error does not name the unauthorised signer: '$last_error'"
ok "the subscription records why: $OTHER_DN is not an authorised endorser"
[ "$(subscription version)" = 1 ] || die "the subscription's accepted version is no longer 1"
expect_image cached true
summary+=("other signer  list refused by update (exit 4); version 1 kept")

# --- 16. withdrawal ------------------------------------------------------------
step "The endorser withdraws the image; the next update expires it" \
	"The image must no longer be used (say, a security hole was found in it). The" \
	"endorser publishes version 2 of the list without it (--bump: previous version" \
	"plus one). At its next update the site marks the image revoked and moves its" \
	"file out of the cache into site-state/expired/: it is no longer admissible."

run_to spec-v2.json jq '.images = []' spec.json
run vmtrust imagelist create --spec spec-v2.json --cert endorser/endorser.pem --bump list.signed -o list-v2.json
run vmtrust imagelist sign --cert endorser/endorser.pem --key endorser/endorser.key -o list-v2.signed list-v2.json
run cp list-v2.signed www/image.list
expect_exit 0 "version 2 accepted" vmtrust "${SITE_ARGS[@]}" update
run vmtrust "${SITE_ARGS[@]}" images
run vmtrust "${SITE_ARGS[@]}" subscriptions
[ "$(subscription version)" = 2 ] || die "the subscription's accepted version is not 2"
expect_image revoked false
[[ $image_path == "$SITE/expired/$IMAGE_ID".* ]] || die "the image's path is $image_path, expected $SITE/expired/$IMAGE_ID.<timestamp>"
[ -f "$image_path" ] || die "$image_path does not exist"
[ ! -e "$cached" ] || die "$cached is still in the cache"
run ls -l "$SITE/cache" "$SITE/expired"
ok "the file moved from cache/ to expired/${image_path##*/}"
expect_exit 6 "denied: the domain's image was withdrawn" vmtrust "${SITE_ARGS[@]}" admit libvirt/demo-admitted.xml
[[ $(tail -n 1 "$SITE/admission.jsonl" | jq -r .reason) == "an image was withdrawn by its endorser"* ]] ||
	die "the refusal does not say the image was withdrawn: $(tail -n 1 "$SITE/admission.jsonl" | jq -r .reason)"
ok "the hook would refuse demo-admitted now, for that reason"
summary+=("withdrawal    version 2 accepted; image revoked, file in site-state/expired/")

# --- 17. refusal: rollback -----------------------------------------------------
step "Refused: the old list replayed (rollback)" \
	"An attacker who controls the server serves the old version 1 again, to bring" \
	"the withdrawn image back. Its signature is genuine, but version 1 is older than" \
	"the accepted version 2: update refuses it (exit 4) and the image stays revoked."

run cp list.signed www/image.list
expect_exit 4 "a subscription failed: rollback to an older list" vmtrust "${SITE_ARGS[@]}" update
run vmtrust "${SITE_ARGS[@]}" subscriptions
last_error=$(subscription last_error)
[[ $last_error == *rollback* ]] || die "the subscription's last error does not say rollback: '$last_error'"
ok "the subscription records why: $last_error"
[ "$(subscription version)" = 2 ] || die "the subscription's accepted version is no longer 2"
expect_image revoked false
[ ! -e "$cached" ] || die "$cached is back in the cache"
summary+=("rollback      old version 1 refused by update (exit 4); image stays revoked")

# --- 18. revocation ------------------------------------------------------------
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
printf '\n%sStopping the web server (PID %s).%s\n' "$BOLD" "$server_pid" "$OFF"
pid=$server_pid
show "kill $pid"
stop_server
! kill -0 "$pid" 2>/dev/null || die "the web server (PID $pid) is still running"
ok "the web server is stopped"

trap - ERR
printf '\n%s== Summary ==%s\n' "$BOLD" "$OFF"
printf '   %s\n' "${summary[@]}"
cat <<EOF

   The endorser built a real qcow2 image, listed it and signed the list; the site
   accepted it with vmtrust and with OpenSSL, and refused it when one byte was
   changed (exit 15), when it had expired (exit 32) and when the endorser's
   certificate was revoked (exit 25). Over HTTPS, the site subscribed to the
   list, cached the image, refused a list signed by someone else and a replayed
   old list (exit 4), and expired the image once the endorser withdrew it.
   Before anything booted, vmtrust inspected the cached image offline, and
   refused a user-supplied Debian image with keys, passwords, a grid proxy and
   a setuid shell baked in (inspect --fail-on high: exit 5).
   Under a private libvirtd, vmtrust's qemu hook let the cached image boot and
   refused a byte-identical copy of it kept outside the cache (admit: exit 6).
   All files are in $WORK.
   Try: $(quote "$VMTRUST_BIN" imagelist verify --ca-dir "$WORK/trust" --json "$WORK/list.signed")
        $(quote "$VMTRUST_BIN" --config "$WORK/site.toml" --state "$SITE" images)

${OK}Demo finished: every expectation held.${OFF}
EOF
