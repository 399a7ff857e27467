"""Greylisting against the real daemon (issue 5, Tests): spamd's
timeline with short timers, SPF-keyed tuples for a sender's pool,
spf-whitelist expansion with include chains and the RFC 7208 lookup
limit, outbound learning through a real MX delivery, IPv6 keyed by its
/64, our networks and AUTH never greylisted, the nospamd whitelist, a
restart that keeps grey.mdb, the max-entries cap, and the greylist
white|delete commands.

Clients connect to 127.0.0.1 from 127.0.0.2 and up (outside
<our-nets>, which holds 127.0.0.1 only) and stop at RCPT; dnsmasq on
loopback serves the SPF, A and MX records.  The state is read back with
smarthostctl -j show greylist and show tables.

Timers: passtime 2s, greyexp 8s, whiteexp 10s; grey expires entries
once a second, so a wait for an expiry allows a few seconds more, and
a test that expects one not to have happened yet allows one less."""

import contextlib
import json
import os
import signal
import smtplib
import tempfile
import time

from lib import (Dnsmasq, Daemon, LogOnFailure, PostfixSmtpSink,
                 base_config, ipv6_loopback, wait_for)
from test_relay import log_tail
from test_smtp import (AUTH_TLS, PASSWORDS, Client, auth_plain, free_ports,
                       need_users, password_hashes, tls_context, write_pki)

PASSTIME, GREYEXP, WHITEEXP = 2, 8, 10
TIMERS = "\tpasstime %ds\n\tgreyexp %ds\n\twhiteexp %ds\n" % (
    PASSTIME, GREYEXP, WHITEEXP)
# A retry this long after the first attempt is past passtime whatever
# the second boundaries (grey keeps times in whole seconds).
AFTER_PASSTIME = PASSTIME + 1.2

RULES = ('match from src <our-nets> for any action "outbound"\n'
         'match for domain <our-domains> action "inbound"\n')
AUTH_RULES = ('match from src <our-nets> for any action "outbound"\n'
              'match auth for any action "outbound"\n'
              'match for domain <our-domains> action "inbound"\n')

GREY_451 = "4.7.1 Temporary failure, please try again later"

INCLUDES = ["i%d.many.test" % i for i in range(1, 12)]


def zone(port=None, changed=()):
    """dnsmasq with the records the tests share: pool.test's SPF covers
    127.0.0.2 and 127.0.0.3; big.test's spf-whitelist chain; many.test
    with 11 includes; remote.test for learning.  Other names under
    .test are NXDOMAIN (no SPF).  changed: (name, record) pairs that
    replace a name's TXT record."""
    txt = [("pool.test", "v=spf1 ip4:127.0.0.2 ip4:127.0.0.3 -all"),
           ("big.test", "v=spf1 include:_a.big.test a mx -all"),
           ("_a.big.test", "v=spf1 include:_b.big.test ip4:192.0.2.0/24"),
           ("_b.big.test", "v=spf1 ip4:127.0.0.8/30 "
            "ip6:2001:db8:b::/48 ?all"),
           ("many.test", "v=spf1 ip4:127.0.0.14 " +
            " ".join("include:" + i for i in INCLUDES) + " -all"),
           ("remote.test", "v=spf1 mx ip4:127.0.0.21 -all"),
           ("open.test", "v=spf1 +all")]
    txt += [(name, "v=spf1 ip4:10.%d.0.1" % (n + 1))
            for n, name in enumerate(INCLUDES)]
    new = dict(changed)
    txt = [(name, new.get(name, text)) for name, text in txt]
    return Dnsmasq(
        port=port,
        txt=txt,
        mx=[("big.test", "mx.big.test", 10),
            ("remote.test", "mx.remote.test", 10)],
        hosts=[("big.test", "198.51.100.1", None),
               ("mx.big.test", "198.51.100.20", None),
               ("mx.remote.test", "127.0.0.20", None)])


