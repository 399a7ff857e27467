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
 * What grey tells the pf process: the white, trap, block and spf-white
 * tables as binary entries with the time they have left.  Each table is
 * resent whole (a resync) when the daemon starts or reloads and when a
 * list it is made of changes; between resyncs, additions and deletions
 * collect and go once a second.  The pf process checks every entry again
 * and owns the firewall; grey never talks to it otherwise.
 *
 * The block table holds the clients that failed AUTH too often (kept in
 * grey.mdb, so a restart keeps them), trapped clients with
 * "block trapped yes", and the blocklists' networks with
 * "block blocklists yes".
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/tree.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "smarthostd.h"
#include "grey.h"

#define FW_CHUNK		2048	/* fw_entry per imsg */
#define FW_WALK_PAGE		4096
#define FW_AUTH_CLIENTS_MAX	65536	/* clients whose failures count */
#define FW_REFRESH_MIN		3600	/* a white refresh worth sending */
#define FW_TIMEOUT_MAX		(10U * 365 * 86400)	/* as durations */

/* A client's failed AUTHs within the window. */
struct auth_failures {
	RB_ENTRY(auth_failures)	 entry;
	char			 key[HOSTNAME_LEN];
	uint32_t		 count;
	time_t			 since;
};
RB_HEAD(auth_clients, auth_failures);

struct fw_resync {
	enum firewall_table	 table;
	time_t			 now;
	int			 only_trapped;
};

static int	 grey_fw_on(enum firewall_table);
static int	 grey_fw_key_addr(const char *, struct fw_addr *);
static void	 grey_fw_put(struct fw_entry *);
static void	 grey_fw_walk(enum grey_list_kind, struct fw_resync *);
static struct addrset *grey_fw_minus(struct addrset *, const struct addrset *,
		    const struct addrset *);
static void	 grey_fw_walk_entry(const struct ctl_grey_entry *, void *);
static void	 grey_fw_set_entry(const struct fw_addr *, void *);
static int	 grey_fw_own(const struct sockaddr_storage *);
int		 auth_failures_cmp(struct auth_failures *,
		    struct auth_failures *);

RB_PROTOTYPE(auth_clients, auth_failures, entry, auth_failures_cmp);
RB_GENERATE(auth_clients, auth_failures, entry, auth_failures_cmp);

static struct fw_entry		 changes[FW_CHUNK];
static size_t			 nchanges;
static struct fw_entry		 resync[FW_CHUNK];
static size_t			 nresync;
static struct auth_clients	 auth_clients = RB_INITIALIZER(&auth_clients);
static size_t			 nauth_clients;

/* Does the configuration mirror this table into a firewall? */
static int
grey_fw_on(enum firewall_table table)
{
	return (env->firewall.configured &&
	    env->firewall.kind != FIREWALL_NONE &&
	    env->firewall.tables[table][0] != '\0' &&
	    iev_peer[PROC_PF] != NULL);
}

