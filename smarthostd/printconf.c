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
 * Print a configuration in the grammar's own syntax, every global default
 * spelt out, so that the output parses again to the same output.  The
 * smtp, queue and tarpit blocks show only what differs from the defaults.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smarthostd.h"

static void	 print_string(FILE *, const char *);
static void	 print_decimal(FILE *, double);
static void	 print_section(FILE *, int *);
static void	 print_globals(FILE *, struct smarthost_config *);
static void	 print_pkis(FILE *, struct smarthost_config *);
static void	 print_tables(FILE *, struct smarthost_config *);
static void	 print_listeners(FILE *, struct smarthost_config *);
static const char *size_fmt(uint64_t, char *, size_t);
static void	 print_block_option(FILE *, const char **, const char *,
		    const char *);
static void	 print_smtp(FILE *, struct smarthost_config *,
		    struct smarthost_config *);
static void	 print_queue(FILE *, struct smarthost_config *,
		    struct smarthost_config *);
static void	 print_greylist(FILE *, struct smarthost_config *);
static const char *ms_fmt(uint32_t, char *, size_t);
static void	 print_tarpit(FILE *, struct smarthost_config *,
		    struct smarthost_config *);
static void	 print_blocklists(FILE *, struct smarthost_config *);
static void	 print_dnsbls(FILE *, struct smarthost_config *,
		    struct smarthost_config *);
static void	 print_spam_levels(FILE *, const struct spam_levels *);
static void	 print_scan(FILE *, struct smarthost_config *);
static void	 print_firewall(FILE *, struct smarthost_config *);
static void	 print_actions(FILE *, struct smarthost_config *);
static void	 print_cond(FILE *, const char *, struct match_cond *,
		    const char *, const char *);
static void	 print_matches(FILE *, struct smarthost_config *);

static const char *fw_names[FW_TABLE_MAX] = {
	"white", "trap", "block", "spf-white"
};

void
print_config(FILE *fp, struct smarthost_config *conf)
{
	struct smarthost_config	*def;

	if ((def = config_new()) == NULL)
		fatal("print_config");
	print_globals(fp, conf);
	print_pkis(fp, conf);
	print_tables(fp, conf);
	print_listeners(fp, conf);
	print_smtp(fp, conf, def);
	print_queue(fp, conf, def);
	print_greylist(fp, conf);
	print_tarpit(fp, conf, def);
	print_blocklists(fp, conf);
	print_dnsbls(fp, conf, def);
	config_free(def);
	print_scan(fp, conf);
	print_firewall(fp, conf);
	print_actions(fp, conf);
	print_matches(fp, conf);
}

/* The largest unit that divides the duration exactly. */
const char *
duration_fmt(time_t t, char *buf, size_t len)
{
	long long	 n = (long long)t;

	if (n != 0 && n % 86400 == 0)
		(void)snprintf(buf, len, "%lldd", n / 86400);
	else if (n != 0 && n % 3600 == 0)
		(void)snprintf(buf, len, "%lldh", n / 3600);
	else if (n != 0 && n % 60 == 0)
		(void)snprintf(buf, len, "%lldm", n / 60);
	else
		(void)snprintf(buf, len, "%llds", n);
	return (buf);
}

/* The largest binary unit that divides the size exactly. */
static const char *
size_fmt(uint64_t n, char *buf, size_t len)
{
	static const char	 units[] = "GMK";
	uint64_t		 unit;
	int			 i;

	for (i = 0, unit = 1ULL << 30; units[i] != '\0'; i++, unit >>= 10)
		if (n != 0 && n % unit == 0) {
			(void)snprintf(buf, len, "%llu%c",
			    (unsigned long long)(n / unit), units[i]);
			return (buf);
		}
	(void)snprintf(buf, len, "%llu", (unsigned long long)n);
	return (buf);
}

static void
print_string(FILE *fp, const char *s)
{
	(void)fputc('"', fp);
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\')
			(void)fputc('\\', fp);
		(void)fputc(*s, fp);
	}
	(void)fputc('"', fp);
}

/*
 * The shortest fixed-point form that reads back as the same double, so
 * that "3.0" stays "3.0" and a level never looks like a count.
 */
static void
print_decimal(FILE *fp, double d)
{
	char	 buf[64];
	int	 prec;

	for (prec = 1; prec <= 17; prec++) {
		(void)snprintf(buf, sizeof(buf), "%.*f", prec, d);
		if (strtod(buf, NULL) == d)
			break;
	}
	if (prec > 17)
		(void)snprintf(buf, sizeof(buf), "%.17g", d);
	(void)fputs(buf, fp);
}

