/*
 * Copyright (c) 2026 The smarthostd developers
 *
 * Permission to use, copy, modify, and distribute this software for any
 * purpose with or without fee is hereby granted, provided that the above
 * copyright notice and this permission notice appear in all copies.
 *
 * THE SOFTWARE IS PROVIDED "AS IS" AND THE AUTHOR DISCLAIMS ALL WARRANTIES
 * WITH REGARD TO THIS SOFTWARE INCLUDING ALL IMPLIED WARRANTIES OF
 * MERCHANTABILITY AND FITNESS. IN NO EVENT SHALL THE AUTHOR BE LIABLE FOR
 * ANY SPECIAL, DIRECT, INDIRECT, OR CONSEQUENTIAL DAMAGES OR ANY DAMAGES
 * WHATSOEVER RESULTING FROM LOSS OF USE, DATA OR PROFITS, WHETHER IN AN
 * ACTION OF CONTRACT, NEGLIGENCE OR OTHER TORTIOUS ACTION, ARISING OUT OF
 * OR IN CONNECTION WITH THE USE OR PERFORMANCE OF THIS SOFTWARE.
 */

/*
 * Unit tests for smarthostd/bounce.c.  Each case prints one
 * "ok - name" or "not ok - name: reason" line; the exit status is 1 if
 * any failed.
 *
 *	bounce_test [-d] -w FILE
 *
 * writes the sample failure report (-d: the delay warning) to FILE
 * instead, for regress/test_bounce.py to parse with Python's email module.
 */

#include <sys/types.h>

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smarthostd.h"

#define REQUIRE(cond, ...) do {						\
	if (!(cond)) {							\
		snprintf(why, sizeof(why), __VA_ARGS__);		\
		goto fail;						\
	}								\
} while (0)

#define NOW		1767225600	/* Thu, 01 Jan 2026 00:00:00 UTC */
#define ARRIVED		(NOW - 3600)
#define LIFETIME	(4 * 86400)
#define BOUNCE_ID	"fedcba9876543210"
#define HOSTNAME	"relay.example.net"
#define BODY_MARKER	"SECRET-BODY-TEXT"

static char		 why[512];

static const char	 sample_body[] =
	"Received: from mx.example.org (mx.example.org [192.0.2.1])\r\n"
	"\tby relay.example.net with ESMTPS id 0123456789abcdef\r\n"
	"\tfor <bob@example.com>; Wed, 31 Dec 2025 23:00:00 +0000\r\n"
	"From: Alice <alice@example.org>\r\n"
	"To: bob@example.com, carol@example.com\r\n"
	"Subject: Quarterly figures\r\n"
	"Message-ID: <q4@example.org>\r\n"
	"\r\n"
	"Hello Bob,\r\n"
	"\r\n"
	BODY_MARKER "\r\n"
	"Subject: not a header, in the body\r\n";

/*
 * Alice's message to four recipients: bob failed with a reply from the
 * remote server, carol was delivered, dave is still pending after a
 * greylisting reply, erin failed when the lifetime ran out after a
 * connection failure.
 */
static void
sample(struct envelope *e)
{
	struct envelope_rcpt	*r;

	memset(e, 0, sizeof(*e));
	(void)strlcpy(e->id, "0123456789abcdef", sizeof(e->id));
	e->arrived = ARRIVED;
	e->flags = ENVELOPE_TLS;
	e->body_size = sizeof(sample_body) - 1;
	(void)strlcpy(e->sender, "alice@example.org", sizeof(e->sender));
	(void)strlcpy(e->client_addr, "192.0.2.1", sizeof(e->client_addr));
	(void)strlcpy(e->helo, "mx.example.org", sizeof(e->helo));
	e->nrcpt = 4;
	if ((e->rcpts = calloc(4, sizeof(*e->rcpts))) == NULL)
		abort();
	r = e->rcpts;
	(void)strlcpy(r[0].addr, "bob@example.com", sizeof(r[0].addr));
	(void)strlcpy(r[0].action, "outbound", sizeof(r[0].action));
	r[0].state = RCPT_FAILED;
	r[0].attempts = 1;
	(void)strlcpy(r[0].last_error, "host mx.example.com[198.51.100.7] "
	    "said: 550 5.1.1 <bob@example.com>: Recipient address rejected: "
	    "User unknown in virtual mailbox table",
	    sizeof(r[0].last_error));
	(void)strlcpy(r[1].addr, "carol@example.com", sizeof(r[1].addr));
	(void)strlcpy(r[1].action, "outbound", sizeof(r[1].action));
	r[1].state = RCPT_DELIVERED;
	r[1].attempts = 1;
	(void)strlcpy(r[2].addr, "dave@example.com", sizeof(r[2].addr));
	(void)strlcpy(r[2].action, "outbound", sizeof(r[2].action));
	r[2].state = RCPT_PENDING;
	r[2].attempts = 3;
	(void)strlcpy(r[2].last_error, "host mx.example.com [198.51.100.7]: "
	    "said: 451 4.7.1 Greylisted, try again later",
	    sizeof(r[2].last_error));
	(void)strlcpy(r[3].addr, "erin@example.com", sizeof(r[3].addr));
	(void)strlcpy(r[3].action, "outbound", sizeof(r[3].action));
	r[3].state = RCPT_FAILED;
	r[3].attempts = 12;
	(void)strlcpy(r[3].last_error, "connect to mx.example.com"
	    "[198.51.100.7]:25: Connection refused", sizeof(r[3].last_error));
}