@contextlib.contextmanager
def greyd(grey="", extra="", rules=RULES, listen="", ipv6=False,
          dns=None):
    """dnsmasq and the daemon: the action "inbound" for <our-domains>
    (example.org) is marked greylist, "outbound" (our-nets) is not.
    grey adds lines to the greylist block; listen options for the
    listener on 127.0.0.1 (d.port); ipv6 adds one on ::1, same port."""
    with contextlib.ExitStack() as stack:
        if dns is None:
            dns = stack.enter_context(zone())
        d = Daemon()
        d.port = free_ports(1)[0]
        d.dns = dns
        text = ("table our-domains { example.org }\n"
                "table our-nets { 127.0.0.1 }\n" + extra +
                "greylist {\n" + TIMERS + grey + "}\n"
                "tarpit {\n\tstutter 0\n}\n"
                "listen on 127.0.0.1 port %d %s\n" % (d.port, listen))
        if ipv6:
            text += "listen on ::1 port %d\n" % d.port
        text += ("smtp {\n\tcommand-timeout 20s\n"
                 "\ttransaction-timeout 60s\n\tmax-errors 100\n}\n"
                 'action "inbound" relay host "smtp://127.0.0.1:2" '
                 "greylist\n"
                 'action "outbound" relay\n' + rules)
        conf = base_config(d.tmp, text).replace(
            "resolver 127.0.0.1 port 1\n", dns.resolver_line())
        d.write_config(conf)
        with d, LogOnFailure(d, log_tail):
            yield d


def attempt(d, src, sender, rcpt="bob@example.org", helo="mx.sender.test",
            host="127.0.0.1"):
    """One session from src up to RCPT: the reply to RCPT as
    (code, text)."""
    s = smtplib.SMTP(host, d.port, local_hostname=helo, timeout=30,
                     source_address=(src, 0))
    try:
        code, text = s.ehlo()
        assert code == 250, (code, text)
        code, text = s.mail(sender)
        assert code == 250, (code, text)
        code, text = s.rcpt(rcpt)
        return code, text.decode(errors="replace")
    finally:
        try:
            s.quit()
        except (smtplib.SMTPException, OSError):
            s.close()


def greylisted(d, src, sender, rcpt="bob@example.org", **kw):
    code, text = attempt(d, src, sender, rcpt, **kw)
    assert (code, text) == (451, GREY_451), (
        "%s <%s> -> <%s>: expected 451 %s, got %d %s" % (
            src, sender, rcpt, GREY_451, code, text))


def passes(d, src, sender, rcpt="bob@example.org", **kw):
    code, text = attempt(d, src, sender, rcpt, **kw)
    assert code == 250 and text.startswith("2.1.5"), (
        "%s <%s> -> <%s>: expected 250 2.1.5, got %d %s" % (
            src, sender, rcpt, code, text))


def show(d, kind=None):
    args = ["-j", "show", "greylist"] + ([kind] if kind else [])
    return json.loads(d.ctl(*args).stdout)


def entries(d, kind=None, type_=None, key=None):
    return [e for e in show(d, kind)
            if (type_ is None or e["type"] == type_) and
            (key is None or e.get("key") == key)]


def only_tuples_of(d, key):
    """grey.mdb holds one tuple, of key, and no white client: nothing
    else was greylisted or passed greylisting."""
    entries_now = show(d)
    assert [e["key"] for e in entries_now if e["type"] == "GREY"] == \
        [key], entries_now
    assert [e for e in entries_now if e["type"] == "WHITE"] == [], \
        entries_now


def tables(d):
    return dict((t["name"], t) for t in
                json.loads(d.ctl("-j", "show", "tables").stdout))


# ---------------------------------------------------------------------
# 1. spamd's timeline.

