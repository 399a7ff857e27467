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
 * Process plumbing shared by the parent and the children: the process
 * table, who may talk to whom, re-exec of a child, privilege dropping,
 * and the imsg event glue.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "smarthostd.h"

struct imsgev		*iev_peer[PROC_MAX];
int			 proc_exit_deferred;

static const char	*proc_names[PROC_MAX] = {
	[PROC_PARENT] =		"parent",
	[PROC_SMTP] =		"smtp",
	[PROC_GREY] =		"grey",
	[PROC_SCAN] =		"scan",
	[PROC_QUEUE] =		"queue",
	[PROC_PF] =		"pf",
	[PROC_CONTROL] =	"control"
};

/*
 * The pairs of children that get a socketpair (design.md section 4).
 * Everybody talks to the parent; nobody else talks without a reason.
 */
static const struct {
	enum smarthost_proc	 a, b;
} proc_links[] = {
	{ PROC_SMTP,	PROC_GREY },
	{ PROC_SMTP,	PROC_SCAN },
	{ PROC_SMTP,	PROC_QUEUE },
	{ PROC_GREY,	PROC_PF },
	{ PROC_GREY,	PROC_QUEUE },
	{ PROC_CONTROL,	PROC_SMTP },
	{ PROC_CONTROL,	PROC_GREY },
	{ PROC_CONTROL,	PROC_SCAN },
	{ PROC_CONTROL,	PROC_QUEUE },
	{ PROC_CONTROL,	PROC_PF }
};

static const struct proc_handlers	*child_handlers;
static struct smarthost_config		*child_pending;
static struct imsgev			 child_parent;
static struct event			 child_ev_sigterm;
static struct event			 child_ev_sigint;
static struct event			 child_ev_sighup;

static void	 imsgev_dispatch(int, short, void *);
static void	 proc_child_sig(int, short, void *);
static void	 proc_child_peer_fd(struct imsg *);
static void	 proc_child_conf(struct imsgev *, struct imsg *);
static void	 proc_child_dispatch_peer(struct imsgev *, struct imsg *);

const char *
proc_name(enum smarthost_proc proc)
{
	if (proc >= PROC_MAX)
		return ("unknown");
	return (proc_names[proc]);
}

int
proc_from_name(const char *name)
{
	int	 i;

	for (i = 0; i < PROC_MAX; i++)
		if (strcmp(proc_names[i], name) == 0)
			return (i);
	return (-1);
}

int
proc_talks_to(enum smarthost_proc a, enum smarthost_proc b)
{
	size_t	 i;

	if (a == PROC_PARENT || b == PROC_PARENT)
		return (a != b);
	for (i = 0; i < sizeof(proc_links) / sizeof(proc_links[0]); i++)
		if ((proc_links[i].a == a && proc_links[i].b == b) ||
		    (proc_links[i].a == b && proc_links[i].b == a))
			return (1);
	return (0);
}

int
proc_link_count(void)
{
	return (sizeof(proc_links) / sizeof(proc_links[0]));
}

void
proc_link(int i, enum smarthost_proc *a, enum smarthost_proc *b)
{
	*a = proc_links[i].a;
	*b = proc_links[i].b;
}

/*
 * Fork and re-exec ourselves as the given child, so that every process
 * starts from a fresh address space with nothing of the parent's memory
 * (the configuration with its secrets included).  The child finds its
 * parent socket on PROC_PARENT_FD.
 */
pid_t
proc_exec_child(enum smarthost_proc proc, const char *path, int fd,
    int debug, int verbose, const char *user, const char *chroot_dir)
{
	char	*argv[16];
	int	 argc = 0, i;
	pid_t	 pid;

	argv[argc++] = (char *)(uintptr_t)path;
	argv[argc++] = (char *)(uintptr_t)"-P";
	argv[argc++] = (char *)(uintptr_t)proc_name(proc);
	if (user != NULL) {
		argv[argc++] = (char *)(uintptr_t)"-u";
		argv[argc++] = (char *)(uintptr_t)user;
	}
	if (chroot_dir != NULL) {
		argv[argc++] = (char *)(uintptr_t)"-c";
		argv[argc++] = (char *)(uintptr_t)chroot_dir;
	}
	if (debug)
		argv[argc++] = (char *)(uintptr_t)"-d";
	for (i = 0; i < verbose && i < 2; i++)
		argv[argc++] = (char *)(uintptr_t)"-v";
	argv[argc] = NULL;

	switch (pid = fork()) {
	case -1:
		fatal("fork");
	case 0:
		break;
	default:
		return (pid);
	}

	if (fd != PROC_PARENT_FD) {
		if (dup2(fd, PROC_PARENT_FD) == -1)
			fatal("dup2");
	} else if (fcntl(fd, F_SETFD, 0) == -1)
		fatal("fcntl");
	closefrom(PROC_PARENT_FD + 1);
	execv(path, argv);
	fatal("execv %s", path);
}

