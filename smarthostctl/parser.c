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
 * Command words for smarthostctl: token tables walked word by word, each
 * word matched as a prefix of exactly one keyword (or exactly equal to
 * one), so "sh st" is "show status".
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <arpa/inet.h>

#include <ctype.h>
#include <err.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smarthostd.h"
#include "smarthostctl.h"

enum token_type {
	ENDTOKEN,
	NOTOKEN,	/* the command may end here */
	KEYWORD,	/* matched by any unambiguous prefix */
	LATEKEYWORD,	/* a prefix no KEYWORD has: a newer word in the
			   table takes no abbreviation from the older */
	EXACT,		/* matched only in full: it destroys something */
	MSGID,		/* a queue id, 16 lowercase hex digits */
	IPADDR,		/* an IPv4 or IPv6 address */
	GREYKEY,	/* an address, a network, or a greylist tuple */
	MAILADDR,	/* local@domain */
	TABLENAME,	/* a table or list name as the grammar takes it */
	FILENAME,	/* a path, made absolute against the cwd */
	STRING		/* any word */
};

struct token {
	enum token_type		 type;
	const char		*keyword;
	enum ctl_action		 action;
	const struct token	*next;
};

static const struct token t_main[];
static const struct token t_show[];
static const struct token t_show_message[];
static const struct token t_log[];
static const struct token t_remove[];
static const struct token t_smtp_pause[];
static const struct token t_smtp_resume[];
static const struct token t_encrypt[];
static const struct token t_schedule[];
static const struct token t_show_greylist[];
static const struct token t_greylist[];
static const struct token t_trap[];
static const struct token t_update[];
static const struct token t_quarantine[];
static const struct token t_ipaddr[];
static const struct token t_greykey[];
static const struct token t_mailaddr[];
static const struct token t_tablename[];
static const struct token t_filename[];

static const struct token t_main[] = {
	{ KEYWORD,	"backup",	CTL_BACKUP,	t_filename },
	{ KEYWORD,	"encrypt",	CTL_ENCRYPT,	t_encrypt },
	{ KEYWORD,	"explain",	CTL_EXPLAIN,	t_ipaddr },
	{ KEYWORD,	"greylist",	CTL_NONE,	t_greylist },
	{ KEYWORD,	"log",		CTL_NONE,	t_log },
	{ KEYWORD,	"pause",	CTL_NONE,	t_smtp_pause },
	{ KEYWORD,	"quarantine",	CTL_NONE,	t_quarantine },
	{ KEYWORD,	"reload",	CTL_RELOAD,	NULL },
	{ KEYWORD,	"remove",	CTL_NONE,	t_remove },
	{ KEYWORD,	"resume",	CTL_NONE,	t_smtp_resume },
	{ KEYWORD,	"schedule",	CTL_NONE,	t_schedule },
	{ KEYWORD,	"show",		CTL_NONE,	t_show },
	{ KEYWORD,	"trap",		CTL_NONE,	t_trap },
	{ KEYWORD,	"update",	CTL_NONE,	t_update },
	{ ENDTOKEN,	"",		CTL_NONE,	NULL }
};

static const struct token t_show[] = {
	{ KEYWORD,	"greylist",	CTL_SHOW_GREYLIST, t_show_greylist },
	{ KEYWORD,	"message",	CTL_SHOW_MESSAGE, t_show_message },
	{ LATEKEYWORD,	"quarantine",	CTL_SHOW_QUARANTINE, NULL },
	{ KEYWORD,	"queue",	CTL_SHOW_QUEUE,	NULL },
	{ KEYWORD,	"stats",	CTL_SHOW_STATS,	NULL },
	{ KEYWORD,	"status",	CTL_SHOW_STATUS, NULL },
	{ KEYWORD,	"tables",	CTL_SHOW_TABLES, NULL },
	{ ENDTOKEN,	"",		CTL_NONE,	NULL }
};

static const struct token t_show_greylist[] = {
	{ NOTOKEN,	"",		CTL_NONE,	NULL },
	{ KEYWORD,	"block",	CTL_SHOW_GREYLIST_BLOCK, NULL },
	{ KEYWORD,	"grey",		CTL_SHOW_GREYLIST_GREY, NULL },
	{ KEYWORD,	"trap",		CTL_SHOW_GREYLIST_TRAP, NULL },
	{ KEYWORD,	"white",	CTL_SHOW_GREYLIST_WHITE, NULL },
	{ ENDTOKEN,	"",		CTL_NONE,	NULL }
};

