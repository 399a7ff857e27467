"""Spamtraps, blocklist and whitelist files, DNSBL/DNSWL, explain and the
BLOCK listing against the real daemon (issue 5), with a real dnsmasq on
loopback for the DNS lists.

One daemon is shared by the tests of this file (each test uses its own
client addresses, 127.0.x.y, so that what one test leaves in grey.mdb
cannot decide another's); it is stopped when the run ends.  The reply
codes and the stutter of the tarpit are test_tarpit.py's: here the
stutter is 0 and a tarpitted client is recognised by its RCPT reply,
550 5.7.1 with the list's message, and the connection closing.

Client addresses:
    127.0.0.5    listed in bl.test (A 127.0.0.2), weight 2 = threshold
    127.0.0.6/7  not listed anywhere
    127.0.0.8    bl.test answers 127.255.255.254, an error code
    127.0.0.9    added to the "dyn" blocklist file by a test
    127.0.0.10   listed in wl.test (weight -5): skips greylisting
    127.0.0.11   listed in bl.test and bl2.test (weight 1)
    127.0.0.12   listed in bl2.test alone: under the threshold
    127.0.0.20+  spamtrap tests
    127.0.0.30, 127.0.0.33, 127.0.1.0/24, 127.0.2.10 - 127.0.2.20
                 the "local" blocklist (plain), 127.0.3.0/24 "gzl" (gzip)
    127.0.1.7    on the "ok" whitelist file: taken out of "local"
    127.0.4.x    the "dyn" blocklist
"""

import atexit
import gzip
import json
import os
import re
import socket
import subprocess
import time

from lib import SMARTHOSTCTL, Daemon, Dnsmasq, wait_for
from test_smtp import HOST, Client, free_ports

TRAP_TEXT = "Your address %s has mailed to spamtraps here"
LOCAL_MESSAGE = "Blocked: %A is listed locally (%A), 100%% sure"
LOCAL_TEXT = "Blocked: %s is listed locally (%s), 100%% sure"
GZ_MESSAGE = "Gzipped list has %A"

LOCAL_LIST = """\
# the local blocklist
\t
127.0.0.30
127.0.0.33   # a comment after an address

127.0.1.0/24
127.0.2.10 - 127.0.2.20
this is not an address
"""
# the line number of the bad line above
LOCAL_BAD_LINE = 8

# A records with a TTL of 600 s (dnsmasq's host records say 0 unless
# given one, and lib.Dnsmasq's hosts cannot).
DNSBL_TTL = 600
DNS_HOSTS = [("5.0.0.127.bl.test", "127.0.0.2"),
             ("8.0.0.127.bl.test", "127.255.255.254"),
             ("10.0.0.127.wl.test", "127.0.0.2"),
             ("11.0.0.127.bl.test", "127.0.0.2"),
             ("11.0.0.127.bl2.test", "127.0.0.3"),
             ("12.0.0.127.bl2.test", "127.0.0.2")]

_shared = {}


def daemon_config(d, port, resolver_port, extra=""):
    return ('hostname "test.example.org"\n'
            'state "%(tmp)s/state"\n'
            'control socket "%(tmp)s/smarthostd.sock"\n'
            'pidfile "%(tmp)s/smarthostd.pid"\n'
            'resolver 127.0.0.1 port %(rport)d\n'
            'table our-domains { example.org }\n'
            'table our-nets { 127.0.0.1 }\n'
            'table traps { trap@example.org }\n'
            'greylist {\n\tpasstime 2s\n\ttrap <traps>\n}\n'
            'tarpit {\n\tstutter 0\n}\n'
            '%(extra)s'
            'listen on %(host)s port %(port)d\n'
            'smtp {\n\tmax-errors 100\n\tcommand-timeout 20s\n'
            '\ttransaction-timeout 60s\n}\n'
            'action "grey" relay host "smtp://127.0.0.1:2" greylist\n'
            'match for domain <our-domains> action "grey"\n' %
            {"tmp": d.tmp, "rport": resolver_port, "host": HOST,
             "port": port, "extra": extra})


