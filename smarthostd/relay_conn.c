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
 * The relay's connections: the destination resolved (by MX, the relay
 * host, or an address literal), its addresses tried in turn, the
 * socket's I/O and timeouts, TLS (SMTPS, or after STARTTLS), what a
 * failure does to the connection and its job, and the end of it.
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <tls.h>
#include <unistd.h>

#include "smarthostd.h"
#include "relay.h"

#define RELAY_IDLE		5	/* seconds an unused connection waits */
#define RELAY_ADDRS_MAX		10	/* addresses tried per connection */
#define RELAY_INBUF_MAX		(16 * 1024)
#define RELAY_IO_CHUNK		(16 * 1024)

static uint32_t			 conn_ids;

static void	 conn_start(int, short, void *);
static void	 conn_resolved(void *, int, const struct dns_addr *, size_t);
static int	 conn_literal(struct relay_conn *, const char *);
static void	 conn_bad_name(struct relay_conn *, const char *,
		    const char *);
static in_port_t conn_port(const struct relay_conn *);
static void	 conn_connect(struct relay_conn *);
static void	 conn_connected(struct relay_conn *);
static void	 conn_reset_socket(struct relay_conn *);
static void	 conn_io(int, short, void *);
static void	 conn_continue(struct relay_conn *);
static int	 conn_read(struct relay_conn *);
static void	 conn_timeout(int, short, void *);
static void	 conn_handshake(struct relay_conn *);
static void	 conn_tls_failed(struct relay_conn *, const char *);
static void	 conn_setup_failed(struct relay_conn *);
static void	 conn_release(struct relay_conn *);

/*
 * Connections: start, resolve, connect.
 */

void
conn_new(struct relay_dest *dest, struct relay_job *job)
{
	struct relay_conn	*c;
	struct timeval		 now = { 0, 0 };

	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->in = evbuffer_new()) == NULL ||
	    (c->out = evbuffer_new()) == NULL)
		fatal("relay: connection");
	c->dest = dest;
	c->target = dest->target;
	c->id = ++conn_ids;
	c->fd = -1;
	c->phase = PHASE_RESOLVE;
	c->job = job;
	c->counted = 1;
	dest->nconn++;
	nconn_total++;
	dest->stats.active++;
	TAILQ_INSERT_TAIL(&dest->conns, c, entry);
	evtimer_set(&c->timer, conn_start, c);
	evtimer_add(&c->timer, &now);
}

static void
conn_start(int fd, short event, void *arg)
{
	struct relay_conn	*c = arg;
	const char		*name;
	int			 rc;

	(void)fd;
	(void)event;
	evtimer_set(&c->timer, conn_timeout, c);
	(void)strlcpy(c->peer, c->target.host[0] != '\0' ? c->target.host :
	    c->target.domain, sizeof(c->peer));
	(void)strlcpy(c->last_enhanced, "4.4.1", sizeof(c->last_enhanced));

	/* An address literal needs no DNS: "[192.0.2.1]", "::1". */
	name = c->target.host[0] != '\0' ? c->target.host : c->target.domain;
	if (c->target.host[0] != '\0' || name[0] == '[') {
		switch (conn_literal(c, name)) {
		case 1:
			conn_connect(c);
			return;
		case -1:
			conn_bad_name(c, "bad address literal", name);
			return;
		}
	}
	c->resolving = 1;
	if (c->target.host[0] != '\0')
		rc = dns_resolve_host(c->target.host, conn_port(c),
		    conn_resolved, c);
	else
		rc = dns_resolve_mx(c->target.domain, conn_resolved, c);
	if (rc == -1 && c->resolving) {
		c->resolving = 0;
		/* A name that no DNS answer can make valid fails now. */
		if (errno == EINVAL && c->target.host[0] == '\0') {
			conn_bad_name(c, "invalid domain name", name);
			return;
		}
		conn_resolved(c, DNS_TEMPFAIL, NULL, 0);
	}
}