static const struct token t_greylist[] = {
	{ KEYWORD,	"delete",	CTL_GREY_DELETE, t_greykey },
	{ KEYWORD,	"white",	CTL_GREY_WHITE,	t_ipaddr },
	{ ENDTOKEN,	"",		CTL_NONE,	NULL }
};

static const struct token t_trap[] = {
	{ KEYWORD,	"add",		CTL_TRAP_ADD,	t_mailaddr },
	{ KEYWORD,	"delete",	CTL_TRAP_DELETE, t_mailaddr },
	{ ENDTOKEN,	"",		CTL_NONE,	NULL }
};

static const struct token t_quarantine[] = {
	{ KEYWORD,	"delete",	CTL_QUARANTINE_DELETE, t_show_message },
	{ KEYWORD,	"release",	CTL_QUARANTINE_RELEASE, t_show_message },
	{ ENDTOKEN,	"",		CTL_NONE,	NULL }
};

static const struct token t_update[] = {
	{ KEYWORD,	"table",	CTL_UPDATE_TABLE, t_tablename },
	{ ENDTOKEN,	"",		CTL_NONE,	NULL }
};

static const struct token t_ipaddr[] = {
	{ IPADDR,	"ADDRESS",	CTL_NONE,	NULL },
	{ ENDTOKEN,	"",		CTL_NONE,	NULL }
};

static const struct token t_greykey[] = {
	{ GREYKEY,	"ADDRESS|TUPLE", CTL_NONE,	NULL },
	{ ENDTOKEN,	"",		CTL_NONE,	NULL }
};

static const struct token t_mailaddr[] = {
	{ MAILADDR,	"ADDRESS",	CTL_NONE,	NULL },
	{ ENDTOKEN,	"",		CTL_NONE,	NULL }
};

static const struct token t_tablename[] = {
	{ TABLENAME,	"NAME",		CTL_NONE,	NULL },
	{ ENDTOKEN,	"",		CTL_NONE,	NULL }
};

static const struct token t_filename[] = {
	{ FILENAME,	"FILE",		CTL_NONE,	NULL },
	{ ENDTOKEN,	"",		CTL_NONE,	NULL }
};

static const struct token t_show_message[] = {
	{ MSGID,	"ID",		CTL_NONE,	NULL },
	{ ENDTOKEN,	"",		CTL_NONE,	NULL }
};

static const struct token t_log[] = {
	{ KEYWORD,	"brief",	CTL_LOG_BRIEF,	NULL },
	{ KEYWORD,	"verbose",	CTL_LOG_VERBOSE, NULL },
	{ ENDTOKEN,	"",		CTL_NONE,	NULL }
};

static const struct token t_remove[] = {
	{ EXACT,	"all",		CTL_REMOVE,	NULL },
	{ MSGID,	"ID",		CTL_REMOVE,	NULL },
	{ ENDTOKEN,	"",		CTL_NONE,	NULL }
};

static const struct token t_smtp_pause[] = {
	{ KEYWORD,	"relay",	CTL_PAUSE_RELAY, NULL },
	{ KEYWORD,	"smtp",		CTL_PAUSE_SMTP,	NULL },
	{ ENDTOKEN,	"",		CTL_NONE,	NULL }
};

static const struct token t_smtp_resume[] = {
	{ KEYWORD,	"relay",	CTL_RESUME_RELAY, NULL },
	{ KEYWORD,	"smtp",		CTL_RESUME_SMTP, NULL },
	{ ENDTOKEN,	"",		CTL_NONE,	NULL }
};

static const struct token t_schedule[] = {
	{ EXACT,	"all",		CTL_SCHEDULE,	NULL },
	{ MSGID,	"ID",		CTL_SCHEDULE,	NULL },
	{ ENDTOKEN,	"",		CTL_NONE,	NULL }
};

static const struct token t_encrypt[] = {
	{ NOTOKEN,	"",		CTL_NONE,	NULL },
	{ STRING,	"PASSWORD",	CTL_NONE,	NULL },
	{ ENDTOKEN,	"",		CTL_NONE,	NULL }
};

