"""Blocking through the firewall (issue 7) against the real daemon and
the real nftables of the test's network namespace: clients that fail
AUTH too often, and trapped clients, go to the block set with the
configured time; with the example ruleset (etc/nftables.conf) loaded a
new connection from a blocked client is dropped; greylist delete takes
a client out of the set again.

run.py puts every test in one private network namespace, as root in
it, so nft here sees only this run's ruleset.  Each test starts and
ends without the daemon's table (inet smarthostd), the only table the
example ruleset declares; the example is loaded unchanged, and the test
that loads it listens on port 25, one of the SMTP ports it filters.

Client addresses: 127.0.0.9 fails AUTH past the limit, 127.0.0.10
stays under it (and must still connect), 127.0.0.11 is trapped,
127.0.0.12 is blocked and then deleted."""

import contextlib
import os
import socket

from lib import REPO, Daemon, Dnsmasq, LogOnFailure, base_config
from test_firewall import SET_WAIT, TABLE, clean_ruleset, elements, nft, \
    wait_elements
from test_relay import log_tail
from test_smtp import (HOST, Client, auth_plain, free_ports,
                       password_hashes, tls_session, write_pki)

EXAMPLE = os.path.join(REPO, "etc", "nftables.conf")
# The example ruleset filters the SMTP ports; test 2 listens on one.
SMTP_PORT = 25

BLOCKED, UNDER_LIMIT, TRAPPED, DELETED = ("127.0.0.9", "127.0.0.10",
                                          "127.0.0.11", "127.0.0.12")


def firewall(block):
    return ('firewall nftables {\n\ttable "%s"\n'
            '\tset white "white"\n\tset trap "trap"\n'
            '\tset block "block"\n\tset spf-white "spf-white"\n'
            '%s}\n' % (TABLE, "".join("\t%s\n" % b for b in block)))


def wait_in_set(name, addr):
    """addr's timeout in the set, once it is there."""
    return wait_elements(name, lambda s: addr in s,
                         "%s in the nftables set %s" % (addr, name))[addr]


def assert_timeout(timeout, seconds):
    """An element's timeout is the configured time (grey sends the
    time left, so a few seconds less is fine)."""
    assert timeout is not None and seconds - 5 <= timeout <= seconds, (
        "expected a timeout of %ds, got %r" % (seconds, timeout))


@contextlib.contextmanager
def blockd(block, port=None, grey="", extra="", dns=None):
    """The daemon with an AUTH listener (STARTTLS, <passwd>) on
    127.0.0.1:port and the nftables firewall with the block lines."""
    d = Daemon()
    d.port = port or free_ports(1)[0]
    cert, key = write_pki(d.tmp)
    path = os.path.join(d.tmp, "passwd")
    with open(path, "w") as f:
        for user, h in password_hashes().items():
            f.write("%s %s\n" % (user, h))
    os.chmod(path, 0o600)
    text = ('pki "mx.test" cert "%s"\npki "mx.test" key "%s"\n'
            'table passwd file "%s"\n'
            'table our-domains { example.org }\n'
            'table our-nets { 127.0.0.1 }\n' % (cert, key, path))
    text += extra + grey + firewall(block)
    # smtp's own limit (454 after it) stays out of the way.
    text += ('listen on %s port %d tls pki "mx.test" auth <passwd>\n'
             'smtp {\n\tmax-auth-failures 50\n\tmax-errors 100\n'
             '\tcommand-timeout 20s\n}\n'
             'action "inbound" relay host "smtp://127.0.0.1:2"%s\n'
             'action "outbound" relay\n'
             'match from src <our-nets> for any action "outbound"\n'
             'match auth for any action "outbound"\n'
             'match for domain <our-domains> action "inbound"\n' % (
                 HOST, d.port, " greylist" if grey else ""))
    conf = base_config(d.tmp, text)
    if dns is not None:
        conf = conf.replace("resolver 127.0.0.1 port 1\n",
                            dns.resolver_line())
    d.write_config(conf)
    with d, LogOnFailure(d, log_tail):
        yield d


