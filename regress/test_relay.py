"""The relay engine end to end: mail accepted by the real daemon over
SMTP, queued, and delivered by its queue process to real peers on
loopback (issue 4, Tests): Postfix's smtp-sink and a private Postfix
instance as the internal server, a scripted Python server
(lib.ScriptedSmtpPeer) where a test needs per-recipient replies, TLS,
AUTH, hostile replies or a stall, and dnsmasq for the MX path.

Retries, lifetimes and the per-recipient state are read back with
smarthostctl (show queue -j, show stats -j, schedule, pause/resume
relay); bounces are captured by routing the sender's domain to a peer,
and read with Python's email package."""

import contextlib
import email
import email.policy
import json
import os
import re
import signal
import tempfile
import threading
import time

from lib import (Dnsmasq, Daemon, PostfixSmtpSink, PrivatePostfix,
                 ScriptedSmtpPeer, base_config, free_dns_port, free_port,
                 make_test_cert, pid_alive, wait_for)
from test_bounce import check_wire_format, recipient_blocks, report_parts
from test_smtp import free_ports, queued_id, send_message, session

HOSTNAME = "test.example.org"           # base_config's hostname
SENDER = "alice@example.org"
MARKER = b"BODY-MARKER-5f2c"

# Lines that need dot-stuffing, as the client sends them (stuffed) and
# as they are once unstuffed.
DOT_LINES_STUFFED = [b"..leading dot", b"...", b"..", b".. dot space"]
DOT_LINES = [line[1:] for line in DOT_LINES_STUFFED]


def message(subject="relay test"):
    """A message as sent after DATA (stuffed, CRLF, without the final
    dot), with a Message-ID, the body marker and dot lines."""
    return (b"From: Alice <alice@example.org>\r\n"
            b"To: Bob <bob@example.com>\r\n"
            b"Subject: " + subject.encode() + b"\r\n"
            b"Message-ID: <" + subject.replace(" ", "-").encode() +
            b"@example.org>\r\n"
            b"\r\n" + MARKER + b"\r\n" +
            b"\r\n".join(DOT_LINES_STUFFED) + b"\r\nlast line\r\n")


# ---------------------------------------------------------------------
# The daemon, configured to relay.

@contextlib.contextmanager
def relayd(actions, rules='match from local for any action "internal"\n',
           queue=None, extra="", resolver=None):
    """The daemon with one listener (d.port) and the given actions and
    rules.  queue options override retry-min 10m (nothing is retried on
    its own unless a test asks); resolver replaces base_config's."""
    d = Daemon()
    d.port = free_ports(1)[0]
    options = {"retry-min": "10m"}
    options.update(queue or {})
    text = extra + "listen on 127.0.0.1 port %d\n" % d.port
    text += "queue {\n%s}\n" % "".join("\t%s %s\n" % kv
                                       for kv in options.items())
    text += actions + rules
    conf = base_config(d.tmp, text)
    if resolver is not None:
        conf = conf.replace("resolver 127.0.0.1 port 1\n", resolver)
    d.write_config(conf)
    with d:
        try:
            yield d
        except Exception as e:
            what = str(e) if isinstance(e, AssertionError) else \
                "%s: %s" % (type(e).__name__, e)
            raise AssertionError("%s\n-- smarthostd log:\n%s" % (
                what, log_tail(d))) from e


NOISE = ("control client", ": connected to ", "configuration committed",
         "lost connection to", "terminating")


def log_tail(d, lines=60):
    """The end of the daemon's log without its routine lines."""
    keep = [x for x in d.logtext().splitlines()
            if not any(n in x for n in NOISE)]
    return "\n".join(keep[-lines:])


def relay_to(port, name="internal", host="127.0.0.1", scheme="smtp",
             options=""):
    return 'action "%s" relay host "%s://%s:%d" %s\n' % (
        name, scheme, host, port, options)


def submit(d, body=None, sender=SENDER, rcpts=("bob@example.com",)):
    """One message over SMTP; its queue id."""
    c = session(d)
    try:
        c.cmd("MAIL FROM:<%s>" % sender, 250, "2.1.0")
        for r in rcpts:
            c.cmd("RCPT TO:<%s>" % r, 250, "2.1.5")
        return queued_id(send_message(c, body or message()))
    finally:
        c.close()


def show_queue(d):
    return json.loads(d.ctl("-j", "show", "queue").stdout)


def queued(d, msgid):
    """The show queue entry of msgid, or None."""
    for m in show_queue(d):
        if m["id"] == msgid:
            return m
    return None


def rcpt_states(d, msgid):
    """address -> the recipient's show queue entry."""
    m = queued(d, msgid)
    assert m is not None, "%s is not in the queue:\n%s" % (msgid,
                                                            d.logtext())
    return dict((r["address"], r) for r in m["recipients"])


def stats(d):
    return json.loads(d.ctl("-j", "show", "stats").stdout)


def wait_gone(d, msgid, timeout=10):
    wait_for(lambda: queued(d, msgid) is None, timeout,
             "%s to leave the queue" % msgid)


