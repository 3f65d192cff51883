#!/usr/bin/env bash
# admission-hook.sh: time vmtrust's libvirt qemu hook deciding on a domain
# whose disk is a cached image (issue 5's benchmark), beside the time
# `virsh start` takes for the same domain without the hook and with it.
#
# Self-contained: it builds vmtrust and bench/hooktime, makes with openssl a
# test IGTF CA with an endorser certificate and a CRL (bench/pki.sh, the
# recipe of bench/verify-imagelist.sh), writes a disk image (IMAGE_SIZE bytes
# of AES-128-CTR keystream, converted to qcow2 or kept raw), creates and signs
# a list for it with vmtrust, subscribes a fresh state directory to it by a
# file:// URL (list and image), and caches the image with `vmtrust update`.
# Then, with the domain XML of internal/vmtest's DomainXML (the libvirt kit's
# kernel and initramfs, the cached image as vda, serial console to a file):
#   service   the hook file `vmtrust hook install --service` writes, run as
#             libvirtd runs it (`HOOK NAME prepare begin -`, the XML on
#             stdin), with `vmtrust hook serve` running: /bin/sh, then
#             vmtrust-hook asking the service over its Unix socket; RUNS
#             times after WARMUP runs; every run must allow (exit 0)
#   full      `vmtrust --state S --config C hook run NAME prepare begin -`:
#             the whole vmtrust binary per decision (what the hook falls back
#             to without the service), FULL_RUNS times
#   no hook   a private libvirtd (scripts/libvirt-env.sh start, its own network
#             and mount namespace) without a hook: `virsh start` timed
#             START_RUNS times, `virsh destroy` after each (untimed)
#   service / full   the same under private libvirtds started with each hook:
#             the overhead as libvirt sees it (libvirtd runs the hook for
#             prepare, start and started; the wrapper answers the last two
#             in /bin/sh)
# Before timing each libvirtd, one untimed start must show the guest's
# console marker (VMTRUST-GUEST-MARKER NAME up); with the hook, a copy of the
# image outside the cache must be refused by `virsh start` with vmtrust's
# reason, so the hook is known to be active. Both libvirtd instances are
# stopped on exit, however the script ends.
#
# Usage: bench/admission-hook.sh               (as root)
# Environment:
#   BENCH_DIR     work directory (default: mktemp -d)
#   IMAGE_SIZE    bytes of pseudo-random data in the image (default: 16777216, 16 MiB)
#   IMAGE_FORMAT  qcow2 or raw (default: qcow2)
#   RUNS          timed hook runs through the service (default: 1000)
#   FULL_RUNS     timed `hook run` processes (default: 200)
#   WARMUP        untimed hook runs first (default: 20)
#   START_RUNS    timed `virsh start` runs per libvirtd (default: 20)
#   KEEP          1: keep the image and the state directory at the end
#
# Needs: root, go, openssl, jq, awk, qemu-img, virsh, and what
# scripts/libvirt-env.sh needs (scripts/setup.sh installs it all).
# Stdout is the Markdown result (also written to $BENCH_DIR/results.md);
# progress goes to stderr.
# Exit status: 0 on success, 1 if a step fails, the hook refuses the cached
# image, or the hook under libvirt does not refuse the uncached copy.
set -euo pipefail
# shellcheck source=bench/pki.sh
source "$(dirname "${BASH_SOURCE[0]}")/pki.sh"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/vmtrust-hook-bench.XXXXXX")}
IMAGE_SIZE=${IMAGE_SIZE:-16777216}
IMAGE_FORMAT=${IMAGE_FORMAT:-qcow2}
RUNS=${RUNS:-1000}
FULL_RUNS=${FULL_RUNS:-200}
WARMUP=${WARMUP:-20}
START_RUNS=${START_RUNS:-20}
KEEP=${KEEP:-0}
LIBVIRT_ENV=$ROOT/scripts/libvirt-env.sh

