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

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smarthostd.h"

#define CONTROL_MAX_CLIENTS	64

struct ctl_client {
	TAILQ_ENTRY(ctl_client)	 entry;
	uint32_t		 id;
	uid_t			 uid;
	int			 version_ok;
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
static void	 control_accept(int, short, void *);
static void	 control_accept_resume(int, short, void *);
static void	 control_client_event(int, short, void *);
static void	 control_client_update(struct ctl_client *);
static void	 control_client_close(struct ctl_client *, const char *);
static int	 control_client_request(struct ctl_client *, struct imsg *);
static int	 control_client_count(uid_t);
static struct ctl_client *control_client_find(uint32_t);

static const struct proc_handlers	 control_handlers = {
	.parent =	control_dispatch_parent
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
	struct ctl_client	*c;
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
	case IMSG_CTL_OK:
	case IMSG_CTL_FAIL:
	case IMSG_CTL_STATUS:
	case IMSG_CTL_STATUS_PROC:
	case IMSG_CTL_END:
		/* Answers to a client; it may have gone away meanwhile. */
		if ((c = control_client_find(imsg_get_id(imsg))) == NULL)
			break;
		if (imsg_compose(&c->ibuf, type, 0, 0, -1,
		    imsg->data, imsg_get_len(imsg)) == -1) {
			control_client_close(c, "cannot queue answer");
			break;
		}
		control_client_update(c);
		break;
	default:
		fatalx("unexpected imsg %u from parent", type);
	}
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
	struct imsgev	*parent = iev_peer[PROC_PARENT];
	uint32_t	 version, mine = CONTROL_VERSION;
	int		 verbose;

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

	switch (imsg_get_type(imsg)) {
	case IMSG_CTL_SHOW_STATUS:
		if (imsg_get_len(imsg) != 0)
			break;
		imsgev_compose(parent, IMSG_CTL_SHOW_STATUS, c->id, 0, -1,
		    NULL, 0);
		return (1);
	case IMSG_CTL_RELOAD:
		if (imsg_get_len(imsg) != 0)
			break;
		if (!control_client_privileged(c))
			return (control_client_fail(c, "permission denied"));
		log_info("reload requested by uid %u", (unsigned int)c->uid);
		imsgev_compose(parent, IMSG_CTL_RELOAD, c->id, 0, -1, NULL, 0);
		return (1);
	case IMSG_CTL_LOG_VERBOSE:
		if (imsg_get_data(imsg, &verbose, sizeof(verbose)) == -1 ||
		    verbose < 0 || verbose > 2)
			break;
		if (!control_client_privileged(c))
			return (control_client_fail(c, "permission denied"));
		imsgev_compose(parent, IMSG_CTL_LOG_VERBOSE, c->id, 0, -1,
		    &verbose, sizeof(verbose));
		return (1);
	}
	control_client_close(c, "bad request");
	return (0);
}