def wait_state(d, msgid, addr, state, timeout=10, attempts=1):
    def reached():
        m = queued(d, msgid)
        if m is None:
            return None
        for r in m["recipients"]:
            if r["address"] == addr and r["state"] == state and \
                    r["attempts"] >= attempts:
                return r
        return None
    try:
        return wait_for(reached, timeout, "<%s> %s" % (addr, state))
    except AssertionError as e:
        raise AssertionError("%s; queue: %s" % (e, show_queue(d)))


def unstuff(raw):
    """The message as the peer's SMTP server reads it: CRLF lines with a
    leading dot removed."""
    lines = raw.split(b"\r\n")
    return b"\r\n".join(line[1:] if line.startswith(b".") else line
                        for line in lines)


def check_crlf_only(raw):
    assert re.search(rb"\r(?!\n)", raw) is None, "bare CR in %r" % raw
    assert re.search(rb"(?<!\r)\n", raw) is None, "bare LF in %r" % raw


def transactions(peer):
    """Every MAIL transaction a ScriptedSmtpPeer saw, in order:
    dicts with "mail" (the MAIL argument), "rcpts" (addresses) and
    "message" (raw DATA bytes, or None)."""
    out = []
    with peer.lock:
        sessions = list(peer.sessions)
    for s in sessions:
        data = 0
        cur = None
        for line in list(s["commands"]):
            verb = line.split(" ", 1)[0].upper()
            if verb == "MAIL":
                cur = {"mail": line[5:], "rcpts": [], "message": None,
                       "tls": s["tls"]}
                out.append(cur)
            elif verb == "RCPT" and cur is not None:
                m = re.match(r"(?i)TO:<([^>]*)>", line[5:])
                cur["rcpts"].append(m.group(1) if m else line[5:])
            elif verb == "DATA" and cur is not None:
                if data < len(s["messages"]):
                    cur["message"] = s["messages"][data]
                data += 1
    return out


def bounces(peer):
    """The raw (unstuffed) messages a peer received from <>."""
    return [unstuff(t["message"]) for t in transactions(peer)
            if t["mail"].upper().startswith("FROM:<>") and
            t["message"] is not None]


def parse_dsn(raw):
    check_wire_format(raw)
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    parts = report_parts(msg)
    per_message, per_rcpt = recipient_blocks(parts[1])
    return msg, parts, per_message, per_rcpt


def answer_by_local_part(answers, default="250 2.1.5 Ok"):
    """A rcpt callable for ScriptedSmtpPeer: the reply for the address's
    local part in answers (a dict the test may change), else default."""
    def rcpt(addr):
        return answers.get(addr.split("@")[0], default)
    return rcpt


_certs = {}


def certs():
    if not _certs:
        d = tempfile.mkdtemp(prefix="smarthostd-relay-certs-")
        os.chmod(d, 0o755)
        _certs["peer"] = make_test_cert(d, "peer")
        _certs["other"] = make_test_cert(d, "other", cn="other.test",
                                         san="DNS:other.test")
    return _certs


# ---------------------------------------------------------------------
# 1. Delivery: plain, STARTTLS, a real MTA.

def test_plain_delivery_to_smtp_sink_arrives_once_unstuffed():
    port = free_port()
    with PostfixSmtpSink(port) as sink, \
            relayd(relay_to(port)) as d:
        msgid = submit(d, message("plain"),
                       rcpts=("bob@example.com", "carol@example.com"))
        wait_for(lambda: sink.dumps(), 10, "the message at the sink")
        wait_gone(d, msgid)
        time.sleep(0.3)
        dumps = sink.dumps()
        st = stats(d)
    assert len(dumps) == 1, dumps
    dump = dumps[0]
    assert "X-Mail-Args: <alice@example.org>" in dump, dump
    assert "X-Rcpt-Args: <bob@example.com>\nX-Rcpt-Args: " \
           "<carol@example.com>\n" in dump, dump
    # headers intact, after the Received header smarthostd added
    assert re.search(r"\nReceived: from client\.test \(\[127\.0\.0\.1\]\)"
                     r"\n\tby test\.example\.org \(smarthostd\) with ESMTP "
                     r"id %s[;\n]" % msgid, dump), dump
    for h in ("From: Alice <alice@example.org>", "To: Bob <bob@example.com>",
              "Subject: plain", "Message-ID: <plain@example.org>"):
        assert "\n%s\n" % h in dump, (h, dump)
    body = "\n\n%s\n%s\nlast line\n" % (
        MARKER.decode(), "\n".join(x.decode() for x in DOT_LINES))
    assert body in dump, dump
    assert st["relay.delivered"] == 2 and st["relay.deferred"] == 0, st


