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
 * Asynchronous DNS for the outbound SMTP client: the addresses to try
 * for a mail domain (MX, RFC 5321 section 5.1) or for a fixed relay
 * host, on c-ares driven from the process's libevent loop.  For SPF and
 * DNSBL lookups, dns_query() asks one question of one type and returns
 * its records as text.
 *
 * c-ares tells us through its socket state callback which descriptors
 * to watch; a timer set from ares_timeout() drives its retransmissions.
 * Its answer callbacks only record what they got and wake dns_run(),
 * a zero timer that moves every request along (MX answer, then the
 * addresses of each MX host), starts waiting requests and finally calls
 * the caller's callbacks.  So no caller's callback ever runs inside a
 * dns_* call or inside c-ares, and c-ares is never re-entered from its
 * own callbacks.
 *
 * A query waits DNS_TIMEOUT_MS, then twice that: 15 s to a tempfail
 * from a silent server, for the MX query and again for the addresses.
 *
 * A request is on exactly one list: waiting (not started, at most
 * DNS_WAIT_MAX), active (c-ares queries for it may be outstanding, at
 * most DNS_ACTIVE_MAX) or done (its callback is due).  A cancelled
 * request with queries outstanding stays active, without a callback,
 * until c-ares has answered or timed out every query: c-ares cannot
 * cancel one query of a channel.
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>

#include <ares.h>
#include <ctype.h>
#include <errno.h>
#include <event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "smarthostd.h"

#define DNS_TIMEOUT_MS		5000	/* first try; c-ares doubles it */
#define DNS_TRIES		2
#define DNS_ACTIVE_MAX		32	/* requests with queries out */
#define DNS_WAIT_MAX		4096	/* requests waiting for a slot */
#define DNS_MX_MAX		16	/* MX hosts looked up per domain */
#define DNS_SMTP_PORT		25
#define DNS_REASON_LEN		(HOSTNAME_LEN + 64)
#define DNS_QUERY_RR_MAX	64	/* records in one dns_query answer */
#define DNS_QUERY_TXT_MAX	4096	/* one TXT record, strings joined */
#define DNS_QUERY_TEXT_MAX	65536	/* the text of all its records */

enum dns_kind {
	DNS_KIND_MX,
	DNS_KIND_HOST,
	DNS_KIND_QUERY
};

enum dns_state {
	DNS_STATE_NEW,		/* nothing asked yet */
	DNS_STATE_MX,		/* the MX query is out */
	DNS_STATE_QUERY,	/* the dns_query() question is out */
	DNS_STATE_TARGETS,	/* MX hosts (or the domain) known */
	DNS_STATE_ADDRS,	/* A and AAAA queries of the targets are out */
	DNS_STATE_FINISHED	/* status, reason and addresses set */
};

/* One family of one target: the argument of an ares_getaddrinfo(). */
struct dns_family {
	struct dns_target	*target;
	int			 family;
	int			 status;	/* ARES_* */
	struct ares_addrinfo	*ai;
};

/* An MX host, or the domain itself (implicit MX), or the relay host. */
struct dns_target {
	struct dns_req		*req;
	char			 host[HOSTNAME_LEN];
	uint16_t		 preference;
	struct dns_family	 fam[2];	/* AF_INET6, AF_INET */
};

struct dns_req {
	TAILQ_ENTRY(dns_req)	 entry;
	enum dns_kind		 kind;
	enum dns_state		 state;
	int			 cancelled;
	int			 implicit_mx;	/* the domain has no MX */
	unsigned int		 pending;	/* c-ares queries out */
	uint64_t		 seq;		/* order on the done list */
	char			 name[HOSTNAME_LEN];
	in_port_t		 port;		/* host byte order */
	void			(*cb)(void *, int, const struct dns_addr *,
				    size_t);
	void			(*qcb)(void *, const struct dns_answer *);
	void			*arg;
	int			 qtype;		/* DNS_KIND_QUERY */
	struct dns_answer	 answer;
	struct dns_target	*targets;
	size_t			 ntargets;
	int			 status;	/* DNS_* */
	char			 reason[DNS_REASON_LEN];
	struct dns_addr		*addrs;
	size_t			 naddrs;
};
TAILQ_HEAD(dns_reqs, dns_req);

/* A descriptor c-ares asked us to watch. */
struct dns_sock {
	TAILQ_ENTRY(dns_sock)	 entry;
	int			 fd;
	struct event		 ev;
};
TAILQ_HEAD(dns_socks, dns_sock);

/* An MX record while the set is sorted. */
struct dns_mx {
	const char		*host;
	uint16_t		 preference;
	uint32_t		 shuffle;
};

static int			 dns_initialized;
static ares_channel		 channel;
static char			 channel_server[INET6_ADDRSTRLEN];
static in_port_t		 channel_port;
static struct dns_reqs		 waiting = TAILQ_HEAD_INITIALIZER(waiting);
static struct dns_reqs		 active = TAILQ_HEAD_INITIALIZER(active);
static struct dns_reqs		 done = TAILQ_HEAD_INITIALIZER(done);
static size_t			 nwaiting, nactive;
static uint64_t			 done_seq;
static struct dns_socks		 socks = TAILQ_HEAD_INITIALIZER(socks);
static struct event		 ev_run, ev_timeout;
static const char		*reason_now;	/* during a callback */

static int	 dns_submit(enum dns_kind, const char *, in_port_t,
		    void (*)(void *, int, const struct dns_addr *, size_t),
		    void *);
static struct dns_req *dns_req_new(enum dns_kind, const char *, void *);
static int	 dns_enqueue(struct dns_req *);
static void	 dns_query_answer(void *, int, int, unsigned char *, int);
static const char *dns_query_parse(struct dns_req *, const unsigned char *,
		    int);
static int	 dns_query_record(struct dns_req *, const unsigned char *,
		    int, const unsigned char *, int, size_t *);
