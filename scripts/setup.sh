#!/usr/bin/env bash
# scripts/setup.sh — install what vmtrust's build, tests and demo need.
#
# One idempotent script used by 'make setup', 'make test' and 'make demo'.
# On a fresh Debian 12 it installs the Debian packages below (as root), checks
# that Go >= 1.26 is available and downloads the Go modules. When everything is
# already there it only checks, which takes a few seconds.
#
# Environment:
#   VMTRUST_APT_MAX_AGE  refresh the apt package lists before installing when
#                        our last refresh is older than this many seconds
#                        (default 86400). apt-get update only runs when a
#                        package is actually missing.
set -euo pipefail

# The Debian packages the project needs today, and why.
PACKAGES=(
	ca-certificates # TLS to the Go module proxy
	git             # go's VCS stamping, the lead's workflow
	make            # the Makefile
	openssl         # interop tests and the demo CA (openssl req/ca/smime)
	e2fsprogs       # mkfs.ext4 -d: real ext4 disk images from a directory
	qemu-utils      # qemu-img: qcow2 images
	hyperfine       # benchmarks against command-line anchors (bench/*.sh)
	jq              # bench/*.sh reads hyperfine's JSON results
	debootstrap     # scripts/fixtures.sh: the Debian 12 test roots
	xfsprogs        # scripts/fixtures.sh: mkfs.xfs -p, xfs_db, xfs_repair
	fdisk           # scripts/fixtures.sh: sfdisk (GPT, MBR with a logical partition)
	dosfstools      # scripts/fixtures.sh: mkfs.fat for the EFI/FAT partitions
	rpm             # scripts/fixtures.sh: rpmbuild, rpm --root (sqlite rpmdb)
	openssh-client  # scripts/fixtures.sh: ssh-keygen for the planted keys
	distro-info-data # vmtrust inspect: Debian and Ubuntu end-of-life dates (/usr/share/distro-info)
	lvm2            # internal/partition/lvm tests: real physical volumes (pvcreate, lvcreate)
	mount           # losetup for the LVM tests
	strace          # bench/inspect-image.sh: bytes of the image each tool reads
	time            # bench/inspect-image.sh: /usr/bin/time for peak memory
	qemu-system-x86 # scripts/libvirt-env.sh: TCG guests under libvirt (issue 5)
	libvirt-daemon-system # scripts/libvirt-env.sh: libvirtd, virtlogd
	libvirt-clients # scripts/libvirt-env.sh: virsh
	libxml2-utils   # xmllint, which virt-xml-validate needs (internal/admission/domain schema test)
	busybox-static  # scripts/libvirt-env.sh: the test guest's initramfs
	cpio            # scripts/libvirt-env.sh: packs the initramfs
	iproute2        # scripts/libvirt-env.sh: ip netns for private libvirtd instances
	nftables        # internal/contain tests: nft list ruleset beside our netlink programming (issue 6)
	hping3          # internal/contain attack tests: spoofed sources, floods
	arping          # internal/contain attack tests: arping -S/-s (Thomas Habets' arping)
	dsniff          # internal/contain attack tests: arpspoof
	python3-scapy   # internal/contain attack tests: rogue DHCPOFFER, RA, NA/ND spoofing (Debian's /usr/bin/python3)
	iperf3          # bench/contain: VM-to-VM throughput through the bridge
	nmap            # internal/contain attack tests: scans
	tcpdump         # internal/contain attack tests: what a sniffer sees
	iputils-ping    # internal/contain tests: legitimate traffic still flows (ping, ping -6)
	postgresql-15   # internal/ledger/postgres: the ledger on PostgreSQL (a private server per test run, internal/pgtest)
	e2fsprogs       # debugfs: internal/vmtest writes scripts into the guest tools image
)
GO_MIN_MAJOR=1
GO_MIN_MINOR=26
STAMP_DIR=/var/cache/vmtrust
STAMP="$STAMP_DIR/apt-updated"
APT_MAX_AGE=${VMTRUST_APT_MAX_AGE:-86400}

say() { printf 'setup: %s\n' "$*"; }
die() {
	printf 'setup: ERROR: %s\n' "$*" >&2
	exit 1
}

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
start=$(date +%s)

