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
 * Everything the remote server says is treated as hostile: reply lines
 * and multi-line replies are bounded, a reply that breaks the grammar
 * ends the connection, bytes that arrive behind the 220 to STARTTLS
 * end it too, and the text kept for the queue and for bounces is
 * capped and reduced to printable ASCII.  What we send is CRLF lines
 * only, dot-stuffed, whatever the body holds.
 *
 * done() callbacks, connection starts and frees all run from one
 * zero-delay timer, so nothing here calls back into the scheduler
 * while the scheduler is calling us.
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>

#include <ctype.h>
#include <errno.h>
#include <resolv.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <tls.h>
#include <unistd.h>

#include "smarthostd.h"

#define RELAY_GLOBAL_MAX	100	/* connections, all destinations */
#define RELAY_DEST_MAX		20	/* connections to one destination */
#define RELAY_CONN_MESSAGES	100	/* transactions, then a new one */
#define RELAY_IDLE		5	/* seconds an unused connection waits */
#define RELAY_DESTS_KEPT	1024	/* idle destinations kept for stats */
#define RELAY_ADDRS_MAX		10	/* addresses tried per connection */

#define RELAY_LINE_MAX		SMTP_TEXT_LINE_MAX	/* CRLF included */
#define RELAY_REPLY_LINES	100
#define RELAY_REPLY_BYTES	(8 * 1024)
#define RELAY_INBUF_MAX		(16 * 1024)
#define RELAY_OUTBUF_LOW	(64 * 1024)	/* body refill below this */
#define RELAY_BODY_CHUNK	(64 * 1024)
#define RELAY_IO_CHUNK		(16 * 1024)
#define RELAY_PIPELINE_MAX	64	/* commands awaiting replies */

/*
 * Timeouts, RFC 5321 section 4.5.3.2 where it gives one, in seconds.
 * relay_set_timeout_max() caps them all.
 */
#define RELAY_TIMEOUT_CONNECT	30
#define RELAY_TIMEOUT_TLS	60
#define RELAY_TIMEOUT_GREETING	300
#define RELAY_TIMEOUT_COMMAND	300	/* EHLO, MAIL, RCPT, ... */
#define RELAY_TIMEOUT_DATA	120	/* the 354 */
#define RELAY_TIMEOUT_BLOCK	180	/* each write of the body */
#define RELAY_TIMEOUT_EOM	600	/* the reply to the final dot */
#define RELAY_TIMEOUT_RSET	20
#define RELAY_TIMEOUT_QUIT	10

/* What a reply answers. */
enum relay_cmd {
	CMD_GREETING,
	CMD_EHLO,
	CMD_HELO,
	CMD_STARTTLS,
	CMD_AUTH,
	CMD_RSET,
	CMD_MAIL,
	CMD_RCPT,
	CMD_DATA,
	CMD_EOM,
	CMD_QUIT
};

static const struct {
	const char	*name;		/* for "in reply to" */
	time_t		 timeout;
} relay_cmds[] = {
	[CMD_GREETING] =	{ "the greeting",	RELAY_TIMEOUT_GREETING },
	[CMD_EHLO] =		{ "EHLO",		RELAY_TIMEOUT_COMMAND },
	[CMD_HELO] =		{ "HELO",		RELAY_TIMEOUT_COMMAND },
	[CMD_STARTTLS] =	{ "STARTTLS",		RELAY_TIMEOUT_COMMAND },
	[CMD_AUTH] =		{ "AUTH",		RELAY_TIMEOUT_COMMAND },
	[CMD_RSET] =		{ "RSET",		RELAY_TIMEOUT_RSET },
	[CMD_MAIL] =		{ "MAIL FROM",		RELAY_TIMEOUT_COMMAND },
	[CMD_RCPT] =		{ "RCPT TO",		RELAY_TIMEOUT_COMMAND },
	[CMD_DATA] =		{ "DATA",		RELAY_TIMEOUT_DATA },
	[CMD_EOM] =		{ "end of DATA",	RELAY_TIMEOUT_EOM },
	[CMD_QUIT] =		{ "QUIT",		RELAY_TIMEOUT_QUIT }
};

enum conn_phase {
	PHASE_RESOLVE,		/* waiting to start or for DNS */
	PHASE_CONNECT,		/* TCP connect in progress */
	PHASE_SETUP,		/* greeting, EHLO, STARTTLS, AUTH */
	PHASE_READY,		/* in a transaction, or idle */
	PHASE_QUIT
};

/* A recipient within the job of a connection. */
enum rcpt_step {
	RS_TODO,		/* to be sent in this transaction */
	RS_SENT,		/* RCPT sent, no reply yet */
	RS_ACCEPTED,		/* 2xx to RCPT */
	RS_NEXT,		/* 452: again in a further transaction */
	RS_DONE			/* has its result */
};

#define RS_BIT(s)	(1U << (s))

struct relay_expect {
	enum relay_cmd		 cmd;
	size_t			 rcpt;
};

struct relay_dest;

struct relay_conn {
	TAILQ_ENTRY(relay_conn)	 entry;
	struct relay_dest	*dest;
	struct relay_target	 target;	/* as when it started */
	uint32_t		 id;
	enum conn_phase		 phase;
	int			 counted;	/* holds a connection slot */
	int			 resolving;
	int			 dead;

	int			 fd;
	struct tls		*tls;
	int			 tls_on;
	int			 tls_handshaking;
	short			 tls_want;
	int			 eof;
	struct evbuffer		*in;
	struct evbuffer		*out;
	struct event		 ev;
	struct event		 timer;

	struct dns_addr		*addrs;
	size_t			 naddrs;
	size_t			 addr_i;
	int			 retry_plain;	/* TLS broke: same address */
	int			 no_starttls;
	char			 peer[HOSTNAME_LEN + INET6_ADDRSTRLEN + 16];
	char			 servername[HOSTNAME_LEN];
	char			 last_error[MESSAGE_LEN];
	int			 last_code;
	char			 last_enhanced[16];
	int			 err_code;	/* for the next conn_fail() */
	char			 err_enhanced[16];

	/* what the server offered in reply to EHLO */
	int			 esmtp;
	int			 ext_starttls;
	int			 ext_pipelining;
	int			 ext_8bitmime;
	int			 ext_size;
	int			 ext_auth_plain;
	uint64_t		 size_max;
	int			 new_starttls, new_pipelining, new_8bitmime;
	int			 new_size, new_auth_plain;
	uint64_t		 new_size_max;

	/* the reply being read */
	int			 reply_code;
	size_t			 reply_lines;
	size_t			 reply_bytes;
	char			 reply_text[MESSAGE_LEN];
	size_t			 reply_textlen;

	struct relay_expect	 expect[RELAY_PIPELINE_MAX + 2];
	size_t			 expect_head;
	size_t			 expect_count;

	/* the job and its transaction */
	struct relay_job	*job;
	unsigned char		*rstate;	/* enum rcpt_step, per rcpt */
	size_t			 rcpt_cursor;
	size_t			 naccepted;
	int			 mail_replied;
	int			 mail_failed;
	int			 need_rset;
	int			 in_body;
	size_t			 body_off;
	int			 body_bol;
	int			 body_done;
	size_t			 body_bare;	/* bare CR/LF made CRLF */
	unsigned int		 messages;	/* transactions finished */
	unsigned int		 njobs;		/* jobs finished */
};
TAILQ_HEAD(relay_conns, relay_conn);

struct relay_dest {
	RB_ENTRY(relay_dest)	 entry;
	TAILQ_ENTRY(relay_dest)	 pending_entry;
	int			 pending;	/* on the pending list */
	struct relay_target	 target;
	TAILQ_HEAD(, relay_job)	 jobs;		/* waiting */
	struct relay_conns	 conns;
	int			 nconn;		/* holding slots */
	struct relay_stats	 stats;
};
RB_HEAD(relay_dests, relay_dest);

static int	 relay_dest_cmp(struct relay_dest *, struct relay_dest *);
RB_PROTOTYPE(relay_dests, relay_dest, entry, relay_dest_cmp);
RB_GENERATE(relay_dests, relay_dest, entry, relay_dest_cmp);

static struct relay_dests	 dests = RB_INITIALIZER(&dests);
static TAILQ_HEAD(, relay_dest)	 dests_pending =
				    TAILQ_HEAD_INITIALIZER(dests_pending);