static void	 dns_answer_free(struct dns_answer *);
static const char *dns_type_name(int);
static void	 dns_run(int, short, void *);
static void	 dns_wake(void);
static void	 dns_step(struct dns_req *);
static void	 dns_start_mx(struct dns_req *);
static void	 dns_start_addrs(struct dns_req *);
static void	 dns_mx_answer(void *, int, int, unsigned char *, int);
static void	 dns_mx_targets(struct dns_req *, struct ares_mx_reply *);
static int	 dns_mx_cmp(const void *, const void *);
static void	 dns_addr_answer(void *, int, int, struct ares_addrinfo *);
static void	 dns_collect(struct dns_req *);
static int	 dns_add_addr(struct dns_req *, const struct sockaddr *,
		    socklen_t, const char *, uint16_t);
static int	 dns_literal(struct dns_req *, const char *, const char *);
static int	 dns_addr_same(const struct sockaddr_storage *,
		    const struct sockaddr_storage *);
static int	 dns_addr_usable(const struct sockaddr *);
static void	 dns_finish(struct dns_req *, int, const char *, ...)
		    __attribute__((__format__(printf, 3, 4)));
static void	 dns_targets_free(struct dns_req *);
static void	 dns_req_reset(struct dns_req *);
static void	 dns_req_free(struct dns_req *);
static int	 dns_name_valid(const char *);
static int	 dns_numeric(const char *);
static int	 dns_temporary(int);
static void	 dns_channel_open(void);
static void	 dns_channel_close(void);
static void	 dns_sock_state(void *, ares_socket_t, int, int);
static void	 dns_sock_event(int, short, void *);
static void	 dns_timeout(int, short, void *);
static void	 dns_timer_update(void);

/*
 * Use server (a numeric IPv4 or IPv6 address) on port, or the servers
 * of /etc/resolv.conf when server is "" (in a chroot, the chroot's
 * etc/resolv.conf).  Requests in flight on the old channel start again
 * on the new one; the same server again changes nothing.
 */
