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
 * The queue process: owner of queue.mdb.  smtp hands over each message
 * as an encoded envelope with the body's descriptor; we store both and
 * only then answer, so that smtp's "250 queued" is a promise kept by an
 * fsync.  Messages that arrive in the same event-loop turn share one
 * write transaction and so one fsync (group commit).
 *
 * queue.mdb is one LMDB file (MDB_NOSUBDIR) with its lock file beside
 * it, in the state directory, with two named databases keyed by the
 * 16-hex-digit message id: "envelope" (envelope.c records) and "body"
 * (the message as smtp received it, CRLF lines, dot-unstuffed).
 * scheduler.c decides when each message goes out, and relay.c takes it
 * there.
 *
 * The quarantine is no place of its own: a message whose envelope has
 * ENVELOPE_QUARANTINE (smtp sets it when the scanner says so) is stored
 * as any other and held by the scheduler until smarthostctl releases it
 * (the flag cleared in queue.mdb) or deletes it, or quarantine-expire
 * has passed and the scheduler deletes it the same way.
 */

#include <sys/types.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "smarthostd.h"

#define QUEUE_DB_FILE		"queue.mdb"
#define QUEUE_MAXDBS		8	/* room for schedule, quarantine */
#define QUEUE_DISK_INTERVAL	5	/* seconds between free space checks */
/* A bigger group is split: one transaction must not dirty too much. */
#define QUEUE_BATCH_BYTES	(128ULL * 1024 * 1024)
/* Messages taken from the socket at once; each holds a descriptor. */
#define QUEUE_DRAIN_MAX		256
#define QUEUE_WALK_PAGE		256	/* messages per turn of show queue */
#define QUEUE_HEADERS_MAX	(64 * 1024)
#define QUEUE_TEXT_CHUNK	4096

/* A message received from smtp, waiting for its commit. */
struct queue_msg {
	TAILQ_ENTRY(queue_msg)	 entry;
	uint32_t		 session;
	char			 id[QUEUE_ID_LEN];
	char			 sender[SMTP_ADDR_LEN];
	uint32_t		 nrcpt;
	uint32_t		 flags;		/* the envelope's */
	int64_t			 arrived;	/* the envelope's */
	unsigned char		*record;
	size_t			 record_len;
	uint64_t		 body_size;
	int			 fd;
	enum queue_status	 status;
};
TAILQ_HEAD(queue_msgs, queue_msg);

/* One smarthostctl show queue in progress, a page per turn. */
struct queue_walk {
	TAILQ_ENTRY(queue_walk)	 entry;
	uint32_t		 client;
	int			 quarantine;	/* show quarantine: held only */
	int			 started;
	char			 last[QUEUE_ID_LEN];
};
TAILQ_HEAD(queue_walks, queue_walk);

static struct {
	uint64_t	 accepted;
	uint64_t	 bytes_accepted;
	uint64_t	 commits;		/* of accepted messages */
	uint64_t	 delivery_commits;	/* of delivery outcomes */
	uint64_t	 batch_max;
	uint64_t	 nospace;
	uint64_t	 tempfail;
	uint64_t	 removed;
	uint64_t	 released;	/* from the quarantine */
	uint64_t	 deleted;	/* from the quarantine */
	uint64_t	 expired;	/* from the quarantine */
} stats;

/* How a message leaves the quarantine. */
enum quarantine_end {
	QUARANTINE_RELEASE,	/* on request, to be relayed */
	QUARANTINE_DELETE,	/* on request */
	QUARANTINE_EXPIRE	/* held longer than quarantine-expire */
};

static MDB_env			*queue_env;
static MDB_dbi			 dbi_envelope, dbi_body;
static char			 queue_dir[PATH_MAX];
static struct queue_msgs	 pending = TAILQ_HEAD_INITIALIZER(pending);
static struct queue_walks	 walks = TAILQ_HEAD_INITIALIZER(walks);
/* Room, besides the body, that a commit may need for pages and meta. */
#define QUEUE_EIO_SLACK		(1024 * 1024)

static struct event		 ev_commit, ev_disk, ev_walk;
static int			 disk_ok = -1;	/* -1: not told yet */

static void	 queue_dispatch_peer(struct imsgev *, struct imsg *);
static void	 queue_config_commit(struct smarthost_config *);
static void	 queue_shutdown(void);
static void	 queue_peer_up(enum smarthost_proc);
static void	 queue_events_init(void);
static void	 queue_open(void);
static void	 queue_dispatch_parent(struct imsgev *, struct imsg *);
static void	 queue_backup(struct imsgev *, uint32_t);
static void	 queue_message_received(struct imsg *);
static void	 queue_commit_pending(int, short, void *);
static void	 queue_drain_smtp(void);
static void	 queue_flush(void);
static void	 queue_commit_batch(struct queue_msg **, size_t);
static int	 queue_txn_write(struct queue_msg **, size_t);
static int	 queue_put_message(MDB_txn *, struct queue_msg *);
static int	 queue_read_body(int, void *, uint64_t);
static enum queue_status queue_status_of(int, uint64_t);
static void	 queue_msg_free(struct queue_msg *);
static int	 queue_txn_begin(unsigned int, MDB_txn **);
static void	 queue_disk_timer(int, short, void *);
static void	 queue_disk_check(void);
static void	 queue_dispatch_control(struct imsg *);
static void	 queue_walk_run(int, short, void *);
static int	 queue_walk_page(struct queue_walk *);
static int	 queue_envelope_get(MDB_txn *, MDB_val *, struct envelope *,
		    char *, size_t);
static int	 queue_ctl_envelope(uint32_t, MDB_txn *, MDB_val *,
		    struct envelope *);
static void	 queue_show_message(uint32_t, const char *);
static void	 queue_message_text(FILE *, MDB_txn *, MDB_val *,
		    const struct envelope *);
static void	 queue_remove(uint32_t, const char *);
static int	 queue_is_quarantined(const char *);
static void	 queue_quarantine(uint32_t, const char *, int);
static int	 queue_quarantine_end(const char *, enum quarantine_end,
		    char *, size_t);
static int	 queue_envelope_put(MDB_txn *, const struct envelope *,
		    unsigned int);
static int	 queue_message_del(MDB_txn *, MDB_val *);
static void	 queue_show_stats(uint32_t);
static void	 queue_stat_send(const char *, uint64_t, void *);
static void	 text_escaped(FILE *, const unsigned char *, size_t);

static const struct proc_handlers	 queue_handlers = {
	.parent =		queue_dispatch_parent,
	.peer =			queue_dispatch_peer,
	.config_commit =	queue_config_commit,
	.shutdown =		queue_shutdown,
	.peer_up =		queue_peer_up
};

void
queue_main(void)
{
	if (pledge("stdio rpath wpath cpath flock recvfd inet", NULL) == -1)
		fatal("pledge");
	proc_child_run(&queue_handlers);
}

/* Timers need the event base, which proc_child_run() makes. */
static void
queue_events_init(void)
{
	static int	 done;

	if (done)
		return;
	evtimer_set(&ev_commit, queue_commit_pending, NULL);
	evtimer_set(&ev_disk, queue_disk_timer, NULL);
	evtimer_set(&ev_walk, queue_walk_run, NULL);
	done = 1;
}

