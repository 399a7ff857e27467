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
 * SPF (RFC 7208) without blocking the event loop.
 *
 * spf_check() evaluates with libspf2, whose resolvers are synchronous.
 * Its bottom DNS layer here answers only from our own cache; a name it
 * does not hold is recorded as missing and answered with a stand-in
 * that lets the evaluation go on ("v=spf1 ?all" for TXT, no data
 * otherwise), so that one evaluation finds every name it can reach.
 * The result of an evaluation that missed anything is thrown away: the
 * missing names are asked of dns.c all at once, and when the last
 * answer is in the evaluation runs again, until one completes from the
 * cache alone (at most SPF_ROUNDS_MAX rounds, then temperror).  Answers
 * stored while a check runs stay usable by it even when their TTL has
 * run out, so a check always makes progress.
 *
 * spf_expand() is spf_fetch's job: a domain's SPF record expanded into
 * the networks it authorises, parsed here and resolved with dns_query()
 * directly, one term after the other in the order evaluation would use,
 * so that the lookup limits cut at the same place every time.
 *
 * Checks and expansions that are due go on a run list, which a zero
 * timer works through: no callback is ever called from inside spf_*().
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/queue.h>
#include <sys/tree.h>

#include <netinet/in.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>

#include <ctype.h>
#include <errno.h>
#include <event.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <spf2/spf.h>
#include <spf2/spf_dns.h>
#include <spf2/spf_dns_rr.h>

#include "smarthostd.h"

#define SPF_CACHE_MAX		20000	/* cached answers */
#define SPF_TTL_MIN		60
#define SPF_TTL_MAX		86400
#define SPF_TTL_NEGATIVE	300	/* NXDOMAIN and NODATA */
#define SPF_TTL_TEMPFAIL	30	/* a server failure (RFC 2308 7.1) */
#define SPF_ROUNDS_MAX		30	/* evaluations of one check */
#define SPF_MISSES_MAX		128	/* names asked for per round */
#define SPF_JOBS_MAX		4096	/* checks and expansions at once */
#define SPF_REASON_LEN		512
#define SPF_SENDER_LEN		512
#define SPF_DNS_TERMS_MAX	10	/* RFC 7208 4.6.4 */
#define SPF_MX_MAX		10
#define SPF_VOID_MAX		2
#define SPF_TERMS_MAX		512	/* terms in one record */
#define SPF_NETS_MAX		10000	/* networks in one expansion */
#define SPF_LOOKUPS_MAX		(2 + 2 * SPF_MX_MAX)	/* out at once */
#define SPF_STANDIN_TXT		"v=spf1 ?all"

/* A cached answer, keyed by (type, name). */
struct spf_entry {
	RB_ENTRY(spf_entry)	 tree;
	TAILQ_ENTRY(spf_entry)	 age;		/* oldest first */
	int			 type;
	char			*name;
	int			 status;	/* DNS_* */
	int			 nxdomain;
	char			**records;
	size_t			 count;
	time_t			 expires;
	uint64_t		 stored;	/* spf_stored then */
};
RB_HEAD(spf_entries, spf_entry);
TAILQ_HEAD(spf_ages, spf_entry);

struct spf_waiter;
TAILQ_HEAD(spf_waiters, spf_waiter);

/* A question out to dns.c for the cache, and the checks waiting on it. */
struct spf_query {
	RB_ENTRY(spf_query)	 tree;
	int			 type;
	char			*name;
	struct spf_waiters	 waiters;
};
RB_HEAD(spf_queries, spf_query);

struct spf_check {
	TAILQ_ENTRY(spf_check)	 entry;
	struct sockaddr_storage	 client;
	char			 helo[HOSTNAME_LEN];
	char			 sender[SPF_SENDER_LEN];
	void			(*cb)(void *, enum spf_verdict, const char *);
	void			*arg;
	unsigned int		 rounds;
	unsigned int		 misses;	/* in this round */
	uint64_t		 start;		/* spf_stored at the start */
	struct spf_waiters	 waiters;
	size_t			 pending;	/* = waiters */
};
TAILQ_HEAD(spf_checks, spf_check);

struct spf_waiter {
	TAILQ_ENTRY(spf_waiter)	 qentry;	/* in the query */
	TAILQ_ENTRY(spf_waiter)	 centry;	/* in the check */
	struct spf_query	*query;
	struct spf_check	*check;
};

/* spf_expand() */

enum spf_term_kind {
	SPF_TERM_ALL,
	SPF_TERM_INCLUDE,
	SPF_TERM_A,
	SPF_TERM_MX,
	SPF_TERM_PTR,
	SPF_TERM_IP4,
	SPF_TERM_IP6,
	SPF_TERM_EXISTS
};

struct spf_term {
	enum spf_term_kind	 kind;
	char			 qualifier;
	const char		*arg;		/* domain or address, or NULL */
	int			 cidr4, cidr6;	/* -1: none given */
};

/* A record being walked. */
struct spf_frame {
	char			 domain[HOSTNAME_LEN];
	char			*text;		/* split into the terms */
	struct spf_term		*terms;
	size_t			 nterms, next;
	const char		*redirect;
	int			 has_all;
};

struct spf_expansion;

struct spf_lookup {
	struct spf_expansion	*x;
	int			 type;
	int			 out;		/* dns_query() pending */
	int			 status, nxdomain;
	char			**records;
	size_t			 count;
};

enum spf_x_wait {
	SPF_X_NONE,
	SPF_X_RECORD,		/* the TXT of a frame to push */
	SPF_X_ADDRS,		/* a: A and AAAA */
	SPF_X_MX,		/* mx: the MX */
	SPF_X_MX_ADDRS		/* mx: the hosts' A and AAAA */
};

struct spf_expansion {
	TAILQ_ENTRY(spf_expansion) entry;
	char			 domain[HOSTNAME_LEN];
	void			(*cb)(void *, int, const char *const *,
				    size_t, const char *);
	void			*arg;
	struct spf_frame	 frames[SPF_DNS_TERMS_MAX + 2];
	int			 depth;
	enum spf_x_wait		 wait;
	char			 wait_domain[HOSTNAME_LEN];
	struct spf_term		 wait_term;
	struct spf_lookup	 lookups[SPF_LOOKUPS_MAX];
	size_t			 nlookups, pending;
	unsigned int		 dns_terms, voids;
	int			 status;	/* -1 while running */
	char			 reason[SPF_REASON_LEN];
	char			**nets;
	size_t			 nnets;
};
TAILQ_HEAD(spf_expansions, spf_expansion);