void
dns_init(const char *server, in_port_t port)
{
	struct in6_addr	 in6;
	struct dns_req	*req;
	int		 rc;

	if (server == NULL)
		server = "";
	if (*server != '\0' && inet_pton(AF_INET, server, &in6) != 1 &&
	    inet_pton(AF_INET6, server, &in6) != 1)
		fatalx("dns: resolver \"%s\" is not a numeric address",
		    server);
	if (!dns_initialized) {
		if ((rc = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS)
			fatalx("dns: ares_library_init: %s", ares_strerror(rc));
		evtimer_set(&ev_run, dns_run, NULL);
		evtimer_set(&ev_timeout, dns_timeout, NULL);
		dns_initialized = 1;
	} else if (channel != NULL && strcmp(server, channel_server) == 0 &&
	    port == channel_port)
		return;

	dns_channel_close();
	/* Everything that was active starts again, in its old order. */
	while ((req = TAILQ_LAST(&active, dns_reqs)) != NULL) {
		TAILQ_REMOVE(&active, req, entry);
		nactive--;
		if (req->cancelled) {
			dns_req_free(req);
			continue;
		}
		dns_req_reset(req);
		TAILQ_INSERT_HEAD(&waiting, req, entry);
		nwaiting++;
	}

	(void)strlcpy(channel_server, server, sizeof(channel_server));
	channel_port = port;
	dns_channel_open();
	if (*server != '\0')
		log_debug("dns: resolver %s port %u", server,
		    (unsigned int)port);
	else
		log_debug("dns: system resolvers");
	dns_wake();
}

/*
 * The addresses to try for mail to domain, best first: each MX host's
 * AAAA then A addresses in preference order, or the domain's own when
 * it has no MX.  An address literal ("[192.0.2.1]", "[IPv6:...]") is its
 * own answer.  -1 with errno EINVAL for a name that is not a domain,
 * EAGAIN when too many requests wait; otherwise cb will be called.
 */
int
dns_resolve_mx(const char *domain,
    void (*cb)(void *, int, const struct dns_addr *, size_t), void *arg)
{
	return (dns_submit(DNS_KIND_MX, domain, DNS_SMTP_PORT, cb, arg));
}

/* The addresses of a relay host, or of a numeric address, with port. */
int
dns_resolve_host(const char *host, in_port_t port,
    void (*cb)(void *, int, const struct dns_addr *, size_t), void *arg)
{
	return (dns_submit(DNS_KIND_HOST, host, port, cb, arg));
}

/*
 * One question: the records of type (ns_t_a, ns_t_aaaa, ns_t_txt,
 * ns_t_mx or ns_t_ptr) that name has, as text, after the resolver has
 * followed any CNAME.  -1 with errno EINVAL for a name that is not a
 * host name or a type not listed, EAGAIN when too many requests wait;
 * otherwise cb will be called, from the event loop.
 */
int
dns_query(const char *name, int type,
    void (*cb)(void *, const struct dns_answer *), void *arg)
{
	struct dns_req	*req;

	if (cb == NULL || dns_type_name(type) == NULL) {
		errno = EINVAL;
		return (-1);
	}
	if ((req = dns_req_new(DNS_KIND_QUERY, name, arg)) == NULL)
		return (-1);
	if (!dns_name_valid(name)) {
		dns_req_free(req);
		errno = EINVAL;
		return (-1);
	}
	req->qtype = type;
	req->qcb = cb;
	return (dns_enqueue(req));
}

/* arg goes away: none of its callbacks may be called any more. */
void
dns_cancel(void *arg)
{
	struct dns_req	*req, *next;

	TAILQ_FOREACH_SAFE(req, &waiting, entry, next) {
		if (req->arg != arg)
			continue;
		TAILQ_REMOVE(&waiting, req, entry);
		nwaiting--;
		dns_req_free(req);
	}
	TAILQ_FOREACH_SAFE(req, &done, entry, next) {
		if (req->arg != arg)
			continue;
		TAILQ_REMOVE(&done, req, entry);
		dns_req_free(req);
	}
	/* Freed by dns_run() once c-ares is done with them. */
	TAILQ_FOREACH(req, &active, entry) {
		if (req->arg != arg)
			continue;
		req->cancelled = 1;
		req->cb = NULL;
		req->qcb = NULL;
		req->arg = NULL;
		if (req->pending == 0)
			dns_wake();
	}
}

/*
 * Why the request whose callback is running failed, for logs and
 * bounces, e.g. "example.com accepts no mail (null MX)"; "" elsewhere.
 */
const char *
dns_reason(void)
{
	return (reason_now != NULL ? reason_now : "");
}

static int
dns_submit(enum dns_kind kind, const char *name, in_port_t port,
    void (*cb)(void *, int, const struct dns_addr *, size_t), void *arg)
{
	struct dns_req	*req;

	if (cb == NULL) {
		errno = EINVAL;
		return (-1);
	}
	if ((req = dns_req_new(kind, name, arg)) == NULL)
		return (-1);
	req->port = port;
	req->cb = cb;

	/* Answers that need no DNS go straight to the done list. */
	if ((kind == DNS_KIND_MX && name[0] == '[') ||
	    (kind == DNS_KIND_HOST && dns_numeric(name))) {
		if (dns_literal(req, name, NULL) == -1) {
			dns_req_free(req);
			errno = EINVAL;
			return (-1);
		}
	} else if (kind == DNS_KIND_HOST &&
	    (strcasecmp(name, "localhost") == 0 ||
	    strcasecmp(name, "localhost.") == 0)) {
		/* RFC 6761 6.3: localhost is loopback, whatever DNS says. */
		if (dns_literal(req, "::1", "localhost") == -1 ||
		    dns_literal(req, "127.0.0.1", "localhost") == -1) {
			dns_req_free(req);
			errno = ENOMEM;
			return (-1);
		}
	} else if (!dns_name_valid(name)) {
		dns_req_free(req);
		errno = EINVAL;
		return (-1);
	}
	return (dns_enqueue(req));
}

/* A request for name, not queued yet; NULL with errno set. */
static struct dns_req *
dns_req_new(enum dns_kind kind, const char *name, void *arg)
{
	struct dns_req	*req;
	size_t		 len;

	if (!dns_initialized)
		fatalx("dns: lookup before dns_init");
	if (name == NULL || (len = strlen(name)) == 0 || len >= HOSTNAME_LEN) {
		errno = EINVAL;
		return (NULL);
	}
	if ((req = calloc(1, sizeof(*req))) == NULL)
		return (NULL);
	(void)strlcpy(req->name, name, sizeof(req->name));
	req->kind = kind;
	req->arg = arg;
	return (req);
}

/* A new request on the waiting list, or the done list when answered. */
static int
dns_enqueue(struct dns_req *req)
{
	if (req->state == DNS_STATE_FINISHED) {
		req->seq = ++done_seq;
		TAILQ_INSERT_TAIL(&done, req, entry);
	} else {
		if (nwaiting >= DNS_WAIT_MAX) {
			dns_req_free(req);
			errno = EAGAIN;
			return (-1);
		}
		TAILQ_INSERT_TAIL(&waiting, req, entry);
		nwaiting++;
	}
	dns_wake();
	return (0);
}

/*
 * The one place that moves requests along and calls back.  Bounded:
 * each active request takes one step, each waiting one is started at
 * most once, and only the callbacks due when the turn began are called.
 */
static void
dns_run(int fd, short event, void *arg)
{
	struct dns_req	*req, *next;
	uint64_t	 last;

	(void)fd;
	(void)event;
	(void)arg;

	if (channel != NULL) {
		TAILQ_FOREACH_SAFE(req, &active, entry, next) {
			if (req->pending > 0)
				continue;
			if (req->cancelled) {
				TAILQ_REMOVE(&active, req, entry);
				nactive--;
				dns_req_free(req);
				continue;
			}
			dns_step(req);
		}
		while (nactive < DNS_ACTIVE_MAX &&
		    (req = TAILQ_FIRST(&waiting)) != NULL) {
			TAILQ_REMOVE(&waiting, req, entry);
			nwaiting--;
			TAILQ_INSERT_TAIL(&active, req, entry);
			nactive++;
			dns_step(req);
		}
	}

	last = done_seq;
	while ((req = TAILQ_FIRST(&done)) != NULL && req->seq <= last) {
		TAILQ_REMOVE(&done, req, entry);
		if (req->kind == DNS_KIND_QUERY) {
			if (req->status == DNS_OK)
				log_debug("dns: %s %s: %zu record%s",
				    dns_type_name(req->qtype), req->name,
				    req->answer.count,
				    req->answer.count == 1 ? "" : "s");
			else
				log_debug("dns: %s %s: %s",
				    dns_type_name(req->qtype), req->name,
				    req->reason);
			reason_now = req->reason;
			req->qcb(req->arg, &req->answer);
			reason_now = NULL;
			dns_req_free(req);
			continue;
		}
		if (req->status == DNS_OK)
			log_debug("dns: %s %s: %zu address%s",
			    req->kind == DNS_KIND_MX ? "MX" : "host",
			    req->name, req->naddrs,
			    req->naddrs == 1 ? "" : "es");
		else
			log_debug("dns: %s %s: %s",
			    req->kind == DNS_KIND_MX ? "MX" : "host",
			    req->name, req->reason);
		reason_now = req->reason;
		req->cb(req->arg, req->status,
		    req->naddrs > 0 ? req->addrs : NULL, req->naddrs);
		reason_now = NULL;
		dns_req_free(req);
	}

	if (!TAILQ_EMPTY(&done))
		dns_wake();
	dns_timer_update();
}

static void
dns_wake(void)
{
	struct timeval	 tv = { 0, 0 };

	if (!evtimer_pending(&ev_run, NULL))
		evtimer_add(&ev_run, &tv);
}

/* One step of an active request that has no query out. */
static void
dns_step(struct dns_req *req)
{
	switch (req->state) {
	case DNS_STATE_NEW:
		if (req->kind == DNS_KIND_MX) {
			dns_start_mx(req);
			break;
		}
		if (req->kind == DNS_KIND_QUERY) {
			/* The answer may come back before ares_query(). */
			req->state = DNS_STATE_QUERY;
			req->pending++;
			ares_query(channel, req->name, C_IN, req->qtype,
			    dns_query_answer, req);
			break;
		}
		if ((req->targets = calloc(1, sizeof(*req->targets))) ==
		    NULL) {
			dns_finish(req, DNS_TEMPFAIL, "out of memory");
			break;
		}
		(void)strlcpy(req->targets[0].host, req->name,
		    sizeof(req->targets[0].host));
		req->ntargets = 1;
		req->state = DNS_STATE_TARGETS;
		/* FALLTHROUGH */
	case DNS_STATE_TARGETS:
		dns_start_addrs(req);
		break;
	case DNS_STATE_ADDRS:
		dns_collect(req);
		break;
	case DNS_STATE_MX:
	case DNS_STATE_QUERY:
	case DNS_STATE_FINISHED:
		break;
	}
	if (req->state == DNS_STATE_FINISHED && req->pending == 0) {
		TAILQ_REMOVE(&active, req, entry);
		nactive--;
		req->seq = ++done_seq;
		TAILQ_INSERT_TAIL(&done, req, entry);
		dns_wake();
	}
}

static void
dns_start_mx(struct dns_req *req)
{
	/* The answer may come back before ares_query() returns. */
	req->state = DNS_STATE_MX;
	req->pending++;
	ares_query(channel, req->name, C_IN, T_MX, dns_mx_answer,
	    req);
}

static void
dns_start_addrs(struct dns_req *req)
{
	struct ares_addrinfo_hints	 hints;
	struct dns_target		*t;
	size_t				 i, f;

	req->state = DNS_STATE_ADDRS;
	memset(&hints, 0, sizeof(hints));
	hints.ai_flags = ARES_AI_NOSORT;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	/* Count them all first: an answer may come back at once. */
	req->pending += 2 * req->ntargets;
	for (i = 0; i < req->ntargets; i++) {
		t = &req->targets[i];
		t->req = req;
		t->fam[0].family = AF_INET6;
		t->fam[1].family = AF_INET;
		for (f = 0; f < 2; f++) {
			t->fam[f].target = t;
			t->fam[f].status = ARES_ENODATA;
			hints.ai_family = t->fam[f].family;
			ares_getaddrinfo(channel, t->host, NULL, &hints,
			    dns_addr_answer, &t->fam[f]);
		}
	}
}

static void
dns_query_answer(void *arg, int status, int timeouts, unsigned char *abuf,
    int alen)
{
	struct dns_req	*req = arg;
	const char	*why;

	(void)timeouts;
	req->pending--;
	dns_wake();
	if (req->cancelled)
		return;

	switch (status) {
	case ARES_SUCCESS:
		if ((why = dns_query_parse(req, abuf, alen)) != NULL) {
			dns_answer_free(&req->answer);
			dns_finish(req, DNS_TEMPFAIL, "%s lookup for %s: %s",
			    dns_type_name(req->qtype), req->name, why);
		} else
			dns_finish(req, DNS_OK, "%s", "");
		break;
	case ARES_ENODATA:
		/* NOERROR without records of the type: NODATA. */
		dns_finish(req, DNS_OK, "%s", "");
		break;
	case ARES_ENOTFOUND:
		req->answer.nxdomain = 1;
		dns_finish(req, DNS_PERMFAIL, "%s does not exist", req->name);
		break;
	default:
		dns_finish(req, DNS_TEMPFAIL, "%s lookup for %s: %s",
		    dns_type_name(req->qtype), req->name,
		    ares_strerror(status));
		break;
	}
	req->answer.status = req->status;
}

/*
 * The records of the type asked for in the answer section, and their
 * smallest TTL; NULL, or why the answer cannot be used.  c-ares has
 * checked the header and the question against ours.
 */
static const char *
dns_query_parse(struct dns_req *req, const unsigned char *abuf, int alen)
{
	const unsigned char	*p = abuf, *end = abuf + alen;
	char			*owner;
	long			 len;
	unsigned int		 qdcount, ancount, i, type, class, rdlen;
	uint32_t		 ttl;
	size_t			 text = 0;
	int			 rc;

	if (alen < HFIXEDSZ)
		return ("short answer");
	qdcount = (abuf[4] << 8) | abuf[5];
	ancount = (abuf[6] << 8) | abuf[7];
	p += HFIXEDSZ;
	for (i = 0; i < qdcount; i++) {
		if (ares_expand_name(p, abuf, alen, &owner, &len) !=
		    ARES_SUCCESS)
			return ("malformed question");
		ares_free_string(owner);
		if (len < 0 || end - p < len + QFIXEDSZ)
			return ("malformed question");
		p += len + QFIXEDSZ;
	}
	for (i = 0; i < ancount; i++) {
		if (ares_expand_name(p, abuf, alen, &owner, &len) !=
		    ARES_SUCCESS)
			return ("malformed record");
		ares_free_string(owner);
		if (len < 0 || end - p < len + RRFIXEDSZ)
			return ("malformed record");
		p += len;
		type = (p[0] << 8) | p[1];
		class = (p[2] << 8) | p[3];
		ttl = ((uint32_t)p[4] << 24) | ((uint32_t)p[5] << 16) |
		    ((uint32_t)p[6] << 8) | p[7];
		rdlen = (p[8] << 8) | p[9];
		p += RRFIXEDSZ;
		if (end - p < (long)rdlen)
			return ("malformed record");
		/* CNAMEs on the way to the name are left out. */
		if (type == (unsigned int)req->qtype && class == C_IN) {
			if (req->answer.count >= DNS_QUERY_RR_MAX)
				return ("too many records");
			rc = dns_query_record(req, abuf, alen, p, rdlen, &text);
			if (rc == -1)
				return ("malformed record");
			if (text > DNS_QUERY_TEXT_MAX)
				return ("answer too large");
			if (rc == 1 && (req->answer.count == 1 ||
			    ttl < req->answer.ttl))
				req->answer.ttl = ttl;
		}
		p += rdlen;
	}
	return (NULL);
}

/*
 * One record's data as text, appended to the answer: 1 when added, 0
 * when skipped (a TXT record over DNS_QUERY_TXT_MAX), -1 when it is
 * malformed or memory is short.  *text counts the bytes kept.
 */
static int
dns_query_record(struct dns_req *req, const unsigned char *abuf, int alen,
    const unsigned char *rdata, int rdlen, size_t *text)
{
	char		 buf[DNS_QUERY_TXT_MAX + 1], *name, *s;
	long		 len;
	int		 off, n, slen, rc;

	switch (req->qtype) {
	case ns_t_a:
		if (rdlen != 4 || inet_ntop(AF_INET, rdata, buf,
		    sizeof(buf)) == NULL)
			return (-1);
		break;
	case ns_t_aaaa:
		if (rdlen != 16 || inet_ntop(AF_INET6, rdata, buf,
		    sizeof(buf)) == NULL)
			return (-1);
		break;
	case ns_t_txt:
		/* RFC 7208 3.3: the strings of a record are joined. */
		for (off = 0, n = 0; off < rdlen; off += 1 + slen) {
			slen = rdata[off];
			if (off + 1 + slen > rdlen)
				return (-1);
			if (n + slen > DNS_QUERY_TXT_MAX) {
				log_debug("dns: TXT %s: skipping a record "
				    "over %d bytes", req->name,
				    DNS_QUERY_TXT_MAX);
				return (0);
			}
			memcpy(buf + n, rdata + off + 1, slen);
			n += slen;
		}
		buf[n] = '\0';
		/* A NUL would cut the string short: no such record. */
		if (memchr(buf, '\0', n) != NULL)
			return (0);
		break;
	case ns_t_mx:
	case ns_t_ptr:
		off = req->qtype == ns_t_mx ? 2 : 0;
		if (rdlen < off + 1 || ares_expand_name(rdata + off, abuf,
		    alen, &name, &len) != ARES_SUCCESS)
			return (-1);
		if (len > rdlen - off) {
			ares_free_string(name);
			return (-1);
		}
		if (req->qtype == ns_t_mx)
			rc = snprintf(buf, sizeof(buf), "%u %s",
			    (unsigned int)((rdata[0] << 8) | rdata[1]),
			    name[0] != '\0' ? name : ".");
		else
			rc = snprintf(buf, sizeof(buf), "%s",
			    name[0] != '\0' ? name : ".");
		ares_free_string(name);
		if (rc < 0 || (size_t)rc >= sizeof(buf))
			return (-1);
		break;
	default:
		return (-1);
	}

	if (req->answer.records == NULL && (req->answer.records =
	    calloc(DNS_QUERY_RR_MAX, sizeof(*req->answer.records))) == NULL)
		return (-1);
	if ((s = strdup(buf)) == NULL)
		return (-1);
	req->answer.records[req->answer.count++] = s;
	*text += strlen(s);
	return (1);
}

static void
dns_answer_free(struct dns_answer *answer)
{
	size_t	 i;

	for (i = 0; i < answer->count; i++)
		free(answer->records[i]);
	free(answer->records);
	memset(answer, 0, sizeof(*answer));
}

/* The types dns_query() answers, by name; NULL for the others. */
static const char *
dns_type_name(int type)
{
	switch (type) {
	case ns_t_a:
		return ("A");
	case ns_t_aaaa:
		return ("AAAA");
	case ns_t_txt:
		return ("TXT");
	case ns_t_mx:
		return ("MX");
	case ns_t_ptr:
		return ("PTR");
	default:
		return (NULL);
	}
}

static void
dns_mx_answer(void *arg, int status, int timeouts, unsigned char *abuf,
    int alen)
{
	struct dns_req		*req = arg;
	struct ares_mx_reply	*mx = NULL;
	int			 rc;

	(void)timeouts;
	req->pending--;
	dns_wake();
	if (req->cancelled)
		return;

	switch (status) {
	case ARES_SUCCESS:
		break;
	case ARES_ENODATA:
		goto implicit;
	case ARES_ENOTFOUND:
		dns_finish(req, DNS_PERMFAIL, "domain %s does not exist",
		    req->name);
		return;
	default:
		dns_finish(req, DNS_TEMPFAIL, "MX lookup for %s: %s",
		    req->name, ares_strerror(status));
		return;
	}

	rc = ares_parse_mx_reply(abuf, alen, &mx);
	if (rc == ARES_ENODATA || (rc == ARES_SUCCESS && mx == NULL)) {
		/* An answer with only a CNAME, say. */
		goto implicit;
	}
	if (rc != ARES_SUCCESS) {
		dns_finish(req, DNS_TEMPFAIL, "MX lookup for %s: %s",
		    req->name, ares_strerror(rc));
		return;
	}
	dns_mx_targets(req, mx);
	ares_free_data(mx);
	return;

 implicit:
	/* RFC 5321 5.1: no MX, the domain is its own mail exchanger. */
	if ((req->targets = calloc(1, sizeof(*req->targets))) == NULL) {
		dns_finish(req, DNS_TEMPFAIL, "out of memory");
		return;
	}
	(void)strlcpy(req->targets[0].host, req->name,
	    sizeof(req->targets[0].host));
	req->ntargets = 1;
	req->implicit_mx = 1;
	req->state = DNS_STATE_TARGETS;
}

/*
 * The MX set in preference order, equal preferences in random order,
 * without duplicates and names that are no host names, at most
 * DNS_MX_MAX of them.  A null MX (RFC 7505) anywhere in the set says
 * the domain takes no mail.
 */
static void
dns_mx_targets(struct dns_req *req, struct ares_mx_reply *mx)
{
	struct ares_mx_reply	*m;
	struct dns_mx		*set;
	struct dns_target	*t;
	size_t			 n = 0, i, j;
	int			 dup;

	for (m = mx; m != NULL; m = m->next) {
		if (m->host == NULL || m->host[0] == '\0' ||
		    strcmp(m->host, ".") == 0) {
			dns_finish(req, DNS_PERMFAIL,
			    "%s accepts no mail (null MX)", req->name);
			return;
		}
		n++;
	}
	if ((set = calloc(n, sizeof(*set))) == NULL ||
	    (req->targets = calloc(DNS_MX_MAX, sizeof(*req->targets))) ==
	    NULL) {
		free(set);
		dns_finish(req, DNS_TEMPFAIL, "out of memory");
		return;
	}
	for (i = 0, m = mx; m != NULL; m = m->next, i++) {
		set[i].host = m->host;
		set[i].preference = m->priority;
		set[i].shuffle = arc4random();
	}
	qsort(set, n, sizeof(*set), dns_mx_cmp);

	for (i = 0; i < n && req->ntargets < DNS_MX_MAX; i++) {
		if (!dns_name_valid(set[i].host) || dns_numeric(set[i].host)) {
			log_debug("dns: MX %s: ignoring bad host name",
			    req->name);
			continue;
		}
		for (dup = 0, j = 0; j < req->ntargets && !dup; j++)
			dup = strcasecmp(req->targets[j].host,
			    set[i].host) == 0;
		if (dup)
			continue;
		t = &req->targets[req->ntargets++];
		(void)strlcpy(t->host, set[i].host, sizeof(t->host));
		t->preference = set[i].preference;
	}
	free(set);
	if (req->ntargets == 0) {
		dns_finish(req, DNS_PERMFAIL, "%s has no valid MX host",
		    req->name);
		return;
	}
	req->state = DNS_STATE_TARGETS;
}

static int
dns_mx_cmp(const void *a, const void *b)
{
	const struct dns_mx	*x = a, *y = b;

	if (x->preference != y->preference)
		return (x->preference < y->preference ? -1 : 1);
	if (x->shuffle != y->shuffle)
		return (x->shuffle < y->shuffle ? -1 : 1);
	return (0);
}

static void
dns_addr_answer(void *arg, int status, int timeouts, struct ares_addrinfo *ai)
{
	struct dns_family	*fam = arg;
	struct dns_req		*req = fam->target->req;

	(void)timeouts;
	fam->status = status;
	if (status == ARES_SUCCESS && ai != NULL && fam->ai == NULL)
		fam->ai = ai;
	else if (ai != NULL)
		ares_freeaddrinfo(ai);
	if (--req->pending == 0)
		dns_wake();
}

/* Every target's addresses are in: the answer, or why there is none. */
static void
dns_collect(struct dns_req *req)
{
	struct ares_addrinfo_node	*node;
	struct dns_target		*t;
	struct dns_family		*fam;
	size_t				 i, f;
	int				 temporary = 0, status = ARES_SUCCESS;

	if (req->addrs == NULL &&
	    (req->addrs = calloc(DNS_ADDR_MAX, sizeof(*req->addrs))) == NULL) {
		dns_finish(req, DNS_TEMPFAIL, "out of memory");
		return;
	}
	for (i = 0; i < req->ntargets; i++) {
		t = &req->targets[i];
		for (f = 0; f < 2; f++) {
			fam = &t->fam[f];
			if (fam->ai == NULL) {
				if (dns_temporary(fam->status)) {
					temporary = 1;
					status = fam->status;
				}
				continue;
			}
			for (node = fam->ai->nodes; node != NULL;
			    node = node->ai_next) {
				if (node->ai_family != fam->family ||
				    !dns_addr_usable(node->ai_addr))
					continue;
				if (dns_add_addr(req, node->ai_addr,
				    node->ai_addrlen, t->host,
				    t->preference) == -1)
					break;
			}
		}
	}

	if (req->naddrs > 0)
		dns_finish(req, DNS_OK, "%s", "");
	else if (temporary)
		dns_finish(req, DNS_TEMPFAIL, "address lookup for %s: %s",
		    req->ntargets == 1 ? req->targets[0].host : req->name,
		    ares_strerror(status));
	else if (req->kind == DNS_KIND_HOST)
		dns_finish(req, DNS_PERMFAIL, "host %s has no address",
		    req->name);
	else if (req->implicit_mx)
		dns_finish(req, DNS_PERMFAIL, "%s has no MX and no address",
		    req->name);
	else
		dns_finish(req, DNS_PERMFAIL,
		    "no MX host of %s has an address", req->name);
	dns_targets_free(req);
}

/*
 * Append an address unless it is there already; -1 when the list is
 * full.  req->addrs has room for DNS_ADDR_MAX.
 */
static int
dns_add_addr(struct dns_req *req, const struct sockaddr *sa, socklen_t len,
    const char *host, uint16_t preference)
{
	struct dns_addr		*a;
	struct sockaddr_in	*sin;
	struct sockaddr_in6	*sin6;
	size_t			 i, c;

	if (req->naddrs >= DNS_ADDR_MAX)
		return (-1);
	if ((sa->sa_family != AF_INET || len != sizeof(*sin)) &&
	    (sa->sa_family != AF_INET6 || len != sizeof(*sin6)))
		return (0);
	a = &req->addrs[req->naddrs];
	memset(a, 0, sizeof(*a));
	memcpy(&a->ss, sa, len);
	if (sa->sa_family == AF_INET) {
		sin = (struct sockaddr_in *)&a->ss;
		sin->sin_port = htons(req->port);
	} else {
		sin6 = (struct sockaddr_in6 *)&a->ss;
		sin6->sin6_port = htons(req->port);
	}
	for (i = 0; i < req->naddrs; i++)
		if (dns_addr_same(&req->addrs[i].ss, &a->ss))
			return (0);
	(void)strlcpy(a->host, host, sizeof(a->host));
	for (c = 0; a->host[c] != '\0'; c++)
		a->host[c] = tolower((unsigned char)a->host[c]);
	if (c > 1 && a->host[c - 1] == '.')
		a->host[c - 1] = '\0';
	a->preference = preference;
	req->naddrs++;
	return (0);
}

/*
 * A numeric address ("192.0.2.1", "::1", "[::1]") of a relay host, or
 * an address literal of a mail domain ("[192.0.2.1]", "[IPv6:::1]"), as
 * the answer, named host or else by the address itself.
 */
static int
dns_literal(struct dns_req *req, const char *s, const char *host)
{
	struct sockaddr_in	 sin;
	struct sockaddr_in6	 sin6;
	char			 buf[INET6_ADDRSTRLEN + 8];
	const char		*addr = buf;
	size_t			 len = strlen(s);
	int			 rc;

	if (s[0] == '[') {
		if (len < 3 || s[len - 1] != ']' || len - 2 >= sizeof(buf))
			return (-1);
		memcpy(buf, s + 1, len - 2);
		buf[len - 2] = '\0';
	} else if (strlcpy(buf, s, sizeof(buf)) >= sizeof(buf))
		return (-1);
	if (req->addrs == NULL &&
	    (req->addrs = calloc(DNS_ADDR_MAX, sizeof(*req->addrs))) == NULL)
		return (-1);

	memset(&sin, 0, sizeof(sin));
	memset(&sin6, 0, sizeof(sin6));
	sin.sin_family = AF_INET;
	sin6.sin6_family = AF_INET6;
	if (req->kind == DNS_KIND_MX) {
		/* RFC 5321 4.1.3: "[IPv4]" or "[IPv6:address]". */
		if (s[0] != '[')
			return (-1);
		if (strncasecmp(buf, "IPv6:", 5) == 0) {
			addr = buf + 5;
			if (inet_pton(AF_INET6, addr, &sin6.sin6_addr) != 1)
				return (-1);
			rc = dns_add_addr(req, (struct sockaddr *)&sin6,
			    sizeof(sin6), host != NULL ? host : addr, 0);
		} else if (inet_pton(AF_INET, addr, &sin.sin_addr) == 1)
			rc = dns_add_addr(req, (struct sockaddr *)&sin,
			    sizeof(sin), host != NULL ? host : addr, 0);
		else
			return (-1);
	} else if (inet_pton(AF_INET, addr, &sin.sin_addr) == 1)
		rc = dns_add_addr(req, (struct sockaddr *)&sin, sizeof(sin),
		    host != NULL ? host : addr, 0);
	else if (inet_pton(AF_INET6, addr, &sin6.sin6_addr) == 1)
		rc = dns_add_addr(req, (struct sockaddr *)&sin6, sizeof(sin6),
		    host != NULL ? host : addr, 0);
	else
		return (-1);
	if (rc == -1)
		return (-1);
	/* A mail domain is the sender's word: no 0.0.0.0 for a loop. */
	if (req->kind == DNS_KIND_MX && (req->naddrs == 0 ||
	    !dns_addr_usable((struct sockaddr *)&req->addrs[0].ss)))
		return (-1);
	req->status = DNS_OK;
	req->state = DNS_STATE_FINISHED;
	return (0);
}

static int
dns_addr_same(const struct sockaddr_storage *a,
    const struct sockaddr_storage *b)
{
	const struct sockaddr_in	*a4, *b4;
	const struct sockaddr_in6	*a6, *b6;

	if (a->ss_family != b->ss_family)
		return (0);
	if (a->ss_family == AF_INET) {
		a4 = (const struct sockaddr_in *)a;
		b4 = (const struct sockaddr_in *)b;
		return (a4->sin_addr.s_addr == b4->sin_addr.s_addr &&
		    a4->sin_port == b4->sin_port);
	}
	a6 = (const struct sockaddr_in6 *)a;
	b6 = (const struct sockaddr_in6 *)b;
	return (memcmp(&a6->sin6_addr, &b6->sin6_addr,
	    sizeof(a6->sin6_addr)) == 0 &&
	    a6->sin6_scope_id == b6->sin6_scope_id &&
	    a6->sin6_port == b6->sin6_port);
}

static void
dns_finish(struct dns_req *req, int status, const char *fmt, ...)
{
	va_list	 ap;

	req->status = status;
	va_start(ap, fmt);
	(void)vsnprintf(req->reason, sizeof(req->reason), fmt, ap);
	va_end(ap);
	if (status != DNS_OK)
		req->naddrs = 0;
	req->state = DNS_STATE_FINISHED;
}

/* No query may be out for them. */
static void
dns_targets_free(struct dns_req *req)
{
	size_t	 i;

	for (i = 0; i < req->ntargets; i++) {
		if (req->targets[i].fam[0].ai != NULL)
			ares_freeaddrinfo(req->targets[i].fam[0].ai);
		if (req->targets[i].fam[1].ai != NULL)
			ares_freeaddrinfo(req->targets[i].fam[1].ai);
	}
	free(req->targets);
	req->targets = NULL;
	req->ntargets = 0;
}

/*
 * Not an address to connect to: unspecified (which connect() takes for
 * this host), multicast or broadcast.
 */
static int
dns_addr_usable(const struct sockaddr *sa)
{
	const struct sockaddr_in	*sin;
	const struct sockaddr_in6	*sin6;
	uint32_t			 a;

	if (sa->sa_family == AF_INET) {
		sin = (const struct sockaddr_in *)sa;
		a = ntohl(sin->sin_addr.s_addr);
		return ((a >> 24) != 0 && !IN_MULTICAST(a) &&
		    a != INADDR_BROADCAST);
	}
	if (sa->sa_family == AF_INET6) {
		sin6 = (const struct sockaddr_in6 *)sa;
		return (!IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr) &&
		    !IN6_IS_ADDR_MULTICAST(&sin6->sin6_addr) &&
		    !IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr));
	}
	return (0);
}

