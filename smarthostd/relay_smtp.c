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
 * The relay's SMTP dialogue on a connection: commands and their
 * replies, the setup (greeting, EHLO, STARTTLS, AUTH), transactions,
 * and the body.
 *
 * Everything the remote server says is treated as hostile: reply lines
 * and multi-line replies are bounded, a reply that breaks the grammar
 * ends the connection, bytes that arrive behind the 220 to STARTTLS
 * end it too, and the text kept for the queue and for bounces is
 * capped and reduced to printable ASCII.  What we send is CRLF lines
 * only, dot-stuffed, whatever the body holds.
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>

#include <ctype.h>
#include <errno.h>
#include <resolv.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smarthostd.h"
#include "relay.h"

#define RELAY_LINE_MAX		SMTP_TEXT_LINE_MAX	/* CRLF included */
#define RELAY_REPLY_LINES	100
#define RELAY_REPLY_BYTES	(8 * 1024)
#define RELAY_OUTBUF_LOW	(64 * 1024)	/* body refill below this */
#define RELAY_BODY_CHUNK	(64 * 1024)

/* A recipient within the job of a connection. */
enum rcpt_step {
	RS_TODO,		/* to be sent in this transaction */
	RS_SENT,		/* RCPT sent, no reply yet */
	RS_ACCEPTED,		/* 2xx to RCPT */
	RS_NEXT,		/* 452: again in a further transaction */
	RS_DONE			/* has its result */
};

#define RS_BIT(s)	(1U << (s))

const struct relay_cmd_info relay_cmds[] = {
	[CMD_GREETING] =	{ "the greeting",	RELAY_TIMEOUT_GREETING },
	[CMD_EHLO] =		{ "EHLO",		RELAY_TIMEOUT_COMMAND },
	[CMD_HELO] =		{ "HELO",		RELAY_TIMEOUT_COMMAND },
	[CMD_STARTTLS] =	{ "STARTTLS",		RELAY_TIMEOUT_COMMAND },
	[CMD_AUTH] =		{ "AUTH",		RELAY_TIMEOUT_COMMAND },
	[CMD_RSET] =		{ "RSET",		RELAY_TIMEOUT_RSET },
	[CMD_MAIL] =		{ "MAIL FROM",		RELAY_TIMEOUT_COMMAND },
	[CMD_RCPT] =		{ "RCPT TO",		RELAY_TIMEOUT_COMMAND },
	[CMD_DATA] =		{ "DATA",		RELAY_TIMEOUT_DATA },
	[CMD_EOM] =		{ "end of DATA",	RELAY_TIMEOUT_EOM },
	[CMD_QUIT] =		{ "QUIT",		RELAY_TIMEOUT_QUIT }
};

static void	 conn_expect(struct relay_conn *, enum relay_cmd, size_t);
static int	 conn_getreply(struct relay_conn *);
static void	 conn_ehlo_line(struct relay_conn *, const char *);
static void	 reply_said(struct relay_conn *, enum relay_cmd, char *,
		    size_t);
static void	 reply_enhanced(const struct relay_conn *, char *, size_t);
static void	 conn_fail_reply(struct relay_conn *, enum relay_cmd);
static void	 conn_reply(struct relay_conn *, struct relay_expect *);
static void	 conn_setup_next(struct relay_conn *);
static void	 conn_send_auth(struct relay_conn *);
static void	 conn_ready(struct relay_conn *);
static void	 txn_begin(struct relay_conn *);
static void	 txn_send_mail(struct relay_conn *);
static void	 txn_send_rcpts(struct relay_conn *);
static void	 txn_rcpts_done(struct relay_conn *);
static void	 txn_reply_rcpts(struct relay_conn *, unsigned int,
		    enum relay_cmd);
static void	 txn_end(struct relay_conn *);

/*
 * Commands and replies.
 */