/* A client key ("192.0.2.1", "2001:db8::/64") as an address entry. */
static int
grey_fw_key_addr(const char *key, struct fw_addr *a)
{
	struct sockaddr_storage	 ss;
	char			 buf[INET6_ADDRSTRLEN + 5], *slash;
	const char		*errstr;
	long long		 len;

	if (strlcpy(buf, key, sizeof(buf)) >= sizeof(buf))
		return (-1);
	len = -1;
	if ((slash = strchr(buf, '/')) != NULL) {
		*slash++ = '\0';
		len = strtonum(slash, 0, 128, &errstr);
		if (errstr != NULL)
			return (-1);
	}
	if (grey_parse_addr(buf, &ss) == -1)
		return (-1);
	memset(a, 0, sizeof(*a));
	if (ss.ss_family == AF_INET) {
		a->af = AF_INET;
		memcpy(a->addr, &((struct sockaddr_in *)&ss)->sin_addr, 4);
		a->prefixlen = len == -1 ? 32 : (uint8_t)len;
		return (len > 32 ? -1 : 0);
	}
	a->af = AF_INET6;
	memcpy(a->addr, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
	a->prefixlen = len == -1 ? 128 : (uint8_t)len;
	return (0);
}

/*
 * A client was added to (add = 1) or taken from a table; timeout is the
 * time it has left, 0 for none.  Keys that are not addresses (an SPF
 * domain's tuples never get here) are ignored.
 */
void
grey_fw_change(enum firewall_table table, const char *key, int add,
    time_t timeout)
{
	struct fw_entry	 e;

	if (!grey_fw_on(table))
		return;
	/* An entry with no time left (whiteexp 0) is no entry at all. */
	if (add && timeout <= 0)
		return;
	memset(&e, 0, sizeof(e));
	if (grey_fw_key_addr(key, &e.addr) == -1)
		return;
	e.table = table;
	e.add = add;
	e.timeout = timeout > FW_TIMEOUT_MAX ? FW_TIMEOUT_MAX : (uint32_t)timeout;
	changes[nchanges++] = e;
	if (nchanges == FW_CHUNK)
		grey_fw_flush();
}

/*
 * A white client's entry was renewed: worth telling once an hour, or
 * twice a whiteexp when that is shorter.
 */
void
grey_fw_white_renewed(const char *key, time_t was, time_t now)
{
	time_t	 every = env->greylist.whiteexp / 2;

	if (every > FW_REFRESH_MIN)
		every = FW_REFRESH_MIN;
	if (now + env->greylist.whiteexp - was >= every)
		grey_fw_change(FW_WHITE, key, 1, env->greylist.whiteexp);
}

/* Once a second: the changes collected since. */
void
grey_fw_flush(void)
{
	if (nchanges == 0)
		return;
	if (iev_peer[PROC_PF] != NULL && imsgev_compose(iev_peer[PROC_PF],
	    IMSG_PF_CHANGES, 0, 0, -1, changes,
	    nchanges * sizeof(changes[0])) == -1)
		fatal("grey_fw_flush");
	nchanges = 0;
}

/* Every table, as the configuration has them: at start and on reload. */
void
grey_fw_resync_all(void)
{
	enum firewall_table	 t;

	for (t = 0; t < FW_TABLE_MAX; t++)
		grey_fw_resync(t);
}

/* One table, whole; pending changes go first so that none is lost. */
void
grey_fw_resync(enum firewall_table table)
{
	struct fw_resync	 r;
	struct grey_list	*l, *w;
	struct addrset		*set;
	int			 t = table;

	if (!grey_fw_on(table))
		return;
	grey_fw_flush();
	if (imsgev_compose(iev_peer[PROC_PF], IMSG_PF_TABLE_START, 0, 0, -1,
	    &t, sizeof(t)) == -1)
		fatal("grey_fw_resync");
	memset(&r, 0, sizeof(r));
	r.table = table;
	r.now = time(NULL);
	nresync = 0;
	switch (table) {
	case FW_WHITE:
		grey_fw_walk(GREY_LIST_WHITE, &r);
		break;
	case FW_TRAP:
		grey_fw_walk(GREY_LIST_TRAP, &r);
		break;
	case FW_BLOCK:
		/* Blocked and trapped clients are never whitelisted ones. */
		grey_fw_walk(GREY_LIST_BLOCK, &r);
		if (env->firewall.block_trapped) {
			r.only_trapped = 1;
			grey_fw_walk(GREY_LIST_TRAP, &r);
		}
		if (!env->firewall.block_blocklists)
			break;
		TAILQ_FOREACH(l, &grey_lists, entry) {
			if (l->white || l->set == NULL)
				continue;
			/*
			 * As at connect: the whitelist table and the
			 * whitelist files take them off.
			 */
			set = l->set;
			TAILQ_FOREACH(w, &grey_lists, entry) {
				if (!w->white || w->set == NULL)
					continue;
				set = grey_fw_minus(set, w->set, l->set);
			}
			if (whitelist_set != NULL)
				set = grey_fw_minus(set, whitelist_set, l->set);
			(void)addrset_walk(set, grey_fw_set_entry, &r);
			if (set != l->set)
				addrset_free(set);
		}
		break;
	case FW_SPF_WHITE:
		if (spf_white != NULL)
			(void)addrset_walk(spf_white, grey_fw_set_entry, &r);
		break;
	case FW_TABLE_MAX:
		break;
	}
	if (nresync > 0 && imsgev_compose(iev_peer[PROC_PF],
	    IMSG_PF_TABLE_ADDRS, 0, 0, -1, resync,
	    nresync * sizeof(resync[0])) == -1)
		fatal("grey_fw_resync");
	nresync = 0;
	if (imsgev_compose(iev_peer[PROC_PF], IMSG_PF_TABLE_END, 0, 0, -1,
	    &t, sizeof(t)) == -1)
		fatal("grey_fw_resync");
}

/* set less white; the set given is freed unless it is the list's own. */
static struct addrset *
grey_fw_minus(struct addrset *set, const struct addrset *white,
    const struct addrset *own)
{
	struct addrset	*minus;

	if ((minus = addrset_subtract(set, white)) == NULL)
		fatal("grey_fw_resync");
	if (set != own)
		addrset_free(set);
	return (minus);
}

static void
grey_fw_walk(enum grey_list_kind kind, struct fw_resync *r)
{
	struct greydb_walk	 w;

	memset(&w, 0, sizeof(w));
	w.kind = kind;
	while (greydb_walk_page(&w, FW_WALK_PAGE, grey_fw_walk_entry, r) == 0)
		;
	r->only_trapped = 0;
}

static void
grey_fw_put(struct fw_entry *e)
{
	resync[nresync++] = *e;
	if (nresync < FW_CHUNK)
		return;
	if (imsgev_compose(iev_peer[PROC_PF], IMSG_PF_TABLE_ADDRS, 0, 0, -1,
	    resync, sizeof(resync)) == -1)
		fatal("grey_fw_resync");
	nresync = 0;
}

/* A grey.mdb entry that is still in force, with the time it has left. */
static void
grey_fw_walk_entry(const struct ctl_grey_entry *ge, void *arg)
{
	struct fw_resync	*r = arg;
	struct fw_entry		 e;

	if (r->only_trapped && strcmp(ge->type, "TRAPPED") != 0)
		return;
	if (strcmp(ge->type, "SPAMTRAP") == 0 || ge->expire <= r->now)
		return;
	memset(&e, 0, sizeof(e));
	if (grey_fw_key_addr(ge->key, &e.addr) == -1)
		return;
	e.table = r->table;
	e.add = 1;
	e.timeout = ge->expire - r->now > FW_TIMEOUT_MAX ? FW_TIMEOUT_MAX :
	    (uint32_t)(ge->expire - r->now);
	grey_fw_put(&e);
}

/* A network of a list: no timeout, it stays while the list has it. */
static void
grey_fw_set_entry(const struct fw_addr *a, void *arg)
{
	struct fw_resync	*r = arg;
	struct fw_entry		 e;

	memset(&e, 0, sizeof(e));
	e.addr = *a;
	e.table = r->table;
	e.add = 1;
	grey_fw_put(&e);
}

/*
 * This host's own loopback address: mail submitted on the host itself
 * (a webmail) must not lock the host out over one stale password.
 */
static int
grey_fw_own(const struct sockaddr_storage *ss)
{
	const struct sockaddr_in	*sin = (const struct sockaddr_in *)ss;
	const struct sockaddr_in6	*sin6 = (const struct sockaddr_in6 *)ss;

	if (ss->ss_family == AF_INET)
		return (ntohl(sin->sin_addr.s_addr) == INADDR_LOOPBACK);
	if (ss->ss_family == AF_INET6)
		return (IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr));
	return (0);
}

