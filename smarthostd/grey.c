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
 * The grey process: what spamd, spamd-setup, spamlogd and spf_fetch did.
 *
 * smtp asks at connect whether a client is blocked (a blocklist file,
 * a spamtrap hit, the DNSBL score) and at RCPT whether a recipient of
 * an action marked greylist may pass.  grey.mdb (greydb.c) keeps the
 * tuples and white, trapped and learned entries; blocklists and the
 * spf-whitelist networks are address sets in memory, rebuilt when the
 * parent hands over a changed file or an expansion finishes.
 *
 * Nothing here blocks: DNS and SPF go through dns.c and spf.c, list
 * files are read a slice per loop turn, expiry and listings are paged.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <netinet/in.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>

#include <ctype.h>
#include <errno.h>
#include <event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "smarthostd.h"

#define GREY_DNSBL_WAIT		3	/* seconds for DNSBL answers */
#define GREY_SPF_WAIT		8	/* then the tuple keeps the address */
#define GREY_EXPIRE_TICK	2000	/* records expired a second, at most */
#define GREY_EXPIRE_EVENT	4	/* and per decision */
#define GREY_LOAD_LINES		20000	/* list file lines per loop turn */
#define GREY_WALK_PAGE		256	/* show greylist entries per turn */
#define GREY_BLOCK_PAGE		64	/* blocklist ranges per turn */
#define GREY_WALK_QUEUED_MAX	1024	/* messages waiting for control */
#define GREY_DNSBL_CACHE_MAX	65536
#define GREY_DNSBL_TTL_MIN	60
#define GREY_DNSBL_TTL_MAX	86400
#define GREY_DNSBL_TTL_NEG	300
#define GREY_SPF_RECENT		256	/* SPF results explain remembers */
#define GREY_SPF_RETRY		300	/* a failed expansion, again after */
#define GREY_PF_CHUNK		2048	/* fw_addr per imsg */
#define GREY_TRAP_MESSAGE	"Your address %A has mailed to spamtraps here"
#define GREY_DNSBL_ZONES_LEN	256
#define GREY_FACTS_WAIT		5	/* seconds for SPF and rDNS at DATA */
#define GREY_RDNS_CACHE_MAX	16384
#define GREY_RDNS_TTL		3600
#define GREY_RDNS_TTL_FAIL	60	/* after a temporary failure */

struct grey_list {
	TAILQ_ENTRY(grey_list)	 entry;
	char			 name[NAME_MAX_LEN];
	char			 path[PATH_MAX];
	char			 message[MESSAGE_LEN];
	int			 white;
	int			 seen;		/* in this configuration */
	struct addrset		*set;		/* NULL: never loaded */
	struct addrset_loader	*loader;	/* a new version coming in */
	time_t			 loaded;
	size_t			 bad_lines;
};
TAILQ_HEAD(grey_lists, grey_list);

/* One client's answer in one DNSBL zone, cached for its TTL. */
struct dnsbl_cached {
	RB_ENTRY(dnsbl_cached)	 entry;
	char			 name[HOSTNAME_LEN];	/* reversed.zone */
	int			 listed;
	time_t			 expire;
};
RB_HEAD(dnsbl_cache, dnsbl_cached);

struct grey_connect_req;

struct dnsbl_query {
	struct grey_connect_req	*req;
	char			 name[HOSTNAME_LEN];
	int			 done;
};

struct grey_connect_req {
	TAILQ_ENTRY(grey_connect_req) entry;
	uint32_t		 session;
	struct sockaddr_storage	 client;
	struct event		 timer;
	size_t			 nqueries;
	size_t			 pending;
	struct dnsbl_query	*queries;
};
TAILQ_HEAD(grey_connect_reqs, grey_connect_req);

struct grey_check_req {
	TAILQ_ENTRY(grey_check_req) entry;
	uint32_t		 session;
	struct grey_check	 check;
	char			 key[HOSTNAME_LEN];
	int			 canary;	/* SPF of a TEST-NET address */
	struct event		 timer;
};
TAILQ_HEAD(grey_check_reqs, grey_check_req);

/* An spf-whitelist domain and the networks it expanded to. */
struct spf_domain {
	TAILQ_ENTRY(spf_domain)	 entry;
	char			 name[HOSTNAME_LEN];
	char			*nets;		/* lines; NULL: none yet */
	size_t			 nets_len;
	time_t			 refreshed;
	time_t			 next;
	int			 pending;
	int			 seen;
	char			 status[MESSAGE_LEN];
};
TAILQ_HEAD(spf_domains, spf_domain);

struct grey_facts_req;

/*
 * A client's reverse DNS: its PTR name, and whether that name resolves
 * back to it.  Looked up at connect, cached an hour; facts requests
 * that come while it is out wait for it.
 */
struct rdns_cached {
	RB_ENTRY(rdns_cached)	 entry;
	char			 addr[INET6_ADDRSTRLEN];
	struct sockaddr_storage	 client;
	enum rdns_status	 status;
	char			 name[HOSTNAME_LEN];
	int			 pending;
	time_t			 expire;
	TAILQ_HEAD(, grey_facts_req) waiters;
};
RB_HEAD(rdns_cache, rdns_cached);

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

/* A recent SPF result, for explain. */
struct spf_recent {
	char			 client[INET6_ADDRSTRLEN];
	char			 domain[HOSTNAME_LEN];
	enum spf_verdict	 verdict;
	time_t			 when;
};

enum grey_walk_phase {
	WALK_DB,		/* grey.mdb */
	WALK_BLOCK,		/* the blocklists */
	WALK_SPF,		/* the spf-whitelist networks */
	WALK_DONE
};

struct grey_walk_req {
	TAILQ_ENTRY(grey_walk_req) entry;
	uint32_t		 client;
	enum grey_walk_phase	 phase;
	struct greydb_walk	 walk;
	struct grey_list	*list;		/* BLOCK: the list walked */
	size_t			 pos;
	char			 domain[HOSTNAME_LEN];	/* SPF: done to here */
};
TAILQ_HEAD(grey_walk_reqs, grey_walk_req);

struct grey_stats {
	uint64_t		 connects;
	uint64_t		 blocked;
	uint64_t		 trapped_connects;
	uint64_t		 checks;
	uint64_t		 passed;
	uint64_t		 greylisted;
	uint64_t		 tempfail;
	uint64_t		 trapped;
};

static void	 grey_dispatch_parent(struct imsgev *, struct imsg *);
static void	 grey_dispatch_peer(struct imsgev *, struct imsg *);
static void	 grey_config_commit(struct smarthost_config *);
static void	 grey_shutdown(void);
static void	 grey_open(void);
static void	 grey_tick(int, short, void *);

static void	 grey_not_ready(struct imsgev *, struct imsg *);
static void	 grey_connect(uint32_t, const struct grey_connect *);
static int	 grey_blocked(const struct sockaddr_storage *,
		    struct grey_connect_result *);
static void	 grey_connect_answer(struct grey_connect_req *);
static void	 grey_connect_timeout(int, short, void *);
static void	 grey_connect_free(struct grey_connect_req *);
static void	 grey_message(const char *, const char *, char *, size_t);

static int	 dnsbl_name(const struct sockaddr_storage *, const char *,
		    char *, size_t);
static struct dnsbl_cached *dnsbl_cache_get(const char *, time_t);
static void	 dnsbl_cache_put(const char *, int, uint32_t);
static void	 dnsbl_answer(void *, const struct dns_answer *);
static int	 dnsbl_listed_addr(const char *);
static int	 dnsbl_score(const struct sockaddr_storage *, char *, size_t);
static int	 dnsbl_hits(const struct sockaddr_storage *);
int		 dnsbl_cached_cmp(struct dnsbl_cached *, struct dnsbl_cached *);

static void	 grey_check(uint32_t, const struct grey_check *);
static void	 grey_check_trap(uint32_t, const struct grey_check *,
		    const char *, time_t);
static void	 grey_check_spf(void *, enum spf_verdict, const char *);
static const struct sockaddr_storage *grey_spf_canary(
		    const struct sockaddr_storage *);
static void	 grey_check_timeout(int, short, void *);
static void	 grey_check_decide(struct grey_check_req *, const char *);
static void	 grey_check_answer(uint32_t, enum grey_verdict, const char *,
		    const char *);
static int	 grey_is_spamtrap(const char *);
static int	 grey_whitelisted(const struct sockaddr_storage *);
static void	 grey_spf_remember(const char *, const char *,
		    enum spf_verdict);

static void	 grey_lists_config(void);
static struct grey_list *grey_list_find(const char *);
static void	 grey_list_file(struct imsg *);
static void	 grey_list_step(int, short, void *);
static void	 grey_whitelist_build(void);