void
conn_cmd(struct relay_conn *c, enum relay_cmd cmd, size_t rcpt,
    const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	if (evbuffer_add_vprintf(c->out, fmt, ap) == -1 ||
	    evbuffer_add(c->out, "\r\n", 2) == -1)
		fatal("relay: command");
	va_end(ap);
	conn_expect(c, cmd, rcpt);
}

/* A reply to wait for; the clock starts if it is the only one. */
static void
conn_expect(struct relay_conn *c, enum relay_cmd cmd, size_t rcpt)
{
	size_t	 slot;

	if (c->expect_count >= sizeof(c->expect) / sizeof(c->expect[0]))
		fatalx("relay %u: too many commands in flight", c->id);
	slot = (c->expect_head + c->expect_count) %
	    (sizeof(c->expect) / sizeof(c->expect[0]));
	c->expect[slot].cmd = cmd;
	c->expect[slot].rcpt = rcpt;
	if (c->expect_count++ == 0)
		conn_timer_expect(c);
}

void
conn_process(struct relay_conn *c)
{
	struct relay_expect	 e;
	int			 r;

	while (!c->dead && !c->tls_handshaking &&
	    evbuffer_get_length(c->in) > 0) {
		if (c->expect_count == 0) {
			if (c->phase == PHASE_READY && c->job == NULL) {
				/* Often a 421 before an idle server hangs up. */
				log_debug("relay %u: %s spoke while idle",
				    c->id, c->peer);
				conn_close(c);
			} else
				conn_fail(c, "%s: unexpected reply from the "
				    "server%s", c->peer, c->in_body ?
				    " before the end of the message" : "");
			return;
		}
		if ((r = conn_getreply(c)) == 0)
			return;
		if (r == -1)
			return;		/* failed */
		e = c->expect[c->expect_head];
		c->expect_head = (c->expect_head + 1) %
		    (sizeof(c->expect) / sizeof(c->expect[0]));
		c->expect_count--;
		conn_timer_expect(c);
		conn_reply(c, &e);
		c->reply_lines = 0;
	}
}

/*
 * One reply, line by line: 1 when complete, 0 when more is needed, -1
 * when the server broke the grammar or a bound (the connection failed).
 * Lines end at LF (a CR before it is dropped); any other control
 * character, NUL included, only ever reaches text_clean().
 */
static int
conn_getreply(struct relay_conn *c)
{
	unsigned char	*data, *lf;
	char		 line[RELAY_LINE_MAX + 1];
	size_t		 len, linelen;
	int		 code;

	for (;;) {
		if ((len = evbuffer_get_length(c->in)) == 0)
			return (0);
		if (len > RELAY_LINE_MAX)
			len = RELAY_LINE_MAX;
		data = evbuffer_pullup(c->in, len);
		if ((lf = memchr(data, '\n', len)) == NULL) {
			if (len < RELAY_LINE_MAX)
				return (0);
			conn_fail(c, "%s: reply line longer than %d octets",
			    c->peer, RELAY_LINE_MAX);
			return (-1);
		}
		linelen = lf - data;
		if (linelen > 0 && data[linelen - 1] == '\r')
			linelen--;
		memcpy(line, data, linelen);
		line[linelen] = '\0';
		evbuffer_drain(c->in, lf - data + 1);

		if (linelen < 3 || line[0] < '2' || line[0] > '5' ||
		    !isdigit((unsigned char)line[1]) ||
		    !isdigit((unsigned char)line[2]) ||
		    (linelen > 3 && line[3] != ' ' && line[3] != '-')) {
			conn_fail(c, "%s: malformed reply line", c->peer);
			return (-1);
		}
		code = (line[0] - '0') * 100 + (line[1] - '0') * 10 +
		    (line[2] - '0');
		if (c->reply_lines == 0) {
			c->reply_code = code;
			c->reply_bytes = 0;
			c->reply_textlen = 0;
			c->reply_text[0] = '\0';
			c->new_starttls = c->new_pipelining = 0;
			c->new_8bitmime = c->new_size = 0;
			c->new_auth_plain = 0;
			c->new_size_max = 0;
		} else if (code != c->reply_code) {
			conn_fail(c, "%s: multi-line reply with mixed codes",
			    c->peer);
			return (-1);
		}
		c->reply_bytes += linelen;
		if (++c->reply_lines > RELAY_REPLY_LINES ||
		    c->reply_bytes > RELAY_REPLY_BYTES) {
			conn_fail(c, "%s: reply longer than %d lines or %d "
			    "octets", c->peer, RELAY_REPLY_LINES,
			    RELAY_REPLY_BYTES);
			return (-1);
		}
		if (linelen > 4) {
			if (c->reply_textlen > 0 &&
			    c->reply_textlen + 1 < sizeof(c->reply_text))
				c->reply_text[c->reply_textlen++] = ' ';
			text_clean(c->reply_text + c->reply_textlen,
			    sizeof(c->reply_text) - c->reply_textlen,
			    line + 4, linelen - 4);
			c->reply_textlen += strlen(c->reply_text +
			    c->reply_textlen);
		}
		if (c->expect[c->expect_head].cmd == CMD_EHLO &&
		    c->reply_lines > 1)
			conn_ehlo_line(c, linelen > 4 ? line + 4 : "");
		if (linelen == 3 || line[3] == ' ')
			return (1);
	}
}

