"""smarthostd/spf.c against dnsmasq on loopback: spf_check()'s verdicts
through libspf2 on our own DNS layer (which restarts the evaluation as
names come in) and spf_expand()'s networks, with the RFC 7208 limits.

regress/unit/spf_check runs spf.c on a libevent loop; it exits 3 when
spf.c calls back from inside a call, after a cancel, or twice."""

import os
import re
import subprocess

from lib import REGRESS, Dnsmasq, free_dns_port

SPF_CHECK = os.path.join(REGRESS, "unit", "spf_check")

INCLUDES = ["i%d.test" % i for i in range(1, 12)]


def zone():
    txt = [("pool.test", "v=spf1 ip4:127.0.0.2 ip4:127.0.0.3 -all"),
           ("soft.test", "v=spf1 ip4:127.0.0.2 ~all"),
           ("neutral.test", "v=spf1 ?all"),
           ("chain.test", "v=spf1 include:c1.test -all"),
           ("c1.test", "v=spf1 include:c2.test ip4:192.0.2.1"),
           ("c2.test", "v=spf1 include:c3.test ip4:192.0.2.2"),
           ("c3.test", "v=spf1 ip4:192.0.2.3 ip4:198.51.100.9/24 ?all"),
           ("amx.test", "v=spf1 a mx a:other.amx.test/24 "
            "mx:mx2.test//64 -all"),
           ("redir.test", "v=spf1 redirect=pool.test"),
           ("redirall.test", "v=spf1 ip4:192.0.2.8 redirect=pool.test "
            "-all"),
           ("v6.test", "v=spf1 ip6:2001:db8:1::/48 ip6:2001:db8:2::1 "
            "-all"),
           ("many.test", "v=spf1 " +
            " ".join("include:" + i for i in INCLUDES) + " -all"),
           ("nospf.test", "google-site-verification=abc"),
           ("two.test", "v=spf1 ip4:127.0.0.2 -all"),
           ("two.test", "v=spf1 -all"),
           ("helo.test", "v=spf1 ip4:127.0.0.5 -all"),
           ("qual.test", "v=spf1 -ip4:192.0.2.66 ?ip4:192.0.2.67 "
            "+ip4:192.0.2.68 ~include:pool.test -all"),
           ("voids.test", "v=spf1 a:nx1.test a:nx2.test a:nx3.test "
            "ip4:192.0.2.9 -all"),
           ("bad.test", "v=spf1 ip4:127.0.0.2 frobnicate -all")]
    txt += [(name, "v=spf1 ip4:10.0.0.%d" % (n + 1))
            for n, name in enumerate(INCLUDES)]
    return Dnsmasq(
        txt=txt,
        hosts=[("amx.test", "192.0.2.10", "2001:db8::10"),
               ("mx1.amx.test", "192.0.2.20", "2001:db8:4::20"),
               ("other.amx.test", "192.0.2.77", "2001:db8:6::77"),
               ("mxh.mx2.test", "192.0.2.30", "2001:db8:5::1"),
               ("nospf.test", "192.0.2.50", None)],
        mx=[("amx.test", "mx1.amx.test", 10),
            ("mx2.test", "mxh.mx2.test", 10)])


