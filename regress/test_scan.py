"""The scan process against the real daemon: libclamav with a signature
database made by the test, banned files, the limits, fail-closed answers,
the spam score with built-in rules and SpamAssassin's spamd, the headers
in the stored message, a database replaced while running, and the
scanner killed in the middle of a scan."""

import contextlib
import io
import os
import signal
import smtplib
import socket
import subprocess
import tempfile
import threading
import zipfile
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

from lib import (EICAR, TEST_BODY_SIGNATURE, Daemon, LogOnFailure, Spamd,
                 SpamdUnavailable, base_config, free_port, make_clamav_db,
                 queue_id_of, smtp_send)

GTUBE = ("XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL"
         "*C.34X")


def tail(d):
    return d.logtext()[-3000:]


@contextlib.contextmanager
def scand(scan_extra="", db=True, spam="spam tag 3 reject 8"):
    """The daemon with a scan block over a test database (db=False: an
    empty directory; db=None: a directory that does not exist) and an
    action marked scan that relays to a port nobody listens on, so that
    messages stay in the queue for show message."""
    d = Daemon()
    dbdir = os.path.join(d.tmp, "clamav")
    if db:
        make_clamav_db(dbdir)
    elif db is not None:
        os.makedirs(dbdir)
        os.chmod(dbdir, 0o755)
    d.port = free_port()
    d.dbdir = dbdir
    d.write_config(base_config(d.tmp, (
        "listen on 127.0.0.1 port %d\n"
        "scan {\n"
        "\tclamav database \"%s\"\n"
        "\tbanned-files { \"*.exe\" }\n"
        "\t%s\n%s\n"
        "}\n"
        "action \"inbound\" relay host \"smtp://127.0.0.1:2\" scan\n"
        "match for any action \"inbound\"\n") % (
            d.port, dbdir, spam, scan_extra.replace("{dbdir}", dbdir))))
    d.start()
    try:
        with LogOnFailure(d, tail):
            if db:
                d.wait_log("virus database", 30)
            yield d
    finally:
        d.stop()


def send(d, message, timeout=60):
    """(code, text) of the end of DATA, or of the step that failed."""
    if isinstance(message, bytes):
        message = message.decode()
    return smtp_send(d.port, message, timeout=timeout)


def plain(body, subject="scan test", headers=None):
    h = headers if headers is not None else (
        "Date: Thu, 26 Nov 2026 09:00:00 +0000\r\n"
        "Message-ID: <%s@example.org>\r\n" % subject.replace(" ", "-"))
    return ("From: <alice@example.org>\r\nTo: <bob@example.com>\r\n"
            "Subject: %s\r\n%s\r\n%s\r\n" % (subject, h, body))


def with_attachment(name, data, subject="attachment"):
    m = MIMEMultipart()
    m["From"] = "alice@example.org"
    m["To"] = "bob@example.com"
    m["Subject"] = subject
    m["Date"] = "Thu, 26 Nov 2026 09:00:00 +0000"
    m["Message-ID"] = "<%s@example.org>" % subject
    m.attach(MIMEText("see the attachment\n"))
    part = MIMEApplication(data)
    part.add_header("Content-Disposition", "attachment", filename=name)
    m.attach(part)
    return m.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def zipped(*files):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files:
            z.writestr(name, data)
    return buf.getvalue()


def stored(d, reply):
    """The stored message (headers and body) of a 250 reply."""
    out = d.ctl("show", "message", queue_id_of(reply)).stdout
    return out.split("\n\n", 1)[1]


def stats(d):
    out = {}
    for line in d.ctl("show", "stats").stdout.splitlines():
        k, _, v = line.partition("=")
        out[k] = v
    return out


def test_scan_eicar_plain_base64_and_zipped_refused_554():
    with scand() as d:
        for what, msg in (
                ("plain", plain(EICAR)),
                ("base64", with_attachment("eicar.com", EICAR.encode())),
                ("zip", with_attachment("eicar.zip", zipped(
                    ("readme.txt", b"hello"), ("eicar.com", EICAR))))):
            code, text = send(d, msg)
            assert code == 554 and text.startswith("5.7.1") and \
                "Eicar" in text, (what, code, text)
        st = stats(d)
        assert st["scan.viruses"] == "3", st


def test_scan_made_up_body_signature_refused_554():
    with scand() as d:
        code, text = send(d, plain("look: %s here" % TEST_BODY_SIGNATURE))
        assert code == 554 and "Smarthostd.Test.Body" in text, (code, text)