def test_starttls_helo_and_auth_to_the_internal_server():
    cert, key = certs()["peer"]
    with ScriptedSmtpPeer(tls=(cert, key), auth=("relayuser", "s3cret")) \
            as peer:
        with tempfile.TemporaryDirectory() as tmp:
            secrets = os.path.join(tmp, "relay-secrets")
            with open(secrets, "w") as f:
                f.write("127.0.0.1 relayuser:s3cret\n")
            os.chmod(secrets, 0o600)
            actions = 'table secrets file "%s"\n' % secrets + relay_to(
                peer.port, options='tls verify ca "%s" '
                'helo "relay.example.org" auth <secrets>' % cert)
            with relayd(actions) as d:
                msgid = submit(d, message("tls"))
                wait_gone(d, msgid)
                st = stats(d)
    assert len(peer.sessions) == 1, peer.sessions
    s = peer.sessions[0]
    assert s["tls"], s
    cmds = [c.split(" ")[0].split(":")[0] for c in s["commands"]]
    assert cmds[:4] == ["EHLO", "STARTTLS", "EHLO", "AUTH"], s["commands"]
    assert s["commands"][0] == "EHLO relay.example.org", s["commands"]
    assert s["auth"] == [[b"", b"relayuser", b"s3cret"]], s["auth"]
    assert len(s["messages"]) == 1, s
    raw = s["messages"][0]
    check_crlf_only(raw)
    # stuffed on the wire, exactly once
    assert raw.endswith(b"\r\n\r\n" + MARKER + b"\r\n" +
                        b"\r\n".join(DOT_LINES_STUFFED) +
                        b"\r\nlast line\r\n"), raw
    assert b"\r\n.\r\n" not in raw, raw
    text = unstuff(raw)
    assert b"\r\nSubject: tls\r\n" in text
    assert text.endswith(b"\r\n\r\n" + MARKER + b"\r\n" +
                         b"\r\n".join(DOT_LINES) + b"\r\nlast line\r\n"), \
        text
    assert st["relay.delivered"] == 1, st


def test_tls_verify_with_the_right_ca_file_delivers():
    cert, key = certs()["peer"]
    with ScriptedSmtpPeer(tls=(cert, key)) as peer, \
            relayd(relay_to(peer.port,
                            options='tls verify ca "%s"' % cert)) as d:
        msgid = submit(d, message("verified"))
        wait_gone(d, msgid)
        log = d.logtext()
    assert peer.sessions[0]["tls"], peer.sessions
    assert len(peer.sessions[0]["messages"]) == 1, peer.sessions
    assert "verified" in log


def test_tls_verify_with_another_ca_file_defers_before_mail():
    cert, key = certs()["peer"]
    other, _ = certs()["other"]
    with ScriptedSmtpPeer(tls=(cert, key)) as peer, \
            relayd(relay_to(peer.port,
                            options='tls verify ca "%s"' % other)) as d:
        msgid = submit(d, message("unverified"))
        r = wait_state(d, msgid, "bob@example.com", "pending")
    assert r["attempts"] == 1 and r["last_error"], r
    check_stored_text(r["last_error"])
    assert not any(c.startswith("MAIL") for s in peer.sessions
                   for c in s["commands"]), peer.sessions
    assert all(not s["messages"] for s in peer.sessions), peer.sessions


def test_tls_verify_ca_file_is_per_action():
    """Two actions, each with its own CA file (smarthostd.conf(5): tls
    verify [ca file] is an option of each action): the second action's
    server, whose certificate only the first action's CA file would
    pass, must not be verified."""
    cert, key = certs()["peer"]
    other, _ = certs()["other"]
    with ScriptedSmtpPeer(tls=(cert, key)) as good, \
            ScriptedSmtpPeer(tls=(cert, key)) as bad:
        actions = (relay_to(good.port, "good",
                            options='tls verify ca "%s"' % cert) +
                   relay_to(bad.port, "bad",
                            options='tls verify ca "%s"' % other))
        rules = ('match from local for domain "good.test" action "good"\n'
                 'match from local for any action "bad"\n')
        with relayd(actions, rules) as d:
            ok = submit(d, message("verified"), rcpts=("bob@good.test",))
            nok = submit(d, message("unverified"), rcpts=("bob@bad.test",))
            wait_gone(d, ok)

            def tried():
                m = queued(d, nok)
                return m is None or m["recipients"][0]["attempts"] > 0
            wait_for(tried, 10, "an attempt at <bob@bad.test>")
            m = queued(d, nok)
    assert len(good.sessions[0]["messages"]) == 1, good.sessions
    assert all(not s["messages"] for s in bad.sessions), (
        "the server of action \"bad\" passed tls verify against action "
        "\"good\"'s CA file, not its own, and got the message")
    r = m["recipients"][0]
    assert r["state"] == "pending" and r["attempts"] == 1, r


def test_real_mta_postfix_receives_over_starttls():
    cert, key = certs()["peer"]
    port = free_port()
    with PrivatePostfix(port, tls=(cert, key)) as pf, \
            relayd(relay_to(port, scheme="smtp+tls")) as d:
        msgid = submit(d, message("to postfix"),
                       rcpts=("bob@example.com", "carol@example.com"))
        wait_gone(d, msgid, 20)
        q = wait_for(lambda: pf.queue(), 20, "the message in Postfix")
        time.sleep(0.3)
        q = pf.queue()
        text = pf.message(q[0]["queue_id"])
        log = pf.maillog()
    assert len(q) == 1, q
    assert q[0]["queue_name"] == "hold", q
    assert q[0]["sender"] == SENDER, q
    assert sorted(r["address"] for r in q[0]["recipients"]) == [
        "bob@example.com", "carol@example.com"], q
    assert "TLS connection established from" in log, log
    assert "(using TLSv1." in text and "with ESMTPS id" in text, text
    assert "helo=<test.example.org>" in log, log
    assert "\nSubject: to postfix\n" in text, text
    assert "\nMessage-ID: <to-postfix@example.org>\n" in text, text
    assert "by test.example.org (smarthostd) with ESMTP id %s" % msgid \
        in text, text
    assert "\n%s\n%s\nlast line\n" % (
        MARKER.decode(), "\n".join(x.decode() for x in DOT_LINES)) in text, \
        text