static SPF_server_t		*spf_server;
static SPF_dns_server_t		 spf_layer;
static struct spf_entries	 cache = RB_INITIALIZER(&cache);
static struct spf_ages		 ages = TAILQ_HEAD_INITIALIZER(ages);
static size_t			 ncache;
static uint64_t			 spf_stored;
static struct spf_queries	 queries = RB_INITIALIZER(&queries);
static struct spf_checks	 checks_run = TAILQ_HEAD_INITIALIZER(checks_run);
static struct spf_checks	 checks_wait =
				    TAILQ_HEAD_INITIALIZER(checks_wait);
static struct spf_expansions	 expansions =
				    TAILQ_HEAD_INITIALIZER(expansions);
static size_t			 njobs;
static struct spf_check		*evaluating;	/* inside libspf2 */
static struct event		 ev_run;

static int	 spf_entry_cmp(struct spf_entry *, struct spf_entry *);
static int	 spf_query_cmp(struct spf_query *, struct spf_query *);
RB_PROTOTYPE(spf_entries, spf_entry, tree, spf_entry_cmp);
RB_PROTOTYPE(spf_queries, spf_query, tree, spf_query_cmp);

static void	 spf_run(int, short, void *);
static void	 spf_wake(void);
static time_t	 spf_now(void);
static int	 spf_key(const char *, char *, size_t);
static void	 spf_round(struct spf_check *);
static enum spf_verdict spf_result(SPF_request_t *, SPF_response_t *,
		    SPF_errcode_t, char *, size_t);
static void	 spf_check_free(struct spf_check *);
static SPF_dns_rr_t *spf_dns_lookup(SPF_dns_server_t *, const char *,
		    ns_type, int);
static SPF_dns_rr_t *spf_dns_rr(const char *, ns_type, int, int,
		    char *const *, size_t);
static void	 spf_miss(struct spf_check *, const char *, int);
static void	 spf_answer(void *, const struct dns_answer *);
static struct spf_entry *spf_cache_find(const char *, int);
static void	 spf_cache_store(const char *, int, int, int,
		    char *const *, size_t, uint32_t);
static void	 spf_cache_drop(struct spf_entry *);
static char	**spf_strings_dup(char *const *, size_t);
static void	 spf_strings_free(char **, size_t);
static void	 spf_log_error(const char *, int, const char *)
		    __attribute__((__noreturn__));
static void	 spf_log_warning(const char *, int, const char *);
static void	 spf_log_debug(const char *, int, const char *);

static void	 spf_x_step(struct spf_expansion *);
static int	 spf_x_fetch(struct spf_expansion *, enum spf_x_wait,
		    const char *, const struct spf_term *);
static int	 spf_x_ask(struct spf_expansion *, const char *, int);
static void	 spf_x_answer(void *, const struct dns_answer *);
static void	 spf_x_record(struct spf_expansion *);
static void	 spf_x_addrs(struct spf_expansion *);
static void	 spf_x_mx(struct spf_expansion *);
static int	 spf_x_term(struct spf_expansion *, struct spf_frame *,
		    const struct spf_term *);
static int	 spf_x_parse(struct spf_frame *, const char *);
static int	 spf_x_cidr(char *, int *, int *);
static int	 spf_x_net(struct spf_expansion *, int, const char *, int);
static int	 spf_x_count(struct spf_expansion *);
static void	 spf_x_fail(struct spf_expansion *, int, const char *, ...)
		    __attribute__((__format__(printf, 3, 4)));
static void	 spf_x_lookups_clear(struct spf_expansion *);
static void	 spf_x_free(struct spf_expansion *);
static int	 spf_net_cmp(const void *, const void *);

RB_GENERATE(spf_entries, spf_entry, tree, spf_entry_cmp);
RB_GENERATE(spf_queries, spf_query, tree, spf_query_cmp);

/* Once, after dns_init(). */
void
spf_init(void)
{
	if (spf_server != NULL)
		return;
	SPF_error_handler = spf_log_error;
	SPF_warning_handler = spf_log_warning;
	SPF_info_handler = spf_log_debug;
	SPF_debug_handler = spf_log_debug;

	memset(&spf_layer, 0, sizeof(spf_layer));
	spf_layer.destroy = NULL;	/* static: libspf2 must not free it */
	spf_layer.lookup = spf_dns_lookup;
	spf_layer.name = "smarthostd";
	if ((spf_server = SPF_server_new_dns(&spf_layer, 0)) == NULL)
		fatalx("spf: SPF_server_new_dns failed");
	evtimer_set(&ev_run, spf_run, NULL);
}

const char *
spf_verdict_name(enum spf_verdict v)
{
	switch (v) {
	case SPF_VERDICT_NONE:
		return ("none");
	case SPF_VERDICT_NEUTRAL:
		return ("neutral");
	case SPF_VERDICT_PASS:
		return ("pass");
	case SPF_VERDICT_FAIL:
		return ("fail");
	case SPF_VERDICT_SOFTFAIL:
		return ("softfail");
	case SPF_VERDICT_TEMPERROR:
		return ("temperror");
	case SPF_VERDICT_PERMERROR:
		return ("permerror");
	}
	return ("permerror");
}

/*
 * The SPF verdict for sender (the MAIL FROM address; "" for <>, when
 * the HELO name is checked as postmaster@helo, RFC 7208 2.4) sent from
 * client.  cb gets the verdict and the domain's explanation for a fail,
 * or why, for the others.  -1 when it cannot start.
 */
int
spf_check(const struct sockaddr_storage *client, const char *helo,
    const char *sender, void (*cb)(void *, enum spf_verdict, const char *),
    void *arg)
{
	struct spf_check	*c;

	if (spf_server == NULL)
		fatalx("spf: check before spf_init");
	if (client == NULL || cb == NULL || helo == NULL || sender == NULL ||
	    (client->ss_family != AF_INET && client->ss_family != AF_INET6) ||
	    njobs >= SPF_JOBS_MAX) {
		errno = EINVAL;
		return (-1);
	}
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return (-1);
	if (strlcpy(c->helo, helo, sizeof(c->helo)) >= sizeof(c->helo) ||
	    strlcpy(c->sender, sender, sizeof(c->sender)) >=
	    sizeof(c->sender)) {
		free(c);
		errno = EINVAL;
		return (-1);
	}
	memcpy(&c->client, client, sizeof(c->client));
	c->cb = cb;
	c->arg = arg;
	c->start = spf_stored;
	TAILQ_INIT(&c->waiters);
	TAILQ_INSERT_TAIL(&checks_run, c, entry);
	njobs++;
	spf_wake();
	return (0);
}

