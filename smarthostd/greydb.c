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
 * grey.mdb: the greylist state machine and what it remembers.
 *
 * One LMDB file (MDB_NOSUBDIR) with these databases:
 *
 *	grey	 "client\nhelo\nsender\nrcpt" -> record: tuples seen
 *	white	 client -> record: clients that passed
 *	trap	 client -> record: clients that mailed a spamtrap
 *	spamtrap address -> record: spamtrap addresses added at run time
 *	learned	 domain -> record: domains our users mailed
 *	spfnets	 domain -> time, then its networks, one per line
 *	expiry	 be64(expire) kind key -> "": every record by expiry time
 *
 * A client is an address, an IPv6 prefix ("2001:db8::/64") or, for a
 * tuple whose sender's SPF passed, "spf:domain".  Records are fixed
 * binary structures with a version, checked on every load.
 *
 * Greylist state need not survive a crash to the last decision: losing
 * one means a retry is greylisted once more.  So writes collect in one
 * write transaction that greydb_commit() ends, which grey.c does every
 * second, and each commit is a normal, synced LMDB commit: never a
 * corrupt file after a power loss, at the price of one fsync a second
 * rather than one per RCPT.
 *
 * Time is always passed in, so that the unit test drives the clock.
 */

#include <sys/types.h>

#include <ctype.h>
#include <errno.h>
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smarthostd.h"

#define GREYDB_MAXDBS		10
#define GREYDB_VERSION		1
#define GREYDB_KEY_MAX		480	/* LMDB's limit is 511 */
#define GREYDB_KEY_HASHED	(GREYDB_KEY_MAX - 17)
#define GREYDB_TUPLE_MAX	(HOSTNAME_LEN * 2 + SMTP_ADDR_LEN * 2 + 4)
#define GREYDB_DIRTY_MAX	20000	/* writes before a forced commit */
#define GREYDB_SPF_NETS_MAX	(256 * 1024)
#define GREYDB_MAP_NEW_PCT	85	/* new tuples only below this use */

enum greydb_kind {
	KIND_GREY = 1,
	KIND_WHITE,
	KIND_TRAP,
	KIND_LEARNED,
	KIND_BLOCKED,		/* for the firewall's block table */
	KIND_SPAMTRAP		/* walks only: not in the expiry index */
};

struct greydb_record {
	uint32_t	 version;
	uint32_t	 blocked;
	uint32_t	 passed;
	uint32_t	 reserved;
	int64_t		 first;
	int64_t		 pass;
	int64_t		 expire;
};

static MDB_env		*grey_env;
static MDB_txn		*grey_txn;
static size_t		 grey_dirty;
static MDB_dbi		 dbi_grey, dbi_white, dbi_trap, dbi_spamtrap,
			 dbi_learned, dbi_spfnets, dbi_expiry, dbi_blocked;

static MDB_txn	*greydb_txn(void);
static void	 greydb_abort(void);
static int	 greydb_failed(const char *, int);
static MDB_dbi	 greydb_dbi(enum greydb_kind);
static int	 greydb_get(enum greydb_kind, char *, size_t,
		    struct greydb_record *);
static int	 greydb_put(enum greydb_kind, char *, size_t,
		    const struct greydb_record *, const struct greydb_record *);
static int	 greydb_del(enum greydb_kind, char *, size_t,
		    const struct greydb_record *);
static int	 greydb_index(enum greydb_kind, const char *, size_t, int64_t,
		    int);
static size_t	 greydb_tuple_key(const struct grey_tuple *, char *, size_t);
static size_t	 greydb_long_key(const char *, char *, size_t);
static size_t	 greydb_lower_key(const char *, char *, size_t);
static void	 greydb_entry(enum greydb_kind, const MDB_val *,
		    const struct greydb_record *, struct ctl_grey_entry *);
static size_t	 greydb_walk_dbi(int, struct greydb_walk *, size_t,
		    void (*)(const struct ctl_grey_entry *, void *), void *);
static size_t	 greydb_delete_tuples(const char *, size_t);
static int	 greydb_room_for_new(void);
static int	 greydb_touch(enum greydb_kind, const char *, time_t, time_t,
		    uint32_t, uint32_t);

