"""smarthostd/relay.c, the outbound SMTP client of the queue process,
against real peers on loopback: Postfix's smtp-sink, dnsmasq for the MX
path, and a scripted Python server (regress/lib.py ScriptedSmtpPeer) for
per-recipient replies, STARTTLS, AUTH and hostile replies.

regress/unit/relay_send runs the relay engine (relay*.c) and dns.c on a
libevent loop, as the queue process does, and prints one line per
recipient:
"JOB RCPT STATUS CODE ENHANCED TEXT"."""

import os
import subprocess
import tempfile
import time

from lib import (REGRESS, Dnsmasq, PostfixSmtpSink, ScriptedSmtpPeer,
                 free_dns_port, free_port, make_test_cert)

RELAY_SEND = os.path.join(REGRESS, "unit", "relay_send")
BODY = (b"From: <alice@example.org>\r\nTo: <bob@example.com>\r\n"
        b"Subject: relay test\r\n\r\nhello\r\n")

_certs = {}


def certs():
    """Two unrelated self-signed certificates, made once."""
    if not _certs:
        d = tempfile.mkdtemp(prefix="smarthostd-relay-certs-")
        _certs["peer"] = make_test_cert(d, "peer")
        _certs["other"] = make_test_cert(d, "other", cn="other.test",
                                         san="DNS:other.test")
    return _certs


class Result:
    def __init__(self, line):
        job, rcpt, status, code, enhanced, text = line.split(" ", 5)
        self.job = int(job)
        self.rcpt = rcpt
        self.status = status
        self.code = int(code)
        self.enhanced = enhanced
        self.text = text

    def __repr__(self):
        return "<%d %s %s %d %s %s>" % (self.job, self.rcpt, self.status,
                                         self.code, self.enhanced,
                                         self.text)


class Run:
    def __init__(self, proc, elapsed):
        self.proc = proc
        self.elapsed = elapsed
        self.results = []
        self.stats = {}
        for line in proc.stdout.splitlines():
            if line.startswith("stats "):
                key, _, rest = line[6:].rpartition(": ")
                self.stats[key] = dict(
                    (k, int(v)) for k, v in
                    (kv.split("=") for kv in rest.split()))
            else:
                self.results.append(Result(line))

    def by_rcpt(self):
        return dict((r.rcpt, r) for r in self.results)

    def log(self):
        return self.proc.stderr


def relay_send(*rcpts, host="127.0.0.1", port=None, body=BODY,
               sender="alice@example.org", options=(), timeout=120):
    if not os.access(RELAY_SEND, os.X_OK):
        raise AssertionError("%s is not built (make test builds it)" %
                             RELAY_SEND)
    with tempfile.NamedTemporaryFile(prefix="smarthostd-body-") as f:
        f.write(body)
        f.flush()
        args = [RELAY_SEND, "-v", "-S", "-b", f.name, "-f", sender]
        if host is not None:
            args += ["-h", host]
        if port is not None:
            args += ["-p", str(port)]
        args += list(options) + list(rcpts)
        start = time.monotonic()
        proc = subprocess.run(args, capture_output=True, text=True,
                              timeout=timeout)
        elapsed = time.monotonic() - start
    if proc.returncode != 0:
        raise AssertionError("relay_send exited %d:\n%s%s" % (
            proc.returncode, proc.stdout, proc.stderr))
    run = Run(proc, elapsed)
    if len(run.results) == 0:
        raise AssertionError("relay_send printed no results:\n%s" %
                             proc.stderr)
    return run


def expect(run, rcpt, status, code=None, enhanced=None, text=None, job=0):
    found = [r for r in run.results if r.rcpt == rcpt and r.job == job]
    assert found, "no result for %s in %r\n%s" % (rcpt, run.results,
                                                  run.log())
    r = found[0]
    assert r.status == status, "%s: %r, expected %s\n%s" % (
        rcpt, r, status, run.log())
    if code is not None:
        assert r.code == code, "%s: %r, expected code %d" % (rcpt, r, code)
    if enhanced is not None:
        assert r.enhanced == enhanced, "%s: %r, expected %s" % (
            rcpt, r, enhanced)
    if text is not None:
        assert text in r.text, "%s: %r, expected %r in the text" % (
            rcpt, r, text)
    return r


def verbs(session):
    """The commands of a session up to their colon; a last QUIT, which
    may or may not arrive before relay_send exits, left out."""
    cmds = [c.split(":")[0] for c in session["commands"]]
    return cmds[:-1] if cmds and cmds[-1] == "QUIT" else cmds