def shared():
    """The daemon and dnsmasq every test of this file talks to, started
    by the first test that needs them."""
    if "d" in _shared:
        d = _shared["d"]
        if d.proc.poll() is not None:
            raise AssertionError("the shared daemon exited %d:\n%s" %
                                 (d.proc.returncode, d.logtext()[-3000:]))
        return d
    dns = Dnsmasq(extra=["--host-record=%s,%s,%d" % (name, addr, DNSBL_TTL)
                         for name, addr in DNS_HOSTS]).start()
    atexit.register(dns.stop)
    d = Daemon(config="")
    d.dns = dns
    d.lists = {
        "local": os.path.join(d.tmp, "local.list"),
        "gzl": os.path.join(d.tmp, "gz.list.gz"),
        "dyn": os.path.join(d.tmp, "dyn.list"),
        "ok": os.path.join(d.tmp, "ok.list"),
    }
    with open(d.lists["local"], "w") as f:
        f.write(LOCAL_LIST)
    with gzip.open(d.lists["gzl"], "wb") as f:
        f.write(b"# gzipped\n\n127.0.3.0/24\n")
    with open(d.lists["dyn"], "w") as f:
        f.write("127.0.4.1\n")
    with open(d.lists["ok"], "w") as f:
        f.write("# taken out of the blocklists\n127.0.1.7\n")
    extra = ('blocklist "local" file "%s" message "%s"\n'
             'blocklist "gzl" file "%s" message "%s"\n'
             'blocklist "dyn" file "%s"\n'
             'whitelist "ok" file "%s"\n'
             'dnsbl "bl.test" weight 2\n'
             'dnsbl "wl.test" weight -5\n'
             'dnsbl "bl2.test"\n'
             'dnsbl threshold 2\n' % (
                 d.lists["local"], LOCAL_MESSAGE, d.lists["gzl"],
                 GZ_MESSAGE, d.lists["dyn"], d.lists["ok"]))
    d.port = free_ports(1)[0]
    d.write_config(daemon_config(d, d.port, dns.port, extra))
    d.start()
    atexit.register(d.stop)
    _shared["d"] = d
    # every list loaded before the first test connects
    for name in ("local", "gzl", "dyn", "ok"):
        d.wait_log("list %s: " % name)
    return d


# ---------------------------------------------------------------------

def greylisted_rcpt(d, src, rcpt="x@example.org"):
    """A client that is served as usual: its first RCPT is greylisted
    (451 4.7.1) and the session goes on."""
    with Client(d.port, src=src, timeout=20) as c:
        c.ehlo()
        c.cmd("MAIL FROM:<a@b.example>", 250, "2.1.0")
        c.cmd("RCPT TO:<%s>" % rcpt, 451, "4.7.1")
        c.cmd("NOOP", 250, "2.0.0")
        c.cmd("QUIT", 221, "2.0.0")


def tarpitted_rcpt(d, src, text, rcpt="x@example.org"):
    """A tarpitted client: 550 5.7.1 with text at RCPT, then closed."""
    with Client(d.port, src=src, timeout=20) as c:
        c.ehlo()
        c.cmd("MAIL FROM:<a@b.example>", 250, "2.1.0")
        lines = c.cmd("RCPT TO:<%s>" % rcpt, 550, "5.7.1")
        if lines != ["550 5.7.1 " + text]:
            c.fail("expected %r" % ("550 5.7.1 " + text))
        if not c.closed():
            c.fail("the session stayed open after the tarpit's RCPT")


def greylist_entries(d, kind):
    return json.loads(d.ctl("-j", "show", "greylist", kind).stdout)


def explain(d, addr):
    out = d.ctl("explain", addr).stdout
    lines = out.splitlines()
    js = json.loads(d.ctl("-j", "explain", addr).stdout)
    assert js["lines"] == lines, (js, lines)
    return out


def assert_lines(out, *pieces):
    for p in pieces:
        assert p in out, "%r not in:\n%s" % (p, out)