def fail_auth(d, src, times, sessions=2):
    """times failed AUTH PLAINs from src, spread over sessions.  The
    sessions end without QUIT: once the last failure has put src in
    the block set, a ruleset may drop its packets on any connection."""
    done = 0
    for i in range(sessions):
        n = (times - done) // (sessions - i)
        if n == 0:
            continue
        with tls_session(d, src=src) as c:
            for _ in range(n):
                auth_plain(c, "alice", "wrong-%d" % done, 535, "5.7.8")
                done += 1


def connects(src, port, timeout=3):
    """Whether a new TCP connection from src to port gets the greeting
    within timeout; False when the SYN goes unanswered."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((src, 0))
    s.settimeout(timeout)
    try:
        s.connect((HOST, port))
        return s.recv(4).startswith(b"220")
    except socket.timeout:
        return False
    finally:
        s.close()


BLOCK_AUTH = ["block auth-failures 3 within 10m for 1h"]


# ---------------------------------------------------------------------

def test_auth_failures_past_the_limit_put_the_client_in_the_block_set():
    with clean_ruleset(), blockd(BLOCK_AUTH) as d:
        fail_auth(d, UNDER_LIMIT, 2)
        fail_auth(d, BLOCKED, 3)
        assert_timeout(wait_in_set("block", BLOCKED), 3600)
        assert UNDER_LIMIT not in elements("block"), (
            "%s failed only twice but is blocked: %r" % (
                UNDER_LIMIT, elements("block")))
        # nothing of the block list leaks into the other sets
        for name in ("white", "trap", "spf-white"):
            elems = elements(name)
            assert elems is not None, "no set %s in %s" % (name, TABLE)
            assert BLOCKED not in elems, (name, elems)


def test_example_ruleset_drops_new_connections_from_a_blocked_client():
    assert os.path.exists(EXAMPLE), "%s is missing" % EXAMPLE
    with clean_ruleset():
        nft("-f", EXAMPLE)
        with blockd(BLOCK_AUTH, port=SMTP_PORT) as d:
            assert connects(BLOCKED, d.port), \
                "%s cannot connect before any failure" % BLOCKED
            fail_auth(d, UNDER_LIMIT, 2)
            fail_auth(d, BLOCKED, 3)
            wait_in_set("block", BLOCKED)
            assert not connects(BLOCKED, d.port), \
                "a new connection from the blocked %s got through" % BLOCKED
            assert connects(UNDER_LIMIT, d.port), \
                "%s (under the limit) no longer connects" % UNDER_LIMIT
            # the daemon still answers: blocking is the firewall's doing
            with Client(d.port, src="127.0.0.1") as c:
                c.cmd("QUIT", 221, "2.0.0")


def test_trapped_client_goes_to_the_block_set():
    with clean_ruleset(), Dnsmasq(local=("test", "example")) as dns:
        grey = "greylist {\n\tpasstime 2s\n\ttrap <traps>\n}\n"
        with blockd(BLOCK_AUTH + ["block trapped yes"], grey=grey,
                    extra="table traps { trap@example.org }\n"
                    "tarpit {\n\tstutter 0\n}\n", dns=dns) as d:
            with Client(d.port, src=TRAPPED, timeout=20) as c:
                c.ehlo()
                c.cmd("MAIL FROM:<a@b.example>", 250, "2.1.0")
                c.cmd("RCPT TO:<trap@example.org>", 550, "5.7.1")
            d.wait_log("trapped %s by <trap@example.org>" % TRAPPED)
            wait_in_set("block", TRAPPED)
            wait_in_set("trap", TRAPPED)


def test_block_time_is_the_configured_one_and_delete_unblocks():
    with clean_ruleset(), \
            blockd(["block auth-failures 2 within 1m for 5m"]) as d:
        fail_auth(d, DELETED, 2)
        assert_timeout(wait_in_set("block", DELETED), 300)
        r = d.ctl("greylist", "delete", DELETED)
        assert "deleted" in r.stdout, r.stdout
        wait_elements("block", lambda s: DELETED not in s,
                      "%s out of the block set" % DELETED)