/* A blank line before the first item of a section. */
static void
print_section(FILE *fp, int *first)
{
	if (*first)
		(void)fputc('\n', fp);
	*first = 0;
}

static void
print_globals(FILE *fp, struct smarthost_config *conf)
{
	(void)fputs("hostname ", fp);
	print_string(fp, conf->hostname);
	(void)fputs("\nuser ", fp);
	print_string(fp, conf->user);
	(void)fputs("\nstate ", fp);
	print_string(fp, conf->state_dir);
	(void)fputs("\ncontrol socket ", fp);
	print_string(fp, conf->control_path);
	(void)fputs("\npidfile ", fp);
	print_string(fp, conf->pidfile);
	(void)fputc('\n', fp);
	if (conf->resolver[0] != '\0') {
		(void)fputs("resolver ", fp);
		print_string(fp, conf->resolver);
		(void)fprintf(fp, " port %u\n",
		    (unsigned int)conf->resolver_port);
	}
}

static void
print_pkis(FILE *fp, struct smarthost_config *conf)
{
	struct pki	*p;
	int		 first = 1;

	TAILQ_FOREACH(p, &conf->pkis, entry) {
		print_section(fp, &first);
		if (p->cert_file[0] != '\0') {
			(void)fputs("pki ", fp);
			print_string(fp, p->name);
			(void)fputs(" cert ", fp);
			print_string(fp, p->cert_file);
			(void)fputc('\n', fp);
		}
		if (p->key_file[0] != '\0') {
			(void)fputs("pki ", fp);
			print_string(fp, p->name);
			(void)fputs(" key ", fp);
			print_string(fp, p->key_file);
			(void)fputc('\n', fp);
		}
	}
}

static void
print_tables(FILE *fp, struct smarthost_config *conf)
{
	struct table		*t;
	struct table_entry	*e;
	int			 first = 1;

	TAILQ_FOREACH(t, &conf->tables, entry) {
		print_section(fp, &first);
		(void)fputs("table ", fp);
		print_string(fp, t->name);
		if (t->source == TABLE_FILE) {
			(void)fputs(" file ", fp);
			print_string(fp, t->path);
			(void)fputc('\n', fp);
			continue;
		}
		(void)fputs(" {", fp);
		RB_FOREACH(e, table_entries, &t->entries) {
			(void)fputc(' ', fp);
			print_string(fp, e->key);
			if (RB_NEXT(table_entries, &t->entries, e) != NULL)
				(void)fputc(',', fp);
		}
		(void)fputs(" }\n", fp);
	}
}

static void
print_listeners(FILE *fp, struct smarthost_config *conf)
{
	struct listener	*l;
	int		 first = 1;

	TAILQ_FOREACH(l, &conf->listeners, entry) {
		print_section(fp, &first);
		(void)fputs("listen on ", fp);
		if (strcmp(l->on, "all") == 0)
			(void)fputs("all", fp);
		else
			print_string(fp, l->on);
		(void)fprintf(fp, " port %u", (unsigned int)l->port);
		switch (l->tls) {
		case LISTEN_PLAIN:
			break;
		case LISTEN_STARTTLS:
			(void)fputs(" tls", fp);
			break;
		case LISTEN_TLS_REQUIRE:
			(void)fputs(" tls-require", fp);
			break;
		case LISTEN_SMTPS:
			(void)fputs(" smtps", fp);
			break;
		}
		if (l->pki[0] != '\0') {
			(void)fputs(" pki ", fp);
			print_string(fp, l->pki);
		}
		if (l->auth_table[0] != '\0')
			(void)fprintf(fp, " auth <%s>", l->auth_table);
		if (l->hostname[0] != '\0') {
			(void)fputs(" hostname ", fp);
			print_string(fp, l->hostname);
		}
		(void)fputc('\n', fp);
	}
}

/* One option of a block, the block's head before the first. */
static void
print_block_option(FILE *fp, const char **head, const char *name,
    const char *value)
{
	if (*head != NULL) {
		(void)fprintf(fp, "\n%s {\n", *head);
		*head = NULL;
	}
	(void)fprintf(fp, "\t%s %s\n", name, value);
}