/* Back to the start, for a new channel; no query may be out. */
static void
dns_req_reset(struct dns_req *req)
{
	dns_targets_free(req);
	free(req->addrs);
	req->addrs = NULL;
	req->naddrs = 0;
	req->pending = 0;
	req->implicit_mx = 0;
	dns_answer_free(&req->answer);
	req->status = DNS_OK;
	req->reason[0] = '\0';
	req->state = DNS_STATE_NEW;
}

static void
dns_req_free(struct dns_req *req)
{
	dns_req_reset(req);
	free(req);
}

/*
 * A host name as DNS carries it for mail: labels of letters, digits,
 * hyphens and underscores, 1 to 63 bytes each, no hyphen first or last,
 * 253 bytes in all, one final dot allowed.  Whatever c-ares escaped in
 * a name it read (a dot or odd byte inside a label) fails here.
 */
static int
dns_name_valid(const char *name)
{
	size_t	 len = strlen(name), label = 0, i;

	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > 253)
		return (0);
	for (i = 0; i <= len; i++) {
		if (i == len || name[i] == '.') {
			if (label == 0 || name[i - 1] == '-')
				return (0);
			label = 0;
			continue;
		}
		if (!isascii((unsigned char)name[i]) ||
		    (!isalnum((unsigned char)name[i]) && name[i] != '-' &&
		    name[i] != '_'))
			return (0);
		if (label == 0 && name[i] == '-')
			return (0);
		if (++label > 63)
			return (0);
	}
	return (1);
}