static int
build(const struct envelope *e, const void *body, size_t len, int delayed,
    struct envelope *out, char **msg, size_t *msglen)
{
	unsigned char	*b;
	int		 r;

	r = bounce_build(e, body, len, delayed, LIFETIME, HOSTNAME, NOW,
	    BOUNCE_ID, out, &b, msglen);
	*msg = (char *)b;
	return (r);
}

static int
contains(const char *msg, size_t len, const char *s)
{
	return (memmem(msg, len, s, strlen(s)) != NULL);
}

static size_t
count(const char *msg, size_t len, const char *s)
{
	const char	*p = msg, *end = msg + len, *q;
	size_t		 n = 0, slen = strlen(s);

	while ((q = memmem(p, (size_t)(end - p), s, slen)) != NULL) {
		n++;
		p = q + 1;
	}
	return (n);
}

/*
 * CRLF line endings only, every line at most 998 octets, 7-bit only, and
 * the message ends with CRLF.  "" if so, the reason if not.
 */
static const char *
wellformed(const char *msg, size_t len)
{
	static char	 reason[128];
	size_t		 i, col = 0, line = 1;
	unsigned char	 c;

	for (i = 0; i < len; i++) {
		c = (unsigned char)msg[i];
		if (c == 0 || c >= 0x80) {
			snprintf(reason, sizeof(reason), "byte 0x%02x on line "
			    "%zu", c, line);
			return (reason);
		}
		if (c == '\r') {
			if (i + 1 >= len || msg[i + 1] != '\n') {
				snprintf(reason, sizeof(reason), "bare CR on "
				    "line %zu", line);
				return (reason);
			}
			continue;
		}
		if (c == '\n') {
			if (i == 0 || msg[i - 1] != '\r') {
				snprintf(reason, sizeof(reason), "bare LF on "
				    "line %zu", line);
				return (reason);
			}
			col = 0;
			line++;
			continue;
		}
		if (++col > 998) {
			snprintf(reason, sizeof(reason), "line %zu longer "
			    "than 998", line);
			return (reason);
		}
	}
	if (len < 2 || msg[len - 2] != '\r' || msg[len - 1] != '\n')
		return ("no CRLF at the end");
	return ("");
}

/* The boundary from the Content-Type header; static storage. */
static const char *
boundary_of(const char *msg, size_t len)
{
	static char	 b[128];
	const char	*p, *end;

	if ((p = memmem(msg, len, "boundary=\"", 10)) == NULL)
		return (NULL);
	p += 10;
	if ((end = memchr(p, '"', (size_t)(msg + len - p))) == NULL ||
	    (size_t)(end - p) >= sizeof(b))
		return (NULL);
	memcpy(b, p, (size_t)(end - p));
	b[end - p] = '\0';
	return (b);
}

/* The part after the n-th delimiter (1-based), up to the next. */
static int
part(const char *msg, size_t len, int n, const char **start, size_t *plen)
{
	const char	*b, *p, *q;
	char		 delim[140];
	int		 i;

	if ((b = boundary_of(msg, len)) == NULL)
		return (-1);
	snprintf(delim, sizeof(delim), "\r\n--%s", b);
	p = msg;
	for (i = 0; i < n; i++) {
		if ((p = memmem(p, (size_t)(msg + len - p), delim,
		    strlen(delim))) == NULL)
			return (-1);
		p += strlen(delim);
	}
	if ((q = memmem(p, (size_t)(msg + len - p), delim,
	    strlen(delim))) == NULL)
		return (-1);
	*start = p;
	*plen = (size_t)(q - p);
	return (0);
}

