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
 * Unit tests for smarthostd/greydb.c: spamd's greylisting timeline with
 * an injected clock, white, trap and spamtrap entries, expiry, the
 * entry cap, and what survives closing and reopening grey.mdb.  Each
 * case prints "ok - name" or "not ok - name: reason".
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smarthostd.h"

#define T0	1800000000	/* the injected clock starts here */
#define GREYDB_TEST_TUPLE	(HOSTNAME_LEN * 2 + SMTP_ADDR_LEN * 2 + 4)

static int			 failures;
static struct greylist_config	 conf;
static char			 dir[] = "/tmp/grey_test.XXXXXX";

static void
check(int ok, const char *name, const char *why)
{
	if (ok)
		printf("ok - %s\n", name);
	else {
		printf("not ok - %s: %s\n", name, why);
		failures++;
	}
}

static void
tuple(struct grey_tuple *t, const char *client, const char *helo,
    const char *from, const char *to)
{
	memset(t, 0, sizeof(*t));
	(void)strlcpy(t->client, client, sizeof(t->client));
	(void)strlcpy(t->helo, helo, sizeof(t->helo));
	(void)strlcpy(t->sender, from, sizeof(t->sender));
	(void)strlcpy(t->rcpt, to, sizeof(t->rcpt));
}

static size_t	 walked;

static void
count_entry(const struct ctl_grey_entry *e, void *arg)
{
	(void)e;
	(void)arg;
	walked++;
}

static void
test_timeline(void)
{
	struct grey_tuple	 t;
	time_t			 now = T0;

	tuple(&t, "192.0.2.1", "mx.example.org", "a@example.org",
	    "b@example.com");
	check(greydb_check(&conf, &t, "192.0.2.1", now) == GREY_GREYLISTED,
	    "first_attempt_greylisted", "not greylisted");
	check(greydb_check(&conf, &t, "192.0.2.1", now + 10) ==
	    GREY_GREYLISTED, "retry_before_passtime_greylisted",
	    "passed early");
	check(!greydb_white_check(&conf, "192.0.2.1", now + 10, NULL),
	    "not_white_before_passing", "white too soon");
	check(greydb_check(&conf, &t, "192.0.2.1", now + conf.passtime) ==
	    GREY_PASS, "retry_after_passtime_passes", "not passed");
	check(greydb_white_check(&conf, "192.0.2.1", now + conf.passtime + 1, NULL),
	    "passing_whitelists_client", "not white");
	check(greydb_count("grey") == 0, "passed_tuple_removed",
	    "tuple still there");

	/* Each delivery refreshes the white entry. */
	now += conf.passtime + conf.whiteexp - 10;
	check(greydb_white_check(&conf, "192.0.2.1", now, NULL),
	    "white_refreshed_by_delivery", "expired");
	check(greydb_white_check(&conf, "192.0.2.1", now + conf.whiteexp - 1, NULL),
	    "white_refresh_extends", "expired after refresh");
	check(!greydb_white_check(&conf, "192.0.2.1",
	    now + 3 * conf.whiteexp, NULL), "white_expires", "still white");
}

static void
test_greyexp(void)
{
	struct grey_tuple	 t;
	time_t			 now = T0;

	tuple(&t, "192.0.2.2", "h", "a@example.org", "b@example.com");
	(void)greydb_check(&conf, &t, "192.0.2.2", now);
	check(greydb_check(&conf, &t, "192.0.2.2", now + conf.greyexp) ==
	    GREY_GREYLISTED, "retry_after_greyexp_starts_over",
	    "passed after greyexp");
	check(greydb_check(&conf, &t, "192.0.2.2", now + conf.greyexp +
	    conf.passtime) == GREY_PASS, "restarted_tuple_passes_later",
	    "did not pass");
}

static void
test_spf_key(void)
{
	struct grey_tuple	 t;

	/* Pool: first try from one server, retry from another. */
	tuple(&t, "spf:example.net", "", "a@example.net", "b@example.com");
	(void)greydb_check(&conf, &t, "192.0.2.10", T0);
	check(greydb_check(&conf, &t, "192.0.2.11", T0 + conf.passtime) ==
	    GREY_PASS, "spf_key_pool_retry_passes", "greylisted");
	check(greydb_white_check(&conf, "192.0.2.11", T0 + conf.passtime, NULL),
	    "spf_key_whitelists_retrying_address", "not white");
	check(!greydb_white_check(&conf, "192.0.2.10", T0 + conf.passtime, NULL),
	    "spf_key_first_address_not_white", "white");
}