/* "192.0.2.1", "2001:db8::1" or "[2001:db8::1]". */
static int
dns_numeric(const char *s)
{
	struct in6_addr	 in6;
	char		 buf[INET6_ADDRSTRLEN];
	size_t		 len = strlen(s);

	if (inet_pton(AF_INET, s, &in6) == 1 ||
	    inet_pton(AF_INET6, s, &in6) == 1)
		return (1);
	if (len < 3 || s[0] != '[' || s[len - 1] != ']' ||
	    len - 2 >= sizeof(buf))
		return (0);
	memcpy(buf, s + 1, len - 2);
	buf[len - 2] = '\0';
	return (inet_pton(AF_INET6, buf, &in6) == 1);
}

/* Not an answer about the name: worth asking again later. */
static int
dns_temporary(int status)
{
	switch (status) {
	case ARES_SUCCESS:
	case ARES_ENODATA:
	case ARES_ENOTFOUND:
	case ARES_EBADNAME:
	case ARES_ENONAME:
		return (0);
	default:
		return (1);
	}
}

/*
 * c-ares.
 */

static void
dns_channel_open(void)
{
	static int			 seeded;
	static char			 lookups[] = "b";
	struct ares_options		 opts;
	struct ares_addr_port_node	 server;
	int				 mask, rc;

	/*
	 * This c-ares keys its query ids from /dev/urandom, which a
	 * chroot lacks, and then from rand(): seed that from the kernel.
	 */
	if (!seeded) {
		srand(arc4random());
		seeded = 1;
	}

	memset(&opts, 0, sizeof(opts));
	mask = ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
	    ARES_OPT_DOMAINS | ARES_OPT_LOOKUPS | ARES_OPT_SOCK_STATE_CB;
	/*
	 * Mail domains are absolute: no search list, no HOSTALIASES.
	 * Answers over 512 bytes come again over TCP.
	 */
	opts.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
	opts.timeout = DNS_TIMEOUT_MS;
	opts.tries = DNS_TRIES;
	opts.domains = NULL;
	opts.ndomains = 0;
	/* DNS only: the same answers inside a chroot as outside. */
	opts.lookups = lookups;
	opts.sock_state_cb = dns_sock_state;
	opts.sock_state_cb_data = NULL;
	if ((rc = ares_init_options(&channel, &opts, mask)) != ARES_SUCCESS)
		fatalx("dns: ares_init_options: %s", ares_strerror(rc));

	if (channel_server[0] == '\0') {
		/* c-ares then asks 127.0.0.1 port 53. */
		if (access("/etc/resolv.conf", R_OK) == -1)
			log_warnx("dns: cannot read /etc/resolv.conf (in a "
			    "chroot?), asking 127.0.0.1");
		return;
	}
	memset(&server, 0, sizeof(server));
	if (inet_pton(AF_INET, channel_server, &server.addr.addr4) == 1)
		server.family = AF_INET;
	else if (inet_pton(AF_INET6, channel_server, &server.addr.addr6) == 1)
		server.family = AF_INET6;
	else
		fatalx("dns: bad resolver %s", channel_server);
	server.udp_port = channel_port;
	server.tcp_port = channel_port;
	if ((rc = ares_set_servers_ports(channel, &server)) != ARES_SUCCESS)
		fatalx("dns: ares_set_servers_ports: %s", ares_strerror(rc));
}

