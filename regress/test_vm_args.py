"""vm/create-vm.sh's argument handling, through --dry-run (no VM is
started, nothing is written), and the appliance's starter configuration,
which its first boot writes, through `smarthostd -n`."""

import os
import subprocess
import tempfile

REGRESS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(REGRESS)
CREATE_VM = os.path.join(REPO, "vm", "create-vm.sh")
FIRSTBOOT = os.path.join(REPO, "vm", "rootfs", "usr", "local", "libexec",
                         "smarthostd-firstboot")
SMARTHOSTD = os.path.join(REPO, "smarthostd", "smarthostd")


def create_vm(*args):
    return subprocess.run([CREATE_VM, "--dry-run"] + list(args),
                          capture_output=True, text=True, timeout=30)


def virt_install_line(r):
    assert r.returncode == 0, r.stderr
    lines = [l for l in r.stdout.splitlines() if l.startswith("virt-install")]
    assert len(lines) == 1, r.stdout
    return lines[0]


def test_vm_args_image_defaults_are_the_seed_sizes():
    r = create_vm("--image", "x.qcow2")
    line = virt_install_line(r)
    for want in ("--name smarthost ", "--memory 2048 ", "--vcpus 2 ",
                 "--import ", "--osinfo debian11 ",
                 "--network network=default,model=virtio ",
                 "path=/var/lib/libvirt/images/smarthost.qcow2,"):
        assert want in line, (want, line)
    assert "qemu-img convert -O qcow2 x.qcow2 " \
        "/var/lib/libvirt/images/smarthost.qcow2" in r.stdout, r.stdout
    assert "qemu-img resize -q /var/lib/libvirt/images/smarthost.qcow2 " \
        "20G" in r.stdout, r.stdout


def test_vm_args_options_reach_virt_install():
    r = create_vm("--image", "a.qcow2", "--name", "mx1", "--memory", "4096",
                  "--vcpus", "4", "--bridge", "br0", "--disk-size", "40G",
                  "--disk", "/tmp/mx1.qcow2", "--domain-type", "qemu")
    line = virt_install_line(r)
    for want in ("--name mx1 ", "--memory 4096 ", "--vcpus 4 ",
                 "--network bridge=br0,model=virtio ", "--virt-type qemu ",
                 "path=/tmp/mx1.qcow2,"):
        assert want in line, (want, line)
    assert "resize -q /tmp/mx1.qcow2 40G" in r.stdout, r.stdout


def test_vm_args_config_goes_through_fw_cfg_quoted():
    r = create_vm("--image", "a.qcow2", "--config", "/etc/my mail.conf",
                  "--network", "none")
    line = virt_install_line(r)
    assert "--network none " in line, line
    assert "'--qemu-commandline=-fw_cfg name=opt/smarthostd/conf," \
        "file=/etc/my mail.conf'" in line, line


def test_vm_args_iso_installs_with_a_new_disk():
    line = virt_install_line(create_vm("--iso", "install76.iso"))
    assert "--cdrom install76.iso " in line, line
    assert "size=20," in line and "--import" not in line, line


def test_vm_args_bad_arguments_are_refused():
    cases = [
        ((), "one of --image or --iso"),
        (("--image", "a", "--iso", "b"), "exclude each other"),
        (("--image", "a", "--memory"), "--memory needs a value"),
        (("--image", "a", "--memory", "2G"), "--memory is in MB"),
        (("--image", "a", "--memory", "256"), "at least 512"),
        (("--image", "a", "--vcpus", "0"), "--vcpus must be"),
        (("--image", "a", "--disk-size", "20T"), "--disk-size is in GB"),
        (("--image", "a", "--disk-size", "2"), "at least 3G"),
        (("--image", "a", "--name", "a b"), "bad --name"),
        (("--image", "a", "--domain-type", "xen"), "kvm or qemu"),
        (("--iso", "a", "--config", "c"), "--config goes with --image"),
        (("--image", "a", "--frobnicate"), "unknown option --frobnicate"),
    ]
    for args, why in cases:
        r = create_vm(*args)
        assert r.returncode != 0, (args, r.stdout)
        assert why in r.stderr, (args, r.stderr)
        assert "virt-install" not in r.stdout, (args, r.stdout)


def test_vm_starter_config_is_accepted_by_smarthostd():
    r = subprocess.run(["sh", FIRSTBOOT, "--print-starter"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    with tempfile.TemporaryDirectory() as tmp:
        conf = r.stdout.replace("/etc/ssl/private/smarthostd.key",
                                tmp + "/k").replace(
                                    "/etc/ssl/smarthostd.crt", tmp + "/c")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                        "-nodes", "-days", "1", "-subj", "/CN=t",
                        "-keyout", tmp + "/k", "-out", tmp + "/c"],
                       check=True, capture_output=True)
        with open(tmp + "/smarthostd.conf", "w") as f:
            f.write(conf)
        n = subprocess.run([SMARTHOSTD, "-n", "-f", tmp + "/smarthostd.conf"],
                           capture_output=True, text=True, timeout=30)
        assert n.returncode == 0, n.stderr + conf
        assert "greylist" in conf and "relay host" in conf, conf