static int
test_null_sender_refused(void)
{
	struct envelope	 e, out;
	char		*msg = NULL;
	size_t		 len;

	sample(&e);
	e.sender[0] = '\0';
	REQUIRE(build(&e, sample_body, sizeof(sample_body) - 1, 0, &out,
	    &msg, &len) == -1, "bounced to <>");
	REQUIRE(msg == NULL && out.rcpts == NULL && len == 0,
	    "built something anyway");
	REQUIRE(build(&e, sample_body, sizeof(sample_body) - 1, 1, &out,
	    &msg, &len) == -1, "delay warning to <>");
	envelope_clear(&e);
	return (0);
 fail:
	envelope_clear(&e);
	free(msg);
	return (-1);
}

static int
test_bounce_of_bounce_refused(void)
{
	struct envelope	 e, out;
	char		*msg = NULL;
	size_t		 len;

	sample(&e);
	e.flags |= ENVELOPE_BOUNCE;
	REQUIRE(build(&e, sample_body, sizeof(sample_body) - 1, 0, &out,
	    &msg, &len) == -1, "bounced a bounce");
	REQUIRE(msg == NULL && out.rcpts == NULL, "built something anyway");
	REQUIRE(build(&e, sample_body, sizeof(sample_body) - 1, 1, &out,
	    &msg, &len) == -1, "delay warning for a bounce");
	envelope_clear(&e);
	return (0);
 fail:
	envelope_clear(&e);
	free(msg);
	return (-1);
}

static int
test_nothing_to_report_refused(void)
{
	struct envelope	 e, out;
	char		*msg = NULL;
	size_t		 len;

	sample(&e);
	e.rcpts[0].state = RCPT_DELIVERED;
	e.rcpts[3].state = RCPT_PENDING;
	REQUIRE(build(&e, sample_body, sizeof(sample_body) - 1, 0, &out,
	    &msg, &len) == -1, "failure report without a failed recipient");
	e.rcpts[2].state = RCPT_DELIVERED;
	e.rcpts[3].state = RCPT_FAILED;
	REQUIRE(build(&e, sample_body, sizeof(sample_body) - 1, 1, &out,
	    &msg, &len) == -1, "delay warning without a pending recipient");
	REQUIRE(msg == NULL && out.rcpts == NULL, "built something anyway");
	envelope_clear(&e);
	return (0);
 fail:
	envelope_clear(&e);
	free(msg);
	return (-1);
}

static int
test_only_failed_rcpts_listed(void)
{
	struct envelope	 e, out;
	char		*msg = NULL;
	const char	*p, *bad;
	size_t		 len, plen;

	memset(&out, 0, sizeof(out));
	sample(&e);
	REQUIRE(build(&e, sample_body, sizeof(sample_body) - 1, 0, &out,
	    &msg, &len) == 0, "bounce_build: %s", strerror(errno));
	REQUIRE(*(bad = wellformed(msg, len)) == '\0', "%s", bad);
	REQUIRE(part(msg, len, 2, &p, &plen) == 0, "no second part");
	REQUIRE(count(p, plen, "Final-Recipient:") == 2,
	    "%zu recipients reported, not 2",
	    count(p, plen, "Final-Recipient:"));
	REQUIRE(contains(p, plen, "Final-Recipient: rfc822; bob@example.com"),
	    "bob not reported");
	REQUIRE(contains(p, plen, "Final-Recipient: rfc822; erin@example.com"),
	    "erin not reported");
	REQUIRE(count(p, plen, "Action: failed\r\n") == 2, "action");
	REQUIRE(!contains(msg, len, "dave@example.com") &&
	    !contains(msg, len, "Greylisted"), "the pending recipient is in it");
	REQUIRE(part(msg, len, 1, &p, &plen) == 0, "no first part");
	REQUIRE(contains(p, plen, "<bob@example.com>:") &&
	    contains(p, plen, "<erin@example.com>:"),
	    "the text does not list both failed recipients");
	REQUIRE(contains(p, plen, "Connection refused"),
	    "the text lacks erin's error");
	/* carol is in the attached headers (To:), not in the report. */
	REQUIRE(part(msg, len, 2, &p, &plen) == 0 &&
	    !contains(p, plen, "carol"), "the delivered recipient is reported");
	REQUIRE(part(msg, len, 1, &p, &plen) == 0 &&
	    !contains(p, plen, "carol"), "the delivered recipient is listed");
	envelope_clear(&e);
	envelope_clear(&out);
	free(msg);
	return (0);
 fail:
	envelope_clear(&e);
	envelope_clear(&out);
	free(msg);
	return (-1);
}