/*
 * The networks (CIDR text, "192.0.2.0/24", "2001:db8::1/128") that
 * domain's SPF record authorises through its ip4, ip6, a, mx, include
 * and redirect terms; ptr, exists, all, exp and terms with macros give
 * none, and neither do terms with a qualifier other than "+".
 *
 * cb gets DNS_OK with the networks; DNS_TEMPFAIL when a lookup failed
 * for now; DNS_PERMFAIL, with a reason, when the domain has no usable
 * SPF record, a record is broken, or an RFC 7208 limit (10 lookup
 * terms, 10 MX hosts, 2 void lookups) is exceeded.  With either
 * failure it also gets the networks found before the failure: partial,
 * for the caller to use or not.  -1 when it cannot start.
 */
int
spf_expand(const char *domain, void (*cb)(void *, int, const char *const *,
    size_t, const char *), void *arg)
{
	struct spf_expansion	*x;

	if (spf_server == NULL)
		fatalx("spf: expand before spf_init");
	if (domain == NULL || cb == NULL || njobs >= SPF_JOBS_MAX) {
		errno = EINVAL;
		return (-1);
	}
	if ((x = calloc(1, sizeof(*x))) == NULL)
		return (-1);
	if (spf_key(domain, x->domain, sizeof(x->domain)) == -1) {
		free(x);
		errno = EINVAL;
		return (-1);
	}
	x->cb = cb;
	x->arg = arg;
	x->status = -1;
	x->depth = 0;
	x->wait = SPF_X_NONE;
	TAILQ_INSERT_TAIL(&expansions, x, entry);
	njobs++;
	/* The first step fetches the domain's record. */
	if (spf_x_fetch(x, SPF_X_RECORD, x->domain, NULL) == -1 &&
	    x->status == -1)
		spf_x_fail(x, DNS_TEMPFAIL, "cannot start");
	spf_wake();
	return (0);
}

/* arg goes away: no spf_check or spf_expand callback for it any more. */
void
spf_cancel(void *arg)
{
	struct spf_check	*c, *cn;
	struct spf_expansion	*x, *xn;

	TAILQ_FOREACH_SAFE(c, &checks_run, entry, cn)
		if (c->arg == arg) {
			TAILQ_REMOVE(&checks_run, c, entry);
			spf_check_free(c);
		}
	TAILQ_FOREACH_SAFE(c, &checks_wait, entry, cn)
		if (c->arg == arg) {
			TAILQ_REMOVE(&checks_wait, c, entry);
			spf_check_free(c);
		}
	TAILQ_FOREACH_SAFE(x, &expansions, entry, xn)
		if (x->arg == arg) {
			TAILQ_REMOVE(&expansions, x, entry);
			spf_x_free(x);
		}
}

/*
 * The one place that calls back: the checks due run a round each, the
 * expansions that are not waiting take their steps.
 */
static void
spf_run(int fd, short event, void *arg)
{
	struct spf_expansion	*x;
	struct spf_check	*c;
	size_t			 n = 0;

	(void)fd;
	(void)event;
	(void)arg;

	/* Only the checks due now: a callback may add more. */
	TAILQ_FOREACH(c, &checks_run, entry)
		n++;
	while (n-- > 0 && (c = TAILQ_FIRST(&checks_run)) != NULL) {
		TAILQ_REMOVE(&checks_run, c, entry);
		TAILQ_INSERT_TAIL(&checks_wait, c, entry);
		spf_round(c);
	}

	TAILQ_FOREACH(x, &expansions, entry)
		spf_x_step(x);
	/* A callback may cancel any expansion: look again each time. */
	for (;;) {
		TAILQ_FOREACH(x, &expansions, entry)
			if (x->status != -1)
				break;
		if (x == NULL)
			break;
		TAILQ_REMOVE(&expansions, x, entry);
		if (x->nnets > 1)	/* none: nets is NULL, not for qsort */
			qsort(x->nets, x->nnets, sizeof(*x->nets),
			    spf_net_cmp);
		log_debug("spf: expand %s: %zu network%s%s%s", x->domain,
		    x->nnets, x->nnets == 1 ? "" : "s",
		    x->reason[0] != '\0' ? ", " : "", x->reason);
		x->cb(x->arg, x->status, (const char *const *)x->nets,
		    x->nnets, x->reason);
		spf_x_free(x);
	}
}

static void
spf_wake(void)
{
	struct timeval	 tv = { 0, 0 };

	if (!evtimer_pending(&ev_run, NULL))
		evtimer_add(&ev_run, &tv);
}

static time_t
spf_now(void)
{
	struct timespec	 ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
		fatal("spf: clock_gettime");
	return (ts.tv_sec);
}

/* A name as the cache keys it: lower case, no final dot. */
static int
spf_key(const char *name, char *buf, size_t len)
{
	size_t	 i, n = strlen(name);

	if (n > 0 && name[n - 1] == '.')
		n--;
	if (n == 0 || n >= len)
		return (-1);
	for (i = 0; i < n; i++)
		buf[i] = tolower((unsigned char)name[i]);
	buf[n] = '\0';
	return (0);
}

/*
 * One evaluation from the cache.  With misses, their queries are out
 * and the check waits for them (or runs again at once when none could
 * be sent); without, the verdict goes to the caller.
 */
static void
spf_round(struct spf_check *c)
{
	SPF_request_t		*req;
	SPF_response_t		*resp;
	SPF_record_t		*rec = NULL;
	SPF_errcode_t		 err;
	const struct sockaddr_in	*sin;
	const struct sockaddr_in6	*sin6;
	struct in_addr		 in4;
	enum spf_verdict	 v;
	char			 reason[SPF_REASON_LEN];
	void			(*cb)(void *, enum spf_verdict, const char *);
	void			*arg;

	c->rounds++;
	c->misses = 0;
	if ((req = SPF_request_new(spf_server)) == NULL)
		fatalx("spf: out of memory");
	if (c->client.ss_family == AF_INET) {
		sin = (const struct sockaddr_in *)&c->client;
		SPF_request_set_ipv4(req, sin->sin_addr);
	} else {
		sin6 = (const struct sockaddr_in6 *)&c->client;
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			memcpy(&in4, &sin6->sin6_addr.s6_addr[12], 4);
			SPF_request_set_ipv4(req, in4);
		} else
			SPF_request_set_ipv6(req, sin6->sin6_addr);
	}
	if (c->helo[0] != '\0' &&
	    SPF_request_set_helo_dom(req, c->helo) != SPF_E_SUCCESS)
		fatalx("spf: out of memory");
	if (c->sender[0] != '\0' || c->helo[0] != '\0')
		if (SPF_request_set_env_from(req, c->sender) != SPF_E_SUCCESS)
			fatalx("spf: out of memory");

	if ((resp = SPF_response_new(req)) == NULL)
		fatalx("spf: out of memory");
	if (req->env_from_dp == NULL || req->env_from_dp[0] == '\0') {
		/* RFC 7208 4.3: no domain to check. */
		v = SPF_VERDICT_NONE;
		(void)strlcpy(reason, "no domain to check", sizeof(reason));
	} else {
		/*
		 * SPF_request_query_mailfrom() without its pass for every
		 * loopback client, which is wrong for a smarthost and
		 * would hide every loopback test.
		 */
		req->use_helo = 0;
		req->cur_dom = req->env_from_dp;
		evaluating = c;
		err = SPF_server_get_record(spf_server, req, resp, &rec);
		if (err == SPF_E_SUCCESS) {
			resp->spf_record_exp = rec;
			err = SPF_record_interpret(rec, req, resp, 0);
		}
		evaluating = NULL;
		if (rec != NULL)
			SPF_record_free(rec);
		v = spf_result(req, resp, err, reason, sizeof(reason));
	}
	SPF_response_free(resp);
	SPF_request_free(req);

	if (c->misses > 0 && c->rounds < SPF_ROUNDS_MAX) {
		if (c->pending == 0) {
			/* Nothing went out: what it lacked is cached now. */
			TAILQ_REMOVE(&checks_wait, c, entry);
			TAILQ_INSERT_TAIL(&checks_run, c, entry);
			spf_wake();
		}
		return;
	}
	if (c->misses > 0) {
		v = SPF_VERDICT_TEMPERROR;
		(void)snprintf(reason, sizeof(reason),
		    "no answer after %u rounds of lookups", c->rounds);
	}
	log_debug("spf: %s from %s: %s after %u round%s (%s)",
	    c->sender[0] != '\0' ? c->sender : "<>", c->helo,
	    spf_verdict_name(v), c->rounds, c->rounds == 1 ? "" : "s",
	    reason);
	cb = c->cb;
	arg = c->arg;
	TAILQ_REMOVE(&checks_wait, c, entry);
	spf_check_free(c);
	cb(arg, v, reason);
}