static void __attribute__((__noreturn__))
show_valid(const char *problem, const char *word, const struct token *table)
{
	int	 i;

	if (word != NULL)
		(void)fprintf(stderr, "%s: %s\n", problem, word);
	else
		(void)fprintf(stderr, "%s\n", problem);
	(void)fprintf(stderr, "valid %s:", table == t_main ? "commands" :
	    "arguments");
	for (i = 0; table[i].type != ENDTOKEN; i++)
		if (table[i].type != NOTOKEN)
			(void)fprintf(stderr, " %s", table[i].keyword);
	(void)fprintf(stderr, "\n");
	exit(EXIT_USAGE);
}

static int
valid_ipaddr(const char *s)
{
	unsigned char	 buf[sizeof(struct in6_addr)];

	return (inet_pton(AF_INET, s, buf) == 1 ||
	    inet_pton(AF_INET6, s, buf) == 1);
}

/* An address, or a network as show greylist prints an IPv6 client. */
static int
valid_network(const char *s)
{
	char		 addr[INET6_ADDRSTRLEN];
	const char	*slash;
	char		*end;
	long		 len;
	unsigned char	 buf[sizeof(struct in6_addr)];

	if ((slash = strchr(s, '/')) == NULL)
		return (valid_ipaddr(s));
	if ((size_t)(slash - s) >= sizeof(addr))
		return (0);
	memcpy(addr, s, slash - s);
	addr[slash - s] = '\0';
	if (!isdigit((unsigned char)slash[1]))
		return (0);
	len = strtol(slash + 1, &end, 10);
	if (*end != '\0')
		return (0);
	if (inet_pton(AF_INET, addr, buf) == 1)
		return (len >= 0 && len <= 32);
	return (inet_pton(AF_INET6, addr, buf) == 1 && len >= 0 && len <= 128);
}

/* Printable ASCII without spaces, nor the tuple separator. */
static int
valid_word(const char *s, size_t len)
{
	size_t	 i;

	for (i = 0; i < len; i++)
		if (s[i] <= ' ' || s[i] > '~' || s[i] == '|')
			return (0);
	return (1);
}

/* local@domain, as a spamtrap address is written. */
static int
valid_mailaddr(const char *s)
{
	const char	*at = strrchr(s, '@');
	size_t		 len = strlen(s);

	return (at != NULL && at != s && at[1] != '\0' &&
	    len < SMTP_ADDR_LEN && valid_word(s, len));
}

/*
 * What greylist delete takes: a client as show greylist prints it (an
 * address, or an IPv6 network), or a whole tuple "client|helo|from|to"
 * whose client may also be "spf:domain" and whose from may be empty.
 */
static int
valid_greykey(const char *s)
{
	const char	*field[4], *end[4], *p;
	size_t		 sizes[4] = { HOSTNAME_LEN, HOSTNAME_LEN,
			    SMTP_ADDR_LEN, SMTP_ADDR_LEN };
	char		 client[HOSTNAME_LEN];
	int		 n = 0;

	if (strchr(s, '|') == NULL)
		return (valid_network(s));
	for (p = s; n < 4; n++) {
		field[n] = p;
		if ((p = strchr(field[n], '|')) == NULL)
			p = field[n] + strlen(field[n]);
		end[n] = p;
		if ((size_t)(end[n] - field[n]) >= sizes[n] ||
		    !valid_word(field[n], end[n] - field[n]))
			return (0);
		if (*p == '\0')
			break;
		p++;
	}
	if (n != 3 || *end[3] != '\0' || end[0] == field[0] ||
	    end[1] == field[1] || end[3] == field[3])
		return (0);
	memcpy(client, field[0], end[0] - field[0]);
	client[end[0] - field[0]] = '\0';
	if (strncmp(client, "spf:", 4) == 0)
		return (client[4] != '\0');
	return (valid_network(client));
}

/* A name as smarthostd.conf takes it for tables and lists. */
static int
valid_tablename(const char *s)
{
	if (*s == '\0' || strlen(s) >= NAME_MAX_LEN)
		return (0);
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' &&
		    *s != '.')
			return (0);
	return (1);
}

