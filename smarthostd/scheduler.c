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
 * The scheduler, in the queue process: which message goes out when.
 * It keeps every queued message in memory by id and by the time of its
 * next attempt; the envelope in queue.mdb stays the only truth about
 * each recipient.  A run loads the envelope and the body, hands the due
 * recipients to relay.c (grouped by destination) or writes them to a
 * maildir, and when every part is done writes the outcome back in one
 * transaction, with the bounce it may cause.
 *
 * A crash before that transaction means the next run repeats the
 * delivery: a duplicate at worst, never a loss.  A recipient once
 * recorded as failed is never tried again.
 *
 * A message in the quarantine (ENVELOPE_QUARANTINE) is known here but
 * held: it has no next attempt, so it is neither relayed nor expired by
 * lifetime nor bounced, until smarthostctl releases it (it then comes
 * back as a new message would) or deletes it.  Held messages are kept
 * by arrival too: once quarantine-expire has passed since a message
 * arrived, it is deleted as quarantine delete would, never bounced (it
 * is spam, and its bounce would be backscatter).
 */

#include <sys/types.h>
#include <sys/stat.h>
#include <sys/socket.h>

#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "smarthostd.h"

#define SCHED_START_MAX		64	/* runs started per timer turn */
#define SCHED_RUNNING_MAX	512	/* runs at once */
/* Message bodies of runs in memory at once; one run may pass it. */
#define SCHED_BODY_BUDGET	(512ULL * 1024 * 1024)
/* Quarantined messages expired per timer turn: a transaction each. */
#define SCHED_EXPIRE_MAX	32
#define SCHED_EXPIRE_RETRY	60	/* seconds, after queue.mdb failed */

struct sched_run;

struct sched_msg {
	RB_ENTRY(sched_msg)	 by_id;
	RB_ENTRY(sched_msg)	 by_time;
	RB_ENTRY(sched_msg)	 by_arrival;	/* held ones */
	char			 id[QUEUE_ID_LEN];
	time_t			 next_try;
	time_t			 arrived;	/* held: expiry counts from it */
	int			 waiting;	/* in the by_time tree */
	int			 removed;	/* while running */
	int			 force;		/* schedule: every pending now */
	int			 held;		/* in the by_arrival tree */
	struct sched_run	*run;
};
RB_HEAD(sched_ids, sched_msg);
RB_HEAD(sched_times, sched_msg);
RB_HEAD(sched_held, sched_msg);

/* One relay job: the recipients of one run that share a destination. */
struct sched_job {
	TAILQ_ENTRY(sched_job)	 entry;
	struct relay_job	 job;
	struct relay_target	 target;
	struct sched_run	*run;
	uint32_t		*index;		/* envelope rcpt of each */
	size_t			 size;		/* of the three arrays */
};
TAILQ_HEAD(sched_jobs, sched_job);

/* One attempt at the due recipients of one message. */
struct sched_run {
	struct sched_msg	*msg;
	struct envelope		 env;
	unsigned char		*body;
	size_t			 body_len;
	int			 outstanding;
	struct relay_result	*results;	/* by envelope rcpt */
	char			*tried;		/* by envelope rcpt */
	struct sched_jobs	 jobs;
};

static int	 sched_id_cmp(struct sched_msg *, struct sched_msg *);
static int	 sched_time_cmp(struct sched_msg *, struct sched_msg *);
static int	 sched_arrival_cmp(struct sched_msg *, struct sched_msg *);
RB_PROTOTYPE(sched_ids, sched_msg, by_id, sched_id_cmp);
RB_PROTOTYPE(sched_times, sched_msg, by_time, sched_time_cmp);
RB_PROTOTYPE(sched_held, sched_msg, by_arrival, sched_arrival_cmp);

static struct sched_ids		 ids = RB_INITIALIZER(&ids);
static struct sched_times	 times = RB_INITIALIZER(&times);
static struct sched_held	 quarantine = RB_INITIALIZER(&quarantine);
static struct event		 ev_sched, ev_expire;
static int			 initialized;
static int			 paused;
static int			 running;
static uint64_t			 body_bytes;	/* of the runs in memory */
static uint64_t			 nheld;		/* messages quarantined */

static struct {
	uint64_t	 runs;
	uint64_t	 delivered;
	uint64_t	 deferred;
	uint64_t	 failed;
	uint64_t	 expired;
	uint64_t	 bounces;
	uint64_t	 delay_warnings;
} stats;

static void	 sched_relay_config(void);
static int	 dir_sync(const char *, int);
static void	 text_set(char *, size_t, const char *, ...)
		    __attribute__((__format__(printf, 3, 4)));
static void	 sched_load_one(const struct envelope *, void *);
static struct sched_msg *sched_find(const char *);
static struct sched_msg *sched_insert(const char *);
static void	 sched_forget_one(struct sched_msg *);
static void	 sched_wait(struct sched_msg *, time_t);
static void	 sched_unwait(struct sched_msg *);
static void	 sched_hold(struct sched_msg *, int64_t);
static void	 sched_unhold(struct sched_msg *);
static void	 sched_expire_arm(void);
static void	 sched_expire_timer(int, short, void *);
static void	 sched_arm(void);
static void	 sched_timer(int, short, void *);
static void	 sched_start(struct sched_msg *);
static int	 sched_target(const struct action *, const char *,
		    struct relay_target *);