static void
test_case_and_fields(void)
{
	struct grey_tuple	 t, u;

	tuple(&t, "192.0.2.3", "MX.Example.ORG", "A@Example.org",
	    "b@example.com");
	tuple(&u, "192.0.2.3", "mx.example.org", "a@example.org",
	    "B@EXAMPLE.COM");
	(void)greydb_check(&conf, &t, "192.0.2.3", T0);
	check(greydb_check(&conf, &u, "192.0.2.3", T0 + conf.passtime) ==
	    GREY_PASS, "tuple_case_insensitive", "case mattered");
	tuple(&u, "192.0.2.3", "other.example.org", "a@example.org",
	    "c@example.com");
	check(greydb_check(&conf, &u, "192.0.2.3", T0 + conf.passtime) ==
	    GREY_GREYLISTED, "other_tuple_separate", "passed");
}

static void
test_long_keys(void)
{
	struct grey_tuple	 t, u;
	char			 helo[HOSTNAME_LEN], from[SMTP_ADDR_LEN];
	char			 text[GREYDB_TEST_TUPLE];

	/* A 255-character HELO and a 250-character sender. */
	memset(helo, 'h', sizeof(helo) - 1);
	helo[sizeof(helo) - 1] = '\0';
	memset(from, 'd', 250);
	memcpy(from, "someone@", 8);
	from[250] = '\0';
	tuple(&t, "192.0.2.4", helo, from, "x1@example.com");
	tuple(&u, "192.0.2.4", helo, from, "x2@example.com");
	check(greydb_check(&conf, &t, "192.0.2.4", T0) == GREY_GREYLISTED,
	    "long_tuple_recorded", "not greylisted");
	check(greydb_check(&conf, &u, "192.0.2.4", T0 + conf.passtime) ==
	    GREY_GREYLISTED, "long_tuples_stay_distinct", "collided");
	(void)snprintf(text, sizeof(text), "192.0.2.4|%s|%s|x2@example.com",
	    helo, from);
	check(greydb_delete(text) == 1, "long_tuple_deleted_by_its_text",
	    "not found");
	check(greydb_check(&conf, &t, "192.0.2.4", T0 + conf.passtime) ==
	    GREY_PASS, "long_tuple_passes", "not passed");
}

static void
test_cap(void)
{
	struct greylist_config	 small = conf;
	struct grey_tuple	 t;
	uint64_t		 have = greydb_count("grey");
	char			 to[64];
	int			 i, refused = 0;

	small.max_entries = have + 5;
	for (i = 0; i < 10; i++) {
		(void)snprintf(to, sizeof(to), "cap%d@example.com", i);
		tuple(&t, "192.0.2.5", "h", "a@example.org", to);
		if (greydb_check(&small, &t, "192.0.2.5", T0) == GREY_TEMPFAIL)
			refused++;
	}
	check(refused == 5 && greydb_count("grey") == have + 5,
	    "cap_refuses_new_tuples", "cap not kept");
	tuple(&t, "192.0.2.5", "h", "a@example.org", "cap0@example.com");
	check(greydb_check(&small, &t, "192.0.2.5", T0 + conf.passtime) ==
	    GREY_PASS, "cap_known_tuple_still_passes", "refused");
}

static void
test_trap(void)
{
	int64_t	 expire = 0;

	(void)greydb_white_add(&conf, "192.0.2.6", T0);
	check(greydb_trap_client(&conf, "192.0.2.6", T0) == 0 &&
	    greydb_trapped("192.0.2.6", T0 + 1, &expire) &&
	    expire == T0 + conf.trapexp, "trap_client", "not trapped");
	check(!greydb_white_check(&conf, "192.0.2.6", T0 + 1, NULL),
	    "trapped_client_not_white", "still white");
	check(!greydb_trapped("192.0.2.6", T0 + conf.trapexp, NULL),
	    "trap_expires", "still trapped");
	check(greydb_spamtrap_set("Trap@Example.com", 1) == 1 &&
	    greydb_spamtrap("trap@example.com") &&
	    greydb_spamtrap_set("trap@example.com", 1) == 0,
	    "spamtrap_add", "not added");
	check(greydb_spamtrap_set("trap@example.com", 0) == 1 &&
	    !greydb_spamtrap("trap@example.com"), "spamtrap_delete",
	    "not deleted");
}

static void
test_blocked(void)
{
	struct greydb_walk	 w;

	check(greydb_block_client("192.0.2.40", T0, T0 + 3600) == 0 &&
	    greydb_count("blocked") == 1, "block_client", "not blocked");
	memset(&w, 0, sizeof(w));
	w.kind = GREY_LIST_BLOCK;
	walked = 0;
	while (greydb_walk_page(&w, 10, count_entry, NULL) == 0)
		;
	check(walked == 1, "blocked_listed_under_block", "not listed");
	check(greydb_delete("192.0.2.40") == 1 && greydb_count("blocked") == 0,
	    "blocked_deleted_with_its_client", "still there");
	(void)greydb_block_client("192.0.2.41", T0, T0 + 60);
	(void)greydb_expire(T0 + 61, 100);
	check(greydb_count("blocked") == 0, "blocked_expires", "still there");
}