/* c-ares answers every query out with ARES_EDESTRUCTION here. */
static void
dns_channel_close(void)
{
	struct dns_sock	*s;

	if (channel != NULL) {
		ares_destroy(channel);
		channel = NULL;
	}
	while ((s = TAILQ_FIRST(&socks)) != NULL) {
		event_del(&s->ev);
		TAILQ_REMOVE(&socks, s, entry);
		free(s);
	}
	evtimer_del(&ev_timeout);
}

static void
dns_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns_sock	*s;
	short		 events;

	(void)data;
	TAILQ_FOREACH(s, &socks, entry)
		if (s->fd == fd)
			break;
	if (!readable && !writable) {
		if (s != NULL) {
			event_del(&s->ev);
			TAILQ_REMOVE(&socks, s, entry);
			free(s);
		}
		return;
	}
	if (s == NULL) {
		if ((s = calloc(1, sizeof(*s))) == NULL) {
			/* Its queries end in a timeout. */
			log_warn("dns: socket watch");
			return;
		}
		s->fd = fd;
		TAILQ_INSERT_TAIL(&socks, s, entry);
	} else
		event_del(&s->ev);
	events = EV_PERSIST;
	if (readable)
		events |= EV_READ;
	if (writable)
		events |= EV_WRITE;
	event_set(&s->ev, fd, events, dns_sock_event, s);
	if (event_add(&s->ev, NULL) == -1)
		log_warn("dns: event_add");
}

static void
dns_sock_event(int fd, short event, void *arg)
{
	(void)arg;	/* may be freed by the time ares_process_fd returns */
	if (channel == NULL)
		return;
	ares_process_fd(channel,
	    (event & EV_READ) ? fd : ARES_SOCKET_BAD,
	    (event & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	dns_timer_update();
}

static void
dns_timeout(int fd, short event, void *arg)
{
	(void)fd;
	(void)event;
	(void)arg;
	if (channel == NULL)
		return;
	ares_process_fd(channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	dns_timer_update();
}

static void
dns_timer_update(void)
{
	struct timeval	 tv, *tvp;

	if (channel == NULL)
		return;
	if ((tvp = ares_timeout(channel, NULL, &tv)) == NULL) {
		evtimer_del(&ev_timeout);
		return;
	}
	evtimer_add(&ev_timeout, tvp);
}