static void	 sched_job_add(struct sched_run *, const struct relay_target *,
		    uint32_t);
static void	 sched_job_done(struct relay_job *);
static void	 sched_maildir(struct sched_run *, const struct action *,
		    uint32_t);
static void	 sched_finish(struct sched_run *);
static void	 sched_learn(const struct envelope *,
		    const struct envelope_rcpt *);
static void	 sched_apply(struct sched_run *, time_t);
static int	 sched_bounce(struct sched_run *, int, struct envelope *,
		    unsigned char **, size_t *);
static void	 sched_run_free(struct sched_run *);
static time_t	 sched_backoff(uint32_t);
static const char *sched_age(time_t, char *, size_t);
static time_t	 sched_next_try(const struct envelope *);
static void	 sched_fail(struct relay_result *, const char *);
static void	 sched_credentials(const struct action *, struct relay_target *);

RB_GENERATE(sched_ids, sched_msg, by_id, sched_id_cmp);
RB_GENERATE(sched_times, sched_msg, by_time, sched_time_cmp);
RB_GENERATE(sched_held, sched_msg, by_arrival, sched_arrival_cmp);

int
sched_id_cmp(struct sched_msg *a, struct sched_msg *b)
{
	return (strcmp(a->id, b->id));
}

int
sched_time_cmp(struct sched_msg *a, struct sched_msg *b)
{
	if (a->next_try != b->next_try)
		return (a->next_try < b->next_try ? -1 : 1);
	return (strcmp(a->id, b->id));
}

/*
 * By arrival, not by expiry: every held message expires the same time
 * after it arrived, so the order holds whatever quarantine-expire a
 * reload brings.
 */
int
sched_arrival_cmp(struct sched_msg *a, struct sched_msg *b)
{
	if (a->arrived != b->arrived)
		return (a->arrived < b->arrived ? -1 : 1);
	return (strcmp(a->id, b->id));
}

/*
 * Start-up, reload, shutdown.
 */

void
scheduler_init(void)
{
	size_t	 n;

	evtimer_set(&ev_sched, sched_timer, NULL);
	evtimer_set(&ev_expire, sched_expire_timer, NULL);
	dns_init(env->resolver, env->resolver_port);
	relay_init();
	sched_relay_config();
	initialized = 1;
	n = queue_envelope_walk(sched_load_one, NULL);
	log_info("scheduler: %zu message%s in the queue", n, n == 1 ? "" :
	    "s");
	sched_arm();
}

static void
sched_load_one(const struct envelope *e, void *arg)
{
	struct sched_msg	*m;
	time_t			 next;

	(void)arg;
	if ((next = sched_next_try(e)) == -1)
		return;		/* nothing pending: its end was recorded */
	m = sched_insert(e->id);
	if (e->flags & ENVELOPE_QUARANTINE)
		sched_hold(m, e->arrived);
	else
		sched_wait(m, next);
}

void
scheduler_config_changed(void)
{
	if (!initialized)
		return;
	dns_init(env->resolver, env->resolver_port);
	sched_relay_config();
	sched_arm();
	sched_expire_arm();
}

void
scheduler_shutdown(void)
{
	if (!initialized)
		return;
	/* Jobs in flight end deferred, and their runs are recorded. */
	relay_shutdown();
	evtimer_del(&ev_sched);
	evtimer_del(&ev_expire);
}

/*
 * The relay's limits, and the CA bundle of each action that checks
 * certificates, as the parent sent it.
 */
static void
sched_relay_config(void)
{
	const struct action	*a;

	relay_set_limits(env->queue.max_deliveries,
	    env->queue.max_per_destination);
	relay_clear_cas();
	TAILQ_FOREACH(a, &env->actions, entry)
		if (a->ca_pem != NULL)
			relay_set_ca(a->name, a->ca_pem, a->ca_len);
}

/*
 * The schedule.
 */

static struct sched_msg *
sched_find(const char *id)
{
	struct sched_msg	 find;

	(void)strlcpy(find.id, id, sizeof(find.id));
	return (RB_FIND(sched_ids, &ids, &find));
}

/* A message new to the schedule, neither waiting nor held yet. */
static struct sched_msg *
sched_insert(const char *id)
{
	struct sched_msg	*m;

	if ((m = calloc(1, sizeof(*m))) == NULL)
		fatal("scheduler");
	(void)strlcpy(m->id, id, sizeof(m->id));
	RB_INSERT(sched_ids, &ids, m);
	return (m);
}

void
scheduler_add(const char *id)
{
	if (!initialized || sched_find(id) != NULL)
		return;
	sched_wait(sched_insert(id), time(NULL));
	sched_arm();
}

