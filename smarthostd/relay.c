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
 * The relay engine: the outbound SMTP client of the queue process.
 *
 * The scheduler submits jobs (one message, some of its recipients) for
 * a destination key.  Each key has a queue of waiting jobs and up to
 * per_destination_max connections; all keys together have up to
 * global_max.  A connection resolves its destination (by MX, or the
 * fixed host), tries the addresses in order until one greets, says
 * EHLO, STARTTLS, AUTH, and then runs one transaction after another for
 * the jobs of its key until it has been idle for a few seconds.
 *
 * This file holds the setup, the scheduling of jobs onto connections,
 * the destinations and the jobs' results; relay_conn.c the connections
 * and relay_smtp.c the SMTP dialogue (see relay.h).
 *
 * done() callbacks, connection starts and frees all run from one
 * zero-delay timer, so nothing here calls back into the scheduler
 * while the scheduler is calling us.
 */

#include <sys/types.h>

#include <stdlib.h>
#include <string.h>
#include <tls.h>

#include "smarthostd.h"
#include "relay.h"

#define RELAY_GLOBAL_MAX	100	/* connections, all destinations */
#define RELAY_DEST_MAX		20	/* connections to one destination */
#define RELAY_DESTS_KEPT	1024	/* idle destinations kept for stats */

RB_HEAD(relay_dests, relay_dest);

static int	 relay_dest_cmp(struct relay_dest *, struct relay_dest *);
RB_PROTOTYPE(relay_dests, relay_dest, entry, relay_dest_cmp);
RB_GENERATE(relay_dests, relay_dest, entry, relay_dest_cmp);

static struct relay_dests	 dests = RB_INITIALIZER(&dests);
struct relay_dests_pending	 dests_pending =
				    TAILQ_HEAD_INITIALIZER(dests_pending);
static TAILQ_HEAD(, relay_job)	 jobs_done =
				    TAILQ_HEAD_INITIALIZER(jobs_done);
struct relay_conns		 conns_dead =
				    TAILQ_HEAD_INITIALIZER(conns_dead);
static size_t			 ndests;
int				 nconn_total;
static int			 global_max = RELAY_GLOBAL_MAX;
static int			 dest_max = RELAY_DEST_MAX;
time_t				 timeout_max;
int				 shutting_down;
static int			 initialised;
static struct event		 ev_kick;
struct tls_config		*tls_cfg_verify, *tls_cfg_any;

static TAILQ_HEAD(, relay_ca)	 cas = TAILQ_HEAD_INITIALIZER(cas);
struct relay_stats		 stats_total;

static void	 relay_run(int, short, void *);
static void	 relay_dispatch(void);
static void	 relay_dests_trim(void);
static struct relay_dest *dest_get(const struct relay_target *);
static struct relay_conn *dest_idle_conn(struct relay_dest *);
static int	 dest_quit_idle(struct relay_dest *);
static int	 job_valid(struct relay_job *);
static int	 addr_ok(const char *, int);

/*
 * Setup.
 */

void
relay_init(void)
{
	uint32_t	 protocols;

	if (initialised)
		return;
	if (tls_init() == -1)
		fatalx("relay: tls_init");
	if ((tls_cfg_any = tls_config_new()) == NULL)
		fatal("relay: tls_config_new");
	/*
	 * Opportunistic TLS takes whatever the server speaks: anything is
	 * better than plaintext, into which we fall back anyway.
	 */
	if (tls_config_parse_protocols(&protocols, "all") == -1 ||
	    tls_config_set_protocols(tls_cfg_any, protocols) == -1 ||
	    tls_config_set_ciphers(tls_cfg_any, "compat") == -1)
		fatalx("relay: TLS configuration: %s",
		    tls_config_error(tls_cfg_any));
	tls_config_insecure_noverifycert(tls_cfg_any);
	tls_config_insecure_noverifyname(tls_cfg_any);
	/* Until relay_set_ca(), libtls's default CA file (not in a chroot). */
	if (tls_cfg_verify == NULL &&
	    (tls_cfg_verify = tls_config_new()) == NULL)
		fatal("relay: tls_config_new");
	evtimer_set(&ev_kick, relay_run, NULL);
	initialised = 1;
}

