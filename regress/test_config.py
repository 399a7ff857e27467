"""The configuration parser, through `smarthostd -n` and `-nv`.

regress/config holds the cases:

  NAME.conf + NAME.ok         a good configuration and its -nv output
  NAME.args (optional)        more arguments for it, e.g. -D macro=value
  bad-NAME.conf + .err        a bad configuration and its exact stderr

Every case runs on a copy of regress/config in a temporary directory, with
the secret files made private (git keeps no modes); `-D dir=COPY` names
the copy, and "@DIR@" in the .ok and .err files stands for it.  Each good
configuration is also printed, parsed again and printed again: the two
printouts must be byte-identical.
"""

import os
import re
import shutil
import socket
import subprocess
import tempfile

REGRESS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(REGRESS)
CONFDIR = os.path.join(REGRESS, "config")
SMARTHOSTD = os.path.join(REPO, "smarthostd", "smarthostd")
SHIPPED = os.path.join(REPO, "etc", "smarthostd.conf")


def smarthostd(*args):
    return subprocess.run([SMARTHOSTD] + list(args), capture_output=True,
                          text=True, timeout=60)


def file_mode(name):
    if name.startswith("world-readable"):
        return 0o644
    if name.endswith(".key") or name.startswith("passwd"):
        return 0o600
    return 0o644


class ConfigCopy:
    """regress/config copied to a temporary directory, modes set."""

    def __enter__(self):
        self.top = tempfile.mkdtemp(prefix="smarthostd-config-")
        self.dir = os.path.join(self.top, "config")
        shutil.copytree(CONFDIR, self.dir)
        files = os.path.join(self.dir, "files")
        for name in os.listdir(files):
            os.chmod(os.path.join(files, name), file_mode(name))
        return self

    def __exit__(self, *exc):
        shutil.rmtree(self.top, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.dir, name)

    def expected(self, name):
        with open(os.path.join(CONFDIR, name)) as f:
            return f.read().replace("@DIR@", self.dir)

    def args(self, name):
        path = os.path.join(CONFDIR, name + ".args")
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return f.read().split()

    def run_good(self, name):
        proc = smarthostd("-nv", "-D", "dir=" + self.dir,
                          *self.args(name), "-f", self.path(name + ".conf"))
        assert proc.returncode == 0 and proc.stderr == "", \
            "%s: exit %d\n%s" % (name, proc.returncode, proc.stderr)
        return proc.stdout


def show_diff(expected, got, label):
    import difflib
    return "".join(difflib.unified_diff(
        expected.splitlines(True), got.splitlines(True),
        "expected " + label, "got"))


def case_names(bad):
    names = []
    for f in sorted(os.listdir(CONFDIR)):
        if not f.endswith(".conf"):
            continue
        name = f[:-5]
        if name.startswith("bad-") == bad:
            names.append(name)
    return names


def make_golden(name):
    def test():
        with ConfigCopy() as c:
            got = c.run_good(name)
            want = c.expected(name + ".ok")
            assert got == want, show_diff(want, got, name + ".ok")
    return test


def make_roundtrip(name):
    def test():
        with ConfigCopy() as c:
            first = c.run_good(name)
            again = os.path.join(c.top, "printed.conf")
            with open(again, "w") as f:
                f.write(first)
            proc = smarthostd("-nv", "-f", again)
            assert proc.returncode == 0 and proc.stderr == "", \
                "re-parsing the printout failed:\n%s\n%s" % (proc.stderr,
                                                            first)
            assert proc.stdout == first, show_diff(first, proc.stdout,
                                                   "first printout")
    return test


def make_error(name):
    def test():
        with ConfigCopy() as c:
            proc = smarthostd("-nv", "-D", "dir=" + c.dir,
                              "-f", c.path(name + ".conf"))
            want = c.expected(name + ".err")
            assert proc.returncode == 1, "exit %d, stderr:\n%s" % (
                proc.returncode, proc.stderr)
            assert proc.stdout == "", proc.stdout
            assert proc.stderr == want, show_diff(want, proc.stderr,
                                                  name + ".err")
    return test


