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
 * The parent: parses the configuration, starts and supervises the
 * children, hands them their sockets and configuration, and coordinates
 * reloads.  It never touches network input.
 */

#include <sys/types.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <pwd.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "smarthostd.h"

#define LISTEN_BACKLOG		1024	/* OpenSMTPD's 5 drops connections */
#define BOUND_MAX		64

#define CONFIG_ANSWER_TIMEOUT	30	/* seconds for children to answer */
#define SHUTDOWN_GRACE		10	/* seconds before SIGKILL */
#define LIST_POLL_INTERVAL	5	/* seconds between stat()s of lists */

enum conf_state {
	CONF_IDLE,
	CONF_SENT,
	CONF_READY,
	CONF_FAILED
};

struct child {
	pid_t			 pid;
	struct imsgev		 iev;
	enum conf_state		 conf;
	int			 running;
};

/* Who asked for the configuration transaction in progress. */
enum conf_origin {
	ORIGIN_STARTUP,
	ORIGIN_SIGHUP,
	ORIGIN_CONTROL
};

static struct child		 children[PROC_MAX];
static char			 exec_path[PATH_MAX];
static char			 conffile[PATH_MAX];
static int			 opt_debug, opt_verbose;
static time_t			 started, config_loaded;
static int			 shutting_down;
static int			 pidfile_fd = -1;
static int			 control_created;

static struct smarthost_config	*conf_pending;
static enum conf_origin		 conf_origin;
static uint32_t			 conf_requester;
static struct event		 conf_timer;

static struct event		 ev_sigterm, ev_sigint, ev_sighup, ev_sigchld;

/*
 * The blocklist and whitelist files, which grey cannot open from its
 * chroot: what was last sent of each, so that a file is sent again
 * when it changes.
 */
enum list_file_state {
	LIST_UNSENT,
	LIST_SENT,
	LIST_MISSING
};

struct list_file {
	TAILQ_ENTRY(list_file)	 entry;
	char			 name[NAME_MAX_LEN];
	char			 path[PATH_MAX];
	int			 white;
	enum list_file_state	 state;
	struct stat		 st;		/* LIST_SENT: of the file sent */
};
static TAILQ_HEAD(, list_file)	 list_files =
				    TAILQ_HEAD_INITIALIZER(list_files);
static struct event		 list_timer;

/* The table of an update table that waits for the reload, or "". */
static char			 conf_update[NAME_MAX_LEN];

/* Listening sockets, bound once at start-up and handed to smtp. */
static struct {
	struct listener		*listener;
	int			 fd;
} bound[BOUND_MAX];
static int			 nbound;

static void	 parent_check_users(struct smarthost_config *);
static void	 parent_prepare_dirs(struct smarthost_config *);
static const char *parent_scan_root(struct smarthost_config *);
static void	 parent_copy_resolv_conf(struct smarthost_config *);
static void	 parent_write_pidfile(const char *);
static int	 parent_control_socket(const char *);
static void	 parent_start_children(struct smarthost_config *, int);
static void	 parent_bind_listeners(struct smarthost_config *);
static void	 parent_raise_fd_limit(const struct smarthost_config *);
static void	 parent_bind(struct listener *, struct sockaddr *, socklen_t);
static void	 parent_send_listeners(void);
static void	 parent_dispatch_child(struct imsgev *, struct imsg *);
static void	 parent_dispatch_control(struct imsg *);
static void	 parent_grey_result(struct imsg *);
static void	 parent_auth(struct imsgev *, struct imsg *);
static void	 parent_sig(int, short, void *);
static void	 parent_reap(void);
static void	 parent_shutdown(int) __attribute__((__noreturn__));
static void	 parent_reload(enum conf_origin, uint32_t, const char *);
static void	 parent_update_table(uint32_t, const char *);
static void	 parent_lists_reset(void);
static int	 parent_list_send(struct list_file *, int, char *, size_t);
static void	 parent_lists_poll(int, short, void *);
static int	 parent_config_begin(struct smarthost_config *,
		    enum conf_origin, uint32_t);
static void	 parent_config_answer(struct child *, struct imsg *);
static void	 parent_config_end(int, const char *);
static void	 parent_config_timeout(int, short, void *);
static void	 parent_keep_restart_settings(struct smarthost_config *);
static void	 parent_send_status(uint32_t);

int
parent_main(int debug, int verbose, const char *file, const char *argv0)
{
	struct smarthost_config	*conf;
	int			 control_fd;

	opt_debug = debug;
	opt_verbose = verbose;
	log_procinit("parent");

	if (realpath(file, conffile) == NULL)
		fatal("%s", file);
	if (compat_exec_path(argv0, exec_path, sizeof(exec_path)) == -1)
		fatal("cannot find my own executable to re-exec");
	if ((conf = parse_config(conffile)) == NULL)
		fatalx("%s: configuration has errors", conffile);
	env = conf;

	if (proc_privsep())
		parent_check_users(conf);
	parent_prepare_dirs(conf);
	parent_bind_listeners(conf);

	if (!debug && daemon(0, 0) == -1)
		fatal("daemon");
	log_init(debug, LOG_MAIL);
	log_setverbose(verbose);
	setproctitle("parent");
	parent_raise_fd_limit(conf);

	if (!proc_privsep())
		log_warnx("not running as root: every process runs as uid %u "
		    "without chroot; privilege separation is disabled",
		    (unsigned int)getuid());

	parent_write_pidfile(conf->pidfile);
	control_fd = parent_control_socket(conf->control_path);
	started = time(NULL);

	event_init();
	signal(SIGPIPE, SIG_IGN);
	signal_set(&ev_sigterm, SIGTERM, parent_sig, NULL);
	signal_set(&ev_sigint, SIGINT, parent_sig, NULL);
	signal_set(&ev_sighup, SIGHUP, parent_sig, NULL);
	signal_set(&ev_sigchld, SIGCHLD, parent_sig, NULL);
	signal_add(&ev_sigterm, NULL);
	signal_add(&ev_sigint, NULL);
	signal_add(&ev_sighup, NULL);
	signal_add(&ev_sigchld, NULL);
	evtimer_set(&conf_timer, parent_config_timeout, NULL);
	evtimer_set(&list_timer, parent_lists_poll, NULL);
	backup_init();

	parent_start_children(conf, control_fd);
	parent_send_listeners();
	if (parent_config_begin(conf, ORIGIN_STARTUP, 0) == -1)
		fatalx("cannot send the configuration");

	(void)event_dispatch();
	fatalx("event loop ended");
}