static int
test_status_from_last_error(void)
{
	struct envelope	 e, out;
	char		*msg = NULL;
	const char	*p;
	size_t		 len, plen;

	memset(&out, 0, sizeof(out));
	sample(&e);
	REQUIRE(build(&e, sample_body, sizeof(sample_body) - 1, 0, &out,
	    &msg, &len) == 0, "bounce_build: %s", strerror(errno));
	REQUIRE(part(msg, len, 2, &p, &plen) == 0, "no second part");
	REQUIRE(contains(p, plen, "Reporting-MTA: dns; " HOSTNAME "\r\n"),
	    "Reporting-MTA");
	REQUIRE(contains(p, plen, "Arrival-Date: Wed, 31 Dec 2025 23:00:00 "
	    "+0000\r\n"), "Arrival-Date");
	REQUIRE(contains(p, plen, "Final-Recipient: rfc822; bob@example.com\r\n"
	    "Action: failed\r\nStatus: 5.1.1\r\n"
	    "Remote-MTA: dns; mx.example.com\r\n"
	    "Diagnostic-Code: smtp; 550 5.1.1 <bob@example.com>:"),
	    "bob's status from his last error");
	REQUIRE(contains(p, plen, "Final-Recipient: rfc822; erin@example.com\r\n"
	    "Action: failed\r\nStatus: 5.0.0\r\n"
	    "Diagnostic-Code: X-Smarthostd; connect to"),
	    "erin's status without a reply");
	REQUIRE(count(p, plen, "Last-Attempt-Date: Thu, 01 Jan 2026 00:00:00 "
	    "+0000\r\n") == 2, "Last-Attempt-Date");
	REQUIRE(!contains(p, plen, "Will-Retry-Until"),
	    "Will-Retry-Until in a failure report");
	envelope_clear(&e);
	envelope_clear(&out);
	free(msg);

	/* An enhanced code that disagrees with the reply's class is not one. */
	sample(&e);
	(void)strlcpy(e.rcpts[0].last_error, "554 4.1.1 mixed up",
	    sizeof(e.rcpts[0].last_error));
	(void)strlcpy(e.rcpts[3].last_error, "552-5.2.2 mailbox full",
	    sizeof(e.rcpts[3].last_error));
	REQUIRE(build(&e, sample_body, sizeof(sample_body) - 1, 0, &out,
	    &msg, &len) == 0, "bounce_build: %s", strerror(errno));
	REQUIRE(part(msg, len, 2, &p, &plen) == 0, "no second part");
	REQUIRE(contains(p, plen, "Status: 5.0.0\r\n"
	    "Diagnostic-Code: smtp; 554 4.1.1 mixed up\r\n"),
	    "a class mismatch taken as the status");
	REQUIRE(contains(p, plen, "Status: 5.2.2\r\n"
	    "Diagnostic-Code: smtp; 552-5.2.2 mailbox full\r\n"),
	    "a continuation line's code");
	envelope_clear(&e);
	envelope_clear(&out);
	free(msg);
	return (0);
 fail:
	envelope_clear(&e);
	envelope_clear(&out);
	free(msg);
	return (-1);
}

static int
test_delay_warning(void)
{
	struct envelope	 e, out;
	char		*msg = NULL;
	const char	*p, *bad;
	size_t		 len, plen;

	memset(&out, 0, sizeof(out));
	sample(&e);
	e.rcpts[1].state = RCPT_PENDING;	/* carol: no attempt yet */
	e.rcpts[1].attempts = 0;
	(void)strlcpy(e.rcpts[1].last_error, "550 5.1.1 stale",
	    sizeof(e.rcpts[1].last_error));
	REQUIRE(build(&e, sample_body, sizeof(sample_body) - 1, 1, &out,
	    &msg, &len) == 0, "bounce_build: %s", strerror(errno));
	REQUIRE(*(bad = wellformed(msg, len)) == '\0', "%s", bad);
	REQUIRE(contains(msg, len, "\r\nSubject: Delayed Mail (still being "
	    "retried)\r\n"), "Subject");
	REQUIRE(part(msg, len, 2, &p, &plen) == 0, "no second part");
	REQUIRE(count(p, plen, "Final-Recipient:") == 2, "%zu recipients",
	    count(p, plen, "Final-Recipient:"));
	REQUIRE(contains(p, plen, "Final-Recipient: rfc822; dave@example.com\r\n"
	    "Action: delayed\r\nStatus: 4.7.1\r\n"
	    "Remote-MTA: dns; mx.example.com\r\n"
	    "Diagnostic-Code: smtp; 451 4.7.1 Greylisted"), "dave");
	REQUIRE(contains(p, plen, "Final-Recipient: rfc822; carol@example.com\r\n"
	    "Action: delayed\r\nStatus: 4.0.0\r\n"), "carol: a 5.x.x delay");
	REQUIRE(count(p, plen, "Last-Attempt-Date:") == 1,
	    "Last-Attempt-Date for a recipient never tried");
	REQUIRE(count(p, plen, "Will-Retry-Until: Sun, 04 Jan 2026 "
	    "23:00:00 +0000\r\n") == 2, "Will-Retry-Until");
	REQUIRE(!contains(msg, len, "bob@example.com>:") &&
	    !contains(p, plen, "bob@") && !contains(p, plen, "erin@"),
	    "failed recipients in a delay warning");
	REQUIRE(part(msg, len, 1, &p, &plen) == 0 &&
	    contains(p, plen, "retried until") &&
	    contains(p, plen, "Sun, 04 Jan 2026"), "the text has no deadline");
	envelope_clear(&e);
	envelope_clear(&out);
	free(msg);
	return (0);
 fail:
	envelope_clear(&e);
	envelope_clear(&out);
	free(msg);
	return (-1);
}