/* A message committed into the quarantine: kept, never tried. */
void
scheduler_hold(const char *id, int64_t arrived)
{
	if (!initialized || sched_find(id) != NULL)
		return;
	sched_hold(sched_insert(id), arrived);
}

void
scheduler_forget(const char *what)
{
	struct sched_msg	*m, *next;

	/* By its id: expiry forgets a long quarantine one at a time. */
	if (strcmp(what, "all") != 0) {
		if ((m = sched_find(what)) != NULL)
			sched_forget_one(m);
		return;
	}
	RB_FOREACH_SAFE(m, sched_ids, &ids, next)
		sched_forget_one(m);
}

static void
sched_forget_one(struct sched_msg *m)
{
	if (m->run != NULL) {
		m->removed = 1;		/* the run ends and records nothing */
		return;
	}
	sched_unhold(m);
	sched_unwait(m);
	RB_REMOVE(sched_ids, &ids, m);
	free(m);
}

/* smarthostctl schedule: try now. */
size_t
scheduler_schedule(const char *what)
{
	struct sched_msg	*m;
	size_t			 n = 0;
	time_t			 now = time(NULL);

	RB_FOREACH(m, sched_ids, &ids) {
		if (strcmp(what, "all") != 0 && strcmp(what, m->id) != 0)
			continue;
		if (m->held)
			continue;	/* released only by its own command */
		n++;
		m->force = 1;
		if (m->waiting && m->next_try > now)
			sched_wait(m, now);
	}
	sched_arm();
	return (n);
}

/* Returns 0 when nothing changed. */
int
scheduler_pause(int pause)
{
	if (pause == paused)
		return (0);
	paused = pause;
	log_info("relay %s", paused ? "paused" : "resumed");
	sched_arm();
	return (1);
}

static void
sched_wait(struct sched_msg *m, time_t when)
{
	sched_unwait(m);
	m->next_try = when;
	RB_INSERT(sched_times, &times, m);
	m->waiting = 1;
}

static void
sched_unwait(struct sched_msg *m)
{
	if (m->waiting)
		RB_REMOVE(sched_times, &times, m);
	m->waiting = 0;
}

static void
sched_hold(struct sched_msg *m, int64_t arrived)
{
	time_t	 now = time(NULL);

	sched_unwait(m);
	/* An arrival in the future (a clock set back) counts from now. */
	m->arrived = arrived > now ? now : arrived < 0 ? 0 : (time_t)arrived;
	m->held = 1;
	RB_INSERT(sched_held, &quarantine, m);
	nheld++;
	if (RB_MIN(sched_held, &quarantine) == m)
		sched_expire_arm();
}

static void
sched_unhold(struct sched_msg *m)
{
	if (!m->held)
		return;
	RB_REMOVE(sched_held, &quarantine, m);
	m->held = 0;
	nheld--;
}

static void
sched_arm(void)
{
	struct sched_msg	*m;
	struct timeval		 tv = { 0, 0 };
	time_t			 now = time(NULL);

	if (!initialized)
		return;
	evtimer_del(&ev_sched);
	if (paused || (m = RB_MIN(sched_times, &times)) == NULL)
		return;
	if (m->next_try > now)
		tv.tv_sec = m->next_try - now;
	if ((running >= SCHED_RUNNING_MAX || body_bytes >= SCHED_BODY_BUDGET) &&
	    tv.tv_sec == 0)
		return;		/* a finishing run arms us again */
	evtimer_add(&ev_sched, &tv);
}

static void
sched_timer(int fd, short event, void *arg)
{
	struct sched_msg	*m;
	time_t			 now = time(NULL);
	int			 n = 0;

	(void)fd;
	(void)event;
	(void)arg;
	while (!paused && n < SCHED_START_MAX && running < SCHED_RUNNING_MAX &&
	    body_bytes < SCHED_BODY_BUDGET &&
	    (m = RB_MIN(sched_times, &times)) != NULL && m->next_try <= now) {
		sched_unwait(m);
		sched_start(m);
		n++;
	}
	sched_arm();
}

/* For the held message that arrived first; quarantine-expire 0 is never. */
static void
sched_expire_arm(void)
{
	struct sched_msg	*m;
	struct timeval		 tv = { 0, 0 };
	time_t			 now = time(NULL);
	time_t			 expire = env->queue.quarantine_expire;

	if (!initialized)
		return;
	evtimer_del(&ev_expire);
	if (expire == 0 || (m = RB_MIN(sched_held, &quarantine)) == NULL)
		return;
	if (m->arrived + expire > now)
		tv.tv_sec = m->arrived + expire - now;
	evtimer_add(&ev_expire, &tv);
}

/*
 * quarantine-expire: each held message that arrived longer ago is
 * deleted in a transaction of its own, a bounded number per turn, so
 * that a long quarantine (one found at start-up) is worked through
 * between the other events rather than in one go.
 */