def table_info(d, name):
    tables = json.loads(d.ctl("-j", "show", "tables").stdout)
    for t in tables:
        if t["name"] == name:
            return t
    raise AssertionError("%s not in show tables: %r" % (name, tables))


# ---------------------------------------------------------------------
# 1. Spamtraps.

def test_spamtrap_in_config_table_traps_client_and_tarpits_it_next_time():
    d = shared()
    trapped, other = "127.0.0.20", "127.0.0.21"
    tarpitted_rcpt(d, trapped, TRAP_TEXT % trapped, rcpt="trap@example.org")
    d.wait_log("trapped %s by <trap@example.org>" % trapped)
    entries = greylist_entries(d, "trap")
    mine = [e for e in entries if e.get("key") == trapped]
    assert len(mine) == 1 and mine[0]["type"] == "TRAPPED" and \
        mine[0]["expire"] > time.time() + 23 * 3600, entries
    text = d.ctl("show", "greylist", "trap").stdout
    assert "TRAPPED|%s|" % trapped in text, text
    # its next connection is tarpitted, whatever the recipient
    tarpitted_rcpt(d, trapped, TRAP_TEXT % trapped)
    # another client is greylisted as usual
    greylisted_rcpt(d, other)


def test_spamtrap_added_at_run_time_traps_and_trap_delete_stops_it():
    d = shared()
    r = d.ctl("trap", "add", "x-trap@example.org")
    assert "spamtrap added" in r.stdout, r.stdout
    entries = greylist_entries(d, "trap")
    assert {"type": "SPAMTRAP", "address": "x-trap@example.org"} in \
        entries, entries
    tarpitted_rcpt(d, "127.0.0.22", TRAP_TEXT % "127.0.0.22",
                   rcpt="x-trap@example.org")
    r = d.ctl("trap", "delete", "x-trap@example.org")
    assert "spamtrap deleted" in r.stdout, r.stdout
    entries = greylist_entries(d, "trap")
    assert not any(e.get("address") == "x-trap@example.org"
                   for e in entries), entries
    greylisted_rcpt(d, "127.0.0.23", rcpt="x-trap@example.org")
    # deleting it again fails
    r = d.ctl("trap", "delete", "x-trap@example.org", check=False)
    assert r.returncode == 1 and "not a spamtrap" in r.stdout + r.stderr, r


# ---------------------------------------------------------------------
# 2. Blocklist and whitelist files.

def test_plain_blocklist_with_cidr_range_and_comments_tarpits_with_message():
    d = shared()
    for src in ("127.0.0.30", "127.0.0.33", "127.0.1.3", "127.0.1.255",
                "127.0.2.10", "127.0.2.15", "127.0.2.20"):
        tarpitted_rcpt(d, src, LOCAL_TEXT % (src, src))
    # just outside the range and the addresses
    for src in ("127.0.2.21", "127.0.0.31"):
        greylisted_rcpt(d, src)
    log = d.logtext()
    assert "tarpit: local: " + LOCAL_TEXT % ("127.0.1.3", "127.0.1.3") in \
        log, log[-3000:]


def test_blocklist_bad_line_is_logged_and_the_rest_loaded():
    d = shared()
    log = d.logtext()
    assert '%s:%d: bad address "this is not an address"' % (
        d.lists["local"], LOCAL_BAD_LINE) in log, log[-3000:]
    assert "list local: 4 ranges from %s (bad lines skipped)" % \
        d.lists["local"] in log, log[-3000:]
    t = table_info(d, "local")
    assert t["kind"] == "blocklist" and t["count"] == 4 and \
        t["source"] == d.lists["local"] and t["loaded"] > 0, t


def test_gzipped_blocklist_tarpits_with_its_message():
    d = shared()
    tarpitted_rcpt(d, "127.0.3.4", "Gzipped list has 127.0.3.4")
    t = table_info(d, "gzl")
    assert t["kind"] == "blocklist" and t["count"] == 1, t