/* A destination no DNS answer can make valid: the job fails, 5.1.2. */
static void
conn_bad_name(struct relay_conn *c, const char *what, const char *name)
{
	(void)snprintf(c->last_error, sizeof(c->last_error), "%s %s", what,
	    name);
	(void)strlcpy(c->last_enhanced, "5.1.2", sizeof(c->last_enhanced));
	job_all(c->job, RELAY_FAILED, 0, c->last_enhanced, c->last_error);
	job_finish(c->job, c->dest);
	c->job = NULL;
	conn_close(c);
}

/* 1: an address literal, now in c->addrs; 0: a name; -1: bad. */
static int
conn_literal(struct relay_conn *c, const char *name)
{
	struct sockaddr_in	*sin;
	struct sockaddr_in6	*sin6;
	char			 buf[HOSTNAME_LEN];
	size_t			 len;

	(void)strlcpy(buf, name, sizeof(buf));
	if (buf[0] == '[') {
		len = strlen(buf);
		if (len < 3 || buf[len - 1] != ']')
			return (-1);
		buf[len - 1] = '\0';
		memmove(buf, buf + 1, len - 1);
		if (strncasecmp(buf, "IPv6:", 5) == 0)
			memmove(buf, buf + 5, strlen(buf + 5) + 1);
	} else if (strchr(buf, ':') == NULL &&
	    strspn(buf, "0123456789.") != strlen(buf))
		return (0);
	if ((c->addrs = calloc(1, sizeof(*c->addrs))) == NULL)
		fatal("relay: address");
	sin = (struct sockaddr_in *)&c->addrs[0].ss;
	sin6 = (struct sockaddr_in6 *)&c->addrs[0].ss;
	if (inet_pton(AF_INET, buf, &sin->sin_addr) == 1)
		sin->sin_family = AF_INET;
	else if (inet_pton(AF_INET6, buf, &sin6->sin6_addr) == 1)
		sin6->sin6_family = AF_INET6;
	else {
		free(c->addrs);
		c->addrs = NULL;
		return (name[0] == '[' ? -1 : 0);
	}
	(void)strlcpy(c->addrs[0].host, buf, sizeof(c->addrs[0].host));
	c->naddrs = 1;
	return (1);
}

static in_port_t
conn_port(const struct relay_conn *c)
{
	if (c->target.port != 0)
		return (c->target.port);
	return (c->target.scheme == RELAY_SMTPS ? 465 : 25);
}

static void
conn_resolved(void *arg, int status, const struct dns_addr *addrs, size_t n)
{
	struct relay_conn	*c = arg;
	const char		*name, *why;

	c->resolving = 0;
	name = c->target.host[0] != '\0' ? c->target.host : c->target.domain;
	why = dns_reason();
	if (why == NULL || *why == '\0')
		why = status == DNS_PERMFAIL ? "no such domain" :
		    "temporary failure";
	if (status == DNS_OK && n > 0) {
		if (n > RELAY_ADDRS_MAX)
			n = RELAY_ADDRS_MAX;
		if ((c->addrs = calloc(n, sizeof(*c->addrs))) == NULL)
			fatal("relay: addresses");
		memcpy(c->addrs, addrs, n * sizeof(*addrs));
		c->naddrs = n;
		conn_connect(c);
		return;
	}
	if (status == DNS_PERMFAIL && c->target.host[0] == '\0') {
		(void)snprintf(c->last_error, sizeof(c->last_error),
		    "domain %s does not accept mail: %s", name, why);
		c->last_code = 0;
		(void)strlcpy(c->last_enhanced, "5.1.2",
		    sizeof(c->last_enhanced));
		job_all(c->job, RELAY_FAILED, 0, c->last_enhanced,
		    c->last_error);
		job_finish(c->job, c->dest);
		c->job = NULL;
		/* The same answer holds for every job of this domain. */
		while ((c->job = TAILQ_FIRST(&c->dest->jobs)) != NULL) {
			TAILQ_REMOVE(&c->dest->jobs, c->job, entry);
			c->dest->stats.waiting--;
			stats_total.waiting--;
			job_all(c->job, RELAY_FAILED, 0, c->last_enhanced,
			    c->last_error);
			job_finish(c->job, c->dest);
		}
		conn_close(c);
		return;
	}
	/*
	 * A relay host that does not resolve is a configuration to fix:
	 * its mail waits for that.
	 */
	(void)snprintf(c->last_error, sizeof(c->last_error),
	    "DNS lookup of %s failed: %s", name, why);
	c->last_code = 0;
	(void)strlcpy(c->last_enhanced, status == DNS_PERMFAIL ? "4.4.4" :
	    "4.4.3", sizeof(c->last_enhanced));
	conn_setup_failed(c);
}

