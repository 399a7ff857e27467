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
 * The grey process's address lists: the blocklist and whitelist files
 * (their contents come as descriptors from the parent and are read a
 * slice per loop turn), the greylist whitelist table, and the
 * spf-whitelist domains expanded into networks, whose union skips
 * greylisting and goes to the pf process as a table.
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>

#include <event.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "smarthostd.h"
#include "grey.h"

#define GREY_LOAD_LINES		20000	/* list file lines per loop turn */
#define GREY_SPF_RETRY		300	/* a failed expansion, again after */

static struct grey_list *grey_list_find(const char *);
static void	 grey_list_step(int, short, void *);
static void	 spf_white_start(struct spf_domain *);
static void	 spf_white_done(void *, int, const char *const *, size_t,
		    const char *);
static void	 spf_white_rebuild(void);

struct grey_lists		 grey_lists =
				    TAILQ_HEAD_INITIALIZER(grey_lists);
struct spf_domains		 spf_domains =
				    TAILQ_HEAD_INITIALIZER(spf_domains);
struct addrset			*spf_white;
time_t				 spf_white_built;

static struct event		 ev_load;
struct addrset			*whitelist_set;
static int			 spf_white_dirty;

void
grey_lists_init(void)
{
	evtimer_set(&ev_load, grey_list_step, NULL);
}

/*
 * Blocklist and whitelist files.  The lists follow the configuration;
 * their contents arrive as descriptors from the parent, which watches
 * the files, and are read a slice per loop turn.
 */
void
grey_lists_config(void)
{
	struct grey_list	*l, *next;
	struct blocklist	*b;

	TAILQ_FOREACH(l, &grey_lists, entry)
		l->seen = 0;
	TAILQ_FOREACH(b, &env->blocklists, entry) {
		if ((l = grey_list_find(b->name)) == NULL) {
			if ((l = calloc(1, sizeof(*l))) == NULL)
				fatal("grey_lists_config");
			(void)strlcpy(l->name, b->name, sizeof(l->name));
			TAILQ_INSERT_TAIL(&grey_lists, l, entry);
		}
		(void)strlcpy(l->path, b->path, sizeof(l->path));
		(void)strlcpy(l->message, b->message, sizeof(l->message));
		l->white = b->white;
		l->seen = 1;
	}
	TAILQ_FOREACH_SAFE(l, &grey_lists, entry, next) {
		if (l->seen)
			continue;
		TAILQ_REMOVE(&grey_lists, l, entry);
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

	TAILQ_FOREACH(l, &grey_lists, entry)
		if (strcmp(l->name, name) == 0)
			return (l);
	return (NULL);
}

void
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
	int			 more = 0, rc, resync_block = 0;

	(void)fd;
	(void)event;
	(void)arg;
	TAILQ_FOREACH(l, &grey_lists, entry) {
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
		/* Blocklists, and whitelists that subtract from them. */
		resync_block = env->firewall.block_blocklists;
	}
	if (resync_block)
		grey_fw_resync(FW_BLOCK);
	if (more)
		evtimer_add(&ev_load, &now);
}

/* The greylist whitelist table as an address set. */
void
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

/* The white list table: never greylisted, blocked or tarpitted. */
int
grey_whitelisted(const struct sockaddr_storage *ss)
{
	return (whitelist_set != NULL && addrset_contains(whitelist_set, ss));
}

/*
 * spf-whitelist: each domain of the table is expanded into networks
 * every refresh; the union skips greylisting and goes to pf.  What a
 * domain expanded to last is kept in grey.mdb, so a restart has it
 * before DNS answers.
 */
void
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

/*
 * From grey's tick: start the expansions that are due, and rebuild the
 * spf-white set if expansions finished.
 */
void
spf_white_tick(time_t now)
{
	struct spf_domain	*d;

	TAILQ_FOREACH(d, &spf_domains, entry)
		if (!d->pending && d->next <= now)
			spf_white_start(d);
	if (spf_white_dirty)
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
	grey_fw_resync(FW_SPF_WHITE);
}