static void
print_smtp(FILE *fp, struct smarthost_config *conf,
    struct smarthost_config *def)
{
	const struct {
		const char	*name;
		uint32_t	 value, def;
	} counts[] = {
		{ "max-recipients", conf->smtp.max_recipients,
		    def->smtp.max_recipients },
		{ "max-sessions", conf->smtp.max_sessions,
		    def->smtp.max_sessions },
		{ "max-sessions-per-client", conf->smtp.max_sessions_per_client,
		    def->smtp.max_sessions_per_client },
		{ "max-errors", conf->smtp.max_errors, def->smtp.max_errors },
		{ "max-hops", conf->smtp.max_hops, def->smtp.max_hops },
		{ "max-auth-failures", conf->smtp.max_auth_failures,
		    def->smtp.max_auth_failures }
	};
	const struct {
		const char	*name;
		time_t		 value, def;
	} timeouts[] = {
		{ "command-timeout", conf->smtp.command_timeout,
		    def->smtp.command_timeout },
		{ "data-timeout", conf->smtp.data_timeout,
		    def->smtp.data_timeout },
		{ "transaction-timeout", conf->smtp.transaction_timeout,
		    def->smtp.transaction_timeout }
	};
	const char	*head = "smtp";
	char		 buf[32];
	size_t		 i;

	if (conf->smtp.max_message_size != def->smtp.max_message_size)
		print_block_option(fp, &head, "max-message-size",
		    size_fmt(conf->smtp.max_message_size, buf, sizeof(buf)));
	for (i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		if (counts[i].value == counts[i].def)
			continue;
		(void)snprintf(buf, sizeof(buf), "%u",
		    (unsigned int)counts[i].value);
		print_block_option(fp, &head, counts[i].name, buf);
	}
	for (i = 0; i < sizeof(timeouts) / sizeof(timeouts[0]); i++)
		if (timeouts[i].value != timeouts[i].def)
			print_block_option(fp, &head, timeouts[i].name,
			    duration_fmt(timeouts[i].value, buf, sizeof(buf)));
	if (head == NULL)
		(void)fputs("}\n", fp);
}

static void
print_queue(FILE *fp, struct smarthost_config *conf,
    struct smarthost_config *def)
{
	struct queue_config	*q = &conf->queue, *d = &def->queue;
	const struct {
		const char	*name;
		time_t		 value, def;
	} durations[] = {
		{ "retry-min", q->retry_min, d->retry_min },
		{ "retry-max", q->retry_max, d->retry_max },
		{ "lifetime", q->lifetime, d->lifetime },
		{ "delay-warning", q->delay_warning, d->delay_warning }
	};
	const struct {
		const char	*name;
		uint32_t	 value, def;
	} counts[] = {
		{ "max-deliveries", q->max_deliveries, d->max_deliveries },
		{ "max-per-destination", q->max_per_destination,
		    d->max_per_destination }
	};
	const char	*head = "queue";
	char		 buf[32];
	size_t		 i;

	if (q->map_size != d->map_size)
		print_block_option(fp, &head, "map-size",
		    size_fmt(q->map_size, buf, sizeof(buf)));
	if (q->min_free != d->min_free)
		print_block_option(fp, &head, "min-free",
		    size_fmt(q->min_free, buf, sizeof(buf)));
	/* A duration of 0 is delay-warning's "off". */
	for (i = 0; i < sizeof(durations) / sizeof(durations[0]); i++)
		if (durations[i].value != durations[i].def)
			print_block_option(fp, &head, durations[i].name,
			    durations[i].value == 0 ? "off" :
			    duration_fmt(durations[i].value, buf, sizeof(buf)));
	if (q->quarantine_expire != d->quarantine_expire)
		print_block_option(fp, &head, "quarantine-expire",
		    q->quarantine_expire == 0 ? "never" :
		    duration_fmt(q->quarantine_expire, buf, sizeof(buf)));
	for (i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		if (counts[i].value == counts[i].def)
			continue;
		(void)snprintf(buf, sizeof(buf), "%u",
		    (unsigned int)counts[i].value);
		print_block_option(fp, &head, counts[i].name, buf);
	}
	if (head == NULL)
		(void)fputs("}\n", fp);
}