def printable(s):
    return all(32 <= ord(c) < 127 for c in s)


# smtp-sink

def test_delivered_to_smtp_sink_in_one_transaction():
    port = free_port()
    with PostfixSmtpSink(port) as sink:
        run = relay_send("bob@example.com", "carol@example.com", port=port)
        time.sleep(0.2)
        dumps = sink.dumps()
    for rcpt in ("bob@example.com", "carol@example.com"):
        expect(run, rcpt, "DELIVERED", 250, "2.0.0",
               "127.0.0.1 [127.0.0.1]:%d: said: 250" % port)
    assert len(dumps) == 1, dumps
    assert "X-Mail-Args: <alice@example.org>" in dumps[0], dumps[0]
    assert "X-Rcpt-Args: <bob@example.com>\n" \
           "X-Rcpt-Args: <carol@example.com>\n" in dumps[0], dumps[0]
    assert "Subject: relay test\n\nhello\n" in dumps[0], dumps[0]
    assert run.stats["total"]["connections"] == 1, run.stats


def test_rcpt_5xx_fails_without_data():
    port = free_port()
    with PostfixSmtpSink(port, options=["-f", "RCPT", "-B",
                                        "550 5.1.1 No such user"]) as sink:
        run = relay_send("bob@example.com", "carol@example.com", port=port)
        time.sleep(0.2)
        dumps = sink.dumps()
    for rcpt in ("bob@example.com", "carol@example.com"):
        expect(run, rcpt, "FAILED", 550, "5.1.1",
               "said: 550 5.1.1 No such user (in reply to RCPT TO)")
    assert dumps == [], dumps


def test_rcpt_4xx_defers_without_data():
    port = free_port()
    with PostfixSmtpSink(port, options=["-r", "RCPT", "-b",
                                        "451 4.3.0 Try again later"]) as sink:
        run = relay_send("bob@example.com", port=port)
        time.sleep(0.2)
        dumps = sink.dumps()
    expect(run, "bob@example.com", "DEFERRED", 451, "4.3.0",
           "said: 451 4.3.0 Try again later (in reply to RCPT TO)")
    assert dumps == [], dumps


def test_eom_5xx_fails_and_4xx_defers():
    port = free_port()
    with PostfixSmtpSink(port, options=["-f", ".", "-B",
                                        "554 5.7.1 Message refused"]):
        run = relay_send("bob@example.com", port=port)
    expect(run, "bob@example.com", "FAILED", 554, "5.7.1",
           "(in reply to end of DATA)")
    port = free_port()
    with PostfixSmtpSink(port, options=["-r", ".", "-b",
                                        "452 4.3.1 Disk full"]):
        run = relay_send("bob@example.com", port=port)
    expect(run, "bob@example.com", "DEFERRED", 452, "4.3.1")


def test_server_down_defers():
    port = free_port()
    run = relay_send("bob@example.com", port=port)
    expect(run, "bob@example.com", "DEFERRED", 0, "4.4.1",
           "connect to 127.0.0.1 [127.0.0.1]:%d: Connection refused" % port)
    assert run.stats["total"]["connect_failures"] == 1, run.stats


def test_disconnect_after_data_defers():
    port = free_port()
    with PostfixSmtpSink(port, options=["-q", "."]):
        run = relay_send("bob@example.com", port=port)
    expect(run, "bob@example.com", "DEFERRED", 0, "4.4.2",
           "connection closed by the server while waiting for the reply "
           "to end of DATA")


def test_8bitmime_and_size_parameters_when_offered():
    port = free_port()
    body = BODY + "caf\u00e9\r\n".encode()
    with PostfixSmtpSink(port) as sink:
        run = relay_send("bob@example.com", port=port, body=body,
                         options=["-8"])
        time.sleep(0.2)
        dumps = sink.dumps()
    expect(run, "bob@example.com", "DELIVERED")
    # smtp-sink offers 8BITMIME but not SIZE
    assert "X-Mail-Args: <alice@example.org> BODY=8BITMIME\n" in dumps[0], \
        dumps[0]
    with ScriptedSmtpPeer(extensions=["SIZE 1000"]) as peer:
        run = relay_send("bob@example.com", port=peer.port, body=body,
                         options=["-8"])
        big = relay_send("bob@example.com", port=peer.port,
                         body=body * 20)
    expect(run, "bob@example.com", "DELIVERED")
    assert peer.sessions[0]["commands"][1] == \
        "MAIL FROM:<alice@example.org> SIZE=%d" % len(body), peer.sessions
    expect(big, "bob@example.com", "FAILED", 0, "5.3.4",
           "message of %d octets exceeds the server's limit of 1000" %
           (len(body) * 20))
    assert verbs(peer.sessions[1]) == ["EHLO [127.0.0.1]"]


