"""The queue: messages committed to queue.mdb before the 250, what
smarthostctl shows and removes, and smarthostctl encrypt."""

import json
import os
import signal
import struct
import subprocess
import threading
import warnings

from lib import (CONTROL_VERSION, SMARTHOSTCTL, Daemon, control_connect,
                 free_port,
                 imsg_pack, imsg_recv, pid_alive, queue_config, queue_id_of,
                 smtp_message, smtp_send, socket_closed, unix_recv_queue,
                 wait_for)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt

IMSG_CTL_VERSION = 1
IMSG_CTL_FAIL = 3
IMSG_CTL_SHOW_MESSAGE = 13
IMSG_CTL_SHOW_QUEUE = 10


def ctl(*args, input=None):
    return subprocess.run([SMARTHOSTCTL] + list(args), capture_output=True,
                          text=True, input=input, timeout=30)


def show_queue(d):
    return json.loads(d.ctl("-j", "show", "queue").stdout)


def queued(d, port, subject="test", **kw):
    code, text = smtp_send(port, smtp_message(subject, **kw))
    assert code == 250, (code, text)
    return queue_id_of(text)


def send_while_queue_stopped(d, port, messages):
    """Send the messages from concurrent sessions while the queue process
    is stopped, and let it go on only once every envelope waits in its
    socket.  Their envelopes are the same size (same sender, recipient
    and client; sizes are fixed-width), so the first one tells how many
    bytes all of them make.  Returns the (code, text) of each."""
    queue_pid = d.pids()["queue"]
    idle = unix_recv_queue(queue_pid)
    results = {}

    def send(i):
        results[i] = smtp_send(port, messages[i])
    threads = [threading.Thread(target=send, args=(i,))
               for i in range(len(messages))]
    os.kill(queue_pid, signal.SIGSTOP)
    try:
        threads[0].start()
        one = wait_for(lambda: unix_recv_queue(queue_pid) - idle, 30,
                       "the first message waiting for the queue")
        for t in threads[1:]:
            t.start()
        wait_for(lambda: unix_recv_queue(queue_pid) >=
                 idle + len(messages) * one, 30,
                 "every message waiting for the queue")
    finally:
        os.kill(queue_pid, signal.SIGCONT)
    for t in threads:
        t.join(60)
    return [results.get(i) for i in range(len(messages))]


# encrypt

def test_encrypt_argument_gives_bcrypt_hash_that_verifies():
    r = ctl("encrypt", "correct horse")
    assert r.returncode == 0, r.stderr
    h = r.stdout.strip()
    assert h.startswith("$2b$") and int(h.split("$")[2]) >= 10, h
    assert crypt.crypt("correct horse", h) == h
    assert crypt.crypt("correct horsf", h) != h


def test_encrypt_salts_each_hash():
    a = ctl("encrypt", "same").stdout.strip()
    b = ctl("encrypt", "same").stdout.strip()
    assert a != b and crypt.crypt("same", a) == a and crypt.crypt(
        "same", b) == b


def test_encrypt_reads_one_line_from_stdin_without_its_newline():
    r = ctl("encrypt", input="s3cret pass\nsecond line\n")
    assert r.returncode == 0, r.stderr
    h = r.stdout.strip()
    assert crypt.crypt("s3cret pass", h) == h
    r = ctl("encrypt", input="no newline")
    assert crypt.crypt("no newline", r.stdout.strip()) == r.stdout.strip()


def test_encrypt_refuses_empty_password():
    for given in ("\n", ""):
        r = ctl("encrypt", input=given)
        assert r.returncode == 2, (given, r.returncode)
        assert r.stdout == ""
    r = ctl("encrypt", "")
    assert r.returncode == 2 and "empty password" in r.stderr


def test_encrypt_needs_no_daemon_and_takes_dash_passwords():
    r = ctl("-s", "/nonexistent/sock", "encrypt", "-dash")
    assert r.returncode == 0, r.stderr
    assert crypt.crypt("-dash", r.stdout.strip()) == r.stdout.strip()


