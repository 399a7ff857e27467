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
 * The scan process: a verdict on every message before smtp answers the
 * end of DATA.  libclamav scans in-process; the engine is built by a
 * thread of its own (at start, and whenever the database changes) and
 * swapped in whole, so scanning never waits for a load.  Messages are
 * scanned and scored by a pool of worker threads; the event loop only
 * takes requests and hands back results, which the workers pass to it
 * through a pipe.  Nothing here ever answers SCAN_PASS for a message
 * that was not scanned, unless on-error or on-limit says accept, and
 * then the X-Virus-Scanned header says so.
 */

#include <sys/types.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <clamav.h>

#include "smarthostd.h"

#define SCAN_CHECK_INTERVAL	30	/* seconds between database checks */
#define SCAN_THREADS_MAX	64
#define SCAN_TMPDIR		"smarthostd-tmp"	/* in the database dir */
#define SCAN_NAME_MAX		256
#define SCAN_QUEUE_PER_THREAD	16	/* jobs waiting, then 451 at once */
#define SCAN_STALE_GRACE	60	/* smtp has given up on it by then */
#define SCAN_STUCK_AFTER	300	/* past every limit: the thread is lost */

/* A compiled engine; scans in flight hold a reference. */
struct scan_engine {
	struct cl_engine	*cl;
	int			 refs;
	unsigned int		 signatures;
	unsigned int		 dbversion;
};

/* What a job needs of the configuration, kept alive while it runs. */
struct scan_settings {
	int			 refs;
	struct scan_config	 sc;		/* banned_files not valid */
	char			 hostname[HOSTNAME_LEN];
	char			**banned;
	size_t			 nbanned;
};

enum scan_outcome {
	OUTCOME_CLEAN,
	OUTCOME_VIRUS,
	OUTCOME_BANNED,
	OUTCOME_SPAM,
	OUTCOME_QUARANTINE,
	OUTCOME_TEMPFAIL,
	OUTCOME_OTHER
};

struct scan_job {
	TAILQ_ENTRY(scan_job)	 work;		/* the workers' queue */
	TAILQ_ENTRY(scan_job)	 all;		/* the event loop's list */
	uint32_t		 session;
	int			 fd;
	struct scan_request	 req;
	struct scan_settings	*set;
	time_t			 queued;
	time_t			 started;	/* by its thread, under work_mtx */
	int			 overdue;
	char			 banned[SCAN_NAME_MAX];	/* the callback's */
	struct scan_result	 res;
	char			 log[MESSAGE_LEN];
};
TAILQ_HEAD(scan_jobs, scan_job);

/* What the threads tell the event loop through the pipe. */
enum scan_note_kind {
	NOTE_JOB_DONE,
	NOTE_ENGINE_LOG		/* a malloc'd line; ok set if it loaded */
};

struct scan_note {
	enum scan_note_kind	 kind;
	int			 ok;
	unsigned int		 signatures;	/* ENGINE_LOG: the engine's */
	void			*ptr;
};

/* The engine thread's orders, under engine_mtx. */
struct engine_want {
	char			 dir[PATH_MAX];
	char			 tmpdir[PATH_MAX];
	uint64_t		 max_filesize, max_scansize;
	uint32_t		 max_recursion, max_files;
	time_t			 max_scantime;
	int			 kicked;
	int			 force;
};

static void	 scan_dispatch_peer(struct imsgev *, struct imsg *);
static void	 scan_config_commit(struct smarthost_config *);
static void	 scan_request(struct imsgev *, struct imsg *);
static void	 scan_answer(uint32_t, const struct scan_result *);
static void	 scan_notes(int, short, void *);
static void	 scan_job_done(struct scan_job *);
static void	 scan_watchdog(int, short, void *);
static void	 scan_stats(uint32_t);
static struct scan_settings *settings_new(struct smarthost_config *);
static void	 settings_release(struct scan_settings *);
static void	 engine_release(struct scan_engine *);
static struct scan_engine *engine_current(void);
static void	*engine_thread(void *);
static struct scan_engine *engine_build(const struct engine_want *, int,
		    char *, size_t);
static void	*worker_thread(void *);
static void	 job_run(struct scan_job *);
static int	 job_clamav(struct scan_job *, struct scan_engine *,
		    char *, size_t);
static void	 job_fallback(struct scan_job *, enum scan_fallback,
		    enum scan_verdict, const char *, const char *);
static cl_error_t file_inspect(int, const char *, const char **, size_t,
		    const char *, size_t, const char *, uint32_t, uint32_t,
		    void *);
static int	 banned_match(const struct scan_settings *, const char *);
static void	 note_send(enum scan_note_kind, int, unsigned int, void *);
static void	 sanitise(char *);

