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
 * DATA: the message read line by line into an anonymous file (which the
 * queue, and the scanner, receive as a descriptor, never copied through
 * imsg), with our Received header first; the limits and refusals
 * decided at its final dot; then the message handed to the scanner or
 * the queue, and the queue's answer relayed to the client.
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "smarthostd.h"
#include "smtp.h"

static void	 data_line(struct smtp_session *, const char *, size_t);
static void	 data_append(struct smtp_session *, const char *, size_t);
static int	 data_flush(struct smtp_session *);
static void	 data_done(struct smtp_session *);
static void	 data_received_header(struct smtp_session *);

/*
 * DATA.  The message goes to an anonymous file that the queue receives
 * as a descriptor; it is never copied through imsg.
 */

int
data_start(struct smtp_session *s)
{
	unsigned char	 rnd[8];
	int		 i;

	if ((s->body_fd = compat_memfd("smarthostd-body")) == -1) {
		log_warn("session %u: memfd", s->id);
		return (-1);
	}
	if ((s->body_buf = malloc(SMTP_BODY_CHUNK)) == NULL) {
		log_warn("session %u: body buffer", s->id);
		return (-1);
	}
	arc4random_buf(rnd, sizeof(rnd));
	for (i = 0; i < 8; i++)
		(void)snprintf(s->msgid + i * 2, 3, "%02x", rnd[i]);
	s->body_buflen = 0;
	s->body_size = 0;
	s->data_error = DATA_OK;
	s->data_midline = 0;
	s->in_headers = 1;
	s->header_seen = 0;
	s->hops = 0;
	s->state = SMTP_DATA;
	data_received_header(s);
	return (0);
}

static void
data_received_header(struct smtp_session *s)
{
	const struct smtp_rcpt	*r;
	char			 hdr[2048], date[64];
	const char		*with;
	struct tm		 tm;
	time_t			 now = time(NULL);
	int			 n;

	if (s->tls_state == SMTP_TLS_ON)
		with = s->auth_user[0] != '\0' ? "ESMTPSA" : "ESMTPS";
	else if (s->esmtp)
		with = s->auth_user[0] != '\0' ? "ESMTPA" : "ESMTP";
	else
		with = "SMTP";
	(void)gmtime_r(&now, &tm);
	(void)strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000",
	    &tm);
	n = snprintf(hdr, sizeof(hdr), "Received: from %s ([%s])\r\n"
	    "\tby %s (smarthostd) with %s id %s",
	    s->helo, s->peer_addr, s->hostname, with, s->msgid);
	if (n > 0 && (size_t)n < sizeof(hdr) && s->tls_state == SMTP_TLS_ON)
		n += snprintf(hdr + n, sizeof(hdr) - n, "\r\n\t(version=%s "
		    "cipher=%s bits=%d)", tls_conn_version(s->tls),
		    tls_conn_cipher(s->tls),
		    tls_conn_cipher_strength(s->tls));
	r = TAILQ_FIRST(&s->rcpts);
	if (n > 0 && (size_t)n < sizeof(hdr) && s->nrcpt == 1)
		n += snprintf(hdr + n, sizeof(hdr) - n, "\r\n\tfor <%s>",
		    r->addr);
	if (n > 0 && (size_t)n < sizeof(hdr))
		n += snprintf(hdr + n, sizeof(hdr) - n, ";\r\n\t%s\r\n",
		    date);
	if (n <= 0 || (size_t)n >= sizeof(hdr)) {
		s->data_error = DATA_IO_ERROR;
		return;
	}
	data_append(s, hdr, n);
	s->received_len = n;
}

/*
 * Consume what is buffered.  Returns 1 when the final dot was seen (the
 * session is now waiting or answered), 0 when more input is needed.
 */
int
data_process(struct smtp_session *s)
{
	unsigned char	*data, *p;
	size_t		 len, linelen, off;

	for (;;) {
		len = evbuffer_get_length(s->in);
		if (len == 0)
			return (0);
		data = evbuffer_pullup(s->in, len < SMTP_TEXT_LINE_MAX + 2 ?
		    len : SMTP_TEXT_LINE_MAX + 2);
		if (len > SMTP_TEXT_LINE_MAX + 2)
			len = SMTP_TEXT_LINE_MAX + 2;
		/* A line ends at CRLF and only there. */
		for (off = 0, p = NULL; off + 1 < len; off++)
			if (data[off] == '\r' && data[off + 1] == '\n') {
				p = data + off;
				break;
			}
		if (p == NULL) {
			if (len < SMTP_TEXT_LINE_MAX + 2)
				return (0);
			/*
			 * Too long: refuse the message, keep reading it
			 * to its end.  A final CR stays: its LF may come.
			 */
			s->data_error = s->data_error ? s->data_error :
			    DATA_LINE_TOO_LONG;
			evbuffer_drain(s->in, len - 1);
			s->data_midline = 1;
			continue;
		}
		linelen = p - data;
		if (!s->data_midline && linelen == 1 && data[0] == '.') {
			evbuffer_drain(s->in, 3);
			data_done(s);
			return (1);
		}
		if (s->data_midline)
			s->data_midline = 0;
		else
			data_line(s, (const char *)data, linelen);
		evbuffer_drain(s->in, linelen + 2);
	}
}