# ---------------------------------------------------------------------
# 2. Server down: deferred, then delivered after schedule.

def test_server_down_defers_then_schedule_delivers():
    port = free_port()
    with relayd(relay_to(port)) as d:
        first = submit(d, message("first"))
        second = submit(d, message("second"))
        before = time.time()
        for msgid in (first, second):
            r = wait_state(d, msgid, "bob@example.com", "pending")
            assert r["attempts"] == 1, r
            assert r["next_try"] > before + 60, (r, before)
            assert "connect to 127.0.0.1 [127.0.0.1]:%d: Connection " \
                   "refused" % port in r["last_error"], r
        st = stats(d)
        assert st["relay.deferred"] == 2 and st["relay.delivered"] == 0, st
        assert st["dest.internal/127.0.0.1:%d.deferred" % port] == 2, st
        with PostfixSmtpSink(port) as sink:
            time.sleep(0.5)
            assert sink.dumps() == [], "retried before its time"
            out = d.ctl("schedule", first).stdout
            assert out.strip() == "1 message scheduled", out
            wait_gone(d, first)
            wait_for(lambda: len(sink.dumps()) == 1, 5, "one delivery")
            r = rcpt_states(d, second)["bob@example.com"]
            assert r["state"] == "pending" and r["attempts"] == 1, r
            d.ctl("schedule", "all")
            wait_gone(d, second)
            time.sleep(0.3)
            dumps = sink.dumps()
        assert len(dumps) == 2, dumps
        assert "Subject: first\n" in dumps[0] and \
            "Subject: second\n" in dumps[1], dumps
        assert show_queue(d) == []
        st = stats(d)
        assert st["relay.delivered"] == 2 and st["relay.bounces"] == 0, st
        r = d.ctl("schedule", first, check=False)
        assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)


# ---------------------------------------------------------------------
# 3. 5xx: one DSN to the sender.

def test_5xx_bounces_one_dsn_to_the_sender():
    port = free_port()
    with PostfixSmtpSink(port, options=["-f", "RCPT", "-B",
                                        "550 5.1.1 No such user"]), \
            ScriptedSmtpPeer() as home:
        actions = relay_to(port, "remote") + relay_to(home.port, "home")
        rules = ('match from local for domain "example.org" action "home"\n'
                 'match from local for any action "remote"\n')
        with relayd(actions, rules) as d:
            msgid = submit(d, message("bounce me"),
                           rcpts=("bob@example.com", "carol@example.com"))
            wait_gone(d, msgid)
            wait_for(lambda: bounces(home), 10, "the bounce")
            time.sleep(1)
            wait_for(lambda: show_queue(d) == [], 10, "an empty queue")
            st = stats(d)
            log = d.logtext()
    found = bounces(home)
    assert len(found) == 1, found
    assert st["relay.failed"] == 2 and st["relay.bounces"] == 1, st
    t = [t for t in transactions(home) if t["message"] is not None]
    assert len(t) == 1 and t[0]["rcpts"] == [SENDER], t
    assert re.match(r"FROM:<>( |$)", t[0]["mail"]), t[0]
    raw = found[0]
    assert MARKER not in raw, "the original body is in the bounce"
    msg, parts, per_message, per_rcpt = parse_dsn(raw)
    assert "MAILER-DAEMON@test.example.org" in msg["From"], msg["From"]
    assert SENDER in msg["To"], msg["To"]
    assert msg["Auto-Submitted"] == "auto-replied", msg["Auto-Submitted"]
    assert per_message["reporting-mta"] == "dns; test.example.org", \
        per_message
    assert sorted(r["final-recipient"] for r in per_rcpt) == [
        "rfc822; bob@example.com", "rfc822; carol@example.com"], per_rcpt
    for r in per_rcpt:
        assert r["action"] == "failed", r
        assert re.match(r"5\.\d+\.\d+$", r["status"]), r
        assert "550 5.1.1 No such user" in r.get("diagnostic-code", ""), r
    headers = parts[2].get_payload()
    if not isinstance(headers, str):
        headers = str(parts[2])
    assert "Subject: bounce me" in headers, headers
    assert "Message-ID: <bounce-me@example.org>" in headers, headers
    assert "bob@example.com" in parts[0].get_content(), parts[0]
    assert "bounce" in log
    # The Status is the enhanced code the server gave (bounce.c reads it
    # from the stored reply): 550 5.1.1 -> 5.1.1, as a smtp diagnostic.
    for r in per_rcpt:
        assert r["status"] == "5.1.1", (
            "Status %s for a 550 5.1.1 reply; the block: %r" %
            (r["status"], r))
        assert r["diagnostic-code"].startswith("smtp;"), r


