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
#include <readpassphrase.h>
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
static int	 ctl_show_queue(void);
static int	 ctl_show_message(void);
static int	 ctl_show_stats(void);
static int	 ctl_next_record(uint32_t, void *, size_t);
static int	 ctl_show_greylist(void);
static int	 ctl_show_tables(void);
static int	 ctl_text(void);
static char	*ctl_next_string(uint32_t);
static const struct ctl_imsg *ctl_imsg_of(enum ctl_action);
static void	 print_escaped(const char *, int);
static void	 print_field(const char *, int);
static int	 ctl_encrypt(const char *);
static void	 ctl_check_fail(struct imsg *);
static void	 json_string(const char *);
static void	 json_string_len(const char *, size_t);
static void	 json_field(const char *, const char *);

/* bcrypt's work factor for encrypt: 2^10 rounds, about 0.1s. */
#define BCRYPT_COST		10
/* bcrypt uses this many bytes of a password and ignores the rest. */
#define BCRYPT_PASSWORD_MAX	72

/*
 * The imsg of each command that maps to one; for show greylist also the
 * list asked for.
 */
static const struct ctl_imsg {
	enum ctl_action		 action;
	uint32_t		 type;
	enum grey_list_kind	 kind;
} ctl_imsgs[] = {
	{ CTL_REMOVE,		 IMSG_CTL_REMOVE,	GREY_LIST_ALL },
	{ CTL_SCHEDULE,		 IMSG_CTL_SCHEDULE,	GREY_LIST_ALL },
	{ CTL_QUARANTINE_RELEASE, IMSG_CTL_QUARANTINE_RELEASE, GREY_LIST_ALL },
	{ CTL_QUARANTINE_DELETE, IMSG_CTL_QUARANTINE_DELETE, GREY_LIST_ALL },
	{ CTL_PAUSE_SMTP,	 IMSG_CTL_PAUSE_SMTP,	GREY_LIST_ALL },
	{ CTL_RESUME_SMTP,	 IMSG_CTL_RESUME_SMTP,	GREY_LIST_ALL },
	{ CTL_PAUSE_RELAY,	 IMSG_CTL_PAUSE_RELAY,	GREY_LIST_ALL },
	{ CTL_RESUME_RELAY,	 IMSG_CTL_RESUME_RELAY,	GREY_LIST_ALL },
	{ CTL_SHOW_GREYLIST,	 IMSG_CTL_SHOW_GREYLIST, GREY_LIST_ALL },
	{ CTL_SHOW_GREYLIST_GREY, IMSG_CTL_SHOW_GREYLIST, GREY_LIST_GREY },
	{ CTL_SHOW_GREYLIST_WHITE, IMSG_CTL_SHOW_GREYLIST, GREY_LIST_WHITE },
	{ CTL_SHOW_GREYLIST_TRAP, IMSG_CTL_SHOW_GREYLIST, GREY_LIST_TRAP },
	{ CTL_SHOW_GREYLIST_BLOCK, IMSG_CTL_SHOW_GREYLIST, GREY_LIST_BLOCK },
	{ CTL_GREY_WHITE,	 IMSG_CTL_GREY_WHITE,	GREY_LIST_ALL },
	{ CTL_GREY_DELETE,	 IMSG_CTL_GREY_DELETE,	GREY_LIST_ALL },
	{ CTL_TRAP_ADD,		 IMSG_CTL_TRAP_ADD,	GREY_LIST_ALL },
	{ CTL_TRAP_DELETE,	 IMSG_CTL_TRAP_DELETE,	GREY_LIST_ALL },
	{ CTL_UPDATE_TABLE,	 IMSG_CTL_UPDATE_TABLE,	GREY_LIST_ALL }
};

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
	enum grey_list_kind	 kind;

	/* "+": options end at the command, so a password may start with -. */
	while ((ch = getopt(argc, argv, "+js:")) != -1) {
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
	if (res->action == CTL_ENCRYPT)
		return (ctl_encrypt(res->password));
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
	case CTL_SHOW_QUEUE:
	case CTL_SHOW_QUARANTINE:
		ctl_request(res->action == CTL_SHOW_QUEUE ? IMSG_CTL_SHOW_QUEUE :
		    IMSG_CTL_SHOW_QUARANTINE, NULL, 0);
		return (ctl_show_queue());
	case CTL_SHOW_MESSAGE:
		ctl_request(IMSG_CTL_SHOW_MESSAGE, res->id, strlen(res->id) + 1);
		return (ctl_show_message());
	case CTL_SHOW_STATS:
		ctl_request(IMSG_CTL_SHOW_STATS, NULL, 0);
		return (ctl_show_stats());
	case CTL_REMOVE:
	case CTL_SCHEDULE:
	case CTL_QUARANTINE_RELEASE:
	case CTL_QUARANTINE_DELETE:
		ctl_request(ctl_imsg_of(res->action)->type, res->id,
		    strlen(res->id) + 1);
		return (ctl_result());
	case CTL_PAUSE_SMTP:
	case CTL_RESUME_SMTP:
	case CTL_PAUSE_RELAY:
	case CTL_RESUME_RELAY:
		ctl_request(ctl_imsg_of(res->action)->type, NULL, 0);
		return (ctl_result());
	case CTL_SHOW_GREYLIST:
	case CTL_SHOW_GREYLIST_GREY:
	case CTL_SHOW_GREYLIST_WHITE:
	case CTL_SHOW_GREYLIST_TRAP:
	case CTL_SHOW_GREYLIST_BLOCK:
		kind = ctl_imsg_of(res->action)->kind;
		ctl_request(IMSG_CTL_SHOW_GREYLIST, &kind, sizeof(kind));
		return (ctl_show_greylist());
	case CTL_GREY_WHITE:
	case CTL_GREY_DELETE:
	case CTL_TRAP_ADD:
	case CTL_TRAP_DELETE:
	case CTL_UPDATE_TABLE:
		ctl_request(ctl_imsg_of(res->action)->type, res->arg,
		    strlen(res->arg) + 1);
		return (ctl_result());
	case CTL_SHOW_TABLES:
		ctl_request(IMSG_CTL_SHOW_TABLES, NULL, 0);
		return (ctl_show_tables());
	case CTL_EXPLAIN:
		ctl_request(IMSG_CTL_EXPLAIN, res->arg, strlen(res->arg) + 1);
		return (ctl_text());
	case CTL_BACKUP:
		ctl_request(IMSG_CTL_BACKUP, res->path, strlen(res->path) + 1);
		return (ctl_result());
	case CTL_ENCRYPT:
	case CTL_NONE:
		break;
	}
	usage();
}