def test_encrypt_json():
    r = ctl("-j", "enc", "pw")
    h = json.loads(r.stdout)["hash"]
    assert crypt.crypt("pw", h) == h


# Commands without SMTP

def test_queue_commands_are_usage_errors_when_malformed():
    for args, why in [(["show", "message"], "missing argument"),
                      (["show", "message", "XYZ"], "invalid message id"),
                      (["show", "message", "0123456789ABCDEF"],
                       "invalid message id"),
                      (["remove"], "missing argument"),
                      (["remove", "a"], "invalid message id"),
                      (["remove", "al"], "invalid message id"),
                      (["pause"], "missing argument"),
                      (["resume", "queue"], "unknown argument"),
                      (["schedule"], "missing argument"),
                      (["schedule", "al"], "invalid message id"),
                      (["show", "queue", "x"], "too many arguments")]:
        r = ctl("-s", "/nonexistent/sock", *args)
        assert r.returncode == 2, (args, r.returncode, r.stderr)
        assert why in r.stderr, (args, r.stderr)


def test_show_queue_of_empty_queue_prints_nothing():
    with Daemon() as d:
        r = d.ctl("show", "queue")
        assert r.stdout == "" and r.stderr == ""
        assert show_queue(d) == []
        assert d.ctl("sh", "q").stdout == ""


def test_unknown_message_is_exit_status_one():
    with Daemon() as d:
        r = d.ctl("remove", "0123456789abcdef", check=False)
        assert r.returncode == 1
        assert "no such message: 0123456789abcdef" in r.stderr
        r = d.ctl("show", "message", "0123456789abcdef", check=False)
        assert r.returncode == 1 and "no such message" in r.stderr
        r = d.ctl("-j", "show", "message", "0123456789abcdef", check=False)
        assert r.returncode == 1 and not json.loads(r.stdout)["ok"]
        assert d.ctl("remove", "all").stdout.strip() == "removed 0 messages"


def test_show_stats_has_queue_and_smtp_counters():
    with Daemon() as d:
        stats = json.loads(d.ctl("-j", "show", "stats").stdout)
        for name in ["queue.messages", "queue.accepted",
                     "queue.bytes_accepted", "queue.commits",
                     "queue.nospace", "queue.tempfail"]:
            assert stats[name] == 0, (name, stats)
        assert stats["queue.disk_ok"] in (0, 1)
        assert any(k.startswith("smtp.") for k in stats), stats
        text = d.ctl("show", "stats").stdout
        assert "queue.accepted=0\n" in text, text


def test_control_drops_malformed_queue_requests_only():
    with Daemon() as d:
        s = control_connect(d.sock)
        s.sendall(imsg_pack(IMSG_CTL_VERSION,
                            struct.pack("=I", CONTROL_VERSION)))
        assert imsg_recv(s)[0] == IMSG_CTL_VERSION
        # A path where an id belongs: refused, the client stays.
        s.sendall(imsg_pack(IMSG_CTL_SHOW_MESSAGE, b"../../etc/pass\0"))
        answer = imsg_recv(s)
        assert answer[0] == IMSG_CTL_FAIL, answer
        assert b"invalid message id" in answer[1]
        # Not NUL-terminated: dropped.
        s.sendall(imsg_pack(IMSG_CTL_SHOW_MESSAGE, b"0123456789abcdef"))
        assert socket_closed(s)
        # A payload where none belongs: dropped.
        s = control_connect(d.sock)
        s.sendall(imsg_pack(IMSG_CTL_VERSION,
                            struct.pack("=I", CONTROL_VERSION)))
        assert imsg_recv(s)[0] == IMSG_CTL_VERSION
        s.sendall(imsg_pack(IMSG_CTL_SHOW_QUEUE, b"x"))
        assert socket_closed(s)
        assert len(d.pids()) == 7
        assert show_queue(d) == []


