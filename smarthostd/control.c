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
 * The control process: accepts smarthostctl connections on the control
 * socket the parent created, checks who is asking and what, and routes
 * each request to the process that owns the answer.  A client is never
 * trusted: anything malformed drops that client, never the daemon.
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <arpa/inet.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smarthostd.h"

#define CONTROL_MAX_CLIENTS	64
/* Answers waiting for a client that does not read: then it goes. */
#define CONTROL_CLIENT_QUEUED_MAX	65536

/* The longest string argument: a greylist tuple "client|helo|from|to". */
#define CONTROL_ARG_MAX		(2 * HOSTNAME_LEN + 2 * SMTP_ADDR_LEN)

struct ctl_client {
	TAILQ_ENTRY(ctl_client)	 entry;
	uint32_t		 id;
	uid_t			 uid;
	int			 version_ok;
	uint32_t		 waiting;	/* processes yet to answer */
	struct imsgbuf		 ibuf;
	struct event		 ev;
};
TAILQ_HEAD(, ctl_client)	 ctl_clients = TAILQ_HEAD_INITIALIZER(ctl_clients);

static struct event		 control_ev_accept;
static struct event		 control_ev_pause;
static int			 control_fd = -1;
static uint32_t			 control_next_id = 1;
static int			 control_nclients;

static void	 control_dispatch_parent(struct imsgev *, struct imsg *);
static void	 control_dispatch_peer(struct imsgev *, struct imsg *);
static void	 control_relay(enum smarthost_proc, struct imsg *);
static void	 control_accept(int, short, void *);
static void	 control_accept_resume(int, short, void *);
static void	 control_client_event(int, short, void *);
static void	 control_client_update(struct ctl_client *);
static void	 control_client_close(struct ctl_client *, const char *);
static int	 control_client_request(struct ctl_client *, struct imsg *);
static int	 control_client_forward(struct ctl_client *, uint32_t,
		    uint32_t, const void *, size_t);
static int	 control_client_string(struct imsg *, char *, size_t);
static int	 control_client_grey(struct ctl_client *, struct imsg *);
static int	 control_client_backup(struct ctl_client *, struct imsg *);
static int	 control_arg_ok(uint32_t, const char *);
static int	 control_client_count(uid_t);
static struct ctl_client *control_client_find(uint32_t);

static const struct proc_handlers	 control_handlers = {
	.parent =	control_dispatch_parent,
	.peer =		control_dispatch_peer
};

void
control_main(void)
{
	if (pledge("stdio unix recvfd", NULL) == -1)
		fatal("pledge");
	proc_child_run(&control_handlers);
}

static void
control_dispatch_parent(struct imsgev *iev, struct imsg *imsg)
{
	uint32_t		 type = imsg_get_type(imsg);

	(void)iev;
	switch (type) {
	case IMSG_PROC_CONTROL_SOCKET:
		imsg_expect_size(imsg, 0);
		if (control_fd != -1)
			fatalx("second control socket from parent");
		if ((control_fd = imsg_get_fd(imsg)) == -1)
			fatalx("no control socket from parent");
		event_set(&control_ev_accept, control_fd, EV_READ | EV_PERSIST,
		    control_accept, NULL);
		event_add(&control_ev_accept, NULL);
		evtimer_set(&control_ev_pause, control_accept_resume, NULL);
		break;
	default:
		control_relay(PROC_PARENT, imsg);
		break;
	}
}

static void
control_dispatch_peer(struct imsgev *iev, struct imsg *imsg)
{
	control_relay(iev->peer, imsg);
}

/*
 * An answer from the process that owns the data, for the client named
 * by the imsg id.  The client may have gone away meanwhile; a process
 * that answers what it was not asked, or with the wrong size, is a bug.
 * A request sent to several processes ends with one END to the client,
 * after the last of them has answered.
 */
