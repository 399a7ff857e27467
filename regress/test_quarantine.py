"""The quarantine (issue 6): messages the scanner holds are stored in
queue.mdb like any other but never relayed, expired or bounced until
smarthostctl releases them (then relayed as they would have been) or
deletes them, or quarantine-expire has passed and the queue deletes
them itself.  show quarantine lists them, show queue marks them, show
stats counts them."""

import contextlib
import json
import os
import pwd
import re
import smtplib
import subprocess
import time

from lib import (SMARTHOSTCTL, Daemon, ScriptedSmtpPeer, base_config,
                 free_port, queue_config, queue_id_of, smtp_message,
                 smtp_send, wait_for)
from test_control import T, StandIn, ctl_result
from test_relay import kill9_all, log_tail, transactions

NOBODY = "nobody"


def ctl(*args):
    return subprocess.run([SMARTHOSTCTL] + list(args), capture_output=True,
                          text=True, timeout=30)


def show(d, what):
    return json.loads(d.ctl("-j", "show", what).stdout)


def stats(d):
    return json.loads(d.ctl("-j", "show", "stats").stdout)


# Commands, without a quarantined message.

def test_quarantine_commands_are_usage_errors_when_malformed():
    for args, why in [(["quarantine"], "missing argument"),
                      (["quarantine", "release"], "missing argument"),
                      (["quarantine", "delete"], "missing argument"),
                      (["quarantine", "release", "all"],
                       "invalid message id"),
                      (["quarantine", "delete", "0123456789ABCDEF"],
                       "invalid message id"),
                      (["quarantine", "keep", "0123456789abcdef"],
                       "unknown argument"),
                      (["quarantine", "release", "0123456789abcdef", "x"],
                       "too many arguments"),
                      (["show", "quarantine", "x"], "too many arguments")]:
        r = ctl("-s", "/nonexistent/sock", *args)
        assert r.returncode == 2, (args, r.returncode, r.stderr)
        assert why in r.stderr, (args, r.stderr)


def test_quarantine_commands_by_prefix_and_sh_q_still_show_queue():
    msgid = "0123456789abcdef"
    for args, request in [
            (["sh", "q"], ("IMSG_CTL_SHOW_QUEUE", b"")),
            (["sh", "qu"], ("IMSG_CTL_SHOW_QUEUE", b"")),
            (["sh", "qua"], ("IMSG_CTL_SHOW_QUARANTINE", b"")),
            (["show", "quarantine"], ("IMSG_CTL_SHOW_QUARANTINE", b"")),
            (["q", "r", msgid], ("IMSG_CTL_QUARANTINE_RELEASE",
                                 msgid.encode() + b"\0")),
            (["quarantine", "delete", msgid],
             ("IMSG_CTL_QUARANTINE_DELETE", msgid.encode() + b"\0"))]:
        s = StandIn([(T["IMSG_CTL_FAIL"], ctl_result("stand-in", False))])
        r = s.ctl(*args)
        assert r.returncode == 1 and "stand-in" in r.stderr, (args, r)
        assert s.request == (T[request[0]], request[1]), (args, s.request)


def test_release_and_delete_refuse_unknown_and_unquarantined_ids():
    port = free_port()
    with Daemon(queue_config(port)) as d:
        code, text = smtp_send(port, smtp_message("not held"))
        assert code == 250, text
        msgid = queue_id_of(text)
        for verb in ("release", "delete"):
            r = d.ctl("quarantine", verb, msgid, check=False)
            assert r.returncode == 1, r
            assert "message %s is not quarantined" % msgid in r.stderr, r
            r = d.ctl("-j", "quarantine", verb, "0123456789abcdef",
                      check=False)
            assert r.returncode == 1, r
            assert json.loads(r.stdout) == {
                "ok": False, "message": "no such message: 0123456789abcdef"}
        assert show(d, "quarantine") == []
        assert d.ctl("show", "quarantine").stdout == ""
        q = show(d, "queue")
        assert [(m["id"], m["quarantined"]) for m in q] == [(msgid, False)]
        assert "quarantined" not in d.ctl("show", "queue").stdout
        st = stats(d)
        assert st["queue.quarantined"] == 0, st
        assert st["queue.quarantine_released"] == 0, st
        assert st["queue.quarantine_deleted"] == 0, st
        assert st["queue.messages"] == 1, st


