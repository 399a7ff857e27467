#!/bin/sh
#
# vm/build-image.sh [OUT.qcow2]: the Debian 12 appliance image (make
# vm-image).  As root, without loop devices or mounts of the image:
# mmdebstrap builds the tree (with a package cache kept in vm/cache),
# mke2fs -d turns it into a file system, and the disk is put together
# by hand: an MBR partition at 1 MiB, GRUB's boot sector and a core image
# in the gap before it.  Needs the binaries built (make all).

set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$top/vm/smarthostd.qcow2}
cache=${VM_CACHE:-$top/vm/cache}
rootsize=${VM_ROOT_SIZE:-2048}		# MiB; grown at first boot to the disk
suite=bookworm
mirror=${VM_MIRROR:-http://deb.debian.org/debian}
security=${VM_SECURITY_MIRROR:-http://deb.debian.org/debian-security}

# What a smarthost needs and no more: the kernel, systemd with its
# network and resolver, dbus (ACPI power-off), sshd, nftables, freshclam,
# openssl for the first boot's certificate, the daemon's libraries, and
# sfdisk and resize2fs to grow the root file system, an editor.
packages="linux-image-cloud-amd64 initramfs-tools systemd-sysv udev dbus
	systemd-resolved openssh-server nftables clamav-freshclam openssl
	ca-certificates libevent-2.1-7 libbsd0 liblmdb0 libtls26 libcrypt1
	libc-ares2 libspf2-2 zlib1g libclamav12 libnftables1 fdisk e2fsprogs
	iproute2 procps nano"

[ "$(id -u)" = 0 ] || { echo "build-image.sh: must run as root" >&2; exit 1; }
for f in smarthostd/smarthostd smarthostctl/smarthostctl \
    etc/systemd/smarthostd.service etc/nftables.conf; do
	[ -e "$top/$f" ] || { echo "build-image.sh: $f is missing" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/var/tmp}/smarthostd-vm.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
mkdir -p "$cache"
start=$(date +%s)

mmdebstrap --mode=root --variant=minbase --quiet \
    --include="$(echo $packages | tr ' ' ,)" \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --skip=download/empty --skip=essential/unlink \
    --setup-hook='mkdir -p "$1"/var/cache/apt/archives' \
    --setup-hook="sync-in '$cache' /var/cache/apt/archives" \
    --essential-hook='mkdir -p "$1"/etc/initramfs-tools/conf.d &&
	echo MODULES=list > "$1"/etc/initramfs-tools/conf.d/smarthost.conf' \
    --customize-hook="sync-out /var/cache/apt/archives '$cache'" \
    --customize-hook="'$top/vm/customize.sh' \"\$1\" '$top'" \
    $suite "$work/root" \
    "deb $mirror $suite main" "deb $mirror $suite-updates main" \
    "deb $security $suite-security main"
echo "build-image.sh: tree built in $(($(date +%s) - start))s"

# The root file system, then the disk: 1 MiB for the MBR and GRUB's
# core image, the partition after it.
mke2fs -q -t ext4 -L smarthost -d "$work/root" "$work/root.ext4" \
    "${rootsize}M"
truncate -s "$((rootsize + 1))M" "$work/disk.raw"
echo 'start=2048, type=83, bootable' | sfdisk -q "$work/disk.raw"
dd if="$work/root.ext4" of="$work/disk.raw" bs=1M seek=1 conv=notrunc,sparse \
    status=none
grub-mkimage -O i386-pc -o "$work/core.img" -p '(hd0,msdos1)/boot/grub' \
    biosdisk part_msdos ext2
[ "$(stat -c %s "$work/core.img")" -lt $((2047 * 512)) ] ||
    { echo "build-image.sh: GRUB core image too large" >&2; exit 1; }
# grub-bios-setup refuses image files.  boot.img loads the sector after
# the MBR (its default), and the core image lists its own sectors.
dd if=/usr/lib/grub/i386-pc/boot.img of="$work/disk.raw" bs=440 count=1 \
    conv=notrunc status=none
dd if="$work/core.img" of="$work/disk.raw" bs=512 seek=1 conv=notrunc \
    status=none
qemu-img convert -c -O qcow2 "$work/disk.raw" "$work/out.qcow2"
mv "$work/out.qcow2" "$out"
echo "build-image.sh: $out, $(du -h "$out" | cut -f1), in $(($(date +%s) - start))s"