# ---------------------------------------------------------------------
# 4. Expiry (with a delay warning on the way).

def test_lifetime_expiry_fails_and_bounces_after_a_delay_warning():
    down = free_port()
    with ScriptedSmtpPeer() as home:
        actions = relay_to(down, "remote") + relay_to(home.port, "home")
        rules = ('match from local for domain "example.org" action "home"\n'
                 'match from local for any action "remote"\n')
        # lifetime may not be below 1m; retries every second or two
        queue = {"retry-min": "1s", "retry-max": "2s", "lifetime": "1m",
                 "delay-warning": "2s"}
        with relayd(actions, rules, queue=queue) as d:
            start = time.monotonic()
            msgid = submit(d, message("expire me"))
            wait_for(lambda: bounces(home), 15, "the delay warning")
            r = rcpt_states(d, msgid)["bob@example.com"]
            assert r["state"] == "pending", r
            wait_gone(d, msgid, 80)
            expired_after = time.monotonic() - start
            wait_for(lambda: len(bounces(home)) >= 2, 10, "the bounce")
            time.sleep(0.5)
            found = bounces(home)
            st = stats(d)
            assert show_queue(d) == [], show_queue(d)
    assert 59 <= expired_after < 75, expired_after
    assert len(found) == 2, found
    warn, fail = [parse_dsn(raw) for raw in found]
    assert "Delayed" in warn[0]["Subject"], warn[0]["Subject"]
    assert [r["action"] for r in warn[3]] == ["delayed"], warn[3]
    assert warn[3][0]["status"].startswith("4."), warn[3]
    assert "Undelivered" in fail[0]["Subject"], fail[0]["Subject"]
    assert len(fail[3]) == 1, fail[3]
    r = fail[3][0]
    assert r["final-recipient"] == "rfc822; bob@example.com", r
    assert r["action"] == "failed", r
    assert re.match(r"[45]\.\d+\.\d+$", r["status"]), r
    diag = r.get("diagnostic-code", "")
    assert "expired" in diag and "Connection refused" in diag, r
    assert st["relay.expired"] == 1 and st["relay.bounces"] == 1, st
    assert st["relay.delay_warnings"] == 1, st


# ---------------------------------------------------------------------
# 5. The null sender is never bounced.

def test_null_sender_is_never_bounced():
    port = free_port()
    with PostfixSmtpSink(port, options=["-f", "RCPT", "-B",
                                        "550 5.1.1 No such user"]), \
            ScriptedSmtpPeer() as home:
        actions = relay_to(port, "remote") + relay_to(home.port, "home")
        rules = ('match from local for domain "example.org" action "home"\n'
                 'match from local for any action "remote"\n')
        with relayd(actions, rules) as d:
            msgid = submit(d, message("from nobody"), sender="")
            wait_gone(d, msgid)
            time.sleep(1)
            st = stats(d)
            q = show_queue(d)
            log = d.logtext()
    assert q == [], q
    assert st["relay.failed"] == 1, st
    assert st["relay.bounces"] == 0, st
    assert st["queue.messages"] == 0, st
    assert "to=<bob@example.com> action=remote failed" in log, log
    assert transactions(home) == [], transactions(home)


# ---------------------------------------------------------------------
# 6. Mixed per-recipient results in one transaction.

def test_mixed_results_in_one_transaction_and_one_bounce_at_the_end():
    answers = {"bad": "550 5.1.1 <bad@example.com>: unknown user",
               "later": "451 4.2.0 <later@example.com>: try later"}
    with ScriptedSmtpPeer(rcpt=answer_by_local_part(answers)) as peer:
        with relayd(relay_to(peer.port)) as d:
            msgid = submit(d, message("mixed"), rcpts=(
                "ok@example.com", "bad@example.com", "later@example.com"))
            wait_state(d, msgid, "later@example.com", "pending")
            rs = rcpt_states(d, msgid)
            assert rs["ok@example.com"]["state"] == "delivered", rs
            assert rs["bad@example.com"]["state"] == "failed", rs
            assert "550 5.1.1" in rs["bad@example.com"]["last_error"], rs
            assert "451 4.2.0" in rs["later@example.com"]["last_error"], rs
            assert rs["later@example.com"]["attempts"] == 1, rs
            time.sleep(0.5)
            assert bounces(peer) == [], "a bounce while a rcpt is pending"
            assert stats(d)["relay.bounces"] == 0
            t = transactions(peer)
            assert len(t) == 1, t
            assert t[0]["rcpts"] == ["ok@example.com", "bad@example.com",
                                     "later@example.com"], t
            assert t[0]["message"] is not None, t
            answers["later"] = "250 2.1.5 Ok"
            d.ctl("schedule", msgid)
            wait_gone(d, msgid)
            wait_for(lambda: bounces(peer), 10, "the bounce")
            time.sleep(0.5)
            st = stats(d)
            t = transactions(peer)
    assert len(t) == 3, t
    assert t[1]["rcpts"] == ["later@example.com"], t[1]
    assert t[1]["message"] is not None
    found = bounces(peer)
    assert len(found) == 1, found
    assert t[2]["rcpts"] == [SENDER], t[2]
    msg, parts, per_message, per_rcpt = parse_dsn(found[0])
    assert [r["final-recipient"] for r in per_rcpt] == [
        "rfc822; bad@example.com"], per_rcpt
    assert per_rcpt[0]["action"] == "failed"
    text = parts[0].get_content()
    assert "ok@example.com" not in text and "later@example.com" not in \
        text, text
    assert st["relay.delivered"] == 3, st   # ok, later, the bounce
    assert st["relay.failed"] == 1 and st["relay.bounces"] == 1, st