static void
queue_dispatch_peer(struct imsgev *iev, struct imsg *imsg)
{
	queue_events_init();
	switch (iev->peer) {
	case PROC_SMTP:
		if (imsg_get_type(imsg) != IMSG_QUEUE_MESSAGE)
			fatalx("unexpected imsg %u from smtp",
			    imsg_get_type(imsg));
		queue_message_received(imsg);
		break;
	case PROC_CONTROL:
		queue_dispatch_control(imsg);
		break;
	default:
		fatalx("unexpected imsg %u from %s", imsg_get_type(imsg),
		    proc_name(iev->peer));
	}
}

static void
queue_dispatch_parent(struct imsgev *iev, struct imsg *imsg)
{
	queue_events_init();
	switch (imsg_get_type(imsg)) {
	case IMSG_BACKUP_COPY:
		imsg_expect_size(imsg, 0);
		queue_backup(iev, imsg_get_id(imsg));
		break;
	default:
		fatalx("unexpected imsg %u from the parent",
		    imsg_get_type(imsg));
	}
}

/*
 * The parent's backup: a consistent, compacted copy of queue.mdb in
 * backup/ of the state directory, which the parent made for us and
 * then archives.  Messages received and not yet committed go in first.
 * The copy is a read transaction: deliveries could go on, but this
 * process waits for the copy to finish.
 */
static void
queue_backup(struct imsgev *iev, uint32_t id)
{
	char	 path[PATH_MAX], why[MESSAGE_LEN];
	int	 rc;

	why[0] = '\0';
	if ((size_t)snprintf(path, sizeof(path), "%s/backup/%s",
	    strcmp(queue_dir, "/") == 0 ? "" : queue_dir, QUEUE_DB_FILE) >=
	    sizeof(path))
		(void)strlcpy(why, "queue.mdb: backup path too long",
		    sizeof(why));
	else if (queue_env == NULL)
		(void)strlcpy(why, "queue.mdb is not open yet", sizeof(why));
	else {
		queue_flush();
		if ((rc = mdb_env_copy2(queue_env, path, MDB_CP_COMPACT)) != 0)
			(void)snprintf(why, sizeof(why), "queue.mdb: copy: %s",
			    mdb_strerror(rc));
	}
	if (why[0] != '\0')
		log_warnx("backup: %s", why);
	imsgev_compose(iev, why[0] == '\0' ? IMSG_BACKUP_DONE :
	    IMSG_BACKUP_FAILED, id, 0, -1, why, strlen(why) + 1);
}

/*
 * The environment is opened after the first configuration, which names
 * the state directory; it is fixed for the daemon's lifetime.  A reload
 * may grow or shrink the map.
 */
static void
queue_config_commit(struct smarthost_config *old)
{
	int	 rc;

	queue_events_init();
	if (queue_env == NULL) {
		queue_open();
		queue_disk_check();
		scheduler_init();
		return;
	}
	scheduler_config_changed();
	if (old != NULL && old->queue.map_size != env->queue.map_size) {
		if ((rc = mdb_env_set_mapsize(queue_env,
		    env->queue.map_size)) != 0)
			log_warnx("queue.mdb: cannot resize the map to %llu "
			    "bytes: %s", (unsigned long long)env->queue.map_size,
			    mdb_strerror(rc));
		else
			log_info("queue.mdb: map size now %llu bytes",
			    (unsigned long long)env->queue.map_size);
	}
	queue_disk_check();
}

/*
 * Where the state directory is from here.  Started as root, we are
 * chrooted into it (parent.c) and it is "/"; otherwise we see it by its
 * configured, absolute path.  The configured path does not resolve
 * inside the chroot, which tells the two apart without a flag: nothing
 * but our own processes writes to the state directory, so no copy of
 * that path appears in it.
 */
static void
queue_open(void)
{
	MDB_txn		*txn;
	struct stat	 sb;
	char		 path[PATH_MAX];
	int		 rc;

	if (stat(env->state_dir, &sb) == 0 && S_ISDIR(sb.st_mode))
		(void)strlcpy(queue_dir, env->state_dir, sizeof(queue_dir));
	else
		(void)strlcpy(queue_dir, "/", sizeof(queue_dir));
	if ((size_t)snprintf(path, sizeof(path), "%s/%s",
	    strcmp(queue_dir, "/") == 0 ? "" : queue_dir, QUEUE_DB_FILE) >=
	    sizeof(path))
		fatalx("queue.mdb: path too long");

	/*
	 * Durability is the point of this file: never MDB_NOSYNC,
	 * MDB_NOMETASYNC or MDB_WRITEMAP here.
	 */
	if ((rc = mdb_env_create(&queue_env)) != 0 ||
	    (rc = mdb_env_set_maxdbs(queue_env, QUEUE_MAXDBS)) != 0 ||
	    (rc = mdb_env_set_mapsize(queue_env, env->queue.map_size)) != 0 ||
	    (rc = mdb_env_open(queue_env, path, MDB_NOSUBDIR, 0600)) != 0)
		fatalx("%s: %s", path, mdb_strerror(rc));
	if ((rc = mdb_txn_begin(queue_env, NULL, 0, &txn)) != 0 ||
	    (rc = mdb_dbi_open(txn, "envelope", MDB_CREATE,
	    &dbi_envelope)) != 0 ||
	    (rc = mdb_dbi_open(txn, "body", MDB_CREATE, &dbi_body)) != 0 ||
	    (rc = mdb_txn_commit(txn)) != 0)
		fatalx("%s: %s", path, mdb_strerror(rc));
	log_debug("%s opened, map size %llu", path,
	    (unsigned long long)env->queue.map_size);
}

/*
 * A write transaction, reopening the environment when an earlier failure
 * (a failed meta page write) has left it unusable: a full disk must not
 * take the queue down for good.
 */
static int
queue_txn_begin(unsigned int flags, MDB_txn **txn)
{
	int	 rc;

	if (queue_env == NULL)
		return (EAGAIN);
	if ((rc = mdb_txn_begin(queue_env, NULL, flags, txn)) == MDB_PANIC) {
		log_warnx("queue.mdb: environment failed; reopening it");
		mdb_env_close(queue_env);
		queue_env = NULL;
		queue_open();
		rc = mdb_txn_begin(queue_env, NULL, flags, txn);
	}
	return (rc);
}

/*
 * Messages from smtp.
 */

