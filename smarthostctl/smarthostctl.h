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

#ifndef SMARTHOSTCTL_H
#define SMARTHOSTCTL_H

enum ctl_action {
	CTL_NONE,
	CTL_SHOW_STATUS,
	CTL_RELOAD,
	CTL_LOG_VERBOSE,
	CTL_LOG_BRIEF,
	CTL_SHOW_QUEUE,
	CTL_SHOW_MESSAGE,
	CTL_SHOW_STATS,
	CTL_REMOVE,
	CTL_PAUSE_SMTP,
	CTL_RESUME_SMTP,
	CTL_SCHEDULE,
	CTL_PAUSE_RELAY,
	CTL_RESUME_RELAY,
	CTL_ENCRYPT,
	CTL_SHOW_GREYLIST,
	CTL_SHOW_GREYLIST_GREY,
	CTL_SHOW_GREYLIST_WHITE,
	CTL_SHOW_GREYLIST_TRAP,
	CTL_SHOW_GREYLIST_BLOCK,
	CTL_GREY_WHITE,
	CTL_GREY_DELETE,
	CTL_TRAP_ADD,
	CTL_TRAP_DELETE,
	CTL_SHOW_TABLES,
	CTL_UPDATE_TABLE,
	CTL_EXPLAIN,
	CTL_SHOW_QUARANTINE,
	CTL_QUARANTINE_RELEASE,
	CTL_QUARANTINE_DELETE,
	CTL_BACKUP
};

/* The longest argument: a tuple "client|helo|from|to". */
#define CTL_ARG_MAX	(2 * HOSTNAME_LEN + 2 * SMTP_ADDR_LEN)

struct parse_result {
	enum ctl_action	 action;
	char		 id[32];	/* message id, or "all" */
	char		 arg[CTL_ARG_MAX];	/* address, tuple, name */
	const char	*password;	/* encrypt; NULL: read stdin */
	char		 path[PATH_MAX];	/* backup: absolute */
};

/* Exit statuses that scripts can trust. */
#define EXIT_DAEMON_FAILURE	1
#define EXIT_USAGE		2

/* parser.c */
struct parse_result *parse(int, char *[]);

#endif /* SMARTHOSTCTL_H */
