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
 * One SMTP session: the RFC 5321 state machine with PIPELINING, SIZE,
 * 8BITMIME, ENHANCEDSTATUSCODES, STARTTLS and AUTH PLAIN/LOGIN.
 *
 * Input is split into lines only at CRLF.  A bare CR or LF never ends a
 * command, a line of the message, or the message itself: in DATA such a
 * line makes the whole message refused once its real end arrives, so
 * that nothing a client smuggles behind a bare LF is ever read as a
 * second message or a command (the CVE-2023-51764 class).
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/nameser.h>

#include <ctype.h>
#include <errno.h>
#include <resolv.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "smarthostd.h"
#include "smtp.h"

#define RCPT_ALIAS_DEPTH	10

struct smtp_command {
	const char	*verb;
	void		(*handler)(struct smtp_session *, char *);
};

static void	 session_io(int, short, void *);
static void	 session_timeout(int, short, void *);
static void	 session_stutter(int, short, void *);
static time_t	 session_stutter_time(const struct smtp_session *);
static void	 session_handshake(struct smtp_session *);
static void	 session_starttls(struct smtp_session *);
static int	 session_tls_accept(struct smtp_session *);
static int	 session_read(struct smtp_session *);
static int	 session_flush(struct smtp_session *);
static void	 session_update(struct smtp_session *);
static void	 session_free(struct smtp_session *);
static void	 session_open(struct smtp_session *);
static void	 session_greeting(struct smtp_session *);
static void	 session_tarpit(struct smtp_session *, const char *);
static void	 session_tarpit_refuse(struct smtp_session *);
static void	 session_process(struct smtp_session *);
static int	 session_getline(struct smtp_session *, char *, size_t);
static void	 session_command(struct smtp_session *, char *);
static void	 cmd_helo(struct smtp_session *, char *);
static void	 cmd_ehlo(struct smtp_session *, char *);
static void	 cmd_starttls(struct smtp_session *, char *);
static void	 cmd_mail(struct smtp_session *, char *);
static void	 cmd_rcpt(struct smtp_session *, char *);
static void	 cmd_data(struct smtp_session *, char *);
static void	 cmd_rset(struct smtp_session *, char *);
static void	 cmd_noop(struct smtp_session *, char *);
static void	 cmd_vrfy(struct smtp_session *, char *);
static void	 cmd_help(struct smtp_session *, char *);
static void	 cmd_quit(struct smtp_session *, char *);
static int	 mail_parameters(struct smtp_session *, char *);
static int	 rcpt_alias(struct smtp_session *, char *, size_t,
		    const struct action *);
static void	 rcpt_accept(struct smtp_session *, const char *,
		    const struct action *);
static void	 rcpt_greylist(struct smtp_session *, const char *,
		    const struct action *);
static void	 rcpt_grey_tempfail(struct smtp_session *);
static void	 rcpt_reject(struct smtp_session *, const char *,
		    const struct match_rule *);
static int	 valid_helo(const char *);

static const struct smtp_command commands[] = {
	{ "HELO",	cmd_helo },
	{ "EHLO",	cmd_ehlo },
	{ "STARTTLS",	cmd_starttls },
	{ "AUTH",	cmd_auth },
	{ "MAIL",	cmd_mail },
	{ "RCPT",	cmd_rcpt },
	{ "DATA",	cmd_data },
	{ "RSET",	cmd_rset },
	{ "NOOP",	cmd_noop },
	{ "VRFY",	cmd_vrfy },
	{ "HELP",	cmd_help },
	{ "QUIT",	cmd_quit }
};

void
smtp_session_start(int fd, struct smtp_listener *l,
    const struct sockaddr_storage *ss, uint32_t id)
{
	struct smtp_session	*s;

	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->in = evbuffer_new()) == NULL ||
	    (s->out = evbuffer_new()) == NULL)
		fatal("smtp_session_start");
	s->id = id;
	s->fd = fd;
	s->body_fd = -1;
	s->listener = l;
	s->peer = *ss;
	(void)addr_string(ss, s->peer_addr, sizeof(s->peer_addr));
	(void)strlcpy(s->hostname, l->conf.hostname[0] != '\0' ?
	    l->conf.hostname : env->hostname, sizeof(s->hostname));
	s->state = SMTP_GREETING;
	TAILQ_INIT(&s->rcpts);
	event_set(&s->ev, fd, EV_READ, session_io, s);
	evtimer_set(&s->timer, session_timeout, s);
	evtimer_set(&s->stutter_ev, session_stutter, s);
	smtp_session_register(s);
	log_info("session %u: connection from %s on port %u", s->id,
	    s->peer_addr, l->conf.port);

	if (l->conf.tls == LISTEN_SMTPS) {
		if (session_tls_accept(s) == -1) {
			session_free(s);
			return;
		}
		s->tls_state = SMTP_TLS_HANDSHAKE;
		session_timer_reset(s);
		session_handshake(s);
		return;
	}
	session_open(s);
	session_timer_reset(s);
	session_update(s);
}

/*
 * The banner waits for grey's word on the client, so that a blocked
 * client is tarpitted from its first byte.  Whatever the client sends
 * meanwhile stays unread.  A listener with AUTH is for our own users,
 * who may well write from an address some DNSBL lists: it is not asked
 * about, and its sessions that do not authenticate are greylisted.
 */
static void
session_open(struct smtp_session *s)
{
	if (smtp_grey_wanted() && s->listener->conf.auth_table[0] == '\0' &&
	    !smtp_grey_whitelisted(s)) {
		if (smtp_send_grey_connect(s) == 0) {
			s->wait = SMTP_WAIT_GREY_CONNECT;
			return;
		}
		log_warnx("session %u: grey unavailable at connect", s->id);
	}
	session_greeting(s);
}

static void
session_greeting(struct smtp_session *s)
{
	session_reply(s, "220 %s ESMTP smarthostd", s->hostname);
}