static void
conn_ehlo_line(struct relay_conn *c, const char *kw)
{
	const char		*p;
	char			*end;
	unsigned long long	 n;

	if (strcasecmp(kw, "STARTTLS") == 0)
		c->new_starttls = 1;
	else if (strcasecmp(kw, "PIPELINING") == 0)
		c->new_pipelining = 1;
	else if (strcasecmp(kw, "8BITMIME") == 0)
		c->new_8bitmime = 1;
	else if (strncasecmp(kw, "SIZE", 4) == 0 &&
	    (kw[4] == '\0' || kw[4] == ' ')) {
		c->new_size = 1;
		if (kw[4] == ' ') {
			errno = 0;
			n = strtoull(kw + 5, &end, 10);
			if (errno == 0 && *end == '\0' &&
			    isdigit((unsigned char)kw[5]))
				c->new_size_max = n;
		}
	} else if (strncasecmp(kw, "AUTH", 4) == 0 &&
	    (kw[4] == ' ' || kw[4] == '=')) {
		for (p = kw + 5; *p != '\0'; p += strcspn(p, " ")) {
			p += strspn(p, " ");
			if (strncasecmp(p, "PLAIN", 5) == 0 &&
			    (p[5] == '\0' || p[5] == ' '))
				c->new_auth_plain = 1;
		}
	}
}

/*
 * "host [addr]: said: 550 5.1.1 text (in reply to RCPT TO)", the
 * server's text shortened to fit.
 */
static void
reply_said(struct relay_conn *c, enum relay_cmd cmd, char *buf, size_t len)
{
	char	 head[sizeof(c->peer) + 32], tail[64];
	size_t	 room, used;

	if (snprintf(head, sizeof(head), "%s: said: %d", c->peer,
	    c->reply_code) < 0 || snprintf(tail, sizeof(tail),
	    " (in reply to %s)", relay_cmds[cmd].name) < 0)
		fatal("relay: reply text");
	(void)strlcpy(buf, head, len);
	used = strlen(buf);
	if (c->reply_textlen > 0 && used + strlen(tail) + 2 < len) {
		room = len - used - strlen(tail) - 1;
		buf[used++] = ' ';
		buf[used] = '\0';
		(void)strlcat(buf, c->reply_text, used + room);
	}
	(void)strlcat(buf, tail, len);
}