def ident(name):
    return name.replace("-", "_").replace(".", "_")


for _name in case_names(bad=False):
    globals()["test_config_golden_" + ident(_name)] = make_golden(_name)
    globals()["test_config_roundtrip_" + ident(_name)] = \
        make_roundtrip(_name)
for _name in case_names(bad=True):
    globals()["test_config_error_" + ident(_name[4:])] = make_error(_name)


PARSER = os.path.join(REPO, "smarthostd", "parse.y")
MANUAL = os.path.join(REPO, "man", "smarthostd.conf.5")


def manual_keywords():
    """The words that follow Ic or Cm on the manual's macro lines."""
    macro = re.compile(r"^[A-Z][a-z]{1,2}$")
    words = set()
    with open(MANUAL) as f:
        for line in f:
            if not line.startswith("."):
                continue
            keyword = False
            for tok in line[1:].split():
                if tok in ("Ic", "Cm"):
                    keyword = True
                elif macro.match(tok):
                    keyword = False
                elif keyword:
                    words.add(tok.strip(",.;"))
    return words


def test_config_every_keyword_is_in_the_manual():
    with open(PARSER) as f:
        src = f.read()
    start = src.index("static const struct keywords keywords[]")
    table = src[start:src.index("};", start)]
    keywords = re.findall(r'\{ "([^"]+)",', table)
    assert len(keywords) > 50, keywords
    documented = manual_keywords()
    missing = [k for k in keywords if k not in documented]
    assert missing == [], "not in smarthostd.conf.5: %s" % missing


def test_config_every_case_has_its_expectation():
    for name in case_names(bad=False):
        assert os.path.exists(os.path.join(CONFDIR, name + ".ok")), name
    for name in case_names(bad=True):
        assert os.path.exists(os.path.join(CONFDIR, name + ".err")), name


def test_config_check_only_says_configuration_ok():
    with ConfigCopy() as c:
        proc = smarthostd("-n", "-D", "dir=" + c.dir,
                          "-f", c.path("full.conf"))
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout + proc.stderr == "configuration OK\n", \
            (proc.stdout, proc.stderr)


def test_config_empty_file_prints_every_default():
    with ConfigCopy() as c:
        empty = c.path("empty.conf")
        open(empty, "w").close()
        proc = smarthostd("-nv", "-f", empty)
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
        want = c.expected("minimal.ok").replace(
            'hostname "minimal.example.org"',
            'hostname "%s"' % socket.gethostname())
        assert proc.stdout == want, show_diff(want, proc.stdout, "defaults")


def test_config_missing_file_is_named():
    with ConfigCopy() as c:
        missing = c.path("no-such.conf")
        proc = smarthostd("-n", "-f", missing)
        assert proc.returncode == 1
        assert proc.stderr == "%s: No such file or directory\n" % missing, \
            proc.stderr


def test_config_command_line_macro_wins_over_the_file():
    with ConfigCopy() as c:
        out = c.run_good("macros")
        assert 'state "/srv/smarthostd/from-the-command-line/state"' in out
        proc = smarthostd("-nv", "-f", c.path("macros.conf"))
        assert proc.returncode == 0, proc.stderr
        assert 'state "/srv/smarthostd/from-the-file/state"' in proc.stdout


DEV = os.path.join(REPO, "etc", "smarthostd-dev.conf")


def test_config_dev_example_is_valid_with_what_make_run_makes():
    # make run makes var/dev.crt, var/dev.key and var/passwd (0600).
    top = tempfile.mkdtemp(prefix="smarthostd-dev-")
    try:
        for name, text, mode in (
                ("dev.crt", "certificate\n", 0o644),
                ("dev.key", "key\n", 0o600),
                ("passwd", "test $2b$10$x\n", 0o600)):
            path = os.path.join(top, name)
            with open(path, "w") as f:
                f.write(text)
            os.chmod(path, mode)
        proc = smarthostd("-n", "-D", "vardir=" + top, "-f", DEV)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout + proc.stderr == "configuration OK\n", \
            (proc.stdout, proc.stderr)
        os.unlink(os.path.join(top, "dev.key"))
        proc = smarthostd("-n", "-D", "vardir=" + top, "-f", DEV)
        assert proc.returncode == 1
        assert ('pki "dev": %s/dev.key: No such file or directory' % top
                in proc.stderr), proc.stderr
    finally:
        shutil.rmtree(top, ignore_errors=True)


