"""The SMTP server around the dialogue: what the Received header says,
IPv6 and interface listeners, SIGTERM with sessions open, a full disk,
and what the log keeps of a failed AUTH."""

import json
import os
import signal
import socket
import subprocess
import time

from lib import children_of, pid_alive, wait_for
from test_smtp import (HOST, MESSAGE, PASSWORDS, Client, auth_plain,
                       ctl_run, need_users, queued_id, send_message,
                       session, show_queue_ids, smtpd, tls_context,
                       tls_session)


def message_headers(d, msgid):
    r = ctl_run(d, "-j", "show", "message", msgid)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["headers"]


def test_received_header_names_tls_protocol_cipher_and_queue_id():
    with smtpd(listeners=('tls pki "mx.test"',), tls=True) as d:
        c = tls_session(d)
        c.cmd("MAIL FROM:<a@b.example>", 250)
        c.cmd("RCPT TO:<x@example.org>", 250)
        msgid = queued_id(send_message(c, MESSAGE))
        headers = message_headers(d, msgid)
        received = []
        for line in headers:
            if received and line[:1] in (" ", "\t"):
                received.append(line)
            elif not received:
                received.append(line)
            else:
                break
        text = " ".join(received)
        assert text.startswith("Received: from client.test ([127.0.0.1])"), \
            text
        assert "by test.example.org (smarthostd) with ESMTPS id %s" % \
            msgid in text, text
        assert "version=TLSv1." in text and "cipher=" in text, text
        assert "for <x@example.org>;" in text, text


def test_received_header_of_plain_helo_says_smtp_and_hides_recipients():
    with smtpd() as d:
        c = session(d, ehlo=False)
        c.cmd("HELO client.test", 250, esc=False)
        c.cmd("MAIL FROM:<a@b.example>", 250)
        c.cmd("RCPT TO:<x@example.org>", 250)
        c.cmd("RCPT TO:<y@example.org>", 250)
        msgid = queued_id(send_message(c, MESSAGE))
        text = " ".join(message_headers(d, msgid)[:4])
        assert "with SMTP id %s" % msgid in text, text
        assert "for <" not in text, text


def test_ipv6_and_interface_listeners_accept():
    if not os.path.exists("/proc/net/if_inet6"):
        print("skip: no IPv6 in this kernel")
        return
    with smtpd() as d:
        s6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s6.bind(("::1", 0))
        p6 = s6.getsockname()[1]
        s4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s4.bind((HOST, 0))
        p4 = s4.getsockname()[1]
        s6.close()
        s4.close()
        d.stop()
        with open(d.conf, "a") as f:
            f.write("listen on ::1 port %d\nlisten on lo port %d\n" %
                    (p6, p4))
        d.start()
        c6 = socket.create_connection(("::1", p6), timeout=10)
        assert c6.recv(512).startswith(b"220 "), "no greeting on ::1"
        c6.sendall(b"EHLO client.test\r\n")
        assert b"Hello client.test [::1]" in c6.recv(4096)
        c6.close()
        c = Client(p4)
        c.ehlo()
        c.cmd("QUIT", 221)


def test_sigterm_gives_open_sessions_421_and_leaves_no_process():
    with smtpd() as d:
        c = session(d)
        c.cmd("MAIL FROM:<a@b.example>", 250)
        kids = children_of(d.proc.pid)
        d.proc.send_signal(signal.SIGTERM)
        c.expect(421, "4.3.2")
        assert d.wait_exit() == 0
        wait_for(lambda: not any(pid_alive(p) for p in kids), 10,
                 "every child gone")
        try:
            socket.create_connection((HOST, d.port), timeout=2).close()
            raise AssertionError("still accepting after SIGTERM")
        except OSError:
            pass


def fill_until_refused(d, size, limit=64):
    """Send messages of size bytes until one is refused; return the ids
    accepted and the refusal's reply."""
    body = b"Subject: fill\r\n\r\n" + (b"x" * 998 + b"\r\n") * (size // 1000)
    accepted = []
    for _ in range(limit):
        c = session(d)
        c.cmd("MAIL FROM:<a@b.example>", 250)
        c.cmd("RCPT TO:<x@example.org>", 250)
        c.cmd("DATA", 354, esc=False)
        c.send(body + b".\r\n")
        code, lines = c.reply()
        c.cmd("QUIT", 221)
        if code != 250:
            return accepted, code, lines
        accepted.append(queued_id(lines))
    raise AssertionError("the disk never filled")


def test_full_disk_gets_452_and_nothing_half_written_remains():
    with smtpd(extra="queue {\n\tmin-free 0\n}\n") as d:
        d.stop()
        os.makedirs(d.state, exist_ok=True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m",
                            "tmpfs", d.state], capture_output=True,
                           text=True)
        if r.returncode != 0:
            print("skip: cannot mount a tmpfs here: %s" % r.stderr.strip())
            return
        try:
            d.start()
            accepted, code, lines = fill_until_refused(d, 400 * 1000)
            assert (code, lines[-1][4:9]) == (452, "4.3.1"), (lines, d.logtext()[-3000:])
            assert accepted, "nothing fitted before the disk was full"
            assert "queue.mdb" in os.listdir(d.state)
            # The daemon runs on, and holds exactly what it confirmed.
            assert d.proc.poll() is None
            assert sorted(show_queue_ids(d)) == sorted(accepted)
            # Room again: the same daemon takes mail again.
            assert ctl_run(d, "remove", "all").returncode == 0
            c = session(d)
            c.cmd("MAIL FROM:<a@b.example>", 250)
            c.cmd("RCPT TO:<x@example.org>", 250)
            send_message(c, MESSAGE)
        finally:
            d.stop()
            subprocess.run(["umount", d.state], capture_output=True)