static void
sched_expire_timer(int fd, short event, void *arg)
{
	struct sched_msg	*m;
	struct timeval		 tv = { SCHED_EXPIRE_RETRY, 0 };
	char			 id[QUEUE_ID_LEN], why[MESSAGE_LEN], age[32];
	time_t			 now = time(NULL), arrived;
	time_t			 expire = env->queue.quarantine_expire;
	int			 n;

	(void)fd;
	(void)event;
	(void)arg;
	for (n = 0; n < SCHED_EXPIRE_MAX && expire != 0 &&
	    (m = RB_MIN(sched_held, &quarantine)) != NULL &&
	    now - m->arrived >= expire; n++) {
		/* Deleted, m is freed: keep what the log line needs. */
		(void)strlcpy(id, m->id, sizeof(id));
		arrived = m->arrived;
		switch (queue_quarantine_expire(id, why, sizeof(why))) {
		case 0:
			log_info("%s: quarantined %s ago; expired and deleted",
			    id, sched_age(now - arrived, age, sizeof(age)));
			break;
		case 1:
			/* Not held after all: a run finds out what it is. */
			log_warnx("%s: %s; no longer held", id, why);
			sched_unhold(m);
			sched_wait(m, now);
			sched_arm();
			break;
		default:
			log_warnx("%s: not expired from the quarantine: %s; "
			    "trying again later", id, why);
			evtimer_del(&ev_expire);
			evtimer_add(&ev_expire, &tv);
			return;
		}
	}
	sched_expire_arm();
}

/*
 * A run.
 */

static void
sched_start(struct sched_msg *m)
{
	struct sched_run	*r;
	struct sched_job	*j;
	struct relay_target	 target;
	const struct action	*a;
	struct envelope_rcpt	*rcpt;
	time_t			 now = time(NULL);
	uint32_t		 i;
	int			 body_failed = 0;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		fatal("sched_start");
	TAILQ_INIT(&r->jobs);
	r->msg = m;
	if (queue_envelope_load(m->id, &r->env) == -1) {
		log_warnx("%s: gone from the queue", m->id);
		free(r);
		RB_REMOVE(sched_ids, &ids, m);
		free(m);
		return;
	}
	if (r->env.flags & ENVELOPE_QUARANTINE) {
		/* Not ours to relay, however it came to be waiting. */
		log_warnx("%s: quarantined; held, not relayed", m->id);
		sched_hold(m, r->env.arrived);
		envelope_clear(&r->env);
		free(r);
		return;
	}
	if ((r->results = calloc(r->env.nrcpt, sizeof(*r->results))) == NULL ||
	    (r->tried = calloc(r->env.nrcpt, 1)) == NULL)
		fatal("sched_start");
	m->run = r;
	running++;
	stats.runs++;

	if (queue_body_load(m->id, &r->body, &r->body_len) == 0)
		body_bytes += r->body_len;
	else
		body_failed = 1;
	/* Past its lifetime the message is not tried again but bounced. */
	if (!body_failed && now - r->env.arrived >= env->queue.lifetime) {
		sched_finish(r);
		return;
	}
	for (i = 0; i < r->env.nrcpt; i++)
		r->tried[i] = r->env.rcpts[i].state == RCPT_PENDING &&
		    (r->env.rcpts[i].next_try <= now || m->force);
	m->force = 0;
	if (body_failed) {
		/* Deferred like any failure, so that backoff applies. */
		for (i = 0; i < r->env.nrcpt; i++) {
			if (!r->tried[i])
				continue;
			r->results[i].status = RELAY_DEFERRED;
			(void)strlcpy(r->results[i].text, "the message body "
			    "cannot be read from the queue",
			    sizeof(r->results[i].text));
		}
		sched_finish(r);
		return;
	}
	r->outstanding = 1;	/* until every job is out */
	for (i = 0; i < r->env.nrcpt; i++) {
		if (!r->tried[i])
			continue;
		rcpt = &r->env.rcpts[i];
		if ((a = action_find(env, rcpt->action)) == NULL) {
			r->results[i].status = RELAY_DEFERRED;
			text_set(r->results[i].text,
			    sizeof(r->results[i].text), "action %s is not in "
			    "the configuration", rcpt->action);
			continue;
		}
		if (a->flags & ACTION_MAILDIR) {
			sched_maildir(r, a, i);
			continue;
		}
		if (sched_target(a, rcpt->addr, &target) == -1) {
			sched_fail(&r->results[i], "550 5.1.2 recipient has no "
			    "domain to relay to");
			continue;
		}
		sched_job_add(r, &target, i);
	}
	TAILQ_FOREACH(j, &r->jobs, entry) {
		j->job.done = sched_job_done;
		relay_submit(&j->target, &j->job);
	}
	if (--r->outstanding == 0)
		sched_finish(r);
}

/* Where an action sends one recipient. */
static int
sched_target(const struct action *a, const char *addr,
    struct relay_target *t)
{
	const char	*domain = mailaddr_domain(addr);

