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
 * smarthostctl backup FILE, in the parent: the copies of queue.mdb and
 * grey.mdb that queue and grey write, and the archive that holds them
 * with the configuration and the files it names.
 */

#include <sys/types.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <event.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "smarthostd.h"

#define BACKUP_TIMEOUT		600	/* seconds for the database copies */
#define WRITER_TIMEOUT		3600	/* seconds for the archive */
#define WRITER_ANSWER_FD	3	/* the writer's descriptors */
#define WRITER_ARCHIVE_FD	4
#define TAR_BLOCK		512

static void	 parent_backup_timeout(int, short, void *);
static void	 parent_backup_end(void);
static int	 parent_backup_fork(void);
static void	 parent_backup_written(int, short, void *);
static void	 parent_backup_finish(int, const char *);
static void	 parent_backup_clean(void);
static int	 backup_archive(int, char *, size_t);
static void	 backup_writer_main(int, int) __attribute__((__noreturn__));
static int	 backup_state_path(char *, size_t, const char *);
static void	 backup_named_files(struct string_list *);
static void	 backup_name_add(struct string_list *, const char *);
static int	 backup_tar_file(int, FILE *, const char *, const char *,
		    const char *, char *, size_t);
static int	 backup_tar_header(int, const char *, uint64_t, time_t,
		    char *, size_t);
static int	 backup_write(int, const void *, size_t, char *, size_t);
static void	 backup_octal(unsigned char *, size_t, uint64_t);
static void	 backup_msg(char *, size_t, const char *, ...)
		    __attribute__((__format__(printf, 3, 4)));

/* The backup in progress: one at a time. */
static struct {
	int			 active;
	uint32_t		 requester;	/* control client */
	uint32_t		 seq;		/* imsg id of the copies */
	uint32_t		 waiting;	/* bits: queue, grey */
	char			 path[PATH_MAX];
	char			 tmp[PATH_MAX];	/* the archive until done */
	char			 failed[MESSAGE_LEN - 64];
	struct event		 timer;
	pid_t			 writer_pid;
	struct event		 writer;	/* its answer, on a pipe */
} backup;

void
backup_init(void)
{
	evtimer_set(&backup.timer, parent_backup_timeout, NULL);
}

/*
 * backup FILE.  queue and grey each write a consistent copy of their
 * database into backup/ of the state directory (they are chrooted
 * there); then the parent, which alone can read the configuration and
 * the files it names, writes one POSIX ustar archive at FILE: first
 * under a temporary name, mode 0600 (it holds keys and password
 * hashes), then renamed.  The archive is written by a child of the
 * parent, so that a large queue does not keep the parent from its
 * children, control and reloads meanwhile; the copies block queue and
 * grey for their duration.
 */

void
backup_start(uint32_t id, const char *path)
{
	struct timeval		 tv = { BACKUP_TIMEOUT, 0 };
	struct stat		 sb;
	struct passwd		*pw;
	char			 dir[PATH_MAX], msg[MESSAGE_LEN];
	char			*slash;
	int			 rc;

	if (backup.active) {
		parent_reply(id, 0, "a backup is already in progress");
		return;
	}
	/* Say at once that the archive cannot be written there. */
	(void)strlcpy(dir, path, sizeof(dir));
	if ((slash = strrchr(dir, '/')) == NULL || slash[1] == '\0') {
		parent_reply(id, 0, "the archive path must name a file");
		return;
	}
	slash[slash == dir ? 1 : 0] = '\0';
	errno = 0;
	if (stat(dir, &sb) == -1 || !S_ISDIR(sb.st_mode)) {
		backup_msg(msg, sizeof(msg), "cannot write the archive "
		    "in %s: %s", dir, errno != 0 ? strerror(errno) :
		    "not a directory");
		parent_reply(id, 0, msg);
		return;
	}

	parent_backup_clean();
	if (backup_state_path(dir, sizeof(dir), NULL) == -1) {
		parent_reply(id, 0, "state directory path too long");
		return;
	}
	if (!proc_privsep())
		rc = mkdir(dir, 0700) == -1 && errno != EEXIST ? -1 : 0;
	else if ((pw = getpwnam(env->user)) == NULL) {
		errno = ENOENT;
		rc = -1;
	} else
		rc = mkdir_owned(dir, pw->pw_uid, pw->pw_gid, 0700);
	if (rc == -1) {
		backup_msg(msg, sizeof(msg), "%s: %s", dir,
		    strerror(errno));
		parent_reply(id, 0, msg);
		return;
	}

	backup.active = 1;
	backup.requester = id;
	backup.seq++;
	backup.waiting = 1U << PROC_QUEUE | 1U << PROC_GREY;
	backup.failed[0] = '\0';
	(void)strlcpy(backup.path, path, sizeof(backup.path));
	imsgev_compose(parent_child(PROC_QUEUE), IMSG_BACKUP_COPY,
	    backup.seq, 0, -1, NULL, 0);
	imsgev_compose(parent_child(PROC_GREY), IMSG_BACKUP_COPY,
	    backup.seq, 0, -1, NULL, 0);
	evtimer_add(&backup.timer, &tv);
}