static const struct ctl_imsg *
ctl_imsg_of(enum ctl_action action)
{
	size_t	 i;

	for (i = 0; i < sizeof(ctl_imsgs) / sizeof(ctl_imsgs[0]); i++)
		if (ctl_imsgs[i].action == action)
			return (&ctl_imsgs[i]);
	errx(EXIT_USAGE, "no request for command %d", action);
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
	ctl_check_fail(&imsg);
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

/*
 * A FAIL where data was expected: the daemon could not answer.  Said the
 * way ctl_result() says it, and the exit status tells scripts.
 */
static void
ctl_check_fail(struct imsg *imsg)
{
	struct ctl_result	 res;

	if (imsg_get_type(imsg) != IMSG_CTL_FAIL)
		return;
	if (imsg_get_data(imsg, &res, sizeof(res)) == -1)
		errx(EXIT_DAEMON_FAILURE, "bad answer from smarthostd");
	imsg_free(imsg);
	res.message[sizeof(res.message) - 1] = '\0';
	if (json) {
		(void)printf("{\"ok\":false,\"message\":");
		json_string(res.message);
		(void)printf("}\n");
	} else
		(void)fprintf(stderr, "smarthostctl: %s\n", res.message);
	exit(EXIT_DAEMON_FAILURE);
}

static const char *
fmt_time(int64_t t, char *buf, size_t len)
{
	struct tm	 tm;
	time_t		 tt = (time_t)t;

	if (gmtime_r(&tt, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		(void)snprintf(buf, len, "%lld", (long long)t);
	return (buf);
}

/*
 * show queue and show quarantine: each message, then its recipients.
 * Text is one line per message, ending in "quarantined" for a held one,
 * and one indented line per recipient; JSON an array.
 */
static int
ctl_show_queue(void)
{
	struct imsg			 imsg;
	struct ctl_queue_message	 qm;
	struct ctl_queue_rcpt		 qr;
	char				 when[64];
	uint32_t			 type, rcpts_left = 0, nrcpt = 0;
	int				 nmsg = 0;

	if (json)
		(void)printf("[");
	for (;;) {
		ctl_next(&imsg);
		ctl_check_fail(&imsg);
		type = imsg_get_type(&imsg);
		if (type == IMSG_CTL_END) {
			imsg_free(&imsg);
			break;
		}
		if (type == IMSG_CTL_QUEUE_MESSAGE && rcpts_left == 0) {
			if (imsg_get_data(&imsg, &qm, sizeof(qm)) == -1)
				errx(EXIT_DAEMON_FAILURE, "bad answer from "
				    "smarthostd");
			imsg_free(&imsg);
			qm.id[sizeof(qm.id) - 1] = '\0';
			qm.sender[sizeof(qm.sender) - 1] = '\0';
			if (json) {
				(void)printf("%s{\"id\":", nmsg ? "," : "");
				json_string(qm.id);
				(void)printf(",\"arrived\":%lld,\"size\":%llu,"
				    "\"quarantined\":%s,\"sender\":",
				    (long long)qm.arrived,
				    (unsigned long long)qm.size,
				    qm.flags & ENVELOPE_QUARANTINE ? "true" :
				    "false");
				json_string(qm.sender);
				(void)printf(",\"recipients\":[");
				if (qm.nrcpt == 0)
					(void)printf("]}");
			} else
				(void)printf("%s  %s  %10llu  <%s>%s\n", qm.id,
				    fmt_time(qm.arrived, when, sizeof(when)),
				    (unsigned long long)qm.size, qm.sender,
				    qm.flags & ENVELOPE_QUARANTINE ?
				    "  quarantined" : "");
			rcpts_left = nrcpt = qm.nrcpt;
			nmsg++;
			continue;
		}
		if (type != IMSG_CTL_QUEUE_RCPT || rcpts_left == 0 ||
		    imsg_get_data(&imsg, &qr, sizeof(qr)) == -1)
			errx(EXIT_DAEMON_FAILURE, "bad answer from smarthostd");
		imsg_free(&imsg);
		qr.addr[sizeof(qr.addr) - 1] = '\0';
		qr.action[sizeof(qr.action) - 1] = '\0';
		qr.last_error[sizeof(qr.last_error) - 1] = '\0';
		if (json) {
			(void)printf("%s{\"address\":", rcpts_left < nrcpt ?
			    "," : "");
			json_string(qr.addr);
			(void)printf(",\"action\":");
			json_string(qr.action);
			(void)printf(",\"state\":\"%s\",\"attempts\":%u,"
			    "\"next_try\":%lld,\"last_error\":",
			    envelope_rcpt_state_name(qr.state), qr.attempts,
			    (long long)qr.next_try);
			json_string(qr.last_error);
			(void)printf("}");
			if (rcpts_left == 1)
				(void)printf("]}");
		} else {
			(void)printf("    <%s>  %s  %s", qr.addr, qr.action,
			    envelope_rcpt_state_name(qr.state));
			if (qr.attempts > 0)
				(void)printf("  attempts %u  next %s",
				    qr.attempts, fmt_time(qr.next_try, when,
				    sizeof(when)));
			if (qr.last_error[0] != '\0')
				(void)printf("  \"%s\"", qr.last_error);
			(void)printf("\n");
		}
		rcpts_left--;
	}
	if (rcpts_left != 0)
		errx(EXIT_DAEMON_FAILURE, "bad answer from smarthostd");
	if (json)
		(void)printf("]\n");
	return (0);
}

/*
 * show message: the daemon sends text, already escaped: "name: value"
 * lines of the envelope, an empty line, the header lines.  JSON makes an
 * object of the envelope lines, with the recipients and the headers as
 * arrays of strings.
 */
static int
ctl_show_message(void)
{
	char		*text = NULL, *chunk, *p, *eol, *colon;
	size_t		 len = 0, n;
	int		 in_headers = 0, nrcpt = 0, nhdr = 0;

	while ((chunk = ctl_next_string(IMSG_CTL_MESSAGE_TEXT)) != NULL) {
		n = strlen(chunk);
		if (len + n + 1 > 64 * 1024 * 1024)
			errx(EXIT_DAEMON_FAILURE, "bad answer from smarthostd");
		if ((p = realloc(text, len + n + 1)) == NULL)
			err(EXIT_DAEMON_FAILURE, NULL);
		text = p;
		memcpy(text + len, chunk, n + 1);
		len += n;
		free(chunk);
	}
	if (text == NULL)
		errx(EXIT_DAEMON_FAILURE, "bad answer from smarthostd");
	if (!json) {
		(void)fwrite(text, 1, len, stdout);
		free(text);
		return (0);
	}

	(void)printf("{");
	for (p = text; p < text + len; p = eol + 1) {
		if ((eol = memchr(p, '\n', text + len - p)) == NULL)
			eol = text + len;
		if (in_headers) {
			(void)printf("%s", nhdr++ ? "," : "");
			json_string_len(p, eol - p);
			continue;
		}
		if (eol == p) {
			(void)printf("%s\"headers\":[", nrcpt ? "]," : "");
			in_headers = 1;
			continue;
		}
		if ((colon = memchr(p, ':', eol - p)) == NULL ||
		    colon + 1 >= eol || colon[1] != ' ')
			errx(EXIT_DAEMON_FAILURE, "bad answer from smarthostd");
		if (colon - p == 9 && strncmp(p, "recipient", 9) == 0) {
			(void)printf("%s", nrcpt++ ? "," :
			    "\"recipients\":[");
			json_string_len(colon + 2, eol - colon - 2);
			continue;
		}
		if (nrcpt)
			errx(EXIT_DAEMON_FAILURE, "bad answer from smarthostd");
		json_string_len(p, colon - p);
		(void)printf(":");
		json_string_len(colon + 2, eol - colon - 2);
		(void)printf(",");
	}
	if (!in_headers)
		(void)printf("%s\"headers\":[", nrcpt ? "]," : "");
	(void)printf("]}\n");
	free(text);
	return (0);
}

/* show stats: "name=value" lines, or one JSON object. */
static int
ctl_show_stats(void)
{
	struct ctl_stat	 st;
	int		 n = 0;

	if (json)
		(void)printf("{");
	while (ctl_next_record(IMSG_CTL_STAT, &st, sizeof(st))) {
		st.name[sizeof(st.name) - 1] = '\0';
		if (json) {
			(void)printf("%s", n ? "," : "");
			json_string(st.name);
			(void)printf(":%llu", (unsigned long long)st.value);
		} else
			(void)printf("%s=%llu\n", st.name,
			    (unsigned long long)st.value);
		n++;
	}
	if (json)
		(void)printf("}\n");
	return (0);
}

/*
 * One record of a listing into buf, which is exactly its size; 0 at the
 * END that closes the listing.  A FAIL instead ends the program.
 */
static int
ctl_next_record(uint32_t type, void *buf, size_t len)
{
	struct imsg	 imsg;

	ctl_next(&imsg);
	ctl_check_fail(&imsg);
	if (imsg_get_type(&imsg) == IMSG_CTL_END &&
	    imsg_get_len(&imsg) == 0) {
		imsg_free(&imsg);
		return (0);
	}
	if (imsg_get_type(&imsg) != type ||
	    imsg_get_data(&imsg, buf, len) == -1)
		errx(EXIT_DAEMON_FAILURE, "bad answer from smarthostd");
	imsg_free(&imsg);
	return (1);
}

/*
 * Text that clients of the daemon may have chosen (a HELO, an address):
 * bytes that could fool a terminal, or a script splitting show
 * greylist's fields on '|', are printed as \xNN, a backslash as \\.
 */
static void
print_escaped(const char *s, int pipe)
{
	unsigned char	 c;

	for (; (c = (unsigned char)*s) != '\0'; s++) {
		if (c == '\\')
			(void)printf("\\\\");
		else if (c < 0x20 || c > 0x7e || (pipe && c == '|'))
			(void)printf("\\x%02x", c);
		else
			(void)putchar(c);
	}
}

/* One field of show greylist's text, after its separator. */
static void
print_field(const char *s, int sep)
{
	if (sep)
		(void)putchar('|');
	print_escaped(s, 1);
}

static void
json_field(const char *name, const char *value)
{
	(void)printf(",\"%s\":", name);
	json_string(value);
}

/*
 * show greylist: spamdb's pipe format, one entry per line, times in
 * seconds since the epoch; JSON an array of objects with the same
 * fields by name.  Each type has its own fields.
 */
static const struct grey_entry_format {
	const char	*type;
	const char	*key;		/* the name of the key field */
	const char	*list;		/* the list field's name, or NULL */
	int		 tuple;		/* helo, from, to */
	int		 times;		/* first, pass, expire and counts */
	int		 expire;	/* expire alone */
} grey_entry_formats[] = {
	{ "GREY",	"key",		NULL,		1, 1, 0 },
	{ "WHITE",	"key",		NULL,		0, 1, 0 },
	{ "TRAPPED",	"key",		NULL,		0, 0, 1 },
	{ "SPAMTRAP",	"address",	NULL,		0, 0, 0 },
	{ "BLOCK",	"network",	"list",		0, 0, 0 },
	{ "SPFWHITE",	"network",	"domain",	0, 0, 0 },
	{ "LEARNED",	"domain",	NULL,		0, 0, 1 }
};

static int
ctl_show_greylist(void)
{
	const struct grey_entry_format	*f;
	struct ctl_grey_entry		 e;
	size_t				 i;
	int				 n = 0;

	if (json)
		(void)printf("[");
	while (ctl_next_record(IMSG_CTL_GREY_ENTRY, &e, sizeof(e))) {
		e.type[sizeof(e.type) - 1] = '\0';
		e.key[sizeof(e.key) - 1] = '\0';
		e.helo[sizeof(e.helo) - 1] = '\0';
		e.sender[sizeof(e.sender) - 1] = '\0';
		e.rcpt[sizeof(e.rcpt) - 1] = '\0';
		e.list[sizeof(e.list) - 1] = '\0';
		f = NULL;
		for (i = 0; i < sizeof(grey_entry_formats) /
		    sizeof(grey_entry_formats[0]); i++)
			if (strcmp(e.type, grey_entry_formats[i].type) == 0)
				f = &grey_entry_formats[i];
		if (f == NULL)
			errx(EXIT_DAEMON_FAILURE, "bad answer from smarthostd");

		if (json) {
			(void)printf("%s{\"type\":", n++ ? "," : "");
			json_string(e.type);
			json_field(f->key, e.key);
		} else {
			print_field(e.type, 0);
			print_field(e.key, 1);
		}
		if (f->tuple && json) {
			json_field("helo", e.helo);
			json_field("from", e.sender);
			json_field("to", e.rcpt);
		} else if (f->tuple) {
			print_field(e.helo, 1);
			print_field(e.sender, 1);
			print_field(e.rcpt, 1);
		} else if (f->times && !json)
			(void)printf("||");	/* spamdb's WHITE */
		if (f->times)
			(void)printf(json ? ",\"first\":%lld,\"pass\":%lld,"
			    "\"expire\":%lld,\"blocked\":%u,\"passed\":%u" :
			    "|%lld|%lld|%lld|%u|%u", (long long)e.first,
			    (long long)e.pass, (long long)e.expire, e.blocked,
			    e.passed);
		if (f->expire)
			(void)printf(json ? ",\"expire\":%lld" : "|%lld",
			    (long long)e.expire);
		if (f->list != NULL && json)
			json_field(f->list, e.list);
		else if (f->list != NULL)
			print_field(e.list, 1);
		(void)printf(json ? "}" : "\n");
	}
	if (json)
		(void)printf("]\n");
	return (0);
}

/*
 * show tables: one line per table or list; JSON an array.  The firewall's
 * tables (kind "firewall") also show what the firewall itself holds, and
 * a "!" marks a firewall whose count differs from the daemon's.
 */
static int
ctl_show_tables(void)
{
	struct ctl_table_info	 t;
	struct tm		 tm;
	time_t			 tt;
	char			 when[32], fw[24];
	int			 n = 0, isfw, differ, ndiffer = 0;

	if (json)
		(void)printf("[");
	else
		(void)printf("%-20s %-10s %8s %9s  %-19s  %s\n", "NAME", "KIND",
		    "COUNT", "FIREWALL", "LOADED", "SOURCE");
	while (ctl_next_record(IMSG_CTL_TABLE_INFO, &t, sizeof(t))) {
		t.name[sizeof(t.name) - 1] = '\0';
		t.kind[sizeof(t.kind) - 1] = '\0';
		t.source[sizeof(t.source) - 1] = '\0';
		isfw = strcmp(t.kind, "firewall") == 0;
		differ = isfw && t.firewall_count >= 0 &&
		    (uint64_t)t.firewall_count != t.count;
		ndiffer += differ;
		if (json) {
			(void)printf("%s{\"name\":", n++ ? "," : "");
			json_string(t.name);
			json_field("kind", t.kind);
			(void)printf(",\"count\":%llu,\"loaded\":%lld",
			    (unsigned long long)t.count, (long long)t.loaded);
			json_field("source", t.source);
			if (isfw)
				(void)printf(",\"firewall_count\":%lld,"
				    "\"firewall_differs\":%s",
				    (long long)(t.firewall_count < 0 ? -1 :
				    t.firewall_count),
				    differ ? "true" : "false");
			(void)printf("}");
			continue;
		}
		tt = (time_t)t.loaded;
		if (t.loaded == 0 || localtime_r(&tt, &tm) == NULL ||
		    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S",
		    &tm) == 0)
			(void)strlcpy(when, "-", sizeof(when));
		if (isfw && t.firewall_count >= 0)
			(void)snprintf(fw, sizeof(fw), "%lld%s",
			    (long long)t.firewall_count, differ ? "!" : "");
		else
			(void)strlcpy(fw, "-", sizeof(fw));
		(void)printf("%-20s %-10s %8llu %9s  %-19s  ", t.name, t.kind,
		    (unsigned long long)t.count, fw, when);
		print_escaped(t.source[0] != '\0' ? t.source : "-", 0);
		(void)printf("\n");
	}
	if (json)
		(void)printf("]\n");
	else if (ndiffer > 0)
		(void)printf("! the firewall's count differs from the "
		    "daemon's\n");
	return (0);
}

/* explain: lines of text from the daemon; JSON {"lines": [...]}. */
static int
ctl_text(void)
{
	char	*line;
	int	 n = 0;

	if (json)
		(void)printf("{\"lines\":[");
	while ((line = ctl_next_string(IMSG_CTL_TEXT)) != NULL) {
		if (json) {
			(void)printf("%s", n++ ? "," : "");
			json_string(line);
		} else {
			print_escaped(line, 0);
			(void)printf("\n");
		}
		free(line);
	}
	if (json)
		(void)printf("]}\n");
	return (0);
}

/*
 * The next string of a text answer, NUL-terminated as sent, for the
 * caller to free; NULL at the END that closes the answer.
 */
static char *
ctl_next_string(uint32_t type)
{
	struct imsg	 imsg;
	char		*s;
	size_t		 len;

	ctl_next(&imsg);
	ctl_check_fail(&imsg);
	if (imsg_get_type(&imsg) == IMSG_CTL_END &&
	    imsg_get_len(&imsg) == 0) {
		imsg_free(&imsg);
		return (NULL);
	}
	len = imsg_get_len(&imsg);
	if (imsg_get_type(&imsg) != type || len == 0)
		errx(EXIT_DAEMON_FAILURE, "bad answer from smarthostd");
	if ((s = malloc(len)) == NULL)
		err(EXIT_DAEMON_FAILURE, NULL);
	if (imsg_get_data(&imsg, s, len) == -1 || s[len - 1] != '\0' ||
	    strlen(s) != len - 1)
		errx(EXIT_DAEMON_FAILURE, "bad answer from smarthostd");
	imsg_free(&imsg);
	return (s);
}

/*
 * encrypt: a bcrypt hash for the password table, of the argument or of
 * one line of standard input (asked for without echo on a terminal).
 * No daemon is needed.
 */
static int
ctl_encrypt(const char *arg)
{
	char			*line = NULL;
	char			 prompt[AUTH_PASSWORD_MAX + 1], hash[128];
	const char		*password = arg;
	size_t			 size = 0, len;
	ssize_t			 n;

	if (password == NULL && isatty(STDIN_FILENO)) {
		if (readpassphrase("Password: ", prompt, sizeof(prompt),
		    RPP_REQUIRE_TTY) == NULL)
			err(EXIT_USAGE, "cannot read the password");
		password = prompt;
	} else if (password == NULL) {
		if ((n = getline(&line, &size, stdin)) == -1) {
			if (ferror(stdin))
				err(EXIT_USAGE, "stdin");
			errx(EXIT_USAGE, "no password on standard input");
		}
		if (n > 0 && line[n - 1] == '\n')
			line[--n] = '\0';
		if (n > 0 && line[n - 1] == '\r')
			line[--n] = '\0';
		if (strlen(line) != (size_t)n)
			errx(EXIT_USAGE, "password contains a NUL byte");
		password = line;
	}
	len = strlen(password);
	if (len == 0)
		errx(EXIT_USAGE, "empty password");
	if (len >= AUTH_PASSWORD_MAX)
		errx(EXIT_USAGE, "password longer than %d bytes",
		    AUTH_PASSWORD_MAX - 1);
	if (len > BCRYPT_PASSWORD_MAX)
		warnx("only the first %d bytes of the password count",
		    BCRYPT_PASSWORD_MAX);

	if (compat_crypt_newhash(password, BCRYPT_COST, hash,
	    sizeof(hash)) == -1)
		err(EXIT_DAEMON_FAILURE, "bcrypt");
	if (json) {
		(void)printf("{\"hash\":");
		json_string(hash);
		(void)printf("}\n");
	} else
		(void)printf("%s\n", hash);

	explicit_bzero(prompt, sizeof(prompt));
	if (line != NULL) {
		explicit_bzero(line, size);
		free(line);
	}
	return (0);
}

/* A JSON string: quotes, backslashes and control characters escaped. */
static void
json_string(const char *s)
{
	json_string_len(s, strlen(s));
}

static void
json_string_len(const char *s, size_t len)
{
	const char	*end = s + len;
	unsigned char	 c;

	(void)putchar('"');
	for (; s < end && (c = (unsigned char)*s) != '\0'; s++) {
		if (c == '"' || c == '\\')
			(void)printf("\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			(void)printf("\\u%04x", c);
		else
			(void)putchar(c);
	}
	(void)putchar('"');
}