/*
 * Start-up checks and preparation, done while we may still print to the
 * terminal.
 */

static void
parent_check_users(struct smarthost_config *conf)
{
	if (getpwnam(conf->user) == NULL)
		fatalx("user %s does not exist; create it (make users) or "
		    "set \"user\" in %s", conf->user, conffile);
	if (getpwnam(conf->scan.user) == NULL)
		fatalx("user %s does not exist; create it (make users) or "
		    "set \"user\" in the scan block of %s", conf->scan.user,
		    conffile);
}

static void
parent_prepare_dirs(struct smarthost_config *conf)
{
	struct passwd	*pw;

	if (!proc_privsep()) {
		if (mkdir(conf->state_dir, 0700) == -1 && errno != EEXIST)
			fatal("%s", conf->state_dir);
		return;
	}
	if ((pw = getpwnam(conf->user)) == NULL)
		fatalx("user %s does not exist", conf->user);
	if (mkdir_owned(conf->state_dir, pw->pw_uid, pw->pw_gid, 0700) == -1)
		fatal("state directory %s", conf->state_dir);
	if (mkdir_owned(SMARTHOSTD_EMPTY, 0, 0, 0755) == -1)
		fatal("%s", SMARTHOSTD_EMPTY);
	parent_copy_resolv_conf(conf);
}

/*
 * The scan process is chrooted in the ClamAV database directory, where
 * libclamav also needs a directory of its own for the files it unpacks
 * while scanning.  Without a database directory it gets the empty one,
 * and answers every message as on-error says.
 */
static const char *
parent_scan_root(struct smarthost_config *conf)
{
	struct passwd	*pw;
	struct stat	 sb;
	char		 tmp[PATH_MAX];
	int		 n;

	if (!conf->scan.enabled || conf->scan.clamav_db[0] == '\0' ||
	    stat(conf->scan.clamav_db, &sb) == -1 || !S_ISDIR(sb.st_mode))
		return (SMARTHOSTD_EMPTY);
	n = snprintf(tmp, sizeof(tmp), "%s/smarthostd-tmp",
	    conf->scan.clamav_db);
	if (n < 0 || (size_t)n >= sizeof(tmp) ||
	    (pw = getpwnam(conf->scan.user)) == NULL ||
	    mkdir_owned(tmp, pw->pw_uid, pw->pw_gid, 0700) == -1)
		log_warn("scan: %s", tmp);
	return (conf->scan.clamav_db);
}

/*
 * The queue process resolves names from inside its chroot, the state
 * directory, where the system resolver's configuration is copied as
 * Postfix copies it into its spool: at start and on every reload.
 */
static void
parent_copy_resolv_conf(struct smarthost_config *conf)
{
	char	 dir[PATH_MAX], tmp[PATH_MAX], path[PATH_MAX], buf[8192];
	ssize_t	 n;
	int	 in, out;

	if (!proc_privsep() || conf->resolver[0] != '\0')
		return;
	if ((size_t)snprintf(dir, sizeof(dir), "%s/etc", conf->state_dir) >=
	    sizeof(dir) ||
	    (size_t)snprintf(path, sizeof(path), "%s/resolv.conf", dir) >=
	    sizeof(path) ||
	    (size_t)snprintf(tmp, sizeof(tmp), "%s.new", path) >= sizeof(tmp))
		return;
	if (mkdir_owned(dir, 0, 0, 0755) == -1) {
		log_warn("%s", dir);
		return;
	}
	if ((in = open("/etc/resolv.conf", O_RDONLY | O_CLOEXEC)) == -1) {
		log_warn("/etc/resolv.conf");
		return;
	}
	if ((out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0644)) == -1) {
		log_warn("%s", tmp);
		(void)close(in);
		return;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, n) != n) {
			n = -1;
			break;
		}
	(void)close(in);
	if (close(out) == -1 || n == -1 || rename(tmp, path) == -1) {
		log_warn("%s", path);
		(void)unlink(tmp);
	}
}

/*
 * Every session holds its socket and its message file, and the queue a
 * socket per delivery: the soft limit on descriptors (1024 under
 * systemd, 128 in OpenBSD's daemon class) is raised to the hard one,
 * which the children inherit, and a limit below what max-sessions needs
 * is said at startup rather than found in the log at the first busy hour.
 */