/* The reply's own RFC 3463 code if it has one of its class, else X.0.0. */
static void
reply_enhanced(const struct relay_conn *c, char *buf, size_t len)
{
	const char	*p = c->reply_text;
	size_t		 a, b;

	if (p[0] == c->reply_code / 100 + '0' && p[1] == '.') {
		a = strspn(p + 2, "0123456789");
		if (a >= 1 && a <= 3 && p[2 + a] == '.') {
			b = strspn(p + 3 + a, "0123456789");
			if (b >= 1 && b <= 3 && (p[3 + a + b] == ' ' ||
			    p[3 + a + b] == '\0') && 3 + a + b < len) {
				memcpy(buf, p, 3 + a + b);
				buf[3 + a + b] = '\0';
				return;
			}
		}
	}
	(void)snprintf(buf, len, "%d.0.0", c->reply_code / 100);
}

/* The current reply ends setup on this address. */
static void
conn_fail_reply(struct relay_conn *c, enum relay_cmd cmd)
{
	char	 said[MESSAGE_LEN];

	reply_said(c, cmd, said, sizeof(said));
	c->err_code = c->reply_code;
	reply_enhanced(c, c->err_enhanced, sizeof(c->err_enhanced));
	conn_fail(c, "%s", said);
}

static void
conn_reply(struct relay_conn *c, struct relay_expect *e)
{
	int	 class = c->reply_code / 100;

	switch (e->cmd) {
	case CMD_GREETING:
		if (class != 2) {
			conn_fail_reply(c, e->cmd);
			return;
		}
		conn_send_ehlo(c, CMD_EHLO);
		break;
	case CMD_EHLO:
		if (class == 5) {
			conn_send_ehlo(c, CMD_HELO);
			break;
		}
		/* FALLTHROUGH */
	case CMD_HELO:
		if (class != 2) {
			conn_fail_reply(c, e->cmd);
			return;
		}
		c->esmtp = e->cmd == CMD_EHLO;
		c->ext_starttls = c->esmtp && c->new_starttls;
		c->ext_pipelining = c->esmtp && c->new_pipelining;
		c->ext_8bitmime = c->esmtp && c->new_8bitmime;
		c->ext_size = c->esmtp && c->new_size;
		c->size_max = c->esmtp ? c->new_size_max : 0;
		c->ext_auth_plain = c->esmtp && c->new_auth_plain;
		conn_setup_next(c);
		break;
	case CMD_STARTTLS:
		if (class != 2) {
			if (conn_tls_required(c)) {
				conn_fail_reply(c, e->cmd);
				return;
			}
			c->no_starttls = 1;
			conn_setup_next(c);
			break;
		}
		/*
		 * Nothing may follow the 220: bytes already here would be
		 * read as if they came over TLS (CVE-2011-0411 class).
		 */
		if (evbuffer_get_length(c->in) > 0) {
			if (!conn_tls_required(c))
				c->retry_plain = 1;
			conn_fail(c, "%s: data after the reply to STARTTLS",
			    c->peer);
			return;
		}
		conn_tls_start(c);
		return;
	case CMD_AUTH:
		if (class != 2) {
			conn_fail_reply(c, e->cmd);
			return;
		}
		conn_ready(c);
		break;
	case CMD_RSET:
		if (class != 2) {
			conn_fail_reply(c, e->cmd);
			return;
		}
		c->need_rset = 0;
		txn_send_mail(c);
		break;
	case CMD_MAIL:
		c->mail_replied = 1;
		if (class != 2) {
			c->mail_failed = 1;
			txn_reply_rcpts(c, RS_BIT(RS_TODO) | RS_BIT(RS_SENT),
			    e->cmd);
			if (c->expect_count == 0)
				txn_rcpts_done(c);
			break;
		}
		txn_send_rcpts(c);
		break;
	case CMD_RCPT:
		if (!c->mail_failed && c->rstate[e->rcpt] == RS_SENT) {
			char	 said[MESSAGE_LEN], enh[16];

			reply_said(c, e->cmd, said, sizeof(said));
			reply_enhanced(c, enh, sizeof(enh));
			if (class == 2) {
				c->rstate[e->rcpt] = RS_ACCEPTED;
				c->naccepted++;
			} else {
				job_result(c->job, e->rcpt, class == 5 ?
				    RELAY_FAILED : RELAY_DEFERRED,
				    c->reply_code, enh, said);
				c->rstate[e->rcpt] = c->reply_code == 452 ?
				    RS_NEXT : RS_DONE;
			}
		}
		txn_send_rcpts(c);
		if (c->expect_count == 0)
			txn_rcpts_done(c);
		break;
	case CMD_DATA:
		if (c->reply_code != 354) {
			txn_reply_rcpts(c, RS_BIT(RS_ACCEPTED), e->cmd);
			c->need_rset = 1;
			txn_end(c);
			break;
		}
		c->in_body = 1;
		c->body_off = 0;
		c->body_bol = 1;
		c->body_done = 0;
		c->body_bare = 0;
		conn_timer(c, RELAY_TIMEOUT_BLOCK);
		break;
	case CMD_EOM:
		c->in_body = 0;
		if (class == 2) {
			c->dest->stats.messages++;
			stats_total.messages++;
		}
		txn_reply_rcpts(c, RS_BIT(RS_ACCEPTED), e->cmd);
		c->messages++;
		txn_end(c);
		break;
	case CMD_QUIT:
		conn_close(c);
		return;
	}
}