def run(port, *args, verbose=False, server="127.0.0.1", timeout=90):
    if not os.access(SPF_CHECK, os.X_OK):
        raise AssertionError("%s is not built (make test builds it)" %
                             SPF_CHECK)
    cmd = [SPF_CHECK] + (["-v"] if verbose else []) + \
        ["-r", server, "-p", str(port)] + list(args)
    proc = subprocess.run(cmd, capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError("spf_check exited %d:\n%s%s" % (
            proc.returncode, proc.stdout, proc.stderr))
    return proc


def check(port, ip, helo, sender, **kw):
    out = run(port, "check", ip, helo, sender, **kw).stdout.splitlines()
    return out[0]


def expand(port, domain, **kw):
    out = run(port, "expand", domain, **kw).stdout.splitlines()
    return out[0], out[1:]


# spf_check

def test_spf_pass_for_every_listed_address_fail_for_others():
    with zone() as d:
        assert check(d.port, "127.0.0.2", "a.test", "u@pool.test") == "pass"
        assert check(d.port, "127.0.0.3", "a.test", "u@pool.test") == "pass"
        assert check(d.port, "127.0.0.4", "a.test", "u@pool.test") == "fail"


def test_spf_loopback_client_gets_no_free_pass():
    """libspf2 passes every 127/8 client by itself; we must not."""
    with zone() as d:
        assert check(d.port, "127.0.0.9", "a.test", "u@two.test") != "pass"
        assert check(d.port, "::1", "a.test", "u@pool.test") == "fail"


def test_spf_softfail_and_neutral():
    with zone() as d:
        assert check(d.port, "127.0.0.9", "a.test",
                     "u@soft.test") == "softfail"
        assert check(d.port, "127.0.0.2", "a.test", "u@soft.test") == "pass"
        assert check(d.port, "127.0.0.2", "a.test",
                     "u@neutral.test") == "neutral"


def test_spf_include_chain_three_deep():
    with zone() as d:
        assert check(d.port, "198.51.100.7", "a.test",
                     "u@chain.test") == "pass"
        assert check(d.port, "192.0.2.1", "a.test", "u@chain.test") == "pass"
        assert check(d.port, "192.0.2.4", "a.test", "u@chain.test") == "fail"


def test_spf_a_and_mx_mechanisms():
    with zone() as d:
        for ip in ("192.0.2.10", "192.0.2.20", "192.0.2.99",
                   "2001:db8::10", "2001:db8:4::20", "2001:db8:5::ffff",
                   "2001:db8:6::77"):
            assert check(d.port, ip, "a.test", "u@amx.test") == "pass", ip
        for ip in ("203.0.113.5", "2001:db8:6::78", "192.0.3.30"):
            assert check(d.port, ip, "a.test", "u@amx.test") == "fail", ip


def test_spf_redirect():
    # libspf2 1.2.10 follows a redirect even when the record has "all"
    # (RFC 7208 6.1 says not to): redirall.test is not checked here.
    with zone() as d:
        assert check(d.port, "127.0.0.3", "a.test", "u@redir.test") == "pass"
        assert check(d.port, "127.0.0.4", "a.test", "u@redir.test") == "fail"


def test_spf_ip6():
    with zone() as d:
        assert check(d.port, "2001:db8:1:ff::5", "a.test",
                     "u@v6.test") == "pass"
        assert check(d.port, "2001:db8:2::1", "a.test", "u@v6.test") == "pass"
        assert check(d.port, "2001:db8:2::2", "a.test", "u@v6.test") == "fail"


def test_spf_lookup_limit_permerror():
    # libspf2 1.2.10 counts a term before checking the limit, so the
    # 11th include is still evaluated and 10.0.0.11 passes: not checked.
    with zone() as d:
        assert check(d.port, "10.0.0.99", "a.test",
                     "u@many.test") == "permerror"


def test_spf_none_without_record():
    with zone() as d:
        assert check(d.port, "192.0.2.50", "a.test",
                     "u@nospf.test") == "none"
        assert check(d.port, "192.0.2.50", "a.test",
                     "u@nowhere.test") == "none"


def test_spf_two_records_permerror():
    with zone() as d:
        assert check(d.port, "127.0.0.2", "a.test",
                     "u@two.test") == "permerror"


def test_spf_broken_record_permerror():
    with zone() as d:
        assert check(d.port, "127.0.0.2", "a.test",
                     "u@bad.test") == "permerror"


def test_spf_temperror_when_resolver_silent():
    port = free_dns_port()     # nothing listens there
    assert check(port, "127.0.0.2", "a.test", "u@pool.test") == "temperror"


def test_spf_null_sender_checks_helo():
    with zone() as d:
        assert check(d.port, "127.0.0.5", "helo.test", "<>") == "pass"
        assert check(d.port, "127.0.0.6", "helo.test", "<>") == "fail"
        assert check(d.port, "127.0.0.6", "", "<>") == "none"


def test_spf_fail_gives_explanation():
    with zone() as d:
        out = run(d.port, "check", "127.0.0.4", "a.test",
                  "u@pool.test").stdout.splitlines()
    assert out[0] == "fail", out
    assert out[1].startswith("reason: ") and len(out[1]) > 10, out


def test_spf_restart_asks_missing_names_together():
    """amx.test needs AAAA amx.test, MX amx.test, AAAA other.amx.test
    and MX mx2.test after its record, then the MX hosts' AAAA: with all
    the missing names of a round asked at once that is 4 rounds (one
    name per round would take 7)."""
    with zone() as d:
        proc = run(d.port, "check", "2001:db8:5::7", "a.test",
                   "u@amx.test", verbose=True)
        log = d.querylog()
    assert proc.stdout.splitlines()[0] == "pass", proc.stdout
    m = re.search(r"pass after (\d+) rounds", proc.stderr)
    assert m and int(m.group(1)) == 4, proc.stderr
    for q in ("query[AAAA] amx.test", "query[MX] amx.test",
              "query[AAAA] other.amx.test", "query[MX] mx2.test",
              "query[AAAA] mx1.amx.test", "query[AAAA] mxh.mx2.test"):
        assert log.count(q) == 1, (q, log)


def test_spf_answers_cached_between_checks():
    with zone() as d:
        proc = run(d.port, "check", "127.0.0.2", "a.test", "u@chain.test",
                   "check", "127.0.0.3", "a.test", "u@chain.test",
                   verbose=True)
        log = d.querylog()
    assert proc.stdout.splitlines()[::2] == ["fail", "fail"], proc.stdout
    assert re.search(r"fail after 1 round ", proc.stderr), proc.stderr
    assert log.count("query[TXT] c3.test") == 1, log


def test_spf_cancel_calls_nothing_back():
    with zone() as d:
        out = run(d.port, "cancel", "127.0.0.2", "a.test", "u@chain.test",
                  "check", "127.0.0.2", "a.test",
                  "u@pool.test").stdout.splitlines()
    assert out[0] == "cancelled" and out[1] == "pass", out


# spf_expand

def test_spf_expand_include_chain():
    with zone() as d:
        status, nets = expand(d.port, "chain.test")
    assert status == "OK", (status, nets)
    assert nets == ["192.0.2.1/32", "192.0.2.2/32", "192.0.2.3/32",
                    "198.51.100.0/24"], nets


def test_spf_expand_a_mx_ip6_redirect():
    with zone() as d:
        s1, amx = expand(d.port, "amx.test")
        s2, v6 = expand(d.port, "v6.test")
        s3, redir = expand(d.port, "redir.test")
        s4, redirall = expand(d.port, "redirall.test")
    assert s1 == "OK", (s1, amx)
    assert amx == ["192.0.2.0/24", "192.0.2.10/32", "192.0.2.20/32",
                   "192.0.2.30/32", "2001:db8::10/128",
                   "2001:db8:4::20/128", "2001:db8:5::/64",
                   "2001:db8:6::77/128"], amx
    assert (s2, v6) == ("OK", ["2001:db8:1::/48", "2001:db8:2::1/128"])
    assert (s3, redir) == ("OK", ["127.0.0.2/32", "127.0.0.3/32"])
    assert (s4, redirall) == ("OK", ["192.0.2.8/32"])


def test_spf_expand_only_pass_qualified_terms():
    with zone() as d:
        status, nets = expand(d.port, "qual.test")
    assert (status, nets) == ("OK", ["192.0.2.68/32"]), (status, nets)


def test_spf_expand_lookup_limit_returns_what_it_found():
    with zone() as d:
        status, nets = expand(d.port, "many.test")
    assert status == "PERMFAIL SPF lookup limit (10) exceeded", status
    assert nets == ["10.0.0.%d/32" % i for i in range(1, 11)], nets


def test_spf_expand_void_lookup_limit():
    with zone() as d:
        status, nets = expand(d.port, "voids.test")
    assert status == "PERMFAIL SPF void lookup limit (2) exceeded", status
    assert nets == [], nets


def test_spf_expand_failures():
    with zone() as d:
        two = expand(d.port, "two.test")
        none = expand(d.port, "nospf.test")
        nx = expand(d.port, "nowhere.test")
        bad = expand(d.port, "bad.test")
    assert two == ("PERMFAIL two.test has 2 SPF records", []), two
    assert none == ("PERMFAIL nospf.test has no SPF record", []), none
    assert nx == ("PERMFAIL nowhere.test does not exist", []), nx
    assert bad == ("PERMFAIL bad SPF record at bad.test", []), bad
    port = free_dns_port()
    status, nets = expand(port, "pool.test")
    assert status.startswith("TEMPFAIL"), status