/* The next address that takes a TCP connection; on to the next on error. */
static void
conn_connect(struct relay_conn *c)
{
	struct dns_addr		*a;
	struct sockaddr_in	*sin;
	struct sockaddr_in6	*sin6;
	char			 addr[INET6_ADDRSTRLEN];
	in_port_t		 port;
	socklen_t		 len;
	int			 on = 1;

	port = conn_port(c);
	for (; c->addr_i < c->naddrs; c->addr_i++) {
		a = &c->addrs[c->addr_i];
		sin = (struct sockaddr_in *)&a->ss;
		sin6 = (struct sockaddr_in6 *)&a->ss;
		if (a->ss.ss_family == AF_INET) {
			sin->sin_port = htons(port);
			len = sizeof(*sin);
		} else if (a->ss.ss_family == AF_INET6) {
			sin6->sin6_port = htons(port);
			len = sizeof(*sin6);
		} else
			continue;
		(void)addr_string(&a->ss, addr, sizeof(addr));
		a->host[sizeof(a->host) - 1] = '\0';
		if (port == 25)
			(void)snprintf(c->peer, sizeof(c->peer), "%s [%s]",
			    a->host, addr);
		else
			(void)snprintf(c->peer, sizeof(c->peer), "%s [%s]:%u",
			    a->host, addr, port);
		text_clean(c->peer, sizeof(c->peer), c->peer,
		    strlen(c->peer));
		(void)strlcpy(c->servername, c->target.host[0] != '\0' ?
		    c->target.host : a->host, sizeof(c->servername));
		if (c->servername[0] == '[')
			(void)strlcpy(c->servername, addr,
			    sizeof(c->servername));

		if ((c->fd = socket(a->ss.ss_family, SOCK_STREAM |
		    SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1) {
			(void)snprintf(c->last_error, sizeof(c->last_error),
			    "%s: socket: %s", c->peer, strerror(errno));
			continue;
		}
		/*
		 * Our writes are whole commands and whole chunks: Nagle
		 * would only hold a message's last segment back for the
		 * peer's delayed acknowledgement.
		 */
		(void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &on,
		    sizeof(on));
		if (connect(c->fd, (struct sockaddr *)&a->ss, len) == -1 &&
		    errno != EINPROGRESS) {
			(void)snprintf(c->last_error, sizeof(c->last_error),
			    "connect to %s: %s", c->peer, strerror(errno));
			c->last_code = 0;
			(void)strlcpy(c->last_enhanced, "4.4.1",
			    sizeof(c->last_enhanced));
			c->dest->stats.connect_failures++;
			stats_total.connect_failures++;
			(void)close(c->fd);
			c->fd = -1;
			continue;
		}
		log_debug("relay %u: connecting to %s", c->id, c->peer);
		c->phase = PHASE_CONNECT;
		event_set(&c->ev, c->fd, EV_WRITE, conn_io, c);
		event_add(&c->ev, NULL);
		conn_timer(c, RELAY_TIMEOUT_CONNECT);
		return;
	}
	conn_setup_failed(c);
}

static void
conn_connected(struct relay_conn *c)
{
	socklen_t	 len = sizeof(int);
	int		 error = 0;

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &error, &len) == -1)
		error = errno;
	if (error != 0) {
		c->dest->stats.connect_failures++;
		stats_total.connect_failures++;
		conn_error(c, 0, "4.4.1");
		conn_fail(c, "connect to %s: %s", c->peer, strerror(error));
		return;
	}
	c->dest->stats.connections++;
	stats_total.connections++;
	c->phase = PHASE_SETUP;
	log_debug("relay %u: connected to %s", c->id, c->peer);
	if (c->target.scheme == RELAY_SMTPS) {
		conn_tls_start(c);
		return;
	}
	c->expect[0].cmd = CMD_GREETING;
	c->expect_head = 0;
	c->expect_count = 1;
	conn_timer_expect(c);
	conn_update(c);
}