/* After EHLO/HELO: STARTTLS, AUTH, or ready. */
static void
conn_setup_next(struct relay_conn *c)
{
	if (!c->tls_on && c->ext_starttls && !c->no_starttls) {
		conn_cmd(c, CMD_STARTTLS, 0, "STARTTLS");
		return;
	}
	if (!c->tls_on && conn_tls_required(c)) {
		conn_error(c, 0, "4.7.4");
		conn_fail(c, "%s: TLS is required, but the server %s", c->peer,
		    c->ext_starttls ? "refused STARTTLS" :
		    "does not offer STARTTLS");
		return;
	}
	if (c->target.auth_user[0] != '\0') {
		conn_error(c, 0, "4.7.0");
		if (!c->tls_on || !c->target.tls_verify) {
			conn_fail(c, "%s: no verified TLS, so no AUTH: the "
			    "password goes only to the server named", c->peer);
			return;
		}
		if (!c->ext_auth_plain) {
			conn_fail(c, "%s: the server does not offer AUTH "
			    "PLAIN", c->peer);
			return;
		}
		conn_send_auth(c);
		return;
	}
	conn_ready(c);
}

void
conn_send_ehlo(struct relay_conn *c, enum relay_cmd cmd)
{
	struct sockaddr_storage	 ss;
	socklen_t		 len = sizeof(ss);
	char			 addr[INET6_ADDRSTRLEN], name[HOSTNAME_LEN];
	const char		*helo = c->target.helo;
	size_t			 i;

	memset(&ss, 0, sizeof(ss));
	for (i = 0; helo[i] != '\0'; i++)
		if (helo[i] <= ' ' || helo[i] >= 0x7f)
			break;
	if (helo[0] == '\0' || helo[i] != '\0') {
		/* No name: our address, as RFC 5321 section 4.1.4 allows. */
		if (getsockname(c->fd, (struct sockaddr *)&ss, &len) == -1 ||
		    addr_string(&ss, addr, sizeof(addr)) == NULL)
			(void)strlcpy(addr, "127.0.0.1", sizeof(addr));
		(void)snprintf(name, sizeof(name), "[%s%s]",
		    ss.ss_family == AF_INET6 ? "IPv6:" : "", addr);
		helo = name;
	}
	conn_cmd(c, cmd, 0, "%s %s", cmd == CMD_EHLO ? "EHLO" : "HELO", helo);
}