/* A copy is done, or failed; an answer to an abandoned backup is late. */
void
backup_answer(struct imsgev *iev, struct imsg *imsg)
{
	uint32_t	 bit = 1U << iev->peer;
	char		*reason;

	if (iev->peer != PROC_QUEUE && iev->peer != PROC_GREY)
		fatalx("backup answer from %s", proc_name(iev->peer));
	reason = imsg_expect_string(imsg);
	if ((imsg_get_type(imsg) == IMSG_BACKUP_DONE) != (reason[0] == '\0'))
		fatalx("malformed backup answer from %s",
		    proc_name(iev->peer));
	if (!backup.active || imsg_get_id(imsg) != backup.seq ||
	    (backup.waiting & bit) == 0) {
		log_debug("backup: late answer from %s", proc_name(iev->peer));
		free(reason);
		return;
	}
	backup.waiting &= ~bit;
	if (reason[0] != '\0' && backup.failed[0] == '\0')
		backup_msg(backup.failed, sizeof(backup.failed),
		    "%s process: %s", proc_name(iev->peer), reason);
	free(reason);
	if (backup.waiting == 0)
		parent_backup_end();
}

static void
parent_backup_timeout(int fd, short event, void *arg)
{
	char	 msg[MESSAGE_LEN];

	(void)fd;
	(void)event;
	(void)arg;
	if (backup.writer_pid > 0) {
		backup_abort();
		backup_msg(msg, sizeof(msg), "backup failed: %s: the archive "
		    "was not written within %d seconds", backup.path,
		    WRITER_TIMEOUT);
		parent_backup_finish(0, msg);
		return;
	}
	backup_msg(backup.failed, sizeof(backup.failed),
	    "the %s process did not finish its copy within %d seconds",
	    proc_name(backup.waiting & 1U << PROC_QUEUE ? PROC_QUEUE :
	    PROC_GREY), BACKUP_TIMEOUT);
	backup.waiting = 0;
	parent_backup_end();
}

static void
parent_backup_end(void)
{
	char	 msg[MESSAGE_LEN];

	evtimer_del(&backup.timer);
	if (backup.failed[0] == '\0' && parent_backup_fork() == 0)
		return;		/* the writer answers */
	backup_msg(msg, sizeof(msg), "backup failed: %s", backup.failed);
	parent_backup_finish(0, msg);
}

/*
 * The archive is made by a child of the parent under a temporary name
 * the parent chose, so that the parent can remove it whatever becomes
 * of the child, and renamed by the parent once the child says it is
 * complete and on disk.  The signals libevent catches are blocked
 * across fork(): its handlers, still in place in the child until reset,
 * would tell the parent of the child's signals.
 */