static void
test_learn(void)
{
	check(greydb_learn(&conf, "Example.NET", T0) == 0 &&
	    greydb_learned("example.net", T0 + 1) &&
	    !greydb_learned("example.org", T0 + 1), "learned_domain",
	    "not learned");
	check(!greydb_learned("example.net", T0 + conf.whiteexp),
	    "learned_expires", "still learned");
}

static void
test_delete(void)
{
	struct grey_tuple	 t;

	tuple(&t, "192.0.2.7", "h", "a@example.org", "b@example.com");
	(void)greydb_check(&conf, &t, "192.0.2.7", T0);
	tuple(&t, "192.0.2.7", "h", "a@example.org", "c@example.com");
	(void)greydb_check(&conf, &t, "192.0.2.7", T0);
	tuple(&t, "192.0.2.70", "h", "a@example.org", "c@example.com");
	(void)greydb_check(&conf, &t, "192.0.2.70", T0);
	(void)greydb_white_add(&conf, "192.0.2.7", T0);
	check(greydb_delete("192.0.2.7|h|a@example.org|c@example.com") == 1,
	    "delete_one_tuple", "not deleted");
	check(greydb_delete("192.0.2.7") == 2, "delete_client",
	    "wrong number deleted");
	walked = 0;
	(void)greydb_walk_client("192.0.2.70", count_entry, NULL);
	check(walked == 1, "delete_client_spares_longer_address",
	    "neighbour gone");
	check(!greydb_white_check(&conf, "192.0.2.7", T0 + 1, NULL),
	    "delete_client_white_gone", "still white");
}

static void
test_walk_pages(void)
{
	struct greydb_walk	 w;
	struct grey_tuple	 t;
	char			 to[64];
	size_t			 pages = 0;
	int			 i;

	for (i = 0; i < 25; i++) {
		(void)snprintf(to, sizeof(to), "walk%d@example.com", i);
		tuple(&t, "192.0.2.11", "h", "a@example.org", to);
		(void)greydb_check(&conf, &t, "192.0.2.11", T0);
	}
	memset(&w, 0, sizeof(w));
	w.kind = GREY_LIST_GREY;
	walked = 0;
	while (greydb_walk_page(&w, 10, count_entry, NULL) == 0)
		pages++;
	check(walked == greydb_count("grey") && pages >= 2,
	    "walk_in_pages_sees_every_tuple_once", "count differs");
	(void)greydb_delete("192.0.2.11");
}

static void
test_expire(void)
{
	struct grey_tuple	 t;
	char			 to[64];
	uint64_t		 before;
	size_t			 n, total = 0;
	int			 i;

	for (i = 0; i < 50; i++) {
		(void)snprintf(to, sizeof(to), "exp%d@example.com", i);
		tuple(&t, "192.0.2.8", "h", "a@example.org", to);
		(void)greydb_check(&conf, &t, "192.0.2.8", T0 + 100);
	}
	before = greydb_count("grey");
	n = greydb_expire(T0 + 100 + conf.greyexp, 10);
	check(n == 10, "expire_bounded_per_call", "not bounded");
	/* Far ahead, everything is due: the earlier cases' entries too. */
	while ((n = greydb_expire(T0 + 10 * conf.whiteexp, 10)) > 0)
		total += n;
	check(greydb_count("grey") == 0 && before >= 50 && total > 0,
	    "expire_removes_old_tuples", "tuples left");
	check(greydb_count("white") == 0 && greydb_count("learned") == 0 &&
	    greydb_count("trap") == 0, "expire_removes_white_and_trap",
	    "entries left");
}

static void
test_persistence(void)
{
	struct grey_tuple	 t;

	tuple(&t, "2001:db8:1:2::/64", "h", "a@example.org",
	    "b@example.com");
	(void)greydb_check(&conf, &t, "2001:db8:1:2::/64", T0);
	(void)greydb_white_add(&conf, "192.0.2.9", T0);
	(void)greydb_spamtrap_set("trap@example.com", 1);
	greydb_close();
	check(greydb_open(dir, 16 * 1024 * 1024) == 0, "reopen",
	    "cannot reopen");
	check(greydb_check(&conf, &t, "2001:db8:1:2::/64", T0 +
	    conf.passtime) == GREY_PASS, "tuple_survives_reopen", "lost");
	check(greydb_white_check(&conf, "192.0.2.9", T0 + 1, NULL) &&
	    greydb_spamtrap("trap@example.com"), "entries_survive_reopen",
	    "lost");
}

/*
 * A map too small for the tuples: new ones get GREY_TEMPFAIL (451),
 * never a crash, and what was committed before stays usable.
 */