void
smtp_session_grey_client(struct smtp_session *s,
    const struct grey_connect_result *res)
{
	char	 list[NAME_MAX_LEN], message[BLOCK_MESSAGE_MAX];

	s->wait = SMTP_WAIT_NONE;
	if (res->client != GREY_CLIENT_NONE) {
		smtp_stats.blocked_at_connect++;
		sanitize(list, res->list[0] != '\0' ? res->list :
		    res->client == GREY_CLIENT_TRAPPED ? "trapped" : "blocked",
		    sizeof(list));
		sanitize(message, res->message, sizeof(message));
		log_info("session %u: tarpit: %s: %s", s->id, list, message);
		session_tarpit(s, res->message);
	}
	session_greeting(s);
	session_timer_reset(s);
	session_continue(s);
}

/*
 * The tarpit, as spamd answers a blocklisted client: every reply goes
 * out one byte at a time while the session holds one of the stutter
 * slots, STARTTLS and AUTH do not exist, and the first RCPT gets the
 * refusal with the list's message, after which the session ends.
 */
static void
session_tarpit(struct smtp_session *s, const char *message)
{
	char	 text[BLOCK_MESSAGE_MAX];
	int	 n;

	if (s->tarpit)
		return;
	smtp_stats.tarpitted++;
	s->tarpit = 1;
	if (message[0] != '\0')
		sanitize(s->tarpit_message, message,
		    sizeof(s->tarpit_message));
	else {
		n = snprintf(text, sizeof(text), "Your address %s is not "
		    "allowed to send mail here", s->peer_addr);
		if (n < 0 || (size_t)n >= sizeof(text))
			text[0] = '\0';
		(void)strlcpy(s->tarpit_message, text,
		    sizeof(s->tarpit_message));
	}
	if ((s->stutter = smtp_stutter_acquire()))
		s->stutter_credit = 1;
}

static void
session_tarpit_refuse(struct smtp_session *s)
{
	if (s->closing)
		return;
	session_reply(s, "%s %s", env->tarpit.reply_code == 450 ?
	    "450 4.7.1" : "550 5.7.1", s->tarpit_message);
	s->closing = 1;
}

/*
 * I/O.  One event per session whose flags follow what the session
 * needs: to read when it may take a command, to write when replies are
 * pending, and whatever libtls asked for in between.
 */

static void
session_io(int fd, short event, void *arg)
{
	struct smtp_session	*s = arg;

	(void)fd;
	if (s->tls_state == SMTP_TLS_HANDSHAKE) {
		session_handshake(s);
		return;
	}
	s->tls_want = 0;
	if ((event & EV_WRITE) || evbuffer_get_length(s->out) > 0) {
		if (session_flush(s) == -1) {
			session_free(s);
			return;
		}
	}
	/* libtls may need a read to go on, whatever woke us. */
	if (((event & EV_READ) || s->tls != NULL) && !s->closing) {
		if (session_read(s) == -1) {
			session_free(s);
			return;
		}
		/*
		 * In DATA any input is progress; elsewhere only a whole
		 * command is, so that a byte now and then holds nothing.
		 */
		if (s->state == SMTP_DATA)
			session_timer_reset(s);
	}
	session_continue(s);
}

/* Run whatever can run now, then wait for the next event. */
void
session_continue(struct smtp_session *s)
{
	size_t	 in, out;

	/*
	 * Commands pipelined past the output limit run once the replies
	 * before them are out, without waiting for more input.
	 */
	do {
		in = evbuffer_get_length(s->in);
		out = evbuffer_get_length(s->out);
		session_process(s);
		if (evbuffer_get_length(s->out) > 0 && s->tls_want == 0 &&
		    session_flush(s) == -1) {
			session_free(s);
			return;
		}
	} while (evbuffer_get_length(s->out) == 0 &&
	    evbuffer_get_length(s->in) > 0 &&
	    (evbuffer_get_length(s->in) != in || out > 0));
	if (s->tls_state == SMTP_TLS_STARTING &&
	    evbuffer_get_length(s->out) == 0) {
		session_starttls(s);
		return;
	}
	if ((s->closing || s->eof) && s->wait == SMTP_WAIT_NONE &&
	    evbuffer_get_length(s->out) == 0) {
		session_free(s);
		return;
	}
	session_update(s);
}

static void
session_update(struct smtp_session *s)
{
	short	 events = 0;

	if (s->tls_want != 0)
		events = s->tls_want;
	else {
		if (evbuffer_get_length(s->out) > 0 && !s->stutter)
			events |= EV_WRITE;
		if (!s->closing && !s->eof && s->wait == SMTP_WAIT_NONE &&
		    s->tls_state != SMTP_TLS_STARTING &&
		    evbuffer_get_length(s->in) < SMTP_INBUF_MAX &&
		    evbuffer_get_length(s->out) < SMTP_OUTBUF_MAX)
			events |= EV_READ;
	}
	event_del(&s->ev);
	if (events == 0)
		return;
	event_set(&s->ev, s->fd, events, session_io, s);
	event_add(&s->ev, NULL);
}

/* Returns -1 when the connection is gone. */
static int
session_read(struct smtp_session *s)
{
	char	 buf[SMTP_READ_CHUNK];
	ssize_t	 n;

	while (evbuffer_get_length(s->in) < SMTP_INBUF_MAX) {
		if (s->tls != NULL) {
			n = tls_read(s->tls, buf, sizeof(buf));
			if (n == TLS_WANT_POLLIN)
				break;
			if (n == TLS_WANT_POLLOUT) {
				s->tls_want = EV_WRITE;
				break;
			}
			if (n == -1) {
				log_info("session %u: TLS read: %s", s->id,
				    tls_error(s->tls));
				return (-1);
			}
		} else if ((n = read(s->fd, buf, sizeof(buf))) == -1) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			if (errno != ECONNRESET)
				log_info("session %u: read: %s", s->id,
				    strerror(errno));
			return (-1);
		}
		if (n == 0) {
			s->eof = 1;
			break;
		}
		if (evbuffer_add(s->in, buf, n) == -1)
			fatal("evbuffer_add");
		if (s->tls == NULL && (size_t)n < sizeof(buf))
			break;
	}
	return (0);
}

