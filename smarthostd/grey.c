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
 *
 * This file runs the process and makes the decisions at connect and at
 * RCPT; grey.h says where the rest is.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <netinet/in.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>

#include <ctype.h>
#include <event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "smarthostd.h"
#include "grey.h"

#define GREY_DNSBL_WAIT		3	/* seconds for DNSBL answers */
#define GREY_SPF_WAIT		8	/* then the tuple keeps the address */
#define GREY_EXPIRE_TICK	2000	/* records expired a second, at most */
#define GREY_EXPIRE_EVENT	4	/* and per decision */
#define GREY_DNSBL_TTL_NEG	300
#define GREY_TRAP_MESSAGE	"Your address %A has mailed to spamtraps here"
#define GREY_DNSBL_ZONES_LEN	256

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

static void	 grey_dispatch_parent(struct imsgev *, struct imsg *);
static void	 grey_dispatch_peer(struct imsgev *, struct imsg *);
static void	 grey_config_commit(struct smarthost_config *);
static void	 grey_shutdown(void);
static void	 grey_open(void);
static void	 grey_backup(struct imsgev *, uint32_t);
static void	 grey_tick(int, short, void *);

static void	 grey_not_ready(struct imsgev *, struct imsg *);
static void	 grey_connect(uint32_t, const struct grey_connect *);
static int	 grey_blocked(const struct sockaddr_storage *,
		    struct grey_connect_result *);
static void	 grey_connect_answer(struct grey_connect_req *);
static void	 dnsbl_answer(void *, const struct dns_answer *);
static void	 grey_connect_timeout(int, short, void *);
static void	 grey_connect_free(struct grey_connect_req *);
static void	 grey_message(const char *, const char *, char *, size_t);

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
static void	 grey_learn(struct imsg *);

static const struct proc_handlers grey_handlers = {
	.parent =		grey_dispatch_parent,
	.peer =			grey_dispatch_peer,
	.config_commit =	grey_config_commit,
	.shutdown =		grey_shutdown
};

struct grey_stats		 grey_stats;
time_t				 grey_config_loaded;

static int			 grey_opened;
static char			 grey_dir[PATH_MAX];
static struct event		 ev_tick;
static struct grey_connect_reqs	 connect_reqs =
				    TAILQ_HEAD_INITIALIZER(connect_reqs);
static struct grey_check_reqs	 check_reqs =
				    TAILQ_HEAD_INITIALIZER(check_reqs);

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
	grey_config_loaded = time(NULL);
	grey_whitelist_build();
	grey_lists_config();
	spf_white_config();
	grey_fw_resync_all();
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
	grey_lists_init();
	grey_ctl_init();
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
	struct timeval	 tv = { 1, 0 };
	time_t		 now = time(NULL);

	(void)fd;
	(void)event;
	(void)arg;
	(void)greydb_expire(now, GREY_EXPIRE_TICK);
	spf_white_tick(now);
	grey_fw_flush();
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
	case IMSG_BACKUP_COPY:
		imsg_expect_size(imsg, 0);
		grey_backup(iev, imsg_get_id(imsg));
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

/*
 * The parent's backup: a copy of grey.mdb in backup/ of the state
 * directory, which the parent made for us and then archives.
 */
static void
grey_backup(struct imsgev *iev, uint32_t id)
{
	char	 path[PATH_MAX], why[MESSAGE_LEN];

	why[0] = '\0';
	if ((size_t)snprintf(path, sizeof(path), "%s/backup/grey.mdb",
	    strcmp(grey_dir, "/") == 0 ? "" : grey_dir) >= sizeof(path))
		(void)strlcpy(why, "grey.mdb: backup path too long",
		    sizeof(why));
	else if (!grey_opened)
		(void)strlcpy(why, "grey.mdb is not open yet", sizeof(why));
	else
		(void)greydb_backup(path, why, sizeof(why));
	if (why[0] != '\0')
		log_warnx("backup: %s", why);
	imsgev_compose(iev, why[0] == '\0' ? IMSG_BACKUP_DONE :
	    IMSG_BACKUP_FAILED, id, 0, -1, why, strlen(why) + 1);
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
		case IMSG_GREY_AUTH_FAILED:
			imsg_expect_size(imsg, sizeof(gc));
			(void)imsg_get_data(imsg, &gc, sizeof(gc));
			grey_auth_failed(&gc.client);
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
	    (imsg_get_type(imsg) == IMSG_CTL_SHOW_STATS ||
	    imsg_get_type(imsg) == IMSG_CTL_SHOW_TABLES))
		grey_ctl_send(imsg_get_id(imsg), IMSG_CTL_END, NULL, 0);
	else if (iev->peer == PROC_CONTROL)
		proc_ctl_result(imsg_get_id(imsg), 0, "grey is starting");
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

	grey_stats.connects++;
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
		grey_stats.trapped_connects++;
		return (1);
	}
	TAILQ_FOREACH(l, &grey_lists, entry) {
		if (l->white || l->set == NULL || !addrset_contains(l->set, ss))
			continue;
		TAILQ_FOREACH(w, &grey_lists, entry)
			if (w->white && w->set != NULL &&
			    addrset_contains(w->set, ss))
				return (0);
		res->client = GREY_CLIENT_BLOCKED;
		(void)strlcpy(res->list, l->name, sizeof(res->list));
		grey_message(l->message, addr, res->message,
		    sizeof(res->message));
		grey_stats.blocked++;
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
		grey_stats.blocked++;
	}
	grey_ctl_send(req->session, IMSG_GREY_CONNECT_RESULT, &res,
	    sizeof(res));
	for (i = 0; i < req->nqueries; i++)
		if (!req->queries[i].done)
			dns_cancel(&req->queries[i]);
	grey_connect_free(req);
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
	int64_t			 was;

	grey_stats.checks++;
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
	if (greydb_white_check(&env->greylist, key, now, &was)) {
		grey_fw_white_renewed(key, was, now);
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

	if (greydb_trap_client(&env->greylist, key, now) == -1)
		log_warnx("%s: trap not recorded in grey.mdb", key);
	grey_fw_change(FW_WHITE, key, 0, 0);
	grey_fw_change(FW_TRAP, key, 1, env->greylist.trapexp);
	if (env->firewall.block_trapped)
		grey_fw_change(FW_BLOCK, key, 1, env->greylist.trapexp);
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
		if (greydb_white_add(&env->greylist, req->key, now) == 0)
			grey_fw_change(FW_WHITE, req->key, 1,
			    env->greylist.whiteexp);
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
	if (v == GREY_PASS)
		grey_fw_change(FW_WHITE, req->key, 1, env->greylist.whiteexp);
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
		grey_stats.passed++;
		break;
	case GREY_GREYLISTED:
		grey_stats.greylisted++;
		break;
	case GREY_TRAPPED:
		grey_stats.trapped++;
		break;
	case GREY_TEMPFAIL:
		grey_stats.tempfail++;
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

int
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
