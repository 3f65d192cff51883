#!/usr/bin/env bash
# scripts/libvirt-env.sh — the real libvirt + QEMU test environment: a cached
# guest kit and private libvirtd instances in their own network namespaces.
# Run as root. No vmtrust logic lives here.
#
#   libvirt-env.sh build
#       Builds the guest kit into
#       ${VMTRUST_FIXTURES:-/var/cache/vmtrust/fixtures}/libvirt-<recipe>/,
#       <recipe> being the first 16 hex digits of the sha256 of this file
#       (internal/vmtest computes the same name). Contents:
#         vmlinuz            a Debian kernel (linux-image-cloud-amd64's bzImage,
#                            downloaded with apt-get download, not the host's /boot)
#         kernel-version     its version string
#         initramfs.cpio.gz  busybox-static; /init prints
#                            "VMTRUST-GUEST-MARKER <name> up" on ttyS0, <name>
#                            from the kernel argument vmtrust.name=, then powers
#                            off (poweroff -f), or stays up with vmtrust.hold=1.
#                            With vmtrust.net=1 it first loads the kernel's
#                            virtio NIC modules (virtio_net, virtio_pci and
#                            their dependencies, in /lib/modules/NN-*.ko, NN
#                            the load order), brings lo and eth0 up (IPv6 DAD
#                            off) and adds the addresses of vmtrust.ip=
#                            (CIDR, comma-separated or repeated); with
#                            vmtrust.run=<base64> it runs that busybox sh
#                            script, output on ttyS0, before the marker, so
#                            the marker means the script has finished
#         root.qcow2         a tiny ext4 root disk (the guest need not mount it)
#         tools.ext4         the attack tools for network tests from inside a
#                            guest, copied from this host's packages with the
#                            libraries they load (hping3, arping, arpspoof,
#                            tcpdump, ip, python3 with scapy): a raw ext4
#                            image (no journal) whose root a guest mounts
#                            read-only (virtio_blk is loaded with the NIC
#                            modules) and chroots into. Install them first
#                            (scripts/setup.sh).
#       Atomic (temp dir + rename) and idempotent; the directory is the last
#       line on stdout. Downloaded .debs are kept in <base>/.debs.
#
#   libvirt-env.sh start NAME [HOOK]
#       Starts virtlogd -d and libvirtd -d inside a new network namespace
#       vmtrust-NAME-<random> (loopback up, nothing else: no traffic leaves it)
#       and a private mount namespace in which /etc/libvirt, /run/libvirt,
#       /var/lib/libvirt, /var/log/libvirt and /var/cache/libvirt are bind
#       mounts of directories private to this instance. So the instance has
#       its own libvirtd.conf, qemu.conf, hooks directory, domain state, logs
#       and PID files, and neither the host's libvirt nor concurrent instances
#       see it. HOOK, when given, is installed as the instance's
#       /etc/libvirt/hooks/qemu before libvirtd starts.
#       Prints two lines, last on stdout:
#         VMTRUST_LIBVIRT_URI=qemu+unix:///system?socket=<dir>/sock/libvirt-sock
#         VMTRUST_LIBVIRT_NETNS=vmtrust-NAME-<random>
#
#   libvirt-env.sh stop NAME|NETNS      stop-all
#       Destroys the instance's domains, kills only the PIDs it recorded (QEMU
#       PID files in its private /run/libvirt/qemu, virtlogd and libvirtd PID
#       files, then any process left in its own network namespace), deletes
#       the namespace and the instance directory.
#
# Hooks (libvirt 9.0): the hooks directory is the compile-time constant
# SYSCONFDIR/libvirt/hooks (/etc/libvirt/hooks). Neither --config,
# XDG_CONFIG_HOME nor LIBVIRT_CONFIG_DIR moves it for the privileged (system)
# daemon; qemu.conf is likewise read from /etc/libvirt. The private mount
# namespace is what makes the hooks directory private: /etc/libvirt is a bind
# mount of <dir>/etc inside it, and the host sees the same files under
# <dir>/etc/hooks. libvirtd only notices a hook that existed when it started.
#
# Layout of an instance: ${VMTRUST_LIBVIRT_RUN:-/run/vmtrust/libvirt}/<netns>/
#   etc/ run/ lib/ log/ cache/   the private libvirt directories
#   sock/                        libvirtd's sockets (unix_sock_dir)
#   virtlogd.pid libvirtd.pid    recorded daemon PIDs
#   libvirtd.log virtlogd.log    daemon logs
set -euo pipefail
umask 022
export LC_ALL=C
export PATH=$PATH:/usr/sbin:/sbin