def test_failed_auth_is_logged_with_user_and_address_never_password():
    if not need_users("alice"):
        return
    wrong = "wrong-password-XYZZY"
    with smtpd(listeners=('tls pki "mx.test" auth <passwd>',), tls=True,
               passwd=True) as d:
        c = tls_session(d)
        auth_plain(c, "alice", wrong, 535, "5.7.8")
        auth_plain(c, "alice", PASSWORDS["alice"])
        d.wait_log("authentication failed for alice from 127.0.0.1")
        d.wait_log("authenticated as alice")
        log = d.logtext()
        assert wrong not in log and PASSWORDS["alice"] not in log


def test_message_with_a_thousand_long_recipients_is_queued():
    # The envelope then far exceeds one ordinary imsg between processes.
    with smtpd(smtp={"max-recipients": "1000"}) as d:
        c = session(d)
        rcpts = ["%s-%04d@example.org" % ("r" * 55, i) for i in range(1000)]
        c.send("MAIL FROM:<a@b.example>\r\n" +
               "".join("RCPT TO:<%s>\r\n" % r for r in rcpts))
        c.expect(250, "2.1.0")
        for _ in rcpts:
            c.expect(250, "2.1.5")
        msgid = queued_id(send_message(c, MESSAGE))
        r = ctl_run(d, "-j", "show", "message", msgid)
        assert r.returncode == 0, r.stderr
        got = json.loads(r.stdout)["recipients"]
        assert len(got) == 1000, len(got)
        assert got[999].startswith("<%s>" % rcpts[999]), got[999]


def test_pipelined_commands_past_the_output_limit_all_get_answers():
    # More replies than the output buffer holds: the rest must run as
    # the client reads, not wait for input that never comes.
    n = 12000
    with smtpd() as d:
        c = session(d)
        c.send("NOOP\r\n" * n + "QUIT\r\n")
        for _ in range(n):
            c.expect(250, "2.0.0")
        c.expect(221, "2.0.0")


def test_a_byte_now_and_then_does_not_hold_a_session():
    with smtpd(smtp={"command-timeout": "2s"}) as d:
        c = session(d)
        c.sock.settimeout(1)
        start = time.monotonic()
        got = b""
        closed = False
        while time.monotonic() - start < 6:
            try:
                c.sock.sendall(b"N")
                chunk = c.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                # The server closed and our next byte drew a reset,
                # which may have eaten its 421 before we read it.
                closed = True
                break
            if not chunk:
                closed = True
                break
            got += chunk
        assert closed, "still open after 6 s: %r" % got
        assert time.monotonic() - start < 5, "held the session for 5 s"
        assert got == b"" or b"421 4.4.2" in got, got


def test_reload_while_tls_handshakes_wait_keeps_them_working():
    with smtpd(listeners=('smtps pki "mx.test"',
                          'tls pki "mx.test"'), tls=True) as d:
        raw = [socket.create_connection((HOST, d.ports[0]), timeout=10)
               for _ in range(3)]
        starttls = session(d, port=d.ports[1])
        starttls.cmd("STARTTLS", 220, "2.0.0")
        time.sleep(0.3)     # the daemon has accepted them all
        assert ctl_run(d, "reload").returncode == 0
        d.wait_log("configuration committed")
        ctx = tls_context()
        for s in raw:
            t = ctx.wrap_socket(s, server_hostname="mx.test")
            assert t.recv(512).startswith(b"220 "), "no greeting in TLS"
            t.sendall(b"QUIT\r\n")
            t.close()
        t = ctx.wrap_socket(starttls.sock, server_hostname="mx.test")
        t.sendall(b"EHLO client.test\r\n")
        assert t.recv(4096).startswith(b"250-"), "no EHLO reply in TLS"
        assert d.proc.poll() is None