void
relay_set_limits(int global, int per_destination)
{
	global_max = global > 0 ? global : RELAY_GLOBAL_MAX;
	dest_max = per_destination > 0 ? per_destination : RELAY_DEST_MAX;
	relay_kick();
}

/*
 * The CA bundle for "tls verify", in memory: the queue process runs
 * chrooted and cannot read the system's.  Connections already made keep
 * the configuration they started with.
 */
void
relay_set_ca(const char *name, const char *pem, size_t len)
{
	struct relay_ca		*ca;
	struct tls_config	*cfg;

	if ((cfg = tls_config_new()) == NULL)
		fatal("relay: tls_config_new");
	if (tls_config_set_ca_mem(cfg, (const uint8_t *)pem, len) == -1) {
		log_warnx("relay: CA bundle %s: %s", name,
		    tls_config_error(cfg));
		tls_config_free(cfg);
		return;
	}
	/* libtls counts references: handshakes under way keep the old. */
	if ((ca = relay_ca_find(name)) == NULL) {
		if ((ca = calloc(1, sizeof(*ca))) == NULL)
			fatal("relay_set_ca");
		(void)strlcpy(ca->name, name, sizeof(ca->name));
		TAILQ_INSERT_TAIL(&cas, ca, entry);
	} else
		tls_config_free(ca->cfg);
	ca->cfg = cfg;
}

/*
 * Before a reload sets the bundles again: an action whose CA file can
 * no longer be read must fail closed, not keep the old trust.
 */
void
relay_clear_cas(void)
{
	struct relay_ca	*ca;

	while ((ca = TAILQ_FIRST(&cas)) != NULL) {
		TAILQ_REMOVE(&cas, ca, entry);
		tls_config_free(ca->cfg);
		free(ca);
	}
}

struct relay_ca *
relay_ca_find(const char *name)
{
	struct relay_ca	*ca;

	TAILQ_FOREACH(ca, &cas, entry)
		if (strcmp(ca->name, name) == 0)
			return (ca);
	return (NULL);
}

/* A cap on every step's timeout; 0 for RFC 5321's values. */
void
relay_set_timeout_max(time_t max)
{
	timeout_max = max > 0 ? max : 0;
}

void
relay_submit(const struct relay_target *target, struct relay_job *job)
{
	struct relay_dest	*dest;

	if (!initialised)
		fatalx("relay_submit before relay_init");
	if (job->nrcpt == 0 || job->rcpts == NULL || job->results == NULL ||
	    job->done == NULL)
		fatalx("relay_submit: bad job");
	memset(job->results, 0, job->nrcpt * sizeof(*job->results));
	dest = dest_get(target);
	if (shutting_down) {
		job_all(job, RELAY_DEFERRED, 0, "4.3.2",
		    "delivery stopped: shutting down");
		job_finish(job, dest);
		return;
	}
	if (!job_valid(job)) {
		job_finish(job, dest);
		return;
	}
	TAILQ_INSERT_TAIL(&dest->jobs, job, entry);
	dest->stats.waiting++;
	stats_total.waiting++;
	if (!dest->pending) {
		TAILQ_INSERT_TAIL(&dests_pending, dest, pending_entry);
		dest->pending = 1;
	}
	relay_kick();
}

/*
 * The event loop ends after this: every job gets its result and its
 * done() call before we return.
 */