static void
control_relay(enum smarthost_proc from, struct imsg *imsg)
{
	struct ctl_client	*c;
	uint32_t		 type = imsg_get_type(imsg), bit = 1U << from;
	size_t			 len = imsg_get_len(imsg);
	char			*text;
	int			 ok, last;

	switch (type) {
	case IMSG_CTL_OK:
	case IMSG_CTL_FAIL:
		ok = from == PROC_PARENT || from == PROC_SMTP ||
		    from == PROC_QUEUE || from == PROC_GREY;
		imsg_expect_size(imsg, sizeof(struct ctl_result));
		break;
	case IMSG_CTL_END:
		ok = from == PROC_PARENT || from == PROC_SMTP ||
		    from == PROC_QUEUE || from == PROC_GREY ||
		    from == PROC_SCAN || from == PROC_PF;
		imsg_expect_size(imsg, 0);
		break;
	case IMSG_CTL_STATUS:
		ok = from == PROC_PARENT;
		imsg_expect_size(imsg, sizeof(struct ctl_status));
		break;
	case IMSG_CTL_STATUS_PROC:
		ok = from == PROC_PARENT;
		imsg_expect_size(imsg, sizeof(struct ctl_proc_status));
		break;
	case IMSG_CTL_QUEUE_MESSAGE:
		ok = from == PROC_QUEUE;
		imsg_expect_size(imsg, sizeof(struct ctl_queue_message));
		break;
	case IMSG_CTL_QUEUE_RCPT:
		ok = from == PROC_QUEUE;
		imsg_expect_size(imsg, sizeof(struct ctl_queue_rcpt));
		break;
	case IMSG_CTL_MESSAGE_TEXT:
		ok = from == PROC_QUEUE;
		free(imsg_expect_string(imsg));
		break;
	case IMSG_CTL_STAT:
		ok = from == PROC_SMTP || from == PROC_QUEUE ||
		    from == PROC_GREY || from == PROC_SCAN;
		imsg_expect_size(imsg, sizeof(struct ctl_stat));
		break;
	case IMSG_CTL_GREY_ENTRY:
		ok = from == PROC_GREY;
		imsg_expect_size(imsg, sizeof(struct ctl_grey_entry));
		break;
	case IMSG_CTL_TABLE_INFO:
		ok = from == PROC_GREY || from == PROC_PF;
		imsg_expect_size(imsg, sizeof(struct ctl_table_info));
		break;
	case IMSG_CTL_TEXT:
		ok = from == PROC_GREY;
		free(imsg_expect_string(imsg));
		break;
	default:
		ok = 0;
		break;
	}
	if (!ok)
		fatalx("unexpected imsg %u from %s", type, proc_name(from));

	if ((c = control_client_find(imsg_get_id(imsg))) == NULL)
		return;
	if ((c->waiting & bit) == 0)
		fatalx("%s answered control client %u, which did not ask it",
		    proc_name(from), c->id);
	last = 0;
	if (type == IMSG_CTL_OK || type == IMSG_CTL_FAIL) {
		if (c->waiting != bit)
			fatalx("%s answered a request to several processes "
			    "with a result", proc_name(from));
		last = 1;
	} else if (type == IMSG_CTL_END)
		last = 1;
	if (last) {
		c->waiting &= ~bit;
		if (type == IMSG_CTL_END && c->waiting != 0)
			return;		/* the others' answers are to come */
	}
	text = len > 0 ? imsg->data : NULL;
	if (imsgbuf_queuelen(&c->ibuf) >= CONTROL_CLIENT_QUEUED_MAX) {
		control_client_close(c, "does not read its answers");
		return;
	}
	if (imsg_compose(&c->ibuf, type, 0, 0, -1, text, len) == -1) {
		control_client_close(c, "cannot queue answer");
		return;
	}
	control_client_update(c);
}

static void
control_accept_resume(int fd, short event, void *arg)
{
	(void)fd;
	(void)event;
	(void)arg;
	event_add(&control_ev_accept, NULL);
}

