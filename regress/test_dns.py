"""smarthostd/dns.c, the asynchronous resolver of the outbound client,
against dnsmasq on loopback: MX order, implicit MX, null MX, failures
and their kind, fixed relay hosts, IPv6, cancellation, resolver change,
and the bound on lookups in flight.

regress/unit/dns_lookup runs dns.c on a libevent loop and prints each
answer; it exits 3 when dns.c calls back from inside a dns_* call, calls
a cancelled callback or calls one twice."""

import os
import socket
import subprocess
import tempfile
import threading
import time

from lib import REGRESS, Dnsmasq, free_dns_port, ipv6_loopback

DNS_LOOKUP = os.path.join(REGRESS, "unit", "dns_lookup")
ADDR_MAX = 64


class Result:
    def __init__(self, status, detail):
        self.status = status
        self.reason = detail if isinstance(detail, str) else ""
        # (preference, host, address, port) in the order given
        self.addrs = detail if isinstance(detail, list) else []

    def hosts(self):
        """The MX hosts in order, each once."""
        seen = []
        for _, host, _, _ in self.addrs:
            if host not in seen:
                seen.append(host)
        return seen

    def __repr__(self):
        return "Result(%s, %r)" % (self.status,
                                   self.addrs or self.reason)


def lookup(server, port, *queries, options=(), timeout=90):
    """Run the queries at once; returns ({index: Result}, seconds)."""
    if not os.access(DNS_LOOKUP, os.X_OK):
        raise AssertionError("%s is not built (make test builds it)" %
                             DNS_LOOKUP)
    start = time.monotonic()
    proc = subprocess.run([DNS_LOOKUP] + list(options) +
                          [server, str(port)] + list(queries),
                          capture_output=True, text=True, timeout=timeout)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        raise AssertionError("dns_lookup exited %d:\n%s%s" % (
            proc.returncode, proc.stdout, proc.stderr))
    results = {}
    for line in proc.stdout.splitlines():
        index, status, rest = (line.split(" ", 2) + [""])[:3]
        index = int(index)
        if status == "OK":
            results[index] = Result("OK", [])
        elif status in ("TEMPFAIL", "PERMFAIL", "INVALID"):
            results[index] = Result(status, rest)
        else:
            pref, host, addr, aport = line.split(" ")[1:]
            results[index].addrs.append((int(pref), host, addr,
                                         int(aport)))
    return results, elapsed


def lookup_one(server, port, query, **kw):
    results, elapsed = lookup(server, port, query, **kw)
    assert list(results) == [0], results
    return results[0]


def zone():
    """The zones most tests share."""
    return Dnsmasq(
        mx=[("pref.test", "mx-c.pref.test", 30),
            ("pref.test", "mx-a.pref.test", 10),
            ("pref.test", "mx-b.pref.test", 20),
            ("equal.test", "one.equal.test", 10),
            ("equal.test", "two.equal.test", 10),
            ("equal.test", "backup.equal.test", 20),
            ("dangling.test", "nowhere.test", 10),
            ("halfdangling.test", "nowhere.test", 10),
            ("halfdangling.test", "mx-b.pref.test", 20),
            ("nummx.test", "192.0.2.77", 10),
            ("nummx.test", "mx-b.pref.test", 20),
            ("unusable.test", "zero.unusable.test", 10),
            ("unusable.test", "multicast.unusable.test", 10),
            ("unusable.test", "mx-b.pref.test", 20)],
        hosts=[("mx-a.pref.test", "192.0.2.1", "2001:db8::1"),
               ("mx-b.pref.test", "192.0.2.2", None),
               ("mx-c.pref.test", None, "2001:db8::3"),
               ("one.equal.test", "192.0.2.11", None),
               ("two.equal.test", "192.0.2.12", None),
               ("backup.equal.test", "192.0.2.13", None),
               ("implicit.test", "192.0.2.10", "2001:db8::10"),
               ("relay.test", "192.0.2.30", "2001:db8::30"),
               ("relay.test", "192.0.2.31", None),
               ("nullmx.test", "192.0.2.20", None),
               ("mx-b1.pool.test", "192.0.2.40", None),
               ("zero.unusable.test", "0.0.0.0", "::"),
               ("multicast.unusable.test", "224.0.0.1", "ff02::1"),
               ("multicast.unusable.test", "255.255.255.255", None)],
        rr=[("nullmx.test", 15, "000000"),
            # MX 10 "bad name.test" (a space in a label) ...
            ("badmx.test", 15, "000a08626164206e616d650474657374" "00"),
            # ... and MX 20 mx-b1.pool.test
            ("badmx.test", 15, "0014056d782d623104706f6f6c0474657374"
             "00"),
            ("onlybadmx.test", 15, "000a08626164206e616d650474657374"
             "00")],
        txt=[("txtonly.test", "no mail here")])