static void	 spf_white_config(void);
static void	 spf_white_start(struct spf_domain *);
static void	 spf_white_done(void *, int, const char *const *, size_t,
		    const char *);
static void	 spf_white_rebuild(void);
static void	 grey_pf_send(enum firewall_table, const struct addrset *);
static void	 grey_pf_addr(const struct fw_addr *, void *);

static void	 grey_facts(uint32_t, const struct grey_check *);
static void	 grey_facts_spf(void *, enum spf_verdict, const char *);
static void	 grey_facts_timeout(int, short, void *);
static void	 grey_facts_done(struct grey_facts_req *);
static struct rdns_cached *rdns_lookup(const struct sockaddr_storage *,
		    struct grey_facts_req *);
static void	 rdns_ptr_answer(void *, const struct dns_answer *);
static void	 rdns_forward_answer(void *, const struct dns_answer *);
static void	 rdns_finish(struct rdns_cached *, enum rdns_status);
int		 rdns_cached_cmp(struct rdns_cached *, struct rdns_cached *);
static void	 grey_learn(struct imsg *);
static void	 grey_dispatch_control(struct imsg *);
static void	 grey_ctl_send(uint32_t, uint32_t, const void *, size_t);
static void	 grey_ctl_result(uint32_t, int, const char *, ...)
		    __attribute__((__format__(printf, 3, 4)));
static void	 grey_ctl_text(uint32_t, const char *, ...)
		    __attribute__((__format__(printf, 2, 3)));
static void	 grey_walk_start(uint32_t, enum grey_list_kind);
static void	 grey_walk_run(int, short, void *);
static int	 grey_walk_block(struct grey_walk_req *);
static int	 grey_walk_spf(struct grey_walk_req *);
static void	 grey_walk_entry(const struct ctl_grey_entry *, void *);
static void	 grey_walk_block_entry(const struct fw_addr *, void *);
static void	 grey_white(uint32_t, const char *);
static void	 grey_delete(uint32_t, const char *);
static void	 grey_trap_set(uint32_t, const char *, int);
static void	 grey_tables(uint32_t);
static void	 grey_stat(uint32_t, const char *, uint64_t);
static void	 grey_stats(uint32_t);
static void	 grey_table_info(uint32_t, const char *, const char *,
		    const char *, uint64_t, time_t);
static void	 grey_explain(uint32_t, const char *);
static void	 grey_explain_entry(const struct ctl_grey_entry *, void *);
static int	 grey_parse_addr(const char *, struct sockaddr_storage *);
static const char *grey_time(int64_t, char *, size_t);

RB_PROTOTYPE(dnsbl_cache, dnsbl_cached, entry, dnsbl_cached_cmp);
RB_PROTOTYPE(rdns_cache, rdns_cached, entry, rdns_cached_cmp);
RB_GENERATE(rdns_cache, rdns_cached, entry, rdns_cached_cmp);
RB_GENERATE(dnsbl_cache, dnsbl_cached, entry, dnsbl_cached_cmp);

static const struct proc_handlers grey_handlers = {
	.parent =		grey_dispatch_parent,
	.peer =			grey_dispatch_peer,
	.config_commit =	grey_config_commit,
	.shutdown =		grey_shutdown
};

static int			 grey_opened;
static char			 grey_dir[PATH_MAX];
static struct event		 ev_tick, ev_load, ev_walk;
static struct grey_lists	 lists = TAILQ_HEAD_INITIALIZER(lists);
static struct addrset		*whitelist_set;
static struct spf_domains	 spf_domains =
				    TAILQ_HEAD_INITIALIZER(spf_domains);
static struct addrset		*spf_white;
static time_t			 spf_white_built;
static int			 spf_white_dirty;
static struct dnsbl_cache	 dnsbl_cache = RB_INITIALIZER(&dnsbl_cache);
static size_t			 dnsbl_cache_count;
static struct grey_connect_reqs	 connect_reqs =
				    TAILQ_HEAD_INITIALIZER(connect_reqs);
static struct grey_check_reqs	 check_reqs =
				    TAILQ_HEAD_INITIALIZER(check_reqs);
static struct grey_walk_reqs	 walks = TAILQ_HEAD_INITIALIZER(walks);
static struct grey_facts_reqs	 facts_reqs =
				    TAILQ_HEAD_INITIALIZER(facts_reqs);
static struct rdns_cache	 rdns_cache = RB_INITIALIZER(&rdns_cache);
static size_t			 rdns_cache_count;
static struct spf_recent	 spf_recent[GREY_SPF_RECENT];
static size_t			 spf_recent_next;
static struct grey_stats	 stats;
static struct fw_addr		 pf_chunk[GREY_PF_CHUNK];
static size_t			 pf_chunk_len;
static time_t			 config_loaded;

void
grey_main(void)
{
	if (pledge("stdio rpath wpath cpath flock recvfd inet dns",
	    NULL) == -1)
		fatal("pledge");
	proc_child_run(&grey_handlers);
}

/*
 * Configuration.  grey.mdb opens with the first configuration, which
 * names the state directory (we are chrooted into it, or see it by its
 * path when not started as root: queue.c does the same).
 */
static void
grey_config_commit(struct smarthost_config *old)
{
	(void)old;
	if (!grey_opened)
		grey_open();
	dns_init(env->resolver, env->resolver_port);
	config_loaded = time(NULL);
	grey_whitelist_build();
	grey_lists_config();
	spf_white_config();
}

static void
grey_open(void)
{
	struct stat	 sb;
	struct timeval	 tv = { 1, 0 };

	if (stat(env->state_dir, &sb) == 0 && S_ISDIR(sb.st_mode))
		(void)strlcpy(grey_dir, env->state_dir, sizeof(grey_dir));
	else
		(void)strlcpy(grey_dir, "/", sizeof(grey_dir));
	if (greydb_open(grey_dir, env->greylist.map_size) == -1)
		fatalx("cannot open grey.mdb");
	dns_init(env->resolver, env->resolver_port);
	spf_init();
	evtimer_set(&ev_tick, grey_tick, NULL);
	evtimer_set(&ev_load, grey_list_step, NULL);
	evtimer_set(&ev_walk, grey_walk_run, NULL);
	evtimer_add(&ev_tick, &tv);
	grey_opened = 1;
	log_debug("grey.mdb: %llu tuples, %llu white, %llu trapped",
	    (unsigned long long)greydb_count("grey"),
	    (unsigned long long)greydb_count("white"),
	    (unsigned long long)greydb_count("trap"));
}

static void
grey_shutdown(void)
{
	if (grey_opened)
		greydb_close();
}

/*
 * Once a second: expire what is due (a bounded number), start the
 * spf-whitelist expansions that are due, rebuild the spf-white set if
 * expansions finished, and commit.
 */
static void
grey_tick(int fd, short event, void *arg)
{
	struct timeval		 tv = { 1, 0 };
	struct spf_domain	*d;
	time_t			 now = time(NULL);

	(void)fd;
	(void)event;
	(void)arg;
	(void)greydb_expire(now, GREY_EXPIRE_TICK);
	TAILQ_FOREACH(d, &spf_domains, entry)
		if (!d->pending && d->next <= now)
			spf_white_start(d);
	if (spf_white_dirty)
		spf_white_rebuild();
	(void)greydb_commit();
	evtimer_add(&ev_tick, &tv);
}

static void
grey_dispatch_parent(struct imsgev *iev, struct imsg *imsg)
{
	char	*name;

	(void)iev;
	switch (imsg_get_type(imsg)) {
	case IMSG_GREY_LIST_FILE:
		grey_list_file(imsg);
		break;
	case IMSG_GREY_LIST_MISSING:
		name = imsg_expect_string(imsg);
		log_debug("list %s: no file; keeping what it had", name);
		free(name);
		break;
	case IMSG_CTL_UPDATE_TABLE:
		name = imsg_expect_string(imsg);
		if (grey_opened && (strcmp(name, "spf-white") == 0 ||
		    strcmp(name, env->greylist.spf_whitelist) == 0)) {
			struct spf_domain	*d;

			TAILQ_FOREACH(d, &spf_domains, entry)
				d->next = 0;
		}
		free(name);
		break;
	default:
		fatalx("unexpected imsg %u from the parent",
		    imsg_get_type(imsg));
	}
}

