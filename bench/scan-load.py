#!/usr/bin/env python3
"""bench/scan-load.py -- the load client of bench/scan.sh (loopback only).

  send PORT KIND COUNT SESSIONS RATE LABEL LOG
      Send COUNT messages to 127.0.0.1:PORT over SESSIONS concurrent
      sessions, one message per connection (like smtp-source), one
      recipient each.  RATE 0: as fast as the server answers (closed
      loop); otherwise paced at RATE messages/s in total (open loop:
      message i is due at start + i/RATE).  KIND:

        text     about 10 KB of plain text
        attach   about 100 KB: a short text part and a base64
                 application/pdf attachment of random bytes

      Every message differs (its id in the body, fresh random bytes in
      the attachment), so no scanner can answer from a cache of clean
      files.  Message i with i % 100 == 50 (1%) also carries EICAR as a
      base64 attachment "eicar.txt".  Each has "X-Bench-Id: LABEL.i"; the
      recipient is rcpt@dst.example, or lat@lat.example with -l in LABEL
      (the latency runs, routed to a latency sink).

      LOG gets "ID EOD_NS ACK_NS" for every message answered 2xx at the
      end of DATA (EOD: the final "." handed to the kernel; ACK: the reply
      read), the format relay-lat.py report reads.  stdout gets one line:

        sent N accepted N rejected N tempfailed N eicar N eicar_accepted N
        seconds S rate R p50_ms X p99_ms Y codes C:N,...

      p50/p99: end of DATA -> the server's reply, over every message.
      Exits 1 on a failed session (connection refused or closed, an
      unexpected reply before DATA's end); a 4xx/5xx after DATA is
      counted, not an error.
"""

import asyncio
import base64
import math
import os
import random
import sys
import time

from smtpreply import SMTPError, quit_session, reply

HOST = "127.0.0.1"
EICAR = (b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-"
         b"FILE!$H+H*")
WORDS = ("the of and to in is that for it as was with be by on not he "
         "this are or his from at which but have an they you were her "
         "all she there would their we him been has when who will more "
         "no if out so said what up its about into than them can only "
         "other new some could time these two may then do first any my "
         "now such like our over man me even most made after also did "
         "many before must through back years where much your way well "
         "down should because each just those people how too little "
         "state good very make world still own see men work long get "
         "here between both life being under never day same another "
         "know while last might us great old year off come since against "
         "go came right used take three invoice shipment meeting report "
         "quarterly figures attached please find regards schedule").split()
BOUNDARY = "=_scan-bench-boundary_="


def fold(text, width=72):
    out, line = [], []
    n = 0
    for w in text.split():
        if n + len(w) + 1 > width and line:
            out.append(" ".join(line))
            line, n = [], 0
        line.append(w)
        n += len(w) + 1
    if line:
        out.append(" ".join(line))
    return "\r\n".join(out) + "\r\n"


def prose(rng, size):
    words = []
    n = 0
    while n < size:
        w = rng.choice(WORDS)
        words.append(w)
        n += len(w) + 1
    return fold(" ".join(words))


def b64_lines(data):
    enc = base64.b64encode(data)
    return b"".join(enc[i:i + 76] + b"\r\n" for i in range(0, len(enc), 76))


class Messages:
    """The message bodies, text pre-made, the per-message parts added."""

    def __init__(self, kind):
        rng = random.Random(6)
        self.kind = kind
        if kind == "text":
            self.text = prose(rng, 10 * 1024 - 700).encode()
        else:
            self.text = prose(rng, 1500).encode()
            # Base64 once; each message gets a line of fresh bytes
            # before it (57 bytes: one 76-character line).
            self.blob = b64_lines(rng.randbytes(72 * 1024))
        self.eicar = (
            ("--%s\r\nContent-Type: text/plain; name=\"eicar.txt\"\r\n"
             "Content-Disposition: attachment; filename=\"eicar.txt\"\r\n"
             "Content-Transfer-Encoding: base64\r\n\r\n" % BOUNDARY).encode()
            + b64_lines(EICAR))

    def make(self, mid, rcpt, eicar):
        head = ("From: Bench Sender <sender@src.example>\r\n"
                "To: <%s>\r\n"
                "Subject: scan.sh %s\r\n"
                "Date: %s\r\n"
                "Message-ID: <%s@scan-load.example>\r\n"
                "X-Bench-Id: %s\r\n"
                "MIME-Version: 1.0\r\n" % (
                    rcpt, mid,
                    time.strftime("%a, %d %b %Y %H:%M:%S +0000",
                                  time.gmtime()), mid, mid)).encode()
        first = ("Message %s.\r\n" % mid).encode()
        if self.kind == "text" and not eicar:
            return (head + b"Content-Type: text/plain; charset=us-ascii\r\n"
                    b"\r\n" + first + self.text)
        parts = [head,
                 ("Content-Type: multipart/mixed; boundary=\"%s\"\r\n\r\n"
                  "This is a multi-part message in MIME format.\r\n\r\n"
                  "--%s\r\nContent-Type: text/plain; charset=us-ascii\r\n"
                  "\r\n" % (BOUNDARY, BOUNDARY)).encode(),
                 first, self.text]
        if self.kind == "attach":
            parts.append(("--%s\r\nContent-Type: application/pdf; "
                          "name=\"report-%s.pdf\"\r\n"
                          "Content-Disposition: attachment; "
                          "filename=\"report-%s.pdf\"\r\n"
                          "Content-Transfer-Encoding: base64\r\n\r\n" % (
                              BOUNDARY, mid, mid)).encode())
            parts.append(b64_lines(os.urandom(57)) + self.blob)
        if eicar:
            parts.append(self.eicar)
        parts.append(("--%s--\r\n" % BOUNDARY).encode())
        return b"".join(parts)