# The shipped example names system paths (/etc/mail, /etc/ssl).  It is
# checked in a private mount namespace where an overlay on /etc, or bind
# mounts over /etc/mail and /etc/ssl, supply those files; the real /etc
# is never touched.
SHIPPED_SCRIPT = r"""
set -e
stage=$1 work=$2 bin=$3 conf=$4
mount -t tmpfs tmpfs "$work"
mkdir "$work/upper" "$work/work"
cp -a "$stage/." "$work/upper/"
if ! mount -t overlay overlay \
    -o "lowerdir=/etc,upperdir=$work/upper,workdir=$work/work" /etc \
    2>/dev/null; then
	if [ ! -d /etc/mail ]; then
		echo "cannot overlay /etc, and /etc/mail does not exist" >&2
		exit 99
	fi
	mount --bind "$work/upper/mail" /etc/mail
	mount --bind "$work/upper/ssl" /etc/ssl
fi
exec "$bin" -n -f "$conf"
"""


def run_shipped(passwd_mode):
    top = tempfile.mkdtemp(prefix="smarthostd-shipped-")
    try:
        stage = os.path.join(top, "stage")
        work = os.path.join(top, "work")
        os.makedirs(os.path.join(stage, "mail"))
        os.makedirs(os.path.join(stage, "ssl", "private"))
        os.makedirs(work)
        files = {
            "mail/aliases": ("postmaster: root\n", 0o644),
            "mail/passwd-smtps": ("alice@example.com $2b$10$x\n",
                                  passwd_mode),
            "mail/relay-recipients": ("alice@example.com\n", 0o644),
            "mail/nospamd": ("192.0.2.10\n", 0o644),
            "mail/common_domains": ("google.com\n", 0o644),
            "mail/blacklist": ("203.0.113.5\n", 0o644),
            "ssl/example.com.crt": ("certificate\n", 0o644),
            "ssl/private/example.com.key": ("key\n", 0o600),
        }
        for rel, (text, mode) in files.items():
            path = os.path.join(stage, rel)
            with open(path, "w") as f:
                f.write(text)
            os.chmod(path, mode)
        cmd = ["unshare", "--mount", "--propagation", "private"]
        if os.geteuid() != 0:
            cmd.append("--map-root-user")
        cmd += ["sh", "-c", SHIPPED_SCRIPT, "sh", stage, work, SMARTHOSTD,
                SHIPPED]
        proc = subprocess.run(cmd, capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode != 99, proc.stderr
        return proc
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_config_shipped_example_is_valid():
    proc = run_shipped(0o600)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout + proc.stderr == "configuration OK\n", \
        (proc.stdout, proc.stderr)


def test_config_shipped_example_refuses_a_readable_password_file():
    with open(SHIPPED) as f:
        lineno = [i for i, line in enumerate(f, 1)
                  if "auth <passwd>" in line][0]
    proc = run_shipped(0o644)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == (
        "%s:%d: table passwd: /etc/mail/passwd-smtps: secret file is "
        "group- or world-accessible (mode 0644); chmod 0600 it\n" %
        (SHIPPED, lineno)), proc.stderr


GREY_SETTINGS = """
table spamtraps { "trap@example.org" }
greylist {
	passtime 2s
	trapexp 1h
	trap <spamtraps>
	ipv6-prefix 56
	max-entries 1000
	map-size 16M
}
tarpit {
	stutter 250ms
	reply 450
	max-connections 5
}
blocklist "local" file "%(tmp)s/block" message "%%A is 100%%%% listed"
whitelist "friends" file "%(tmp)s/white"
dnsbl "bl.example.test" weight 2
dnsbl "wl.example.test" weight -3
dnsbl threshold 2
"""


def reload_reaches_every_process(d, settings):
    # Each child checks what it receives and dies on anything it does not
    # expect: every one committing the reload is what proves the transfer.
    from lib import CHILDREN, base_config
    d.write_config(base_config(d.tmp, settings))
    r = d.ctl("reload")
    assert r.stdout.strip() == "configuration reloaded", r.stdout
    d.wait_log("configuration reloaded from")
    # The parent says "reloaded" once every child has said ready; each
    # logs its commit when the commit message reaches it, a moment later.
    from lib import wait_for
    for name in CHILDREN:
        wait_for(lambda: d.logtext().count(
            "%s: configuration committed" % name) >= 2, 10,
            "%s committing the reload" % name)
        assert d.logtext().count(
            "%s: configuration committed" % name) == 2, d.logtext()
    assert sorted(d.pids()) == sorted(["parent"] + CHILDREN)


def test_config_grey_settings_reach_every_process_on_reload():
    from lib import Daemon
    with Daemon() as d:
        for name, text in (("block", "192.0.2.1\n"),
                           ("white", "192.0.2.0/24\n")):
            with open(os.path.join(d.tmp, name), "w") as f:
                f.write(text)
        reload_reaches_every_process(d, GREY_SETTINGS % {"tmp": d.tmp})


def one_option(c, block, text):
    """smarthostd -nv on a configuration of one block holding one line:
    the file's path and the run."""
    path = c.path("one-option.conf")
    with open(path, "w") as f:
        f.write("%s {\n\t%s\n}\n" % (block, text))
    return path, smarthostd("-nv", "-f", path)


# quarantine-expire at its bounds and past them, alone in a queue block:
# None means accepted.
QUARANTINE_EXPIRE_VALUES = [
    ("1s", None),
    ("365d", None),
    ("8760h", None),
    ("never", None),
    ("0", "quarantine-expire must be between 1s and 365d"),
    ("366d", "quarantine-expire must be between 1s and 365d"),
    ("forever", 'invalid duration "forever"'),
    ("off", "syntax error"),
    ("", "syntax error"),
]


def test_config_quarantine_expire_values_at_and_past_their_bounds():
    with ConfigCopy() as c:
        for value, error in QUARANTINE_EXPIRE_VALUES:
            path, proc = one_option(c, "queue", "quarantine-expire " + value)
            if error is None:
                assert proc.returncode == 0, (value, proc.stderr)
                printed = "\tquarantine-expire %s\n" % (
                    "365d" if value == "8760h" else value)
                assert printed in proc.stdout, (value, proc.stdout)
                continue
            assert proc.returncode == 1, value
            assert proc.stderr == "%s:2: %s\n" % (path, error), \
                (value, proc.stderr)


def test_config_quarantine_expire_reaches_every_process_on_reload():
    # config_recv checks it again in every child: its longest value and
    # never must pass there as they pass parse.y.
    from lib import Daemon
    with Daemon("queue { quarantine-expire 365d }\n") as d:
        reload_reaches_every_process(d, "queue { quarantine-expire never }\n")


# Each scan value at its bounds and just past them, alone in a scan block:
# None means accepted.
SCAN_VALUES = [
    ("threads 1", None),
    ("threads 64", None),
    ("threads 65", "threads must be between 1 and 64"),
    ("limits { max-filesize 1K max-scansize 1K }", None),
    ("limits { max-filesize 4G max-scansize 4G }", None),
    ("limits { max-filesize 4194305K }",
     "max-filesize must be between 1K and 4G"),
    ("limits { max-scansize 1023 }",
     "max-scansize must be between 1K and 4G"),
    ("limits { max-recursion 64 max-files 1 max-scantime 1s }", None),
    ("limits { max-recursion 65 }",
     "max-recursion must be between 1 and 64"),
    ("limits { max-files 0 }", "max-files must be between 1 and 1000000"),
    ("limits { max-scantime 3601s }",
     "max-scantime must be between 1s and 1h"),
    ("on-limit reject", None),
    ("on-error accept", None),
    ("on-error reject", "on-error must be tempfail or accept"),
    ("score helo-bare -100", None),
    ("score helo-bare 100.0", None),
    ("score helo-bare 100.01",
     "score helo-bare must be between -100 and 100"),
    ('spamassassin "unix:/run/spamd.sock" timeout 1s', None),
    ('spamassassin "127.0.0.1:783" timeout 10m', None),
    ('spamassassin "127.0.0.1:65535"', None),
    ('spamassassin "spamd.example.org:783"', "invalid"),
    ('spamassassin "[2001:db8::1]:1"', None),
    ('spamassassin "unix:/run/spamd.sock" timeout 601s',
     "spamassassin timeout must be between 1s and 10m"),
    ('spamassassin "unix:/run/spamd.sock" timeout 0',
     "spamassassin timeout must be between 1s and 10m"),
    ('spamassassin "unix:/%s"' % ("x" * 106), None),
    ('spamassassin "unix:/%s"' % ("x" * 107), "invalid"),
    ('spamassassin "unix:relative.sock"', "invalid"),
    ('spamassassin "unix:"', "invalid"),
    ('spamassassin "localhost"', "invalid"),
    ('spamassassin "localhost:"', "invalid"),
    ('spamassassin "localhost:0"', "invalid"),
    ('spamassassin "localhost:65536"', "invalid"),
    ('spamassassin "::1:783"', "invalid"),
    ('spamassassin "[::1]783"', "invalid"),
    ('spamassassin "[127.0.0.1]:783"', "invalid"),
    ('spamassassin "bad host:783"', "invalid"),
    ('spamassassin ":783"', "invalid"),
    ("spam tag 0 reject 1 quarantine 0.5", None),
    ("spam tag -1000 reject 1000", None),
    ('spam tag 1 reject 2 subject "%s"' % ("x" * 63), None),
]


def test_config_scan_values_at_and_past_their_bounds():
    with ConfigCopy() as c:
        for text, error in SCAN_VALUES:
            path, proc = one_option(c, "scan", text)
            if error is None:
                assert proc.returncode == 0, (text, proc.stderr)
                continue
            if error == "invalid":
                error = ('invalid spamassassin address "%s": "unix:/path" '
                         'or "address:port" expected' %
                         text.split('"')[1])
            assert proc.returncode == 1, text
            assert proc.stderr == "%s:2: %s\n" % (path, error), \
                (text, proc.stderr)


SCAN_SETTINGS = """
scan {
	threads 3
	limits { max-filesize 1M max-scansize 2M max-recursion 4 \\
	    max-files 100 max-scantime 5s }
	on-limit reject
	on-error accept
	spam tag 2.5 reject 9 quarantine 5 subject "[SPAM]"
	spamassassin "127.0.0.1:1783" timeout 2s
	bad-headers reject
	score spf-fail 4
	score dnsbl -1.5
	banned-files { "*.exe" }
}
action "scanned" relay scan spam tag 1 reject 3 quarantine 2 subject "x"
action "virus" relay scan virus-only
match from src "192.0.2.1" action "scanned"
match from src "192.0.2.2" action "virus"
"""


def test_config_scan_settings_reach_every_process_on_reload():
    # The scan block and the actions' scan options, as parse.y allows them.
    from lib import Daemon
    with Daemon() as d:
        reload_reaches_every_process(d, SCAN_SETTINGS)


# Each firewall block option at its bounds and just past them, alone in a
# pf and in an nftables block: None means accepted.
FIREWALL_VALUES = [
    ("block auth-failures 0", None),
    ("block auth-failures 1000 within 1m for 1m", None),
    ("block auth-failures 1 within 1d for 30d", None),
    ("block auth-failures 1001",
     "block auth-failures must be between 0 and 1000"),
    ("block auth-failures 5 within 59s",
     "block auth-failures within must be between 1m and 1d"),
    ("block auth-failures 5 within 86401s",
     "block auth-failures within must be between 1m and 1d"),
    ("block auth-failures 5 for 59s",
     "block auth-failures for must be between 1m and 30d"),
    ("block auth-failures 5 within 10m for 721h",
     "block auth-failures for must be between 1m and 30d"),
    ("block auth-failures 5 for 1h within 10m", "syntax error"),
    ("block trapped no", None),
    ("block blocklists yes", None),
    ("block trapped on", "syntax error"),
    ("block blocklists", "syntax error"),
]


def test_config_firewall_values_at_and_past_their_bounds():
    with ConfigCopy() as c:
        for kind in ("pf", "nftables"):
            for text, error in FIREWALL_VALUES:
                path, proc = one_option(c, "firewall " + kind, text)
                if error is None:
                    assert proc.returncode == 0, (kind, text, proc.stderr)
                    continue
                assert proc.returncode == 1, (kind, text)
                assert proc.stderr == "%s:2: %s\n" % (path, error), \
                    (kind, text, proc.stderr)


FIREWALL_SETTINGS = """
firewall nftables {
	table "ip6 smarthostd-regress"
	set white "%s"
	set block "b"
	block auth-failures 1000 within 1d for 30d
	block trapped no
	block blocklists yes
}
""" % ("w" * 62)


def test_config_firewall_settings_reach_every_process_on_reload():
    # config_recv checks the firewall settings again in every child.
    from lib import Daemon
    with Daemon() as d:
        reload_reaches_every_process(d, FIREWALL_SETTINGS)


NFT_EXAMPLE = os.path.join(REPO, "etc", "nftables.conf")
PF_EXAMPLE = os.path.join(REPO, "etc", "pf.conf")


def example_firewall(path):
    """The firewall statement that an example's header comment names,
    checked by smarthostd -nv and returned as it prints it."""
    with open(path) as f:
        text = f.read()
    m = re.search(r"^#\t(firewall .*?^#\t\})$", text, re.M | re.S)
    assert m, "%s: no firewall statement in its header" % path
    statement = re.sub(r"^#\t", "", m.group(1), flags=re.M) + "\n"
    with ConfigCopy() as c:
        path = c.path("example-firewall.conf")
        with open(path, "w") as f:
            f.write(statement)
        proc = smarthostd("-nv", "-f", path)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    return proc.stdout


def test_config_nftables_example_declares_the_sets_the_daemon_makes():
    printed = example_firewall(NFT_EXAMPLE)
    assert 'table "inet smarthostd"' in printed, printed
    with open(NFT_EXAMPLE) as f:
        text = f.read()
    assert re.search(r"^table inet smarthostd \{", text, re.M)
    names = re.findall(r'^\tset \S+ "([^"]+)"$', printed, re.M)
    assert len(names) == 4, printed
    for name in names:
        for suffix, kind in (("", "ipv4_addr"), ("6", "ipv6_addr")):
            decl = ("\tset %s%s {\n\t\ttype %s\n"
                    "\t\tflags interval,timeout\n\t}\n" % (name, suffix,
                                                           kind))
            assert decl in text, "%s lacks\n%s" % (NFT_EXAMPLE, decl)
    # nft's check mode parses and validates against the kernel, and
    # changes nothing.
    proc = subprocess.run(["nft", "-c", "-f", NFT_EXAMPLE],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_config_pf_example_declares_every_table_persist():
    # pfctl is OpenBSD's; here the tables are checked against the
    # firewall statement the example is written for.
    printed = example_firewall(PF_EXAMPLE)
    names = re.findall(r'^\ttable \S+ "([^"]+)"$', printed, re.M)
    assert len(names) == 4, printed
    with open(PF_EXAMPLE) as f:
        text = f.read()
    for name in names:
        assert re.search(r"^table <%s> persist\b" % re.escape(name), text,
                         re.M), "%s: no table <%s> persist" % (PF_EXAMPLE,
                                                              name)
    block = names[2]
    assert re.search(r"^block in quick .* from <%s> \\$" % block, text,
                     re.M), "%s: no block in quick from <%s>" % (PF_EXAMPLE,
                                                                 block)
    rules = [line for line in text.splitlines()
             if not line.startswith("#")]
    assert not [line for line in rules if "divert-to" in line], rules