static TAILQ_HEAD(, relay_job)	 jobs_done =
				    TAILQ_HEAD_INITIALIZER(jobs_done);
static struct relay_conns	 conns_dead =
				    TAILQ_HEAD_INITIALIZER(conns_dead);
static size_t			 ndests;
static int			 nconn_total;
static int			 global_max = RELAY_GLOBAL_MAX;
static int			 dest_max = RELAY_DEST_MAX;
static time_t			 timeout_max;
static uint32_t			 conn_ids;
static int			 shutting_down;
static int			 initialised;
static struct event		 ev_kick;
static struct tls_config	*tls_cfg_verify, *tls_cfg_any;

/* The CA bundles of tls verify, by name (the action's). */
struct relay_ca {
	TAILQ_ENTRY(relay_ca)	 entry;
	char			 name[NAME_MAX_LEN];
	struct tls_config	*cfg;
};
static TAILQ_HEAD(, relay_ca)	 cas = TAILQ_HEAD_INITIALIZER(cas);
static struct relay_stats	 stats_total;

static void	 relay_kick(void);
static void	 relay_run(int, short, void *);
static void	 relay_dispatch(void);
static struct relay_ca *relay_ca_find(const char *);
static void	 relay_dests_trim(void);
static struct relay_dest *dest_get(const struct relay_target *);
static struct relay_conn *dest_idle_conn(struct relay_dest *);
static int	 dest_quit_idle(struct relay_dest *);
static void	 dest_defer_waiting(struct relay_dest *, struct relay_conn *);
static void	 job_result(struct relay_job *, size_t, enum relay_status,
		    int, const char *, const char *);
static void	 job_all(struct relay_job *, enum relay_status, int,
		    const char *, const char *);
static void	 job_finish(struct relay_job *, struct relay_dest *);
static int	 job_valid(struct relay_job *);
static void	 conn_new(struct relay_dest *, struct relay_job *);
static void	 conn_start(int, short, void *);
static void	 conn_resolved(void *, int, const struct dns_addr *, size_t);
static int	 conn_literal(struct relay_conn *, const char *);
static void	 conn_connect(struct relay_conn *);
static void	 conn_connected(struct relay_conn *);
static void	 conn_reset_socket(struct relay_conn *);
static void	 conn_io(int, short, void *);
static void	 conn_continue(struct relay_conn *);
static void	 conn_update(struct relay_conn *);
static int	 conn_read(struct relay_conn *);
static int	 conn_flush(struct relay_conn *);
static void	 conn_timer(struct relay_conn *, time_t);
static void	 conn_timer_expect(struct relay_conn *);
static void	 conn_timeout(int, short, void *);
static void	 conn_tls_start(struct relay_conn *);
static void	 conn_handshake(struct relay_conn *);
static void	 conn_tls_failed(struct relay_conn *, const char *);
static int	 conn_tls_required(const struct relay_conn *);
static void	 conn_fail(struct relay_conn *, const char *, ...)
		    __attribute__((__format__(printf, 2, 3)));
static void	 conn_fail_reply(struct relay_conn *, enum relay_cmd);
static void	 conn_setup_failed(struct relay_conn *);
static void	 conn_quit(struct relay_conn *);
static void	 conn_close(struct relay_conn *);
static void	 conn_release(struct relay_conn *);
static void	 conn_free(struct relay_conn *);
static void	 conn_next(struct relay_conn *);
static void	 conn_cmd(struct relay_conn *, enum relay_cmd, size_t,
		    const char *, ...)
		    __attribute__((__format__(printf, 4, 5)));
static void	 conn_expect(struct relay_conn *, enum relay_cmd, size_t);
static void	 conn_error(struct relay_conn *, int, const char *);
static in_port_t conn_port(const struct relay_conn *);
static void	 conn_process(struct relay_conn *);
static int	 conn_getreply(struct relay_conn *);
static void	 conn_ehlo_line(struct relay_conn *, const char *);
static void	 conn_reply(struct relay_conn *, struct relay_expect *);
static void	 conn_setup_next(struct relay_conn *);
static void	 conn_send_ehlo(struct relay_conn *, enum relay_cmd);
static void	 conn_send_auth(struct relay_conn *);
static void	 conn_ready(struct relay_conn *);
static void	 reply_said(struct relay_conn *, enum relay_cmd, char *,
		    size_t);
static void	 reply_enhanced(const struct relay_conn *, char *, size_t);
static void	 txn_start(struct relay_conn *);
static void	 txn_begin(struct relay_conn *);
static void	 txn_send_mail(struct relay_conn *);
static void	 txn_send_rcpts(struct relay_conn *);
static void	 txn_rcpts_done(struct relay_conn *);
static void	 txn_reply_rcpts(struct relay_conn *, unsigned int,
		    enum relay_cmd);
static void	 txn_end(struct relay_conn *);
static void	 txn_abort(struct relay_conn *);
static void	 body_fill(struct relay_conn *);
static int	 addr_ok(const char *, int);
static int	 target_equal(const struct relay_target *,
		    const struct relay_target *);
static void	 text_clean(char *, size_t, const char *, size_t);

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

static struct relay_ca *
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

static void
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
static void
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

static void
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

static void
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
static void
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
static int
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

/*
 * Connections: start, resolve, connect.
 */

static void
conn_new(struct relay_dest *dest, struct relay_job *job)
{
	struct relay_conn	*c;
	struct timeval		 now = { 0, 0 };

	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->in = evbuffer_new()) == NULL ||
	    (c->out = evbuffer_new()) == NULL)
		fatal("relay: connection");
	c->dest = dest;
	c->target = dest->target;
	c->id = ++conn_ids;
	c->fd = -1;
	c->phase = PHASE_RESOLVE;
	c->job = job;
	c->counted = 1;
	dest->nconn++;
	nconn_total++;
	dest->stats.active++;
	TAILQ_INSERT_TAIL(&dest->conns, c, entry);
	evtimer_set(&c->timer, conn_start, c);
	evtimer_add(&c->timer, &now);
}

static void
conn_start(int fd, short event, void *arg)
{
	struct relay_conn	*c = arg;
	const char		*name;
	int			 rc;

	(void)fd;
	(void)event;
	evtimer_set(&c->timer, conn_timeout, c);
	(void)strlcpy(c->peer, c->target.host[0] != '\0' ? c->target.host :
	    c->target.domain, sizeof(c->peer));
	(void)strlcpy(c->last_enhanced, "4.4.1", sizeof(c->last_enhanced));

	/* An address literal needs no DNS: "[192.0.2.1]", "::1". */
	name = c->target.host[0] != '\0' ? c->target.host : c->target.domain;
	if (c->target.host[0] != '\0' || name[0] == '[') {
		switch (conn_literal(c, name)) {
		case 1:
			conn_connect(c);
			return;
		case -1:
			(void)snprintf(c->last_error, sizeof(c->last_error),
			    "bad address literal %s", name);
			(void)strlcpy(c->last_enhanced, "5.1.2",
			    sizeof(c->last_enhanced));
			job_all(c->job, RELAY_FAILED, 0, c->last_enhanced,
			    c->last_error);
			job_finish(c->job, c->dest);
			c->job = NULL;
			conn_close(c);
			return;
		}
	}
	c->resolving = 1;
	if (c->target.host[0] != '\0')
		rc = dns_resolve_host(c->target.host, conn_port(c),
		    conn_resolved, c);
	else
		rc = dns_resolve_mx(c->target.domain, conn_resolved, c);
	if (rc == -1 && c->resolving) {
		c->resolving = 0;
		/* A name that no DNS answer can make valid fails now. */
		if (errno == EINVAL && c->target.host[0] == '\0') {
			(void)snprintf(c->last_error, sizeof(c->last_error),
			    "invalid domain name %s", name);
			(void)strlcpy(c->last_enhanced, "5.1.2",
			    sizeof(c->last_enhanced));
			job_all(c->job, RELAY_FAILED, 0, c->last_enhanced,
			    c->last_error);
			job_finish(c->job, c->dest);
			c->job = NULL;
			conn_close(c);
			return;
		}
		conn_resolved(c, DNS_TEMPFAIL, NULL, 0);
	}
}