/* libspf2's answer as a verdict and a reason. */
static enum spf_verdict
spf_result(SPF_request_t *req, SPF_response_t *resp, SPF_errcode_t err,
    char *reason, size_t len)
{
	SPF_error_t	*e;
	const char	*s;
	int		 i, n, compile = 0;

	(void)req;
	if (SPF_response_result(resp) == SPF_RESULT_INVALID ||
	    (err != SPF_E_SUCCESS && SPF_response_get_header_comment(resp) ==
	    NULL)) {
		/* SPF_server_get_record() failed: no record evaluated. */
		n = SPF_response_messages(resp);
		s = SPF_strerror(err);
		for (i = 0; i < n; i++) {
			e = SPF_response_message(resp, i);
			if (SPF_error_code(e) != SPF_E_NOT_SPF &&
			    SPF_error_code(e) != SPF_E_DNS_ERROR &&
			    SPF_error_code(e) != SPF_E_MULTIPLE_RECORDS)
				compile = 1;
			if (SPF_error_message(e) != NULL)
				s = SPF_error_message(e);
		}
		(void)strlcpy(reason, s, len);
		if (err == SPF_E_DNS_ERROR || err == SPF_E_NO_MEMORY)
			return (SPF_VERDICT_TEMPERROR);
		if (err == SPF_E_MULTIPLE_RECORDS || compile)
			return (SPF_VERDICT_PERMERROR);
		if (err == SPF_E_NOT_SPF)
			return (SPF_VERDICT_NONE);
		return (SPF_VERDICT_PERMERROR);
	}

	if (SPF_response_result(resp) == SPF_RESULT_FAIL &&
	    (s = SPF_response_get_explanation(resp)) != NULL)
		(void)strlcpy(reason, s, len);
	else if ((s = SPF_response_get_header_comment(resp)) != NULL)
		(void)strlcpy(reason, s, len);
	else
		(void)strlcpy(reason, SPF_strerror(err), len);

	switch (SPF_response_result(resp)) {
	case SPF_RESULT_NEUTRAL:
		return (SPF_VERDICT_NEUTRAL);
	case SPF_RESULT_PASS:
		return (SPF_VERDICT_PASS);
	case SPF_RESULT_FAIL:
		return (SPF_VERDICT_FAIL);
	case SPF_RESULT_SOFTFAIL:
		return (SPF_VERDICT_SOFTFAIL);
	case SPF_RESULT_NONE:
		return (SPF_VERDICT_NONE);
	case SPF_RESULT_TEMPERROR:
		return (SPF_VERDICT_TEMPERROR);
	default:
		return (SPF_VERDICT_PERMERROR);
	}
}

/* Not on a list any more; its queries go on and fill the cache. */
static void
spf_check_free(struct spf_check *c)
{
	struct spf_waiter	*w;

	while ((w = TAILQ_FIRST(&c->waiters)) != NULL) {
		TAILQ_REMOVE(&c->waiters, w, centry);
		TAILQ_REMOVE(&w->query->waiters, w, qentry);
		free(w);
	}
	njobs--;
	free(c);
}

/*
 * The DNS layer under libspf2: answers from the cache only.  A miss is
 * recorded and answered with a stand-in that does not end the
 * evaluation, so that the rest of what it needs shows too.
 */
static SPF_dns_rr_t *
spf_dns_lookup(SPF_dns_server_t *layer, const char *domain, ns_type type,
    int should_cache)
{
	struct spf_entry	*e;
	struct spf_check	*c = evaluating;
	char			 name[HOSTNAME_LEN];
	char			*standin = SPF_STANDIN_TXT;

	(void)layer;
	(void)should_cache;
	if (spf_key(domain, name, sizeof(name)) == -1)
		return (spf_dns_rr(domain, type, DNS_PERMFAIL, 1, NULL, 0));
	/* RFC 7208 3.1: the SPF type is no more; TXT says it all. */
	if (type != ns_t_a && type != ns_t_aaaa && type != ns_t_txt &&
	    type != ns_t_mx && type != ns_t_ptr)
		return (spf_dns_rr(domain, type, DNS_OK, 0, NULL, 0));
	if (c == NULL)
		return (spf_dns_rr(domain, type, DNS_TEMPFAIL, 0, NULL, 0));

	if ((e = spf_cache_find(name, type)) != NULL &&
	    (e->expires > spf_now() || e->stored > c->start))
		return (spf_dns_rr(domain, type, e->status, e->nxdomain,
		    e->records, e->count));
	spf_miss(c, name, type);
	if (type == ns_t_txt)
		return (spf_dns_rr(domain, type, DNS_OK, 0, &standin, 1));
	return (spf_dns_rr(domain, type, DNS_OK, 0, NULL, 0));
}