/* Back to no socket, for the next address or the same in plaintext. */
static void
conn_reset_socket(struct relay_conn *c)
{
	/* A connection that never had a socket never had its event. */
	if (event_initialized(&c->ev))
		event_del(&c->ev);
	evtimer_del(&c->timer);
	if (c->tls != NULL) {
		if (c->tls_on)
			(void)tls_close(c->tls);
		tls_free(c->tls);
		c->tls = NULL;
	}
	if (c->fd != -1) {
		(void)close(c->fd);
		c->fd = -1;
	}
	c->tls_on = c->tls_handshaking = 0;
	c->tls_want = 0;
	c->eof = 0;
	evbuffer_drain(c->in, evbuffer_get_length(c->in));
	evbuffer_drain(c->out, evbuffer_get_length(c->out));
	c->expect_count = 0;
	c->reply_lines = 0;
	c->esmtp = c->ext_starttls = c->ext_pipelining = 0;
	c->ext_8bitmime = c->ext_size = c->ext_auth_plain = 0;
	c->size_max = 0;
	c->need_rset = 0;
}

/*
 * I/O, as in smtp_session.c: one event whose flags follow what the
 * connection needs, and whatever libtls asked for in between.
 */

static void
conn_io(int fd, short event, void *arg)
{
	struct relay_conn	*c = arg;

	(void)fd;
	if (c->phase == PHASE_CONNECT) {
		conn_connected(c);
		return;
	}
	if (c->tls_handshaking) {
		conn_handshake(c);
		return;
	}
	c->tls_want = 0;
	if ((event & EV_WRITE) || evbuffer_get_length(c->out) > 0) {
		if (conn_flush(c) == -1)
			return;
		if (c->in_body && !c->body_done)
			conn_timer(c, RELAY_TIMEOUT_BLOCK);
	}
	if ((event & EV_READ) || c->tls != NULL) {
		if (conn_read(c) == -1)
			return;
	}
	conn_continue(c);
}

static void
conn_continue(struct relay_conn *c)
{
	conn_process(c);
	if (c->dead)
		return;
	/* The body goes out as fast as the socket takes it. */
	do {
		if (c->in_body && !c->body_done)
			body_fill(c);
		if (evbuffer_get_length(c->out) == 0 || c->tls_want != 0)
			break;
		if (conn_flush(c) == -1)
			return;
	} while (c->in_body && !c->body_done &&
	    evbuffer_get_length(c->out) == 0 && c->tls_want == 0);
	if (c->eof) {
		if (c->phase == PHASE_QUIT ||
		    (c->phase == PHASE_READY && c->job == NULL))
			conn_close(c);
		else
			conn_fail(c, "%s: connection closed by the server%s%s",
			    c->peer, c->expect_count > 0 ?
			    " while waiting for the reply to " : "",
			    c->expect_count > 0 ? relay_cmds[c->expect[
			    c->expect_head].cmd].name : "");
		return;
	}
	conn_update(c);
}

void
conn_update(struct relay_conn *c)
{
	short	 events = 0;

	if (c->dead || c->fd == -1)
		return;
	if (c->phase == PHASE_CONNECT)
		events = EV_WRITE;
	else if (c->tls_want != 0)
		events = c->tls_want;
	else {
		if (evbuffer_get_length(c->out) > 0 ||
		    (c->in_body && !c->body_done))
			events |= EV_WRITE;
		if (!c->eof && evbuffer_get_length(c->in) < RELAY_INBUF_MAX)
			events |= EV_READ;
	}
	event_del(&c->ev);
	if (events == 0)
		return;
	event_set(&c->ev, c->fd, events, conn_io, c);
	event_add(&c->ev, NULL);
}