/*
 * Drop privileges in the order design.md gives: chroot, chdir, groups,
 * gids, uids; then forbid regaining any.  Without root this is a no-op:
 * the parent has already said, once, that privilege separation is off.
 * keep_net_admin keeps the one capability the pf process needs to
 * change firewall tables (Linux; elsewhere it keeps the descriptors
 * opened before, and nothing else).
 */
void
proc_drop_privileges(const char *user, const char *chroot_dir,
    int keep_net_admin)
{
	struct passwd	*pw;
	int		 rc = 0;

	if (geteuid() != 0 || user == NULL) {
		if (compat_no_new_privs() == -1)
			fatal("no_new_privs");
		return;
	}
	if ((pw = getpwnam(user)) == NULL)
		fatalx("user %s does not exist", user);
	if (chroot_dir != NULL) {
		if (chroot(chroot_dir) == -1)
			fatal("chroot %s", chroot_dir);
		if (chdir("/") == -1)
			fatal("chdir /");
	}
	if (keep_net_admin && compat_caps_keep() == -1)
		fatal("cannot keep capabilities across setresuid");
	if (setgroups(1, &pw->pw_gid) == -1 ||
	    setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) == -1 ||
	    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) == -1)
		fatal("cannot drop privileges to %s", user);
	if (keep_net_admin && (rc = compat_caps_net_admin_only()) == -1)
		fatal("cannot keep only CAP_NET_ADMIN");
	if (keep_net_admin && rc == 1)
		log_warnx("no CAP_NET_ADMIN to keep (a container, or a "
		    "service without it): firewall tables cannot be changed");
	if (compat_no_new_privs() == -1)
		fatal("no_new_privs");
}

int
proc_privsep(void)
{
	return (geteuid() == 0);
}

/*
 * Child side.
 */

void
proc_child_start(enum smarthost_proc proc, const char *user,
    const char *chroot_dir)
{
	struct stat	 sb;

	smarthost_process = proc;
	log_procinit(proc_name(proc));
	setproctitle("%s", proc_name(proc));

	if (fstat(PROC_PARENT_FD, &sb) == -1 || !S_ISSOCK(sb.st_mode))
		fatalx("not started by the smarthostd parent");
	/*
	 * closefrom() would take syslog's socket from under libc, which
	 * would later close whatever took its number (an LMDB file), and
	 * nothing logged after the chroot would arrive: close it first,
	 * and open it again while /dev/log is still in sight.
	 */
	if (!log_on_stderr())
		closelog();
	closefrom(PROC_PARENT_FD + 1);
	if (!log_on_stderr())
		log_init(0, LOG_MAIL);

	/* pf opens its firewall handle as root first (pfctl_main). */
	if (proc != PROC_PF)
		proc_drop_privileges(user, chroot_dir, 0);

	switch (proc) {
	case PROC_SMTP:
		smtp_main();
		break;
	case PROC_GREY:
		grey_main();
		break;
	case PROC_SCAN:
		scan_main();
		break;
	case PROC_QUEUE:
		queue_main();
		break;
	case PROC_PF:
		pfctl_main(user, chroot_dir);
		break;
	case PROC_CONTROL:
		control_main();
		break;
	default:
		fatalx("bad process %d", proc);
	}
	fatalx("process main returned");
}

/*
 * Run a child's event loop.  The parent socket, peer sockets handed over
 * by the parent, the two-phase configuration and the signals are handled
 * here; everything else goes to the process's own handlers.
 */