int
greydb_open(const char *dir, uint64_t map_size)
{
	char		 path[PATH_MAX];
	MDB_txn		*txn;
	int		 rc;

	if ((size_t)snprintf(path, sizeof(path), "%s/grey.mdb", dir) >=
	    sizeof(path)) {
		log_warnx("grey.mdb: path too long");
		return (-1);
	}
	if ((rc = mdb_env_create(&grey_env)) != 0)
		return (greydb_failed("mdb_env_create", rc));
	if ((rc = mdb_env_set_maxdbs(grey_env, GREYDB_MAXDBS)) != 0 ||
	    (rc = mdb_env_set_mapsize(grey_env, map_size)) != 0 ||
	    (rc = mdb_env_open(grey_env, path, MDB_NOSUBDIR, 0600)) != 0) {
		mdb_env_close(grey_env);
		grey_env = NULL;
		log_warnx("%s: %s", path, mdb_strerror(rc));
		return (-1);
	}
	if ((rc = mdb_txn_begin(grey_env, NULL, 0, &txn)) != 0 ||
	    (rc = mdb_dbi_open(txn, "grey", MDB_CREATE, &dbi_grey)) != 0 ||
	    (rc = mdb_dbi_open(txn, "white", MDB_CREATE, &dbi_white)) != 0 ||
	    (rc = mdb_dbi_open(txn, "trap", MDB_CREATE, &dbi_trap)) != 0 ||
	    (rc = mdb_dbi_open(txn, "spamtrap", MDB_CREATE,
	    &dbi_spamtrap)) != 0 ||
	    (rc = mdb_dbi_open(txn, "learned", MDB_CREATE,
	    &dbi_learned)) != 0 ||
	    (rc = mdb_dbi_open(txn, "spfnets", MDB_CREATE,
	    &dbi_spfnets)) != 0 ||
	    (rc = mdb_dbi_open(txn, "expiry", MDB_CREATE, &dbi_expiry)) != 0 ||
	    (rc = mdb_dbi_open(txn, "blocked", MDB_CREATE,
	    &dbi_blocked)) != 0 ||
	    (rc = mdb_txn_commit(txn)) != 0) {
		log_warnx("%s: %s", path, mdb_strerror(rc));
		mdb_env_close(grey_env);
		grey_env = NULL;
		return (-1);
	}
	return (0);
}

void
greydb_close(void)
{
	if (grey_env == NULL)
		return;
	(void)greydb_commit();
	mdb_env_close(grey_env);
	grey_env = NULL;
}

/*
 * End the write transaction that collects every change.  Returns -1
 * when the commit failed: the changes since the last commit are lost,
 * which greylisting survives.
 */
int
greydb_commit(void)
{
	int	 rc;

	if (grey_txn == NULL)
		return (0);
	rc = mdb_txn_commit(grey_txn);
	grey_txn = NULL;
	grey_dirty = 0;
	if (rc != 0) {
		log_warnx("grey.mdb: commit: %s", mdb_strerror(rc));
		return (-1);
	}
	return (0);
}

/*
 * A consistent, compacted copy of grey.mdb at path (which must not
 * exist), for a backup.  What was written is committed first, so the
 * copy holds it.  The copy runs in a read transaction and blocks the
 * process until it is done.  Returns -1 with the reason in why.
 */
int
greydb_backup(const char *path, char *why, size_t len)
{
	int	 rc;

	if (grey_env == NULL) {
		(void)strlcpy(why, "grey.mdb is not open", len);
		return (-1);
	}
	if (greydb_commit() == -1) {
		(void)strlcpy(why, "grey.mdb: commit failed", len);
		return (-1);
	}
	if ((rc = mdb_env_copy2(grey_env, path, MDB_CP_COMPACT)) != 0) {
		(void)snprintf(why, len, "grey.mdb: copy: %s",
		    mdb_strerror(rc));
		return (-1);
	}
	return (0);
}

static MDB_txn *
greydb_txn(void)
{
	int	 rc;

	if (grey_env == NULL)
		return (NULL);
	if (grey_txn != NULL && grey_dirty >= GREYDB_DIRTY_MAX)
		(void)greydb_commit();
	if (grey_txn == NULL &&
	    (rc = mdb_txn_begin(grey_env, NULL, 0, &grey_txn)) != 0) {
		grey_txn = NULL;
		log_warnx("grey.mdb: begin: %s", mdb_strerror(rc));
	}
	return (grey_txn);
}

/* After a failed write LMDB wants the transaction gone. */
static void
greydb_abort(void)
{
	if (grey_txn != NULL)
		mdb_txn_abort(grey_txn);
	grey_txn = NULL;
	grey_dirty = 0;
}

static int
greydb_failed(const char *what, int rc)
{
	log_warnx("grey.mdb: %s: %s", what, mdb_strerror(rc));
	if (rc != MDB_NOTFOUND && rc != MDB_KEYEXIST)
		greydb_abort();
	return (-1);
}

static MDB_dbi
greydb_dbi(enum greydb_kind kind)
{
	switch (kind) {
	case KIND_GREY:
		return (dbi_grey);
	case KIND_WHITE:
		return (dbi_white);
	case KIND_TRAP:
		return (dbi_trap);
	case KIND_LEARNED:
		return (dbi_learned);
	case KIND_BLOCKED:
		return (dbi_blocked);
	case KIND_SPAMTRAP:
		return (dbi_spamtrap);
	}
	fatalx("greydb: bad kind %d", kind);
}

