"""The process tree: seven named processes, privilege separation,
supervision, shutdown and reload, all against the real daemon."""

import ctypes
import os
import pwd
import signal
import subprocess

from lib import (CHILDREN, Daemon, SMARTHOSTD, base_config, children_of,
                 pid_alive, proc_status, wait_for)


def test_all_seven_processes_run_with_their_names():
    with Daemon() as d:
        pids = d.pids()
        assert sorted(pids) == sorted(["parent"] + CHILDREN), pids
        for name, pid in pids.items():
            assert pid_alive(pid), name


def test_status_lists_the_same_pids_as_ps():
    with Daemon() as d:
        st = d.status()
        by_name = {p["name"]: p["pid"] for p in st["processes"]}
        assert by_name == d.pids(), (by_name, d.pids())


def test_children_drop_privileges_and_chroot_as_root():
    if os.geteuid() != 0:
        return
    user = pwd.getpwnam("_smarthostd")
    scan = pwd.getpwnam("_smarthostd_scan")
    with Daemon() as d:
        pids = d.pids()
        expect = {
            "smtp": (user.pw_uid, "/var/empty"),
            "control": (user.pw_uid, "/var/empty"),
            "grey": (user.pw_uid, d.state),
            "queue": (user.pw_uid, d.state),
            "scan": (scan.pw_uid, "/var/empty"),
            "pf": (user.pw_uid, "/var/empty"),
        }
        net_admin = 1 << 12     # CAP_NET_ADMIN, pf's only capability
        for name, (uid, root) in expect.items():
            st = proc_status(pids[name])
            uids = [int(u) for u in st["Uid"].split()]
            gids = [int(g) for g in st["Gid"].split()]
            assert uids == [uid] * 4, (name, uids)
            assert gids[0] != 0 and len(set(gids)) == 1, (name, gids)
            assert st["Groups"].split() == [str(gids[0])], (name, st)
            assert st["NoNewPrivs"] == "1", name
            caps = net_admin if name == "pf" else 0
            for field in ("CapEff", "CapPrm", "CapInh", "CapAmb"):
                want = caps if field in ("CapEff", "CapPrm") else 0
                assert int(st[field], 16) == want, (name, field, st[field])
            assert os.readlink("/proc/%d/root" % pids[name]) == root, name
        assert os.stat(d.state).st_uid == user.pw_uid
        assert os.stat(d.state).st_mode & 0o777 == 0o700


def test_unprivileged_start_runs_everything_as_that_user_with_a_warning():
    if os.geteuid() != 0:
        return
    with Daemon(user="nobody") as d:
        nobody = pwd.getpwnam("nobody").pw_uid
        for name, pid in d.pids().items():
            uids = [int(u) for u in proc_status(pid)["Uid"].split()]
            assert uids == [nobody] * 4, (name, uids)
        log = d.logtext()
        assert log.count("privilege separation is disabled") == 1, log
        assert d.status()["privsep"] is False


def test_missing_user_is_a_clear_fatal_error():
    if os.geteuid() != 0:
        return
    d = Daemon(extra_config='user "_no_such_user_x"\n')
    d.start(wait=False)
    assert d.wait_exit() != 0
    assert "user _no_such_user_x does not exist" in d.logtext(), d.logtext()


def kill_child_takes_the_daemon_down(name):
    d = Daemon()
    with d:
        pids = d.pids()
        os.kill(pids[name], signal.SIGKILL)
        status = d.wait_exit()
        assert status != 0, status
        d.wait_log("lost child: %s process (pid %d) was killed by signal "
                   "9" % (name, pids[name]))
        for other, pid in pids.items():
            wait_for(lambda: not pid_alive(pid), 5,
                     "%s (pid %d) to exit" % (other, pid))
        assert not os.path.exists(d.sock)
        assert not os.path.exists(d.pidfile)


def make_kill_test(name):
    def test():
        kill_child_takes_the_daemon_down(name)
    return test


for _name in CHILDREN:
    globals()["test_kill9_of_%s_takes_the_daemon_down_nonzero" % _name] = \
        make_kill_test(_name)


def test_sigterm_leaves_no_process_socket_or_pidfile():
    d = Daemon()
    with d:
        pids = d.pids()
        with open(d.pidfile) as f:
            assert int(f.read()) == d.proc.pid
        d.proc.send_signal(signal.SIGTERM)
        assert d.wait_exit() == 0
        for name, pid in pids.items():
            assert not pid_alive(pid), name
        assert not os.path.exists(d.sock)
        assert not os.path.exists(d.pidfile)
        assert "terminated" in d.logtext()


def test_sigint_shuts_down_cleanly_too():
    d = Daemon()
    with d:
        pids = d.pids()
        d.proc.send_signal(signal.SIGINT)
        assert d.wait_exit() == 0
        for pid in pids.values():
            assert not pid_alive(pid)