static void
grey_dispatch_peer(struct imsgev *iev, struct imsg *imsg)
{
	struct grey_connect	 gc;
	struct grey_check	 chk;

	if (!grey_opened) {
		grey_not_ready(iev, imsg);
		return;
	}
	switch (iev->peer) {
	case PROC_SMTP:
		switch (imsg_get_type(imsg)) {
		case IMSG_GREY_CONNECT:
			imsg_expect_size(imsg, sizeof(gc));
			(void)imsg_get_data(imsg, &gc, sizeof(gc));
			grey_connect(imsg_get_id(imsg), &gc);
			break;
		case IMSG_GREY_CHECK:
		case IMSG_GREY_FACTS:
			imsg_expect_size(imsg, sizeof(chk));
			(void)imsg_get_data(imsg, &chk, sizeof(chk));
			if (memchr(chk.helo, '\0', sizeof(chk.helo)) == NULL ||
			    memchr(chk.sender, '\0', sizeof(chk.sender)) ==
			    NULL || memchr(chk.rcpt, '\0', sizeof(chk.rcpt)) ==
			    NULL)
				fatalx("smtp sent a malformed check");
			if (imsg_get_type(imsg) == IMSG_GREY_CHECK)
				grey_check(imsg_get_id(imsg), &chk);
			else
				grey_facts(imsg_get_id(imsg), &chk);
			break;
		default:
			fatalx("unexpected imsg %u from smtp",
			    imsg_get_type(imsg));
		}
		break;
	case PROC_QUEUE:
		if (imsg_get_type(imsg) != IMSG_GREY_LEARN)
			fatalx("unexpected imsg %u from queue",
			    imsg_get_type(imsg));
		grey_learn(imsg);
		break;
	case PROC_CONTROL:
		grey_dispatch_control(imsg);
		break;
	default:
		fatalx("unexpected imsg %u from %s", imsg_get_type(imsg),
		    proc_name(iev->peer));
	}
}

/*
 * smtp may take a connection before the first configuration reached
 * us: the client is served as one we know nothing about, its RCPT gets
 * a 451, and control and queue are told nothing yet.
 */
static void
grey_not_ready(struct imsgev *iev, struct imsg *imsg)
{
	struct grey_connect_result	 res;

	memset(&res, 0, sizeof(res));
	if (iev->peer == PROC_SMTP &&
	    imsg_get_type(imsg) == IMSG_GREY_CONNECT)
		grey_ctl_send(imsg_get_id(imsg), IMSG_GREY_CONNECT_RESULT,
		    &res, sizeof(res));
	else if (iev->peer == PROC_SMTP &&
	    imsg_get_type(imsg) == IMSG_GREY_CHECK)
		grey_check_answer(imsg_get_id(imsg), GREY_TEMPFAIL,
		    "not configured yet", NULL);
	else if (iev->peer == PROC_SMTP &&
	    imsg_get_type(imsg) == IMSG_GREY_FACTS) {
		struct grey_facts	 facts;

		memset(&facts, 0, sizeof(facts));
		facts.spf = SPF_VERDICT_NONE;
		grey_ctl_send(imsg_get_id(imsg), IMSG_GREY_FACTS_RESULT,
		    &facts, sizeof(facts));
	}
	else if (iev->peer == PROC_CONTROL &&
	    imsg_get_type(imsg) == IMSG_CTL_SHOW_STATS)
		grey_ctl_send(imsg_get_id(imsg), IMSG_CTL_END, NULL, 0);
	else if (iev->peer == PROC_CONTROL)
		grey_ctl_result(imsg_get_id(imsg), 0, "grey is starting");
	else
		log_debug("imsg %u from %s before the configuration",
		    imsg_get_type(imsg), proc_name(iev->peer));
}

/*
 * At connect: a whitelisted client is nothing to us; a trapped or
 * blocklisted one is tarpitted; otherwise the DNSBL zones decide, and
 * the answer waits for them (GREY_DNSBL_WAIT at most).
 */
static void
grey_connect(uint32_t session, const struct grey_connect *gc)
{
	struct grey_connect_result	 res;
	struct grey_connect_req		*req;
	struct dnsbl			*z;
	struct dnsbl_query		*q;
	struct timeval			 tv = { GREY_DNSBL_WAIT, 0 };
	time_t				 now = time(NULL);
	size_t				 n = 0;

	stats.connects++;
	if (env->scan.enabled)
		(void)rdns_lookup(&gc->client, NULL);	/* for scoring */
	memset(&res, 0, sizeof(res));
	if (grey_whitelisted(&gc->client) || grey_blocked(&gc->client, &res) ||
	    TAILQ_EMPTY(&env->dnsbls)) {
		grey_ctl_send(session, IMSG_GREY_CONNECT_RESULT, &res,
		    sizeof(res));
		return;
	}
	if ((req = calloc(1, sizeof(*req))) == NULL)
		fatal("grey_connect");
	req->session = session;
	req->client = gc->client;
	TAILQ_FOREACH(z, &env->dnsbls, entry)
		n++;
	if ((req->queries = calloc(n, sizeof(*req->queries))) == NULL)
		fatal("grey_connect");
	TAILQ_FOREACH(z, &env->dnsbls, entry) {
		q = &req->queries[req->nqueries++];
		q->req = req;
		q->done = 1;
		if (dnsbl_name(&gc->client, z->zone, q->name,
		    sizeof(q->name)) == -1 ||
		    dnsbl_cache_get(q->name, now) != NULL)
			continue;
		if (dns_query(q->name, ns_t_a, dnsbl_answer, q) == 0) {
			q->done = 0;
			req->pending++;
		}
	}
	TAILQ_INSERT_TAIL(&connect_reqs, req, entry);
	if (req->pending == 0) {
		grey_connect_answer(req);
		return;
	}
	evtimer_set(&req->timer, grey_connect_timeout, req);
	evtimer_add(&req->timer, &tv);
}

/* The white list table: never greylisted, blocked or tarpitted. */
static int
grey_whitelisted(const struct sockaddr_storage *ss)
{
	return (whitelist_set != NULL && addrset_contains(whitelist_set, ss));
}

/*
 * Trapped, or on a blocklist that no whitelist file takes it off?
 * Fills res and returns 1.
 */
static int
grey_blocked(const struct sockaddr_storage *ss,
    struct grey_connect_result *res)
{
	struct grey_list	*l, *w;
	char			 key[HOSTNAME_LEN], addr[INET6_ADDRSTRLEN];

	(void)addr_string(ss, addr, sizeof(addr));
	if (addr_client_key(ss, env->greylist.ipv6_prefix, key,
	    sizeof(key)) == 0 && greydb_trapped(key, time(NULL), NULL)) {
		res->client = GREY_CLIENT_TRAPPED;
		(void)strlcpy(res->list, "trap", sizeof(res->list));
		grey_message(GREY_TRAP_MESSAGE, addr, res->message,
		    sizeof(res->message));
		stats.trapped_connects++;
		return (1);
	}
	TAILQ_FOREACH(l, &lists, entry) {
		if (l->white || l->set == NULL || !addrset_contains(l->set, ss))
			continue;
		TAILQ_FOREACH(w, &lists, entry)
			if (w->white && w->set != NULL &&
			    addrset_contains(w->set, ss))
				return (0);
		res->client = GREY_CLIENT_BLOCKED;
		(void)strlcpy(res->list, l->name, sizeof(res->list));
		grey_message(l->message, addr, res->message,
		    sizeof(res->message));
		stats.blocked++;
		return (1);
	}
	return (0);
}

static void
grey_connect_answer(struct grey_connect_req *req)
{
	struct grey_connect_result	 res;
	char				 zones[GREY_DNSBL_ZONES_LEN], addr[64];
	char				 msg[MESSAGE_LEN];
	size_t				 i;

	memset(&res, 0, sizeof(res));
	if (dnsbl_score(&req->client, zones, sizeof(zones)) >=
	    env->dnsbl_threshold) {
		res.client = GREY_CLIENT_BLOCKED;
		(void)strlcpy(res.list, "dnsbl", sizeof(res.list));
		(void)snprintf(msg, sizeof(msg), "Your address %%A is listed "
		    "in %s", zones);
		grey_message(msg, addr_string(&req->client, addr,
		    sizeof(addr)), res.message, sizeof(res.message));
		stats.blocked++;
	}
	grey_ctl_send(req->session, IMSG_GREY_CONNECT_RESULT, &res,
	    sizeof(res));
	for (i = 0; i < req->nqueries; i++)
		if (!req->queries[i].done)
			dns_cancel(&req->queries[i]);
	grey_connect_free(req);
}

static void
grey_connect_timeout(int fd, short event, void *arg)
{
	(void)fd;
	(void)event;
	grey_connect_answer(arg);
}

static void
grey_connect_free(struct grey_connect_req *req)
{
	if (evtimer_initialized(&req->timer))
		evtimer_del(&req->timer);
	TAILQ_REMOVE(&connect_reqs, req, entry);
	free(req->queries);
	free(req);
}