def test_whitelist_file_takes_an_address_out_of_a_blocked_network():
    d = shared()
    greylisted_rcpt(d, "127.0.1.7")
    # its neighbours stay blocked
    tarpitted_rcpt(d, "127.0.1.6", LOCAL_TEXT % ("127.0.1.6", "127.0.1.6"))
    tarpitted_rcpt(d, "127.0.1.8", LOCAL_TEXT % ("127.0.1.8", "127.0.1.8"))
    t = table_info(d, "ok")
    assert t["kind"] == "whitelist" and t["count"] == 1 and \
        t["source"] == d.lists["ok"], t


# ---------------------------------------------------------------------
# 3. Lists follow their files.

def log_count(d, text):
    return d.logtext().count(text)


def test_blocklist_reloaded_on_change_on_update_table_kept_when_missing():
    d = shared()
    path = d.lists["dyn"]
    greylisted_rcpt(d, "127.0.0.9")
    # the poll (every 5 s) notices a changed file
    loads = log_count(d, "list dyn: 2 ranges from ")
    with open(path, "w") as f:
        f.write("127.0.4.1\n127.0.0.9\n")
    start = time.monotonic()
    wait_for(lambda: log_count(d, "list dyn: 2 ranges from ") > loads, 12,
             "the changed dyn list to be loaded")
    took = time.monotonic() - start
    assert took <= 10.5, "reloaded after %.1fs" % took
    tarpitted_rcpt(d, "127.0.0.9",
                   "Your address 127.0.0.9 is in the dyn list")
    t = table_info(d, "dyn")
    assert t["count"] == 2 and t["source"] == path, t

    # A change the poll cannot see (same inode, size and mtime) is
    # loaded by update table alone.
    st = os.stat(path)
    with open(path, "r+") as f:
        f.write("127.0.4.2\n127.0.0.9\n")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    st2 = os.stat(path)
    assert (st2.st_ino, st2.st_size, st2.st_mtime_ns) == \
        (st.st_ino, st.st_size, st.st_mtime_ns)
    loads = log_count(d, "list dyn: 2 ranges from ")
    r = d.ctl("update", "table", "dyn")
    assert r.stdout.strip() == "dyn: reloading", r.stdout
    wait_for(lambda: log_count(d, "list dyn: 2 ranges from ") > loads, 2,
             "update table to load the dyn list")
    tarpitted_rcpt(d, "127.0.4.2",
                   "Your address 127.0.4.2 is in the dyn list")
    greylisted_rcpt(d, "127.0.4.1")

    # A file that disappears keeps the list as it was.
    os.unlink(path)
    d.wait_log("blocklist dyn: %s: No such file or directory" % path, 12)
    tarpitted_rcpt(d, "127.0.0.9",
                   "Your address 127.0.0.9 is in the dyn list")
    t = table_info(d, "dyn")
    assert t["count"] == 2, t
    r = d.ctl("update", "table", "dyn", check=False)
    assert r.returncode == 1 and "No such file or directory" in \
        r.stdout + r.stderr, r
    out = d.ctl("show", "tables").stdout
    assert any(line.split()[:3] == ["dyn", "blocklist", "2"] and
               line.endswith(path) for line in out.splitlines()), out


# ---------------------------------------------------------------------
# 4. DNSBL and DNSWL.

def bl_queries(d, name):
    return d.dns.querylog().count("query[A] %s " % name)