static const struct proc_handlers scan_handlers = {
	.peer = scan_dispatch_peer,
	.config_commit = scan_config_commit
};

static pthread_mutex_t	 engine_mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	 engine_cond = PTHREAD_COND_INITIALIZER;
static struct scan_engine *engine;		/* under engine_mtx */
static struct engine_want want;		/* under engine_mtx */

static pthread_mutex_t	 work_mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	 work_cond = PTHREAD_COND_INITIALIZER;
static struct scan_jobs	 work_queue = TAILQ_HEAD_INITIALIZER(work_queue);

/* The event loop's own. */
static struct scan_jobs	 jobs = TAILQ_HEAD_INITIALIZER(jobs);
static size_t		 njobs;		/* on jobs: queued or running */
static struct scan_settings *settings;
static int		 note_pipe[2] = { -1, -1 };
static struct event	 ev_notes, ev_watchdog;
static int		 threads_started;
static char		 clamav_version[64];

static struct {
	uint64_t	 messages, clean, viruses, banned, spam_rejected;
	uint64_t	 quarantined, tagged, tempfail, engine_reloads;
	uint64_t	 signatures;
} stats;

void
scan_main(void)
{
	struct rlimit	 rl;
	cl_error_t	 r;

	/*
	 * No core files: they would hold mail.  No address-space limit:
	 * the full ClamAV database takes about 1.5G, twice that while a
	 * new engine is built next to the old one, and a limit that is
	 * safe for one database size breaks the next.
	 */
	rl.rlim_cur = rl.rlim_max = 0;
	if (setrlimit(RLIMIT_CORE, &rl) == -1)
		log_warn("setrlimit core");
	if ((r = cl_init(CL_INIT_DEFAULT)) != CL_SUCCESS)
		fatalx("cl_init: %s", cl_strerror(r));
	(void)strlcpy(clamav_version, cl_retver(), sizeof(clamav_version));
	if (pipe2(note_pipe, O_CLOEXEC) == -1)
		fatal("pipe");
	if (pledge("stdio rpath wpath cpath recvfd inet unix", NULL) == -1)
		fatal("pledge");
	proc_child_run(&scan_handlers);
}

static void
scan_dispatch_peer(struct imsgev *iev, struct imsg *imsg)
{
	switch (imsg_get_type(imsg)) {
	case IMSG_SCAN_MESSAGE:
		if (iev->peer != PROC_SMTP)
			break;
		scan_request(iev, imsg);
		return;
	case IMSG_CTL_SHOW_STATS:
		if (iev->peer != PROC_CONTROL)
			break;
		imsg_expect_size(imsg, 0);
		scan_stats(imsg_get_id(imsg));
		return;
	default:
		break;
	}
	fatalx("unexpected imsg %u from %s", imsg_get_type(imsg),
	    proc_name(iev->peer));
}

/*
 * A new configuration: new settings for the jobs that start from now
 * on, and the engine thread told to look at the database again (and to
 * rebuild the engine if a limit changed).  The first one starts the
 * threads; their number is fixed from then on.
 */