static void
parent_raise_fd_limit(const struct smarthost_config *conf)
{
	struct rlimit	 rl;
	rlim_t		 need;

	need = 2 * (rlim_t)conf->smtp.max_sessions + 64;
	if (getrlimit(RLIMIT_NOFILE, &rl) == -1) {
		log_warn("getrlimit nofile");
		return;
	}
	if (rl.rlim_cur < rl.rlim_max) {
		/* An infinite hard limit is not one to ask for. */
		rl.rlim_cur = rl.rlim_max != RLIM_INFINITY ? rl.rlim_max :
		    (need > rl.rlim_cur ? need : rl.rlim_cur);
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
			log_warn("setrlimit nofile %llu",
			    (unsigned long long)rl.rlim_cur);
	}
	/* What was granted, not what was asked for. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == -1) {
		log_warn("getrlimit nofile");
		return;
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
		log_warnx("max-sessions %u needs about %llu file descriptors, "
		    "but the limit is %llu: connections past it wait",
		    (unsigned int)conf->smtp.max_sessions,
		    (unsigned long long)need,
		    (unsigned long long)rl.rlim_cur);
}

/*
 * Bind every listener now, as root and while errors still reach the
 * terminal.  smtp never binds; it gets the sockets.  Listeners are fixed
 * for the daemon's lifetime: a reload that changes them needs a restart.
 */
static void
parent_bind_listeners(struct smarthost_config *conf)
{
	struct listener		*l;
	struct ifaddrs		*ifap, *ifa;
	struct sockaddr_in	 sin;
	struct sockaddr_in6	 sin6;
	int			 found;

	TAILQ_FOREACH(l, &conf->listeners, entry) {
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_port = htons(l->port);
		memset(&sin6, 0, sizeof(sin6));
		sin6.sin6_family = AF_INET6;
		sin6.sin6_port = htons(l->port);

		if (strcmp(l->on, "all") == 0) {
			sin.sin_addr.s_addr = htonl(INADDR_ANY);
			sin6.sin6_addr = in6addr_any;
			parent_bind(l, (struct sockaddr *)&sin, sizeof(sin));
			parent_bind(l, (struct sockaddr *)&sin6, sizeof(sin6));
		} else if (inet_pton(AF_INET, l->on, &sin.sin_addr) == 1)
			parent_bind(l, (struct sockaddr *)&sin, sizeof(sin));
		else if (inet_pton(AF_INET6, l->on, &sin6.sin6_addr) == 1)
			parent_bind(l, (struct sockaddr *)&sin6, sizeof(sin6));
		else {
			if (getifaddrs(&ifap) == -1)
				fatal("getifaddrs");
			found = 0;
			for (ifa = ifap; ifa != NULL; ifa = ifa->ifa_next) {
				if (ifa->ifa_addr == NULL ||
				    strcmp(ifa->ifa_name, l->on) != 0)
					continue;
				if (ifa->ifa_addr->sa_family == AF_INET) {
					sin.sin_addr = ((struct sockaddr_in *)
					    ifa->ifa_addr)->sin_addr;
					parent_bind(l, (struct sockaddr *)&sin,
					    sizeof(sin));
					found++;
				} else if (ifa->ifa_addr->sa_family ==
				    AF_INET6) {
					sin6.sin6_addr = ((struct sockaddr_in6 *)
					    ifa->ifa_addr)->sin6_addr;
					sin6.sin6_scope_id = ((struct
					    sockaddr_in6 *)ifa->ifa_addr)->
					    sin6_scope_id;
					parent_bind(l, (struct sockaddr *)&sin6,
					    sizeof(sin6));
					found++;
				}
			}
			freeifaddrs(ifap);
			if (found == 0)
				fatalx("listen on %s: no such interface, or it "
				    "has no address", l->on);
		}
	}
}

static void
parent_bind(struct listener *l, struct sockaddr *sa, socklen_t len)
{
	char	 host[NI_MAXHOST];
	int	 fd, on = 1;

	if (nbound == BOUND_MAX)
		fatalx("too many listening sockets (at most %d)", BOUND_MAX);
	if ((fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1) {
		if (errno == EAFNOSUPPORT && strcmp(l->on, "all") == 0)
			return;
		fatal("socket");
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == -1)
		fatal("setsockopt SO_REUSEADDR");
	if (sa->sa_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6,
	    IPV6_V6ONLY, &on, sizeof(on)) == -1)
		fatal("setsockopt IPV6_V6ONLY");
	if (getnameinfo(sa, len, host, sizeof(host), NULL, 0,
	    NI_NUMERICHOST) != 0)
		(void)strlcpy(host, "?", sizeof(host));
	if (bind(fd, sa, len) == -1) {
		/* "all" on a host without IPv6 configured still works. */
		if (errno == EADDRNOTAVAIL && sa->sa_family == AF_INET6 &&
		    strcmp(l->on, "all") == 0) {
			(void)close(fd);
			return;
		}
		fatal("listen on %s port %u", host, l->port);
	}
	if (listen(fd, LISTEN_BACKLOG) == -1)
		fatal("listen on %s port %u", host, l->port);
	log_debug("listening on %s port %u", host, l->port);
	bound[nbound].listener = l;
	bound[nbound].fd = fd;
	nbound++;
}

static void
parent_send_listeners(void)
{
	struct imsgev	*smtp = &children[PROC_SMTP].iev;
	int		 i;

	for (i = 0; i < nbound; i++)
		imsgev_compose(smtp, IMSG_SMTP_LISTENER, 0, 0, bound[i].fd,
		    bound[i].listener, sizeof(*bound[i].listener));
	imsgev_compose(smtp, IMSG_SMTP_LISTENERS_DONE, 0, 0, -1, NULL, 0);
}

/*
 * The pidfile is locked for as long as we run: a second daemon with the
 * same configuration finds it locked and says so instead of stealing the
 * control socket.
 */
static void
parent_write_pidfile(const char *path)
{
	char	 buf[32];
	ssize_t	 n;
	int	 len;

	if ((pidfile_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) == -1)
		fatal("pidfile %s", path);
	if (flock(pidfile_fd, LOCK_EX | LOCK_NB) == -1) {
		if (errno != EWOULDBLOCK)
			fatal("lock %s", path);
		n = read(pidfile_fd, buf, sizeof(buf) - 1);
		buf[n > 0 ? n : 0] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		fatalx("smarthostd is already running (pid %s, pidfile %s)",
		    buf, path);
	}
	len = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (ftruncate(pidfile_fd, 0) == -1 ||
	    pwrite(pidfile_fd, buf, len, 0) != len)
		fatal("pidfile %s", path);
}

static int
parent_control_socket(const char *path)
{
	struct sockaddr_un	 sun;
	mode_t			 old_umask;
	int			 fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlcpy(sun.sun_path, path, sizeof(sun.sun_path)) >=
	    sizeof(sun.sun_path))
		fatalx("control socket path too long: %s", path);

	/* Never take over the socket of a daemon that still answers. */
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		fatal("socket");
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
		fatalx("control socket %s is in use by another smarthostd",
		    path);
	(void)close(fd);
	if (unlink(path) == -1 && errno != ENOENT)
		fatal("unlink %s", path);

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1)
		fatal("socket");
	old_umask = umask(S_IXUSR | S_IXGRP | S_IRWXO);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1)
		fatal("bind %s", path);
	(void)umask(old_umask);
	control_created = 1;
	if (chmod(path, 0660) == -1)
		fatal("chmod %s", path);
	if (listen(fd, 128) == -1)
		fatal("listen %s", path);
	return (fd);
}

