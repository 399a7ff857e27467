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
 * Unit tests for smarthostd/addrset.c: the text forms, merging, lookups,
 * subtraction, the range-to-CIDR walk and the incremental list loader.
 * Each case prints "ok - name" or "not ok - name: reason".
 */

#include <arpa/inet.h>

#include <err.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "smarthostd.h"

static int	 failures;
static char	 tmpdir[] = "/tmp/addrset_test.XXXXXXXXXX";

static void
check(const char *name, int cond, const char *fmt, ...)
{
	va_list	 ap;

	if (cond) {
		printf("ok - %s\n", name);
		return;
	}
	printf("not ok - %s: ", name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	failures++;
}

/* The walk of a set as "a/len b/len ...". */
struct walk_text {
	char	 buf[4096];
	size_t	 n;
};

static void
walk_append(const struct fw_addr *fa, void *arg)
{
	struct walk_text	*w = arg;
	char			 addr[INET6_ADDRSTRLEN], item[64];

	if (inet_ntop(fa->af, fa->addr, addr, sizeof(addr)) == NULL)
		err(1, "inet_ntop");
	(void)snprintf(item, sizeof(item), "%s%s/%u", w->n ? " " : "", addr,
	    fa->prefixlen);
	(void)strlcat(w->buf, item, sizeof(w->buf));
	w->n++;
}

static const char *
walk_string(const struct addrset *set, struct walk_text *w)
{
	size_t	 n;

	memset(w, 0, sizeof(*w));
	n = addrset_walk(set, walk_append, w);
	if (n != w->n)
		(void)strlcpy(w->buf, "walk count differs from callbacks",
		    sizeof(w->buf));
	return (w->buf);
}

/* A finished set of the given entries; NULL-terminated. */
static struct addrset *
set_of(const char *first, ...)
{
	struct addrset	*set;
	const char	*s;
	va_list		 ap;

	if ((set = addrset_new()) == NULL)
		err(1, "addrset_new");
	va_start(ap, first);
	for (s = first; s != NULL; s = va_arg(ap, const char *))
		if (addrset_add(set, s) == -1)
			errx(1, "set_of: %s refused", s);
	va_end(ap);
	addrset_finish(set);
	return (set);
}

static struct sockaddr_storage
sa(const char *text)
{
	struct sockaddr_storage	 ss;
	struct sockaddr_in	*sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, text, &sin->sin_addr) == 1)
		ss.ss_family = AF_INET;
	else if (inet_pton(AF_INET6, text, &sin6->sin6_addr) == 1)
		ss.ss_family = AF_INET6;
	else
		errx(1, "sa: %s", text);
	return (ss);
}

static int
has(const struct addrset *set, const char *text)
{
	struct sockaddr_storage	 ss = sa(text);

	return (addrset_contains(set, &ss));
}

/* Text forms: what addrset_add takes and how it reads it. */
struct form_case {
	const char	*name;
	const char	*text;
	const char	*walk;		/* NULL: refused */
};

