"""Scanning before 250, from the SMTP side (issue 6): the replies to the
final dot, the session going on after a refusal, pipelined commands
behind the dot, the message stored with the scanner's header edits
(smarthostctl show message), and no 250 when the scan process dies
while a session waits.  test_scan.py is about the scanner itself.

The scan process runs the real libclamav with a test-made database:
EICAR's MD5 in an .hdb file.  The built-in HELO rule (helo-bare, one
point) stands in for a spammy message; SpamAssassin is a Python
server that accepts and never answers, so that a scan can be kept
waiting."""

import contextlib
import json
import os
import re
import signal
import socket
import threading

from lib import (EICAR, Daemon, LogOnFailure, base_config, make_clamav_db,
                 wait_for)
from test_smtp import Client, free_ports

RULES = ('match for domain "tagged.test" action "tagged"\n'
         'match for domain "held.test" action "held"\n'
         'match for domain "plain.test" action "plain"\n'
         'match for any action "inbound"\n')


def message(subject="test", headers="", body="Hello.\r\n"):
    return ("From: a@b.example\r\nTo: x@example.org\r\n"
            "Date: Thu, 26 Nov 2026 09:00:00 +0000\r\n"
            "Message-ID: <%d@b.example>\r\n"
            "Subject: %s\r\n%s\r\n%s" % (id(body), subject, headers,
                                         body)).encode()


def eicar_message():
    return message("eicar", body=EICAR + "\r\n")


def stats(d):
    return json.loads(d.ctl("-j", "show", "stats").stdout)


def engine_ready(d):
    """The scan process has loaded the database (its counter says so),
    so that the first message is not answered 451 for want of one."""
    def ready():
        for key, value in stats(d).items():
            if key.startswith("scan.") and key.endswith("signatures") and \
                    value > 0:
                return True
        return "database" in d.logtext() and "loaded" in d.logtext()
    wait_for(ready, 30, "the ClamAV database loaded")