static void
test_map_full(void)
{
	char			 small_dir[] = "/tmp/grey_test_full.XXXXXX";
	char			 to[64], path[PATH_MAX];
	struct grey_tuple	 t;
	enum grey_verdict	 v = GREY_GREYLISTED;
	int			 i;

	greydb_close();
	if (mkdtemp(small_dir) == NULL ||
	    greydb_open(small_dir, 2 * 1024 * 1024) == -1) {
		check(0, "map_full_open", "cannot open a small grey.mdb");
		return;
	}
	tuple(&t, "192.0.2.12", "h", "a@example.org", "first@example.com");
	(void)greydb_check(&conf, &t, "192.0.2.12", T0);
	(void)greydb_commit();
	for (i = 0; i < 100000 && v != GREY_TEMPFAIL; i++) {
		(void)snprintf(to, sizeof(to), "full%d@example.com", i);
		tuple(&t, "192.0.2.13", "h", "a@example.org", to);
		v = greydb_check(&conf, &t, "192.0.2.13", T0);
		if (i % 50 == 0)
			(void)greydb_commit();
	}
	check(v == GREY_TEMPFAIL, "map_full_gives_tempfail", "never full");
	tuple(&t, "192.0.2.12", "h", "a@example.org", "first@example.com");
	check(greydb_check(&conf, &t, "192.0.2.12", T0 + conf.passtime) ==
	    GREY_PASS, "map_full_committed_tuple_still_passes", "lost");
	greydb_close();
	(void)snprintf(path, sizeof(path), "%s/grey.mdb", small_dir);
	(void)unlink(path);
	(void)snprintf(path, sizeof(path), "%s/grey.mdb-lock", small_dir);
	(void)unlink(path);
	(void)rmdir(small_dir);
	check(greydb_open(dir, 16 * 1024 * 1024) == 0, "map_full_reopen",
	    "cannot reopen");
}

static void
test_client_key(void)
{
	struct sockaddr_storage	 ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)&ss;
	struct sockaddr_in	*sin = (struct sockaddr_in *)&ss;
	char			 key[HOSTNAME_LEN];

	memset(&ss, 0, sizeof(ss));
	sin6->sin6_family = AF_INET6;
	(void)inet_pton(AF_INET6, "2001:db8:1:2:3:4:5:6", &sin6->sin6_addr);
	check(addr_client_key(&ss, 64, key, sizeof(key)) == 0 &&
	    strcmp(key, "2001:db8:1:2::/64") == 0, "client_key_ipv6_64", key);
	check(addr_client_key(&ss, 48, key, sizeof(key)) == 0 &&
	    strcmp(key, "2001:db8:1::/48") == 0, "client_key_ipv6_48", key);
	check(addr_client_key(&ss, 128, key, sizeof(key)) == 0 &&
	    strcmp(key, "2001:db8:1:2:3:4:5:6") == 0, "client_key_ipv6_128",
	    key);
	(void)inet_pton(AF_INET6, "::ffff:192.0.2.1", &sin6->sin6_addr);
	check(addr_client_key(&ss, 64, key, sizeof(key)) == 0 &&
	    strcmp(key, "192.0.2.1") == 0, "client_key_v4_mapped", key);
	memset(&ss, 0, sizeof(ss));
	sin->sin_family = AF_INET;
	(void)inet_pton(AF_INET, "192.0.2.1", &sin->sin_addr);
	check(addr_client_key(&ss, 64, key, sizeof(key)) == 0 &&
	    strcmp(key, "192.0.2.1") == 0, "client_key_ipv4", key);
}

int
main(void)
{
	char	 path[PATH_MAX];

	log_init(1, 0);
	conf.passtime = 25 * 60;
	conf.greyexp = 4 * 3600;
	conf.whiteexp = 864 * 3600;
	conf.trapexp = 86400;
	conf.ipv6_prefix = 64;
	conf.max_entries = 1000000;
	if (mkdtemp(dir) == NULL || greydb_open(dir, 16 * 1024 * 1024) == -1) {
		printf("not ok - open: cannot create grey.mdb in %s\n", dir);
		return (1);
	}
	test_timeline();
	test_greyexp();
	test_spf_key();
	test_case_and_fields();
	test_long_keys();
	test_cap();
	test_trap();
	test_learn();
	test_blocked();
	test_delete();
	test_walk_pages();
	test_expire();
	test_persistence();
	test_map_full();
	test_client_key();
	greydb_close();
	(void)snprintf(path, sizeof(path), "%s/grey.mdb", dir);
	(void)unlink(path);
	(void)snprintf(path, sizeof(path), "%s/grey.mdb-lock", dir);
	(void)unlink(path);
	(void)rmdir(dir);
	return (failures != 0);
}