log() { printf 'libvirt-env: %s\n' "$*" >&2; }
die() {
	printf 'libvirt-env: ERROR: %s\n' "$*" >&2
	exit 1
}

script=$(readlink -f -- "${BASH_SOURCE[0]}")
recipe=$(sha256sum -- "$script" | cut -c1-16)
base=${VMTRUST_FIXTURES:-/var/cache/vmtrust/fixtures}
kit=$base/libvirt-$recipe
rundir=${VMTRUST_LIBVIRT_RUN:-/run/vmtrust/libvirt}

need_root() { [ "$(id -u)" -eq 0 ] || die "$1 needs root"; }
# mod_order DIR MOD...: the files under DIR of the kernel modules MOD and
# of those they depend on (modinfo's depends), dependencies first, each once
# (mod_seen holds the names already printed).
mod_seen=" "
mod_order() {
	local dir=$1 m f d
	shift
	for m in "$@"; do
		[[ $mod_seen == *" $m "* ]] && continue
		f=$(find "$dir" \( -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" \) -print | head -n1)
		[ -n "$f" ] || die "kernel module $m is not in the kernel package"
		d=$(modinfo -F depends "$f") || die "modinfo $f failed"
		# shellcheck disable=SC2086 # the names are words
		mod_order "$dir" ${d//,/ }
		mod_seen="$mod_seen$m "
		printf '%s\n' "$f"
	done
}

need_cmds() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || die "$c is not installed: run scripts/setup.sh (as root)"
	done
}

# --- build ------------------------------------------------------------------------

# tools_copy ROOT PATH...: copies each PATH into ROOT at its canonical
# directory (Debian 12 has merged /usr, and so has ROOT), a symbolic link
# together with what it points to.
tools_copy() {
	local root=$1 p d
	shift
	for p in "$@"; do
		[ -e "$p" ] || continue
		d=$(readlink -f -- "$(dirname -- "$p")")
		p=$d/$(basename -- "$p")
		if [ -e "$root$p" ] || [ -L "$root$p" ]; then continue; fi
		mkdir -p -- "$root$d"
		cp -a -- "$p" "$root$p"
		if [ -L "$p" ]; then tools_copy "$root" "$(readlink -f -- "$p")"; fi
	done
	return 0
}

# build_tools IMAGE: the attack tools' root (see tools.ext4 above) as a raw
# ext4 image without a journal, sized to its contents.
build_tools() {
	local img=$1 root=$tmp/tools d b
	mkdir -p "$root/usr/bin" "$root/usr/sbin" "$root/usr/lib" "$root/usr/lib64"
	for d in bin sbin lib lib64; do ln -s "usr/$d" "$root/$d"; done
	for b in hping3 arping arpspoof tcpdump ip; do
		tools_copy "$root" "$(command -v "$b")"
	done
	tools_copy "$root" /usr/bin/python3
	for d in /usr/lib/python3.11 /usr/lib/python3/dist-packages/scapy; do
		[ -d "$d" ] || die "$d is missing (Debian's python3 and python3-scapy)"
		mkdir -p -- "$root$d"
		cp -a -- "$d/." "$root$d/"
	done
	for d in test idlelib ensurepip lib2to3 tkinter pydoc_data config-3.11-x86_64-linux-gnu site-packages dist-packages; do
		rm -rf -- "${root:?}/usr/lib/python3.11/$d"
	done
	tools_copy "$root" /etc/protocols /etc/services /etc/ethertypes
	# The shared libraries every ELF file loads (ldd fails on the rest).
	find "$root" -type f \( -perm -u+x -o -name '*.so*' \) -print0 |
		while IFS= read -r -d '' b; do { ldd "$b" 2>/dev/null || true; }; done |
		awk '/=> \//{print $3} /^\t\/lib/{print $1}' | sort -u |
		while read -r b; do tools_copy "$root" "$b"; done
	mkdir -p "$root/proc" "$root/sys" "$root/dev" "$root/tmp" "$root/run"
	# tcpdump gives up its privileges to the user tcpdump.
	printf 'root:x:0:0:root:/tmp:/bin/sh\ntcpdump:x:101:101::/nonexistent:/usr/sbin/nologin\n' >"$root/etc/passwd"
	printf 'root:x:0:\ntcpdump:x:101:\n' >"$root/etc/group"
	chroot "$root" /usr/bin/python3 -c 'import scapy.all' >/dev/null 2>&1 ||
		die "the tools root is incomplete: python3 cannot import scapy in it"
	chroot "$root" /usr/sbin/hping3 --version >/dev/null 2>&1 || die "the tools root is incomplete: hping3 does not run in it"
	local kib
	kib=$(du -sk --apparent-size "$root" | cut -f1)
	E2FSPROGS_FAKE_TIME=1700000000 mkfs.ext4 -q -F -O ^has_journal -d "$root" -U 6e1f0c2a-9b3d-4c5e-8f7a-2b4c6d8e0f1a \
		-L vmtrust-tools "$img" "$((kib * 13 / 10 / 1024 + 16))M" >&2
	rm -rf --one-file-system -- "$root"
}

cmd_build() {
	if [ -d "$kit" ]; then
		log "guest kit for recipe $recipe is up to date"
		printf '%s\n' "$kit"
		return 0
	fi
	need_root "build"
	need_cmds apt-get apt-cache dpkg-deb cpio gzip mkfs.ext4 qemu-img flock modinfo ldd \
		hping3 arping arpspoof tcpdump ip
	/usr/bin/python3 -c "import scapy" 2>/dev/null || die "Debian's python3-scapy is not installed: run scripts/setup.sh (as root)"
	[ -x /bin/busybox ] && [ -z "$(ldd /bin/busybox 2>/dev/null | grep '=>' || true)" ] ||
		die "/bin/busybox is missing or not static: install busybox-static"
	mkdir -p "$base/.debs"
	exec 8>>"$base/.libvirt-lock"
	flock 8
	if [ -d "$kit" ]; then # built by a concurrent run while we waited
		printf '%s\n' "$kit"
		return 0
	fi
	local tmp
	tmp=$(mktemp -d "$base/.libvirt-build-XXXXXX")
	trap 'rm -rf --one-file-system -- "$tmp"' EXIT

	# The kernel: the package linux-image-cloud-amd64 depends on today.
	local pkg deb
	pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ {print $2; exit}')
	[ -n "$pkg" ] || die "cannot resolve linux-image-cloud-amd64 to a kernel package (apt-get update?)"
	deb=$(ls "$base/.debs/${pkg}_"*.deb 2>/dev/null | head -n1 || true)
	if [ -z "$deb" ]; then
		log "downloading $pkg"
		(cd "$base/.debs" && apt-get download -q "$pkg" >&2) || die "apt-get download $pkg failed"
		deb=$(ls "$base/.debs/${pkg}_"*.deb | head -n1)
	fi
	mkdir "$tmp/deb"
	dpkg-deb -x "$deb" "$tmp/deb"
	local vmlinuz
	vmlinuz=$(ls "$tmp/deb/boot/vmlinuz-"* | head -n1)
	[ -f "$vmlinuz" ] || die "$deb holds no /boot/vmlinuz-*"
	cp -- "$vmlinuz" "$tmp/vmlinuz"
	printf '%s\n' "${vmlinuz##*/vmlinuz-}" >"$tmp/kernel-version"

	# The initramfs, with the NIC modules of the same kernel (the cloud
	# kernel builds virtio_net and virtio_pci as modules), uncompressed and
	# numbered in load order.
	local ir=$tmp/initramfs
	mkdir -p "$ir/bin" "$ir/dev" "$ir/proc" "$ir/sys" "$ir/tmp" "$ir/lib/modules"
	local mods m n=10
	mods=$(mod_order "$tmp/deb/lib/modules" virtio_net virtio_pci virtio_blk)
	for m in $mods; do
		case $m in
		*.ko.xz) xz -dc -- "$m" >"$ir/lib/modules/$n-$(basename "$m" .ko.xz).ko" ;;
		*.ko.zst) zstd -qdc -- "$m" >"$ir/lib/modules/$n-$(basename "$m" .ko.zst).ko" ;;
		*) cp -- "$m" "$ir/lib/modules/$n-$(basename "$m")" ;;
		esac
		n=$((n + 1))
	done
	rm -rf -- "$tmp/deb"
	cp -- /bin/busybox "$ir/bin/busybox"
	ln -s busybox "$ir/bin/sh"
	mknod -m 600 "$ir/dev/console" c 5 1
	cat >"$ir/init" <<'EOF'