static int
parent_backup_fork(void)
{
	struct timeval	 tv = { WRITER_TIMEOUT, 0 };
	sigset_t	 mask, saved;
	pid_t		 pid;
	int		 fds[2], fd;

	/* backup.tmp names a file to remove only once mkstemp made it. */
	if ((size_t)snprintf(backup.tmp, sizeof(backup.tmp), "%s.XXXXXX",
	    backup.path) >= sizeof(backup.tmp)) {
		backup.tmp[0] = '\0';
		backup_msg(backup.failed, sizeof(backup.failed),
		    "%s: path too long", backup.path);
		return (-1);
	}
	if ((fd = mkstemp(backup.tmp)) == -1) {
		backup_msg(backup.failed, sizeof(backup.failed), "%s: %s",
		    backup.tmp, strerror(errno));
		backup.tmp[0] = '\0';
		return (-1);
	}
	if (fchmod(fd, 0600) == -1 || pipe2(fds, O_CLOEXEC) == -1) {
		backup_msg(backup.failed, sizeof(backup.failed), "%s: %s",
		    backup.tmp, strerror(errno));
		(void)close(fd);
		return (-1);	/* parent_backup_finish removes it */
	}
	(void)sigemptyset(&mask);
	(void)sigaddset(&mask, SIGTERM);
	(void)sigaddset(&mask, SIGINT);
	(void)sigaddset(&mask, SIGHUP);
	(void)sigaddset(&mask, SIGCHLD);
	(void)sigprocmask(SIG_BLOCK, &mask, &saved);
	if ((pid = fork()) == 0) {
		(void)signal(SIGTERM, SIG_DFL);
		(void)signal(SIGINT, SIG_DFL);
		(void)signal(SIGHUP, SIG_DFL);
		(void)signal(SIGCHLD, SIG_DFL);
		(void)sigprocmask(SIG_SETMASK, &saved, NULL);
		backup_writer_main(fds[1], fd);
		/* NOTREACHED */
	}
	(void)sigprocmask(SIG_SETMASK, &saved, NULL);
	(void)close(fds[1]);
	(void)close(fd);
	if (pid == -1) {
		backup_msg(backup.failed, sizeof(backup.failed), "fork: %s",
		    strerror(errno));
		(void)close(fds[0]);
		return (-1);	/* parent_backup_finish removes the file */
	}
	backup.writer_pid = pid;
	event_set(&backup.writer, fds[0], EV_READ, parent_backup_written,
	    NULL);
	event_add(&backup.writer, NULL);
	evtimer_add(&backup.timer, &tv);
	return (0);
}

/*
 * The writer keeps only its answer pipe and the archive, and answers
 * with one write of less than PIPE_BUF: "1" and the archive's size, or
 * "0" and why not.
 */
static void
backup_writer_main(int answer, int archive)
{
	char	 msg[MESSAGE_LEN];
	int	 rc;

	if (!log_on_stderr())
		closelog();
	if ((answer = fcntl(answer, F_DUPFD, WRITER_ARCHIVE_FD + 1)) == -1 ||
	    (archive = fcntl(archive, F_DUPFD, WRITER_ARCHIVE_FD + 1)) == -1 ||
	    dup2(answer, WRITER_ANSWER_FD) == -1 ||
	    dup2(archive, WRITER_ARCHIVE_FD) == -1)
		_exit(1);
	closefrom(WRITER_ARCHIVE_FD + 1);
	if (!log_on_stderr())
		log_init(0, LOG_MAIL);
	log_procinit("backup");
	setproctitle("backup writer");
	rc = backup_archive(WRITER_ARCHIVE_FD, msg + 1, sizeof(msg) - 1);
	msg[0] = rc == 0 ? '1' : '0';
	(void)write(WRITER_ANSWER_FD, msg, strlen(msg));
	_exit(rc == 0 ? 0 : 1);
}

/*
 * The writer's answer; nothing at all when it died.  SIGCHLD reaps it,
 * and backup_reaped says how it ended if that was not normally.
 */
static void
parent_backup_written(int fd, short event, void *arg)
{
	char	 msg[MESSAGE_LEN], answer[MESSAGE_LEN];
	ssize_t	 n;

	(void)event;
	(void)arg;
	evtimer_del(&backup.timer);
	backup.writer_pid = 0;
	while ((n = read(fd, answer, sizeof(answer) - 1)) == -1 &&
	    errno == EINTR)
		;
	(void)close(fd);
	if (n > 0)
		answer[n] = '\0';
	if (n <= 0 || (answer[0] != '0' && answer[0] != '1'))
		backup_msg(msg, sizeof(msg), "backup failed: %s: the writer "
		    "died", backup.path);
	else if (answer[0] == '0')
		backup_msg(msg, sizeof(msg), "backup failed: %s: %s",
		    backup.path, answer + 1);
	else if (rename(backup.tmp, backup.path) == -1)
		backup_msg(msg, sizeof(msg), "backup failed: %s: %s",
		    backup.path, strerror(errno));
	else {
		backup.tmp[0] = '\0';
		backup_msg(msg, sizeof(msg), "%s: %s", backup.path,
		    answer + 1);
		parent_backup_finish(1, msg);
		return;
	}
	parent_backup_finish(0, msg);
}