class SilentSpamd:
    """A spamd that takes the connection and the message and never
    answers: a scan that asks it waits."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.connected = threading.Event()
        self.conns = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            self.connected.set()

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


@contextlib.contextmanager
def scand(scan_extra="", spamd=None):
    """The daemon with a scan block, listening on 127.0.0.1; actions
    "inbound" (the scan block's levels: tag 100), "tagged" (tag 0.1,
    subject prefix), "held" (quarantine 0.5) and "plain" (no scan)."""
    d = Daemon()
    db = make_clamav_db(os.path.join(d.tmp, "clamav"))
    port = free_ports(1)[0]
    text = "listen on 127.0.0.1 port %d\n" % port
    text += "smtp {\n\tmax-errors 100\n\tcommand-timeout 30s\n}\n"
    text += ("scan {\n\tclamav database \"%s\"\n"
             "\tspam tag 100 reject 200\n"
             "\tscore helo-bare 1\n%s" % (db, scan_extra))
    if spamd is not None:
        text += "\tspamassassin \"127.0.0.1:%d\" timeout 60s\n" % spamd.port
    text += "}\n"
    relay = 'relay host "smtp://127.0.0.1:2"'
    text += ('action "inbound" %s scan\n'
             'action "tagged" %s scan spam tag 0.1 reject 100 '
             'subject "[SPAM]"\n'
             'action "held" %s scan spam tag 0.1 reject 100 '
             'quarantine 0.5\n'
             'action "plain" %s\n' % (relay, relay, relay, relay))
    text += RULES
    d.write_config(base_config(d.tmp, text))
    d.port = port
    with d, LogOnFailure(d, lambda d: d.logtext()[-4000:]):
        engine_ready(d)
        yield d


def start(d, helo="client.example.org"):
    c = Client(d.port)
    c.cmd("EHLO " + helo, 250, esc=False)
    return c


def send(c, body, code, enhanced=None, rcpt="x@example.org", text=None):
    c.cmd("MAIL FROM:<a@b.example>", 250, "2.1.0")
    c.cmd("RCPT TO:<%s>" % rcpt, 250, "2.1.5")
    c.cmd("DATA", 354, esc=False)
    c.send(body + b".\r\n")
    return c.expect(code, enhanced, text=text)


def queued_id(lines):
    m = re.search(r"queued as ([0-9a-f]+)", lines[-1])
    assert m, lines
    return m.group(1)


def headers_of(d, msgid):
    return json.loads(d.ctl("-j", "show", "message", msgid).stdout)[
        "headers"]


def test_eicar_554_names_the_virus_and_the_session_goes_on():
    with scand() as d, start(d) as c:
        send(c, eicar_message(), 554, "5.7.1",
             text="Virus found: Eicar-Test-Signature")
        c.cmd("RSET", 250, "2.0.0")
        lines = send(c, message("clean"), 250, "2.0.0")
        queued_id(lines)
        c.cmd("QUIT", 221)
        s = stats(d)
        assert s["smtp.scan_rejected"] == 1, s
        assert s["smtp.messages.accepted"] == 1, s
        d.wait_log("virus Eicar-Test-Signature")


def test_unscanned_action_is_not_scanned():
    with scand() as d, start(d) as c:
        send(c, eicar_message(), 250, "2.0.0", rcpt="x@plain.test")
        assert stats(d)["smtp.scan_rejected"] == 0


def test_one_scanned_recipient_scans_the_message():
    with scand() as d, start(d) as c:
        c.cmd("MAIL FROM:<a@b.example>", 250, "2.1.0")
        c.cmd("RCPT TO:<x@plain.test>", 250, "2.1.5")
        c.cmd("RCPT TO:<y@example.org>", 250, "2.1.5")
        c.cmd("DATA", 354, esc=False)
        c.send(eicar_message() + b".\r\n")
        c.expect(554, "5.7.1")


def test_clean_mail_stored_with_scanner_headers_incoming_spam_stripped():
    forged = ("X-Spam-Flag: NO\r\n"
              "X-Spam-Status: No, score=-50\r\n"
              "\tFORGED_CONTINUATION\r\n"
              "X-Kept: yes\r\n")
    with scand() as d, start(d) as c:
        msgid = queued_id(send(c, message("clean", headers=forged), 250,
                               "2.0.0"))
        hdrs = headers_of(d, msgid)
        text = "\n".join(hdrs)
        assert hdrs[0].startswith("Received: from client.example.org"), hdrs
        assert "X-Virus-Scanned:" in text, hdrs
        assert "score=-50" not in text and "FORGED" not in text, hdrs
        assert "X-Spam-Flag: NO" not in text, hdrs
        assert "X-Kept: yes" in text and "Subject: clean" in text, hdrs
        # Grey's facts reached the scanner: the SPF result is recorded
        # (temperror: the test's resolver answers nothing).
        assert "Authentication-Results: test.example.org; spf=" in text, hdrs
        # The scanner's lines come right after our Received header,
        # before the message's own.
        first_own = min(i for i, h in enumerate(hdrs)
                        if h.startswith("From: "))
        scanned = [i for i, h in enumerate(hdrs)
                   if h.startswith("X-Virus-Scanned:")]
        assert scanned and scanned[0] < first_own, hdrs
        # The stored size is the edited body's.
        m = json.loads(d.ctl("-j", "show", "queue").stdout)
        assert [q["id"] for q in m] == [msgid]


def test_tagged_message_gets_subject_prefix_and_spam_flag():
    with scand() as d, start(d, helo="barehelo") as c:
        msgid = queued_id(send(c, message("cheap pills"), 250, "2.0.0",
                               rcpt="x@tagged.test"))
        text = "\n".join(headers_of(d, msgid))
        assert "Subject: [SPAM] cheap pills" in text, text
        assert "X-Spam-Flag: YES" in text, text
        assert "HELO_BARE" in text, text


def test_untagged_message_keeps_its_subject():
    with scand() as d, start(d) as c:
        msgid = queued_id(send(c, message("fine"), 250, "2.0.0",
                               rcpt="x@tagged.test"))
        text = "\n".join(headers_of(d, msgid))
        assert "Subject: fine" in text and "[SPAM]" not in text, text


def test_tagged_message_without_subject_gets_one():
    body = (b"From: a@b.example\r\nTo: x@example.org\r\n"
            b"Date: Thu, 26 Nov 2026 09:00:00 +0000\r\n"
            b"Message-ID: <nosubject@b.example>\r\n\r\nHello.\r\n")
    with scand() as d, start(d, helo="barehelo") as c:
        msgid = queued_id(send(c, body, 250, "2.0.0", rcpt="x@tagged.test"))
        assert "Subject: [SPAM]" in headers_of(d, msgid)


def test_quarantine_verdict_is_250_and_counted():
    with scand() as d, start(d, helo="barehelo") as c:
        queued_id(send(c, message("held"), 250, "2.0.0",
                       rcpt="x@held.test"))
        assert stats(d)["smtp.quarantined"] == 1
        d.wait_log("quarantined")


def test_pipelined_dot_and_next_commands_answered_in_order():
    with scand() as d, start(d) as c:
        c.send("MAIL FROM:<a@b.example>\r\nRCPT TO:<x@example.org>\r\n"
               "DATA\r\n")
        c.expect(250, "2.1.0")
        c.expect(250, "2.1.5")
        c.expect(354, esc=False)
        c.send(eicar_message() + b".\r\nRSET\r\nMAIL FROM:<a@b.example>\r\n"
               b"RCPT TO:<x@example.org>\r\nDATA\r\n")
        c.expect(554, "5.7.1")
        c.expect(250, "2.0.0")
        c.expect(250, "2.1.0")
        c.expect(250, "2.1.5")
        c.expect(354, esc=False)
        c.send(message("second") + b".\r\nNOOP\r\n")
        queued_id(c.expect(250, "2.0.0"))
        c.expect(250, "2.0.0")
        c.quiet()


def test_kill9_of_the_scan_process_while_a_session_waits_gives_451():
    spamd = SilentSpamd()
    try:
        with scand(spamd=spamd) as d, start(d) as c:
            scan_pid = d.pids()["scan"]
            c.cmd("MAIL FROM:<a@b.example>", 250, "2.1.0")
            c.cmd("RCPT TO:<x@example.org>", 250, "2.1.5")
            c.cmd("DATA", 354, esc=False)
            c.send(message("waits") + b".\r\n")
            assert spamd.connected.wait(20), "the scan never asked spamd"
            c.quiet(0.5)
            os.kill(scan_pid, signal.SIGKILL)
            code, lines = c.reply()
            assert code == 451 and "4.3.0" in lines[0], lines
            # The daemon goes down (a child died); nothing was queued
            # and nothing said 250.
            d.wait_exit(20)
            assert "queued" not in d.logtext()
    finally:
        spamd.close()