def test_null_sender_is_sent_as_empty_path():
    port = free_port()
    with PostfixSmtpSink(port) as sink:
        run = relay_send("bob@example.com", port=port, sender="")
        time.sleep(0.2)
        dumps = sink.dumps()
    expect(run, "bob@example.com", "DELIVERED")
    assert "X-Mail-Args: <>" in dumps[0], dumps[0]


def test_jobs_share_one_connection_per_destination():
    port = free_port()
    with PostfixSmtpSink(port) as sink:
        run = relay_send("bob@example.com", port=port,
                         options=["-n", "20", "-l", "10,1"])
        time.sleep(0.3)
        dumps = sink.dumps()
    for job in range(20):
        expect(run, "bob@example.com", "DELIVERED", job=job)
    st = run.stats["total"]
    assert st["connections"] == 1 and st["messages"] == 20, st
    assert len(dumps) == 20


def test_destination_limit_bounds_parallel_connections():
    port = free_port()
    with PostfixSmtpSink(port, options=["-w", "1"]):
        run = relay_send("bob@example.com", port=port,
                         options=["-n", "12", "-l", "10,3"])
    for job in range(12):
        expect(run, "bob@example.com", "DELIVERED", job=job)
    st = run.stats["total"]
    assert st["connections"] == 3 and st["messages"] == 12, st
    # 12 messages, 3 at a time, each waiting a second for its 354
    assert run.elapsed >= 3.5, run.elapsed


def test_idle_connection_quits_after_a_few_seconds():
    with ScriptedSmtpPeer() as peer:
        run = relay_send("bob@example.com", port=peer.port,
                         options=["-w", "8"])
    expect(run, "bob@example.com", "DELIVERED")
    assert peer.sessions[0]["commands"][-1] == "QUIT", peer.sessions
    assert run.stats["total"]["active"] == 0, run.stats


def test_job_requeued_when_reused_connection_was_closed():
    with ScriptedSmtpPeer(hang_up_after=1) as peer:
        run = relay_send("bob@example.com", port=peer.port,
                         options=["-n", "3", "-l", "1,1"])
    for job in range(3):
        expect(run, "bob@example.com", "DELIVERED", job=job)
    assert [len(s["messages"]) for s in peer.sessions] == [1, 1, 1], \
        peer.sessions
    assert "goes back to the queue" in run.log(), run.log()


# The scripted peer: what smtp-sink cannot do

def test_mixed_rcpt_results_in_one_transaction():
    def rcpt(addr):
        local = addr.split("@")[0]
        return {"perm": "550 5.1.1 <%s>: unknown user" % addr,
                "temp": "451 4.7.1 <%s>: greylisted" % addr,
                "full": "552 5.2.2 <%s>: mailbox full" % addr}.get(
                    local, "250 2.1.5 Ok")
    with ScriptedSmtpPeer(rcpt=rcpt) as peer:
        run = relay_send("ok@example.com", "perm@example.com",
                         "temp@example.com", "ok2@example.com",
                         "full@example.com", port=peer.port)
    expect(run, "ok@example.com", "DELIVERED", 250, "2.0.0",
           "said: 250 2.0.0 Ok: queued (in reply to end of DATA)")
    expect(run, "ok2@example.com", "DELIVERED", 250)
    expect(run, "perm@example.com", "FAILED", 550, "5.1.1",
           "<perm@example.com>: unknown user (in reply to RCPT TO)")
    expect(run, "temp@example.com", "DEFERRED", 451, "4.7.1",
           "greylisted")
    expect(run, "full@example.com", "FAILED", 552, "5.2.2")
    assert len(peer.sessions) == 1
    cmds = verbs(peer.sessions[0])
    assert cmds == ["EHLO [127.0.0.1]", "MAIL FROM", "RCPT TO", "RCPT TO",
                    "RCPT TO", "RCPT TO", "RCPT TO", "DATA"], cmds
    assert len(peer.sessions[0]["messages"]) == 1