log() { printf 'admission-hook: %s\n' "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

[[ $(id -u) == 0 ]] || die "needs root (private libvirtd instances in their own namespaces)"
for tool in go openssl jq awk qemu-img virsh sha512sum; do
	command -v "$tool" >/dev/null || die "$tool is not installed: run scripts/setup.sh as root"
done
[[ $IMAGE_SIZE =~ ^[0-9]+$ ]] && ((IMAGE_SIZE > 0)) || die "IMAGE_SIZE must be a positive number of bytes"
[[ $IMAGE_FORMAT == qcow2 || $IMAGE_FORMAT == raw ]] || die "IMAGE_FORMAT must be qcow2 or raw"
((RUNS >= 100)) || die "RUNS must be at least 100 (a p99 needs them)"
((START_RUNS >= 2)) || die "START_RUNS must be at least 2"

mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
case "$BENCH_DIR" in *[[:space:]\'\"\&\<\>]*) die "BENCH_DIR must not contain white space, quotes or XML specials: $BENCH_DIR" ;; esac
log "working in $BENCH_DIR"

BIN=$BENCH_DIR/bin
VMTRUST=$BIN/vmtrust
HOOKTIME=$BIN/hooktime
PKI=$BENCH_DIR/pki
CADIR=$BENCH_DIR/certificates
WWW=$BENCH_DIR/www
STATE=$BENCH_DIR/state
CONF=$BENCH_DIR/vmtrust.toml
CONSOLES=$BENCH_DIR/console
DOM=bench-hook
mkdir -p "$BIN" "$PKI" "$CADIR" "$WWW" "$CONSOLES"

# The libvirtd instances this script started (their network namespace
# names); exactly these are stopped on exit.
INSTANCES=()
SERVE_PID=""
cleanup() {
	local rc=$? ns
	if [[ -n $SERVE_PID ]]; then
		kill "$SERVE_PID" 2>/dev/null || true
		wait "$SERVE_PID" 2>/dev/null || true
	fi
	for ns in "${INSTANCES[@]}"; do
		bash "$LIBVIRT_ENV" stop "$ns" >&2 || log "stopping libvirtd $ns failed"
	done
	if [[ $KEEP != 1 ]]; then
		rm -rf "$WWW" "$STATE" "$BENCH_DIR/unknown.img"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 1. Build ---------------------------------------------------------------
# shellcheck source=bench/build.sh
source "$(dirname "${BASH_SOURCE[0]}")/build.sh"
log "building vmtrust, vmtrust-hook and hooktime"
build "$VMTRUST" ./cmd/vmtrust
build "$BIN/vmtrust-hook" ./cmd/vmtrust-hook
build "$HOOKTIME" ./bench/hooktime

# --- 2. PKI, site configuration, guest kit ----------------------------------
CA_SUBJ="/DC=org/DC=vmtrust-bench/CN=vmtrust Bench CA"
EE_SUBJ="/DC=org/DC=vmtrust-bench/O=Bench Site/CN=Bench Endorser"
log "making the test CA, endorser certificate and CRL"
make_endorser_pki >"$PKI/openssl.log" 2>&1 || { cat "$PKI/openssl.log" >&2; die "making the PKI with openssl"; }
make_trust_dir
cat >"$CONF" <<EOF
trust_dir = "$CADIR"
crl = "require"
EOF
vm() { "$VMTRUST" --config "$CONF" --state "$STATE" "$@"; }

log "the libvirt guest kit (scripts/libvirt-env.sh build)"
KIT=$(bash "$LIBVIRT_ENV" build | tail -n 1)
[[ -f $KIT/vmlinuz && -f $KIT/initramfs.cpio.gz ]] || die "libvirt-env.sh build gave no kit: $KIT"

# --- 3. The image, its signed list, the cache -------------------------------
# AES-128-CTR keystream under a fixed key (bench/cache-image.sh): the same
# incompressible bytes on every run, so the qcow2 file is about IMAGE_SIZE.
log "writing a $IMAGE_SIZE-byte $IMAGE_FORMAT image"
openssl enc -aes-128-ctr -nosalt -K 766d74727573742062656e6368000000 -iv 0 </dev/zero 2>/dev/null |
	head -c "$IMAGE_SIZE" >"$WWW/image.raw" || true
[[ $(stat -c %s "$WWW/image.raw") == "$IMAGE_SIZE" ]] || die "could not write the $IMAGE_SIZE-byte image"
if [[ $IMAGE_FORMAT == qcow2 ]]; then
	qemu-img convert -f raw -O qcow2 "$WWW/image.raw" "$WWW/image.img" || die "qemu-img convert"
	rm -f "$WWW/image.raw"
else
	mv "$WWW/image.raw" "$WWW/image.img"
fi
FILE_SIZE=$(stat -c %s "$WWW/image.img")

IMAGE_ID=6e1d0c2b-9a8f-4e7d-8c6b-5a4f3e2d1c0b
jq -n --arg uri "file://$WWW/image.img" --arg list "file://$WWW/image.list" --arg id "$IMAGE_ID" --arg fmt "$IMAGE_FORMAT" '
	{identifier: "7c3b2a19-4d5e-4f60-8a7b-9c0d1e2f3a4b", title: "Bench hook images",
	 description: "One image for the admission hook benchmark",
	 source: "https://images.bench-site.example/", uri: $list,
	 endorser: {email: "cloud-admins@bench-site.example", creator: "Bench site cloud administrators"},
	 images: [{file: "www/image.img", identifier: $id, title: "Bench hook image",
		description: "Pseudo-random bytes (AES-128-CTR keystream)", uri: $uri, version: "1",
		hypervisor: "QEMU,KVM", format: $fmt, arch: "x86_64", os: "Linux",
		osname: "Debian", osversion: "12", comments: ""}]}' >"$BENCH_DIR/spec.json"
log "creating and signing the list"
(cd "$BENCH_DIR" && "$VMTRUST" imagelist create --spec spec.json --cert "$PKI/endorser.pem" --version 1 -o list.json) \
	2>"$BENCH_DIR/create.log" || { cat "$BENCH_DIR/create.log" >&2; die "vmtrust imagelist create"; }
"$VMTRUST" imagelist sign --cert "$PKI/endorser.pem" --key "$PKI/endorser.key" \
	-o "$WWW/image.list" "$BENCH_DIR/list.json" 2>"$BENCH_DIR/sign.log" || { cat "$BENCH_DIR/sign.log" >&2; die "vmtrust imagelist sign"; }

log "site: endorser add, subscribe file://$WWW/image.list, update"
rm -rf "$STATE"
{
	vm endorser add bench --dn "$ENDORSER_DN" --ca "$ENDORSER_CA" &&
		vm subscribe "file://$WWW/image.list" --endorser bench
} >"$BENCH_DIR/site.log" 2>&1 || { cat "$BENCH_DIR/site.log" >&2; die "vmtrust endorser add / subscribe"; }
vm update --ca-dir "$CADIR" --json >"$BENCH_DIR/update.json" 2>"$BENCH_DIR/update.log" ||
	{ cat "$BENCH_DIR/update.json" "$BENCH_DIR/update.log" >&2; die "vmtrust update"; }
vm images --json >"$BENCH_DIR/images.json" 2>&1 || { cat "$BENCH_DIR/images.json" >&2; die "vmtrust images"; }
CACHED=$(jq -r --arg id "$IMAGE_ID" '.images[] | select(.id == $id and .state == "cached" and .admissible) | .path' "$BENCH_DIR/images.json")
[[ -n $CACHED && -f $CACHED ]] || { cat "$BENCH_DIR/images.json" >&2; die "the image is not cached and admissible"; }
cmp -s "$CACHED" "$WWW/image.img" || die "the cached file differs from the image"
log "cached $CACHED ($FILE_SIZE bytes)"

# --- 4. The domain, and the hook alone --------------------------------------
# internal/vmtest's DomainXML: TCG, the kit's kernel and initramfs, the disk
# as vda with <transient/> (writes go to a throw-away overlay; vmtrust denies
# a domain that would write to an admitted image), serial console to a file;
# the guest prints its marker and powers off.
domain_xml() {
	local name=$1 disk=$2
	cat <<EOF
<domain type='qemu'>
  <name>$name</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$KIT/vmlinuz</kernel>
    <initrd>$KIT/initramfs.cpio.gz</initrd>
    <cmdline>console=ttyS0 panic=-1 quiet vmtrust.name=$name</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='$IMAGE_FORMAT'/>
      <source file='$disk'/>
      <target dev='vda' bus='virtio'/>
      <transient/>
    </disk>
    <serial type='file'>
      <source path='$CONSOLES/$name.console.log'/>
      <target port='0'/>
    </serial>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
}
domain_xml "$DOM" "$CACHED" >"$BENCH_DIR/$DOM.xml"
cp "$CACHED" "$BENCH_DIR/unknown.img"
domain_xml bench-unknown "$BENCH_DIR/unknown.img" >"$BENCH_DIR/bench-unknown.xml"

vm admit --json "$BENCH_DIR/$DOM.xml" >"$BENCH_DIR/admit.json" 2>&1 ||
	{ cat "$BENCH_DIR/admit.json" >&2; die "vmtrust admit refuses the domain with the cached image"; }
jq -e '.allow == true' "$BENCH_DIR/admit.json" >/dev/null || die "vmtrust admit --json does not say allow"
ADMIT_CLASS=$(jq -r '.class' "$BENCH_DIR/admit.json")

load_now() {
	local psi=""
	[[ -r /proc/pressure/cpu ]] && psi=", CPU pressure $(awk '/^some/ { sub("avg60=", "", $3); print $3 "%" }' /proc/pressure/cpu)"
	echo "load $(cut -d' ' -f1 /proc/loadavg)$psi"
}
# check_decisions FROM COUNT: the COUNT lines of admission.jsonl after line
# FROM are allows of $DOM (every timed run really decided).
check_decisions() {
	tail -n +$(($1 + 1)) "$STATE/admission.jsonl" | jq -c 'select(.message_type == "admission")' >"$BENCH_DIR/decisions.jsonl"
	[[ $(wc -l <"$BENCH_DIR/decisions.jsonl") == "$2" ]] || die "admission.jsonl did not get one decision per hook run"
	[[ $(jq -c --arg d "$DOM" 'select(.allow == true and .domain == $d)' "$BENCH_DIR/decisions.jsonl" | wc -l) == "$2" ]] ||
		die "not every recorded hook decision is an allow of $DOM"
}
# internal_time N: vmtrust's own decision time (elapsed_us) over the last N decisions.
internal_time() {
	tail -n "$1" "$BENCH_DIR/decisions.jsonl" | jq -s '[.[].elapsed_us] | sort | {
		p50: (.[((length * 0.5) | ceil) - 1] / 1000), p99: (.[((length * 0.99) | ceil) - 1] / 1000)}' |
		jq -r '"p50 \(.p50) ms, p99 \(.p99) ms"'
}

log "vmtrust hook install --service, vmtrust hook serve"
vm hook install --service --path "$BENCH_DIR/hooks-service/qemu" >&2 || die "vmtrust hook install --service"
vm hook install --path "$BENCH_DIR/hooks-full/qemu" >&2 || die "vmtrust hook install"
# The binary itself in the background (not the vm function, whose subshell
# would be the PID the trap kills, leaving the service running).
"$VMTRUST" --config "$CONF" --state "$STATE" hook serve 2>"$BENCH_DIR/serve.log" &
SERVE_PID=$!
for _ in $(seq 100); do [[ -S $STATE/hook.sock ]] && break; sleep 0.1; done
[[ -S $STATE/hook.sock ]] || { cat "$BENCH_DIR/serve.log" >&2; die "vmtrust hook serve did not open $STATE/hook.sock"; }

HOOK_CMD=("$BENCH_DIR/hooks-service/qemu" "$DOM" prepare begin -)
HOOK_LINE="$HOOKTIME -n $RUNS -warmup $WARMUP -stdin $BENCH_DIR/$DOM.xml -- ${HOOK_CMD[*]}"
JSONL_BEFORE=$(wc -l <"$STATE/admission.jsonl")
LOAD_HOOK_BEFORE=$(load_now)
log "timing the hook through the service: $WARMUP warm-up + $RUNS runs"
"$HOOKTIME" -n "$RUNS" -warmup "$WARMUP" -stdin "$BENCH_DIR/$DOM.xml" -json "$BENCH_DIR/hook.json" -- "${HOOK_CMD[@]}" >&2 ||
	die "a hook run did not allow the domain"
LOAD_HOOK_AFTER=$(load_now)
check_decisions "$JSONL_BEFORE" $((WARMUP + RUNS))
# How the cached file's digest was established in the timed runs
# (disks[].verified: "identity" = unchanged file identity, "sha512" = re-hashed).
VERIFIED=$(tail -n "$RUNS" "$BENCH_DIR/decisions.jsonl" | jq -r '.disks[0].verified // "unrecorded"' | sort | uniq -c |
	awk '{ printf "%s%s %d", (NR > 1 ? ", " : ""), $2, $1 }')
INTERNAL=$(internal_time "$RUNS")

FULL_CMD=("$VMTRUST" --state "$STATE" --config "$CONF" hook run "$DOM" prepare begin -)
FULL_LINE="$HOOKTIME -n $FULL_RUNS -warmup 5 -stdin $BENCH_DIR/$DOM.xml -- ${FULL_CMD[*]}"
JSONL_BEFORE=$(wc -l <"$STATE/admission.jsonl")
log "timing the whole vmtrust per decision (hook run): 5 warm-up + $FULL_RUNS runs"
"$HOOKTIME" -n "$FULL_RUNS" -warmup 5 -stdin "$BENCH_DIR/$DOM.xml" -json "$BENCH_DIR/hook-full.json" -- "${FULL_CMD[@]}" >&2 ||
	die "a hook run did not allow the domain"
check_decisions "$JSONL_BEFORE" $((5 + FULL_RUNS))
INTERNAL_FULL=$(internal_time "$FULL_RUNS")

# --- 5. virsh start, without and with the hook -------------------------------
# start_instance NAME [HOOK]: a private libvirtd; sets URI.
start_instance() {
	local out ns
	out=$(bash "$LIBVIRT_ENV" start "$@") || die "libvirt-env.sh start $*"
	ns=$(sed -n 's/^VMTRUST_LIBVIRT_NETNS=//p' <<<"$out")
	URI=$(sed -n 's/^VMTRUST_LIBVIRT_URI=//p' <<<"$out")
	[[ $ns =~ ^vmtrust-[a-z0-9-]+-[0-9a-f]{8}$ && -n $URI ]] || die "libvirt-env.sh start printed: $out"
	INSTANCES+=("$ns")
	log "libvirtd up in netns $ns"
}

# boot_check: one untimed start of $DOM under $URI; the console must show
# the marker; the domain is then destroyed if still running.
boot_check() {
	local log_file=$CONSOLES/$DOM.console.log i
	rm -f "$log_file"
	virsh -q -c "$URI" start "$DOM" >"$BENCH_DIR/start.out" 2>&1 || { cat "$BENCH_DIR/start.out" >&2; die "virsh start $DOM"; }
	for i in $(seq 600); do
		grep -qF "VMTRUST-GUEST-MARKER $DOM up" "$log_file" 2>/dev/null && break
		((i < 600)) || die "no guest marker on $log_file within 60 s"
		sleep 0.1
	done
	stop_domain
}
# The destroy after every timed start: the guest may already have powered
# off (on_poweroff destroy), so a failing destroy is fine when it is shut off.
STOP_SH=$BENCH_DIR/stop-domain.sh
write_stop_sh() {
	cat >"$STOP_SH" <<EOF
#!/bin/sh
virsh -q -c '$URI' destroy $DOM >/dev/null 2>&1 ||
	virsh -q -c '$URI' domstate $DOM | grep -qx 'shut off'
EOF
	chmod +x "$STOP_SH"
}
stop_domain() { "$STOP_SH" || die "could not stop $DOM"; }

# time_starts LABEL: START_RUNS timed starts (one warm-up), hooktime JSON to $BENCH_DIR/start-LABEL.json.
time_starts() {
	log "timing virsh start ($1): 1 warm-up + $START_RUNS runs"
	"$HOOKTIME" -n "$START_RUNS" -warmup 1 -after "$STOP_SH" -json "$BENCH_DIR/start-$1.json" -- \
		virsh -q -c "$URI" start "$DOM" >&2 || die "virsh start ($1)"
}

start_instance hbench-plain
write_stop_sh
virsh -q -c "$URI" define "$BENCH_DIR/$DOM.xml" >/dev/null || die "virsh define $DOM"
boot_check
LOAD_START_BEFORE=$(load_now)
time_starts nohook
LOAD_START_AFTER=$(load_now)


# hooked LABEL: a private libvirtd with hooks-LABEL/qemu; the uncached copy
# must be refused with vmtrust's reason (the hook is active), then START_RUNS
# timed starts.
hooked() {
	local before
	start_instance "hbench-$1" "$BENCH_DIR/hooks-$1/qemu"
	write_stop_sh
	virsh -q -c "$URI" define "$BENCH_DIR/$DOM.xml" >/dev/null || die "virsh define $DOM"
	virsh -q -c "$URI" define "$BENCH_DIR/bench-unknown.xml" >/dev/null || die "virsh define bench-unknown"
	if virsh -q -c "$URI" start bench-unknown 2>"$BENCH_DIR/unknown.err"; then
		die "virsh start bench-unknown succeeded: the $1 hook is not active"
	fi
	grep -qF "vmtrust: error: refused domain bench-unknown:" "$BENCH_DIR/unknown.err" ||
		{ cat "$BENCH_DIR/unknown.err" >&2; die "virsh start bench-unknown failed without vmtrust's reason"; }
	UNKNOWN_REASON=$(grep -o 'vmtrust: error: refused domain bench-unknown:.*' "$BENCH_DIR/unknown.err" | head -n 1)
	log "$1 hook active: $UNKNOWN_REASON"
	boot_check
	before=$(wc -l <"$STATE/admission.jsonl")
	time_starts "$1"
	# The hook really decided on every start (and the warm-up).
	check_decisions "$before" $((START_RUNS + 1))
}
hooked service
hooked full

# --- 6. Report --------------------------------------------------------------
f() { jq -r ".$2" "$BENCH_DIR/$1.json"; }
r2() { awk -v x="$1" 'BEGIN { printf "%.2f", x }'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", 100 * a / b }'; }
H50=$(f hook p50_ms) H99=$(f hook p99_ms)
S0=$(f start-nohook p50_ms) S1=$(f start-service p50_ms) S2=$(f start-full p50_ms)
RATIO=$(pct "$H99" "$S0")
V30=$(awk -v x="$H99" 'BEGIN { print (x <= 30) ? "met" : "**missed**" }')
V5=$(awk -v x="$RATIO" 'BEGIN { print (x < 5) ? "met" : "**missed**" }')
size_h=$(awk -v b="$FILE_SIZE" 'BEGIN { if (b >= 1073741824) printf "%.2f GiB", b / 1073741824; else printf "%.1f MiB", b / 1048576 }')
row() { # LABEL JSON TARGET
	echo "| $1 | $(f "$2" runs) | $(r2 "$(f "$2" p50_ms)") | $(r2 "$(f "$2" p90_ms)") | $(r2 "$(f "$2" p99_ms)") | $(r2 "$(f "$2" max_ms)") | $(r2 "$(f "$2" mean_ms)") | $3 |"
}
{
	echo "Admission hook on a domain whose only disk is a cached $IMAGE_FORMAT image of $size_h (class $ADMIT_CLASS, allowed):"
	echo
	echo "| what | runs | p50 (ms) | p90 (ms) | p99 (ms) | max (ms) | mean (ms) | target |"
	echo "|---|---:|---:|---:|---:|---:|---:|---|"
	row "hook through the admission service (\`hook install --service\`: sh + vmtrust-hook + \`hook serve\`), whole process" hook "p99 ≤ 30 ms: $V30"
	row "\`vmtrust hook run\` (whole vmtrust per decision: the fallback)" hook-full ""
	row "\`virsh start\`, libvirtd without a hook" start-nohook ""
	row "\`virsh start\`, libvirtd with the service hook" start-service ""
	row "\`virsh start\`, libvirtd with the \`hook run\` hook" start-full ""
	echo
	echo "Hook p99 through the service ÷ \`virsh start\` p50 without a hook: **$RATIO%** (target < 5%: $V5)."
	echo "\`virsh start\` p50 with − without the hook: service $(r2 "$(awk -v a="$S1" -v b="$S0" 'BEGIN { print a - b }')") ms, \`hook run\` $(r2 "$(awk -v a="$S2" -v b="$S0" 'BEGIN { print a - b }')") ms."
	echo "vmtrust's own decision time (elapsed_us in admission.jsonl): service $INTERNAL; \`hook run\` $INTERNAL_FULL."
	echo "How the image's digest was established in the timed service runs (disks[0].verified): $VERIFIED."
	echo
	echo "Both hooks refused a byte-identical copy outside the cache under libvirt: \`$UNKNOWN_REASON\`"
	echo
	echo "Commands (\`$BENCH_DIR\` is the work directory; URI is each private libvirtd's):"
	echo
	echo '```'
	echo "$HOOK_LINE"
	echo "$FULL_LINE"
	echo "$HOOKTIME -n $START_RUNS -warmup 1 -after $STOP_SH -- virsh -q -c URI start $DOM"
	echo '```'
	echo
	echo "Reproduce: \`$(for v in BENCH_DIR IMAGE_SIZE IMAGE_FORMAT RUNS FULL_RUNS WARMUP START_RUNS; do printf '%s=%s ' "$v" "${!v}"; done)bench/admission-hook.sh\`"
	echo
	echo "Load: service hook runs $LOAD_HOOK_BEFORE before, $LOAD_HOOK_AFTER after; virsh starts $LOAD_START_BEFORE before, $(load_now) after."
	echo
	echo "Machine: $(date -u +%Y-%m-%d), $(nproc) cores, $(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo), Linux $(uname -r), $(df -PT "$BENCH_DIR" | awk 'NR == 2 { print $2 }'); $(go version | sed 's/^go version //'); vmtrust $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo '+changes'); $(virsh --version | sed 's/^/libvirt /'); $(qemu-system-x86_64 --version | head -1); guest kit $(basename "$KIT") ($(cat "$KIT/kernel-version"))."
} | tee "$BENCH_DIR/results.md"
log "results in $BENCH_DIR/results.md"
