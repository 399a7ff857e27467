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
 * What grey learns of a client from DNS: its DNSBL answers, cached for
 * their TTL and weighed into a score; its reverse DNS, forward-confirmed
 * and cached; and, at DATA, the facts smtp asks for on behalf of the
 * scanner (the sender's SPF verdict, the DNSBL hits, the reverse DNS).
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>

#include <errno.h>
#include <event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "smarthostd.h"
#include "grey.h"

#define GREY_DNSBL_CACHE_MAX	65536
#define GREY_DNSBL_TTL_MIN	60
#define GREY_DNSBL_TTL_MAX	86400
#define GREY_FACTS_WAIT		5	/* seconds for SPF and rDNS at DATA */
#define GREY_RDNS_CACHE_MAX	16384
#define GREY_RDNS_TTL		3600
#define GREY_RDNS_TTL_FAIL	60	/* after a temporary failure */

RB_HEAD(dnsbl_cache, dnsbl_cached);

struct grey_facts_req {
	TAILQ_ENTRY(grey_facts_req) entry;	/* all of them */
	TAILQ_ENTRY(grey_facts_req) waiting;	/* on an rdns entry */
	uint32_t		 session;
	struct grey_check	 check;
	struct grey_facts	 facts;
	int			 spf_pending;
	struct rdns_cached	*rdns;		/* waited on, or NULL */
	struct event		 timer;
};
TAILQ_HEAD(grey_facts_reqs, grey_facts_req);

static int	 dnsbl_hits(const struct sockaddr_storage *);
int		 dnsbl_cached_cmp(struct dnsbl_cached *, struct dnsbl_cached *);

static void	 grey_facts_spf(void *, enum spf_verdict, const char *);
static void	 grey_facts_timeout(int, short, void *);
static void	 grey_facts_done(struct grey_facts_req *);
static void	 rdns_ptr_answer(void *, const struct dns_answer *);
static void	 rdns_forward_answer(void *, const struct dns_answer *);
static void	 rdns_finish(struct rdns_cached *, enum rdns_status);

RB_PROTOTYPE(dnsbl_cache, dnsbl_cached, entry, dnsbl_cached_cmp);
RB_GENERATE(rdns_cache, rdns_cached, entry, rdns_cached_cmp);
RB_GENERATE(dnsbl_cache, dnsbl_cached, entry, dnsbl_cached_cmp);

struct rdns_cache		 rdns_cache = RB_INITIALIZER(&rdns_cache);
size_t				 dnsbl_cache_count;

static struct dnsbl_cache	 dnsbl_cache = RB_INITIALIZER(&dnsbl_cache);
static struct grey_facts_reqs	 facts_reqs =
				    TAILQ_HEAD_INITIALIZER(facts_reqs);
static size_t			 rdns_cache_count;

/*
 * DNSBL.  The query name is the address reversed (octets, or IPv6
 * nibbles) under the zone.
 */
int
dnsbl_name(const struct sockaddr_storage *ss, const char *zone, char *buf,
    size_t len)
{
	const unsigned char	*a;
	size_t			 n = 0;
	int			 i, r;

	if (ss->ss_family == AF_INET) {
		a = (const unsigned char *)
		    &((const struct sockaddr_in *)ss)->sin_addr;
		r = snprintf(buf, len, "%u.%u.%u.%u.%s", a[3], a[2], a[1],
		    a[0], zone);
		return (r < 0 || (size_t)r >= len ? -1 : 0);
	}
	if (ss->ss_family != AF_INET6)
		return (-1);
	a = ((const struct sockaddr_in6 *)ss)->sin6_addr.s6_addr;
	if (IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)a)) {
		r = snprintf(buf, len, "%u.%u.%u.%u.%s", a[15], a[14], a[13],
		    a[12], zone);
		return (r < 0 || (size_t)r >= len ? -1 : 0);
	}
	for (i = 15; i >= 0; i--) {
		r = snprintf(buf + n, len - n, "%x.%x.", a[i] & 0xf, a[i] >> 4);
		if (r < 0 || (size_t)r >= len - n)
			return (-1);
		n += r;
	}
	r = snprintf(buf + n, len - n, "%s", zone);
	return (r < 0 || (size_t)r >= len - n ? -1 : 0);
}

