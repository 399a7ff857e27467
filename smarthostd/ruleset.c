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
 * The match rules, evaluated at RCPT in order; the first rule whose
 * conditions all hold decides.  When none does the caller rejects:
 * there is no way to become an open relay by leaving a rule out.
 */

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smarthostd.h"

static int	 cond_from(struct smarthost_config *, const struct match_cond *,
		    const struct rule_context *);
static int	 cond_auth(struct smarthost_config *, const struct match_cond *,
		    const struct rule_context *);
static int	 cond_for(struct smarthost_config *, const struct match_cond *,
		    const struct rule_context *);
static int	 cond_address(struct smarthost_config *,
		    const struct match_cond *, const char *);
static int	 domain_is_local(const char *, const char *);

const struct match_rule *
ruleset_match(struct smarthost_config *conf, const struct rule_context *ctx)
{
	const struct match_rule	*m;

	TAILQ_FOREACH(m, &conf->matches, entry) {
		if (cond_from(conf, &m->from, ctx) &&
		    cond_auth(conf, &m->auth, ctx) &&
		    cond_for(conf, &m->rcpt_for, ctx) &&
		    cond_address(conf, &m->rcpt_to, ctx->rcpt) &&
		    cond_address(conf, &m->mail_from, ctx->sender))
			return (m);
	}
	return (NULL);
}

/*
 * Table keys are looked up as given and lowercased; domains and the
 * addresses we build are lowercase on the right of the '@' already.
 */
int
table_lookup(struct table *t, const char *key)
{
	struct table_entry	 find;
	char			 lower[TABLE_ENTRY_MAX];
	size_t			 i;

	if (t == NULL)
		return (0);
	find.key = (char *)(uintptr_t)key;
	if (RB_FIND(table_entries, &t->entries, &find) != NULL)
		return (1);
	for (i = 0; key[i] != '\0' && i < sizeof(lower) - 1; i++)
		lower[i] = tolower((unsigned char)key[i]);
	if (key[i] != '\0')
		return (0);
	lower[i] = '\0';
	find.key = lower;
	return (RB_FIND(table_entries, &t->entries, &find) != NULL);
}

/* Does any address or network of the table contain the client? */
int
table_match_addr(struct table *t, const struct sockaddr_storage *ss)
{
	struct table_entry	*e;

	if (t == NULL)
		return (0);
	RB_FOREACH(e, table_entries, &t->entries)
		if (addr_in_net(ss, e->key) == 1)
			return (1);
	return (0);
}

static int
cond_result(const struct match_cond *c, int matched)
{
	return (c->negate ? !matched : matched);
}

static int
cond_from(struct smarthost_config *conf, const struct match_cond *c,
    const struct rule_context *ctx)
{
	switch (c->kind) {
	case COND_UNSET:
		return (1);
	case COND_ANY:
		return (cond_result(c, 1));
	case COND_LOCAL:
		return (cond_result(c, addr_is_loopback(ctx->client)));
	case COND_TABLE:
		return (cond_result(c, table_match_addr(table_find(conf,
		    c->table), ctx->client)));
	case COND_LITERAL:
		return (cond_result(c, addr_in_net(ctx->client,
		    c->literal) == 1));
	}
	return (0);
}

static int
cond_auth(struct smarthost_config *conf, const struct match_cond *c,
    const struct rule_context *ctx)
{
	switch (c->kind) {
	case COND_UNSET:
		return (1);
	case COND_ANY:
		return (cond_result(c, ctx->auth_user != NULL));
	case COND_TABLE:
		return (cond_result(c, ctx->auth_user != NULL &&
		    table_lookup(table_find(conf, c->table), ctx->auth_user)));
	default:
		return (0);
	}
}

static int
domain_is_local(const char *domain, const char *local_name)
{
	return (domain == NULL || strcasecmp(domain, "localhost") == 0 ||
	    strcasecmp(domain, local_name) == 0);
}

static int
cond_for(struct smarthost_config *conf, const struct match_cond *c,
    const struct rule_context *ctx)
{
	const char	*domain = mailaddr_domain(ctx->rcpt);

	switch (c->kind) {
	case COND_UNSET:
		return (1);
	case COND_ANY:
		return (cond_result(c, 1));
	case COND_LOCAL:
		return (cond_result(c, domain_is_local(domain,
		    ctx->local_name)));
	case COND_TABLE:
		return (cond_result(c, domain != NULL &&
		    table_lookup(table_find(conf, c->table), domain)));
	case COND_LITERAL:
		return (cond_result(c, domain != NULL &&
		    strcasecmp(domain, c->literal) == 0));
	}
	return (0);
}

/*
 * rcpt-to and mail-from: a table holds whole addresses or "@domain"
 * entries; a literal is an address or "@domain".
 */
static int
cond_address(struct smarthost_config *conf, const struct match_cond *c,
    const char *addr)
{
	struct table	*t;
	const char	*domain = mailaddr_domain(addr);
	char		 at_domain[SMTP_ADDR_LEN];
	int		 matched = 0;

	if (c->kind == COND_UNSET)
		return (1);
	at_domain[0] = '\0';
	if (domain != NULL)
		(void)snprintf(at_domain, sizeof(at_domain), "@%s", domain);
	switch (c->kind) {
	case COND_ANY:
		matched = 1;
		break;
	case COND_TABLE:
		t = table_find(conf, c->table);
		matched = table_lookup(t, addr) ||
		    (at_domain[0] != '\0' && table_lookup(t, at_domain));
		break;
	case COND_LITERAL:
		if (c->literal[0] == '@')
			matched = strcasecmp(at_domain, c->literal) == 0;
		else
			matched = strcasecmp(addr, c->literal) == 0;
		break;
	default:
		return (0);
	}
	return (cond_result(c, matched));
}