/* An answer in libspf2's form. */
static SPF_dns_rr_t *
spf_dns_rr(const char *domain, ns_type type, int status, int nxdomain,
    char *const *records, size_t count)
{
	SPF_dns_rr_t	*rr;
	const char	*s;
	size_t		 i, len;
	int		 herrno, n = 0;

	if (status == DNS_TEMPFAIL)
		herrno = TRY_AGAIN;
	else if (status == DNS_PERMFAIL)
		herrno = nxdomain ? HOST_NOT_FOUND : NO_RECOVERY;
	else if (count == 0)
		herrno = NO_DATA;
	else
		herrno = NETDB_SUCCESS;
	if ((rr = SPF_dns_rr_new_init(&spf_layer, domain, type, 0,
	    herrno)) == NULL)
		fatalx("spf: out of memory");
	if (herrno != NETDB_SUCCESS)
		return (rr);

	for (i = 0; i < count; i++) {
		s = records[i];
		if (type == ns_t_mx) {
			/* "preference host" */
			if ((s = strchr(s, ' ')) == NULL)
				continue;
			s++;
		}
		len = strlen(s);
		/* RFC 7208 4.5: "v=spf1" alone is a record; libspf2 wants
		 * the space after it. */
		if (SPF_dns_rr_buf_realloc(rr, n, len + 2) != SPF_E_SUCCESS)
			fatalx("spf: out of memory");
		switch (type) {
		case ns_t_a:
			if (inet_pton(AF_INET, s, &rr->rr[n]->a) != 1)
				continue;
			break;
		case ns_t_aaaa:
			if (inet_pton(AF_INET6, s, &rr->rr[n]->aaaa) != 1)
				continue;
			break;
		default:
			memcpy(rr->rr[n]->txt, s, len + 1);
			if (type == ns_t_txt && strcasecmp(s, "v=spf1") == 0)
				memcpy(rr->rr[n]->txt + len, " ", 2);
			break;
		}
		n++;
	}
	rr->num_rr = n;
	if (n == 0)
		rr->herrno = NO_DATA;
	return (rr);
}

/* The check needs (name, type): ask for it unless that is under way. */
static void
spf_miss(struct spf_check *c, const char *name, int type)
{
	struct spf_query	 key, *q;
	struct spf_waiter	*w;

	c->misses++;
	if (c->misses > SPF_MISSES_MAX)
		return;
	key.type = type;
	key.name = (char *)(uintptr_t)name;
	if ((q = RB_FIND(spf_queries, &queries, &key)) == NULL) {
		if ((q = calloc(1, sizeof(*q))) == NULL ||
		    (q->name = strdup(name)) == NULL)
			fatalx("spf: out of memory");
		q->type = type;
		TAILQ_INIT(&q->waiters);
		if (dns_query(name, type, spf_answer, q) == -1) {
			/* Not a name DNS can hold, or too much going on. */
			if (errno == EINVAL)
				spf_cache_store(name, type, DNS_PERMFAIL, 1,
				    NULL, 0, 0);
			else
				spf_cache_store(name, type, DNS_TEMPFAIL, 0,
				    NULL, 0, 0);
			free(q->name);
			free(q);
			return;
		}
		RB_INSERT(spf_queries, &queries, q);
	} else {
		TAILQ_FOREACH(w, &q->waiters, qentry)
			if (w->check == c)
				return;
	}
	if ((w = calloc(1, sizeof(*w))) == NULL)
		fatalx("spf: out of memory");
	w->query = q;
	w->check = c;
	TAILQ_INSERT_TAIL(&q->waiters, w, qentry);
	TAILQ_INSERT_TAIL(&c->waiters, w, centry);
	c->pending++;
}

static void
spf_answer(void *arg, const struct dns_answer *ans)
{
	struct spf_query	*q = arg;
	struct spf_waiter	*w;
	struct spf_check	*c;

	spf_cache_store(q->name, q->type, ans->status, ans->nxdomain,
	    ans->records, ans->count, ans->ttl);
	while ((w = TAILQ_FIRST(&q->waiters)) != NULL) {
		c = w->check;
		TAILQ_REMOVE(&q->waiters, w, qentry);
		TAILQ_REMOVE(&c->waiters, w, centry);
		free(w);
		if (--c->pending == 0) {
			TAILQ_REMOVE(&checks_wait, c, entry);
			TAILQ_INSERT_TAIL(&checks_run, c, entry);
			spf_wake();
		}
	}
	RB_REMOVE(spf_queries, &queries, q);
	free(q->name);
	free(q);
}

static struct spf_entry *
spf_cache_find(const char *name, int type)
{
	struct spf_entry	 key;

	key.type = type;
	key.name = (char *)(uintptr_t)name;
	return (RB_FIND(spf_entries, &cache, &key));
}

/*
 * An answer for SPF_TTL_MIN to SPF_TTL_MAX seconds, NXDOMAIN and NODATA
 * for SPF_TTL_NEGATIVE, a temporary failure for SPF_TTL_TEMPFAIL: a
 * resolver that is down is not asked again for every RCPT.  The oldest
 * entry makes room.
 */
static void
spf_cache_store(const char *name, int type, int status, int nxdomain,
    char *const *records, size_t count, uint32_t ttl)
{
	struct spf_entry	*e, *old;
	time_t			 now = spf_now();
	int			 i;

	if ((e = spf_cache_find(name, type)) != NULL)
		spf_cache_drop(e);
	for (i = 0; i < 2 && (old = TAILQ_FIRST(&ages)) != NULL; i++)
		if (old->expires <= now || ncache >= SPF_CACHE_MAX)
			spf_cache_drop(old);
	if ((e = calloc(1, sizeof(*e))) == NULL ||
	    (e->name = strdup(name)) == NULL)
		fatalx("spf: out of memory");
	e->type = type;
	e->status = status;
	e->nxdomain = nxdomain;
	if (status == DNS_OK && count > 0) {
		if ((e->records = spf_strings_dup(records, count)) == NULL)
			fatalx("spf: out of memory");
		e->count = count;
		if (ttl < SPF_TTL_MIN)
			ttl = SPF_TTL_MIN;
		if (ttl > SPF_TTL_MAX)
			ttl = SPF_TTL_MAX;
		e->expires = now + ttl;
	} else if (status == DNS_TEMPFAIL)
		e->expires = now + SPF_TTL_TEMPFAIL;
	else
		e->expires = now + SPF_TTL_NEGATIVE;
	e->stored = ++spf_stored;
	RB_INSERT(spf_entries, &cache, e);
	TAILQ_INSERT_TAIL(&ages, e, age);
	ncache++;
}

static void
spf_cache_drop(struct spf_entry *e)
{
	RB_REMOVE(spf_entries, &cache, e);
	TAILQ_REMOVE(&ages, e, age);
	ncache--;
	spf_strings_free(e->records, e->count);
	free(e->name);
	free(e);
}

static int
spf_entry_cmp(struct spf_entry *a, struct spf_entry *b)
{
	if (a->type != b->type)
		return (a->type < b->type ? -1 : 1);
	return (strcmp(a->name, b->name));
}