static void
queue_message_received(struct imsg *imsg)
{
	struct queue_msg	*m;
	struct envelope		 e;
	struct stat		 sb;
	size_t			 len = imsg_get_len(imsg);
	uint32_t		 i;
	int			 fd;

	if ((fd = imsg_get_fd(imsg)) == -1)
		fatalx("smtp sent a message without its body");
	if (len == 0 || len > PROC_ENVELOPE_MAXSIZE)
		fatalx("smtp sent an envelope of %zu bytes", len);
	if ((m = calloc(1, sizeof(*m))) == NULL ||
	    (m->record = malloc(len)) == NULL)
		fatal("queue_message_received");
	(void)imsg_get_data(imsg, m->record, len);
	m->record_len = len;
	m->fd = fd;
	m->session = imsg_get_id(imsg);
	if (envelope_decode(m->record, len, &e) == -1)
		fatalx("smtp sent an invalid envelope");
	for (i = 0; i < e.nrcpt; i++)
		if (e.rcpts[i].state != RCPT_PENDING ||
		    e.rcpts[i].attempts != 0)
			fatalx("smtp sent a recipient already tried");
	if (fstat(fd, &sb) == -1)
		fatal("fstat of a message body");
	if (!S_ISREG(sb.st_mode) || (uint64_t)sb.st_size != e.body_size)
		fatalx("smtp sent a body of %lld bytes for an envelope of "
		    "%llu", (long long)sb.st_size,
		    (unsigned long long)e.body_size);
	(void)strlcpy(m->id, e.id, sizeof(m->id));
	(void)strlcpy(m->sender, e.sender, sizeof(m->sender));
	m->nrcpt = e.nrcpt;
	m->flags = e.flags;
	m->arrived = e.arrived;
	m->body_size = e.body_size;
	envelope_clear(&e);

	TAILQ_INSERT_TAIL(&pending, m, entry);
	if (!evtimer_pending(&ev_commit, NULL)) {
		struct timeval	 now = { 0, 0 };

		evtimer_add(&ev_commit, &now);
	}
}

/*
 * Group commit.  Everything that arrived since the last commit goes into
 * one transaction; while its fsync runs, new messages wait in the socket
 * and form the next group.
 */
static void
queue_commit_pending(int fd, short event, void *arg)
{
	(void)fd;
	(void)event;
	(void)arg;
	queue_drain_smtp();
	queue_flush();
	queue_disk_check();
}

/*
 * Take every message already waiting in the smtp socket.  A read stops
 * at each message that carries a descriptor, so the event loop alone
 * would bring one message per turn and a group of two; draining here
 * makes the group everything that came in during the last commit.
 * EOF and errors are left for the event loop to find.
 */
static void
queue_drain_smtp(void)
{
	struct imsgev	*smtp = iev_peer[PROC_SMTP];
	struct pollfd	 pfd;
	struct imsg	 imsg;
	ssize_t		 n;
	int		 count = 0;

	while (smtp != NULL && smtp->ibuf.fd != -1) {
		while (count < QUEUE_DRAIN_MAX &&
		    (n = imsg_get(&smtp->ibuf, &imsg)) != 0) {
			if (n == -1)
				fatal("bad imsg from smtp");
			queue_dispatch_peer(smtp, &imsg);
			imsg_free(&imsg);
			count++;
		}
		if (count >= QUEUE_DRAIN_MAX)
			break;
		pfd.fd = smtp->ibuf.fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, 0) <= 0 || (pfd.revents & POLLIN) == 0)
			break;
		if (imsgbuf_read(&smtp->ibuf) <= 0)
			break;
	}
}

static void
queue_flush(void)
{
	struct queue_msg	*m, **batch = NULL;
	struct queue_result	 res;
	struct imsgev		*smtp = iev_peer[PROC_SMTP];
	size_t			 i, n, size = 0;
	uint64_t		 bytes;

	while (!TAILQ_EMPTY(&pending)) {
		n = 0;
		bytes = 0;
		TAILQ_FOREACH(m, &pending, entry) {
			if (n > 0 && bytes + m->body_size > QUEUE_BATCH_BYTES)
				break;
			bytes += m->body_size;
			n++;
		}
		if (n > size) {
			free(batch);
			if ((batch = calloc(n, sizeof(*batch))) == NULL)
				fatal("queue_flush");
			size = n;
		}
		for (i = 0; i < n; i++) {
			batch[i] = TAILQ_FIRST(&pending);
			TAILQ_REMOVE(&pending, batch[i], entry);
		}
		queue_commit_batch(batch, n);

		for (i = 0; i < n; i++) {
			m = batch[i];
			memset(&res, 0, sizeof(res));
			res.status = m->status;
			(void)strlcpy(res.id, m->id, sizeof(res.id));
			if (smtp == NULL || imsgev_compose(smtp,
			    IMSG_QUEUE_RESULT, m->session, 0, -1, &res,
			    sizeof(res)) == -1)
				log_warnx("%s: cannot answer smtp", m->id);
			queue_msg_free(m);
		}
	}
	free(batch);
}

/*
 * Commit a group; if the group fails as a whole, nothing of it was
 * written, and each message gets a transaction of its own so that one
 * that does not fit fails alone.
 */
static void
queue_commit_batch(struct queue_msg **batch, size_t n)
{
	size_t	 i;
	int	 rc;

	if ((rc = queue_txn_write(batch, n)) == 0)
		return;
	if (n > 1) {
		log_warnx("group commit of %zu messages failed: %s; "
		    "committing them one by one", n, mdb_strerror(rc));
		for (i = 0; i < n; i++)
			queue_commit_batch(&batch[i], 1);
		return;
	}
	batch[0]->status = queue_status_of(rc, batch[0]->body_size);
	if (batch[0]->status == QUEUE_NOSPACE)
		stats.nospace++;
	else
		stats.tempfail++;
	log_warnx("%s: not queued: %s", batch[0]->id, mdb_strerror(rc));
}

static int
queue_txn_write(struct queue_msg **batch, size_t n)
{
	MDB_txn		*txn;
	size_t		 i, ok = 0;
	uint64_t	 bytes = 0;
	int		 rc;

	if ((rc = queue_txn_begin(0, &txn)) != 0)
		return (rc);
	for (i = 0; i < n; i++) {
		if ((rc = queue_put_message(txn, batch[i])) != 0) {
			mdb_txn_abort(txn);
			return (rc);
		}
	}
	/* The fsync that every 250 of this group waits for. */
	if ((rc = mdb_txn_commit(txn)) != 0)
		return (rc);

	stats.commits++;
	for (i = 0; i < n; i++) {
		if (batch[i]->status != QUEUE_OK) {
			stats.tempfail++;
			continue;
		}
		ok++;
		bytes += batch[i]->body_size;
		if (batch[i]->flags & ENVELOPE_QUARANTINE)
			scheduler_hold(batch[i]->id, batch[i]->arrived);
		else
			scheduler_add(batch[i]->id);
		log_info("%s: %s from <%s>, %u recipient%s, %llu bytes",
		    batch[i]->id, batch[i]->flags & ENVELOPE_QUARANTINE ?
		    "quarantined" : "queued", batch[i]->sender,
		    batch[i]->nrcpt, batch[i]->nrcpt == 1 ? "" : "s",
		    (unsigned long long)batch[i]->body_size);
	}
	stats.accepted += ok;
	stats.bytes_accepted += bytes;
	if (n > stats.batch_max)
		stats.batch_max = n;
	log_debug("commit of %zu message%s", n, n == 1 ? "" : "s");
	return (0);
}

/*
 * Put one message into the transaction.  A problem of this message alone
 * (its id taken, its body unreadable) leaves nothing of it behind and
 * sets its status; only errors that spoil the transaction are returned.
 */