/* The writer is stopped and its file removed: a timeout, or shutdown. */
void
backup_abort(void)
{
	if (backup.writer_pid <= 0)
		return;
	(void)kill(backup.writer_pid, SIGKILL);
	backup.writer_pid = 0;
	event_del(&backup.writer);
	(void)close(EVENT_FD(&backup.writer));
	evtimer_del(&backup.timer);
	if (unlink(backup.tmp) == -1 && errno != ENOENT)
		log_warn("backup: %s", backup.tmp);
	backup.tmp[0] = '\0';
}

/* A process of the parent's that is none of its children ended. */
void
backup_reaped(pid_t pid, int status)
{
	char	 how[128];

	if (WIFEXITED(status) && WEXITSTATUS(status) <= 1)
		return;
	log_warnx("backup writer (pid %ld) %s", (long)pid,
	    wait_status_string(status, how, sizeof(how)));
}

static void
parent_backup_finish(int ok, const char *msg)
{
	if (backup.tmp[0] != '\0' && unlink(backup.tmp) == -1 &&
	    errno != ENOENT)
		log_warn("backup: %s", backup.tmp);
	backup.tmp[0] = '\0';
	if (ok)
		log_info("backup written: %s", msg);
	else
		log_warnx("%s", msg);
	parent_reply(backup.requester, ok, msg);
	parent_backup_clean();
	backup.active = 0;
}

/* <state>/backup, or a file in it; -1 when too long. */
static int
backup_state_path(char *buf, size_t len, const char *file)
{
	int	 n;

	n = snprintf(buf, len, "%s/backup%s%s", env->state_dir,
	    file != NULL ? "/" : "", file != NULL ? file : "");
	return (n < 0 || (size_t)n >= len ? -1 : 0);
}

static void
parent_backup_clean(void)
{
	const char	*files[] = { "queue.mdb", "grey.mdb" };
	char		 path[PATH_MAX];
	size_t		 i;

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		if (backup_state_path(path, sizeof(path), files[i]) == 0 &&
		    unlink(path) == -1 && errno != ENOENT)
			log_warn("backup: %s", path);
	if (backup_state_path(path, sizeof(path), NULL) == 0 &&
	    rmdir(path) == -1 && errno != ENOENT)
		log_warn("backup: %s", path);
}

/*
 * The archive: MANIFEST (where each file came from), state/queue.mdb,
 * state/grey.mdb, etc/smarthostd.conf, and under files/ by their
 * absolute paths the files the configuration names, written to fd and
 * synced.  On success msg is "N bytes"; otherwise the reason.
 */
static int
backup_archive(int fd, char *msg, size_t len)
{
	struct string_list	 named;
	struct string_entry	*se;
	struct stat		 sb;
	FILE			*manifest = NULL;
	char			*text = NULL;
	char			 src[PATH_MAX], name[PATH_MAX];
	char			 why[MESSAGE_LEN - 64];
	size_t			 text_len = 0;
	time_t			 now = time(NULL);
	int			 rc = -1;

	TAILQ_INIT(&named);
	why[0] = '\0';
	if ((manifest = open_memstream(&text, &text_len)) == NULL) {
		(void)strlcpy(why, "out of memory", sizeof(why));
		goto done;
	}
	(void)fprintf(manifest, "# smarthostd %s backup of %s, %lld\n"
	    "# name in the archive, then where it came from\n",
	    SMARTHOSTD_VERSION, env->hostname, (long long)now);

	if (backup_state_path(src, sizeof(src), "queue.mdb") == -1 ||
	    backup_tar_file(fd, manifest, "state/queue.mdb", src,
	    env->state_dir, why, sizeof(why)) == -1 ||
	    backup_state_path(src, sizeof(src), "grey.mdb") == -1 ||
	    backup_tar_file(fd, manifest, "state/grey.mdb", src,
	    env->state_dir, why, sizeof(why)) == -1 ||
	    backup_tar_file(fd, manifest, "etc/smarthostd.conf", env->conffile,
	    NULL, why, sizeof(why)) == -1)
		goto done;

	backup_named_files(&named);
	TAILQ_FOREACH(se, &named, entry) {
		if ((size_t)snprintf(name, sizeof(name), "files%s%s",
		    se->value[0] == '/' ? "" : "/", se->value) >=
		    sizeof(name)) {
			backup_msg(why, sizeof(why), "%s: path too long",
			    se->value);
			goto done;
		}
		if (backup_tar_file(fd, manifest, name, se->value, NULL, why,
		    sizeof(why)) == -1) {
			if (errno != ENOENT)
				goto done;
			/* A list's file may be missing: the daemon runs on. */
			log_warnx("backup: %s", why);
			(void)fprintf(manifest, "# missing: %s\n", se->value);
			why[0] = '\0';
		}
	}

	if (fclose(manifest) == EOF) {
		manifest = NULL;
		(void)strlcpy(why, "MANIFEST: out of memory", sizeof(why));
		goto done;
	}
	manifest = NULL;
	if (backup_tar_header(fd, "MANIFEST", text_len, now, why,
	    sizeof(why)) == -1 ||
	    backup_write(fd, text, text_len, why, sizeof(why)) == -1 ||
	    backup_write(fd, NULL, (TAR_BLOCK - text_len % TAR_BLOCK) %
	    TAR_BLOCK + 2 * TAR_BLOCK, why, sizeof(why)) == -1)
		goto done;
	if (fsync(fd) == -1 || fstat(fd, &sb) == -1 || close(fd) == -1) {
		backup_msg(why, sizeof(why), "%s", strerror(errno));
		goto done;
	}
	backup_msg(msg, len, "%lld bytes", (long long)sb.st_size);
	rc = 0;
 done:
	if (manifest != NULL)
		(void)fclose(manifest);
	free(text);
	while ((se = TAILQ_FIRST(&named)) != NULL) {
		TAILQ_REMOVE(&named, se, entry);
		free(se->value);
		free(se);
	}
	if (rc == -1)
		(void)strlcpy(msg, why, len);
	return (rc);
}