static const struct form_case forms[] = {
	{ "ipv4_host", "192.0.2.1", "192.0.2.1/32" },
	{ "ipv4_cidr", "192.0.2.0/24", "192.0.2.0/24" },
	{ "ipv4_cidr_host_bits_cleared", "192.0.2.77/24", "192.0.2.0/24" },
	{ "ipv4_cidr_32", "192.0.2.1/32", "192.0.2.1/32" },
	{ "ipv4_cidr_0", "198.51.100.7/0", "0.0.0.0/0" },
	{ "ipv4_range_spaced", "192.0.2.10 - 192.0.2.20",
	    "192.0.2.10/31 192.0.2.12/30 192.0.2.16/30 192.0.2.20/32" },
	{ "ipv4_range_unspaced", "192.0.2.10-192.0.2.11", "192.0.2.10/31" },
	{ "ipv4_range_one_address", "192.0.2.9 -192.0.2.9", "192.0.2.9/32" },
	{ "surrounding_white_space", " \t192.0.2.1\t ", "192.0.2.1/32" },
	{ "ipv6_host", "2001:db8::1", "2001:db8::1/128" },
	{ "ipv6_cidr", "2001:db8::/32", "2001:db8::/32" },
	{ "ipv6_cidr_host_bits_cleared", "2001:db8:1:2:3::/48",
	    "2001:db8:1::/48" },
	{ "ipv6_cidr_0", "::/0", "::/0" },
	{ "ipv6_range", "2001:db8::1 - 2001:db8::6",
	    "2001:db8::1/128 2001:db8::2/127 2001:db8::4/127 "
	    "2001:db8::6/128" },
	{ "ipv4_mapped_stored_as_ipv4", "::ffff:192.0.2.1", "192.0.2.1/32" },
	{ "ipv4_mapped_cidr_as_ipv4", "::ffff:192.0.2.0/120",
	    "192.0.2.0/24" },
	{ "refuses_empty", "", NULL },
	{ "refuses_blank", "   ", NULL },
	{ "refuses_word", "example.com", NULL },
	{ "refuses_short_ipv4", "192.0.2", NULL },
	{ "refuses_octet_256", "192.0.2.256", NULL },
	{ "refuses_prefix_33", "192.0.2.0/33", NULL },
	{ "refuses_prefix_129", "2001:db8::/129", NULL },
	{ "refuses_empty_prefix", "192.0.2.0/", NULL },
	{ "refuses_negative_prefix", "192.0.2.0/-1", NULL },
	{ "refuses_signed_prefix", "192.0.2.0/+8", NULL },
	{ "refuses_prefix_with_space", "192.0.2.0/ 8", NULL },
	{ "refuses_prefix_word", "192.0.2.0/x", NULL },
	{ "refuses_two_prefixes", "192.0.2.0/24/8", NULL },
	{ "refuses_range_start_after_end", "192.0.2.20 - 192.0.2.10", NULL },
	{ "refuses_ipv6_range_start_after_end", "2001:db8::2 - 2001:db8::1",
	    NULL },
	{ "refuses_mixed_family_range", "192.0.2.1 - 2001:db8::1", NULL },
	{ "refuses_open_range", "192.0.2.1 -", NULL },
	{ "refuses_range_without_start", "- 192.0.2.1", NULL },
	{ "refuses_cidr_in_range", "192.0.2.0/24 - 192.0.2.255", NULL },
	{ "refuses_two_addresses", "192.0.2.1 192.0.2.2", NULL },
	{ "refuses_range_of_three", "192.0.2.1 - 192.0.2.2 - 192.0.2.3",
	    NULL },
};

static void
check_forms(void)
{
	const struct form_case	*c;
	struct addrset		*set;
	struct walk_text	 w;
	char			 name[128];
	size_t			 i;
	int			 r;

	for (i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		c = &forms[i];
		(void)snprintf(name, sizeof(name), "form_%s", c->name);
		if ((set = addrset_new()) == NULL)
			err(1, NULL);
		r = addrset_add(set, c->text);
		addrset_finish(set);
		if (c->walk == NULL)
			check(name, r == -1 && addrset_count(set) == 0,
			    "\"%s\" accepted", c->text);
		else
			check(name, r == 0 && strcmp(walk_string(set, &w),
			    c->walk) == 0, "\"%s\": returned %d, walk \"%s\"",
			    c->text, r, w.buf);
		addrset_free(set);
	}
}

static void
check_merge(void)
{
	struct addrset		*set;
	struct walk_text	 w;

	set = set_of("192.0.2.128/25", "192.0.2.0/25", NULL);
	check("merge_adjacent_halves", addrset_count(set) == 1 &&
	    strcmp(walk_string(set, &w), "192.0.2.0/24") == 0, "%s", w.buf);
	addrset_free(set);

	set = set_of("10.0.0.10 - 10.0.0.30", "10.0.0.5 - 10.0.0.20", NULL);
	check("merge_overlapping", addrset_count(set) == 1 &&
	    has(set, "10.0.0.5") && has(set, "10.0.0.30") &&
	    !has(set, "10.0.0.4") && !has(set, "10.0.0.31"),
	    "%zu ranges", addrset_count(set));
	addrset_free(set);

	set = set_of("10.1.2.3", "10.0.0.0/8", "10.2.0.0/16", NULL);
	check("merge_nested", addrset_count(set) == 1 &&
	    strcmp(walk_string(set, &w), "10.0.0.0/8") == 0, "%s", w.buf);
	addrset_free(set);

	set = set_of("192.0.2.1", "192.0.2.3", "192.0.2.1", NULL);
	check("merge_keeps_gaps_and_drops_duplicates",
	    addrset_count(set) == 2 && !has(set, "192.0.2.2"),
	    "%zu ranges", addrset_count(set));
	addrset_free(set);

	set = set_of("255.255.255.255", "0.0.0.0/1", "128.0.0.0 - "
	    "255.255.255.254", NULL);
	check("merge_up_to_the_last_ipv4_address", addrset_count(set) == 1 &&
	    strcmp(walk_string(set, &w), "0.0.0.0/0") == 0, "%s", w.buf);
	addrset_free(set);

	set = set_of("2001:db8:8000::/33", "2001:db8::/33", NULL);
	check("merge_ipv6_adjacent", addrset_count(set) == 1 &&
	    strcmp(walk_string(set, &w), "2001:db8::/32") == 0, "%s", w.buf);
	addrset_free(set);

	/* Adjacent across the boundary of the two 64-bit halves. */
	set = set_of("2001:db8:0:1::", "2001:db8::ffff:ffff:ffff:ffff", NULL);
	check("merge_ipv6_adjacent_across_64_bits", addrset_count(set) == 1,
	    "%zu ranges", addrset_count(set));
	addrset_free(set);

	set = set_of("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "8000::/1",
	    "::/1", "::1", NULL);
	check("merge_up_to_the_last_ipv6_address", addrset_count(set) == 1 &&
	    strcmp(walk_string(set, &w), "::/0") == 0, "%s", w.buf);
	addrset_free(set);

	set = set_of("192.0.2.0/24", "2001:db8::/32", NULL);
	check("merge_keeps_families_apart", addrset_count(set) == 2, "%zu",
	    addrset_count(set));
	addrset_free(set);
}