/* 1: an address literal, now in c->addrs; 0: a name; -1: bad. */
static int
conn_literal(struct relay_conn *c, const char *name)
{
	struct sockaddr_in	*sin;
	struct sockaddr_in6	*sin6;
	char			 buf[HOSTNAME_LEN];
	size_t			 len;

	(void)strlcpy(buf, name, sizeof(buf));
	if (buf[0] == '[') {
		len = strlen(buf);
		if (len < 3 || buf[len - 1] != ']')
			return (-1);
		buf[len - 1] = '\0';
		memmove(buf, buf + 1, len - 1);
		if (strncasecmp(buf, "IPv6:", 5) == 0)
			memmove(buf, buf + 5, strlen(buf + 5) + 1);
	} else if (strchr(buf, ':') == NULL &&
	    strspn(buf, "0123456789.") != strlen(buf))
		return (0);
	if ((c->addrs = calloc(1, sizeof(*c->addrs))) == NULL)
		fatal("relay: address");
	sin = (struct sockaddr_in *)&c->addrs[0].ss;
	sin6 = (struct sockaddr_in6 *)&c->addrs[0].ss;
	if (inet_pton(AF_INET, buf, &sin->sin_addr) == 1)
		sin->sin_family = AF_INET;
	else if (inet_pton(AF_INET6, buf, &sin6->sin6_addr) == 1)
		sin6->sin6_family = AF_INET6;
	else {
		free(c->addrs);
		c->addrs = NULL;
		return (name[0] == '[' ? -1 : 0);
	}
	(void)strlcpy(c->addrs[0].host, buf, sizeof(c->addrs[0].host));
	c->naddrs = 1;
	return (1);
}

static void
conn_resolved(void *arg, int status, const struct dns_addr *addrs, size_t n)
{
	struct relay_conn	*c = arg;
	const char		*name, *why;

	c->resolving = 0;
	name = c->target.host[0] != '\0' ? c->target.host : c->target.domain;
	why = dns_reason();
	if (why == NULL || *why == '\0')
		why = status == DNS_PERMFAIL ? "no such domain" :
		    "temporary failure";
	if (status == DNS_OK && n > 0) {
		if (n > RELAY_ADDRS_MAX)
			n = RELAY_ADDRS_MAX;
		if ((c->addrs = calloc(n, sizeof(*c->addrs))) == NULL)
			fatal("relay: addresses");
		memcpy(c->addrs, addrs, n * sizeof(*addrs));
		c->naddrs = n;
		conn_connect(c);
		return;
	}
	if (status == DNS_PERMFAIL && c->target.host[0] == '\0') {
		(void)snprintf(c->last_error, sizeof(c->last_error),
		    "domain %s does not accept mail: %s", name, why);
		c->last_code = 0;
		(void)strlcpy(c->last_enhanced, "5.1.2",
		    sizeof(c->last_enhanced));
		job_all(c->job, RELAY_FAILED, 0, c->last_enhanced,
		    c->last_error);
		job_finish(c->job, c->dest);
		c->job = NULL;
		/* The same answer holds for every job of this domain. */
		while ((c->job = TAILQ_FIRST(&c->dest->jobs)) != NULL) {
			TAILQ_REMOVE(&c->dest->jobs, c->job, entry);
			c->dest->stats.waiting--;
			stats_total.waiting--;
			job_all(c->job, RELAY_FAILED, 0, c->last_enhanced,
			    c->last_error);
			job_finish(c->job, c->dest);
		}
		conn_close(c);
		return;
	}
	/*
	 * A relay host that does not resolve is a configuration to fix:
	 * its mail waits for that.
	 */
	(void)snprintf(c->last_error, sizeof(c->last_error),
	    "DNS lookup of %s failed: %s", name, why);
	c->last_code = 0;
	(void)strlcpy(c->last_enhanced, status == DNS_PERMFAIL ? "4.4.4" :
	    "4.4.3", sizeof(c->last_enhanced));
	conn_setup_failed(c);
}

/* The next address that takes a TCP connection; on to the next on error. */
static void
conn_connect(struct relay_conn *c)
{
	struct dns_addr		*a;
	struct sockaddr_in	*sin;
	struct sockaddr_in6	*sin6;
	char			 addr[INET6_ADDRSTRLEN];
	in_port_t		 port;
	socklen_t		 len;
	int			 on = 1;

	port = conn_port(c);
	for (; c->addr_i < c->naddrs; c->addr_i++) {
		a = &c->addrs[c->addr_i];
		sin = (struct sockaddr_in *)&a->ss;
		sin6 = (struct sockaddr_in6 *)&a->ss;
		if (a->ss.ss_family == AF_INET) {
			sin->sin_port = htons(port);
			len = sizeof(*sin);
		} else if (a->ss.ss_family == AF_INET6) {
			sin6->sin6_port = htons(port);
			len = sizeof(*sin6);
		} else
			continue;
		(void)addr_string(&a->ss, addr, sizeof(addr));
		a->host[sizeof(a->host) - 1] = '\0';
		if (port == 25)
			(void)snprintf(c->peer, sizeof(c->peer), "%s [%s]",
			    a->host, addr);
		else
			(void)snprintf(c->peer, sizeof(c->peer), "%s [%s]:%u",
			    a->host, addr, port);
		text_clean(c->peer, sizeof(c->peer), c->peer,
		    strlen(c->peer));
		(void)strlcpy(c->servername, c->target.host[0] != '\0' ?
		    c->target.host : a->host, sizeof(c->servername));
		if (c->servername[0] == '[')
			(void)strlcpy(c->servername, addr,
			    sizeof(c->servername));

		if ((c->fd = socket(a->ss.ss_family, SOCK_STREAM |
		    SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1) {
			(void)snprintf(c->last_error, sizeof(c->last_error),
			    "%s: socket: %s", c->peer, strerror(errno));
			continue;
		}
		/*
		 * Our writes are whole commands and whole chunks: Nagle
		 * would only hold a message's last segment back for the
		 * peer's delayed acknowledgement.
		 */
		(void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &on,
		    sizeof(on));
		if (connect(c->fd, (struct sockaddr *)&a->ss, len) == -1 &&
		    errno != EINPROGRESS) {
			(void)snprintf(c->last_error, sizeof(c->last_error),
			    "connect to %s: %s", c->peer, strerror(errno));
			c->last_code = 0;
			(void)strlcpy(c->last_enhanced, "4.4.1",
			    sizeof(c->last_enhanced));
			c->dest->stats.connect_failures++;
			stats_total.connect_failures++;
			(void)close(c->fd);
			c->fd = -1;
			continue;
		}
		log_debug("relay %u: connecting to %s", c->id, c->peer);
		c->phase = PHASE_CONNECT;
		event_set(&c->ev, c->fd, EV_WRITE, conn_io, c);
		event_add(&c->ev, NULL);
		conn_timer(c, RELAY_TIMEOUT_CONNECT);
		return;
	}
	conn_setup_failed(c);
}

static void
conn_connected(struct relay_conn *c)
{
	socklen_t	 len = sizeof(int);
	int		 error = 0;

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &error, &len) == -1)
		error = errno;
	if (error != 0) {
		c->dest->stats.connect_failures++;
		stats_total.connect_failures++;
		conn_error(c, 0, "4.4.1");
		conn_fail(c, "connect to %s: %s", c->peer, strerror(error));
		return;
	}
	c->dest->stats.connections++;
	stats_total.connections++;
	c->phase = PHASE_SETUP;
	log_debug("relay %u: connected to %s", c->id, c->peer);
	if (c->target.scheme == RELAY_SMTPS) {
		conn_tls_start(c);
		return;
	}
	c->expect[0].cmd = CMD_GREETING;
	c->expect_head = 0;
	c->expect_count = 1;
	conn_timer_expect(c);
	conn_update(c);
}

/* Back to no socket, for the next address or the same in plaintext. */
static void
conn_reset_socket(struct relay_conn *c)
{
	/* A connection that never had a socket never had its event. */
	if (event_initialized(&c->ev))
		event_del(&c->ev);
	evtimer_del(&c->timer);
	if (c->tls != NULL) {
		if (c->tls_on)
			(void)tls_close(c->tls);
		tls_free(c->tls);
		c->tls = NULL;
	}
	if (c->fd != -1) {
		(void)close(c->fd);
		c->fd = -1;
	}
	c->tls_on = c->tls_handshaking = 0;
	c->tls_want = 0;
	c->eof = 0;
	evbuffer_drain(c->in, evbuffer_get_length(c->in));
	evbuffer_drain(c->out, evbuffer_get_length(c->out));
	c->expect_count = 0;
	c->reply_lines = 0;
	c->esmtp = c->ext_starttls = c->ext_pipelining = 0;
	c->ext_8bitmime = c->ext_size = c->ext_auth_plain = 0;
	c->size_max = 0;
	c->need_rset = 0;
}

