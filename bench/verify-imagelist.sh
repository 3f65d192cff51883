#!/usr/bin/env bash
# verify-imagelist.sh: time `vmtrust imagelist verify` against
# `openssl smime -verify` on the same signed HEPiX image lists.
#
# Self-contained: it builds vmtrust, makes a test CA, an endorser certificate,
# a CRL and an IGTF trust directory with openssl, generates unsigned lists of
# N images, signs them with `vmtrust imagelist sign`, checks that both
# verifiers accept them, and times both with hyperfine in the same run.
# It writes only under $BENCH_DIR (default: a new mktemp -d directory).
#
# Usage: bench/verify-imagelist.sh
# Environment:
#   BENCH_DIR   work directory (default: mktemp -d)
#   SIZES       image counts to measure (default: "10000 10")
#   WARMUP      hyperfine warm-up runs (default: 3)
#   MIN_RUNS    hyperfine minimum runs (default: 10)
#
# Needs: go, openssl, hyperfine, jq, awk, sha512sum.
# Stdout is the Markdown result (also written to $BENCH_DIR/results.md);
# progress and hyperfine's own output go to stderr.
# Exit status: 0 on success, 1 if either verifier rejects a list or a step fails.
set -euo pipefail
# shellcheck source=bench/pki.sh
source "$(dirname "${BASH_SOURCE[0]}")/pki.sh"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/vmtrust-bench.XXXXXX")}
SIZES=${SIZES:-"10000 10"}
WARMUP=${WARMUP:-3}
MIN_RUNS=${MIN_RUNS:-10}

log() { printf 'verify-imagelist: %s\n' "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

for tool in go openssl hyperfine jq awk sha512sum; do
	command -v "$tool" >/dev/null || die "$tool is not installed (hyperfine: apt-get install -y --no-install-recommends hyperfine)"
done
((MIN_RUNS >= 10)) || die "MIN_RUNS must be at least 10"

mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
case "$BENCH_DIR" in *[[:space:]]*) die "BENCH_DIR must not contain white space: $BENCH_DIR" ;; esac
log "working in $BENCH_DIR"
VMTRUST=$BENCH_DIR/bin/vmtrust
PKI=$BENCH_DIR/pki
CADIR=$BENCH_DIR/certificates
mkdir -p "$BENCH_DIR/bin" "$PKI" "$CADIR"

# --- 1. Build ---------------------------------------------------------------
log "building vmtrust"
(cd "$ROOT" && go build -o "$VMTRUST" ./cmd/vmtrust) || die "go build ./cmd/vmtrust"

# --- 2. PKI and IGTF trust directory ----------------------------------------
# RSA-2048 throughout, as IGTF CAs and endorser certificates usually are.
CA_SUBJ="/DC=org/DC=vmtrust-bench/CN=vmtrust Bench CA"
EE_SUBJ="/DC=org/DC=vmtrust-bench/O=Bench Site/CN=Bench Endorser"
log "making the test CA, endorser certificate and CRL"
{
	make_endorser_pki
} >"$PKI/openssl.log" 2>&1 || { cat "$PKI/openssl.log" >&2; die "making the PKI with openssl"; }

make_trust_dir
log "trust directory $CADIR: $CA_HASH.0, $CA_HASH.r0, $CA_HASH.signing_policy"
log "endorser $ENDORSER_DN, issued by $ENDORSER_CA"

# --- 3. Image lists ---------------------------------------------------------
LIST_ID=5d5e7c4e-2f1a-4f43-9d3c-0a9a4f1b2c3d
LIST_TITLE="Bench site images"
LIST_DESC="Virtual machine images endorsed by the bench site for its grid and cloud resources"
LIST_SOURCE="https://images.bench-site.example/"
LIST_URI="https://images.bench-site.example/image.list"
LIST_EMAIL="cloud-admins@bench-site.example"
LIST_CREATOR="Bench site cloud administrators"
LIST_VERSION="2026.07-1"

