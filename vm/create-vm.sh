#!/bin/sh
#
# vm/create-vm.sh: make a smarthost VM with virt-install.
#
#	create-vm.sh --image vm/smarthostd.qcow2 [options]
#	create-vm.sh --iso installNN.iso [options]
#
# --image imports the Debian appliance image (make vm-image): a copy of
# it, grown to the disk size, becomes the VM's disk.  --iso installs
# OpenBSD from its install ISO: the installer runs on a VNC console,
# where you choose (A)utoinstall and give it the install.conf that
# vm/openbsd/mksite.sh made and you serve, with the site set that builds
# and installs smarthostd; see vm/openbsd/README.  --dry-run prints the
# commands instead of running them.

set -eu

usage() {
	cat >&2 <<EOT
usage: create-vm.sh --image FILE.qcow2 | --iso FILE [--name NAME]
	[--memory MB] [--vcpus N] [--bridge BRIDGE | --network NETWORK]
	[--disk-size SIZE] [--disk PATH] [--config smarthostd.conf]
	[--domain-type kvm|qemu] [--osinfo ID] [--qemu-commandline ARGS]
	[--serial-log FILE] [--connect URI] [--dry-run]
EOT
	exit 2
}

die() {
	echo "create-vm.sh: $*" >&2
	exit 1
}

# The value of an option, or an error when it is missing.
need() {
	[ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value"
}

# Print a command with each word quoted for sh, or run it.
run() {
	if [ "$dry_run" = 1 ]; then
		for w in "$@"; do
			case $w in
			*[!A-Za-z0-9_./:=,+@%-]*|'')
				printf "'%s' " "$(printf '%s' "$w" | sed "s/'/'\\\\''/g")" ;;
			*)	printf '%s ' "$w" ;;
			esac
		done
		echo
	else
		"$@"
	fi
}

name=smarthost
memory=2048
vcpus=2
disk_size=20G
bridge=
network=default
image=
iso=
disk=
config=
domain_type=kvm
osinfo=
qemu_cmdline=
serial_log=
connect=qemu:///system
dry_run=0

while [ $# -gt 0 ]; do
	case $1 in
	--name)		need "$@"; name=$2; shift ;;
	--memory)	need "$@"; memory=$2; shift ;;
	--vcpus)	need "$@"; vcpus=$2; shift ;;
	--bridge)	need "$@"; bridge=$2; network=; shift ;;
	--network)	need "$@"; network=$2; bridge=; shift ;;
	--disk-size)	need "$@"; disk_size=$2; shift ;;
	--disk)		need "$@"; disk=$2; shift ;;
	--image)	need "$@"; image=$2; shift ;;
	--iso)		need "$@"; iso=$2; shift ;;
	--config)	need "$@"; config=$2; shift ;;
	--domain-type)	need "$@"; domain_type=$2; shift ;;
	--osinfo)	need "$@"; osinfo=$2; shift ;;
	--qemu-commandline) need "$@"; qemu_cmdline=$2; shift ;;
	--serial-log)	need "$@"; serial_log=$2; shift ;;
	--connect)	need "$@"; connect=$2; shift ;;
	--dry-run)	dry_run=1 ;;
	-h|--help)	usage ;;
	*)		echo "create-vm.sh: unknown option $1" >&2; usage ;;
	esac
	shift
done

[ -n "$image" ] || [ -n "$iso" ] || die "one of --image or --iso is needed"
[ -z "$image" ] || [ -z "$iso" ] || die "--image and --iso exclude each other"
case $name in
''|*[!A-Za-z0-9_.-]*) die "bad --name: $name" ;;
esac
case $memory in
''|*[!0-9]*) die "--memory is in MB, a number: $memory" ;;
esac
[ "$memory" -ge 512 ] || die "--memory: at least 512 MB"
case $vcpus in
''|*[!0-9]*|0) die "--vcpus must be a positive number: $vcpus" ;;
esac
case $disk_size in
*[0-9]G|*[0-9]) ;;
*) die "--disk-size is in GB, as 20 or 20G: $disk_size" ;;
esac
disk_gb=${disk_size%G}
case $disk_gb in
''|*[!0-9]*) die "--disk-size is in GB, as 20 or 20G: $disk_size" ;;
esac
[ "$disk_gb" -ge 3 ] || die "--disk-size: at least 3G"
case $domain_type in
kvm|qemu) ;;
*) die "--domain-type is kvm or qemu: $domain_type" ;;
esac
if [ -n "$config" ]; then
	[ -n "$image" ] || die "--config goes with --image"
	[ "$dry_run" = 1 ] || [ -r "$config" ] || die "cannot read $config"
	config=$(realpath -m "$config")