/*
 * Start every child, then wire them up: each gets the ends of the
 * socketpairs to the peers it talks to, and control gets the listening
 * control socket.
 */
static void
parent_start_children(struct smarthost_config *conf, int control_fd)
{
	enum smarthost_proc	 p, a, b;
	const char		*user, *root;
	uint32_t		 peer;
	int			 pair[2], i;

	for (p = PROC_PARENT + 1; p < PROC_MAX; p++) {
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair) == -1)
			fatal("socketpair");
		user = conf->user;
		root = SMARTHOSTD_EMPTY;
		switch (p) {
		case PROC_GREY:
		case PROC_QUEUE:
			root = conf->state_dir;
			break;
		case PROC_SCAN:
			user = conf->scan.user;
			root = parent_scan_root(conf);
			break;
		default:
			break;
		}
		if (!proc_privsep()) {
			user = NULL;
			root = NULL;
		}
		children[p].pid = proc_exec_child(p, exec_path, pair[1],
		    opt_debug, opt_verbose, user, root);
		(void)close(pair[1]);
		if (fcntl(pair[0], F_SETFD, FD_CLOEXEC) == -1)
			fatal("fcntl");
		imsgev_init(&children[p].iev, pair[0], p,
		    parent_dispatch_child);
		log_debug("started %s process, pid %ld", proc_name(p),
		    (long)children[p].pid);
	}

	for (i = 0; i < proc_link_count(); i++) {
		proc_link(i, &a, &b);
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair) == -1)
			fatal("socketpair");
		peer = b;
		imsgev_compose(&children[a].iev, IMSG_PROC_PEER, 0, 0,
		    pair[0], &peer, sizeof(peer));
		peer = a;
		imsgev_compose(&children[b].iev, IMSG_PROC_PEER, 0, 0,
		    pair[1], &peer, sizeof(peer));
	}
	imsgev_compose(&children[PROC_CONTROL].iev, IMSG_PROC_CONTROL_SOCKET,
	    0, 0, control_fd, NULL, 0);
}

static struct child *
parent_child_of(struct imsgev *iev)
{
	if (iev->peer <= PROC_PARENT || iev->peer >= PROC_MAX)
		fatalx("message from unknown process");
	return (&children[iev->peer]);
}

static void
parent_dispatch_child(struct imsgev *iev, struct imsg *imsg)
{
	struct child	*c = parent_child_of(iev);

	if (imsg == NULL) {
		/* Its exit status, collected on SIGCHLD, says why. */
		imsgev_clear(iev);
		if (!shutting_down)
			log_debug("%s process closed its socket",
			    proc_name(iev->peer));
		return;
	}
	switch (imsg_get_type(imsg)) {
	case IMSG_CONF_READY:
	case IMSG_CONF_FAILED:
		parent_config_answer(c, imsg);
		break;
	case IMSG_SMTP_AUTH:
		if (iev->peer != PROC_SMTP)
			fatalx("AUTH request from %s", proc_name(iev->peer));
		parent_auth(iev, imsg);
		break;
	case IMSG_CTL_SHOW_STATUS:
	case IMSG_CTL_RELOAD:
	case IMSG_CTL_LOG_VERBOSE:
	case IMSG_CTL_UPDATE_TABLE:
	case IMSG_CTL_BACKUP:
		if (iev->peer != PROC_CONTROL)
			fatalx("control request from %s",
			    proc_name(iev->peer));
		parent_dispatch_control(imsg);
		break;
	case IMSG_BACKUP_DONE:
	case IMSG_BACKUP_FAILED:
		backup_answer(iev, imsg);
		break;
	case IMSG_CTL_OK:
	case IMSG_CTL_FAIL:
		/* grey's answer to an spf-white update we passed on. */
		if (iev->peer != PROC_GREY)
			fatalx("control answer from %s", proc_name(iev->peer));
		parent_grey_result(imsg);
		break;
	default:
		fatalx("unexpected imsg %u from %s", imsg_get_type(imsg),
		    proc_name(iev->peer));
	}
}