/* 1: found and valid, 0: not there (or unreadable), -1: error. */
static int
greydb_get(enum greydb_kind kind, char *key, size_t len,
    struct greydb_record *rec)
{
	MDB_txn	*txn;
	MDB_val	 k, v;
	int	 rc;

	if ((txn = greydb_txn()) == NULL)
		return (-1);
	k.mv_data = key;
	k.mv_size = len;
	if ((rc = mdb_get(txn, greydb_dbi(kind), &k, &v)) == MDB_NOTFOUND)
		return (0);
	if (rc != 0)
		return (greydb_failed("get", rc));
	if (v.mv_size != sizeof(*rec))
		return (0);
	memcpy(rec, v.mv_data, sizeof(*rec));
	if (rec->version != GREYDB_VERSION)
		return (0);
	return (1);
}

/* Store rec; old, when not NULL, is the record it replaces. */
static int
greydb_put(enum greydb_kind kind, char *key, size_t len,
    const struct greydb_record *rec, const struct greydb_record *old)
{
	struct greydb_record	 copy = *rec;
	MDB_txn			*txn;
	MDB_val			 k, v;
	int			 rc;

	if ((txn = greydb_txn()) == NULL)
		return (-1);
	if (old != NULL && old->expire != rec->expire &&
	    greydb_index(kind, key, len, old->expire, 0) == -1)
		return (-1);
	k.mv_data = key;
	k.mv_size = len;
	v.mv_data = &copy;
	v.mv_size = sizeof(copy);
	if ((rc = mdb_put(txn, greydb_dbi(kind), &k, &v, 0)) != 0)
		return (greydb_failed("put", rc));
	if ((old == NULL || old->expire != rec->expire) &&
	    greydb_index(kind, key, len, rec->expire, 1) == -1)
		return (-1);
	grey_dirty++;
	return (0);
}

static int
greydb_del(enum greydb_kind kind, char *key, size_t len,
    const struct greydb_record *old)
{
	MDB_txn	*txn;
	MDB_val	 k;
	int	 rc;

	if ((txn = greydb_txn()) == NULL)
		return (-1);
	k.mv_data = key;
	k.mv_size = len;
	rc = mdb_del(txn, greydb_dbi(kind), &k, NULL);
	if (rc == MDB_NOTFOUND)
		return (0);
	if (rc != 0)
		return (greydb_failed("del", rc));
	grey_dirty++;
	if (old != NULL && greydb_index(kind, key, len, old->expire, 0) == -1)
		return (-1);
	return (1);
}

/* Add (add = 1) or remove a record's entry in the expiry index. */
static int
greydb_index(enum greydb_kind kind, const char *key, size_t len,
    int64_t expire, int add)
{
	unsigned char	 buf[9 + GREYDB_KEY_MAX];
	uint64_t	 t = expire < 0 ? 0 : (uint64_t)expire;
	MDB_val		 k, v;
	int		 i, rc;

	if (len > GREYDB_KEY_MAX)
		fatalx("greydb_index: key too long");
	for (i = 0; i < 8; i++)
		buf[i] = (unsigned char)(t >> (56 - 8 * i));
	buf[8] = (unsigned char)kind;
	memcpy(buf + 9, key, len);
	k.mv_data = buf;
	k.mv_size = 9 + len;
	v.mv_data = NULL;
	v.mv_size = 0;
	if (add)
		rc = mdb_put(grey_txn, dbi_expiry, &k, &v, 0);
	else if ((rc = mdb_del(grey_txn, dbi_expiry, &k, NULL)) ==
	    MDB_NOTFOUND)
		rc = 0;
	if (rc != 0)
		return (greydb_failed("expiry index", rc));
	return (0);
}

/*
 * A tuple's key, lower-cased: its fields joined by newlines, which no
 * field can hold.
 */
static size_t
greydb_tuple_key(const struct grey_tuple *t, char *buf, size_t size)
{
	char	 full[GREYDB_TUPLE_MAX];
	int	 n;

	n = snprintf(full, sizeof(full), "%s\n%s\n%s\n%s", t->client,
	    t->helo, t->sender, t->rcpt);
	if (n < 0 || (size_t)n >= sizeof(full))
		fatalx("greydb_tuple_key");
	return (greydb_long_key(full, buf, size));
}

/*
 * A key lower-cased into buf.  One longer than LMDB takes keeps its
 * first part and a hash of the whole, so that distinct long tuples
 * (a 255-character HELO and long addresses) stay distinct.
 */