static void
scan_config_commit(struct smarthost_config *old)
{
	const struct scan_config	*sc = &env->scan;
	struct stat			 sb;
	struct timeval			 tv = { 10, 0 };
	pthread_t			 t;
	uint32_t			 i;
	char				 dir[PATH_MAX];
	int				 n;

	(void)old;
	if (settings != NULL)
		settings_release(settings);
	settings = settings_new(env);

	/* Chrooted in the database directory, or seeing it by its path. */
	if (stat(sc->clamav_db, &sb) == 0 && S_ISDIR(sb.st_mode))
		(void)strlcpy(dir, sc->clamav_db, sizeof(dir));
	else
		(void)strlcpy(dir, "/", sizeof(dir));

	pthread_mutex_lock(&engine_mtx);
	if (strcmp(want.dir, dir) != 0 ||
	    want.max_filesize != sc->max_filesize ||
	    want.max_scansize != sc->max_scansize ||
	    want.max_recursion != sc->max_recursion ||
	    want.max_files != sc->max_files ||
	    want.max_scantime != sc->max_scantime)
		want.force = 1;
	(void)strlcpy(want.dir, dir, sizeof(want.dir));
	n = snprintf(want.tmpdir, sizeof(want.tmpdir), "%s%s%s", dir,
	    dir[strlen(dir) - 1] == '/' ? "" : "/", SCAN_TMPDIR);
	if (n < 0 || (size_t)n >= sizeof(want.tmpdir) ||
	    stat(want.tmpdir, &sb) == -1 || !S_ISDIR(sb.st_mode))
		want.tmpdir[0] = '\0';	/* libclamav's default, $TMPDIR */
	want.max_filesize = sc->max_filesize;
	want.max_scansize = sc->max_scansize;
	want.max_recursion = sc->max_recursion;
	want.max_files = sc->max_files;
	want.max_scantime = sc->max_scantime;
	want.kicked = sc->enabled;
	pthread_cond_signal(&engine_cond);
	pthread_mutex_unlock(&engine_mtx);

	if (threads_started || !sc->enabled)
		return;
	threads_started = 1;
	event_set(&ev_notes, note_pipe[0], EV_READ | EV_PERSIST, scan_notes,
	    NULL);
	event_add(&ev_notes, NULL);
	evtimer_set(&ev_watchdog, scan_watchdog, NULL);
	evtimer_add(&ev_watchdog, &tv);
	if (pthread_create(&t, NULL, engine_thread, NULL) != 0 ||
	    pthread_detach(t) != 0)
		fatalx("cannot start the engine thread");
	n = sc->threads == 0 ? 1 : sc->threads > SCAN_THREADS_MAX ?
	    SCAN_THREADS_MAX : sc->threads;
	for (i = 0; i < (uint32_t)n; i++)
		if (pthread_create(&t, NULL, worker_thread, NULL) != 0 ||
		    pthread_detach(t) != 0)
			fatalx("cannot start scanning thread %u", i);
	log_debug("%u scanning threads, database %s", n, sc->clamav_db);
}

/* smtp asks for a verdict on a message; the fd comes with it. */
static void
scan_request(struct imsgev *iev, struct imsg *imsg)
{
	struct scan_result	 res;
	struct scan_job		*job;
	struct scan_request	 req;
	int			 fd;

	(void)iev;
	imsg_expect_size(imsg, sizeof(req));
	(void)imsg_get_data(imsg, &req, sizeof(req));
	fd = imsg_get_fd(imsg);
	if (memchr(req.helo, '\0', sizeof(req.helo)) == NULL ||
	    memchr(req.sender, '\0', sizeof(req.sender)) == NULL ||
	    memchr(req.spam.subject, '\0', sizeof(req.spam.subject)) == NULL ||
	    memchr(req.facts.spf_domain, '\0',
	    sizeof(req.facts.spf_domain)) == NULL ||
	    memchr(req.facts.dnsbl_zones, '\0',
	    sizeof(req.facts.dnsbl_zones)) == NULL ||
	    memchr(req.facts.rdns_name, '\0',
	    sizeof(req.facts.rdns_name)) == NULL)
		fatalx("smtp sent a malformed scan request");
	stats.messages++;
	if (fd == -1 || env == NULL || !env->scan.enabled) {
		if (fd != -1)
			(void)close(fd);
		memset(&res, 0, sizeof(res));
		res.verdict = SCAN_TEMPFAIL;
		(void)strlcpy(res.reason, fd == -1 ? "no message to scan" :
		    "scanning is not configured", sizeof(res.reason));
		log_warnx("session %08x: %s", imsg_get_id(imsg), res.reason);
		stats.tempfail++;
		scan_answer(imsg_get_id(imsg), &res);
		return;
	}
	if (njobs >= env->scan.threads * SCAN_QUEUE_PER_THREAD) {
		(void)close(fd);
		memset(&res, 0, sizeof(res));
		res.verdict = SCAN_TEMPFAIL;
		(void)strlcpy(res.reason, "too many messages waiting for a "
		    "scan", sizeof(res.reason));
		log_warnx("session %08x: %s", imsg_get_id(imsg), res.reason);
		stats.tempfail++;
		scan_answer(imsg_get_id(imsg), &res);
		return;
	}
	if ((job = calloc(1, sizeof(*job))) == NULL)
		fatal(NULL);
	job->session = imsg_get_id(imsg);
	job->fd = fd;
	job->req = req;
	job->set = settings;
	job->queued = time(NULL);
	settings->refs++;
	pthread_mutex_lock(&work_mtx);
	TAILQ_INSERT_TAIL(&work_queue, job, work);
	pthread_cond_signal(&work_cond);
	pthread_mutex_unlock(&work_mtx);
	TAILQ_INSERT_TAIL(&jobs, job, all);
	njobs++;
}

static void
scan_answer(uint32_t session, const struct scan_result *res)
{
	if (iev_peer[PROC_SMTP] == NULL)
		return;
	imsgev_compose(iev_peer[PROC_SMTP], IMSG_SCAN_RESULT, session, 0, -1,
	    res, sizeof(*res));
}