def test_grey_timeline_first_451_retry_passes_white_then_expiry():
    with greyd() as d:
        sender = "alice@sender.test"
        t0 = time.monotonic()
        greylisted(d, "127.0.0.2", sender)
        # a tuple from another client that is never retried
        greylisted(d, "127.0.0.4", "dave@lazy.test", "eve@example.org")
        greylisted(d, "127.0.0.2", sender)      # early retry
        grey = entries(d, "grey", "GREY", "127.0.0.2")
        assert len(grey) == 1, show(d)
        g = grey[0]
        assert (g["helo"], g["from"], g["to"]) == (
            "mx.sender.test", sender, "bob@example.org"), g
        assert g["blocked"] == 2, g
        assert g["pass"] - g["first"] == PASSTIME, g
        assert g["expire"] - g["first"] == GREYEXP, g
        assert entries(d, "white") == [], show(d)

        time.sleep(max(0, t0 + AFTER_PASSTIME - time.monotonic()))
        passes(d, "127.0.0.2", sender)
        white = entries(d, "white", "WHITE", "127.0.0.2")
        assert len(white) == 1, show(d)
        w = white[0]
        assert w["expire"] - w["pass"] == WHITEEXP, w
        assert entries(d, "grey", key="127.0.0.2") == [], show(d)

        # white: another sender and recipient pass at once
        passes(d, "127.0.0.2", "frank@other.test", "grace@example.org")
        assert entries(d, "white", "WHITE", "127.0.0.2")[0]["passed"] == 2

        # greyexp: the lazy tuple goes and starts over
        wait_for(lambda: not entries(d, "grey", key="127.0.0.4"),
                 t0 + GREYEXP + 5 - time.monotonic(),
                 "the tuple of 127.0.0.4 to expire after greyexp")
        assert time.monotonic() - t0 >= GREYEXP - 1, \
            "the tuple expired before greyexp"
        greylisted(d, "127.0.0.4", "dave@lazy.test", "eve@example.org")
        again = entries(d, "grey", "GREY", "127.0.0.4")
        assert len(again) == 1 and again[0]["blocked"] == 1, again

        # each delivery from a white client keeps it white for another
        # whiteexp; then, whiteexp after the last, it is greylisted again
        white_at = time.monotonic()
        passes(d, "127.0.0.2", "heidi@third.test", "ivan@example.org")
        w3 = entries(d, "white", "WHITE", "127.0.0.2")
        assert len(w3) == 1 and w3[0]["passed"] == 3, w3
        assert w3[0]["expire"] >= w["expire"] + GREYEXP - PASSTIME - 2, \
            "white expiry not refreshed: %r then %r" % (w, w3[0])
        wait_for(lambda: not entries(d, "white", key="127.0.0.2"),
                 white_at + WHITEEXP + 5 - time.monotonic(),
                 "the white entry of 127.0.0.2 to expire")
        assert time.monotonic() - white_at >= WHITEEXP - 1, \
            "the white entry expired before whiteexp"
        greylisted(d, "127.0.0.2", sender)


# ---------------------------------------------------------------------
# 2. A pool of servers behind one SPF record.

def test_grey_pool_retry_from_another_spf_authorised_address_passes():
    with greyd() as d:
        t0 = time.monotonic()
        greylisted(d, "127.0.0.2", "a@pool.test", helo="out1.pool.test")
        grey = entries(d, "grey", "GREY")
        assert [e["key"] for e in grey] == ["spf:pool.test"], grey
        # keyed by the domain, without the HELO that differs in a pool
        assert (grey[0]["helo"], grey[0]["from"]) == ("", "a@pool.test"), \
            grey
        # the controls: no SPF, another address of the "pool"; and a
        # record that passes anybody, which must not let one bot retry
        # another's attempt
        greylisted(d, "127.0.0.4", "a@nospf.test", helo="out1.nospf.test")
        greylisted(d, "127.0.0.6", "a@open.test", helo="bot1.example")
        assert entries(d, "grey", key="127.0.0.6"), show(d)
        time.sleep(max(0, t0 + AFTER_PASSTIME - time.monotonic()))
        passes(d, "127.0.0.3", "a@pool.test", helo="out2.pool.test")
        greylisted(d, "127.0.0.5", "a@nospf.test", helo="out1.nospf.test")
        greylisted(d, "127.0.0.7", "a@open.test", helo="bot1.example")
        # the address that passed is the one made white
        white = [e["key"] for e in entries(d, "white")]
        assert white == ["127.0.0.3"], show(d)
        assert not entries(d, "grey", key="spf:pool.test"), show(d)