static size_t
greydb_long_key(const char *s, char *buf, size_t size)
{
	uint64_t	 h = 14695981039346656037ULL;
	size_t		 len, i;

	if (size <= GREYDB_KEY_MAX)
		fatalx("greydb_long_key: buffer too small");
	for (len = 0; s[len] != '\0'; len++) {
		h ^= (unsigned char)tolower((unsigned char)s[len]);
		h *= 1099511628211ULL;
	}
	if (len <= GREYDB_KEY_MAX)
		return (greydb_lower_key(s, buf, size));
	for (i = 0; i < GREYDB_KEY_HASHED; i++)
		buf[i] = (char)tolower((unsigned char)s[i]);
	(void)snprintf(buf + GREYDB_KEY_HASHED, size - GREYDB_KEY_HASHED,
	    "#%016llx", (unsigned long long)h);
	return (GREYDB_KEY_HASHED + 17);
}

/* A short key (a client, an address, a domain) lower-cased into buf. */
static size_t
greydb_lower_key(const char *s, char *buf, size_t size)
{
	size_t	 i;

	for (i = 0; s[i] != '\0' && i + 1 < size && i < GREYDB_KEY_MAX; i++)
		buf[i] = (char)tolower((unsigned char)s[i]);
	buf[i] = '\0';
	return (i);
}

/*
 * spamd's state machine for one tuple.  A new tuple is recorded and
 * greylisted; a retry before passtime is greylisted; a retry between
 * passtime and greyexp passes, the tuple goes and white_key becomes
 * white for whiteexp.  A tuple past greyexp starts over.
 */
enum grey_verdict
greydb_check(const struct greylist_config *conf, const struct grey_tuple *t,
    const char *white_key, time_t now)
{
	struct greydb_record	 rec, old, white;
	char			 key[GREYDB_KEY_MAX + 1];
	size_t			 len;
	MDB_stat		 st;
	int			 found, rc;

	len = greydb_tuple_key(t, key, sizeof(key));
	if ((found = greydb_get(KIND_GREY, key, len, &old)) == -1)
		return (GREY_TEMPFAIL);
	if (found && old.expire > now && old.pass <= now) {
		if (greydb_del(KIND_GREY, key, len, &old) == -1)
			return (GREY_TEMPFAIL);
		memset(&white, 0, sizeof(white));
		white.version = GREYDB_VERSION;
		white.first = old.first;
		white.blocked = old.blocked;
		white.passed = 1;
		white.pass = now;
		white.expire = now + conf->whiteexp;
		len = greydb_lower_key(white_key, key, sizeof(key));
		found = greydb_get(KIND_WHITE, key, len, &old);
		if (found == -1 || greydb_put(KIND_WHITE, key, len, &white,
		    found ? &old : NULL) == -1)
			return (GREY_TEMPFAIL);
		return (GREY_PASS);
	}
	if (found && old.expire > now) {
		rec = old;
		rec.blocked++;
		if (greydb_put(KIND_GREY, key, len, &rec, &old) == -1)
			return (GREY_TEMPFAIL);
		return (GREY_GREYLISTED);
	}
	if (!found) {
		if ((rc = mdb_stat(grey_txn, dbi_grey, &st)) != 0) {
			(void)greydb_failed("stat", rc);
			return (GREY_TEMPFAIL);
		}
		if (st.ms_entries >= conf->max_entries || !greydb_room_for_new())
			return (GREY_TEMPFAIL);
	}
	memset(&rec, 0, sizeof(rec));
	rec.version = GREYDB_VERSION;
	rec.blocked = 1;
	rec.first = now;
	rec.pass = now + conf->passtime;
	rec.expire = now + conf->greyexp;
	if (greydb_put(KIND_GREY, key, len, &rec, found ? &old : NULL) == -1)
		return (GREY_TEMPFAIL);
	return (GREY_GREYLISTED);
}

/*
 * New tuples stop well before the map is full: a full LMDB map cannot
 * even delete (pages are copied on write), so the rest is kept for
 * retries that pass, white refreshes and expiry.
 */
static int
greydb_room_for_new(void)
{
	MDB_envinfo	 info;
	MDB_stat	 st;
	MDB_dbi		 dbis[] = { dbi_grey, dbi_white, dbi_trap, dbi_spamtrap,
			    dbi_learned, dbi_spfnets, dbi_expiry, dbi_blocked };
	size_t		 i, used = 0, total;

	if (mdb_env_info(grey_env, &info) != 0 ||
	    mdb_env_stat(grey_env, &st) != 0 || st.ms_psize == 0)
		return (0);
	total = info.me_mapsize / st.ms_psize;
	for (i = 0; i < sizeof(dbis) / sizeof(dbis[0]); i++) {
		if (mdb_stat(grey_txn, dbis[i], &st) != 0)
			return (0);
		used += st.ms_branch_pages + st.ms_leaf_pages +
		    st.ms_overflow_pages;
	}
	return (used < total / 100 * GREYDB_MAP_NEW_PCT);
}

/*
 * Is the client white?  A white client's entry is refreshed: each
 * delivery keeps it white for another whiteexp.  Returns 1 or 0.
 */