/* The threads' notes: finished jobs and the engine's news. */
static void
scan_notes(int fd, short event, void *arg)
{
	struct scan_note	 notes[64];
	ssize_t			 n;
	size_t			 i;

	(void)event;
	(void)arg;
	if ((n = read(fd, notes, sizeof(notes))) == -1) {
		if (errno == EINTR || errno == EAGAIN)
			return;
		fatal("read from the scanning threads");
	}
	if (n == 0 || n % sizeof(notes[0]) != 0)
		fatalx("short note from the scanning threads");
	for (i = 0; i < (size_t)n / sizeof(notes[0]); i++) {
		switch (notes[i].kind) {
		case NOTE_JOB_DONE:
			scan_job_done(notes[i].ptr);
			break;
		case NOTE_ENGINE_LOG:
			if (notes[i].ok) {
				log_info("%s", (char *)notes[i].ptr);
				stats.engine_reloads++;
			} else
				log_warnx("%s", (char *)notes[i].ptr);
			free(notes[i].ptr);
			/*
			 * Not engine_current(): dropping that reference
			 * could free a swapped-out engine, a gigabyte of
			 * signatures, here on the event loop.
			 */
			if (notes[i].ok)
				stats.signatures = notes[i].signatures; else
				stats.signatures = 0;
			break;
		}
	}
}

static void
scan_job_done(struct scan_job *job)
{
	struct scan_result	*res = &job->res;

	TAILQ_REMOVE(&jobs, job, all);
	njobs--;
	switch (res->verdict) {
	case SCAN_PASS:
		stats.clean++;
		break;
	case SCAN_QUARANTINE:
		stats.quarantined++;
		break;
	case SCAN_VIRUS:
		stats.viruses++;
		break;
	case SCAN_BANNED:
		stats.banned++;
		break;
	case SCAN_SPAM:
		stats.spam_rejected++;
		break;
	case SCAN_TEMPFAIL:
		stats.tempfail++;
		break;
	default:
		break;
	}
	if (res->tagged && res->verdict != SCAN_SPAM)
		stats.tagged++;
	if (res->verdict == SCAN_TEMPFAIL)
		log_warnx("session %08x: %s", job->session, job->log);
	else
		log_info("session %08x: %s", job->session, job->log);
	scan_answer(job->session, res);
	(void)close(job->fd);
	settings_release(job->set);
	free(job);
}

/* A scan running long past max-scantime is a stuck scanner: say so. */
static void
scan_watchdog(int fd, short event, void *arg)
{
	struct scan_job	*job;
	struct timeval	 tv = { 10, 0 };
	time_t		 now = time(NULL), started;

	(void)fd;
	(void)event;
	(void)arg;
	pthread_mutex_lock(&work_mtx);
	TAILQ_FOREACH(job, &jobs, all) {
		started = job->started;
		if (env == NULL || started == 0 ||
		    now - started <= env->scan.max_scantime + 30)
			continue;
		if (!job->overdue)
			log_warnx("session %08x: scan running for %llds, past "
			    "max-scantime %llds", job->session,
			    (long long)(now - started),
			    (long long)env->scan.max_scantime);
		job->overdue = 1;
		/*
		 * A thread stuck this long will not come back: end the
		 * process, so that the daemon is restarted (the waiting
		 * sessions get 451) rather than scan on with fewer threads.
		 */
		if (now - started > env->scan.max_scantime +
		    env->scan.spamassassin_timeout + SCAN_STUCK_AFTER)
			fatalx("session %08x: a scanning thread is stuck",
			    job->session);
	}
	pthread_mutex_unlock(&work_mtx);
	evtimer_add(&ev_watchdog, &tv);
}

static void
scan_stats(uint32_t client)
{
	proc_ctl_stat(client, "messages", stats.messages);
	proc_ctl_stat(client, "clean", stats.clean);
	proc_ctl_stat(client, "viruses", stats.viruses);
	proc_ctl_stat(client, "banned", stats.banned);
	proc_ctl_stat(client, "spam_rejected", stats.spam_rejected);
	proc_ctl_stat(client, "quarantined", stats.quarantined);
	proc_ctl_stat(client, "tagged", stats.tagged);
	proc_ctl_stat(client, "tempfail", stats.tempfail);
	proc_ctl_stat(client, "engine_reloads", stats.engine_reloads);
	proc_ctl_stat(client, "signatures", stats.signatures);
	proc_ctl_send(client, IMSG_CTL_END, NULL, 0);
}

/*
 * Settings and engines are shared with the threads by reference count.
 * Settings' counts are the event loop's alone, engines' are under
 * engine_mtx.
 */
