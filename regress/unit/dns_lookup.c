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
 * A driver for smarthostd/dns.c, for regress/test_dns.py: runs the
 * daemon's DNS layer on a libevent loop against the resolver given and
 * prints every answer as it arrives.
 *
 *	dns_lookup [-v] [-C ms] [-R ms:server:port] [-w ms] server port
 *	    query ...
 *
 * server is a numeric address, or "system" for /etc/resolv.conf.  A
 * query is "mx:DOMAIN" or "host:PORT:NAME"; "cancel-" in front of either
 * starts it and cancels it at once, or -C ms later.  -R switches to
 * another resolver ms after the start; -w keeps the loop running ms
 * after the last answer, so that a cancelled callback would show.
 *
 * For query number i (from 0) it prints "i OK n" and then n lines
 * "i preference host address port", or "i TEMPFAIL reason",
 * "i PERMFAIL reason", or "i INVALID" when dns_resolve_* refused it.
 * It exits 0 when every query that was not cancelled got its answer,
 * 2 after 60 seconds without, 3 when dns.c broke a promise.
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

#define QUERIES_MAX	4096
#define DEADLINE	60

struct query {
	int		 index;
	int		 cancel;
	int		 answered;
};

static struct query	 queries[QUERIES_MAX];
static int		 nqueries, outstanding, submitting;
static int		 grace_ms;
static struct event	 ev_deadline, ev_grace, ev_cancel, ev_switch;
static char		 switch_server[INET6_ADDRSTRLEN];
static in_port_t	 switch_port;

static void	 answer(void *, int, const struct dns_addr *, size_t);
static void	 finish_maybe(void);
static void	 on_deadline(int, short, void *);
static void	 on_grace(int, short, void *);
static void	 on_cancel(int, short, void *);
static void	 on_switch(int, short, void *);
static void	 ms_timeval(int, struct timeval *);
static in_port_t parse_port(const char *);
static void	 usage(void) __attribute__((__noreturn__));