/* A blocklist message with %A made the client's address, %% a %. */
static void
grey_message(const char *fmt, const char *addr, char *buf, size_t len)
{
	size_t	 n = 0;

	for (; *fmt != '\0' && n + 1 < len; fmt++) {
		if (fmt[0] == '%' && fmt[1] == 'A') {
			n += strlcpy(buf + n, addr, len - n);
			if (n >= len)
				n = len - 1;
			fmt++;
		} else if (fmt[0] == '%' && fmt[1] == '%') {
			buf[n++] = '%';
			fmt++;
		} else
			buf[n++] = *fmt;
	}
	buf[n] = '\0';
}

/*
 * DNSBL.  The query name is the address reversed (octets, or IPv6
 * nibbles) under the zone.
 */
static int
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

static struct dnsbl_cached *
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
static void
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
static int
dnsbl_listed_addr(const char *text)
{
	struct in_addr	 a;
	uint32_t	 h;

	if (inet_pton(AF_INET, text, &a) != 1)
		return (0);
	h = ntohl(a.s_addr);
	return ((h >> 24) == 127 && (h >> 8) != 0x7fffff);
}

static void
dnsbl_answer(void *arg, const struct dns_answer *ans)
{
	struct dnsbl_query	*q = arg;
	struct grey_connect_req	*req = q->req;
	size_t			 i;
	int			 listed = 0;

	q->done = 1;
	if (ans->status != DNS_TEMPFAIL) {
		for (i = 0; i < ans->count; i++)
			if (dnsbl_listed_addr(ans->records[i]))
				listed = 1;
		dnsbl_cache_put(q->name, listed, ans->status == DNS_OK &&
		    ans->count > 0 ? ans->ttl : GREY_DNSBL_TTL_NEG);
	}
	if (--req->pending == 0)
		grey_connect_answer(req);
}

/*
 * The client's DNSBL score from the cache: the weights of the zones
 * that list it; zones names those, comma-separated.
 */
static int
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
 * At RCPT, for an action marked greylist.  The order: the whitelist
 * table, trapped clients, white clients, spf-whitelist networks, a
 * DNSWL score, spamtraps, then the tuple, keyed by the sender's domain
 * when its SPF passes for the client.
 */
static void
grey_check(uint32_t session, const struct grey_check *chk)
{
	struct grey_check_req	*req;
	struct timeval		 tv = { GREY_SPF_WAIT, 0 };
	char			 key[HOSTNAME_LEN];
	time_t			 now = time(NULL);

	stats.checks++;
	(void)greydb_expire(now, GREY_EXPIRE_EVENT);
	if (addr_client_key(&chk->client, env->greylist.ipv6_prefix, key,
	    sizeof(key)) == -1) {
		grey_check_answer(session, GREY_TEMPFAIL, "bad address", NULL);
		return;
	}
	if (grey_whitelisted(&chk->client)) {
		grey_check_answer(session, GREY_PASS, "whitelist", NULL);
		return;
	}
	if (greydb_trapped(key, now, NULL)) {
		grey_check_trap(session, chk, key, now);
		return;
	}
	if (greydb_white_check(&env->greylist, key, now)) {
		grey_check_answer(session, GREY_PASS, "white", NULL);
		return;
	}
	if (spf_white != NULL && addrset_contains(spf_white, &chk->client)) {
		grey_check_answer(session, GREY_PASS, "spf-white", NULL);
		return;
	}
	if (!TAILQ_EMPTY(&env->dnsbls) &&
	    dnsbl_score(&chk->client, NULL, 0) < 0) {
		grey_check_answer(session, GREY_PASS, "dnswl", NULL);
		return;
	}
	/* As with spamd, a spamtrap catches only who would be greylisted. */
	if (grey_is_spamtrap(chk->rcpt)) {
		grey_check_trap(session, chk, key, now);
		return;
	}

	if ((req = calloc(1, sizeof(*req))) == NULL)
		fatal("grey_check");
	req->session = session;
	req->check = *chk;
	(void)strlcpy(req->key, key, sizeof(req->key));
	TAILQ_INSERT_TAIL(&check_reqs, req, entry);
	evtimer_set(&req->timer, grey_check_timeout, req);
	evtimer_add(&req->timer, &tv);
	if (spf_check(&chk->client, chk->helo, chk->sender, grey_check_spf,
	    req) == -1)
		grey_check_decide(req, NULL);
}

static void
grey_check_trap(uint32_t session, const struct grey_check *chk,
    const char *key, time_t now)
{
	char	 addr[INET6_ADDRSTRLEN], msg[MESSAGE_LEN];

	(void)greydb_trap_client(&env->greylist, key, now);
	grey_message(GREY_TRAP_MESSAGE, addr_string(&chk->client, addr,
	    sizeof(addr)), msg, sizeof(msg));
	log_info("trapped %s by <%s>", key, chk->rcpt);
	grey_check_answer(session, GREY_TRAPPED, "spamtrap", msg);
}

static void
grey_check_spf(void *arg, enum spf_verdict verdict, const char *reason)
{
	struct grey_check_req	*req = arg;
	const char		*domain = NULL;
	char			 addr[INET6_ADDRSTRLEN];

	(void)reason;
	if (req->check.sender[0] != '\0')
		domain = mailaddr_domain(req->check.sender);
	if (req->canary) {
		/* A record that lets TEST-NET pass lets anybody pass. */
		if (verdict == SPF_VERDICT_PASS)
			log_debug("session %u: SPF of %s passes any address; "
			    "keying by address", req->session, domain);
		grey_check_decide(req, verdict == SPF_VERDICT_PASS ? NULL :
		    domain);
		return;
	}
	grey_spf_remember(addr_string(&req->check.client, addr, sizeof(addr)),
	    domain != NULL ? domain : req->check.helo, verdict);
	if (verdict != SPF_VERDICT_PASS || domain == NULL) {
		grey_check_decide(req, NULL);
		return;
	}
	req->canary = 1;
	if (spf_check(grey_spf_canary(&req->check.client), req->check.helo,
	    req->check.sender, grey_check_spf, req) == -1)
		grey_check_decide(req, NULL);
}

/*
 * An address no SPF record has reason to authorise (RFC 5737, 3849):
 * if the sender's record passes it too ("+all", 0.0.0.0/0), a tuple
 * keyed by that domain would let a botnet through greylisting, one bot
 * retrying another's attempt.
 */
static const struct sockaddr_storage *
grey_spf_canary(const struct sockaddr_storage *client)
{
	static struct sockaddr_storage	 ss;
	struct sockaddr_in		*sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6		*sin6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	if (client->ss_family == AF_INET6) {
		sin6->sin6_family = AF_INET6;
		(void)inet_pton(AF_INET6, "2001:db8::5", &sin6->sin6_addr);
	} else {
		sin->sin_family = AF_INET;
		(void)inet_pton(AF_INET, "192.0.2.5", &sin->sin_addr);
	}
	return (&ss);
}

static void
grey_check_timeout(int fd, short event, void *arg)
{
	struct grey_check_req	*req = arg;

	(void)fd;
	(void)event;
	spf_cancel(req);
	log_debug("session %u: SPF took too long; keying by address",
	    req->session);
	grey_check_decide(req, NULL);
}

/*
 * The tuple's verdict.  spf_domain is the sender's domain when its SPF
 * passed for the client: mail from a domain our users wrote to passes,
 * and the tuple is keyed by the domain so that the sender's pool of
 * servers shares it.
 */
static void
grey_check_decide(struct grey_check_req *req, const char *spf_domain)
{
	struct grey_tuple	 t;
	enum grey_verdict	 v;
	time_t			 now = time(NULL);
	const char		*reason;

	evtimer_del(&req->timer);
	TAILQ_REMOVE(&check_reqs, req, entry);
	memset(&t, 0, sizeof(t));
	if (spf_domain != NULL && greydb_learned(spf_domain, now)) {
		(void)greydb_white_add(&env->greylist, req->key, now);
		grey_check_answer(req->session, GREY_PASS, "learned", NULL);
		free(req);
		return;
	}
	if (spf_domain != NULL) {
		(void)snprintf(t.client, sizeof(t.client), "spf:%s",
		    spf_domain);
		reason = "spf tuple";
	} else {
		(void)strlcpy(t.client, req->key, sizeof(t.client));
		(void)strlcpy(t.helo, req->check.helo, sizeof(t.helo));
		reason = "tuple";
	}
	(void)strlcpy(t.sender, req->check.sender, sizeof(t.sender));
	(void)strlcpy(t.rcpt, req->check.rcpt, sizeof(t.rcpt));
	v = greydb_check(&env->greylist, &t, req->key, now);
	if (v == GREY_TEMPFAIL)
		reason = "greylist database full or failing";
	grey_check_answer(req->session, v, reason, NULL);
	free(req);
}