static struct scan_settings *
settings_new(struct smarthost_config *conf)
{
	struct scan_settings	*s;
	struct string_entry	*e;
	size_t			 n = 0;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		fatal(NULL);
	s->refs = 1;
	s->sc = conf->scan;
	memset(&s->sc.banned_files, 0, sizeof(s->sc.banned_files));
	(void)strlcpy(s->hostname, conf->hostname, sizeof(s->hostname));
	TAILQ_FOREACH(e, &conf->scan.banned_files, entry)
		n++;
	if (n > 0 && (s->banned = calloc(n, sizeof(char *))) == NULL)
		fatal(NULL);
	TAILQ_FOREACH(e, &conf->scan.banned_files, entry)
		if ((s->banned[s->nbanned++] = strdup(e->value)) == NULL)
			fatal(NULL);
	return (s);
}

static void
settings_release(struct scan_settings *s)
{
	size_t	 i;

	if (--s->refs > 0)
		return;
	for (i = 0; i < s->nbanned; i++)
		free(s->banned[i]);
	free(s->banned);
	free(s);
}

static struct scan_engine *
engine_current(void)
{
	struct scan_engine	*e;

	pthread_mutex_lock(&engine_mtx);
	if ((e = engine) != NULL)
		e->refs++;
	pthread_mutex_unlock(&engine_mtx);
	return (e);
}

static void
engine_release(struct scan_engine *e)
{
	int	 last;

	pthread_mutex_lock(&engine_mtx);
	last = --e->refs == 0;
	pthread_mutex_unlock(&engine_mtx);
	if (last) {
		(void)cl_engine_free(e->cl);
		free(e);
	}
}

/*
 * The engine thread: every SCAN_CHECK_INTERVAL seconds, or when the
 * configuration changes, look at the database and build a new engine
 * if it changed.  A database that does not load keeps the old engine;
 * the same failure is told once, not every half minute.
 */
static void *
engine_thread(void *arg)
{
	struct engine_want	 w;
	struct scan_engine	*e, *old;
	struct cl_stat		 st;
	struct timespec		 ts;
	char			 msg[MESSAGE_LEN], last_error[MESSAGE_LEN];
	char			*line;
	int			 st_ok = 0, have = 0;

	(void)arg;
	memset(&st, 0, sizeof(st));
	last_error[0] = '\0';
	for (;;) {
		pthread_mutex_lock(&engine_mtx);
		while (!want.kicked) {
			(void)clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += SCAN_CHECK_INTERVAL;
			if (pthread_cond_timedwait(&engine_cond, &engine_mtx,
			    &ts) == ETIMEDOUT && want.dir[0] != '\0')
				break;
		}
		w = want;
		want.kicked = 0;
		want.force = 0;
		pthread_mutex_unlock(&engine_mtx);

		if (have && !w.force && st_ok && cl_statchkdir(&st) == 0)
			continue;
		if (st_ok)
			(void)cl_statfree(&st);
		st_ok = cl_statinidir(w.dir, &st) == CL_SUCCESS;

		e = engine_build(&w, have, msg, sizeof(msg));
		if (e == NULL) {
			if (strcmp(msg, last_error) == 0)
				continue;
			(void)strlcpy(last_error, msg, sizeof(last_error));
			if ((line = strdup(msg)) != NULL)
				note_send(NOTE_ENGINE_LOG, 0, 0, line);
			continue;
		}
		last_error[0] = '\0';
		pthread_mutex_lock(&engine_mtx);
		old = engine;
		engine = e;
		pthread_mutex_unlock(&engine_mtx);
		if (old != NULL)
			engine_release(old);
		(void)snprintf(msg, sizeof(msg), "virus database %.256s %s: "
		    "version %u, %u signatures", w.dir,
		    have ? "reloaded" : "loaded", e->dbversion, e->signatures);
		have = 1;
		if ((line = strdup(msg)) != NULL)
			note_send(NOTE_ENGINE_LOG, 1, e->signatures, line);
	}
	return (NULL);
}