def test_no_data_when_every_rcpt_refused_then_rset_before_next():
    with ScriptedSmtpPeer(rcpt="550 5.1.1 unknown user") as peer:
        run = relay_send("bob@example.com", port=peer.port,
                         options=["-n", "2", "-l", "1,1"])
    expect(run, "bob@example.com", "FAILED", 550, job=0)
    expect(run, "bob@example.com", "FAILED", 550, job=1)
    cmds = verbs(peer.sessions[0])
    assert cmds == ["EHLO [127.0.0.1]", "MAIL FROM", "RCPT TO", "RSET",
                    "MAIL FROM", "RCPT TO"], cmds


def test_mail_from_refused_fails_every_rcpt():
    with ScriptedSmtpPeer(mail="553 5.7.1 Sender not allowed") as peer:
        run = relay_send("bob@example.com", "carol@example.com",
                         port=peer.port)
    for rcpt in ("bob@example.com", "carol@example.com"):
        expect(run, rcpt, "FAILED", 553, "5.7.1",
               "(in reply to MAIL FROM)")
    assert not any(c == "DATA" for c in peer.sessions[0]["commands"])


def test_helo_when_ehlo_refused():
    with ScriptedSmtpPeer(ehlo="502 5.5.2 Command not recognized") as peer:
        run = relay_send("bob@example.com", port=peer.port, options=[
            "-H", "relay.example.org", "-8"])
    expect(run, "bob@example.com", "DELIVERED")
    cmds = peer.sessions[0]["commands"]
    assert cmds[:3] == ["EHLO relay.example.org", "HELO relay.example.org",
                        "MAIL FROM:<alice@example.org>"], cmds


def test_452_rcpts_go_in_a_further_transaction():
    rcpts = ["user%d@example.com" % i for i in range(250)]
    with ScriptedSmtpPeer(rcpt_max=100) as peer:
        run = relay_send(*rcpts, port=peer.port)
    for r in rcpts:
        expect(run, r, "DELIVERED", 250)
    assert len(peer.sessions) == 1
    assert len(peer.sessions[0]["messages"]) == 3
    # 250 RCPTs (150 of them 452), again 150 (50 of them 452), then 50
    assert sum(1 for c in peer.sessions[0]["commands"]
               if c.startswith("RCPT")) == 250 + 150 + 50


def test_dot_stuffing_and_crlf_only_on_output():
    body = (b"Subject: dots\r\n\r\n.leading dot\r\n..two dots\r\n.\r\n"
            b"x\r\n.\r\nbare LF\nbare CR\rCR CR LF\r\r\nend without CRLF")
    with ScriptedSmtpPeer() as peer:
        run = relay_send("bob@example.com", port=peer.port, body=body)
    expect(run, "bob@example.com", "DELIVERED")
    raw = peer.sessions[0]["messages"][0]
    assert raw == (b"Subject: dots\r\n\r\n..leading dot\r\n...two dots\r\n"
                   b"..\r\nx\r\n..\r\nbare LF\r\nbare CR\r\nCR CR LF\r\n"
                   b"\r\nend without CRLF\r\n"), raw
    # every CR is followed by LF, every LF preceded by CR
    assert raw.count(b"\r") == raw.count(b"\n") == raw.count(b"\r\n")
    assert "bare CR or LF in the body sent as CRLF" in run.log()


def test_empty_and_large_bodies():
    big = b"".join(b"%05d " % i + b"x" * 70 + b"\r\n" for i in range(40000))
    with ScriptedSmtpPeer() as peer:
        relay_send("bob@example.com", port=peer.port, body=b"")
        run = relay_send("bob@example.com", port=peer.port,
                         body=b".\r\n" + big)
    expect(run, "bob@example.com", "DELIVERED")
    assert peer.sessions[0]["messages"][0] == b""
    assert peer.sessions[1]["messages"][0] == b"..\r\n" + big


def test_crlf_and_dots_across_the_relays_64k_chunks():
    # The relay copies the body 64 KB at a time: a CRLF split by that
    # boundary stays one line end, and a dot right after it is stuffed.
    chunk = 64 * 1024
    first = b"x" * (chunk - 1) + b"\r"
    body = first + b"\n.dot after the boundary\r\n" + \
        b"y" * (chunk - 3) + b"\r\n.\r\nend\r\n"
    with ScriptedSmtpPeer() as peer:
        run = relay_send("bob@example.com", port=peer.port, body=body)
    expect(run, "bob@example.com", "DELIVERED")
    raw = peer.sessions[0]["messages"][0]
    assert raw == (first + b"\n..dot after the boundary\r\n" +
                   b"y" * (chunk - 3) + b"\r\n..\r\nend\r\n"), \
        raw[chunk - 8:chunk + 40]
    assert "bare CR or LF" not in run.log()