static int
test_message_headers(void)
{
	struct envelope	 e, out;
	char		*msg = NULL;
	const char	*end;
	size_t		 len, hlen;

	memset(&out, 0, sizeof(out));
	sample(&e);
	REQUIRE(build(&e, sample_body, sizeof(sample_body) - 1, 0, &out,
	    &msg, &len) == 0, "bounce_build: %s", strerror(errno));
	REQUIRE((end = memmem(msg, len, "\r\n\r\n", 4)) != NULL,
	    "no header section");
	hlen = (size_t)(end - msg) + 2;
	REQUIRE(strncmp(msg, "Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n",
	    39) == 0, "Date");
	REQUIRE(contains(msg, hlen, "\r\nFrom: Mail Delivery System "
	    "<MAILER-DAEMON@" HOSTNAME ">\r\n"), "From");
	REQUIRE(contains(msg, hlen, "\r\nTo: <alice@example.org>\r\n"), "To");
	REQUIRE(contains(msg, hlen, "\r\nSubject: Undelivered Mail Returned "
	    "to Sender\r\n"), "Subject");
	REQUIRE(contains(msg, hlen, "\r\nMessage-ID: <" BOUNCE_ID "@"
	    HOSTNAME ">\r\n"), "Message-ID");
	REQUIRE(contains(msg, hlen, "\r\nAuto-Submitted: auto-replied\r\n"),
	    "Auto-Submitted");
	REQUIRE(contains(msg, hlen, "\r\nMIME-Version: 1.0\r\n"), "MIME");
	REQUIRE(contains(msg, hlen, "\r\nContent-Type: multipart/report; "
	    "report-type=delivery-status;"), "Content-Type");
	envelope_clear(&e);
	envelope_clear(&out);
	free(msg);
	return (0);
 fail:
	envelope_clear(&e);
	envelope_clear(&out);
	free(msg);
	return (-1);
}

static int
test_out_envelope_from_null_sender(void)
{
	struct envelope	 e, out, back;
	char		*msg = NULL;
	unsigned char	*rec = NULL;
	size_t		 len, reclen;

	memset(&out, 0, sizeof(out));
	memset(&back, 0, sizeof(back));
	sample(&e);
	REQUIRE(build(&e, sample_body, sizeof(sample_body) - 1, 0, &out,
	    &msg, &len) == 0, "bounce_build: %s", strerror(errno));
	REQUIRE(strcmp(out.id, BOUNCE_ID) == 0, "id %s", out.id);
	REQUIRE(out.arrived == NOW, "arrived");
	REQUIRE(out.flags == ENVELOPE_BOUNCE, "flags %#x", out.flags);
	REQUIRE(out.sender[0] == '\0', "sender <%s>", out.sender);
	REQUIRE(out.body_size == len, "body_size %llu, body %zu",
	    (unsigned long long)out.body_size, len);
	REQUIRE(strcmp(out.helo, HOSTNAME) == 0, "helo %s", out.helo);
	REQUIRE(out.nrcpt == 1 && out.rcpts != NULL, "nrcpt %u", out.nrcpt);
	REQUIRE(strcmp(out.rcpts[0].addr, "alice@example.org") == 0,
	    "rcpt %s", out.rcpts[0].addr);
	REQUIRE(out.rcpts[0].state == RCPT_PENDING, "state");
	REQUIRE(out.rcpts[0].action[0] == '\0', "action %s",
	    out.rcpts[0].action);
	REQUIRE(out.rcpts[0].attempts == 0 &&
	    out.rcpts[0].last_error[0] == '\0', "attempts or error");

	/* With its action filled in, the queue can store it. */
	(void)strlcpy(out.rcpts[0].action, "outbound",
	    sizeof(out.rcpts[0].action));
	REQUIRE(envelope_encode(&out, &rec, &reclen) == 0, "encode: %s",
	    strerror(errno));
	REQUIRE(envelope_decode(rec, reclen, &back) == 0, "decode: %s",
	    strerror(errno));
	REQUIRE(back.flags == ENVELOPE_BOUNCE && back.sender[0] == '\0',
	    "the round trip lost the bounce");
	free(rec);
	envelope_clear(&back);
	envelope_clear(&e);
	envelope_clear(&out);
	free(msg);
	return (0);
 fail:
	free(rec);
	envelope_clear(&back);
	envelope_clear(&e);
	envelope_clear(&out);
	free(msg);
	return (-1);
}