# image_rows N: one tab-separated row per image, the fields in the order
# render_list reads them. 80 random bytes per image give its sha512 and UUID.
# Every required field of a HEPiX image (sl:comments empty), as in
# FIELD-NOTES §1: about 750 bytes an image once signed, so 10,000 images make
# a 7.5 MB message, the size of FIELD-NOTES §6's 7.4 MB anchor.
image_rows() {
	openssl rand $((80 * $1)) | od -An -v -tx1 | tr -d ' \n' | fold -w 160 | awk '
	BEGIN { split("Debian AlmaLinux Ubuntu Rocky", osn, " "); split("12 9.4 24.04 9.4", osv, " ") }
	{
		i = NR; k = (i - 1) % 4 + 1
		uuid = substr($0, 129, 8) "-" substr($0, 137, 4) "-4" substr($0, 142, 3) "-a" substr($0, 146, 3) "-" substr($0, 149, 12)
		printf "%s\t", uuid
		printf "%s %s worker node %05d\t", osn[k], osv[k], i
		printf "%s %s worker node image, build %05d\t", osn[k], osv[k], i
		printf "%.0f\t", 2147483648 + i * 65536
		printf "%s\t", substr($0, 1, 128)
		printf "https://images.site.example/%s.qcow2\t", uuid
		printf "2026.%02d-%d\t", (i % 12) + 1, i
		printf "QEMU,KVM\tx86_64\tLinux\t%s\t\n", osv[k]
	}'
}

# render_list CREATED EXPIRES < rows: the unsigned list, byte for byte in the
# layout `vmtrust imagelist create` (imagelist.Marshal) writes: known fields
# in its fixed order, two-space indent, LF line ends, final newline.
render_list() {
	awk -F'\t' -v created="$1" -v expires="$2" -v id="$LIST_ID" -v title="$LIST_TITLE" \
		-v desc="$LIST_DESC" -v source="$LIST_SOURCE" -v uri="$LIST_URI" -v version="$LIST_VERSION" \
		-v email="$LIST_EMAIL" -v creator="$LIST_CREATOR" -v dn="$ENDORSER_DN" -v ca="$ENDORSER_CA" '
	function q(s) { gsub(/\\/, "\\\\", s); gsub(/"/, "\\\"", s); return "\"" s "\"" }
	function kv(ind, k, v, last) { printf "%s\"%s\": %s%s\n", ind, k, v, (last ? "" : ",") }
	BEGIN {
		I2 = "  "; I4 = I2 I2; I6 = I4 I2; I8 = I4 I4; I10 = I8 I2
		print "{"; print I2 "\"hv:imagelist\": {"
		kv(I4, "dc:date:created", q(created)); kv(I4, "dc:date:expires", q(expires))
		kv(I4, "dc:identifier", q(id)); kv(I4, "dc:description", q(desc))
		kv(I4, "dc:title", q(title)); kv(I4, "dc:source", q(source))
		print I4 "\"hv:endorser\": {"; print I6 "\"hv:x509\": {"
		kv(I8, "dc:creator", q(creator)); kv(I8, "hv:ca", q(ca)); kv(I8, "hv:dn", q(dn)); kv(I8, "hv:email", q(email), 1)
		print I6 "}"; print I4 "},"
		printf "%s", I4 "\"hv:images\": ["
		n = 0
	}
	{
		printf "%s\n%s{\n%s\"hv:image\": {\n", (n++ ? "," : ""), I6, I8
		kv(I10, "dc:identifier", q($1)); kv(I10, "dc:title", q($2)); kv(I10, "dc:description", q($3))
		kv(I10, "hv:size", $4); kv(I10, "sl:checksum:sha512", q($5)); kv(I10, "hv:uri", q($6))
		kv(I10, "hv:version", q($7)); kv(I10, "hv:hypervisor", q($8)); kv(I10, "sl:arch", q($9))
		kv(I10, "sl:os", q($10)); kv(I10, "sl:osversion", q($11)); kv(I10, "sl:comments", q($12), 1)
		printf "%s}\n%s}", I8, I6
	}
	END {
		print (n ? "\n" I4 "]," : "],")
		kv(I4, "hv:uri", q(uri)); kv(I4, "hv:version", q(version), 1)
		print I2 "}"; print "}"
	}'
}

# Self-check of the generator: the same two images, once through
# `vmtrust imagelist create` (with real files) and once through render_list,
# must give identical bytes.
log "checking the list generator against vmtrust imagelist create"
FMT=$BENCH_DIR/format-check
mkdir -p "$FMT"
head -c 1000 /dev/zero >"$FMT/a.img"
head -c 3000 /dev/urandom >"$FMT/b.img"
image_rows 2 | awk -F'\t' -v dir="$FMT" 'BEGIN { OFS = "\t"; f[1] = "a.img"; f[2] = "b.img" }
	{ cmd = "stat -c %s " dir "/" f[NR]; cmd | getline $4; close(cmd)
	  cmd = "sha512sum " dir "/" f[NR]; cmd | getline s; close(cmd); split(s, p, " "); $5 = p[1]
	  print f[NR], $0 }' >"$FMT/rows-with-files.tsv"
