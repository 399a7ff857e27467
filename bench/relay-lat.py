#!/usr/bin/env python3
"""bench/relay-lat.py -- helpers for bench/relay.sh (loopback only).

  watch OUT
      Read smtp-sink -c output on stdin ("sess=N quit=N mesg=N", one
      update per \\r) and append "NS MESG" to OUT whenever the message
      counter changes (NS: CLOCK_REALTIME nanoseconds when it was read).
      relay.sh takes the end of a throughput run from this file.

  sink PORT LOG
      A minimal SMTP server on 127.0.0.1:PORT (EHLO, PIPELINING, no TLS)
      that appends "ID NS" to LOG for every message it receives, ID being
      the message's X-Bench-Id header and NS the CLOCK_REALTIME time at
      which its final "." arrived.  Used only for latency, where
      per-message arrival times are needed (smtp-sink has none).

  send PORT LABEL COUNT SESSIONS RATE SIZE LOG
      Send COUNT messages of about SIZE bytes to 127.0.0.1:PORT over
      SESSIONS concurrent sessions (several messages per session), paced
      at RATE messages/s in total (open loop: message i is due at
      start + i/RATE).  Each has "X-Bench-Id: LABEL.i" and
      "X-Sent: <ns>" headers.  LOG gets "ID EOD_NS ACK_NS": the time the
      final "." was handed to the kernel and the time its 250 arrived.
      Exits 1 on any SMTP error.

  report SENTLOG ARRIVALLOG LABEL TIMEOUT
      Wait (at most TIMEOUT seconds without progress) until every message
      of SENTLOG has arrived in ARRIVALLOG, then print
      "p50_ms p99_ms arrived missing duplicates" for the messages whose ID
      starts with LABEL., latency being arrival minus end of DATA.
"""

import asyncio
import math
import os
import re
import select
import signal
import sys
import time

from smtpreply import SMTPError, quit_session, reply

HOST = "127.0.0.1"


def cmd_watch(out_path):
    fd = sys.stdin.fileno()
    buf = b""
    last = -1
    pending = []
    with open(out_path, "a") as out:
        while True:
            ready, _, _ = select.select([fd], [], [], 0.02)
            if ready:
                data = os.read(fd, 65536)
                if not data:
                    break
                now = time.time_ns()
                buf += data
                parts = re.split(rb"[\r\n]", buf)
                buf = parts.pop()
                for part in parts:
                    m = re.search(rb"mesg=(\d+)", part)
                    if m:
                        n = int(m.group(1))
                        if n != last:
                            pending.append("%d %d\n" % (now, n))
                            last = n
            if pending and (not ready or len(pending) > 200):
                out.write("".join(pending))
                out.flush()
                pending = []
        if pending:
            out.write("".join(pending))


# ------------------------------------------------------------------ sink