int
greydb_white_check(const struct greylist_config *conf, const char *client,
    time_t now, int64_t *was)
{
	struct greydb_record	 rec, old;
	char			 key[GREYDB_KEY_MAX + 1];
	size_t			 len;

	len = greydb_lower_key(client, key, sizeof(key));
	if (greydb_get(KIND_WHITE, key, len, &old) != 1 || old.expire <= now)
		return (0);
	if (was != NULL)
		*was = old.expire;
	rec = old;
	rec.passed++;
	rec.expire = now + conf->whiteexp;
	(void)greydb_put(KIND_WHITE, key, len, &rec, &old);
	return (1);
}

/* smarthostctl greylist white: make a client white for whiteexp. */
int
greydb_white_add(const struct greylist_config *conf, const char *client,
    time_t now)
{
	return (greydb_touch(KIND_WHITE, client, now, now + conf->whiteexp,
	    0, 0));
}

/*
 * Create or renew a white, trap or learned entry so that it lasts until
 * expire, adding to its counts.
 */
static int
greydb_touch(enum greydb_kind kind, const char *name, time_t now,
    time_t expire, uint32_t passed, uint32_t blocked)
{
	struct greydb_record	 rec, old;
	char			 key[GREYDB_KEY_MAX + 1];
	size_t			 len;
	int			 found;

	len = greydb_lower_key(name, key, sizeof(key));
	if ((found = greydb_get(kind, key, len, &old)) == -1)
		return (-1);
	memset(&rec, 0, sizeof(rec));
	if (found)
		rec = old;
	else {
		rec.first = now;
		rec.pass = now;
	}
	rec.version = GREYDB_VERSION;
	rec.passed += passed;
	rec.blocked += blocked;
	rec.expire = expire;
	return (greydb_put(kind, key, len, &rec, found ? &old : NULL));
}

/* Is the client trapped?  1 with its expiry time, or 0. */
int
greydb_trapped(const char *client, time_t now, int64_t *expire)
{
	struct greydb_record	 rec;
	char			 key[GREYDB_KEY_MAX + 1];
	size_t			 len;

	len = greydb_lower_key(client, key, sizeof(key));
	if (greydb_get(KIND_TRAP, key, len, &rec) != 1 || rec.expire <= now)
		return (0);
	if (expire != NULL)
		*expire = rec.expire;
	return (1);
}

/* The client mailed a spamtrap: trapped for trapexp, white no more. */
int
greydb_trap_client(const struct greylist_config *conf, const char *client,
    time_t now)
{
	struct greydb_record	 old;
	char			 key[GREYDB_KEY_MAX + 1];
	size_t			 len;
	int			 found;

	len = greydb_lower_key(client, key, sizeof(key));
	if ((found = greydb_get(KIND_WHITE, key, len, &old)) == -1)
		return (-1);
	if (found && greydb_del(KIND_WHITE, key, len, &old) == -1)
		return (-1);
	return (greydb_touch(KIND_TRAP, client, now, now + conf->trapexp, 0,
	    1));
}

/* Too many failed AUTHs: blocked in the firewall until then. */
int
greydb_block_client(const char *client, time_t now, time_t until)
{
	return (greydb_touch(KIND_BLOCKED, client, now, until, 0, 1));
}

/* Is the address a spamtrap added at run time?  1 or 0. */
int
greydb_spamtrap(const char *addr)
{
	char	 key[GREYDB_KEY_MAX + 1];
	MDB_val	 k, v;
	MDB_txn	*txn;

	if ((txn = greydb_txn()) == NULL)
		return (0);
	k.mv_size = greydb_lower_key(addr, key, sizeof(key));
	k.mv_data = key;
	return (mdb_get(txn, dbi_spamtrap, &k, &v) == 0);
}

/* Add (on = 1) or remove a spamtrap address: 1 done, 0 no change. */
int
greydb_spamtrap_set(const char *addr, int on)
{
	char	 key[GREYDB_KEY_MAX + 1];
	MDB_val	 k, v;
	MDB_txn	*txn;
	int	 rc;

	if ((txn = greydb_txn()) == NULL)
		return (-1);
	k.mv_size = greydb_lower_key(addr, key, sizeof(key));
	k.mv_data = key;
	v.mv_data = NULL;
	v.mv_size = 0;
	if (on)
		rc = mdb_put(txn, dbi_spamtrap, &k, &v, MDB_NOOVERWRITE);
	else
		rc = mdb_del(txn, dbi_spamtrap, &k, NULL);
	if (rc == MDB_KEYEXIST || rc == MDB_NOTFOUND)
		return (0);
	if (rc != 0)
		return (greydb_failed("spamtrap", rc));
	grey_dirty++;
	return (1);
}

/* Our users mailed domain: its SPF-authorised hosts skip greylisting. */
int
greydb_learn(const struct greylist_config *conf, const char *domain,
    time_t now)
{
	return (greydb_touch(KIND_LEARNED, domain, now, now + conf->whiteexp,
	    1, 0));
}