int
main(int argc, char *argv[])
{
	struct timeval	 tv;
	struct query	*q;
	const char	*server, *arg, *name, *colon;
	char		 portbuf[8];
	in_port_t	 port, hport;
	int		 ch, i, cancel_ms = -1, switch_ms = -1, rc;
	size_t		 len;

	log_init(1, LOG_MAIL);
	while ((ch = getopt(argc, argv, "C:R:vw:")) != -1) {
		switch (ch) {
		case 'C':
			cancel_ms = atoi(optarg);
			break;
		case 'R':
			/* ms:server:port, the server possibly IPv6 */
			if ((colon = strchr(optarg, ':')) == NULL)
				usage();
			switch_ms = atoi(optarg);
			arg = colon + 1;
			if ((colon = strrchr(arg, ':')) == NULL ||
			    (size_t)(colon - arg) >= sizeof(switch_server))
				usage();
			memcpy(switch_server, arg, colon - arg);
			switch_server[colon - arg] = '\0';
			if (strcmp(switch_server, "system") == 0)
				switch_server[0] = '\0';
			switch_port = parse_port(colon + 1);
			break;
		case 'v':
			log_setverbose(1);
			break;
		case 'w':
			grace_ms = atoi(optarg);
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 3 || argc - 2 > QUERIES_MAX)
		usage();
	server = strcmp(argv[0], "system") == 0 ? "" : argv[0];
	port = parse_port(argv[1]);

	(void)setvbuf(stdout, NULL, _IOLBF, 0);
	event_init();
	dns_init(server, port);

	evtimer_set(&ev_deadline, on_deadline, NULL);
	tv.tv_sec = DEADLINE;
	tv.tv_usec = 0;
	evtimer_add(&ev_deadline, &tv);
	evtimer_set(&ev_grace, on_grace, NULL);

	for (i = 2; i < argc; i++) {
		q = &queries[nqueries];
		q->index = nqueries++;
		arg = argv[i];
		if (strncmp(arg, "cancel-", 7) == 0) {
			q->cancel = 1;
			arg += 7;
		}
		submitting = 1;
		if (strncmp(arg, "mx:", 3) == 0)
			rc = dns_resolve_mx(arg + 3, answer, q);
		else if (strncmp(arg, "host:", 5) == 0) {
			name = arg + 5;
			if ((colon = strchr(name, ':')) == NULL ||
			    (len = colon - name) >= sizeof(portbuf))
				usage();
			memcpy(portbuf, name, len);
			portbuf[len] = '\0';
			hport = parse_port(portbuf);
			rc = dns_resolve_host(colon + 1, hport, answer, q);
		} else
			usage();
		submitting = 0;
		if (rc == -1) {
			printf("%d INVALID %s\n", q->index, strerror(errno));
			q->answered = 1;
			continue;
		}
		if (q->cancel && cancel_ms < 0)
			dns_cancel(q);
		else if (!q->cancel)
			outstanding++;
	}
	if (cancel_ms >= 0) {
		evtimer_set(&ev_cancel, on_cancel, NULL);
		ms_timeval(cancel_ms, &tv);
		evtimer_add(&ev_cancel, &tv);
	}
	if (switch_ms >= 0) {
		evtimer_set(&ev_switch, on_switch, NULL);
		ms_timeval(switch_ms, &tv);
		evtimer_add(&ev_switch, &tv);
	}
	finish_maybe();
	(void)event_dispatch();
	return (1);
}

static void
answer(void *arg, int status, const struct dns_addr *addrs, size_t n)
{
	struct query		*q = arg;
	char			 buf[INET6_ADDRSTRLEN];
	const void		*a;
	in_port_t		 port;
	size_t			 i;

	if (submitting) {
		printf("%d CALLBACK-INSIDE-CALL\n", q->index);
		exit(3);
	}
	if (q->cancel) {
		printf("%d CANCELLED-CALLED\n", q->index);
		exit(3);
	}
	if (q->answered) {
		printf("%d CALLED-TWICE\n", q->index);
		exit(3);
	}
	q->answered = 1;
	switch (status) {
	case DNS_OK:
		if (n == 0 || addrs == NULL || n > DNS_ADDR_MAX) {
			printf("%d BAD-ANSWER %zu\n", q->index, n);
			exit(3);
		}
		printf("%d OK %zu\n", q->index, n);
		for (i = 0; i < n; i++) {
			if (addrs[i].ss.ss_family == AF_INET) {
				a = &((const struct sockaddr_in *)
				    &addrs[i].ss)->sin_addr;
				port = ((const struct sockaddr_in *)
				    &addrs[i].ss)->sin_port;
			} else {
				a = &((const struct sockaddr_in6 *)
				    &addrs[i].ss)->sin6_addr;
				port = ((const struct sockaddr_in6 *)
				    &addrs[i].ss)->sin6_port;
			}
			if (inet_ntop(addrs[i].ss.ss_family, a, buf,
			    sizeof(buf)) == NULL) {
				printf("%d BAD-ADDRESS\n", q->index);
				exit(3);
			}
			printf("%d %u %s %s %u\n", q->index,
			    (unsigned int)addrs[i].preference, addrs[i].host,
			    buf, (unsigned int)ntohs(port));
		}
		break;
	case DNS_TEMPFAIL:
		printf("%d TEMPFAIL %s\n", q->index, dns_reason());
		break;
	case DNS_PERMFAIL:
		printf("%d PERMFAIL %s\n", q->index, dns_reason());
		break;
	default:
		printf("%d BAD-STATUS %d\n", q->index, status);
		exit(3);
	}
	outstanding--;
	finish_maybe();
}

static void
finish_maybe(void)
{
	struct timeval	 tv;

	if (outstanding > 0)
		return;
	ms_timeval(grace_ms, &tv);
	evtimer_add(&ev_grace, &tv);
}

static void
on_deadline(int fd, short event, void *arg)
{
	(void)fd;
	(void)event;
	(void)arg;
	printf("TIMEOUT %d outstanding\n", outstanding);
	exit(2);
}

static void
on_grace(int fd, short event, void *arg)
{
	(void)fd;
	(void)event;
	(void)arg;
	exit(0);
}

static void
on_cancel(int fd, short event, void *arg)
{
	int	 i;

	(void)fd;
	(void)event;
	(void)arg;
	for (i = 0; i < nqueries; i++)
		if (queries[i].cancel)
			dns_cancel(&queries[i]);
}

static void
on_switch(int fd, short event, void *arg)
{
	(void)fd;
	(void)event;
	(void)arg;
	dns_init(switch_server, switch_port);
}

static void
ms_timeval(int ms, struct timeval *tv)
{
	tv->tv_sec = ms / 1000;
	tv->tv_usec = (ms % 1000) * 1000;
}

static in_port_t
parse_port(const char *s)
{
	const char	*errstr;
	long long	 port;

	port = strtonum(s, 0, 65535, &errstr);
	if (errstr != NULL)
		usage();
	return ((in_port_t)port);
}

static void
usage(void)
{
	fprintf(stderr, "usage: dns_lookup [-v] [-C ms] [-R ms:server:port] "
	    "[-w ms] server port mx:DOMAIN|host:PORT:NAME ...\n");
	exit(1);
}