void
relay_shutdown(void)
{
	struct relay_dest	*dest;
	struct relay_conn	*c;
	struct relay_job	*job;

	if (!initialised)
		return;
	shutting_down = 1;
	RB_FOREACH(dest, relay_dests, &dests) {
		while ((c = TAILQ_FIRST(&dest->conns)) != NULL) {
			if (c->job != NULL) {
				(void)strlcpy(c->last_error, "delivery "
				    "interrupted: shutting down",
				    sizeof(c->last_error));
				c->last_code = 0;
				(void)strlcpy(c->last_enhanced, "4.3.2",
				    sizeof(c->last_enhanced));
				txn_abort(c);
			} else if (c->phase == PHASE_READY &&
			    c->expect_count == 0 && !c->dead) {
				/* A polite goodbye, if the socket takes it. */
				if (evbuffer_add(c->out, "QUIT\r\n", 6) == -1)
					fatal("relay: QUIT");
				(void)conn_flush(c);
			}
			conn_close(c);
		}
		dest_defer_waiting(dest, NULL);
	}
	while ((c = TAILQ_FIRST(&conns_dead)) != NULL) {
		TAILQ_REMOVE(&conns_dead, c, entry);
		conn_free(c);
	}
	while ((job = TAILQ_FIRST(&jobs_done)) != NULL) {
		TAILQ_REMOVE(&jobs_done, job, entry);
		job->done(job);
	}
	evtimer_del(&ev_kick);
}

void
relay_stats_total(struct relay_stats *st)
{
	*st = stats_total;
	st->active = nconn_total;
}

void
relay_stats_walk(void (*cb)(const char *, const struct relay_stats *,
    void *), void *arg)
{
	struct relay_dest	*dest;

	RB_FOREACH(dest, relay_dests, &dests)
		cb(dest->target.key, &dest->stats, arg);
}

/*
 * Scheduling: one zero-delay timer runs the done() callbacks, frees
 * closed connections and gives waiting jobs to connections.
 */

void
relay_kick(void)
{
	struct timeval	 now = { 0, 0 };

	if (initialised && !evtimer_pending(&ev_kick, NULL))
		evtimer_add(&ev_kick, &now);
}

static void
relay_run(int fd, short event, void *arg)
{
	struct relay_conn	*c;
	struct relay_job	*job;
	TAILQ_HEAD(, relay_job)	 done;

	(void)fd;
	(void)event;
	(void)arg;
	while ((c = TAILQ_FIRST(&conns_dead)) != NULL) {
		TAILQ_REMOVE(&conns_dead, c, entry);
		conn_free(c);
	}
	/* Callbacks may submit again; those wait for the next turn. */
	TAILQ_INIT(&done);
	TAILQ_CONCAT(&done, &jobs_done, entry);
	while ((job = TAILQ_FIRST(&done)) != NULL) {
		TAILQ_REMOVE(&done, job, entry);
		job->done(job);
	}
	relay_dispatch();
	relay_dests_trim();
	if (!TAILQ_EMPTY(&jobs_done) || !TAILQ_EMPTY(&conns_dead))
		relay_kick();
}

static void
relay_dispatch(void)
{
	struct relay_dest	*dest, *next;
	struct relay_conn	*c;
	struct relay_job	*job;
	int			 starved = 0;

	if (shutting_down)
		return;
	for (dest = TAILQ_FIRST(&dests_pending); dest != NULL; dest = next) {
		next = TAILQ_NEXT(dest, pending_entry);
		while ((job = TAILQ_FIRST(&dest->jobs)) != NULL) {
			if ((c = dest_idle_conn(dest)) != NULL) {
				conn_next(c);
				/* Its MAIL is queued: write it. */
				conn_update(c);
				continue;
			}
			if (dest->nconn >= dest_max)
				break;
			if (nconn_total >= global_max) {
				starved++;
				break;
			}
			TAILQ_REMOVE(&dest->jobs, job, entry);
			dest->stats.waiting--;
			stats_total.waiting--;
			conn_new(dest, job);
		}
		if (TAILQ_EMPTY(&dest->jobs)) {
			TAILQ_REMOVE(&dests_pending, dest, pending_entry);
			dest->pending = 0;
		}
	}
	if (starved == 0)
		return;
	/* Idle connections elsewhere give their slots to waiting work. */
	RB_FOREACH(dest, relay_dests, &dests) {
		if (!TAILQ_EMPTY(&dest->jobs))
			continue;
		while (starved > 0 && dest_quit_idle(dest))
			starved--;
		if (starved == 0)
			break;
	}
}