static int
spf_query_cmp(struct spf_query *a, struct spf_query *b)
{
	if (a->type != b->type)
		return (a->type < b->type ? -1 : 1);
	return (strcmp(a->name, b->name));
}

static char **
spf_strings_dup(char *const *v, size_t n)
{
	char	**copy;
	size_t	  i;

	if ((copy = calloc(n, sizeof(*copy))) == NULL)
		return (NULL);
	for (i = 0; i < n; i++)
		if ((copy[i] = strdup(v[i])) == NULL) {
			spf_strings_free(copy, i);
			return (NULL);
		}
	return (copy);
}

static void
spf_strings_free(char **v, size_t n)
{
	size_t	 i;

	if (v == NULL)
		return;
	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void
spf_log_error(const char *file, int line, const char *msg)
{
	fatalx("spf: libspf2 %s:%d: %s", file != NULL ? file : "?", line,
	    msg);
}

static void
spf_log_warning(const char *file, int line, const char *msg)
{
	(void)file;
	(void)line;
	log_warnx("spf: libspf2: %s", msg);
}

static void
spf_log_debug(const char *file, int line, const char *msg)
{
	(void)file;
	(void)line;
	log_debug("spf: libspf2: %s", msg);
}

/*
 * spf_expand().
 */

/* Steps until it waits for DNS or is finished. */
static void
spf_x_step(struct spf_expansion *x)
{
	struct spf_frame	*f;

	while (x->status == -1 && x->pending == 0) {
		switch (x->wait) {
		case SPF_X_RECORD:
			spf_x_record(x);
			continue;
		case SPF_X_ADDRS:
		case SPF_X_MX_ADDRS:
			spf_x_addrs(x);
			continue;
		case SPF_X_MX:
			spf_x_mx(x);
			continue;
		case SPF_X_NONE:
			break;
		}
		if (x->depth == 0) {
			x->status = DNS_OK;
			break;
		}
		f = &x->frames[x->depth - 1];
		if (f->next < f->nterms) {
			(void)spf_x_term(x, f, &f->terms[f->next++]);
			continue;
		}
		/*
		 * RFC 7208 6.1: a redirect, only when there is no "all",
		 * replaces the record.
		 */
		if (f->redirect != NULL && !f->has_all &&
		    spf_x_count(x) == 0 && strchr(f->redirect, '%') == NULL)
			(void)spf_x_fetch(x, SPF_X_RECORD, f->redirect, NULL);
		free(f->text);
		free(f->terms);
		memset(f, 0, sizeof(*f));
		x->depth--;
	}
}

/* One term of a record. */
static int
spf_x_term(struct spf_expansion *x, struct spf_frame *f,
    const struct spf_term *t)
{
	const char	*domain = t->arg != NULL ? t->arg : f->domain;

	switch (t->kind) {
	case SPF_TERM_ALL:
		return (0);
	case SPF_TERM_IP4:
	case SPF_TERM_IP6:
		if (t->qualifier != '+')
			return (0);
		return (spf_x_net(x, t->kind == SPF_TERM_IP4 ? AF_INET :
		    AF_INET6, t->arg, t->kind == SPF_TERM_IP4 ? t->cidr4 :
		    t->cidr6));
	case SPF_TERM_PTR:
	case SPF_TERM_EXISTS:
		return (spf_x_count(x));
	case SPF_TERM_INCLUDE:
	case SPF_TERM_A:
	case SPF_TERM_MX:
		if (spf_x_count(x) == -1)
			return (-1);
		if (t->qualifier != '+' || strchr(domain, '%') != NULL)
			return (0);
		if (t->kind == SPF_TERM_INCLUDE)
			return (spf_x_fetch(x, SPF_X_RECORD, domain, NULL));
		return (spf_x_fetch(x, t->kind == SPF_TERM_A ? SPF_X_ADDRS :
		    SPF_X_MX, domain, t));
	}
	return (0);
}

/* A DNS-querying term: -1 when it is one too many. */
static int
spf_x_count(struct spf_expansion *x)
{
	if (++x->dns_terms > SPF_DNS_TERMS_MAX) {
		spf_x_fail(x, DNS_PERMFAIL, "SPF lookup limit (%d) exceeded",
		    SPF_DNS_TERMS_MAX);
		return (-1);
	}
	return (0);
}

/* Ask what wait needs of domain; the step goes on with the answers. */
static int
spf_x_fetch(struct spf_expansion *x, enum spf_x_wait wait,
    const char *domain, const struct spf_term *t)
{
	spf_x_lookups_clear(x);
	if (strlcpy(x->wait_domain, domain, sizeof(x->wait_domain)) >=
	    sizeof(x->wait_domain)) {
		spf_x_fail(x, DNS_PERMFAIL, "bad domain %.64s...", domain);
		return (-1);
	}
	if (t != NULL)
		x->wait_term = *t;
	x->wait = wait;
	switch (wait) {
	case SPF_X_RECORD:
		return (spf_x_ask(x, domain, ns_t_txt));
	case SPF_X_ADDRS:
		if (spf_x_ask(x, domain, ns_t_a) == -1)
			return (-1);
		return (spf_x_ask(x, domain, ns_t_aaaa));
	case SPF_X_MX:
		return (spf_x_ask(x, domain, ns_t_mx));
	default:
		return (0);
	}
}

static int
spf_x_ask(struct spf_expansion *x, const char *name, int type)
{
	struct spf_lookup	*l;

	if (x->nlookups >= SPF_LOOKUPS_MAX)
		fatalx("spf: expansion lookups overflow");
	l = &x->lookups[x->nlookups];
	memset(l, 0, sizeof(*l));
	l->x = x;
	l->type = type;
	if (dns_query(name, type, spf_x_answer, l) == -1) {
		if (errno == EINVAL)
			spf_x_fail(x, DNS_PERMFAIL, "bad domain %s", name);
		else
			spf_x_fail(x, DNS_TEMPFAIL, "cannot look up %s",
			    name);
		return (-1);
	}
	l->out = 1;
	x->nlookups++;
	x->pending++;
	return (0);
}

static void
spf_x_answer(void *arg, const struct dns_answer *ans)
{
	struct spf_lookup	*l = arg;
	struct spf_expansion	*x = l->x;

	l->out = 0;
	l->status = ans->status;
	l->nxdomain = ans->nxdomain;
	if (ans->status == DNS_OK && ans->count > 0) {
		if ((l->records = spf_strings_dup(ans->records, ans->count)) ==
		    NULL)
			l->status = DNS_TEMPFAIL;
		else
			l->count = ans->count;
	}
	if (--x->pending == 0)
		spf_wake();
}

/* A lookup that gave nothing: RFC 7208 4.6.4 allows two. */
#define SPF_X_VOID(x) do {						\
	if (++(x)->voids > SPF_VOID_MAX) {				\
		spf_x_fail((x), DNS_PERMFAIL,				\
		    "SPF void lookup limit (%d) exceeded", SPF_VOID_MAX); \
		return;							\
	}								\
} while (0)

