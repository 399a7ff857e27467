#!/usr/bin/env python3
"""fsync-probe.py DIR [SECONDS] -- this disk's durable write rate.

Writes 10 KB then fdatasync()s, in a loop, for SECONDS (default 2) in a
scratch file under DIR, and prints the rates as "name rate/s" lines:

  append     each write extends the file (size changes: a journal commit
             per fdatasync, like a new queue file or a growing database)
  overwrite  each write rewrites the same preallocated 10 KB (data only)

The file is removed afterwards.  Nothing here is a threshold: it reports.
"""

import os
import sys
import time

BLOCK = b"x" * 10240


def probe(path, seconds, append):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        if not append:
            os.write(fd, BLOCK)
            os.fsync(fd)
        n = 0
        start = time.monotonic()
        deadline = start + seconds
        while True:
            if append:
                os.write(fd, BLOCK)
            else:
                os.pwrite(fd, BLOCK, 0)
            os.fdatasync(fd)
            n += 1
            now = time.monotonic()
            if now >= deadline:
                break
        return n / (now - start)
    finally:
        os.close(fd)
        os.unlink(path)


def main():
    if len(sys.argv) not in (2, 3):
        sys.stderr.write("usage: fsync-probe.py DIR [SECONDS]\n")
        sys.exit(2)
    directory = sys.argv[1]
    seconds = float(sys.argv[2]) if len(sys.argv) == 3 else 2.0
    path = os.path.join(directory, ".fsync-probe.%d" % os.getpid())
    for name, append in (("append", True), ("overwrite", False)):
        print("%s %.0f" % (name, probe(path, seconds, append)))


if __name__ == "__main__":
    main()