static void
conn_send_auth(struct relay_conn *c)
{
	char	 plain[1 + AUTH_USER_MAX + 1 + AUTH_PASSWORD_MAX];
	char	 b64[((sizeof(plain) + 2) / 3) * 4 + 1];
	size_t	 ulen, plen;
	int	 n;

	ulen = strnlen(c->target.auth_user, AUTH_USER_MAX - 1);
	plen = strnlen(c->target.auth_password, AUTH_PASSWORD_MAX - 1);
	plain[0] = '\0';
	memcpy(plain + 1, c->target.auth_user, ulen);
	plain[1 + ulen] = '\0';
	memcpy(plain + 2 + ulen, c->target.auth_password, plen);
	if ((n = b64_ntop((unsigned char *)plain, 2 + ulen + plen, b64,
	    sizeof(b64))) == -1)
		fatalx("relay: AUTH PLAIN encoding");
	conn_cmd(c, CMD_AUTH, 0, "AUTH PLAIN %s", b64);
	explicit_bzero(plain, sizeof(plain));
	explicit_bzero(b64, sizeof(b64));
}

/* The session is up: its first job, or the next one waiting. */
static void
conn_ready(struct relay_conn *c)
{
	c->phase = PHASE_READY;
	c->last_error[0] = '\0';
	c->last_enhanced[0] = '\0';
	c->last_code = 0;
	log_debug("relay %u: session with %s%s%s%s", c->id, c->peer,
	    c->esmtp ? ", ESMTP" : "", c->tls_on ? ", TLS" : "",
	    c->target.auth_user[0] != '\0' ? ", authenticated" : "");
	if (c->job != NULL)
		txn_start(c);
	else
		conn_next(c);
}

/*
 * Transactions.
 */

void
txn_start(struct relay_conn *c)
{
	struct relay_job	*job = c->job;
	size_t			 i;
	char			 text[MESSAGE_LEN];

	free(c->rstate);
	if ((c->rstate = calloc(job->nrcpt, 1)) == NULL)
		fatal("relay: recipients");
	/* job_valid() left the bad ones with a result and text. */
	for (i = 0; i < job->nrcpt; i++)
		c->rstate[i] = job->results[i].text[0] != '\0' ? RS_DONE :
		    RS_TODO;
	c->mail_replied = 0;
	if (c->ext_size && c->size_max > 0 && job->body_len > c->size_max) {
		(void)snprintf(text, sizeof(text), "%s: message of %zu octets "
		    "exceeds the server's limit of %llu", c->peer,
		    job->body_len, (unsigned long long)c->size_max);
		for (i = 0; i < job->nrcpt; i++)
			if (c->rstate[i] == RS_TODO) {
				job_result(job, i, RELAY_FAILED, 0, "5.3.4",
				    text);
				c->rstate[i] = RS_DONE;
			}
		job_finish(job, c->dest);
		c->job = NULL;
		c->njobs++;
		conn_next(c);
		return;
	}
	txn_begin(c);
}

static void
txn_begin(struct relay_conn *c)
{
	c->naccepted = 0;
	c->mail_failed = 0;
	c->rcpt_cursor = 0;
	c->in_body = 0;
	if (c->need_rset) {
		conn_cmd(c, CMD_RSET, 0, "RSET");
		return;
	}
	txn_send_mail(c);
}

static void
txn_send_mail(struct relay_conn *c)
{
	struct relay_job	*job = c->job;
	char			 size[32] = "";

	if (c->ext_size)
		(void)snprintf(size, sizeof(size), " SIZE=%zu", job->body_len);
	conn_cmd(c, CMD_MAIL, 0, "MAIL FROM:<%s>%s%s", job->sender,
	    (job->flags & ENVELOPE_8BITMIME) && c->ext_8bitmime ?
	    " BODY=8BITMIME" : "", size);
	if (c->ext_pipelining)
		txn_send_rcpts(c);
}