/* Returns -1 when the connection is gone. */
static int
session_flush(struct smtp_session *s)
{
	struct timeval	 tick;
	size_t		 len;
	ssize_t		 n;

	while ((len = evbuffer_get_length(s->out)) > 0) {
		if (len > SMTP_READ_CHUNK)
			len = SMTP_READ_CHUNK;
		if (s->stutter) {
			if (s->stutter_credit == 0) {
				if (!evtimer_pending(&s->stutter_ev, NULL)) {
					tick.tv_sec = env->tarpit.stutter_ms /
					    1000;
					tick.tv_usec = (env->tarpit.stutter_ms %
					    1000) * 1000;
					evtimer_add(&s->stutter_ev, &tick);
				}
				return (0);
			}
			len = 1;
		}
		if (s->tls != NULL && s->tls_state == SMTP_TLS_ON) {
			n = tls_write(s->tls, evbuffer_pullup(s->out, len),
			    len);
			if (n == TLS_WANT_POLLIN || n == TLS_WANT_POLLOUT) {
				s->tls_want = n == TLS_WANT_POLLIN ? EV_READ :
				    EV_WRITE;
				return (0);
			}
			if (n == -1) {
				log_info("session %u: TLS write: %s", s->id,
				    tls_error(s->tls));
				return (-1);
			}
		} else if ((n = write(s->fd, evbuffer_pullup(s->out, len),
		    len)) == -1) {
			if (errno == EAGAIN || errno == EINTR)
				return (0);
			if (errno != EPIPE && errno != ECONNRESET)
				log_info("session %u: write: %s", s->id,
				    strerror(errno));
			return (-1);
		}
		evbuffer_drain(s->out, n);
		if (s->stutter)
			s->stutter_credit = 0;
	}
	return (0);
}

/* One more byte of a tarpitted session's reply may go. */
static void
session_stutter(int fd, short event, void *arg)
{
	struct smtp_session	*s = arg;

	(void)fd;
	(void)event;
	s->stutter_credit = 1;
	if (s->tls_want == 0 && session_flush(s) == -1) {
		session_free(s);
		return;
	}
	/* The reply is out: the client's time to answer starts now. */
	if (evbuffer_get_length(s->out) == 0 && !s->closing)
		session_timer_reset(s);
	session_continue(s);
}

/* How long the pending output takes to stutter out, rounded up. */
static time_t
session_stutter_time(const struct smtp_session *s)
{
	uint64_t	 ms;

	if (!s->stutter)
		return (0);
	ms = (uint64_t)evbuffer_get_length(s->out) * env->tarpit.stutter_ms;
	return ((time_t)((ms + 999) / 1000));
}

/*
 * STARTTLS: the 220 has gone out in plaintext.  Whatever the client
 * pipelined behind STARTTLS is thrown away unread, and the session
 * starts over, as RFC 3207 section 4.2 requires.
 */
static void
session_starttls(struct smtp_session *s)
{
	evbuffer_drain(s->in, evbuffer_get_length(s->in));
	if (session_tls_accept(s) == -1) {
		session_free(s);
		return;
	}
	s->tls_state = SMTP_TLS_HANDSHAKE;
	session_handshake(s);
}

/* The session keeps its context: a reload must not free it under us. */
static int
session_tls_accept(struct smtp_session *s)
{
	if ((s->pki = smtp_pki_get(s->listener->conf.pki)) == NULL) {
		log_warnx("session %u: cannot start TLS: no pki %s", s->id,
		    s->listener->conf.pki);
		return (-1);
	}
	if (tls_accept_socket(smtp_pki_context(s->pki), &s->tls, s->fd) ==
	    -1) {
		log_warnx("session %u: cannot start TLS: %s", s->id,
		    tls_error(smtp_pki_context(s->pki)));
		return (-1);
	}
	return (0);
}

static void
session_handshake(struct smtp_session *s)
{
	int	 ret;

	switch ((ret = tls_handshake(s->tls))) {
	case TLS_WANT_POLLIN:
	case TLS_WANT_POLLOUT:
		s->tls_want = ret == TLS_WANT_POLLIN ? EV_READ : EV_WRITE;
		session_update(s);
		return;
	case -1:
		log_info("session %u: TLS handshake failed: %s", s->id,
		    tls_error(s->tls));
		session_free(s);
		return;
	}
	s->tls_want = 0;
	s->tls_state = SMTP_TLS_ON;
	smtp_stats.sessions_tls++;
	log_info("session %u: %s with %s", s->id, tls_conn_version(s->tls),
	    tls_conn_cipher(s->tls));
	session_reset(s);
	s->state = SMTP_GREETING;
	s->helo[0] = '\0';
	s->esmtp = 0;
	if (s->listener->conf.tls == LISTEN_SMTPS)
		session_open(s);
	session_timer_reset(s);
	session_continue(s);
}

void
session_timer_reset(struct smtp_session *s)
{
	struct timeval	 tv;
	time_t		 timeout, left;

	tv.tv_usec = 0;
	if (s->wait == SMTP_WAIT_GREY_CONNECT || s->wait == SMTP_WAIT_GREY) {
		tv.tv_sec = s->wait == SMTP_WAIT_GREY ? SMTP_GREY_CHECK_WAIT :
		    SMTP_GREY_CONNECT_WAIT;
		evtimer_add(&s->timer, &tv);
		return;
	}
	if (s->wait == SMTP_WAIT_FACTS || s->wait == SMTP_WAIT_SCAN) {
		tv.tv_sec = s->wait == SMTP_WAIT_FACTS ? SMTP_FACTS_WAIT :
		    session_scan_deadline();
		evtimer_add(&s->timer, &tv);
		return;
	}
	timeout = s->state == SMTP_DATA ? env->smtp.data_timeout :
	    env->smtp.command_timeout;
	/*
	 * A stuttered reply gets the time it takes, and a little more, and
	 * no longer: a client that stops reading does not keep the
	 * session.
	 */
	if (evbuffer_get_length(s->out) > 0 && s->stutter)
		timeout = session_stutter_time(s) + SMTP_CLOSE_GRACE;
	if (s->in_transaction) {
		/*
		 * A deadline, not an idle timer: input does not move it,
		 * so a client that trickles bytes is cut off all the same.
		 */
		left = s->transaction_started + env->smtp.transaction_timeout -
		    time(NULL);
		if (left <= 0) {
			tv.tv_sec = 0;
			evtimer_add(&s->timer, &tv);
			return;
		}
		if (left < timeout)
			timeout = left;
	}
	tv.tv_sec = timeout;
	evtimer_add(&s->timer, &tv);
}