def test_starttls_used_when_offered():
    cert, key = certs()["peer"]
    with ScriptedSmtpPeer(tls=(cert, key)) as peer:
        run = relay_send("bob@example.com", port=peer.port)
    expect(run, "bob@example.com", "DELIVERED")
    s = peer.sessions[0]
    assert s["tls"] and len(s["messages"]) == 1
    assert s["commands"][:3] == ["EHLO [127.0.0.1]", "STARTTLS",
                                 "EHLO [127.0.0.1]"], s["commands"]


def test_smtp_tls_without_starttls_defers():
    port = free_port()
    with PostfixSmtpSink(port) as sink:
        run = relay_send("bob@example.com", port=port,
                         options=["-s", "smtp+tls"])
        time.sleep(0.2)
        dumps = sink.dumps()
    expect(run, "bob@example.com", "DEFERRED", 0, "4.7.4",
           "TLS is required, but the server does not offer STARTTLS")
    assert dumps == []


def test_tls_verify_checks_certificate_and_name():
    cert, key = certs()["peer"]
    other, _ = certs()["other"]
    with ScriptedSmtpPeer(tls=(cert, key)) as peer:
        ok = relay_send("bob@example.com", port=peer.port,
                        options=["-V", "-c", cert])
        bad_ca = relay_send("bob@example.com", port=peer.port,
                            options=["-V", "-c", other])
    expect(ok, "bob@example.com", "DELIVERED")
    r = expect(bad_ca, "bob@example.com", "DEFERRED", 0, "4.7.5",
               "TLS handshake failed")
    assert "verif" in r.text, r
    # only the verified session carried mail; no plaintext fallback
    assert [len(s["messages"]) for s in peer.sessions] == [1, 0], \
        peer.sessions
    # the right CA, but its certificate names other.test, not 127.0.0.1
    other_cert, other_key = certs()["other"]
    with ScriptedSmtpPeer(tls=(other_cert, other_key)) as peer:
        bad_name = relay_send("bob@example.com", port=peer.port,
                              options=["-V", "-c", other_cert])
    r = expect(bad_name, "bob@example.com", "DEFERRED", 0, "4.7.5",
               "TLS handshake failed")
    assert "127.0.0.1" in r.text, r
    assert peer.sessions[0]["messages"] == []


def test_opportunistic_tls_failure_falls_back_to_plaintext():
    # STARTTLS offered, but the handshake fails (the "certificate" is
    # garbage on the server side): the same host again without TLS.
    cert, key = certs()["peer"]
    with ScriptedSmtpPeer(tls=(cert, key)) as peer:
        import ssl

        class Broken:
            def wrap_socket(self, conn, server_side):
                conn.sendall(b"this is not TLS\r\n")
                raise ssl.SSLError("broken on purpose")
        peer.ctx = Broken()
        run = relay_send("bob@example.com", port=peer.port)
    expect(run, "bob@example.com", "DELIVERED")
    assert len(peer.sessions) == 2
    assert "STARTTLS" not in peer.sessions[1]["commands"]
    assert len(peer.sessions[1]["messages"]) == 1


def test_smtps_implicit_tls():
    cert, key = certs()["peer"]
    with ScriptedSmtpPeer(tls=(cert, key), implicit_tls=True) as peer:
        run = relay_send("bob@example.com", port=peer.port,
                         options=["-s", "smtps", "-V", "-c", cert])
    expect(run, "bob@example.com", "DELIVERED")
    assert peer.sessions[0]["tls"]
    assert "STARTTLS" not in peer.sessions[0]["commands"]


