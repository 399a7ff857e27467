"""vm/create-vm.sh's argument handling, through --dry-run (no VM is
started, nothing is written); vm/openbsd/mksite.sh's checks of its
arguments, which come before it reads the ISO; and the starter
configurations that the Debian appliance's first boot and the OpenBSD
site set's install.site write, through `smarthostd -n`."""

import os
import re
import shutil
import subprocess
import tempfile

REGRESS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(REGRESS)
CREATE_VM = os.path.join(REPO, "vm", "create-vm.sh")
FIRSTBOOT = os.path.join(REPO, "vm", "rootfs", "usr", "local", "libexec",
                         "smarthostd-firstboot")
SMARTHOSTD = os.path.join(REPO, "smarthostd", "smarthostd")
MKSITE = os.path.join(REPO, "vm", "openbsd", "mksite.sh")
INSTALL_SITE = os.path.join(REPO, "vm", "openbsd", "site", "install.site")
WWW = os.path.join(REPO, "vm", "openbsd", "www")
# A real public key; its private half was thrown away.
ADMIN_KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOVOgRA/InnChTrwCjqWJTa"
             "luYG34+lhpUJUjtKQY+E+ admin@example.com")


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


def test_vm_args_iso_installs_on_vnc_and_waits_for_the_reboot():
    line = virt_install_line(create_vm("--iso", "install76.iso"))
    for want in ("--graphics vnc,listen=127.0.0.1 ", "--noautoconsole ",
                 "--serial pty ", "--wait=-1"):
        assert want in line, (want, line)
    assert "--graphics none" not in line, line


def test_vm_args_image_keeps_no_graphics_and_does_not_wait():
    r = create_vm("--image", "a.qcow2")
    line = virt_install_line(r)
    assert "--graphics none --noautoconsole " in line, line
    assert "--wait" not in line and "--serial pty" not in line, line
    assert r.stderr == "", r.stderr


def test_vm_args_iso_serial_log_takes_the_serial_port():
    line = virt_install_line(create_vm("--iso", "install76.iso",
                                       "--serial-log", "/tmp/mx1.log"))
    assert "--serial file,path=/tmp/mx1.log " in line, line
    assert "--serial pty" not in line, line


def test_vm_args_iso_says_how_to_answer_the_installer():
    r = create_vm("--iso", "install76.iso", "--name", "mx1")
    virt_install_line(r)
    for want in ("vm/openbsd/mksite.sh install76.iso 192.168.122.1 ",
                 "python3 -m http.server -b 192.168.122.1 "
                 "-d vm/openbsd/www 80",
                 "(A)utoinstall or (S)hell?\" answer A",
                 "http://192.168.122.1/install.conf",
                 "vncdisplay mx1", "start mx1", "console mx1",
                 "libvirt-qemu"):
        assert want in r.stderr, (want, r.stderr)


def mksite(*args):
    return subprocess.run(["sh", MKSITE] + list(args), capture_output=True,
                          text=True, timeout=30)


def test_vm_mksite_usage_errors():
    for args in ((), ("a.iso",), ("a.iso", "192.168.122.1"),
                 ("a.iso", "192.168.122.1", "k.pub", "more")):
        r = mksite(*args)
        assert r.returncode == 2, (args, r.returncode, r.stderr)
        assert r.stderr.startswith("usage: mksite.sh "), (args, r.stderr)


def test_vm_mksite_refuses_a_bad_key_before_reading_the_iso():
    had_www = os.path.exists(WWW)
    bad = {
        "placeholder": "ssh-ed25519 AAAA...REPLACE... admin@example.com\n",
        "empty": "",
        "two keys": ADMIN_KEY + "\n" + ADMIN_KEY + "\n",
        "private": "-----BEGIN OPENSSH PRIVATE KEY-----\n"
                   "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n"
                   "-----END OPENSSH PRIVATE KEY-----\n",
        "no type": ADMIN_KEY.split(" ", 1)[1] + "\n",
    }
    if shutil.which("ssh-keygen"):
        # Looks like a key, but its base64 is not one.
        bad["not a key"] = "ssh-ed25519 AAAAnotakeyatall admin@example.com\n"
    with tempfile.TemporaryDirectory() as tmp:
        cases = [("missing", os.path.join(tmp, "none.pub"))]
        for why, text in bad.items():
            path = os.path.join(tmp, why.replace(" ", "_") + ".pub")
            with open(path, "w") as f:
                f.write(text)
            cases.append((why, path))
        for why, path in cases:
            r = mksite(os.path.join(tmp, "no.iso"), "192.168.122.1", path)
            assert r.returncode == 1, (why, r.returncode, r.stderr)
            assert re.search(r"ssh public key|ssh-keygen cannot read|"
                             r"cannot read the admin's public key",
                             r.stderr), (why, r.stderr)
            assert "no.iso" not in r.stderr, (why, r.stderr)
    assert os.path.exists(WWW) == had_www


def test_vm_mksite_takes_a_good_key_and_then_wants_the_iso():
    had_www = os.path.exists(WWW)
    with tempfile.TemporaryDirectory() as tmp:
        key = os.path.join(tmp, "id_ed25519.pub")
        with open(key, "w") as f:
            f.write(ADMIN_KEY + "\n")
        iso = os.path.join(tmp, "no.iso")
        for server in ("192.168.122.1", "192.168.122.1:8080",
                       "http://host.example"):
            r = mksite(iso, server, key)
            assert r.returncode == 1, (server, r.stderr)
            assert "cannot read " + iso in r.stderr, (server, r.stderr)
        for server in ("", "a b", "host/dir", "https://host"):
            r = mksite(iso, server, key)
            assert r.returncode == 1, (server, r.stderr)
            assert "bad server" in r.stderr, (server, r.stderr)
    assert os.path.exists(WWW) == had_www


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


def _check_starter(conf):
    """smarthostd -n accepts a starter configuration, with a certificate
    made for it in place of the appliance's."""
    with tempfile.TemporaryDirectory() as tmp:
        conf = conf.replace("/etc/ssl/private/smarthostd.key",
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


def test_vm_starter_config_is_accepted_by_smarthostd():
    r = subprocess.run(["sh", FIRSTBOOT, "--print-starter"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "greylist" in r.stdout and "relay host" in r.stdout, r.stdout
    _check_starter(r.stdout)


def test_vm_openbsd_starter_config_is_accepted_by_smarthostd():
    with open(INSTALL_SITE) as f:
        site = f.read()
    m = re.search(r"\tcat >/etc/smarthostd.conf <<EOT\n(.*?)\nEOT\n", site,
                  re.S)
    assert m, "no starter configuration in install.site"
    conf = m.group(1).replace("$host", "smarthost.my.domain")
    assert "$" not in conf, conf
    assert "firewall pf {" in conf and "relay host" in conf, conf
    _check_starter(conf)
