#!/usr/bin/env bash
# cache-image.sh: time `vmtrust update` caching a 2 GiB image served over
# HTTPS on loopback, against curl + sha512sum in the same run, and vmtrust's
# sha512 re-check (`images --verify`) against sha512sum on the cached file.
#
# Self-contained: it builds vmtrust and bench/httpsd (a stdlib HTTPS static
# file server), makes with openssl a test IGTF CA with an endorser
# certificate and a CRL (the recipe of bench/verify-imagelist.sh) and a
# separate TLS CA with a server certificate for 127.0.0.1, writes a
# deterministic pseudo-random image (AES-128-CTR keystream), creates and
# signs an image list for it with vmtrust, starts httpsd on a free loopback
# port, checks that vmtrust caches the image with the endorsed sha512, and
# times with hyperfine in one invocation:
#   vmtrust        vmtrust update (list fetch + verify + download + sha512 + commit),
#                  on a fresh state directory each run
#   curl-o+sha512sum  curl -o FILE URL && sha512sum FILE   (two passes: the anchor)
#   curl|sha512sum    curl URL | sha512sum                 (one pass, two processes)
#   curl-o-devnull    curl -o /dev/null URL                (the transfer alone)
# then, in a second invocation, `vmtrust images --verify` against
# `sha512sum` on the cached file, page cache warm: unpinned, and pinned to
# each CPU in turn with taskset (vCPUs of a VM can differ in speed). The
# report also gives the phases of one untimed `vmtrust update --debug` run.
#
# Usage: bench/cache-image.sh
# Environment:
#   BENCH_DIR   work directory (default: mktemp -d); must be on a disk with
#               at least 10 GB free (image + vmtrust's copy + curl's copy)
#   IMAGE_SIZE  image size in bytes (default: 2147483648, 2 GiB)
#   WARMUP      hyperfine warm-up runs (default: 1)
#   RUNS        hyperfine runs per command (default: 5)
#   KEEP        1: keep the large files (image, cached copies) at the end
#   MIN_FREE_GB free space required under BENCH_DIR, in GB (default: 10)
#   PIN_CPUS    CPUs to pin the sha512 runs to, one at a time (default: every
#               CPU when there are at most 4 and taskset exists; "" for none)
#
# Needs: go, openssl, curl, hyperfine, jq, awk, sha512sum, df.
# Stdout is the Markdown result (also written to $BENCH_DIR/results.md);
# progress and hyperfine's own output go to stderr. The small files (results,
# hyperfine JSON, logs, PKI) stay in $BENCH_DIR; the large ones are removed
# unless KEEP=1.
# Exit status: 0 on success, 1 if a step fails or a digest does not match.
set -euo pipefail
# shellcheck source=bench/pki.sh
source "$(dirname "${BASH_SOURCE[0]}")/pki.sh"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/vmtrust-cache-bench.XXXXXX")}
IMAGE_SIZE=${IMAGE_SIZE:-2147483648}
WARMUP=${WARMUP:-1}
RUNS=${RUNS:-5}
KEEP=${KEEP:-0}
MIN_FREE_GB=${MIN_FREE_GB:-10}

