#!/usr/bin/env python3
"""The appliance's boot test: mail goes through smarthostd in the VM.

    python3 vm/vmtest.py qemu [IMAGE]      (make vm-test)
    python3 vm/vmtest.py libvirt [IMAGE]   (vm/test-libvirt.sh)

It boots the image with software emulation and -snapshot (the image is
never changed), hands the VM a test configuration through fw_cfg (the
first boot takes opt/smarthostd/conf in place of the starter
configuration), forwards a loopback port to the guest's port 25, waits
for smarthostd's banner, sends a message that greylisting first defers,
sends it again after passtime, checks that an smtp-sink on the host's
loopback (10.0.2.2 to the guest) received it, and powers the VM off with
ACPI.  Everything runs in a new network namespace: nothing leaves this
machine, and the guest's DNS and freshclam go nowhere."""

import grp
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time

VM = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(VM)
sys.path.insert(0, os.path.join(REPO, "regress"))
import lib  # noqa: E402

BOOT_TIMEOUT = 180
PASSTIME = 3

TEST_CONFIG = """\
hostname "vm.smarthost.test"
user "_smarthostd"
state "/var/smarthostd"
listen on all port 25
greylist {
	passtime %(passtime)ds
}
action "inbound" relay host "smtp://10.0.2.2:%(sink)d" greylist
match for domain "example.com" action "inbound"
"""


def enter_network_namespace():
    if os.environ.get("SMARTHOSTD_VM_NETNS") == "1":
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        return
    env = dict(os.environ, SMARTHOSTD_VM_NETNS="1")
    cmd = ["unshare", "--net", "--mount", "--fork"]
    os.execvpe(cmd[0], cmd + [sys.executable] + sys.argv, env)


def step(t0, what):
    print("vmtest: %5.1fs %s" % (time.monotonic() - t0, what), flush=True)


def banner(port):
    """smarthostd's 220 banner on port, or None.  User networking
    accepts the connection even when nothing listens in the guest, and
    then closes it: only a 220 line counts."""
    try:
        with socket.create_connection(("127.0.0.1", port), 5) as s:
            s.settimeout(10)
            line = s.makefile("rb").readline().decode(errors="replace")
            return line if line.startswith("220") else None
    except OSError:
        return None


class QemuVM:
    """qemu-system-x86_64 under TCG, with a monitor socket."""

    def __init__(self, image, tmp, port, config):
        self.tmp = tmp
        self.monitor = os.path.join(tmp, "monitor")
        self.console = os.path.join(tmp, "console.log")
        self.args = [
            "qemu-system-x86_64", "-machine", "q35,accel=tcg",
            "-cpu", "max", "-m", "1024", "-smp", "2", "-snapshot",
            "-drive", "file=%s,if=virtio,format=qcow2" % image,
            "-netdev", "user,id=net0,hostfwd=tcp:127.0.0.1:%d-:25" % port,
            "-device", "virtio-net-pci,netdev=net0",
            "-fw_cfg", "name=opt/smarthostd/conf,file=%s" % config,
            "-display", "none", "-serial", "file:%s" % self.console,
            "-monitor", "unix:%s,server,nowait" % self.monitor]
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL)

    def alive(self):
        return self.proc.poll() is None

    def powerdown(self):
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(self.monitor)
            s.sendall(b"system_powerdown\n")
            time.sleep(0.5)

    def wait_off(self, timeout):
        try:
            self.proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def console_tail(self, size=3000):
        try:
            with open(self.console, "rb") as f:
                return f.read()[-size:].decode(errors="replace")
        except OSError:
            return ""