static void
session_timeout(int fd, short event, void *arg)
{
	struct smtp_session	*s = arg;
	struct timeval		 grace = { SMTP_CLOSE_GRACE, 0 };

	(void)fd;
	(void)event;
	if (s->closing) {
		/* A client that does not even read its last reply. */
		session_free(s);
		return;
	}
	if (s->wait == SMTP_WAIT_GREY_CONNECT) {
		log_warnx("session %u: no answer from grey at connect", s->id);
		s->wait = SMTP_WAIT_NONE;
		session_greeting(s);
		session_timer_reset(s);
		session_continue(s);
		return;
	}
	if (s->wait == SMTP_WAIT_GREY) {
		log_warnx("session %u: no answer from grey for <%s>", s->id,
		    s->grey_rcpt);
		/* Its answer, when it comes, is not this one's. */
		s->grey_late++;
		s->wait = SMTP_WAIT_NONE;
		rcpt_grey_tempfail(s);
		session_timer_reset(s);
		session_continue(s);
		return;
	}
	if (s->wait == SMTP_WAIT_FACTS) {
		log_info("session %u: no facts from grey in time; scanning "
		    "without them", s->id);
		s->wait = SMTP_WAIT_NONE;
		data_scan(s);
		session_continue(s);
		return;
	}
	if (s->wait == SMTP_WAIT_SCAN) {
		log_warnx("session %u: no verdict from the scan process in "
		    "%lld seconds", s->id, (long long)session_scan_deadline());
		/* Its answer, when it comes, is not the next message's. */
		s->scan_late = 1;
		s->wait = SMTP_WAIT_NONE;
		data_scan_tempfail(s, "451 4.3.0 Scanner unavailable, try "
		    "again later");
		session_continue(s);
		return;
	}
	smtp_stats.timeouts++;
	if (s->wait == SMTP_WAIT_QUEUE) {
		/* A late commit is logged by smtp.c; the client retries. */
		log_warnx("session %u: no answer from the queue", s->id);
		s->wait = SMTP_WAIT_NONE;
		session_close_with(s, "451 4.3.0 Queue not responding, try "
		    "again later");
	} else {
		log_info("session %u: timeout in %s", s->id,
		    s->state == SMTP_DATA ? "DATA" : "command phase");
		s->wait = SMTP_WAIT_NONE;
		s->closing = 0;
		evbuffer_drain(s->out, evbuffer_get_length(s->out));
		session_close_with(s, "421 4.4.2 Timeout, closing connection");
	}
	grace.tv_sec += session_stutter_time(s);
	evtimer_add(&s->timer, &grace);
	session_continue(s);
}

static void
session_free(struct smtp_session *s)
{
	event_del(&s->ev);
	evtimer_del(&s->timer);
	evtimer_del(&s->stutter_ev);
	if (s->stutter)
		smtp_stutter_release();
	session_reset(s);
	if (s->tls != NULL) {
		if (s->tls_state == SMTP_TLS_ON)
			(void)tls_close(s->tls);
		tls_free(s->tls);
	}
	if (s->pki != NULL)
		smtp_pki_put(s->pki);
	(void)close(s->fd);
	evbuffer_free(s->in);
	evbuffer_free(s->out);
	explicit_bzero(s->auth_login_user, sizeof(s->auth_login_user));
	log_info("session %u: closed", s->id);
	smtp_session_unregister(s);
	free(s);
}

void
smtp_session_shutdown(struct smtp_session *s)
{
	if (smtp_session_busy(s))
		return;		/* answered when the queue has committed */
	session_reply(s, "421 4.3.2 %s Service shutting down", s->hostname);
	if (s->tls_state != SMTP_TLS_HANDSHAKE)
		(void)session_flush(s);
	session_free(s);
}

/* A session whose message is on its way to the queue is answered. */
int
smtp_session_busy(const struct smtp_session *s)
{
	return (s->wait == SMTP_WAIT_QUEUE || s->wait == SMTP_WAIT_FACTS ||
	    s->wait == SMTP_WAIT_SCAN);
}

/*
 * Replies.  Every reply carries an enhanced status code (RFC 2034).
 */

void
session_reply(struct smtp_session *s, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	if (evbuffer_add_vprintf(s->out, fmt, ap) == -1 ||
	    evbuffer_add(s->out, "\r\n", 2) == -1)
		fatal("session_reply");
	va_end(ap);
}

/* A 5xx for a bad command: too many and the client is shown out. */
void
session_error(struct smtp_session *s, const char *fmt, ...)
{
	va_list	 ap;

	smtp_stats.rejected_syntax++;
	va_start(ap, fmt);
	if (evbuffer_add_vprintf(s->out, fmt, ap) == -1 ||
	    evbuffer_add(s->out, "\r\n", 2) == -1)
		fatal("session_error");
	va_end(ap);
	if (++s->errors >= env->smtp.max_errors) {
		log_info("session %u: too many errors from %s", s->id,
		    s->peer_addr);
		session_close_with(s, "421 4.7.0 Too many errors, closing "
		    "connection");
	}
}

void
session_close_with(struct smtp_session *s, const char *reply)
{
	if (s->closing)
		return;
	session_reply(s, "%s", reply);
	s->closing = 1;
}

/*
 * Commands.
 */