def test_scan_clean_mail_stored_with_the_headers():
    with scand() as d:
        code, text = send(d, plain("hello, nothing bad here"))
        assert code == 250, (code, text)
        msg = stored(d, text)
        head = msg.split("\n\n", 1)[0]
        assert "\nX-Virus-Scanned: smarthostd with ClamAV " in head, msg
        assert "\nX-Spam-Status: No, score=0.0 required=3.0 tests=none" \
            in head, msg
        assert "X-Spam-Flag" not in head, msg
        assert head.startswith("Received: "), msg


def test_scan_incoming_spam_headers_removed():
    with scand() as d:
        code, text = send(d, plain("hi", headers=(
            "Date: Thu, 26 Nov 2026 09:00:00 +0000\r\n"
            "Message-ID: <forged@example.org>\r\n"
            "X-Spam-Flag: NO\r\nX-Spam-Status: No, score=-100\r\n")))
        assert code == 250, (code, text)
        msg = stored(d, text)
        assert "score=-100" not in msg and "X-Spam-Flag: NO" not in msg, msg


# libclamav does not look at files of 5 bytes or less: these are more.
PROGRAM = b"not really a program, but named like one " * 3


def test_scan_banned_exe_attachment_in_zip_and_double_extension_554():
    with scand() as d:
        for what, msg in (
                ("exe", with_attachment("foo.exe", PROGRAM)),
                ("zip", with_attachment("tools.zip", zipped(
                    ("readme.txt", b"hello " * 20), ("setup.exe", PROGRAM)))),
                ("double", with_attachment("invoice.pdf.exe", PROGRAM))):
            code, text = send(d, msg)
            assert code == 554 and "Banned" in text and ".exe" in text, \
                (what, code, text)
        code, text = send(d, with_attachment("report.pdf", b"%PDF-1.4 " * 20))
        assert code == 250, (code, text)


def encrypted_zip(name, data):
    """A zip whose entry is encrypted (zip -P), as a sender hides an
    attachment's name from a scanner."""
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, name), "wb") as f:
            f.write(data)
        subprocess.run(["zip", "-q", "-P", "secret", "enc.zip", name],
                       cwd=tmp, check=True)
        with open(os.path.join(tmp, "enc.zip"), "rb") as f:
            return f.read()


def test_scan_encrypted_archive_banned_when_banned_files_are_set():
    msg = with_attachment("enc.zip", encrypted_zip("evil.exe", PROGRAM))
    with scand() as d:
        code, text = send(d, msg)
        assert code == 554 and "Banned" in text and "encrypted" in text, \
            (code, text)


def test_scan_mildly_spammy_tagged_with_subject_prefix():
    # No Date, no Message-ID, two Subjects: three bad-header findings,
    # 3.0 with the default score of 1: tagged (3), not refused (8).
    with scand(spam='spam tag 3 reject 8 subject "[SPAM]"') as d:
        code, text = send(d, plain("cheap", subject="buy now",
                                headers="Subject: again\r\n"))
        assert code == 250, (code, text)
        msg = stored(d, text)
        head = msg.split("\n\n", 1)[0]
        assert "\nX-Spam-Flag: YES" in head, msg
        assert "\nX-Spam-Score: 3.0" in head, msg
        assert "\nX-Spam-Level: ***\n" in head, msg
        assert "X-Spam-Status: Yes, score=3.0" in head, msg
        assert "MISSING_DATE" in head and "DUP_SUBJECT" in head, msg
        assert "\nSubject: [SPAM] buy now" in head, msg
        assert stats(d)["scan.tagged"] == "1"


def test_scan_bad_headers_reject():
    with scand(scan_extra="bad-headers reject") as d:
        code, text = send(d, plain("x", headers=""))
        assert code == 554 and "5.6.0" in text and "Date" in text, \
            (code, text)


def test_scan_spamd_on_a_unix_socket_inside_the_chroot():
    """The scan process is chrooted in the database directory (the
    tests run as root): a socket there, named by its full path, is
    reached all the same."""
    with scand(scan_extra='spamassassin "unix:{dbdir}/spamd.sock"') as d:
        try:
            spamd = Spamd(unix=os.path.join(d.dbdir, "spamd.sock")).start()
        except SpamdUnavailable as e:
            print("skipped: SpamAssassin's spamd: %s" % e)
            return
        try:
            code, text = send(d, plain(GTUBE, subject="gtube"))
            assert code == 550 and "5.7.1" in text, (code, text)
        finally:
            spamd.stop()