static int
queue_put_message(MDB_txn *txn, struct queue_msg *m)
{
	MDB_val	 key, data;
	int	 rc;

	m->status = QUEUE_TEMPFAIL;
	key.mv_data = m->id;
	key.mv_size = QUEUE_ID_LEN - 1;
	data.mv_data = m->record;
	data.mv_size = m->record_len;
	if ((rc = mdb_put(txn, dbi_envelope, &key, &data,
	    MDB_NOOVERWRITE)) == MDB_KEYEXIST) {
		log_warnx("%s: message id already in the queue", m->id);
		return (0);
	} else if (rc != 0)
		return (rc);

	data.mv_data = NULL;
	data.mv_size = m->body_size;
	if ((rc = mdb_put(txn, dbi_body, &key, &data,
	    MDB_NOOVERWRITE | MDB_RESERVE)) == 0) {
		/* Read straight into the page LMDB will write. */
		if (queue_read_body(m->fd, data.mv_data, m->body_size) == 0) {
			m->status = QUEUE_OK;
			return (0);
		}
		log_warn("%s: cannot read the body", m->id);
		if ((rc = mdb_del(txn, dbi_body, &key, NULL)) != 0)
			return (rc);
	} else if (rc == MDB_KEYEXIST)
		log_warnx("%s: a body with this id is already stored", m->id);
	else
		return (rc);
	return (mdb_del(txn, dbi_envelope, &key, NULL));
}