/*
 * Every file the configuration includes or names, once; the maildir is
 * not one.
 */
static void
backup_named_files(struct string_list *named)
{
	struct table		*t;
	struct pki		*p;
	struct blocklist	*b;
	struct action		*a;
	struct string_entry	*se;

	TAILQ_FOREACH(se, &env->includes, entry)
		backup_name_add(named, se->value);
	TAILQ_FOREACH(t, &env->tables, entry)
		if (t->source == TABLE_FILE)
			backup_name_add(named, t->path);
	TAILQ_FOREACH(p, &env->pkis, entry) {
		backup_name_add(named, p->cert_file);
		backup_name_add(named, p->key_file);
	}
	TAILQ_FOREACH(b, &env->blocklists, entry)
		backup_name_add(named, b->path);
	TAILQ_FOREACH(a, &env->actions, entry)
		backup_name_add(named, a->ca_file);
}

static void
backup_name_add(struct string_list *named, const char *path)
{
	struct string_entry	*se;
	char			 dir[PATH_MAX], real[PATH_MAX];
	const char		*slash;

	if (path[0] == '\0')
		return;
	/*
	 * "include ../common.conf" is /etc/smarthostd/../common.conf: tar
	 * refuses a member named with "..", so the directory is resolved.
	 * The file's own name stays, a link or not, as the restore must
	 * put it back where the configuration names it.
	 */
	if ((slash = strrchr(path, '/')) != NULL && slash != path &&
	    (size_t)(slash - path) < sizeof(dir)) {
		(void)memcpy(dir, path, slash - path);
		dir[slash - path] = '\0';
		if (realpath(dir, real) != NULL) {
			if (strcmp(real, "/") == 0)
				real[0] = '\0';
			if (strlcat(real, slash, sizeof(real)) < sizeof(real))
				path = real;
		}
	}
	TAILQ_FOREACH(se, named, entry)
		if (strcmp(se->value, path) == 0)
			return;
	if (string_list_add(named, path) == -1)
		fatal("backup");
}

/*
 * One regular file into the archive as name, and a line of the
 * manifest saying where it came from: from, or src.  A copy in the
 * state directory is opened without following links: queue and grey
 * could have put one there.  On error errno is kept for the caller.
 * (O_NONBLOCK does nothing to the reads of a regular file.)
 */