/*
 * AUTH: the password table never leaves the parent.  An unknown user
 * costs the same bcrypt as a known one, so timing tells nothing.  The
 * check blocks only the parent, never a session; smtp limits how often
 * one client may try.
 */
static void
parent_auth(struct imsgev *iev, struct imsg *imsg)
{
	static const char		*dummy =
	    "$2b$10$SLJkE88LCadmAIm8hY23peNIJQNQl44vldq7GrM4C9kCZ3fmRzqsm";
	struct auth_request		 req;
	struct table			*t;
	struct table_entry		*e = NULL, *other, find;
	const char			*hash = dummy;
	int				 ok;

	imsg_expect_size(imsg, sizeof(req));
	(void)imsg_get_data(imsg, &req, sizeof(req));
	if (memchr(req.table, '\0', sizeof(req.table)) == NULL ||
	    memchr(req.user, '\0', sizeof(req.user)) == NULL ||
	    memchr(req.password, '\0', sizeof(req.password)) == NULL)
		fatalx("malformed AUTH request from smtp");
	if ((t = table_find(env, req.table)) != NULL && t->secret) {
		find.key = req.user;
		if ((e = RB_FIND(table_entries, &t->entries, &find)) != NULL &&
		    e->value != NULL && strncmp(e->value, "$2", 2) == 0)
			hash = e->value;
		else {
			/*
			 * An unknown user costs what a known one does: the
			 * check runs against a real entry's hash, with its
			 * cost, and fails.
			 */
			e = NULL;
			if ((other = RB_MIN(table_entries, &t->entries)) !=
			    NULL && other->value != NULL &&
			    strncmp(other->value, "$2", 2) == 0)
				hash = other->value;
		}
	}
	ok = compat_crypt_check(req.password, hash) == 0 && e != NULL;
	explicit_bzero(&req, sizeof(req));
	imsgev_compose(iev, IMSG_SMTP_AUTH_RESULT, imsg_get_id(imsg), 0, -1,
	    &ok, sizeof(ok));
}

static void
parent_grey_result(struct imsg *imsg)
{
	struct ctl_result	 res;

	imsg_expect_size(imsg, sizeof(res));
	(void)imsg_get_data(imsg, &res, sizeof(res));
	if (memchr(res.message, '\0', sizeof(res.message)) == NULL)
		fatalx("malformed result from grey");
	if (imsg_get_type(imsg) == IMSG_CTL_FAIL)
		log_warnx("update table: %s", res.message);
	else
		log_debug("update table: %s", res.message);
}

static void
parent_dispatch_control(struct imsg *imsg)
{
	enum smarthost_proc	 p;
	uint32_t		 id = imsg_get_id(imsg);
	char			*name;
	int			 verbose;

	switch (imsg_get_type(imsg)) {
	case IMSG_CTL_SHOW_STATUS:
		imsg_expect_size(imsg, 0);
		parent_send_status(id);
		break;
	case IMSG_CTL_RELOAD:
		imsg_expect_size(imsg, 0);
		parent_reload(ORIGIN_CONTROL, id, NULL);
		break;
	case IMSG_CTL_UPDATE_TABLE:
		name = imsg_expect_string(imsg);
		parent_update_table(id, name);
		free(name);
		break;
	case IMSG_CTL_BACKUP:
		name = imsg_expect_string(imsg);
		if (name[0] != '/')
			fatalx("control sent a relative backup path");
		backup_start(id, name);
		free(name);
		break;
	case IMSG_CTL_LOG_VERBOSE:
		imsg_expect_size(imsg, sizeof(verbose));
		(void)imsg_get_data(imsg, &verbose, sizeof(verbose));
		if (verbose < 0 || verbose > 2)
			fatalx("bad verbosity %d from control", verbose);
		opt_verbose = verbose;
		log_setverbose(verbose);
		for (p = PROC_PARENT + 1; p < PROC_MAX; p++)
			if (children[p].pid > 0)
				imsgev_compose(&children[p].iev,
				    IMSG_CTL_LOG_VERBOSE, 0, 0, -1, &verbose,
				    sizeof(verbose));
		log_info("logging %s", verbose ? "verbose" : "brief");
		parent_reply(id, 1, verbose ? "logging verbose" :
		    "logging brief");
		break;
	}
}

void
parent_reply(uint32_t id, int ok, const char *message)
{
	struct ctl_result	 res;

	memset(&res, 0, sizeof(res));
	res.ok = ok;
	(void)strlcpy(res.message, message, sizeof(res.message));
	imsgev_compose(&children[PROC_CONTROL].iev,
	    ok ? IMSG_CTL_OK : IMSG_CTL_FAIL, id, 0, -1, &res, sizeof(res));
}

/* The channel to a child, for the parent's other files. */
struct imsgev *
parent_child(enum smarthost_proc p)
{
	return (&children[p].iev);
}

static void
parent_send_status(uint32_t id)
{
	struct imsgev		*ctl = &children[PROC_CONTROL].iev;
	struct ctl_status	 st;
	struct ctl_proc_status	 ps;
	enum smarthost_proc	 p;

	memset(&st, 0, sizeof(st));
	(void)strlcpy(st.version, SMARTHOSTD_VERSION, sizeof(st.version));
	(void)strlcpy(st.conffile, conffile, sizeof(st.conffile));
	st.started = started;
	st.now = time(NULL);
	st.config_loaded = config_loaded;
	st.verbose = opt_verbose;
	st.privsep = proc_privsep();
	imsgev_compose(ctl, IMSG_CTL_STATUS, id, 0, -1, &st, sizeof(st));

	for (p = PROC_PARENT; p < PROC_MAX; p++) {
		memset(&ps, 0, sizeof(ps));
		(void)strlcpy(ps.name, proc_name(p), sizeof(ps.name));
		if (p == PROC_PARENT) {
			ps.pid = getpid();
			(void)strlcpy(ps.state, "running", sizeof(ps.state));
		} else {
			ps.pid = children[p].pid;
			(void)strlcpy(ps.state, children[p].running ?
			    "running" : "starting", sizeof(ps.state));
		}
		imsgev_compose(ctl, IMSG_CTL_STATUS_PROC, id, 0, -1, &ps,
		    sizeof(ps));
	}
	imsgev_compose(ctl, IMSG_CTL_END, id, 0, -1, NULL, 0);
}