#!/bin/busybox sh
# vmtrust test guest: print the marker on the serial console, then power off.
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t devtmpfs devtmpfs /dev 2>/dev/null
name=unnamed
hold=0
net=0
ips=
run=
for a in $(/bin/busybox cat /proc/cmdline); do
	case $a in
	vmtrust.name=*) name=${a#vmtrust.name=} ;;
	vmtrust.hold=1) hold=1 ;;
	vmtrust.net=1) net=1 ;;
	vmtrust.ip=*) ips="$ips,${a#vmtrust.ip=}" ;;
	vmtrust.run=*) run=${a#vmtrust.run=} ;;
	esac
done
/bin/busybox hostname "$name"
if [ "$net" = 1 ] || [ -n "$run" ]; then
	/bin/busybox mkdir -p /sbin /usr/bin /usr/sbin
	/bin/busybox --install -s
	export PATH=/bin:/sbin:/usr/bin:/usr/sbin
fi
if [ "$net" = 1 ]; then
	mount -t sysfs sysfs /sys
	for m in /lib/modules/*.ko; do
		insmod "$m" || echo "VMTRUST-GUEST insmod $m failed" >/dev/ttyS0
	done
	i=0
	while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	echo 0 >/proc/sys/net/ipv6/conf/default/accept_dad
	echo 0 >/proc/sys/net/ipv6/conf/eth0/accept_dad
	ip link set lo up
	ip link set eth0 up
	for a in $(echo "$ips" | tr , ' '); do
		ip addr add "$a" dev eth0 || echo "VMTRUST-GUEST ip addr add $a failed" >/dev/ttyS0
	done
fi
if [ -n "$run" ]; then
	echo "$run" | base64 -d >/tmp/run.sh
	sh /tmp/run.sh >/dev/ttyS0 2>&1
fi
echo "VMTRUST-GUEST-MARKER $(/bin/busybox hostname) up" >/dev/ttyS0
if [ "$hold" = 1 ]; then
	while :; do /bin/busybox sleep 3600; done
fi
/bin/busybox poweroff -f
EOF
	chmod 755 "$ir/init"
	(cd "$ir" && find . -print0 | sort -z | cpio --null --reproducible -o -H newc --quiet) | gzip -9n >"$tmp/initramfs.cpio.gz"
	rm -rf -- "$ir"

	# The root disk: 16 MiB ext4 with a marker file, as qcow2.
	mkdir -p "$tmp/rootfs/etc"
	printf 'vmtrust libvirt test root %s\n' "$recipe" >"$tmp/rootfs/etc/vmtrust-root"
	E2FSPROGS_FAKE_TIME=1700000000 mkfs.ext4 -q -F -d "$tmp/rootfs" -U 3a1c5e7f-2b4d-4f6a-8c0e-1d3f5a7b9c2e \
		-L vmtrust-root "$tmp/root.raw" 16M >&2
	qemu-img convert -f raw -O qcow2 "$tmp/root.raw" "$tmp/root.qcow2"
	rm -rf -- "$tmp/root.raw" "$tmp/rootfs"

	build_tools "$tmp/tools.ext4"

	chmod 755 "$tmp"
	mv -T -- "$tmp" "$kit"
	trap - EXIT
	local d
	for d in "$base"/libvirt-*; do
		[ -d "$d" ] && [ "$d" != "$kit" ] && [[ ${d##*/} =~ ^libvirt-[0-9a-f]{16}$ ]] || continue
		log "removing old guest kit $d"
		rm -rf --one-file-system -- "$d"
	done
	log "built the guest kit ($(cat "$kit/kernel-version"))"
	printf '%s\n' "$kit"
}

