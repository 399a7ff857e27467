"""Helpers for the integration tests: start the real daemon, find its
processes, talk to it with smarthostctl and over raw imsg."""

import json
import os
import pwd
import re
import resource
import signal
import socket
import struct
import subprocess
import tempfile
import time

REGRESS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(REGRESS)
SMARTHOSTD = os.path.join(REPO, "smarthostd", "smarthostd")
SMARTHOSTCTL = os.path.join(REPO, "smarthostctl", "smarthostctl")
CHILDREN = ["smtp", "grey", "scan", "queue", "pf", "control"]

# The imsg header as compat/imsg.c writes it: type, len (header
# included), peerid, pid, in host byte order.
IMSG_HDR = struct.Struct("=IIII")
IMSG_CTL_VERSION = 1


def _control_version():
    with open(os.path.join(REPO, "smarthostd", "smarthostd.h")) as f:
        return int(re.search(r"#define CONTROL_VERSION\s+(\d+)",
                             f.read()).group(1))


# The control protocol version this tree's smarthostctl speaks.
CONTROL_VERSION = _control_version()


def wait_for(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out after %.0fs waiting for %s" %
                         (timeout, what))


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            # A zombie has exited; only its parent has not reaped it yet.
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def proc_status(pid):
    fields = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def proc_title(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        return f.read().split(b"\0")[0].decode(errors="replace").strip()


def children_of(ppid):
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if int(proc_status(int(entry))["PPid"]) == ppid:
                kids.append(int(entry))
        except (FileNotFoundError, ProcessLookupError, KeyError):
            continue
    return kids


def base_config(tmp, extra=""):
    return ("hostname \"test.example.org\"\n"
            "state \"%(tmp)s/state\"\n"
            "control socket \"%(tmp)s/smarthostd.sock\"\n"
            "pidfile \"%(tmp)s/smarthostd.pid\"\n"
            "resolver 127.0.0.1 port 1\n" % {"tmp": tmp}) + extra


class Daemon:
    """The real smarthostd in the foreground (-d -v) with a temporary
    state directory, control socket and pidfile."""

    def __init__(self, extra_config="", config=None, args=(), user=None,
                 nofile=None, preexec=None):
        self.tmp = tempfile.mkdtemp(prefix="smarthostd-test-")
        os.chmod(self.tmp, 0o755)
        self.conf = os.path.join(self.tmp, "smarthostd.conf")
        self.sock = os.path.join(self.tmp, "smarthostd.sock")
        self.pidfile = os.path.join(self.tmp, "smarthostd.pid")
        self.state = os.path.join(self.tmp, "state")
        self.logpath = os.path.join(self.tmp, "log")
        self.write_config(config if config is not None else
                          base_config(self.tmp, extra_config))
        self.args = list(args)
        self.user = user
        self.nofile = nofile        # (soft, hard) to start with
        self.preexec = preexec      # run in the child before exec
        self.proc = None

    def write_config(self, text):
        with open(self.conf, "w") as f:
            f.write(text)

    def start(self, wait=True):
        self.log = open(self.logpath, "ab")
        pw = None
        if self.user is not None:
            pw = pwd.getpwnam(self.user)
            os.chown(self.tmp, pw.pw_uid, pw.pw_gid)
            os.chown(self.conf, pw.pw_uid, pw.pw_gid)

        def preexec():
            if self.preexec is not None:
                self.preexec()
            if self.nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, self.nofile)
            if pw is not None:
                os.setgroups([])
                os.setgid(pw.pw_gid)
                os.setuid(pw.pw_uid)
        self.proc = subprocess.Popen(
            [SMARTHOSTD, "-d", "-v", "-f", self.conf] + self.args,
            stdout=self.log, stderr=self.log, preexec_fn=preexec)
        if wait:
            self.wait_running()
        return self

    def wait_running(self, timeout=15):
        def running():
            if self.proc.poll() is not None:
                raise AssertionError("smarthostd exited %d:\n%s" %
                                     (self.proc.returncode, self.logtext()))
            if not os.path.exists(self.sock):
                return False
            r = self.ctl("-j", "show", "status", check=False)
            if r.returncode != 0:
                return False
            st = json.loads(r.stdout)
            return all(p["state"] == "running" for p in st["processes"])
        wait_for(running, timeout, "all processes running")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def ctl(self, *args, check=True):
        r = subprocess.run([SMARTHOSTCTL, "-s", self.sock] + list(args),
                           capture_output=True, text=True, timeout=30)
        if check and r.returncode != 0:
            raise AssertionError("smarthostctl %s exited %d: %s%s" %
                                 (" ".join(args), r.returncode, r.stdout,
                                  r.stderr))
        return r

    def status(self):
        return json.loads(self.ctl("-j", "show", "status").stdout)

    def pids(self):
        """The daemon's processes by name, found the way ps finds them:
        by their titles, among the parent's children."""
        found = {"parent": self.proc.pid}
        for pid in children_of(self.proc.pid):
            title = proc_title(pid)
            if title.startswith("smarthostd: "):
                found[title[len("smarthostd: "):]] = pid
        return found

    def logtext(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_log(self, text, timeout=10):
        wait_for(lambda: text in self.logtext(), timeout,
                 "%r in the log" % text)

    def wait_exit(self, timeout=15):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("smarthostd did not exit within %ds" %
                                 timeout)

    def stop(self):
        if self.proc is None:
            return
        kids = children_of(self.proc.pid)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in kids:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        self.log.close()


def imsg_pack(type_, payload=b"", peerid=0, pid=0):
    return IMSG_HDR.pack(type_, IMSG_HDR.size + len(payload), peerid,
                         pid) + payload


def imsg_recv(sock, timeout=5):
    """One imsg from a socket, or None on EOF."""
    sock.settimeout(timeout)
    buf = b""
    while len(buf) < IMSG_HDR.size:
        chunk = sock.recv(IMSG_HDR.size - len(buf))
        if not chunk:
            return None
        buf += chunk
    type_, length, peerid, pid = IMSG_HDR.unpack(buf)
    payload = b""
    while len(payload) < length - IMSG_HDR.size:
        chunk = sock.recv(length - IMSG_HDR.size - len(payload))
        if not chunk:
            return None
        payload += chunk
    return type_, payload


def control_connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    return s


def socket_closed(sock, timeout=5):
    """True when the peer closed the connection (EOF or reset)."""
    sock.settimeout(timeout)
    try:
        while True:
            if not sock.recv(4096):
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


# The queue: a daemon that accepts SMTP on loopback and queues every
# message for an action whose relay host nothing listens on, so that
# messages stay in the queue for the tests to look at.

def free_port(host="127.0.0.1"):
    """A TCP port nothing listens on right now."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def queue_config(port, extra=""):
    """Configuration lines for base_config: listen on port, queue all."""
    return ("listen on 127.0.0.1 port %d\n"
            "action \"inbound\" relay host \"smtp://127.0.0.1:2\"\n"
            "match for any action \"inbound\"\n" % port) + extra


def smtp_message(subject="test", size=0, headers=""):
    """A message with the given Subject and about size bytes of body."""
    body = ("x" * 76 + "\r\n") * (size // 78 + 1) if size else "hello\r\n"
    return ("From: <alice@example.org>\r\nTo: <bob@example.com>\r\n"
            "Subject: %s\r\n%s\r\n%s" % (subject, headers, body))


def smtp_send(port, message, sender="alice@example.org",
              rcpts=("bob@example.com",), timeout=30):
    """Send one message; returns (code, reply text) of the last step.
    A 250 after DATA says "queued as ID"; queue_id_of() takes the ID."""
    import smtplib
    s = smtplib.SMTP("127.0.0.1", port, timeout=timeout)
    try:
        s.ehlo("client.example.org")
        code, text = s.mail(sender)
        if code != 250:
            return code, text.decode()
        for r in rcpts:
            code, text = s.rcpt(r)
            if code != 250:
                return code, text.decode()
        code, text = s.data(message.encode())
        return code, text.decode()
    finally:
        try:
            s.quit()
        except (smtplib.SMTPException, OSError):
            pass


def queue_id_of(reply):
    """The queue id in "2.0.0 Ok: queued as ID"."""
    words = reply.split()
    assert "queued" in words, reply
    return words[-1]


def unix_recv_queue(pid):
    """Bytes waiting to be read on the unix sockets of a process, as ss
    reports them."""
    out = subprocess.run(["ss", "-x", "-p", "-n"], capture_output=True,
                         text=True, check=True).stdout
    total = 0
    for line in out.splitlines():
        if "pid=%d," % pid in line:
            total += int(line.split()[2])
    return total


# DNS: dnsmasq on loopback, answering only from its command line, for
# dns.c and the relay's MX path.  Configurations then say
# "resolver 127.0.0.1 port N" (Dnsmasq.resolver_line()).

DNSMASQ = "/usr/sbin/dnsmasq"


def ipv6_loopback():
    """True when ::1 can be bound here (IPv6 may be off)."""
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    except OSError:
        return False
    try:
        s.bind(("::1", 0))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_dns_port():
    """A port free for both UDP and TCP on 127.0.0.1 (and ::1)."""
    families = [(socket.AF_INET, "127.0.0.1")]
    if ipv6_loopback():
        families.append((socket.AF_INET6, "::1"))
    for _ in range(100):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        port = u.getsockname()[1]
        u.close()
        try:
            for family, host in families:
                for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                    s = socket.socket(family, kind)
                    try:
                        s.bind((host, port))
                    finally:
                        s.close()
        except OSError:
            continue
        return port
    raise AssertionError("no free DNS port")


class Dnsmasq:
    """dnsmasq in the foreground on 127.0.0.1 (and ::1 when there is
    IPv6), serving only what it is given:

        mx=[(domain, host, preference)]  MX records
        hosts=[(name, ipv4 or None, ipv6 or None)]  A/AAAA records;
            a name may appear several times for several addresses
        rr=[(name, type number, hex rdata)]  raw records (null MX: 15,
            "000000")
        txt=[(name, text)]

    Names under the domains in local (default "test") that it has no
    record of get NXDOMAIN, names elsewhere REFUSED: nothing is ever
    forwarded.  Every query goes to self.logpath."""

    def __init__(self, mx=(), hosts=(), rr=(), txt=(), local=("test",),
                 port=None, extra=()):
        self.port = port if port is not None else free_dns_port()
        self.ipv6 = ipv6_loopback()
        self.tmp = tempfile.mkdtemp(prefix="smarthostd-dnsmasq-")
        self.logpath = os.path.join(self.tmp, "dnsmasq.log")
        listen = "127.0.0.1,::1" if self.ipv6 else "127.0.0.1"
        self.args = [DNSMASQ, "-k", "-p", str(self.port),
                     "--listen-address=" + listen, "--bind-interfaces",
                     "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
                     "--pid-file=", "--user=root", "--log-queries",
                     "--log-facility=" + self.logpath]
        self.args += ["--local=/%s/" % d for d in local]
        self.args += ["--mx-host=%s,%s,%d" % m for m in mx]
        for name, v4, v6 in hosts:
            self.args.append("--host-record=%s,%s,%s" %
                             (name, v4 or "", v6 or ""))
        self.args += ["--dns-rr=%s,%d,%s" % r for r in rr]
        self.args += ["--txt-record=%s,%s" % t for t in txt]
        self.args += list(extra)
        self.proc = None

    def resolver_line(self):
        return "resolver 127.0.0.1 port %d\n" % self.port

    def start(self):
        if not os.access(DNSMASQ, os.X_OK):
            raise AssertionError("%s is missing: make deps installs "
                                 "dnsmasq-base" % DNSMASQ)
        self.err = open(os.path.join(self.tmp, "stderr"), "wb")
        self.proc = subprocess.Popen(self.args, stdout=self.err,
                                     stderr=self.err)

        def listening():
            if self.proc.poll() is not None:
                raise AssertionError("dnsmasq exited %d: %s" % (
                    self.proc.returncode, self.stderr()))
            try:
                socket.create_connection(("127.0.0.1", self.port),
                                         0.5).close()
                return True
            except OSError:
                return False
        wait_for(listening, 10, "dnsmasq on port %d" % self.port)
        return self

    def stderr(self):
        with open(os.path.join(self.tmp, "stderr"), "rb") as f:
            return f.read().decode(errors="replace")

    def querylog(self):
        try:
            with open(self.logpath, "rb") as f:
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.err.close()
        self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# Peers for the outbound SMTP client (relay.c): Postfix's smtp-sink, and a
# scripted server in Python for what smtp-sink cannot do (per-recipient
# replies, STARTTLS, AUTH, hostile replies, the raw bytes of DATA).

SMTP_SINK = "/usr/sbin/smtp-sink"


def make_test_cert(directory, name="peer", cn="localhost",
                   san="DNS:localhost,IP:127.0.0.1"):
    """A self-signed certificate (its own CA) and key, as PEM files in
    directory; returns (cert, key)."""
    cert = os.path.join(directory, name + ".crt")
    key = os.path.join(directory, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec",
                    "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-days", "2", "-subj", "/CN=" + cn,
                    "-addext", "subjectAltName=" + san,
                    "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    return cert, key


class PostfixSmtpSink:
    """Postfix's smtp-sink on host:port, every transaction dumped to its
    own file (-d) in self.dumpdir.  options are smtp-sink's own
    (e.g. ["-f", "RCPT", "-B", "550 5.1.1 No such user"])."""

    def __init__(self, port, host="127.0.0.1", options=()):
        self.host = host
        self.port = port
        self.tmp = tempfile.mkdtemp(prefix="smarthostd-sink-")
        self.dumpdir = os.path.join(self.tmp, "dump")
        os.mkdir(self.dumpdir)
        os.chmod(self.tmp, 0o755)
        os.chmod(self.dumpdir, 0o777)
        args = [SMTP_SINK]
        if os.geteuid() == 0:
            args += ["-u", "nobody"]
        self.args = args + list(options) + [
            "-d", self.dumpdir + "/%M.", "%s:%d" % (host, port), "64"]
        self.proc = None

    def start(self):
        if not os.access(SMTP_SINK, os.X_OK):
            raise AssertionError("%s is missing: make deps installs "
                                 "postfix" % SMTP_SINK)
        self.err = open(os.path.join(self.tmp, "stderr"), "wb")
        self.proc = subprocess.Popen(self.args, stdout=self.err,
                                     stderr=self.err)

        def listening():
            if self.proc.poll() is not None:
                with open(os.path.join(self.tmp, "stderr"), "rb") as f:
                    raise AssertionError("smtp-sink exited %d: %s" % (
                        self.proc.returncode, f.read().decode()))
            try:
                socket.create_connection((self.host, self.port),
                                         0.5).close()
                return True
            except OSError:
                return False
        wait_for(listening, 10, "smtp-sink on port %d" % self.port)
        return self

    def dumps(self):
        """The dumped transactions, oldest first, as text."""
        names = sorted(os.listdir(self.dumpdir),
                       key=lambda n: os.stat(os.path.join(
                           self.dumpdir, n)).st_mtime)
        out = []
        for n in names:
            with open(os.path.join(self.dumpdir, n), "rb") as f:
                out.append(f.read().decode(errors="replace"))
        return out

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.err.close()
        self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class ScriptedSmtpPeer:
    """An SMTP server in threads for client tests.  Replies are scripted:
    a str gets CRLF appended, bytes go out exactly as given (hostile
    replies), a callable gets the command's argument and returns either.

        greeting         first reply, or None to never greet
        extensions       EHLO keywords after the first line
        tls              (cert, key): STARTTLS offered (unless implicit)
        implicit_tls     TLS from the first byte (smtps)
        auth             (user, password): AUTH PLAIN offered after TLS
        ehlo             a reply to EHLO instead of the extensions
        starttls_reply   the reply to STARTTLS (then the handshake)
        mail, rcpt, data, eom   replies; rcpt may be a callable
        rcpt_max         452 4.5.3 for RCPTs beyond this many per
                         transaction
        hang_up_after    close the connection, unannounced, after this
                         many messages (a server's own reuse limit)

    self.sessions lists one dict per connection: "commands" (the lines
    received, in order), "tls" (True once TLS is up), "messages" (the raw
    bytes between 354 and the final dot, that dot's CRLF included),
    "auth" (decoded AUTH PLAIN credentials)."""

    def __init__(self, host="127.0.0.1", port=0, greeting="220 peer.test ESMTP",
                 extensions=("PIPELINING", "8BITMIME", "SIZE 10485760"),
                 tls=None, implicit_tls=False, auth=None, mail="250 2.1.0 Ok",
                 rcpt="250 2.1.5 Ok", data="354 End data with <CR><LF>.<CR><LF>",
                 eom="250 2.0.0 Ok: queued", rcpt_max=None, ehlo=None,
                 starttls_reply="220 2.0.0 Ready to start TLS",
                 hang_up_after=None):
        import ssl
        import threading
        self.host = host
        self.greeting = greeting
        self.extensions = list(extensions)
        self.implicit_tls = implicit_tls
        self.auth = auth
        self.replies = {"MAIL": mail, "RCPT": rcpt, "DATA": data,
                        "EOM": eom, "EHLO": ehlo,
                        "STARTTLS": starttls_reply}
        self.rcpt_max = rcpt_max
        self.hang_up_after = hang_up_after
        self.sessions = []
        self.ctx = None
        if tls is not None:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(tls[0], tls[1])
        self.sock = socket.socket(socket.AF_INET6 if ":" in host
                                  else socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.threads = []
        self.stopping = False
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stopping = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(5)
        for t in self.threads:
            t.join(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _accept(self):
        import threading
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            session = {"commands": [], "tls": False, "messages": [],
                       "auth": []}
            with self.lock:
                self.sessions.append(session)
            t = threading.Thread(target=self._serve, args=(conn, session),
                                 daemon=True)
            self.threads.append(t)
            t.start()

    def _serve(self, conn, session):
        conn.settimeout(30)
        try:
            self._dialogue(conn, session)
        except (OSError, ValueError):
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def _dialogue(self, conn, session):
        import base64
        buf = bytearray()

        def send(reply, arg=""):
            if callable(reply):
                reply = reply(arg)
            if isinstance(reply, str):
                reply = (reply + "\r\n").encode()
            conn.sendall(reply)

        def readline():
            while b"\n" not in buf:
                chunk = conn.recv(65536)
                if not chunk:
                    raise ValueError("EOF")
                buf.extend(chunk)
            i = buf.index(b"\n") + 1
            line = bytes(buf[:i])
            del buf[:i]
            return line.rstrip(b"\r\n").decode(errors="replace")

        def read_data():
            while True:
                if buf.startswith(b".\r\n"):
                    end = 0
                    break
                end = buf.find(b"\r\n.\r\n")
                if end != -1:
                    end += 2
                    break
                chunk = conn.recv(65536)
                if not chunk:
                    raise ValueError("EOF in DATA")
                buf.extend(chunk)
            data = bytes(buf[:end])
            del buf[:end + 3]
            return data

        if self.implicit_tls:
            conn = self.ctx.wrap_socket(conn, server_side=True)
            session["tls"] = True
        if self.greeting is None:
            time.sleep(60)
            return
        send(self.greeting)
        nrcpt = 0
        while True:
            line = readline()
            session["commands"].append(line)
            verb = line.split(" ", 1)[0].upper()
            arg = line[len(verb) + 1:]
            if verb == "EHLO" and self.replies["EHLO"] is not None:
                send(self.replies["EHLO"], arg)
            elif verb == "EHLO":
                exts = list(self.extensions)
                if self.ctx is not None and not session["tls"] and \
                        not self.implicit_tls:
                    exts.append("STARTTLS")
                if self.auth is not None and session["tls"]:
                    exts.append("AUTH PLAIN LOGIN")
                lines = ["peer.test"] + exts
                send("".join("250%s%s\r\n" % (
                    " " if i == len(lines) - 1 else "-", x)
                    for i, x in enumerate(lines)).encode())
            elif verb == "HELO":
                send("250 peer.test")
            elif verb == "STARTTLS" and self.ctx is not None:
                send(self.replies["STARTTLS"])
                conn = self.ctx.wrap_socket(conn, server_side=True)
                session["tls"] = True
            elif verb == "AUTH":
                mech, _, initial = arg.partition(" ")
                try:
                    decoded = base64.b64decode(initial).split(b"\0")
                except ValueError:
                    decoded = []
                session["auth"].append(decoded)
                ok = self.auth is not None and len(decoded) == 3 and \
                    decoded[1].decode() == self.auth[0] and \
                    decoded[2].decode() == self.auth[1]
                send("235 2.7.0 Authentication successful" if ok else
                     "535 5.7.8 Authentication credentials invalid")
            elif verb == "MAIL":
                nrcpt = 0
                send(self.replies["MAIL"], arg)
            elif verb == "RCPT":
                nrcpt += 1
                if self.rcpt_max is not None and nrcpt > self.rcpt_max:
                    send("452 4.5.3 Too many recipients")
                else:
                    addr = arg[3:].strip() if arg[:3].upper() == "TO:" \
                        else arg
                    send(self.replies["RCPT"], addr.strip("<>"))
            elif verb == "DATA":
                reply = self.replies["DATA"]
                if callable(reply):
                    reply = reply(arg)
                send(reply)
                text = reply if isinstance(reply, str) else reply.decode()
                if text.startswith("354"):
                    session["messages"].append(read_data())
                    send(self.replies["EOM"])
                    if self.hang_up_after is not None and \
                            len(session["messages"]) >= self.hang_up_after:
                        return
            elif verb == "RSET":
                nrcpt = 0
                send("250 2.0.0 Ok")
            elif verb == "NOOP":
                send("250 2.0.0 Ok")
            elif verb == "QUIT":
                send("221 2.0.0 Bye")
                return
            else:
                send("502 5.5.2 Command not recognized")


# A real MTA as the internal server: a private Postfix instance on a
# loopback port, with its own configuration and queue directories under
# a temporary directory (as bench/accept.sh sets one up).  It accepts
# mail from loopback for any domain and puts every message on hold, so
# that what arrived stays in its queue for the test to read.

POSTFIX = "/usr/sbin/postfix"

# Every service the accepting path and the queue manager need, nothing
# chrooted (the queue directory is not a prepared chroot).
_POSTFIX_MASTER_CF = """\
%(listen)s inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
proxywrite unix - - n - 1 proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
local     unix  - n n - - local
virtual   unix  - n n - - virtual
lmtp      unix  - - n - - lmtp
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
tlsmgr    unix  - - n 1000? 1 tlsmgr
postlog   unix-dgram n - n - 1 postlogd
"""


class PrivatePostfix:
    """Postfix on host:port, its main.cf, master.cf and queue under its
    own temporary directory; tls=(cert, key) offers STARTTLS.  Every
    accepted message goes to the hold queue.

        queue()          postqueue -j: one dict per queued message
        message(qid)     the queued message as postcat prints it
        maillog()        Postfix's log of this instance"""

    def __init__(self, port, host="127.0.0.1", tls=None,
                 hostname="postfix.test"):
        self.host = host
        self.port = port
        self.tmp = tempfile.mkdtemp(prefix="smarthostd-postfix-")
        os.chmod(self.tmp, 0o755)
        self.conf = os.path.join(self.tmp, "etc")
        self.queue_dir = os.path.join(self.tmp, "queue")
        self.data_dir = os.path.join(self.tmp, "data")
        for d in (self.conf, self.queue_dir, self.data_dir):
            os.mkdir(d)
            os.chmod(d, 0o755)
        pw = pwd.getpwnam("postfix") if _has_user("postfix") else None
        if pw is not None:
            os.chown(self.data_dir, pw.pw_uid, pw.pw_gid)
        self.logpath = os.path.join(self.tmp, "maillog")
        main = [
            "compatibility_level = 3.6",
            "queue_directory = " + self.queue_dir,
            "data_directory = " + self.data_dir,
            "mail_owner = postfix",
            "setgid_group = postdrop",
            "myhostname = " + hostname,
            "mydomain = test",
            "myorigin = $myhostname",
            "mydestination =",
            "inet_interfaces = " + host,
            "inet_protocols = ipv4",
            "mynetworks = 127.0.0.0/8",
            "relay_domains =",
            "smtpd_relay_restrictions = permit_mynetworks, reject",
            "smtpd_data_restrictions = check_client_access static:HOLD",
            "alias_maps =",
            "alias_database =",
            "local_recipient_maps =",
            "relayhost = [127.0.0.1]:2",
            "disable_dns_lookups = yes",
            "smtp_dns_support_level = disabled",
            "smtpd_peername_lookup = no",
            "in_flow_delay = 0s",
            "maillog_file = " + self.logpath,
            # the default allows only /var and /dev/stdout
            "maillog_file_prefixes = " + self.tmp,
        ]
        if tls is not None:
            main += ["smtpd_tls_security_level = may",
                     "smtpd_tls_cert_file = " + tls[0],
                     "smtpd_tls_key_file = " + tls[1],
                     "smtpd_tls_received_header = yes",
                     "smtpd_tls_loglevel = 1"]
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            f.write("\n".join(main) + "\n")
        with open(os.path.join(self.conf, "master.cf"), "w") as f:
            f.write(_POSTFIX_MASTER_CF % {"listen": "%s:%d" % (host, port)})
        self.started = False

    def _run(self, *args, check=True, timeout=60):
        r = subprocess.run(list(args), capture_output=True, text=True,
                           timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError("%s exited %d: %s%s\n%s" % (
                " ".join(args), r.returncode, r.stdout, r.stderr,
                self.maillog()[-3000:]))
        return r

    def start(self):
        if not os.access(POSTFIX, os.X_OK):
            raise AssertionError("%s is missing: make deps installs "
                                 "postfix" % POSTFIX)
        self._run(POSTFIX, "-c", self.conf, "start")
        self.started = True

        def listening():
            try:
                socket.create_connection((self.host, self.port),
                                         0.5).close()
                return True
            except OSError:
                return False
        wait_for(listening, 20, "Postfix on port %d" % self.port)
        return self

    def master_pid(self):
        try:
            with open(os.path.join(self.queue_dir, "pid",
                                   "master.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def queue(self):
        r = self._run("postqueue", "-c", self.conf, "-j")
        return [json.loads(line) for line in r.stdout.splitlines()
                if line.strip()]

    def message(self, queue_id):
        """Envelope, headers and body of a queued message (postcat)."""
        return self._run("postcat", "-c", self.conf, "-q",
                         queue_id).stdout

    def maillog(self):
        try:
            with open(self.logpath, "rb") as f:
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self):
        if not self.started:
            return
        self.started = False
        pid = self.master_pid()
        self._run(POSTFIX, "-c", self.conf, "stop", check=False)
        try:
            wait_for(lambda: pid is None or not pid_alive(pid), 10,
                     "Postfix to stop")
        except AssertionError:
            self._run(POSTFIX, "-c", self.conf, "abort", check=False)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _has_user(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


class LogOnFailure:
    """with LogOnFailure(d, tail): a failure inside the block is raised
    again as an AssertionError that ends with tail(d), the end of the
    daemon's log as the test wants it shown."""

    def __init__(self, daemon, tail):
        self.daemon = daemon
        self.tail = tail

    def __enter__(self):
        return self.daemon

    def __exit__(self, typ, e, tb):
        if e is None or not isinstance(e, Exception):
            return False
        what = str(e) if isinstance(e, AssertionError) else \
            "%s: %s" % (typ.__name__, e)
        raise AssertionError("%s\n-- smarthostd log:\n%s" % (
            what, self.tail(self.daemon))) from e


# ---------------------------------------------------------------------
# Scanning: a ClamAV signature database made by the test, and
# SpamAssassin's spamd on loopback.

EICAR = (r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!"
         r"$H+H*")
EICAR_MD5 = "44d88612fea8a8f36de82e1278abb02f"
# A made-up string that only the test database knows as a virus.
TEST_BODY_SIGNATURE = "smarthostd-test-virus-8c1f27d0e4"


def make_clamav_db(directory, ndb=()):
    """A ClamAV database in directory: EICAR's MD5 in test.hdb, EICAR's
    text and TEST_BODY_SIGNATURE (plus any (name, text) pairs in ndb)
    as body signatures in test.ndb.  The directory is made readable for
    the scan user."""
    os.makedirs(directory, exist_ok=True)
    os.chmod(directory, 0o755)
    with open(os.path.join(directory, "test.hdb"), "w") as f:
        f.write("%s:68:Eicar-Test-Signature\n" % EICAR_MD5)
    sigs = [("Eicar-Test-Signature.Body", EICAR),
            ("Smarthostd.Test.Body", TEST_BODY_SIGNATURE)] + list(ndb)
    with open(os.path.join(directory, "test.ndb"), "w") as f:
        for name, text in sigs:
            f.write("%s:0:*:%s\n" % (name, text.encode().hex()))
    for name in ("test.hdb", "test.ndb"):
        os.chmod(os.path.join(directory, name), 0o644)
    return directory


class Spamd:
    """Debian's spamd in the foreground on 127.0.0.1:port: local tests
    only (-L), no user configuration, its own empty site configuration
    and home directory.  start() raises SpamdUnavailable when spamd is
    missing or does not answer in time, for the test to skip."""

    def __init__(self, port=None, timeout=90, unix=None):
        self.port = port or free_port()
        self.unix = unix	# a unix socket to listen on as well
        self.timeout = timeout
        self.tmp = tempfile.mkdtemp(prefix="smarthostd-spamd-")
        os.chmod(self.tmp, 0o755)
        self.site = os.path.join(self.tmp, "site")
        self.home = os.path.join(self.tmp, "home")
        os.makedirs(self.site)
        os.makedirs(self.home)
        # The plugins to load come from Debian's .pre files.
        for name in os.listdir("/etc/spamassassin") if \
                os.path.isdir("/etc/spamassassin") else ():
            if name.endswith(".pre"):
                with open(os.path.join("/etc/spamassassin", name)) as src, \
                        open(os.path.join(self.site, name), "w") as dst:
                    dst.write(src.read())
        with open(os.path.join(self.site, "local.cf"), "w") as f:
            # Nothing of the network, nothing learnt between tests.
            f.write("use_bayes 0\nskip_rbl_checks 1\n"
                    "dns_available no\n")
        self.logpath = os.path.join(self.tmp, "log")
        self.proc = None

    def start(self):
        spamd = "/usr/sbin/spamd"
        if not os.access(spamd, os.X_OK):
            raise SpamdUnavailable("%s is not installed" % spamd)
        user = []
        if os.geteuid() == 0:
            os.chown(self.home, 65534, 65534)
            user = ["-u", "nobody", "-g", "nogroup"]
        self.log = open(self.logpath, "ab")
        unix = []
        if self.unix is not None:
            unix = ["--listen=%s" % self.unix, "--socketmode=0666"]
        self.proc = subprocess.Popen(
            [spamd, "-L", "-x", "--listen=127.0.0.1:%d" % self.port] +
            unix + ["--siteconfigpath=%s" % self.site,
                    "--helper-home-dir=%s" % self.home, "--syslog=stderr",
                    "--max-children=2", "--min-children=1",
                    "--pidfile=%s" % os.path.join(self.tmp, "pid")] + user,
            stdout=self.log, stderr=self.log)
        deadline = time.time() + self.timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SpamdUnavailable("spamd exited: %s" %
                                       self.logtext()[-800:])
            if self.ping():
                return self
            time.sleep(0.5)
        self.stop()
        raise SpamdUnavailable("spamd did not answer PING in %ds" %
                               self.timeout)

    def ping(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), 2) as s:
                s.sendall(b"PING SPAMC/1.5\r\n\r\n")
                return s.recv(100).startswith(b"SPAMD/")
        except OSError:
            return False

    def logtext(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        import shutil
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class SpamdUnavailable(Exception):
    pass
