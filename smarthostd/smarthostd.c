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

#include <err.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "smarthostd.h"

struct smarthost_config	*env;
enum smarthost_proc	 smarthost_process = PROC_PARENT;

static void __attribute__((__noreturn__))
usage(void)
{
	(void)fprintf(stderr,
	    "usage: smarthostd [-dnv] [-D macro=value] [-f file]\n");
	exit(1);
}

int
main(int argc, char *argv[], char *envp[])
{
	struct smarthost_config	*conf;
	const char		*conffile = SMARTHOSTD_CONF;
	const char		*child = NULL, *chroot_dir = NULL;
	const char		*user = NULL, *argv0 = argv[0];
	int			 ch, debug = 0, verbose = 0, noaction = 0;
	int			 proc;

	compat_setproctitle_init(argc, argv, envp);
	log_init(1, LOG_MAIL);

	while ((ch = getopt(argc, argv, "c:dD:f:nP:u:v")) != -1) {
		switch (ch) {
		case 'c':
			chroot_dir = optarg;
			break;
		case 'd':
			debug = 1;
			break;
		case 'D':
			if (cmdline_symset(optarg) < 0)
				errx(1, "could not parse macro definition %s",
				    optarg);
			break;
		case 'f':
			conffile = optarg;
			break;
		case 'n':
			noaction++;
			break;
		case 'P':
			child = optarg;
			break;
		case 'u':
			user = optarg;
			break;
		case 'v':
			verbose++;
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc > 0)
		usage();

	/* A re-executed child: -P names the process it is to become. */
	if (child != NULL) {
		if ((proc = proc_from_name(child)) == -1 ||
		    proc == PROC_PARENT)
			errx(1, "unknown process %s", child);
		log_init(debug, LOG_MAIL);
		log_setverbose(verbose);
		proc_child_start(proc, user, chroot_dir);
		/* NOTREACHED */
	}

	if (noaction) {
		if ((conf = parse_config(conffile)) == NULL)
			exit(1);
		if (verbose)
			print_config(stdout, conf);
		else
			(void)fprintf(stderr, "configuration OK\n");
		config_free(conf);
		exit(0);
	}

	/* Until the parent daemonizes, errors go to the terminal. */
	log_setverbose(verbose);
	return (parent_main(debug, verbose, conffile, argv0));
}