def dot_stuff(msg):
    if msg.startswith(b"."):
        msg = b"." + msg
    return msg.replace(b"\r\n.", b"\r\n..")


def cmd_send(port, kind, count, sessions, rate, label, log_path):
    msgs = Messages(kind)
    rcpt = "lat@lat.example" if "-l" in label else "rcpt@dst.example"
    st = {"next": 0, "error": None}
    log, lat, codes = [], [], {}
    counts = {"eicar": 0, "eicar_accepted": 0}
    start = time.monotonic() + 0.1

    async def one(i):
        mid = "%s.%d" % (label, i)
        eicar = i % 100 == 50
        data = dot_stuff(msgs.make(mid, rcpt, eicar)) + b".\r\n"
        if rate > 0:
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            # drain() returns only once everything is in the kernel.
            writer.transport.set_write_buffer_limits(high=0)
            await reply(reader, 220)
            writer.write(b"EHLO scan-load.example\r\n")
            await reply(reader, 250)
            writer.write(b"MAIL FROM:<sender@src.example>\r\n")
            await reply(reader, 250)
            writer.write(("RCPT TO:<%s>\r\n" % rcpt).encode())
            await reply(reader, 250)
            writer.write(b"DATA\r\n")
            await reply(reader, 354)
            writer.write(data)
            await writer.drain()
            eod = time.time_ns()
            code = await reply(reader)
            ack = time.time_ns()
            lat.append((ack - eod) / 1e6)
            codes[code] = codes.get(code, 0) + 1
            if eicar:
                counts["eicar"] += 1
            if code // 100 == 2:
                log.append("%s %d %d\n" % (mid, eod, ack))
                if eicar:
                    counts["eicar_accepted"] += 1
            await quit_session(reader, writer)
        finally:
            writer.close()

    async def session():
        while st["next"] < count and st["error"] is None:
            i = st["next"]
            st["next"] += 1
            try:
                await one(i)
            except (SMTPError, OSError, asyncio.IncompleteReadError) as e:
                st["error"] = "%s.%d: %s" % (label, i,
                                             str(e) or e.__class__.__name__)

    async def main():
        await asyncio.gather(*(session() for _ in range(sessions)))

    t0 = time.monotonic()
    asyncio.run(main())
    secs = time.monotonic() - t0
    with open(log_path, "a") as f:
        f.write("".join(log))
    if st["error"] is not None:
        print("scan-load.py send: %s" % st["error"], file=sys.stderr)
        sys.exit(1)
    lat.sort()

    def pct(p):
        if not lat:
            return "nan"
        return "%.1f" % lat[max(0, math.ceil(p * len(lat)) - 1)]

    n = len(lat)
    acc = sum(v for c, v in codes.items() if c // 100 == 2)
    rej = sum(v for c, v in codes.items() if c // 100 == 5)
    tmp = sum(v for c, v in codes.items() if c // 100 == 4)
    print("sent %d accepted %d rejected %d tempfailed %d eicar %d "
          "eicar_accepted %d seconds %.3f rate %.1f p50_ms %s p99_ms %s "
          "codes %s" % (
              n, acc, rej, tmp, counts["eicar"], counts["eicar_accepted"],
              secs, n / secs if secs > 0 else 0, pct(0.50), pct(0.99),
              ",".join("%d:%d" % kv for kv in sorted(codes.items()))))


def main(argv):
    if len(argv) == 9 and argv[1] == "send" and argv[3] in ("text",
                                                              "attach"):
        cmd_send(int(argv[2]), argv[3], int(argv[4]), int(argv[5]),
                 float(argv[6]), argv[7], argv[8])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