int
auth_failures_cmp(struct auth_failures *a, struct auth_failures *b)
{
	return (strcmp(a->key, b->key));
}

/*
 * smtp reports a failed AUTH.  Past "block auth-failures N within D",
 * the client goes to the block table for the configured time.
 */
void
grey_auth_failed(const struct sockaddr_storage *client)
{
	struct auth_failures	 find, *c, *next;
	const struct firewall_config *fw = &env->firewall;
	time_t			 now = time(NULL);

	if (fw->block_auth_failures == 0 || grey_whitelisted(client) ||
	    grey_fw_own(client) || addr_client_key(client,
	    env->greylist.ipv6_prefix, find.key, sizeof(find.key)) == -1)
		return;
	if ((c = RB_FIND(auth_clients, &auth_clients, &find)) == NULL) {
		if (nauth_clients >= FW_AUTH_CLIENTS_MAX)
			RB_FOREACH_SAFE(c, auth_clients, &auth_clients, next)
				if (now - c->since > fw->block_auth_within) {
					RB_REMOVE(auth_clients, &auth_clients,
					    c);
					nauth_clients--;
					free(c);
				}
		/* Still full: one goes, so that filling it buys nothing. */
		if (nauth_clients >= FW_AUTH_CLIENTS_MAX &&
		    (c = RB_ROOT(&auth_clients)) != NULL) {
			RB_REMOVE(auth_clients, &auth_clients, c);
			nauth_clients--;
			free(c);
		}
		if ((c = calloc(1, sizeof(*c))) == NULL)
			fatal("grey_auth_failed");
		(void)strlcpy(c->key, find.key, sizeof(c->key));
		RB_INSERT(auth_clients, &auth_clients, c);
		nauth_clients++;
	}
	if (c->count == 0 || now - c->since > fw->block_auth_within) {
		c->count = 0;
		c->since = now;
	}
	if (++c->count < fw->block_auth_failures)
		return;
	RB_REMOVE(auth_clients, &auth_clients, c);
	nauth_clients--;
	log_info("blocked %s for %lld seconds: %u failed AUTHs", c->key,
	    (long long)fw->block_auth_for, c->count);
	if (greydb_block_client(c->key, now, now + fw->block_auth_for) == 0)
		grey_fw_change(FW_BLOCK, c->key, 1, fw->block_auth_for);
	free(c);
}
