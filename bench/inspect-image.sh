#!/usr/bin/env bash
# inspect-image.sh: time a full offline inspection (inventory + findings) of
# the debootstrap Debian 12 GPT qcow2 fixture with `vmtrust inspect`, beside
# osv-scalibr's CLI and libguestfs's virt-inspector on the same file in the
# same run; record each one's peak memory and how many bytes of the image it
# read.
#
# Self-contained: it builds the fixtures (scripts/fixtures.sh, cached outside
# the repository), vmtrust, and osv-scalibr's CLI from the Go module proxy
# (cached in $ANCHORS, outside the repository; nothing of it is committed).
# virt-inspector comes from Debian's libguestfs-tools (installed here when
# missing) and runs with LIBGUESTFS_BACKEND=direct and force_tcg (FIELD-NOTES
# §2: it would pick KVM, which QEMU cannot use here).
#
#   time        hyperfine, same run: vmtrust (RUNS), scalibr and
#               virt-inspector (SLOW_RUNS each: they take 15-20 s)
#   peak memory /usr/bin/time -f %M (max RSS of the process tree's largest
#               process, KiB), one run each
#   bytes read  strace -f -P IMAGE: the sum of what read/pread64/preadv
#               returned on file descriptors open on the image file (one run
#               each; a copy of the image made by the tool is not counted);
#               vmtrust's own count (its JSON report's bytes_read) beside it
#
# Usage: bench/inspect-image.sh
# Environment:
#   BENCH_DIR   work directory (default: mktemp -d); scalibr writes ~1.3 GB
#               of temporary files there
#   ANCHORS     where the scalibr CLI is built and kept
#               (default: /var/cache/vmtrust/anchors)
#   IMAGE       image to inspect (default: the fixture debian12-clean-gpt.qcow2)
#   RUNS        hyperfine runs for vmtrust (default: 10)
#   SLOW_RUNS   hyperfine runs for scalibr and virt-inspector (default: 3)
#   SKIP_ANCHORS 1: measure vmtrust only
#
# Needs: go, hyperfine, jq, strace, /usr/bin/time (package time), and for the
# anchors libguestfs-tools. Stdout is the Markdown result (also
# $BENCH_DIR/results.md); progress goes to stderr.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/vmtrust-inspect-bench.XXXXXX")}
ANCHORS=${ANCHORS:-/var/cache/vmtrust/anchors}
RUNS=${RUNS:-10}
SLOW_RUNS=${SLOW_RUNS:-3}
SKIP_ANCHORS=${SKIP_ANCHORS:-0}
SCALIBR_VERSION=v0.5.3