log() { printf 'cache-image: %s\n' "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

for tool in go openssl curl hyperfine jq awk sha512sum df; do
	command -v "$tool" >/dev/null ||
		die "$tool is not installed (apt-get install -y --no-install-recommends curl hyperfine jq)"
done
[[ $IMAGE_SIZE =~ ^[0-9]+$ ]] && ((IMAGE_SIZE > 0)) || die "IMAGE_SIZE must be a positive number of bytes"
((RUNS >= 2)) || die "RUNS must be at least 2"

mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
case "$BENCH_DIR" in *[[:space:]\'\"]*) die "BENCH_DIR must not contain white space or quotes: $BENCH_DIR" ;; esac

# --- 0. Disk space ----------------------------------------------------------
# The image, vmtrust's cached copy and curl's copy: 3 x IMAGE_SIZE, plus room.
[[ $MIN_FREE_GB =~ ^[0-9]+$ ]] || die "MIN_FREE_GB must be a whole number of GB"
avail_kb=$(df -Pk "$BENCH_DIR" | awk 'NR == 2 { print $4 }')
mount_point=$(df -P "$BENCH_DIR" | awk 'NR == 2 { print $6 }')
need_kb=$((MIN_FREE_GB * 1000 * 1000 * 1000 / 1024))
if ((avail_kb < need_kb)); then
	rmdir "$BENCH_DIR" 2>/dev/null || true
	die "only $((avail_kb / 1024 / 1024)) GiB free on $mount_point for $BENCH_DIR; this benchmark needs at least $MIN_FREE_GB GB (the image, vmtrust's cached copy and curl's copy). Set BENCH_DIR to a directory on a larger disk."
fi
log "working in $BENCH_DIR ($((avail_kb / 1024 / 1024)) GiB free)"

BIN=$BENCH_DIR/bin
VMTRUST=$BIN/vmtrust
HTTPSD=$BIN/httpsd
PKI=$BENCH_DIR/pki
CADIR=$BENCH_DIR/certificates
WWW=$BENCH_DIR/www
IMAGE=$WWW/image.img
CURL_FILE=$BENCH_DIR/curl.img
STATE_RUN=$BENCH_DIR/state-run       # rebuilt before every timed vmtrust run
STATE_CHECK=$BENCH_DIR/state-check   # the correctness run; its cached file is re-hashed
CONF=$BENCH_DIR/vmtrust.toml
mkdir -p "$BIN" "$PKI" "$CADIR" "$WWW"

SERVER_PID=""
cleanup() {
	local rc=$?
	if [[ -n $SERVER_PID ]]; then
		kill "$SERVER_PID" 2>/dev/null || true
		wait "$SERVER_PID" 2>/dev/null || true
	fi
	if [[ $KEEP != 1 ]]; then
		# Cached images are read-only files in read-write directories: rm -rf copes.
		rm -rf "$IMAGE" "$CURL_FILE" "$STATE_RUN" "$STATE_CHECK"
		log "removed the large files (KEEP=1 keeps them); results and logs stay in $BENCH_DIR"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 1. Build ---------------------------------------------------------------
# shellcheck source=bench/build.sh
source "$(dirname "${BASH_SOURCE[0]}")/build.sh"
log "building vmtrust and httpsd"
build "$VMTRUST" ./cmd/vmtrust
build "$HTTPSD" ./bench/httpsd

# --- 2. PKI: IGTF trust directory (endorser) and TLS CA (server) ------------
# The endorser side is bench/verify-imagelist.sh's recipe: RSA-2048 CA, an
# endorser certificate, a second one revoked, a CRL, a signing policy.
CA_SUBJ="/DC=org/DC=vmtrust-bench/CN=vmtrust Bench CA"
EE_SUBJ="/DC=org/DC=vmtrust-bench/O=Bench Site/CN=Bench Endorser"
log "making the test CA, endorser certificate, CRL, TLS CA and server certificate"
{
	make_endorser_pki

	# TLS: its own CA (never in the IGTF directory), a P-256 server
	# certificate for IP 127.0.0.1.
	openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 -days 3650 \
		-keyout "$PKI/tls-ca.key" -out "$PKI/tls-ca.pem" -subj "/CN=vmtrust Bench TLS CA" \
		-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
	cat >"$PKI/server.ext" <<-'EOF'
		basicConstraints = critical,CA:FALSE
		keyUsage = critical,digitalSignature
		extendedKeyUsage = serverAuth
		subjectAltName = IP:127.0.0.1
	EOF
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$PKI/server.key" \
		-out "$PKI/server.csr" -subj "/CN=127.0.0.1"
	openssl x509 -req -sha256 -days 365 -in "$PKI/server.csr" -CA "$PKI/tls-ca.pem" \
		-CAkey "$PKI/tls-ca.key" -set_serial 1 -extfile "$PKI/server.ext" -out "$PKI/server.pem"
} >"$PKI/openssl.log" 2>&1 || { cat "$PKI/openssl.log" >&2; die "making the PKI with openssl"; }
TLS_CA=$PKI/tls-ca.pem

make_trust_dir

# An explicit configuration, so that no /etc/vmtrust/vmtrust.toml on the
# machine changes what is measured. Everything else is vmtrust's default.
cat >"$CONF" <<EOF
trust_dir = "$CADIR"
crl = "require"
EOF

# --- 3. The image -----------------------------------------------------------
# AES-128-CTR keystream under a fixed key: incompressible, the same bytes on
# every run, and much faster to make than reading /dev/urandom.
log "writing a $IMAGE_SIZE-byte image"
openssl enc -aes-128-ctr -nosalt -K 766d74727573742062656e6368000000 -iv 0 </dev/zero 2>/dev/null |
	head -c "$IMAGE_SIZE" >"$IMAGE" || true
[[ $(stat -c %s "$IMAGE") == "$IMAGE_SIZE" ]] || die "could not write the $IMAGE_SIZE-byte image"
IMAGE_SHA512=$(sha512sum "$IMAGE" | awk '{ print $1 }')
log "image sha512 ${IMAGE_SHA512:0:32}…"

# --- 4. The server ----------------------------------------------------------
rm -f "$BENCH_DIR/httpsd.addr"
"$HTTPSD" -dir "$WWW" -addr 127.0.0.1:0 -cert "$PKI/server.pem" -key "$PKI/server.key" \
	-ready "$BENCH_DIR/httpsd.addr" -v 2>"$BENCH_DIR/httpsd.log" &
SERVER_PID=$!
for _ in $(seq 100); do
	[[ -s $BENCH_DIR/httpsd.addr ]] && break
	kill -0 "$SERVER_PID" 2>/dev/null || { cat "$BENCH_DIR/httpsd.log" >&2; die "httpsd did not start"; }
	sleep 0.1
done
[[ -s $BENCH_DIR/httpsd.addr ]] || die "httpsd did not start within 10 s"
ADDR=$(cat "$BENCH_DIR/httpsd.addr")
BASE=https://$ADDR
IMAGE_URL=$BASE/image.img
LIST_URL=$BASE/image.list
log "httpsd (pid $SERVER_PID) serving $WWW at $BASE/"

# --- 5. The signed list -----------------------------------------------------
IMAGE_ID=0b6a5bde-7c1f-4d2e-9a8b-2f4c6d8e0a1b
jq -n --arg uri "$IMAGE_URL" --arg list "$LIST_URL" --arg base "$BASE/" --arg id "$IMAGE_ID" '
	{identifier: "3f2b8c1e-5a4d-4e6f-8b9a-1c2d3e4f5a6b", title: "Bench cache images",
	 description: "One pseudo-random image for the cache benchmark",
	 source: $base, uri: $list,
	 endorser: {email: "cloud-admins@bench-site.example", creator: "Bench site cloud administrators"},
	 images: [{file: "www/image.img", identifier: $id, title: "Bench image",
		description: "Pseudo-random bytes (AES-128-CTR keystream)", uri: $uri, version: "1",
		hypervisor: "QEMU,KVM", format: "raw", arch: "x86_64", os: "Linux",
		osname: "Debian", osversion: "12", comments: ""}]}' >"$BENCH_DIR/spec.json"
log "creating and signing the list (vmtrust imagelist create reads the image once)"
"$VMTRUST" imagelist create --spec "$BENCH_DIR/spec.json" --cert "$PKI/endorser.pem" --version 1 \
	-o "$BENCH_DIR/list.json" 2>"$BENCH_DIR/create.log" || { cat "$BENCH_DIR/create.log" >&2; die "vmtrust imagelist create"; }
"$VMTRUST" imagelist sign --cert "$PKI/endorser.pem" --key "$PKI/endorser.key" \
	-o "$WWW/image.list" "$BENCH_DIR/list.json" 2>"$BENCH_DIR/sign.log" || { cat "$BENCH_DIR/sign.log" >&2; die "vmtrust imagelist sign"; }
LIST_SHA512=$(jq -r '.["hv:imagelist"]["hv:images"][0]["hv:image"]["sl:checksum:sha512"]' "$BENCH_DIR/list.json")
LIST_SIZE=$(jq -r '.["hv:imagelist"]["hv:images"][0]["hv:image"]["hv:size"]' "$BENCH_DIR/list.json")
[[ $LIST_SHA512 == "$IMAGE_SHA512" ]] || die "the list's sha512 differs from sha512sum of the image"
[[ $LIST_SIZE == "$IMAGE_SIZE" ]] || die "the list's hv:size $LIST_SIZE differs from the image's $IMAGE_SIZE bytes"

# --- 6. Per-run state and correctness ---------------------------------------
# A fresh state directory before every vmtrust run: endorser and
# subscription only, nothing cached, no accepted list. Then sync, so no run
# pays for the previous run's write-back.
cat >"$BENCH_DIR/prepare-vmtrust.sh" <<EOF
#!/bin/sh
# Fresh vmtrust state in \$1 (default $STATE_RUN): endorser + subscription, nothing cached.
set -e
state=\${1:-$STATE_RUN}
rm -rf "\$state"
"$VMTRUST" --config "$CONF" --state "\$state" endorser add bench --dn '$ENDORSER_DN' --ca '$ENDORSER_CA' >/dev/null
"$VMTRUST" --config "$CONF" --state "\$state" subscribe "$LIST_URL" --endorser bench --ca-bundle "$TLS_CA" >/dev/null
sync
EOF
chmod +x "$BENCH_DIR/prepare-vmtrust.sh"

log "correctness: vmtrust update into a fresh state directory"
"$BENCH_DIR/prepare-vmtrust.sh" "$STATE_CHECK" 2>"$BENCH_DIR/prepare.log" ||
	{ cat "$BENCH_DIR/prepare.log" >&2; die "vmtrust endorser add / subscribe"; }
CHECK_T0=$(date +%s.%N)
"$VMTRUST" --config "$CONF" --state "$STATE_CHECK" --debug update --ca-dir "$CADIR" --json \
	>"$BENCH_DIR/check-update.json" 2>"$BENCH_DIR/check-update.log" ||
	{ cat "$BENCH_DIR/check-update.log" >&2; die "vmtrust update"; }
CHECK_T1=$(date +%s.%N)
jq -e '.subscriptions[0].outcome == "accepted" and .subscriptions[0].cached == 1' "$BENCH_DIR/check-update.json" >/dev/null ||
	{ cat "$BENCH_DIR/check-update.json" "$BENCH_DIR/check-update.log" >&2; die "vmtrust update did not accept the list and cache the image"; }
CACHED=$STATE_CHECK/cache/$IMAGE_ID
[[ -f $CACHED ]] || die "no $CACHED after vmtrust update"
CACHED_SHA512=$(sha512sum "$CACHED" | awk '{ print $1 }')
[[ $CACHED_SHA512 == "$LIST_SHA512" ]] || die "sha512 of vmtrust's cached file differs from the list's"
"$VMTRUST" --config "$CONF" --state "$STATE_CHECK" images --verify --json >"$BENCH_DIR/check-images.json" 2>&1 ||
	{ cat "$BENCH_DIR/check-images.json" >&2; die "vmtrust images --verify"; }
jq -e --arg id "$IMAGE_ID" --arg sha "$LIST_SHA512" '.images | length == 1 and (.[0].ID // .[0].id) == $id and .[0].verified == "ok" and (.[0].State // .[0].state) == "cached" and (.[0].SHA512 // .[0].sha512) == $sha' \
	"$BENCH_DIR/check-images.json" >/dev/null ||
	{ cat "$BENCH_DIR/check-images.json" >&2; die "vmtrust images --verify does not report the image cached and ok"; }
log "vmtrust cached $CACHED: sha512 equals the list's; images --verify ok"
curl -sS --fail --cacert "$TLS_CA" -o "$CURL_FILE" "$IMAGE_URL" || die "curl -o"
[[ $(sha512sum "$CURL_FILE" | awk '{ print $1 }') == "$LIST_SHA512" ]] || die "sha512 of curl's copy differs from the list's"
[[ $(curl -sS --fail --cacert "$TLS_CA" "$IMAGE_URL" | sha512sum | awk '{ print $1 }') == "$LIST_SHA512" ]] || die "curl | sha512sum differs from the list's"
rm -f "$CURL_FILE"
TLS_SEEN=$(awk '/ tls=/ { ua = $0; sub(/.* ua="/, "", ua); sub(/".*/, "", ua); sub(/\/.*/, "", ua); t = $0; sub(/.* tls="/, "", t); sub(/"$/, "", t); print ua ": " t }' "$BENCH_DIR/httpsd.log" | sort -u | paste -sd ';' | sed 's/;/; /g')
log "TLS as negotiated: $TLS_SEEN"

# Where the time of the correctness run went, from vmtrust's --debug log
# (time= fields, millisecond precision): start, list fetched, image
# downloaded (sha512 computed and file written as the bytes arrive), image
# cached (commit: chmod, fsync, rename), exit.
ts() { { grep -m1 -E "$1" "$BENCH_DIR/check-update.log" || true; } | sed -n 's/^time=\([^ ]*\) .*/\1/p' | { read -r t && date -d "$t" +%s.%N || true; }; }
T_LIST=$(ts 'msg=fetched ') T_DOWN=$(ts 'msg=downloaded ') T_CACHED=$(ts 'msg="image cached"')
if [[ -n $T_LIST && -n $T_DOWN && -n $T_CACHED ]]; then
	PHASES=$(awk -v a="$CHECK_T0" -v b="$T_LIST" -v c="$T_DOWN" -v d="$T_CACHED" -v e="$CHECK_T1" 'BEGIN {
		printf "start to list fetched %.2f s; list verified and recorded, then the image downloaded, hashed and written in one pass %.2f s; commit (chmod, fsync, rename) %.2f s; catalog update and exit %.2f s; total %.2f s", b - a, c - b, d - c, e - d, e - a }')
else
	PHASES="not available (the --debug log lacks the fetched/downloaded/image cached lines)"
fi
log "phases of the correctness run: $PHASES"

# --- 7. Timing: caching the image -------------------------------------------
load_now() {
	local psi=""
	[[ -r /proc/pressure/cpu ]] && psi=", CPU pressure $(awk '/^some/ { sub("avg60=", "", $3); print $3 "%" }' /proc/pressure/cpu)"
	echo "load $(cut -d' ' -f1-3 /proc/loadavg)$psi"
}
CMD_VM="$VMTRUST --config $CONF --state $STATE_RUN update --ca-dir $CADIR"
CMD_TWO="curl -s --cacert $TLS_CA -o $CURL_FILE $IMAGE_URL && sha512sum $CURL_FILE"
CMD_PIPE="curl -s --cacert $TLS_CA $IMAGE_URL | sha512sum"
CMD_NULL="curl -s --cacert $TLS_CA -o /dev/null $IMAGE_URL"
PREP_VM="$BENCH_DIR/prepare-vmtrust.sh"
PREP_TWO="rm -f $CURL_FILE; sync"
PREP_NONE="sync"
# bash -o pipefail, so that a failing curl in the pipeline fails the run.
HF_COMMON=(--shell "bash --norc -o pipefail" --warmup "$WARMUP" --runs "$RUNS")
HF1_CMD="hyperfine --shell 'bash --norc -o pipefail' --warmup $WARMUP --runs $RUNS --export-json $BENCH_DIR/hyperfine-cache.json \\
  --prepare '$PREP_VM'  -n vmtrust          '$CMD_VM' \\
  --prepare '$PREP_TWO' -n curl-o+sha512sum '$CMD_TWO' \\
  --prepare '$PREP_NONE'  -n 'curl|sha512sum' '$CMD_PIPE' \\
  --prepare '$PREP_NONE'  -n curl-o-devnull   '$CMD_NULL'"
LOAD1_BEFORE=$(load_now)
log "timing: caching the image ($RUNS runs each after $WARMUP warm-up)"
hyperfine "${HF_COMMON[@]}" --export-json "$BENCH_DIR/hyperfine-cache.json" \
	--prepare "$PREP_VM" -n vmtrust "$CMD_VM" \
	--prepare "$PREP_TWO" -n curl-o+sha512sum "$CMD_TWO" \
	--prepare "$PREP_NONE" -n 'curl|sha512sum' "$CMD_PIPE" \
	--prepare "$PREP_NONE" -n curl-o-devnull "$CMD_NULL" >&2
LOAD1_AFTER=$(load_now)
# The last timed vmtrust run must have cached the right bytes too.
[[ $(sha512sum "$STATE_RUN/cache/$IMAGE_ID" | awk '{ print $1 }') == "$LIST_SHA512" ]] ||
	die "sha512 of the file cached by the last timed vmtrust run differs from the list's"
rm -rf "$STATE_RUN" "$CURL_FILE"

# --- 8. Timing: sha512 of the cached file -----------------------------------
CMD_VERIFY="$VMTRUST --config $CONF --state $STATE_CHECK images --verify"
CMD_SUM="sha512sum $CACHED"
# Unpinned as people run them; then, if taskset exists, each pinned to one
# CPU in turn (PIN_CPUS, default every CPU when there are at most 4): on a VM
# the vCPUs can differ in speed, and the scheduler decides which one a
# single-threaded hash lands on.
if [[ -z ${PIN_CPUS+x} ]]; then
	PIN_CPUS=""
	command -v taskset >/dev/null && (($(nproc) <= 4)) && PIN_CPUS=$(seq -s ' ' 0 $(($(nproc) - 1)))
fi
SHA_NAMES=('vmtrust images --verify' sha512sum)
SHA_CMDS=("$CMD_VERIFY" "$CMD_SUM")
for c in $PIN_CPUS; do
	SHA_NAMES+=("vmtrust images --verify @cpu$c" "sha512sum @cpu$c")
	SHA_CMDS+=("taskset -c $c $CMD_VERIFY" "taskset -c $c $CMD_SUM")
done
HF2_ARGS=()
HF2_CMD="hyperfine -N --warmup $WARMUP --runs $RUNS --export-json $BENCH_DIR/hyperfine-sha512.json"
for i in "${!SHA_NAMES[@]}"; do
	HF2_ARGS+=(-n "${SHA_NAMES[$i]}" "${SHA_CMDS[$i]}")
	HF2_CMD+=" \\
  -n '${SHA_NAMES[$i]}' '${SHA_CMDS[$i]}'"
done
LOAD2_BEFORE=$(load_now)
log "timing: sha512 of the cached file (page cache warm)"
hyperfine -N --warmup "$WARMUP" --runs "$RUNS" --export-json "$BENCH_DIR/hyperfine-sha512.json" "${HF2_ARGS[@]}" >&2
LOAD2_AFTER=$(load_now)

# --- 9. Report --------------------------------------------------------------
field() { jq -r --arg name "$2" --arg f "$3" '.results[] | select(.command == $name) | .[$f]' "$1"; }
runs() { jq -r --arg name "$2" '.results[] | select(.command == $name) | .times | length' "$1"; }
s3() { awk -v s="$1" 'BEGIN { printf "%.3f", s }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
mbps() { awk -v n="$IMAGE_SIZE" -v s="$1" 'BEGIN { printf "%.0f", n / s / 1e6 }'; }
J1=$BENCH_DIR/hyperfine-cache.json
J2=$BENCH_DIR/hyperfine-sha512.json
ANCHOR_MEAN=$(field "$J1" curl-o+sha512sum mean)
ANCHOR_MED=$(field "$J1" curl-o+sha512sum median)
VM_RATIO=$(ratio "$(field "$J1" vmtrust mean)" "$ANCHOR_MEAN")
VM_RATIO_MED=$(ratio "$(field "$J1" vmtrust median)" "$ANCHOR_MED")
if awk -v r="$VM_RATIO" 'BEGIN { exit !(r <= 0.6) }'; then VERDICT="met"; else VERDICT="**missed**"; fi
size_h=$(awk -v b="$IMAGE_SIZE" 'BEGIN { if (b % 1073741824 == 0) printf "%d GiB", b / 1073741824; else printf "%.2f MB", b / 1e6 }')
{
	echo "Caching a $size_h image over HTTPS on loopback ($RUNS runs, $WARMUP warm-up; times in seconds):"
	echo
	echo "| command | mean ± σ (s) | median (s) | min (s) | runs | ÷ curl -o + sha512sum (mean) | ÷ (median) | MB/s (mean) |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|"
	for name in vmtrust curl-o+sha512sum 'curl|sha512sum' curl-o-devnull; do
		mean=$(field "$J1" "$name" mean)
		r=$(ratio "$mean" "$ANCHOR_MEAN")
		[[ $name == vmtrust ]] && r="**$r**"
		echo "| \`${name//|/\\|}\` | $(s3 "$mean") ± $(s3 "$(field "$J1" "$name" stddev)") | $(s3 "$(field "$J1" "$name" median)") | $(s3 "$(field "$J1" "$name" min)") | $(runs "$J1" "$name") | $r | $(ratio "$(field "$J1" "$name" median)" "$ANCHOR_MED") | $(mbps "$mean") |"
	done
	echo
	echo "Target: vmtrust at most 0.6x of \`curl -o\` + \`sha512sum\`: $VERDICT ($VM_RATIO of the mean, $VM_RATIO_MED of the median)."
	echo
	echo "sha512 of the cached $size_h file, page cache warm:"
	echo
	[[ -n $PIN_CPUS ]] && { echo "(\`@cpuN\`: the same command under \`taskset -c N\`.)"; echo; }
	echo "| command | mean ± σ (s) | median (s) | min (s) | runs | MB/s (mean) | MB/s (min) |"
	echo "|---|---:|---:|---:|---:|---:|---:|"
	for name in "${SHA_NAMES[@]}"; do
		mean=$(field "$J2" "$name" mean)
		echo "| \`$name\` | $(s3 "$mean") ± $(s3 "$(field "$J2" "$name" stddev)") | $(s3 "$(field "$J2" "$name" median)") | $(s3 "$(field "$J2" "$name" min)") | $(runs "$J2" "$name") | $(mbps "$mean") | $(mbps "$(field "$J2" "$name" min)") |"
	done
	echo
	echo -n "vmtrust ÷ sha512sum (mean time): $(ratio "$(field "$J2" 'vmtrust images --verify' mean)" "$(field "$J2" sha512sum mean)") unpinned"
	for c in $PIN_CPUS; do
		echo -n ", $(ratio "$(field "$J2" "vmtrust images --verify @cpu$c" mean)" "$(field "$J2" "sha512sum @cpu$c" mean)") on CPU $c"
	done
	echo ". MB/s are 10^6 bytes per second of whole-process time (process start, catalog and all)."
	echo
	echo "Commands (\`$BENCH_DIR\` is the work directory):"
	echo
	echo '```'
	echo "$HF1_CMD"
	echo "$HF2_CMD"
	echo '```'
	echo
	echo "\`prepare-vmtrust.sh\` (run before every timed vmtrust run):"
	echo
	echo '```'
	cat "$BENCH_DIR/prepare-vmtrust.sh"
	echo '```'
	echo
	echo "Phases of the untimed correctness run of \`vmtrust update\` (from its \`--debug\` log): $PHASES."
	echo
	echo "TLS as negotiated with httpsd (HTTP/1.1): $TLS_SEEN."
	echo
	echo "Load while timing the download: $LOAD1_BEFORE before, $LOAD1_AFTER after; the sha512 runs: $LOAD2_BEFORE before, $LOAD2_AFTER after (1/5/15-min load average; CPU pressure some-avg60 from /proc/pressure/cpu)."
	echo
	echo "Machine: $(date -u +%Y-%m-%d), $(nproc) cores, $(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(awk '/^MemTotal/ { printf "%.0f GiB RAM", $2 / 1048576 }' /proc/meminfo), Linux $(uname -r), $(df -PT "$BENCH_DIR" | awk 'NR == 2 { print $2 }') on $(df -P "$BENCH_DIR" | awk 'NR == 2 { print $1 }'); $(go version | sed 's/^go version //'); vmtrust $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo '+changes'); $(curl --version | head -1 | awk '{ print $1, $2, $5 }'); $(openssl version | awk '{ print $1, $2 }'); sha512sum (coreutils) $(sha512sum --version | head -1 | awk '{ print $NF }'); hyperfine $(hyperfine --version | awk '{ print $2 }')."
} | tee "$BENCH_DIR/results.md"
log "results in $BENCH_DIR/results.md"
