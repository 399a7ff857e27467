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
 * Delivery status notifications: the message that tells a sender what
 * became of its mail, as a multipart/report (RFC 6522) with a
 * message/delivery-status part (RFC 3464) and the original header section
 * as text/rfc822-headers.  A pure function of its arguments: the queue
 * stores and sends what it returns like any other message.
 *
 * What goes out is built to be safe whatever the queue holds: CRLF line
 * endings only, no line longer than 998 octets, 7-bit ASCII only (any
 * other byte becomes '?'), and a MIME boundary checked against the
 * content.  The original body is never included.
 *
 * A recipient's last_error is read in one of two shapes:
 *
 *	host NAME[ADDR] said: 550 5.1.1 <a@b>: unknown user
 *	550 5.1.1 <a@b>: unknown user
 *
 * ("host NAME [ADDR]: said: " is read the same way).  NAME becomes the
 * Remote-MTA, the reply the smtp Diagnostic-Code, and its enhanced code
 * (RFC 3463) the Status.  Any other text, e.g. a connection failure, is
 * an X-Smarthostd diagnostic.
 */

#include <sys/types.h>

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "smarthostd.h"

#define BOUNCE_LINE_MAX		998	/* RFC 5322 2.1.1, CRLF excluded */
#define BOUNCE_WIDTH		78	/* where text and fields are folded */
#define BOUNCE_HEADERS_MAX	(64 * 1024)	/* of the original, attached */
#define BOUNCE_DATE_LEN		40
#define BOUNCE_STATUS_LEN	16	/* "5.123.123" */

struct bbuf {
	char	*buf;
	size_t	 len;
	size_t	 size;
	int	 error;
};

/* What last_error says, cleaned. */
struct bounce_diag {
	char		 text[MESSAGE_LEN];	/* all of it */
	const char	*reply;			/* in text: the SMTP reply */
	int		 smtp;			/* reply starts with a code */
	char		 status[BOUNCE_STATUS_LEN];
	char		 mta[HOSTNAME_LEN];	/* "" if not known */
};

static void	 bb_add(struct bbuf *, const void *, size_t);
static void	 bb_str(struct bbuf *, const char *);
static void	 bb_printf(struct bbuf *, const char *, ...)
		    __attribute__((__format__(printf, 2, 3)));
static void	 bb_fold(struct bbuf *, const char *, const char *,
		    const char *);
static void	 bb_headers(struct bbuf *, const unsigned char *, size_t);
static int	 bb_contains(const struct bbuf *, const char *);
static int	 bounce_date(int64_t, char *, size_t);
static int	 bounce_until(const struct envelope *, time_t, char *, size_t);
static void	 bounce_clean(const char *, size_t, char *, size_t);
static void	 bounce_hostname(const char *, char *, size_t);
static void	 bounce_diag(const char *, int, struct bounce_diag *);
static int	 bounce_enhanced(const char *, char, char *, size_t);
static void	 bounce_text(struct bbuf *, const struct envelope *, int,
		    time_t, const char *);
static void	 bounce_status(struct bbuf *, const struct envelope *, int,
		    time_t, const char *, time_t);

/*
 * Build the DSN for orig: delayed 0 reports every RCPT_FAILED recipient
 * as failed, delayed 1 every RCPT_PENDING one as delayed, with delivery
 * retried until orig->arrived + lifetime (lifetime <= 0: not said).
 * On success *out is a new envelope from <> to orig's sender, flagged
 * ENVELOPE_BOUNCE, whose one recipient has an empty action for the
 * caller to fill; *out_body is the malloc'd message.  The caller frees
 * both (envelope_clear, free).
 *
 * Returns -1 and builds nothing when there is nothing to send: a null
 * sender, a message that is itself a bounce, no recipient in the state
 * reported, or bad arguments (errno EINVAL); or when memory runs out
 * (errno ENOMEM).
 */