void
proc_child_run(const struct proc_handlers *handlers)
{
	child_handlers = handlers;
	event_init();

	signal(SIGPIPE, SIG_IGN);
	signal_set(&child_ev_sigterm, SIGTERM, proc_child_sig, NULL);
	signal_set(&child_ev_sigint, SIGINT, proc_child_sig, NULL);
	signal_set(&child_ev_sighup, SIGHUP, proc_child_sig, NULL);
	signal_add(&child_ev_sigterm, NULL);
	signal_add(&child_ev_sigint, NULL);
	signal_add(&child_ev_sighup, NULL);

	imsgev_init(&child_parent, PROC_PARENT_FD, PROC_PARENT,
	    proc_child_dispatch_parent);
	imsgbuf_allow_fdpass(&child_parent.ibuf);
	iev_peer[PROC_PARENT] = &child_parent;

	(void)event_dispatch();
	fatalx("event loop ended");
}

static void
proc_child_sig(int sig, short event, void *arg)
{
	(void)event;
	(void)arg;
	switch (sig) {
	case SIGTERM:
		log_debug("terminating");
		if (child_handlers->shutdown != NULL)
			child_handlers->shutdown();
		/* A process with work to finish exits by itself later. */
		if (!proc_exit_deferred)
			exit(0);
		break;
	case SIGINT:
	case SIGHUP:
		/* The parent handles these for the whole daemon. */
		break;
	}
}

void
proc_child_dispatch_parent(struct imsgev *iev, struct imsg *imsg)
{
	int	 verbose;

	if (imsg == NULL) {
		/* The parent is gone: so are we, quietly and at once. */
		exit(0);
	}
	switch (imsg_get_type(imsg)) {
	case IMSG_PROC_PEER:
		proc_child_peer_fd(imsg);
		break;
	case IMSG_CTL_LOG_VERBOSE:
		imsg_expect_size(imsg, sizeof(verbose));
		(void)imsg_get_data(imsg, &verbose, sizeof(verbose));
		log_setverbose(verbose);
		break;
	case IMSG_CONF_START:
	case IMSG_CONF_GLOBALS:
	case IMSG_CONF_TABLE:
	case IMSG_CONF_TABLE_ENTRY:
	case IMSG_CONF_PKI:
	case IMSG_CONF_PKI_CERT:
	case IMSG_CONF_PKI_KEY:
	case IMSG_CONF_LISTENER:
	case IMSG_CONF_BLOCKLIST:
	case IMSG_CONF_DNSBL:
	case IMSG_CONF_BANNED_FILE:
	case IMSG_CONF_ACTION:
	case IMSG_CONF_ACTION_CA:
	case IMSG_CONF_MATCH:
	case IMSG_CONF_END:
	case IMSG_CONF_COMMIT:
	case IMSG_CONF_ABORT:
		proc_child_conf(iev, imsg);
		break;
	default:
		if (child_handlers->parent == NULL)
			fatalx("unexpected imsg %u from parent",
			    imsg_get_type(imsg));
		child_handlers->parent(iev, imsg);
	}
}

static void
proc_child_conf(struct imsgev *iev, struct imsg *imsg)
{
	struct smarthost_config	*old;
	char			 reason[MESSAGE_LEN];

	switch (imsg_get_type(imsg)) {
	case IMSG_CONF_COMMIT:
		imsg_expect_size(imsg, 0);
		if (child_pending == NULL)
			fatalx("configuration commit without a configuration");
		old = env;
		env = child_pending;
		child_pending = NULL;
		if (child_handlers->config_commit != NULL)
			child_handlers->config_commit(old);
		config_free(old);
		log_debug("configuration committed");
		break;
	case IMSG_CONF_ABORT:
		imsg_expect_size(imsg, 0);
		config_free(child_pending);
		child_pending = NULL;
		log_debug("configuration aborted");
		break;
	default:
		if (config_recv(&child_pending, imsg) == 0)
			break;
		/* The configuration is complete: can we take it? */
		reason[0] = '\0';
		if (child_handlers->config_check != NULL &&
		    child_handlers->config_check(child_pending, reason,
		    sizeof(reason)) == -1) {
			log_warnx("configuration refused: %s", reason);
			config_free(child_pending);
			child_pending = NULL;
			imsgev_compose(iev, IMSG_CONF_FAILED, 0, 0, -1,
			    reason, strlen(reason) + 1);
			break;
		}
		imsgev_compose(iev, IMSG_CONF_READY, 0, 0, -1, NULL, 0);
		break;
	}
}

