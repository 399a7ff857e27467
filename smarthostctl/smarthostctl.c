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

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <err.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "smarthostd.h"
#include "smarthostctl.h"

static struct imsgbuf	 ibuf;
static int		 json;

static void	 ctl_connect(const char *);
static void	 ctl_request(uint32_t, const void *, size_t);
static void	 ctl_next(struct imsg *);
static int	 ctl_result(void);
static int	 ctl_show_status(void);
static void	 json_string(const char *);

static void __attribute__((__noreturn__))
usage(void)
{
	(void)fprintf(stderr, "usage: smarthostctl [-j] [-s socket] "
	    "command [argument ...]\n");
	exit(EXIT_USAGE);
}

int
main(int argc, char *argv[])
{
	struct parse_result	*res;
	const char		*sockpath = SMARTHOSTD_SOCKET;
	int			 ch, verbose;

	while ((ch = getopt(argc, argv, "js:")) != -1) {
		switch (ch) {
		case 'j':
			json = 1;
			break;
		case 's':
			sockpath = optarg;
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;

	res = parse(argc, argv);
	ctl_connect(sockpath);

	switch (res->action) {
	case CTL_SHOW_STATUS:
		ctl_request(IMSG_CTL_SHOW_STATUS, NULL, 0);
		return (ctl_show_status());
	case CTL_RELOAD:
		ctl_request(IMSG_CTL_RELOAD, NULL, 0);
		return (ctl_result());
	case CTL_LOG_VERBOSE:
	case CTL_LOG_BRIEF:
		verbose = res->action == CTL_LOG_VERBOSE;
		ctl_request(IMSG_CTL_LOG_VERBOSE, &verbose, sizeof(verbose));
		return (ctl_result());
	case CTL_NONE:
		break;
	}
	usage();
}

/*
 * Connect and agree on the protocol version before anything else, so
 * that a mismatched pair says so instead of misreading each other.
 */
static void
ctl_connect(const char *path)
{
	struct sockaddr_un	 sun;
	struct imsg		 imsg;
	uint32_t		 version = CONTROL_VERSION, theirs;
	int			 fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlcpy(sun.sun_path, path, sizeof(sun.sun_path)) >=
	    sizeof(sun.sun_path))
		errx(EXIT_USAGE, "socket path too long: %s", path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) == -1)
		err(EXIT_DAEMON_FAILURE, "socket");
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1)
		err(EXIT_DAEMON_FAILURE, "connect: %s", path);
	if (imsgbuf_init(&ibuf, fd) == -1)
		err(EXIT_DAEMON_FAILURE, "imsgbuf_init");

	ctl_request(IMSG_CTL_VERSION, &version, sizeof(version));
	ctl_next(&imsg);
	if (imsg_get_type(&imsg) != IMSG_CTL_VERSION ||
	    imsg_get_data(&imsg, &theirs, sizeof(theirs)) == -1)
		errx(EXIT_DAEMON_FAILURE, "bad answer from smarthostd");
	imsg_free(&imsg);
	if (theirs != CONTROL_VERSION)
		errx(EXIT_DAEMON_FAILURE, "smarthostctl and smarthostd "
		    "versions differ (control protocol %u and %u)",
		    CONTROL_VERSION, theirs);
}

static void
ctl_request(uint32_t type, const void *data, size_t len)
{
	if (imsg_compose(&ibuf, type, 0, 0, -1, data, len) == -1 ||
	    imsgbuf_flush(&ibuf) == -1)
		err(EXIT_DAEMON_FAILURE, "write to smarthostd");
}

/* The next message from the daemon; EOF is an error. */
static void
ctl_next(struct imsg *imsg)
{
	ssize_t	 n;

	for (;;) {
		if ((n = imsg_get(&ibuf, imsg)) == -1)
			err(EXIT_DAEMON_FAILURE, "bad message from smarthostd");
		if (n > 0)
			return;
		switch (imsgbuf_read(&ibuf)) {
		case -1:
			err(EXIT_DAEMON_FAILURE, "read from smarthostd");
		case 0:
			errx(EXIT_DAEMON_FAILURE, "smarthostd closed the "
			    "connection");
		}
	}
}