static struct scan_engine *
engine_build(const struct engine_want *w, int have, char *msg, size_t len)
{
	struct scan_engine	*e;
	struct cl_engine	*cl;
	unsigned int		 sigs = 0;
	cl_error_t		 r;
	int			 err = 0;

	if ((cl = cl_engine_new()) == NULL) {
		(void)snprintf(msg, len, "cl_engine_new failed");
		return (NULL);
	}
	if ((r = cl_engine_set_num(cl, CL_ENGINE_MAX_FILESIZE,
	    w->max_filesize)) != CL_SUCCESS ||
	    (r = cl_engine_set_num(cl, CL_ENGINE_MAX_SCANSIZE,
	    w->max_scansize)) != CL_SUCCESS ||
	    (r = cl_engine_set_num(cl, CL_ENGINE_MAX_RECURSION,
	    w->max_recursion)) != CL_SUCCESS ||
	    (r = cl_engine_set_num(cl, CL_ENGINE_MAX_FILES,
	    w->max_files)) != CL_SUCCESS ||
	    (r = cl_engine_set_num(cl, CL_ENGINE_MAX_SCANTIME,
	    (long long)w->max_scantime * 1000)) != CL_SUCCESS ||
	    (w->tmpdir[0] != '\0' && (r = cl_engine_set_str(cl,
	    CL_ENGINE_TMPDIR, w->tmpdir)) != CL_SUCCESS)) {
		(void)snprintf(msg, len, "virus engine limits: %s",
		    cl_strerror(r));
		goto fail;
	}
	if ((r = cl_load(w->dir, cl, &sigs, CL_DB_STDOPT)) != CL_SUCCESS) {
		(void)snprintf(msg, len, "virus database %.256s does not load "
		    "(%s); %s", w->dir, cl_strerror(r),
		    have ? "scanning with the one loaded before" :
		    "no virus scanning until it does");
		goto fail;
	}
	if (sigs == 0) {
		(void)snprintf(msg, len, "virus database %.256s has no "
		    "signatures; %s", w->dir, have ?
		    "scanning with the one loaded before" :
		    "no virus scanning until it does");
		goto fail;
	}
	if ((r = cl_engine_compile(cl)) != CL_SUCCESS) {
		(void)snprintf(msg, len, "virus database %.256s does not "
		    "compile: %s", w->dir, cl_strerror(r));
		goto fail;
	}
	cl_engine_set_clcb_file_inspection(cl, file_inspect);
	if ((e = calloc(1, sizeof(*e))) == NULL) {
		(void)snprintf(msg, len, "out of memory");
		goto fail;
	}
	e->cl = cl;
	e->refs = 1;
	e->signatures = sigs;
	e->dbversion = cl_engine_get_num(cl, CL_ENGINE_DB_VERSION, &err);
	return (e);
 fail:
	(void)cl_engine_free(cl);
	return (NULL);
}

static void *
worker_thread(void *arg)
{
	struct scan_job	*job;

	(void)arg;
	for (;;) {
		pthread_mutex_lock(&work_mtx);
		while ((job = TAILQ_FIRST(&work_queue)) == NULL)
			pthread_cond_wait(&work_cond, &work_mtx);
		TAILQ_REMOVE(&work_queue, job, work);
		job->started = time(NULL);
		pthread_mutex_unlock(&work_mtx);
		job_run(job);
		note_send(NOTE_JOB_DONE, 0, 0, job);
	}
	return (NULL);
}

static void
note_send(enum scan_note_kind kind, int ok, unsigned int signatures,
    void *ptr)
{
	struct scan_note	 note;
	ssize_t			 n;

	memset(&note, 0, sizeof(note));
	note.kind = kind;
	note.ok = ok;
	note.signatures = signatures;
	note.ptr = ptr;
	/* Smaller than PIPE_BUF: written whole or not at all. */
	while ((n = write(note_pipe[1], &note, sizeof(note))) == -1 &&
	    errno == EINTR)
		;
	if (n != sizeof(note))
		abort();
}