static void
print_greylist(FILE *fp, struct smarthost_config *conf)
{
	struct greylist_config	*g = &conf->greylist;
	char			 buf[32];

	if (!g->enabled)
		return;
	(void)fputs("\ngreylist {\n", fp);
	(void)fprintf(fp, "\tpasstime %s\n",
	    duration_fmt(g->passtime, buf, sizeof(buf)));
	(void)fprintf(fp, "\tgreyexp %s\n",
	    duration_fmt(g->greyexp, buf, sizeof(buf)));
	(void)fprintf(fp, "\twhiteexp %s\n",
	    duration_fmt(g->whiteexp, buf, sizeof(buf)));
	(void)fprintf(fp, "\ttrapexp %s\n",
	    duration_fmt(g->trapexp, buf, sizeof(buf)));
	(void)fprintf(fp, "\tipv6-prefix %d\n", g->ipv6_prefix);
	(void)fprintf(fp, "\tmax-entries %u\n", (unsigned int)g->max_entries);
	(void)fprintf(fp, "\tmap-size %s\n",
	    size_fmt(g->map_size, buf, sizeof(buf)));
	if (g->whitelist[0] != '\0')
		(void)fprintf(fp, "\twhitelist <%s>\n", g->whitelist);
	if (g->spf_whitelist[0] != '\0')
		(void)fprintf(fp, "\tspf-whitelist <%s> refresh %s\n",
		    g->spf_whitelist,
		    duration_fmt(g->spf_refresh, buf, sizeof(buf)));
	if (g->trap_table[0] != '\0')
		(void)fprintf(fp, "\ttrap <%s>\n", g->trap_table);
	(void)fputs("}\n", fp);
}

/* Whole seconds as duration_fmt() has them, the rest as "250ms". */
static const char *
ms_fmt(uint32_t ms, char *buf, size_t len)
{
	if (ms != 0 && ms % 1000 == 0)
		return (duration_fmt(ms / 1000, buf, len));
	(void)snprintf(buf, len, "%ums", (unsigned int)ms);
	return (buf);
}

static void
print_tarpit(FILE *fp, struct smarthost_config *conf,
    struct smarthost_config *def)
{
	struct tarpit_config	*t = &conf->tarpit, *d = &def->tarpit;
	const char		*head = "tarpit";
	char			 buf[32];

	if (t->stutter_ms != d->stutter_ms)
		print_block_option(fp, &head, "stutter",
		    ms_fmt(t->stutter_ms, buf, sizeof(buf)));
	if (t->reply_code != d->reply_code) {
		(void)snprintf(buf, sizeof(buf), "%d", t->reply_code);
		print_block_option(fp, &head, "reply", buf);
	}
	if (t->max_connections != d->max_connections) {
		(void)snprintf(buf, sizeof(buf), "%u",
		    (unsigned int)t->max_connections);
		print_block_option(fp, &head, "max-connections", buf);
	}
	if (head == NULL)
		(void)fputs("}\n", fp);
}

static void
print_blocklists(FILE *fp, struct smarthost_config *conf)
{
	struct blocklist	*b;
	int			 first = 1;

	TAILQ_FOREACH(b, &conf->blocklists, entry) {
		print_section(fp, &first);
		(void)fputs(b->white ? "whitelist " : "blocklist ", fp);
		print_string(fp, b->name);
		(void)fputs(" file ", fp);
		print_string(fp, b->path);
		if (!b->white) {
			(void)fputs(" \\\n\tmessage ", fp);
			print_string(fp, b->message);
		}
		(void)fputc('\n', fp);
	}
}

/* The threshold with the zones, or alone when it is not the default. */
static void
print_dnsbls(FILE *fp, struct smarthost_config *conf,
    struct smarthost_config *def)
{
	struct dnsbl	*d;

	if (TAILQ_EMPTY(&conf->dnsbls) &&
	    conf->dnsbl_threshold == def->dnsbl_threshold)
		return;
	(void)fputc('\n', fp);
	TAILQ_FOREACH(d, &conf->dnsbls, entry) {
		(void)fputs("dnsbl ", fp);
		print_string(fp, d->zone);
		(void)fprintf(fp, " weight %d\n", d->weight);
	}
	(void)fprintf(fp, "dnsbl threshold %d\n", conf->dnsbl_threshold);
}

/* spam tag N reject M [quarantine Q] [subject "..."], no newline. */
static void
print_spam_levels(FILE *fp, const struct spam_levels *l)
{
	(void)fputs("spam tag ", fp);
	print_decimal(fp, l->tag);
	(void)fputs(" reject ", fp);
	print_decimal(fp, l->reject);
	if (l->quarantine != 0) {
		(void)fputs(" quarantine ", fp);
		print_decimal(fp, l->quarantine);
	}
	if (l->subject[0] != '\0') {
		(void)fputs(" subject ", fp);
		print_string(fp, l->subject);
	}
}

