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
 * Unit tests for smarthostd/mailaddr.c, the RFC 5321 path parser.  Each
 * case prints "ok - name" or "not ok - name: reason".
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smarthostd.h"

static int	 failures;

struct path_case {
	const char	*name;
	const char	*input;
	int		 flags;
	int		 expect;	/* 0 or a MAILADDR_* error */
	const char	*address;	/* when expect == 0 */
	const char	*rest;		/* when expect == 0 */
};

static const struct path_case cases[] = {
	{ "plain_address", "<user@example.com>", 0, 0,
	    "user@example.com", "" },
	{ "domain_is_lowercased_local_part_kept", "<User@EXAMPLE.Com>", 0, 0,
	    "User@example.com", "" },
	{ "parameters_follow", "<a@b.example> SIZE=100 BODY=8BITMIME", 0, 0,
	    "a@b.example", " SIZE=100 BODY=8BITMIME" },
	{ "null_path_for_mail", "<>", MAILADDR_NULL_OK, 0, "", "" },
	{ "null_path_refused_for_rcpt", "<>", MAILADDR_POSTMASTER,
	    MAILADDR_SYNTAX, NULL, NULL },
	{ "postmaster_without_domain", "<Postmaster>", MAILADDR_POSTMASTER,
	    0, "postmaster", "" },
	{ "postmaster_only_where_allowed", "<postmaster>", 0,
	    MAILADDR_SYNTAX, NULL, NULL },
	{ "quoted_local_part", "<\"john smith\"@example.com>", 0, 0,
	    "\"john smith\"@example.com", "" },
	{ "quoted_pair", "<\"a\\\"b\"@example.com>", 0, 0,
	    "\"a\\\"b\"@example.com", "" },
	{ "ipv4_literal", "<a@[192.0.2.1]>", 0, 0, "a@[192.0.2.1]", "" },
	{ "ipv6_literal", "<a@[IPv6:2001:db8::1]>", 0, 0,
	    "a@[IPv6:2001:db8::1]", "" },
	{ "bad_ipv4_literal", "<a@[192.0.2.300]>", 0, MAILADDR_SYNTAX,
	    NULL, NULL },
	{ "source_route_refused", "<@relay.example:a@b.example>", 0,
	    MAILADDR_ROUTE, NULL, NULL },
	{ "percent_hack_refused", "<a%b.example@relay.example>", 0,
	    MAILADDR_RELAY_FORM, NULL, NULL },
	{ "bang_path_refused", "<b.example!a@relay.example>", 0,
	    MAILADDR_RELAY_FORM, NULL, NULL },
	{ "no_brackets", "a@b.example", 0, MAILADDR_SYNTAX, NULL, NULL },
	{ "unclosed_bracket", "<a@b.example", 0, MAILADDR_SYNTAX, NULL,
	    NULL },
	{ "no_domain", "<user>", 0, MAILADDR_SYNTAX, NULL, NULL },
	{ "empty_local_part", "<@b.example>", 0, MAILADDR_ROUTE, NULL,
	    NULL },
	{ "double_dot", "<a..b@b.example>", 0, MAILADDR_SYNTAX, NULL, NULL },
	{ "leading_dot", "<.a@b.example>", 0, MAILADDR_SYNTAX, NULL, NULL },
	{ "trailing_dot_in_domain", "<a@b.example.>", 0, MAILADDR_SYNTAX,
	    NULL, NULL },
	{ "hyphen_ends_label", "<a@b-.example>", 0, MAILADDR_SYNTAX, NULL,
	    NULL },
	{ "underscore_in_domain", "<a@b_c.example>", 0, MAILADDR_SYNTAX,
	    NULL, NULL },
	{ "space_in_local_part", "<a b@c.example>", 0, MAILADDR_SYNTAX,
	    NULL, NULL },
	{ "control_in_quoted", "<\"a\tb\"@c.example>", 0, MAILADDR_SYNTAX,
	    NULL, NULL },
	{ "utf8_local_part", "<j\xc3\xb6rg@b.example>", 0, MAILADDR_NONASCII,
	    NULL, NULL },
	{ "utf8_domain", "<a@b\xc3\xa4.example>", 0, MAILADDR_NONASCII,
	    NULL, NULL },
	{ "two_at_signs", "<a@b@c.example>", 0, MAILADDR_SYNTAX, NULL, NULL },
};

static void
check_case(const struct path_case *c)
{
	char		 out[SMTP_ADDR_LEN];
	const char	*rest = NULL;
	int		 r;

	r = mailaddr_parse_path(c->input, out, sizeof(out), &rest, c->flags);
	if (r != c->expect) {
		printf("not ok - %s: returned %d (%s), expected %d\n", c->name,
		    r, r ? mailaddr_strerror(r) : "ok", c->expect);
		failures++;
		return;
	}
	if (r == 0 && (strcmp(out, c->address) != 0 ||
	    strcmp(rest, c->rest) != 0)) {
		printf("not ok - %s: got \"%s\" rest \"%s\"\n", c->name, out,
		    rest);
		failures++;
		return;
	}
	printf("ok - %s\n", c->name);
}

static void
check(const char *name, int cond, const char *why)
{
	if (cond)
		printf("ok - %s\n", name);
	else {
		printf("not ok - %s: %s\n", name, why);
		failures++;
	}
}

static void
check_lengths(void)
{
	char		 in[1024], out[SMTP_ADDR_LEN];
	const char	*rest;
	int		 r;

	/* 64 octets of local part pass, 65 do not. */
	(void)snprintf(in, sizeof(in), "<%.*s@b.example>", 64,
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	r = mailaddr_parse_path(in, out, sizeof(out), &rest, 0);
	check("local_part_of_64_octets", r == 0, mailaddr_strerror(r));
	(void)snprintf(in, sizeof(in), "<%.*s@b.example>", 65,
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	r = mailaddr_parse_path(in, out, sizeof(out), &rest, 0);
	check("local_part_of_65_octets_too_long", r == MAILADDR_TOO_LONG,
	    "accepted");

	/* A path of 257 octets, brackets included, is too long. */
	memset(in, 0, sizeof(in));
	(void)strlcpy(in, "<a@", sizeof(in));
	while (strlen(in) < 256 - 1 - 8)
		(void)strlcat(in, "abcdefg.", sizeof(in));
	while (strlen(in) < 256 - 1)
		(void)strlcat(in, "x", sizeof(in));
	(void)strlcat(in, ">", sizeof(in));
	r = mailaddr_parse_path(in, out, sizeof(out), &rest, 0);
	check("path_of_256_octets", strlen(in) == 256 && r == 0,
	    mailaddr_strerror(r));
	in[strlen(in) - 1] = 'y';
	(void)strlcat(in, ">", sizeof(in));
	r = mailaddr_parse_path(in, out, sizeof(out), &rest, 0);
	check("path_of_257_octets_too_long", r == MAILADDR_TOO_LONG,
	    "accepted");

	check("valid_accepts_plain", mailaddr_valid("a@b.example"),
	    "refused");
	check("valid_refuses_uppercase_domain",
	    !mailaddr_valid("a@B.example"), "accepted");
	check("domain_of_address",
	    strcmp(mailaddr_domain("a@b.example"), "b.example") == 0,
	    "wrong domain");
	check("domain_of_postmaster", mailaddr_domain("postmaster") == NULL,
	    "has a domain");
}

int
main(void)
{
	size_t	 i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_case(&cases[i]);
	check_lengths();
	return (failures ? 1 : 0);
}