def test_dnsbl_listed_client_is_tarpitted_and_the_answer_cached():
    d = shared()
    text = "Your address 127.0.0.5 is listed in bl.test"
    tarpitted_rcpt(d, "127.0.0.5", text)
    assert bl_queries(d, "5.0.0.127.bl.test") == 1, d.dns.querylog()
    tarpitted_rcpt(d, "127.0.0.5", text)
    time.sleep(0.3)
    assert bl_queries(d, "5.0.0.127.bl.test") == 1, (
        "asked again:\n" + d.dns.querylog())
    d.wait_log("tarpit: dnsbl: " + text)
    # cached for the answer's TTL
    out = explain(d, "127.0.0.5")
    m = re.search(r"dnsbl bl.test \(weight 2\): listed, cached until "
                  r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", out)
    assert m is not None, out
    until = time.mktime(time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S"))
    assert abs(until - (time.time() + DNSBL_TTL)) < 30, (
        "cached until %s, not for the TTL of %ds" % (m.group(1), DNSBL_TTL))


def test_dnsbl_unlisted_and_error_code_answers_do_not_count():
    d = shared()
    greylisted_rcpt(d, "127.0.0.6")
    greylisted_rcpt(d, "127.0.0.8")
    log = d.dns.querylog()
    # both were asked, and the error code was answered
    assert bl_queries(d, "6.0.0.127.bl.test") >= 1, log
    assert bl_queries(d, "8.0.0.127.bl.test") >= 1, log
    assert "8.0.0.127.bl.test is 127.255.255.254" in log, log


def test_dnsbl_weights_add_up_to_the_threshold_and_the_message_names_zones():
    d = shared()
    tarpitted_rcpt(d, "127.0.0.11",
                   "Your address 127.0.0.11 is listed in bl.test, bl2.test")
    greylisted_rcpt(d, "127.0.0.12")
    assert bl_queries(d, "12.0.0.127.bl2.test") >= 1, d.dns.querylog()


def test_dnswl_listed_client_skips_greylisting():
    d = shared()
    with Client(d.port, src="127.0.0.10", timeout=20) as c:
        c.ehlo()
        c.cmd("MAIL FROM:<a@b.example>", 250, "2.1.0")
        c.cmd("RCPT TO:<x@example.org>", 250, "2.1.5")
        c.cmd("QUIT", 221, "2.0.0")
    # and another client with the same tuple is greylisted
    greylisted_rcpt(d, "127.0.0.7")


def test_dnsbl_resolver_silent_or_closed_does_not_hold_the_banner():
    """A resolver that never answers, then one whose port is closed:
    the banner comes within the DNSBL wait and the client is served."""
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    rport = silent.getsockname()[1]
    d = Daemon(config="")
    d.port = free_ports(1)[0]
    d.write_config(daemon_config(d, d.port, rport,
                                 'dnsbl "bl.test"\n'))

    def banner_in_time(src, waited=False):
        start = time.monotonic()
        c = Client(d.port, src=src, timeout=20)
        took = time.monotonic() - start
        if not c.greeting[1][0].startswith("220 "):
            c.fail("no banner")
        if took >= 5:
            c.fail("banner after %.1fs" % took)
        if waited and took < 2.5:
            c.fail("banner after %.1fs: the DNSBL was not waited for" %
                   took)
        c.ehlo()
        c.cmd("MAIL FROM:<a@b.example>", 250, "2.1.0")
        return c

    try:
        with d:
            # SPF at RCPT would wait for the silent resolver too
            with banner_in_time("127.0.0.6", waited=True) as c:
                c.cmd("QUIT", 221, "2.0.0")
            silent.close()
            with banner_in_time("127.0.0.7") as c:
                c.cmd("RCPT TO:<x@example.org>", 451, "4.7.1")
    finally:
        silent.close()


# ---------------------------------------------------------------------
# 5. explain.

def test_explain_names_lists_dnsbl_answers_score_trap_white_and_tuples():
    d = shared()
    # what grey will know
    tarpitted_rcpt(d, "127.0.0.5",
                   "Your address 127.0.0.5 is listed in bl.test")
    tarpitted_rcpt(d, "127.0.0.40", TRAP_TEXT % "127.0.0.40",
                   rcpt="trap@example.org")
    greylisted_rcpt(d, "127.0.0.41", rcpt="y@example.org")
    d.ctl("greylist", "white", "127.0.0.42")

    out = explain(d, "127.0.0.5")
    assert_lines(out, "127.0.0.5: greylisted as 127.0.0.5",
                 "blocklist local: not listed",
                 "whitelist ok: not listed",
                 "dnsbl bl.test (weight 2): listed, cached until ",
                 "dnsbl wl.test (weight -5): not listed, cached until ",
                 "dnsbl bl2.test (weight 1): not listed, cached until ",
                 "dnsbl score 2, threshold 2",
                 "no greylist entries")
    assert "trapped" not in out, out

    out = explain(d, "127.0.1.3")
    assert_lines(out, "blocklist local: listed", "blocklist gzl: not listed",
                 "blocklist dyn: ", "whitelist ok: not listed")
    out = explain(d, "127.0.1.7")
    assert_lines(out, "blocklist local: listed", "whitelist ok: listed")

    out = explain(d, "127.0.0.40")
    assert_lines(out, "trapped until ")
    assert "no greylist entries" not in out, out

    out = explain(d, "127.0.0.41")
    assert_lines(out, "tuple helo client.test from <a@b.example> to "
                 "<y@example.org>: first ", ", 1 attempts refused",
                 "dnsbl score 0, threshold 2")
    out = explain(d, "127.0.0.42")
    assert_lines(out, "WHITE: first ")
    assert "trapped until" not in out, out


def test_explain_of_a_non_address_fails():
    d = shared()
    for arg in ("not-an-address", "127.0.0.300"):
        r = subprocess.run([SMARTHOSTCTL, "-s", d.sock, "explain", arg],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode != 0 and r.stdout == "" and \
            r.stderr.strip() != "", r


# ---------------------------------------------------------------------
# 6. show greylist block.

LOCAL_BLOCKS = ["127.0.0.30/32", "127.0.0.33/32", "127.0.1.0/24",
                "127.0.2.10/31", "127.0.2.12/30", "127.0.2.16/30",
                "127.0.2.20/32"]


def test_show_greylist_block_prints_networks_and_their_list():
    d = shared()
    text = d.ctl("show", "greylist", "block").stdout
    lines = text.splitlines()
    assert all(line.startswith("BLOCK|") for line in lines), text
    for net in LOCAL_BLOCKS:
        assert "BLOCK|%s|local" % net in lines, text
    assert "BLOCK|127.0.3.0/24|gzl" in lines, text
    assert not any(line.endswith("|ok") for line in lines), text
    js = json.loads(d.ctl("-j", "show", "greylist", "block").stdout)
    assert {"type": "BLOCK", "network": "127.0.1.0/24",
            "list": "local"} in js, js
    assert {"type": "BLOCK", "network": "127.0.3.0/24", "list": "gzl"} in \
        js, js
    assert len(js) == len(lines), (js, lines)
    # the whole listing holds them too, with the database's entries
    every = d.ctl("show", "greylist").stdout.splitlines()
    assert "BLOCK|127.0.1.0/24|local" in every, every


def grey_stats(d):
    return json.loads(d.ctl("-j", "show", "stats").stdout)


def test_show_stats_counts_grey_decisions():
    d = shared()
    before = grey_stats(d)
    greylisted_rcpt(d, "127.0.0.60")
    tarpitted_rcpt(d, "127.0.0.61", TRAP_TEXT % "127.0.0.61",
                   rcpt="trap@example.org")
    after = grey_stats(d)
    assert after["grey.greylisted"] == before["grey.greylisted"] + 1, after
    assert after["grey.trapped"] == before["grey.trapped"] + 1, after
    assert after["grey.checks"] == before["grey.checks"] + 2, after
    assert after["grey.trapped_clients"] >= 1, after


def test_white_client_is_not_trapped_by_a_spamtrap():
    """As spamd never saw its white clients, a spamtrap catches only
    clients that would be greylisted: a white server's typo is
    delivered, not punished."""
    d = shared()
    white = "127.0.0.62"
    d.ctl("greylist", "white", white)
    with Client(d.port, src=white, timeout=20) as c:
        c.ehlo()
        c.cmd("MAIL FROM:<a@b.example>", 250, "2.1.0")
        c.cmd("RCPT TO:<trap@example.org>", 250, "2.1.5")
        c.cmd("QUIT", 221, "2.0.0")
    trapped = [e for e in greylist_entries(d, "trap")
               if e.get("key") == white]
    assert not trapped, trapped