class DelayingProxy:
    """Forwards DNS over UDP to a server after a delay, and counts the
    most queries it held at once."""

    def __init__(self, upstream_port, delay):
        self.upstream = upstream_port
        self.delay = delay
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.inflight = 0
        self.max_inflight = 0
        self.total = 0
        self.stopping = False

    def __enter__(self):
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping = True
        self.sock.close()

    def serve(self):
        while not self.stopping:
            try:
                data, peer = self.sock.recvfrom(65535)
            except OSError:
                return
            with self.lock:
                self.inflight += 1
                self.total += 1
                self.max_inflight = max(self.max_inflight, self.inflight)
            threading.Thread(target=self.forward, args=(data, peer),
                             daemon=True).start()

    def forward(self, data, peer):
        reply = None
        try:
            time.sleep(self.delay)
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            u.settimeout(5)
            u.sendto(data, ("127.0.0.1", self.upstream))
            reply, _ = u.recvfrom(65535)
            u.close()
        except OSError:
            pass
        # Counted out before the answer leaves: the next query may
        # come in the moment it arrives.
        with self.lock:
            self.inflight -= 1
        try:
            if reply is not None and not self.stopping:
                self.sock.sendto(reply, peer)
        except OSError:
            pass


def closed_port():
    """A UDP port on 127.0.0.1 with nothing bound: ICMP refuses."""
    return free_dns_port()


# MX

def test_mx_hosts_in_preference_order():
    with zone() as d:
        r = lookup_one("127.0.0.1", d.port, "mx:pref.test")
    assert r.status == "OK", r
    assert r.hosts() == ["mx-a.pref.test", "mx-b.pref.test",
                         "mx-c.pref.test"], r
    assert [a[0] for a in r.addrs] == [10, 10, 20, 30], r
    assert all(a[3] == 25 for a in r.addrs), r


def test_mx_host_aaaa_before_a():
    with zone() as d:
        r = lookup_one("127.0.0.1", d.port, "mx:pref.test")
    assert [a[2] for a in r.addrs] == ["2001:db8::1", "192.0.2.1",
                                       "192.0.2.2", "2001:db8::3"], r


def test_mx_equal_preferences_shuffled():
    with zone() as d:
        results, _ = lookup("127.0.0.1", d.port,
                            *(["mx:equal.test"] * 40))
    orders = set()
    for r in results.values():
        assert r.status == "OK", r
        assert r.hosts()[2] == "backup.equal.test", r
        orders.add(tuple(r.hosts()[:2]))
    assert orders == {("one.equal.test", "two.equal.test"),
                      ("two.equal.test", "one.equal.test")}, orders


def test_mx_absent_domain_is_its_own_exchanger():
    with zone() as d:
        r = lookup_one("127.0.0.1", d.port, "mx:implicit.test")
    assert r.status == "OK", r
    assert r.addrs == [(0, "implicit.test", "2001:db8::10", 25),
                       (0, "implicit.test", "192.0.2.10", 25)], r


def test_mx_absent_and_no_address_permfail():
    with zone() as d:
        r = lookup_one("127.0.0.1", d.port, "mx:txtonly.test")
    assert r.status == "PERMFAIL", r
    assert "no MX and no address" in r.reason, r


def test_null_mx_permfail():
    with zone() as d:
        r = lookup_one("127.0.0.1", d.port, "mx:nullmx.test")
    assert r.status == "PERMFAIL", r
    assert "null MX" in r.reason, r


def test_nxdomain_permfail():
    with zone() as d:
        r = lookup_one("127.0.0.1", d.port, "mx:nosuchdomain.test")
    assert r.status == "PERMFAIL", r
    assert "does not exist" in r.reason, r


def test_mx_hosts_without_address_permfail():
    with zone() as d:
        r = lookup_one("127.0.0.1", d.port, "mx:dangling.test")
    assert r.status == "PERMFAIL", r
    assert "no MX host" in r.reason, r


def test_mx_host_without_address_skipped():
    with zone() as d:
        r = lookup_one("127.0.0.1", d.port, "mx:halfdangling.test")
    assert r.status == "OK", r
    assert r.addrs == [(20, "mx-b.pref.test", "192.0.2.2", 25)], r


def test_mx_bad_host_names_ignored():
    with zone() as d:
        bad = lookup_one("127.0.0.1", d.port, "mx:badmx.test")
        numeric = lookup_one("127.0.0.1", d.port, "mx:nummx.test")
        only = lookup_one("127.0.0.1", d.port, "mx:onlybadmx.test")
    assert bad.status == "OK", bad
    assert bad.addrs == [(20, "mx-b1.pool.test", "192.0.2.40", 25)], bad
    assert numeric.status == "OK", numeric
    assert numeric.hosts() == ["mx-b.pref.test"], numeric
    assert only.status == "PERMFAIL", only


