"""What bench/relay-lat.py and bench/scan-load.py share of the SMTP
dialogue on asyncio streams: reading one (multi-line) reply, and
ending a session."""

import asyncio


class SMTPError(Exception):
    pass


async def reply(reader, want=None):
    """The reply's code; SMTPError if the connection closed, or if want
    is given and the code is another."""
    while True:
        line = await reader.readline()
        if not line:
            raise SMTPError("connection closed, expected %s" % want)
        if len(line) < 4 or line[3:4] != b"-":
            break
    code = int(line[:3]) if line[:3].isdigit() else 0
    if want is not None and code != want:
        raise SMTPError("expected %d, got %r" % (want, line.strip()))
    return code


async def quit_session(reader, writer):
    """QUIT, then wait up to 5 s for the server to close."""
    writer.write(b"QUIT\r\n")
    await writer.drain()
    try:
        await asyncio.wait_for(reader.read(), 5)
    except asyncio.TimeoutError:
        pass