/* The TXT of the domain of a new frame is in. */
static void
spf_x_record(struct spf_expansion *x)
{
	struct spf_lookup	*l = &x->lookups[0];
	struct spf_frame	*f;
	const char		*record = NULL;
	size_t			 i, found = 0;

	x->wait = SPF_X_NONE;
	if (l->status == DNS_TEMPFAIL) {
		spf_x_fail(x, DNS_TEMPFAIL, "TXT lookup for %s failed",
		    x->wait_domain);
		return;
	}
	for (i = 0; i < l->count; i++)
		if (strncasecmp(l->records[i], "v=spf1", 6) == 0 &&
		    (l->records[i][6] == '\0' || l->records[i][6] == ' ')) {
			record = l->records[i];
			found++;
		}
	if (found == 0) {
		if (l->status != DNS_OK || l->count == 0)
			SPF_X_VOID(x);
		spf_x_fail(x, DNS_PERMFAIL, "%s %s", x->wait_domain,
		    l->nxdomain ? "does not exist" : "has no SPF record");
		return;
	}
	if (found > 1) {
		spf_x_fail(x, DNS_PERMFAIL, "%s has %zu SPF records",
		    x->wait_domain, found);
		return;
	}
	if (x->depth >= (int)(sizeof(x->frames) / sizeof(x->frames[0]))) {
		spf_x_fail(x, DNS_PERMFAIL, "SPF includes nested too deep");
		return;
	}
	f = &x->frames[x->depth];
	memset(f, 0, sizeof(*f));
	(void)strlcpy(f->domain, x->wait_domain, sizeof(f->domain));
	x->depth++;
	if (spf_x_parse(f, record) == -1)
		spf_x_fail(x, DNS_PERMFAIL, "bad SPF record at %s",
		    x->wait_domain);
	spf_x_lookups_clear(x);
}

/* The addresses of an a term, or of an mx term's hosts, are in. */
static void
spf_x_addrs(struct spf_expansion *x)
{
	struct spf_lookup	*l;
	const struct spf_term	*t = &x->wait_term;
	size_t			 i, j, found = 0;
	int			 v6;

	x->wait = SPF_X_NONE;
	for (i = 0; i < x->nlookups; i++) {
		l = &x->lookups[i];
		if (l->status == DNS_TEMPFAIL) {
			spf_x_fail(x, DNS_TEMPFAIL, "address lookup for "
			    "%s failed", x->wait_domain);
			return;
		}
		v6 = l->type == ns_t_aaaa;
		for (j = 0; j < l->count; j++, found++)
			if (spf_x_net(x, v6 ? AF_INET6 : AF_INET,
			    l->records[j], v6 ? t->cidr6 : t->cidr4) == -1)
				return;
	}
	spf_x_lookups_clear(x);
	if (found == 0 && t->kind == SPF_TERM_A)
		SPF_X_VOID(x);
}

/* An mx term's MX set is in: now its hosts' addresses. */
static void
spf_x_mx(struct spf_expansion *x)
{
	struct spf_lookup	*l = &x->lookups[0];
	char			**records, *host;
	size_t			 i, n;

	x->wait = SPF_X_NONE;
	if (l->status == DNS_TEMPFAIL) {
		spf_x_fail(x, DNS_TEMPFAIL, "MX lookup for %s failed",
		    x->wait_domain);
		return;
	}
	if (l->count == 0) {
		spf_x_lookups_clear(x);
		SPF_X_VOID(x);
		return;
	}
	if (l->count > SPF_MX_MAX) {
		spf_x_fail(x, DNS_PERMFAIL, "%s has more than %d MX hosts",
		    x->wait_domain, SPF_MX_MAX);
		return;
	}
	/* The lookups are reused for the hosts: keep the set. */
	records = l->records;
	n = l->count;
	l->records = NULL;
	l->count = 0;
	spf_x_lookups_clear(x);
	x->wait = SPF_X_MX_ADDRS;
	for (i = 0; i < n && x->status == -1; i++) {
		if ((host = strchr(records[i], ' ')) == NULL ||
		    strcmp(++host, ".") == 0)
			continue;
		if (spf_x_ask(x, host, ns_t_a) == 0)
			(void)spf_x_ask(x, host, ns_t_aaaa);
	}
	spf_strings_free(records, n);
}

/*
 * A record's terms, strictly (RFC 7208 4.6.1, 5, 6): "v=spf1" first,
 * known mechanisms with an optional qualifier, name=value modifiers of
 * which redirect and exp at most once.
 */