int
dnsbl_cached_cmp(struct dnsbl_cached *a, struct dnsbl_cached *b)
{
	return (strcmp(a->name, b->name));
}

struct dnsbl_cached *
dnsbl_cache_get(const char *name, time_t now)
{
	struct dnsbl_cached	 find, *c;

	(void)strlcpy(find.name, name, sizeof(find.name));
	if ((c = RB_FIND(dnsbl_cache, &dnsbl_cache, &find)) == NULL)
		return (NULL);
	if (c->expire <= now) {
		RB_REMOVE(dnsbl_cache, &dnsbl_cache, c);
		dnsbl_cache_count--;
		free(c);
		return (NULL);
	}
	return (c);
}

/* A full cache is emptied of what expired, or else of everything. */
void
dnsbl_cache_put(const char *name, int listed, uint32_t ttl)
{
	struct dnsbl_cached	*c, *next;
	time_t			 now = time(NULL);

	if (ttl < GREY_DNSBL_TTL_MIN)
		ttl = GREY_DNSBL_TTL_MIN;
	if (ttl > GREY_DNSBL_TTL_MAX)
		ttl = GREY_DNSBL_TTL_MAX;
	if ((c = dnsbl_cache_get(name, now)) == NULL) {
		if (dnsbl_cache_count >= GREY_DNSBL_CACHE_MAX) {
			RB_FOREACH_SAFE(c, dnsbl_cache, &dnsbl_cache, next) {
				if (c->expire > now && dnsbl_cache_count <
				    GREY_DNSBL_CACHE_MAX / 2)
					continue;
				RB_REMOVE(dnsbl_cache, &dnsbl_cache, c);
				dnsbl_cache_count--;
				free(c);
			}
		}
		if ((c = calloc(1, sizeof(*c))) == NULL)
			fatal("dnsbl cache");
		(void)strlcpy(c->name, name, sizeof(c->name));
		RB_INSERT(dnsbl_cache, &dnsbl_cache, c);
		dnsbl_cache_count++;
	}
	c->listed = listed;
	c->expire = now + ttl;
}

/* Lists answer 127.0.0.0/8; 127.255.255.0/24 are their error codes. */
int
dnsbl_listed_addr(const char *text)
{
	struct in_addr	 a;
	uint32_t	 h;

	if (inet_pton(AF_INET, text, &a) != 1)
		return (0);
	h = ntohl(a.s_addr);
	return ((h >> 24) == 127 && (h >> 8) != 0x7fffff);
}

/*
 * The client's DNSBL score from the cache: the weights of the zones
 * that list it; zones names those, comma-separated.
 */
int
dnsbl_score(const struct sockaddr_storage *ss, char *zones, size_t len)
{
	struct dnsbl		*z;
	struct dnsbl_cached	*c;
	char			 name[HOSTNAME_LEN];
	time_t			 now = time(NULL);
	int			 score = 0;

	if (zones != NULL)
		zones[0] = '\0';
	TAILQ_FOREACH(z, &env->dnsbls, entry) {
		if (dnsbl_name(ss, z->zone, name, sizeof(name)) == -1 ||
		    (c = dnsbl_cache_get(name, now)) == NULL || !c->listed)
			continue;
		score += z->weight;
		if (zones != NULL && z->weight > 0) {
			if (zones[0] != '\0')
				(void)strlcat(zones, ", ", len);
			(void)strlcat(zones, z->zone, len);
		}
	}
	return (score);
}

/* How many zones of positive weight list the client (from the cache). */
static int
dnsbl_hits(const struct sockaddr_storage *ss)
{
	struct dnsbl		*z;
	struct dnsbl_cached	*c;
	char			 name[HOSTNAME_LEN];
	time_t			 now = time(NULL);
	int			 hits = 0;

	TAILQ_FOREACH(z, &env->dnsbls, entry)
		if (z->weight > 0 && dnsbl_name(ss, z->zone, name,
		    sizeof(name)) == 0 &&
		    (c = dnsbl_cache_get(name, now)) != NULL && c->listed)
			hits++;
	return (hits);
}