static void
check_contains(void)
{
	struct addrset			*set;
	struct sockaddr_storage		 ss;

	set = set_of("192.0.2.10 - 192.0.2.20", "198.51.100.0/24",
	    "2001:db8::10 - 2001:db8::20", "2001:db8:1::/48", NULL);
	check("contains_ipv4_edges", !has(set, "192.0.2.9") &&
	    has(set, "192.0.2.10") && has(set, "192.0.2.20") &&
	    !has(set, "192.0.2.21") && !has(set, "198.51.99.255") &&
	    has(set, "198.51.100.0") && has(set, "198.51.100.255") &&
	    !has(set, "198.51.101.0"), "wrong answer");
	check("contains_ipv4_outside", !has(set, "0.0.0.0") &&
	    !has(set, "255.255.255.255") && !has(set, "195.0.0.1"),
	    "wrong answer");
	check("contains_ipv6_edges", !has(set, "2001:db8::f") &&
	    has(set, "2001:db8::10") && has(set, "2001:db8::20") &&
	    !has(set, "2001:db8::21") && !has(set, "2001:db8:0:ffff:ffff:"
	    "ffff:ffff:ffff") && has(set, "2001:db8:1::") &&
	    has(set, "2001:db8:1:ffff:ffff:ffff:ffff:ffff") &&
	    !has(set, "2001:db8:2::"), "wrong answer");
	check("contains_ipv6_outside", !has(set, "::") &&
	    !has(set, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff") &&
	    !has(set, "::1"), "wrong answer");
	check("contains_ipv4_mapped_as_ipv4", has(set, "::ffff:192.0.2.10") &&
	    has(set, "::ffff:198.51.100.255") &&
	    !has(set, "::ffff:192.0.2.21"), "wrong answer");
	check("contains_ipv4_compatible_is_not_mapped",
	    !has(set, "::192.0.2.10"), "found");
	ss = sa("192.0.2.10");
	ss.ss_family = AF_UNIX;
	check("contains_other_family", !addrset_contains(set, &ss), "found");
	addrset_free(set);

	set = set_of("0.0.0.0", "255.255.255.255", "::",
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", NULL);
	check("contains_first_and_last_addresses", has(set, "0.0.0.0") &&
	    has(set, "255.255.255.255") && !has(set, "0.0.0.1") &&
	    !has(set, "255.255.255.254") && has(set, "::") &&
	    has(set, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff") &&
	    !has(set, "::1"), "wrong answer");
	addrset_free(set);

	set = addrset_new();
	check("contains_empty_set", set != NULL && !has(set, "192.0.2.1") &&
	    !has(set, "2001:db8::1") && addrset_count(set) == 0, "found");
	addrset_free(set);

	/* Sockaddrs: host, prefix, mapped. */
	if ((set = addrset_new()) == NULL)
		err(1, NULL);
	ss = sa("192.0.2.77");
	check("sockaddr_ipv4_prefix", addrset_add_sockaddr(set, &ss, 24) == 0,
	    "refused");
	ss = sa("2001:db8::1:2:3:4");
	check("sockaddr_ipv6_host", addrset_add_sockaddr(set, &ss, -1) == 0,
	    "refused");
	ss = sa("::ffff:203.0.113.5");
	check("sockaddr_ipv4_mapped", addrset_add_sockaddr(set, &ss, -1) == 0,
	    "refused");
	ss = sa("192.0.2.1");
	check("sockaddr_refuses_prefix_33",
	    addrset_add_sockaddr(set, &ss, 33) == -1, "accepted");
	ss = sa("2001:db8::1");
	check("sockaddr_refuses_prefix_129",
	    addrset_add_sockaddr(set, &ss, 129) == -1, "accepted");
	ss.ss_family = AF_UNIX;
	check("sockaddr_refuses_other_family",
	    addrset_add_sockaddr(set, &ss, -1) == -1, "accepted");
	addrset_finish(set);
	check("sockaddr_lookups", addrset_count(set) == 3 &&
	    has(set, "192.0.2.0") && has(set, "192.0.2.255") &&
	    has(set, "2001:db8::1:2:3:4") && !has(set, "2001:db8::1:2:3:5") &&
	    has(set, "203.0.113.5") && has(set, "::ffff:203.0.113.5"),
	    "%zu ranges", addrset_count(set));
	addrset_free(set);
}

struct subtract_case {
	const char	*name;
	const char	*a[3];
	const char	*b[3];
	const char	*walk;
};

static const struct subtract_case subtracts[] = {
	{ "subtract_hole_in_the_middle", { "10.0.0.0/24" }, { "10.0.0.100" },
	    "10.0.0.0/26 10.0.0.64/27 10.0.0.96/30 10.0.0.101/32 "
	    "10.0.0.102/31 10.0.0.104/29 10.0.0.112/28 10.0.0.128/25" },
	{ "subtract_first_address", { "10.0.0.0/30" }, { "10.0.0.0" },
	    "10.0.0.1/32 10.0.0.2/31" },
	{ "subtract_last_address", { "10.0.0.0/30" }, { "10.0.0.3" },
	    "10.0.0.0/31 10.0.0.2/32" },
	{ "subtract_upper_half", { "10.0.0.0/24" }, { "10.0.0.128/25" },
	    "10.0.0.0/25" },
	{ "subtract_whole_removal", { "10.0.0.0/24", "2001:db8::/48" },
	    { "10.0.0.0/8", "2001:db8::/32" }, "" },
	{ "subtract_no_overlap", { "10.0.0.0/24", "2001:db8::/48" },
	    { "192.0.2.0/24", "2001:db8:1::/48" },
	    "10.0.0.0/24 2001:db8::/48" },
	{ "subtract_one_hole_over_two_ranges",
	    { "10.0.0.0/24", "10.0.2.0/24" }, { "10.0.0.128 - 10.0.2.127" },
	    "10.0.0.0/25 10.0.2.128/25" },
	{ "subtract_two_holes_in_one_range", { "10.0.0.0/29" },
	    { "10.0.0.1", "10.0.0.6" }, "10.0.0.0/32 10.0.0.2/31 10.0.0.4/31 "
	    "10.0.0.7/32" },
	{ "subtract_from_empty", { NULL }, { "10.0.0.0/8" }, "" },
	{ "subtract_nothing", { "10.0.0.0/8" }, { NULL }, "10.0.0.0/8" },
	{ "subtract_ipv6_hole", { "2001:db8::1 - 2001:db8::6" },
	    { "2001:db8::3 - 2001:db8::4" },
	    "2001:db8::1/128 2001:db8::2/128 2001:db8::5/128 "
	    "2001:db8::6/128" },
	{ "subtract_ipv6_upper_half", { "2001:db8::/32" },
	    { "2001:db8::/33" }, "2001:db8:8000::/33" },
	{ "subtract_ipv6_hole_across_64_bits", { "2001:db8::/63" },
	    { "2001:db8::ffff:ffff:ffff:fffe - 2001:db8:0:1::1" }, NULL },
};

static void
check_subtract(void)
{
	const struct subtract_case	*c;
	struct addrset			*a, *b, *d;
	struct walk_text		 w;
	size_t				 i, j;

	for (i = 0; i < sizeof(subtracts) / sizeof(subtracts[0]); i++) {
		c = &subtracts[i];
		if ((a = addrset_new()) == NULL || (b = addrset_new()) == NULL)
			err(1, NULL);
		for (j = 0; j < 3 && c->a[j] != NULL; j++)
			if (addrset_add(a, c->a[j]) == -1)
				errx(1, "%s refused", c->a[j]);
		for (j = 0; j < 3 && c->b[j] != NULL; j++)
			if (addrset_add(b, c->b[j]) == -1)
				errx(1, "%s refused", c->b[j]);
		addrset_finish(a);
		addrset_finish(b);
		if ((d = addrset_subtract(a, b)) == NULL)
			err(1, "addrset_subtract");
		if (c->walk != NULL)
			check(c->name, strcmp(walk_string(d, &w), c->walk) == 0,
			    "got \"%s\"", w.buf);
		else
			check(c->name, addrset_count(d) == 2 &&
			    has(d, "2001:db8::") &&
			    has(d, "2001:db8::ffff:ffff:ffff:fffd") &&
			    !has(d, "2001:db8::ffff:ffff:ffff:fffe") &&
			    !has(d, "2001:db8:0:1::1") &&
			    has(d, "2001:db8:0:1::2") &&
			    has(d, "2001:db8:0:1:ffff:ffff:ffff:ffff"),
			    "%zu ranges, %s", addrset_count(d),
			    walk_string(d, &w));
		addrset_free(a);
		addrset_free(b);
		addrset_free(d);
	}
}

static void
check_walk(void)
{
	struct addrset		*set;
	struct walk_text	 w, pw;
	size_t			 pos, pages;

	set = set_of("192.0.2.1 - 192.0.2.6", NULL);
	check("walk_ipv4_range_to_cidr", strcmp(walk_string(set, &w),
	    "192.0.2.1/32 192.0.2.2/31 192.0.2.4/31 192.0.2.6/32") == 0,
	    "%s", w.buf);
	addrset_free(set);

	set = set_of("0.0.0.0 - 255.255.255.255", NULL);
	check("walk_ipv4_everything", strcmp(walk_string(set, &w),
	    "0.0.0.0/0") == 0, "%s", w.buf);
	addrset_free(set);

	set = set_of("0.0.0.1 - 255.255.255.255", NULL);
	check("walk_ipv4_all_but_the_first",
	    walk_string(set, &w) != NULL && w.n == 32 &&
	    strncmp(w.buf, "0.0.0.1/32 0.0.0.2/31 ", 22) == 0 &&
	    strcmp(w.buf + strlen(w.buf) - 11, "128.0.0.0/1") == 0,
	    "%zu blocks: %s", w.n, w.buf);
	addrset_free(set);

	set = set_of(":: - ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", NULL);
	check("walk_ipv6_everything", strcmp(walk_string(set, &w), "::/0") ==
	    0, "%s", w.buf);
	addrset_free(set);

	set = set_of("2001:db8::8000:0:0:0 - 2001:db8:0:1:7fff:ffff:ffff:ffff",
	    NULL);
	check("walk_ipv6_across_64_bits", strcmp(walk_string(set, &w),
	    "2001:db8:0:0:8000::/65 2001:db8:0:1::/65") == 0, "%s", w.buf);
	addrset_free(set);

	set = set_of("::1 - ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", NULL);
	check("walk_ipv6_all_but_the_first", walk_string(set, &w) != NULL &&
	    w.n == 128 && strncmp(w.buf, "::1/128 ::2/127 ", 16) == 0 &&
	    strcmp(w.buf + strlen(w.buf) - 8, "8000::/1") == 0,
	    "%zu blocks", w.n);
	addrset_free(set);

	/* Pages of two ranges: the same blocks as one walk. */
	set = set_of("10.0.0.1", "10.0.0.3", "10.0.0.5 - 10.0.0.6", "::1",
	    "2001:db8::/32", NULL);
	pos = 0;
	memset(&pw, 0, sizeof(pw));
	for (pages = 1; addrset_walk_part(set, &pos, 2, walk_append, &pw) == 0;
	    pages++)
		if (pages > 10)
			break;
	check("walk_in_pages", pages == 3 && pos == 5 && strcmp(pw.buf,
	    walk_string(set, &w)) == 0 && addrset_walk_part(set, &pos, 2,
	    walk_append, &pw) == 1 && pw.n == 6, "%zu pages, pos %zu, %s",
	    pages, pos, pw.buf);
	addrset_free(set);
	set = addrset_new();
	pos = 0;
	check("walk_in_pages_empty", set != NULL &&
	    addrset_walk_part(set, &pos, 2, walk_append, &pw) == 1 &&
	    pos == 0, "not done");
	addrset_free(set);

	set = set_of("192.0.2.0/24", "2001:db8::/32", "10.0.0.0/8", NULL);
	check("walk_ipv4_first_then_ipv6", strcmp(walk_string(set, &w),
	    "10.0.0.0/8 192.0.2.0/24 2001:db8::/32") == 0, "%s", w.buf);
	addrset_free(set);
}

static void
write_file(const char *path, const char *data, size_t len)
{
	int	 fd;

	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) == -1)
		err(1, "%s", path);
	if (write(fd, data, len) != (ssize_t)len)
		err(1, "write %s", path);
	close(fd);
}

static void
write_gzip(const char *path, const char *data, size_t len)
{
	gzFile	 gz;

	if ((gz = gzopen(path, "wb")) == NULL)
		err(1, "gzopen %s", path);
	if (gzwrite(gz, data, len) != (int)len)
		errx(1, "gzwrite %s", path);
	if (gzclose(gz) != Z_OK)
		errx(1, "gzclose %s", path);
}

/* Loads path in steps of max_lines; counts the steps. */
static struct addrset *
load(const char *path, size_t max_lines, size_t *steps, size_t *bad,
    char *errbuf, size_t errlen)
{
	struct addrset_loader	*l;
	int			 fd, r;

	*steps = 0;
	*bad = 0;
	errbuf[0] = '\0';
	if ((fd = open(path, O_RDONLY)) == -1)
		err(1, "%s", path);
	if ((l = addrset_load_start(fd, path)) == NULL)
		errx(1, "addrset_load_start %s", path);
	do {
		r = addrset_load_step(l, max_lines);
		(*steps)++;
	} while (r == 1);
	return (addrset_load_finish(l, bad, errbuf, errlen));
}

static const char list_text[] =
    "# a blocklist\n"
    "\n"
    "192.0.2.1\n"
    "   198.51.100.0/24   # a network\n"
    "\t203.0.113.10 - 203.0.113.20\r\n"
    "2001:db8::/32\n"
    "not an address\n"
    "192.0.2.300\n"
    "#192.0.2.99\n"
    "   \t  \n"
    "10.0.0.1";			/* no newline at the end */

static void
check_list(struct addrset *set, const char *name, size_t bad,
    const char *errbuf)
{
	check(name, set != NULL && bad == 2 && addrset_count(set) == 5 &&
	    has(set, "192.0.2.1") && has(set, "198.51.100.200") &&
	    has(set, "203.0.113.20") && !has(set, "203.0.113.21") &&
	    has(set, "2001:db8:ffff::1") && has(set, "10.0.0.1") &&
	    !has(set, "192.0.2.99"), "set %p, %zu bad lines, %zu ranges, %s",
	    (void *)set, bad, set ? addrset_count(set) : 0, errbuf);
}

static void
check_load(void)
{
	struct addrset		*set;
	struct addrset_loader	*l;
	char			 path[PATH_MAX], gzpath[PATH_MAX], errbuf[256];
	char			*text, *data;
	size_t			 steps, bad, len, i;
	FILE			*fp;
	long			 size;
	int			 fd, r;

	(void)snprintf(path, sizeof(path), "%s/list", tmpdir);
	(void)snprintf(gzpath, sizeof(gzpath), "%s/list.gz", tmpdir);

	write_file(path, list_text, sizeof(list_text) - 1);
	set = load(path, 1000, &steps, &bad, errbuf, sizeof(errbuf));
	check_list(set, "load_plain_file", bad, errbuf);
	addrset_free(set);

	write_gzip(gzpath, list_text, sizeof(list_text) - 1);
	set = load(gzpath, 1000, &steps, &bad, errbuf, sizeof(errbuf));
	check_list(set, "load_gzip_file", bad, errbuf);
	addrset_free(set);

	write_file(path, "", 0);
	set = load(path, 1000, &steps, &bad, errbuf, sizeof(errbuf));
	check("load_empty_file", set != NULL && addrset_count(set) == 0 &&
	    bad == 0 && steps == 1, "%s", errbuf);
	addrset_free(set);

	/* Ten lines in steps of three: 3, 3, 3, then 1 and the end. */
	if ((text = calloc(1, 8192)) == NULL)
		err(1, NULL);
	for (i = 0; i < 10; i++) {
		(void)snprintf(path, sizeof(path), "10.0.0.%zu\n", i * 2);
		(void)strlcat(text, path, 8192);
	}
	(void)snprintf(path, sizeof(path), "%s/list", tmpdir);
	write_file(path, text, strlen(text));
	set = load(path, 3, &steps, &bad, errbuf, sizeof(errbuf));
	check("load_steps_of_max_lines", set != NULL && steps == 4 &&
	    addrset_count(set) == 10 && has(set, "10.0.0.18"),
	    "%zu steps, %s", steps, errbuf);
	addrset_free(set);
	set = load(path, 1, &steps, &bad, errbuf, sizeof(errbuf));
	check("load_steps_of_one_line", set != NULL && steps == 11,
	    "%zu steps", steps);
	addrset_free(set);

	/* Overlong lines are bad, and so are the NUL bytes in a line. */
	memset(text, 0, 8192);
	(void)strlcpy(text, "192.0.2.1\n", 8192);
	memset(text + strlen(text), 'x', 2000);
	(void)strlcat(text, "\n192.0.2.3\n", 8192);
	len = strlen(text);
	memset(text + len, 'y', 1025);
	len += 1025;
	memcpy(text + len, "\n192.0.2.5\n192.0.2.7\0junk\n", 26);
	len += 26;
	memset(text + len, ' ', 1024);
	len += 1024;
	memcpy(text + len, "\n192.0.2.9\n", 11);
	len += 11;
	write_file(path, text, len);
	set = load(path, 2, &steps, &bad, errbuf, sizeof(errbuf));
	check("load_overlong_and_nul_lines_are_bad", set != NULL &&
	    bad == 3 && addrset_count(set) == 4 && has(set, "192.0.2.1") &&
	    has(set, "192.0.2.3") && has(set, "192.0.2.5") &&
	    has(set, "192.0.2.9") && !has(set, "192.0.2.7"),
	    "%zu bad lines, %zu ranges, %s", bad,
	    set ? addrset_count(set) : 0, errbuf);
	addrset_free(set);
	free(text);

	/* A truncated gzip stream is an error, not a short list. */
	if ((text = malloc(200000)) == NULL)
		err(1, NULL);
	for (i = 0, len = 0; i < 10000; i++)
		len += snprintf(text + len, 200000 - len, "10.%zu.%zu.1\n",
		    i / 256, i % 256);
	write_gzip(gzpath, text, len);
	free(text);
	if ((fp = fopen(gzpath, "r")) == NULL || fseek(fp, 0, SEEK_END) ||
	    (size = ftell(fp)) <= 0 || fseek(fp, 0, SEEK_SET) ||
	    (data = malloc(size)) == NULL ||
	    fread(data, 1, size, fp) != (size_t)size)
		err(1, "%s", gzpath);
	fclose(fp);
	write_file(gzpath, data, size / 2);
	set = load(gzpath, 1000, &steps, &bad, errbuf, sizeof(errbuf));
	check("load_gzip_truncated_in_the_middle", set == NULL &&
	    strstr(errbuf, "/list.gz: ") != NULL &&
	    strstr(errbuf, "<fd:") == NULL, "loaded, err \"%s\"", errbuf);
	addrset_free(set);
	write_file(gzpath, data, size - 4);
	set = load(gzpath, 1000, &steps, &bad, errbuf, sizeof(errbuf));
	check("load_gzip_without_its_trailer", set == NULL && errbuf[0] != '\0',
	    "loaded, err \"%s\"", errbuf);
	addrset_free(set);
	data[size - 8] ^= 0xff;		/* the CRC */
	write_file(gzpath, data, size);
	set = load(gzpath, 1000, &steps, &bad, errbuf, sizeof(errbuf));
	check("load_gzip_bad_crc", set == NULL && errbuf[0] != '\0',
	    "loaded, err \"%s\"", errbuf);
	addrset_free(set);
	free(data);

	/* Abort halfway: nothing leaks (valgrind), the fd is closed. */
	if ((fd = open(path, O_RDONLY)) == -1)
		err(1, "%s", path);
	if ((l = addrset_load_start(fd, path)) == NULL)
		errx(1, "addrset_load_start");
	r = addrset_load_step(l, 1);
	addrset_load_abort(l);
	check("load_abort_closes_the_file", r == 1 && fcntl(fd, F_GETFD) == -1,
	    "step %d, fd still open", r);
}

/*
 * Bad lines are logged, the first five only, and then counted in one
 * line; stderr goes to a file while the list loads.
 */
static void
check_bad_line_logging(void)
{
	struct addrset	*set;
	char		 path[PATH_MAX], logpath[PATH_MAX], errbuf[256];
	char		 line[512], text[4096];
	size_t		 steps, bad, i, logged = 0, summary = 0, first = 0;
	FILE		*fp;
	int		 saved, fd;

	(void)snprintf(path, sizeof(path), "%s/bad", tmpdir);
	(void)snprintf(logpath, sizeof(logpath), "%s/log", tmpdir);
	text[0] = '\0';
	for (i = 0; i < 100; i++)
		(void)strlcat(text, i == 50 ? "192.0.2.1\n" : "bogus\n",
		    sizeof(text));
	write_file(path, text, strlen(text));

	fflush(stderr);
	if ((saved = dup(STDERR_FILENO)) == -1 ||
	    (fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600)) == -1 ||
	    dup2(fd, STDERR_FILENO) == -1)
		err(1, "redirecting stderr");
	close(fd);
	set = load(path, 7, &steps, &bad, errbuf, sizeof(errbuf));
	fflush(stderr);
	if (dup2(saved, STDERR_FILENO) == -1)
		err(1, "dup2");
	close(saved);

	if ((fp = fopen(logpath, "r")) == NULL)
		err(1, "%s", logpath);
	while (fgets(line, sizeof(line), fp) != NULL) {
		if (strstr(line, "bad address \"bogus\"") != NULL)
			logged++;
		if (strstr(line, "/bad:1: bad address \"bogus\"") != NULL)
			first++;
		if (strstr(line, "99 bad lines") != NULL)
			summary++;
	}
	fclose(fp);
	check("load_logs_the_first_five_bad_lines", set != NULL && bad == 99 &&
	    logged == 5 && first == 1 && summary == 1 &&
	    has(set, "192.0.2.1"), "%zu bad, %zu logged, %zu summaries",
	    bad, logged, summary);
	addrset_free(set);
}