int
bounce_build(const struct envelope *orig, const unsigned char *body,
    size_t body_len, int delayed, time_t lifetime, const char *hostname,
    time_t now, const char *id, struct envelope *out,
    unsigned char **out_body, size_t *out_len)
{
	struct bbuf	 msg, text, status, headers;
	char		 host[HOSTNAME_LEN], sender[SMTP_ADDR_LEN];
	char		 date[BOUNCE_DATE_LEN];
	char		 boundary[64], delim[68];
	enum rcpt_state	 want;
	size_t		 total, tries;
	uint32_t	 i, n;
	unsigned int	 k;

	memset(out, 0, sizeof(*out));
	*out_body = NULL;
	*out_len = 0;

	if (orig == NULL || orig->sender[0] == '\0' ||
	    (orig->flags & ENVELOPE_BOUNCE) != 0 ||
	    strnlen(orig->sender, sizeof(orig->sender)) ==
	    sizeof(orig->sender) ||
	    id == NULL || !envelope_id_valid(id) ||
	    (body == NULL && body_len != 0) ||
	    bounce_date(now, date, sizeof(date)) == -1) {
		errno = EINVAL;
		return (-1);
	}
	want = delayed ? RCPT_PENDING : RCPT_FAILED;
	for (i = 0, n = 0; orig->rcpts != NULL && i < orig->nrcpt; i++)
		if (orig->rcpts[i].state == want)
			n++;
	if (n == 0) {
		errno = EINVAL;
		return (-1);
	}

	bounce_hostname(hostname, host, sizeof(host));
	bounce_clean(orig->sender, sizeof(orig->sender), sender,
	    sizeof(sender));

	memset(&msg, 0, sizeof(msg));
	memset(&text, 0, sizeof(text));
	memset(&status, 0, sizeof(status));
	memset(&headers, 0, sizeof(headers));
	bounce_text(&text, orig, delayed, lifetime, host);
	bounce_status(&status, orig, delayed, lifetime, host, now);
	bb_headers(&headers, body, body_len);
	if (text.error || status.error || headers.error)
		goto nomem;

	/*
	 * A boundary that none of the parts contains.  Each candidate ends
	 * in a character that is not a digit, so one place in the content
	 * can rule out at most one candidate: within as many tries as the
	 * content could hold candidates, one is free.  The first always is
	 * unless someone guessed the id.
	 */
	total = text.len + status.len + headers.len;
	tries = total / 20 + 2;
	for (k = 0; k < tries; k++) {
		(void)snprintf(boundary, sizeof(boundary), "=_%s_%u=_", id, k);
		(void)snprintf(delim, sizeof(delim), "--%s", boundary);
		if (!bb_contains(&text, delim) &&
		    !bb_contains(&status, delim) &&
		    !bb_contains(&headers, delim))
			break;
	}
	if (k == tries) {
		/* Never: see above. */
		free(text.buf);
		free(status.buf);
		free(headers.buf);
		errno = EINVAL;
		return (-1);
	}

	bb_printf(&msg, "Date: %s\r\n", date);
	bb_printf(&msg, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n",
	    host);
	bb_printf(&msg, "To: <%s>\r\n", sender);
	bb_printf(&msg, "Subject: %s\r\n", delayed ?
	    "Delayed Mail (still being retried)" :
	    "Undelivered Mail Returned to Sender");
	bb_printf(&msg, "Message-ID: <%s@%s>\r\n", id, host);
	bb_str(&msg, "Auto-Submitted: auto-replied\r\n");
	bb_str(&msg, "MIME-Version: 1.0\r\n");
	bb_str(&msg, "Content-Type: multipart/report; "
	    "report-type=delivery-status;\r\n");
	bb_printf(&msg, "\tboundary=\"%s\"\r\n", boundary);
	bb_str(&msg, "Content-Transfer-Encoding: 7bit\r\n");
	bb_str(&msg, "\r\n");
	bb_str(&msg, "This is a MIME-encapsulated message.\r\n");

	bb_printf(&msg, "\r\n%s\r\n", delim);
	bb_str(&msg, "Content-Description: Notification\r\n");
	bb_str(&msg, "Content-Type: text/plain; charset=us-ascii\r\n\r\n");
	bb_add(&msg, text.buf, text.len);

	bb_printf(&msg, "\r\n%s\r\n", delim);
	bb_printf(&msg, "Content-Description: %s\r\n", delayed ?
	    "Delivery delay report" : "Delivery failure report");
	bb_str(&msg, "Content-Type: message/delivery-status\r\n\r\n");
	bb_add(&msg, status.buf, status.len);

	bb_printf(&msg, "\r\n%s\r\n", delim);
	bb_str(&msg, "Content-Description: Headers of the original message\r\n");
	bb_str(&msg, "Content-Type: text/rfc822-headers\r\n\r\n");
	bb_add(&msg, headers.buf, headers.len);

	bb_printf(&msg, "\r\n%s--\r\n", delim);

	free(text.buf);
	free(status.buf);
	free(headers.buf);
	text.buf = status.buf = headers.buf = NULL;
	if (msg.error)
		goto nomem;

	if ((out->rcpts = calloc(1, sizeof(*out->rcpts))) == NULL)
		goto nomem;
	out->nrcpt = 1;
	(void)strlcpy(out->id, id, sizeof(out->id));
	out->arrived = now;
	out->flags = ENVELOPE_BOUNCE;
	out->body_size = msg.len;
	(void)strlcpy(out->helo, host, sizeof(out->helo));
	/* The address as it was given, for delivery; it held no CR or LF. */
	(void)strlcpy(out->rcpts[0].addr, orig->sender,
	    sizeof(out->rcpts[0].addr));
	out->rcpts[0].state = RCPT_PENDING;
	out->rcpts[0].next_try = now;

	*out_body = (unsigned char *)msg.buf;
	*out_len = msg.len;
	return (0);

 nomem:
	free(text.buf);
	free(status.buf);
	free(headers.buf);
	free(msg.buf);
	memset(out, 0, sizeof(*out));
	errno = ENOMEM;
	return (-1);
}