class LibvirtVM:
    """The same VM made by vm/create-vm.sh --image, run by a libvirtd
    and virtlogd started here, in this namespace, with their own runtime
    directories."""

    def __init__(self, image, tmp, port, config):
        self.tmp = tmp
        self.name = "smarthostd-vmtest-%d" % os.getpid()
        self.image = image
        self.port = port
        self.config = config
        self.daemons = []
        self.console = os.path.join(tmp, "console.log")
        self.uri = "qemu:///system"

    def virsh(self, *args, check=True):
        return subprocess.run(["virsh", "-q", "-c", self.uri] + list(args),
                              check=check, capture_output=True, text=True)

    def kvm_device_as_udev_leaves_it(self):
        """Here /dev/kvm is root's, mode 0600 (no udev), while qemu
        itself, probed as root, finds KVM: libvirt then takes every
        capabilities cache for outdated and probes qemu again, about 4 s,
        on each call (4 minutes before the domain started).  In this
        test's own mount namespace a node with Debian's udev ownership,
        root:kvm 0660, is mounted over it; the domain still runs under
        TCG."""
        try:
            st = os.stat("/dev/kvm")
        except FileNotFoundError:
            return
        node = os.path.join(self.tmp, "kvm")
        os.mknod(node, 0o660 | stat.S_IFCHR, st.st_rdev)
        os.chmod(node, 0o660)
        os.chown(node, 0, grp.getgrnam("kvm").gr_gid)
        subprocess.run(["mount", "--bind", node, "/dev/kvm"], check=True)

    def start(self):
        self.kvm_device_as_udev_leaves_it()
        for d in ("virtlogd", "libvirtd"):
            p = subprocess.Popen([d], stdout=subprocess.DEVNULL,
                                 stderr=open(os.path.join(
                                     self.tmp, d + ".log"), "wb"))
            self.daemons.append(p)
        lib.wait_for(lambda: self.virsh("version", check=False)
                     .returncode == 0, 30, "libvirtd")
        print("vmtest: libvirtd answers", flush=True)
        disk = os.path.join(self.tmp, "disk.qcow2")
        subprocess.run([
            os.path.join(VM, "create-vm.sh"), "--name", self.name,
            "--image", self.image, "--disk", disk, "--memory", "1024",
            "--network", "none", "--domain-type", "qemu",
            "--config", self.config, "--qemu-commandline",
            "-netdev user,id=hostfwd0,hostfwd=tcp:127.0.0.1:%d-:25 "
            "-device virtio-net-pci,netdev=hostfwd0,bus=pcie.0,addr=0x10"
            % self.port, "--serial-log", self.console], check=True)

    def alive(self):
        r = self.virsh("domstate", self.name, check=False)
        return r.returncode == 0 and r.stdout.strip() == "running"

    def powerdown(self):
        self.virsh("shutdown", self.name, "--mode", "acpi")

    def wait_off(self, timeout):
        try:
            lib.wait_for(lambda: not self.alive(), timeout, "shut off")
            return True
        except AssertionError:
            return False

    def kill(self):
        if self.daemons:
            self.virsh("destroy", self.name, check=False)
            self.virsh("undefine", self.name, check=False)
            # virt-install made a storage pool of the disk's directory.
            pool = os.path.basename(self.tmp)
            self.virsh("pool-destroy", pool, check=False)
            self.virsh("pool-undefine", pool, check=False)
            for p in reversed(self.daemons):
                p.terminate()
                p.wait(30)
            self.daemons = []

    def console_tail(self, size=3000):
        return QemuVM.console_tail(self, size)


def run(kind, image):
    t0 = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="smarthostd-vmtest-")
    os.chmod(tmp, 0o755)
    port = lib.free_port()
    sink = lib.PostfixSmtpSink(lib.free_port()).start()
    config = os.path.join(tmp, "smarthostd.conf")
    with open(config, "w") as f:
        f.write(TEST_CONFIG % {"passtime": PASSTIME, "sink": sink.port})
    os.chmod(config, 0o644)
    vm = (QemuVM if kind == "qemu" else LibvirtVM)(image, tmp, port, config)
    ok = False
    try:
        vm.start()
        step(t0, "VM started; waiting for smarthostd's banner")
        deadline = time.monotonic() + BOOT_TIMEOUT
        line = None
        while line is None:
            if not vm.alive():
                raise AssertionError("the VM stopped before the banner")
            if time.monotonic() > deadline:
                raise AssertionError("no banner in %ds" % BOOT_TIMEOUT)
            line = banner(port)
            if line is None:
                time.sleep(2)
        booted = time.monotonic()
        step(t0, "banner: " + line.strip())

        message = lib.smtp_message("through the appliance")
        code, text = lib.smtp_send(port, message)
        step(t0, "first try: %d %s" % (code, text))
        if code // 100 != 4:
            raise AssertionError("greylisting did not defer the first "
                                 "try: %d %s" % (code, text))
        time.sleep(PASSTIME + 1)
        code, text = lib.smtp_send(port, message)
        step(t0, "after passtime: %d %s" % (code, text))
        if code != 250:
            raise AssertionError("not accepted after passtime: %d %s"
                                 % (code, text))
        lib.wait_for(lambda: any("through the appliance" in d
                                 for d in sink.dumps()),
                     60, "the message at the smtp-sink")
        step(t0, "the smtp-sink on the host has the message")

        vm.powerdown()
        if not vm.wait_off(120):
            raise AssertionError("the VM did not power off with ACPI")
        step(t0, "powered off; %.0fs after the banner"
             % (time.monotonic() - booted))
        # create-vm.sh grows the disk to 20G: the first boot grows the
        # root file system with it.
        if kind == "libvirt" and not re.search(
                r"root file system: +(19|20)G", vm.console_tail(1 << 24)):
            raise AssertionError("the first boot did not grow the root "
                                 "file system to the 20G disk")
        ok = True
    except AssertionError as e:
        print("vmtest: FAIL: %s" % e, flush=True)
        print("vmtest: the console's last lines:\n" + vm.console_tail())
    finally:
        vm.kill()
        sink.stop()
        shutil.rmtree(sink.tmp, ignore_errors=True)
        if ok:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print("vmtest: kept %s" % tmp)
    print("vmtest: %s %s in %.0fs" % (kind, "passed" if ok else "FAILED",
                                      time.monotonic() - t0))
    return ok


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ("qemu", "libvirt"):
        sys.exit("usage: vmtest.py qemu|libvirt [IMAGE]")
    image = os.path.abspath(sys.argv[2] if len(sys.argv) > 2 else
                            os.path.join(VM, "smarthostd.qcow2"))
    if not os.path.exists(image):
        sys.exit("vmtest.py: no %s: make vm-image" % image)
    enter_network_namespace()
    sys.exit(0 if run(sys.argv[1], image) else 1)


if __name__ == "__main__":
    main()
