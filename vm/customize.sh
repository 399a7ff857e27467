#!/bin/sh
#
# vm/customize.sh ROOT TOP: mmdebstrap's customize hook for the appliance
# image (build-image.sh).  ROOT is the Debian tree, with /proc, /sys and
# /dev mounted by mmdebstrap for the chroot commands; TOP is the source
# tree, whose binaries are already built: the image is Debian 12 like the
# build host, so they run there unchanged.

set -eu
root=$1
top=$2

in_root() {
	chroot "$root" "$@"
}

# What make install puts on a Debian machine, as a package would
# (DESTDIR): the binaries, manuals, units, examples and directories.
# The users and the state directory's owner are the package's job.  The
# example configuration goes again: the first boot writes the starter
# configuration where there is none.
make -s -C "$top" install DESTDIR="$root" >/dev/null
rm "$root/etc/smarthostd.conf"
install -m 0755 "$top/etc/nftables.conf" "$root/etc/nftables.conf"
cp -R "$top/vm/rootfs/." "$root/"

for u in _smarthostd _smarthostd_scan; do
	in_root useradd -r -M -d /var/empty -s /usr/sbin/nologin \
	    -c "smarthostd privsep" "$u"
done
in_root chown _smarthostd:_smarthostd /var/smarthostd

in_root systemctl enable -q smarthostd-firstboot.service smarthostd.service \
    nftables.service systemd-networkd.service systemd-resolved.service \
    clamav-freshclam.service ssh.service

# The console is the first login: root without a password, which must be
# set at once.  sshd refuses root and empty passwords.
in_root passwd -q -d root
in_root chage -d 0 root

# Made at first boot, so that no two appliances share them.
rm -f "$root"/etc/ssh/ssh_host_*
: > "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"

printf '127.0.0.1\tlocalhost\n127.0.1.1\tsmarthost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' \
    > "$root/etc/hosts"
echo 'LABEL=smarthost / ext4 errors=remount-ro 0 1' > "$root/etc/fstab"
ln -sf /run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"

printf '%s\n' virtio_pci virtio_blk virtio_scsi virtio_net sd_mod ahci \
    ext4 qemu_fw_cfg > "$root/etc/initramfs-tools/modules"
in_root update-initramfs -u -k all >/dev/null

# GRUB: its modules and configuration on the root file system; the boot
# sector and the core image are written by build-image.sh.
install -d "$root/boot/grub/i386-pc"
cp /usr/lib/grub/i386-pc/*.mod /usr/lib/grub/i386-pc/*.lst \
    "$root/boot/grub/i386-pc/"
cat > "$root/boot/grub/grub.cfg" <<EOT
set default=0
set timeout=1
serial --unit=0 --speed=115200
terminal_input console serial
terminal_output console serial
menuentry "smarthost appliance" {
	linux /vmlinuz root=LABEL=smarthost ro console=tty0 console=ttyS0,115200n8
	initrd /initrd.img
}
EOT

rm -f "$root"/var/cache/apt/archives/*.deb
rm -rf "$root"/var/lib/apt/lists/*
