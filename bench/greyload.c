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
 * greyload: the load client of bench/grey.sh.  One process drives
 * CONNS concurrent SMTP sessions that stop at the greylisting
 * decision: connect, banner, EHLO, MAIL FROM, RCPT TO, QUIT.  Every
 * session has a tuple never seen before (a pseudo-random sender and
 * recipient) and comes from one of NADDRS loopback source addresses in
 * turn.  It times each RCPT from its write to the complete reply and
 * prints one line:
 *
 *	decisions N seconds S rate R p50_ms A p99_ms B errors E codes C:N...
 *
 * Sessions that fail (a refused connection, an unexpected reply
 * before RCPT, a reset) count as errors and are not retried; after
 * GIVE_UP_ERRORS of them it stops early.  It exits 1 if any failed.
 *
 *	greyload -p port [-a first-source] [-n naddrs] [-c conns]
 *	    [-d seconds | -m sessions] [-r sessions-per-second]
 *	    [-s seed] [-D rcpt-domain] [-w timeout]
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "greybench.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT	24
#endif

#define MAX_CONNS	1024
#define REPLY_MAX	4096
#define GIVE_UP_ERRORS	1000

enum stage {
	ST_IDLE,
	ST_CONNECT,
	ST_BANNER,
	ST_EHLO,
	ST_MAIL,
	ST_RCPT,
	ST_QUIT
};

struct conn {
	int		 fd;
	enum stage	 stage;
	uint64_t	 tuple;
	int64_t		 rcpt_sent;	/* ns */
	size_t		 len;
	char		 buf[REPLY_MAX];
};

static struct conn	 conns[MAX_CONNS];
static struct pollfd	 pfds[MAX_CONNS];

static struct in_addr	 src_first;
static unsigned int	 src_count = 1;
static unsigned int	 src_next;
static struct sockaddr_in dst;
static const char	*rcpt_domain = "grey.bench.example";
static uint64_t		 seed;
static uint64_t		 started;	/* sessions started */
static uint64_t		 errors;
static uint64_t		 codes[600];
static uint32_t		*lat_us;	/* one per decision */
static size_t		 lat_count, lat_size;

static __attribute__((__noreturn__)) void
usage(void)
{
	fprintf(stderr, "usage: greyload -p port [-a first-source] "
	    "[-n naddrs] [-c conns]\n"
	    "\t[-d seconds | -m sessions] [-r sessions-per-second] "
	    "[-s seed]\n\t[-D rcpt-domain] [-w timeout]\n");
	exit(2);
}

static int64_t
now_ns(void)
{
	struct timespec	ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
		err(1, "clock_gettime");
	return ((int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec);
}

static void
conn_close(struct conn *c)
{
	if (c->fd != -1)
		close(c->fd);
	c->fd = -1;
	c->stage = ST_IDLE;
	c->len = 0;
}

static void
conn_fail(struct conn *c, const char *why)
{
	if (errors < 5)
		warnx("session failed at stage %d: %s", c->stage, why);
	errors++;
	conn_close(c);
}

static int
conn_start(struct conn *c)
{
	struct sockaddr_in	 src;
	int			 one = 1;

	if ((c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0)) == -1)
		err(1, "socket");
	/* The port is then chosen at connect, per destination. */
	(void)setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
	    sizeof(one));
	(void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	memset(&src, 0, sizeof(src));
	src.sin_family = AF_INET;
	src.sin_addr.s_addr = htonl(ntohl(src_first.s_addr) +
	    src_next++ % src_count);
	if (bind(c->fd, (struct sockaddr *)&src, sizeof(src)) == -1)
		err(1, "bind %s", inet_ntoa(src.sin_addr));
	c->tuple = mix(seed + started++);
	c->len = 0;
	c->stage = ST_CONNECT;
	if (connect(c->fd, (struct sockaddr *)&dst, sizeof(dst)) == -1 &&
	    errno != EINPROGRESS) {
		conn_fail(c, strerror(errno));
		return (-1);
	}
	return (0);
}

static int
conn_send(struct conn *c, const char *fmt, ...)
    __attribute__((__format__(__printf__, 2, 3)));

static int
conn_send(struct conn *c, const char *fmt, ...)
{
	char	line[512];
	va_list	ap;
	int	n;
	ssize_t	w;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line))
		errx(1, "command too long");
	/* A short command to a socket that has read all our replies. */
	w = write(c->fd, line, n);
	if (w != n) {
		conn_fail(c, w == -1 ? strerror(errno) : "short write");
		return (-1);
	}
	return (0);
}