static void
control_accept(int fd, short event, void *arg)
{
	struct timeval		 pause = { 1, 0 };
	struct ctl_client	*c;
	uid_t			 uid;
	gid_t			 gid;
	int			 s;

	(void)event;
	(void)arg;
	if ((s = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) == -1) {
		if (errno == ENFILE || errno == EMFILE) {
			/* Out of descriptors: back off instead of spinning. */
			event_del(&control_ev_accept);
			evtimer_add(&control_ev_pause, &pause);
		} else if (errno != EINTR && errno != EAGAIN &&
		    errno != ECONNABORTED)
			log_warn("accept");
		return;
	}
	if (getpeereid(s, &uid, &gid) == -1) {
		log_warn("getpeereid");
		(void)close(s);
		return;
	}
	if (control_nclients >= CONTROL_MAX_CLIENTS ||
	    control_client_count(uid) >= CONTROL_MAX_CLIENTS_PER_UID) {
		log_warnx("refusing control client uid %u: too many "
		    "connections", (unsigned int)uid);
		(void)close(s);
		return;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		log_warn("control client");
		(void)close(s);
		return;
	}
	if (imsgbuf_init(&c->ibuf, s) == -1) {
		log_warn("control client");
		(void)close(s);
		free(c);
		return;
	}
	c->id = control_next_id++;
	if (control_next_id == 0)
		control_next_id = 1;
	c->uid = uid;
	event_set(&c->ev, s, EV_READ, control_client_event, c);
	event_add(&c->ev, NULL);
	TAILQ_INSERT_TAIL(&ctl_clients, c, entry);
	control_nclients++;
	log_debug("control client %u connected, uid %u", c->id,
	    (unsigned int)uid);
}

static int
control_client_count(uid_t uid)
{
	struct ctl_client	*c;
	int			 n = 0;

	TAILQ_FOREACH(c, &ctl_clients, entry)
		if (c->uid == uid)
			n++;
	return (n);
}

static struct ctl_client *
control_client_find(uint32_t id)
{
	struct ctl_client	*c;

	TAILQ_FOREACH(c, &ctl_clients, entry)
		if (c->id == id)
			return (c);
	return (NULL);
}

static void
control_client_close(struct ctl_client *c, const char *why)
{
	if (why != NULL)
		log_warnx("control client %u (uid %u) dropped: %s", c->id,
		    (unsigned int)c->uid, why);
	event_del(&c->ev);
	(void)close(c->ibuf.fd);
	imsgbuf_clear(&c->ibuf);
	TAILQ_REMOVE(&ctl_clients, c, entry);
	control_nclients--;
	free(c);
}

static void
control_client_update(struct ctl_client *c)
{
	short	 events = EV_READ;

	if (imsgbuf_queuelen(&c->ibuf) > 0)
		events |= EV_WRITE;
	event_del(&c->ev);
	event_set(&c->ev, c->ibuf.fd, events, control_client_event, c);
	event_add(&c->ev, NULL);
}

static void
control_client_event(int fd, short event, void *arg)
{
	struct ctl_client	*c = arg;
	struct imsg		 imsg;
	ssize_t			 n;
	int			 keep;

	(void)fd;
	if (event & EV_WRITE) {
		if (imsgbuf_write(&c->ibuf) == -1) {
			control_client_close(c, NULL);
			return;
		}
	}
	if (event & EV_READ) {
		switch (imsgbuf_read(&c->ibuf)) {
		case -1:
		case 0:
			control_client_close(c, NULL);
			return;
		}
		for (;;) {
			if ((n = imsg_get(&c->ibuf, &imsg)) == -1) {
				control_client_close(c, "malformed message");
				return;
			}
			if (n == 0)
				break;
			keep = control_client_request(c, &imsg);
			imsg_free(&imsg);
			if (!keep)
				return;
		}
	}
	control_client_update(c);
}

/*
 * Requests that change the daemon need root, or the user the daemon
 * runs as when it was started without root.
 */
static int
control_client_privileged(struct ctl_client *c)
{
	return (c->uid == 0 || c->uid == getuid());
}