/*
 * At DATA, for scoring and the Authentication-Results header: the
 * sender's SPF verdict, the client's DNSBL hits from the cache and its
 * reverse DNS.  The answer waits GREY_FACTS_WAIT at most and says what
 * it has then.
 */
void
grey_facts(uint32_t session, const struct grey_check *chk)
{
	struct grey_facts_req	*req;
	struct timeval		 tv = { GREY_FACTS_WAIT, 0 };
	const char		*domain;

	if ((req = calloc(1, sizeof(*req))) == NULL)
		fatal("grey_facts");
	req->session = session;
	req->check = *chk;
	req->facts.spf = SPF_VERDICT_NONE;
	req->facts.rdns = RDNS_UNKNOWN;
	domain = chk->sender[0] != '\0' ? mailaddr_domain(chk->sender) :
	    chk->helo;
	if (domain != NULL)
		(void)strlcpy(req->facts.spf_domain, domain,
		    sizeof(req->facts.spf_domain));
	req->facts.dnsbl_score = dnsbl_score(&chk->client,
	    req->facts.dnsbl_zones, sizeof(req->facts.dnsbl_zones));
	req->facts.dnsbl_hits = dnsbl_hits(&chk->client);
	TAILQ_INSERT_TAIL(&facts_reqs, req, entry);
	evtimer_set(&req->timer, grey_facts_timeout, req);
	evtimer_add(&req->timer, &tv);
	req->spf_pending = 1;
	if (spf_check(&chk->client, chk->helo, chk->sender, grey_facts_spf,
	    req) == -1) {
		req->spf_pending = 0;
		req->facts.spf = SPF_VERDICT_TEMPERROR;
	}
	(void)rdns_lookup(&chk->client, req);
	grey_facts_done(req);
}

static void
grey_facts_spf(void *arg, enum spf_verdict verdict, const char *reason)
{
	struct grey_facts_req	*req = arg;

	(void)reason;
	req->spf_pending = 0;
	req->facts.spf = verdict;
	grey_facts_done(req);
}

static void
grey_facts_timeout(int fd, short event, void *arg)
{
	struct grey_facts_req	*req = arg;

	(void)fd;
	(void)event;
	if (req->spf_pending) {
		spf_cancel(req);
		req->spf_pending = 0;
		req->facts.spf = SPF_VERDICT_TEMPERROR;
	}
	if (req->rdns != NULL) {
		TAILQ_REMOVE(&req->rdns->waiters, req, waiting);
		req->rdns = NULL;
	}
	grey_facts_done(req);
}

/* Answer once nothing is out any more. */
static void
grey_facts_done(struct grey_facts_req *req)
{
	if (req->spf_pending || req->rdns != NULL)
		return;
	evtimer_del(&req->timer);
	TAILQ_REMOVE(&facts_reqs, req, entry);
	grey_ctl_send(req->session, IMSG_GREY_FACTS_RESULT, &req->facts,
	    sizeof(req->facts));
	free(req);
}

int
rdns_cached_cmp(struct rdns_cached *a, struct rdns_cached *b)
{
	return (strcmp(a->addr, b->addr));
}

/*
 * The client's reverse DNS, from the cache or looked up now.  With a
 * request, its facts get the answer: at once when cached, else when
 * the lookup ends (the request then waits on the entry).
 */
