#!/usr/bin/env bash
# contain.sh: issue 6's containment benchmarks, measured in one run:
#   1. iperf3 TCP throughput VM→VM through a bridge with vmtrust's rules
#      (internal/contain) against no rules, with SMALL ports installed;
#   2. the time to install rules for PORTS ports: one Reconcile of the PORTS
#      ports with no table, and Apply calls one port at a time from no table
#      (bench/containbench) for the first APPLY_MAX of them (each Apply reads
#      only its own port since commit 1323e4c); 20 no-op
#      Apply calls with all PORTS installed give one call's cost at PORTS; a
#      CPU profile of the Apply calls is kept (apply-profile.txt);
#   3. the same throughput with PORTS ports installed (flat?);
#   4. the anchor: libvirt's clean-traffic nwfilter (nwfilter-binding-create
#      on each port) at SMALL and LIBVIRT_PORTS ports, and no filter, in a
#      private libvirtd (scripts/libvirt-env.sh start).
#
# Hosts are network namespaces made here: a hypervisor namespace
# vmtrust-cb-hv-RAND (for libvirt: the libvirtd's own namespace) with a
# bridge br0, two VM namespaces vmtrust-cb-a-RAND / vmtrust-cb-b-RAND on veth
# ports (pa, pb) with 10.77.0.1-2/24 and fd77::1-2/64, and filler veth pairs
# (fNNNN on the bridge, gNNNN its peer, both up, in the hypervisor
# namespace) made with `ip -batch`. The pair is two of the ports: SMALL ports
# = pa, pb and SMALL-2 fillers. iperf3 -s runs in B; each measurement is
# `iperf3 -c 10.77.0.2 -t SECONDS -J` from A; REPS repetitions per
# condition, rules and no rules alternating; medians reported. "No rules" is
# no table: `nft delete table bridge vmtrust` in the hypervisor namespace.
# Before timing, each filter is shown active: a ping from A with a spoofed
# source (10.77.0.99 added to A's eth0) must fail, and for vmtrust the
# ip-spoof counter of pa must move and pa's from-VM counter must count the
# iperf3 packets. Nothing touches the root namespace's interfaces or ruleset;
# every namespace, iperf3 server and libvirtd started here is removed on
# exit, however the script ends.
#
# Usage: bench/contain.sh               (as root)
# Environment:
#   BENCH_DIR      work directory (default: mktemp -d)
#   PORTS          ports for the install time and the large case (default: 1000)
#   APPLY_MAX      Apply calls timed one by one from no table (default: 200)
#   SMALL          ports in the small case (default: 10)
#   LIBVIRT_PORTS  ports with clean-traffic in libvirt's large case (default: 200; 0 skips libvirt)
#   REPS           iperf3 runs per condition (default: 5)
#   SECONDS_RUN    iperf3 -t (default: 5)
#   BIND_JOBS      concurrent `virsh nwfilter-binding-create` (default: 4)
#
# Needs: root, go, ip, nft, iperf3, jq, awk, br_netfilter; for the anchor
# virsh and what scripts/libvirt-env.sh needs (scripts/setup.sh).
# Stdout is the Markdown result (also $BENCH_DIR/results.md); progress on stderr.
# Exit status: 0 on success, 1 if a step fails or a filter is not active.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/vmtrust-contain-bench.XXXXXX")}
PORTS=${PORTS:-1000}
APPLY_MAX=${APPLY_MAX:-200}
SMALL=${SMALL:-10}
LIBVIRT_PORTS=${LIBVIRT_PORTS:-200}
REPS=${REPS:-5}
SECONDS_RUN=${SECONDS_RUN:-5}
BIND_JOBS=${BIND_JOBS:-4}
LIBVIRT_ENV=$ROOT/scripts/libvirt-env.sh
export PATH=$PATH:/usr/sbin:/sbin