/* Returns 0 when the client had to be closed. */
static int
control_client_fail(struct ctl_client *c, const char *message)
{
	struct ctl_result	 res;

	memset(&res, 0, sizeof(res));
	(void)strlcpy(res.message, message, sizeof(res.message));
	if (imsg_compose(&c->ibuf, IMSG_CTL_FAIL, 0, 0, -1, &res,
	    sizeof(res)) == -1) {
		control_client_close(c, "cannot queue answer");
		return (0);
	}
	return (1);
}

/*
 * Handle one request.  Returns 0 when the client was closed.
 */
static int
control_client_request(struct ctl_client *c, struct imsg *imsg)
{
	uint32_t	 version, mine = CONTROL_VERSION;
	uint32_t	 type = imsg_get_type(imsg);
	char		 arg[QUEUE_ID_LEN];
	int		 verbose, smtp;

	if (!c->version_ok) {
		if (imsg_get_type(imsg) != IMSG_CTL_VERSION ||
		    imsg_get_data(imsg, &version, sizeof(version)) == -1) {
			control_client_close(c, "no version handshake");
			return (0);
		}
		(void)imsg_compose(&c->ibuf, IMSG_CTL_VERSION, 0, 0, -1,
		    &mine, sizeof(mine));
		if (version != CONTROL_VERSION) {
			/* Let the client read our version, then hang up. */
			(void)imsgbuf_flush(&c->ibuf);
			control_client_close(c, "control protocol version "
			    "differs");
			return (0);
		}
		c->version_ok = 1;
		return (1);
	}

	/* One request at a time: answers carry no request number. */
	if (c->waiting != 0) {
		control_client_close(c, "request before the last was answered");
		return (0);
	}

	switch (type) {
	case IMSG_CTL_SHOW_STATUS:
		if (imsg_get_len(imsg) != 0)
			break;
		return (control_client_forward(c, 1U << PROC_PARENT, type,
		    NULL, 0));
	case IMSG_CTL_RELOAD:
		if (imsg_get_len(imsg) != 0)
			break;
		if (!control_client_privileged(c))
			return (control_client_fail(c, "permission denied"));
		log_info("reload requested by uid %u", (unsigned int)c->uid);
		return (control_client_forward(c, 1U << PROC_PARENT, type,
		    NULL, 0));
	case IMSG_CTL_LOG_VERBOSE:
		if (imsg_get_data(imsg, &verbose, sizeof(verbose)) == -1 ||
		    verbose < 0 || verbose > 2)
			break;
		if (!control_client_privileged(c))
			return (control_client_fail(c, "permission denied"));
		return (control_client_forward(c, 1U << PROC_PARENT, type,
		    &verbose, sizeof(verbose)));
	case IMSG_CTL_SHOW_QUEUE:
	case IMSG_CTL_SHOW_QUARANTINE:
		if (imsg_get_len(imsg) != 0)
			break;
		return (control_client_forward(c, 1U << PROC_QUEUE, type,
		    NULL, 0));
	case IMSG_CTL_SHOW_MESSAGE:
		if (control_client_string(imsg, arg, sizeof(arg)) == -1)
			break;
		if (!envelope_id_valid(arg))
			return (control_client_fail(c, "invalid message id"));
		return (control_client_forward(c, 1U << PROC_QUEUE, type,
		    arg, strlen(arg) + 1));
	case IMSG_CTL_REMOVE:
	case IMSG_CTL_SCHEDULE:
	case IMSG_CTL_QUARANTINE_RELEASE:
	case IMSG_CTL_QUARANTINE_DELETE:
		if (control_client_string(imsg, arg, sizeof(arg)) == -1)
			break;
		/* The quarantine's commands take one message, never all. */
		if (!envelope_id_valid(arg) && (strcmp(arg, "all") != 0 ||
		    type == IMSG_CTL_QUARANTINE_RELEASE ||
		    type == IMSG_CTL_QUARANTINE_DELETE))
			return (control_client_fail(c, "invalid message id"));
		if (!control_client_privileged(c))
			return (control_client_fail(c, "permission denied"));
		log_info("%s %s requested by uid %u",
		    type == IMSG_CTL_REMOVE ? "remove" :
		    type == IMSG_CTL_SCHEDULE ? "schedule" :
		    type == IMSG_CTL_QUARANTINE_RELEASE ?
		    "quarantine release" : "quarantine delete", arg,
		    (unsigned int)c->uid);
		return (control_client_forward(c, 1U << PROC_QUEUE, type,
		    arg, strlen(arg) + 1));
	case IMSG_CTL_SHOW_STATS:
		if (imsg_get_len(imsg) != 0)
			break;
		return (control_client_forward(c, 1U << PROC_SMTP |
		    1U << PROC_GREY | 1U << PROC_QUEUE | 1U << PROC_SCAN, type,
		    NULL, 0));
	case IMSG_CTL_PAUSE_SMTP:
	case IMSG_CTL_RESUME_SMTP:
	case IMSG_CTL_PAUSE_RELAY:
	case IMSG_CTL_RESUME_RELAY:
		if (imsg_get_len(imsg) != 0)
			break;
		if (!control_client_privileged(c))
			return (control_client_fail(c, "permission denied"));
		smtp = type == IMSG_CTL_PAUSE_SMTP ||
		    type == IMSG_CTL_RESUME_SMTP;
		log_info("%s %s requested by uid %u",
		    type == IMSG_CTL_PAUSE_SMTP || type == IMSG_CTL_PAUSE_RELAY ?
		    "pause" : "resume", smtp ? "smtp" : "relay",
		    (unsigned int)c->uid);
		return (control_client_forward(c, 1U << (smtp ? PROC_SMTP :
		    PROC_QUEUE), type, NULL, 0));
	case IMSG_CTL_BACKUP:
		return (control_client_backup(c, imsg));
	case IMSG_CTL_SHOW_GREYLIST:
	case IMSG_CTL_SHOW_TABLES:
	case IMSG_CTL_GREY_WHITE:
	case IMSG_CTL_GREY_DELETE:
	case IMSG_CTL_TRAP_ADD:
	case IMSG_CTL_TRAP_DELETE:
	case IMSG_CTL_UPDATE_TABLE:
	case IMSG_CTL_EXPLAIN:
		return (control_client_grey(c, imsg));
	}
	control_client_close(c, "bad request");
	return (0);
}