def test_pause_and_resume_smtp_answer_and_mail_flows_after():
    port = free_port()
    with Daemon(queue_config(port)) as d:
        assert d.ctl("pause", "smtp").stdout.strip() == "smtp paused"
        r = json.loads(d.ctl("-j", "pau", "sm").stdout)
        assert r["ok"] and r["message"] == "smtp already paused"
        assert d.ctl("resume", "smtp").stdout.strip() == "smtp resumed"
        queued(d, port)
        assert len(show_queue(d)) == 1


# With SMTP

def test_message_shows_in_queue_with_sender_and_recipients():
    port = free_port()
    with Daemon(queue_config(port)) as d:
        code, text = smtp_send(port, smtp_message("hello"),
                               sender="alice@example.org",
                               rcpts=["bob@example.com",
                                      "carol@example.net"])
        assert code == 250, text
        msgid = queue_id_of(text)
        q = show_queue(d)
        assert len(q) == 1, q
        m = q[0]
        assert m["id"] == msgid and m["sender"] == "alice@example.org"
        assert m["size"] > len(smtp_message("hello"))   # Received added
        assert [(r["address"], r["action"], r["state"])
                for r in m["recipients"]] == [
            ("bob@example.com", "inbound", "pending"),
            ("carol@example.net", "inbound", "pending")]
        out = d.ctl("show", "queue").stdout
        assert out.startswith(msgid + "  ") and "<alice@example.org>" in out
        assert "    <carol@example.net>  inbound  pending" in out
        stats = json.loads(d.ctl("-j", "show", "stats").stdout)
        assert stats["queue.messages"] == 1 and stats["queue.accepted"] == 1
        assert stats["queue.bytes_accepted"] == m["size"]


def test_show_message_prints_envelope_and_escaped_headers():
    port = free_port()
    with Daemon(queue_config(port)) as d:
        msgid = queued(d, port, "look at me",
                       headers="X-Evil: a\x1b[31mred\\\r\n")
        out = d.ctl("show", "message", msgid).stdout
        assert "id: %s\n" % msgid in out
        assert "sender: <alice@example.org>\n" in out
        assert "recipient: <bob@example.com> action inbound pending" in out
        assert "helo: client.example.org\n" in out
        assert "\nSubject: look at me\n" in out
        assert "X-Evil: a\\x1b[31mred\\\\\n" in out
        assert "\x1b" not in out
        assert "hello" not in out       # the body stays out
        m = json.loads(d.ctl("-j", "show", "message", msgid).stdout)
        assert m["id"] == msgid and m["sender"] == "<alice@example.org>"
        assert m["recipients"][0].startswith("<bob@example.com>")
        assert "Subject: look at me" in m["headers"]
        assert m["headers"][0].startswith("Received: ")


def test_remove_one_then_all():
    port = free_port()
    with Daemon(queue_config(port)) as d:
        ids = [queued(d, port, "m%d" % i) for i in range(3)]
        assert sorted(m["id"] for m in show_queue(d)) == sorted(ids)
        assert d.ctl("remove", ids[1]).stdout.strip() == "removed 1 message"
        assert sorted(m["id"] for m in show_queue(d)) == sorted(
            [ids[0], ids[2]])
        r = d.ctl("show", "message", ids[1], check=False)
        assert r.returncode == 1
        assert d.ctl("remove", "all").stdout.strip() == "removed 2 messages"
        assert show_queue(d) == []
        stats = json.loads(d.ctl("-j", "show", "stats").stdout)
        assert stats["queue.removed"] == 3 and stats["queue.messages"] == 0


def test_message_survives_kill9_of_every_process_right_after_250():
    port = free_port()
    d = Daemon(queue_config(port))
    try:
        d.start()
        pids = d.pids()
        msgid = queued(d, port, "durable")
        for pid in pids.values():
            os.kill(pid, signal.SIGKILL)
        d.proc.wait(15)
        wait_for(lambda: not any(pid_alive(p) for p in pids.values()),
                 what="every process gone")
        d.log.close()
        d.start()
        assert [m["id"] for m in show_queue(d)] == [msgid]
        assert "Subject: durable" in d.ctl("show", "message", msgid).stdout
        # And the queue takes new mail after the crash.
        other = queued(d, port, "after")
        assert sorted(m["id"] for m in show_queue(d)) == sorted(
            [msgid, other])
    finally:
        d.stop()