int
greydb_learned(const char *domain, time_t now)
{
	struct greydb_record	 rec;
	char			 key[GREYDB_KEY_MAX + 1];
	size_t			 len;

	len = greydb_lower_key(domain, key, sizeof(key));
	return (greydb_get(KIND_LEARNED, key, len, &rec) == 1 &&
	    rec.expire > now);
}

/*
 * smarthostctl greylist delete: a client (its white and trap entries
 * and every tuple of it) or one tuple as show greylist prints it,
 * "client|helo|sender|rcpt".  Returns the number of entries deleted.
 */
int
greydb_delete(const char *what)
{
	struct greydb_record	 old;
	char			 key[GREYDB_KEY_MAX + 1];
	char			 tuple[GREYDB_TUPLE_MAX];
	size_t			 len, i, n = 0;
	int			 found;
	enum greydb_kind	 kinds[] = { KIND_WHITE, KIND_TRAP,
				    KIND_LEARNED, KIND_BLOCKED };

	if (strchr(what, '|') != NULL) {
		if (strlcpy(tuple, what, sizeof(tuple)) >= sizeof(tuple))
			return (0);
		for (i = 0; tuple[i] != '\0'; i++)
			if (tuple[i] == '|')
				tuple[i] = '\n';
		len = greydb_long_key(tuple, key, sizeof(key));
		if ((found = greydb_get(KIND_GREY, key, len, &old)) == -1)
			return (-1);
		if (found && greydb_del(KIND_GREY, key, len, &old) == -1)
			return (-1);
		return (found);
	}
	len = greydb_lower_key(what, key, sizeof(key));
	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		if ((found = greydb_get(kinds[i], key, len, &old)) == -1)
			return (-1);
		if (found && greydb_del(kinds[i], key, len, &old) == -1)
			return (-1);
		n += found;
	}
	n += greydb_delete_tuples(key, len);
	return ((int)n);
}

/* Every tuple whose client part is client: keys "client\n...". */
static size_t
greydb_delete_tuples(const char *client, size_t len)
{
	char		 prefix[GREYDB_KEY_MAX + 2];
	MDB_cursor	*cur;
	MDB_val		 k, v;
	struct greydb_record rec;
	size_t		 n = 0;
	int		 rc;

	if (len + 1 > GREYDB_KEY_MAX || greydb_txn() == NULL)
		return (0);
	memcpy(prefix, client, len);
	prefix[len++] = '\n';
	if (mdb_cursor_open(grey_txn, dbi_grey, &cur) != 0)
		return (0);
	k.mv_data = prefix;
	k.mv_size = len;
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	while (rc == 0 && k.mv_size >= len &&
	    memcmp(k.mv_data, prefix, len) == 0) {
		if (v.mv_size == sizeof(rec)) {
			memcpy(&rec, v.mv_data, sizeof(rec));
			if (greydb_index(KIND_GREY, k.mv_data, k.mv_size,
			    rec.expire, 0) == -1)
				return (n);
		}
		if (mdb_cursor_del(cur, 0) != 0)
			break;
		n++;
		grey_dirty++;
		rc = mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT);
		if (rc == MDB_NOTFOUND || rc == EINVAL)
			break;
	}
	mdb_cursor_close(cur);
	return (n);
}

/*
 * Remove at most max records whose time is up, oldest first, so that
 * each call costs a bounded amount.  Returns how many went.
 */
size_t
greydb_expire(time_t now, size_t max)
{
	MDB_cursor	*cur;
	MDB_val		 k, v, rk;
	unsigned char	*p;
	uint64_t	 t;
	size_t		 n = 0;
	int		 i, rc, kind;

	if (greydb_txn() == NULL ||
	    mdb_cursor_open(grey_txn, dbi_expiry, &cur) != 0)
		return (0);
	while (n < max &&
	    (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) == 0) {
		if (k.mv_size < 9)
			goto drop;
		p = k.mv_data;
		for (t = 0, i = 0; i < 8; i++)
			t = t << 8 | p[i];
		if ((int64_t)t > now)
			break;
		kind = p[8];
		if (kind >= KIND_GREY && kind <= KIND_BLOCKED) {
			rk.mv_data = p + 9;
			rk.mv_size = k.mv_size - 9;
			if ((rc = mdb_del(grey_txn, greydb_dbi(kind), &rk,
			    NULL)) != 0 && rc != MDB_NOTFOUND) {
				(void)greydb_failed("expire", rc);
				return (n);
			}
		}
 drop:
		if ((rc = mdb_cursor_del(cur, 0)) != 0) {
			(void)greydb_failed("expire", rc);
			return (n);
		}
		grey_dirty++;
		n++;
	}
	mdb_cursor_close(cur);
	return (n);
}