/*
 * Signals and child supervision.
 */

static void
parent_sig(int sig, short event, void *arg)
{
	(void)event;
	(void)arg;
	switch (sig) {
	case SIGTERM:
	case SIGINT:
		log_info("received %s, shutting down",
		    sig == SIGTERM ? "SIGTERM" : "SIGINT");
		parent_shutdown(0);
	case SIGHUP:
		log_info("received SIGHUP, reloading %s", conffile);
		parent_reload(ORIGIN_SIGHUP, 0, NULL);
		break;
	case SIGCHLD:
		parent_reap();
		break;
	}
}

/*
 * A child that dies takes the daemon down: the service manager restarts
 * it, and durable state makes that safe.  Limping on with a process
 * missing would be worse.
 */
static void
parent_reap(void)
{
	enum smarthost_proc	 p;
	char			 how[128];
	pid_t			 pid;
	int			 status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (p = PROC_PARENT + 1; p < PROC_MAX; p++)
			if (children[p].pid == pid)
				break;
		if (p == PROC_MAX) {
			backup_reaped(pid, status);
			continue;
		}
		children[p].pid = 0;
		children[p].running = 0;
		if (shutting_down)
			continue;
		log_warnx("lost child: %s process (pid %ld) %s; shutting down",
		    proc_name(p), (long)pid,
		    wait_status_string(status, how, sizeof(how)));
		parent_shutdown(1);
	}
}

static int
parent_children_left(void)
{
	enum smarthost_proc	 p;
	int			 n = 0;

	for (p = PROC_PARENT + 1; p < PROC_MAX; p++)
		if (children[p].pid > 0)
			n++;
	return (n);
}

static void
parent_signal_children(int sig)
{
	enum smarthost_proc	 p;

	for (p = PROC_PARENT + 1; p < PROC_MAX; p++)
		if (children[p].pid > 0)
			(void)kill(children[p].pid, sig);
}

static void
parent_shutdown(int status)
{
	struct timespec	 tick = { 0, 20 * 1000 * 1000 };
	time_t		 deadline;
	pid_t		 pid;
	int		 ws;

	shutting_down = 1;
	backup_abort();
	parent_signal_children(SIGTERM);
	deadline = time(NULL) + SHUTDOWN_GRACE;
	while (parent_children_left() > 0) {
		if (time(NULL) >= deadline) {
			log_warnx("children still running after %d seconds; "
			    "killing them", SHUTDOWN_GRACE);
			parent_signal_children(SIGKILL);
			deadline = time(NULL) + SHUTDOWN_GRACE;
		}
		parent_reap();
		if (parent_children_left() > 0)
			(void)nanosleep(&tick, NULL);
	}
	while ((pid = waitpid(-1, &ws, WNOHANG)) > 0)
		;
	if (control_created && unlink(env->control_path) == -1)
		log_warn("unlink %s", env->control_path);
	if (pidfile_fd != -1 && unlink(env->pidfile) == -1)
		log_warn("unlink %s", env->pidfile);
	log_info("terminated");
	exit(status);
}

/*
 * Configuration transactions.  The new configuration goes to every child;
 * each builds it aside and answers ready or failed.  Only when all are
 * ready does everybody switch; otherwise nobody does.
 */

/*
 * Reload the configuration.  update names the table of an update table
 * request, to be named in the answer and, if it is the spf-whitelist,
 * expanded again once the reload is in.
 */
static void
parent_reload(enum conf_origin origin, uint32_t requester, const char *update)
{
	struct smarthost_config	*conf;
	char			 first[MESSAGE_LEN - 64], msg[MESSAGE_LEN];

	if (conf_pending != NULL) {
		log_warnx("reload refused: a reload is in progress");
		if (origin == ORIGIN_CONTROL)
			parent_reply(requester, 0,
			    "a reload is already in progress");
		return;
	}
	config_errors_reset();
	if ((conf = parse_config(conffile)) == NULL) {
		config_errors_first(first, sizeof(first));
		log_warnx("reload failed: %s has errors; keeping the running "
		    "configuration", conffile);
		if (origin == ORIGIN_CONTROL) {
			(void)snprintf(msg, sizeof(msg),
			    "configuration has errors, not reloaded: %s", first);
			parent_reply(requester, 0, msg);
		}
		return;
	}
	parent_keep_restart_settings(conf);
	parent_copy_resolv_conf(conf);
	(void)strlcpy(conf_update, update != NULL ? update : "",
	    sizeof(conf_update));
	if (parent_config_begin(conf, origin, requester) == -1 &&
	    origin == ORIGIN_CONTROL)
		parent_reply(requester, 0, "cannot send the configuration");
}

/*
 * These are fixed at start-up (sockets, chroots and users are set up
 * once); a reload keeps the running values and says so.
 */
