"""make install into a DESTDIR, and what it installs: the files and their
modes, a config that a second install keeps, the installed binary
checking the installed example, the systemd unit as systemd-analyze sees
it, and the unit's capability bounding set running the real daemon."""

import os
import re
import shutil
import subprocess
import tempfile

import test_config
from lib import (REPO, Daemon, free_port, queue_config, smtp_message,
                 smtp_send)

PREFIX = "/usr/local"

# Path below DESTDIR, mode.
INSTALLED = {
    "usr/local/sbin/smarthostd": 0o555,
    "usr/local/sbin/smarthostctl": 0o555,
    "usr/local/share/man/man8/smarthostd.8": 0o444,
    "usr/local/share/man/man8/smarthostctl.8": 0o444,
    "usr/local/share/man/man5/smarthostd.conf.5": 0o444,
    "usr/local/share/examples/smarthostd/pf.conf": 0o444,
    "usr/local/share/examples/smarthostd/nftables.conf": 0o444,
    "usr/local/share/examples/smarthostd/syslog.conf": 0o444,
    "usr/local/share/examples/smarthostd/newsyslog.conf": 0o444,
    "etc/smarthostd.conf": 0o644,
    "etc/smarthostd.conf.example": 0o644,
    "lib/systemd/system/smarthostd.service": 0o644,
    "lib/systemd/system/smarthostd-backup.service": 0o644,
    "lib/systemd/system/smarthostd-backup.timer": 0o644,
    "usr/local/share/examples/smarthostd/cron.example": 0o444,
    "var/backups/smarthostd": 0o700,
    "etc/logrotate.d/smarthostd": 0o644,
    "etc/rsyslog.d/smarthostd.conf": 0o644,
    "var/smarthostd": 0o700,
    "var/empty": 0o755,
}

UNITDIR = "lib/systemd/system"
UNIT = os.path.join(UNITDIR, "smarthostd.service")
UNITS = ["smarthostd.service", "smarthostd-backup.service",
         "smarthostd-backup.timer"]