/* Headers cut at the empty line: the body never goes back. */
static int
test_headers_cut_at_empty_line(void)
{
	struct envelope	 e, out;
	char		*msg = NULL;
	const char	*p;
	size_t		 len, plen;

	memset(&out, 0, sizeof(out));
	sample(&e);
	REQUIRE(build(&e, sample_body, sizeof(sample_body) - 1, 0, &out,
	    &msg, &len) == 0, "bounce_build: %s", strerror(errno));
	REQUIRE(!contains(msg, len, BODY_MARKER), "the body is in the bounce");
	REQUIRE(!contains(msg, len, "Hello Bob"), "the body is in the bounce");
	REQUIRE(!contains(msg, len, "not a header"),
	    "the body is in the bounce");
	REQUIRE(part(msg, len, 3, &p, &plen) == 0, "no third part");
	REQUIRE(contains(p, plen, "Content-Type: text/rfc822-headers\r\n\r\n"
	    "Received: from mx.example.org"), "the part's start");
	REQUIRE(contains(p, plen, "\r\nSubject: Quarterly figures\r\n"
	    "Message-ID: <q4@example.org>"), "the original headers");
	REQUIRE(plen >= 30 && memcmp(p + plen - 30,
	    "Message-ID: <q4@example.org>\r\n", 30) == 0,
	    "the part does not end with the last header");
	envelope_clear(&e);
	envelope_clear(&out);
	free(msg);
	return (0);
 fail:
	envelope_clear(&e);
	envelope_clear(&out);
	free(msg);
	return (-1);
}

/*
 * Hostile content: 8-bit and control bytes in errors, addresses and
 * headers, bare CR and LF, an endless header line, 200 KB of headers.
 */
static int
test_hostile_content_stays_7bit_crlf(void)
{
	struct envelope	 e, out;
	static const char head[] = "Received: by relay\r\n"
	    "Subject: r\xc3\xa9sum\xc3\xa9\0nul\rcr\nbare-lf\r\nX-Long: ";
	static const char evil[] = "550 5.1.1 \xff\x1b[2J\r\nX";
	char		*msg = NULL, *body = NULL;
	const char	*p, *bad;
	size_t		 len, plen, blen, i;

	memset(&out, 0, sizeof(out));
	sample(&e);
	(void)strlcpy(e.rcpts[0].addr, "b\xc3\xb6\x01@example.com",
	    sizeof(e.rcpts[0].addr));
	memset(e.rcpts[0].last_error, 'x', sizeof(e.rcpts[0].last_error) - 1);
	memcpy(e.rcpts[0].last_error, evil, sizeof(evil) - 1);
	e.rcpts[0].last_error[sizeof(e.rcpts[0].last_error) - 1] = '\0';
	(void)strlcpy(e.rcpts[3].last_error, "451 4.4.1 caf\xc3\xa9\t\x7f"
	    "\r\n.\r\nQUIT", sizeof(e.rcpts[3].last_error));

	if ((body = malloc(300 * 1024)) == NULL)
		abort();
	memcpy(body, head, sizeof(head) - 1);
	blen = sizeof(head) - 1;
	memset(body + blen, 'L', 5000);
	blen += 5000;
	for (i = 0; blen < 200 * 1024; i++)
		blen += (size_t)snprintf(body + blen, 64,
		    "\r\nX-Filler-%zu: some header text", i);
	memcpy(body + blen, "\r\n\r\n" BODY_MARKER "\r\n", 22);
	blen += 22;

	REQUIRE(build(&e, body, blen, 0, &out, &msg, &len) == 0,
	    "bounce_build: %s", strerror(errno));
	REQUIRE(*(bad = wellformed(msg, len)) == '\0', "%s", bad);
	REQUIRE(!contains(msg, len, BODY_MARKER), "the body is in the bounce");
	REQUIRE(part(msg, len, 3, &p, &plen) == 0, "no third part");
	REQUIRE(plen <= 64 * 1024 + 128, "%zu bytes of headers", plen);
	REQUIRE(plen > 60 * 1024, "only %zu bytes of headers", plen);
	REQUIRE(memcmp(p + plen - 18, "some header text\r\n", 18) == 0,
	    "not cut at a line boundary");
	REQUIRE(contains(p, plen, "\r\nbare-lf\r\n"), "a bare LF not a line end");
	REQUIRE(!contains(msg, len, "\r\n.\r\n"), "a lone dot line");
	REQUIRE(part(msg, len, 2, &p, &plen) == 0, "no second part");
	REQUIRE(contains(p, plen, "Final-Recipient: rfc822; b???@example.com"),
	    "the 8-bit address");
	REQUIRE(contains(p, plen, "Status: 5.1.1\r\n"), "status lost");
	free(body);
	envelope_clear(&e);
	envelope_clear(&out);
	free(msg);
	return (0);
 fail:
	free(body);
	envelope_clear(&e);
	envelope_clear(&out);
	free(msg);
	return (-1);
}