static void
data_line(struct smtp_session *s, const char *line, size_t len)
{
	if (s->data_error == DATA_OK) {
		if (memchr(line, '\0', len) != NULL)
			s->data_error = DATA_NUL;
		else if (memchr(line, '\r', len) != NULL ||
		    memchr(line, '\n', len) != NULL)
			s->data_error = DATA_BARE_NEWLINE;
		else if (len + 2 > SMTP_TEXT_LINE_MAX)
			s->data_error = DATA_LINE_TOO_LONG;
	}
	if (len > 0 && line[0] == '.') {
		line++;
		len--;
	}
	if (s->in_headers) {
		/*
		 * A first line that is a continuation would fold into the
		 * header we put above it (Received, Authentication-Results)
		 * and speak in our name.
		 */
		if (!s->header_seen && len > 0 && (line[0] == ' ' ||
		    line[0] == '\t') && s->data_error == DATA_OK)
			s->data_error = DATA_LEADING_FOLD;
		s->header_seen = 1;
		if (len == 0)
			s->in_headers = 0;
		else if (len >= 9 && strncasecmp(line, "Received:", 9) == 0 &&
		    ++s->hops > env->smtp.max_hops && s->data_error == DATA_OK)
			s->data_error = DATA_TOO_MANY_HOPS;
	}
	if (s->data_error != DATA_OK)
		return;
	if (s->body_size + len + 2 > env->smtp.max_message_size) {
		s->data_error = DATA_TOO_BIG;
		return;
	}
	if (smtp_body_bytes + len + 2 > SMTP_BODY_BUDGET) {
		s->data_error = DATA_NO_ROOM;
		return;
	}
	data_append(s, line, len);
	data_append(s, "\r\n", 2);
}

static void
data_append(struct smtp_session *s, const char *data, size_t len)
{
	size_t	 n;

	s->body_size += len;
	smtp_body_bytes += len;
	while (len > 0) {
		if (s->body_buflen == SMTP_BODY_CHUNK &&
		    data_flush(s) == -1)
			return;
		n = SMTP_BODY_CHUNK - s->body_buflen;
		if (n > len)
			n = len;
		memcpy(s->body_buf + s->body_buflen, data, n);
		s->body_buflen += n;
		data += n;
		len -= n;
	}
}

static int
data_flush(struct smtp_session *s)
{
	size_t	 off = 0;
	ssize_t	 n;

	while (off < s->body_buflen) {
		if ((n = write(s->body_fd, s->body_buf + off,
		    s->body_buflen - off)) == -1) {
			if (errno == EINTR)
				continue;
			log_warn("session %u: message body", s->id);
			s->data_error = DATA_IO_ERROR;
			s->body_buflen = 0;
			return (-1);
		}
		off += n;
	}
	s->body_buflen = 0;
	return (0);
}

static void
data_done(struct smtp_session *s)
{
	if (s->data_error == DATA_OK)
		(void)data_flush(s);
	switch (s->data_error) {
	case DATA_OK:
		break;
	case DATA_TOO_BIG:
		smtp_stats.rejected_size++;
		session_reply(s, "552 5.3.4 Message size exceeds fixed limit");
		goto refused;
	case DATA_LINE_TOO_LONG:
		smtp_stats.rejected_data++;
		session_reply(s, "500 5.5.0 Line too long (RFC 5321 allows "
		    "1000 octets)");
		goto refused;
	case DATA_BARE_NEWLINE:
		smtp_stats.rejected_data++;
		session_reply(s, "550 5.6.0 Message contains a bare CR or LF; "
		    "lines must end with CRLF");
		goto refused;
	case DATA_NUL:
		smtp_stats.rejected_data++;
		session_reply(s, "550 5.6.0 Message contains NUL characters");
		goto refused;
	case DATA_TOO_MANY_HOPS:
		smtp_stats.rejected_data++;
		session_reply(s, "554 5.4.6 Too many hops, mail loop?");
		goto refused;
	case DATA_LEADING_FOLD:
		smtp_stats.rejected_data++;
		session_reply(s, "550 5.6.0 Message header section begins "
		    "with a continuation line");
		goto refused;
	case DATA_NO_ROOM:
		smtp_stats.tempfail_queue++;
		log_warnx("session %u: message bodies in memory over %llu "
		    "bytes; message refused", s->id,
		    (unsigned long long)SMTP_BODY_BUDGET);
		session_reply(s, "452 4.3.1 Insufficient system resources, "
		    "try again later");
		goto refused;
	case DATA_IO_ERROR:
		smtp_stats.tempfail_queue++;
		session_reply(s, "451 4.3.0 Temporary failure, try again "
		    "later");
		goto refused;
	}

	switch (data_scan_levels(s, NULL)) {
	case -1:
		smtp_stats.tempfail_queue++;
		log_warnx("session %u: an action of a recipient is gone", s->id);
		session_reply(s, "451 4.3.0 Configuration changing, try again "
		    "later");
		goto refused;
	case 0:
		data_queue(s, 0);
		return;
	}
	/* The lookups grey started at DATA get a little more time. */
	if (s->facts_pending && data_facts_for_this(s)) {
		s->wait = SMTP_WAIT_FACTS;
		session_timer_reset(s);
		return;
	}
	data_scan(s);
	return;

 refused:
	log_info("session %u: message from <%s> refused (%d)", s->id,
	    s->sender, s->data_error);
	session_reset(s);
}