def test_quarantine_commands_need_privilege_and_are_logged():
    nobody = pwd.getpwnam(NOBODY).pw_uid
    msgid = "0123456789abcdef"
    with Daemon() as d:
        os.chmod(d.tmp, 0o755)
        gid = os.stat(d.sock).st_gid

        def as_nobody():
            os.setgroups([])
            os.setgid(gid)      # the socket's group may connect
            os.setuid(nobody)
        for verb in ("release", "delete"):
            r = subprocess.run([SMARTHOSTCTL, "-s", d.sock, "quarantine",
                                verb, msgid], capture_output=True,
                               text=True, timeout=30, preexec_fn=as_nobody)
            assert r.returncode == 1, r
            assert "permission denied" in r.stderr, r
        # Looking needs no privilege, as show queue does not.
        r = subprocess.run([SMARTHOSTCTL, "-s", d.sock, "show",
                            "quarantine"], capture_output=True, text=True,
                           timeout=30, preexec_fn=as_nobody)
        assert r.returncode == 0 and r.stdout == "", r
        d.ctl("quarantine", "release", msgid, check=False)
        d.wait_log("quarantine release %s requested by uid 0" % msgid)


# The real flow: the scanner quarantines at a spam score of 0.5, and a
# bare HELO scores 1 (the built-in HELO_BARE rule), so a message from
# a client that says "EHLO client" is held; relayed mail goes to a
# scripted peer, where a message that arrives is seen.

EICAR_MD5 = "44d88612fea8a8f36de82e1278abb02f:68:Eicar-Test-Signature\n"


def scand_config(d, peer, queue=""):
    """scand()'s configuration, with more queue options."""
    return base_config(d.tmp,
        "listen on 127.0.0.1 port %d\n"
        "queue { retry-min 10m %s}\n"
        "action \"inbound\" relay host \"smtp://127.0.0.1:%d\" scan\n"
        "match for any action \"inbound\"\n"
        "scan {\n"
        "\tclamav database \"%s\"\n"
        "\tspam tag 0.1 reject 50 quarantine 0.5\n"
        "}\n" % (d.port, queue, peer.port, os.path.join(d.tmp, "clamav")))


@contextlib.contextmanager
def scand(peer, queue=""):
    d = Daemon()
    d.port = free_port()
    db = os.path.join(d.tmp, "clamav")
    os.mkdir(db)
    with open(os.path.join(db, "test.hdb"), "w") as f:
        f.write(EICAR_MD5)
    os.chmod(d.tmp, 0o755)
    os.chmod(db, 0o755)
    os.chmod(os.path.join(db, "test.hdb"), 0o644)
    d.write_config(scand_config(d, peer, queue))
    with d:
        try:
            scanner_ready(d)
            yield d
        except Exception as e:
            raise AssertionError("%s\n-- smarthostd log:\n%s" % (
                e, log_tail(d))) from e


def scanner_ready(d):
    """The scan process loads its database after it starts; until then
    a message gets 451."""
    wait_for(lambda: stats(d).get("scan.signatures", 0) > 0, 30,
             "the scanner's database")


def send(d, subject, helo="client", count=1):
    """Messages from a client that says EHLO helo, in one session: the
    queue id of one, or a list of count ids."""
    ids = []
    c = smtplib.SMTP("127.0.0.1", d.port, timeout=30)
    try:
        c.ehlo(helo)
        for _ in range(count):
            assert c.mail("alice@example.org")[0] == 250
            assert c.rcpt("bob@example.com")[0] == 250
            code, text = c.data(smtp_message(subject).encode())
            assert code == 250, (code, text)
            ids.append(queue_id_of(text.decode()))
    finally:
        c.quit()
    return ids[0] if count == 1 else ids


def delivered(peer, subject):
    return [t for t in transactions(peer) if t["message"] is not None and
            ("Subject: %s\r\n" % subject).encode() in t["message"]]


def held(d):
    return [m["id"] for m in show(d, "quarantine")]