def test_message_survives_sigterm_and_restart():
    port = free_port()
    d = Daemon(queue_config(port))
    try:
        d.start()
        msgid = queued(d, port, "stays")
        d.proc.send_signal(signal.SIGTERM)
        assert d.wait_exit() == 0
        d.log.close()
        d.start()
        assert [m["id"] for m in show_queue(d)] == [msgid]
    finally:
        d.stop()


def test_full_map_is_452_and_the_daemon_keeps_queueing():
    port = free_port()
    extra = ("smtp { max-message-size 512K }\n"
             "queue { map-size 1M\n min-free 0 }\n")
    with Daemon(queue_config(port, extra)) as d:
        pids = d.pids()
        big = smtp_message("big", size=400 * 1024)
        replies = []
        for _ in range(6):
            code, text = smtp_send(port, big)
            replies.append((code, text))
            if code != 250:
                break
        assert replies[-1][0] == 452, replies
        assert "4.3.1" in replies[-1][1], replies
        assert replies[0][0] == 250, replies
        accepted = [queue_id_of(t) for c, t in replies if c == 250]
        # Nothing of the refused message was written; the rest is intact.
        assert sorted(m["id"] for m in show_queue(d)) == sorted(accepted)
        stats = json.loads(d.ctl("-j", "show", "stats").stdout)
        assert stats["queue.nospace"] >= 1
        assert d.pids() == pids
        queued(d, port, "small")
        assert len(show_queue(d)) == len(accepted) + 1


def test_free_space_reserve_refuses_mail_with_452():
    port = free_port()
    st = os.statvfs("/tmp")
    if st.f_bavail * st.f_frsize >= 1024 ** 4:
        return      # a terabyte free: the reserve cannot be above it
    with Daemon(queue_config(port, "queue { min-free 1024G }\n")) as d:
        code, text = smtp_send(port, smtp_message())
        assert code == 452 and "4.3.1" in text, (code, text)
        assert json.loads(d.ctl("-j", "show", "stats").stdout)[
            "queue.disk_ok"] == 0
        assert show_queue(d) == []


def test_messages_that_wait_during_a_commit_share_the_next_one():
    """Group commit: messages that arrive while the queue is busy are
    committed together.  The queue is stopped while ten sessions end
    their DATA, so all ten are waiting in its socket when it resumes."""
    port = free_port()
    n = 10
    with Daemon(queue_config(port)) as d:
        queued(d, port, "first")
        before = json.loads(d.ctl("-j", "show", "stats").stdout)
        results = send_while_queue_stopped(
            d, port, [smtp_message("group %d" % i) for i in range(n)])
        assert [c for c, _ in results] == [250] * n, results
        after = json.loads(d.ctl("-j", "show", "stats").stdout)
        assert after["queue.accepted"] - before["queue.accepted"] == n
        assert after["queue.commits"] - before["queue.commits"] == 1, \
            (before, after)
        assert after["queue.commit_batch_max"] == n
        assert len(show_queue(d)) == n + 1


def test_group_that_overflows_the_map_fails_only_the_big_message():
    """A group commit that fails is retried one message per transaction:
    the message that does not fit gets 452, the others their 250."""
    port = free_port()
    extra = ("smtp { max-message-size 512K }\n"
             "queue { map-size 1M\n min-free 0 }\n")
    with Daemon(queue_config(port, extra)) as d:
        first = [queued(d, port, "big", size=400 * 1024) for _ in range(2)]
        messages = [smtp_message("big", size=400 * 1024)] + [
            smtp_message("small %d" % i) for i in range(3)]
        results = send_while_queue_stopped(d, port, messages)
        assert results[0][0] == 452 and "4.3.1" in results[0][1], results
        assert [results[i][0] for i in (1, 2, 3)] == [250] * 3, results
        ids = first + [queue_id_of(results[i][1]) for i in (1, 2, 3)]
        assert sorted(m["id"] for m in show_queue(d)) == sorted(ids)
        assert "committing them one by one" in d.logtext()