static int
queue_read_body(int fd, void *buf, uint64_t size)
{
	unsigned char	*p = buf;
	uint64_t	 off = 0;
	ssize_t		 n;

	while (off < size) {
		n = pread(fd, p + off, size - off > (1 << 20) ? (1 << 20) :
		    (size_t)(size - off), (off_t)off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return (-1);
		if (n == 0) {
			errno = EIO;	/* shorter than its envelope says */
			return (-1);
		}
		off += (uint64_t)n;
	}
	return (0);
}

/*
 * LMDB turns a short write into EIO, and a short write is what a file
 * system with less room than the pages to write gives: then the disk is
 * full, and the client is told so.
 */
static enum queue_status
queue_status_of(int rc, uint64_t size)
{
	struct statvfs	 sv;

	switch (rc) {
	case MDB_MAP_FULL:
	case ENOSPC:
	case EDQUOT:
		return (QUEUE_NOSPACE);
	case EIO:
		if (statvfs(queue_dir, &sv) == 0 &&
		    (uint64_t)sv.f_bavail * sv.f_frsize < size + QUEUE_EIO_SLACK)
			return (QUEUE_NOSPACE);
		/* FALLTHROUGH */
	default:
		return (QUEUE_TEMPFAIL);
	}
}

static void
queue_msg_free(struct queue_msg *m)
{
	if (m->fd != -1)
		(void)close(m->fd);
	free(m->record);
	free(m);
}

/*
 * SIGTERM: what smtp has already handed over is committed and answered
 * before we go, including what still waits in the socket.
 */
static void
queue_shutdown(void)
{
	struct imsgev	*smtp = iev_peer[PROC_SMTP];

	queue_events_init();
	queue_drain_smtp();
	queue_flush();
	if (smtp != NULL && smtp->ibuf.fd != -1)
		(void)imsgbuf_flush(&smtp->ibuf);
	scheduler_shutdown();
	if (queue_env != NULL) {
		mdb_env_close(queue_env);
		queue_env = NULL;
	}
}

/*
 * The free space reserve: smtp refuses MAIL while the state directory's
 * file system has less than min_free available to us.
 */
/*
 * smtp takes the disk for fine until told otherwise: tell it as soon as
 * it can be told, not at the next check, so that a daemon started on a
 * full disk refuses mail from its first session.
 */
static void
queue_peer_up(enum smarthost_proc peer)
{
	if (peer == PROC_SMTP)
		queue_disk_check();
}

static void
queue_disk_timer(int fd, short event, void *arg)
{
	(void)fd;
	(void)event;
	(void)arg;
	queue_disk_check();
}

static void
queue_disk_check(void)
{
	struct timeval	 tv = { QUEUE_DISK_INTERVAL, 0 };
	struct statvfs	 sv;
	struct imsgev	*smtp = iev_peer[PROC_SMTP];
	uint64_t	 avail;
	int		 ok;

	if (queue_env == NULL)
		return;
	evtimer_del(&ev_disk);
	evtimer_add(&ev_disk, &tv);
	/* smtp refuses MAIL until told: a free space unknown is room. */
	if (statvfs(queue_dir, &sv) == -1) {
		log_warn("statvfs %s", queue_dir);
		avail = UINT64_MAX;
	} else
		avail = (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize;
	ok = avail >= env->queue.min_free;
	if (ok == disk_ok)
		return;
	if (ok && disk_ok == 0)
		log_info("free space in the state directory back above the "
		    "reserve (%llu bytes available)",
		    (unsigned long long)avail);
	else if (!ok)
		log_warnx("free space in the state directory below the "
		    "reserve: %llu bytes available, %llu required; refusing "
		    "mail", (unsigned long long)avail,
		    (unsigned long long)env->queue.min_free);
	if (smtp == NULL || imsgev_compose(smtp, IMSG_QUEUE_DISK_OK, 0, 0, -1,
	    &ok, sizeof(ok)) == -1)
		return;
	/* Now: at a start, smtp accepts nothing until it has this. */
	(void)imsgbuf_flush(&smtp->ibuf);
	disk_ok = ok;
}

/*
 * Requests from control, on behalf of smarthostctl client imsg id.
 * control has checked the client's payload; anything odd here is a bug.
 */
static void
queue_dispatch_control(struct imsg *imsg)
{
	struct queue_walk	*w;
	uint32_t		 client = imsg_get_id(imsg);
	char			*arg;
	size_t			 n;
	int			 pause;

	switch (imsg_get_type(imsg)) {
	case IMSG_CTL_SHOW_QUEUE:
	case IMSG_CTL_SHOW_QUARANTINE:
		imsg_expect_size(imsg, 0);
		if ((w = calloc(1, sizeof(*w))) == NULL)
			fatal("show queue");
		w->client = client;
		w->quarantine =
		    imsg_get_type(imsg) == IMSG_CTL_SHOW_QUARANTINE;
		TAILQ_INSERT_TAIL(&walks, w, entry);
		if (!evtimer_pending(&ev_walk, NULL)) {
			struct timeval	 now = { 0, 0 };

			evtimer_add(&ev_walk, &now);
		}
		break;
	case IMSG_CTL_SHOW_MESSAGE:
		arg = imsg_expect_string(imsg);
		if (!envelope_id_valid(arg))
			fatalx("control sent an invalid message id");
		queue_show_message(client, arg);
		free(arg);
		break;
	case IMSG_CTL_REMOVE:
		arg = imsg_expect_string(imsg);
		if (strcmp(arg, "all") != 0 && !envelope_id_valid(arg))
			fatalx("control sent an invalid message id");
		queue_remove(client, arg);
		free(arg);
		break;
	case IMSG_CTL_QUARANTINE_RELEASE:
	case IMSG_CTL_QUARANTINE_DELETE:
		arg = imsg_expect_string(imsg);
		if (!envelope_id_valid(arg))
			fatalx("control sent an invalid message id");
		queue_quarantine(client, arg, imsg_get_type(imsg) ==
		    IMSG_CTL_QUARANTINE_RELEASE);
		free(arg);
		break;
	case IMSG_CTL_SHOW_STATS:
		imsg_expect_size(imsg, 0);
		queue_show_stats(client);
		break;
	case IMSG_CTL_SCHEDULE:
		arg = imsg_expect_string(imsg);
		if (strcmp(arg, "all") != 0 && !envelope_id_valid(arg))
			fatalx("control sent an invalid message id");
		n = scheduler_schedule(arg);
		if (n == 0 && strcmp(arg, "all") != 0)
			proc_ctl_result(client, 0, queue_is_quarantined(arg) ?
			    "message %s is quarantined; release it first" :
			    "no such message: %s", arg);
		else
			proc_ctl_result(client, 1, "%zu message%s scheduled",
			    n, n == 1 ? "" : "s");
		free(arg);
		break;
	case IMSG_CTL_PAUSE_RELAY:
	case IMSG_CTL_RESUME_RELAY:
		imsg_expect_size(imsg, 0);
		pause = imsg_get_type(imsg) == IMSG_CTL_PAUSE_RELAY;
		if (scheduler_pause(pause) == 0)
			proc_ctl_result(client, 1, "relay already %s",
			    pause ? "paused" : "running");
		else
			proc_ctl_result(client, 1, "relay %s",
			    pause ? "paused" : "resumed");
		break;
	default:
		fatalx("unexpected imsg %u from control",
		    imsg_get_type(imsg));
	}
}

/*
 * show queue: a page of messages per event-loop turn, so that a long
 * queue neither stalls the commits nor piles up in one go.
 */
static void
queue_walk_run(int fd, short event, void *arg)
{
	struct timeval		 now = { 0, 0 };
	struct queue_walk	*w;

	(void)fd;
	(void)event;
	(void)arg;
	if ((w = TAILQ_FIRST(&walks)) == NULL)
		return;
	TAILQ_REMOVE(&walks, w, entry);
	if (queue_walk_page(w) == 0) {
		/* More to come: to the back, after the others' pages. */
		TAILQ_INSERT_TAIL(&walks, w, entry);
	} else {
		proc_ctl_send(w->client, IMSG_CTL_END, NULL, 0);
		free(w);
	}
	if (!TAILQ_EMPTY(&walks))
		evtimer_add(&ev_walk, &now);
}

/* Returns 1 when the walk is complete. */
static int
queue_walk_page(struct queue_walk *w)
{
	struct ctl_queue_message	 qm;
	struct ctl_queue_rcpt		 qr;
	struct envelope			 e;
	MDB_txn				*txn = NULL;
	MDB_cursor			*cur;
	MDB_val				 key, data;
	MDB_cursor_op			 op;
	uint32_t			 i;
	int				 rc, n = 0, done = 0;

	if (queue_env == NULL)
		return (1);
	if ((rc = mdb_txn_begin(queue_env, NULL, MDB_RDONLY, &txn)) != 0) {
		log_warnx("show queue: %s", mdb_strerror(rc));
		return (1);
	}
	if ((rc = mdb_cursor_open(txn, dbi_envelope, &cur)) != 0) {
		log_warnx("show queue: %s", mdb_strerror(rc));
		mdb_txn_abort(txn);
		return (1);
	}
	if (w->started) {
		key.mv_data = w->last;
		key.mv_size = QUEUE_ID_LEN - 1;
		op = MDB_SET_RANGE;
	} else
		op = MDB_FIRST;
	for (;;) {
		if ((rc = mdb_cursor_get(cur, &key, &data, op)) != 0) {
			if (rc != MDB_NOTFOUND)
				log_warnx("show queue: %s", mdb_strerror(rc));
			done = 1;
			break;
		}
		if (op == MDB_SET_RANGE && key.mv_size == QUEUE_ID_LEN - 1 &&
		    memcmp(key.mv_data, w->last, QUEUE_ID_LEN - 1) == 0) {
			op = MDB_NEXT;
			continue;	/* sent with the last page */
		}
		op = MDB_NEXT;
		if (n == QUEUE_WALK_PAGE)
			break;
		if (key.mv_size != QUEUE_ID_LEN - 1 ||
		    envelope_decode(data.mv_data, data.mv_size, &e) == -1) {
			log_warnx("show queue: skipping an invalid record");
			continue;
		}
		/* Skipped ones count too: a page is a bounded amount of work. */
		memcpy(w->last, key.mv_data, QUEUE_ID_LEN - 1);
		w->last[QUEUE_ID_LEN - 1] = '\0';
		w->started = 1;
		n++;
		if (w->quarantine && !(e.flags & ENVELOPE_QUARANTINE)) {
			envelope_clear(&e);
			continue;
		}
		memset(&qm, 0, sizeof(qm));
		(void)strlcpy(qm.id, e.id, sizeof(qm.id));
		qm.arrived = e.arrived;
		qm.size = e.body_size;
		(void)strlcpy(qm.sender, e.sender, sizeof(qm.sender));
		qm.nrcpt = e.nrcpt;
		qm.flags = e.flags;
		proc_ctl_send(w->client, IMSG_CTL_QUEUE_MESSAGE, &qm,
		    sizeof(qm));
		for (i = 0; i < e.nrcpt; i++) {
			memset(&qr, 0, sizeof(qr));
			(void)strlcpy(qr.addr, e.rcpts[i].addr,
			    sizeof(qr.addr));
			(void)strlcpy(qr.action, e.rcpts[i].action,
			    sizeof(qr.action));
			qr.state = e.rcpts[i].state;
			qr.attempts = e.rcpts[i].attempts;
			qr.next_try = e.rcpts[i].next_try;
			(void)strlcpy(qr.last_error, e.rcpts[i].last_error,
			    sizeof(qr.last_error));
			proc_ctl_send(w->client, IMSG_CTL_QUEUE_RCPT, &qr,
			    sizeof(qr));
		}
		envelope_clear(&e);
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return (done);
}

/*
 * The envelope under key in txn.  Returns 0, 1 when there is no such
 * message (or its record does not decode), -1 when queue.mdb fails;
 * why says which.
 */
static int
queue_envelope_get(MDB_txn *txn, MDB_val *key, struct envelope *e,
    char *why, size_t len)
{
	MDB_val	 data;
	int	 rc;

	if ((rc = mdb_get(txn, dbi_envelope, key, &data)) == MDB_NOTFOUND) {
		(void)snprintf(why, len, "no such message: %.*s",
		    (int)key->mv_size, (const char *)key->mv_data);
		return (1);
	}
	if (rc != 0) {
		(void)snprintf(why, len, "queue.mdb: %s", mdb_strerror(rc));
		return (-1);
	}
	if (envelope_decode(data.mv_data, data.mv_size, e) == -1) {
		(void)snprintf(why, len, "%.*s: invalid envelope record",
		    (int)key->mv_size, (const char *)key->mv_data);
		return (1);
	}
	return (0);
}

/*
 * The envelope of a message a client asked about; when it cannot be
 * had, the client is told why and the transaction is over.
 */
static int
queue_ctl_envelope(uint32_t client, MDB_txn *txn, MDB_val *key,
    struct envelope *e)
{
	char	 why[MESSAGE_LEN];

	if (queue_envelope_get(txn, key, e, why, sizeof(why)) == 0)
		return (0);
	mdb_txn_abort(txn);
	proc_ctl_result(client, 0, "%s", why);
	return (-1);
}

/*
 * show message: the envelope as "name: value" lines, an empty line, and
 * the message's header lines, everything not printable escaped.
 */
static void
queue_show_message(uint32_t client, const char *id)
{
	struct envelope	 e;
	MDB_txn		*txn = NULL;
	MDB_val		 key;
	FILE		*f;
	char		*text = NULL, chunk[QUEUE_TEXT_CHUNK];
	size_t		 len = 0, off, n;
	int		 rc;

	if (queue_env == NULL) {
		proc_ctl_result(client, 0, "the queue is not open yet");
		return;
	}
	key.mv_data = (void *)(uintptr_t)id;
	key.mv_size = QUEUE_ID_LEN - 1;
	if ((rc = mdb_txn_begin(queue_env, NULL, MDB_RDONLY, &txn)) != 0) {
		proc_ctl_result(client, 0, "queue.mdb: %s", mdb_strerror(rc));
		return;
	}
	if (queue_ctl_envelope(client, txn, &key, &e) == -1)
		return;
	if ((f = open_memstream(&text, &len)) == NULL)
		fatal("open_memstream");
	queue_message_text(f, txn, &key, &e);
	mdb_txn_abort(txn);
	envelope_clear(&e);
	if (fclose(f) != 0)
		fatal("show message");

	/* Chunks that each fit an imsg, NUL-terminated for the checks. */
	for (off = 0; off < len; off += n) {
		n = len - off < sizeof(chunk) - 1 ? len - off :
		    sizeof(chunk) - 1;
		memcpy(chunk, text + off, n);
		chunk[n] = '\0';
		proc_ctl_send(client, IMSG_CTL_MESSAGE_TEXT, chunk, n + 1);
	}
	free(text);
	proc_ctl_send(client, IMSG_CTL_END, NULL, 0);
}

static void
queue_message_text(FILE *f, MDB_txn *txn, MDB_val *key,
    const struct envelope *e)
{
	const struct envelope_rcpt	*r;
	const unsigned char		*p, *end, *eol;
	MDB_val				 data;
	struct tm			 tm;
	time_t				 t = (time_t)e->arrived;
	char				 when[64];
	uint32_t			 i;
	size_t				 len;
	int				 rc;

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		(void)snprintf(when, sizeof(when), "%lld",
		    (long long)e->arrived);
	(void)fprintf(f, "id: %s\narrived: %s\nsize: %llu\nsender: <", e->id,
	    when, (unsigned long long)e->body_size);
	text_escaped(f, (const unsigned char *)e->sender, strlen(e->sender));
	(void)fprintf(f, ">\nclient: ");
	text_escaped(f, (const unsigned char *)e->client_addr,
	    strlen(e->client_addr));
	(void)fprintf(f, "\nclient-name: ");
	text_escaped(f, (const unsigned char *)e->client_name,
	    strlen(e->client_name));
	(void)fprintf(f, "\nhelo: ");
	text_escaped(f, (const unsigned char *)e->helo, strlen(e->helo));
	if (e->auth_user[0] != '\0') {
		(void)fprintf(f, "\nauth-user: ");
		text_escaped(f, (const unsigned char *)e->auth_user,
		    strlen(e->auth_user));
	}
	(void)fprintf(f, "\nflags:%s%s%s%s%s\n",
	    e->flags & ENVELOPE_8BITMIME ? " 8bitmime" : "",
	    e->flags & ENVELOPE_TLS ? " tls" : "",
	    e->flags & ENVELOPE_AUTH ? " auth" : "",
	    e->flags & ENVELOPE_QUARANTINE ? " quarantine" : "",
	    e->flags == 0 ? " none" : "");
	for (i = 0; i < e->nrcpt; i++) {
		r = &e->rcpts[i];
		(void)fprintf(f, "recipient: <");
		text_escaped(f, (const unsigned char *)r->addr,
		    strlen(r->addr));
		(void)fprintf(f, "> action ");
		text_escaped(f, (const unsigned char *)r->action,
		    strlen(r->action));
		(void)fprintf(f, " %s attempts %u",
		    envelope_rcpt_state_name(r->state), r->attempts);
		if (r->last_error[0] != '\0') {
			(void)fprintf(f, " error ");
			text_escaped(f, (const unsigned char *)r->last_error,
			    strlen(r->last_error));
		}
		(void)fprintf(f, "\n");
	}
	(void)fprintf(f, "\n");

	if ((rc = mdb_get(txn, dbi_body, key, &data)) != 0) {
		(void)fprintf(f, "(body missing: %s)\n", mdb_strerror(rc));
		return;
	}
	/* Header lines up to the first empty one, or the bound. */
	p = data.mv_data;
	len = data.mv_size < QUEUE_HEADERS_MAX ? data.mv_size :
	    QUEUE_HEADERS_MAX;
	end = p + len;
	while (p < end) {
		if ((eol = memchr(p, '\n', end - p)) == NULL) {
			if (len < data.mv_size) {
				(void)fprintf(f, "(headers truncated at %d "
				    "bytes)\n", QUEUE_HEADERS_MAX);
				return;
			}
			eol = end;
		}
		len = eol - p;
		if (len > 0 && p[len - 1] == '\r')
			len--;
		if (len == 0)
			return;		/* end of the header */
		text_escaped(f, p, len);
		(void)fprintf(f, "\n");
		p = eol + 1;
	}
}

/*
 * For terminals and scripts alike: printable ASCII and well-formed UTF-8
 * pass, tab too; a backslash and everything else become \\ and \xNN, so
 * no byte of a message can move a cursor or end a line.
 */
static void
text_escaped(FILE *f, const unsigned char *s, size_t len)
{
	size_t	 i, n, k;

	for (i = 0; i < len; i++) {
		if (s[i] == '\\') {
			(void)fputs("\\\\", f);
			continue;
		}
		if (s[i] == '\t' || (s[i] >= 0x20 && s[i] < 0x7f)) {
			(void)fputc(s[i], f);
			continue;
		}
		/* A UTF-8 sequence of n bytes, not overlong, not C1. */
		n = 0;
		if (s[i] >= 0xc2 && s[i] <= 0xdf)
			n = 2;
		else if (s[i] >= 0xe0 && s[i] <= 0xef)
			n = 3;
		else if (s[i] >= 0xf0 && s[i] <= 0xf4)
			n = 4;
		if (n > 0 && i + n <= len) {
			for (k = 1; k < n; k++)
				if ((s[i + k] & 0xc0) != 0x80)
					break;
			if (k == n && !(s[i] == 0xc2 && s[i + 1] < 0xa0) &&
			    !(s[i] == 0xe0 && s[i + 1] < 0xa0) &&
			    !(s[i] == 0xed && s[i + 1] >= 0xa0) &&
			    !(s[i] == 0xf0 && s[i + 1] < 0x90) &&
			    !(s[i] == 0xf4 && s[i + 1] >= 0x90)) {
				(void)fwrite(s + i, 1, n, f);
				i += n - 1;
				continue;
			}
		}
		(void)fprintf(f, "\\x%02x", s[i]);
	}
}

/*
 * remove: a message or all of them, in one transaction.
 */
static void
queue_remove(uint32_t client, const char *what)
{
	MDB_txn		*txn;
	MDB_stat	 st;
	MDB_val		 key;
	size_t		 n = 0;
	int		 rc;

	memset(&st, 0, sizeof(st));
	if ((rc = queue_txn_begin(0, &txn)) != 0) {
		proc_ctl_result(client, 0, "queue.mdb: %s", mdb_strerror(rc));
		return;
	}
	if (strcmp(what, "all") == 0) {
		if ((rc = mdb_stat(txn, dbi_envelope, &st)) == 0 &&
		    (rc = mdb_drop(txn, dbi_envelope, 0)) == 0)
			rc = mdb_drop(txn, dbi_body, 0);
		n = st.ms_entries;
	} else {
		key.mv_data = (void *)(uintptr_t)what;
		key.mv_size = QUEUE_ID_LEN - 1;
		if ((rc = queue_message_del(txn, &key)) == 0)
			n = 1;
	}
	if (rc != 0) {
		mdb_txn_abort(txn);
		if (rc == MDB_NOTFOUND)
			proc_ctl_result(client, 0, "no such message: %s",
			    what);
		else
			proc_ctl_result(client, 0, "queue.mdb: %s",
			    mdb_strerror(rc));
		return;
	}
	if ((rc = mdb_txn_commit(txn)) != 0) {
		proc_ctl_result(client, 0, "queue.mdb: %s", mdb_strerror(rc));
		return;
	}
	stats.removed += n;
	scheduler_forget(what);
	log_info("removed %zu message%s (%s) on request", n,
	    n == 1 ? "" : "s", what);
	proc_ctl_result(client, 1, "removed %zu message%s", n,
	    n == 1 ? "" : "s");
	queue_disk_check();
}

/* The envelope and the body; a missing body is no error. */
static int
queue_message_del(MDB_txn *txn, MDB_val *key)
{
	int	 rc;

	if ((rc = mdb_del(txn, dbi_envelope, key, NULL)) == 0 &&
	    (rc = mdb_del(txn, dbi_body, key, NULL)) == MDB_NOTFOUND)
		rc = 0;
	return (rc);
}

static int
queue_envelope_put(MDB_txn *txn, const struct envelope *e,
    unsigned int flags)
{
	MDB_val		 key, data;
	unsigned char	*rec;
	size_t		 reclen;
	int		 rc;

	if (envelope_encode(e, &rec, &reclen) == -1)
		return (EINVAL);
	key.mv_data = (void *)(uintptr_t)e->id;
	key.mv_size = QUEUE_ID_LEN - 1;
	data.mv_data = rec;
	data.mv_size = reclen;
	rc = mdb_put(txn, dbi_envelope, &key, &data, flags);
	free(rec);
	return (rc);
}

static int
queue_is_quarantined(const char *id)
{
	struct envelope	 e;
	int		 held;

	if (queue_envelope_load(id, &e) == -1)
		return (0);
	held = (e.flags & ENVELOPE_QUARANTINE) != 0;
	envelope_clear(&e);
	return (held);
}

/* quarantine release and quarantine delete. */
static void
queue_quarantine(uint32_t client, const char *id, int release)
{
	char	 why[MESSAGE_LEN];

	if (queue_quarantine_end(id, release ? QUARANTINE_RELEASE :
	    QUARANTINE_DELETE, why, sizeof(why)) != 0) {
		proc_ctl_result(client, 0, "%s", why);
		return;
	}
	log_info("%s: %s from the quarantine on request", id,
	    release ? "released" : "deleted");
	proc_ctl_result(client, 1, "%s %s", release ? "released" : "deleted",
	    id);
}

/*
 * For the scheduler: a held message past quarantine-expire, deleted as
 * quarantine delete deletes it.  Returns as queue_quarantine_end().
 */
int
queue_quarantine_expire(const char *id, char *why, size_t len)
{
	return (queue_quarantine_end(id, QUARANTINE_EXPIRE, why, len));
}

/*
 * A message leaves the quarantine, in one transaction.  Released, the
 * flag is cleared for good and the message is scheduled as a new one
 * would be, its lifetime counted from now; deleted, on request or by
 * expiry, it is gone as with remove, and never bounced.  The envelope
 * is read inside the transaction, so that a message released or
 * deleted since it was asked about is refused, not touched.  Returns 0,
 * 1 when the message is not in the quarantine (or not at all), -1 when
 * queue.mdb fails; why says which.
 */
static int
queue_quarantine_end(const char *id, enum quarantine_end how, char *why,
    size_t len)
{
	struct envelope	 e;
	MDB_txn		*txn;
	MDB_val		 key;
	int		 rc;

	if ((rc = queue_txn_begin(0, &txn)) != 0) {
		(void)snprintf(why, len, "queue.mdb: %s", mdb_strerror(rc));
		return (-1);
	}
	key.mv_data = (void *)(uintptr_t)id;
	key.mv_size = QUEUE_ID_LEN - 1;
	if ((rc = queue_envelope_get(txn, &key, &e, why, len)) != 0) {
		mdb_txn_abort(txn);
		return (rc);
	}
	if (!(e.flags & ENVELOPE_QUARANTINE)) {
		mdb_txn_abort(txn);
		envelope_clear(&e);
		(void)snprintf(why, len, "message %s is not quarantined", id);
		return (1);
	}
	if (how == QUARANTINE_RELEASE) {
		e.flags &= ~ENVELOPE_QUARANTINE;
		e.arrived = time(NULL);
		rc = queue_envelope_put(txn, &e, 0);
	} else
		rc = queue_message_del(txn, &key);
	envelope_clear(&e);
	if (rc != 0)
		mdb_txn_abort(txn);
	else
		rc = mdb_txn_commit(txn);
	if (rc != 0) {
		(void)snprintf(why, len, "queue.mdb: %s", mdb_strerror(rc));
		return (-1);
	}
	scheduler_forget(id);
	switch (how) {
	case QUARANTINE_RELEASE:
		stats.released++;
		scheduler_add(id);
		return (0);
	case QUARANTINE_DELETE:
		stats.deleted++;
		break;
	case QUARANTINE_EXPIRE:
		stats.expired++;
		break;
	}
	queue_disk_check();
	return (0);
}

static void
queue_stat_send(const char *name, uint64_t value, void *arg)
{
	struct ctl_stat	 s;
	uint32_t	 client = *(uint32_t *)arg;

	memset(&s, 0, sizeof(s));
	(void)strlcpy(s.name, name, sizeof(s.name));
	s.value = value;
	proc_ctl_send(client, IMSG_CTL_STAT, &s, sizeof(s));
}

static void
queue_show_stats(uint32_t client)
{
	struct ctl_stat	 s;
	MDB_txn		*txn;
	MDB_stat	 st;
	size_t		 i;
	uint64_t	 messages = 0;
	struct {
		const char	*name;
		uint64_t	 value;
	} list[] = {
		{ "queue.messages", 0 },
		{ "queue.accepted", stats.accepted },
		{ "queue.bytes_accepted", stats.bytes_accepted },
		{ "queue.commits", stats.commits },
		{ "queue.delivery_commits", stats.delivery_commits },
		{ "queue.commit_batch_max", stats.batch_max },
		{ "queue.nospace", stats.nospace },
		{ "queue.tempfail", stats.tempfail },
		{ "queue.removed", stats.removed },
		{ "queue.quarantine_released", stats.released },
		{ "queue.quarantine_deleted", stats.deleted },
		{ "queue.quarantine_expired", stats.expired },
		{ "queue.disk_ok", disk_ok == 1 }
	};

	if (queue_env != NULL &&
	    mdb_txn_begin(queue_env, NULL, MDB_RDONLY, &txn) == 0) {
		if (mdb_stat(txn, dbi_envelope, &st) == 0)
			messages = st.ms_entries;
		mdb_txn_abort(txn);
	}
	list[0].value = messages;
	for (i = 0; i < sizeof(list) / sizeof(list[0]); i++) {
		memset(&s, 0, sizeof(s));
		(void)strlcpy(s.name, list[i].name, sizeof(s.name));
		s.value = list[i].value;
		proc_ctl_send(client, IMSG_CTL_STAT, &s, sizeof(s));
	}
	scheduler_stats(queue_stat_send, &client);
	proc_ctl_send(client, IMSG_CTL_END, NULL, 0);
}

/*
 * Storage for the scheduler (scheduler.c): envelopes and bodies read
 * out of LMDB into memory of their own, and a delivery's outcome written
 * back in one transaction with the bounce it may cause, so that a crash
 * can neither lose the bounce nor send it twice.
 */

/* The state directory as this process sees it: "/" when chrooted. */
const char *
queue_state_path(void)
{
	return (queue_dir);
}

int
queue_envelope_load(const char *id, struct envelope *e)
{
	MDB_txn	*txn;
	MDB_val	 key, data;
	int	 rc;

	if (queue_env == NULL ||
	    (rc = mdb_txn_begin(queue_env, NULL, MDB_RDONLY, &txn)) != 0)
		return (-1);
	key.mv_data = (void *)(uintptr_t)id;
	key.mv_size = QUEUE_ID_LEN - 1;
	if ((rc = mdb_get(txn, dbi_envelope, &key, &data)) != 0 ||
	    envelope_decode(data.mv_data, data.mv_size, e) == -1) {
		if (rc != 0 && rc != MDB_NOTFOUND)
			log_warnx("%s: %s", id, mdb_strerror(rc));
		else if (rc == 0)
			log_warnx("%s: invalid envelope record", id);
		mdb_txn_abort(txn);
		return (-1);
	}
	mdb_txn_abort(txn);
	return (0);
}

int
queue_body_load(const char *id, unsigned char **body, size_t *len)
{
	MDB_txn	*txn;
	MDB_val	 key, data;
	int	 rc;

	if (queue_env == NULL ||
	    (rc = mdb_txn_begin(queue_env, NULL, MDB_RDONLY, &txn)) != 0)
		return (-1);
	key.mv_data = (void *)(uintptr_t)id;
	key.mv_size = QUEUE_ID_LEN - 1;
	if ((rc = mdb_get(txn, dbi_body, &key, &data)) != 0) {
		log_warnx("%s: body: %s", id, mdb_strerror(rc));
		mdb_txn_abort(txn);
		return (-1);
	}
	if ((*body = malloc(data.mv_size ? data.mv_size : 1)) == NULL) {
		log_warn("%s: body", id);
		mdb_txn_abort(txn);
		return (-1);
	}
	memcpy(*body, data.mv_data, data.mv_size);
	*len = data.mv_size;
	mdb_txn_abort(txn);
	return (0);
}

/* Call cb for every envelope that decodes; returns how many. */
size_t
queue_envelope_walk(void (*cb)(const struct envelope *, void *), void *arg)
{
	struct envelope	 e;
	MDB_txn		*txn;
	MDB_cursor	*cur;
	MDB_val		 key, data;
	MDB_cursor_op	 op = MDB_FIRST;
	size_t		 n = 0;

	if (queue_env == NULL ||
	    mdb_txn_begin(queue_env, NULL, MDB_RDONLY, &txn) != 0)
		return (0);
	if (mdb_cursor_open(txn, dbi_envelope, &cur) != 0) {
		mdb_txn_abort(txn);
		return (0);
	}
	while (mdb_cursor_get(cur, &key, &data, op) == 0) {
		op = MDB_NEXT;
		if (key.mv_size != QUEUE_ID_LEN - 1 ||
		    envelope_decode(data.mv_data, data.mv_size, &e) == -1) {
			log_warnx("skipping an invalid envelope record");
			continue;
		}
		cb(&e, arg);
		envelope_clear(&e);
		n++;
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return (n);
}

/*
 * Write a delivery's outcome: the updated envelope, or the message's
 * removal when no recipient is pending, and the bounce, all or nothing.
 */
int
queue_delivery_commit(const struct envelope *e, int done,
    const struct envelope *bounce, const unsigned char *bbody, size_t blen)
{
	MDB_txn		*txn;
	MDB_val		 key, data;
	int		 rc;

	if ((rc = queue_txn_begin(0, &txn)) != 0) {
		log_warnx("%s: %s", e->id, mdb_strerror(rc));
		return (-1);
	}
	key.mv_data = (void *)(uintptr_t)e->id;
	key.mv_size = QUEUE_ID_LEN - 1;
	if (done)
		rc = queue_message_del(txn, &key);
	else
		rc = queue_envelope_put(txn, e, 0);
	if (rc == 0 && bounce != NULL &&
	    (rc = queue_envelope_put(txn, bounce, MDB_NOOVERWRITE)) == 0) {
		key.mv_data = (void *)(uintptr_t)bounce->id;
		data.mv_data = (void *)(uintptr_t)bbody;
		data.mv_size = blen;
		rc = mdb_put(txn, dbi_body, &key, &data, MDB_NOOVERWRITE);
	}
	if (rc != 0) {
		log_warnx("%s: cannot record the delivery: %s", e->id,
		    mdb_strerror(rc));
		mdb_txn_abort(txn);
		return (-1);
	}
	if ((rc = mdb_txn_commit(txn)) != 0) {
		log_warnx("%s: cannot record the delivery: %s", e->id,
		    mdb_strerror(rc));
		return (-1);
	}
	stats.delivery_commits++;
	if (done)
		queue_disk_check();
	return (0);
}
