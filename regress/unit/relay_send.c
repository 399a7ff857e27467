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
 * relay_send: the relay engine (relay*.c with dns.c) on a libevent loop,
 * outside the daemon, for the tests in regress/test_relay_client.py.
 *
 *	relay_send [-8Sv] [-a user:password] [-c cafile] [-d domain]
 *	    [-f sender] [-H helo] [-h host] [-k key] [-l global,dest]
 *	    [-n jobs] [-p port] [-r resolver[:port]] [-s scheme]
 *	    [-T timeout] [-V] [-w linger] -b bodyfile rcpt ...
 *
 * Without -h the recipients go by MX to -d domain (default: the first
 * recipient's).  -n submits the same message as that many jobs at once;
 * -w keeps the event loop running that many seconds after the last job.
 * Prints one line per recipient and job, "JOB RCPT STATUS CODE ENHANCED
 * TEXT", then with -S one line per destination key, and exits 0 once
 * every job is done.
 */

#include <sys/types.h>
#include <sys/stat.h>

#include <err.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "smarthostd.h"

static size_t	 jobs_left;
static time_t	 linger;

static unsigned char	*read_file(const char *, size_t *);
static void		 job_done(struct relay_job *);
static void		 print_stats(const char *, const struct relay_stats *,
			    void *);
static void		 usage(void) __attribute__((__noreturn__));

static void
usage(void)
{
	fprintf(stderr, "usage: relay_send [-8Sv] [-a user:password] "
	    "[-c cafile] [-d domain] [-f sender]\n"
	    "\t[-H helo] [-h host] [-k key] [-l global,dest] [-n jobs] "
	    "[-p port]\n"
	    "\t[-r resolver[:port]] [-s smtp|smtp+tls|smtps] [-T timeout] "
	    "[-V] [-w linger]\n"
	    "\t-b bodyfile rcpt ...\n");
	exit(2);
}

int
main(int argc, char *argv[])
{
	struct relay_target	 t;
	struct relay_job	*jobs;
	struct relay_stats	 total;
	const char		*body_path = NULL, *sender = "";
	const char		*errstr;
	unsigned char		*body, *ca;
	char			*p, resolver[HOSTNAME_LEN] = "";
	size_t			 body_len, ca_len, i, njobs = 1;
	int			 ch, verbose = 0, stats = 0, eightbit = 0;
	int			 global = 0, per_dest = 0;
	in_port_t		 resolver_port = 53;
	time_t			 timeout = 0;

	memset(&t, 0, sizeof(t));
	t.scheme = RELAY_SMTP;
	ca = NULL;
	ca_len = 0;
	while ((ch = getopt(argc, argv,
	    "8a:b:c:d:f:H:h:k:l:n:p:r:Ss:T:Vvw:")) != -1) {
		switch (ch) {
		case '8':
			eightbit = 1;
			break;
		case 'a':
			if ((p = strchr(optarg, ':')) == NULL)
				usage();
			*p++ = '\0';
			(void)strlcpy(t.auth_user, optarg,
			    sizeof(t.auth_user));
			(void)strlcpy(t.auth_password, p,
			    sizeof(t.auth_password));
			break;
		case 'b':
			body_path = optarg;
			break;
		case 'c':
			ca = read_file(optarg, &ca_len);
			break;
		case 'd':
			(void)strlcpy(t.domain, optarg, sizeof(t.domain));
			break;
		case 'f':
			sender = optarg;
			break;
		case 'H':
			(void)strlcpy(t.helo, optarg, sizeof(t.helo));
			break;
		case 'h':
			(void)strlcpy(t.host, optarg, sizeof(t.host));
			break;
		case 'k':
			(void)strlcpy(t.key, optarg, sizeof(t.key));
			break;
		case 'l':
			if (sscanf(optarg, "%d,%d", &global, &per_dest) != 2)
				usage();
			break;
		case 'n':
			njobs = strtonum(optarg, 1, 100000, &errstr);
			if (errstr != NULL)
				errx(2, "-n %s: %s", optarg, errstr);
			break;
		case 'p':
			t.port = strtonum(optarg, 1, 65535, &errstr);
			if (errstr != NULL)
				errx(2, "-p %s: %s", optarg, errstr);
			break;
		case 'r':
			(void)strlcpy(resolver, optarg, sizeof(resolver));
			if ((p = strrchr(resolver, ':')) != NULL &&
			    strchr(resolver, ':') == p) {
				*p++ = '\0';
				resolver_port = strtonum(p, 1, 65535, &errstr);
				if (errstr != NULL)
					errx(2, "-r port %s: %s", p, errstr);
			}
			break;
		case 'S':
			stats = 1;
			break;
		case 's':
			if (strcmp(optarg, "smtp") == 0)
				t.scheme = RELAY_SMTP;
			else if (strcmp(optarg, "smtp+tls") == 0)
				t.scheme = RELAY_SMTP_TLS;
			else if (strcmp(optarg, "smtps") == 0)
				t.scheme = RELAY_SMTPS;
			else
				usage();
			break;
		case 'T':
			timeout = strtonum(optarg, 1, 3600, &errstr);
			if (errstr != NULL)
				errx(2, "-T %s: %s", optarg, errstr);
			break;
		case 'V':
			t.tls_verify = 1;
			(void)strlcpy(t.ca_name, "test", sizeof(t.ca_name));
			break;
		case 'v':
			verbose++;
			break;
		case 'w':
			linger = strtonum(optarg, 1, 3600, &errstr);
			if (errstr != NULL)
				errx(2, "-w %s: %s", optarg, errstr);
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0 || body_path == NULL)
		usage();
	if (t.domain[0] == '\0' && t.host[0] == '\0') {
		if ((p = strrchr(argv[0], '@')) == NULL)
			errx(2, "no domain in %s", argv[0]);
		(void)strlcpy(t.domain, p + 1, sizeof(t.domain));
	}
	if (t.key[0] == '\0')
		(void)snprintf(t.key, sizeof(t.key), "test %s",
		    t.host[0] != '\0' ? t.host : t.domain);
	body = read_file(body_path, &body_len);

	log_init(1, LOG_MAIL);
	log_setverbose(verbose);
	log_procinit("relay_send");
	signal(SIGPIPE, SIG_IGN);
	event_init();
	dns_init(resolver[0] != '\0' ? resolver : NULL, resolver_port);
	relay_init();
	relay_set_limits(global, per_dest);
	relay_set_timeout_max(timeout);
	if (ca != NULL)
		relay_set_ca("test", (const char *)ca, ca_len);

	if ((jobs = calloc(njobs, sizeof(*jobs))) == NULL)
		err(1, NULL);
	for (i = 0; i < njobs; i++) {
		struct relay_job	*job = &jobs[i];
		int			 r;

		(void)snprintf(job->id, sizeof(job->id), "%016zx", i);
		if (strlcpy(job->sender, sender, sizeof(job->sender)) >=
		    sizeof(job->sender))
			errx(2, "sender too long");
		job->flags = eightbit ? ENVELOPE_8BITMIME : 0;
		job->nrcpt = argc;
		if ((job->rcpts = calloc(argc, sizeof(*job->rcpts))) == NULL ||
		    (job->results = calloc(argc, sizeof(*job->results))) ==
		    NULL)
			err(1, NULL);
		for (r = 0; r < argc; r++)
			if (strlcpy(job->rcpts[r], argv[r],
			    sizeof(job->rcpts[r])) >= sizeof(job->rcpts[r]))
				errx(2, "recipient too long");
		job->body = body;
		job->body_len = body_len;
		job->done = job_done;
		job->arg = NULL;
		jobs_left++;
		relay_submit(&t, job);
	}
	(void)event_dispatch();

	for (i = 0; i < njobs; i++) {
		struct relay_job	*job = &jobs[i];
		static const char	*names[] = {
			[RELAY_DEFERRED] =	"DEFERRED",
			[RELAY_DELIVERED] =	"DELIVERED",
			[RELAY_FAILED] =	"FAILED"
		};
		size_t			 r;

		for (r = 0; r < job->nrcpt; r++)
			printf("%zu %s %s %d %s %s\n", i, job->rcpts[r],
			    names[job->results[r].status],
			    job->results[r].code, job->results[r].enhanced,
			    job->results[r].text);
	}
	if (stats) {
		relay_stats_walk(print_stats, NULL);
		relay_stats_total(&total);
		print_stats("total", &total, NULL);
	}
	relay_shutdown();
	return (0);
}

static void
job_done(struct relay_job *job)
{
	struct timeval	 tv = { linger, 0 };

	(void)job;
	if (--jobs_left == 0)
		(void)event_loopexit(&tv);
}

static void
print_stats(const char *key, const struct relay_stats *st, void *arg)
{
	(void)arg;
	printf("stats %s: connections=%llu connect_failures=%llu "
	    "messages=%llu delivered=%llu deferred=%llu failed=%llu "
	    "active=%u waiting=%u\n", key,
	    (unsigned long long)st->connections,
	    (unsigned long long)st->connect_failures,
	    (unsigned long long)st->messages,
	    (unsigned long long)st->delivered,
	    (unsigned long long)st->deferred,
	    (unsigned long long)st->failed, st->active, st->waiting);
}

static unsigned char *
read_file(const char *path, size_t *len)
{
	struct stat	 sb;
	unsigned char	*buf;
	ssize_t		 n;
	size_t		 off = 0;
	int		 fd;

	if ((fd = open(path, O_RDONLY)) == -1 || fstat(fd, &sb) == -1)
		err(2, "%s", path);
	if ((buf = malloc(sb.st_size + 1)) == NULL)
		err(1, NULL);
	while (off < (size_t)sb.st_size) {
		if ((n = read(fd, buf + off, sb.st_size - off)) == -1)
			err(2, "%s", path);
		if (n == 0)
			break;
		off += n;
	}
	(void)close(fd);
	*len = off;
	return (buf);
}