def test_mx_unusable_addresses_dropped():
    """0.0.0.0 and :: would connect to this host; multicast and
    broadcast to nothing."""
    with zone() as d:
        r = lookup_one("127.0.0.1", d.port, "mx:unusable.test")
    assert r.status == "OK", r
    assert r.addrs == [(20, "mx-b.pref.test", "192.0.2.2", 25)], r


def test_mx_large_answer_over_tcp_capped():
    """40 MX hosts of 4 addresses each do not fit a 512-byte UDP answer:
    c-ares asks again over TCP; the list stops at 64, best preferences
    first."""
    mx, hosts = [], []
    for i in range(1, 41):
        name = "exchanger-with-a-long-name-%02d.big.test" % i
        mx.append(("big.test", name, (i % 4) * 10))
        hosts.append((name, "10.1.%d.1" % i, "2001:db8::%x:1" % i))
        hosts.append((name, "10.1.%d.2" % i, "2001:db8::%x:2" % i))
    with Dnsmasq(mx=mx, hosts=hosts) as d:
        r = lookup_one("127.0.0.1", d.port, "mx:big.test")
        log = d.querylog()
    assert r.status == "OK", r
    assert len(r.addrs) == ADDR_MAX, len(r.addrs)
    prefs = [a[0] for a in r.addrs]
    assert prefs == sorted(prefs), prefs
    assert len(set((a[2], a[3]) for a in r.addrs)) == ADDR_MAX, r
    assert log.count("query[MX] big.test") >= 2, log


def test_mx_address_literal_needs_no_dns():
    port = closed_port()
    results, _ = lookup("127.0.0.1", port, "mx:[192.0.2.5]",
                        "mx:[IPv6:2001:db8::5]", "mx:[2001:db8::5]",
                        "mx:[0.0.0.0]", "mx:[IPv6:::]")
    assert results[0].addrs == [(0, "192.0.2.5", "192.0.2.5", 25)], results
    assert results[1].addrs == [(0, "2001:db8::5", "2001:db8::5", 25)], \
        results
    assert [results[i].status for i in (2, 3, 4)] == ["INVALID"] * 3, \
        results


# Failures worth a retry

def test_refused_tempfail():
    with zone() as d:
        r = lookup_one("127.0.0.1", d.port, "mx:example.org")
    assert r.status == "TEMPFAIL", r


def test_closed_port_tempfail_at_once():
    r = lookup_one("127.0.0.1", closed_port(), "mx:pref.test")
    assert r.status == "TEMPFAIL", r
    results, elapsed = lookup("127.0.0.1", closed_port(), "mx:pref.test",
                              "host:25:relay.test")
    assert [x.status for x in results.values()] == ["TEMPFAIL"] * 2
    assert elapsed < 5, elapsed