static int
ctl_result(void)
{
	struct imsg		 imsg;
	struct ctl_result	 res;
	uint32_t		 type;

	ctl_next(&imsg);
	type = imsg_get_type(&imsg);
	if ((type != IMSG_CTL_OK && type != IMSG_CTL_FAIL) ||
	    imsg_get_data(&imsg, &res, sizeof(res)) == -1)
		errx(EXIT_DAEMON_FAILURE, "bad answer from smarthostd");
	imsg_free(&imsg);
	res.message[sizeof(res.message) - 1] = '\0';
	if (json) {
		(void)printf("{\"ok\":%s,\"message\":",
		    type == IMSG_CTL_OK ? "true" : "false");
		json_string(res.message);
		(void)printf("}\n");
	} else if (type == IMSG_CTL_OK)
		(void)printf("%s\n", res.message);
	else
		(void)fprintf(stderr, "smarthostctl: %s\n", res.message);
	return (type == IMSG_CTL_OK ? 0 : EXIT_DAEMON_FAILURE);
}

static const char *
fmt_duration(time_t t, char *buf, size_t len)
{
	long long	 d = t / 86400, h = (t / 3600) % 24, m = (t / 60) % 60;
	long long	 s = t % 60;

	if (d > 0)
		(void)snprintf(buf, len, "%lldd %lldh %lldm", d, h, m);
	else if (h > 0)
		(void)snprintf(buf, len, "%lldh %lldm %llds", h, m, s);
	else if (m > 0)
		(void)snprintf(buf, len, "%lldm %llds", m, s);
	else
		(void)snprintf(buf, len, "%llds", s);
	return (buf);
}

static int
ctl_show_status(void)
{
	struct imsg		 imsg;
	struct ctl_status	 st;
	struct ctl_proc_status	 ps;
	char			 up[64];
	int			 nproc = 0;

	ctl_next(&imsg);
	if (imsg_get_type(&imsg) != IMSG_CTL_STATUS ||
	    imsg_get_data(&imsg, &st, sizeof(st)) == -1)
		errx(EXIT_DAEMON_FAILURE, "bad answer from smarthostd");
	imsg_free(&imsg);
	st.version[sizeof(st.version) - 1] = '\0';
	st.conffile[sizeof(st.conffile) - 1] = '\0';

	if (json) {
		(void)printf("{\"version\":");
		json_string(st.version);
		(void)printf(",\"config\":");
		json_string(st.conffile);
		(void)printf(",\"started\":%lld,\"uptime\":%lld,"
		    "\"config_loaded\":%lld,\"privsep\":%s,\"verbose\":%d,"
		    "\"processes\":[", (long long)st.started,
		    (long long)(st.now - st.started),
		    (long long)st.config_loaded,
		    st.privsep ? "true" : "false", st.verbose);
	} else {
		(void)printf("smarthostd %s\n", st.version);
		(void)printf("configuration: %s\n", st.conffile);
		(void)printf("uptime: %s\n", fmt_duration(st.now - st.started,
		    up, sizeof(up)));
		(void)printf("privilege separation: %s\n", st.privsep ?
		    "on" : "off (not started as root)");
		(void)printf("logging: %s\n", st.verbose ? "verbose" :
		    "brief");
		(void)printf("%-10s %8s  %s\n", "PROCESS", "PID", "STATE");
	}

	for (;;) {
		ctl_next(&imsg);
		if (imsg_get_type(&imsg) == IMSG_CTL_END) {
			imsg_free(&imsg);
			break;
		}
		if (imsg_get_type(&imsg) != IMSG_CTL_STATUS_PROC ||
		    imsg_get_data(&imsg, &ps, sizeof(ps)) == -1)
			errx(EXIT_DAEMON_FAILURE, "bad answer from smarthostd");
		imsg_free(&imsg);
		ps.name[sizeof(ps.name) - 1] = '\0';
		ps.state[sizeof(ps.state) - 1] = '\0';
		if (json) {
			(void)printf("%s{\"name\":", nproc ? "," : "");
			json_string(ps.name);
			(void)printf(",\"pid\":%ld,\"state\":", (long)ps.pid);
			json_string(ps.state);
			(void)printf("}");
		} else
			(void)printf("%-10s %8ld  %s\n", ps.name, (long)ps.pid,
			    ps.state);
		nproc++;
	}
	if (json)
		(void)printf("]}\n");
	return (0);
}

/* A JSON string: quotes, backslashes and control characters escaped. */
static void
json_string(const char *s)
{
	unsigned char	 c;

	(void)putchar('"');
	for (; (c = (unsigned char)*s) != '\0'; s++) {
		if (c == '"' || c == '\\')
			(void)printf("\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			(void)printf("\\u%04x", c);
		else
			(void)putchar(c);
	}
	(void)putchar('"');
}