static void
grey_check_answer(uint32_t session, enum grey_verdict verdict,
    const char *reason, const char *message)
{
	struct grey_check_result	 res;

	switch (verdict) {
	case GREY_PASS:
		stats.passed++;
		break;
	case GREY_GREYLISTED:
		stats.greylisted++;
		break;
	case GREY_TRAPPED:
		stats.trapped++;
		break;
	case GREY_TEMPFAIL:
		stats.tempfail++;
		break;
	}
	memset(&res, 0, sizeof(res));
	res.verdict = verdict;
	(void)strlcpy(res.reason, reason, sizeof(res.reason));
	if (message != NULL)
		(void)strlcpy(res.message, message, sizeof(res.message));
	if (iev_peer[PROC_SMTP] == NULL || imsgev_compose(iev_peer[PROC_SMTP],
	    IMSG_GREY_CHECK_RESULT, session, 0, -1, &res, sizeof(res)) == -1)
		log_warnx("cannot answer smtp");
}

static int
grey_is_spamtrap(const char *rcpt)
{
	struct table	*t;

	if (env->greylist.trap_table[0] != '\0' &&
	    (t = table_find(env, env->greylist.trap_table)) != NULL &&
	    table_lookup(t, rcpt))
		return (1);
	return (greydb_spamtrap(rcpt));
}

static void
grey_spf_remember(const char *client, const char *domain,
    enum spf_verdict verdict)
{
	struct spf_recent	*r = &spf_recent[spf_recent_next];

	spf_recent_next = (spf_recent_next + 1) % GREY_SPF_RECENT;
	(void)strlcpy(r->client, client, sizeof(r->client));
	(void)strlcpy(r->domain, domain, sizeof(r->domain));
	r->verdict = verdict;
	r->when = time(NULL);
}

/*
 * Blocklist and whitelist files.  The lists follow the configuration;
 * their contents arrive as descriptors from the parent, which watches
 * the files, and are read a slice per loop turn.
 */
static void
grey_lists_config(void)
{
	struct grey_list	*l, *next;
	struct blocklist	*b;

	TAILQ_FOREACH(l, &lists, entry)
		l->seen = 0;
	TAILQ_FOREACH(b, &env->blocklists, entry) {
		if ((l = grey_list_find(b->name)) == NULL) {
			if ((l = calloc(1, sizeof(*l))) == NULL)
				fatal("grey_lists_config");
			(void)strlcpy(l->name, b->name, sizeof(l->name));
			TAILQ_INSERT_TAIL(&lists, l, entry);
		}
		(void)strlcpy(l->path, b->path, sizeof(l->path));
		(void)strlcpy(l->message, b->message, sizeof(l->message));
		l->white = b->white;
		l->seen = 1;
	}
	TAILQ_FOREACH_SAFE(l, &lists, entry, next) {
		if (l->seen)
			continue;
		TAILQ_REMOVE(&lists, l, entry);
		if (l->loader != NULL)
			addrset_load_abort(l->loader);
		addrset_free(l->set);
		free(l);
	}
}

static struct grey_list *
grey_list_find(const char *name)
{
	struct grey_list	*l;

	TAILQ_FOREACH(l, &lists, entry)
		if (strcmp(l->name, name) == 0)
			return (l);
	return (NULL);
}

static void
grey_list_file(struct imsg *imsg)
{
	struct grey_list	*l;
	struct timeval		 now = { 0, 0 };
	char			*name;
	int			 fd = imsg_get_fd(imsg);

	name = imsg_expect_string(imsg);
	if (fd == -1)
		fatalx("list %s: no descriptor", name);
	if ((l = grey_list_find(name)) == NULL) {
		log_debug("list %s: not configured", name);
		(void)close(fd);
		free(name);
		return;
	}
	free(name);
	if (l->loader != NULL)
		addrset_load_abort(l->loader);
	if ((l->loader = addrset_load_start(fd, l->path)) == NULL) {
		log_warnx("list %s: cannot read %s", l->name, l->path);
		return;
	}
	if (!evtimer_pending(&ev_load, NULL))
		evtimer_add(&ev_load, &now);
}

/* One slice of each list being loaded; a new set replaces the old. */
static void
grey_list_step(int fd, short event, void *arg)
{
	struct grey_list	*l;
	struct addrset		*set;
	struct timeval		 now = { 0, 0 };
	char			 err[256];
	size_t			 bad;
	int			 more = 0, rc;

	(void)fd;
	(void)event;
	(void)arg;
	TAILQ_FOREACH(l, &lists, entry) {
		if (l->loader == NULL)
			continue;
		if ((rc = addrset_load_step(l->loader, GREY_LOAD_LINES)) == 1) {
			more = 1;
			continue;
		}
		bad = 0;
		err[0] = '\0';
		set = addrset_load_finish(l->loader, &bad, err, sizeof(err));
		l->loader = NULL;
		if (set == NULL) {
			log_warnx("list %s: %s; keeping what it had",
			    l->name, err);
			continue;
		}
		addrset_free(l->set);
		l->set = set;
		l->loaded = time(NULL);
		l->bad_lines = bad;
		log_info("list %s: %zu ranges from %s%s", l->name,
		    addrset_count(set), l->path, bad ? " (bad lines skipped)" :
		    "");
	}
	if (more)
		evtimer_add(&ev_load, &now);
}

/* The greylist whitelist table as an address set. */
static void
grey_whitelist_build(void)
{
	struct table		*t;
	struct table_entry	*e;

	addrset_free(whitelist_set);
	whitelist_set = NULL;
	if (env->greylist.whitelist[0] == '\0' ||
	    (t = table_find(env, env->greylist.whitelist)) == NULL)
		return;
	if ((whitelist_set = addrset_new()) == NULL)
		fatal("whitelist");
	RB_FOREACH(e, table_entries, &t->entries)
		if (addrset_add(whitelist_set, e->key) == -1)
			log_warnx("table %s: \"%s\" is not an address or "
			    "network", t->name, e->key);
	addrset_finish(whitelist_set);
}

/*
 * spf-whitelist: each domain of the table is expanded into networks
 * every refresh; the union skips greylisting and goes to pf.  What a
 * domain expanded to last is kept in grey.mdb, so a restart has it
 * before DNS answers.
 */
static void
spf_white_config(void)
{
	struct spf_domain	*d, *next;
	struct table		*t = NULL;
	struct table_entry	*e;
	time_t			 now = time(NULL);

	TAILQ_FOREACH(d, &spf_domains, entry)
		d->seen = 0;
	if (env->greylist.spf_whitelist[0] != '\0')
		t = table_find(env, env->greylist.spf_whitelist);
	if (t != NULL)
		RB_FOREACH(e, table_entries, &t->entries) {
			TAILQ_FOREACH(d, &spf_domains, entry)
				if (strcasecmp(d->name, e->key) == 0)
					break;
			if (d == NULL) {
				if ((d = calloc(1, sizeof(*d))) == NULL)
					fatal("spf-whitelist");
				(void)strlcpy(d->name, e->key, sizeof(d->name));
				if (greydb_spf_nets_load(d->name, &d->nets,
				    &d->nets_len, &d->refreshed) != 1) {
					d->nets = NULL;
					d->refreshed = 0;
				}
				(void)strlcpy(d->status, d->nets != NULL ?
				    "from grey.mdb" : "not expanded yet",
				    sizeof(d->status));
				TAILQ_INSERT_TAIL(&spf_domains, d, entry);
			}
			d->seen = 1;
			d->next = d->refreshed + env->greylist.spf_refresh;
			if (d->next > now + env->greylist.spf_refresh)
				d->next = now;
		}
	TAILQ_FOREACH_SAFE(d, &spf_domains, entry, next) {
		if (d->seen)
			continue;
		if (d->pending)
			spf_cancel(d);
		TAILQ_REMOVE(&spf_domains, d, entry);
		free(d->nets);
		free(d);
	}
	spf_white_rebuild();
}

static void
spf_white_start(struct spf_domain *d)
{
	d->pending = 1;
	if (spf_expand(d->name, spf_white_done, d) == -1) {
		d->pending = 0;
		d->next = time(NULL) + GREY_SPF_RETRY;
		(void)strlcpy(d->status, "cannot start the expansion",
		    sizeof(d->status));
	}
}