static int
backup_tar_file(int out, FILE *manifest, const char *name, const char *src,
    const char *from, char *why, size_t len)
{
	struct stat	 sb;
	unsigned char	 buf[64 * 1024];
	uint64_t	 left;
	ssize_t		 n;
	int		 fd, saved;

	/* O_NONBLOCK: a FIFO in a file's place must not hang the writer. */
	if ((fd = open(src, O_RDONLY | O_CLOEXEC | O_NONBLOCK |
	    (from != NULL ? O_NOFOLLOW : 0))) == -1 || fstat(fd, &sb) == -1) {
		saved = errno;
		backup_msg(why, len, "%s: %s", src, strerror(errno));
		if (fd != -1)
			(void)close(fd);
		errno = saved;
		return (-1);
	}
	if (!S_ISREG(sb.st_mode)) {
		(void)close(fd);
		backup_msg(why, len, "%s: not a regular file", src);
		errno = EINVAL;
		return (-1);
	}
	if (backup_tar_header(out, name, sb.st_size, sb.st_mtime, why,
	    len) == -1) {
		(void)close(fd);
		errno = EINVAL;
		return (-1);
	}
	for (left = sb.st_size; left > 0; left -= n) {
		n = read(fd, buf, left < sizeof(buf) ? left : sizeof(buf));
		if (n <= 0) {
			backup_msg(why, len, "%s: %s", src, n == 0 ?
			    "changed while being read" : strerror(errno));
			(void)close(fd);
			errno = EIO;
			return (-1);
		}
		if (backup_write(out, buf, n, why, len) == -1) {
			(void)close(fd);
			return (-1);
		}
	}
	(void)close(fd);
	/* The data ends on a block boundary. */
	if (backup_write(out, NULL, (TAR_BLOCK - sb.st_size %
	    TAR_BLOCK) % TAR_BLOCK, why, len) == -1)
		return (-1);
	if (from != NULL)
		(void)fprintf(manifest, "%s\t%s/%s\n", name, from,
		    strrchr(src, '/') + 1);
	else
		(void)fprintf(manifest, "%s\t%s\n", name, src);
	return (0);
}

/*
 * A ustar header: a name of up to 100 bytes, or up to 255 split at a
 * slash into prefix and name; sizes below 8 GB.  Every entry is mode
 * 0600, owned by root.
 */
static int
backup_tar_header(int out, const char *name, uint64_t size, time_t mtime,
    char *why, size_t len)
{
	unsigned char	 h[TAR_BLOCK];
	const char	*split = NULL;
	size_t		 nlen = strlen(name), i, sum = 0;

	if (size > 077777777777ULL) {
		backup_msg(why, len, "%s: too large for a tar archive",
		    name);
		return (-1);
	}
	memset(h, 0, sizeof(h));
	if (nlen <= 100)
		memcpy(h, name, nlen);
	else {
		for (i = nlen - 101; i < nlen && i <= 155; i++)
			if (name[i] == '/') {
				split = name + i;
				break;
			}
		if (split == NULL || split[1] == '\0') {
			backup_msg(why, len, "%s: name too long for a tar "
			    "archive", name);
			return (-1);
		}
		memcpy(h + 345, name, split - name);
		memcpy(h, split + 1, nlen - (split - name) - 1);
	}
	backup_octal(h + 100, 8, 0600);
	backup_octal(h + 108, 8, 0);
	backup_octal(h + 116, 8, 0);
	backup_octal(h + 124, 12, size);
	backup_octal(h + 136, 12, mtime > 0 ? (uint64_t)mtime : 0);
	h[156] = '0';
	memcpy(h + 257, "ustar", 6);
	memcpy(h + 263, "00", 2);
	memcpy(h + 265, "root", 4);
	memcpy(h + 297, "root", 4);
	memset(h + 148, ' ', 8);
	for (i = 0; i < sizeof(h); i++)
		sum += h[i];
	backup_octal(h + 148, 7, sum);
	h[155] = ' ';
	return (backup_write(out, h, sizeof(h), why, len));
}

/* Write data, or when data is NULL that many zero bytes. */
static int
backup_write(int out, const void *data, size_t size, char *why,
    size_t len)
{
	static const unsigned char	 zero[TAR_BLOCK];
	const unsigned char		*p = data;
	size_t				 chunk;
	ssize_t				 n;

	while (size > 0) {
		chunk = data != NULL ? size : size < sizeof(zero) ? size :
		    sizeof(zero);
		if ((n = write(out, data != NULL ? p : zero, chunk)) == -1) {
			if (errno == EINTR)
				continue;
			backup_msg(why, len, "write: %s", strerror(errno));
			return (-1);
		}
		size -= n;
		if (data != NULL)
			p += n;
	}
	return (0);
}

/* A tar number field: octal digits, zero-padded, then a NUL. */
static void
backup_octal(unsigned char *field, size_t size, uint64_t value)
{
	size_t	 i;

	field[size - 1] = '\0';
	for (i = size - 1; i > 0; i--) {
		field[i - 1] = '0' + (value & 7);
		value >>= 3;
	}
}

/* A message cut short to fit, as answers and the log take it. */
static void
backup_msg(char *buf, size_t len, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	(void)vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}