cut -f2- "$FMT/rows-with-files.tsv" >"$FMT/rows.tsv"
jq -R -s --arg id "$LIST_ID" --arg title "$LIST_TITLE" --arg desc "$LIST_DESC" --arg source "$LIST_SOURCE" \
	--arg uri "$LIST_URI" --arg email "$LIST_EMAIL" --arg creator "$LIST_CREATOR" '
	{identifier: $id, title: $title, description: $desc, source: $source, uri: $uri,
	 endorser: {email: $email, creator: $creator},
	 images: [split("\n")[] | select(length > 0) | split("\t") |
		{file: .[0], identifier: .[1], title: .[2], description: .[3], uri: .[6], version: .[7],
		 hypervisor: .[8], arch: .[9], os: .[10], osversion: .[11], comments: .[12]}]}' \
	"$FMT/rows-with-files.tsv" >"$FMT/spec.json"
"$VMTRUST" imagelist create --spec "$FMT/spec.json" --cert "$PKI/endorser.pem" --version "$LIST_VERSION" \
	-o "$FMT/created.json" 2>"$FMT/create.log" || { cat "$FMT/create.log" >&2; die "vmtrust imagelist create"; }
render_list "$(jq -r '.["hv:imagelist"]["dc:date:created"]' "$FMT/created.json")" \
	"$(jq -r '.["hv:imagelist"]["dc:date:expires"]' "$FMT/created.json")" <"$FMT/rows.tsv" >"$FMT/rendered.json"
cmp -s "$FMT/created.json" "$FMT/rendered.json" ||
	{ diff "$FMT/created.json" "$FMT/rendered.json" >&2 || true; die "generated list differs from what vmtrust imagelist create writes"; }

CREATED=$(date -u -d '-10 minutes' +%Y-%m-%dT%H:%M:%SZ)
EXPIRES=$(date -u -d '+28 days' +%Y-%m-%dT%H:%M:%SZ)
for n in $SIZES; do
	log "generating and signing a list of $n images"
	image_rows "$n" | render_list "$CREATED" "$EXPIRES" >"$BENCH_DIR/list-$n.json"
	"$VMTRUST" imagelist sign --cert "$PKI/endorser.pem" --key "$PKI/endorser.key" \
		-o "$BENCH_DIR/list-$n.signed" "$BENCH_DIR/list-$n.json" 2>"$BENCH_DIR/sign-$n.log" ||
		{ cat "$BENCH_DIR/sign-$n.log" >&2; die "vmtrust imagelist sign of the $n-image list"; }
done

# --- 4. Both verifiers must accept every list -------------------------------
vmtrust_cmd() { echo "$VMTRUST imagelist verify --ca-dir $CADIR --crl require $1"; }
openssl_cmd() { echo "openssl smime -verify -CApath $CADIR -crl_check -purpose any -in $1 -out /dev/null"; }
# The same without loading the system CA bundle (/usr/lib/ssl/cert.pem), which
# `openssl smime -verify` parses on every run unless told not to; vmtrust
# reads only --ca-dir. Timed too, to show what that load costs.
openssl_lean_cmd() { echo "openssl smime -verify -CApath $CADIR -no-CAfile -no-CAstore -crl_check -purpose any -in $1 -out /dev/null"; }
for n in $SIZES; do
	list=$BENCH_DIR/list-$n.signed
	# shellcheck disable=SC2046 # the commands are word lists without white space in paths
	$(vmtrust_cmd "$list") >"$BENCH_DIR/verify-vmtrust-$n.txt" 2>&1 ||
		{ cat "$BENCH_DIR/verify-vmtrust-$n.txt" >&2; die "vmtrust rejects the $n-image list"; }
	$(openssl_cmd "$list") >"$BENCH_DIR/verify-openssl-$n.txt" 2>&1 ||
		{ cat "$BENCH_DIR/verify-openssl-$n.txt" >&2; die "openssl smime -verify rejects the $n-image list"; }
	$(openssl_lean_cmd "$list") >"$BENCH_DIR/verify-openssl-lean-$n.txt" 2>&1 ||
		{ cat "$BENCH_DIR/verify-openssl-lean-$n.txt" >&2; die "openssl smime -verify -no-CAfile -no-CAstore rejects the $n-image list"; }
	log "list-$n.signed ($(stat -c %s "$list") bytes): accepted by vmtrust and by openssl"