/* The human-readable part. */
static void
bounce_text(struct bbuf *b, const struct envelope *orig, int delayed,
    time_t lifetime, const char *host)
{
	struct bounce_diag	 d;
	char			 addr[SMTP_ADDR_LEN], arrived[BOUNCE_DATE_LEN];
	char			 until[BOUNCE_DATE_LEN], line[512];
	enum rcpt_state		 want = delayed ? RCPT_PENDING : RCPT_FAILED;
	uint32_t		 i;

	if (bounce_date(orig->arrived, arrived, sizeof(arrived)) == -1)
		(void)strlcpy(arrived, "an unknown date", sizeof(arrived));
	if (bounce_until(orig, lifetime, until, sizeof(until)) == -1)
		until[0] = '\0';

	(void)snprintf(line, sizeof(line),
	    "This is the mail delivery system at %s.", host);
	bb_fold(b, "", line, "");
	bb_str(b, "\r\n");
	if (delayed) {
		(void)snprintf(line, sizeof(line), "Your message of %s has "
		    "not yet been delivered to the recipients below.  This is "
		    "only a warning: you need not send the message again.",
		    arrived);
		bb_fold(b, "", line, "");
		bb_str(b, "\r\n");
		if (until[0] != '\0')
			(void)snprintf(line, sizeof(line), "Delivery will be "
			    "retried until %s, when the message's lifetime in "
			    "the queue ends; if it has not succeeded by then, "
			    "you will be told again.", until);
		else
			(void)strlcpy(line, "Delivery will be retried until "
			    "the message's lifetime in the queue ends; if it "
			    "has not succeeded by then, you will be told again.",
			    sizeof(line));
		bb_fold(b, "", line, "");
	} else {
		(void)snprintf(line, sizeof(line), "Your message of %s could "
		    "not be delivered to the recipients below.  Delivery "
		    "failed permanently, or did not succeed within the "
		    "message's lifetime in the queue; no further attempts "
		    "will be made.", arrived);
		bb_fold(b, "", line, "");
	}
	bb_str(b, "\r\n");

	for (i = 0; i < orig->nrcpt; i++) {
		if (orig->rcpts[i].state != want)
			continue;
		bounce_clean(orig->rcpts[i].addr, sizeof(orig->rcpts[i].addr),
		    addr, sizeof(addr));
		bb_printf(b, "<%s>:\r\n", addr);
		bounce_diag(orig->rcpts[i].last_error, delayed, &d);
		if (d.text[0] != '\0')
			bb_fold(b, "    ", d.text, "    ");
		else
			bb_str(b, delayed ? "    (no attempt has been "
			    "completed yet)\r\n" : "    (no reason recorded)\r\n");
		bb_str(b, "\r\n");
	}
	bb_str(b, "The delivery report and the headers of your message are "
	    "attached.\r\n");
}