def test_parent_death_makes_every_child_exit():
    d = Daemon()
    with d:
        pids = d.pids()
        os.kill(d.proc.pid, signal.SIGKILL)
        d.proc.wait()
        for name in CHILDREN:
            wait_for(lambda: not pid_alive(pids[name]), 10,
                     "%s to exit after the parent died" % name)


def test_second_instance_with_same_pidfile_is_refused():
    with Daemon() as d:
        r = subprocess.run([SMARTHOSTD, "-d", "-f", d.conf],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 1
        assert "already running (pid %d" % d.proc.pid in r.stderr, r.stderr
        # The first daemon is untouched.
        assert d.status()["processes"][0]["pid"] == d.proc.pid


def test_start_with_bad_config_fails_with_file_and_line():
    d = Daemon(config="hostname \"x\"\nfrobnicate yes\n")
    d.start(wait=False)
    assert d.wait_exit() == 1
    assert "%s:2: syntax error" % d.conf in d.logtext(), d.logtext()


def test_reload_with_good_config_switches():
    with Daemon() as d:
        before = d.status()["config_loaded"]
        assert "reloaded-marker" not in d.ctl("show", "tables").stdout
        d.write_config(base_config(d.tmp,
                                   "table reloaded-marker { x }\n"))
        r = d.ctl("reload")
        assert r.stdout.strip() == "configuration reloaded", r.stdout
        assert d.status()["config_loaded"] >= before
        d.wait_log("configuration reloaded from")
        for name in CHILDREN:
            assert "%s: configuration committed" % name in d.logtext()
        # the new configuration is the one in use
        wait_for(lambda: "reloaded-marker" in
                 d.ctl("show", "tables").stdout, 10, "the new table")


def test_reload_with_bad_config_keeps_running_config_and_fails():
    with Daemon() as d:
        pids = d.pids()
        d.write_config(base_config(d.tmp, "greylist {\n passtime 5x\n}\n"))
        r = d.ctl("reload", check=False)
        assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
        assert "%s:7:" % d.conf in r.stderr, r.stderr
        assert "keeping the running configuration" in d.logtext()
        assert d.pids() == pids
        assert all(p["state"] == "running" for p in d.status()["processes"])
        # A corrected file reloads fine afterwards.
        d.write_config(base_config(d.tmp))
        assert d.ctl("reload").returncode == 0


def test_sighup_reloads():
    with Daemon() as d:
        d.proc.send_signal(signal.SIGHUP)
        d.wait_log("configuration reloaded from")
        assert len(d.pids()) == 7


def test_reload_keeps_settings_that_need_a_restart():
    with Daemon() as d:
        d.write_config(base_config(d.tmp).replace(
            "%s/state" % d.tmp, "%s/elsewhere" % d.tmp))
        assert d.ctl("reload").returncode == 0
        d.wait_log('reload: changing state takes a restart; keeping '
                   '"%s/state"' % d.tmp)


def _nofile(pid):
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                return tuple(int(x) for x in line.split()[3:5])
    raise AssertionError("no Max open files in /proc/%d/limits" % pid)


def test_descriptor_limit_raised_to_the_hard_one_in_every_process():
    with Daemon(nofile=(256, 4096)) as d:
        pids = d.pids()
        assert set(CHILDREN) <= set(pids), pids
        for name, pid in pids.items():
            assert _nofile(pid) == (4096, 4096), (name, _nofile(pid))
        assert "file descriptors" not in d.logtext(), d.logtext()


def test_descriptor_limit_below_max_sessions_is_said_at_startup():
    with Daemon(nofile=(256, 512)) as d:
        d.wait_log("max-sessions 1000 needs about 2064 file descriptors, "
                   "but the limit is 512")


def test_descriptor_limit_below_max_sessions_is_said_at_a_reload():
    with Daemon(extra_config="smtp {\n\tmax-sessions 100\n}\n",
                nofile=(256, 512)) as d:
        with open(d.conf) as f:
            conf = f.read()
        assert "file descriptors" not in d.logtext()
        d.write_config(conf.replace("max-sessions 100", "max-sessions 300"))
        d.ctl("reload")
        d.wait_log("max-sessions 300 needs about 664 file descriptors, "
                   "but the limit is 512")


def _drop_net_admin_from_bounding_set():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(24, 12, 0, 0, 0) != 0:     # PR_CAPBSET_DROP, NET_ADMIN
        raise OSError(ctypes.get_errno(), "PR_CAPBSET_DROP")


def test_pf_without_cap_net_admin_runs_with_nothing_and_says_so():
    """In a container or a unit without CAP_NET_ADMIN the daemon still
    starts: the pf process keeps no capability and says why."""
    if os.geteuid() != 0:
        return
    with Daemon(preexec=_drop_net_admin_from_bounding_set) as d:
        d.wait_log("pf: no CAP_NET_ADMIN to keep")
        st = proc_status(d.pids()["pf"])
        for field in ("CapEff", "CapPrm", "CapInh", "CapAmb"):
            assert int(st[field], 16) == 0, (field, st[field])
        assert st["NoNewPrivs"] == "1", st