# ---------------------------------------------------------------------
# 3. spf-whitelist.

@contextlib.contextmanager
def spf_greyd(domains=("big.test",), refresh="1h"):
    """dnsmasq (d.dns) and the daemon with the domains in the
    spf-whitelist, once grey has expanded each of them."""
    with greyd(grey="\tspf-whitelist <common-domains> refresh %s\n" %
               refresh, extra="table common-domains { %s }\n" %
               ", ".join(domains)) as d:
        wait_for(lambda: all(spf_logged(d, x) for x in domains), 15,
                 "the expansion of %s" % ", ".join(domains))
        yield d


def spf_logged(d, domain):
    """The networks count grey logged for domain's expansion, and the
    rest of its line."""
    prefix = "spf-whitelist %s: " % domain
    for line in d.logtext().splitlines():
        i = line.find(prefix)
        if i != -1 and "networks" in line:
            rest = line[i + len(prefix):]
            return int(rest.split()[0]), rest
    return None


def test_grey_spf_whitelist_expands_include_chains_and_stops_at_limit():
    with spf_greyd(("big.test", "many.test")) as d:
        nbig, big = spf_logged(d, "big.test")
        nmany, many = spf_logged(d, "many.test")
        # 127.0.0.8/30, 192.0.2.0/24, 2001:db8:b::/48 through two
        # includes, big.test's a and its mx
        assert nbig == 5 and big == "5 networks", big
        assert nmany == 11 and "SPF lookup limit (10) exceeded" in many, many
        # 127.0.0.14 and the ten includes before the limit; the 11th
        # is never fetched
        assert "i11.many.test" not in d.dns.querylog(), d.dns.querylog()
        t = tables(d)
        assert t["spf-white"]["count"] == nbig + nmany, t["spf-white"]
        assert t["spf-white"]["kind"] == "spf-white", t["spf-white"]
        # (the networks reaching the firewall: test_firewall.py)

        # inside an expanded network: no greylisting at all
        passes(d, "127.0.0.9", "x@elsewhere.test")
        passes(d, "127.0.0.11", "y@elsewhere.test")
        # what many.test gave before the limit is kept
        passes(d, "127.0.0.14", "z@elsewhere.test")
        greylisted(d, "127.0.0.13", "x@elsewhere.test")
        only_tuples_of(d, "127.0.0.13")


def test_grey_spf_whitelist_networks_survive_a_restart_without_dns():
    """grey.mdb keeps what each domain expanded to: after a restart the
    networks are there before (here: without) any DNS answer."""
    with spf_greyd(("big.test", "many.test")) as d:
        count = tables(d)["spf-white"]["count"]
        assert count == 16, tables(d)["spf-white"]
        d.stop()
        d.dns.stop()
        d.start()
        assert tables(d)["spf-white"]["count"] == count, tables(d)
        passes(d, "127.0.0.9", "x@elsewhere.test")