/* -1: the connection failed (and is handled). */
static int
conn_read(struct relay_conn *c)
{
	char	 buf[RELAY_IO_CHUNK];
	ssize_t	 n;

	while (evbuffer_get_length(c->in) < RELAY_INBUF_MAX) {
		if (c->tls != NULL) {
			n = tls_read(c->tls, buf, sizeof(buf));
			if (n == TLS_WANT_POLLIN)
				break;
			if (n == TLS_WANT_POLLOUT) {
				c->tls_want = EV_WRITE;
				break;
			}
			if (n == -1) {
				conn_fail(c, "%s: TLS read: %s", c->peer,
				    tls_error(c->tls));
				return (-1);
			}
		} else if ((n = read(c->fd, buf, sizeof(buf))) == -1) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			conn_fail(c, "%s: read: %s", c->peer,
			    strerror(errno));
			return (-1);
		}
		if (n == 0) {
			c->eof = 1;
			break;
		}
		if (evbuffer_add(c->in, buf, n) == -1)
			fatal("evbuffer_add");
		if (c->tls == NULL && (size_t)n < sizeof(buf))
			break;
	}
	return (0);
}

/* -1: the connection failed (and is handled). */
int
conn_flush(struct relay_conn *c)
{
	size_t	 len;
	ssize_t	 n;

	while ((len = evbuffer_get_length(c->out)) > 0) {
		if (len > RELAY_IO_CHUNK)
			len = RELAY_IO_CHUNK;
		if (c->tls != NULL) {
			n = tls_write(c->tls, evbuffer_pullup(c->out, len),
			    len);
			if (n == TLS_WANT_POLLIN || n == TLS_WANT_POLLOUT) {
				c->tls_want = n == TLS_WANT_POLLIN ? EV_READ :
				    EV_WRITE;
				return (0);
			}
			if (n == -1) {
				conn_fail(c, "%s: TLS write: %s", c->peer,
				    tls_error(c->tls));
				return (-1);
			}
		} else if ((n = write(c->fd, evbuffer_pullup(c->out, len),
		    len)) == -1) {
			if (errno == EAGAIN || errno == EINTR)
				return (0);
			conn_fail(c, "%s: write: %s", c->peer,
			    strerror(errno));
			return (-1);
		}
		evbuffer_drain(c->out, n);
	}
	return (0);
}

void
conn_timer(struct relay_conn *c, time_t seconds)
{
	struct timeval	 tv;

	if (timeout_max > 0 && seconds > timeout_max)
		seconds = timeout_max;
	tv.tv_sec = seconds;
	tv.tv_usec = 0;
	evtimer_add(&c->timer, &tv);
}

/* The clock runs for the oldest reply we wait for. */
void
conn_timer_expect(struct relay_conn *c)
{
	if (c->expect_count > 0)
		conn_timer(c, relay_cmds[c->expect[c->expect_head].cmd].timeout);
	else if (c->phase == PHASE_READY && c->job == NULL) {
		struct timeval	 tv = { RELAY_IDLE, 0 };

		evtimer_add(&c->timer, &tv);
	} else
		evtimer_del(&c->timer);
}

static void
conn_timeout(int fd, short event, void *arg)
{
	struct relay_conn	*c = arg;

	(void)fd;
	(void)event;
	if (c->phase == PHASE_QUIT) {
		conn_close(c);
		return;
	}
	if (c->phase == PHASE_READY && c->job == NULL &&
	    c->expect_count == 0) {
		conn_quit(c);
		return;
	}
	if (c->phase == PHASE_CONNECT) {
		c->dest->stats.connect_failures++;
		stats_total.connect_failures++;
		conn_error(c, 0, "4.4.1");
		conn_fail(c, "connect to %s: timed out", c->peer);
	} else if (c->tls_handshaking)
		conn_fail(c, "%s: TLS handshake timed out", c->peer);
	else if (c->in_body && !c->body_done)
		conn_fail(c, "%s: timeout sending the message", c->peer);
	else
		conn_fail(c, "%s: timeout waiting for the reply to %s",
		    c->peer, c->expect_count > 0 ?
		    relay_cmds[c->expect[c->expect_head].cmd].name : "?");
}