/* Long fields and texts are folded; a long word is cut, not lost. */
static int
test_long_lines_folded(void)
{
	struct envelope	 e, out;
	char		*msg = NULL, host[HOSTNAME_LEN];
	const char	*bad;
	size_t		 len;
	unsigned char	*b;

	memset(&out, 0, sizeof(out));
	sample(&e);
	memset(e.rcpts[0].last_error, 'w', sizeof(e.rcpts[0].last_error) - 1);
	memcpy(e.rcpts[0].last_error, "550 5.7.1 ", 10);
	e.rcpts[0].last_error[sizeof(e.rcpts[0].last_error) - 1] = '\0';
	memset(host, 'h', sizeof(host) - 1);
	host[sizeof(host) - 1] = '\0';
	REQUIRE(bounce_build(&e, (const unsigned char *)sample_body,
	    sizeof(sample_body) - 1, 0, LIFETIME, host, NOW, BOUNCE_ID, &out,
	    &b, &len) == 0, "bounce_build: %s", strerror(errno));
	msg = (char *)b;
	REQUIRE(*(bad = wellformed(msg, len)) == '\0', "%s", bad);
	REQUIRE(contains(msg, len, "Diagnostic-Code: smtp; 550 5.7.1\r\n "
	    "wwwwwwww"), "the diagnostic is not folded");
	envelope_clear(&out);
	free(msg);
	msg = NULL;

	/* A hostname that is not one is not copied as it is. */
	REQUIRE(bounce_build(&e, (const unsigned char *)sample_body,
	    sizeof(sample_body) - 1, 0, LIFETIME, "a b>\r\nBcc: x", NOW,
	    BOUNCE_ID, &out, &b, &len) == 0, "bounce_build: %s",
	    strerror(errno));
	msg = (char *)b;
	REQUIRE(*(bad = wellformed(msg, len)) == '\0', "%s", bad);
	REQUIRE(!contains(msg, len, "\r\nBcc:"), "a header injected");
	envelope_clear(&e);
	envelope_clear(&out);
	free(msg);
	return (0);
 fail:
	envelope_clear(&e);
	envelope_clear(&out);
	free(msg);
	return (-1);
}

/* The boundary is in none of the parts, even when the sender tries. */
static int
test_boundary_not_in_content(void)
{
	struct envelope	 e, out;
	char		*msg = NULL, delim[140], body[2048];
	const char	*b, *bad;
	size_t		 len, blen;
	int		 i;

	memset(&out, 0, sizeof(out));
	sample(&e);
	REQUIRE(build(&e, sample_body, sizeof(sample_body) - 1, 0, &out,
	    &msg, &len) == 0, "bounce_build: %s", strerror(errno));
	REQUIRE((b = boundary_of(msg, len)) != NULL, "no boundary");
	REQUIRE(strlen(b) >= 1 && strlen(b) <= 70, "boundary length %zu",
	    strlen(b));
	snprintf(delim, sizeof(delim), "--%s", b);
	REQUIRE(count(msg, len, delim) == 4, "%zu delimiters, not 4",
	    count(msg, len, delim));
	envelope_clear(&out);
	free(msg);
	msg = NULL;

	/* Put the first few candidates in the headers. */
	blen = (size_t)snprintf(body, sizeof(body), "Subject: x\r\n");
	for (i = 0; i < 5; i++)
		blen += (size_t)snprintf(body + blen, sizeof(body) - blen,
		    "X-Trap: --=_%s_%d=_\r\n--=_%s_%d=_--\r\n", BOUNCE_ID, i,
		    BOUNCE_ID, i);
	blen += (size_t)snprintf(body + blen, sizeof(body) - blen,
	    "X-Trap: %s\r\n\r\nbody\r\n", delim);
	REQUIRE(build(&e, body, blen, 0, &out, &msg, &len) == 0,
	    "bounce_build: %s", strerror(errno));
	REQUIRE(*(bad = wellformed(msg, len)) == '\0', "%s", bad);
	REQUIRE((b = boundary_of(msg, len)) != NULL, "no boundary");
	snprintf(delim, sizeof(delim), "--%s", b);
	REQUIRE(count(msg, len, delim) == 4, "boundary %s: %zu times, not 4",
	    b, count(msg, len, delim));
	envelope_clear(&e);
	envelope_clear(&out);
	free(msg);
	return (0);
 fail:
	envelope_clear(&e);
	envelope_clear(&out);
	free(msg);
	return (-1);
}