# --- start ------------------------------------------------------------------------

cmd_start() {
	local name=${1:-} hook=${2:-}
	[[ $name =~ ^[a-z0-9][a-z0-9-]{0,23}$ ]] || die "start: NAME must match [a-z0-9][a-z0-9-]{0,23}, got '$name'"
	need_root "start"
	need_cmds ip libvirtd virtlogd virsh
	if [ -n "$hook" ]; then
		[ -f "$hook" ] || die "start: hook $hook is not a file"
	fi
	local ns dir
	ns=vmtrust-$name-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
	dir=$rundir/$ns
	mkdir -p "$rundir"
	mkdir -m 700 "$dir"
	mkdir -p "$dir"/{etc/hooks,etc/qemu,run,lib,log,cache,sock}
	if [ -n "$hook" ]; then
		cp -- "$hook" "$dir/etc/hooks/qemu"
		chmod 755 "$dir/etc/hooks/qemu"
	fi
	cat >"$dir/etc/libvirtd.conf" <<EOF
unix_sock_dir = "$dir/sock"
unix_sock_group = "root"
unix_sock_rw_perms = "0700"
unix_sock_ro_perms = "0700"
unix_sock_admin_perms = "0700"
auth_unix_rw = "none"
auth_unix_ro = "none"
log_outputs = "3:file:$dir/libvirtd.log"
EOF
	cat >"$dir/etc/virtlogd.conf" <<EOF
log_outputs = "3:file:$dir/virtlogd.log"
EOF
	# QEMU as root without cgroups or a security driver: the instance runs in
	# a namespace where /sys/fs/cgroup is not mounted.
	cat >"$dir/etc/qemu.conf" <<EOF
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
cgroup_controllers = [ ]
EOF
	ip netns add "$ns"
	ip -n "$ns" link set lo up
	# ip netns exec enters a new mount namespace (slave of the host's), so the
	# bind mounts below are seen only by the daemons started here.
	if ! ip netns exec "$ns" /bin/sh -eu -c '
		dir=$1
		for m in etc:/etc/libvirt run:/run/libvirt lib:/var/lib/libvirt log:/var/log/libvirt cache:/var/cache/libvirt; do
			mkdir -p "${m#*:}"
			mount --bind "$dir/${m%%:*}" "${m#*:}"
		done
		virtlogd -d --config "$dir/etc/virtlogd.conf" --pid-file "$dir/virtlogd.pid"
		libvirtd -d --config "$dir/etc/libvirtd.conf" --pid-file "$dir/libvirtd.pid"
	' sh "$dir" >&2; then
		cmd_stop "$ns" || true
		die "start: the daemons did not start (logs: $dir/*.log)"
	fi
	local uri="qemu+unix:///system?socket=$dir/sock/libvirt-sock" i
	for i in $(seq 1 300); do
		virsh -q -c "$uri" version >/dev/null 2>&1 && break
		if [ "$i" -eq 300 ]; then
			local logs
			logs=$(tail -n 20 "$dir/libvirtd.log" 2>/dev/null || true)
			cmd_stop "$ns" || true
			die "start: libvirtd did not answer on $uri within 30s: $logs"
		fi
		sleep 0.1
	done
	log "libvirtd $(cat "$dir/libvirtd.pid") and virtlogd $(cat "$dir/virtlogd.pid") up in netns $ns"
	printf 'VMTRUST_LIBVIRT_URI=%s\nVMTRUST_LIBVIRT_NETNS=%s\n' "$uri" "$ns"
}