/* The i-th address of the big list: only even ones, in random order. */
static uint32_t
big_list_addr(size_t i)
{
	/* An odd multiplier permutes [0, 2^20). */
	return (0x0a000000 | (((uint32_t)i * 2654435761U) & 0xfffff) << 1);
}

static int
big_list_has(const struct addrset *set, uint32_t a)
{
	struct sockaddr_storage	 ss;
	struct sockaddr_in	*sin = (struct sockaddr_in *)&ss;

	memset(&ss, 0, sizeof(ss));
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(a);
	return (addrset_contains(set, &ss));
}

/*
 * A million-line list in random order loads whole, and lookups find its
 * addresses and not their odd neighbours.  The time is printed, not
 * checked.
 */
static void
check_big_list(void)
{
	static const size_t	 probes[] = { 0, 1, 2, 4242, 499999, 999999 };
	struct addrset		*set;
	struct timespec		 t0, t1;
	char			 path[PATH_MAX], errbuf[256], *text;
	size_t			 steps, bad, len = 0, i, cap = 20 * 1000000;
	uint32_t		 a;
	int			 ok;

	(void)snprintf(path, sizeof(path), "%s/big", tmpdir);
	if ((text = malloc(cap)) == NULL)
		err(1, NULL);
	for (i = 0; i < 1000000; i++) {
		a = big_list_addr(i);
		len += snprintf(text + len, cap - len, "%u.%u.%u.%u\n",
		    a >> 24, (a >> 16) & 0xff, (a >> 8) & 0xff, a & 0xff);
	}
	write_file(path, text, len);
	free(text);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	set = load(path, 10000, &steps, &bad, errbuf, sizeof(errbuf));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("# 1000000 lines loaded in %ld ms, %zu steps\n",
	    (long)((t1.tv_sec - t0.tv_sec) * 1000 +
	    (t1.tv_nsec - t0.tv_nsec) / 1000000), steps);
	if (set == NULL) {
		check("load_million_lines", 0, "%s", errbuf);
		return;
	}
	ok = addrset_count(set) == 1000000 && bad == 0 && steps == 101;
	for (i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
		a = big_list_addr(probes[i]);
		ok = ok && big_list_has(set, a) && !big_list_has(set, a + 1);
	}
	ok = ok && !big_list_has(set, 0x09ffffff) &&
	    !big_list_has(set, 0x0a200000);
	check("load_million_lines", ok, "%zu ranges, %zu bad, %zu steps",
	    addrset_count(set), bad, steps);
	addrset_free(set);
}

int
main(void)
{
	static const char	*files[] = { "list", "list.gz", "bad", "log",
				    "big" };
	char			 path[PATH_MAX];
	size_t			 i;

	log_init(1, 0);
	log_procinit("addrset_test");
	if (mkdtemp(tmpdir) == NULL)
		err(1, "mkdtemp");

	check_forms();
	check_merge();
	check_contains();
	check_subtract();
	check_walk();
	check_load();
	check_bad_line_logging();
	check_big_list();

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		(void)snprintf(path, sizeof(path), "%s/%s", tmpdir, files[i]);
		(void)unlink(path);
	}
	if (rmdir(tmpdir) == -1)
		warn("rmdir %s", tmpdir);
	return (failures ? 1 : 0);
}
