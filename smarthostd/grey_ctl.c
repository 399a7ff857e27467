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
 * grey's answers to control: show greylist (grey.mdb, then the
 * blocklists, then the spf-whitelist networks, a page per loop turn),
 * white, delete, spamtrap add and delete, show tables, show stats and
 * explain, which also reads the SPF results remembered here.
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "smarthostd.h"
#include "grey.h"

#define GREY_WALK_PAGE		256	/* show greylist entries per turn */
#define GREY_BLOCK_PAGE		64	/* blocklist ranges per turn */
#define GREY_WALK_QUEUED_MAX	1024	/* messages waiting for control */
#define GREY_SPF_RECENT		256	/* SPF results explain remembers */

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
static void	 grey_show_stats(uint32_t);
static void	 grey_table_info(uint32_t, const char *, const char *,
		    const char *, uint64_t, time_t);
static void	 grey_explain(uint32_t, const char *);
static void	 grey_explain_entry(const struct ctl_grey_entry *, void *);
static const char *grey_time(int64_t, char *, size_t);

static struct event		 ev_walk;
static struct grey_walk_reqs	 walks = TAILQ_HEAD_INITIALIZER(walks);
static struct spf_recent	 spf_recent[GREY_SPF_RECENT];
static size_t			 spf_recent_next;

void
grey_ctl_init(void)
{
	evtimer_set(&ev_walk, grey_walk_run, NULL);
}

/*
 * Requests from control, on behalf of smarthostctl client imsg id.
 */
void
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
		grey_show_stats(client);
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

void
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
grey_ctl_text(uint32_t client, const char *fmt, ...)
{
	char	 line[1024];
	va_list	 ap;

	va_start(ap, fmt);
	(void)vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	grey_ctl_send(client, IMSG_CTL_TEXT, line, strlen(line) + 1);
}

void
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
	w->list = TAILQ_FIRST(&grey_lists);
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

	TAILQ_FOREACH(l, &grey_lists, entry)
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

static void
grey_white(uint32_t client, const char *text)
{
	struct sockaddr_storage	 ss;
	char			 key[HOSTNAME_LEN];

	if (grey_parse_addr(text, &ss) == -1 || addr_client_key(&ss,
	    env->greylist.ipv6_prefix, key, sizeof(key)) == -1) {
		proc_ctl_result(client, 0, "not an address: %s", text);
		return;
	}
	if (greydb_white_add(&env->greylist, key, time(NULL)) == -1 ||
	    greydb_commit() == -1) {
		proc_ctl_result(client, 0, "%s: cannot update grey.mdb", key);
		return;
	}
	grey_fw_change(FW_WHITE, key, 1, env->greylist.whiteexp);
	proc_ctl_result(client, 1, "%s is white", key);
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
			proc_ctl_result(client, 0, "bad address: %s", text);
			return;
		}
	} else
		(void)strlcpy(key, text, sizeof(key));
	if ((n = greydb_delete(key)) == -1 || greydb_commit() == -1) {
		proc_ctl_result(client, 0, "%s: cannot update grey.mdb", key);
		return;
	}
	if (n == 0) {
		proc_ctl_result(client, 0, "no entry for %s", key);
		return;
	}
	if (strchr(key, '|') == NULL) {
		grey_fw_change(FW_WHITE, key, 0, 0);
		grey_fw_change(FW_TRAP, key, 0, 0);
		/* A blocklist may hold the same address: the table again. */
		grey_fw_resync(FW_BLOCK);
		grey_fw_flush();
	}
	proc_ctl_result(client, 1, "%s: %d entr%s deleted", key, n,
	    n == 1 ? "y" : "ies");
}

static void
grey_trap_set(uint32_t client, const char *addr, int on)
{
	int	 n;

	if (strchr(addr, '@') == NULL || strlen(addr) >= SMTP_ADDR_LEN) {
		proc_ctl_result(client, 0, "not a mail address: %s", addr);
		return;
	}
	if ((n = greydb_spamtrap_set(addr, on)) == -1 ||
	    greydb_commit() == -1) {
		proc_ctl_result(client, 0, "%s: cannot update grey.mdb", addr);
		return;
	}
	if (on)
		proc_ctl_result(client, 1, "%s: %s", addr, n ? "spamtrap added" :
		    "already a spamtrap");
	else if (n)
		proc_ctl_result(client, 1, "%s: spamtrap deleted", addr);
	else
		proc_ctl_result(client, 0, "%s: not a spamtrap", addr);
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
		    grey_config_loaded);
	TAILQ_FOREACH(l, &grey_lists, entry)
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

/* show stats: grey's decisions since start, and grey.mdb's sizes. */
static void
grey_show_stats(uint32_t client)
{
	proc_ctl_stat(client, "connects", grey_stats.connects);
	proc_ctl_stat(client, "blocked", grey_stats.blocked);
	proc_ctl_stat(client, "trapped_connects", grey_stats.trapped_connects);
	proc_ctl_stat(client, "checks", grey_stats.checks);
	proc_ctl_stat(client, "passed", grey_stats.passed);
	proc_ctl_stat(client, "greylisted", grey_stats.greylisted);
	proc_ctl_stat(client, "trapped", grey_stats.trapped);
	proc_ctl_stat(client, "tempfail", grey_stats.tempfail);
	proc_ctl_stat(client, "tuples", greydb_count("grey"));
	proc_ctl_stat(client, "white", greydb_count("white"));
	proc_ctl_stat(client, "trapped_clients", greydb_count("trap"));
	proc_ctl_stat(client, "spamtraps", greydb_count("spamtrap"));
	proc_ctl_stat(client, "learned", greydb_count("learned"));
	proc_ctl_stat(client, "dnsbl_cached", dnsbl_cache_count);
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
		proc_ctl_result(client, 0, "not an address: %s", text);
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
	TAILQ_FOREACH(l, &grey_lists, entry)
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