def test_quarantined_message_is_listed_marked_and_never_relayed():
    with ScriptedSmtpPeer() as peer, scand(peer) as d:
        msgid = send(d, "held")
        assert held(d) == [msgid]
        q = show(d, "queue")
        assert [(m["id"], m["quarantined"]) for m in q] == [(msgid, True)]
        line = d.ctl("show", "queue").stdout.splitlines()[0]
        assert line.startswith(msgid) and \
            line.endswith("<alice@example.org>  quarantined"), line
        assert d.ctl("show", "quarantine").stdout == \
            d.ctl("show", "queue").stdout
        text = d.ctl("show", "message", msgid).stdout
        assert "\nflags: quarantine\n" in text and \
            "\nSubject: held\n" in text, text
        st = stats(d)
        assert st["queue.quarantined"] == 1, st
        # Asked for, it is still not relayed.
        r = d.ctl("schedule", msgid, check=False)
        assert r.returncode == 1, r
        assert "message %s is quarantined; release it first" % msgid in \
            r.stderr, r
        assert d.ctl("schedule", "all").stdout.strip() == \
            "0 messages scheduled"
        time.sleep(1.5)
        assert transactions(peer) == []
        st = stats(d)
        assert st["relay.runs"] == 0 and st["queue.messages"] == 1, st
        d.wait_log("%s: quarantined from <alice@example.org>" % msgid)


def test_release_relays_the_message_once_as_it_would_have_been():
    with ScriptedSmtpPeer() as peer, scand(peer) as d:
        msgid = send(d, "released")
        assert held(d) == [msgid]
        r = d.ctl("quarantine", "release", msgid)
        assert r.stdout.strip() == "released %s" % msgid
        wait_for(lambda: delivered(peer, "released"), 10,
                 "the released message at the peer")
        wait_for(lambda: show(d, "queue") == [], 10, "an empty queue")
        t = delivered(peer, "released")
        assert len(t) == 1 and t[0]["rcpts"] == ["bob@example.com"], t
        assert held(d) == []
        st = stats(d)
        assert st["queue.quarantined"] == 0, st
        assert st["queue.quarantine_released"] == 1, st
        assert st["relay.delivered"] == 1, st
        d.wait_log("%s: released from the quarantine on request" % msgid)
        # Released, it is no longer in the quarantine.
        r = d.ctl("quarantine", "release", msgid, check=False)
        assert r.returncode == 1 and "no such message" in r.stderr, r


def test_delete_removes_the_message_unrelayed():
    with ScriptedSmtpPeer() as peer, scand(peer) as d:
        keep = send(d, "kept")
        gone = send(d, "deleted")
        assert sorted(held(d)) == sorted([keep, gone])
        r = d.ctl("-j", "quarantine", "delete", gone)
        assert json.loads(r.stdout) == {"ok": True,
                                        "message": "deleted %s" % gone}
        assert held(d) == [keep]
        assert [m["id"] for m in show(d, "queue")] == [keep]
        r = d.ctl("show", "message", gone, check=False)
        assert r.returncode == 1 and "no such message" in r.stderr, r
        st = stats(d)
        assert st["queue.quarantined"] == 1, st
        assert st["queue.quarantine_deleted"] == 1, st
        d.wait_log("%s: deleted from the quarantine on request" % gone)
        time.sleep(1)
        assert transactions(peer) == []


def test_quarantine_survives_kill9_and_a_release_survives_it_too():
    with ScriptedSmtpPeer() as peer, scand(peer) as d:
        first = send(d, "first")
        second = send(d, "second")
        kill9_all(d)
        d.start()
        scanner_ready(d)
        # Still held after the restart, and counted again.
        assert sorted(held(d)) == sorted([first, second])
        assert stats(d)["queue.quarantined"] == 2
        time.sleep(1)
        assert transactions(peer) == []
        # A release is on disk before its answer: with the relay
        # paused, it is the restart that delivers the message.
        d.ctl("pause", "relay")
        d.ctl("quarantine", "release", first)
        kill9_all(d)
        d.start()
        scanner_ready(d)
        wait_for(lambda: delivered(peer, "first"), 10,
                 "the released message at the peer after the restart")
        wait_for(lambda: [m["id"] for m in show(d, "queue")] == [second],
                 10, "only the held message left")
        assert held(d) == [second]
        st = stats(d)
        assert st["queue.quarantined"] == 1, st
        time.sleep(1)
        assert delivered(peer, "second") == []
        assert len(delivered(peer, "first")) == 1