/* The message/delivery-status part, RFC 3464 section 2. */
static void
bounce_status(struct bbuf *b, const struct envelope *orig, int delayed,
    time_t lifetime, const char *host, time_t now)
{
	struct bounce_diag	 d;
	char			 addr[SMTP_ADDR_LEN], origid[QUEUE_ID_LEN];
	char			 date[BOUNCE_DATE_LEN], lead[64];
	enum rcpt_state		 want = delayed ? RCPT_PENDING : RCPT_FAILED;
	uint32_t		 i;

	bb_printf(b, "Reporting-MTA: dns; %s\r\n", host);
	bounce_clean(orig->id, sizeof(orig->id), origid, sizeof(origid));
	if (origid[0] != '\0')
		bb_printf(b, "X-Smarthostd-Queue-ID: %s\r\n", origid);
	if (bounce_date(orig->arrived, date, sizeof(date)) == 0)
		bb_printf(b, "Arrival-Date: %s\r\n", date);

	for (i = 0; i < orig->nrcpt; i++) {
		const struct envelope_rcpt	*r = &orig->rcpts[i];

		if (r->state != want)
			continue;
		bounce_clean(r->addr, sizeof(r->addr), addr, sizeof(addr));
		bounce_diag(r->last_error, delayed, &d);
		bb_str(b, "\r\n");
		bb_printf(b, "Final-Recipient: rfc822; %s\r\n", addr);
		bb_printf(b, "Action: %s\r\n", delayed ? "delayed" : "failed");
		bb_printf(b, "Status: %s\r\n", d.status);
		if (d.mta[0] != '\0')
			bb_printf(b, "Remote-MTA: dns; %s\r\n", d.mta);
		if (d.text[0] != '\0') {
			(void)snprintf(lead, sizeof(lead), "Diagnostic-Code: %s",
			    d.smtp ? "smtp;" : "X-Smarthostd;");
			bb_fold(b, lead, d.smtp ? d.reply : d.text, " ");
		}
		if (r->attempts > 0 &&
		    bounce_date(now, date, sizeof(date)) == 0)
			bb_printf(b, "Last-Attempt-Date: %s\r\n", date);
		if (delayed &&
		    bounce_until(orig, lifetime, date, sizeof(date)) == 0)
			bb_printf(b, "Will-Retry-Until: %s\r\n", date);
	}
}

/*
 * The original header section, up to the empty line that ends it: never
 * the body.  Lines are cut at BOUNCE_LINE_MAX, and the whole at
 * BOUNCE_HEADERS_MAX on a line boundary.
 */
static void
bb_headers(struct bbuf *b, const unsigned char *body, size_t len)
{
	const unsigned char	*p, *end, *eol;
	size_t			 linelen, cut, j, total = 0;
	char			 line[BOUNCE_LINE_MAX];
	unsigned char		 c;

	if (body == NULL)
		return;
	p = body;
	end = body + len;
	while (p < end) {
		eol = memchr(p, '\n', (size_t)(end - p));
		linelen = eol != NULL ? (size_t)(eol - p) : (size_t)(end - p);
		if (linelen > 0 && p[linelen - 1] == '\r')
			linelen--;
		if (linelen == 0)
			break;
		cut = linelen < sizeof(line) ? linelen : sizeof(line);
		if (total + cut + 2 > BOUNCE_HEADERS_MAX)
			break;
		for (j = 0; j < cut; j++) {
			c = p[j];
			line[j] = (c >= 0x20 && c < 0x7f) || c == '\t' ?
			    (char)c : '?';
		}
		bb_add(b, line, cut);
		bb_add(b, "\r\n", 2);
		total += cut + 2;
		p = eol != NULL ? eol + 1 : end;
	}
}

/*
 * Write lead, then text's words separated by single spaces, folded
 * before a word that would pass BOUNCE_WIDTH; a continuation line starts
 * with cont.  A word too long for any line is cut at BOUNCE_LINE_MAX.
 * text must already be clean.
 */
