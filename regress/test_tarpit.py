"""The tarpit against the real daemon: a client on a blocklist (plain or
gzip) gets every reply one character at a time, no STARTTLS, and at RCPT
the list's message with 550 5.7.1 (or 450 4.7.1) before the server
hangs up; max-connections caps the sessions that stutter; a client not
on the list is served as usual.

Clients connect from 127.0.0.x; the list holds 127.0.0.5 and 127.0.0.6.
"""

import contextlib
import gzip
import json
import os
import tempfile
import time

from lib import Daemon, base_config, wait_for
from test_smtp import (HOST, TLS, Client, free_ports, password_hashes,
                       tls_context, write_pki)

STUTTER_MS = 20
BLOCKED = "127.0.0.5"
BLOCKED_TOO = "127.0.0.6"
CLEAN = "127.0.0.7"
BANNER = b"220 test.example.org ESMTP smarthostd\r\n"


@contextlib.contextmanager
def tarpitd(tarpit="", gz=False, extra="",
            rules='match for domain <our-domains> action "inbound"\n'):
    """The daemon with a TLS listener and the blocklist "local"; tarpit
    holds the options of the tarpit block, stutter 20ms included."""
    d = Daemon()
    cert, key = write_pki(d.tmp)
    listfile = os.path.join(d.tmp, "blocked" + (".gz" if gz else ""))
    text = "# addresses that send spam\n%s\n%s/32\n" % (BLOCKED, BLOCKED_TOO)
    if gz:
        with gzip.open(listfile, "wb") as f:
            f.write(text.encode())
    else:
        with open(listfile, "w") as f:
            f.write(text)
    port = free_ports(1)[0]
    conf = ('pki "mx.test" cert "%s"\npki "mx.test" key "%s"\n' % (cert, key)
            + "table our-domains { example.org }\n"
            "table our-nets { 127.0.0.1 }\n"
            'blocklist "local" file "%s" message "Your address %%A is '
            'blocked"\n' % listfile
            + "tarpit {\n\tstutter %dms\n%s}\n" % (STUTTER_MS, tarpit)
            + "listen on %s port %d %s\n" % (HOST, port, TLS)
            + "smtp {\n\tcommand-timeout 20s\n\ttransaction-timeout 60s\n}\n"
            + 'action "inbound" relay host "smtp://127.0.0.1:2"\n'
            + extra + rules)
    d.write_config(base_config(d.tmp, conf))
    d.port = port
    with d:
        # grey loads the list a moment after the start: a session before
        # that is not tarpitted (seen on a loaded machine).
        wait_for(lambda: any(t["name"] == "local" and t["count"] > 0
                             for t in json.loads(d.ctl(
                                 "-j", "show", "tables").stdout)),
                 10, "the blocklist to be loaded")
        yield d


def connect(d, src):
    """A client whose banner the test reads itself (read_banner)."""
    return Client(d.port, src=src, timeout=30, greeting=False)


def read_banner(c, data=b""):
    """The rest of the banner after data as it arrives: (the chunks recv
    returned, the seconds from the first of them to the last byte)."""
    chunks, first = [], None
    while not data.endswith(b"\r\n"):
        chunk = c.sock.recv(4096)
        assert chunk, "closed inside the banner after %r" % data
        if first is None:
            first = time.monotonic()
        chunks.append(chunk)
        data += chunk
    assert data == BANNER, data
    return chunks, time.monotonic() - first


def assert_stuttered(chunks, seconds, length):
    assert len(chunks[0]) <= 3, "first read got %r" % chunks[0]
    assert seconds >= length * STUTTER_MS / 1000.0 * 0.5, (
        "%d bytes in %.2fs, %d reads: not stuttered" %
        (length, seconds, len(chunks)))


def assert_not_stuttered(chunks, seconds, length):
    assert seconds < length * STUTTER_MS / 1000.0 * 0.5, (
        "%d bytes in %.2fs, %d reads: stuttered" %
        (length, seconds, len(chunks)))


def tarpit_dialogue(d, code, enhanced):
    c = connect(d, BLOCKED)
    chunks, seconds = read_banner(c)
    assert_stuttered(chunks, seconds, len(BANNER))
    start = time.monotonic()
    ext = c.ehlo()
    took = time.monotonic() - start
    assert "STARTTLS" not in ext, ext
    assert not any(e.startswith("AUTH") for e in ext), ext
    assert took >= 100 * STUTTER_MS / 1000.0 * 0.5, (
        "EHLO reply in %.2fs: not stuttered" % took)
    c.cmd("STARTTLS", 502, "5.5.1")
    c.cmd("NOOP", 250, "2.0.0")
    c.cmd("MAIL FROM:<spammer@spam.example>", 250, "2.1.0")
    c.cmd("RCPT TO:<x@example.org>", code, enhanced,
          text="Your address %s is blocked" % BLOCKED)
    assert c.closed(), "the session stayed open after the tarpit's RCPT"
    c.close()
    d.wait_log("session 1: tarpit: local: Your address %s is blocked" %
               BLOCKED)