static void
proc_child_peer_fd(struct imsg *imsg)
{
	struct imsgev	*iev;
	uint32_t	 peer;
	int		 fd;

	imsg_expect_size(imsg, sizeof(peer));
	(void)imsg_get_data(imsg, &peer, sizeof(peer));
	if (peer >= PROC_MAX || !proc_talks_to(smarthost_process, peer))
		fatalx("parent sent a socket for %s, which we never talk to",
		    proc_name(peer));
	if (iev_peer[peer] != NULL)
		fatalx("parent sent a second socket for %s", proc_name(peer));
	if ((fd = imsg_get_fd(imsg)) == -1)
		fatalx("parent sent no socket for %s", proc_name(peer));
	if ((iev = calloc(1, sizeof(*iev))) == NULL)
		fatal(NULL);
	imsgev_init(iev, fd, peer, proc_child_dispatch_peer);
	/*
	 * Message bodies reach the scan process and the queue as
	 * descriptors, and only there; their envelopes, with up to 10000
	 * recipients, may be larger than any other message between our
	 * processes.
	 */
	if ((smarthost_process == PROC_QUEUE ||
	    smarthost_process == PROC_SCAN) && peer == PROC_SMTP)
		imsgbuf_allow_fdpass(&iev->ibuf);
	if ((smarthost_process == PROC_QUEUE && peer == PROC_SMTP) ||
	    (smarthost_process == PROC_SMTP && peer == PROC_QUEUE))
		if (imsgbuf_set_maxsize(&iev->ibuf, PROC_ENVELOPE_MAXSIZE) == -1)
			fatal("imsgbuf_set_maxsize");
	iev_peer[peer] = iev;
	log_debug("connected to %s", proc_name(peer));
	if (child_handlers->peer_up != NULL)
		child_handlers->peer_up(peer);
}

/*
 * A peer that goes away has died, and the parent, which sees that too,
 * will shut the daemon down.  Waiting for that, instead of exiting here,
 * keeps the log's account of who died first true.
 */
static void
proc_child_dispatch_peer(struct imsgev *iev, struct imsg *imsg)
{
	if (imsg == NULL) {
		log_debug("lost connection to %s; waiting for the parent",
		    proc_name(iev->peer));
		imsgev_clear(iev);
		if (child_handlers->peer_lost != NULL)
			child_handlers->peer_lost(iev->peer);
		return;
	}
	if (child_handlers->peer == NULL)
		fatalx("unexpected imsg %u from %s", imsg_get_type(imsg),
		    proc_name(iev->peer));
	child_handlers->peer(iev, imsg);
}

/*
 * imsg and libevent glue.
 */

void
imsgev_init(struct imsgev *iev, int fd, enum smarthost_proc peer,
    void (*handler)(struct imsgev *, struct imsg *))
{
	if (imsgbuf_init(&iev->ibuf, fd) == -1 ||
	    imsgbuf_set_maxsize(&iev->ibuf, PROC_IMSG_MAXSIZE) == -1)
		fatal("imsgbuf_init");
	iev->peer = peer;
	iev->handler = handler;
	event_set(&iev->ev, fd, EV_READ, imsgev_dispatch, iev);
	event_add(&iev->ev, NULL);
}

void
imsgev_update(struct imsgev *iev)
{
	short	 events = EV_READ;

	if (imsgbuf_queuelen(&iev->ibuf) > 0)
		events |= EV_WRITE;
	event_del(&iev->ev);
	event_set(&iev->ev, iev->ibuf.fd, events, imsgev_dispatch, iev);
	event_add(&iev->ev, NULL);
}