static void
parent_keep_restart_settings(struct smarthost_config *conf)
{
	static const struct {
		const char	*what;
		size_t		 offset, size;
	} fixed[] = {
		{ "user", offsetof(struct smarthost_config, user),
		    sizeof(conf->user) },
		{ "state", offsetof(struct smarthost_config, state_dir),
		    sizeof(conf->state_dir) },
		{ "control socket", offsetof(struct smarthost_config,
		    control_path), sizeof(conf->control_path) },
		{ "pidfile", offsetof(struct smarthost_config, pidfile),
		    sizeof(conf->pidfile) },
		{ "scan user", offsetof(struct smarthost_config, scan.user),
		    sizeof(conf->scan.user) }
	};
	char	*new, *old;
	size_t	 i;

	for (i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		new = (char *)conf + fixed[i].offset;
		old = (char *)env + fixed[i].offset;
		if (strcmp(new, old) == 0)
			continue;
		log_warnx("reload: changing %s takes a restart; keeping "
		    "\"%s\"", fixed[i].what, old);
		(void)strlcpy(new, old, fixed[i].size);
	}
}

static int
parent_config_begin(struct smarthost_config *conf, enum conf_origin origin,
    uint32_t requester)
{
	struct timeval		 tv = { CONFIG_ANSWER_TIMEOUT, 0 };
	enum smarthost_proc	 p;

	conf_pending = conf;
	conf_origin = origin;
	conf_requester = requester;
	for (p = PROC_PARENT + 1; p < PROC_MAX; p++) {
		if (children[p].pid <= 0)
			return (-1);
		config_send(&children[p].iev, conf, p);
		children[p].conf = CONF_SENT;
	}
	evtimer_add(&conf_timer, &tv);
	return (0);
}

static void
parent_config_answer(struct child *c, struct imsg *imsg)
{
	enum smarthost_proc	 p;
	char			*reason, msg[MESSAGE_LEN];
	int			 waiting = 0;

	if (conf_pending == NULL || c->conf != CONF_SENT)
		fatalx("unsolicited configuration answer from %s",
		    proc_name(c->iev.peer));
	if (imsg_get_type(imsg) == IMSG_CONF_READY) {
		imsg_expect_size(imsg, 0);
		c->conf = CONF_READY;
	} else {
		reason = imsg_expect_string(imsg);
		c->conf = CONF_FAILED;
		(void)snprintf(msg, sizeof(msg), "%s process refused the "
		    "configuration: %s", proc_name(c->iev.peer), reason);
		free(reason);
		parent_config_end(0, msg);
		return;
	}
	for (p = PROC_PARENT + 1; p < PROC_MAX; p++)
		if (children[p].conf == CONF_SENT)
			waiting++;
	if (waiting == 0)
		parent_config_end(1, NULL);
}

static void
parent_config_timeout(int fd, short event, void *arg)
{
	(void)fd;
	(void)event;
	(void)arg;
	parent_config_end(0, "children did not answer in time");
}

static void
parent_config_end(int ok, const char *reason)
{
	struct smarthost_config	*old;
	enum smarthost_proc	 p;
	char			 msg[MESSAGE_LEN];

	evtimer_del(&conf_timer);
	for (p = PROC_PARENT + 1; p < PROC_MAX; p++) {
		if (children[p].pid > 0)
			imsgev_compose(&children[p].iev, ok ?
			    IMSG_CONF_COMMIT : IMSG_CONF_ABORT, 0, 0, -1,
			    NULL, 0);
		children[p].conf = CONF_IDLE;
		if (ok)
			children[p].running = 1;
	}

	if (!ok) {
		config_free(conf_pending);
		conf_pending = NULL;
		conf_update[0] = '\0';
		if (conf_origin == ORIGIN_STARTUP)
			fatalx("start-up failed: %s", reason);
		log_warnx("reload failed: %s; keeping the running "
		    "configuration", reason);
		if (conf_origin == ORIGIN_CONTROL)
			parent_reply(conf_requester, 0, reason);
		return;
	}

	old = env;
	env = conf_pending;
	conf_pending = NULL;
	/* A reload may ask for more sessions than descriptors allow. */
	if (old != env && old->smtp.max_sessions != env->smtp.max_sessions)
		parent_raise_fd_limit(env);
	if (old != env)
		config_free(old);
	config_loaded = time(NULL);
	if (conf_origin == ORIGIN_STARTUP)
		log_info("smarthostd %s started, configuration %s",
		    SMARTHOSTD_VERSION, conffile);
	else
		log_info("configuration reloaded from %s", conffile);
	parent_lists_reset();
	if (conf_update[0] != '\0' &&
	    env->greylist.spf_whitelist[0] != '\0' &&
	    strcmp(conf_update, env->greylist.spf_whitelist) == 0)
		imsgev_compose(&children[PROC_GREY].iev, IMSG_CTL_UPDATE_TABLE,
		    0, 0, -1, conf_update, strlen(conf_update) + 1);
	if (conf_origin == ORIGIN_CONTROL && conf_update[0] != '\0') {
		(void)snprintf(msg, sizeof(msg), "%s: configuration reloaded",
		    conf_update);
		parent_reply(conf_requester, 1, msg);
	} else if (conf_origin == ORIGIN_CONTROL)
		parent_reply(conf_requester, 1, "configuration reloaded");
	conf_update[0] = '\0';
}

/*
 * update table NAME.  A blocklist or whitelist is read again from its
 * file; the spf-whitelist is expanded again, after a reload when its
 * entries come from a file; any other table comes from the
 * configuration, so the configuration is reloaded.
 */