def cmd_sink(port, log_path):
    log = open(log_path, "a")
    pending = []
    id_re = re.compile(rb"\nx-bench-id:[ \t]*([^\r\n]*)", re.I)

    async def session(reader, writer):
        try:
            writer.write(b"220 relay-lat-sink ESMTP\r\n")
            await writer.drain()
            while True:
                line = await reader.readline()
                if not line:
                    break
                verb = line[:4].upper()
                if verb == b"EHLO":
                    writer.write(b"250-relay-lat-sink\r\n250-PIPELINING\r\n"
                                 b"250-8BITMIME\r\n250 SIZE 104857600\r\n")
                elif verb == b"HELO":
                    writer.write(b"250 relay-lat-sink\r\n")
                elif verb == b"MAIL":
                    writer.write(b"250 2.1.0 Ok\r\n")
                elif verb == b"RCPT":
                    writer.write(b"250 2.1.5 Ok\r\n")
                elif verb == b"DATA":
                    writer.write(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    await writer.drain()
                    data = await reader.readuntil(b"\r\n.\r\n")
                    now = time.time_ns()
                    head = b"\n" + data[:data.find(b"\r\n\r\n") + 2]
                    m = id_re.search(head)
                    mid = m.group(1).decode("ascii", "replace") if m else "-"
                    pending.append("%s %d\n" % (mid, now))
                    writer.write(b"250 2.0.0 Ok\r\n")
                elif verb in (b"RSET", b"NOOP"):
                    writer.write(b"250 2.0.0 Ok\r\n")
                elif verb == b"QUIT":
                    writer.write(b"221 2.0.0 Bye\r\n")
                    await writer.drain()
                    break
                else:
                    writer.write(b"502 5.5.2 Error: command not recognized\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def flusher():
        while True:
            await asyncio.sleep(0.05)
            if pending:
                log.write("".join(pending))
                log.flush()
                del pending[:]

    async def main():
        server = await asyncio.start_server(session, HOST, port,
                                            limit=64 * 1024 * 1024,
                                            backlog=1024)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        flush_task = asyncio.create_task(flusher())
        async with server:
            await stop.wait()
        flush_task.cancel()

    asyncio.run(main())
    log.write("".join(pending))
    log.close()


# ------------------------------------------------------------------ send

def cmd_send(port, label, count, sessions, rate, size, log_path):
    line = b"X" * 76 + b"\r\n"
    body = line * max(1, size // len(line))
    state = {"next": 0, "error": None}
    log = []
    start = time.monotonic() + 0.2

    async def session():
        reader, writer = await asyncio.open_connection(HOST, port)
        # drain() returns only once everything is in the kernel: the
        # end of DATA is when the final "." was written.
        writer.transport.set_write_buffer_limits(high=0)
        await reply(reader, 220)
        writer.write(b"EHLO relay-lat-client.example\r\n")
        await reply(reader, 250)
        while state["next"] < count and state["error"] is None:
            i = state["next"]
            state["next"] += 1
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            mid = "%s.%d" % (label, i)
            writer.write(b"MAIL FROM:<lat-sender@src.example>\r\n")
            await reply(reader, 250)
            writer.write(b"RCPT TO:<lat@lat.example>\r\n")
            await reply(reader, 250)
            writer.write(b"DATA\r\n")
            await reply(reader, 354)
            head = ("From: <lat-sender@src.example>\r\n"
                    "To: <lat@lat.example>\r\n"
                    "Subject: relay.sh latency %s\r\n"
                    "Message-Id: <%s@relay-lat-client.example>\r\n"
                    "X-Bench-Id: %s\r\n"
                    "X-Sent: %d\r\n\r\n" % (mid, mid, mid, time.time_ns()))
            writer.write(head.encode() + body + b".\r\n")
            await writer.drain()
            eod = time.time_ns()
            await reply(reader, 250)
            log.append("%s %d %d\n" % (mid, eod, time.time_ns()))
        await quit_session(reader, writer)
        writer.close()

    async def guarded():
        try:
            await session()
        except (SMTPError, OSError, asyncio.IncompleteReadError) as e:
            state["error"] = str(e) or e.__class__.__name__

    async def main():
        await asyncio.gather(*(guarded() for _ in range(sessions)))

    asyncio.run(main())
    with open(log_path, "a") as f:
        f.write("".join(log))
    if state["error"] is not None:
        print("relay-lat.py send: %s" % state["error"], file=sys.stderr)
        sys.exit(1)


# ------------------------------------------------------------------ report

def read_pairs(path, prefix):
    rows = []
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0].startswith(prefix):
                    rows.append(parts)
    except FileNotFoundError:
        pass
    return rows


def cmd_report(sent_path, arrived_path, label, timeout):
    prefix = label + "."
    sent = {p[0]: int(p[1]) for p in read_pairs(sent_path, prefix)}
    seen = -1
    deadline = time.monotonic() + timeout
    while True:
        arrived = {}
        for p in read_pairs(arrived_path, prefix):
            arrived.setdefault(p[0], []).append(int(p[1]))
        n = sum(1 for k in sent if k in arrived)
        if n == len(sent):
            break
        if n != seen:
            seen = n
            deadline = time.monotonic() + timeout
        elif time.monotonic() > deadline:
            break
        time.sleep(0.2)
    # Late duplicates: give the MTA a moment after the last arrival.
    time.sleep(1)
    arrived = {}
    for p in read_pairs(arrived_path, prefix):
        arrived.setdefault(p[0], []).append(int(p[1]))
    lat = sorted((min(arrived[k]) - t) / 1e6 for k, t in sent.items()
                 if k in arrived)
    missing = sum(1 for k in sent if k not in arrived)
    dups = sum(len(v) - 1 for v in arrived.values())

    def pct(p):
        if not lat:
            return "nan"
        return "%.1f" % lat[max(0, math.ceil(p * len(lat)) - 1)]

    print(pct(0.50), pct(0.99), len(lat), missing, dups)


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    cmd, args = argv[1], argv[2:]
    if cmd == "watch" and len(args) == 1:
        cmd_watch(args[0])
    elif cmd == "sink" and len(args) == 2:
        cmd_sink(int(args[0]), args[1])
    elif cmd == "send" and len(args) == 7:
        cmd_send(int(args[0]), args[1], int(args[2]), int(args[3]),
                 float(args[4]), int(args[5]), args[6])
    elif cmd == "report" and len(args) == 4:
        cmd_report(args[0], args[1], args[2], float(args[3]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