log() { printf 'inspect-image: %s\n' "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

for tool in go hyperfine jq strace awk; do
	command -v "$tool" >/dev/null || die "$tool is not installed (apt-get install -y --no-install-recommends hyperfine jq strace time)"
done
[[ -x /usr/bin/time ]] || die "/usr/bin/time is not installed (apt-get install -y time)"
mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
log "working in $BENCH_DIR"

# --- 1. Fixtures, vmtrust, anchors -------------------------------------------
if [[ -z ${IMAGE:-} ]]; then
	FIX=$("$ROOT/scripts/fixtures.sh" | tail -n 1) || die "scripts/fixtures.sh"
	IMAGE=$FIX/debian12-clean-gpt.qcow2
fi
[[ -f $IMAGE ]] || die "no image $IMAGE"
# scalibr scans a directory and picks up files ending in .qcow2: give it one
# holding only this image (a hard link when possible: no copy).
SCAN=$BENCH_DIR/scan
rm -rf "$SCAN" && mkdir -p "$SCAN"
ln "$IMAGE" "$SCAN/image.qcow2" 2>/dev/null || cp "$IMAGE" "$SCAN/image.qcow2"
IMG=$SCAN/image.qcow2
log "image $IMAGE ($(stat -c %s "$IMG") bytes)"

mkdir -p "$BENCH_DIR/bin"
VMTRUST=$BENCH_DIR/bin/vmtrust
(cd "$ROOT" && go build -o "$VMTRUST" ./cmd/vmtrust) || die "go build ./cmd/vmtrust"

SCALIBR=$ANCHORS/scalibr-$SCALIBR_VERSION/scalibr
if [[ $SKIP_ANCHORS != 1 ]]; then
	if [[ ! -x $SCALIBR ]]; then
		log "building osv-scalibr $SCALIBR_VERSION's CLI from the Go module proxy (once; cached in $ANCHORS)"
		src=$(mktemp -d "$BENCH_DIR/scalibr-src.XXXXXX")
		(
			cd "$src"
			go mod init scalibr-bench >/dev/null 2>&1
			go get "github.com/google/osv-scalibr@$SCALIBR_VERSION" >/dev/null 2>&1
			go get "github.com/google/osv-scalibr/binary/scalibr@$SCALIBR_VERSION" >/dev/null 2>&1
			mkdir -p "$(dirname "$SCALIBR")"
			go build -o "$SCALIBR.tmp" github.com/google/osv-scalibr/binary/scalibr
			mv "$SCALIBR.tmp" "$SCALIBR"
		) || die "building scalibr $SCALIBR_VERSION"
		rm -rf "$src"
	fi
	if ! command -v virt-inspector >/dev/null; then
		log "installing libguestfs-tools (once, ~1 GB)"
		DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y libguestfs-tools >/dev/null ||
			die "apt-get install libguestfs-tools"
	fi
fi

VMTRUST_CMD="$VMTRUST --state $BENCH_DIR/state inspect --no-vulns --format json -o $BENCH_DIR/vmtrust.json $IMG"
SCALIBR_CMD="env TMPDIR=$BENCH_DIR/tmp $SCALIBR --root $SCAN --plugins embeddedfs/qcow2,os/dpkg --offline --result $BENCH_DIR/scalibr.textproto"
VIRT_CMD="env LIBGUESTFS_BACKEND=direct LIBGUESTFS_BACKEND_SETTINGS=force_tcg virt-inspector --format=qcow2 -a $IMG"
mkdir -p "$BENCH_DIR/tmp"

# --- 2. Correctness: each tool finds the packages ----------------------------
log "checking each tool's answer"
$VMTRUST_CMD || die "vmtrust inspect"
n_vmtrust=$(jq '.packages | length' "$BENCH_DIR/vmtrust.json")
((n_vmtrust > 50)) || die "vmtrust found only $n_vmtrust packages"
rows=("| vmtrust inspect | $n_vmtrust packages, $(jq '.findings | length' "$BENCH_DIR/vmtrust.json") findings |")
if [[ $SKIP_ANCHORS != 1 ]]; then
	# scalibr exits 1 ("PARTIALLY_SUCCEEDED") on a GPT disk: it cannot mount
	# the BIOS-boot partition. It still scans the root; count what it found.
	$SCALIBR_CMD >"$BENCH_DIR/scalibr.log" 2>&1 || true
	n_scalibr=$(sed -n 's/.*Found \([0-9]*\) software packages.*/\1/p' "$BENCH_DIR/scalibr.log" | tail -n 1)
	((${n_scalibr:-0} > 50)) || die "scalibr found ${n_scalibr:-no} packages (see $BENCH_DIR/scalibr.log)"
	$VIRT_CMD >"$BENCH_DIR/virt-inspector.xml" 2>"$BENCH_DIR/virt-inspector.log" || die "virt-inspector (see $BENCH_DIR/virt-inspector.log)"
	n_virt=$(grep -c '<application>' "$BENCH_DIR/virt-inspector.xml" || true)
	rows+=("| osv-scalibr $SCALIBR_VERSION | $n_scalibr packages (exit status 1: its EmbeddedFS plugin fails on the BIOS-boot partition) |")
	rows+=("| virt-inspector | $n_virt applications |")
fi

# --- 3. Time ----------------------------------------------------------------
log "timing vmtrust ($RUNS runs)"
hyperfine -N --warmup 2 --runs "$RUNS" --export-json "$BENCH_DIR/hf-vmtrust.json" -n vmtrust "$VMTRUST_CMD" >&2
if [[ $SKIP_ANCHORS != 1 ]]; then
	log "timing the anchors ($SLOW_RUNS runs each)"
	hyperfine -i --warmup 0 --runs "$SLOW_RUNS" --export-json "$BENCH_DIR/hf-anchors.json" \
		--prepare "rm -rf $BENCH_DIR/tmp; mkdir -p $BENCH_DIR/tmp" \
		-n osv-scalibr "$SCALIBR_CMD" -n virt-inspector "$VIRT_CMD >/dev/null" >&2
fi

# --- 4. Peak memory and bytes read -------------------------------------------
peak_kib() { /usr/bin/time -f '%M' -o "$BENCH_DIR/time.out" "$@" >/dev/null 2>&1 || true; tail -n 1 "$BENCH_DIR/time.out"; }
# Sum of the byte counts returned by reads on descriptors open on $IMG.
bytes_read() {
	# -P: only calls on the image file; --seccomp-bpf: stop only on reads.
	strace -f -y -qq --seccomp-bpf -P "$IMG" -e trace=read,pread64,readv,preadv,preadv2 -o "$BENCH_DIR/strace.out" "$@" >/dev/null 2>&1 || true
	awk -v img="<$IMG>" 'index($0, img) { n = split($0, a, "= "); v = a[n] + 0; if (v > 0) s += v } END { printf "%d\n", s }' "$BENCH_DIR/strace.out"
}
log "peak memory and bytes read"
# shellcheck disable=SC2086
mem_vmtrust=$(peak_kib $VMTRUST_CMD)
# shellcheck disable=SC2086
read_vmtrust=$(bytes_read $VMTRUST_CMD)
own_vmtrust=$(jq '.image.bytes_read' "$BENCH_DIR/vmtrust.json")
if [[ $SKIP_ANCHORS != 1 ]]; then
	rm -rf "$BENCH_DIR/tmp" && mkdir -p "$BENCH_DIR/tmp"
	# shellcheck disable=SC2086
	mem_scalibr=$(peak_kib $SCALIBR_CMD)
	rm -rf "$BENCH_DIR/tmp" && mkdir -p "$BENCH_DIR/tmp"
	# shellcheck disable=SC2086
	read_scalibr=$(bytes_read $SCALIBR_CMD)
	# shellcheck disable=SC2086
	mem_virt=$(peak_kib $VIRT_CMD)
	# shellcheck disable=SC2086
	read_virt=$(bytes_read $VIRT_CMD)
fi

# --- 5. Report ----------------------------------------------------------------
stat_of() { jq -r --arg n "$2" '.results[] | select(.command == $n) | [.mean, .stddev, .median, .min] | @tsv' "$1"; }
IFS=$'\t' read -r v_mean v_sd v_med v_min < <(stat_of "$BENCH_DIR/hf-vmtrust.json" vmtrust)
{
	echo "Full inspection (inventory + findings) of \`$(basename "$IMAGE")\` ($(stat -c %s "$IMG") bytes; same run, same machine):"
	echo
	echo "| tool | mean ± σ (s) | median (s) | min (s) | ÷ vmtrust (mean) | peak RSS (MiB) | bytes of the image read |"
	echo "|---|---:|---:|---:|---:|---:|---:|"
	printf '| vmtrust inspect | %.3f ± %.3f | %.3f | %.3f | 1.0 | %.1f | %s (own count: %s) |\n' \
		"$v_mean" "$v_sd" "$v_med" "$v_min" "$(awk -v k="$mem_vmtrust" 'BEGIN{print k/1024}')" "$read_vmtrust" "$own_vmtrust"
	if [[ $SKIP_ANCHORS != 1 ]]; then
		for a in osv-scalibr virt-inspector; do
			IFS=$'\t' read -r mean sd med mn < <(stat_of "$BENCH_DIR/hf-anchors.json" "$a")
			if [[ $a == osv-scalibr ]]; then mem=$mem_scalibr rd=$read_scalibr; else mem=$mem_virt rd=$read_virt; fi
			printf '| %s | %.3f ± %.3f | %.3f | %.3f | %.1f | %.1f | %s |\n' "$a" "$mean" "$sd" "$med" "$mn" \
				"$(awk -v a="$mean" -v b="$v_mean" 'BEGIN{print a/b}')" "$(awk -v k="$mem" 'BEGIN{print k/1024}')" "$rd"
		done
	fi
	echo
	verdict=met
	awk -v m="$v_mean" 'BEGIN{exit !(m <= 1.0)}' || verdict=missed
	awk -v k="$mem_vmtrust" 'BEGIN{exit !(k <= 150*1000*1000/1024)}' || verdict=missed
	echo "Target: at most 1 s wall and 150 MB peak memory: **$verdict** ($(printf '%.3f' "$v_mean") s, $(awk -v k="$mem_vmtrust" 'BEGIN{printf "%.1f", k*1024/1e6}') MB)."
	echo
	echo "What each found:"
	echo
	printf '%s\n' "${rows[@]}"
	echo
	echo "Commands:"
	echo
	echo '```'
	echo "$VMTRUST_CMD"
	[[ $SKIP_ANCHORS == 1 ]] || { echo "$SCALIBR_CMD"; echo "$VIRT_CMD"; }
	echo '```'
} | tee "$BENCH_DIR/results.md"
log "results in $BENCH_DIR/results.md"