def spf_white_changes(d, refresh):
    """Serve _b.big.test with 127.0.0.24/30 instead of 127.0.0.8/30 and
    wait, refresh() having been called, for the networks to follow."""
    passes(d, "127.0.0.9", "x@elsewhere.test")
    d.dns.stop()
    with zone(port=d.dns.port, changed=[
            ("_b.big.test", "v=spf1 ip4:127.0.0.24/30 "
             "ip6:2001:db8:b::/48 ?all")]):
        logged = d.logtext().count("spf-whitelist big.test: 5 networks")
        refresh()
        wait_for(lambda: d.logtext().count(
            "spf-whitelist big.test: 5 networks") > logged, 10,
            "big.test expanded again")
        passes(d, "127.0.0.25", "x@elsewhere.test")
        greylisted(d, "127.0.0.9", "x@elsewhere.test")


def test_grey_spf_whitelist_update_table_expands_again():
    with spf_greyd() as d:
        def update():
            r = d.ctl("update", "table", "common-domains")
            assert "expanding again" in r.stdout, r.stdout
        spf_white_changes(d, update)


def test_grey_spf_whitelist_refreshes_every_refresh_interval():
    with spf_greyd(refresh="2s") as d:
        spf_white_changes(d, lambda: None)


def test_grey_show_greylist_lists_spfwhite_networks():
    """smarthostctl.8 documents SPFWHITE|network|domain entries in show
    greylist (and smarthostctl prints them), but grey.c's listing
    (grey_walk_start/grey_walk_run) walks only grey.mdb and the
    blocklists: the spf-white networks are never listed."""
    with spf_greyd() as d:
        spf = [(e["network"], e["domain"])
               for e in show(d) if e["type"] == "SPFWHITE"]
        assert ("127.0.0.8/30", "big.test") in spf and len(spf) == 5, \
            "SPFWHITE entries: %r" % spf


# ---------------------------------------------------------------------
# 4. Outbound learning.

MESSAGE = (b"From: alice@example.org\r\nTo: bob@remote.test\r\n"
           b"Subject: learning\r\n\r\nHello.\r\n")


def test_grey_learns_domain_delivered_to_by_mx_and_its_replies_pass():
    with zone() as dns, \
            PostfixSmtpSink(25, host="127.0.0.20") as sink, \
            greyd(dns=dns) as d:
        s = smtplib.SMTP("127.0.0.1", d.port, local_hostname="ws.test",
                         timeout=30, source_address=("127.0.0.1", 0))
        try:
            s.sendmail("alice@example.org", ["bob@remote.test"], MESSAGE)
        finally:
            s.quit()
        wait_for(lambda: sink.dumps(), 15, "delivery to mx.remote.test")
        wait_for(lambda: entries(d, None, "LEARNED"), 5, "LEARNED entry")
        learned = entries(d, None, "LEARNED")
        assert [e["domain"] for e in learned] == ["remote.test"], learned
        assert learned[0]["expire"] - time.time() > WHITEEXP - 3, learned
        # a reply from a host remote.test's SPF authorises: no delay
        passes(d, "127.0.0.21", "bob@remote.test", "alice@example.org",
               helo="mail.remote.test")
        passes(d, "127.0.0.20", "bob@remote.test", "alice@example.org",
               helo="mx.remote.test")
        # not authorised by remote.test's SPF: greylisted
        greylisted(d, "127.0.0.22", "bob@remote.test", "alice@example.org",
                   helo="mail.remote.test")
        # what passed is white now, as after a retry
        assert sorted(e["key"] for e in entries(d, "white")) == [
            "127.0.0.20", "127.0.0.21"], show(d)
        # SPF pass alone is not enough: pool.test was never written to
        greylisted(d, "127.0.0.2", "x@pool.test", "alice@example.org")


# ---------------------------------------------------------------------
# 5. IPv6.

