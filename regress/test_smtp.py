"""The SMTP server against the real daemon: greeting and EHLO, command
syntax and sequence, addresses and parameters, match rules (no open
relay), limits, DATA (dot handling, smuggling, bad input), STARTTLS,
AUTH, session limits, timeouts, and a crash right after a 250.

Every test talks over real TCP on loopback.  Client source addresses
127.0.0.2 and up stand for hosts outside <our-nets>.  The Client class
checks, on every reply after the greeting except HELO/EHLO's and the
3xx continuations, that an RFC 2034 enhanced status code of the same
class follows the code."""

import base64
import contextlib
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import warnings

from lib import Daemon, SMARTHOSTCTL, base_config, wait_for

HOST = "127.0.0.1"
IO_TIMEOUT = 10

RULES = ('match from src <our-nets> for any action "outbound"\n'
         'match for domain <our-domains> action "inbound"\n')

# Short timeouts so that a test never waits long for the server; tests
# that probe a limit override one option.
SMTP_DEFAULTS = {
    "max-errors": "100",
    "command-timeout": "8s",
    "data-timeout": "8s",
    "transaction-timeout": "20s",
}

PASSWORDS = {"alice": "alice-secret-1", "bob": "bob-secret-2"}

ENHANCED = re.compile(r"^(\d{3})[ -]([245])\.\d{1,3}\.\d{1,3}( |$)")


# ---------------------------------------------------------------------
# A small SMTP client that keeps a transcript for failure messages.

