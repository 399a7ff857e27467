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

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smarthostd.h"
#include "smarthostctl.h"

enum token_type {
	ENDTOKEN,
	NOTOKEN,	/* the command may end here */
	KEYWORD,	/* matched by any unambiguous prefix */
	EXACT,		/* matched only in full: it destroys something */
	MSGID,		/* a queue id, 16 lowercase hex digits */
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

static const struct token t_main[] = {
	{ KEYWORD,	"encrypt",	CTL_ENCRYPT,	t_encrypt },
	{ KEYWORD,	"log",		CTL_NONE,	t_log },
	{ KEYWORD,	"pause",	CTL_NONE,	t_smtp_pause },
	{ KEYWORD,	"reload",	CTL_RELOAD,	NULL },
	{ KEYWORD,	"remove",	CTL_NONE,	t_remove },
	{ KEYWORD,	"resume",	CTL_NONE,	t_smtp_resume },
	{ KEYWORD,	"schedule",	CTL_NONE,	t_schedule },
	{ KEYWORD,	"show",		CTL_NONE,	t_show },
	{ ENDTOKEN,	"",		CTL_NONE,	NULL }
};

static const struct token t_show[] = {
	{ KEYWORD,	"message",	CTL_SHOW_MESSAGE, t_show_message },
	{ KEYWORD,	"queue",	CTL_SHOW_QUEUE,	NULL },
	{ KEYWORD,	"stats",	CTL_SHOW_STATS,	NULL },
	{ KEYWORD,	"status",	CTL_SHOW_STATUS, NULL },
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

/*
 * A keyword by its full name or an unambiguous prefix; failing that, a
 * value the table takes (an id, a password).
 */
static const struct token *
match_token(const char *word, const struct token *table,
    struct parse_result *res)
{
	const struct token	*found = NULL;
	size_t			 len = strlen(word);
	int			 i, matches = 0;

	for (i = 0; table[i].type != ENDTOKEN; i++) {
		if ((table[i].type == KEYWORD || table[i].type == EXACT) &&
		    strcmp(word, table[i].keyword) == 0) {
			if (table[i].type == EXACT)
				(void)strlcpy(res->id, word, sizeof(res->id));
			return (&table[i]);
		}
		if (table[i].type == KEYWORD && len > 0 &&
		    strncmp(word, table[i].keyword, len) == 0) {
			found = &table[i];
			matches++;
		}
	}
	if (matches > 1)
		show_valid("ambiguous argument", word, table);
	if (matches == 1)
		return (found);
	for (i = 0; table[i].type != ENDTOKEN; i++) {
		switch (table[i].type) {
		case MSGID:
			if (!envelope_id_valid(word))
				show_valid("invalid message id", word, table);
			(void)strlcpy(res->id, word, sizeof(res->id));
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