static void
bb_fold(struct bbuf *b, const char *lead, const char *text, const char *cont)
{
	const char	*p = text;
	size_t		 col, contlen, n, chunk;
	int		 sep = 0;

	contlen = strlen(cont);
	col = strlen(lead);
	bb_str(b, lead);
	if (lead[0] != '\0' && col < BOUNCE_WIDTH) {
		/* "Name:" and the first word share the line after a space. */
		if (lead[col - 1] != ' ')
			sep = 1;
	}
	for (;;) {
		p += strspn(p, " ");
		if (*p == '\0')
			break;
		n = strcspn(p, " ");
		while (n > 0) {
			if (sep) {
				if (col + 1 + n > BOUNCE_WIDTH &&
				    col > contlen) {
					bb_str(b, "\r\n");
					bb_str(b, cont);
					col = contlen;
				} else {
					bb_str(b, " ");
					col++;
				}
			}
			chunk = BOUNCE_LINE_MAX - col;
			if (chunk > n)
				chunk = n;
			bb_add(b, p, chunk);
			col += chunk;
			p += chunk;
			n -= chunk;
			sep = 1;
		}
	}
	bb_str(b, "\r\n");
}

static void
bounce_diag(const char *last_error, int delayed, struct bounce_diag *d)
{
	const char	*p, *said, *last;
	size_t		 n;
	char		 class;

	memset(d, 0, sizeof(*d));
	bounce_clean(last_error, MESSAGE_LEN, d->text, sizeof(d->text));
	d->reply = d->text;

	/*
	 * relay_smtp.c writes "NAME [ADDR]:PORT: said: REPLY", an expiry puts
	 * "...; last error: " before that, and other MTAs' style is
	 * "host NAME[ADDR] said: REPLY".
	 */
	if ((said = strstr(d->text, "said: ")) != NULL) {
		p = d->text;
		if ((last = strstr(d->text, "last error: ")) != NULL &&
		    last < said)
			p = last + 12;
		if (strncmp(p, "host ", 5) == 0)
			p += 5;
		n = strcspn(p, " [:");
		if (n > 0 && n < sizeof(d->mta) && p + n <= said &&
		    strspn(p, "abcdefghijklmnopqrstuvwxyz"
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") == n) {
			memcpy(d->mta, p, n);
			d->mta[n] = '\0';
		}
		d->reply = said + 6;
	}
	d->reply += strspn(d->reply, " ");

	p = d->reply;
	if (p[0] >= '2' && p[0] <= '5' && p[1] >= '0' && p[1] <= '9' &&
	    p[2] >= '0' && p[2] <= '9' &&
	    (p[3] == ' ' || p[3] == '-' || p[3] == '\0'))
		d->smtp = 1;
	else
		d->reply = d->text;

	/*
	 * A delay is reported with a transient status whatever the last
	 * reply said; a failure with what the server said if that is a
	 * failure at all (4.x.x when the lifetime ran out on a transient
	 * error, as other MTAs report it).
	 */
	class = d->smtp ? p[0] : '\0';
	if (d->smtp && p[3] != '\0' && ((delayed && class == '4') ||
	    (!delayed && (class == '4' || class == '5'))) &&
	    bounce_enhanced(p + 4, class, d->status, sizeof(d->status)) == 0)
		return;
	(void)strlcpy(d->status, delayed ? "4.0.0" : "5.0.0",
	    sizeof(d->status));
}

/*
 * An RFC 3463 code at the start of s, "class.subject.detail" with one to
 * three digits for subject and detail, followed by a space or the end;
 * its class must be the reply's (RFC 2034 section 4).
 */
static int
bounce_enhanced(const char *s, char class, char *out, size_t outsize)
{
	const char	*p = s;
	size_t		 n;
	int		 part;

	if (*p != class || p[1] != '.')
		return (-1);
	p += 2;
	for (part = 0; part < 2; part++) {
		n = strspn(p, "0123456789");
		if (n < 1 || n > 3)
			return (-1);
		p += n;
		if (part == 0 && *p++ != '.')
			return (-1);
	}
	if (*p != ' ' && *p != '\0')
		return (-1);
	n = (size_t)(p - s);
	if (n >= outsize)
		return (-1);
	memcpy(out, s, n);
	out[n] = '\0';
	return (0);
}

/*
 * Copy a string of at most insize bytes (it may lack the NUL) into out,
 * every byte that is not printable ASCII replaced by '?'.
 */
static void
bounce_clean(const char *in, size_t insize, char *out, size_t outsize)
{
	size_t		 i, len;
	unsigned char	 c;

	if (outsize == 0)
		return;
	len = strnlen(in, insize);
	if (len > outsize - 1)
		len = outsize - 1;
	for (i = 0; i < len; i++) {
		c = (unsigned char)in[i];
		out[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	out[len] = '\0';
}

/* Our name as it may appear in Message-ID and Reporting-MTA. */
static void
bounce_hostname(const char *hostname, char *out, size_t outsize)
{
	size_t	 i, len;
	char	 c;

	if (hostname == NULL || hostname[0] == '\0') {
		(void)strlcpy(out, "localhost", outsize);
		return;
	}
	len = strnlen(hostname, outsize - 1);
	for (i = 0; i < len; i++) {
		c = hostname[i];
		out[i] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '-' ||
		    c == '_' ? c : '-';
	}
	out[len] = '\0';
}

/* RFC 5322 date-time in UTC, without the locale strftime would use. */
static int
bounce_date(int64_t t, char *buf, size_t size)
{
	static const char	*days[] = {
		"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"
	};
	static const char	*months[] = {
		"Jan", "Feb", "Mar", "Apr", "May", "Jun",
		"Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
	};
	struct tm	 tm;
	time_t		 tt = (time_t)t;
	int		 r;

	if ((int64_t)tt != t || gmtime_r(&tt, &tm) == NULL ||
	    tm.tm_wday < 0 || tm.tm_wday > 6 ||
	    tm.tm_mon < 0 || tm.tm_mon > 11 ||
	    tm.tm_year < 0 || tm.tm_year > 9999 - 1900)
		return (-1);
	r = snprintf(buf, size, "%s, %02d %s %04d %02d:%02d:%02d +0000",
	    days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
	    tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
	if (r < 0 || (size_t)r >= size)
		return (-1);
	return (0);
}

/* When the message's lifetime ends, if there is one. */
static int
bounce_until(const struct envelope *orig, time_t lifetime, char *buf,
    size_t size)
{
	if (lifetime <= 0 || orig->arrived > INT64_MAX - (int64_t)lifetime)
		return (-1);
	return (bounce_date(orig->arrived + (int64_t)lifetime, buf, size));
}

/*
 * The buffer: appends only; the first failed allocation sets error and
 * every later append is a no-op, so callers check once.
 */

static void
bb_add(struct bbuf *b, const void *p, size_t n)
{
	size_t	 want, size;
	char	*nb;

	if (b->error || n == 0)
		return;
	if (n > SIZE_MAX - b->len - 1) {
		b->error = 1;
		return;
	}
	want = b->len + n + 1;
	if (want > b->size) {
		size = b->size == 0 ? 4096 : b->size;
		while (size < want) {
			if (size > SIZE_MAX / 2) {
				size = want;
				break;
			}
			size *= 2;
		}
		if ((nb = realloc(b->buf, size)) == NULL) {
			b->error = 1;
			return;
		}
		b->buf = nb;
		b->size = size;
	}
	memcpy(b->buf + b->len, p, n);
	b->len += n;
	b->buf[b->len] = '\0';
}

static void
bb_str(struct bbuf *b, const char *s)
{
	bb_add(b, s, strlen(s));
}

static void
bb_printf(struct bbuf *b, const char *fmt, ...)
{
	va_list	 ap;
	char	*s;
	int	 n;

	if (b->error)
		return;
	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n == -1) {
		b->error = 1;
		return;
	}
	bb_add(b, s, (size_t)n);
	free(s);
}

static int
bb_contains(const struct bbuf *b, const char *s)
{
	if (b->len == 0)
		return (0);
	return (memmem(b->buf, b->len, s, strlen(s)) != NULL);
}