/*
 * I/O, as in smtp_session.c: one event whose flags follow what the
 * connection needs, and whatever libtls asked for in between.
 */

static void
conn_io(int fd, short event, void *arg)
{
	struct relay_conn	*c = arg;

	(void)fd;
	if (c->phase == PHASE_CONNECT) {
		conn_connected(c);
		return;
	}
	if (c->tls_handshaking) {
		conn_handshake(c);
		return;
	}
	c->tls_want = 0;
	if ((event & EV_WRITE) || evbuffer_get_length(c->out) > 0) {
		if (conn_flush(c) == -1)
			return;
		if (c->in_body && !c->body_done)
			conn_timer(c, RELAY_TIMEOUT_BLOCK);
	}
	if ((event & EV_READ) || c->tls != NULL) {
		if (conn_read(c) == -1)
			return;
	}
	conn_continue(c);
}

static void
conn_continue(struct relay_conn *c)
{
	conn_process(c);
	if (c->dead)
		return;
	/* The body goes out as fast as the socket takes it. */
	do {
		if (c->in_body && !c->body_done)
			body_fill(c);
		if (evbuffer_get_length(c->out) == 0 || c->tls_want != 0)
			break;
		if (conn_flush(c) == -1)
			return;
	} while (c->in_body && !c->body_done &&
	    evbuffer_get_length(c->out) == 0 && c->tls_want == 0);
	if (c->eof) {
		if (c->phase == PHASE_QUIT ||
		    (c->phase == PHASE_READY && c->job == NULL))
			conn_close(c);
		else
			conn_fail(c, "%s: connection closed by the server%s%s",
			    c->peer, c->expect_count > 0 ?
			    " while waiting for the reply to " : "",
			    c->expect_count > 0 ? relay_cmds[c->expect[
			    c->expect_head].cmd].name : "");
		return;
	}
	conn_update(c);
}

static void
conn_update(struct relay_conn *c)
{
	short	 events = 0;

	if (c->dead || c->fd == -1)
		return;
	if (c->phase == PHASE_CONNECT)
		events = EV_WRITE;
	else if (c->tls_want != 0)
		events = c->tls_want;
	else {
		if (evbuffer_get_length(c->out) > 0 ||
		    (c->in_body && !c->body_done))
			events |= EV_WRITE;
		if (!c->eof && evbuffer_get_length(c->in) < RELAY_INBUF_MAX)
			events |= EV_READ;
	}
	event_del(&c->ev);
	if (events == 0)
		return;
	event_set(&c->ev, c->fd, events, conn_io, c);
	event_add(&c->ev, NULL);
}

/* -1: the connection failed (and is handled). */
static int
conn_read(struct relay_conn *c)
{
	char	 buf[RELAY_IO_CHUNK];
	ssize_t	 n;

	while (evbuffer_get_length(c->in) < RELAY_INBUF_MAX) {
		if (c->tls != NULL) {
			n = tls_read(c->tls, buf, sizeof(buf));
			if (n == TLS_WANT_POLLIN)
				break;
			if (n == TLS_WANT_POLLOUT) {
				c->tls_want = EV_WRITE;
				break;
			}
			if (n == -1) {
				conn_fail(c, "%s: TLS read: %s", c->peer,
				    tls_error(c->tls));
				return (-1);
			}
		} else if ((n = read(c->fd, buf, sizeof(buf))) == -1) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			conn_fail(c, "%s: read: %s", c->peer,
			    strerror(errno));
			return (-1);
		}
		if (n == 0) {
			c->eof = 1;
			break;
		}
		if (evbuffer_add(c->in, buf, n) == -1)
			fatal("evbuffer_add");
		if (c->tls == NULL && (size_t)n < sizeof(buf))
			break;
	}
	return (0);
}

/* -1: the connection failed (and is handled). */
static int
conn_flush(struct relay_conn *c)
{
	size_t	 len;
	ssize_t	 n;

	while ((len = evbuffer_get_length(c->out)) > 0) {
		if (len > RELAY_IO_CHUNK)
			len = RELAY_IO_CHUNK;
		if (c->tls != NULL) {
			n = tls_write(c->tls, evbuffer_pullup(c->out, len),
			    len);
			if (n == TLS_WANT_POLLIN || n == TLS_WANT_POLLOUT) {
				c->tls_want = n == TLS_WANT_POLLIN ? EV_READ :
				    EV_WRITE;
				return (0);
			}
			if (n == -1) {
				conn_fail(c, "%s: TLS write: %s", c->peer,
				    tls_error(c->tls));
				return (-1);
			}
		} else if ((n = write(c->fd, evbuffer_pullup(c->out, len),
		    len)) == -1) {
			if (errno == EAGAIN || errno == EINTR)
				return (0);
			conn_fail(c, "%s: write: %s", c->peer,
			    strerror(errno));
			return (-1);
		}
		evbuffer_drain(c->out, n);
	}
	return (0);
}

static void
conn_timer(struct relay_conn *c, time_t seconds)
{
	struct timeval	 tv;

	if (timeout_max > 0 && seconds > timeout_max)
		seconds = timeout_max;
	tv.tv_sec = seconds;
	tv.tv_usec = 0;
	evtimer_add(&c->timer, &tv);
}

/* The clock runs for the oldest reply we wait for. */
static void
conn_timer_expect(struct relay_conn *c)
{
	if (c->expect_count > 0)
		conn_timer(c, relay_cmds[c->expect[c->expect_head].cmd].timeout);
	else if (c->phase == PHASE_READY && c->job == NULL) {
		struct timeval	 tv = { RELAY_IDLE, 0 };

		evtimer_add(&c->timer, &tv);
	} else
		evtimer_del(&c->timer);
}

static void
conn_timeout(int fd, short event, void *arg)
{
	struct relay_conn	*c = arg;

	(void)fd;
	(void)event;
	if (c->phase == PHASE_QUIT) {
		conn_close(c);
		return;
	}
	if (c->phase == PHASE_READY && c->job == NULL &&
	    c->expect_count == 0) {
		conn_quit(c);
		return;
	}
	if (c->phase == PHASE_CONNECT) {
		c->dest->stats.connect_failures++;
		stats_total.connect_failures++;
		conn_error(c, 0, "4.4.1");
		conn_fail(c, "connect to %s: timed out", c->peer);
	} else if (c->tls_handshaking)
		conn_fail(c, "%s: TLS handshake timed out", c->peer);
	else if (c->in_body && !c->body_done)
		conn_fail(c, "%s: timeout sending the message", c->peer);
	else
		conn_fail(c, "%s: timeout waiting for the reply to %s",
		    c->peer, c->expect_count > 0 ?
		    relay_cmds[c->expect[c->expect_head].cmd].name : "?");
}

/*
 * TLS.
 */

static int
conn_tls_required(const struct relay_conn *c)
{
	return (c->target.scheme != RELAY_SMTP || c->target.tls_verify);
}

static void
conn_tls_start(struct relay_conn *c)
{
	struct tls_config	*cfg;
	struct relay_ca		*ca;

	cfg = tls_cfg_any;
	if (c->target.tls_verify)
		cfg = (ca = relay_ca_find(c->target.ca_name)) != NULL ?
		    ca->cfg : tls_cfg_verify;
	if ((c->tls = tls_client()) == NULL)
		fatal("relay: tls_client");
	if (tls_configure(c->tls, cfg) == -1 ||
	    tls_connect_socket(c->tls, c->fd, c->servername) == -1) {
		conn_tls_failed(c, tls_error(c->tls));
		return;
	}
	c->tls_handshaking = 1;
	conn_timer(c, RELAY_TIMEOUT_TLS);
	conn_handshake(c);
}