/*
 * The requests about greylisting and lists.  grey answers them, except
 * update table, which the parent answers: it alone can read the files
 * and the configuration.  Returns 0 when the client was closed.
 */
static int
control_client_grey(struct ctl_client *c, struct imsg *imsg)
{
	enum smarthost_proc	 to = PROC_GREY;
	uint32_t		 type = imsg_get_type(imsg);
	char			 arg[CONTROL_ARG_MAX];
	int			 kind;

	switch (type) {
	case IMSG_CTL_SHOW_GREYLIST:
		if (imsg_get_data(imsg, &kind, sizeof(kind)) == -1 ||
		    kind < GREY_LIST_ALL || kind > GREY_LIST_BLOCK)
			break;
		return (control_client_forward(c, 1U << PROC_GREY, type,
		    &kind, sizeof(kind)));
	case IMSG_CTL_SHOW_TABLES:
		/* grey answers with its lists, pf with the firewall's tables. */
		if (imsg_get_len(imsg) != 0)
			break;
		return (control_client_forward(c, 1U << PROC_GREY |
		    1U << PROC_PF, type, NULL, 0));
	default:
		if (control_client_string(imsg, arg, sizeof(arg)) == -1)
			break;
		if (!control_arg_ok(type, arg))
			return (control_client_fail(c, "invalid argument"));
		if (type == IMSG_CTL_EXPLAIN)
			return (control_client_forward(c, 1U << PROC_GREY,
			    type, arg, strlen(arg) + 1));
		if (!control_client_privileged(c))
			return (control_client_fail(c, "permission denied"));
		if (type == IMSG_CTL_UPDATE_TABLE)
			to = PROC_PARENT;
		log_info("%s %s requested by uid %u",
		    type == IMSG_CTL_GREY_WHITE ? "greylist white" :
		    type == IMSG_CTL_GREY_DELETE ? "greylist delete" :
		    type == IMSG_CTL_TRAP_ADD ? "trap add" :
		    type == IMSG_CTL_TRAP_DELETE ? "trap delete" :
		    "update table", arg, (unsigned int)c->uid);
		return (control_client_forward(c, 1U << to, type, arg,
		    strlen(arg) + 1));
	}
	control_client_close(c, "bad request");
	return (0);
}