/*
 * TLS.
 */

int
conn_tls_required(const struct relay_conn *c)
{
	return (c->target.scheme != RELAY_SMTP || c->target.tls_verify);
}

void
conn_tls_start(struct relay_conn *c)
{
	struct tls_config	*cfg;
	struct relay_ca		*ca;

	cfg = tls_cfg_any;
	if (c->target.tls_verify)
		cfg = (ca = relay_ca_find(c->target.ca_name)) != NULL ?
		    ca->cfg : tls_cfg_verify;
	if ((c->tls = tls_client()) == NULL)
		fatal("relay: tls_client");
	if (tls_configure(c->tls, cfg) == -1 ||
	    tls_connect_socket(c->tls, c->fd, c->servername) == -1) {
		conn_tls_failed(c, tls_error(c->tls));
		return;
	}
	c->tls_handshaking = 1;
	conn_timer(c, RELAY_TIMEOUT_TLS);
	conn_handshake(c);
}

static void
conn_handshake(struct relay_conn *c)
{
	int	 ret;

	switch ((ret = tls_handshake(c->tls))) {
	case TLS_WANT_POLLIN:
	case TLS_WANT_POLLOUT:
		c->tls_want = ret == TLS_WANT_POLLIN ? EV_READ : EV_WRITE;
		event_del(&c->ev);
		event_set(&c->ev, c->fd, c->tls_want, conn_io, c);
		event_add(&c->ev, NULL);
		return;
	case -1:
		conn_tls_failed(c, tls_error(c->tls));
		return;
	}
	c->tls_handshaking = 0;
	c->tls_want = 0;
	c->tls_on = 1;
	log_debug("relay %u: %s with %s, %s%s", c->id, c->peer,
	    tls_conn_version(c->tls), tls_conn_cipher(c->tls),
	    c->target.tls_verify ? ", verified" : "");
	if (c->target.scheme == RELAY_SMTPS) {
		c->expect[0].cmd = CMD_GREETING;
		c->expect_head = 0;
		c->expect_count = 1;
		conn_timer_expect(c);
		conn_update(c);
	} else {
		conn_send_ehlo(c, CMD_EHLO);
		conn_continue(c);
	}
}

/*
 * Opportunistic STARTTLS that fails is tried again on the same address
 * without it (as Postfix does); required TLS moves on to the next.
 */
static void
conn_tls_failed(struct relay_conn *c, const char *why)
{
	char	 reason[MESSAGE_LEN];

	(void)strlcpy(reason, why != NULL ? why : "unknown error",
	    sizeof(reason));
	conn_error(c, 0, c->target.tls_verify ? "4.7.5" : "4.7.0");
	if (!conn_tls_required(c))
		c->retry_plain = 1;
	conn_fail(c, "%s: TLS handshake failed: %s", c->peer, reason);
}

/*
 * Errors.  During setup the next address is tried; within a
 * transaction the job's recipients without an answer are deferred and
 * the connection goes.  A connection that had already carried mail may
 * have been closed by an idle server: its job goes back to the queue
 * unless the server has already answered its MAIL.
 */