/*
 * A file name the daemon can use, which runs elsewhere: relative to
 * our working directory made absolute.  The file need not exist yet.
 */
static int
absolute_path(const char *word, char *buf, size_t size)
{
	char	 cwd[PATH_MAX];
	int	 n;

	if (*word == '\0' || word[strlen(word) - 1] == '/')
		return (0);
	if (word[0] == '/')
		return (strlcpy(buf, word, size) < size);
	if (getcwd(cwd, sizeof(cwd)) == NULL)
		err(EXIT_USAGE, "getcwd");
	n = snprintf(buf, size, "%s/%s", strcmp(cwd, "/") == 0 ? "" : cwd,
	    word);
	return (n >= 0 && (size_t)n < size);
}

/*
 * A keyword by its full name or an unambiguous prefix; failing that, a
 * value the table takes (an id, a password).
 */
static const struct token *
match_token(const char *word, const struct token *table,
    struct parse_result *res)
{
	const struct token	*found;
	enum token_type		 kind;
	size_t			 len = strlen(word);
	int			 i, matches;

	for (i = 0; table[i].type != ENDTOKEN; i++) {
		if ((table[i].type == KEYWORD || table[i].type == LATEKEYWORD ||
		    table[i].type == EXACT) &&
		    strcmp(word, table[i].keyword) == 0) {
			if (table[i].type == EXACT)
				(void)strlcpy(res->id, word, sizeof(res->id));
			return (&table[i]);
		}
	}
	for (kind = KEYWORD; len > 0 && kind <= LATEKEYWORD; kind++) {
		found = NULL;
		matches = 0;
		for (i = 0; table[i].type != ENDTOKEN; i++) {
			if (table[i].type == kind &&
			    strncmp(word, table[i].keyword, len) == 0) {
				found = &table[i];
				matches++;
			}
		}
		if (matches > 1)
			show_valid("ambiguous argument", word, table);
		if (matches == 1)
			return (found);
	}
	for (i = 0; table[i].type != ENDTOKEN; i++) {
		switch (table[i].type) {
		case MSGID:
			if (!envelope_id_valid(word))
				show_valid("invalid message id", word, table);
			(void)strlcpy(res->id, word, sizeof(res->id));
			return (&table[i]);
		case IPADDR:
			if (!valid_ipaddr(word))
				show_valid("invalid IP address", word, table);
			(void)strlcpy(res->arg, word, sizeof(res->arg));
			return (&table[i]);
		case GREYKEY:
			if (!valid_greykey(word))
				show_valid("invalid address or tuple", word,
				    table);
			(void)strlcpy(res->arg, word, sizeof(res->arg));
			return (&table[i]);
		case MAILADDR:
			if (!valid_mailaddr(word))
				show_valid("invalid mail address", word, table);
			(void)strlcpy(res->arg, word, sizeof(res->arg));
			return (&table[i]);
		case TABLENAME:
			if (!valid_tablename(word))
				show_valid("invalid table name", word, table);
			(void)strlcpy(res->arg, word, sizeof(res->arg));
			return (&table[i]);
		case FILENAME:
			if (!absolute_path(word, res->path, sizeof(res->path)))
				show_valid("invalid file name", word, table);
			return (&table[i]);
		case STRING:
			res->password = word;
			return (&table[i]);
		default:
			break;
		}
	}
	show_valid("unknown argument", word, table);
}

static int
may_end(const struct token *table)
{
	int	 i;

	for (i = 0; table[i].type != ENDTOKEN; i++)
		if (table[i].type == NOTOKEN)
			return (1);
	return (0);
}

struct parse_result *
parse(int argc, char *argv[])
{
	static struct parse_result	 res;
	const struct token		*table = t_main, *t = NULL;
	int				 i;

	memset(&res, 0, sizeof(res));
	for (i = 0; i < argc; i++) {
		if (table == NULL)
			show_valid("too many arguments", argv[i], t_main);
		t = match_token(argv[i], table, &res);
		if (t->action != CTL_NONE)
			res.action = t->action;
		table = t->next;
	}
	if (table != NULL && !may_end(table))
		show_valid(argc == 0 ? "missing command" :
		    "missing argument", NULL, table);
	return (&res);
}