/*
 * backup FILE: the parent writes the archive, as root, where the client
 * says, so only a privileged client may ask.  The path is absolute
 * (smarthostctl resolves it) and printable, for the log.
 */
static int
control_client_backup(struct ctl_client *c, struct imsg *imsg)
{
	char		 path[PATH_MAX];
	const char	*p;

	if (control_client_string(imsg, path, sizeof(path)) == -1) {
		control_client_close(c, "bad request");
		return (0);
	}
	if (path[0] != '/')
		return (control_client_fail(c, "the archive path must be "
		    "absolute"));
	for (p = path; *p != '\0'; p++)
		if (*p < ' ' || *p > '~')
			return (control_client_fail(c, "invalid argument"));
	if (!control_client_privileged(c))
		return (control_client_fail(c, "permission denied"));
	log_info("backup to %s requested by uid %u", path,
	    (unsigned int)c->uid);
	return (control_client_forward(c, 1U << PROC_PARENT, IMSG_CTL_BACKUP,
	    path, strlen(path) + 1));
}

/*
 * The argument's shape, checked here so that grey and the parent see
 * only what smarthostctl would send; what it names is theirs to judge.
 * Text goes into the log, so it must be printable and without spaces.
 */
static int
control_arg_ok(uint32_t type, const char *arg)
{
	unsigned char	 buf[sizeof(struct in6_addr)];
	const char	*p;

	if (*arg == '\0')
		return (0);
	for (p = arg; *p != '\0'; p++)
		if (*p <= ' ' || *p > '~')
			return (0);
	switch (type) {
	case IMSG_CTL_GREY_WHITE:
	case IMSG_CTL_EXPLAIN:
		return (inet_pton(AF_INET, arg, buf) == 1 ||
		    inet_pton(AF_INET6, arg, buf) == 1);
	case IMSG_CTL_TRAP_ADD:
	case IMSG_CTL_TRAP_DELETE:
		return (strchr(arg, '@') != NULL &&
		    strlen(arg) < SMTP_ADDR_LEN);
	case IMSG_CTL_UPDATE_TABLE:
		return (strlen(arg) < NAME_MAX_LEN && strchr(arg, '/') == NULL);
	default:
		return (1);
	}
}

/*
 * Pass a request on to the processes in the mask, which will answer with
 * the client's id.  Returns 0 when the client had to be closed.
 */
static int
control_client_forward(struct ctl_client *c, uint32_t procs, uint32_t type,
    const void *data, size_t len)
{
	enum smarthost_proc	 p;

	for (p = PROC_PARENT; p < PROC_MAX; p++)
		if ((procs & 1U << p) != 0 && (iev_peer[p] == NULL ||
		    iev_peer[p]->ibuf.fd == -1))
			return (control_client_fail(c, "the process that "
			    "would answer is not available"));
	for (p = PROC_PARENT; p < PROC_MAX; p++) {
		if ((procs & 1U << p) == 0)
			continue;
		if (imsgev_compose(iev_peer[p], type, c->id, 0, -1, data,
		    len) == -1)
			fatal("request to %s", proc_name(p));
		c->waiting |= 1U << p;
	}
	return (1);
}

/* A NUL-terminated string argument that fits buf, or -1. */
static int
control_client_string(struct imsg *imsg, char *buf, size_t size)
{
	size_t	 len = imsg_get_len(imsg);

	if (len == 0 || len > size ||
	    imsg_get_data(imsg, buf, len) == -1 ||
	    buf[len - 1] != '\0' || strlen(buf) != len - 1)
		return (-1);
	return (0);
}