def make_install(destdir):
    r = subprocess.run(["make", "-s", "-C", REPO, "install",
                        "DESTDIR=" + destdir, "PREFIX=" + PREFIX],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout + r.stderr


class Installed:
    """A make install into a fresh temporary DESTDIR."""

    def __enter__(self):
        self.dest = tempfile.mkdtemp(prefix="smarthostd-install-")
        self.output = make_install(self.dest)
        return self

    def __exit__(self, *exc):
        shutil.rmtree(self.dest, ignore_errors=True)

    def path(self, rel):
        return os.path.join(self.dest, rel)

    def unit_option(self, name):
        with open(self.path(UNIT)) as f:
            m = re.search(r"^%s=(.*)$" % name, f.read(), re.M)
        assert m is not None, "%s= not in the unit" % name
        return m.group(1).split()


def test_install_puts_every_file_with_its_mode():
    with Installed() as inst:
        for rel, mode in INSTALLED.items():
            st = os.stat(inst.path(rel))
            assert st.st_mode & 0o7777 == mode, \
                "%s: mode %o, not %o" % (rel, st.st_mode & 0o7777, mode)
        assert "DESTDIR is set: not creating the users" in inst.output, \
            inst.output
        with open(inst.path(UNIT)) as f:
            unit = f.read()
        assert "ExecStart=%s/sbin/smarthostd\n" % PREFIX in unit, unit


def test_install_keeps_a_changed_config():
    with Installed() as inst:
        conf = inst.path("etc/smarthostd.conf")
        example = inst.path("etc/smarthostd.conf.example")
        with open(conf, "w") as f:
            f.write("# mine\n")
        os.chmod(conf, 0o600)
        os.unlink(example)
        output = make_install(inst.dest)
        with open(conf) as f:
            assert f.read() == "# mine\n"
        assert os.stat(conf).st_mode & 0o777 == 0o600
        assert "keeping %s" % conf in output, output
        with open(example) as f, \
                open(os.path.join(REPO, "etc", "smarthostd.conf")) as g:
            assert f.read() == g.read()


def test_install_binary_checks_the_installed_example():
    """The installed smarthostd -n accepts the installed config, with the
    files it names staged as test_config does for the shipped one."""
    with Installed() as inst:
        saved = test_config.SMARTHOSTD, test_config.SHIPPED
        test_config.SMARTHOSTD = inst.path("usr/local/sbin/smarthostd")
        test_config.SHIPPED = inst.path("etc/smarthostd.conf")
        try:
            proc = test_config.run_shipped(0o600)
        finally:
            test_config.SMARTHOSTD, test_config.SHIPPED = saved
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == "configuration OK\n", proc.stderr


def test_install_systemd_unit_verifies():
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        print("skip: no systemd-analyze here, the unit is not verified")
        return
    with Installed() as inst:
        # The units name /usr/local/sbin; point them into DESTDIR so that
        # systemd-analyze finds the installed binaries and manuals.
        units = []
        for name in UNITS:
            with open(inst.path(os.path.join(UNITDIR, name))) as f:
                text = f.read().replace(PREFIX + "/sbin/",
                                        inst.path("usr/local/sbin/"))
            units.append(os.path.join(inst.dest, name))
            with open(units[-1], "w") as f:
                f.write(text)
        env = dict(os.environ, MANPATH=inst.path("usr/local/share/man"),
                   SYSTEMD_LOG_COLOR="0")
        r = subprocess.run([analyze, "verify"] + units, capture_output=True,
                           text=True, timeout=60, env=env)
        # verify exits 0 after warnings about options it ignores.
        assert r.returncode == 0 and r.stdout + r.stderr == "", \
            r.stdout + r.stderr


class ConfinedDaemon(Daemon):
    """The installed daemon, as root, in the foreground, confined as the
    unit confines it: its capability bounding set and no_new_privs."""

    def __init__(self, binary, caps, extra_config=""):
        super().__init__(extra_config=extra_config)
        self.argv = ["setpriv", "--bounding-set",
                     "-all," + ",".join("+" + c.lower()[len("cap_"):]
                                        for c in caps),
                     "--no-new-privs", binary, "-d", "-v", "-f", self.conf]

    def start(self, wait=True):
        self.log = open(self.logpath, "ab")
        self.proc = subprocess.Popen(self.argv, stdout=self.log,
                                     stderr=self.log)
        if wait:
            self.wait_running()
        return self

    def stop(self):
        super().stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


def test_install_unit_capabilities_run_the_daemon():
    """Mail is accepted and queued, and a reload commits, by a daemon
    with only the unit's capabilities: setpriv execs it, so the parent
    is the process the test waits for."""
    if os.geteuid() != 0:
        print("skip: not root, the daemon would not drop privileges")
        return
    with Installed() as inst:
        caps = inst.unit_option("CapabilityBoundingSet")
        assert inst.unit_option("NoNewPrivileges") == ["yes"]
        port = free_port()
        with ConfinedDaemon(inst.path("usr/local/sbin/smarthostd"), caps,
                            queue_config(port)) as d:
            code, text = smtp_send(port, smtp_message())
            assert code == 250 and "queued as" in text, (code, text)
            d.ctl("reload")
            d.wait_log("configuration reloaded")
            assert all(p["state"] == "running"
                       for p in d.status()["processes"])


def test_install_unit_without_sys_chroot_does_not_run():
    """The bounding set is what confines the daemon: without
    CAP_SYS_CHROOT a child cannot chroot and the daemon exits."""
    if os.geteuid() != 0:
        print("skip: not root, the daemon would not drop privileges")
        return
    with Installed() as inst:
        caps = [c for c in inst.unit_option("CapabilityBoundingSet")
                if c != "CAP_SYS_CHROOT"]
        d = ConfinedDaemon(inst.path("usr/local/sbin/smarthostd"), caps)
        try:
            d.start(wait=False)
            assert d.wait_exit(30) != 0
            assert "chroot" in d.logtext(), d.logtext()
        finally:
            d.stop()