/* With PIPELINING a window of RCPTs at once; without, one by one. */
static void
txn_send_rcpts(struct relay_conn *c)
{
	struct relay_job	*job = c->job;
	size_t			 window;

	if (c->mail_failed)
		return;
	window = c->ext_pipelining ? RELAY_PIPELINE_MAX : 1;
	while (c->expect_count < window && c->rcpt_cursor < job->nrcpt) {
		if (c->rstate[c->rcpt_cursor] != RS_TODO) {
			c->rcpt_cursor++;
			continue;
		}
		c->rstate[c->rcpt_cursor] = RS_SENT;
		conn_cmd(c, CMD_RCPT, c->rcpt_cursor, "RCPT TO:<%s>",
		    job->rcpts[c->rcpt_cursor]);
		c->rcpt_cursor++;
	}
}

/* Every RCPT has its reply: DATA, if anyone is listening. */
static void
txn_rcpts_done(struct relay_conn *c)
{
	size_t	 i;

	if (c->rcpt_cursor < c->job->nrcpt && !c->mail_failed) {
		for (i = c->rcpt_cursor; i < c->job->nrcpt; i++)
			if (c->rstate[i] == RS_TODO)
				return;		/* more to send */
	}
	if (!c->mail_failed && c->naccepted > 0) {
		conn_cmd(c, CMD_DATA, 0, "DATA");
		return;
	}
	c->need_rset = 1;
	txn_end(c);
}

/* The current reply is the answer for the recipients in these states. */
static void
txn_reply_rcpts(struct relay_conn *c, unsigned int states, enum relay_cmd cmd)
{
	struct relay_job	*job = c->job;
	enum relay_status	 status;
	char			 said[MESSAGE_LEN], enh[16];
	size_t			 i;
	int			 class = c->reply_code / 100;

	reply_said(c, cmd, said, sizeof(said));
	reply_enhanced(c, enh, sizeof(enh));
	if (class == 2)
		status = cmd == CMD_EOM ? RELAY_DELIVERED : RELAY_DEFERRED;
	else
		status = class == 5 ? RELAY_FAILED : RELAY_DEFERRED;
	if (class == 2 && cmd != CMD_EOM) {
		/* A 2xx where none belongs: keep the mail, try again. */
		(void)strlcpy(enh, "4.5.0", sizeof(enh));
	}
	for (i = 0; i < job->nrcpt; i++) {
		if ((RS_BIT(c->rstate[i]) & states) == 0)
			continue;
		job_result(job, i, status, c->reply_code, enh, said);
		c->rstate[i] = RS_DONE;
	}
}

/*
 * The transaction is over.  Recipients that a 452 put off while others
 * got through go in another transaction on this connection.
 */
static void
txn_end(struct relay_conn *c)
{
	struct relay_job	*job = c->job;
	size_t			 i, again = 0;

	if (c->in_body)
		c->in_body = 0;
	if (c->body_bare > 0)
		log_warnx("relay %u: %s: %zu bare CR or LF in the body sent "
		    "as CRLF", c->id, job->id, c->body_bare);
	c->body_bare = 0;
	for (i = 0; i < job->nrcpt; i++)
		if (c->rstate[i] == RS_NEXT) {
			if (c->naccepted > 0) {
				c->rstate[i] = RS_TODO;
				again++;
			} else
				c->rstate[i] = RS_DONE;
		}
	if (again > 0 && c->messages < RELAY_CONN_MESSAGES) {
		txn_begin(c);
		return;
	}
	for (i = 0; i < job->nrcpt; i++)
		if (c->rstate[i] == RS_TODO)
			job_result(job, i, RELAY_DEFERRED, 452, "4.5.3",
			    "too many recipients for one connection");
	job_finish(job, c->dest);
	c->job = NULL;
	c->njobs++;
	conn_next(c);
}