static void
greydb_entry(enum greydb_kind kind, const MDB_val *k,
    const struct greydb_record *rec, struct ctl_grey_entry *e)
{
	char	 key[GREYDB_KEY_MAX + 1], *field[4], *p;
	size_t	 len = k->mv_size < GREYDB_KEY_MAX ? k->mv_size : GREYDB_KEY_MAX;
	int	 i;

	memset(e, 0, sizeof(*e));
	memcpy(key, k->mv_data, len);
	key[len] = '\0';
	for (i = 0, p = key; i < 4; i++)
		field[i] = p != NULL ? strsep(&p, "\n") : "";
	(void)strlcpy(e->key, field[0], sizeof(e->key));
	switch (kind) {
	case KIND_GREY:
		(void)strlcpy(e->type, "GREY", sizeof(e->type));
		(void)strlcpy(e->helo, field[1], sizeof(e->helo));
		(void)strlcpy(e->sender, field[2], sizeof(e->sender));
		(void)strlcpy(e->rcpt, field[3], sizeof(e->rcpt));
		break;
	case KIND_WHITE:
		(void)strlcpy(e->type, "WHITE", sizeof(e->type));
		break;
	case KIND_TRAP:
		(void)strlcpy(e->type, "TRAPPED", sizeof(e->type));
		break;
	case KIND_LEARNED:
		(void)strlcpy(e->type, "LEARNED", sizeof(e->type));
		break;
	case KIND_BLOCKED:
		(void)strlcpy(e->type, "BLOCKED", sizeof(e->type));
		break;
	case KIND_SPAMTRAP:
		(void)strlcpy(e->type, "SPAMTRAP", sizeof(e->type));
		break;
	}
	e->first = rec->first;
	e->pass = rec->pass;
	e->expire = rec->expire;
	e->blocked = rec->blocked;
	e->passed = rec->passed;
}

/*
 * One page of a walk through the databases of a kind: at most max
 * entries, resuming after the last key of the previous page, so that
 * a long listing never holds the event loop.  Returns 1 when the walk
 * is complete.
 */
int
greydb_walk_page(struct greydb_walk *w, size_t max,
    void (*cb)(const struct ctl_grey_entry *, void *), void *arg)
{
	static const int	 stages[][6] = {
		[GREY_LIST_ALL] = { KIND_GREY, KIND_WHITE, KIND_TRAP,
		    KIND_SPAMTRAP, KIND_LEARNED, KIND_BLOCKED },
		[GREY_LIST_GREY] = { KIND_GREY },
		[GREY_LIST_WHITE] = { KIND_WHITE },
		[GREY_LIST_TRAP] = { KIND_TRAP, KIND_SPAMTRAP },
		[GREY_LIST_BLOCK] = { KIND_BLOCKED }
	};
	size_t	 n = 0;

	if (greydb_txn() == NULL || w->kind < GREY_LIST_ALL ||
	    w->kind > GREY_LIST_BLOCK)
		return (1);
	while (w->stage < 6 && stages[w->kind][w->stage] != 0) {
		n += greydb_walk_dbi(stages[w->kind][w->stage], w, max - n,
		    cb, arg);
		if (n >= max)
			return (0);
		w->stage++;
		w->last_len = 0;
		w->started = 0;
	}
	return (1);
}

/* Walk one database from w's position; returns the entries sent. */
static size_t
greydb_walk_dbi(int kind, struct greydb_walk *w, size_t max,
    void (*cb)(const struct ctl_grey_entry *, void *), void *arg)
{
	struct ctl_grey_entry	 e;
	struct greydb_record	 rec;
	MDB_cursor		*cur;
	MDB_val			 k, v;
	size_t			 n = 0;
	int			 op = MDB_FIRST;

	if (mdb_cursor_open(grey_txn, greydb_dbi(kind), &cur) != 0)
		return (0);
	if (w->started) {
		k.mv_data = w->last;
		k.mv_size = w->last_len;
		op = MDB_SET_RANGE;
	}
	while (n < max && mdb_cursor_get(cur, &k, &v, op) == 0) {
		op = MDB_NEXT;
		if (w->started && k.mv_size == w->last_len &&
		    memcmp(k.mv_data, w->last, k.mv_size) == 0)
			continue;
		w->started = 1;
		w->last_len = k.mv_size < sizeof(w->last) ? k.mv_size :
		    sizeof(w->last);
		memcpy(w->last, k.mv_data, w->last_len);
		memset(&rec, 0, sizeof(rec));
		if (kind != KIND_SPAMTRAP) {
			if (v.mv_size != sizeof(rec))
				continue;
			memcpy(&rec, v.mv_data, sizeof(rec));
			if (rec.version != GREYDB_VERSION)
				continue;
		}
		greydb_entry(kind, &k, &rec, &e);
		cb(&e, arg);
		n++;
	}
	mdb_cursor_close(cur);
	return (n);
}