	memset(t, 0, sizeof(*t));
	t->scheme = a->relay_scheme;
	t->port = a->relay_port;
	t->tls_verify = (a->flags & ACTION_TLS_VERIFY) != 0;
	if (t->tls_verify)
		(void)strlcpy(t->ca_name, a->name, sizeof(t->ca_name));
	(void)strlcpy(t->helo, a->helo[0] != '\0' ? a->helo : env->hostname,
	    sizeof(t->helo));
	if (a->relay_host[0] != '\0') {
		(void)strlcpy(t->host, a->relay_host, sizeof(t->host));
		(void)snprintf(t->key, sizeof(t->key), "%s/%s:%u", a->name,
		    a->relay_host, a->relay_port);
	} else {
		if (domain == NULL || domain[0] == '[')
			return (-1);
		(void)strlcpy(t->domain, domain, sizeof(t->domain));
		(void)snprintf(t->key, sizeof(t->key), "%s/%s", a->name,
		    domain);
	}
	sched_credentials(a, t);
	return (0);
}

static void
sched_job_add(struct sched_run *r, const struct relay_target *t, uint32_t i)
{
	struct sched_job	*j;

	TAILQ_FOREACH(j, &r->jobs, entry)
		if (strcmp(j->target.key, t->key) == 0)
			break;
	if (j == NULL) {
		if ((j = calloc(1, sizeof(*j))) == NULL)
			fatal("sched_job_add");
		j->target = *t;
		j->run = r;
		(void)strlcpy(j->job.id, r->env.id, sizeof(j->job.id));
		(void)strlcpy(j->job.sender, r->env.sender,
		    sizeof(j->job.sender));
		j->job.flags = r->env.flags;
		j->job.body = r->body;
		j->job.body_len = r->body_len;
		j->job.arg = j;
		TAILQ_INSERT_TAIL(&r->jobs, j, entry);
		r->outstanding++;
	}
	/* Grown as recipients come: a job holds only its own. */
	if (j->job.nrcpt == j->size) {
		j->size = j->size ? j->size * 2 : 4;
		if ((j->index = reallocarray(j->index, j->size,
		    sizeof(*j->index))) == NULL ||
		    (j->job.rcpts = reallocarray(j->job.rcpts, j->size,
		    sizeof(*j->job.rcpts))) == NULL ||
		    (j->job.results = reallocarray(j->job.results, j->size,
		    sizeof(*j->job.results))) == NULL)
			fatal("sched_job_add");
	}
	j->index[j->job.nrcpt] = i;
	(void)strlcpy(j->job.rcpts[j->job.nrcpt], r->env.rcpts[i].addr,
	    sizeof(j->job.rcpts[0]));
	memset(&j->job.results[j->job.nrcpt], 0, sizeof(j->job.results[0]));
	j->job.nrcpt++;
}

static void
sched_job_done(struct relay_job *job)
{
	struct sched_job	*j = job->arg;
	struct sched_run	*r = j->run;
	size_t			 i;

	for (i = 0; i < job->nrcpt; i++) {
		r->results[j->index[i]] = job->results[i];
	}
	if (--r->outstanding == 0)
		sched_finish(r);
}

static void
sched_fail(struct relay_result *res, const char *text)
{
	res->status = RELAY_FAILED;
	(void)strlcpy(res->text, text, sizeof(res->text));
}