static void
conn_handshake(struct relay_conn *c)
{
	int	 ret;

	switch ((ret = tls_handshake(c->tls))) {
	case TLS_WANT_POLLIN:
	case TLS_WANT_POLLOUT:
		c->tls_want = ret == TLS_WANT_POLLIN ? EV_READ : EV_WRITE;
		event_del(&c->ev);
		event_set(&c->ev, c->fd, c->tls_want, conn_io, c);
		event_add(&c->ev, NULL);
		return;
	case -1:
		conn_tls_failed(c, tls_error(c->tls));
		return;
	}
	c->tls_handshaking = 0;
	c->tls_want = 0;
	c->tls_on = 1;
	log_debug("relay %u: %s with %s, %s%s", c->id, c->peer,
	    tls_conn_version(c->tls), tls_conn_cipher(c->tls),
	    c->target.tls_verify ? ", verified" : "");
	if (c->target.scheme == RELAY_SMTPS) {
		c->expect[0].cmd = CMD_GREETING;
		c->expect_head = 0;
		c->expect_count = 1;
		conn_timer_expect(c);
		conn_update(c);
	} else {
		conn_send_ehlo(c, CMD_EHLO);
		conn_continue(c);
	}
}

/*
 * Opportunistic STARTTLS that fails is tried again on the same address
 * without it (as Postfix does); required TLS moves on to the next.
 */
static void
conn_tls_failed(struct relay_conn *c, const char *why)
{
	char	 reason[MESSAGE_LEN];

	(void)strlcpy(reason, why != NULL ? why : "unknown error",
	    sizeof(reason));
	conn_error(c, 0, c->target.tls_verify ? "4.7.5" : "4.7.0");
	if (!conn_tls_required(c))
		c->retry_plain = 1;
	conn_fail(c, "%s: TLS handshake failed: %s", c->peer, reason);
}

/*
 * Errors.  During setup the next address is tried; within a
 * transaction the job's recipients without an answer are deferred and
 * the connection goes.  A connection that had already carried mail may
 * have been closed by an idle server: its job goes back to the queue
 * unless the server has already answered its MAIL.
 */

static void
conn_fail(struct relay_conn *c, const char *fmt, ...)
{
	va_list	 ap;
	char	 buf[MESSAGE_LEN];

	if (c->dead)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	text_clean(c->last_error, sizeof(c->last_error), buf, strlen(buf));
	c->last_code = c->err_code;
	(void)strlcpy(c->last_enhanced, c->err_enhanced[0] != '\0' ?
	    c->err_enhanced : "4.4.2", sizeof(c->last_enhanced));
	c->err_code = 0;
	c->err_enhanced[0] = '\0';
	log_info("relay %u: %s", c->id, c->last_error);

	switch (c->phase) {
	case PHASE_RESOLVE:
	case PHASE_CONNECT:
	case PHASE_SETUP:
		conn_reset_socket(c);
		c->phase = PHASE_RESOLVE;
		if (c->retry_plain) {
			c->retry_plain = 0;
			c->no_starttls = 1;
		} else {
			c->no_starttls = 0;
			c->addr_i++;
		}
		conn_connect(c);
		return;
	case PHASE_READY:
		if (c->job != NULL && c->njobs > 0 && !c->mail_replied) {
			log_debug("relay %u: %s goes back to the queue",
			    c->id, c->job->id);
			TAILQ_INSERT_HEAD(&c->dest->jobs, c->job, entry);
			c->dest->stats.waiting++;
			stats_total.waiting++;
			if (!c->dest->pending) {
				TAILQ_INSERT_TAIL(&dests_pending, c->dest,
				    pending_entry);
				c->dest->pending = 1;
			}
			c->job = NULL;
		} else if (c->job != NULL)
			txn_abort(c);
		break;
	case PHASE_QUIT:
		break;
	}
	conn_close(c);
}

/* The current reply ends setup on this address. */
static void
conn_fail_reply(struct relay_conn *c, enum relay_cmd cmd)
{
	char	 said[MESSAGE_LEN];

	reply_said(c, cmd, said, sizeof(said));
	c->err_code = c->reply_code;
	reply_enhanced(c, c->err_enhanced, sizeof(c->err_enhanced));
	conn_fail(c, "%s", said);
}

/* Every address failed: the job and, if no one else is trying, all. */
static void
conn_setup_failed(struct relay_conn *c)
{
	struct relay_dest	*dest = c->dest;

	if (c->last_error[0] == '\0')
		(void)snprintf(c->last_error, sizeof(c->last_error),
		    "no address to connect to for %s", c->peer);
	if (c->last_enhanced[0] == '\0')
		(void)strlcpy(c->last_enhanced, "4.4.1",
		    sizeof(c->last_enhanced));
	if (c->job != NULL) {
		job_all(c->job, RELAY_DEFERRED, c->last_code,
		    c->last_enhanced, c->last_error);
		job_finish(c->job, dest);
		c->job = NULL;
	}
	dest_defer_waiting(dest, c);
	conn_close(c);
}

static void
conn_quit(struct relay_conn *c)
{
	if (c->dead)
		return;
	conn_release(c);
	c->phase = PHASE_QUIT;
	conn_cmd(c, CMD_QUIT, 0, "QUIT");
	conn_timer_expect(c);
	conn_continue(c);
}

/* The slot goes back as soon as the connection is of no more use. */
static void
conn_release(struct relay_conn *c)
{
	if (!c->counted)
		return;
	c->counted = 0;
	c->dest->nconn--;
	c->dest->stats.active--;
	nconn_total--;
	relay_kick();
}

static void
conn_close(struct relay_conn *c)
{
	if (c->dead)
		return;
	if (c->job != NULL)
		fatalx("relay %u: closed with a job", c->id);
	if (c->resolving) {
		dns_cancel(c);
		c->resolving = 0;
	}
	conn_reset_socket(c);
	conn_release(c);
	c->dead = 1;
	TAILQ_REMOVE(&c->dest->conns, c, entry);
	TAILQ_INSERT_TAIL(&conns_dead, c, entry);
	relay_kick();
}

static void
conn_free(struct relay_conn *c)
{
	evbuffer_free(c->in);
	evbuffer_free(c->out);
	free(c->addrs);
	free(c->rstate);
	explicit_bzero(&c->target, sizeof(c->target));
	free(c);
}

/* A job done: the next one for the same destination, or idle. */
static void
conn_next(struct relay_conn *c)
{
	struct relay_dest	*dest = c->dest;
	struct relay_job	*job;

	if (c->dead)
		return;
	if (shutting_down || c->messages >= RELAY_CONN_MESSAGES ||
	    !target_equal(&c->target, &dest->target)) {
		conn_quit(c);
		return;
	}
	if ((job = TAILQ_FIRST(&dest->jobs)) != NULL) {
		TAILQ_REMOVE(&dest->jobs, job, entry);
		dest->stats.waiting--;
		stats_total.waiting--;
		c->job = job;
		txn_start(c);
		return;
	}
	conn_timer_expect(c);
	relay_kick();
}

/*
 * Commands and replies.
 */

static void
conn_cmd(struct relay_conn *c, enum relay_cmd cmd, size_t rcpt,
    const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	if (evbuffer_add_vprintf(c->out, fmt, ap) == -1 ||
	    evbuffer_add(c->out, "\r\n", 2) == -1)
		fatal("relay: command");
	va_end(ap);
	conn_expect(c, cmd, rcpt);
}

/* A reply to wait for; the clock starts if it is the only one. */
static void
conn_expect(struct relay_conn *c, enum relay_cmd cmd, size_t rcpt)
{
	size_t	 slot;

	if (c->expect_count >= sizeof(c->expect) / sizeof(c->expect[0]))
		fatalx("relay %u: too many commands in flight", c->id);
	slot = (c->expect_head + c->expect_count) %
	    (sizeof(c->expect) / sizeof(c->expect[0]));
	c->expect[slot].cmd = cmd;
	c->expect[slot].rcpt = rcpt;
	if (c->expect_count++ == 0)
		conn_timer_expect(c);
}

/* The code and RFC 3463 status that the next conn_fail() reports. */
static void
conn_error(struct relay_conn *c, int code, const char *enhanced)
{
	c->err_code = code;
	(void)strlcpy(c->err_enhanced, enhanced, sizeof(c->err_enhanced));
}

static in_port_t
conn_port(const struct relay_conn *c)
{
	if (c->target.port != 0)
		return (c->target.port);
	return (c->target.scheme == RELAY_SMTPS ? 465 : 25);
}