# ---------------------------------------------------------------------
# 7. kill -9 during delivery.

def kill9_all(d):
    pids = d.pids()
    for pid in pids.values():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    d.proc.wait(15)
    wait_for(lambda: not any(pid_alive(p) for p in pids.values()), 10,
             "every smarthostd process gone")
    d.log.close()


def test_kill9_during_delivery_then_delivered_after_restart():
    stall = threading.Event()
    eoms = []

    def eom(arg):
        eoms.append(time.monotonic())
        if len(eoms) == 1:
            stall.wait(30)       # the first: no reply until released
        return "250 2.0.0 Ok: queued"
    with ScriptedSmtpPeer(eom=eom) as peer:
        with relayd(relay_to(peer.port)) as d:
            msgid = submit(d, message("kill me"))
            wait_for(lambda: eoms, 10, "the end of DATA at the peer")
            time.sleep(0.2)
            kill9_all(d)
            stall.set()
            d.start()
            wait_gone(d, msgid)
            time.sleep(0.3)
            st = stats(d)
    msgs = [t["message"] for t in transactions(peer)
            if t["message"] is not None]
    assert len(msgs) == 2, "expected the stalled copy and one more: %d" % \
        len(msgs)
    for raw in msgs:
        assert b"\r\nSubject: kill me\r\n" in raw
    assert st["relay.delivered"] == 1, st


def test_failed_recipient_never_retried_after_kill9():
    answers = {"bad": "550 5.1.1 <bad@example.com>: unknown user",
               "later": "451 4.2.0 <later@example.com>: try later"}
    with ScriptedSmtpPeer(rcpt=answer_by_local_part(answers)) as peer, \
            ScriptedSmtpPeer() as home:
        actions = relay_to(peer.port) + relay_to(home.port, "home")
        rules = ('match from local for domain "example.org" action "home"\n'
                 'match from local for any action "internal"\n')
        with relayd(actions, rules) as d:
            msgid = submit(d, message("after crash"), rcpts=(
                "bad@example.com", "later@example.com"))
            wait_state(d, msgid, "later@example.com", "pending")
            assert rcpt_states(d, msgid)["bad@example.com"]["state"] == \
                "failed"
            before = len(transactions(peer))
            kill9_all(d)
            answers["later"] = "250 2.1.5 Ok"
            answers["bad"] = "250 2.1.5 Ok"     # would now take it
            d.start()
            rs = rcpt_states(d, msgid)
            assert rs["bad@example.com"]["state"] == "failed", rs
            assert rs["later@example.com"]["state"] == "pending", rs
            d.ctl("schedule", "all")
            wait_gone(d, msgid)
            wait_for(lambda: bounces(home), 10, "the bounce")
            time.sleep(0.3)
            t = transactions(peer)[before:]
    rcpts = [r for x in t for r in x["rcpts"]]
    assert "bad@example.com" not in rcpts, t
    assert [x["rcpts"] for x in t] == [["later@example.com"]], t
    assert len(bounces(home)) == 1, bounces(home)
    per_rcpt = parse_dsn(bounces(home)[0])[3]
    assert [r["final-recipient"] for r in per_rcpt] == [
        "rfc822; bad@example.com"], per_rcpt


# ---------------------------------------------------------------------
# 8. Hostile reply text.

HOSTILE_LINES = [b"first\rX-Injected: header",
                 b"nul\x00byte and \x1b[31mescape\x1b[0m \x07bell \x7f",
                 b"A" * 900,
                 b"\xff\xfe high bytes \xc3\xa9"]


def hostile(code, enhanced):
    lines = [code + b"-" + enhanced + b" " + x for x in HOSTILE_LINES]
    return b"\r\n".join(lines) + b"\r\n" + code + b" " + enhanced + \
        b" end\r\n"


def check_stored_text(text):
    assert all(32 <= ord(c) < 127 for c in text), repr(text)
    assert len(text) <= 511, len(text)