/* Text that may be cut: error messages and the like. */
static void
text_set(char *buf, size_t len, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	(void)vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

/*
 * Relay AUTH: the action's table maps the relay host to "user:password".
 * The parent sends that table to the queue process and nowhere else.
 */
static void
sched_credentials(const struct action *a, struct relay_target *t)
{
	struct table		*tab;
	struct table_entry	 find, *e;
	const char		*colon;
	size_t			 len;

	if (a->auth_table[0] == '\0' || t->host[0] == '\0' ||
	    (tab = table_find(env, a->auth_table)) == NULL)
		return;
	find.key = t->host;
	if ((e = RB_FIND(table_entries, &tab->entries, &find)) == NULL ||
	    e->value == NULL || (colon = strchr(e->value, ':')) == NULL)
		return;
	len = colon - e->value;
	if (len == 0 || len >= sizeof(t->auth_user))
		return;
	memcpy(t->auth_user, e->value, len);
	t->auth_user[len] = '\0';
	(void)strlcpy(t->auth_password, colon + 1, sizeof(t->auth_password));
}

/*
 * Local delivery into a Maildir below the state directory: the file is
 * written in tmp/, fsynced, and renamed into new/, whose directory is
 * fsynced too, before the recipient counts as delivered.
 */
static int
maildir_mkdirs(const char *dir)
{
	static const char	*sub[] = { "", "/tmp", "/new", "/cur" };
	char			 path[PATH_MAX];
	size_t			 i;

	for (i = 0; i < sizeof(sub) / sizeof(sub[0]); i++) {
		if ((size_t)snprintf(path, sizeof(path), "%s%s", dir, sub[i]) >=
		    sizeof(path))
			return (-1);
		if (mkdir(path, 0700) == 0) {
			/* A new directory lasts once its parent is synced. */
			if (dir_sync(path, 1) == -1)
				return (-1);
		} else if (errno != EEXIST)
			return (-1);
	}
	return (0);
}

/* fsync a directory, or with parent, the one that holds it. */
static int
dir_sync(const char *path, int parent)
{
	char	 buf[PATH_MAX], *slash;
	int	 fd, ret;

	if (strlcpy(buf, path, sizeof(buf)) >= sizeof(buf))
		return (-1);
	if (parent) {
		if ((slash = strrchr(buf, '/')) == NULL)
			(void)strlcpy(buf, ".", sizeof(buf));
		else if (slash == buf)
			buf[1] = '\0';
		else
			*slash = '\0';
	}
	if ((fd = open(buf, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return (-1);
	ret = fsync(fd);
	(void)close(fd);
	return (ret);
}

static int
maildir_write(int fd, const struct sched_run *r, const char *rcpt)
{
	FILE		*f;
	size_t		 i;
	int		 ret;

	if ((f = fdopen(fd, "w")) == NULL) {
		(void)close(fd);
		return (-1);
	}
	(void)fprintf(f, "Return-Path: <%s>\nDelivered-To: %s\n",
	    r->env.sender, rcpt);
	/* Maildir files hold lines ended by LF alone. */
	for (i = 0; i < r->body_len; i++) {
		if (r->body[i] == '\r' && i + 1 < r->body_len &&
		    r->body[i + 1] == '\n')
			continue;
		(void)putc(r->body[i], f);
	}
	/* A failed write drops stdio's buffer: ferror() remembers it. */
	ret = fflush(f) == 0 && !ferror(f) && fsync(fileno(f)) == 0 ? 0 : -1;
	if (fclose(f) != 0)
		ret = -1;
	return (ret);
}

static void
sched_maildir(struct sched_run *r, const struct action *a, uint32_t i)
{
	static uint32_t		 seq;
	struct relay_result	*res = &r->results[i];
	const char		*base = queue_state_path();
	char			 dir[PATH_MAX], tmp[PATH_MAX], new[PATH_MAX];
	char			 name[128];
	struct timespec		 ts;
	int			 fd;

	(void)clock_gettime(CLOCK_REALTIME, &ts);
	(void)snprintf(name, sizeof(name), "%lld.M%ldP%dQ%u.%s",
	    (long long)ts.tv_sec, (long)(ts.tv_nsec / 1000), (int)getpid(),
	    ++seq, r->env.id);
	if ((size_t)snprintf(dir, sizeof(dir), "%s/%s",
	    strcmp(base, "/") == 0 ? "" : base, a->maildir) >= sizeof(dir) ||
	    (size_t)snprintf(tmp, sizeof(tmp), "%s/tmp/%s", dir, name) >=
	    sizeof(tmp) ||
	    (size_t)snprintf(new, sizeof(new), "%s/new/%s", dir, name) >=
	    sizeof(new)) {
		sched_fail(res, "550 5.3.5 maildir path too long");
		return;
	}
	res->status = RELAY_DEFERRED;
	if (maildir_mkdirs(dir) == -1 ||
	    (fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	    0600)) == -1) {
		text_set(res->text, sizeof(res->text), "maildir %s: %s",
		    a->maildir, strerror(errno));
		return;
	}
	if (maildir_write(fd, r, r->env.rcpts[i].addr) == -1 ||
	    rename(tmp, new) == -1) {
		text_set(res->text, sizeof(res->text), "maildir %s: %s",
		    a->maildir, strerror(errno));
		(void)unlink(tmp);
		return;
	}
	/* The rename is durable once new/ is. */
	if (dir_sync(new, 1) == -1) {
		text_set(res->text, sizeof(res->text), "maildir %s: %s",
		    a->maildir, strerror(errno));
		return;
	}
	res->status = RELAY_DELIVERED;
	text_set(res->text, sizeof(res->text), "delivered to maildir %s",
	    a->maildir);
}

/*
 * The end of a run: results into the envelope, then one transaction.
 */
static void
sched_finish(struct sched_run *r)
{
	struct sched_msg	*m = r->msg;
	struct envelope		 bounce, *b = NULL;
	unsigned char		*bbody = NULL;
	size_t			 blen = 0;
	time_t			 now = time(NULL), next, r_arrived;
	uint32_t		 i;
	int			 done, failed = 0;

	if (m->removed) {
		sched_run_free(r);
		RB_REMOVE(sched_ids, &ids, m);
		free(m);
		sched_arm();
		return;
	}
	sched_apply(r, now);
	for (i = 0; i < r->env.nrcpt; i++)
		if (r->env.rcpts[i].state == RCPT_FAILED)
			failed = 1;
	done = (next = sched_next_try(&r->env)) == -1;

	memset(&bounce, 0, sizeof(bounce));
	if (done && failed && sched_bounce(r, 0, &bounce, &bbody,
	    &blen) == 0)
		b = &bounce;
	else if (!done && env->queue.delay_warning > 0 &&
	    !(r->env.flags & ENVELOPE_DELAY_WARNED) &&
	    now - r->env.arrived >= env->queue.delay_warning) {
		/* Said once, even if the warning itself cannot be made. */
		r->env.flags |= ENVELOPE_DELAY_WARNED;
		if (sched_bounce(r, 1, &bounce, &bbody, &blen) == 0) {
			b = &bounce;
			stats.delay_warnings++;
		}
	}

	if (queue_delivery_commit(&r->env, done, b, bbody, blen) == -1) {
		/* What went out goes again: a duplicate, not a loss. */
		done = 0;
		next = now + env->queue.retry_min;
		b = NULL;
	}
	if (b != NULL) {
		if (!(b->flags & ENVELOPE_DELAY_WARNED) && done)
			stats.bounces++;
		log_info("%s: %s %s to <%s>", r->env.id, done ? "bounce" :
		    "delay warning", b->id, b->rcpts[0].addr);
		scheduler_add(b->id);
	}
	envelope_clear(&bounce);
	free(bbody);
	r_arrived = r->env.arrived;
	sched_run_free(r);
	if (done) {
		log_info("%s: done", m->id);
		RB_REMOVE(sched_ids, &ids, m);
		free(m);
	} else {
		/* Expiry is noticed when it comes, not at the next try. */
		if (next > r_arrived + env->queue.lifetime)
			next = r_arrived + env->queue.lifetime;
		sched_wait(m, next);
	}
	sched_arm();
}

static void
sched_apply(struct sched_run *r, time_t now)
{
	struct envelope_rcpt	*rcpt;
	struct relay_result	*res;
	char			 last[MESSAGE_LEN], age[32];
	uint32_t		 i;
	size_t			 k;

	for (i = 0; i < r->env.nrcpt; i++) {
		rcpt = &r->env.rcpts[i];
		if (rcpt->state != RCPT_PENDING)
			continue;
		if (r->tried[i]) {
			res = &r->results[i];
			/* Whatever came back is stored as one safe line. */
			for (k = 0; res->text[k] != '\0'; k++)
				if ((unsigned char)res->text[k] < 0x20 ||
				    (unsigned char)res->text[k] >= 0x7f)
					res->text[k] = '?';
			rcpt->attempts++;
			(void)strlcpy(rcpt->last_error, res->text,
			    sizeof(rcpt->last_error));
			switch (res->status) {
			case RELAY_DELIVERED:
				rcpt->state = RCPT_DELIVERED;
				stats.delivered++;
				sched_learn(&r->env, rcpt);
				break;
			case RELAY_FAILED:
				rcpt->state = RCPT_FAILED;
				stats.failed++;
				break;
			case RELAY_DEFERRED:
				rcpt->next_try = now +
				    sched_backoff(rcpt->attempts);
				stats.deferred++;
				break;
			}
			log_info("%s: to=<%s> action=%s %s: %s", r->env.id,
			    rcpt->addr, rcpt->action, res->status ==
			    RELAY_DELIVERED ? "delivered" : res->status ==
			    RELAY_FAILED ? "failed" : "deferred", res->text);
		}
		if (rcpt->state == RCPT_PENDING &&
		    now - r->env.arrived >= env->queue.lifetime) {
			(void)strlcpy(last, rcpt->last_error, sizeof(last));
			text_set(rcpt->last_error,
			    sizeof(rcpt->last_error), "message expired after "
			    "%s in the queue%s%s", sched_age(now -
			    r->env.arrived, age, sizeof(age)),
			    last[0] != '\0' ? "; last error: " : "", last);
			rcpt->state = RCPT_FAILED;
			stats.expired++;
			log_info("%s: to=<%s> expired", r->env.id, rcpt->addr);
		}
	}
}

/*
 * spamlogd's job: a message our users sent (only their mail is relayed
 * by MX) reached a remote domain, so replies from that domain's SPF-
 * authorised hosts need not be greylisted.  Our own DSNs teach nothing,
 * nor does an action marked greylist (a backup MX relaying strangers'
 * mail by MX).
 */
static void
sched_learn(const struct envelope *e, const struct envelope_rcpt *rcpt)
{
	const struct action	*a;
	const char		*domain;

	if (!env->greylist.enabled || iev_peer[PROC_GREY] == NULL ||
	    (e->flags & ENVELOPE_BOUNCE) || e->sender[0] == '\0')
		return;
	if ((a = action_find(env, rcpt->action)) == NULL ||
	    (a->flags & (ACTION_MAILDIR | ACTION_GREYLIST)) ||
	    a->relay_host[0] != '\0')
		return;
	if ((domain = mailaddr_domain(rcpt->addr)) == NULL ||
	    domain[0] == '[')
		return;
	if (imsgev_compose(iev_peer[PROC_GREY], IMSG_GREY_LEARN, 0, 0, -1,
	    domain, strlen(domain) + 1) == -1)
		log_warnx("cannot tell grey about %s", domain);
}

/*
 * A DSN for the sender, routed by the match rules as mail from this
 * host to that address would be.
 */
static int
sched_bounce(struct sched_run *r, int delayed, struct envelope *b,
    unsigned char **body, size_t *len)
{
	struct sockaddr_in	 sin;
	struct rule_context	 ctx;
	const struct match_rule	*m;
	const struct action	*a = NULL;
	unsigned char		 rnd[8];
	char			 id[QUEUE_ID_LEN];
	int			 i;

	arc4random_buf(rnd, sizeof(rnd));
	for (i = 0; i < 8; i++)
		(void)snprintf(id + i * 2, 3, "%02x", rnd[i]);
	if (bounce_build(&r->env, r->body, r->body_len, delayed,
	    env->queue.lifetime, env->hostname, time(NULL), id, b, body,
	    len) == -1)
		return (-1);

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	memset(&ctx, 0, sizeof(ctx));
	ctx.client = (struct sockaddr_storage *)&sin;
	ctx.sender = "";
	ctx.rcpt = b->rcpts[0].addr;
	ctx.local_name = env->hostname;
	if ((m = ruleset_match(env, &ctx)) != NULL && !m->reject)
		a = action_find(env, m->action);
	if (a == NULL)
		TAILQ_FOREACH(a, &env->actions, entry)
			if ((a->flags & ACTION_RELAY) &&
			    a->relay_host[0] == '\0')
				break;
	if (a == NULL) {
		log_warnx("%s: no rule or action routes a bounce to <%s>; "
		    "none sent", r->env.id, b->rcpts[0].addr);
		envelope_clear(b);
		free(*body);
		*body = NULL;
		return (-1);
	}
	(void)strlcpy(b->rcpts[0].action, a->name, sizeof(b->rcpts[0].action));
	return (0);
}

static void
sched_run_free(struct sched_run *r)
{
	struct sched_job	*j;

	while ((j = TAILQ_FIRST(&r->jobs)) != NULL) {
		TAILQ_REMOVE(&r->jobs, j, entry);
		free(j->index);
		free(j->job.rcpts);
		free(j->job.results);
		explicit_bzero(&j->target, sizeof(j->target));
		free(j);
	}
	r->msg->run = NULL;
	envelope_clear(&r->env);
	body_bytes -= r->body_len;
	free(r->body);
	free(r->results);
	free(r->tried);
	free(r);
	running--;
}

/* "4 days", "3 hours", "2 minutes": how long a message waited. */
static const char *
sched_age(time_t t, char *buf, size_t len)
{
	static const struct {
		time_t		 seconds;
		const char	*unit;
	} units[] = {
		{ 86400, "day" }, { 3600, "hour" }, { 60, "minute" },
		{ 1, "second" }
	};
	long long	 n;
	size_t		 i;

	for (i = 0; i < sizeof(units) / sizeof(units[0]) - 1; i++)
		if (t >= units[i].seconds)
			break;
	n = (long long)(t / units[i].seconds);
	(void)snprintf(buf, len, "%lld %s%s", n, units[i].unit,
	    n == 1 ? "" : "s");
	return (buf);
}

/* retry-min, doubling with each attempt, never over retry-max. */
static time_t
sched_backoff(uint32_t attempts)
{
	time_t	 delay = env->queue.retry_min;

	while (attempts-- > 1 && delay < env->queue.retry_max)
		delay *= 2;
	return (delay < env->queue.retry_max ? delay : env->queue.retry_max);
}

/* The earliest next attempt of a pending recipient, or -1 for none. */
static time_t
sched_next_try(const struct envelope *e)
{
	time_t		 next = -1;
	uint32_t	 i;

	for (i = 0; i < e->nrcpt; i++)
		if (e->rcpts[i].state == RCPT_PENDING &&
		    (next == -1 || e->rcpts[i].next_try < next))
			next = e->rcpts[i].next_try;
	return (next);
}

struct sched_stats_arg {
	void	(*cb)(const char *, uint64_t, void *);
	void	*arg;
};

static void
sched_stats_dest(const char *key, const struct relay_stats *rs, void *arg)
{
	struct sched_stats_arg	*a = arg;
	char			 name[64];

	(void)snprintf(name, sizeof(name), "dest.%s.delivered", key);
	a->cb(name, rs->delivered, a->arg);
	(void)snprintf(name, sizeof(name), "dest.%s.deferred", key);
	a->cb(name, rs->deferred, a->arg);
	(void)snprintf(name, sizeof(name), "dest.%s.failed", key);
	a->cb(name, rs->failed, a->arg);
}

void
scheduler_stats(void (*cb)(const char *, uint64_t, void *), void *arg)
{
	struct sched_stats_arg	 a = { cb, arg };
	struct relay_stats	 total;

	cb("queue.quarantined", nheld, arg);
	cb("relay.runs", stats.runs, arg);
	cb("relay.delivered", stats.delivered, arg);
	cb("relay.deferred", stats.deferred, arg);
	cb("relay.failed", stats.failed, arg);
	cb("relay.expired", stats.expired, arg);
	cb("relay.bounces", stats.bounces, arg);
	cb("relay.delay_warnings", stats.delay_warnings, arg);
	cb("relay.running", running, arg);
	cb("relay.paused", paused, arg);
	if (!initialized)
		return;
	relay_stats_total(&total);
	cb("relay.connections", total.connections, arg);
	cb("relay.connect_failures", total.connect_failures, arg);
	cb("relay.connections.active", total.active, arg);
	relay_stats_walk(sched_stats_dest, &a);
}