static void
conn_process(struct relay_conn *c)
{
	struct relay_expect	 e;
	int			 r;

	while (!c->dead && !c->tls_handshaking &&
	    evbuffer_get_length(c->in) > 0) {
		if (c->expect_count == 0) {
			if (c->phase == PHASE_READY && c->job == NULL) {
				/* Often a 421 before an idle server hangs up. */
				log_debug("relay %u: %s spoke while idle",
				    c->id, c->peer);
				conn_close(c);
			} else
				conn_fail(c, "%s: unexpected reply from the "
				    "server%s", c->peer, c->in_body ?
				    " before the end of the message" : "");
			return;
		}
		if ((r = conn_getreply(c)) == 0)
			return;
		if (r == -1)
			return;		/* failed */
		e = c->expect[c->expect_head];
		c->expect_head = (c->expect_head + 1) %
		    (sizeof(c->expect) / sizeof(c->expect[0]));
		c->expect_count--;
		conn_timer_expect(c);
		conn_reply(c, &e);
		c->reply_lines = 0;
	}
}

/*
 * One reply, line by line: 1 when complete, 0 when more is needed, -1
 * when the server broke the grammar or a bound (the connection failed).
 * Lines end at LF (a CR before it is dropped); any other control
 * character, NUL included, only ever reaches text_clean().
 */
static int
conn_getreply(struct relay_conn *c)
{
	unsigned char	*data, *lf;
	char		 line[RELAY_LINE_MAX + 1];
	size_t		 len, linelen;
	int		 code;

	for (;;) {
		if ((len = evbuffer_get_length(c->in)) == 0)
			return (0);
		if (len > RELAY_LINE_MAX)
			len = RELAY_LINE_MAX;
		data = evbuffer_pullup(c->in, len);
		if ((lf = memchr(data, '\n', len)) == NULL) {
			if (len < RELAY_LINE_MAX)
				return (0);
			conn_fail(c, "%s: reply line longer than %d octets",
			    c->peer, RELAY_LINE_MAX);
			return (-1);
		}
		linelen = lf - data;
		if (linelen > 0 && data[linelen - 1] == '\r')
			linelen--;
		memcpy(line, data, linelen);
		line[linelen] = '\0';
		evbuffer_drain(c->in, lf - data + 1);

		if (linelen < 3 || line[0] < '2' || line[0] > '5' ||
		    !isdigit((unsigned char)line[1]) ||
		    !isdigit((unsigned char)line[2]) ||
		    (linelen > 3 && line[3] != ' ' && line[3] != '-')) {
			conn_fail(c, "%s: malformed reply line", c->peer);
			return (-1);
		}
		code = (line[0] - '0') * 100 + (line[1] - '0') * 10 +
		    (line[2] - '0');
		if (c->reply_lines == 0) {
			c->reply_code = code;
			c->reply_bytes = 0;
			c->reply_textlen = 0;
			c->reply_text[0] = '\0';
			c->new_starttls = c->new_pipelining = 0;
			c->new_8bitmime = c->new_size = 0;
			c->new_auth_plain = 0;
			c->new_size_max = 0;
		} else if (code != c->reply_code) {
			conn_fail(c, "%s: multi-line reply with mixed codes",
			    c->peer);
			return (-1);
		}
		c->reply_bytes += linelen;
		if (++c->reply_lines > RELAY_REPLY_LINES ||
		    c->reply_bytes > RELAY_REPLY_BYTES) {
			conn_fail(c, "%s: reply longer than %d lines or %d "
			    "octets", c->peer, RELAY_REPLY_LINES,
			    RELAY_REPLY_BYTES);
			return (-1);
		}
		if (linelen > 4) {
			if (c->reply_textlen > 0 &&
			    c->reply_textlen + 1 < sizeof(c->reply_text))
				c->reply_text[c->reply_textlen++] = ' ';
			text_clean(c->reply_text + c->reply_textlen,
			    sizeof(c->reply_text) - c->reply_textlen,
			    line + 4, linelen - 4);
			c->reply_textlen += strlen(c->reply_text +
			    c->reply_textlen);
		}
		if (c->expect[c->expect_head].cmd == CMD_EHLO &&
		    c->reply_lines > 1)
			conn_ehlo_line(c, linelen > 4 ? line + 4 : "");
		if (linelen == 3 || line[3] == ' ')
			return (1);
	}
}

static void
conn_ehlo_line(struct relay_conn *c, const char *kw)
{
	const char		*p;
	char			*end;
	unsigned long long	 n;

	if (strcasecmp(kw, "STARTTLS") == 0)
		c->new_starttls = 1;
	else if (strcasecmp(kw, "PIPELINING") == 0)
		c->new_pipelining = 1;
	else if (strcasecmp(kw, "8BITMIME") == 0)
		c->new_8bitmime = 1;
	else if (strncasecmp(kw, "SIZE", 4) == 0 &&
	    (kw[4] == '\0' || kw[4] == ' ')) {
		c->new_size = 1;
		if (kw[4] == ' ') {
			errno = 0;
			n = strtoull(kw + 5, &end, 10);
			if (errno == 0 && *end == '\0' &&
			    isdigit((unsigned char)kw[5]))
				c->new_size_max = n;
		}
	} else if (strncasecmp(kw, "AUTH", 4) == 0 &&
	    (kw[4] == ' ' || kw[4] == '=')) {
		for (p = kw + 5; *p != '\0'; p += strcspn(p, " ")) {
			p += strspn(p, " ");
			if (strncasecmp(p, "PLAIN", 5) == 0 &&
			    (p[5] == '\0' || p[5] == ' '))
				c->new_auth_plain = 1;
		}
	}
}

/*
 * "host [addr]: said: 550 5.1.1 text (in reply to RCPT TO)", the
 * server's text shortened to fit.
 */
static void
reply_said(struct relay_conn *c, enum relay_cmd cmd, char *buf, size_t len)
{
	char	 head[sizeof(c->peer) + 32], tail[64];
	size_t	 room, used;

	if (snprintf(head, sizeof(head), "%s: said: %d", c->peer,
	    c->reply_code) < 0 || snprintf(tail, sizeof(tail),
	    " (in reply to %s)", relay_cmds[cmd].name) < 0)
		fatal("relay: reply text");
	(void)strlcpy(buf, head, len);
	used = strlen(buf);
	if (c->reply_textlen > 0 && used + strlen(tail) + 2 < len) {
		room = len - used - strlen(tail) - 1;
		buf[used++] = ' ';
		buf[used] = '\0';
		(void)strlcat(buf, c->reply_text, used + room);
	}
	(void)strlcat(buf, tail, len);
}

/* The reply's own RFC 3463 code if it has one of its class, else X.0.0. */
static void
reply_enhanced(const struct relay_conn *c, char *buf, size_t len)
{
	const char	*p = c->reply_text;
	size_t		 a, b;

	if (p[0] == c->reply_code / 100 + '0' && p[1] == '.') {
		a = strspn(p + 2, "0123456789");
		if (a >= 1 && a <= 3 && p[2 + a] == '.') {
			b = strspn(p + 3 + a, "0123456789");
			if (b >= 1 && b <= 3 && (p[3 + a + b] == ' ' ||
			    p[3 + a + b] == '\0') && 3 + a + b < len) {
				memcpy(buf, p, 3 + a + b);
				buf[3 + a + b] = '\0';
				return;
			}
		}
	}
	(void)snprintf(buf, len, "%d.0.0", c->reply_code / 100);
}