log() { printf 'contain-bench: %s\n' "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

[[ $(id -u) == 0 ]] || die "needs root (network namespaces)"
for tool in go ip nft iperf3 jq awk; do
	command -v "$tool" >/dev/null || die "$tool is not installed: run scripts/setup.sh as root"
done
((LIBVIRT_PORTS == 0)) || command -v virsh >/dev/null || die "virsh is not installed (LIBVIRT_PORTS=0 skips libvirt)"
for v in PORTS APPLY_MAX SMALL LIBVIRT_PORTS REPS SECONDS_RUN BIND_JOBS; do
	[[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a number"
done
((SMALL >= 2 && PORTS >= SMALL && PORTS <= 9000 && REPS >= 1 && SECONDS_RUN >= 1 && APPLY_MAX >= 10)) ||
	die "need 2 ≤ SMALL ≤ PORTS ≤ 9000, REPS ≥ 1, SECONDS_RUN ≥ 1, APPLY_MAX ≥ 10"
APPLY_MAX=$((APPLY_MAX < PORTS ? APPLY_MAX : PORTS))
((LIBVIRT_PORTS == 0 || (LIBVIRT_PORTS >= SMALL && LIBVIRT_PORTS <= PORTS))) || die "need SMALL ≤ LIBVIRT_PORTS ≤ PORTS"

mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
log "working in $BENCH_DIR"
RAND=$(od -An -N4 -tx4 /dev/urandom | tr -d ' \n')
HV=vmtrust-cb-hv-$RAND
NSA=vmtrust-cb-a-$RAND
NSB=vmtrust-cb-b-$RAND
CB=$BENCH_DIR/containbench

# What this script made; exactly these are removed on exit.
NAMESPACES=()
INSTANCES=()
IPERF_PIDFILE=$BENCH_DIR/iperf3-server.pid
cleanup() {
	local rc=$? ns
	if [[ -s $IPERF_PIDFILE ]]; then
		kill "$(cat "$IPERF_PIDFILE")" 2>/dev/null || true
		rm -f "$IPERF_PIDFILE"
	fi
	for ns in "${INSTANCES[@]}"; do
		bash "$LIBVIRT_ENV" stop "$ns" >&2 || log "stopping libvirtd $ns failed"
	done
	for ns in "${NAMESPACES[@]}"; do
		ip netns del "$ns" 2>/dev/null || log "deleting netns $ns failed"
	done
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- build --------------------------------------------------------------------
# shellcheck source=bench/build.sh
source "$(dirname "${BASH_SOURCE[0]}")/build.sh"
log "building containbench"
build "$CB" ./bench/containbench

# --- hosts ----------------------------------------------------------------------
newns() {
	ip netns add "$1" || die "ip netns add $1"
	NAMESPACES+=("$1")
	ip -n "$1" link set lo up
	ip netns exec "$1" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
}
# hypervisor NS: bridge br0 in NS, br_netfilter on (as internal/nettest), no
# IPv6 on the hypervisor's own ports (the fillers would send RS/MLD).
hypervisor() {
	local ns=$1 k
	ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.disable_ipv6=1 net.ipv6.conf.all.accept_dad=0
	ip -n "$ns" link add br0 type bridge
	ip -n "$ns" link set br0 up
	for k in net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables; do
		ip netns exec "$ns" sysctl -qw "$k=1" || die "br_netfilter is required: sysctl $k=1 in $ns"
	done
}
# vm HVNS VMNS PORT MAC N: VMNS's eth0 is PORT's peer on HVNS's br0.
vm() {
	local hv=$1 ns=$2 port=$3 mac=$4 n=$5
	ip -n "$hv" link add "$port" type veth peer name eth0 address "$mac" netns "$ns"
	ip -n "$hv" link set "$port" master br0
	ip -n "$hv" link set "$port" up
	ip -n "$ns" addr add "10.77.0.$n/24" dev eth0
	ip -n "$ns" addr add "fd77::$n/64" dev eth0 nodad
	ip -n "$ns" link set eth0 up
}
MAC_A=02:77:00:00:00:01
MAC_B=02:77:00:00:00:02
# fillers HVNS FROM TO: veth pairs fFROM..fTO-1 on br0, both ends up.
fillers() {
	local hv=$1 from=$2 to=$3 i
	((from < to)) || return 0
	for ((i = from; i < to; i++)); do
		printf 'link add f%04d address 02:78:00:00:%02x:%02x type veth peer name g%04d\n' "$i" $((i / 256)) $((i % 256)) "$i"
		printf 'link set f%04d master br0\nlink set f%04d up\nlink set g%04d up\n' "$i" "$i" "$i"
	done >"$BENCH_DIR/fillers-$from-$to.batch"
	ip -n "$hv" -batch "$BENCH_DIR/fillers-$from-$to.batch" || die "ip -batch fillers $from..$to in $hv"
}
# spec N: the pair and N-2 fillers, "NAME MAC IPV4 IPV6" a line.
spec() {
	local n=$1 i f=$BENCH_DIR/spec-$1.txt
	{
		echo "pa $MAC_A 10.77.0.1 fd77::1"
		echo "pb $MAC_B 10.77.0.2 fd77::2"
		for ((i = 0; i < n - 2; i++)); do
			printf 'f%04d 02:78:00:00:%02x:%02x 10.78.%d.%d fd78::%x\n' "$i" $((i / 256)) $((i % 256)) $((i / 250)) $((i % 250 + 1)) $((i + 1))
		done
	} >"$f"
	echo "$f"
}

# --- measuring ------------------------------------------------------------------
start_server() {
	ip netns exec "$NSB" iperf3 -s -D -B 10.77.0.2 --pidfile "$IPERF_PIDFILE" >/dev/null ||
		die "iperf3 -s in $NSB"
	for _ in $(seq 50); do [[ -s $IPERF_PIDFILE ]] && break; sleep 0.1; done
	sleep 0.3
}
stop_server() {
	if [[ -s $IPERF_PIDFILE ]]; then
		kill "$(cat "$IPERF_PIDFILE")" 2>/dev/null || true
		rm -f "$IPERF_PIDFILE"
	fi
}
# iperf LABEL: one run, Gbit/s appended to $BENCH_DIR/tput-LABEL.txt.
iperf() {
	local j=$BENCH_DIR/iperf-$1-$(date +%s%N).json
	ip netns exec "$NSA" iperf3 -c 10.77.0.2 -t "$SECONDS_RUN" -J >"$j" || { cat "$j" >&2; die "iperf3 ($1)"; }
	jq -r '.end.sum_received.bits_per_second / 1e9' "$j" >>"$BENCH_DIR/tput-$1.txt"
	log "  $1: $(tail -n 1 "$BENCH_DIR/tput-$1.txt") Gbit/s"
}
median() { sort -g "$BENCH_DIR/tput-$1.txt" | awk '{ a[NR] = $1 } END { printf "%.2f", (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
range() { sort -g "$BENCH_DIR/tput-$1.txt" | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.2f–%.2f", lo, hi }'; }
pings() { ip netns exec "$NSA" ping -c 1 -W 1 "$@" 10.77.0.2 >/dev/null 2>&1; }
# spoof_blocked: a ping from A with the spoofed source 10.77.0.99 must fail,
# an honest one pass.
spoof_blocked() {
	pings || die "honest ping A→B fails ($1)"
	ip -n "$NSA" addr add 10.77.0.99/32 dev eth0
	if pings -I 10.77.0.99; then
		ip -n "$NSA" addr del 10.77.0.99/32 dev eth0
		die "a spoofed ping A→B passed: the $1 filter is not active"
	fi
	ip -n "$NSA" addr del 10.77.0.99/32 dev eth0
}
# spoof_passes: without a filter the same spoofed ping must pass (the control).
spoof_passes() {
	ip -n "$NSA" addr add 10.77.0.99/32 dev eth0
	if ! pings -I 10.77.0.99; then
		ip -n "$NSA" addr del 10.77.0.99/32 dev eth0
		die "a spoofed ping A→B fails without a filter ($1): the check would prove nothing"
	fi
	ip -n "$NSA" addr del 10.77.0.99/32 dev eth0
}
notable() { ip netns exec "$HV" nft delete table bridge vmtrust 2>/dev/null || true; }
ours() { "$CB" -netns "$HV" "$@"; }
cstat() { ours status pa | jq -r "$1"; }

# --- 1-3. vmtrust ---------------------------------------------------------------
log "hosts: $HV (bridge br0), $NSA, $NSB"
newns "$HV"
newns "$NSA"
newns "$NSB"
hypervisor "$HV"
vm "$HV" "$NSA" pa "$MAC_A" 1
vm "$HV" "$NSB" pb "$MAC_B" 2
fillers "$HV" 0 $((SMALL - 2))
SPEC_SMALL=$(spec "$SMALL")
SPEC_LARGE=$(spec "$PORTS")
pings || die "no ping A→B without rules"
start_server

# compare N LABEL: REPS runs alternating no table / N ports of vmtrust rules.
compare() {
	local n=$1 spec=$BENCH_DIR/spec-$1.txt i before spoof0 spoof1
	notable
	spoof_passes "no table, $n ports"
	ours reconcile "$spec" >"$BENCH_DIR/reconcile-$n-check.json" || die "containbench reconcile $n"
	spoof0=$(cstat '.drops["ip-spoof"] // 0')
	spoof_blocked "vmtrust ($n ports)"
	spoof1=$(cstat '.drops["ip-spoof"] // 0')
	((spoof1 > spoof0)) || die "pa's ip-spoof counter did not move ($spoof0 → $spoof1)"
	log "vmtrust $n ports active: spoofed ping dropped, ip-spoof counter $spoof0 → $spoof1"
	for ((i = 1; i <= REPS; i++)); do
		notable
		iperf "none-$n"
		ours reconcile "$spec" >/dev/null || die "containbench reconcile $n"
		before=$(cstat .from_vm_packets)
		iperf "vmtrust-$n"
		(($(cstat .from_vm_packets) > before + 1000)) || die "pa's from-VM counter did not count the iperf3 run"
	done
}
log "throughput, $SMALL ports: $REPS × (no rules, vmtrust)"
compare "$SMALL"

log "adding fillers up to $PORTS ports"
fillers "$HV" $((SMALL - 2)) $((PORTS - 2))
log "install time, $PORTS ports"
notable
ours reconcile "$SPEC_LARGE" >"$BENCH_DIR/reconcile.json" || die "containbench reconcile $PORTS"
log "  reconcile: $(cat "$BENCH_DIR/reconcile.json")"
[[ $(jq .added "$BENCH_DIR/reconcile.json") == "$PORTS" ]] || die "reconcile did not add $PORTS ports"
head -n "$APPLY_MAX" "$SPEC_LARGE" >"$BENCH_DIR/spec-apply.txt"
head -n 20 "$SPEC_LARGE" >"$BENCH_DIR/spec-noop.txt"
ours noop "$BENCH_DIR/spec-noop.txt" >"$BENCH_DIR/noop.json" || die "containbench noop"
log "  no-op Apply with $PORTS ports installed: $(cat "$BENCH_DIR/noop.json")"
notable
"$CB" -cpuprofile "$BENCH_DIR/apply.prof" -netns "$HV" apply "$BENCH_DIR/spec-apply.txt" >"$BENCH_DIR/apply.json" ||
	die "containbench apply $APPLY_MAX"
log "  apply: $(cat "$BENCH_DIR/apply.json")"
go tool pprof -top -cum "$CB" "$BENCH_DIR/apply.prof" 2>/dev/null | head -n 40 >"$BENCH_DIR/apply-profile.txt" || true
RULES_LARGE=$(ip netns exec "$HV" nft list table bridge vmtrust | grep -c 'vmtrust ' || true)
log "throughput, $PORTS ports: $REPS × (no rules, vmtrust)"
compare "$PORTS"
stop_server
notable

# --- 4. libvirt clean-traffic -----------------------------------------------------
LV_LINES=()
if ((LIBVIRT_PORTS > 0)); then
	out=$(bash "$LIBVIRT_ENV" start cb) || die "libvirt-env.sh start cb"
	LNS=$(sed -n 's/^VMTRUST_LIBVIRT_NETNS=//p' <<<"$out")
	URI=$(sed -n 's/^VMTRUST_LIBVIRT_URI=//p' <<<"$out")
	[[ $LNS =~ ^vmtrust-[a-z0-9-]+-[0-9a-f]{8}$ && -n $URI ]] || die "libvirt-env.sh start printed: $out"
	INSTANCES+=("$LNS")
	log "libvirtd up in netns $LNS"
	# The private libvirtd has an empty /etc/libvirt/nwfilter: define the
	# stock filters (clean-traffic and what it references) from the host's.
	for x in /etc/libvirt/nwfilter/*.xml; do
		virsh -q -c "$URI" nwfilter-define "$x" >/dev/null || die "virsh nwfilter-define $x"
	done
	virsh -q -c "$URI" nwfilter-dumpxml clean-traffic >/dev/null || die "no clean-traffic filter in libvirt"
	# The VM namespaces move to the libvirt namespace's bridge.
	ip -n "$NSA" link del eth0
	ip -n "$NSB" link del eth0
	hypervisor "$LNS"
	vm "$LNS" "$NSA" pa "$MAC_A" 1
	vm "$LNS" "$NSB" pb "$MAC_B" 2
	HV=$LNS
	fillers "$LNS" 0 $((SMALL - 2))
	pings || die "no ping A→B in the libvirt namespace"
	spoof_passes "libvirt, no bindings"
	start_server
	for ((i = 1; i <= REPS; i++)); do iperf "libvirt-none"; done
	# bind FROM TO: clean-traffic bindings for spec lines FROM..TO-1 (0-based).
	# BIND_JOBS virsh processes at a time.
	bind() {
		local from=$1 to=$2 name mac ip6 ip4 x
		: >"$BENCH_DIR/bind-$to.list"
		sed -n "$((from + 1)),${to}p" "$SPEC_LARGE" | while read -r name mac ip4 ip6; do
			x=$BENCH_DIR/binding-$name.xml
			echo "$x" >>"$BENCH_DIR/bind-$to.list"
			cat >"$x" <<EOF
<filterbinding>
  <owner><name>cb-$name</name><uuid>$(cat /proc/sys/kernel/random/uuid)</uuid></owner>
  <portdev name='$name'/>
  <mac address='$mac'/>
  <filterref filter='clean-traffic'><parameter name='IP' value='$ip4'/></filterref>
</filterbinding>
EOF
		done
		xargs -P "$BIND_JOBS" -n 1 virsh -q -c "$URI" nwfilter-binding-create <"$BENCH_DIR/bind-$to.list" >/dev/null ||
			die "virsh nwfilter-binding-create (ports $from..$to)"
	}
	lv() { # N: bind up to N ports, check, REPS runs
		local n=$1 t0 t1
		t0=$(date +%s.%N)
		bind "${LV_DONE:-0}" "$n"
		t1=$(date +%s.%N)
		log "libvirt: $((n - ${LV_DONE:-0})) bindings in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s"
		LV_LINES+=("| clean-traffic bindings ${LV_DONE:-0} → $n (\`virsh nwfilter-binding-create\` each, $BIND_JOBS at a time) | $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s |")
		LV_DONE=$n
		[[ $(virsh -q -c "$URI" nwfilter-binding-list | grep -c .) == "$n" ]] || die "libvirt lists not $n bindings"
		spoof_blocked "libvirt clean-traffic ($n ports)"
		ip netns exec "$LNS" nft list ruleset >"$BENCH_DIR/libvirt-ruleset-$n.txt" 2>&1 || true
		grep -q 'libvirt\|HI-pa\|I-pa\|O-pa' "$BENCH_DIR/libvirt-ruleset-$n.txt" || die "no libvirt chains in $LNS's ruleset"
		LV_RULES[$n]=$(grep -c '^\s*[a-z].*\(accept\|drop\|return\|jump\|goto\)' "$BENCH_DIR/libvirt-ruleset-$n.txt" || true)
		log "libvirt clean-traffic $n ports active: spoofed ping dropped; ${LV_RULES[$n]} rules in the namespace's ruleset"
		for ((i = 1; i <= REPS; i++)); do iperf "libvirt-$n"; done
	}
	declare -A LV_RULES
	lv "$SMALL"
	if ((LIBVIRT_PORTS > SMALL)); then
		fillers "$LNS" $((SMALL - 2)) $((LIBVIRT_PORTS - 2))
		lv "$LIBVIRT_PORTS"
	fi
	stop_server
fi

# --- report -----------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", 100 * a / b }'; }
R_S=$(ratio "$(median "vmtrust-$SMALL")" "$(median "none-$SMALL")")
R_L=$(ratio "$(median "vmtrust-$PORTS")" "$(median "none-$PORTS")")
A=$BENCH_DIR/apply.json
AP=$(jq -r .seconds "$A")
N=$BENCH_DIR/noop.json
RC=$(jq -r .seconds "$BENCH_DIR/reconcile.json")
verdict() { awk -v x="$1" -v t="$2" -v op="$3" 'BEGIN { ok = (op == "ge") ? x >= t : x <= t; print ok ? "met" : "**missed**" }'; }
ms() { jq -r "$2" "$1" | awk '{ printf "%.1f", $1 }'; }
trow() { echo "| $1 | $2 | $(median "$3") | $(range "$3") | $4 |"; }
{
	echo "iperf3 TCP A→B through the bridge (\`-t $SECONDS_RUN\`, $REPS runs each, conditions alternating; Gbit/s):"
	echo
	echo "| filter | ports | median | range | ÷ no rules (same ports) |"
	echo "|---|---:|---:|---:|---:|"
	trow "none" "$SMALL" "none-$SMALL" ""
	trow "**vmtrust**" "$SMALL" "vmtrust-$SMALL" "**$R_S%** (target ≥ 95%: $(verdict "$R_S" 95 ge))"
	trow "none" "$PORTS" "none-$PORTS" ""
	trow "**vmtrust**" "$PORTS" "vmtrust-$PORTS" "**$R_L%** ($PORTS ÷ $SMALL ports with rules: $(ratio "$(median "vmtrust-$PORTS")" "$(median "vmtrust-$SMALL")")%)"
	if ((LIBVIRT_PORTS > 0)); then
		trow "none (libvirt's namespace)" "$SMALL" "libvirt-none" ""
		trow "libvirt clean-traffic" "$SMALL" "libvirt-$SMALL" "$(ratio "$(median "libvirt-$SMALL")" "$(median libvirt-none)")%"
		((LIBVIRT_PORTS == SMALL)) || trow "libvirt clean-traffic" "$LIBVIRT_PORTS" "libvirt-$LIBVIRT_PORTS" "$(ratio "$(median "libvirt-$LIBVIRT_PORTS")" "$(median libvirt-none)")% ($LIBVIRT_PORTS ÷ $SMALL: $(ratio "$(median "libvirt-$LIBVIRT_PORTS")" "$(median "libvirt-$SMALL")")%)"
	fi
	echo
	echo "Install time, $PORTS ports (each a MAC, one IPv4, one IPv6), no table before:"
	echo
	echo "| what | time |"
	echo "|---|---:|"
	echo "| one \`Manager.Reconcile\` of the $PORTS | **$(awk -v x="$RC" 'BEGIN { printf "%.2f", x }') s** (target ≤ 1 s: $(verdict "$RC" 1 le)) |"
	echo "| $APPLY_MAX × \`Manager.Apply\`, one port each (the first $APPLY_MAX of the $PORTS) | **$(awk -v x="$AP" 'BEGIN { printf "%.2f", x }') s**$( ((APPLY_MAX == PORTS)) && echo " (target ≤ 1 s: $(verdict "$AP" 1 le))") |"
	for l in "${LV_LINES[@]}"; do echo "$l"; done
	echo
	echo "Apply per call: p50 $(ms "$A" .call_p50_ms) ms, p90 $(ms "$A" .call_p90_ms) ms, max $(ms "$A" .call_max_ms) ms;" \
		"mean of the first tenth $(ms "$A" .first_tenth_mean_ms) ms, of the last tenth $(ms "$A" .last_tenth_mean_ms) ms."
	echo "A no-op Apply (the port already installed) with all $PORTS ports in the table: p50 $(ms "$N" .call_p50_ms) ms, p90 $(ms "$N" .call_p90_ms) ms (20 calls)."
	echo "vmtrust's table with $PORTS ports: $RULES_LARGE rules carrying a vmtrust comment.$(((LIBVIRT_PORTS > 0)) && echo " libvirt's ruleset: ${LV_RULES[$SMALL]} rule lines at $SMALL ports, ${LV_RULES[$LIBVIRT_PORTS]} at $LIBVIRT_PORTS.")"
	echo
	echo "Every filter was shown active before its runs: a ping from A with the spoofed source 10.77.0.99, which passes without a filter, failed (and for vmtrust pa's ip-spoof counter moved, and pa's from-VM counter counted every timed run)."
	echo
	echo "Reproduce: \`$(for v in BENCH_DIR PORTS APPLY_MAX SMALL LIBVIRT_PORTS REPS SECONDS_RUN BIND_JOBS; do printf '%s=%s ' "$v" "${!v}"; done)bench/contain.sh\`"
	echo
	echo "Machine: $(date -u +%Y-%m-%d), $(nproc) cores, $(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo), Linux $(uname -r); $(go version | sed 's/^go version //'); vmtrust $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo '+changes'); $(iperf3 --version | head -1); $(nft --version); $( ((LIBVIRT_PORTS > 0)) && virsh --version | sed 's/^/libvirt /'); load $(cut -d' ' -f1-3 /proc/loadavg)."
} | tee "$BENCH_DIR/results.md"
log "results in $BENCH_DIR/results.md"