def test_grey_ipv6_client_keyed_by_64_follows_the_timeline():
    if not ipv6_loopback():
        print("skip: no IPv6 loopback")
        return
    with greyd(ipv6=True) as d:
        t0 = time.monotonic()
        greylisted(d, "::1", "alice@sender.test", host="::1")
        grey = entries(d, "grey", "GREY")
        assert [e["key"] for e in grey] == ["::/64"], grey
        greylisted(d, "::1", "alice@sender.test", host="::1")
        assert entries(d, "grey", "GREY")[0]["blocked"] == 2, show(d)
        time.sleep(max(0, t0 + AFTER_PASSTIME - time.monotonic()))
        passes(d, "::1", "alice@sender.test", host="::1")
        assert [e["key"] for e in entries(d, "white")] == ["::/64"], \
            show(d)
        passes(d, "::1", "other@sender.test", "carol@example.org",
               host="::1")
        d.ctl("greylist", "delete", "::/64")
        greylisted(d, "::1", "alice@sender.test", host="::1")


# ---------------------------------------------------------------------
# 6. Our networks and authenticated users.

def test_grey_our_nets_and_auth_are_never_greylisted():
    if not need_users("alice"):
        return
    tmp = tempfile.mkdtemp(prefix="smarthostd-grey-")
    cert, key = write_pki(tmp)
    passwd = os.path.join(tmp, "passwd")
    with open(passwd, "w") as f:
        f.write("alice %s\n" % password_hashes()["alice"])
    os.chmod(passwd, 0o600)
    extra = ('pki "mx.test" cert "%s"\npki "mx.test" key "%s"\n'
             'table passwd file "%s"\n' % (cert, key, passwd))
    with greyd(extra=extra, rules=AUTH_RULES, listen=AUTH_TLS) as d:
        passes(d, "127.0.0.1", "alice@example.org")
        passes(d, "127.0.0.1", "alice@example.org", "carol@example.org")
        with Client(d.port, src="127.0.0.7") as c:
            c.ehlo()
            c.starttls(tls_context())
            c.ehlo()
            auth_plain(c, "alice", PASSWORDS["alice"])
            c.cmd("MAIL FROM:<alice@sender.test>", 250, "2.1.0")
            c.cmd("RCPT TO:<bob@example.org>", 250, "2.1.5")
            c.cmd("RCPT TO:<carol@example.org>", 250, "2.1.5")
            c.cmd("QUIT", 221)
        # the same RCPT without AUTH, from outside our networks
        with Client(d.port, src="127.0.0.7") as c:
            c.ehlo()
            c.starttls(tls_context())
            c.ehlo()
            c.cmd("MAIL FROM:<alice@sender.test>", 250, "2.1.0")
            c.cmd("RCPT TO:<bob@example.org>", 451, "4.7.1")
            c.cmd("QUIT", 221)
        only_tuples_of(d, "127.0.0.7")


# ---------------------------------------------------------------------
# 7. The whitelist table (spamd's nospamd).

def test_grey_whitelist_table_client_passes_first_time():
    with greyd(grey="\twhitelist <nospamd>\n",
               extra="table nospamd { 127.0.0.16/30, 127.0.0.30 }\n") as d:
        passes(d, "127.0.0.17", "a@sender.test")
        passes(d, "127.0.0.30", "b@sender.test")
        greylisted(d, "127.0.0.20", "a@sender.test")
        only_tuples_of(d, "127.0.0.20")


# ---------------------------------------------------------------------
# 8. A restart keeps grey.mdb.

def summary(d):
    """The entries without the counters a listing may move."""
    return sorted((e["type"], e.get("key") or e.get("address") or
                   e.get("domain"), e.get("helo"), e.get("from"),
                   e.get("to"), e.get("expire"))
                  for e in show(d))