/* The message goes to the queue; its commit answers the client. */
void
data_queue(struct smtp_session *s, uint32_t flags)
{
	struct timeval		 queue_wait;
	struct envelope		 e;
	struct smtp_rcpt	*r;
	uint32_t		 i = 0;

	memset(&e, 0, sizeof(e));
	(void)strlcpy(e.id, s->msgid, sizeof(e.id));
	e.arrived = time(NULL);
	e.flags = s->flags | flags;
	if (s->tls_state == SMTP_TLS_ON)
		e.flags |= ENVELOPE_TLS;
	if (s->auth_user[0] != '\0')
		e.flags |= ENVELOPE_AUTH;
	e.body_size = s->body_size;
	(void)strlcpy(e.sender, s->sender, sizeof(e.sender));
	(void)strlcpy(e.client_addr, s->peer_addr, sizeof(e.client_addr));
	(void)strlcpy(e.helo, s->helo, sizeof(e.helo));
	(void)strlcpy(e.auth_user, s->auth_user, sizeof(e.auth_user));
	e.nrcpt = s->nrcpt;
	if ((e.rcpts = calloc(s->nrcpt, sizeof(*e.rcpts))) == NULL)
		fatal("data_queue");
	TAILQ_FOREACH(r, &s->rcpts, entry) {
		(void)strlcpy(e.rcpts[i].addr, r->addr,
		    sizeof(e.rcpts[i].addr));
		(void)strlcpy(e.rcpts[i].action, r->action,
		    sizeof(e.rcpts[i].action));
		e.rcpts[i].state = RCPT_PENDING;
		i++;
	}
	if (smtp_send_message(s, &e) == -1) {
		envelope_clear(&e);
		smtp_stats.tempfail_queue++;
		log_info("session %u: message from <%s> refused: queue "
		    "unavailable", s->id, s->sender);
		session_reply(s, "451 4.3.0 Queue unavailable, try again "
		    "later");
		data_answered(s);
		return;
	}
	envelope_clear(&e);
	s->wait = SMTP_WAIT_QUEUE;
	/*
	 * The client waits up to 10 minutes for this reply (RFC 5321
	 * 4.5.3.2.6); no session deadline cuts the commit short, since a
	 * 451 for a message that then commits would bring a duplicate.
	 */
	queue_wait.tv_sec = SMTP_QUEUE_WAIT;
	queue_wait.tv_usec = 0;
	evtimer_add(&s->timer, &queue_wait);
}

/* The message has its final reply: the session takes commands again. */
void
data_answered(struct smtp_session *s)
{
	session_reset(s);
	if (smtp_shutting_down())
		session_close_with(s, "421 4.3.2 Service shutting down");
	session_timer_reset(s);
}

void
smtp_session_queued(struct smtp_session *s, const struct queue_result *res)
{
	s->wait = SMTP_WAIT_NONE;
	switch (res->status) {
	case QUEUE_OK:
		smtp_stats.messages_accepted++;
		smtp_stats.bytes_accepted += s->body_size;
		log_info("session %u: message %s from <%s> for %u "
		    "recipient%s, %llu bytes, queued", s->id, res->id,
		    s->sender, s->nrcpt, s->nrcpt == 1 ? "" : "s",
		    (unsigned long long)s->body_size);
		session_reply(s, "250 2.0.0 Ok: queued as %s", res->id);
		break;
	case QUEUE_NOSPACE:
		smtp_stats.tempfail_queue++;
		log_warnx("session %u: queue full, message refused", s->id);
		session_reply(s, "452 4.3.1 Insufficient system storage");
		break;
	default:
		smtp_stats.tempfail_queue++;
		log_warnx("session %u: queue failure, message refused",
		    s->id);
		session_reply(s, "451 4.3.0 Temporary queue failure, try "
		    "again later");
		break;
	}
	data_answered(s);
	session_continue(s);
}