static void
conn_reply(struct relay_conn *c, struct relay_expect *e)
{
	int	 class = c->reply_code / 100;

	switch (e->cmd) {
	case CMD_GREETING:
		if (class != 2) {
			conn_fail_reply(c, e->cmd);
			return;
		}
		conn_send_ehlo(c, CMD_EHLO);
		break;
	case CMD_EHLO:
		if (class == 5) {
			conn_send_ehlo(c, CMD_HELO);
			break;
		}
		/* FALLTHROUGH */
	case CMD_HELO:
		if (class != 2) {
			conn_fail_reply(c, e->cmd);
			return;
		}
		c->esmtp = e->cmd == CMD_EHLO;
		c->ext_starttls = c->esmtp && c->new_starttls;
		c->ext_pipelining = c->esmtp && c->new_pipelining;
		c->ext_8bitmime = c->esmtp && c->new_8bitmime;
		c->ext_size = c->esmtp && c->new_size;
		c->size_max = c->esmtp ? c->new_size_max : 0;
		c->ext_auth_plain = c->esmtp && c->new_auth_plain;
		conn_setup_next(c);
		break;
	case CMD_STARTTLS:
		if (class != 2) {
			if (conn_tls_required(c)) {
				conn_fail_reply(c, e->cmd);
				return;
			}
			c->no_starttls = 1;
			conn_setup_next(c);
			break;
		}
		/*
		 * Nothing may follow the 220: bytes already here would be
		 * read as if they came over TLS (CVE-2011-0411 class).
		 */
		if (evbuffer_get_length(c->in) > 0) {
			if (!conn_tls_required(c))
				c->retry_plain = 1;
			conn_fail(c, "%s: data after the reply to STARTTLS",
			    c->peer);
			return;
		}
		conn_tls_start(c);
		return;
	case CMD_AUTH:
		if (class != 2) {
			conn_fail_reply(c, e->cmd);
			return;
		}
		conn_ready(c);
		break;
	case CMD_RSET:
		if (class != 2) {
			conn_fail_reply(c, e->cmd);
			return;
		}
		c->need_rset = 0;
		txn_send_mail(c);
		break;
	case CMD_MAIL:
		c->mail_replied = 1;
		if (class != 2) {
			c->mail_failed = 1;
			txn_reply_rcpts(c, RS_BIT(RS_TODO) | RS_BIT(RS_SENT),
			    e->cmd);
			if (c->expect_count == 0)
				txn_rcpts_done(c);
			break;
		}
		txn_send_rcpts(c);
		break;
	case CMD_RCPT:
		if (!c->mail_failed && c->rstate[e->rcpt] == RS_SENT) {
			char	 said[MESSAGE_LEN], enh[16];

			reply_said(c, e->cmd, said, sizeof(said));
			reply_enhanced(c, enh, sizeof(enh));
			if (class == 2) {
				c->rstate[e->rcpt] = RS_ACCEPTED;
				c->naccepted++;
			} else {
				job_result(c->job, e->rcpt, class == 5 ?
				    RELAY_FAILED : RELAY_DEFERRED,
				    c->reply_code, enh, said);
				c->rstate[e->rcpt] = c->reply_code == 452 ?
				    RS_NEXT : RS_DONE;
			}
		}
		txn_send_rcpts(c);
		if (c->expect_count == 0)
			txn_rcpts_done(c);
		break;
	case CMD_DATA:
		if (c->reply_code != 354) {
			txn_reply_rcpts(c, RS_BIT(RS_ACCEPTED), e->cmd);
			c->need_rset = 1;
			txn_end(c);
			break;
		}
		c->in_body = 1;
		c->body_off = 0;
		c->body_bol = 1;
		c->body_done = 0;
		c->body_bare = 0;
		conn_timer(c, RELAY_TIMEOUT_BLOCK);
		break;
	case CMD_EOM:
		c->in_body = 0;
		if (class == 2) {
			c->dest->stats.messages++;
			stats_total.messages++;
		}
		txn_reply_rcpts(c, RS_BIT(RS_ACCEPTED), e->cmd);
		c->messages++;
		txn_end(c);
		break;
	case CMD_QUIT:
		conn_close(c);
		return;
	}
}

/* After EHLO/HELO: STARTTLS, AUTH, or ready. */
static void
conn_setup_next(struct relay_conn *c)
{
	if (!c->tls_on && c->ext_starttls && !c->no_starttls) {
		conn_cmd(c, CMD_STARTTLS, 0, "STARTTLS");
		return;
	}
	if (!c->tls_on && conn_tls_required(c)) {
		conn_error(c, 0, "4.7.4");
		conn_fail(c, "%s: TLS is required, but the server %s", c->peer,
		    c->ext_starttls ? "refused STARTTLS" :
		    "does not offer STARTTLS");
		return;
	}
	if (c->target.auth_user[0] != '\0') {
		conn_error(c, 0, "4.7.0");
		if (!c->tls_on || !c->target.tls_verify) {
			conn_fail(c, "%s: no verified TLS, so no AUTH: the "
			    "password goes only to the server named", c->peer);
			return;
		}
		if (!c->ext_auth_plain) {
			conn_fail(c, "%s: the server does not offer AUTH "
			    "PLAIN", c->peer);
			return;
		}
		conn_send_auth(c);
		return;
	}
	conn_ready(c);
}

static void
conn_send_ehlo(struct relay_conn *c, enum relay_cmd cmd)
{
	struct sockaddr_storage	 ss;
	socklen_t		 len = sizeof(ss);
	char			 addr[INET6_ADDRSTRLEN], name[HOSTNAME_LEN];
	const char		*helo = c->target.helo;
	size_t			 i;

	memset(&ss, 0, sizeof(ss));
	for (i = 0; helo[i] != '\0'; i++)
		if (helo[i] <= ' ' || helo[i] >= 0x7f)
			break;
	if (helo[0] == '\0' || helo[i] != '\0') {
		/* No name: our address, as RFC 5321 section 4.1.4 allows. */
		if (getsockname(c->fd, (struct sockaddr *)&ss, &len) == -1 ||
		    addr_string(&ss, addr, sizeof(addr)) == NULL)
			(void)strlcpy(addr, "127.0.0.1", sizeof(addr));
		(void)snprintf(name, sizeof(name), "[%s%s]",
		    ss.ss_family == AF_INET6 ? "IPv6:" : "", addr);
		helo = name;
	}
	conn_cmd(c, cmd, 0, "%s %s", cmd == CMD_EHLO ? "EHLO" : "HELO", helo);
}

static void
conn_send_auth(struct relay_conn *c)
{
	char	 plain[1 + AUTH_USER_MAX + 1 + AUTH_PASSWORD_MAX];
	char	 b64[((sizeof(plain) + 2) / 3) * 4 + 1];
	size_t	 ulen, plen;
	int	 n;

	ulen = strnlen(c->target.auth_user, AUTH_USER_MAX - 1);
	plen = strnlen(c->target.auth_password, AUTH_PASSWORD_MAX - 1);
	plain[0] = '\0';
	memcpy(plain + 1, c->target.auth_user, ulen);
	plain[1 + ulen] = '\0';
	memcpy(plain + 2 + ulen, c->target.auth_password, plen);
	if ((n = b64_ntop((unsigned char *)plain, 2 + ulen + plen, b64,
	    sizeof(b64))) == -1)
		fatalx("relay: AUTH PLAIN encoding");
	conn_cmd(c, CMD_AUTH, 0, "AUTH PLAIN %s", b64);
	explicit_bzero(plain, sizeof(plain));
	explicit_bzero(b64, sizeof(b64));
}

/* The session is up: its first job, or the next one waiting. */
static void
conn_ready(struct relay_conn *c)
{
	c->phase = PHASE_READY;
	c->last_error[0] = '\0';
	c->last_enhanced[0] = '\0';
	c->last_code = 0;
	log_debug("relay %u: session with %s%s%s%s", c->id, c->peer,
	    c->esmtp ? ", ESMTP" : "", c->tls_on ? ", TLS" : "",
	    c->target.auth_user[0] != '\0' ? ", authenticated" : "");
	if (c->job != NULL)
		txn_start(c);
	else
		conn_next(c);
}

/*
 * Transactions.
 */

static void
txn_start(struct relay_conn *c)
{
	struct relay_job	*job = c->job;
	size_t			 i;
	char			 text[MESSAGE_LEN];

	free(c->rstate);
	if ((c->rstate = calloc(job->nrcpt, 1)) == NULL)
		fatal("relay: recipients");
	/* job_valid() left the bad ones with a result and text. */
	for (i = 0; i < job->nrcpt; i++)
		c->rstate[i] = job->results[i].text[0] != '\0' ? RS_DONE :
		    RS_TODO;
	c->mail_replied = 0;
	if (c->ext_size && c->size_max > 0 && job->body_len > c->size_max) {
		(void)snprintf(text, sizeof(text), "%s: message of %zu octets "
		    "exceeds the server's limit of %llu", c->peer,
		    job->body_len, (unsigned long long)c->size_max);
		for (i = 0; i < job->nrcpt; i++)
			if (c->rstate[i] == RS_TODO) {
				job_result(job, i, RELAY_FAILED, 0, "5.3.4",
				    text);
				c->rstate[i] = RS_DONE;
			}
		job_finish(job, c->dest);
		c->job = NULL;
		c->njobs++;
		conn_next(c);
		return;
	}
	txn_begin(c);
}

static void
txn_begin(struct relay_conn *c)
{
	c->naccepted = 0;
	c->mail_failed = 0;
	c->rcpt_cursor = 0;
	c->in_body = 0;
	if (c->need_rset) {
		conn_cmd(c, CMD_RSET, 0, "RSET");
		return;
	}
	txn_send_mail(c);
}

