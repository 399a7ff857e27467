"""smarthostctl backup FILE: one tar archive of queue.mdb, grey.mdb, the
configuration and the files it names, taken while the daemon runs, and
the restore smarthostd(8) documents: stop, unpack, put the files back,
start."""

import json
import os
import pwd
import shutil
import stat
import subprocess
import tarfile
import tempfile

from lib import (Daemon, SMARTHOSTCTL, base_config, free_port, queue_config,
                 smtp_message, smtp_send, queue_id_of, LogOnFailure)

GREY_CONFIG = "greylist {\n passtime 2s\n}\n"
WHITE = "127.0.0.77"


def _tail(d):
    return d.logtext()[-3000:]


def _config(tmp, port, include_path):
    return base_config(tmp, GREY_CONFIG + queue_config(port) +
                       'include "%s"\n' % include_path)


def _queued_ids(d):
    return {m["id"] for m in json.loads(d.ctl("-j", "show", "queue").stdout)}


def _restore(archive, d2, old_tmp):
    """smarthostd(8)'s RESTORE, into d2's fresh state directory: unpack
    into a scratch directory, the databases into the state directory
    (the daemon's user, mode 0600), the configuration (its paths made
    d2's) and the files under files/ back where they were."""
    scratch = tempfile.mkdtemp(prefix="smarthostd-restore-")
    r = subprocess.run(["tar", "-xf", archive, "-C", scratch],
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr == "", r
    os.makedirs(d2.state, mode=0o700)
    owner = pwd.getpwnam("_smarthostd") if os.geteuid() == 0 else None
    for name in ("queue.mdb", "grey.mdb"):
        dst = os.path.join(d2.state, name)
        shutil.copyfile(os.path.join(scratch, "state", name), dst)
        os.chmod(dst, 0o600)
        if owner is not None:
            os.chown(dst, owner.pw_uid, owner.pw_gid)
    if owner is not None:
        os.chown(d2.state, owner.pw_uid, owner.pw_gid)
    with open(os.path.join(scratch, "etc", "smarthostd.conf")) as f:
        d2.write_config(f.read().replace(old_tmp, d2.tmp))
    files = os.path.join(scratch, "files")
    for root, _, names in os.walk(files):
        for name in names:
            src = os.path.join(root, name)
            dst = "/" + os.path.relpath(src, files)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy2(src, dst)
    shutil.rmtree(scratch)


def test_backup_archive_restores_queue_and_greylist_into_a_fresh_state():
    port = free_port()
    lists = tempfile.mkdtemp(prefix="smarthostd-backup-files-")
    # Over ustar's 100 bytes of name: stored with a prefix.
    table = os.path.join(lists, "a-directory-with-a-long-name" * 3,
                         "common.txt")
    os.mkdir(os.path.dirname(table))
    assert len("files" + table) > 100
    with open(table, "w") as f:
        f.write("example.org\nexample.com\n")
    # An included file is archived too, and names the table; named
    # through "..", it is archived under its real directory.
    include = os.path.join(lists, "tables.conf")
    with open(include, "w") as f:
        f.write('table "common" file "%s"\n' % table)
    d = Daemon()
    d.write_config(_config(d.tmp, port, os.path.join(
        os.path.dirname(table), "..", "tables.conf")))
    archive = os.path.join(d.tmp, "out", "smarthostd.tar")
    os.mkdir(os.path.dirname(archive))
    with d, LogOnFailure(d, _tail):
        d.ctl("pause", "relay")
        ids = set()
        for i in range(3):
            code, text = smtp_send(port, smtp_message("backup %d" % i))
            assert code == 250, (code, text)
            ids.add(queue_id_of(text))
        assert _queued_ids(d) == ids, d.ctl("show", "queue").stdout
        d.ctl("greylist", "white", WHITE)

        # A relative name is made absolute by smarthostctl.
        r = subprocess.run([SMARTHOSTCTL, "-s", d.sock, "backup",
                            "smarthostd.tar"], cwd=os.path.dirname(archive),
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r
        size = os.stat(archive).st_size
        assert r.stdout.strip() == "%s: %d bytes" % (archive, size), r
        assert stat.S_IMODE(os.stat(archive).st_mode) == 0o600
        assert sorted(os.listdir(os.path.dirname(archive))) == \
            ["smarthostd.tar"], "temporary file left behind"
        assert not os.path.exists(os.path.join(d.state, "backup"))

        with tarfile.open(archive) as tar:
            names = tar.getnames()
            assert {"MANIFEST", "state/queue.mdb", "state/grey.mdb",
                    "etc/smarthostd.conf", "files" + include,
                    "files" + table}.issubset(names), names
            for m in tar.getmembers():
                assert m.isfile() and m.mode == 0o600, (m.name, m.mode)
            conf = tar.extractfile("etc/smarthostd.conf").read().decode()
            assert conf == open(d.conf).read()
            assert tar.extractfile("files" + table).read() == \
                b"example.org\nexample.com\n"
            manifest = tar.extractfile("MANIFEST").read().decode()
            assert "state/queue.mdb\t%s/queue.mdb\n" % d.state in manifest
            assert "etc/smarthostd.conf\t%s\n" % d.conf in manifest
            assert "files%s\t%s\n" % (table, table) in manifest
            assert "files%s\t%s\n" % (include, include) in manifest

        # The daemon kept working: mail is still accepted.
        code, text = smtp_send(port, smtp_message("after the backup"))
        assert code == 250, (code, text)
        d.wait_log("backup written: %s" % archive)

    # The restore: the table and the included file are gone and come
    # back from the archive.
    os.unlink(table)
    os.unlink(include)
    d2 = Daemon()
    _restore(archive, d2, d.tmp)
    assert open(table).read() == "example.org\nexample.com\n"
    assert open(include).read() == 'table "common" file "%s"\n' % table
    with d2, LogOnFailure(d2, _tail):
        assert _queued_ids(d2) == ids
        out = d2.ctl("show", "greylist", "white").stdout
        assert any(line.startswith("WHITE|%s|" % WHITE)
                   for line in out.splitlines()), out
    shutil.rmtree(lists)


def test_backup_into_a_missing_directory_fails_and_says_why():
    with Daemon(extra_config=GREY_CONFIG) as d, LogOnFailure(d, _tail):
        missing = os.path.join(d.tmp, "no-such-dir")
        r = d.ctl("backup", os.path.join(missing, "b.tar"), check=False)
        assert r.returncode == 1, r
        assert r.stderr.strip() == "smarthostctl: cannot write the " \
            "archive in %s: No such file or directory" % missing, r
        assert not os.path.exists(missing)
        # The daemon is fine and the next backup works.
        r = d.ctl("backup", os.path.join(d.tmp, "b.tar"))
        assert os.path.exists(os.path.join(d.tmp, "b.tar"))


def test_backup_to_an_unwritable_place_fails_and_leaves_nothing():
    with Daemon(extra_config=GREY_CONFIG) as d, LogOnFailure(d, _tail):
        # A directory where the archive should be: the rename fails.
        target = os.path.join(d.tmp, "taken")
        os.mkdir(target)
        open(os.path.join(target, "x"), "w").close()
        r = d.ctl("backup", target, check=False)
        assert r.returncode == 1, r
        assert r.stderr.startswith("smarthostctl: backup failed: %s: " %
                                   target), r
        assert [n for n in os.listdir(d.tmp) if n.startswith("taken.")] \
            == [], os.listdir(d.tmp)
        assert not os.path.exists(os.path.join(d.state, "backup"))


def test_backup_refused_to_an_unprivileged_client():
    if os.geteuid() != 0:
        return
    nobody = pwd.getpwnam("nobody")
    with Daemon(extra_config=GREY_CONFIG) as d, LogOnFailure(d, _tail):
        os.chmod(d.sock, 0o666)
        target = os.path.join(d.tmp, "b.tar")

        def as_nobody():
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
        r = subprocess.run([SMARTHOSTCTL, "-s", d.sock, "backup", target],
                           capture_output=True, text=True, timeout=30,
                           preexec_fn=as_nobody)
        assert r.returncode == 1, r
        assert r.stderr.strip() == "smarthostctl: permission denied", r
        assert not os.path.exists(target)
        # A read-only request from the same client is still answered.
        r = subprocess.run([SMARTHOSTCTL, "-s", d.sock, "show", "status"],
                           capture_output=True, text=True, timeout=30,
                           preexec_fn=as_nobody)
        assert r.returncode == 0, r


def test_backup_of_a_fifo_in_a_files_place_fails_at_once():
    """A named file replaced by a FIFO is refused, not read forever."""
    tmp = tempfile.mkdtemp(prefix="smarthostd-backup-fifo-")
    table = os.path.join(tmp, "common.txt")
    with open(table, "w") as f:
        f.write("example.org\n")
    d = Daemon()
    d.write_config(base_config(d.tmp, GREY_CONFIG +
                               'table "common" file "%s"\n' % table))
    with d, LogOnFailure(d, _tail):
        os.unlink(table)
        os.mkfifo(table)
        target = os.path.join(d.tmp, "b.tar")
        r = d.ctl("backup", target, check=False)
        assert r.returncode == 1, r
        assert r.stderr.strip() == "smarthostctl: backup failed: %s: %s: " \
            "not a regular file" % (target, table), r
        assert [n for n in os.listdir(d.tmp) if n.startswith("b.tar")] \
            == [], os.listdir(d.tmp)
        # The next backup is not refused as one in progress.
        os.unlink(table)
        open(table, "w").close()
        d.ctl("backup", target)
        assert os.path.exists(target)
    shutil.rmtree(tmp)