static void
print_scan(FILE *fp, struct smarthost_config *conf)
{
	static const char	*fallbacks[] = { "tempfail", "accept", "reject" };
	static const char	*rules[RULE_MAX] = {
		"spf-fail", "spf-softfail", "spf-permerror", "dnsbl",
		"no-rdns", "rdns-mismatch", "helo-literal", "helo-bare",
		"bad-header"
	};
	struct scan_config	*s = &conf->scan;
	struct string_entry	*e;
	char			 buf[32];
	int			 i;

	if (!s->enabled)
		return;
	(void)fputs("\nscan {\n\tuser ", fp);
	print_string(fp, s->user);
	(void)fputc('\n', fp);
	if (s->clamav_db[0] != '\0') {
		(void)fputs("\tclamav database ", fp);
		print_string(fp, s->clamav_db);
		(void)fputc('\n', fp);
	}
	(void)fprintf(fp, "\tthreads %u\n", (unsigned int)s->threads);
	(void)fprintf(fp, "\tlimits {\n\t\tmax-filesize %s\n",
	    size_fmt(s->max_filesize, buf, sizeof(buf)));
	(void)fprintf(fp, "\t\tmax-scansize %s\n",
	    size_fmt(s->max_scansize, buf, sizeof(buf)));
	(void)fprintf(fp, "\t\tmax-recursion %u\n",
	    (unsigned int)s->max_recursion);
	(void)fprintf(fp, "\t\tmax-files %u\n", (unsigned int)s->max_files);
	(void)fprintf(fp, "\t\tmax-scantime %s\n\t}\n",
	    duration_fmt(s->max_scantime, buf, sizeof(buf)));
	(void)fprintf(fp, "\ton-limit %s\n", fallbacks[s->on_limit]);
	(void)fprintf(fp, "\ton-error %s\n", fallbacks[s->on_error]);
	if (s->spam.set) {
		(void)fputc('\t', fp);
		print_spam_levels(fp, &s->spam);
		(void)fputc('\n', fp);
	}
	if (s->spamassassin[0] != '\0') {
		(void)fputs("\tspamassassin ", fp);
		print_string(fp, s->spamassassin);
		(void)fprintf(fp, " timeout %s\n",
		    duration_fmt(s->spamassassin_timeout, buf, sizeof(buf)));
	}
	(void)fprintf(fp, "\tbad-headers %s\n",
	    s->bad_headers_reject ? "reject" : "score");
	for (i = 0; i < RULE_MAX; i++) {
		(void)fprintf(fp, "\tscore %s ", rules[i]);
		print_decimal(fp, s->scores[i]);
		(void)fputc('\n', fp);
	}
	if (!TAILQ_EMPTY(&s->banned_files)) {
		(void)fputs("\tbanned-files {", fp);
		TAILQ_FOREACH(e, &s->banned_files, entry) {
			(void)fputc(' ', fp);
			print_string(fp, e->value);
			if (TAILQ_NEXT(e, entry) != NULL)
				(void)fputc(',', fp);
		}
		(void)fputs(" }\n", fp);
	}
	(void)fputs("}\n", fp);
}

static void
print_firewall(FILE *fp, struct smarthost_config *conf)
{
	struct firewall_config	*f = &conf->firewall;
	char			 within[32], period[32];
	int			 i;

	if (!f->configured)
		return;
	switch (f->kind) {
	case FIREWALL_NONE:
		(void)fputs("\nfirewall none\n", fp);
		return;
	case FIREWALL_PF:
		(void)fputs("\nfirewall pf {\n", fp);
		break;
	case FIREWALL_NFTABLES:
		(void)fputs("\nfirewall nftables {\n\ttable ", fp);
		print_string(fp, f->nft_table);
		(void)fputc('\n', fp);
		break;
	}
	for (i = 0; i < FW_TABLE_MAX; i++) {
		if (f->tables[i][0] == '\0')
			continue;
		(void)fprintf(fp, "\t%s %s ",
		    f->kind == FIREWALL_PF ? "table" : "set", fw_names[i]);
		print_string(fp, f->tables[i]);
		(void)fputc('\n', fp);
	}
	(void)fprintf(fp, "\tblock auth-failures %u within %s for %s\n",
	    (unsigned int)f->block_auth_failures,
	    duration_fmt(f->block_auth_within, within, sizeof(within)),
	    duration_fmt(f->block_auth_for, period, sizeof(period)));
	(void)fprintf(fp, "\tblock trapped %s\n",
	    f->block_trapped ? "yes" : "no");
	(void)fprintf(fp, "\tblock blocklists %s\n",
	    f->block_blocklists ? "yes" : "no");
	(void)fputs("}\n", fp);
}