/* Destinations with nothing to do are kept for their counters, a few. */
static void
relay_dests_trim(void)
{
	struct relay_dest	*dest, *next;

	if (ndests <= RELAY_DESTS_KEPT)
		return;
	for (dest = RB_MIN(relay_dests, &dests); dest != NULL &&
	    ndests > RELAY_DESTS_KEPT * 3 / 4; dest = next) {
		next = RB_NEXT(relay_dests, &dests, dest);
		if (!TAILQ_EMPTY(&dest->jobs) || !TAILQ_EMPTY(&dest->conns))
			continue;
		RB_REMOVE(relay_dests, &dests, dest);
		explicit_bzero(&dest->target, sizeof(dest->target));
		free(dest);
		ndests--;
	}
}

static int
relay_dest_cmp(struct relay_dest *a, struct relay_dest *b)
{
	return (strcmp(a->target.key, b->target.key));
}

static struct relay_dest *
dest_get(const struct relay_target *target)
{
	struct relay_dest	 key, *dest;

	(void)strlcpy(key.target.key, target->key, sizeof(key.target.key));
	if ((dest = RB_FIND(relay_dests, &dests, &key)) == NULL) {
		if ((dest = calloc(1, sizeof(*dest))) == NULL)
			fatal("relay: destination");
		TAILQ_INIT(&dest->jobs);
		TAILQ_INIT(&dest->conns);
		(void)strlcpy(dest->target.key, key.target.key,
		    sizeof(dest->target.key));
		RB_INSERT(relay_dests, &dests, dest);
		ndests++;
	}
	/* New connections follow a reloaded configuration. */
	dest->target = *target;
	dest->target.key[sizeof(dest->target.key) - 1] = '\0';
	dest->target.domain[sizeof(dest->target.domain) - 1] = '\0';
	dest->target.host[sizeof(dest->target.host) - 1] = '\0';
	dest->target.helo[sizeof(dest->target.helo) - 1] = '\0';
	dest->target.auth_user[sizeof(dest->target.auth_user) - 1] = '\0';
	dest->target.auth_password[sizeof(dest->target.auth_password) - 1] =
	    '\0';
	return (dest);
}

static struct relay_conn *
dest_idle_conn(struct relay_dest *dest)
{
	struct relay_conn	*c;

	TAILQ_FOREACH(c, &dest->conns, entry)
		if (c->phase == PHASE_READY && c->job == NULL && !c->dead)
			return (c);
	return (NULL);
}

static int
dest_quit_idle(struct relay_dest *dest)
{
	struct relay_conn	*c;

	if ((c = dest_idle_conn(dest)) == NULL)
		return (0);
	conn_quit(c);
	return (1);
}

/*
 * The destination cannot be reached: the jobs waiting for it get the
 * error of the connection that found out, rather than each waiting out
 * the same timeouts.  Not while another connection may still get
 * through.
 */
void
dest_defer_waiting(struct relay_dest *dest, struct relay_conn *failed)
{
	struct relay_conn	*c;
	struct relay_job	*job;

	if (failed != NULL)
		TAILQ_FOREACH(c, &dest->conns, entry)
			if (c != failed && !c->dead && c->phase != PHASE_QUIT)
				return;
	while ((job = TAILQ_FIRST(&dest->jobs)) != NULL) {
		TAILQ_REMOVE(&dest->jobs, job, entry);
		dest->stats.waiting--;
		stats_total.waiting--;
		if (failed != NULL)
			job_all(job, RELAY_DEFERRED, failed->last_code,
			    failed->last_enhanced, failed->last_error);
		else
			job_all(job, RELAY_DEFERRED, 0, "4.3.2",
			    "delivery stopped: shutting down");
		job_finish(job, dest);
	}
}

/*
 * Jobs and results.
 */

