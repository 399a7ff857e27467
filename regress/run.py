#!/usr/bin/env python3
"""The one test runner for smarthostd: `make test` calls it.

It runs the C unit tests in regress/unit (each prints `ok - NAME` or
`not ok - NAME: why` lines) and every `test_*` function of the
regress/test_*.py modules, then prints one closing line,
`N passed, N failed`, and exits non-zero when anything failed.

Integration tests must not send a packet off this machine, so the runner
re-executes itself inside a new network namespace with only loopback up
(unshare --net --mount, so that tests may mount a small tmpfs; as
non-root with --map-root-user).

    python3 regress/run.py [-k SUBSTRING] [-x]
"""

import argparse
import importlib
import os
import subprocess
import sys
import time
import traceback

REGRESS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(REGRESS)
UNIT_TESTS = ["imsg_test", "envelope_test", "mailaddr_test",
              "bounce_test", "addrset_test", "grey_test", "message_test"]


def enter_network_namespace():
    if os.environ.get("SMARTHOSTD_TEST_NETNS") == "1":
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        return
    cmd = ["unshare", "--net", "--mount"]
    if os.geteuid() != 0:
        cmd.append("--map-root-user")
    env = dict(os.environ, SMARTHOSTD_TEST_NETNS="1")
    probe = subprocess.run(cmd + ["true"], capture_output=True)
    if probe.returncode != 0:
        sys.exit("run.py: cannot create a network namespace (%s); the "
                 "integration tests need one so that nothing leaves this "
                 "machine" % probe.stderr.decode().strip())
    os.execvpe(cmd[0], cmd + [sys.executable] + sys.argv, env)


class Results:
    def __init__(self, stop_on_failure):
        self.passed = 0
        self.failed = []
        self.stop_on_failure = stop_on_failure

    def ok(self, name, seconds=None):
        self.passed += 1
        took = "" if seconds is None else " (%.1fs)" % seconds
        print("ok - %s%s" % (name, took), flush=True)

    def not_ok(self, name, why):
        self.failed.append(name)
        print("not ok - %s: %s" % (name, why), flush=True)
        if self.stop_on_failure:
            self.finish()


    def finish(self):
        if self.failed:
            print("\nfailed:\n  " + "\n  ".join(self.failed))
        print("%d passed, %d failed" % (self.passed, len(self.failed)))
        sys.exit(1 if self.failed else 0)


def run_unit_tests(results, pattern):
    for name in UNIT_TESTS:
        path = os.path.join(REGRESS, "unit", name)
        if pattern and pattern not in name:
            continue
        if not os.access(path, os.X_OK):
            results.not_ok(name, "not built (run make test)")
            continue
        proc = subprocess.run([path], capture_output=True, text=True,
                              timeout=300)
        seen = 0
        for line in proc.stdout.splitlines():
            if line.startswith("ok - "):
                results.ok("unit." + line[5:])
                seen += 1
            elif line.startswith("not ok - "):
                test, _, why = line[9:].partition(": ")
                results.not_ok("unit." + test, why)
                seen += 1
        if proc.returncode != 0 and seen == 0:
            results.not_ok(name, "exited %d: %s" % (proc.returncode,
                                                    proc.stderr.strip()))
        elif proc.returncode != 0 and not results.failed:
            results.not_ok(name, "exited %d without a failing case" %
                           proc.returncode)


def run_python_tests(results, pattern):
    sys.path.insert(0, REGRESS)
    modules = sorted(f[:-3] for f in os.listdir(REGRESS)
                     if f.startswith("test_") and f.endswith(".py"))
    for modname in modules:
        module = importlib.import_module(modname)
        tests = [(n, f) for n, f in vars(module).items()
                 if n.startswith("test_") and callable(f)]
        for name, func in sorted(tests, key=lambda t: t[0]):
            full = "%s.%s" % (modname[5:], name[5:])
            if pattern and pattern not in full:
                continue
            start = time.monotonic()
            try:
                func()
            except Exception as e:
                detail = traceback.format_exc(limit=-3).strip()
                results.not_ok(full, "%s\n%s" % (e, detail))
            else:
                results.ok(full, time.monotonic() - start)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-k", dest="pattern", help="run tests whose name "
                    "contains this")
    ap.add_argument("-x", dest="stop", action="store_true",
                    help="stop at the first failure")
    args = ap.parse_args()
    enter_network_namespace()
    os.chdir(REPO)
    results = Results(args.stop)
    run_unit_tests(results, args.pattern)
    run_python_tests(results, args.pattern)
    results.finish()


if __name__ == "__main__":
    main()