/*
 * Every entry of one client (its address or prefix key): white, trap
 * and its tuples, for smarthostctl explain.  Returns how many.
 */
size_t
greydb_walk_client(const char *client,
    void (*cb)(const struct ctl_grey_entry *, void *), void *arg)
{
	struct ctl_grey_entry	 e;
	struct greydb_record	 rec;
	char			 key[GREYDB_KEY_MAX + 1];
	MDB_cursor		*cur;
	MDB_val			 k, v;
	size_t			 len, n = 0;
	int			 i, op;
	const int		 kinds[] = { KIND_WHITE, KIND_TRAP, KIND_BLOCKED,
				    KIND_GREY };

	if (greydb_txn() == NULL)
		return (0);
	len = greydb_lower_key(client, key, sizeof(key));
	for (i = 0; i < (int)(sizeof(kinds) / sizeof(kinds[0])); i++) {
		if (mdb_cursor_open(grey_txn, greydb_dbi(kinds[i]), &cur) != 0)
			continue;
		k.mv_data = key;
		k.mv_size = len;
		op = MDB_SET_RANGE;
		while (mdb_cursor_get(cur, &k, &v, op) == 0) {
			op = MDB_NEXT;
			if (k.mv_size < len || memcmp(k.mv_data, key, len) != 0)
				break;
			if (k.mv_size > len &&
			    ((const char *)k.mv_data)[len] != '\n')
				continue;
			if (v.mv_size != sizeof(rec))
				continue;
			memcpy(&rec, v.mv_data, sizeof(rec));
			greydb_entry(kinds[i], &k, &rec, &e);
			cb(&e, arg);
			n++;
		}
		mdb_cursor_close(cur);
	}
	return (n);
}

/* Entries in one database: "grey", "white", "trap", "spamtrap", ... */
uint64_t
greydb_count(const char *name)
{
	MDB_stat	 st;
	MDB_dbi		 dbi;

	if (greydb_txn() == NULL)
		return (0);
	if (strcmp(name, "grey") == 0)
		dbi = dbi_grey;
	else if (strcmp(name, "white") == 0)
		dbi = dbi_white;
	else if (strcmp(name, "trap") == 0)
		dbi = dbi_trap;
	else if (strcmp(name, "spamtrap") == 0)
		dbi = dbi_spamtrap;
	else if (strcmp(name, "learned") == 0)
		dbi = dbi_learned;
	else if (strcmp(name, "blocked") == 0)
		dbi = dbi_blocked;
	else
		return (0);
	if (mdb_stat(grey_txn, dbi, &st) != 0)
		return (0);
	return (st.ms_entries);
}

/*
 * The networks an spf-whitelist domain expanded to, as text lines, so
 * that a restart does not wait for DNS to have them again.
 */
int
greydb_spf_nets_save(const char *domain, const char *nets, size_t len,
    time_t refreshed)
{
	char	 key[GREYDB_KEY_MAX + 1];
	int64_t	 t = refreshed;
	MDB_val	 k, v;
	int	 rc;

	if (len > GREYDB_SPF_NETS_MAX || greydb_txn() == NULL)
		return (-1);
	k.mv_size = greydb_lower_key(domain, key, sizeof(key));
	k.mv_data = key;
	v.mv_size = sizeof(t) + len;
	v.mv_data = NULL;
	if ((rc = mdb_put(grey_txn, dbi_spfnets, &k, &v, MDB_RESERVE)) != 0)
		return (greydb_failed("spfnets", rc));
	memcpy(v.mv_data, &t, sizeof(t));
	memcpy((char *)v.mv_data + sizeof(t), nets, len);
	grey_dirty++;
	return (0);
}

/* 1 with a malloc'd NUL-terminated copy in *nets, 0 if none. */
int
greydb_spf_nets_load(const char *domain, char **nets, size_t *len,
    time_t *refreshed)
{
	char	 key[GREYDB_KEY_MAX + 1];
	int64_t	 t;
	MDB_val	 k, v;

	if (greydb_txn() == NULL)
		return (-1);
	k.mv_size = greydb_lower_key(domain, key, sizeof(key));
	k.mv_data = key;
	if (mdb_get(grey_txn, dbi_spfnets, &k, &v) != 0 ||
	    v.mv_size < sizeof(t) || v.mv_size > sizeof(t) +
	    GREYDB_SPF_NETS_MAX)
		return (0);
	memcpy(&t, v.mv_data, sizeof(t));
	*len = v.mv_size - sizeof(t);
	if ((*nets = malloc(*len + 1)) == NULL)
		return (-1);
	memcpy(*nets, (char *)v.mv_data + sizeof(t), *len);
	(*nets)[*len] = '\0';
	*refreshed = (time_t)t;
	return (1);
}
