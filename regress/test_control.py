"""smarthostctl and the control socket."""

import json
import os
import socket
import stat
import struct
import subprocess
import tempfile
import threading

from lib import (CHILDREN, CONTROL_VERSION, Daemon, IMSG_CTL_VERSION,
                 SMARTHOSTCTL,
                 control_connect, imsg_pack, imsg_recv, socket_closed)


def test_show_status_text_names_version_config_and_processes():
    with Daemon() as d:
        out = d.ctl("show", "status").stdout
        assert out.startswith("smarthostd "), out
        assert "configuration: %s" % d.conf in out, out
        assert "uptime: " in out
        pids = d.pids()
        for name in ["parent"] + CHILDREN:
            assert "%-10s %8d  running" % (name, pids[name]) in out, out


def test_show_status_json_parses_with_seven_processes():
    with Daemon() as d:
        st = json.loads(d.ctl("-j", "show", "status").stdout)
        assert st["config"] == d.conf
        assert st["uptime"] >= 0
        assert [p["name"] for p in st["processes"]] == ["parent"] + CHILDREN
        assert all(p["state"] == "running" for p in st["processes"])


def test_commands_match_by_prefix():
    with Daemon() as d:
        out = d.ctl("sh", "statu").stdout
        assert out.startswith("smarthostd ") and "PROCESS" in out, out
        # "st" is both status and stats: an ambiguity, told as such.
        r = d.ctl("sh", "st", check=False)
        assert r.returncode == 2 and "ambiguous" in r.stderr, r.stderr
        r = d.ctl("rel")
        assert r.stdout.strip() == "configuration reloaded"


def test_unknown_or_incomplete_command_is_a_usage_error():
    r = subprocess.run([SMARTHOSTCTL, "frob"], capture_output=True,
                       text=True)
    assert r.returncode == 2
    assert "unknown argument: frob" in r.stderr
    assert ("valid commands: encrypt log pause reload remove resume "
            "schedule show") in r.stderr
    r = subprocess.run([SMARTHOSTCTL, "show"], capture_output=True,
                       text=True)
    assert r.returncode == 2
    assert "missing argument" in r.stderr and "status" in r.stderr
    r = subprocess.run([SMARTHOSTCTL, "show", "status", "now"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "too many arguments" in r.stderr


def test_no_daemon_is_exit_status_one():
    r = subprocess.run([SMARTHOSTCTL, "-s", "/nonexistent/sock", "show",
                        "status"], capture_output=True, text=True)
    assert r.returncode == 1
    assert "/nonexistent/sock" in r.stderr


def test_log_verbose_and_brief_reach_every_process():
    with Daemon() as d:
        assert d.ctl("log", "brief").stdout.strip() == "logging brief"
        assert d.status()["verbose"] == 0
        assert d.ctl("-j", "log", "verbose").stdout.strip() == \
            '{"ok":true,"message":"logging verbose"}'
        assert d.status()["verbose"] == 1


def test_control_socket_is_mode_0660():
    with Daemon() as d:
        mode = os.stat(d.sock).st_mode
        assert stat.S_ISSOCK(mode)
        assert stat.S_IMODE(mode) == 0o660, oct(mode)


def test_daemon_rejects_other_protocol_version_and_says_its_own():
    with Daemon() as d:
        s = control_connect(d.sock)
        s.sendall(imsg_pack(IMSG_CTL_VERSION, struct.pack("=I", 999)))
        answer = imsg_recv(s)
        assert answer is not None and answer[0] == IMSG_CTL_VERSION
        assert struct.unpack("=I", answer[1])[0] != 999
        assert socket_closed(s)
        d.wait_log("control protocol version differs")
        assert d.status()["processes"][0]["state"] == "running"


def test_smarthostctl_reports_version_mismatch():
    # A peer that answers the handshake with another protocol version.
    tmp = tempfile.mkdtemp(prefix="smarthostctl-test-")
    path = os.path.join(tmp, "other.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)

    def answer():
        conn, _ = srv.accept()
        imsg_recv(conn)
        conn.sendall(imsg_pack(IMSG_CTL_VERSION, struct.pack("=I", 999)))
        conn.close()
    t = threading.Thread(target=answer)
    t.start()
    r = subprocess.run([SMARTHOSTCTL, "-s", path, "show", "status"],
                       capture_output=True, text=True, timeout=10)
    t.join()
    srv.close()
    assert r.returncode == 1
    assert "smarthostctl and smarthostd versions differ" in r.stderr


def test_garbage_on_control_socket_drops_only_that_client():
    with Daemon() as d:
        s = control_connect(d.sock)
        s.sendall(b"\xff" * 64)
        assert socket_closed(s)
        s = control_connect(d.sock)
        # A header that claims a payload far beyond the limit.
        s.sendall(struct.pack("=IIII", IMSG_CTL_VERSION, 1 << 30, 0, 0))
        assert socket_closed(s)
        s = control_connect(d.sock)
        s.sendall(imsg_pack(IMSG_CTL_VERSION, struct.pack("=I", CONTROL_VERSION)))
        assert imsg_recv(s)[0] == IMSG_CTL_VERSION
        s.sendall(imsg_pack(4242))
        assert socket_closed(s)
        assert len(d.pids()) == 7
        assert d.ctl("show", "status").returncode == 0


def test_connections_per_uid_are_capped():
    with Daemon() as d:
        held = [control_connect(d.sock) for _ in range(16)]
        for s in held:
            s.sendall(imsg_pack(IMSG_CTL_VERSION, struct.pack("=I", CONTROL_VERSION)))
            assert imsg_recv(s)[0] == IMSG_CTL_VERSION
        extra = control_connect(d.sock)
        assert socket_closed(extra)
        d.wait_log("too many connections")
        for s in held:
            s.close()
        assert d.ctl("show", "status").returncode == 0