static void
print_actions(FILE *fp, struct smarthost_config *conf)
{
	static const char	*schemes[] = { "smtp", "smtp+tls", "smtps" };
	struct action		*a;
	int			 first = 1;

	TAILQ_FOREACH(a, &conf->actions, entry) {
		print_section(fp, &first);
		(void)fputs("action ", fp);
		print_string(fp, a->name);
		if (a->alias_table[0] != '\0')
			(void)fprintf(fp, " alias <%s>", a->alias_table);
		if (a->flags & ACTION_RELAY) {
			(void)fputs(" relay", fp);
			if (a->relay_host[0] != '\0') {
				(void)fprintf(fp, " host \"%s://",
				    schemes[a->relay_scheme]);
				if (strchr(a->relay_host, ':') != NULL)
					(void)fprintf(fp, "[%s]",
					    a->relay_host);
				else
					(void)fputs(a->relay_host, fp);
				if (a->relay_port != 0)
					(void)fprintf(fp, ":%u",
					    (unsigned int)a->relay_port);
				(void)fputc('"', fp);
			}
			if (a->flags & ACTION_TLS_VERIFY)
				(void)fputs(" tls verify", fp);
			if (a->ca_file[0] != '\0') {
				(void)fputs(" ca ", fp);
				print_string(fp, a->ca_file);
			}
			if (a->helo[0] != '\0') {
				(void)fputs(" helo ", fp);
				print_string(fp, a->helo);
			}
			if (a->auth_table[0] != '\0')
				(void)fprintf(fp, " auth <%s>", a->auth_table);
		}
		if (a->flags & ACTION_MAILDIR) {
			(void)fputs(" maildir ", fp);
			print_string(fp, a->maildir);
		}
		if (a->flags & ACTION_GREYLIST)
			(void)fputs(" greylist", fp);
		if (a->flags & ACTION_SCAN)
			(void)fputs(" scan", fp);
		if (a->scan_virus_only)
			(void)fputs(" virus-only", fp);
		else if (a->spam.set) {
			(void)fputc(' ', fp);
			print_spam_levels(fp, &a->spam);
		}
		(void)fputc('\n', fp);
	}
}

/*
 * One condition.  The negation follows the keyword, as in "from ! src
 * <nets>", except for auth, whose table is optional.
 */
static void
print_cond(FILE *fp, const char *keyword, struct match_cond *c,
    const char *table_word, const char *literal_word)
{
	if (c->kind == COND_UNSET)
		return;
	if (strcmp(keyword, "auth") == 0) {
		(void)fprintf(fp, " %sauth", c->negate ? "! " : "");
		if (c->kind == COND_TABLE)
			(void)fprintf(fp, " <%s>", c->table);
		return;
	}
	(void)fprintf(fp, " %s%s", keyword, c->negate ? " !" : "");
	switch (c->kind) {
	case COND_UNSET:
		break;
	case COND_ANY:
		(void)fputs(" any", fp);
		break;
	case COND_LOCAL:
		(void)fputs(" local", fp);
		break;
	case COND_TABLE:
		(void)fprintf(fp, "%s%s <%s>", table_word[0] ? " " : "",
		    table_word, c->table);
		break;
	case COND_LITERAL:
		(void)fprintf(fp, "%s%s ", literal_word[0] ? " " : "",
		    literal_word);
		print_string(fp, c->literal);
		break;
	}
}

static void
print_matches(FILE *fp, struct smarthost_config *conf)
{
	struct match_rule	*m;
	int			 first = 1;

	TAILQ_FOREACH(m, &conf->matches, entry) {
		print_section(fp, &first);
		(void)fputs("match", fp);
		print_cond(fp, "from", &m->from, "src", "src");
		print_cond(fp, "auth", &m->auth, "", "");
		print_cond(fp, "for", &m->rcpt_for, "domain", "domain");
		print_cond(fp, "rcpt-to", &m->rcpt_to, "", "");
		print_cond(fp, "mail-from", &m->mail_from, "", "");
		if (m->reject)
			(void)fputs(" reject\n", fp);
		else {
			(void)fputs(" action ", fp);
			print_string(fp, m->action);
			(void)fputc('\n', fp);
		}
	}
}