static int
test_bad_arguments_refused(void)
{
	struct envelope	 e, out;
	unsigned char	*msg = NULL;
	size_t		 len;

	sample(&e);
	REQUIRE(bounce_build(&e, NULL, 0, 0, LIFETIME, HOSTNAME, NOW,
	    "NOT-AN-ID", &out, &msg, &len) == -1 && errno == EINVAL,
	    "a bad id taken");
	REQUIRE(bounce_build(&e, NULL, 10, 0, LIFETIME, HOSTNAME, NOW,
	    BOUNCE_ID, &out, &msg, &len) == -1 && errno == EINVAL,
	    "a NULL body with a length taken");
	REQUIRE(msg == NULL, "built something anyway");
	/* No body at all still makes a report, with no headers attached. */
	REQUIRE(bounce_build(&e, NULL, 0, 0, LIFETIME, HOSTNAME, NOW,
	    BOUNCE_ID, &out, &msg, &len) == 0, "no body: %s",
	    strerror(errno));
	envelope_clear(&out);
	free(msg);
	envelope_clear(&e);
	return (0);
 fail:
	envelope_clear(&e);
	free(msg);
	return (-1);
}

static int
write_sample(const char *path, int delayed)
{
	struct envelope	 e, out;
	char		*msg;
	size_t		 len;
	FILE		*f;

	sample(&e);
	if (build(&e, sample_body, sizeof(sample_body) - 1, delayed, &out,
	    &msg, &len) == -1) {
		fprintf(stderr, "bounce_build: %s\n", strerror(errno));
		return (1);
	}
	if ((f = fopen(path, "wb")) == NULL ||
	    fwrite(msg, 1, len, f) != len || fclose(f) == EOF) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return (1);
	}
	envelope_clear(&e);
	envelope_clear(&out);
	free(msg);
	return (0);
}

static const struct {
	const char	*name;
	int		(*fn)(void);
} tests[] = {
	{ "bounce_null_sender_refused", test_null_sender_refused },
	{ "bounce_of_bounce_refused", test_bounce_of_bounce_refused },
	{ "bounce_nothing_to_report_refused", test_nothing_to_report_refused },
	{ "bounce_bad_arguments_refused", test_bad_arguments_refused },
	{ "bounce_only_failed_rcpts_listed", test_only_failed_rcpts_listed },
	{ "bounce_status_from_last_error", test_status_from_last_error },
	{ "bounce_delay_warning_lists_pending", test_delay_warning },
	{ "bounce_message_headers", test_message_headers },
	{ "bounce_out_envelope_from_null_sender",
	    test_out_envelope_from_null_sender },
	{ "bounce_headers_cut_at_empty_line", test_headers_cut_at_empty_line },
	{ "bounce_hostile_content_stays_7bit_crlf",
	    test_hostile_content_stays_7bit_crlf },
	{ "bounce_long_lines_folded", test_long_lines_folded },
	{ "bounce_boundary_not_in_content", test_boundary_not_in_content },
};

static void
timeout(int sig)
{
	(void)sig;
	if (write(STDOUT_FILENO, "not ok - bounce_test: timed out\n", 32) == -1)
		_exit(2);
	_exit(1);
}

int
main(int argc, char *argv[])
{
	const char	*wpath = NULL;
	size_t		 i;
	int		 ch, delayed = 0, failed = 0;

	while ((ch = getopt(argc, argv, "dw:")) != -1) {
		switch (ch) {
		case 'd':
			delayed = 1;
			break;
		case 'w':
			wpath = optarg;
			break;
		default:
			fprintf(stderr, "usage: bounce_test [-d] [-w file]\n");
			return (2);
		}
	}
	if (wpath != NULL)
		return (write_sample(wpath, delayed));

	signal(SIGALRM, timeout);
	for (i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
		why[0] = '\0';
		alarm(60);
		if (tests[i].fn() == 0)
			printf("ok - %s\n", tests[i].name);
		else {
			printf("not ok - %s: %s\n", tests[i].name, why);
			failed = 1;
		}
		fflush(stdout);
	}
	alarm(0);
	return (failed);
}