static void
session_process(struct smtp_session *s)
{
	char	 line[SMTP_AUTH_LINE_MAX + 1];
	int	 n;

	/* A stuttering session answers one command at a time. */
	while (s->wait == SMTP_WAIT_NONE && !s->closing &&
	    s->tls_state != SMTP_TLS_STARTING &&
	    s->tls_state != SMTP_TLS_HANDSHAKE &&
	    evbuffer_get_length(s->out) < SMTP_OUTBUF_MAX &&
	    !(s->stutter && evbuffer_get_length(s->out) > 0)) {
		if (s->state == SMTP_DATA) {
			if (data_process(s) == 0)
				break;
			continue;
		}
		if ((n = session_getline(s, line, sizeof(line))) == 0)
			break;
		if (n == -1)
			continue;	/* refused and answered */
		switch (s->state) {
		case SMTP_AUTH_PLAIN:
		case SMTP_AUTH_USER:
		case SMTP_AUTH_PASSWORD:
			auth_continue(s, line);
			break;
		default:
			session_command(s, line);
		}
		/* AUTH lines carry passwords: leave none on the stack. */
		explicit_bzero(line, sizeof(line));
		session_timer_reset(s);
	}
}

/*
 * Take one CRLF-terminated line.  Returns 1 with the line (CRLF removed)
 * in buf, 0 when no whole line is there yet, -1 when a bad line was
 * consumed and answered.  A line ends at CRLF and nowhere else: a bare
 * CR or LF inside it makes it a bad line, never two commands.
 */
static int
session_getline(struct smtp_session *s, char *buf, size_t size)
{
	unsigned char	*data, *crlf = NULL;
	size_t		 len, scan, linelen, i;
	int		 auth;

	len = evbuffer_get_length(s->in);
	if (len == 0)
		return (0);
	/* Room for the longest line, CRLF included, and nothing more. */
	scan = len < size - 1 ? len : size - 1;
	data = evbuffer_pullup(s->in, scan);
	for (i = 0; i + 1 < scan; i++)
		if (data[i] == '\r' && data[i + 1] == '\n') {
			crlf = data + i;
			break;
		}
	if (crlf == NULL) {
		if (scan < size - 1)
			return (0);
		/* No end in sight: refuse once, then skip to the CRLF. */
		if (!s->discard_line)
			session_error(s, "500 5.5.0 Line too long");
		s->discard_line = 1;
		/* Keep a final CR: it may pair with the next LF. */
		evbuffer_drain(s->in, data[scan - 1] == '\r' ? scan - 1 :
		    scan);
		return (-1);
	}
	linelen = crlf - data;
	if (s->discard_line) {
		evbuffer_drain(s->in, linelen + 2);
		s->discard_line = 0;
		return (-1);
	}
	if (memchr(data, '\0', linelen) != NULL ||
	    memchr(data, '\r', linelen) != NULL ||
	    memchr(data, '\n', linelen) != NULL) {
		evbuffer_drain(s->in, linelen + 2);
		session_error(s, "500 5.5.2 Syntax error: NUL, bare CR or bare "
		    "LF in command");
		return (-1);
	}
	auth = s->state == SMTP_AUTH_PLAIN || s->state == SMTP_AUTH_USER ||
	    s->state == SMTP_AUTH_PASSWORD ||
	    (linelen >= 5 && strncasecmp((char *)data, "AUTH ", 5) == 0);
	if (!auth && linelen + 2 > SMTP_COMMAND_LINE_MAX) {
		evbuffer_drain(s->in, linelen + 2);
		session_error(s, "500 5.5.0 Line too long");
		return (-1);
	}
	memcpy(buf, data, linelen);
	buf[linelen] = '\0';
	evbuffer_drain(s->in, linelen + 2);
	return (1);
}

static void
session_command(struct smtp_session *s, char *line)
{
	char	*arg;
	size_t	 i, verblen;

	verblen = strcspn(line, " ");
	arg = line + verblen;
	if (*arg == ' ')
		*arg++ = '\0';
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strlen(commands[i].verb) == verblen &&
		    strncasecmp(commands[i].verb, line, verblen) == 0) {
			commands[i].handler(s, arg);
			return;
		}
	}
	session_error(s, "500 5.5.1 Command unrecognized");
}

/* Forget the transaction; the session (HELO, TLS, AUTH) stays. */
void
session_reset(struct smtp_session *s)
{
	struct smtp_rcpt	*r;

	while ((r = TAILQ_FIRST(&s->rcpts)) != NULL) {
		TAILQ_REMOVE(&s->rcpts, r, entry);
		free(r);
	}
	s->nrcpt = 0;
	s->sender[0] = '\0';
	s->in_transaction = 0;
	s->flags = 0;
	s->declared_size = 0;
	if (s->body_fd != -1)
		(void)close(s->body_fd);
	s->body_fd = -1;
	free(s->body_buf);
	s->body_buf = NULL;
	s->body_buflen = 0;
	smtp_body_bytes -= s->body_size;
	s->body_size = 0;
	s->data_error = DATA_OK;
	s->data_midline = 0;
	s->hops = 0;
	if (s->state == SMTP_MAIL || s->state == SMTP_RCPT ||
	    s->state == SMTP_DATA)
		s->state = SMTP_READY;
}