/* The connection is gone mid-job: who has no answer is deferred. */
void
txn_abort(struct relay_conn *c)
{
	struct relay_job	*job = c->job;
	size_t			 i;
	const char		*enh;

	enh = c->last_enhanced[0] != '\0' ? c->last_enhanced : "4.4.2";
	for (i = 0; i < job->nrcpt; i++) {
		if (c->rstate != NULL && c->rstate[i] == RS_DONE)
			continue;
		if (c->rstate != NULL && c->rstate[i] == RS_NEXT)
			continue;
		if (c->rstate == NULL && job->results[i].text[0] != '\0')
			continue;
		job_result(job, i, RELAY_DEFERRED, c->last_code, enh,
		    c->last_error);
	}
	c->in_body = 0;
	job_finish(job, c->dest);
	c->job = NULL;
}

/*
 * The body, from memory to the output buffer a bounded piece at a
 * time: lines start with a doubled dot where they start with a dot,
 * and every line ends in CRLF, a bare CR or LF included.
 */
void
body_fill(struct relay_conn *c)
{
	const unsigned char	*b = c->job->body, *lf, *cr;
	size_t			 len = c->job->body_len, i, start, end, stop;
	int			 bol;

	while (!c->body_done &&
	    evbuffer_get_length(c->out) < RELAY_OUTBUF_LOW) {
		if (c->body_off >= len) {
			if (!c->body_bol &&
			    evbuffer_add(c->out, "\r\n", 2) == -1)
				fatal("relay: body");
			if (evbuffer_add(c->out, ".\r\n", 3) == -1)
				fatal("relay: body");
			c->body_done = 1;
			conn_expect(c, CMD_EOM, 0);
			break;
		}
		start = i = c->body_off;
		end = len - start > RELAY_BODY_CHUNK ? start +
		    RELAY_BODY_CHUNK : len;
		bol = c->body_bol;
		/* A line at a time, found with memchr: bodies are large. */
		while (i < end) {
			if (bol && b[i] == '.')
				break;
			lf = memchr(b + i, '\n', end - i);
			stop = lf != NULL ? (size_t)(lf - b) : end;
			cr = memchr(b + i, '\r', stop - i);
			if (lf == NULL) {
				if (cr == NULL) {
					i = end;	/* the line goes on */
					bol = 0;
				} else if ((size_t)(cr - b) == end - 1 &&
				    end < len && b[end] == '\n') {
					i = end + 1;	/* CRLF across chunks */
					bol = 1;
				} else {
					i = cr - b;	/* a bare CR */
					break;
				}
				continue;
			}
			if (cr == NULL || (size_t)(cr - b) != stop - 1) {
				/* a bare LF, or a bare CR before it */
				i = cr != NULL ? (size_t)(cr - b) : stop;
				break;
			}
			i = stop + 1;
			bol = 1;
		}
		if (i > start && evbuffer_add(c->out, b + start, i - start) ==
		    -1)
			fatal("relay: body");
		c->body_off = i;
		c->body_bol = bol;
		if (i >= len || i >= end)
			continue;
		if (bol && b[i] == '.') {
			/* The stuffed dot; the line's own follows with it. */
			if (evbuffer_add(c->out, ".", 1) == -1)
				fatal("relay: body");
			c->body_bol = 0;
			continue;
		}
		/* a bare CR or LF */
		if (evbuffer_add(c->out, "\r\n", 2) == -1)
			fatal("relay: body");
		c->body_bare++;
		c->body_off = i + 1;
		c->body_bol = 1;
	}
}

/*
 * Text from the remote side, or built from it, for logs, the queue and
 * bounces: printable ASCII, other bytes as '?', at most len - 1 bytes.
 */
void
text_clean(char *dst, size_t dstlen, const char *src, size_t srclen)
{
	size_t	 i;

	if (dstlen == 0)
		return;
	for (i = 0; i < srclen && i < dstlen - 1; i++)
		dst[i] = src[i] >= 0x20 && src[i] < 0x7f ? src[i] :
		    src[i] == '\t' ? ' ' : '?';
	dst[i] = '\0';
}