class Client:
    def __init__(self, port, src=None, timeout=IO_TIMEOUT, greeting=True):
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if src is not None:
            self.sock.bind((src, 0))
        self.sock.settimeout(timeout)
        self.sock.connect((HOST, port))
        self.buf = b""
        self.log = []
        self.greeting = None
        if greeting:
            self.greeting = self.reply(esc=False)

    def transcript(self):
        return "\n".join("%s %r" % entry for entry in self.log[-30:])

    def fail(self, why):
        raise AssertionError("%s\n-- transcript (port %d):\n%s" %
                             (why, self.port, self.transcript()))

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.log.append(("C:", data[:300]))
        self.sock.sendall(data)

    def readline(self):
        while b"\r\n" not in self.buf:
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                self.fail("no reply within %ds" % self.sock.gettimeout())
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.fail("connection closed while waiting for a reply"
                          " (pending %r)" % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        self.log.append(("S:", line))
        return line.decode(errors="replace")

    def reply(self, esc=True):
        """One whole (possibly multi-line) reply as (code, [lines])."""
        lines = []
        while True:
            line = self.readline()
            if len(line) < 3 or not line[:3].isdigit() or \
                    (len(line) > 3 and line[3] not in " -"):
                self.fail("malformed reply line %r" % line)
            if lines and line[:3] != lines[0][:3]:
                self.fail("reply code changed inside a reply: %r" % line)
            lines.append(line)
            if len(line) == 3 or line[3] == " ":
                break
        code = int(lines[0][:3])
        if esc and code // 100 in (2, 4, 5):
            for line in lines:
                m = ENHANCED.match(line)
                if m is None or m.group(2) != str(code)[0]:
                    self.fail("reply without a matching enhanced status "
                              "code: %r" % line)
        return code, lines

    def expect(self, code, enhanced=None, esc=True, text=None):
        got, lines = self.reply(esc=esc)
        if got != code or (enhanced is not None and
                           lines[-1][4:].split(" ")[0] != enhanced):
            self.fail("expected %d %s, got %r" % (code, enhanced or "",
                                                   lines))
        if text is not None and text not in "\n".join(lines):
            self.fail("expected %r in %r" % (text, lines))
        return lines

    def cmd(self, line, code=None, enhanced=None, esc=True, text=None):
        self.send(line + "\r\n")
        if code is None:
            return self.reply(esc=esc)
        return self.expect(code, enhanced, esc=esc, text=text)

    def ehlo(self, name="client.test"):
        """EHLO and the list of extension keywords lines."""
        lines = self.cmd("EHLO " + name, 250, esc=False)
        return [line[4:] for line in lines[1:]]

    def quiet(self, wait=0.5):
        """Assert that the server sends nothing more within wait."""
        if self.buf:
            self.fail("unexpected pending data %r" % self.buf)
        self.sock.settimeout(wait)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            data = None
        except ConnectionResetError:
            data = b""
        finally:
            self.sock.settimeout(IO_TIMEOUT)
        if data is not None:
            self.log.append(("S:", data))
            self.fail("unexpected data from the server: %r" % data)

    def closed(self, timeout=IO_TIMEOUT):
        """True once the server has closed; data before EOF fails."""
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
                self.buf += data
                self.fail("data before close: %r" % data)
        except (ConnectionResetError, ssl.SSLEOFError,
                ssl.SSLZeroReturnError):
            return True
        except socket.timeout:
            return False
        finally:
            self.sock.settimeout(IO_TIMEOUT)

    def starttls(self, context=None, hostname="mx.test"):
        self.cmd("STARTTLS", 220, "2.0.0")
        if self.buf:
            self.fail("plaintext after the 220 to STARTTLS: %r" % self.buf)
        self.sock = (context or tls_context()).wrap_socket(
            self.sock, server_hostname=hostname)
        self.log.append(("--", "TLS %s" % self.sock.version()))

    def mail_transaction(self, sender="a@b.example", rcpt="x@example.org"):
        self.cmd("MAIL FROM:<%s>" % sender, 250, "2.1.0")
        self.cmd("RCPT TO:<%s>" % rcpt, 250, "2.1.5")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def tls_context(cafile=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cafile is None:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx.load_verify_locations(cafile)
    return ctx


# ---------------------------------------------------------------------
# The daemon with listeners on free ports.

def free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((HOST, 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


_pki_cache = {}


def write_pki(directory):
    """A self-signed certificate for mx.test and its key (mode 0600),
    made once per run with openssl and copied into directory."""
    if "dir" not in _pki_cache:
        src = tempfile.mkdtemp(prefix="smarthostd-pki-")
        key, cert = os.path.join(src, "mx.key"), os.path.join(src, "mx.crt")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                        "-nodes", "-days", "2", "-subj", "/CN=mx.test",
                        "-addext", "subjectAltName=DNS:mx.test",
                        "-keyout", key, "-out", cert],
                       check=True, capture_output=True, timeout=60)
        _pki_cache["dir"] = src
    key = os.path.join(directory, "mx.key")
    cert = os.path.join(directory, "mx.crt")
    shutil.copy(os.path.join(_pki_cache["dir"], "mx.key"), key)
    shutil.copy(os.path.join(_pki_cache["dir"], "mx.crt"), cert)
    os.chmod(key, 0o600)
    return cert, key


def ctl_encrypt_hash(password):
    """A hash from smarthostctl encrypt, or None when it cannot."""
    try:
        r = subprocess.run([SMARTHOSTCTL, "encrypt", password],
                           capture_output=True, text=True, timeout=30)
    except OSError:
        return None
    out = r.stdout.strip()
    if r.returncode != 0 or not out.startswith("$2"):
        return None
    return out


def python_crypt_hash(password):
    """A $2b$ hash from Python's crypt module (another implementation
    than smarthostctl's), or None where the module is gone."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import crypt
        except ImportError:
            return None
        try:
            h = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))
        except Exception:
            return None
    return h if h and h.startswith("$2") else None


_hash_cache = {}


def password_hashes():
    """user -> hash: alice from smarthostctl encrypt, bob from crypt."""
    if not _hash_cache:
        _hash_cache["alice"] = ctl_encrypt_hash(PASSWORDS["alice"])
        _hash_cache["bob"] = python_crypt_hash(PASSWORDS["bob"])
    return {u: h for u, h in _hash_cache.items() if h is not None}


@contextlib.contextmanager
def smtpd(listeners=("",), smtp=None, rules=RULES, extra="", tls=False,
          passwd=False):
    """The daemon with one listener on 127.0.0.1 per entry of listeners
    (the options after the port); d.ports holds their ports."""
    d = Daemon()
    ports = free_ports(len(listeners))
    text = ""
    if tls:
        cert, key = write_pki(d.tmp)
        text += 'pki "mx.test" cert "%s"\npki "mx.test" key "%s"\n' % (
            cert, key)
    if passwd:
        path = os.path.join(d.tmp, "passwd")
        with open(path, "w") as f:
            for user, h in password_hashes().items():
                f.write("%s %s\n" % (user, h))
        os.chmod(path, 0o600)
        text += 'table passwd file "%s"\n' % path
    text += ("table our-domains { example.org }\n"
             "table our-nets { 127.0.0.1 }\n")
    text += extra
    for port, opts in zip(ports, listeners):
        text += "listen on %s port %d %s\n" % (HOST, port, opts)
    options = dict(SMTP_DEFAULTS)
    options.update(smtp or {})
    text += "smtp {\n%s}\n" % "".join("\t%s %s\n" % kv
                                       for kv in options.items())
    text += ('action "inbound" relay host "smtp://127.0.0.1:2"\n'
             'action "outbound" relay\n')
    text += rules
    d.write_config(base_config(d.tmp, text))
    d.ports = ports
    d.port = ports[0]
    with d:
        yield d


def session(d, src=None, port=None, ehlo=True):
    c = Client(port or d.port, src=src)
    if ehlo:
        c.ehlo()
    return c


def ctl_run(d, *args, timeout=15):
    """smarthostctl against d with a bound on its time."""
    try:
        return subprocess.run([SMARTHOSTCTL, "-s", d.sock] + list(args),
                              capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError("smarthostctl %s did not answer within %ds" %
                             (" ".join(args), timeout))


def show_queue_ids(d):
    """The ids in the queue, or None when show queue does not exist."""
    r = ctl_run(d, "-j", "show", "queue")
    if r.returncode == 2 and ("unknown" in r.stderr or
                              "valid" in r.stderr):
        return None
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    return [m["id"] for m in json.loads(r.stdout)]


def queued_id(lines):
    m = re.search(r"queued as ([0-9a-f]+)", lines[-1])
    assert m, lines
    return m.group(1)


def send_message(c, body, code=250, enhanced="2.0.0"):
    """DATA, the body (CRLF lines, dot-stuffing is the caller's), the
    final dot; the reply to the dot."""
    c.cmd("DATA", 354, esc=False)
    c.send(body + b".\r\n")
    return c.expect(code, enhanced)


MESSAGE = (b"From: a@b.example\r\nTo: x@example.org\r\n"
           b"Subject: test\r\n\r\nHello.\r\n")


# ---------------------------------------------------------------------
# Greeting, EHLO, command sequence.

def test_greeting_is_220_hostname_esmtp_smarthostd():
    with smtpd() as d, Client(d.port) as c:
        code, lines = c.greeting
        assert lines == ["220 test.example.org ESMTP smarthostd"], lines


def test_ehlo_lists_extensions_with_size_and_without_smtputf8():
    with smtpd(smtp={"max-message-size": "10K"}) as d, \
            Client(d.port) as c:
        lines = c.cmd("EHLO client.test", 250, esc=False)
        assert lines[0].startswith("250-test.example.org"), lines
        ext = [line[4:] for line in lines[1:]]
        for want in ("PIPELINING", "SIZE 10240", "8BITMIME",
                     "ENHANCEDSTATUSCODES", "HELP"):
            assert want in ext, (want, lines)
        assert not any(e.startswith("SMTPUTF8") for e in ext), lines
        assert not any(e.startswith("STARTTLS") for e in ext), lines
        assert not any(e.startswith("AUTH") for e in ext), lines


def test_helo_and_ehlo_with_bad_argument_get_501_5_5_4():
    with smtpd() as d, Client(d.port) as c:
        for bad in ("EHLO", "HELO", "EHLO two words", "HELO a<b>",
                    "EHLO " + "a" * 300):
            c.cmd(bad, 501, "5.5.4")
        # still no HELO: MAIL is out of sequence
        c.cmd("MAIL FROM:<a@b.example>", 503, "5.5.1")
        c.cmd("HELO client.test", 250, esc=False)
        c.cmd("MAIL FROM:<a@b.example>", 250, "2.1.0")


def test_mail_before_helo_gets_503_5_5_1():
    with smtpd() as d, Client(d.port) as c:
        c.cmd("MAIL FROM:<a@b.example>", 503, "5.5.1")


def test_nested_mail_gets_503_5_5_1():
    with smtpd() as d, session(d) as c:
        c.cmd("MAIL FROM:<a@b.example>", 250, "2.1.0")
        c.cmd("MAIL FROM:<c@d.example>", 503, "5.5.1")


def test_ehlo_inside_a_transaction_resets_it():
    with smtpd() as d, session(d) as c:
        c.mail_transaction()
        c.ehlo()
        c.cmd("RCPT TO:<x@example.org>", 503, "5.5.1")
        c.cmd("DATA", 503, "5.5.1")
        c.mail_transaction()


def test_rcpt_before_mail_gets_503_5_5_1():
    with smtpd() as d, session(d) as c:
        c.cmd("RCPT TO:<x@example.org>", 503, "5.5.1")


def test_data_without_mail_gets_503_and_without_accepted_rcpt_554():
    with smtpd() as d, session(d, src="127.0.0.2") as c:
        c.cmd("DATA", 503, "5.5.1")
        c.cmd("MAIL FROM:<a@b.example>", 250, "2.1.0")
        c.cmd("DATA", 554, "5.5.1")
        c.cmd("RCPT TO:<x@other.example>", 550, "5.7.1")
        c.cmd("DATA", 554, "5.5.1")
        c.quiet(0.2)


def test_rset_noop_vrfy_help_and_quit_replies():
    with smtpd() as d, session(d) as c:
        c.cmd("MAIL FROM:<a@b.example>", 250, "2.1.0")
        c.cmd("RSET", 250, "2.0.0")
        # RSET ended the transaction: RCPT is out of sequence, MAIL is not
        c.cmd("RCPT TO:<x@example.org>", 503, "5.5.1")
        c.cmd("MAIL FROM:<a@b.example>", 250, "2.1.0")
        c.cmd("NOOP", 250, "2.0.0")
        c.cmd("NOOP with an argument", 250, "2.0.0")
        c.cmd("VRFY postmaster", 252, "2.5.2")
        lines = c.cmd("HELP", 214, "2.0.0")
        assert "RSET" in "\n".join(lines), lines
        c.cmd("QUIT", 221, "2.0.0")
        assert c.closed(), "connection still open after QUIT"


def test_commands_are_case_insensitive():
    with smtpd() as d, Client(d.port) as c:
        c.cmd("ehlo client.test", 250, esc=False)
        c.cmd("mail from:<a@b.example>", 250, "2.1.0")
        c.cmd("rcpt to:<x@example.org>", 250, "2.1.5")
        c.cmd("rset", 250, "2.0.0")


def test_unknown_command_gets_500_5_5_1():
    with smtpd() as d, session(d) as c:
        c.cmd("FROB", 500, "5.5.1")
        c.cmd("MAILFROM:<a@b.example>", 500, "5.5.1")
        c.cmd("NOOP", 250, "2.0.0")


def test_every_reply_after_the_greeting_has_an_enhanced_status_code():
    # Client.reply checks each reply; this dialogue touches most of them.
    with smtpd(smtp={"max-message-size": "10K"}) as d, \
            session(d, src="127.0.0.2") as c:
        for line in ("NOOP", "RSET", "VRFY x", "HELP", "FROB",
                     "RCPT TO:<x@example.org>", "DATA",
                     "MAIL FROM:<bad", "MAIL FROM:<a%b@c.example>",
                     "MAIL FROM:<a@b.example> SIZE=999999",
                     "MAIL FROM:<a@b.example> FOO=1",
                     "MAIL FROM:<a@b.example>", "MAIL FROM:<a@b.example>",
                     "RCPT TO:<x@other.example>", "RCPT TO:<x@example.org>",
                     "RCPT TO:<@r.example:x@example.org>", "STARTTLS",
                     "AUTH PLAIN", "RSET"):
            code, lines = c.cmd(line)
            assert code // 100 in (2, 4, 5), lines
        c.cmd("QUIT", 221, "2.0.0")


# ---------------------------------------------------------------------
# Command lines.

def test_command_line_over_512_octets_gets_500_5_5_0_and_session_goes_on():
    with smtpd() as d, session(d) as c:
        # NOOP ignores its argument: 512 octets with CRLF is allowed
        c.cmd("NOOP " + "x" * (512 - 7), 250, "2.0.0")
        c.cmd("NOOP " + "x" * (513 - 7), 500, "5.5.0")
        c.cmd("NOOP", 250, "2.0.0")
        # longer than any buffer: one 500, then the session goes on
        c.cmd("NOOP " + "y" * 100000, 500, "5.5.0")
        c.cmd("NOOP", 250, "2.0.0")
        c.cmd("MAIL FROM:<a@b.example>", 250, "2.1.0")
        c.quiet(0.2)


def test_command_and_crlf_split_across_writes_is_one_command():
    with smtpd() as d, session(d) as c:
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for parts in ((b"NO", b"OP\r\n"), (b"NOOP\r", b"\n"),
                      (b"NOOP", b"\r", b"\n")):
            for part in parts:
                c.send(part)
                time.sleep(0.1)
            c.expect(250, "2.0.0")
            c.quiet(0.1)


def test_bare_lf_never_ends_a_command_and_the_line_gets_500_5_5_2():
    with smtpd() as d, session(d) as c:
        # One line up to the CRLF, refused whole: never two commands.
        c.send("NOOP\nRSET\r\n")
        c.expect(500, "5.5.2")
        c.quiet()
        c.send("MAIL FROM:<a@b.example>\nRCPT TO:<x@example.org>\r\n")
        c.expect(500, "5.5.2")
        c.quiet()
        # the refused MAIL did not start a transaction
        c.cmd("RCPT TO:<x@example.org>", 503, "5.5.1")
        c.cmd("NOOP", 250, "2.0.0")


def test_nul_in_command_gets_500_5_5_2():
    with smtpd() as d, session(d) as c:
        c.send(b"NOOP\0\r\n")
        c.expect(500, "5.5.2")
        c.send(b"MAIL FROM:<a@b.example>\0\r\n")
        c.expect(500, "5.5.2")
        c.cmd("RCPT TO:<x@example.org>", 503, "5.5.1")
        c.send(b"NO\rOP\r\n")
        c.expect(500, "5.5.2")
        c.cmd("NOOP", 250, "2.0.0")


def test_max_errors_bad_commands_get_421_4_7_0_and_close():
    with smtpd(smtp={"max-errors": "3"}) as d, session(d) as c:
        c.cmd("FROB", 500, "5.5.1")
        c.cmd("NOOP", 250, "2.0.0")
        c.cmd("RCPT TO:<x@example.org>", 503, "5.5.1")
        c.cmd("FROB", 500, "5.5.1")
        c.expect(421, "4.7.0")
        assert c.closed(), "connection open after 421"
        # a new session starts with a clean count
        with session(d) as c2:
            c2.cmd("FROB", 500, "5.5.1")
            c2.cmd("NOOP", 250, "2.0.0")


def test_pipelined_bad_commands_past_max_errors_are_not_answered():
    with smtpd(smtp={"max-errors": "2"}) as d, session(d) as c:
        c.send("FROB\r\nFROB\r\nNOOP\r\nNOOP\r\n")
        c.expect(500, "5.5.1")
        c.expect(500, "5.5.1")
        c.expect(421, "4.7.0")
        assert c.closed(), "connection open after 421"


# ---------------------------------------------------------------------
# Addresses and MAIL parameters.

def test_mail_local_part_of_65_chars_gets_501_5_1_7():
    with smtpd() as d, session(d) as c:
        c.cmd("MAIL FROM:<%s@b.example>" % ("a" * 65), 501, "5.1.7")
        c.cmd("MAIL FROM:<%s@b.example>" % ("a" * 64), 250, "2.1.0")


def test_rcpt_local_part_of_65_chars_gets_501_5_1_3():
    with smtpd() as d, session(d) as c:
        c.cmd("MAIL FROM:<a@b.example>", 250, "2.1.0")
        c.cmd("RCPT TO:<%s@example.org>" % ("x" * 65), 501, "5.1.3")
        c.cmd("RCPT TO:<%s@example.org>" % ("x" * 64), 250, "2.1.5")


def long_path(length):
    """<local@domain> of exactly length octets, brackets included."""
    local = "a" * 64
    labels, left = [], length - len(local) - 3
    while left > 0:
        n = min(63, left)
        if left - n == 1:       # no empty label, no trailing dot
            n -= 2
        labels.append("b" * n)
        left -= n + 1
    path = "<%s@%s>" % (local, ".".join(labels))
    assert len(path) == length, (len(path), path)
    return path


def test_path_over_256_octets_gets_501():
    with smtpd(rules='match for any action "outbound"\n') as d, \
            session(d) as c:
        c.cmd("MAIL FROM:%s" % long_path(257), 501, "5.1.7")
        c.cmd("MAIL FROM:%s" % long_path(256), 250, "2.1.0")
        c.cmd("RCPT TO:%s" % long_path(257), 501, "5.1.3")
        c.cmd("RCPT TO:%s" % long_path(256), 250, "2.1.5")
        c.cmd("RCPT TO:<x@%s>" % ".".join(["c" * 63] * 5), 501, "5.1.3")


def test_source_route_gets_553():
    with smtpd() as d, session(d) as c:
        code, lines = c.cmd("MAIL FROM:<@r.example:a@b.example>")
        assert code == 553, lines
        code, lines = c.cmd("MAIL FROM:<@r.example,@s.example:a@b.example>")
        assert code == 553, lines
        c.cmd("MAIL FROM:<a@b.example>", 250, "2.1.0")
        code, lines = c.cmd("RCPT TO:<@r.example:x@example.org>")
        assert code == 553, lines
        c.cmd("DATA", 554, "5.5.1")


def test_percent_bang_and_quoted_at_relay_forms_get_553():
    with smtpd() as d, session(d) as c:
        for addr in ("a%c.example@b.example", "c.example!a@b.example"):
            code, lines = c.cmd("MAIL FROM:<%s>" % addr)
            assert code == 553, (addr, lines)
        c.cmd("MAIL FROM:<a@b.example>", 250, "2.1.0")
        for addr in ("x%other.example@example.org",
                     "other.example!x@example.org",
                     "x%other.example%y@example.org",
                     '"x@other.example"@example.org',
                     '"x\\@other.example"@example.org'):
            code, lines = c.cmd("RCPT TO:<%s>" % addr)
            assert code == 553, (addr, lines)
        c.cmd("DATA", 554, "5.5.1")


def test_non_ascii_address_gets_553_5_6_7():
    with smtpd() as d, session(d) as c:
        for addr in ("j\u00f6rg@b.example", "a@b\u00e4.example",
                     "\u00e9@b.example"):
            c.send("MAIL FROM:<%s>\r\n" % addr)
            c.expect(553, "5.6.7")
        c.cmd("MAIL FROM:<a@b.example>", 250, "2.1.0")
        for addr in ("j\u00f6rg@example.org", "x@\u00e9xample.org"):
            c.send("RCPT TO:<%s>\r\n" % addr)
            c.expect(553, "5.6.7")
        c.cmd("DATA", 554, "5.5.1")


def test_null_sender_is_accepted():
    with smtpd() as d, session(d, src="127.0.0.2") as c:
        c.cmd("MAIL FROM:<>", 250, "2.1.0")
        c.cmd("RCPT TO:<x@example.org>", 250, "2.1.5")
        # but never as a recipient
        code, lines = c.cmd("RCPT TO:<>")
        assert code == 501, lines


def test_rcpt_postmaster_without_domain_is_accepted_as_local():
    rules = RULES + 'match for local action "inbound"\n'
    with smtpd(rules=rules) as d, session(d, src="127.0.0.2") as c:
        c.cmd("MAIL FROM:<a@b.example>", 250, "2.1.0")
        c.cmd("RCPT TO:<postmaster>", 250, "2.1.5")
        c.cmd("RCPT TO:<Postmaster>", 250, "2.1.5")
        c.cmd("RCPT TO:<postmaster@test.example.org>", 250, "2.1.5")
        # other local names need a domain
        c.cmd("RCPT TO:<root>", 501, "5.1.3")


def test_mail_size_over_max_gets_552_5_3_4():
    with smtpd(smtp={"max-message-size": "10K"}) as d, session(d) as c:
        c.cmd("MAIL FROM:<a@b.example> SIZE=10241", 552, "5.3.4")
        c.cmd("MAIL FROM:<a@b.example> SIZE=99999999999999999999999", 501,
              "5.5.4")
        c.cmd("MAIL FROM:<a@b.example> SIZE=10240", 250, "2.1.0")


def test_unknown_mail_parameter_gets_555_5_5_4():
    with smtpd() as d, session(d) as c:
        for params in ("SMTPUTF8", "FOO=1", "BODY=8BITMIME FOO=1",
                       "RET=HDRS"):
            c.cmd("MAIL FROM:<a@b.example> %s" % params, 555, "5.5.4")
        # none of them started a transaction
        c.cmd("RCPT TO:<x@example.org>", 503, "5.5.1")
        c.cmd("RCPT TO:<x@example.org> NOTIFY=NEVER", 503, "5.5.1")
        c.cmd("MAIL FROM:<a@b.example>", 250, "2.1.0")
        c.cmd("RCPT TO:<x@example.org> NOTIFY=NEVER", 555, "5.5.4")


def test_body_8bitmime_and_7bit_are_accepted():
    with smtpd() as d, session(d) as c:
        c.cmd("MAIL FROM:<a@b.example> BODY=8BITMIME", 250, "2.1.0")
        c.cmd("RSET", 250, "2.0.0")
        c.cmd("MAIL FROM:<a@b.example> BODY=7BIT SIZE=100", 250, "2.1.0")
        c.cmd("RSET", 250, "2.0.0")
        c.cmd("MAIL FROM:<a@b.example> BODY=BINARYMIME", 501, "5.5.4")


# ---------------------------------------------------------------------
# Match rules: who may send where.

def test_relay_from_outside_our_nets_gets_550_5_7_1():
    with smtpd() as d, session(d, src="127.0.0.2") as c:
        c.cmd("MAIL FROM:<a@b.example>", 250, "2.1.0")
        c.cmd("RCPT TO:<x@other.example>", 550, "5.7.1",
              text="Relay access denied")


def test_open_relay_attempts_from_24_addresses_are_all_refused():
    tricks = ["x@other.example", "X@OTHER.EXAMPLE", "x@sub.example.org",
              "x@example.org.other.example", "x@[127.0.0.1]",
              "x@[IPv6:::1]", "x@localhost"]
    refused = 0
    with smtpd() as d:
        for i in range(2, 26):
            src = "127.0.0.%d" % i
            with session(d, src=src) as c:
                c.cmd("MAIL FROM:<a@example.org>", 250, "2.1.0")
                for rcpt in tricks if i == 2 else tricks[:1]:
                    c.cmd("RCPT TO:<%s>" % rcpt, 550, "5.7.1")
                    refused += 1
                for rcpt in ("x%other.example@example.org",
                             "@example.org:x@other.example"):
                    code, lines = c.cmd("RCPT TO:<%s>" % rcpt)
                    assert code == 553, (src, rcpt, lines)
                    refused += 1
                c.cmd("DATA", 554, "5.5.1")
                c.cmd("QUIT", 221, "2.0.0")
        assert refused >= 20 + len(tricks)
        ids = show_queue_ids(d)
        if ids is None:
            print("skip: smarthostctl show queue is not there yet")
            return
        assert ids == [], ids


def test_mail_for_our_domain_from_outside_is_accepted():
    with smtpd() as d, session(d, src="127.0.0.2") as c:
        c.cmd("MAIL FROM:<a@b.example>", 250, "2.1.0")
        c.cmd("RCPT TO:<x@example.org>", 250, "2.1.5")
        c.cmd("RCPT TO:<y@EXAMPLE.ORG>", 250, "2.1.5")


def test_mail_from_our_nets_to_any_domain_is_accepted():
    with smtpd() as d, session(d, src="127.0.0.1") as c:
        c.cmd("MAIL FROM:<a@example.org>", 250, "2.1.0")
        c.cmd("RCPT TO:<x@other.example>", 250, "2.1.5")
        c.cmd("RCPT TO:<y@example.org>", 250, "2.1.5")


def test_rcpt_not_in_relay_recipients_gets_550_5_1_1():
    rules = ('match for domain <our-domains> rcpt-to ! <relay-recipients> '
             'reject\n' + RULES)
    extra = "table relay-recipients { known@example.org, @example.net }\n"
    with smtpd(rules=rules, extra=extra) as d, \
            session(d, src="127.0.0.2") as c:
        c.cmd("MAIL FROM:<a@b.example>", 250, "2.1.0")
        c.cmd("RCPT TO:<unknown@example.org>", 550, "5.1.1")
        c.cmd("RCPT TO:<known@example.org>", 250, "2.1.5")
        # the rule refuses only in our domains; elsewhere relaying rules
        c.cmd("RCPT TO:<x@other.example>", 550, "5.7.1")


def test_no_matching_rule_gets_550_5_7_1():
    rules = 'match for domain <our-domains> action "inbound"\n'
    with smtpd(rules=rules) as d, session(d, src="127.0.0.1") as c:
        c.cmd("MAIL FROM:<a@example.org>", 250, "2.1.0")
        c.cmd("RCPT TO:<x@other.example>", 550, "5.7.1")
        c.cmd("RCPT TO:<x@example.org>", 250, "2.1.5")


def test_mail_from_rule_rejects_with_550_5_7_1_sender():
    rules = ('match from ! src <our-nets> mail-from "@example.org" reject\n'
             + RULES)
    with smtpd(rules=rules) as d, session(d, src="127.0.0.2") as c:
        c.cmd("MAIL FROM:<forged@example.org>", 250, "2.1.0")
        c.cmd("RCPT TO:<x@example.org>", 550, "5.7.1",
              text="Sender address rejected")


# ---------------------------------------------------------------------
# Recipients and pipelining.

def test_rcpt_over_limit_gets_452_4_5_3():
    with smtpd(smtp={"max-recipients": "3"}) as d, session(d) as c:
        c.cmd("MAIL FROM:<a@b.example>", 250, "2.1.0")
        for i in range(3):
            c.cmd("RCPT TO:<r%d@example.org>" % i, 250, "2.1.5")
        c.cmd("RCPT TO:<r3@example.org>", 452, "4.5.3")
        c.cmd("RCPT TO:<r4@example.org>", 452, "4.5.3")
        # the next transaction may have its own three
        c.cmd("RSET", 250, "2.0.0")
        c.cmd("MAIL FROM:<a@b.example>", 250, "2.1.0")
        c.cmd("RCPT TO:<r3@example.org>", 250, "2.1.5")


def test_pipelined_mail_rcpt_rcpt_data_get_four_replies_in_order():
    with smtpd() as d, session(d, src="127.0.0.2") as c:
        c.send("MAIL FROM:<a@b.example>\r\nRCPT TO:<x@example.org>\r\n"
               "RCPT TO:<x@other.example>\r\nDATA\r\n")
        c.expect(250, "2.1.0")
        c.expect(250, "2.1.5")
        c.expect(550, "5.7.1")
        c.expect(354, esc=False)
        c.quiet(0.2)
        c.send(b"Subject: x\r\n\r\nbody\r\n.\r\nNOOP\r\n")
        c.expect(250, "2.0.0", text="queued as")
        c.expect(250, "2.0.0", text="Ok")
        c.quiet(0.2)


# ---------------------------------------------------------------------
# DATA.

def test_message_is_accepted_with_250_after_the_final_dot():
    with smtpd() as d, session(d, src="127.0.0.2") as c:
        c.mail_transaction()
        lines = send_message(c, MESSAGE)
        mid = queued_id(lines)
        ids = show_queue_ids(d)
        if ids is None:
            print("skip: smarthostctl show queue is not there yet")
            return
        assert mid in ids, (mid, ids)


def test_message_ends_only_at_crlf_dot_crlf():
    with smtpd() as d, session(d) as c:
        c.mail_transaction()
        c.cmd("DATA", 354, esc=False)
        c.send(b"Subject: x\r\n\r\nline\r\n")
        for almost in (b".\n", b"\n.\r\n", b"\r.\r", b".x\r\n", b" .\r\n",
                       b"..\r\n"):
            c.send(almost)
            c.quiet(0.2)
        c.send(b"\r\n.\r\n")
        code, lines = c.reply()
        # the bare CR and LF above refuse the message
        assert (code, lines[0][4:9]) == (550, "5.6.0"), lines
        c.cmd("NOOP", 250, "2.0.0")


def test_dot_stuffed_lines_arrive_unstuffed():
    with smtpd() as d, session(d) as c:
        c.mail_transaction()
        body = (b"Subject: dots\r\n..X-Dot-Stuffed: yes\r\n\r\n"
                b"..body-dot-marker-7d1e\r\n...\r\n")
        lines = send_message(c, body)
        mid = queued_id(lines)
        r = ctl_run(d, "show", "message", mid)
        if r.returncode == 2:
            print("skip: smarthostctl show message is not there yet")
            return
        assert r.returncode == 0, (r.stdout, r.stderr)
        out = r.stdout.splitlines()
        assert ".X-Dot-Stuffed: yes" in out, r.stdout
        assert "..X-Dot-Stuffed: yes" not in out, r.stdout
        # the body is not shown: look for it in the queue database
        raw = b""
        for name in os.listdir(d.state):
            with open(os.path.join(d.state, name), "rb") as f:
                raw += f.read()
        if b"body-dot-marker-7d1e" in raw:
            assert b"\r\n.body-dot-marker-7d1e\r\n..\r\n" in raw
            assert b"..body-dot-marker" not in raw


SMUGGLING = [b"\n.\n", b"\n.\r\n", b"\r.\r", b"\r\n.\n"]


def test_smuggled_end_of_data_gets_one_550_and_no_second_message():
    with smtpd() as d:
        for end in SMUGGLING:
            with session(d) as c:
                replies = []
                c.mail_transaction("a@b.example", "x@example.org")
                c.cmd("DATA", 354, esc=False)
                c.send(b"From: a@b.example\r\nSubject: first\r\n\r\nfirst" +
                       end + b"MAIL FROM:<evil@x.example>\r\n"
                       b"RCPT TO:<y@example.org>\r\nDATA\r\n"
                       b"Subject: smuggled\r\n\r\nsmuggled\r\n.\r\n")
                code, lines = c.reply()
                replies.append(lines)
                assert (code, lines[0][4:9]) == (550, "5.6.0"), \
                    (end, replies)
                # nothing more: no 250/354 for the smuggled commands
                c.quiet(0.5)
                c.cmd("NOOP", 250, "2.0.0")
        ids = show_queue_ids(d)
        if ids is None:
            print("skip: smarthostctl show queue is not there yet")
            return
        assert ids == [], ids


def test_data_line_over_1000_octets_gets_500_5_5_0_and_session_goes_on():
    with smtpd() as d, session(d) as c:
        c.mail_transaction()
        body = b"Subject: long\r\n\r\n" + b"x" * 999 + b"\r\n"
        send_message(c, body, 500, "5.5.0")
        c.cmd("RSET", 250, "2.0.0")
        c.cmd("NOOP", 250, "2.0.0")
        # far longer than any buffer, with a fake end inside
        c.mail_transaction()
        body = (b"Subject: longer\r\n\r\n" + b"y" * 70000 + b"\r\n" +
                b"z" * 100000 + b"\r\n")
        send_message(c, body, 500, "5.5.0")
        c.cmd("NOOP", 250, "2.0.0")
        c.cmd("MAIL FROM:<a@b.example>", 250, "2.1.0")


def test_long_data_line_ending_in_a_dot_is_not_the_end_of_data():
    # Wherever the server cuts an overlong line, the cut-off tail ".\r\n"
    # is not a line of its own and does not end the message.
    with smtpd() as d, session(d) as c:
        for n in (999, 1000, 1001, 1002, 2003, 2004, 70000):
            c.mail_transaction()
            c.cmd("DATA", 354, esc=False)
            c.send(b"Subject: dot\r\n\r\n" + b"x" * n + b".\r\n"
                   b"NOOP\r\n.\r\n")
            c.expect(500, "5.5.0")
            c.quiet(0.2)
        c.cmd("NOOP", 250, "2.0.0")


def test_final_dot_split_across_writes_ends_the_message():
    with smtpd() as d, session(d) as c:
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.mail_transaction()
        c.cmd("DATA", 354, esc=False)
        for part in (MESSAGE + b"\r", b"\n.", b"\r", b"\n"):
            c.quiet(0.1)
            c.send(part)
        c.expect(250, "2.0.0", text="queued as")


def test_data_line_of_exactly_1000_octets_is_accepted():
    with smtpd() as d, session(d) as c:
        c.mail_transaction()
        body = b"Subject: long\r\n\r\n" + b"x" * 998 + b"\r\n"
        send_message(c, body)


def test_nul_in_data_gets_550_5_6_0():
    with smtpd() as d, session(d) as c:
        c.mail_transaction()
        send_message(c, b"Subject: nul\r\n\r\nbefore\0after\r\n", 550,
                     "5.6.0")
        c.cmd("NOOP", 250, "2.0.0")


def test_leading_folded_header_line_gets_550_5_6_0():
    # It would fold into our Received header (or, with scanning, into
    # our Authentication-Results) and speak in our name.
    with smtpd() as d, session(d) as c:
        c.mail_transaction()
        send_message(c, b"\tby trusted.example with FORGED\r\n"
                     b"Subject: x\r\n\r\nbody\r\n", 550, "5.6.0")
        c.cmd("NOOP", 250, "2.0.0")
        # a folded line later in the header section is fine
        c.mail_transaction()
        send_message(c, b"Subject: a\r\n continued\r\n\r\nbody\r\n")


def test_message_over_max_size_gets_552_5_3_4():
    with smtpd(smtp={"max-message-size": "10K"}) as d, session(d) as c:
        c.mail_transaction()
        body = b"Subject: big\r\n\r\n" + (b"x" * 78 + b"\r\n") * 300
        send_message(c, body, 552, "5.3.4")
        c.cmd("NOOP", 250, "2.0.0")
        # a message that fits still goes through the same session
        c.mail_transaction()
        code, lines = c.cmd("DATA")
        assert code == 354, lines
        c.send(MESSAGE + b".\r\n")
        c.expect(250, "2.0.0", text="queued as")


def received_headers(n):
    return b"".join(b"Received: from h%d.example by h%d.example; "
                    b"Mon, 1 Jan 2026 00:00:00 +0000\r\n" % (i, i + 1)
                    for i in range(n))


def test_more_received_headers_than_max_hops_gets_554_5_4_6():
    with smtpd() as d, session(d) as c:
        # the default max-hops is 50
        c.mail_transaction()
        send_message(c, received_headers(51) + MESSAGE, 554, "5.4.6")
        c.mail_transaction()
        c.cmd("DATA", 354, esc=False)
        c.send(received_headers(50) + MESSAGE + b".\r\n")
        c.expect(250, "2.0.0", text="queued as")


def test_received_headers_over_configured_max_hops_get_554_5_4_6():
    with smtpd(smtp={"max-hops": "3"}) as d, session(d) as c:
        c.mail_transaction()
        send_message(c, received_headers(4) + MESSAGE, 554, "5.4.6")
        # Received lines in the body are not hops
        c.mail_transaction()
        c.cmd("DATA", 354, esc=False)
        c.send(received_headers(3) + MESSAGE + received_headers(5) +
               b".\r\n")
        c.expect(250, "2.0.0", text="queued as")


# ---------------------------------------------------------------------
# STARTTLS.

TLS = 'tls pki "mx.test"'


def test_starttls_resets_the_session_and_ehlo_no_longer_offers_it():
    with smtpd(listeners=(TLS,), tls=True) as d, session(d, ehlo=False) as c:
        ext = c.ehlo()
        assert "STARTTLS" in ext, ext
        c.cmd("MAIL FROM:<a@b.example>", 250, "2.1.0")
        # not inside a transaction
        c.cmd("STARTTLS", 503, "5.5.1")
        c.cmd("RSET", 250, "2.0.0")
        c.starttls(tls_context(os.path.join(d.tmp, "mx.crt")))
        assert c.sock.version() in ("TLSv1.2", "TLSv1.3"), c.sock.version()
        c.cmd("MAIL FROM:<a@b.example>", 503, "5.5.1")
        ext = c.ehlo()
        assert "STARTTLS" not in ext, ext
        assert not any(e.startswith("AUTH") for e in ext), ext
        c.cmd("STARTTLS", 503, "5.5.1")
        c.mail_transaction()
        c.cmd("QUIT", 221, "2.0.0")


def test_starttls_before_ehlo_or_on_a_plain_listener_is_refused():
    with smtpd(listeners=(TLS, ""), tls=True) as d:
        with Client(d.ports[0]) as c:
            c.cmd("STARTTLS", 503, "5.5.1")
            c.ehlo()
            c.cmd("STARTTLS now", 501, "5.5.4")
        with session(d, port=d.ports[1]) as c:
            c.cmd("STARTTLS", 502, "5.5.1")


def test_starttls_with_openssl_s_client():
    with smtpd(listeners=(TLS,), tls=True) as d:
        dialogue = ("MAIL FROM:<a@b.example>\nEHLO s-client.test\n"
                    "MAIL FROM:<a@b.example>\nRCPT TO:<x@example.org>\n"
                    "QUIT\n")
        r = subprocess.run(["openssl", "s_client", "-starttls", "smtp",
                            "-connect", "%s:%d" % (HOST, d.port), "-quiet",
                            "-crlf", "-verify_return_error", "-CAfile",
                            os.path.join(d.tmp, "mx.crt"),
                            "-verify_hostname", "mx.test"],
                           input=dialogue, capture_output=True, text=True,
                           timeout=30)
        out = r.stdout.replace("\r", "")
        lines = [line for line in out.split("\n") if line[:3].isdigit()]
        assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
        assert lines[0].startswith("503 5.5.1"), lines
        ehlo = [line for line in lines if line.startswith("250")
                and not ENHANCED.match(line)]
        assert ehlo and not any("STARTTLS" in line for line in ehlo), lines
        rest = [line for line in lines if ENHANCED.match(line)]
        assert [line[:9] for line in rest] == [
            "503 5.5.1", "250 2.1.0", "250 2.1.5", "221 2.0.0"], lines


def test_plaintext_pipelined_after_starttls_is_not_answered_inside_tls():
    with smtpd(listeners=(TLS,), tls=True) as d, session(d) as c:
        # RFC 3207 section 4.2: the NOOP rides along in plaintext
        c.send("STARTTLS\r\nNOOP\r\n")
        c.expect(220, "2.0.0")
        assert c.buf == b"", c.buf
        c.sock = tls_context().wrap_socket(c.sock)
        lines = c.cmd("EHLO client.test", 250, esc=False)
        assert lines[0].startswith("250-test.example.org"), lines
        c.cmd("NOOP", 250, "2.0.0")
        c.quiet(0.3)


def test_plaintext_mail_pipelined_after_starttls_is_discarded():
    with smtpd(listeners=(TLS,), tls=True) as d, \
            session(d, src="127.0.0.2") as c:
        c.send("STARTTLS\r\nMAIL FROM:<evil@x.example>\r\n"
               "RCPT TO:<y@example.org>\r\n")
        c.expect(220, "2.0.0")
        c.sock = tls_context().wrap_socket(c.sock)
        c.ehlo()
        # no transaction was carried over
        c.cmd("RCPT TO:<y@example.org>", 503, "5.5.1")


def test_tls_1_1_and_lower_are_refused():
    with smtpd(listeners=(TLS,), tls=True) as d:
        ctx = tls_context()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                ctx.minimum_version = ssl.TLSVersion.TLSv1
                ctx.maximum_version = ssl.TLSVersion.TLSv1_1
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        except (ValueError, ssl.SSLError, AttributeError) as e:
            print("skip: this client cannot offer TLS 1.1: %s" % e)
            return
        with session(d) as c:
            c.cmd("STARTTLS", 220, "2.0.0")
            try:
                s = ctx.wrap_socket(c.sock)
            except ssl.SSLError as e:
                if "NO_PROTOCOLS_AVAILABLE" in str(e) or \
                        "no protocols available" in str(e):
                    print("skip: this client cannot offer TLS 1.1: %s" % e)
                    return
            except (ConnectionResetError, BrokenPipeError):
                pass
            else:
                raise AssertionError("handshake with %s succeeded" %
                                     s.version())
        # TLS 1.2 still works, and the daemon is fine
        with session(d) as c:
            ctx = tls_context()
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
            c.starttls(ctx)
            assert c.sock.version() == "TLSv1.2", c.sock.version()
            c.ehlo()


def test_tls_require_listener_refuses_mail_before_starttls_with_530():
    with smtpd(listeners=('tls-require pki "mx.test"',), tls=True) as d, \
            session(d) as c:
        c.cmd("MAIL FROM:<a@b.example>", 530, "5.7.0")
        c.cmd("RCPT TO:<x@example.org>", 503, "5.5.1")
        c.starttls()
        c.ehlo()
        c.mail_transaction()


def test_smtps_listener_greets_inside_tls():
    with smtpd(listeners=('smtps pki "mx.test" auth <passwd>',), tls=True,
               passwd=True) as d:
        raw = socket.create_connection((HOST, d.port), timeout=IO_TIMEOUT)
        s = tls_context(os.path.join(d.tmp, "mx.crt")).wrap_socket(
            raw, server_hostname="mx.test")
        with Client.__new__(Client) as c:
            c.port, c.sock, c.buf, c.log = d.port, s, b"", []
            code, lines = c.reply(esc=False)
            assert lines == ["220 test.example.org ESMTP smarthostd"], lines
            ext = c.ehlo()
            assert "AUTH PLAIN LOGIN" in ext, ext
            assert "STARTTLS" not in ext, ext
            c.cmd("STARTTLS", 502, "5.5.1")
            c.mail_transaction()


def test_smtps_listener_drops_a_plaintext_client():
    with smtpd(listeners=('smtps pki "mx.test"',), tls=True) as d:
        with Client(d.port, greeting=False) as c:
            c.send("EHLO client.test\r\n")
            assert c.closed(), "plaintext EHLO on smtps not dropped"
        with Client(d.port, greeting=False) as c:
            c.sock = tls_context().wrap_socket(c.sock)
            c.expect(220, esc=False)


# ---------------------------------------------------------------------
# AUTH.

AUTH_TLS = 'tls pki "mx.test" auth <passwd>'
AUTH_RULES = ('match from src <our-nets> for any action "outbound"\n'
              'match auth for any action "outbound"\n'
              'match for domain <our-domains> action "inbound"\n')


def b64(text):
    return base64.b64encode(text.encode()).decode()


def auth_plain(c, user, password, code=235, enhanced="2.7.0"):
    return c.cmd("AUTH PLAIN " + b64("\0%s\0%s" % (user, password)), code,
                 enhanced)


def tls_session(d, src=None, port=None):
    c = session(d, src=src, port=port)
    c.starttls()
    c.ehlo()
    return c


def need_users(*users):
    have = password_hashes()
    missing = [u for u in users if u not in have]
    if missing:
        print("skip: no hash for %s (%s)" % (
            ", ".join(missing), "smarthostctl encrypt" if "alice" in missing
            else "python crypt"))
        return False
    return True


def test_auth_is_not_offered_and_refused_with_530_before_tls():
    with smtpd(listeners=(AUTH_TLS, ""), tls=True, passwd=True) as d:
        with session(d, ehlo=False) as c:
            ext = c.ehlo()
            assert not any(e.startswith("AUTH") for e in ext), ext
            c.cmd("AUTH PLAIN " + b64("\0alice\0x"), 530, "5.7.0")
            c.cmd("AUTH LOGIN", 530, "5.7.0")
            c.starttls()
            ext = c.ehlo()
            assert "AUTH PLAIN LOGIN" in ext, ext
        # a listener without auth never offers it
        with session(d, port=d.ports[1]) as c:
            c.cmd("AUTH PLAIN " + b64("\0alice\0x"), 503, "5.5.1")


def test_show_tables_counts_a_password_table_it_keeps_secret():
    """A table of credentials stays in the parent; show tables, which
    grey answers, still gives its size."""
    with smtpd(listeners=(AUTH_TLS,), tls=True, passwd=True) as d:
        users = len(password_hashes())
        assert users > 0
        tables = json.loads(d.ctl("-j", "show", "tables").stdout)
        passwd = [t for t in tables if t["name"] == "passwd"]
        assert len(passwd) == 1 and passwd[0]["count"] == users, tables


def test_auth_plain_with_initial_response_succeeds_for_both_hash_sources():
    if not need_users("alice", "bob"):
        return
    with smtpd(listeners=(AUTH_TLS,), tls=True, passwd=True) as d:
        for user in ("alice", "bob"):
            with tls_session(d) as c:
                auth_plain(c, user, PASSWORDS[user])
                ext = c.ehlo()
                assert not any(e.startswith("AUTH") for e in ext), ext
                c.cmd("AUTH PLAIN " + b64("\0%s\0%s" % (
                    user, PASSWORDS[user])), 503, "5.5.1")


def test_auth_plain_without_initial_response_succeeds():
    if not need_users("alice"):
        return
    with smtpd(listeners=(AUTH_TLS,), tls=True, passwd=True) as d, \
            tls_session(d) as c:
        c.cmd("AUTH PLAIN", 334, esc=False)
        c.cmd(b64("alice\0alice\0" + PASSWORDS["alice"]), 235, "2.7.0")


def test_auth_login_succeeds_for_both_hash_sources():
    if not need_users("alice", "bob"):
        return
    with smtpd(listeners=(AUTH_TLS,), tls=True, passwd=True) as d:
        for user in ("alice", "bob"):
            with tls_session(d) as c:
                c.cmd("AUTH LOGIN", 334, esc=False, text="VXNlcm5hbWU6")
                c.cmd(b64(user), 334, esc=False, text="UGFzc3dvcmQ6")
                c.cmd(b64(PASSWORDS[user]), 235, "2.7.0")


def test_bad_password_gets_535_5_7_8():
    if not need_users("alice", "bob"):
        return
    with smtpd(listeners=(AUTH_TLS,), tls=True, passwd=True,
               smtp={"max-auth-failures": "20"}) as d, \
            tls_session(d) as c:
        auth_plain(c, "alice", "wrong", 535, "5.7.8")
        auth_plain(c, "alice", PASSWORDS["bob"], 535, "5.7.8")
        auth_plain(c, "nosuchuser", "x", 535, "5.7.8")
        auth_plain(c, "alice", PASSWORDS["alice"] + "x", 535, "5.7.8")
        c.cmd("AUTH LOGIN", 334, esc=False)
        c.cmd(b64("bob"), 334, esc=False)
        c.cmd(b64("wrong"), 535, "5.7.8")
        c.cmd("AUTH PLAIN " + b64("\0alice"), 501, "5.5.2")
        c.cmd("AUTH PLAIN " + b64("bob\0alice\0" + PASSWORDS["alice"]),
              501, "5.5.2")
        c.cmd("AUTH PLAIN !!!notbase64", 501, "5.5.2")
        c.cmd("AUTH LOGIN", 334, esc=False)
        c.cmd("*", 501, "5.7.0")
        c.cmd("AUTH CRAM-MD5", 504, "5.5.4")
        # the failures were counted, the session goes on
        auth_plain(c, "alice", PASSWORDS["alice"])


def test_auth_failures_over_limit_get_454_4_7_0_also_in_a_new_session():
    if not need_users("alice"):
        return
    with smtpd(listeners=(AUTH_TLS,), tls=True, passwd=True,
               smtp={"max-auth-failures": "2"}) as d:
        with tls_session(d, src="127.0.0.3") as c:
            auth_plain(c, "alice", "wrong1", 535, "5.7.8")
            auth_plain(c, "alice", "wrong2", 535, "5.7.8")
            auth_plain(c, "alice", PASSWORDS["alice"], 454, "4.7.0")
            c.cmd("AUTH LOGIN", 454, "4.7.0")
        with tls_session(d, src="127.0.0.3") as c:
            auth_plain(c, "alice", PASSWORDS["alice"], 454, "4.7.0")
        # another client address is not held back
        with tls_session(d, src="127.0.0.4") as c:
            auth_plain(c, "alice", PASSWORDS["alice"])


def test_relay_after_auth_is_accepted_and_refused_without():
    if not need_users("alice"):
        return
    with smtpd(listeners=(AUTH_TLS,), tls=True, passwd=True,
               rules=AUTH_RULES) as d:
        with tls_session(d, src="127.0.0.2") as c:
            c.cmd("MAIL FROM:<a@b.example>", 250, "2.1.0")
            c.cmd("RCPT TO:<x@other.example>", 550, "5.7.1")
            c.cmd("RSET", 250, "2.0.0")
            auth_plain(c, "alice", "wrong", 535, "5.7.8")
            c.cmd("MAIL FROM:<a@b.example>", 250, "2.1.0")
            c.cmd("RCPT TO:<x@other.example>", 550, "5.7.1")
        with tls_session(d, src="127.0.0.2") as c:
            auth_plain(c, "alice", PASSWORDS["alice"])
            c.cmd("MAIL FROM:<a@b.example>", 250, "2.1.0")
            c.cmd("RCPT TO:<x@other.example>", 250, "2.1.5")


def test_swaks_auth_plain_over_starttls_relays():
    if shutil.which("swaks") is None:
        print("skip: swaks is not installed")
        return
    if not need_users("alice"):
        return
    with smtpd(listeners=(AUTH_TLS,), tls=True, passwd=True,
               rules=AUTH_RULES) as d:
        r = subprocess.run(["swaks", "--server", "%s:%d" % (HOST, d.port),
                            "--local-interface", "127.0.0.2",
                            "--tls", "--auth", "PLAIN",
                            "--auth-user", "alice",
                            "--auth-password", PASSWORDS["alice"],
                            "--to", "x@other.example",
                            "--from", "a@b.example",
                            "--helo", "swaks.test", "--timeout", "15"],
                           capture_output=True, text=True, timeout=60)
        out = r.stdout + r.stderr
        assert "<~  235 2.7.0" in out, out
        assert "<~  250 2.1.5" in out, out
        assert r.returncode == 0, (r.returncode, out)


# ---------------------------------------------------------------------
# Session limits and timeouts.

def test_third_session_from_one_address_gets_421_4_7_0_other_gets_220():
    with smtpd(smtp={"max-sessions-per-client": "2"}) as d:
        first = Client(d.port, src="127.0.0.2")
        second = Client(d.port, src="127.0.0.2")
        try:
            third = Client(d.port, src="127.0.0.2", greeting=False)
            lines = third.expect(421, "4.7.0")
            assert third.closed(), "refused connection left open"
            with Client(d.port, src="127.0.0.3") as other:
                assert other.greeting[0] == 220, other.greeting
            first.cmd("QUIT", 221, "2.0.0")
            assert first.closed()

            def admitted():
                c = Client(d.port, src="127.0.0.2", greeting=False)
                code, lines = c.reply(esc=False)
                c.close()
                return code == 220
            wait_for(admitted, 5, "a free slot after QUIT")
        finally:
            first.close()
            second.close()


def test_idle_client_gets_421_4_4_2_after_command_timeout():
    with smtpd(smtp={"command-timeout": "1s"}) as d, session(d) as c:
        c.sock.settimeout(8)
        c.expect(421, "4.4.2")
        assert c.closed(), "connection open after the timeout"


def test_stalled_data_gets_421_4_4_2_after_data_timeout():
    with smtpd(smtp={"data-timeout": "1s"}) as d, session(d) as c:
        c.mail_transaction()
        c.cmd("DATA", 354, esc=False)
        c.send(b"Subject: slow\r\n")
        c.sock.settimeout(8)
        c.expect(421, "4.4.2")
        assert c.closed(), "connection open after the timeout"


def trickle_until_421(c, data, what, seconds=8):
    """Send data every 0.3s until the server answers 421 4.4.2 and
    closes; fail when it has not within seconds."""
    deadline = time.monotonic() + seconds
    c.sock.settimeout(0.3)
    try:
        while time.monotonic() < deadline:
            try:
                c.send(data)
            except OSError:
                pass
            try:
                chunk = c.sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                chunk = b""
            c.buf += chunk
            if not chunk:
                c.fail("closed without 421 4.4.2")
            if b"421 " in c.buf:
                break
            # nothing but the replies to NOOP before the 421
            rest = c.buf.replace(b"250 2.0.0 Ok\r\n", b"")
            if b"\r\n" in rest:
                c.fail("unexpected reply %r" % c.buf)
            c.buf = rest
    finally:
        c.sock.settimeout(IO_TIMEOUT)
    if b"421 " not in c.buf:
        c.fail("%s kept the transaction alive past transaction-timeout"
               % what)
    c.buf = c.buf[c.buf.index(b"421 "):]
    c.expect(421, "4.4.2")
    assert c.closed(), "connection open after the timeout"


def test_trickling_noops_get_421_4_4_2_after_transaction_timeout():
    with smtpd(smtp={"transaction-timeout": "2s",
                     "command-timeout": "5s"}) as d, session(d) as c:
        c.mail_transaction()
        trickle_until_421(c, b"NOOP\r\n", "a NOOP every 0.3s")


def test_trickling_data_gets_421_4_4_2_after_transaction_timeout():
    with smtpd(smtp={"transaction-timeout": "2s", "command-timeout": "5s",
                     "data-timeout": "5s"}) as d, session(d) as c:
        c.mail_transaction()
        c.cmd("DATA", 354, esc=False)
        trickle_until_421(c, b"x", "a byte of DATA every 0.3s")