def test_auth_plain_only_over_verified_tls():
    cert, key = certs()["peer"]
    verified = ["-V", "-c", cert]
    with ScriptedSmtpPeer(tls=(cert, key), auth=("relay", "s3cret")) as peer:
        run = relay_send("bob@example.com", port=peer.port,
                         options=["-a", "relay:s3cret"] + verified)
        bad = relay_send("bob@example.com", port=peer.port,
                         options=["-a", "relay:wrong"] + verified)
    expect(run, "bob@example.com", "DELIVERED")
    assert peer.sessions[0]["auth"] == [[b"", b"relay", b"s3cret"]]
    expect(bad, "bob@example.com", "DEFERRED", 535, "4.7.8",
           "said: 535 5.7.8 Authentication credentials invalid")
    # Opportunistic TLS, unchecked: whoever answers gets no password.
    with ScriptedSmtpPeer(tls=(cert, key), auth=("relay", "s3cret")) as peer:
        run = relay_send("bob@example.com", port=peer.port,
                         options=["-a", "relay:s3cret"])
    expect(run, "bob@example.com", "DEFERRED", 0, "4.7.0",
           "no verified TLS, so no AUTH")
    assert not any(c.startswith("AUTH")
                   for s in peer.sessions for c in s["commands"])
    with ScriptedSmtpPeer(auth=("relay", "s3cret")) as peer:
        run = relay_send("bob@example.com", port=peer.port,
                         options=["-a", "relay:s3cret"])
    expect(run, "bob@example.com", "DEFERRED")
    assert not any(c.startswith("AUTH")
                   for s in peer.sessions for c in s["commands"])


def test_greeting_timeout_defers():
    with ScriptedSmtpPeer(greeting=None) as peer:
        run = relay_send("bob@example.com", port=peer.port,
                         options=["-T", "2"])
    expect(run, "bob@example.com", "DEFERRED", 0, "4.4.2",
           "timeout waiting for the reply to the greeting")
    assert run.elapsed < 10, run.elapsed


# Hostile replies (CVE-2020-8794 class)

def test_hostile_reply_text_is_stored_clean():
    evil = (b"550-5.1.1 first\rX-Injected: header\r\n"
            b"550-5.1.1 nul\x00byte and \x1b[31mescape\x1b[0m\r\n"
            b"550-5.1.1 " + b"A" * 900 + b"\r\n"
            b"550 5.1.1 \xff\xfe high bytes\r\n")
    with ScriptedSmtpPeer(rcpt=evil) as peer:
        run = relay_send("bob@example.com", "carol@example.com",
                         port=peer.port)
    for rcpt in ("bob@example.com", "carol@example.com"):
        r = expect(run, rcpt, "FAILED", 550, "5.1.1")
        assert printable(r.text), repr(r.text)
        assert len(r.text) <= 511, len(r.text)
        assert "X-Injected: header" in r.text   # on the same line, inert
        assert r.text.endswith("(in reply to RCPT TO)"), r.text
    assert len(peer.sessions) == 1


def test_oversize_multiline_reply_is_a_protocol_error():
    many = b"".join(b"250-line %d\r\n" % i for i in range(150)) + \
        b"250 end\r\n"
    with ScriptedSmtpPeer(rcpt=many) as peer:
        run = relay_send("bob@example.com", port=peer.port)
    expect(run, "bob@example.com", "DEFERRED", 0, "4.4.2",
           "reply longer than 100 lines or 8192 octets")
    assert peer.sessions[0]["messages"] == []


def test_overlong_reply_line_is_a_protocol_error():
    with ScriptedSmtpPeer(greeting=b"220 " + b"x" * 2000 + b"\r\n") as peer:
        run = relay_send("bob@example.com", port=peer.port)
    expect(run, "bob@example.com", "DEFERRED", 0, "4.4.2",
           "reply line longer than 1000 octets")


def test_malformed_and_mixed_code_replies_are_protocol_errors():
    with ScriptedSmtpPeer(mail=b"250-ok\r\n550 no\r\n") as peer:
        run = relay_send("bob@example.com", port=peer.port)
    expect(run, "bob@example.com", "DEFERRED", 0, "4.4.2",
           "multi-line reply with mixed codes")
    with ScriptedSmtpPeer(rcpt=b"OK fine\r\n") as peer:
        run = relay_send("bob@example.com", port=peer.port)
    expect(run, "bob@example.com", "DEFERRED", 0, "4.4.2",
           "malformed reply line")


def test_early_eom_reply_is_not_taken_as_delivery():
    big = b"x" * 70 + b"\r\n"
    with ScriptedSmtpPeer(data=b"354 go ahead\r\n250 2.0.0 too early\r\n") \
            as peer:
        run = relay_send("bob@example.com", port=peer.port,
                         body=big * 20000)
    expect(run, "bob@example.com", "DEFERRED", 0, "4.4.2",
           "unexpected reply from the server before the end of the message")


