#!/bin/sh
#
# vm/test-libvirt.sh [IMAGE]: the appliance's boot and mail test (as make
# vm-test) through libvirt: vm/create-vm.sh --image defines and starts
# the domain (type qemu: no KVM needed), on a libvirtd and virtlogd that
# the test starts by hand inside its own network namespace.  Port 25 is
# forwarded with a user netdev on the qemu command line, since
# --network none leaves the domain without libvirt networking.

set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
for c in virt-install virsh libvirtd virtlogd qemu-system-x86_64; do
	command -v "$c" >/dev/null 2>&1 || {
		echo "test-libvirt.sh: $c is missing: apt-get install" \
		    "libvirt-daemon-system virtinst qemu-system-x86" >&2
		exit 1
	}
done
if pgrep -x libvirtd >/dev/null 2>&1; then
	echo "test-libvirt.sh: a libvirtd runs already; stop it first" >&2
	exit 1
fi
exec python3 "$top/vm/vmtest.py" libvirt "${1:-$top/vm/smarthostd.qcow2}"