def test_silent_server_tempfail_after_timeout():
    """Two tries, 5 s then 10 s: a tempfail in about 15 s."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    try:
        results, elapsed = lookup("127.0.0.1", s.getsockname()[1],
                                  "mx:pref.test", "host:25:relay.test")
    finally:
        s.close()
    assert [r.status for r in results.values()] == ["TEMPFAIL"] * 2, \
        results
    assert "Timeout" in results[0].reason, results
    assert 9 < elapsed < 20, elapsed


# Fixed relay hosts

def test_host_addresses_with_port():
    with zone() as d:
        r = lookup_one("127.0.0.1", d.port, "host:2525:relay.test")
    assert r.status == "OK", r
    assert r.addrs == [(0, "relay.test", "2001:db8::30", 2525),
                       (0, "relay.test", "192.0.2.30", 2525),
                       (0, "relay.test", "192.0.2.31", 2525)] or \
        r.addrs == [(0, "relay.test", "2001:db8::30", 2525),
                    (0, "relay.test", "192.0.2.31", 2525),
                    (0, "relay.test", "192.0.2.30", 2525)], r


def test_host_numeric_needs_no_dns():
    results, elapsed = lookup("127.0.0.1", closed_port(),
                              "host:10025:127.0.0.1", "host:587:::1",
                              "host:25:[2001:db8::7]")
    assert results[0].addrs == [(0, "127.0.0.1", "127.0.0.1", 10025)]
    assert results[1].addrs == [(0, "::1", "::1", 587)]
    assert results[2].addrs == [(0, "2001:db8::7", "2001:db8::7", 25)]
    assert elapsed < 2, elapsed


def test_host_localhost_is_loopback():
    r = lookup_one("127.0.0.1", closed_port(), "host:10025:localhost")
    assert r.addrs == [(0, "localhost", "::1", 10025),
                       (0, "localhost", "127.0.0.1", 10025)], r


def test_host_nxdomain_permfail():
    with zone() as d:
        r = lookup_one("127.0.0.1", d.port, "host:25:nosuchhost.test")
    assert r.status == "PERMFAIL", r


def test_invalid_names_refused():
    names = ["bad..name.test", ".test", "bad name.test", "-", "a" * 64 +
             ".test", ".".join(["abcdefghi"] * 26), "tab\there.test",
             "[192.0.2.1", "[300.1.1.1]", "caf\u00e9.test"]
    queries = ["mx:" + n for n in names] + ["host:25:" + n for n in names]
    results, _ = lookup("127.0.0.1", closed_port(), *queries)
    bad = {queries[i]: r for i, r in results.items()
           if r.status != "INVALID"}
    assert not bad, bad


# Resolvers

def test_ipv6_resolver():
    assert ipv6_loopback(), "no IPv6 on loopback"
    with zone() as d:
        r = lookup_one("::1", d.port, "mx:pref.test")
    assert r.status == "OK", r
    assert r.hosts()[0] == "mx-a.pref.test", r


def test_system_resolver_without_search_list():
    """Resolver "": /etc/resolv.conf (bind-mounted here), port 53; its
    search list is not applied to mail domains."""
    with Dnsmasq(mx=[("pref.test", "mx.pref.test", 10)],
                 hosts=[("mx.pref.test", "192.0.2.9", None)],
                 port=53) as d:
        tmp = tempfile.mkdtemp(prefix="smarthostd-resolv-")
        conf = os.path.join(tmp, "resolv.conf")
        with open(conf, "w") as f:
            f.write("search test\nnameserver 127.0.0.1\n")
        script = ("mount --bind %s /etc/resolv.conf && "
                  "exec %s system 0 mx:pref.test mx:pref" % (conf,
                                                             DNS_LOOKUP))
        proc = subprocess.run(["unshare", "--mount", "sh", "-c", script],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, (proc.stdout, proc.stderr, d.stderr())
        log = d.querylog()
    results = {}
    for line in proc.stdout.splitlines():
        results.setdefault(line.split()[0], []).append(line)
    assert results["0"] == ["0 OK 1", "0 10 mx.pref.test 192.0.2.9 25"], \
        results
    assert results["1"][0].split()[1] in ("TEMPFAIL", "PERMFAIL"), results
    assert "query[MX] pref from" in log, log
    assert log.count("query[MX] pref.test from") == 1, log


def test_resolver_change_restarts_lookups_in_flight():
    with zone() as d, DelayingProxy(d.port, 2.0) as slow:
        results, elapsed = lookup(
            "127.0.0.1", slow.port, "mx:pref.test", "host:25:relay.test",
            options=["-R", "300:127.0.0.1:%d" % d.port])
    assert [r.status for r in results.values()] == ["OK", "OK"], results
    assert elapsed < 1.5, elapsed


# The caller's side

def test_cancelled_lookups_never_call_back():
    with zone() as d, DelayingProxy(d.port, 0.5):
        # cancelled before they start
        results, _ = lookup("127.0.0.1", d.port, "cancel-mx:pref.test",
                            "mx:implicit.test", "cancel-host:25:relay.test",
                            "cancel-host:25:127.0.0.1",
                            options=["-w", "1000"])
    assert list(results) == [1], results
    with zone() as d, DelayingProxy(d.port, 0.5) as slow:
        # cancelled while their queries are out; the answers come later
        results, _ = lookup("127.0.0.1", slow.port, "cancel-mx:pref.test",
                            "mx:implicit.test", "cancel-host:25:relay.test",
                            options=["-C", "200", "-w", "1500"])
        assert slow.total >= 3, slow.total
    assert list(results) == [1], results


def test_lookups_beyond_the_limit_wait_their_turn():
    """300 lookups at once through a slow server: every one answered,
    never more than 32 lookups in flight.  A relay host's lookup is two
    queries (A, AAAA), pref.test's six once its three MX hosts are
    known, its MX query one."""
    with zone() as d, DelayingProxy(d.port, 0.2) as slow:
        results, _ = lookup("127.0.0.1", slow.port,
                            *(["host:25:relay.test"] * 300))
        hosts_most = slow.max_inflight
    assert len(results) == 300, len(results)
    assert all(r.status == "OK" for r in results.values()), results
    assert 16 <= hosts_most <= 32 * 2, hosts_most
    with zone() as d, DelayingProxy(d.port, 0.2) as slow:
        results, _ = lookup("127.0.0.1", slow.port,
                            *(["mx:pref.test", "host:25:relay.test"] * 150))
        mixed_most = slow.max_inflight
    assert len(results) == 300, len(results)
    assert all(r.status == "OK" for r in results.values()), results
    assert mixed_most <= 32 * 6, mixed_most