def test_data_after_starttls_reply_is_refused():
    cert, key = certs()["peer"]
    injected = b"220 2.0.0 Ready\r\n250 2.1.0 injected\r\n"
    with ScriptedSmtpPeer(tls=(cert, key), starttls_reply=injected) as peer:
        run = relay_send("bob@example.com", port=peer.port,
                         options=["-s", "smtp+tls"])
    expect(run, "bob@example.com", "DEFERRED", 0, "4.4.2",
           "data after the reply to STARTTLS")
    assert peer.sessions[0]["messages"] == []


# The MX path, with dnsmasq

def test_next_mx_tried_when_first_is_down_or_refuses():
    port = free_port()
    dns_port = free_dns_port()
    mx = [("mx.test", "mx1.mx.test", 10), ("mx.test", "mx2.mx.test", 20),
          ("mx.test", "mx3.mx.test", 30)]
    hosts = [("mx1.mx.test", "127.0.0.2", None),
             ("mx2.mx.test", "127.0.0.3", None),
             ("mx3.mx.test", "127.0.0.1", None)]
    with Dnsmasq(mx=mx, hosts=hosts, port=dns_port), \
            ScriptedSmtpPeer(host="127.0.0.3", port=port,
                             greeting="554 5.7.1 go away") as refuser, \
            PostfixSmtpSink(port) as sink:
        run = relay_send("bob@mx.test", host=None, port=port,
                         options=["-r", "127.0.0.1:%d" % dns_port])
        time.sleep(0.2)
        dumps = sink.dumps()
    r = expect(run, "bob@mx.test", "DELIVERED", 250)
    assert r.text.startswith("mx3.mx.test [127.0.0.1]:%d: said: 250" % port)
    assert "connect to mx1.mx.test [127.0.0.2]:%d: Connection refused" % \
        port in run.log()
    assert "mx2.mx.test [127.0.0.3]:%d: said: 554 5.7.1 go away" % port \
        in run.log()
    assert len(refuser.sessions) == 1 and len(dumps) == 1


def test_all_mx_down_defers_with_last_error():
    port = free_port()
    dns_port = free_dns_port()
    mx = [("down.test", "a.down.test", 10), ("down.test", "b.down.test", 20)]
    hosts = [("a.down.test", "127.0.0.2", None),
             ("b.down.test", "127.0.0.3", None)]
    with Dnsmasq(mx=mx, hosts=hosts, port=dns_port):
        run = relay_send("bob@down.test", "carol@down.test", host=None,
                         port=port,
                         options=["-r", "127.0.0.1:%d" % dns_port])
    for rcpt in ("bob@down.test", "carol@down.test"):
        expect(run, rcpt, "DEFERRED", 0, "4.4.1",
               "connect to b.down.test [127.0.0.3]:%d: Connection refused"
               % port)


def test_dns_answers_decide_failed_or_deferred():
    dns_port = free_dns_port()
    with Dnsmasq(rr=[("nullmx.test", 15, "0000" + "00")], port=dns_port):
        opts = ["-r", "127.0.0.1:%d" % dns_port]
        null = relay_send("bob@nullmx.test", host=None, options=opts)
        nx = relay_send("bob@nosuch.test", host=None, options=opts)
        refused = relay_send("bob@example.org", host=None, options=opts)
        relayhost = relay_send("bob@example.org", host="nosuch.test",
                               options=opts)
    expect(null, "bob@nullmx.test", "FAILED", 0, "5.1.2",
           "domain nullmx.test does not accept mail")
    expect(nx, "bob@nosuch.test", "FAILED", 0, "5.1.2")
    expect(refused, "bob@example.org", "DEFERRED", 0, "4.4.3",
           "DNS lookup of example.org failed")
    # a relay host that does not resolve is kept for the admin to fix
    expect(relayhost, "bob@example.org", "DEFERRED", 0, "4.4.4")


def test_invalid_domain_fails_at_once_without_dns():
    # smtp refuses such a domain already; the relay must not defer it
    # for days if one ever reaches it.  The resolver port is closed.
    run = relay_send("bob@a-.example", host=None,
                     options=["-r", "127.0.0.1:1"])
    expect(run, "bob@a-.example", "FAILED", 0, "5.1.2",
           "invalid domain name a-.example")
    assert run.elapsed < 5, run.elapsed
