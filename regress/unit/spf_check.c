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
 * A driver for smarthostd/spf.c, for regress/test_spf.py: runs spf.c
 * and dns.c on a libevent loop against the resolver given.
 *
 *	spf_check [-v] -r server -p port command ...
 *
 * Commands run one after the other, each when the one before has
 * answered (so a later one sees what the earlier ones cached):
 *
 *	check IP HELO SENDER	prints the verdict name, then a line
 *				"reason: ..."
 *	expand DOMAIN		prints "OK", "TEMPFAIL reason" or
 *				"PERMFAIL reason", then one network a line
 *	cancel IP HELO SENDER	starts a check and an expansion of the
 *				sender's domain with one arg and cancels
 *				both at once; prints "cancelled"
 *
 * SENDER "<>" is the null sender.  It exits 0 when every command got
 * its answer, 2 after 60 seconds without, 3 when spf.c broke a promise
 * (a callback from inside a call, after a cancel, or twice).
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "smarthostd.h"

#define DEADLINE	60
#define GRACE_MS	200

static char		**cmds;
static int		 ncmds, next;
static int		 submitting, waiting;
static int		 cancelled_token;
static struct event	 ev_deadline, ev_next, ev_done;

static void	 run_next(int, short, void *);
static void	 checked(void *, enum spf_verdict, const char *);
static void	 expanded(void *, int, const char *const *, size_t,
		    const char *);
static void	 cancelled_check(void *, enum spf_verdict, const char *);
static void	 cancelled_expand(void *, int, const char *const *, size_t,
		    const char *);
static void	 answered(void);
static void	 on_deadline(int, short, void *);
static void	 on_done(int, short, void *);
static int	 parse_client(const char *, struct sockaddr_storage *);
static void	 usage(void) __attribute__((__noreturn__));

int
main(int argc, char *argv[])
{
	struct timeval	 tv;
	const char	*server = NULL, *errstr;
	in_port_t	 port = 53;
	int		 ch;

	log_init(1, LOG_MAIL);
	while ((ch = getopt(argc, argv, "p:r:v")) != -1) {
		switch (ch) {
		case 'p':
			port = strtonum(optarg, 1, 65535, &errstr);
			if (errstr != NULL)
				usage();
			break;
		case 'r':
			server = optarg;
			break;
		case 'v':
			log_setverbose(1);
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (server == NULL || argc < 1)
		usage();
	cmds = argv;
	ncmds = argc;

	(void)setvbuf(stdout, NULL, _IOLBF, 0);
	event_init();
	dns_init(server, port);
	spf_init();

	evtimer_set(&ev_deadline, on_deadline, NULL);
	tv.tv_sec = DEADLINE;
	tv.tv_usec = 0;
	evtimer_add(&ev_deadline, &tv);
	evtimer_set(&ev_next, run_next, NULL);
	evtimer_set(&ev_done, on_done, NULL);
	run_next(-1, 0, NULL);
	(void)event_dispatch();
	return (1);
}

static void
run_next(int fd, short event, void *arg)
{
	struct sockaddr_storage	 ss;
	struct timeval		 tv;
	const char		*cmd, *sender, *at;
	int			 rc;

	(void)fd;
	(void)event;
	(void)arg;
	if (next >= ncmds) {
		tv.tv_sec = 0;
		tv.tv_usec = GRACE_MS * 1000;
		evtimer_add(&ev_done, &tv);
		return;
	}
	cmd = cmds[next++];
	submitting = 1;
	if (strcmp(cmd, "check") == 0 || strcmp(cmd, "cancel") == 0) {
		if (next + 3 > ncmds || parse_client(cmds[next], &ss) == -1)
			usage();
		sender = strcmp(cmds[next + 2], "<>") == 0 ? "" :
		    cmds[next + 2];
		if (strcmp(cmd, "check") == 0) {
			rc = spf_check(&ss, cmds[next + 1], sender, checked,
			    &waiting);
			waiting = 1;
		} else {
			at = strrchr(sender, '@');
			rc = spf_check(&ss, cmds[next + 1], sender,
			    cancelled_check, &cancelled_token);
			if (rc == 0 && spf_expand(at != NULL ? at + 1 :
			    cmds[next + 1], cancelled_expand,
			    &cancelled_token) == -1)
				rc = -1;
			spf_cancel(&cancelled_token);
			printf("cancelled\n");
		}
		next += 3;
	} else if (strcmp(cmd, "expand") == 0) {
		if (next + 1 > ncmds)
			usage();
		rc = spf_expand(cmds[next++], expanded, &waiting);
		waiting = 1;
	} else
		usage();
	submitting = 0;
	if (rc == -1) {
		printf("START-FAILED %s\n", strerror(errno));
		exit(1);
	}
	if (!waiting) {
		tv.tv_sec = 0;
		tv.tv_usec = 0;
		evtimer_add(&ev_next, &tv);
	}
}

static void
checked(void *arg, enum spf_verdict v, const char *reason)
{
	(void)arg;
	answered();
	printf("%s\nreason: %s\n", spf_verdict_name(v), reason);
	waiting = 0;
	run_next(-1, 0, NULL);
}

static void
expanded(void *arg, int status, const char *const *nets, size_t n,
    const char *reason)
{
	size_t	 i;

	(void)arg;
	answered();
	switch (status) {
	case DNS_OK:
		printf("OK\n");
		break;
	case DNS_TEMPFAIL:
		printf("TEMPFAIL %s\n", reason);
		break;
	case DNS_PERMFAIL:
		printf("PERMFAIL %s\n", reason);
		break;
	default:
		printf("BAD-STATUS %d\n", status);
		exit(3);
	}
	for (i = 0; i < n; i++)
		printf("%s\n", nets[i]);
	waiting = 0;
	run_next(-1, 0, NULL);
}

static void
cancelled_check(void *arg, enum spf_verdict v, const char *reason)
{
	(void)arg;
	(void)v;
	(void)reason;
	printf("CANCELLED-CALLED\n");
	exit(3);
}

static void
cancelled_expand(void *arg, int status, const char *const *nets, size_t n,
    const char *reason)
{
	(void)arg;
	(void)status;
	(void)nets;
	(void)n;
	(void)reason;
	printf("CANCELLED-CALLED\n");
	exit(3);
}

static void
answered(void)
{
	if (submitting) {
		printf("CALLBACK-INSIDE-CALL\n");
		exit(3);
	}
	if (!waiting) {
		printf("CALLED-TWICE\n");
		exit(3);
	}
}

static void
on_deadline(int fd, short event, void *arg)
{
	(void)fd;
	(void)event;
	(void)arg;
	printf("TIMEOUT\n");
	exit(2);
}

static void
on_done(int fd, short event, void *arg)
{
	(void)fd;
	(void)event;
	(void)arg;
	exit(0);
}

static int
parse_client(const char *s, struct sockaddr_storage *ss)
{
	struct sockaddr_in	*sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, s, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		return (0);
	}
	if (inet_pton(AF_INET6, s, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		return (0);
	}
	return (-1);
}

static void
usage(void)
{
	fprintf(stderr, "usage: spf_check [-v] -r server -p port "
	    "check IP HELO SENDER | expand DOMAIN | cancel IP HELO SENDER "
	    "...\n");
	exit(1);
}
