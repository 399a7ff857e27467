"""The DSN that smarthostd/bounce.c builds, read by an independent parser:
Python's email package.  regress/unit/bounce_test -w FILE writes the
sample failure report (-d: the delay warning) for Alice's message to bob
(failed, 550 5.1.1), carol (delivered), dave (pending, 451 4.7.1) and erin
(failed, connection refused)."""

import email
import email.policy
import os
import re
import subprocess
import tempfile

REGRESS = os.path.dirname(os.path.abspath(__file__))
BOUNCE_TEST = os.path.join(REGRESS, "unit", "bounce_test")
BODY_MARKER = b"SECRET-BODY-TEXT"


def build_sample(delayed=False):
    if not os.access(BOUNCE_TEST, os.X_OK):
        raise AssertionError("%s not built (run make test)" % BOUNCE_TEST)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "dsn.eml")
        cmd = [BOUNCE_TEST] + (["-d"] if delayed else []) + ["-w", path]
        subprocess.run(cmd, check=True, timeout=30)
        with open(path, "rb") as f:
            raw = f.read()
    return raw, email.message_from_bytes(raw, policy=email.policy.default)


def unfold(value):
    return re.sub(r"\s+", " ", str(value)).strip()


def report_parts(msg):
    assert msg.is_multipart(), "not multipart"
    assert msg.get_content_type() == "multipart/report", \
        msg.get_content_type()
    assert msg.get_param("report-type") == "delivery-status", \
        msg.get_param("report-type")
    parts = msg.get_payload()
    types = [p.get_content_type() for p in parts]
    assert types == ["text/plain", "message/delivery-status",
                     "text/rfc822-headers"], types
    assert not msg.defects, msg.defects
    for p in parts:
        assert not p.defects, p.defects
    return parts


def recipient_blocks(status_part):
    """The per-message block and the per-recipient blocks, as dicts."""
    blocks = status_part.get_payload()
    assert len(blocks) >= 2, "no per-recipient block"
    as_dicts = [dict((k.lower(), unfold(v)) for k, v in b.items())
                for b in blocks]
    return as_dicts[0], as_dicts[1:]


def check_wire_format(raw):
    assert re.search(rb"\r(?!\n)", raw) is None, "bare CR"
    assert re.search(rb"(?<!\r)\n", raw) is None, "bare LF"
    assert all(b < 0x80 for b in raw), "8-bit byte"
    for line in raw.split(b"\r\n"):
        assert len(line) <= 998, "line of %d octets" % len(line)


def test_failure_report_is_multipart_report():
    raw, msg = build_sample()
    check_wire_format(raw)
    report_parts(msg)
    assert msg["From"].addresses[0].addr_spec == \
        "MAILER-DAEMON@relay.example.net"
    assert msg["To"].addresses[0].addr_spec == "alice@example.org"
    assert msg["Subject"] == "Undelivered Mail Returned to Sender"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["Message-ID"] == "<fedcba9876543210@relay.example.net>"
    assert msg["Date"].datetime.timestamp() == 1767225600


def test_failure_report_lists_failed_recipients_only():
    raw, msg = build_sample()
    text, status, headers = report_parts(msg)
    per_message, rcpts = recipient_blocks(status)
    assert per_message["reporting-mta"] == "dns; relay.example.net"
    assert "arrival-date" in per_message
    by_rcpt = dict((r["final-recipient"], r) for r in rcpts)
    assert sorted(by_rcpt) == ["rfc822; bob@example.com",
                               "rfc822; erin@example.com"], sorted(by_rcpt)
    bob = by_rcpt["rfc822; bob@example.com"]
    assert bob["action"] == "failed"
    assert bob["status"] == "5.1.1"
    assert bob["remote-mta"] == "dns; mx.example.com"
    assert bob["diagnostic-code"].startswith("smtp; 550 5.1.1 "), bob
    assert "User unknown in virtual mailbox table" in \
        bob["diagnostic-code"]
    erin = by_rcpt["rfc822; erin@example.com"]
    assert erin["action"] == "failed"
    assert erin["status"] == "5.0.0"
    assert "Connection refused" in erin["diagnostic-code"]
    assert "will-retry-until" not in erin
    body = text.get_content()
    assert "bob@example.com" in body and "erin@example.com" in body
    assert "dave@" not in body and "carol@" not in body


def test_failure_report_attaches_headers_not_body():
    raw, msg = build_sample()
    text, status, headers = report_parts(msg)
    attached = headers.get_content()
    assert "Subject: Quarterly figures" in attached, attached
    assert attached.startswith("Received: from mx.example.org"), attached
    assert BODY_MARKER not in raw, "the original body is in the bounce"
    assert b"Hello Bob" not in raw, "the original body is in the bounce"


def test_delay_warning_lists_pending_recipients():
    raw, msg = build_sample(delayed=True)
    check_wire_format(raw)
    text, status, headers = report_parts(msg)
    assert msg["Subject"] == "Delayed Mail (still being retried)"
    per_message, rcpts = recipient_blocks(status)
    assert [r["final-recipient"] for r in rcpts] == \
        ["rfc822; dave@example.com"], rcpts
    dave = rcpts[0]
    assert dave["action"] == "delayed"
    assert dave["status"] == "4.7.1"
    assert dave["diagnostic-code"] == \
        "smtp; 451 4.7.1 Greylisted, try again later"
    assert dave["will-retry-until"] == "Sun, 04 Jan 2026 23:00:00 +0000"
    assert "retried until" in text.get_content()
    assert BODY_MARKER not in raw