def test_scan_gtube_through_spamd_550():
    try:
        spamd = Spamd().start()
    except SpamdUnavailable as e:
        print("skipped: SpamAssassin's spamd: %s" % e)
        return
    try:
        with scand(scan_extra='spamassassin "127.0.0.1:%d"' %
                   spamd.port) as d:
            code, text = send(d, plain(GTUBE, subject="gtube"))
            assert code == 550 and "5.7.1" in text, (code, text)
            code, text = send(d, plain("a plain note, nothing more"))
            assert code == 250, (code, text)
            head = stored(d, text).split("\n\n", 1)[0]
            assert "X-Spam-Status: No" in head, head
            assert stats(d)["scan.spam_rejected"] == "1"
    finally:
        spamd.stop()


def test_scan_spamd_unreachable_is_451():
    with scand(scan_extra='spamassassin "127.0.0.1:%d" timeout 2s' %
               free_port()) as d:
        code, text = send(d, plain("hello"))
        assert code == 451 and "4.3.0" in text, (code, text)


def test_scan_empty_or_missing_database_451_or_accept():
    for db in (False, None):
        with scand(db=db) as d:
            code, text = send(d, plain("hello"))
            assert code == 451 and "4.3.0" in text, (db, code, text)
    with scand(db=False, scan_extra="on-error accept") as d:
        code, text = send(d, plain("hello"))
        assert code == 250, (code, text)
        head = stored(d, text).split("\n\n", 1)[0]
        assert "X-Virus-Scanned: not scanned by smarthostd: no virus " \
            "database" in head, head


def test_scan_database_replaced_while_running_detects_new_signature():
    new = "smarthostd-fresh-signature-41b7"
    with scand() as d:
        code, text = send(d, plain("first %s" % new))
        assert code == 250, (code, text)
        with open(os.path.join(d.dbdir, "fresh.ndb"), "w") as f:
            f.write("Smarthostd.Fresh:0:*:%s\n" % new.encode().hex())
        os.chmod(os.path.join(d.dbdir, "fresh.ndb"), 0o644)
        d.wait_log("reloaded", 45)
        code, text = send(d, plain("second %s" % new))
        assert code == 554 and "Smarthostd.Fresh" in text, (code, text)
        assert stats(d)["scan.engine_reloads"] == "2"


def test_scan_over_max_files_per_on_limit():
    three = with_attachment("three.zip", zipped(
        ("a.txt", b"a" * 100), ("b.txt", b"b" * 100), ("c.txt", b"c" * 100)))
    with scand(scan_extra="limits { max-files 2 }") as d:
        code, text = send(d, three)
        assert code == 451 and "4.3.0" in text, (code, text)
    with scand(scan_extra="limits { max-files 2 }\non-limit reject") as d:
        code, text = send(d, three)
        assert code == 554 and "5.7.1" in text, (code, text)
    with scand(scan_extra="limits { max-files 2 }\non-limit accept") as d:
        code, text = send(d, three)
        assert code == 250, (code, text)
        head = stored(d, text).split("\n\n", 1)[0]
        assert "X-Virus-Scanned: not scanned in full by smarthostd" in head


class SilentSpamd:
    """Accepts and reads, never answers: a scan waits on it."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.seen = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            self.seen.set()

    def close(self):
        for c in self.conns:
            c.close()
        self.sock.close()


def test_scan_kill9_mid_scan_never_250():
    silent = SilentSpamd()
    try:
        with scand(scan_extra='spamassassin "127.0.0.1:%d" timeout 60s' %
                   silent.port) as d:
            result = {}

            def client():
                try:
                    result["reply"] = send(d, plain("hello"), timeout=30)
                except (smtplib.SMTPException, OSError) as e:
                    result["error"] = repr(e)

            t = threading.Thread(target=client)
            t.start()
            assert silent.seen.wait(20), "the scan never asked spamd"
            os.kill(d.pids()["scan"], signal.SIGKILL)
            t.join(40)
            assert not t.is_alive(), "the client still waits"
            assert result.get("reply", (0,))[0] != 250, result
            # Either a 451 or a connection closed as the daemon goes down.
            reply = result.get("reply")
            assert reply is None or reply[0] in (421, 451), result
            print("kill -9 of scan: the client got %r" % (result,))
            d.wait_exit(20)
    finally:
        silent.close()