static void
parent_update_table(uint32_t id, const char *name)
{
	struct list_file	*lf;
	struct table		*t;
	const char		*spf = env->greylist.spf_whitelist;
	char			 msg[MESSAGE_LEN], why[MESSAGE_LEN - 64];

	TAILQ_FOREACH(lf, &list_files, entry) {
		if (strcmp(lf->name, name) != 0)
			continue;
		if (parent_list_send(lf, 1, why, sizeof(why)) == -1) {
			(void)snprintf(msg, sizeof(msg), "%s: %s", name, why);
			parent_reply(id, 0, msg);
			return;
		}
		(void)snprintf(msg, sizeof(msg), "%s: reloading", name);
		parent_reply(id, 1, msg);
		return;
	}
	if (spf[0] != '\0' && (strcmp(name, spf) == 0 ||
	    strcmp(name, "spf-white") == 0)) {
		t = table_find(env, spf);
		if (t != NULL && t->source == TABLE_FILE) {
			parent_reload(ORIGIN_CONTROL, id, spf);
			return;
		}
		imsgev_compose(&children[PROC_GREY].iev, IMSG_CTL_UPDATE_TABLE,
		    0, 0, -1, spf, strlen(spf) + 1);
		(void)snprintf(msg, sizeof(msg), "%s: expanding again", spf);
		parent_reply(id, 1, msg);
		return;
	}
	if (table_find(env, name) != NULL) {
		parent_reload(ORIGIN_CONTROL, id, name);
		return;
	}
	(void)snprintf(msg, sizeof(msg), "no such table: %s", name);
	parent_reply(id, 0, msg);
}

/*
 * After every configuration commit: grey gets every list of the new
 * configuration, the unchanged ones too, since it keeps only the lists
 * its configuration names.  Then they are watched for changes.
 */
static void
parent_lists_reset(void)
{
	struct timeval		 tv = { LIST_POLL_INTERVAL, 0 };
	struct list_file	*lf;
	struct blocklist	*b;
	char			 why[MESSAGE_LEN];

	while ((lf = TAILQ_FIRST(&list_files)) != NULL) {
		TAILQ_REMOVE(&list_files, lf, entry);
		free(lf);
	}
	TAILQ_FOREACH(b, &env->blocklists, entry) {
		if ((lf = calloc(1, sizeof(*lf))) == NULL)
			fatal("blocklist %s", b->name);
		(void)strlcpy(lf->name, b->name, sizeof(lf->name));
		(void)strlcpy(lf->path, b->path, sizeof(lf->path));
		lf->white = b->white;
		lf->state = LIST_UNSENT;
		TAILQ_INSERT_TAIL(&list_files, lf, entry);
		(void)parent_list_send(lf, 1, why, sizeof(why));
	}
	evtimer_del(&list_timer);
	if (!TAILQ_EMPTY(&list_files))
		evtimer_add(&list_timer, &tv);
}

/*
 * Open a list's file and pass it to grey, or tell grey that it cannot
 * be had (grey keeps what it has).  A file that stays missing is
 * logged once, unless this is a reload or a request (force).  Returns
 * -1 with the reason in why when the file could not be sent.
 */
static int
parent_list_send(struct list_file *lf, int force, char *why, size_t len)
{
	const char	*kind = lf->white ? "whitelist" : "blocklist";
	struct stat	 st;
	int		 fd, error = 0;

	if ((fd = open(lf->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) == -1 ||
	    fstat(fd, &st) == -1)
		error = errno;
	else if (!S_ISREG(st.st_mode))
		error = -1;
	if (error != 0) {
		if (fd != -1)
			(void)close(fd);
		/* A long path is cut short in the answer, not in the log. */
		if (snprintf(why, len, "%s: %s", lf->path, error == -1 ?
		    "not a regular file" : strerror(error)) < 0)
			(void)strlcpy(why, "cannot be read", len);
		if (force || lf->state != LIST_MISSING) {
			if (error == -1)
				log_warnx("%s %s: %s: not a regular file",
				    kind, lf->name, lf->path);
			else {
				errno = error;
				log_warn("%s %s: %s", kind, lf->name,
				    lf->path);
			}
			imsgev_compose(&children[PROC_GREY].iev,
			    IMSG_GREY_LIST_MISSING, 0, 0, -1, lf->name,
			    strlen(lf->name) + 1);
		}
		lf->state = LIST_MISSING;
		return (-1);
	}
	log_debug("%s %s: sending %s to grey", kind, lf->name, lf->path);
	lf->st = st;
	lf->state = LIST_SENT;
	if (imsgev_compose(&children[PROC_GREY].iev, IMSG_GREY_LIST_FILE, 0, 0,
	    fd, lf->name, strlen(lf->name) + 1) == -1) {
		(void)snprintf(why, len, "grey is not available");
		return (-1);
	}
	return (0);
}

/*
 * Every few seconds: a list whose file is now another file, or was
 * written to, or has appeared, is sent again.
 */
static void
parent_lists_poll(int fd, short event, void *arg)
{
	struct timeval		 tv = { LIST_POLL_INTERVAL, 0 };
	struct list_file	*lf;
	struct stat		 st;
	char			 why[MESSAGE_LEN];

	(void)fd;
	(void)event;
	(void)arg;
	TAILQ_FOREACH(lf, &list_files, entry) {
		if (stat(lf->path, &st) == 0 && lf->state == LIST_SENT &&
		    st.st_dev == lf->st.st_dev && st.st_ino == lf->st.st_ino &&
		    st.st_size == lf->st.st_size &&
		    st.st_mtim.tv_sec == lf->st.st_mtim.tv_sec &&
		    st.st_mtim.tv_nsec == lf->st.st_mtim.tv_nsec)
			continue;
		if (lf->state == LIST_MISSING && stat(lf->path, &st) == -1)
			continue;
		(void)parent_list_send(lf, 0, why, sizeof(why));
	}
	evtimer_add(&list_timer, &tv);
}