struct rdns_cached *
rdns_lookup(const struct sockaddr_storage *ss, struct grey_facts_req *req)
{
	struct rdns_cached	 find, *c, *next;
	char			 name[HOSTNAME_LEN];
	time_t			 now = time(NULL);

	(void)addr_string(ss, find.addr, sizeof(find.addr));
	if ((c = RB_FIND(rdns_cache, &rdns_cache, &find)) != NULL &&
	    !c->pending && c->expire <= now) {
		RB_REMOVE(rdns_cache, &rdns_cache, c);
		rdns_cache_count--;
		free(c);
		c = NULL;
	}
	if (c == NULL) {
		if (rdns_cache_count >= GREY_RDNS_CACHE_MAX)
			RB_FOREACH_SAFE(c, rdns_cache, &rdns_cache, next)
				if (!c->pending && c->expire <= now) {
					RB_REMOVE(rdns_cache, &rdns_cache, c);
					rdns_cache_count--;
					free(c);
				}
		if (rdns_cache_count >= GREY_RDNS_CACHE_MAX ||
		    dnsbl_name(ss, ss->ss_family == AF_INET6 &&
		    !IN6_IS_ADDR_V4MAPPED(&((const struct sockaddr_in6 *)
		    ss)->sin6_addr) ? "ip6.arpa" : "in-addr.arpa", name,
		    sizeof(name)) == -1)
			return (NULL);
		if ((c = calloc(1, sizeof(*c))) == NULL)
			fatal("rdns");
		(void)strlcpy(c->addr, find.addr, sizeof(c->addr));
		c->client = *ss;
		c->pending = 1;
		TAILQ_INIT(&c->waiters);
		if (dns_query(name, ns_t_ptr, rdns_ptr_answer, c) == -1) {
			free(c);
			return (NULL);
		}
		RB_INSERT(rdns_cache, &rdns_cache, c);
		rdns_cache_count++;
	}
	if (req == NULL)
		return (c);
	if (c->pending) {
		req->rdns = c;
		TAILQ_INSERT_TAIL(&c->waiters, req, waiting);
	} else {
		req->facts.rdns = c->status;
		(void)strlcpy(req->facts.rdns_name, c->name,
		    sizeof(req->facts.rdns_name));
	}
	return (c);
}

static void
rdns_ptr_answer(void *arg, const struct dns_answer *ans)
{
	struct rdns_cached	*c = arg;
	int			 type;

	if (ans->status == DNS_TEMPFAIL) {
		rdns_finish(c, RDNS_UNKNOWN);
		return;
	}
	if (ans->status != DNS_OK || ans->count == 0) {
		rdns_finish(c, RDNS_NONE);
		return;
	}
	(void)strlcpy(c->name, ans->records[0], sizeof(c->name));
	type = c->client.ss_family == AF_INET6 &&
	    !IN6_IS_ADDR_V4MAPPED(&((struct sockaddr_in6 *)&c->client)->
	    sin6_addr) ? ns_t_aaaa : ns_t_a;
	errno = 0;
	/* A PTR name that is no host name cannot resolve back. */
	if (dns_query(c->name, type, rdns_forward_answer, c) == -1)
		rdns_finish(c, errno == EINVAL ? RDNS_MISMATCH : RDNS_UNKNOWN);
}

/* Forward-confirmed: the PTR name has the client's address. */
static void
rdns_forward_answer(void *arg, const struct dns_answer *ans)
{
	struct rdns_cached	*c = arg;
	struct sockaddr_storage	 ss;
	char			 text[INET6_ADDRSTRLEN];
	size_t			 i;

	if (ans->status == DNS_TEMPFAIL) {
		rdns_finish(c, RDNS_UNKNOWN);
		return;
	}
	for (i = 0; ans->status == DNS_OK && i < ans->count; i++) {
		if (grey_parse_addr(ans->records[i], &ss) == -1)
			continue;
		if (strcmp(addr_string(&ss, text, sizeof(text)),
		    c->addr) == 0) {
			rdns_finish(c, RDNS_OK);
			return;
		}
	}
	rdns_finish(c, RDNS_MISMATCH);
}

static void
rdns_finish(struct rdns_cached *c, enum rdns_status status)
{
	struct grey_facts_req	*req;

	c->pending = 0;
	c->status = status;
	c->expire = time(NULL) + (status == RDNS_UNKNOWN ?
	    GREY_RDNS_TTL_FAIL : GREY_RDNS_TTL);
	while ((req = TAILQ_FIRST(&c->waiters)) != NULL) {
		TAILQ_REMOVE(&c->waiters, req, waiting);
		req->rdns = NULL;
		req->facts.rdns = status;
		(void)strlcpy(req->facts.rdns_name, c->name,
		    sizeof(req->facts.rdns_name));
		grey_facts_done(req);
	}
}