/* One message: viruses and banned files, then the spam score. */
static void
job_run(struct scan_job *job)
{
	struct scan_settings	*set = job->set;
	struct scan_result	*res = &job->res;
	struct scan_engine	*e;
	struct stat		 sb;
	unsigned char		*body = MAP_FAILED;
	char			 why[MESSAGE_LEN], line[MESSAGE_LEN];
	size_t			 len = 0;
	int			 r;

	memset(res, 0, sizeof(*res));
	res->verdict = SCAN_PASS;
	/* Whatever the scan does, incoming X-Spam-* cannot pass for ours. */
	res->strip_spam_headers = 1;
	/* smtp stopped waiting for it long ago: no work for nobody. */
	if (time(NULL) - job->queued > set->sc.max_scantime +
	    set->sc.spamassassin_timeout + SCAN_STALE_GRACE) {
		res->verdict = SCAN_TEMPFAIL;
		(void)strlcpy(res->reason, "waited too long for a thread",
		    sizeof(res->reason));
		(void)strlcpy(job->log, "not scanned: waited too long",
		    sizeof(job->log));
		return;
	}
	if (fstat(job->fd, &sb) == -1 || !S_ISREG(sb.st_mode) ||
	    (uint64_t)sb.st_size < job->req.size) {
		job_fallback(job, set->sc.on_error, SCAN_TEMPFAIL,
		    "the message could not be read", "not scanned");
		return;
	}
	len = job->req.size;

	if ((e = engine_current()) == NULL) {
		job_fallback(job, set->sc.on_error, SCAN_TEMPFAIL,
		    "no virus database loaded", "not scanned");
		return;
	}
	r = job_clamav(job, e, why, sizeof(why));
	if (r == 0) {
		(void)snprintf(line, sizeof(line), "smarthostd with ClamAV "
		    "%s/%u", clamav_version, e->dbversion);
		scan_header_append(res, "X-Virus-Scanned", line);
	}
	engine_release(e);
	if (r != 0)
		return;		/* a verdict, or a fallback, is made */

	if (job->req.virus_only || !job->req.spam.set) {
		(void)strlcpy(job->log, "clean", sizeof(job->log));
		return;
	}
	if (len > 0 && (body = mmap(NULL, len, PROT_READ, MAP_PRIVATE,
	    job->fd, 0)) == MAP_FAILED) {
		(void)snprintf(why, sizeof(why), "mmap: %s", strerror(errno));
		job_fallback(job, set->sc.on_error, SCAN_TEMPFAIL, why,
		    "not scored");
		return;
	}
	if (scan_score(&set->sc, set->hostname, &job->req,
	    body == MAP_FAILED ? (const unsigned char *)"" : body, len, res,
	    why, sizeof(why)) == -1)
		job_fallback(job, set->sc.on_error, SCAN_TEMPFAIL, why,
		    "not scored");
	else
		(void)snprintf(job->log, sizeof(job->log), "%.400s, score %.1f%s",
		    res->verdict == SCAN_SPAM ? "spam" :
		    res->verdict == SCAN_QUARANTINE ? "quarantined" :
		    res->verdict == SCAN_BAD_HEADER ? "bad header" : "clean",
		    res->score, res->tagged ? ", tagged" : "");
	if (body != MAP_FAILED)
		(void)munmap(body, len);
}

/*
 * libclamav over the whole message: 0 when it is clean, 1 when a
 * verdict or a fallback has been set in the result.
 */
static int
job_clamav(struct scan_job *job, struct scan_engine *e, char *why,
    size_t whylen)
{
	struct scan_settings	*set = job->set;
	struct scan_result	*res = &job->res;
	struct cl_scan_options	 opts;
	const char		*virname = NULL;
	unsigned long		 scanned = 0;
	char			 name[SCAN_NAME_MAX];
	cl_error_t		 r;

	memset(&opts, 0, sizeof(opts));
	opts.general = CL_SCAN_GENERAL_HEURISTICS;
	opts.parse = ~0U & ~(CL_SCAN_PARSE_IMAGE |
	    CL_SCAN_PARSE_IMAGE_FUZZY_HASH);
	opts.heuristic = CL_SCAN_HEURISTIC_EXCEEDS_MAX;
	/* An encrypted archive hides its file names from banned-files. */
	if (set->nbanned > 0)
		opts.heuristic |= CL_SCAN_HEURISTIC_ENCRYPTED_ARCHIVE;
	opts.mail = 0;

	r = cl_scandesc_callback(job->fd, NULL, &virname, &scanned, e->cl,
	    &opts, job);
	if (r == CL_CLEAN)
		return (0);
	if (r == CL_VIRUS && job->banned[0] != '\0') {
		(void)strlcpy(name, job->banned, sizeof(name));
		sanitise(name);
		res->verdict = SCAN_BANNED;
		(void)strlcpy(res->reason, name, sizeof(res->reason));
		(void)snprintf(job->log, sizeof(job->log),
		    "banned attachment %s", name);
		return (1);
	}
	if (r == CL_VIRUS && virname != NULL &&
	    strncmp(virname, "Heuristics.Encrypted.", 21) == 0) {
		(void)snprintf(name, sizeof(name), "encrypted archive (%s)",
		    virname);
		sanitise(name);
		res->verdict = SCAN_BANNED;
		(void)strlcpy(res->reason, name, sizeof(res->reason));
		(void)snprintf(job->log, sizeof(job->log), "banned %s", name);
		return (1);
	}
	if (r == CL_VIRUS && virname != NULL &&
	    strncmp(virname, "Heuristics.Limits.Exceeded", 26) != 0) {
		(void)strlcpy(name, virname, sizeof(name));
		sanitise(name);
		res->verdict = SCAN_VIRUS;
		(void)strlcpy(res->reason, name, sizeof(res->reason));
		(void)snprintf(job->log, sizeof(job->log), "virus %s", name);
		return (1);
	}
	if (r == CL_VIRUS || r == CL_ETIMEOUT || r == CL_EMAXSIZE ||
	    r == CL_EMAXFILES || r == CL_EMAXREC) {
		(void)snprintf(why, whylen, "scan limit exceeded (%s)",
		    r == CL_VIRUS ? (virname != NULL ? virname : "limit") :
		    cl_strerror(r));
		sanitise(why);
		job_fallback(job, set->sc.on_limit, SCAN_LIMIT, why,
		    "not scanned in full");
		return (1);
	}
	(void)snprintf(why, whylen, "virus scan failed: %s", cl_strerror(r));
	job_fallback(job, set->sc.on_error, SCAN_TEMPFAIL, why, "not scanned");
	return (1);
}