def test_hostile_reply_text_is_stored_and_bounced_safely():
    oversize = b"".join(b"451-4.7.1 line %d \x1b[2J\r\n" % i
                        for i in range(150)) + b"451 4.7.1 end\r\n"
    with ScriptedSmtpPeer(rcpt=hostile(b"451", b"4.7.1")) as temp, \
            ScriptedSmtpPeer(rcpt=hostile(b"550", b"5.7.1")) as perm, \
            ScriptedSmtpPeer(rcpt=oversize) as huge, \
            ScriptedSmtpPeer() as home:
        actions = (relay_to(temp.port, "temp") + relay_to(perm.port, "perm")
                   + relay_to(huge.port, "huge") +
                   relay_to(home.port, "home"))
        rules = "".join('match from local for domain "%s.test" '
                        'action "%s"\n' % (x, x)
                        for x in ("temp", "perm", "huge"))
        rules += 'match from local for any action "home"\n'
        with relayd(actions, rules) as d:
            kept = submit(d, message("hostile 4xx"),
                          rcpts=("bob@temp.test",))
            big = submit(d, message("hostile oversize"),
                         rcpts=("bob@huge.test",))
            failed = submit(d, message("hostile 5xx"),
                            rcpts=("bob@perm.test",))
            r = wait_state(d, kept, "bob@temp.test", "pending")
            check_stored_text(r["last_error"])
            assert "451 4.7.1 first" in r["last_error"], r
            assert "X-Injected: header" in r["last_error"], r
            r = wait_state(d, big, "bob@huge.test", "pending")
            check_stored_text(r["last_error"])
            out = d.ctl("show", "queue").stdout
            assert "\x1b" not in out and "\x00" not in out and \
                "\r" not in out, repr(out)
            wait_gone(d, failed)
            wait_for(lambda: bounces(home), 10, "the bounce")
            log = d.logtext()
    raw = bounces(home)[0]
    assert b"\x1b" not in raw and b"\x00" not in raw and b"\x07" not in raw
    per_rcpt = parse_dsn(raw)[3]
    assert len(per_rcpt) == 1 and per_rcpt[0]["action"] == "failed"
    assert "5.7.1" in per_rcpt[0]["diagnostic-code"], per_rcpt
    # the daemon's log holds no control characters either
    for line in log.splitlines():
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", line), repr(line)


# ---------------------------------------------------------------------
# 9. The MX path.

def test_mx_first_preference_down_second_takes_the_mail():
    dns_port = free_dns_port()
    # listed highest preference number first: the order must come from
    # the preferences, not from the answer
    mx = [("mx.test", "mx2.mx.test", 20), ("mx.test", "mx1.mx.test", 10)]
    hosts = [("mx1.mx.test", "127.0.0.5", None),
             ("mx2.mx.test", "127.0.0.6", None)]
    with Dnsmasq(mx=mx, hosts=hosts, port=dns_port) as dns, \
            PostfixSmtpSink(25, host="127.0.0.6") as sink, \
            relayd('action "outbound" relay\n',
                   'match from local for any action "outbound"\n',
                   resolver=dns.resolver_line()) as d:
        msgid = submit(d, message("by mx"), rcpts=("bob@mx.test",))
        wait_gone(d, msgid)
        time.sleep(0.3)
        dumps = sink.dumps()
        log = d.logtext()
        st = stats(d)
        querylog = dns.querylog()
    assert len(dumps) == 1, dumps
    assert "X-Rcpt-Args: <bob@mx.test>" in dumps[0], dumps[0]
    assert "Subject: by mx\n" in dumps[0], dumps[0]
    assert "query[MX] mx.test" in querylog, querylog
    i = re.search(r"connect to mx1\.mx\.test \[127\.0\.0\.5\](:25)?: "
                  r"Connection refused", log)
    j = re.search(r"mx2\.mx\.test \[127\.0\.0\.6\](:25)?: said: 250", log)
    assert i and j and i.start() < j.start(), log
    assert st["dest.outbound/mx.test.delivered"] == 1, st


# ---------------------------------------------------------------------
# 10. pause/resume relay and the counters.

def test_pause_resume_relay_and_stats_counters():
    port, down, reject, home = free_port(), free_port(), free_port(), \
        free_port()
    with PostfixSmtpSink(port) as sink, \
            PostfixSmtpSink(reject, options=["-f", "RCPT", "-B",
                                             "550 5.1.1 No such user"]), \
            PostfixSmtpSink(home) as home_sink:
        actions = (relay_to(port) + relay_to(down, "down") +
                   relay_to(reject, "reject") + relay_to(home, "home"))
        rules = ('match from local for domain "down.test" action "down"\n'
                 'match from local for domain "reject.test" '
                 'action "reject"\n'
                 'match from local for domain "example.org" action "home"\n'
                 'match from local for any action "internal"\n')
        with relayd(actions, rules) as d:
            st = stats(d)
            for k in ("relay.delivered", "relay.deferred", "relay.failed",
                      "relay.bounces", "relay.paused"):
                assert st[k] == 0, (k, st)
            assert d.ctl("pause", "relay").stdout.strip() == "relay paused"
            assert stats(d)["relay.paused"] == 1
            msgid = submit(d, message("paused"))
            time.sleep(1.5)
            r = rcpt_states(d, msgid)["bob@example.com"]
            assert r["state"] == "pending" and r["attempts"] == 0, r
            assert sink.dumps() == [], sink.dumps()
            d.ctl("schedule", "all")       # paused means paused
            time.sleep(0.5)
            assert queued(d, msgid) is not None, "delivered while paused"
            assert d.ctl("resume", "relay").stdout.strip() == \
                "relay resumed"
            wait_gone(d, msgid)
            deferred = submit(d, message("deferred"),
                              rcpts=("bob@down.test",))
            wait_state(d, deferred, "bob@down.test", "pending")
            failed = submit(d, message("failed"),
                            rcpts=("bob@reject.test",))
            wait_gone(d, failed)
            wait_for(lambda: stats(d)["relay.delivered"] == 2, 10,
                     "the bounce delivered")
            st = stats(d)
            dumps = sink.dumps()
            bounce = home_sink.dumps()
    assert st["relay.paused"] == 0, st
    assert st["relay.delivered"] == 2, st    # "paused" and the bounce
    assert st["relay.deferred"] == 1 and st["relay.failed"] == 1, st
    assert st["relay.bounces"] == 1, st
    assert st["dest.internal/127.0.0.1:%d.delivered" % port] == 1, st
    assert st["dest.home/127.0.0.1:%d.delivered" % home] == 1, st
    assert st["dest.down/127.0.0.1:%d.deferred" % down] == 1, st
    assert st["dest.reject/127.0.0.1:%d.failed" % reject] == 1, st
    assert len(dumps) == 1 and "Subject: paused\n" in dumps[0], dumps
    assert len(bounce) == 1 and "X-Mail-Args: <>" in bounce[0], bounce


