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
 * The pf process: the only code with firewall privileges.  It mirrors
 * the white, trap, block and spf-white tables that grey sends, as binary
 * entries, into nftables sets or pf tables through the backend the
 * Makefile linked (pfctl_nft.c, pfctl_pf.c).
 *
 * It keeps its own view of every table: the entries and when they
 * expire.  A resync from grey replaces a table's view and the firewall's
 * table; changes apply to both incrementally.  When the firewall refuses
 * (no privileges, a table missing, someone's edits in the way), the table
 * is marked and replaced whole at the next batch or resync; that is
 * logged once, and mail flows on.
 *
 * nftables interval sets refuse overlapping elements, so an entry inside
 * another entry of the same table (a client inside a blocklist's network)
 * stays in the view but not in the firewall, where the larger one covers
 * it.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/tree.h>

#include <netinet/in.h>

#include <event.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "smarthostd.h"
#include "pfctl.h"

#define PFCTL_TICK		5		/* seconds between expiries */
#define PFCTL_ENTRIES_MAX	(1 << 21)	/* per table */
#define PFCTL_TIMEOUT_MAX	(10 * 366 * 24 * 3600)
#define PFCTL_REASON_LEN	256

struct pfctl_entry {
	RB_ENTRY(pfctl_entry)	 entry;
	struct fw_addr		 addr;
	time_t			 expire;	/* monotonic; 0: never */
};
RB_HEAD(pfctl_tree, pfctl_entry);

struct pfctl_table {
	struct pfctl_tree	 view;
	size_t			 n;
	int			 received;	/* grey has sent it whole */
	int			 dirty;		/* replace it in the firewall */
	int			 failing;	/* logged; quiet until it works */
	time_t			 pushed;	/* wall clock; 0: never */
};

static void	 pfctl_dispatch_peer(struct imsgev *, struct imsg *);
static void	 pfctl_config_commit(struct smarthost_config *);
static void	 pfctl_empty_old(const struct smarthost_config *);
static void	 pfctl_tick(int, short, void *);
static void	 pfctl_check(struct fw_entry *);
static void	 pfctl_resync_start(int);
static void	 pfctl_resync_addrs(const struct fw_entry *, size_t);
static void	 pfctl_resync_end(int);
static void	 pfctl_changes(struct fw_entry *, size_t);
static int	 pfctl_change(struct fw_entry *, struct fw_entry *, time_t);
static void	 pfctl_flush(int);
static int	 pfctl_push(int);
static int	 pfctl_active(int);
static void	 pfctl_show_tables(uint32_t);
static size_t	 pfctl_installed(int, struct fw_entry *, time_t);
static struct pfctl_entry *pfctl_insert(struct pfctl_tree *, size_t *,
		    const struct fw_entry *, time_t);
static struct pfctl_entry *pfctl_covering(struct pfctl_tree *,
		    const struct fw_addr *);
static int	 pfctl_covers_others(struct pfctl_tree *,
		    struct pfctl_entry *);
static int	 pfctl_contains(const struct fw_addr *,
		    const struct fw_addr *);
static void	 pfctl_mask(struct fw_addr *, uint8_t);
static void	 pfctl_tree_free(struct pfctl_tree *, size_t *);
static time_t	 pfctl_now(void);
int		 pfctl_entry_cmp(struct pfctl_entry *, struct pfctl_entry *);

RB_PROTOTYPE(pfctl_tree, pfctl_entry, entry, pfctl_entry_cmp);
RB_GENERATE(pfctl_tree, pfctl_entry, entry, pfctl_entry_cmp);

static const char *const pfctl_table_names[FW_TABLE_MAX] = {
	[FW_WHITE] =		"white",
	[FW_TRAP] =		"trap",
	[FW_BLOCK] =		"block",
	[FW_SPF_WHITE] =	"spf-white"
};

static struct pfctl_table	 tables[FW_TABLE_MAX];
/* The table being resynced, and its new view so far. */
static int			 resync_table = -1;
static struct pfctl_tree	 resync_view = RB_INITIALIZER(&resync_view);
static size_t			 resync_n;
static int			 started;
static time_t			 full_logged;	/* a table full, then */
static struct event		 ev_tick;

/*
 * The firewall handle (libnftables' netlink socket, /dev/pf) is opened
 * as root; then the process is chrooted and unprivileged like the
 * others, keeping that handle and, on Linux, CAP_NET_ADMIN alone.
 */
void
pfctl_main(const char *user, const char *chroot_dir)
{
	static const struct proc_handlers	 handlers = {
		.peer =			pfctl_dispatch_peer,
		.config_commit =	pfctl_config_commit
	};
	int	 t;

	for (t = 0; t < FW_TABLE_MAX; t++)
		RB_INIT(&tables[t].view);
	pfctl_backend.init();
	proc_drop_privileges(user, chroot_dir, 1);
	if (pledge(pfctl_backend.promises, NULL) == -1)
		fatal("pledge");
	proc_child_run(&handlers);
}

static void
pfctl_dispatch_peer(struct imsgev *iev, struct imsg *imsg)
{
	struct fw_entry	*e;
	size_t		 len = imsg_get_len(imsg), n;
	int		 table;

	if (iev->peer == PROC_CONTROL) {
		if (imsg_get_type(imsg) != IMSG_CTL_SHOW_TABLES)
			fatalx("unexpected imsg %u from control",
			    imsg_get_type(imsg));
		imsg_expect_size(imsg, 0);
		pfctl_show_tables(imsg_get_id(imsg));
		return;
	}
	if (iev->peer != PROC_GREY)
		fatalx("unexpected imsg %u from %s", imsg_get_type(imsg),
		    proc_name(iev->peer));
	switch (imsg_get_type(imsg)) {
	case IMSG_PF_TABLE_START:
	case IMSG_PF_TABLE_END:
		imsg_expect_size(imsg, sizeof(table));
		(void)imsg_get_data(imsg, &table, sizeof(table));
		if (table < 0 || table >= FW_TABLE_MAX)
			fatalx("grey sent a bad table %d", table);
		if (imsg_get_type(imsg) == IMSG_PF_TABLE_START)
			pfctl_resync_start(table);
		else
			pfctl_resync_end(table);
		break;
	case IMSG_PF_TABLE_ADDRS:
	case IMSG_PF_CHANGES:
		if (len % sizeof(*e) != 0)
			fatalx("grey sent a bad table entry size %zu", len);
		n = len / sizeof(*e);
		/* A private copy: entries are masked in place. */
		if ((e = calloc(n == 0 ? 1 : n, sizeof(*e))) == NULL)
			fatal(NULL);
		if (len > 0)
			memcpy(e, imsg->data, len);
		if (imsg_get_type(imsg) == IMSG_PF_TABLE_ADDRS)
			pfctl_resync_addrs(e, n);
		else
			pfctl_changes(e, n);
		free(e);
		break;
	default:
		fatalx("unexpected imsg %u from grey", imsg_get_type(imsg));
	}
}

/*
 * A new configuration (the first, or a reload): the firewall, its table
 * names or the backend may have changed, so every table grey has sent is
 * replaced whole; grey resyncs them too.
 */
static void
pfctl_config_commit(struct smarthost_config *old)
{
	struct timeval	 tv = { PFCTL_TICK, 0 };
	int		 t;

	if (!started) {
		evtimer_set(&ev_tick, pfctl_tick, NULL);
		evtimer_add(&ev_tick, &tv);
		started = 1;
	}
	if (env->firewall.configured && env->firewall.kind != FIREWALL_NONE &&
	    env->firewall.kind != pfctl_backend.kind &&
	    (old == NULL || old->firewall.kind != env->firewall.kind))
		log_warnx("this system's firewall is not the one configured; "
		    "firewall tables are not mirrored");
	if (old != NULL)
		pfctl_empty_old(old);
	for (t = 0; t < FW_TABLE_MAX; t++) {
		tables[t].dirty = 1;
		tables[t].failing = 0;
	}
	pfctl_flush(-1);
}

/*
 * A table the new configuration no longer mirrors into, renamed or
 * dropped, is emptied, so that the ruleset does not go on trusting or
 * blocking what it held; it is not removed (a ruleset may name it).
 */
static void
pfctl_empty_old(const struct smarthost_config *old)
{
	const struct firewall_config	*o = &old->firewall, *n = &env->firewall;
	char				 err[MESSAGE_LEN];
	int				 t, u, kept;

	if (!o->configured || o->kind != pfctl_backend.kind)
		return;
	for (t = 0; t < FW_TABLE_MAX; t++) {
		if (o->tables[t][0] == '\0')
			continue;
		/* Still mirrored into, maybe as another of the tables. */
		kept = 0;
		for (u = 0; u < FW_TABLE_MAX; u++)
			if (n->configured && n->kind == o->kind &&
			    strcmp(n->nft_table, o->nft_table) == 0 &&
			    strcmp(n->tables[u], o->tables[t]) == 0)
				kept = 1;
		if (kept)
			continue;
		if ((pfctl_backend.empty != NULL ?
		    pfctl_backend.empty(o, t, err, sizeof(err)) :
		    pfctl_backend.replace(o, t, NULL, 0, err,
		    sizeof(err))) == -1)
			log_warnx("%s table %s, no longer configured: not "
			    "emptied: %s", pfctl_table_names[t], o->tables[t],
			    err);
		else
			log_info("%s table %s, no longer configured: emptied",
			    pfctl_table_names[t], o->tables[t]);
	}
}

/*
 * Every few seconds: expired entries leave the view.  A firewall without
 * timeouts loses them by a replace; so does one where an expired entry
 * covered others, which must now go in themselves.
 */
static void
pfctl_tick(int fd, short event, void *arg)
{
	struct timeval		 tv = { PFCTL_TICK, 0 };
	struct pfctl_table	*tb;
	struct pfctl_entry	*e, *next;
	time_t			 now = pfctl_now();
	int			 t;

	(void)fd;
	(void)event;
	(void)arg;
	for (t = 0; t < FW_TABLE_MAX; t++) {
		tb = &tables[t];
		RB_FOREACH_SAFE(e, pfctl_tree, &tb->view, next) {
			if (e->expire == 0 || e->expire > now)
				continue;
			if ((!pfctl_backend.expires &&
			    pfctl_covering(&tb->view, &e->addr) == NULL) ||
			    pfctl_covers_others(&tb->view, e))
				tb->dirty = 1;
			RB_REMOVE(pfctl_tree, &tb->view, e);
			free(e);
			tb->n--;
		}
	}
	/* Those the firewall refused wait for the next batch or resync. */
	for (t = 0; t < FW_TABLE_MAX; t++)
		if (!tables[t].failing)
			pfctl_flush(t);
	evtimer_add(&ev_tick, &tv);
}

/*
 * An entry from grey, checked once more, for this process holds the
 * firewall's privileges: anything malformed is a bug or a compromised
 * grey, and stops the daemon.  Host bits of a network are cleared.
 */
static void
pfctl_check(struct fw_entry *e)
{
	uint8_t	 max;

	if (e->addr.af == AF_INET)
		max = 32;
	else if (e->addr.af == AF_INET6)
		max = 128;
	else
		fatalx("grey sent an entry of address family %u", e->addr.af);
	if (e->addr.prefixlen > max)
		fatalx("grey sent a prefix length %u", e->addr.prefixlen);
	if (e->table >= FW_TABLE_MAX)
		fatalx("grey sent an entry of table %u", e->table);
	if (e->add > 1 || e->reserved != 0)
		fatalx("grey sent a malformed entry");
	/* A clock set wrong when grey.mdb was written: no reason to die. */
	if (e->timeout > PFCTL_TIMEOUT_MAX)
		e->timeout = PFCTL_TIMEOUT_MAX;
	pfctl_mask(&e->addr, e->addr.prefixlen);
}

static void
pfctl_resync_start(int table)
{
	if (resync_table != -1)
		fatalx("grey started table %s within table %s",
		    pfctl_table_names[table], pfctl_table_names[resync_table]);
	resync_table = table;
	pfctl_tree_free(&resync_view, &resync_n);
}

static void
pfctl_resync_addrs(const struct fw_entry *entries, size_t n)
{
	struct fw_entry	 e;
	time_t		 now = pfctl_now();
	size_t		 i;

	if (resync_table == -1)
		fatalx("grey sent table entries outside a table");
	for (i = 0; i < n; i++) {
		e = entries[i];
		pfctl_check(&e);
		if (e.table != resync_table || !e.add)
			fatalx("grey sent a table %s entry that does not "
			    "belong", pfctl_table_names[resync_table]);
		(void)pfctl_insert(&resync_view, &resync_n, &e, now);
	}
}

/* The table is whole: it replaces the view, and then the firewall's. */
static void
pfctl_resync_end(int table)
{
	struct pfctl_table	*tb = &tables[table];

	if (table != resync_table)
		fatalx("grey ended table %s, which it did not start",
		    pfctl_table_names[table]);
	pfctl_tree_free(&tb->view, &tb->n);
	tb->view = resync_view;
	tb->n = resync_n;
	RB_INIT(&resync_view);
	resync_n = 0;
	resync_table = -1;
	tb->received = 1;
	tb->dirty = 1;
	log_debug("table %s: %zu addresses and networks from grey",
	    pfctl_table_names[table], tb->n);
	pfctl_flush(table);
}

/*
 * A batch of additions and deletions: into the view, and into the
 * firewall as one transaction of deletions and additions (an addition of
 * an entry already there is both: the firewall keeps the old timeout
 * otherwise).  Tables it cannot change so are replaced whole.
 */
static void
pfctl_changes(struct fw_entry *entries, size_t n)
{
	struct fw_entry	*ops;
	char		 reason[PFCTL_REASON_LEN];
	time_t		 now = pfctl_now();
	size_t		 i, nops = 0;

	for (i = 0; i < n; i++)
		pfctl_check(&entries[i]);
	if ((ops = calloc(n == 0 ? 1 : n, 2 * sizeof(*ops))) == NULL)
		fatal(NULL);
	for (i = 0; i < n; i++)
		nops += pfctl_change(&entries[i], ops + nops, now);
	log_debug("%zu changes from grey, %zu to the firewall", n, nops);
	if (nops > 0 && pfctl_backend.apply != NULL) {
		if (pfctl_backend.apply(&env->firewall, ops, nops, reason,
		    sizeof(reason)) == -1) {
			/* Replacing may well succeed where this did not. */
			log_debug("firewall changes refused: %s", reason);
			for (i = 0; i < nops; i++)
				tables[ops[i].table].dirty = 1;
		}
	} else
		for (i = 0; i < nops; i++)
			tables[ops[i].table].dirty = 1;
	free(ops);
	pfctl_flush(-1);
}

/* One change into the view; the firewall operations it takes, at most 2. */
static int
pfctl_change(struct fw_entry *e, struct fw_entry *ops, time_t now)
{
	struct pfctl_table	*tb = &tables[e->table];
	struct pfctl_entry	 key, *old;
	int			 nops = 0, quiet, covered;

	/* A change during the table's resync belongs to the new view. */
	if (e->table == resync_table) {
		key.addr = e->addr;
		if (e->add)
			(void)pfctl_insert(&resync_view, &resync_n, e, now);
		else if ((old = RB_FIND(pfctl_tree, &resync_view,
		    &key)) != NULL) {
			RB_REMOVE(pfctl_tree, &resync_view, old);
			free(old);
			resync_n--;
		}
		return (0);
	}
	quiet = !pfctl_active(e->table) || tb->dirty;
	key.addr = e->addr;
	old = RB_FIND(pfctl_tree, &tb->view, &key);
	covered = pfctl_covering(&tb->view, &e->addr) != NULL;
	if (e->add) {
		if (old != NULL && !covered && !quiet) {
			ops[nops] = *e;
			ops[nops++].add = 0;
		}
		if ((old = pfctl_insert(&tb->view, &tb->n, e, now)) == NULL)
			return (nops);
		if (covered || quiet)
			return (nops);
		if (pfctl_covers_others(&tb->view, old)) {
			tb->dirty = 1;
			return (0);
		}
		/* The firewall gets the time the view keeps. */
		ops[nops] = *e;
		ops[nops++].timeout = old->expire == 0 ? 0 :
		    (uint32_t)(old->expire - now);
		return (nops);
	}
	if (old == NULL)
		return (0);
	/*
	 * An entry at its end is gone from a firewall that expires them,
	 * and deleting it there again would fail the whole batch.
	 */
	if (!covered && !quiet && pfctl_covers_others(&tb->view, old))
		tb->dirty = 1;
	else if (!covered && !quiet && (!pfctl_backend.expires ||
	    old->expire == 0 || old->expire > now + 1))
		ops[nops++] = *e;
	RB_REMOVE(pfctl_tree, &tb->view, old);
	free(old);
	tb->n--;
	return (nops);
}

/* Replace the marked tables (one, or all for -1) in the firewall. */
static void
pfctl_flush(int table)
{
	int	 t;

	for (t = 0; t < FW_TABLE_MAX; t++) {
		if ((table != -1 && t != table) || !tables[t].dirty ||
		    !tables[t].received || !pfctl_active(t))
			continue;
		(void)pfctl_push(t);
	}
}

static int
pfctl_push(int t)
{
	struct fw_entry	*entries;
	char		 reason[PFCTL_REASON_LEN];
	size_t		 n;
	int		 rv;

	if ((entries = calloc(tables[t].n == 0 ? 1 : tables[t].n,
	    sizeof(*entries))) == NULL)
		fatal(NULL);
	n = pfctl_installed(t, entries, pfctl_now());
	reason[0] = '\0';
	rv = pfctl_backend.replace(&env->firewall, t, entries, n, reason,
	    sizeof(reason));
	free(entries);
	/* Said once; the table stays marked and is tried again later. */
	if (rv == -1) {
		if (!tables[t].failing)
			log_warnx("cannot update firewall table %s, will retry: "
			    "%s", env->firewall.tables[t], reason);
		tables[t].failing = 1;
		return (-1);
	}
	if (tables[t].failing)
		log_info("firewall table %s is updated again",
		    env->firewall.tables[t]);
	tables[t].failing = 0;
	tables[t].dirty = 0;
	tables[t].pushed = time(NULL);
	log_debug("table %s: %zu entries in the firewall",
	    pfctl_table_names[t], n);
	return (0);
}

/* Does the configuration mirror this table into this system's firewall? */
static int
pfctl_active(int t)
{
	return (env != NULL && env->firewall.configured &&
	    env->firewall.kind != FIREWALL_NONE &&
	    env->firewall.kind == pfctl_backend.kind &&
	    env->firewall.tables[t][0] != '\0');
}

/*
 * What the firewall should hold: the view without what expired and
 * without entries inside others.  The walk is in address order, where a
 * network comes just before the entries inside it.
 */
static size_t
pfctl_installed(int t, struct fw_entry *out, time_t now)
{
	struct pfctl_entry	*e;
	const struct fw_addr	*cover = NULL;
	size_t			 n = 0;

	RB_FOREACH(e, pfctl_tree, &tables[t].view) {
		if (e->expire != 0 && e->expire <= now)
			continue;
		if (cover != NULL && pfctl_contains(cover, &e->addr))
			continue;
		cover = &e->addr;
		if (out != NULL) {
			memset(&out[n], 0, sizeof(out[n]));
			out[n].addr = e->addr;
			out[n].table = t;
			out[n].add = 1;
			out[n].timeout = e->expire == 0 ? 0 :
			    (uint32_t)(e->expire - now);
		}
		n++;
	}
	return (n);
}

/*
 * show tables: one line per firewall table, with what the daemon holds
 * and what the firewall says it holds; nothing without a firewall.
 */
static void
pfctl_show_tables(uint32_t client)
{
	struct imsgev		*iev = iev_peer[PROC_CONTROL];
	struct ctl_table_info	 ti;
	int			 t;

	for (t = 0; t < FW_TABLE_MAX; t++) {
		if (!pfctl_active(t))
			continue;
		memset(&ti, 0, sizeof(ti));
		(void)strlcpy(ti.name, env->firewall.tables[t],
		    sizeof(ti.name));
		(void)strlcpy(ti.kind, "firewall", sizeof(ti.kind));
		if (env->firewall.kind == FIREWALL_NFTABLES)
			(void)snprintf(ti.source, sizeof(ti.source),
			    "nftables %s", env->firewall.nft_table);
		else
			(void)strlcpy(ti.source, "pf", sizeof(ti.source));
		ti.count = pfctl_installed(t, NULL, pfctl_now());
		ti.loaded = tables[t].pushed;
		ti.firewall_count = pfctl_backend.count(&env->firewall, t);
		if (imsgev_compose(iev, IMSG_CTL_TABLE_INFO, client, 0, -1,
		    &ti, sizeof(ti)) == -1)
			fatal("pfctl_show_tables");
	}
	if (imsgev_compose(iev, IMSG_CTL_END, client, 0, -1, NULL, 0) == -1)
		fatal("pfctl_show_tables");
}

/* Add an entry to a view, or give one there its new expiry. */
static struct pfctl_entry *
pfctl_insert(struct pfctl_tree *tree, size_t *n, const struct fw_entry *fe,
    time_t now)
{
	struct pfctl_entry	*e, *old;

	if ((e = calloc(1, sizeof(*e))) == NULL)
		fatal(NULL);
	e->addr = fe->addr;
	e->expire = fe->timeout == 0 ? 0 : now + fe->timeout;
	if ((old = RB_INSERT(pfctl_tree, tree, e)) != NULL) {
		/*
		 * Sources that share an address (a blocklist, a trap, an
		 * AUTH block): the longest time wins, and 0 is forever.
		 */
		if (old->expire != 0 && (e->expire == 0 ||
		    e->expire > old->expire))
			old->expire = e->expire;
		free(e);
		return (old);
	}
	if (*n >= PFCTL_ENTRIES_MAX) {
		RB_REMOVE(pfctl_tree, tree, e);
		free(e);
		if (now - full_logged >= 60) {
			log_warnx("a table is full at %d entries; the rest "
			    "is left out", PFCTL_ENTRIES_MAX);
			full_logged = now;
		}
		return (NULL);
	}
	++*n;
	return (e);
}

/* A shorter prefix of the view that holds this address, if any. */
static struct pfctl_entry *
pfctl_covering(struct pfctl_tree *tree, const struct fw_addr *a)
{
	struct pfctl_entry	 key, *e;
	int			 len;

	for (len = 0; len < a->prefixlen; len++) {
		key.addr = *a;
		key.addr.prefixlen = len;
		pfctl_mask(&key.addr, len);
		if ((e = RB_FIND(pfctl_tree, tree, &key)) != NULL)
			return (e);
	}
	return (NULL);
}

/* Are there entries inside this one?  The next in order would be one. */
static int
pfctl_covers_others(struct pfctl_tree *tree, struct pfctl_entry *e)
{
	struct pfctl_entry	*next;

	(void)tree;
	next = RB_NEXT(pfctl_tree, tree, e);
	return (next != NULL && pfctl_contains(&e->addr, &next->addr));
}

static int
pfctl_contains(const struct fw_addr *net, const struct fw_addr *a)
{
	struct fw_addr	 m;

	if (net->af != a->af || net->prefixlen > a->prefixlen)
		return (0);
	m = *a;
	pfctl_mask(&m, net->prefixlen);
	return (memcmp(m.addr, net->addr, sizeof(m.addr)) == 0);
}

/* Clear the bits past len, and all past the family's address length. */
static void
pfctl_mask(struct fw_addr *a, uint8_t len)
{
	size_t	 i, bytes = a->af == AF_INET ? 4 : 16;

	for (i = 0; i < sizeof(a->addr); i++) {
		if (i >= bytes || i * 8 >= len)
			a->addr[i] = 0;
		else if (i * 8 + 8 > len)
			a->addr[i] &= 0xff << (8 - (len - i * 8));
	}
}

static void
pfctl_tree_free(struct pfctl_tree *tree, size_t *n)
{
	struct pfctl_entry	*e, *next;

	RB_FOREACH_SAFE(e, pfctl_tree, tree, next) {
		RB_REMOVE(pfctl_tree, tree, e);
		free(e);
	}
	*n = 0;
}

static time_t
pfctl_now(void)
{
	struct timespec	 ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
		fatal("clock_gettime");
	return (ts.tv_sec);
}

int
pfctl_entry_cmp(struct pfctl_entry *a, struct pfctl_entry *b)
{
	int	 r;

	if (a->addr.af != b->addr.af)
		return (a->addr.af < b->addr.af ? -1 : 1);
	if ((r = memcmp(a->addr.addr, b->addr.addr, sizeof(a->addr.addr))) != 0)
		return (r);
	if (a->addr.prefixlen != b->addr.prefixlen)
		return (a->addr.prefixlen < b->addr.prefixlen ? -1 : 1);
	return (0);
}