fi
src=${image:-$iso}
[ "$dry_run" = 1 ] || [ -r "$src" ] || die "cannot read $src"
[ -n "$disk" ] || disk=/var/lib/libvirt/images/$name.qcow2
[ "$dry_run" = 1 ] || [ ! -e "$disk" ] || die "$disk exists; remove it or choose --disk"

if [ -n "$bridge" ]; then
	net="bridge=$bridge,model=virtio"
else
	net=$network
	[ "$network" = none ] || net="network=$network,model=virtio"
fi

# The install ISO's boot loader and installer talk to the VGA console
# only: the install needs a graphical one.  VNC on loopback, for
# virt-viewer or a VNC viewer on "virsh vncdisplay".
graphics=none
[ -z "$iso" ] || graphics=vnc,listen=127.0.0.1
set -- virt-install --connect "$connect" --name "$name" \
    --virt-type "$domain_type" --memory "$memory" --vcpus "$vcpus" \
    --network "$net" --graphics "$graphics" --noautoconsole
if [ -n "$serial_log" ]; then
	set -- "$@" --serial "file,path=$serial_log"
fi
if [ -n "$image" ]; then
	# virt-install 4.1 does not know debian12; debian11 gives the same
	# virtio devices.
	set -- "$@" --import --osinfo "${osinfo:-debian11}" \
	    --machine q35 --disk "path=$disk,format=qcow2,bus=virtio"
	run qemu-img convert -O qcow2 "$image" "$disk"
	run qemu-img resize -q "$disk" "${disk_gb}G"
	[ -z "$config" ] ||
	    set -- "$@" --qemu-commandline="-fw_cfg name=opt/smarthostd/conf,file=$config"
else
	# The installed system's console is com0 (install.conf): a serial
	# port for virsh console, unless --serial-log took it.  The
	# installer ends with a reboot, which ends virt-install's install
	# phase with the VM off; --wait keeps virt-install there to boot
	# it from its disk.
	[ -n "$serial_log" ] || set -- "$@" --serial pty
	set -- "$@" --osinfo "${osinfo:-openbsd7.0}" --cdrom "$iso" \
	    --disk "path=$disk,format=qcow2,size=$disk_gb,bus=virtio" \
	    --wait=-1
fi
[ -z "$qemu_cmdline" ] || set -- "$@" --qemu-commandline="$qemu_cmdline"

# Said before virt-install, which waits for the end of the install.
if [ -n "$iso" ]; then
	vc="virsh --connect $connect"
	cat >&2 <<EOT
create-vm.sh: $name boots the OpenBSD installer on a VNC console.  To
answer it (vm/openbsd/README has the details):
  1. On this host, make the set server's files and serve them (port 80:
     as root):
       vm/openbsd/mksite.sh $iso 192.168.122.1 ~/.ssh/id_ed25519.pub
       python3 -m http.server -b 192.168.122.1 -d vm/openbsd/www 80
     192.168.122.1 is this host on libvirt's network "default"; on
     another network or a bridge, use this host's address there.
  2. Open the console: virt-viewer --connect $connect $name
     (or a VNC viewer on 127.0.0.1, display: $vc vncdisplay $name).
  3. At "(I)nstall, (U)pgrade, (A)utoinstall or (S)hell?" answer A; at
     "Response file location?" give http://192.168.122.1/install.conf
The install then runs by itself and reboots; virt-install waits for that
and boots $name from its disk (if it was interrupted: $vc start $name).
The first boot adds the packages and builds smarthostd; from then on the
console is com0: $vc console $name
qemu runs as libvirt-qemu, which must be able to read $iso
(e.g. keep it in /var/lib/libvirt/images).
EOT
fi
run "$@"