def test_blocklisted_client_gets_stuttered_replies_and_550_5_7_1_at_rcpt():
    with tarpitd() as d:
        tarpit_dialogue(d, 550, "5.7.1")
        stats = d.ctl("show", "stats").stdout
        assert "smtp.tarpitted" in stats and "blocked_at_connect" in stats, \
            stats


def test_tarpit_reply_450_gives_450_4_7_1():
    with tarpitd(tarpit="\treply 450\n") as d:
        tarpit_dialogue(d, 450, "4.7.1")


def test_gzipped_blocklist_tarpits_the_same():
    with tarpitd(gz=True) as d:
        tarpit_dialogue(d, 550, "5.7.1")


def test_client_not_on_the_blocklist_is_not_tarpitted():
    with tarpitd() as d:
        c = connect(d, CLEAN)
        chunks, seconds = read_banner(c)
        assert_not_stuttered(chunks, seconds, len(BANNER))
        assert "STARTTLS" in c.ehlo()
        c.cmd("MAIL FROM:<a@b.example>", 250, "2.1.0")
        c.cmd("RCPT TO:<x@example.org>", 250, "2.1.5")
        c.cmd("QUIT", 221, "2.0.0")
        c.close()


def test_max_connections_1_leaves_a_second_tarpitted_session_unstuttered():
    with tarpitd(tarpit="\tmax-connections 1\n") as d:
        first = connect(d, BLOCKED)
        try:
            head = first.sock.recv(1)
            assert len(head) == 1, head
            with connect(d, BLOCKED_TOO) as c:
                chunks, seconds = read_banner(c)
                assert_not_stuttered(chunks, seconds, len(BANNER))
                assert "STARTTLS" not in c.ehlo()
                c.cmd("MAIL FROM:<a@b.example>", 250, "2.1.0")
                c.cmd("RCPT TO:<x@example.org>", 550, "5.7.1",
                      text="Your address %s is blocked" % BLOCKED_TOO)
                assert c.closed(), "the session stayed open after RCPT"
            # the first goes on stuttering all the while
            chunks, seconds = read_banner(first, head)
            assert_stuttered(chunks, seconds, len(BANNER) - 1)
        finally:
            first.close()


def test_spamtrap_after_starttls_gets_a_stuttered_550_over_tls_and_close():
    """A client that sends to a spamtrap is tarpitted from that RCPT on,
    inside TLS too."""
    extra = ('table traps { trap@example.org }\n'
             'greylist {\n\ttrap <traps>\n}\n'
             'action "grey" relay host "smtp://127.0.0.1:2" greylist\n')
    rules = 'match for domain <our-domains> action "grey"\n'
    with tarpitd(extra=extra, rules=rules) as d, \
            Client(d.port, src=CLEAN, timeout=30) as c:
        c.ehlo()
        c.starttls(tls_context())
        c.ehlo()
        c.cmd("MAIL FROM:<spammer@spam.example>", 250, "2.1.0")
        start = time.monotonic()
        c.send("RCPT TO:<trap@example.org>\r\n")
        code, lines = c.reply()
        took = time.monotonic() - start
        assert code == 550 and lines[0].startswith("550 5.7.1 "), lines
        assert took >= len(lines[0]) * STUTTER_MS / 1000.0 * 0.5, (
            "%r in %.2fs: not stuttered" % (lines[0], took))
        assert c.closed(), "the session stayed open after the trap"
        d.wait_log("session 1: trapped by <trap@example.org>")


def test_blocklisted_client_on_an_auth_listener_is_not_tarpitted():
    """A listener with AUTH serves our own users, who may write from a
    listed address: grey is not asked at connect there."""
    auth_port = free_ports(1)[0]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "passwd")
        with open(path, "w") as f:
            for user, h in password_hashes().items():
                f.write("%s %s\n" % (user, h))
        os.chmod(path, 0o600)
        extra = ('table passwd file "%s"\n' % path +
                 'listen on %s port %d %s auth <passwd>\n' %
                 (HOST, auth_port, TLS))
        with tarpitd(extra=extra) as d:
            c = Client(auth_port, src=BLOCKED, timeout=30, greeting=False)
            chunks, seconds = read_banner(c)
            assert_not_stuttered(chunks, seconds, len(BANNER))
            ehlo = c.ehlo()
            assert "STARTTLS" in ehlo, ehlo
            c.cmd("QUIT", 221, "2.0.0")
            c.close()
            # the same client on the port without AUTH is tarpitted
            c = connect(d, BLOCKED)
            chunks, seconds = read_banner(c)
            assert_stuttered(chunks, seconds, len(BANNER))
            c.close()