/*
 * No verdict could be made: tempfail, refuse (limits only) or accept
 * as on-error or on-limit says.  An accepted message carries a header
 * that says it was not scanned, and why.
 */
static void
job_fallback(struct scan_job *job, enum scan_fallback fb,
    enum scan_verdict refuse, const char *why, const char *what)
{
	struct scan_result	*res = &job->res;
	char			 line[MESSAGE_LEN];

	switch (fb) {
	case SCAN_FALLBACK_ACCEPT:
		res->verdict = SCAN_PASS;
		(void)snprintf(line, sizeof(line), "%s by smarthostd: %s",
		    what, why);
		scan_header_append(res, strcmp(what, "not scored") == 0 ?
		    "X-Spam-Status" : "X-Virus-Scanned", line);
		res->strip_spam_headers = 1;
		(void)snprintf(job->log, sizeof(job->log), "accepted %s: %s",
		    what, why);
		return;
	case SCAN_FALLBACK_REJECT:
		if (refuse == SCAN_LIMIT) {
			res->verdict = SCAN_LIMIT;
			(void)strlcpy(res->reason, why, sizeof(res->reason));
			(void)snprintf(job->log, sizeof(job->log),
			    "refused: %s", why);
			return;
		}
		/* FALLTHROUGH */
	case SCAN_FALLBACK_TEMPFAIL:
		res->verdict = SCAN_TEMPFAIL;
		(void)strlcpy(res->reason, why, sizeof(res->reason));
		sanitise(res->reason);
		(void)snprintf(job->log, sizeof(job->log), "tempfail: %s",
		    why);
		return;
	}
}

/*
 * Every file libclamav finds, the message itself and everything nested
 * in it: its name (and each shorter name its double extensions hide,
 * so "invoice.pdf.exe" and "setup.exe.txt" both meet "*.exe") and its
 * type ("CL_TYPE_MSEXE") against banned-files.
 */
static cl_error_t
file_inspect(int fd, const char *type, const char **ancestors,
    size_t parent_size, const char *file_name, size_t file_size,
    const char *file_buffer, uint32_t level, uint32_t attributes,
    void *context)
{
	struct scan_job	*job = context;
	const char	*base, *p;
	char		 name[SCAN_NAME_MAX];
	char		*dot;

	(void)fd;
	(void)ancestors;
	(void)parent_size;
	(void)file_size;
	(void)file_buffer;
	(void)level;
	(void)attributes;
	if (job == NULL || job->set->nbanned == 0)
		return (CL_CLEAN);
	if (type != NULL && banned_match(job->set, type)) {
		(void)snprintf(job->banned, sizeof(job->banned), "%s%s%s",
		    file_name != NULL ? file_name : "", file_name != NULL ?
		    " " : "", type);
		return (CL_VIRUS);
	}
	if (file_name == NULL)
		return (CL_CLEAN);
	base = file_name;
	for (p = file_name; *p != '\0'; p++)
		if (*p == '/' || *p == '\\')
			base = p + 1;
	(void)strlcpy(name, base, sizeof(name));
	for (;;) {
		if (banned_match(job->set, name)) {
			(void)strlcpy(job->banned, base, sizeof(job->banned));
			return (CL_VIRUS);
		}
		if ((dot = strrchr(name, '.')) == NULL || dot == name ||
		    strchr(name, '.') == dot)
			break;
		*dot = '\0';
	}
	return (CL_CLEAN);
}

static int
banned_match(const struct scan_settings *set, const char *name)
{
	size_t	 i;

	for (i = 0; i < set->nbanned; i++)
		if (fnmatch(set->banned[i], name, FNM_CASEFOLD) == 0)
			return (1);
	return (0);
}

/* Names from a database or a message go into replies and logs. */
static void
sanitise(char *s)
{
	for (; *s != '\0'; s++)
		if (*s < 0x20 || *s > 0x7e)
			*s = '?';
}
