"""The quarantine (issue 6): messages the scanner holds are stored in
queue.mdb like any other but never relayed, expired or bounced until
smarthostctl releases them (then relayed as they would have been) or
deletes them.  show quarantine lists them, show queue marks them, show
stats counts them."""

import json
import os
import pwd
import struct
import subprocess

from lib import (SMARTHOSTCTL, Daemon, free_port, queue_config,
                 queue_id_of, smtp_message, smtp_send)
from test_control import T, StandIn, ctl_result

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