/*
 * An expansion is done.  A temporary failure keeps the networks we
 * had and tries again soon; hitting the lookup limit keeps what was
 * found (spf_fetch did the same), and says so.
 */
static void
spf_white_done(void *arg, int status, const char *const *nets, size_t n,
    const char *reason)
{
	struct spf_domain	*d = arg, *other;
	char			*text;
	size_t			 i, len = 0, off = 0;
	time_t			 now = time(NULL);

	d->pending = 0;
	if (status == DNS_TEMPFAIL) {
		d->next = now + (env->greylist.spf_refresh < GREY_SPF_RETRY ?
		    env->greylist.spf_refresh : GREY_SPF_RETRY);
		(void)snprintf(d->status, sizeof(d->status), "temporary "
		    "failure: %s", reason != NULL ? reason : "DNS");
		log_warnx("spf-whitelist %s: %s", d->name, d->status);
		return;
	}
	for (i = 0; i < n; i++)
		len += strlen(nets[i]) + 1;
	if ((text = malloc(len + 1)) == NULL)
		fatal("spf-whitelist");
	for (i = 0; i < n; i++) {
		(void)memcpy(text + off, nets[i], strlen(nets[i]));
		off += strlen(nets[i]);
		text[off++] = '\n';
	}
	text[off] = '\0';
	free(d->nets);
	d->nets = text;
	d->nets_len = off;
	d->refreshed = now;
	d->next = now + env->greylist.spf_refresh;
	if (status == DNS_OK)
		(void)snprintf(d->status, sizeof(d->status), "%zu networks",
		    n);
	else
		(void)snprintf(d->status, sizeof(d->status), "%zu networks; "
		    "%s", n, reason != NULL ? reason : "incomplete");
	log_info("spf-whitelist %s: %s", d->name, d->status);
	if (greydb_spf_nets_save(d->name, d->nets, d->nets_len, now) == -1)
		log_warnx("spf-whitelist %s: networks not kept in grey.mdb",
		    d->name);
	/*
	 * Many domains finish together: the last of them rebuilds the
	 * set, or the tick does while a slow one is still out.
	 */
	spf_white_dirty = 1;
	TAILQ_FOREACH(other, &spf_domains, entry)
		if (other->pending)
			return;
	spf_white_rebuild();
}

static void
spf_white_rebuild(void)
{
	struct spf_domain	*d;
	struct addrset		*set;
	char			*p, *line;

	if ((set = addrset_new()) == NULL)
		fatal("spf-white");
	TAILQ_FOREACH(d, &spf_domains, entry) {
		if (d->nets == NULL)
			continue;
		if ((p = strdup(d->nets)) == NULL)
			fatal("spf-white");
		line = p;
		while (line != NULL && *line != '\0') {
			char	*nl = strchr(line, '\n');

			if (nl != NULL)
				*nl++ = '\0';
			if (addrset_add(set, line) == -1)
				log_warnx("spf-whitelist %s: bad network %s",
				    d->name, line);
			line = nl;
		}
		free(p);
	}
	addrset_finish(set);
	addrset_free(spf_white);
	spf_white = set;
	spf_white_built = time(NULL);
	spf_white_dirty = 0;
	grey_pf_send(FW_SPF_WHITE, spf_white);
}

/* A whole table to the pf process, in chunks that fit an imsg. */
static void
grey_pf_send(enum firewall_table table, const struct addrset *set)
{
	struct imsgev	*pf = iev_peer[PROC_PF];
	int		 t = table;

	if (pf == NULL)
		return;
	if (imsgev_compose(pf, IMSG_PF_TABLE_START, 0, 0, -1, &t,
	    sizeof(t)) == -1)
		fatal("grey_pf_send");
	pf_chunk_len = 0;
	(void)addrset_walk(set, grey_pf_addr, NULL);
	if (pf_chunk_len > 0 && imsgev_compose(pf, IMSG_PF_TABLE_ADDRS, 0, 0,
	    -1, pf_chunk, pf_chunk_len * sizeof(pf_chunk[0])) == -1)
		fatal("grey_pf_send");
	if (imsgev_compose(pf, IMSG_PF_TABLE_END, 0, 0, -1, &t,
	    sizeof(t)) == -1)
		fatal("grey_pf_send");
}

static void
grey_pf_addr(const struct fw_addr *a, void *arg)
{
	(void)arg;
	pf_chunk[pf_chunk_len++] = *a;
	if (pf_chunk_len < GREY_PF_CHUNK)
		return;
	if (imsgev_compose(iev_peer[PROC_PF], IMSG_PF_TABLE_ADDRS, 0, 0, -1,
	    pf_chunk, sizeof(pf_chunk)) == -1)
		fatal("grey_pf_send");
	pf_chunk_len = 0;
}

/*
 * At DATA, for scoring and the Authentication-Results header: the
 * sender's SPF verdict, the client's DNSBL hits from the cache and its
 * reverse DNS.  The answer waits GREY_FACTS_WAIT at most and says what
 * it has then.
 */
static void
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
static struct rdns_cached *
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

/* spamlogd's job: the relay delivered to this domain by MX. */
static void
grey_learn(struct imsg *imsg)
{
	char	*domain;
	size_t	 i;

	domain = imsg_expect_string(imsg);
	for (i = 0; domain[i] != '\0'; i++)
		if (!isalnum((unsigned char)domain[i]) &&
		    domain[i] != '-' && domain[i] != '.' && domain[i] != '_')
			break;
	if (domain[i] != '\0' || i == 0 || i >= HOSTNAME_LEN)
		log_warnx("not learning from a delivery to \"%.64s\": not a "
		    "domain name", domain);
	else if (greydb_learn(&env->greylist, domain, time(NULL)) == 0)
		log_debug("learned %s", domain);
	free(domain);
}

/*
 * Requests from control, on behalf of smarthostctl client imsg id.
 */
static void
grey_dispatch_control(struct imsg *imsg)
{
	uint32_t	 client = imsg_get_id(imsg);
	char		*arg;
	int		 kind;

	switch (imsg_get_type(imsg)) {
	case IMSG_CTL_SHOW_GREYLIST:
		imsg_expect_size(imsg, sizeof(kind));
		(void)imsg_get_data(imsg, &kind, sizeof(kind));
		if (kind < GREY_LIST_ALL || kind > GREY_LIST_BLOCK)
			fatalx("control sent a bad list kind");
		grey_walk_start(client, kind);
		return;
	case IMSG_CTL_SHOW_TABLES:
		imsg_expect_size(imsg, 0);
		grey_tables(client);
		return;
	case IMSG_CTL_SHOW_STATS:
		imsg_expect_size(imsg, 0);
		grey_stats(client);
		return;
	default:
		break;
	}
	arg = imsg_expect_string(imsg);
	switch (imsg_get_type(imsg)) {
	case IMSG_CTL_GREY_WHITE:
		grey_white(client, arg);
		break;
	case IMSG_CTL_GREY_DELETE:
		grey_delete(client, arg);
		break;
	case IMSG_CTL_TRAP_ADD:
	case IMSG_CTL_TRAP_DELETE:
		grey_trap_set(client, arg,
		    imsg_get_type(imsg) == IMSG_CTL_TRAP_ADD);
		break;
	case IMSG_CTL_EXPLAIN:
		grey_explain(client, arg);
		break;
	default:
		fatalx("unexpected imsg %u from control",
		    imsg_get_type(imsg));
	}
	free(arg);
}

static void
grey_ctl_send(uint32_t id, uint32_t type, const void *data, size_t len)
{
	enum smarthost_proc	 to = PROC_CONTROL;

	if (type == IMSG_GREY_CONNECT_RESULT ||
	    type == IMSG_GREY_FACTS_RESULT)
		to = PROC_SMTP;
	if (iev_peer[to] == NULL || imsgev_compose(iev_peer[to], type, id, 0,
	    -1, data, len) == -1)
		log_warnx("cannot answer %s", proc_name(to));
}

static void
grey_ctl_result(uint32_t client, int ok, const char *fmt, ...)
{
	struct ctl_result	 res;
	va_list			 ap;

	memset(&res, 0, sizeof(res));
	res.ok = ok;
	va_start(ap, fmt);
	(void)vsnprintf(res.message, sizeof(res.message), fmt, ap);
	va_end(ap);
	grey_ctl_send(client, ok ? IMSG_CTL_OK : IMSG_CTL_FAIL, &res,
	    sizeof(res));
}

static void
grey_ctl_text(uint32_t client, const char *fmt, ...)
{
	char	 line[1024];
	va_list	 ap;

	va_start(ap, fmt);
	(void)vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	grey_ctl_send(client, IMSG_CTL_TEXT, line, strlen(line) + 1);
}