# quarantine-expire: a message held that long is deleted as quarantine
# delete would, never relayed and never bounced (a bounce of spam is
# backscatter).  Arrival times are whole seconds, so "2s" is over after
# one to two seconds.

def expired_line(msgid):
    return re.compile(r"%s: quarantined \d+ seconds? ago; expired and "
                      r"deleted" % msgid)


def test_quarantine_expire_deletes_a_held_message_without_a_bounce():
    with ScriptedSmtpPeer() as peer, scand(peer, "quarantine-expire 2s") as d:
        msgid = send(d, "expiring")
        sent = time.monotonic()
        assert held(d) == [msgid]
        wait_for(lambda: held(d) == [], 10, "the message to expire")
        assert time.monotonic() - sent > 0.9, "expired at once"
        assert expired_line(msgid).search(d.logtext()), log_tail(d)
        st = stats(d)
        assert st["queue.quarantine_expired"] == 1, st
        assert st["queue.quarantine_deleted"] == 0, st
        assert st["queue.quarantined"] == 0, st
        # Gone from queue.mdb, with no bounce queued in its place and
        # nothing ever tried: nothing is left that could reach the peer.
        assert st["queue.messages"] == 0 and show(d, "queue") == [], st
        assert st["relay.runs"] == 0 and st["relay.bounces"] == 0, st
        r = d.ctl("show", "message", msgid, check=False)
        assert r.returncode == 1 and "no such message" in r.stderr, r
        assert transactions(peer) == []


def test_quarantine_default_keeps_a_message_and_a_reload_expires_it():
    with ScriptedSmtpPeer() as peer, scand(peer) as d:
        msgid = send(d, "kept")
        time.sleep(2.5)         # past what "2s" would keep it
        assert held(d) == [msgid]
        assert stats(d)["queue.quarantine_expired"] == 0
        assert "expired and deleted" not in d.logtext()
        # The new duration applies to the messages already held.
        d.write_config(scand_config(d, peer, "quarantine-expire 2s"))
        d.ctl("reload")
        wait_for(lambda: held(d) == [], 5, "the reload to expire it")
        assert expired_line(msgid).search(d.logtext()), log_tail(d)
        st = stats(d)
        assert st["queue.quarantine_expired"] == 1, st
        assert st["queue.messages"] == 0, st
        assert transactions(peer) == []


def test_quarantine_expire_leaves_a_released_message_alone():
    with ScriptedSmtpPeer() as peer, scand(peer, "quarantine-expire 2s") as d:
        # Paused, the released message stays in the queue past the
        # expiry of the one that arrived after it.
        d.ctl("pause", "relay")
        released = send(d, "released")
        expiring = send(d, "expiring")
        d.ctl("quarantine", "release", released)
        wait_for(lambda: expired_line(expiring).search(d.logtext()), 10,
                 "the held message to expire")
        assert [(m["id"], m["quarantined"]) for m in show(d, "queue")] == \
            [(released, False)]
        assert not expired_line(released).search(d.logtext())
        assert "no longer held" not in d.logtext()
        assert stats(d)["queue.quarantine_expired"] == 1
        d.ctl("resume", "relay")
        wait_for(lambda: show(d, "queue") == [], 10, "an empty queue")
        assert len(delivered(peer, "released")) == 1
        assert delivered(peer, "expiring") == []


def test_quarantine_expire_deletes_at_startup_what_expired_while_down():
    count = 40      # more than the queue process expires in one turn
    with ScriptedSmtpPeer() as peer, scand(peer, "quarantine-expire 4s") as d:
        ids = send(d, "held while down", count=count)
        last = time.time()
        assert sorted(held(d)) == sorted(ids), "expired before the kill"
        kill9_all(d)
        time.sleep(max(0, last + 5 - time.time()))
        mark = len(d.logtext())
        d.start()
        wait_for(lambda: held(d) == [], 10, "the quarantine emptied")
        after = d.logtext()[mark:]
        assert "scheduler: %d messages in the queue" % count in after, after
        missing = [i for i in ids if not expired_line(i).search(after)]
        assert missing == [], after
        st = stats(d)
        assert st["queue.quarantine_expired"] == count, st
        assert st["queue.quarantined"] == 0, st
        assert st["queue.messages"] == 0, st
        assert st["relay.runs"] == 0 and st["relay.bounces"] == 0, st
        assert transactions(peer) == []