static void
latency_add(int64_t ns)
{
	uint32_t	*p;
	size_t		 size;

	if (lat_count == lat_size) {
		size = lat_size ? lat_size * 2 : 65536;
		if ((p = reallocarray(lat_us, size, sizeof(*p))) == NULL)
			err(1, NULL);
		lat_us = p;
		lat_size = size;
	}
	ns /= 1000;
	lat_us[lat_count++] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
}

/*
 * The code of the complete reply in c->buf, 0 when more is to come,
 * -1 when it is not a reply.
 */
static int
reply_code(struct conn *c)
{
	char	*line = c->buf, *nl;
	int	 code;

	for (;;) {
		nl = memchr(line, '\n', c->len - (line - c->buf));
		if (nl == NULL)
			return (0);
		if (nl - line < 3 || line[0] < '1' || line[0] > '5' ||
		    line[1] < '0' || line[1] > '9' ||
		    line[2] < '0' || line[2] > '9')
			return (-1);
		code = (line[0] - '0') * 100 + (line[1] - '0') * 10 +
		    (line[2] - '0');
		if (line[3] != '-')
			break;
		line = nl + 1;
	}
	if (nl + 1 != c->buf + c->len)
		return (-1);	/* pipelined extra: not from a server */
	return (code);
}

static void
conn_step(struct conn *c, int code)
{
	uint64_t	t = c->tuple;

	c->len = 0;
	switch (c->stage) {
	case ST_BANNER:
		if (code != 220) {
			conn_fail(c, "banner");
			return;
		}
		if (conn_send(c, "EHLO client-%u.bench.example\r\n",
		    (unsigned int)(t % 1000)) == -1)
			return;
		c->stage = ST_EHLO;
		break;
	case ST_EHLO:
		if (code != 250) {
			conn_fail(c, "EHLO");
			return;
		}
		if (conn_send(c, "MAIL FROM:<s%016" PRIx64 "@src%u.bench."
		    "example>\r\n", t, (unsigned int)(t >> 48) % 1000) == -1)
			return;
		c->stage = ST_MAIL;
		break;
	case ST_MAIL:
		if (code != 250) {
			conn_fail(c, "MAIL");
			return;
		}
		if (conn_send(c, "RCPT TO:<r%016" PRIx64 "@%s>\r\n", mix(t),
		    rcpt_domain) == -1)
			return;
		c->rcpt_sent = now_ns();
		c->stage = ST_RCPT;
		break;
	case ST_RCPT:
		latency_add(now_ns() - c->rcpt_sent);
		codes[code]++;
		if (conn_send(c, "QUIT\r\n") == -1)
			return;
		c->stage = ST_QUIT;
		break;
	case ST_QUIT:
		conn_close(c);
		break;
	default:
		conn_fail(c, "reply in no stage");
		break;
	}
}

static void
conn_io(struct conn *c, short revents)
{
	socklen_t	len;
	ssize_t		n;
	int		code, e;

	if (c->stage == ST_CONNECT) {
		len = sizeof(e);
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &len) == -1)
			err(1, "getsockopt");
		if (e != 0) {
			conn_fail(c, strerror(e));
			return;
		}
		c->stage = ST_BANNER;
		return;
	}
	if ((revents & (POLLIN | POLLHUP | POLLERR)) == 0)
		return;
	n = read(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		if (c->stage == ST_QUIT)
			conn_close(c);	/* closed after QUIT: done */
		else
			conn_fail(c, n == 0 ? "closed" : strerror(errno));
		return;
	}
	c->len += n;
	if ((code = reply_code(c)) == 0) {
		if (c->len == sizeof(c->buf) - 1)
			conn_fail(c, "reply too long");
		return;
	}
	if (code == -1) {
		conn_fail(c, "not a reply");
		return;
	}
	conn_step(c, code);
}

static int
lat_cmp(const void *a, const void *b)
{
	uint32_t	x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x < y ? -1 : x > y);
}

static double
percentile_ms(double p)
{
	size_t	i;

	if (lat_count == 0)
		return (0);
	i = (size_t)(p * (lat_count - 1) + 0.5);
	return (lat_us[i] / 1000.0);
}