static int
spf_x_parse(struct spf_frame *f, const char *record)
{
	struct spf_term	*t;
	char		*s, *word, *colon, *eq, *name;
	int		 have_exp = 0;

	if ((f->text = strdup(record)) == NULL ||
	    (f->terms = calloc(SPF_TERMS_MAX, sizeof(*f->terms))) == NULL)
		return (-1);
	s = f->text;
	word = strsep(&s, " ");
	if (word == NULL || strcasecmp(word, "v=spf1") != 0)
		return (-1);
	while ((word = strsep(&s, " ")) != NULL) {
		if (*word == '\0')
			continue;
		eq = word + strspn(word, "abcdefghijklmnopqrstuvwxyz"
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.");
		if (*eq == '=') {
			/* A modifier: name=value. */
			*eq = '\0';
			if (!isalpha((unsigned char)word[0]))
				return (-1);
			if (strcasecmp(word, "redirect") == 0) {
				if (f->redirect != NULL || eq[1] == '\0')
					return (-1);
				f->redirect = eq + 1;
			} else if (strcasecmp(word, "exp") == 0) {
				if (have_exp++ || eq[1] == '\0')
					return (-1);
			}
			continue;
		}
		if (f->nterms >= SPF_TERMS_MAX)
			return (-1);
		t = &f->terms[f->nterms];
		t->qualifier = '+';
		t->cidr4 = t->cidr6 = -1;
		if (strchr("+-~?", word[0]) != NULL) {
			t->qualifier = word[0];
			word++;
		}
		name = word;
		if ((colon = strchr(word, ':')) != NULL) {
			*colon = '\0';
			t->arg = colon + 1;
			if (*t->arg == '\0')
				return (-1);
		}
		if (strcasecmp(name, "all") == 0 && t->arg == NULL) {
			t->kind = SPF_TERM_ALL;
			f->has_all = 1;
		} else if (strcasecmp(name, "include") == 0 && t->arg != NULL)
			t->kind = SPF_TERM_INCLUDE;
		else if (strcasecmp(name, "exists") == 0 && t->arg != NULL)
			t->kind = SPF_TERM_EXISTS;
		else if (strcasecmp(name, "ptr") == 0)
			t->kind = SPF_TERM_PTR;
		else if (strcasecmp(name, "ip4") == 0 && t->arg != NULL) {
			t->kind = SPF_TERM_IP4;
			if (spf_x_cidr((char *)(uintptr_t)t->arg, &t->cidr4,
			    NULL) == -1)
				return (-1);
		} else if (strcasecmp(name, "ip6") == 0 && t->arg != NULL) {
			t->kind = SPF_TERM_IP6;
			if (spf_x_cidr((char *)(uintptr_t)t->arg, &t->cidr6,
			    NULL) == -1)
				return (-1);
		} else if ((strcasecmp(name, "a") == 0 ||
		    strncasecmp(name, "a/", 2) == 0) ||
		    (strcasecmp(name, "mx") == 0 ||
		    strncasecmp(name, "mx/", 3) == 0)) {
			t->kind = tolower((unsigned char)name[0]) == 'a' ?
			    SPF_TERM_A : SPF_TERM_MX;
			if (spf_x_cidr(t->arg != NULL ?
			    (char *)(uintptr_t)t->arg : name, &t->cidr4,
			    &t->cidr6) == -1)
				return (-1);
		} else
			return (-1);
		f->nterms++;
	}
	return (0);
}

/*
 * Cut "/cidr4" (ip4, ip6: "/cidr") and "//cidr6" off the end of s.
 * cidr6 NULL: s is an ip4 or ip6 address with one optional length.
 */
static int
spf_x_cidr(char *s, int *cidr4, int *cidr6)
{
	char		*slash;
	const char	*errstr;

	if (cidr6 == NULL) {
		if ((slash = strchr(s, '/')) == NULL)
			return (0);
		*slash = '\0';
		*cidr4 = strtonum(slash + 1, 0, 128, &errstr);
		return (errstr == NULL ? 0 : -1);
	}
	if ((slash = strstr(s, "//")) != NULL) {
		*slash = '\0';
		*cidr6 = strtonum(slash + 2, 0, 128, &errstr);
		if (errstr != NULL)
			return (-1);
	}
	if ((slash = strchr(s, '/')) != NULL) {
		*slash = '\0';
		*cidr4 = strtonum(slash + 1, 0, 32, &errstr);
		if (errstr != NULL)
			return (-1);
	}
	return (0);
}

/* Add addr/len, masked; len -1 is the whole address. */
static int
spf_x_net(struct spf_expansion *x, int af, const char *addr, int len)
{
	unsigned char	 a[16];
	char		 buf[INET6_ADDRSTRLEN], net[INET6_ADDRSTRLEN + 8];
	int		 bits = af == AF_INET ? 32 : 128, i, rc;
	char		**nets;

	if (inet_pton(af, addr, a) != 1) {
		spf_x_fail(x, DNS_PERMFAIL, "bad address %s", addr);
		return (-1);
	}
	if (len < 0)
		len = bits;
	if (len > bits) {
		spf_x_fail(x, DNS_PERMFAIL, "bad prefix length /%d", len);
		return (-1);
	}
	for (i = 0; i < bits / 8; i++) {
		if (i * 8 >= len)
			a[i] = 0;
		else if (i * 8 + 8 > len)
			a[i] &= 0xff << (8 - (len - i * 8));
	}
	if (inet_ntop(af, a, buf, sizeof(buf)) == NULL)
		return (-1);
	rc = snprintf(net, sizeof(net), "%s/%d", buf, len);
	if (rc < 0 || (size_t)rc >= sizeof(net))
		return (-1);
	if (x->nnets >= SPF_NETS_MAX) {
		spf_x_fail(x, DNS_PERMFAIL, "more than %d networks",
		    SPF_NETS_MAX);
		return (-1);
	}
	if ((x->nnets % 64) == 0) {
		if ((nets = reallocarray(x->nets, x->nnets + 64,
		    sizeof(*nets))) == NULL) {
			spf_x_fail(x, DNS_TEMPFAIL, "out of memory");
			return (-1);
		}
		x->nets = nets;
	}
	if ((x->nets[x->nnets] = strdup(net)) == NULL) {
		spf_x_fail(x, DNS_TEMPFAIL, "out of memory");
		return (-1);
	}
	x->nnets++;
	return (0);
}

/* Finished, with what it found so far. */
static void
spf_x_fail(struct spf_expansion *x, int status, const char *fmt, ...)
{
	va_list	 ap;

	if (x->status != -1)
		return;
	x->status = status;
	va_start(ap, fmt);
	(void)vsnprintf(x->reason, sizeof(x->reason), fmt, ap);
	va_end(ap);
	spf_x_lookups_clear(x);
	x->wait = SPF_X_NONE;
}

/* Cancel what is out, forget what came back. */
static void
spf_x_lookups_clear(struct spf_expansion *x)
{
	struct spf_lookup	*l;
	size_t			 i;

	for (i = 0; i < x->nlookups; i++) {
		l = &x->lookups[i];
		if (l->out)
			dns_cancel(l);
		spf_strings_free(l->records, l->count);
		memset(l, 0, sizeof(*l));
	}
	x->nlookups = 0;
	x->pending = 0;
}

static void
spf_x_free(struct spf_expansion *x)
{
	int	 i;

	spf_x_lookups_clear(x);
	for (i = 0; i < x->depth; i++) {
		free(x->frames[i].text);
		free(x->frames[i].terms);
	}
	spf_strings_free(x->nets, x->nnets);
	njobs--;
	free(x);
}

/* IPv4 before IPv6, then by address and length; duplicates adjacent. */
static int
spf_net_cmp(const void *a, const void *b)
{
	const char	*s = *(const char *const *)a, *t = *(const char *const *)b;
	unsigned char	 x[17], y[17];
	char		 buf[INET6_ADDRSTRLEN + 8], *slash;
	const char	*errstr;
	int		 i, lx = 0, ly = 0;

	for (i = 0; i < 2; i++) {
		unsigned char	*p = i == 0 ? x : y;
		int		*l = i == 0 ? &lx : &ly;

		memset(p, 0, 17);
		(void)strlcpy(buf, i == 0 ? s : t, sizeof(buf));
		if ((slash = strchr(buf, '/')) != NULL) {
			*slash = '\0';
			*l = strtonum(slash + 1, 0, 128, &errstr);
		}
		if (inet_pton(AF_INET, buf, p + 1) == 1)
			p[0] = 4;
		else if (inet_pton(AF_INET6, buf, p + 1) == 1)
			p[0] = 6;
	}
	if ((i = memcmp(x, y, sizeof(x))) != 0)
		return (i);
	return (lx - ly);
}