void
job_result(struct relay_job *job, size_t i, enum relay_status status,
    int code, const char *enhanced, const char *text)
{
	struct relay_result	*r = &job->results[i];

	r->status = status;
	r->code = code;
	text_clean(r->enhanced, sizeof(r->enhanced), enhanced,
	    strlen(enhanced));
	/* The class says what happened, whatever the server's code said. */
	if (r->enhanced[0] == '\0' || r->enhanced[1] != '.')
		(void)strlcpy(r->enhanced, "x.0.0", sizeof(r->enhanced));
	r->enhanced[0] = status == RELAY_DELIVERED ? '2' :
	    status == RELAY_DEFERRED ? '4' : '5';
	text_clean(r->text, sizeof(r->text), text, strlen(text));
	if (r->text[0] == '\0')
		(void)strlcpy(r->text, "(no reason given)", sizeof(r->text));
}

void
job_all(struct relay_job *job, enum relay_status status, int code,
    const char *enhanced, const char *text)
{
	size_t	 i;

	/* A recipient with a result (a bad address) keeps it. */
	for (i = 0; i < job->nrcpt; i++)
		if (job->results[i].text[0] == '\0')
			job_result(job, i, status, code, enhanced, text);
}

/* Results are all set; done() runs from the event loop. */
void
job_finish(struct relay_job *job, struct relay_dest *dest)
{
	static const char	*names[] = {
		[RELAY_DEFERRED] =	"deferred",
		[RELAY_DELIVERED] =	"delivered",
		[RELAY_FAILED] =	"failed"
	};
	struct relay_result	*r;
	size_t			 i;

	for (i = 0; i < job->nrcpt; i++) {
		r = &job->results[i];
		switch (r->status) {
		case RELAY_DELIVERED:
			dest->stats.delivered++;
			stats_total.delivered++;
			break;
		case RELAY_DEFERRED:
			dest->stats.deferred++;
			stats_total.deferred++;
			break;
		case RELAY_FAILED:
			dest->stats.failed++;
			stats_total.failed++;
			break;
		}
		log_info("relay: %s: to=<%s>, %s: %s", job->id,
		    job->rcpts[i], names[r->status], r->text);
	}
	TAILQ_INSERT_TAIL(&jobs_done, job, entry);
	relay_kick();
}

/*
 * Addresses come from our own parser, but nothing that could break a
 * command line goes out: a bad recipient fails, a bad sender fails all.
 */
static int
job_valid(struct relay_job *job)
{
	size_t	 i, good = 0;

	if (!addr_ok(job->sender, 1)) {
		job_all(job, RELAY_FAILED, 0, "5.1.7",
		    "invalid sender address");
		return (0);
	}
	for (i = 0; i < job->nrcpt; i++) {
		if (addr_ok(job->rcpts[i], 0))
			good++;
		else
			job_result(job, i, RELAY_FAILED, 0, "5.1.3",
			    "invalid recipient address");
	}
	/* Those left pending are told apart by a text still empty. */
	return (good > 0);
}

/* Field by field: the caller's structs need not be zeroed. */
int
target_equal(const struct relay_target *a, const struct relay_target *b)
{
	return (strcmp(a->key, b->key) == 0 &&
	    strcmp(a->domain, b->domain) == 0 &&
	    strcmp(a->host, b->host) == 0 && a->port == b->port &&
	    a->scheme == b->scheme && !a->tls_verify == !b->tls_verify &&
	    strcmp(a->helo, b->helo) == 0 &&
	    strcmp(a->auth_user, b->auth_user) == 0 &&
	    strcmp(a->auth_password, b->auth_password) == 0);
}

static int
addr_ok(const char *addr, int empty_ok)
{
	size_t	 i;

	if (memchr(addr, '\0', SMTP_ADDR_LEN) == NULL)
		return (0);
	if (addr[0] == '\0')
		return (empty_ok);
	for (i = 0; addr[i] != '\0'; i++)
		if (addr[i] <= ' ' || addr[i] >= 0x7f || addr[i] == '<' ||
		    addr[i] == '>')
			return (0);
	return (i < SMTP_PATH_MAX - 2);
}