int
main(int argc, char *argv[])
{
	struct conn	*c;
	int64_t		 t0, t1, deadline = 0, stop_by, next_start;
	uint64_t	 max_sessions = 0, rate = 0;
	unsigned int	 nconns = 32, i, active;
	int		 ch, port = 0, timeout_s = 30, timeout_ms;
	double		 secs;

	seed = mix((uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32));
	if (inet_pton(AF_INET, "127.0.0.2", &src_first) != 1)
		errx(1, "inet_pton");
	while ((ch = getopt(argc, argv, "a:c:D:d:m:n:p:r:s:w:")) != -1) {
		switch (ch) {
		case 'a':
			if (inet_pton(AF_INET, optarg, &src_first) != 1)
				errx(2, "%s: not an IPv4 address", optarg);
			break;
		case 'c':
			nconns = number(optarg, MAX_CONNS);
			break;
		case 'D':
			rcpt_domain = optarg;
			break;
		case 'd':
			deadline = (int64_t)number(optarg, 86400) * 1000000000;
			break;
		case 'm':
			max_sessions = number(optarg, 100000000);
			break;
		case 'n':
			src_count = number(optarg, 250);
			break;
		case 'p':
			port = number(optarg, 65535);
			break;
		case 'r':
			rate = number(optarg, 1000000);
			break;
		case 's':
			seed = mix(number(optarg, LLONG_MAX));
			break;
		case 'w':
			timeout_s = number(optarg, 3600);
			break;
		default:
			usage();
		}
	}
	if (argc != optind || port == 0 || nconns == 0 || src_count == 0 ||
	    (deadline == 0) == (max_sessions == 0))
		usage();
	memset(&dst, 0, sizeof(dst));
	dst.sin_family = AF_INET;
	dst.sin_port = htons(port);
	dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (i = 0; i < nconns; i++) {
		conns[i].fd = -1;
		conns[i].stage = ST_IDLE;
	}

	t0 = next_start = now_ns();
	stop_by = 0;
	for (;;) {
		t1 = now_ns();
		/* A target that refuses everything is not measured. */
		if (stop_by == 0 && ((deadline && t1 - t0 >= deadline) ||
		    (max_sessions && started >= max_sessions) ||
		    errors >= GIVE_UP_ERRORS))
			stop_by = t1 + (int64_t)timeout_s * 1000000000;
		active = 0;
		for (i = 0; i < nconns; i++) {
			c = &conns[i];
			if (c->stage == ST_IDLE && stop_by == 0 &&
			    (rate == 0 || t1 >= next_start) &&
			    (max_sessions == 0 || started < max_sessions)) {
				if (rate)
					next_start += 1000000000 / rate;
				(void)conn_start(c);
			}
			pfds[i].fd = c->fd;
			pfds[i].events = c->stage == ST_CONNECT ?
			    POLLOUT : POLLIN;
			pfds[i].revents = 0;
			if (c->stage != ST_IDLE)
				active++;
		}
		if (stop_by && (active == 0 || t1 >= stop_by))
			break;
		timeout_ms = 1000;
		if (rate && stop_by == 0) {
			timeout_ms = (next_start - t1) / 1000000;
			if (timeout_ms < 0)
				timeout_ms = 0;
			if (timeout_ms > 1000)
				timeout_ms = 1000;
		}
		if (poll(pfds, nconns, timeout_ms) == -1) {
			if (errno == EINTR)
				continue;
			err(1, "poll");
		}
		for (i = 0; i < nconns; i++)
			if (pfds[i].fd != -1 && pfds[i].revents)
				conn_io(&conns[i], pfds[i].revents);
	}
	for (i = 0; i < nconns; i++)
		if (conns[i].stage != ST_IDLE)
			conn_fail(&conns[i], "unfinished at the end");
	secs = (now_ns() - t0) / 1e9;

	qsort(lat_us, lat_count, sizeof(*lat_us), lat_cmp);
	printf("decisions %zu seconds %.3f rate %.0f p50_ms %.2f p99_ms %.2f "
	    "errors %" PRIu64 " codes", lat_count, secs, lat_count / secs,
	    percentile_ms(0.50), percentile_ms(0.99), errors);
	for (i = 0; i < 600; i++)
		if (codes[i])
			printf(" %u:%" PRIu64, i, codes[i]);
	printf("\n");
	return (errors ? 1 : 0);
}