# --- stop -------------------------------------------------------------------------

# pid_of FILE EXE: the PID in FILE when that process runs EXE (not a reused PID).
pid_of() {
	local pid exe
	[ -f "$1" ] || return 1
	pid=$(head -c 32 "$1" | tr -d ' \n')
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
	[[ ${exe##*/} == $2* ]] || return 1
	printf '%s\n' "$pid"
}

kill_wait() {
	local pid=$1 i
	kill -TERM "$pid" 2>/dev/null || return 0
	for i in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
}

stop_one() {
	local ns=$1 dir=$rundir/$1 uri f pid dom
	[ -d "$dir" ] || die "stop: no instance $ns in $rundir"
	uri="qemu+unix:///system?socket=$dir/sock/libvirt-sock"
	if [ -S "$dir/sock/libvirt-sock" ] && pid_of "$dir/libvirtd.pid" libvirtd >/dev/null; then
		while read -r dom; do
			[ -n "$dom" ] && timeout 10 virsh -q -c "$uri" destroy "$dom" >/dev/null 2>&1 || true
		done < <(timeout 10 virsh -q -c "$uri" list --name 2>/dev/null || true)
	fi
	for f in "$dir"/run/qemu/*.pid; do
		pid=$(pid_of "$f" qemu-system) && kill_wait "$pid"
	done
	pid=$(pid_of "$dir/libvirtd.pid" libvirtd) && kill_wait "$pid"
	pid=$(pid_of "$dir/virtlogd.pid" virtlogd) && kill_wait "$pid"
	if [ -e "/run/netns/$ns" ]; then
		# Anything left in our own namespace was started by us.
		for pid in $(ip netns pids "$ns" 2>/dev/null); do kill_wait "$pid"; done
		ip netns delete "$ns"
	fi
	rm -rf --one-file-system -- "$dir"
	log "stopped $ns"
}

cmd_stop() {
	local arg=${1:-} d found=0
	[[ $arg =~ ^[a-z0-9][a-z0-9-]{0,40}$ ]] || die "stop: bad NAME '$arg'"
	need_root "stop"
	if [[ $arg == vmtrust-* ]] && [ -d "$rundir/$arg" ]; then
		stop_one "$arg"
		return
	fi
	for d in "$rundir"/vmtrust-"$arg"-*; do
		[[ ${d##*/} =~ ^vmtrust-$arg-[0-9a-f]{8}$ ]] || continue
		stop_one "${d##*/}"
		found=1
	done
	[ "$found" = 1 ] || die "stop: no instance named $arg"
}

cmd_stop_all() {
	need_root "stop-all"
	local d
	for d in "$rundir"/vmtrust-*; do
		[ -d "$d" ] && [[ ${d##*/} =~ ^vmtrust-[a-z0-9-]+-[0-9a-f]{8}$ ]] || continue
		stop_one "${d##*/}"
	done
}

case ${1:-} in
build) cmd_build ;;
start) cmd_start "${2:-}" "${3:-}" ;;
stop) cmd_stop "${2:-}" ;;
stop-all) cmd_stop_all ;;
*) die "usage: $0 build | start NAME [HOOK] | stop NAME|NETNS | stop-all" ;;
esac