static int
valid_helo(const char *arg)
{
	size_t	 len = strlen(arg);

	if (len == 0 || len > SMTP_DOMAIN_MAX)
		return (0);
	return (strspn(arg, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:[]") == len);
}

static void
session_hello(struct smtp_session *s, char *arg, int esmtp)
{
	if (!valid_helo(arg)) {
		session_error(s, "501 5.5.4 Syntax: %s hostname",
		    esmtp ? "EHLO" : "HELO");
		return;
	}
	session_reset(s);
	(void)strlcpy(s->helo, arg, sizeof(s->helo));
	s->esmtp = esmtp;
	s->state = SMTP_READY;
}

static void
cmd_helo(struct smtp_session *s, char *arg)
{
	session_hello(s, arg, 0);
	if (s->state == SMTP_READY)
		session_reply(s, "250 %s Hello %s [%s]", s->hostname, s->helo,
		    s->peer_addr);
}

static void
cmd_ehlo(struct smtp_session *s, char *arg)
{
	const struct listener	*l = &s->listener->conf;

	session_hello(s, arg, 1);
	if (s->state != SMTP_READY)
		return;
	session_reply(s, "250-%s Hello %s [%s]", s->hostname, s->helo,
	    s->peer_addr);
	session_reply(s, "250-PIPELINING");
	session_reply(s, "250-SIZE %llu",
	    (unsigned long long)env->smtp.max_message_size);
	session_reply(s, "250-8BITMIME");
	session_reply(s, "250-ENHANCEDSTATUSCODES");
	if (s->tls_state == SMTP_TLS_NONE && (l->tls == LISTEN_STARTTLS ||
	    l->tls == LISTEN_TLS_REQUIRE) && !s->tarpit)
		session_reply(s, "250-STARTTLS");
	if (s->tls_state == SMTP_TLS_ON && l->auth_table[0] != '\0' &&
	    s->auth_user[0] == '\0' && !s->tarpit)
		session_reply(s, "250-AUTH PLAIN LOGIN");
	session_reply(s, "250 HELP");
}

static void
cmd_starttls(struct smtp_session *s, char *arg)
{
	const struct listener	*l = &s->listener->conf;

	if (s->tarpit) {
		session_reply(s, "502 5.5.1 Command not implemented");
		return;
	}
	if (l->tls != LISTEN_STARTTLS && l->tls != LISTEN_TLS_REQUIRE) {
		session_error(s, "502 5.5.1 STARTTLS not available");
		return;
	}
	if (s->tls_state != SMTP_TLS_NONE) {
		session_error(s, "503 5.5.1 TLS already active");
		return;
	}
	if (*arg != '\0') {
		session_error(s, "501 5.5.4 Syntax: STARTTLS");
		return;
	}
	if (s->state == SMTP_GREETING) {
		session_error(s, "503 5.5.1 Send EHLO first");
		return;
	}
	if (s->in_transaction) {
		session_error(s, "503 5.5.1 STARTTLS inside a transaction");
		return;
	}
	session_reply(s, "220 2.0.0 Ready to start TLS");
	s->tls_state = SMTP_TLS_STARTING;
}

/*
 * The transaction.
 */

static void
cmd_mail(struct smtp_session *s, char *arg)
{
	const char	*rest;
	int		 error;

	if (s->state == SMTP_GREETING) {
		session_error(s, "503 5.5.1 Send HELO or EHLO first");
		return;
	}
	if (s->in_transaction) {
		session_error(s, "503 5.5.1 Nested MAIL command");
		return;
	}
	if (strncasecmp(arg, "FROM:", 5) != 0) {
		session_error(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
		return;
	}
	/* A tarpitted client, which cannot have TLS, gets to its RCPT. */
	if (s->listener->conf.tls == LISTEN_TLS_REQUIRE &&
	    s->tls_state != SMTP_TLS_ON && !s->tarpit) {
		session_reply(s, "530 5.7.0 Must issue a STARTTLS command "
		    "first");
		return;
	}
	if (!smtp_disk_ok()) {
		session_reply(s, "452 4.3.1 Insufficient system storage");
		return;
	}
	arg += 5;
	while (*arg == ' ')	/* "MAIL FROM: <a@b>", common and harmless */
		arg++;
	if ((error = mailaddr_parse_path(arg, s->sender, sizeof(s->sender),
	    &rest, MAILADDR_NULL_OK)) != 0) {
		s->sender[0] = '\0';
		if (error == MAILADDR_SYNTAX || error == MAILADDR_TOO_LONG)
			session_error(s, "501 5.1.7 Bad sender address: %s",
			    mailaddr_strerror(error));
		else
			session_error(s, "553 %s Sender address rejected: %s",
			    error == MAILADDR_NONASCII ? "5.6.7" : "5.1.7",
			    mailaddr_strerror(error));
		return;
	}
	if (mail_parameters(s, (char *)(uintptr_t)rest) == -1) {
		s->sender[0] = '\0';
		s->flags = 0;
		return;
	}
	s->in_transaction = 1;
	s->transaction_started = time(NULL);
	s->state = SMTP_MAIL;
	session_reply(s, "250 2.1.0 Ok");
}

/* SIZE, BODY and AUTH (RFC 4954 section 5, accepted and ignored). */
static int
mail_parameters(struct smtp_session *s, char *p)
{
	char			*param, *value, *end;
	unsigned long long	 size;

	if (*p != '\0' && *p != ' ') {
		session_error(s, "501 5.5.4 Syntax error in parameters");
		return (-1);
	}
	while ((param = strsep(&p, " ")) != NULL) {
		if (*param == '\0')
			continue;
		if ((value = strchr(param, '=')) != NULL)
			*value++ = '\0';
		if (value == NULL || *value == '\0') {
			session_error(s, "555 5.5.4 Unsupported parameter");
			return (-1);
		}
		if (strcasecmp(param, "SIZE") == 0) {
			errno = 0;
			size = strtoull(value, &end, 10);
			if (!isdigit((unsigned char)*value) || *end != '\0' ||
			    errno != 0) {
				session_error(s, "501 5.5.4 Bad SIZE value");
				return (-1);
			}
			if (size > env->smtp.max_message_size) {
				smtp_stats.rejected_size++;
				session_reply(s, "552 5.3.4 Message size "
				    "exceeds fixed limit");
				return (-1);
			}
			s->declared_size = size;
		} else if (strcasecmp(param, "BODY") == 0) {
			if (strcasecmp(value, "8BITMIME") == 0)
				s->flags |= ENVELOPE_8BITMIME;
			else if (strcasecmp(value, "7BIT") != 0) {
				session_error(s, "501 5.5.4 Bad BODY value");
				return (-1);
			}
		} else if (strcasecmp(param, "AUTH") != 0) {
			/* AUTH=: we trust no other server's word. */
			session_error(s, "555 5.5.4 Unsupported parameter");
			return (-1);
		}
	}
	return (0);
}

static void
cmd_rcpt(struct smtp_session *s, char *arg)
{
	struct rule_context	 ctx;
	const struct match_rule	*m;
	const struct action	*a;
	char			 addr[SMTP_ADDR_LEN];
	const char		*rest;
	int			 error;

	if (s->state != SMTP_MAIL && s->state != SMTP_RCPT) {
		session_error(s, "503 5.5.1 Need MAIL before RCPT");
		return;
	}
	if (s->tarpit) {
		session_tarpit_refuse(s);
		return;
	}
	if (strncasecmp(arg, "TO:", 3) != 0) {
		session_error(s, "501 5.5.4 Syntax: RCPT TO:<address>");
		return;
	}
	arg += 3;
	while (*arg == ' ')
		arg++;
	if ((error = mailaddr_parse_path(arg, addr, sizeof(addr), &rest,
	    MAILADDR_POSTMASTER)) != 0) {
		if (error == MAILADDR_SYNTAX || error == MAILADDR_TOO_LONG)
			session_error(s, "501 5.1.3 Bad recipient address: %s",
			    mailaddr_strerror(error));
		else
			session_error(s, "553 %s Recipient address rejected: "
			    "%s", error == MAILADDR_NONASCII ? "5.6.7" :
			    "5.1.3", mailaddr_strerror(error));
		return;
	}
	if (*rest != '\0') {
		session_error(s, "555 5.5.4 Unsupported RCPT parameter");
		return;
	}
	if (s->nrcpt >= env->smtp.max_recipients) {
		smtp_stats.rejected_rcpt_limit++;
		session_reply(s, "452 4.5.3 Too many recipients");
		return;
	}

	memset(&ctx, 0, sizeof(ctx));
	ctx.client = &s->peer;
	ctx.auth_user = s->auth_user[0] != '\0' ? s->auth_user : NULL;
	ctx.sender = s->sender;
	ctx.rcpt = addr;
	ctx.local_name = env->hostname;
	m = ruleset_match(env, &ctx);
	if (m == NULL || m->reject) {
		rcpt_reject(s, addr, m);
		return;
	}
	if ((a = action_find(env, m->action)) == NULL) {
		log_warnx("session %u: action %s is gone", s->id, m->action);
		session_reply(s, "451 4.3.0 Configuration changing, try again "
		    "later");
		return;
	}
	if (a->alias_table[0] != '\0' &&
	    rcpt_alias(s, addr, sizeof(addr), a) == -1) {
		session_reply(s, "550 5.4.6 <%s>: Alias loop or chain too "
		    "long", addr);
		return;
	}
	/*
	 * Our own networks and authenticated users match actions without
	 * greylist; AUTH is checked again all the same.
	 */
	if ((a->flags & ACTION_GREYLIST) && s->auth_user[0] == '\0' &&
	    !smtp_grey_whitelisted(s)) {
		rcpt_greylist(s, addr, a);
		return;
	}
	rcpt_accept(s, addr, a);
}

/*
 * Grey decides on the tuple; no other command is read until it has, or
 * until SMTP_GREY_CHECK_WAIT has passed.  A session that gave up on an
 * answer asks nothing more until that answer has come, so that it is
 * never taken for the verdict on another recipient.
 */
static void
rcpt_greylist(struct smtp_session *s, const char *addr,
    const struct action *a)
{
	(void)strlcpy(s->grey_rcpt, addr, sizeof(s->grey_rcpt));
	(void)strlcpy(s->grey_action, a->name, sizeof(s->grey_action));
	if (s->grey_late > 0) {
		log_info("session %u: <%s> not checked: grey has not answered "
		    "for an earlier recipient", s->id, addr);
		rcpt_grey_tempfail(s);
		return;
	}
	if (smtp_send_grey_check(s, addr) == -1) {
		log_warnx("session %u: grey unavailable for <%s>", s->id,
		    addr);
		rcpt_grey_tempfail(s);
		return;
	}
	s->wait = SMTP_WAIT_GREY;
}

static void
rcpt_grey_tempfail(struct smtp_session *s)
{
	smtp_stats.grey_tempfail++;
	session_reply(s, "451 4.7.1 Temporary failure, please try again "
	    "later");
}

void
smtp_session_grey_verdict(struct smtp_session *s,
    const struct grey_check_result *res)
{
	const struct action	*a;
	char			 reason[sizeof(res->reason)];

	s->wait = SMTP_WAIT_NONE;
	sanitize(reason, res->reason, sizeof(reason));
	switch (res->verdict) {
	case GREY_PASS:
		if ((a = action_find(env, s->grey_action)) == NULL) {
			log_warnx("session %u: action %s is gone", s->id,
			    s->grey_action);
			session_reply(s, "451 4.3.0 Configuration changing, "
			    "try again later");
			break;
		}
		smtp_stats.grey_passed++;
		log_debug("session %u: <%s> passed greylisting (%s)", s->id,
		    s->grey_rcpt, reason);
		rcpt_accept(s, s->grey_rcpt, a);
		break;
	case GREY_GREYLISTED:
		smtp_stats.greylisted++;
		log_info("session %u: greylisted <%s> from <%s> (%s)", s->id,
		    s->grey_rcpt, s->sender, reason);
		session_reply(s, "451 4.7.1 Temporary failure, please try "
		    "again later");
		break;
	case GREY_TRAPPED:
		smtp_stats.trapped++;
		log_info("session %u: trapped by <%s>", s->id, s->grey_rcpt);
		session_tarpit(s, res->message);
		session_tarpit_refuse(s);
		break;
	case GREY_TEMPFAIL:
		log_info("session %u: grey could not decide on <%s> from <%s> "
		    "(%s)", s->id, s->grey_rcpt, s->sender, reason);
		rcpt_grey_tempfail(s);
		break;
	}
	session_timer_reset(s);
	session_continue(s);
}

/*
 * A local recipient ("root", "root@localhost", "root@HOSTNAME") whose
 * local part the action's alias table names becomes the address the
 * alias gives, looked up again while it is local.  Returns -1 for a
 * chain too long, or a loop.
 */
static int
rcpt_alias(struct smtp_session *s, char *addr, size_t len,
    const struct action *a)
{
	struct table		*t;
	struct table_entry	 find, *e;
	const char		*domain, *rest;
	char			 local[SMTP_LOCALPART_MAX + 1];
	char			 path[SMTP_ADDR_LEN + 2], target[SMTP_ADDR_LEN];
	size_t			 i, n;
	int			 depth;

	if ((t = table_find(env, a->alias_table)) == NULL)
		return (0);
	for (depth = 0; depth <= RCPT_ALIAS_DEPTH; depth++) {
		domain = mailaddr_domain(addr);
		if (domain != NULL && strcasecmp(domain, "localhost") != 0 &&
		    strcasecmp(domain, env->hostname) != 0)
			return (0);
		n = domain == NULL ? strlen(addr) :
		    (size_t)(domain - addr - 1);
		if (n >= sizeof(local))
			return (0);
		for (i = 0; i < n; i++)
			local[i] = tolower((unsigned char)addr[i]);
		local[n] = '\0';
		find.key = local;
		if ((e = RB_FIND(table_entries, &t->entries, &find)) == NULL ||
		    e->value == NULL)
			return (0);
		if (depth == RCPT_ALIAS_DEPTH)
			break;
		if (strchr(e->value, '@') == NULL) {
			/* A local name: its own alias, if any, follows. */
			if (strlcpy(target, e->value, sizeof(target)) >=
			    sizeof(target))
				return (0);
		} else if ((size_t)snprintf(path, sizeof(path), "<%s>",
		    e->value) >= sizeof(path) || mailaddr_parse_path(path,
		    target, sizeof(target), &rest, 0) != 0 || *rest != '\0') {
			log_warnx("alias %s in table %s: \"%s\" is not an "
			    "address", local, t->name, e->value);
			return (0);
		}
		log_info("session %u: <%s> is an alias of <%s>", s->id, addr,
		    target);
		(void)strlcpy(addr, target, len);
	}
	log_warnx("session %u: alias chain of more than %d from <%s>", s->id,
	    RCPT_ALIAS_DEPTH, addr);
	return (-1);
}

static void
rcpt_accept(struct smtp_session *s, const char *addr, const struct action *a)
{
	struct smtp_rcpt	*r;

	TAILQ_FOREACH(r, &s->rcpts, entry)
		if (strcmp(r->addr, addr) == 0) {
			session_reply(s, "250 2.1.5 Ok");
			return;
		}
	if ((r = calloc(1, sizeof(*r))) == NULL)
		fatal("rcpt_accept");
	(void)strlcpy(r->addr, addr, sizeof(r->addr));
	(void)strlcpy(r->action, a->name, sizeof(r->action));
	TAILQ_INSERT_TAIL(&s->rcpts, r, entry);
	s->nrcpt++;
	s->state = SMTP_RCPT;
	session_reply(s, "250 2.1.5 Ok");
}

/*
 * The reply says which kind of rule refused: a recipient table, a
 * sender condition, or (the default, and no rule at all) relaying.
 */
static void
rcpt_reject(struct smtp_session *s, const char *addr,
    const struct match_rule *m)
{
	smtp_stats.rejected_relay++;
	log_info("session %u: %s: from <%s> to <%s> rejected%s", s->id,
	    s->peer_addr, s->sender, addr, m == NULL ? " (no rule matched)" :
	    "");
	if (m != NULL && m->rcpt_to.kind != COND_UNSET)
		session_reply(s, "550 5.1.1 <%s>: Recipient address rejected: "
		    "User unknown", addr);
	else if (m != NULL && m->mail_from.kind != COND_UNSET)
		session_reply(s, "550 5.7.1 <%s>: Sender address rejected: "
		    "not allowed from your address", s->sender);
	else
		session_reply(s, "550 5.7.1 <%s>: Relay access denied", addr);
}

static void
cmd_data(struct smtp_session *s, char *arg)
{
	if (*arg != '\0') {
		session_error(s, "501 5.5.4 Syntax: DATA");
		return;
	}
	if (s->state == SMTP_MAIL) {
		session_reply(s, "554 5.5.1 No valid recipients");
		return;
	}
	if (s->state != SMTP_RCPT) {
		session_error(s, "503 5.5.1 Need RCPT before DATA");
		return;
	}
	if (data_start(s) == -1) {
		session_reply(s, "451 4.3.0 Temporary failure, try again "
		    "later");
		return;
	}
	data_ask_facts(s);
	session_reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

static void
cmd_rset(struct smtp_session *s, char *arg)
{
	(void)arg;
	session_reset(s);
	session_reply(s, "250 2.0.0 Ok");
}

static void
cmd_noop(struct smtp_session *s, char *arg)
{
	(void)arg;
	session_reply(s, "250 2.0.0 Ok");
}

static void
cmd_vrfy(struct smtp_session *s, char *arg)
{
	(void)arg;
	session_reply(s, "252 2.5.2 Cannot VRFY user, but will accept "
	    "message and attempt delivery");
}

static void
cmd_help(struct smtp_session *s, char *arg)
{
	(void)arg;
	session_reply(s, "214-2.0.0 Commands: HELO EHLO STARTTLS AUTH MAIL "
	    "RCPT DATA");
	session_reply(s, "214 2.0.0 RSET NOOP VRFY HELP QUIT");
}

static void
cmd_quit(struct smtp_session *s, char *arg)
{
	(void)arg;
	session_reply(s, "221 2.0.0 %s Bye", s->hostname);
	s->closing = 1;
}

/* For the log: printable ASCII only. */
void
sanitize(char *dst, const char *src, size_t len)
{
	size_t	 i;

	for (i = 0; src[i] != '\0' && i < len - 1; i++)
		dst[i] = isprint((unsigned char)src[i]) ? src[i] : '?';
	dst[i] = '\0';
}