void
conn_fail(struct relay_conn *c, const char *fmt, ...)
{
	va_list	 ap;
	char	 buf[MESSAGE_LEN];

	if (c->dead)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	text_clean(c->last_error, sizeof(c->last_error), buf, strlen(buf));
	c->last_code = c->err_code;
	(void)strlcpy(c->last_enhanced, c->err_enhanced[0] != '\0' ?
	    c->err_enhanced : "4.4.2", sizeof(c->last_enhanced));
	c->err_code = 0;
	c->err_enhanced[0] = '\0';
	log_info("relay %u: %s", c->id, c->last_error);

	switch (c->phase) {
	case PHASE_RESOLVE:
	case PHASE_CONNECT:
	case PHASE_SETUP:
		conn_reset_socket(c);
		c->phase = PHASE_RESOLVE;
		if (c->retry_plain) {
			c->retry_plain = 0;
			c->no_starttls = 1;
		} else {
			c->no_starttls = 0;
			c->addr_i++;
		}
		conn_connect(c);
		return;
	case PHASE_READY:
		if (c->job != NULL && c->njobs > 0 && !c->mail_replied) {
			log_debug("relay %u: %s goes back to the queue",
			    c->id, c->job->id);
			TAILQ_INSERT_HEAD(&c->dest->jobs, c->job, entry);
			c->dest->stats.waiting++;
			stats_total.waiting++;
			if (!c->dest->pending) {
				TAILQ_INSERT_TAIL(&dests_pending, c->dest,
				    pending_entry);
				c->dest->pending = 1;
			}
			c->job = NULL;
		} else if (c->job != NULL)
			txn_abort(c);
		break;
	case PHASE_QUIT:
		break;
	}
	conn_close(c);
}

/* The code and RFC 3463 status that the next conn_fail() reports. */
void
conn_error(struct relay_conn *c, int code, const char *enhanced)
{
	c->err_code = code;
	(void)strlcpy(c->err_enhanced, enhanced, sizeof(c->err_enhanced));
}

/* Every address failed: the job and, if no one else is trying, all. */
static void
conn_setup_failed(struct relay_conn *c)
{
	struct relay_dest	*dest = c->dest;

	if (c->last_error[0] == '\0')
		(void)snprintf(c->last_error, sizeof(c->last_error),
		    "no address to connect to for %s", c->peer);
	if (c->last_enhanced[0] == '\0')
		(void)strlcpy(c->last_enhanced, "4.4.1",
		    sizeof(c->last_enhanced));
	if (c->job != NULL) {
		job_all(c->job, RELAY_DEFERRED, c->last_code,
		    c->last_enhanced, c->last_error);
		job_finish(c->job, dest);
		c->job = NULL;
	}
	dest_defer_waiting(dest, c);
	conn_close(c);
}

void
conn_quit(struct relay_conn *c)
{
	if (c->dead)
		return;
	conn_release(c);
	c->phase = PHASE_QUIT;
	conn_cmd(c, CMD_QUIT, 0, "QUIT");
	conn_timer_expect(c);
	conn_continue(c);
}

/* The slot goes back as soon as the connection is of no more use. */
static void
conn_release(struct relay_conn *c)
{
	if (!c->counted)
		return;
	c->counted = 0;
	c->dest->nconn--;
	c->dest->stats.active--;
	nconn_total--;
	relay_kick();
}

void
conn_close(struct relay_conn *c)
{
	if (c->dead)
		return;
	if (c->job != NULL)
		fatalx("relay %u: closed with a job", c->id);
	if (c->resolving) {
		dns_cancel(c);
		c->resolving = 0;
	}
	conn_reset_socket(c);
	conn_release(c);
	c->dead = 1;
	TAILQ_REMOVE(&c->dest->conns, c, entry);
	TAILQ_INSERT_TAIL(&conns_dead, c, entry);
	relay_kick();
}

void
conn_free(struct relay_conn *c)
{
	evbuffer_free(c->in);
	evbuffer_free(c->out);
	free(c->addrs);
	free(c->rstate);
	explicit_bzero(&c->target, sizeof(c->target));
	free(c);
}

/* A job done: the next one for the same destination, or idle. */
void
conn_next(struct relay_conn *c)
{
	struct relay_dest	*dest = c->dest;
	struct relay_job	*job;

	if (c->dead)
		return;
	if (shutting_down || c->messages >= RELAY_CONN_MESSAGES ||
	    !target_equal(&c->target, &dest->target)) {
		conn_quit(c);
		return;
	}
	if ((job = TAILQ_FIRST(&dest->jobs)) != NULL) {
		TAILQ_REMOVE(&dest->jobs, job, entry);
		dest->stats.waiting--;
		stats_total.waiting--;
		c->job = job;
		txn_start(c);
		return;
	}
	conn_timer_expect(c);
	relay_kick();
}