static void
grey_walk_start(uint32_t client, enum grey_list_kind kind)
{
	struct grey_walk_req	*w;
	struct timeval		 now = { 0, 0 };

	if ((w = calloc(1, sizeof(*w))) == NULL)
		fatal("show greylist");
	w->client = client;
	w->walk.kind = kind;
	w->phase = kind == GREY_LIST_BLOCK ? WALK_BLOCK : WALK_DB;
	w->list = TAILQ_FIRST(&lists);
	TAILQ_INSERT_TAIL(&walks, w, entry);
	if (!evtimer_pending(&ev_walk, NULL))
		evtimer_add(&ev_walk, &now);
}

/*
 * One page of each listing per loop turn, taking turns.  A listing
 * goes through grey.mdb, then the blocklists (all, block), then the
 * spf-whitelist networks (all, white).
 */
static void
grey_walk_run(int fd, short event, void *arg)
{
	struct grey_walk_req	*w;
	struct timeval		 now = { 0, 0 }, later = { 0, 10000 };
	enum grey_list_kind	 kind;
	int			 done = 0;

	(void)fd;
	(void)event;
	(void)arg;
	if ((w = TAILQ_FIRST(&walks)) == NULL)
		return;
	/* Control has not taken the last pages yet: wait for it. */
	if (iev_peer[PROC_CONTROL] != NULL &&
	    imsgbuf_queuelen(&iev_peer[PROC_CONTROL]->ibuf) >
	    GREY_WALK_QUEUED_MAX) {
		evtimer_add(&ev_walk, &later);
		return;
	}
	TAILQ_REMOVE(&walks, w, entry);
	kind = w->walk.kind;
	switch (w->phase) {
	case WALK_DB:
		done = greydb_walk_page(&w->walk, GREY_WALK_PAGE,
		    grey_walk_entry, w);
		break;
	case WALK_BLOCK:
		done = kind != GREY_LIST_ALL && kind != GREY_LIST_BLOCK ? 1 :
		    grey_walk_block(w);
		break;
	case WALK_SPF:
		done = kind != GREY_LIST_ALL && kind != GREY_LIST_WHITE ? 1 :
		    grey_walk_spf(w);
		break;
	case WALK_DONE:
		break;
	}
	if (done)
		w->phase++;
	if (w->phase == WALK_DONE) {
		grey_ctl_send(w->client, IMSG_CTL_END, NULL, 0);
		free(w);
	} else
		TAILQ_INSERT_TAIL(&walks, w, entry);
	if (!TAILQ_EMPTY(&walks))
		evtimer_add(&ev_walk, &now);
}

/*
 * The spf-whitelist networks, one domain per turn: after w->domain,
 * in the order of the list.  Returns 1 when done.
 */
static int
grey_walk_spf(struct grey_walk_req *w)
{
	struct spf_domain	*d;
	struct ctl_grey_entry	 e;
	const char		*p, *nl;
	size_t			 len;

	d = TAILQ_FIRST(&spf_domains);
	if (w->domain[0] != '\0') {
		while (d != NULL && strcmp(d->name, w->domain) != 0)
			d = TAILQ_NEXT(d, entry);
		if (d == NULL)
			return (1);
		d = TAILQ_NEXT(d, entry);
	}
	if (d == NULL)
		return (1);
	(void)strlcpy(w->domain, d->name, sizeof(w->domain));
	for (p = d->nets; p != NULL && *p != '\0'; p = nl + 1) {
		if ((nl = strchr(p, '\n')) == NULL)
			break;
		memset(&e, 0, sizeof(e));
		(void)strlcpy(e.type, "SPFWHITE", sizeof(e.type));
		len = (size_t)(nl - p) < sizeof(e.key) ? (size_t)(nl - p) :
		    sizeof(e.key) - 1;
		memcpy(e.key, p, len);
		(void)strlcpy(e.list, d->name, sizeof(e.list));
		grey_ctl_send(w->client, IMSG_CTL_GREY_ENTRY, &e, sizeof(e));
	}
	return (TAILQ_NEXT(d, entry) == NULL);
}

/*
 * The BLOCK part of a listing: each blocklist's networks, a page at a
 * time.  A list that goes away during the walk ends it.  Returns 1
 * when done.
 */
static int
grey_walk_block(struct grey_walk_req *w)
{
	struct grey_list	*l;

	TAILQ_FOREACH(l, &lists, entry)
		if (l == w->list)
			break;
	while (l != NULL && (l->white || l->set == NULL))
		l = TAILQ_NEXT(l, entry);
	if (l == NULL)
		return (1);
	if (l != w->list) {
		w->list = l;
		w->pos = 0;
	}
	if (addrset_walk_part(l->set, &w->pos, GREY_BLOCK_PAGE,
	    grey_walk_block_entry, w) == 1) {
		w->list = TAILQ_NEXT(l, entry);
		w->pos = 0;
		if (w->list == NULL)
			return (1);
	}
	return (0);
}

static void
grey_walk_entry(const struct ctl_grey_entry *e, void *arg)
{
	struct grey_walk_req	*w = arg;

	grey_ctl_send(w->client, IMSG_CTL_GREY_ENTRY, e, sizeof(*e));
}

static void
grey_walk_block_entry(const struct fw_addr *a, void *arg)
{
	struct grey_walk_req	*w = arg;
	struct ctl_grey_entry	 e;
	char			 text[INET6_ADDRSTRLEN];

	memset(&e, 0, sizeof(e));
	(void)strlcpy(e.type, "BLOCK", sizeof(e.type));
	if (inet_ntop(a->af, a->addr, text, sizeof(text)) == NULL)
		return;
	(void)snprintf(e.key, sizeof(e.key), "%s/%u", text, a->prefixlen);
	(void)strlcpy(e.list, w->list->name, sizeof(e.list));
	grey_ctl_send(w->client, IMSG_CTL_GREY_ENTRY, &e, sizeof(e));
}

static int
grey_parse_addr(const char *text, struct sockaddr_storage *ss)
{
	struct sockaddr_in	*sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, text, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		return (0);
	}
	if (inet_pton(AF_INET6, text, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		return (0);
	}
	return (-1);
}

static void
grey_white(uint32_t client, const char *text)
{
	struct sockaddr_storage	 ss;
	char			 key[HOSTNAME_LEN];

	if (grey_parse_addr(text, &ss) == -1 || addr_client_key(&ss,
	    env->greylist.ipv6_prefix, key, sizeof(key)) == -1) {
		grey_ctl_result(client, 0, "not an address: %s", text);
		return;
	}
	if (greydb_white_add(&env->greylist, key, time(NULL)) == -1 ||
	    greydb_commit() == -1) {
		grey_ctl_result(client, 0, "%s: cannot update grey.mdb", key);
		return;
	}
	grey_ctl_result(client, 1, "%s is white", key);
}

static void
grey_delete(uint32_t client, const char *text)
{
	struct sockaddr_storage	 ss;
	char			 key[HOSTNAME_LEN];
	int			 n;

	if (grey_parse_addr(text, &ss) == 0) {
		if (addr_client_key(&ss, env->greylist.ipv6_prefix, key,
		    sizeof(key)) == -1) {
			grey_ctl_result(client, 0, "bad address: %s", text);
			return;
		}
	} else
		(void)strlcpy(key, text, sizeof(key));
	if ((n = greydb_delete(key)) == -1 || greydb_commit() == -1) {
		grey_ctl_result(client, 0, "%s: cannot update grey.mdb", key);
		return;
	}
	if (n == 0)
		grey_ctl_result(client, 0, "no entry for %s", key);
	else
		grey_ctl_result(client, 1, "%s: %d entr%s deleted", key, n,
		    n == 1 ? "y" : "ies");
}

static void
grey_trap_set(uint32_t client, const char *addr, int on)
{
	int	 n;

	if (strchr(addr, '@') == NULL || strlen(addr) >= SMTP_ADDR_LEN) {
		grey_ctl_result(client, 0, "not a mail address: %s", addr);
		return;
	}
	if ((n = greydb_spamtrap_set(addr, on)) == -1 ||
	    greydb_commit() == -1) {
		grey_ctl_result(client, 0, "%s: cannot update grey.mdb", addr);
		return;
	}
	if (on)
		grey_ctl_result(client, 1, "%s: %s", addr, n ? "spamtrap added" :
		    "already a spamtrap");
	else if (n)
		grey_ctl_result(client, 1, "%s: spamtrap deleted", addr);
	else
		grey_ctl_result(client, 0, "%s: not a spamtrap", addr);
}