def test_grey_restart_keeps_grey_white_trapped_and_spamtrap_entries():
    with greyd(grey="\ttrap <traps>\n",
               extra="table traps { trap@example.org }\n") as d:
        t0 = time.monotonic()
        greylisted(d, "127.0.0.2", "alice@sender.test")
        d.ctl("greylist", "white", "127.0.0.3")
        r = d.ctl("trap", "add", "honey@example.org")
        assert "spamtrap added" in r.stdout, r.stdout
        code, _ = attempt(d, "127.0.0.6", "spam@spam.test",
                          "honey@example.org")
        assert code == 550, code
        before = summary(d)
        types = sorted(set(x[0] for x in before))
        assert types == ["GREY", "SPAMTRAP", "TRAPPED", "WHITE"], before

        d.proc.send_signal(signal.SIGTERM)
        assert d.wait_exit() == 0, log_tail(d)
        d.stop()
        d.start()
        after = summary(d)
        assert after == before, "before %r\nafter %r" % (before, after)

        time.sleep(max(0, t0 + AFTER_PASSTIME - time.monotonic()))
        passes(d, "127.0.0.2", "alice@sender.test")
        passes(d, "127.0.0.3", "x@sender.test")
        code, _ = attempt(d, "127.0.0.7", "spam@spam.test",
                          "honey@example.org")
        assert code == 550, "the spamtrap was forgotten: %d" % code
        code, _ = attempt(d, "127.0.0.6", "a@sender.test")
        assert code == 550, "the trapped client was let go: %d" % code


# ---------------------------------------------------------------------
# 9. The cap on grey tuples.

def test_grey_max_entries_refuses_new_tuples_with_451_unrecorded():
    with greyd(grey="\tmax-entries 3\n") as d:
        for n in range(3):
            greylisted(d, "127.0.0.%d" % (n + 2), "a@sender.test")
        assert len(entries(d, "grey", "GREY")) == 3, show(d)
        greylisted(d, "127.0.0.9", "a@sender.test")
        grey = entries(d, "grey", "GREY")
        assert sorted(e["key"] for e in grey) == [
            "127.0.0.2", "127.0.0.3", "127.0.0.4"], grey
        d.wait_log("grey could not decide on <bob@example.org>")
        # a known tuple still counts its retries
        greylisted(d, "127.0.0.2", "a@sender.test")
        assert entries(d, "grey", key="127.0.0.2")[0]["blocked"] == 2


# ---------------------------------------------------------------------
# 10. greylist white and delete.

def test_grey_ctl_white_and_delete_client_and_one_tuple():
    with greyd() as d:
        greylisted(d, "127.0.0.2", "a@sender.test")
        r = d.ctl("greylist", "white", "127.0.0.2")
        assert "127.0.0.2 is white" in r.stdout, r.stdout
        passes(d, "127.0.0.2", "a@sender.test")
        passes(d, "127.0.0.2", "b@sender.test", "carol@example.org")
        # its white entry and its tuple
        r = d.ctl("greylist", "delete", "127.0.0.2")
        assert r.stdout.strip() == "127.0.0.2: 2 entries deleted", r.stdout
        assert entries(d, key="127.0.0.2") == [], show(d)
        greylisted(d, "127.0.0.2", "a@sender.test")

        # one tuple of two, as show greylist prints it
        greylisted(d, "127.0.0.3", "a@sender.test", "x@example.org")
        greylisted(d, "127.0.0.3", "b@sender.test", "y@example.org")
        assert len(entries(d, "grey", key="127.0.0.3")) == 2, show(d)
        r = d.ctl("greylist", "delete",
                  "127.0.0.3|mx.sender.test|a@sender.test|x@example.org")
        assert "1 entry deleted" in r.stdout, r.stdout
        left = entries(d, "grey", key="127.0.0.3")
        assert [(e["from"], e["to"]) for e in left] == [
            ("b@sender.test", "y@example.org")], left
        # deleted means forgotten: the tuple starts over at 1
        greylisted(d, "127.0.0.3", "a@sender.test", "x@example.org")
        e = [e for e in entries(d, "grey", key="127.0.0.3")
             if e["from"] == "a@sender.test"]
        assert len(e) == 1 and e[0]["blocked"] == 1, e
        r = d.ctl("greylist", "delete", "127.0.0.99", check=False)
        assert r.returncode != 0 and "no entry" in r.stdout + r.stderr, r
