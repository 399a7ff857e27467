"""The SMTP reply reader that bench/relay-lat.py and bench/scan-load.py
share: read one (multi-line) reply from an asyncio stream."""


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