static void
grey_table_info(uint32_t client, const char *name, const char *kind,
    const char *source, uint64_t count, time_t loaded)
{
	struct ctl_table_info	 ti;

	memset(&ti, 0, sizeof(ti));
	(void)strlcpy(ti.name, name, sizeof(ti.name));
	(void)strlcpy(ti.kind, kind, sizeof(ti.kind));
	(void)strlcpy(ti.source, source, sizeof(ti.source));
	ti.count = count;
	ti.loaded = loaded;
	grey_ctl_send(client, IMSG_CTL_TABLE_INFO, &ti, sizeof(ti));
}

/* show tables: the configuration's tables, the lists, grey.mdb. */
static void
grey_tables(uint32_t client)
{
	struct table		*t;
	struct grey_list	*l;

	TAILQ_FOREACH(t, &env->tables, entry)
		grey_table_info(client, t->name, "table",
		    t->source == TABLE_FILE ? t->path : "", t->count,
		    config_loaded);
	TAILQ_FOREACH(l, &lists, entry)
		grey_table_info(client, l->name, l->white ? "whitelist" :
		    "blocklist", l->path, l->set != NULL ?
		    addrset_count(l->set) : 0, l->loaded);
	if (env->greylist.spf_whitelist[0] != '\0')
		grey_table_info(client, "spf-white", "spf-white",
		    env->greylist.spf_whitelist, spf_white != NULL ?
		    addrset_count(spf_white) : 0, spf_white_built);
	grey_table_info(client, "grey", "greylist", "grey.mdb",
	    greydb_count("grey"), 0);
	grey_table_info(client, "white", "white", "grey.mdb",
	    greydb_count("white"), 0);
	grey_table_info(client, "trapped", "trap", "grey.mdb",
	    greydb_count("trap"), 0);
	grey_table_info(client, "spamtraps", "spamtrap", "grey.mdb",
	    greydb_count("spamtrap"), 0);
	grey_table_info(client, "learned", "learned", "grey.mdb",
	    greydb_count("learned"), 0);
	grey_ctl_send(client, IMSG_CTL_END, NULL, 0);
}

static void
grey_stat(uint32_t client, const char *name, uint64_t value)
{
	struct ctl_stat	 st;

	memset(&st, 0, sizeof(st));
	(void)snprintf(st.name, sizeof(st.name), "grey.%s", name);
	st.value = value;
	grey_ctl_send(client, IMSG_CTL_STAT, &st, sizeof(st));
}

/* show stats: grey's decisions since start, and grey.mdb's sizes. */
static void
grey_stats(uint32_t client)
{
	grey_stat(client, "connects", stats.connects);
	grey_stat(client, "blocked", stats.blocked);
	grey_stat(client, "trapped_connects", stats.trapped_connects);
	grey_stat(client, "checks", stats.checks);
	grey_stat(client, "passed", stats.passed);
	grey_stat(client, "greylisted", stats.greylisted);
	grey_stat(client, "trapped", stats.trapped);
	grey_stat(client, "tempfail", stats.tempfail);
	grey_stat(client, "tuples", greydb_count("grey"));
	grey_stat(client, "white", greydb_count("white"));
	grey_stat(client, "trapped_clients", greydb_count("trap"));
	grey_stat(client, "spamtraps", greydb_count("spamtrap"));
	grey_stat(client, "learned", greydb_count("learned"));
	grey_stat(client, "dnsbl_cached", dnsbl_cache_count);
	grey_ctl_send(client, IMSG_CTL_END, NULL, 0);
}

static const char *
grey_time(int64_t t, char *buf, size_t len)
{
	time_t		 tt = (time_t)t;
	struct tm	*tm;

	if (t == 0 || (tm = localtime(&tt)) == NULL ||
	    strftime(buf, len, "%Y-%m-%d %H:%M:%S", tm) == 0)
		(void)strlcpy(buf, "-", len);
	return (buf);
}

/*
 * explain ADDRESS: everything grey knows about the client, from memory
 * and grey.mdb; nothing is looked up for it.
 */
static void
grey_explain(uint32_t client, const char *text)
{
	struct sockaddr_storage	 ss;
	struct grey_list	*l;
	struct dnsbl		*z;
	struct dnsbl_cached	*c;
	struct spf_recent	*r;
	struct rdns_cached	 find, *rd;
	char			 key[HOSTNAME_LEN], name[HOSTNAME_LEN];
	char			 addr[INET6_ADDRSTRLEN], when[32];
	int64_t			 expire;
	time_t			 now = time(NULL);
	size_t			 i, n;

	if (grey_parse_addr(text, &ss) == -1 || addr_client_key(&ss,
	    env->greylist.ipv6_prefix, key, sizeof(key)) == -1) {
		grey_ctl_result(client, 0, "not an address: %s", text);
		return;
	}
	(void)addr_string(&ss, addr, sizeof(addr));
	grey_ctl_text(client, "%s: greylisted as %s", addr, key);
	if (env->greylist.whitelist[0] != '\0')
		grey_ctl_text(client, "whitelist <%s>: %s",
		    env->greylist.whitelist, grey_whitelisted(&ss) ?
		    "listed: never greylisted, blocked or tarpitted" :
		    "not listed");
	if (greydb_trapped(key, now, &expire))
		grey_ctl_text(client, "trapped until %s",
		    grey_time(expire, when, sizeof(when)));
	TAILQ_FOREACH(l, &lists, entry)
		grey_ctl_text(client, "%s %s: %s", l->white ? "whitelist" :
		    "blocklist", l->name, l->set == NULL ? "not loaded" :
		    addrset_contains(l->set, &ss) ? "listed" : "not listed");
	if (env->greylist.spf_whitelist[0] != '\0')
		grey_ctl_text(client, "spf-white: %s", spf_white != NULL &&
		    addrset_contains(spf_white, &ss) ? "listed" :
		    "not listed");
	TAILQ_FOREACH(z, &env->dnsbls, entry) {
		if (dnsbl_name(&ss, z->zone, name, sizeof(name)) == -1)
			continue;
		if ((c = dnsbl_cache_get(name, now)) == NULL)
			grey_ctl_text(client, "dnsbl %s (weight %d): not "
			    "looked up lately", z->zone, z->weight);
		else
			grey_ctl_text(client, "dnsbl %s (weight %d): %s, "
			    "cached until %s", z->zone, z->weight, c->listed ?
			    "listed" : "not listed", grey_time(c->expire, when,
			    sizeof(when)));
	}
	if (!TAILQ_EMPTY(&env->dnsbls))
		grey_ctl_text(client, "dnsbl score %d, threshold %d",
		    dnsbl_score(&ss, NULL, 0), env->dnsbl_threshold);
	(void)strlcpy(find.addr, addr, sizeof(find.addr));
	if ((rd = RB_FIND(rdns_cache, &rdns_cache, &find)) != NULL)
		grey_ctl_text(client, "reverse DNS: %s%s%s", rd->pending ?
		    "being looked up" : rd->status == RDNS_OK ? "ok" :
		    rd->status == RDNS_NONE ? "no PTR record" :
		    rd->status == RDNS_MISMATCH ? "does not resolve back" :
		    "unknown (lookup failed)", rd->name[0] != '\0' ? ", " : "",
		    rd->name);
	for (i = 0; i < GREY_SPF_RECENT; i++) {
		r = &spf_recent[(spf_recent_next + i) % GREY_SPF_RECENT];
		if (r->when != 0 && strcmp(r->client, addr) == 0)
			grey_ctl_text(client, "spf %s: %s at %s", r->domain,
			    spf_verdict_name(r->verdict), grey_time(r->when,
			    when, sizeof(when)));
	}
	n = greydb_walk_client(key, grey_explain_entry, &client);
	if (n == 0)
		grey_ctl_text(client, "no greylist entries");
	grey_ctl_send(client, IMSG_CTL_END, NULL, 0);
}

static void
grey_explain_entry(const struct ctl_grey_entry *e, void *arg)
{
	uint32_t	 client = *(uint32_t *)arg;
	char		 first[32], pass[32], expire[32];

	(void)grey_time(e->first, first, sizeof(first));
	(void)grey_time(e->pass, pass, sizeof(pass));
	(void)grey_time(e->expire, expire, sizeof(expire));
	if (strcmp(e->type, "GREY") == 0)
		grey_ctl_text(client, "tuple helo %s from <%s> to <%s>: first "
		    "%s, passes from %s, expires %s, %u attempts refused",
		    e->helo, e->sender, e->rcpt, first, pass, expire,
		    e->blocked);
	else
		grey_ctl_text(client, "%s: first %s, white since %s, expires "
		    "%s, %u passed, %u refused", e->type, first, pass, expire,
		    e->passed, e->blocked);
}