# ---------------------------------------------------------------------
# 11. Local delivery: maildir and aliases.

def test_maildir_delivery_writes_lf_file_with_delivered_to():
    with relayd('action "local" maildir "maildir"\n',
                'match from local for local action "local"\n') as d:
        msgid = submit(d, message("to maildir"),
                       rcpts=("root@" + HOSTNAME,))
        wait_gone(d, msgid)
        st = stats(d)
        new = os.path.join(d.state, "maildir", "new")
        names = os.listdir(new)
        assert len(names) == 1, names
        with open(os.path.join(new, names[0]), "rb") as f:
            data = f.read()
        assert os.listdir(os.path.join(d.state, "maildir", "tmp")) == []
        assert os.path.isdir(os.path.join(d.state, "maildir", "cur"))
    assert msgid in names[0], names
    assert b"\r" not in data, data
    assert data.startswith(b"Return-Path: <alice@example.org>\n"
                           b"Delivered-To: root@test.example.org\n"), data
    assert b"\nSubject: to maildir\n" in data, data
    assert data.endswith(b"\n\n" + MARKER + b"\n" +
                         b"\n".join(DOT_LINES) + b"\nlast line\n"), data
    assert st["relay.delivered"] == 1, st


def alias_delivery(rcpt, subject):
    """A message to rcpt through action "local" with the alias table
    postmaster -> root -> admin@example.org, relayed to smtp-sink; the
    sink's dump."""
    port = free_port()
    with PostfixSmtpSink(port) as sink, \
            tempfile.TemporaryDirectory() as tmp:
        aliases = os.path.join(tmp, "aliases")
        with open(aliases, "w") as f:
            f.write("# aliases(5)\npostmaster: root\n"
                    "root: admin@example.org\n")
        actions = ('table aliases file "%s"\n' % aliases +
                   'action "local" alias <aliases> relay host '
                   '"smtp://127.0.0.1:%d"\n' % port)
        with relayd(actions, 'match from local for local action "local"\n') \
                as d:
            msgid = submit(d, message(subject), rcpts=(rcpt,))
            wait_gone(d, msgid)
            wait_for(lambda: sink.dumps(), 10, "the message at the sink")
            dumps = sink.dumps()
    assert len(dumps) == 1, dumps
    assert "Subject: %s\n" % subject in dumps[0], dumps[0]
    return dumps[0]


def test_alias_sends_root_at_hostname_to_its_address():
    dump = alias_delivery("root@" + HOSTNAME, "to root")
    assert re.findall(r"X-Rcpt-Args: (.*)", dump) == [
        "<admin@example.org>"], dump


def test_alias_chain_postmaster_root_address():
    # "An address without a domain is local and is looked up again"
    dump = alias_delivery("postmaster", "to postmaster")
    assert re.findall(r"X-Rcpt-Args: (.*)", dump) == [
        "<admin@example.org>"], dump


# ---------------------------------------------------------------------
# Several messages, one connection.

def test_next_message_goes_over_the_idle_connection():
    """A message for a destination whose connection is still open and
    idle (relay.c keeps one for RELAY_IDLE seconds) goes out on it at
    once."""
    with ScriptedSmtpPeer() as peer, relayd(relay_to(peer.port)) as d:
        first = submit(d, message("first"))
        wait_gone(d, first)
        second = submit(d, message("second"))
        try:
            wait_gone(d, second, 4)
        except AssertionError:
            raise AssertionError(
                "the second message did not go out within 4s; the peer "
                "saw %r" % [s["commands"] for s in peer.sessions])
        t = transactions(peer)
    assert len(peer.sessions) == 1, peer.sessions
    assert [b"\r\nSubject: %s\r\n" % x in m["message"]
            for x, m in zip((b"first", b"second"), t)] == [True, True], t