done

# --- 5. Timing --------------------------------------------------------------
# Other work on the machine skews the figures; the report records the load.
load_now() {
	local psi=""
	[[ -r /proc/pressure/cpu ]] && psi=", CPU pressure $(awk '/^some/ { sub("avg60=", "", $3); print $3 "%" }' /proc/pressure/cpu)"
	echo "load $(cut -d' ' -f1 /proc/loadavg)$psi"
}
LOAD_BEFORE=$(load_now)
# -N runs the commands without an intermediate shell, so nothing has to be
# subtracted from a run of a few milliseconds. All three commands of a size
# run in the same hyperfine invocation, one after the other.
declare -A HF_CMD
for n in $SIZES; do
	list=$BENCH_DIR/list-$n.signed
	HF_CMD[$n]="hyperfine -N --warmup $WARMUP --min-runs $MIN_RUNS --export-json $BENCH_DIR/hyperfine-$n.json -n vmtrust '$(vmtrust_cmd "$list")' -n openssl '$(openssl_cmd "$list")' -n openssl-no-bundle '$(openssl_lean_cmd "$list")'"
	log "timing the $n-image list"
	hyperfine -N --warmup "$WARMUP" --min-runs "$MIN_RUNS" --export-json "$BENCH_DIR/hyperfine-$n.json" \
		-n vmtrust "$(vmtrust_cmd "$list")" -n openssl "$(openssl_cmd "$list")" \
		-n openssl-no-bundle "$(openssl_lean_cmd "$list")" >&2
done

# --- 6. Report --------------------------------------------------------------
ms() { awk -v s="$1" 'BEGIN { printf "%.1f", s * 1000 }'; }
field() { jq -r --arg name "$2" --arg f "$3" '.results[] | select(.command == $name) | .[$f]' "$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
{
	echo "| images | signed size | tool | mean ± σ (ms) | median (ms) | min (ms) | runs | vmtrust ÷ openssl, mean | vmtrust ÷ openssl, median |"
	echo "|---:|---:|---|---:|---:|---:|---:|---:|---:|"
	for n in $SIZES; do
		j=$BENCH_DIR/hyperfine-$n.json
		size=$(stat -c %s "$BENCH_DIR/list-$n.signed")
		size_h=$(awk -v b="$size" 'BEGIN { if (b >= 1e6) printf "%.2f MB", b / 1e6; else printf "%.1f kB", b / 1e3 }')
		vm_mean=$(field "$j" vmtrust mean) vm_med=$(field "$j" vmtrust median)
		for tool in vmtrust openssl openssl-no-bundle; do
			r_mean="" r_med=""
			if [[ $tool != vmtrust ]]; then
				r_mean=$(ratio "$vm_mean" "$(field "$j" $tool mean)") r_med=$(ratio "$vm_med" "$(field "$j" $tool median)")
				[[ $tool == openssl ]] && r_mean="**$r_mean**"
			fi
			echo "| $n | $size_h | $tool | $(ms "$(field "$j" $tool mean)") ± $(ms "$(field "$j" $tool stddev)") | $(ms "$(field "$j" $tool median)") | $(ms "$(field "$j" $tool min)") | $(jq -r --arg t $tool '.results[] | select(.command == $t) | .times | length' "$j") | $r_mean | $r_med |"
		done
	done
	echo
	echo "Commands (\`$BENCH_DIR\` is the work directory):"
	echo
	echo '```'
	for n in $SIZES; do echo "${HF_CMD[$n]}"; done
	echo '```'
	echo
	echo "Load while timing: $LOAD_BEFORE before, $(load_now) after (1-min load average; CPU pressure some-avg60 from /proc/pressure/cpu)."
	echo
	echo "Machine: $(date -u +%Y-%m-%d), $(nproc) cores, $(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(openssl version), $(go version | sed 's/^go version //'), hyperfine $(hyperfine --version | awk '{ print $2 }')"
} | tee "$BENCH_DIR/results.md"
log "results in $BENCH_DIR/results.md"