static void
txn_send_mail(struct relay_conn *c)
{
	struct relay_job	*job = c->job;
	char			 size[32] = "";

	if (c->ext_size)
		(void)snprintf(size, sizeof(size), " SIZE=%zu", job->body_len);
	conn_cmd(c, CMD_MAIL, 0, "MAIL FROM:<%s>%s%s", job->sender,
	    (job->flags & ENVELOPE_8BITMIME) && c->ext_8bitmime ?
	    " BODY=8BITMIME" : "", size);
	if (c->ext_pipelining)
		txn_send_rcpts(c);
}

/* With PIPELINING a window of RCPTs at once; without, one by one. */
static void
txn_send_rcpts(struct relay_conn *c)
{
	struct relay_job	*job = c->job;
	size_t			 window;

	if (c->mail_failed)
		return;
	window = c->ext_pipelining ? RELAY_PIPELINE_MAX : 1;
	while (c->expect_count < window && c->rcpt_cursor < job->nrcpt) {
		if (c->rstate[c->rcpt_cursor] != RS_TODO) {
			c->rcpt_cursor++;
			continue;
		}
		c->rstate[c->rcpt_cursor] = RS_SENT;
		conn_cmd(c, CMD_RCPT, c->rcpt_cursor, "RCPT TO:<%s>",
		    job->rcpts[c->rcpt_cursor]);
		c->rcpt_cursor++;
	}
}

/* Every RCPT has its reply: DATA, if anyone is listening. */
static void
txn_rcpts_done(struct relay_conn *c)
{
	size_t	 i;

	if (c->rcpt_cursor < c->job->nrcpt && !c->mail_failed) {
		for (i = c->rcpt_cursor; i < c->job->nrcpt; i++)
			if (c->rstate[i] == RS_TODO)
				return;		/* more to send */
	}
	if (!c->mail_failed && c->naccepted > 0) {
		conn_cmd(c, CMD_DATA, 0, "DATA");
		return;
	}
	c->need_rset = 1;
	txn_end(c);
}

/* The current reply is the answer for the recipients in these states. */
static void
txn_reply_rcpts(struct relay_conn *c, unsigned int states, enum relay_cmd cmd)
{
	struct relay_job	*job = c->job;
	enum relay_status	 status;
	char			 said[MESSAGE_LEN], enh[16];
	size_t			 i;
	int			 class = c->reply_code / 100;

	reply_said(c, cmd, said, sizeof(said));
	reply_enhanced(c, enh, sizeof(enh));
	if (class == 2)
		status = cmd == CMD_EOM ? RELAY_DELIVERED : RELAY_DEFERRED;
	else
		status = class == 5 ? RELAY_FAILED : RELAY_DEFERRED;
	if (class == 2 && cmd != CMD_EOM) {
		/* A 2xx where none belongs: keep the mail, try again. */
		(void)strlcpy(enh, "4.5.0", sizeof(enh));
	}
	for (i = 0; i < job->nrcpt; i++) {
		if ((RS_BIT(c->rstate[i]) & states) == 0)
			continue;
		job_result(job, i, status, c->reply_code, enh, said);
		c->rstate[i] = RS_DONE;
	}
}

/*
 * The transaction is over.  Recipients that a 452 put off while others
 * got through go in another transaction on this connection.
 */
static void
txn_end(struct relay_conn *c)
{
	struct relay_job	*job = c->job;
	size_t			 i, again = 0;

	if (c->in_body)
		c->in_body = 0;
	if (c->body_bare > 0)
		log_warnx("relay %u: %s: %zu bare CR or LF in the body sent "
		    "as CRLF", c->id, job->id, c->body_bare);
	c->body_bare = 0;
	for (i = 0; i < job->nrcpt; i++)
		if (c->rstate[i] == RS_NEXT) {
			if (c->naccepted > 0) {
				c->rstate[i] = RS_TODO;
				again++;
			} else
				c->rstate[i] = RS_DONE;
		}
	if (again > 0 && c->messages < RELAY_CONN_MESSAGES) {
		txn_begin(c);
		return;
	}
	for (i = 0; i < job->nrcpt; i++)
		if (c->rstate[i] == RS_TODO)
			job_result(job, i, RELAY_DEFERRED, 452, "4.5.3",
			    "too many recipients for one connection");
	job_finish(job, c->dest);
	c->job = NULL;
	c->njobs++;
	conn_next(c);
}

/* The connection is gone mid-job: who has no answer is deferred. */
static void
txn_abort(struct relay_conn *c)
{
	struct relay_job	*job = c->job;
	size_t			 i;
	const char		*enh;

	enh = c->last_enhanced[0] != '\0' ? c->last_enhanced : "4.4.2";
	for (i = 0; i < job->nrcpt; i++) {
		if (c->rstate != NULL && c->rstate[i] == RS_DONE)
			continue;
		if (c->rstate != NULL && c->rstate[i] == RS_NEXT)
			continue;
		if (c->rstate == NULL && job->results[i].text[0] != '\0')
			continue;
		job_result(job, i, RELAY_DEFERRED, c->last_code, enh,
		    c->last_error);
	}
	c->in_body = 0;
	job_finish(job, c->dest);
	c->job = NULL;
}

/*
 * The body, from memory to the output buffer a bounded piece at a
 * time: lines start with a doubled dot where they start with a dot,
 * and every line ends in CRLF, a bare CR or LF included.
 */
static void
body_fill(struct relay_conn *c)
{
	const unsigned char	*b = c->job->body, *lf, *cr;
	size_t			 len = c->job->body_len, i, start, end, stop;
	int			 bol;

	while (!c->body_done &&
	    evbuffer_get_length(c->out) < RELAY_OUTBUF_LOW) {
		if (c->body_off >= len) {
			if (!c->body_bol &&
			    evbuffer_add(c->out, "\r\n", 2) == -1)
				fatal("relay: body");
			if (evbuffer_add(c->out, ".\r\n", 3) == -1)
				fatal("relay: body");
			c->body_done = 1;
			conn_expect(c, CMD_EOM, 0);
			break;
		}
		start = i = c->body_off;
		end = len - start > RELAY_BODY_CHUNK ? start +
		    RELAY_BODY_CHUNK : len;
		bol = c->body_bol;
		/* A line at a time, found with memchr: bodies are large. */
		while (i < end) {
			if (bol && b[i] == '.')
				break;
			lf = memchr(b + i, '\n', end - i);
			stop = lf != NULL ? (size_t)(lf - b) : end;
			cr = memchr(b + i, '\r', stop - i);
			if (lf == NULL) {
				if (cr == NULL) {
					i = end;	/* the line goes on */
					bol = 0;
				} else if ((size_t)(cr - b) == end - 1 &&
				    end < len && b[end] == '\n') {
					i = end + 1;	/* CRLF across chunks */
					bol = 1;
				} else {
					i = cr - b;	/* a bare CR */
					break;
				}
				continue;
			}
			if (cr == NULL || (size_t)(cr - b) != stop - 1) {
				/* a bare LF, or a bare CR before it */
				i = cr != NULL ? (size_t)(cr - b) : stop;
				break;
			}
			i = stop + 1;
			bol = 1;
		}
		if (i > start && evbuffer_add(c->out, b + start, i - start) ==
		    -1)
			fatal("relay: body");
		c->body_off = i;
		c->body_bol = bol;
		if (i >= len || i >= end)
			continue;
		if (bol && b[i] == '.') {
			/* The stuffed dot; the line's own follows with it. */
			if (evbuffer_add(c->out, ".", 1) == -1)
				fatal("relay: body");
			c->body_bol = 0;
			continue;
		}
		/* a bare CR or LF */
		if (evbuffer_add(c->out, "\r\n", 2) == -1)
			fatal("relay: body");
		c->body_bare++;
		c->body_off = i + 1;
		c->body_bol = 1;
	}
}

/*
 * Text from the remote side, or built from it, for logs, the queue and
 * bounces: printable ASCII, other bytes as '?', at most len - 1 bytes.
 */
static void
text_clean(char *dst, size_t dstlen, const char *src, size_t srclen)
{
	size_t	 i;

	if (dstlen == 0)
		return;
	for (i = 0; i < srclen && i < dstlen - 1; i++)
		dst[i] = src[i] >= 0x20 && src[i] < 0x7f ? src[i] :
		    src[i] == '\t' ? ' ' : '?';
	dst[i] = '\0';
}