int
imsgev_compose(struct imsgev *iev, uint32_t type, uint32_t id, pid_t pid,
    int fd, const void *data, size_t len)
{
	int	 ret;

	if (iev->ibuf.fd == -1) {
		/* The peer is gone; its death is being handled. */
		if (fd != -1)
			(void)close(fd);
		errno = EPIPE;
		return (-1);
	}
	/* The descriptor is the message's, sent or not. */
	if ((ret = imsg_compose(&iev->ibuf, type, id, pid, fd, data,
	    len)) != -1)
		imsgev_update(iev);
	else if (fd != -1)
		(void)close(fd);
	return (ret);
}

void
imsgev_clear(struct imsgev *iev)
{
	event_del(&iev->ev);
	imsgbuf_clear(&iev->ibuf);
	(void)close(iev->ibuf.fd);
	iev->ibuf.fd = -1;
}

/*
 * Read, write and hand every complete message to the handler.  EOF or a
 * broken socket is reported to the handler as a NULL message; a peer
 * process that sends garbage is a bug we do not survive.
 */
static void
imsgev_dispatch(int fd, short event, void *arg)
{
	struct imsgev	*iev = arg;
	struct imsg	 imsg;
	ssize_t		 n;

	(void)fd;
	if (event & EV_WRITE) {
		if (imsgbuf_write(&iev->ibuf) == -1) {
			if (errno != EPIPE)
				log_warn("write to %s", proc_name(iev->peer));
			iev->handler(iev, NULL);
			return;
		}
	}
	if (event & EV_READ) {
		switch (imsgbuf_read(&iev->ibuf)) {
		case -1:
			if (errno != ECONNRESET)
				log_warn("read from %s", proc_name(iev->peer));
			/* FALLTHROUGH */
		case 0:
			iev->handler(iev, NULL);
			return;
		}
		for (;;) {
			if ((n = imsg_get(&iev->ibuf, &imsg)) == -1)
				fatal("bad imsg from %s", proc_name(iev->peer));
			if (n == 0)
				break;
			iev->handler(iev, &imsg);
			imsg_free(&imsg);
		}
	}
	imsgev_update(iev);
}

/*
 * Payload checks for messages between our own processes: a mismatch is
 * a bug or a compromised peer, and either way we stop.
 */
void
imsg_expect_size(struct imsg *imsg, size_t size)
{
	if (imsg_get_len(imsg) != size)
		fatalx("imsg %u: payload of %zu bytes, expected %zu",
		    imsg_get_type(imsg), imsg_get_len(imsg), size);
}

char *
imsg_expect_string(struct imsg *imsg)
{
	char	*s;
	size_t	 len = imsg_get_len(imsg);

	if (len == 0)
		fatalx("imsg %u: empty string", imsg_get_type(imsg));
	if ((s = malloc(len)) == NULL)
		fatal(NULL);
	(void)imsg_get_data(imsg, s, len);
	if (s[len - 1] != '\0' || strlen(s) != len - 1)
		fatalx("imsg %u: malformed string", imsg_get_type(imsg));
	return (s);
}

/* An answer to control, for its client's request id. */
void
proc_ctl_send(uint32_t client, uint32_t type, const void *data, size_t len)
{
	if (iev_peer[PROC_CONTROL] == NULL ||
	    imsgev_compose(iev_peer[PROC_CONTROL], type, client, 0, -1, data,
	    len) == -1)
		log_warnx("cannot answer control");
}

/* The final answer to a control command: ok or not, and a message. */
void
proc_ctl_result(uint32_t client, int ok, const char *fmt, ...)
{
	struct ctl_result	 res;
	va_list			 ap;

	memset(&res, 0, sizeof(res));
	res.ok = ok;
	va_start(ap, fmt);
	(void)vsnprintf(res.message, sizeof(res.message), fmt, ap);
	va_end(ap);
	proc_ctl_send(client, ok ? IMSG_CTL_OK : IMSG_CTL_FAIL, &res,
	    sizeof(res));
}

/*
 * One counter of show stats to control for client, named after this
 * process ("grey.checks").
 */
void
proc_ctl_stat(uint32_t client, const char *name, uint64_t value)
{
	struct ctl_stat	 st;

	memset(&st, 0, sizeof(st));
	(void)snprintf(st.name, sizeof(st.name), "%s.%s",
	    proc_name(smarthost_process), name);
	st.value = value;
	proc_ctl_send(client, IMSG_CTL_STAT, &st, sizeof(st));
}