[ -r /etc/debian_version ] || die "this script targets Debian 12 (bookworm); /etc/debian_version is missing"

# --- Debian packages ---------------------------------------------------------
missing_packages() {
	local p status
	for p in "${PACKAGES[@]}"; do
		status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
		[ "$status" = installed ] || printf '%s\n' "$p"
	done
}

apt_update() {
	say "refreshing the apt package lists: apt-get update"
	apt-get update -q || die "apt-get update failed: check the Debian mirror in /etc/apt/sources.list*"
	mkdir -p "$STAMP_DIR"
	touch "$STAMP"
}

apt_lists_fresh() {
	[ -f "$STAMP" ] || return 1
	local age=$(($(date +%s) - $(stat -c %Y "$STAMP")))
	[ "$age" -lt "$APT_MAX_AGE" ]
}

mapfile -t missing < <(missing_packages)
if [ "${#missing[@]}" -eq 0 ]; then
	say "Debian packages present: ${PACKAGES[*]}"
else
	if [ "$(id -u)" -ne 0 ]; then
		die "missing Debian packages: ${missing[*]}. Installing them needs root: run 'sudo $repo/scripts/setup.sh' (or 'make setup' as root)."
	fi
	say "missing Debian packages: ${missing[*]}"
	updated=no
	if ! apt_lists_fresh; then
		apt_update
		updated=yes
	else
		say "apt package lists refreshed less than ${APT_MAX_AGE}s ago ($STAMP); not updating"
	fi
	install=(apt-get install -y -q --no-install-recommends "${missing[@]}")
	say "installing: DEBIAN_FRONTEND=noninteractive ${install[*]}"
	if ! DEBIAN_FRONTEND=noninteractive "${install[@]}"; then
		[ "$updated" = yes ] && die "apt-get install failed for: ${missing[*]}"
		say "install failed with the current package lists; refreshing them and retrying once"
		apt_update
		DEBIAN_FRONTEND=noninteractive "${install[@]}" || die "apt-get install failed for: ${missing[*]}"
	fi
	mapfile -t still < <(missing_packages)
	[ "${#still[@]}" -eq 0 ] || die "still missing after install: ${still[*]}"
	say "installed: ${missing[*]}"
fi

for cmd in openssl mkfs.ext4 qemu-img hyperfine jq make git; do
	command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || [ -x "/sbin/$cmd" ] ||
		die "$cmd is not on PATH although its package is installed (PATH=$PATH)"
done

# --- Go ----------------------------------------------------------------------
if ! command -v go >/dev/null 2>&1; then
	if [ -x /usr/local/go/bin/go ]; then
		export PATH="/usr/local/go/bin:$PATH"
		say "go is not on PATH; using /usr/local/go/bin/go (add /usr/local/go/bin to PATH)"
	else
		die "Go is not installed: install Go >= $GO_MIN_MAJOR.$GO_MIN_MINOR from https://go.dev/dl/ into /usr/local/go and put /usr/local/go/bin on PATH"
	fi
fi
gover=$(go env GOVERSION 2>/dev/null || true) # e.g. go1.26.8
if [[ ! $gover =~ ^go([0-9]+)\.([0-9]+) ]]; then
	die "cannot read the Go version from 'go env GOVERSION' (got '$gover')"
fi
major=${BASH_REMATCH[1]} minor=${BASH_REMATCH[2]}
if [ "$major" -lt "$GO_MIN_MAJOR" ] || { [ "$major" -eq "$GO_MIN_MAJOR" ] && [ "$minor" -lt "$GO_MIN_MINOR" ]; }; then
	die "Go $gover at $(command -v go) is too old: vmtrust needs Go >= $GO_MIN_MAJOR.$GO_MIN_MINOR (/usr/local/go/bin first on PATH?)"
fi
say "Go: $gover ($(command -v go))"

say "downloading Go modules: go mod download (in $repo)"
(cd "$repo" && go mod download) || die "go mod download failed (see above): is the Go module proxy ($(go env GOPROXY)) reachable?"

say "done in $(($(date +%s) - start))s"
