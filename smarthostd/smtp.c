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
 * The smtp process: accepts client connections on the sockets the
 * parent bound, keeps the sessions, the TLS contexts built from the keys
 * the parent sent, and the per-client counters.  It asks the parent to
 * check passwords, grey about clients and recipients, the scan process
 * for its verdict on messages, and the queue to commit them; it opens
 * no file and binds no socket.
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smarthostd.h"
#include "smtp.h"

#define SMTP_MAX_LISTENERS	64
#define SMTP_AUTH_CLIENTS	256	/* clients with recent failures */
#define SMTP_SHUTDOWN_WAIT	5	/* seconds for queue answers */

/*
 * A server TLS context.  Sessions hold a reference for as long as they
 * live, since libtls's per-connection state points into it; a reload
 * retires the old contexts and the last session frees them.
 */
struct smtp_pki {
	TAILQ_ENTRY(smtp_pki)	 entry;
	char			 name[HOSTNAME_LEN];
	struct tls		*ctx;
	int			 refs;
	int			 retired;
};
TAILQ_HEAD(smtp_pkis, smtp_pki);

struct smtp_auth_client {
	char			 addr[INET6_ADDRSTRLEN];
	uint32_t		 failures;
	time_t			 first;
};

RB_HEAD(smtp_sessions, smtp_session);
int	 smtp_session_cmp(struct smtp_session *, struct smtp_session *);
RB_PROTOTYPE(smtp_sessions, smtp_session, entry, smtp_session_cmp);

struct smtp_stats		 smtp_stats;
uint64_t			 smtp_body_bytes;	/* in memfds now */

static struct smtp_listener	 listeners[SMTP_MAX_LISTENERS];
static int			 nlisteners;
static int			 listening;
static int			 paused;
static int			 shutting_down;
static struct smtp_sessions	 sessions = RB_INITIALIZER(&sessions);
static uint32_t			 nsessions;
static uint32_t			 next_session_id = 1;
static struct smtp_pkis		 pkis = TAILQ_HEAD_INITIALIZER(pkis);
static struct smtp_auth_client	 auth_clients[SMTP_AUTH_CLIENTS];
static int			 disk_ok = -1;	/* until queue says */
static uint32_t			 nstuttering;	/* tarpit slots taken */
static struct event		 accept_pause;
static struct event		 shutdown_timer;

static void	 smtp_dispatch_parent(struct imsgev *, struct imsg *);
static void	 smtp_dispatch_peer(struct imsgev *, struct imsg *);
static int	 smtp_config_check(struct smarthost_config *, char *, size_t);
static void	 smtp_config_commit(struct smarthost_config *);
static void	 smtp_shutdown(void);
static void	 smtp_shutdown_check(void);
static void	 smtp_shutdown_timeout(int, short, void *);
static void	 smtp_exit(void) __attribute__((__noreturn__));
static void	 smtp_add_listener(struct imsg *);
static void	 smtp_listen(int);
static void	 smtp_listen_update(void);
static void	 smtp_accept(int, short, void *);
static void	 smtp_accept_resume(int, short, void *);
static void	 smtp_refuse(int, const char *);
static uint32_t	 smtp_sessions_from(const struct sockaddr_storage *);
static struct smtp_session *smtp_session_find(uint32_t);
static void	 smtp_queue_result(struct imsg *);
static void	 smtp_auth_result(struct imsg *);
static void	 smtp_grey_connect_result(struct imsg *);
static void	 smtp_grey_check_result(struct imsg *);
static void	 smtp_grey_facts_result(struct imsg *);
static void	 smtp_scan_result(struct imsg *);
static void	 smtp_peer_lost(enum smarthost_proc);
static void	 smtp_ctl_stats(uint32_t);
static void	 smtp_ctl_pause(uint32_t, int);
static struct smtp_pki *smtp_pki_build(struct pki *, char *, size_t);
static void	 smtp_pki_free(struct smtp_pki *);

static const struct proc_handlers	 smtp_handlers = {
	.parent =		smtp_dispatch_parent,
	.peer =			smtp_dispatch_peer,
	.config_check =		smtp_config_check,
	.config_commit =	smtp_config_commit,
	.shutdown =		smtp_shutdown,
	.peer_lost =		smtp_peer_lost
};

void
smtp_main(void)
{
	if (tls_init() == -1)
		fatalx("tls_init");
	if (pledge("stdio inet recvfd sendfd", NULL) == -1)
		fatal("pledge");
	proc_child_run(&smtp_handlers);
}

static void
smtp_dispatch_parent(struct imsgev *iev, struct imsg *imsg)
{
	(void)iev;
	switch (imsg_get_type(imsg)) {
	case IMSG_SMTP_LISTENER:
		smtp_add_listener(imsg);
		break;
	case IMSG_SMTP_LISTENERS_DONE:
		imsg_expect_size(imsg, 0);
		listening = 1;
		smtp_listen_update();
		break;
	case IMSG_SMTP_AUTH_RESULT:
		smtp_auth_result(imsg);
		break;
	default:
		fatalx("unexpected imsg %u from parent", imsg_get_type(imsg));
	}
}

static void
smtp_dispatch_peer(struct imsgev *iev, struct imsg *imsg)
{
	int	 ok, told;

	switch (iev->peer) {
	case PROC_QUEUE:
		switch (imsg_get_type(imsg)) {
		case IMSG_QUEUE_RESULT:
			smtp_queue_result(imsg);
			return;
		case IMSG_QUEUE_DISK_OK:
			imsg_expect_size(imsg, sizeof(ok));
			(void)imsg_get_data(imsg, &ok, sizeof(ok));
			if (ok != disk_ok && (disk_ok != -1 || !ok))
				log_warnx("state directory %s its free-space "
				    "reserve: %s MAIL", ok ? "is back above" :
				    "is below", ok ? "accepting" : "refusing");
			told = disk_ok != -1;
			disk_ok = ok;
			if (!told)
				smtp_listen_update();
			return;
		}
		break;
	case PROC_GREY:
		switch (imsg_get_type(imsg)) {
		case IMSG_GREY_CONNECT_RESULT:
			smtp_grey_connect_result(imsg);
			return;
		case IMSG_GREY_CHECK_RESULT:
			smtp_grey_check_result(imsg);
			return;
		case IMSG_GREY_FACTS_RESULT:
			smtp_grey_facts_result(imsg);
			return;
		}
		break;
	case PROC_SCAN:
		if (imsg_get_type(imsg) == IMSG_SCAN_RESULT) {
			smtp_scan_result(imsg);
			return;
		}
		break;
	case PROC_CONTROL:
		switch (imsg_get_type(imsg)) {
		case IMSG_CTL_SHOW_STATS:
			imsg_expect_size(imsg, 0);
			smtp_ctl_stats(imsg_get_id(imsg));
			return;
		case IMSG_CTL_PAUSE_SMTP:
		case IMSG_CTL_RESUME_SMTP:
			imsg_expect_size(imsg, 0);
			smtp_ctl_pause(imsg_get_id(imsg),
			    imsg_get_type(imsg) == IMSG_CTL_PAUSE_SMTP);
			return;
		}
		break;
	default:
		break;
	}
	fatalx("unexpected imsg %u from %s", imsg_get_type(imsg),
	    proc_name(iev->peer));
}

/*
 * Configuration: every pki must give a working TLS context, or the new
 * configuration is refused and the old contexts stay.
 */
static int
smtp_config_check(struct smarthost_config *conf, char *reason, size_t len)
{
	struct pki	*p;
	struct smtp_pki	*sp;

	TAILQ_FOREACH(p, &conf->pkis, entry) {
		if ((sp = smtp_pki_build(p, reason, len)) == NULL)
			return (-1);
		smtp_pki_free(sp);
	}
	return (0);
}

static void
smtp_config_commit(struct smarthost_config *old)
{
	struct smtp_pki	*sp;
	struct pki	*p;
	char		 reason[MESSAGE_LEN];

	(void)old;
	if (!evtimer_initialized(&accept_pause))
		evtimer_set(&accept_pause, smtp_accept_resume, NULL);
	while ((sp = TAILQ_FIRST(&pkis)) != NULL) {
		TAILQ_REMOVE(&pkis, sp, entry);
		sp->retired = 1;
		if (sp->refs == 0)
			smtp_pki_free(sp);
	}
	TAILQ_FOREACH(p, &env->pkis, entry) {
		if ((sp = smtp_pki_build(p, reason, sizeof(reason))) == NULL)
			fatalx("pki %s: %s", p->name, reason);
		TAILQ_INSERT_TAIL(&pkis, sp, entry);
		/* The contexts hold what they need; drop our copy now. */
		freezero(p->key, p->key_len);
		p->key = NULL;
		p->key_len = 0;
	}
	smtp_listen_update();
}

/* TLS 1.2 and later only, with libtls's secure defaults otherwise. */
static struct smtp_pki *
smtp_pki_build(struct pki *p, char *reason, size_t len)
{
	struct tls_config	*cfg;
	struct smtp_pki		*sp;
	uint32_t		 protocols;

	if (p->cert == NULL || p->key == NULL) {
		(void)snprintf(reason, len, "pki %s: no certificate or key",
		    p->name);
		return (NULL);
	}
	if ((sp = calloc(1, sizeof(*sp))) == NULL)
		fatal("smtp_pki_build");
	(void)strlcpy(sp->name, p->name, sizeof(sp->name));
	if ((cfg = tls_config_new()) == NULL)
		fatal("tls_config_new");
	if (tls_config_parse_protocols(&protocols, "tlsv1.2,tlsv1.3") == -1 ||
	    tls_config_set_protocols(cfg, protocols) == -1 ||
	    tls_config_set_keypair_mem(cfg, (const uint8_t *)p->cert,
	    p->cert_len, (const uint8_t *)p->key, p->key_len) == -1) {
		(void)snprintf(reason, len, "pki %s: %s", p->name,
		    tls_config_error(cfg));
		goto fail;
	}
	if ((sp->ctx = tls_server()) == NULL)
		fatal("tls_server");
	if (tls_configure(sp->ctx, cfg) == -1) {
		(void)snprintf(reason, len, "pki %s: %s", p->name,
		    tls_error(sp->ctx));
		goto fail;
	}
	tls_config_clear_keys(cfg);
	tls_config_free(cfg);
	return (sp);
 fail:
	tls_config_clear_keys(cfg);
	tls_config_free(cfg);
	smtp_pki_free(sp);
	return (NULL);
}

static void
smtp_pki_free(struct smtp_pki *sp)
{
	if (sp->ctx != NULL)
		tls_free(sp->ctx);
	free(sp);
}

struct smtp_pki *
smtp_pki_get(const char *name)
{
	struct smtp_pki	*sp;

	TAILQ_FOREACH(sp, &pkis, entry)
		if (strcmp(sp->name, name) == 0) {
			sp->refs++;
			return (sp);
		}
	return (NULL);
}

void
smtp_pki_put(struct smtp_pki *sp)
{
	if (--sp->refs == 0 && sp->retired)
		smtp_pki_free(sp);
}

struct tls *
smtp_pki_context(struct smtp_pki *sp)
{
	return (sp->ctx);
}

/*
 * Listeners.
 */

static void
smtp_add_listener(struct imsg *imsg)
{
	struct smtp_listener	*l;
	int			 fd;

	imsg_expect_size(imsg, sizeof(struct listener));
	if ((fd = imsg_get_fd(imsg)) == -1)
		fatalx("listener without a socket");
	if (nlisteners == SMTP_MAX_LISTENERS)
		fatalx("too many listeners");
	l = &listeners[nlisteners++];
	(void)imsg_get_data(imsg, &l->conf, sizeof(l->conf));
	memset(&l->conf.entry, 0, sizeof(l->conf.entry));
	if (memchr(l->conf.on, '\0', sizeof(l->conf.on)) == NULL ||
	    memchr(l->conf.pki, '\0', sizeof(l->conf.pki)) == NULL ||
	    memchr(l->conf.auth_table, '\0',
	    sizeof(l->conf.auth_table)) == NULL ||
	    memchr(l->conf.hostname, '\0', sizeof(l->conf.hostname)) == NULL ||
	    l->conf.tls > LISTEN_SMTPS)
		fatalx("malformed listener from parent");
	l->fd = fd;
	event_set(&l->ev, fd, EV_READ | EV_PERSIST, smtp_accept, l);
}

static void
smtp_listen(int on)
{
	int	 i;

	for (i = 0; i < nlisteners; i++) {
		if (on)
			event_add(&listeners[i].ev, NULL);
		else
			event_del(&listeners[i].ev);
	}
}

/*
 * Connections are accepted once the listeners and the configuration are
 * there and the queue has said whether the state directory has room
 * (until then they wait in the listen queue: a start on a full disk
 * refuses mail from its first session), and not while paused or
 * stopping.
 */
static void
smtp_listen_update(void)
{
	smtp_listen(env != NULL && listening && disk_ok != -1 && !paused &&
	    !shutting_down && !evtimer_pending(&accept_pause, NULL));
}

static void
smtp_accept_resume(int fd, short event, void *arg)
{
	(void)fd;
	(void)event;
	(void)arg;
	smtp_listen_update();
}

static void
smtp_accept(int fd, short event, void *arg)
{
	struct smtp_listener	*l = arg;
	struct sockaddr_storage	 ss;
	struct timeval		 pause = { 1, 0 };
	socklen_t		 len = sizeof(ss);
	int			 s;

	(void)event;
	if ((s = accept4(fd, (struct sockaddr *)&ss, &len,
	    SOCK_NONBLOCK | SOCK_CLOEXEC)) == -1) {
		if (errno == ENFILE || errno == EMFILE || errno == ENOBUFS ||
		    errno == ENOMEM) {
			log_warn("accept");
			smtp_listen(0);
			evtimer_add(&accept_pause, &pause);
		} else if (errno != EINTR && errno != EAGAIN &&
		    errno != ECONNABORTED)
			log_warn("accept");
		return;
	}
	smtp_stats.connections++;
	if (env == NULL) {
		smtp_refuse(s, "421 4.3.0 Service not ready yet\r\n");
		return;
	}
	if (nsessions >= env->smtp.max_sessions) {
		smtp_refuse(s, "421 4.7.0 Too many sessions, try again "
		    "later\r\n");
		return;
	}
	if (smtp_sessions_from(&ss) >= env->smtp.max_sessions_per_client) {
		smtp_refuse(s, "421 4.7.0 Too many sessions from your "
		    "address, try again later\r\n");
		return;
	}
	smtp_session_start(s, l, &ss, next_session_id++);
	if (next_session_id == 0)
		next_session_id = 1;
}

/* A one-line answer that need not wait: the socket buffer is empty. */
static void
smtp_refuse(int s, const char *reply)
{
	smtp_stats.refused_sessions++;
	(void)write(s, reply, strlen(reply));
	(void)close(s);
}

static uint32_t
smtp_sessions_from(const struct sockaddr_storage *ss)
{
	struct smtp_session	*s;
	char			 addr[INET6_ADDRSTRLEN];
	uint32_t		 n = 0;

	(void)addr_string(ss, addr, sizeof(addr));
	RB_FOREACH(s, smtp_sessions, &sessions)
		if (strcmp(s->peer_addr, addr) == 0)
			n++;
	return (n);
}

/*
 * Sessions by id, so that answers from the parent and the queue find
 * theirs, or find that it has gone.
 */

int
smtp_session_cmp(struct smtp_session *a, struct smtp_session *b)
{
	return (a->id < b->id ? -1 : a->id > b->id);
}

RB_GENERATE(smtp_sessions, smtp_session, entry, smtp_session_cmp);

void
smtp_session_register(struct smtp_session *s)
{
	if (RB_INSERT(smtp_sessions, &sessions, s) != NULL)
		fatalx("session id %u in use", s->id);
	nsessions++;
	smtp_stats.sessions_active = nsessions;
}

void
smtp_session_unregister(struct smtp_session *s)
{
	RB_REMOVE(smtp_sessions, &sessions, s);
	nsessions--;
	smtp_stats.sessions_active = nsessions;
	if (shutting_down)
		smtp_shutdown_check();
}

static struct smtp_session *
smtp_session_find(uint32_t id)
{
	struct smtp_session	 find;

	find.id = id;
	return (RB_FIND(smtp_sessions, &sessions, &find));
}

int
smtp_shutting_down(void)
{
	return (shutting_down);
}

int
smtp_disk_ok(void)
{
	return (disk_ok != 0);
}

/*
 * The queue: messages go there with their body as a descriptor, and
 * come back committed or not.
 */

int
smtp_send_message(struct smtp_session *s, struct envelope *e)
{
	struct imsgev	*queue = iev_peer[PROC_QUEUE];
	unsigned char	*buf;
	size_t		 len;
	int		 ret;

	if (queue == NULL || queue->ibuf.fd == -1) {
		(void)close(s->body_fd);
		s->body_fd = -1;
		return (-1);
	}
	if (envelope_encode(e, &buf, &len) == -1) {
		log_warnx("session %u: cannot encode the envelope", s->id);
		(void)close(s->body_fd);
		s->body_fd = -1;
		return (-1);
	}
	/* The descriptor is the queue's now, whatever happens. */
	ret = imsgev_compose(queue, IMSG_QUEUE_MESSAGE, s->id, 0, s->body_fd,
	    buf, len);
	s->body_fd = -1;
	free(buf);
	return (ret == -1 ? -1 : 0);
}

static void
smtp_queue_result(struct imsg *imsg)
{
	struct queue_result	 res;
	struct smtp_session	*s;

	imsg_expect_size(imsg, sizeof(res));
	(void)imsg_get_data(imsg, &res, sizeof(res));
	if (res.status > QUEUE_NOSPACE ||
	    memchr(res.id, '\0', sizeof(res.id)) == NULL)
		fatalx("malformed queue result");
	if ((s = smtp_session_find(imsg_get_id(imsg))) == NULL ||
	    s->wait != SMTP_WAIT_QUEUE) {
		/* The client timed out meanwhile and was told 451. */
		if (res.status == QUEUE_OK)
			log_info("message %s: committed after its session "
			    "ended", res.id);
		return;
	}
	smtp_session_queued(s, &res);
}

/*
 * AUTH: the parent holds the password table and runs crypt(3); smtp
 * never sees a hash.  Failures are counted per client address.
 */

int
smtp_send_auth(struct smtp_session *s, const char *user, const char *pass)
{
	struct auth_request	 req;
	int			 ret;

	memset(&req, 0, sizeof(req));
	if (strlcpy(req.table, s->listener->conf.auth_table,
	    sizeof(req.table)) >= sizeof(req.table) ||
	    strlcpy(req.user, user, sizeof(req.user)) >= sizeof(req.user) ||
	    strlcpy(req.password, pass, sizeof(req.password)) >=
	    sizeof(req.password))
		return (-1);
	ret = imsgev_compose(iev_peer[PROC_PARENT], IMSG_SMTP_AUTH, s->id, 0,
	    -1, &req, sizeof(req));
	explicit_bzero(&req, sizeof(req));
	return (ret);
}

static void
smtp_auth_result(struct imsg *imsg)
{
	struct smtp_session	*s;
	int			 ok;

	imsg_expect_size(imsg, sizeof(ok));
	(void)imsg_get_data(imsg, &ok, sizeof(ok));
	if ((s = smtp_session_find(imsg_get_id(imsg))) == NULL ||
	    s->wait != SMTP_WAIT_AUTH)
		return;
	smtp_session_auth_result(s, ok == 1);
}

/*
 * Grey: asked about the client before the banner, and about each
 * recipient of an action marked greylist.  Its answers come back by
 * session id; one for a session that has gone, or that stopped
 * waiting, is dropped.
 */

int
smtp_grey_wanted(void)
{
	return (env->greylist.enabled || !TAILQ_EMPTY(&env->blocklists) ||
	    !TAILQ_EMPTY(&env->dnsbls));
}

/* The greylist whitelist (spamd's nospamd): grey is not asked at all. */
int
smtp_grey_whitelisted(const struct smtp_session *s)
{
	struct table	*t;

	if (env->greylist.whitelist[0] == '\0' ||
	    (t = table_find(env, env->greylist.whitelist)) == NULL)
		return (0);
	return (table_match_addr(t, &s->peer));
}

static int
smtp_grey_send(struct smtp_session *s, uint32_t type, const void *req,
    size_t len)
{
	struct imsgev	*grey = iev_peer[PROC_GREY];

	if (grey == NULL || imsgev_compose(grey, type, s->id, 0, -1, req,
	    len) == -1)
		return (-1);
	return (0);
}

int
smtp_send_grey_connect(struct smtp_session *s)
{
	struct grey_connect	 req;

	memset(&req, 0, sizeof(req));
	req.client = s->peer;
	return (smtp_grey_send(s, IMSG_GREY_CONNECT, &req, sizeof(req)));
}

int
smtp_send_grey_check(struct smtp_session *s, const char *rcpt)
{
	struct grey_check	 req;

	memset(&req, 0, sizeof(req));
	req.client = s->peer;
	if (strlcpy(req.helo, s->helo, sizeof(req.helo)) >=
	    sizeof(req.helo) ||
	    strlcpy(req.sender, s->sender, sizeof(req.sender)) >=
	    sizeof(req.sender) ||
	    strlcpy(req.rcpt, rcpt, sizeof(req.rcpt)) >= sizeof(req.rcpt))
		return (-1);
	return (smtp_grey_send(s, IMSG_GREY_CHECK, &req, sizeof(req)));
}

static void
smtp_grey_connect_result(struct imsg *imsg)
{
	struct grey_connect_result	 res;
	struct smtp_session		*s;

	imsg_expect_size(imsg, sizeof(res));
	(void)imsg_get_data(imsg, &res, sizeof(res));
	if (res.client > GREY_CLIENT_TRAPPED ||
	    memchr(res.list, '\0', sizeof(res.list)) == NULL ||
	    memchr(res.message, '\0', sizeof(res.message)) == NULL)
		fatalx("malformed grey connect result");
	if ((s = smtp_session_find(imsg_get_id(imsg))) == NULL ||
	    s->wait != SMTP_WAIT_GREY_CONNECT)
		return;
	smtp_session_grey_client(s, &res);
}

static void
smtp_grey_check_result(struct imsg *imsg)
{
	struct grey_check_result	 res;
	struct smtp_session		*s;

	imsg_expect_size(imsg, sizeof(res));
	(void)imsg_get_data(imsg, &res, sizeof(res));
	if (res.verdict > GREY_TEMPFAIL ||
	    memchr(res.reason, '\0', sizeof(res.reason)) == NULL ||
	    memchr(res.message, '\0', sizeof(res.message)) == NULL)
		fatalx("malformed grey check result");
	if ((s = smtp_session_find(imsg_get_id(imsg))) == NULL)
		return;
	/*
	 * The answer to a question the session gave up on: it must not be
	 * taken for the verdict on a later recipient.
	 */
	if (s->grey_late > 0) {
		s->grey_late--;
		return;
	}
	if (s->wait != SMTP_WAIT_GREY)
		return;
	smtp_session_grey_verdict(s, &res);
}

/*
 * Grey's facts on a client (SPF, DNSBL hits, reverse DNS), asked for
 * when DATA starts so that the lookups overlap the body, and handed to
 * the scan process for its scores.
 */
int
smtp_send_grey_facts(struct smtp_session *s)
{
	struct grey_check	 req;

	memset(&req, 0, sizeof(req));
	req.client = s->peer;
	if (strlcpy(req.helo, s->facts_helo, sizeof(req.helo)) >=
	    sizeof(req.helo) ||
	    strlcpy(req.sender, s->facts_sender, sizeof(req.sender)) >=
	    sizeof(req.sender))
		return (-1);
	return (smtp_grey_send(s, IMSG_GREY_FACTS, &req, sizeof(req)));
}

static void
smtp_grey_facts_result(struct imsg *imsg)
{
	struct grey_facts	 facts;
	struct smtp_session	*s;

	imsg_expect_size(imsg, sizeof(facts));
	(void)imsg_get_data(imsg, &facts, sizeof(facts));
	if (facts.rdns > RDNS_OK ||
	    memchr(facts.spf_domain, '\0', sizeof(facts.spf_domain)) == NULL ||
	    memchr(facts.dnsbl_zones, '\0', sizeof(facts.dnsbl_zones)) ==
	    NULL ||
	    memchr(facts.rdns_name, '\0', sizeof(facts.rdns_name)) == NULL)
		fatalx("malformed grey facts");
	if ((s = smtp_session_find(imsg_get_id(imsg))) == NULL ||
	    !s->facts_pending)
		return;
	smtp_session_facts(s, &facts);
}

/*
 * The scan process reads the body from a descriptor of its own, the
 * memfd's duplicate; it answers by session id.  A session asks it one
 * question at a time, so that no late answer is taken for another.
 */
int
smtp_send_scan(struct smtp_session *s, const struct scan_request *req)
{
	struct imsgev	*scan = iev_peer[PROC_SCAN];
	int		 fd;

	if (scan == NULL || scan->ibuf.fd == -1)
		return (-1);
	if ((fd = dup(s->body_fd)) == -1) {
		log_warn("session %u: dup", s->id);
		return (-1);
	}
	return (imsgev_compose(scan, IMSG_SCAN_MESSAGE, s->id, 0, fd, req,
	    sizeof(*req)) == -1 ? -1 : 0);
}

static void
smtp_scan_result(struct imsg *imsg)
{
	struct scan_result	*res;
	struct smtp_session	*s;

	imsg_expect_size(imsg, sizeof(*res));
	if ((res = malloc(sizeof(*res))) == NULL)
		fatal("smtp_scan_result");
	(void)imsg_get_data(imsg, res, sizeof(*res));
	if (res->verdict > SCAN_TEMPFAIL || !message_scan_result_valid(res))
		fatalx("malformed scan result");
	if ((s = smtp_session_find(imsg_get_id(imsg))) != NULL) {
		if (s->scan_late)
			s->scan_late = 0;	/* for a message answered 451 */
		else if (s->wait == SMTP_WAIT_SCAN)
			smtp_session_scanned(s, res);
	}
	free(res);
}

/*
 * A peer that died takes the daemon down (the parent sees to it), but
 * sessions waiting for it are answered now, and never with 250.
 */
static void
smtp_peer_lost(enum smarthost_proc peer)
{
	struct smtp_session	*s, *next;

	if (peer != PROC_SCAN && peer != PROC_GREY)
		return;
	log_warnx("lost the %s process; answering its sessions",
	    proc_name(peer));
	RB_FOREACH_SAFE(s, smtp_sessions, &sessions, next)
		smtp_session_peer_lost(s, peer);
}

/*
 * The tarpit's stuttering sessions cost a timer event per byte; their
 * number is capped, and sessions beyond the cap get the same replies
 * at full speed.
 */
int
smtp_stutter_acquire(void)
{
	if (env->tarpit.stutter_ms == 0 ||
	    nstuttering >= env->tarpit.max_connections)
		return (0);
	nstuttering++;
	return (1);
}

void
smtp_stutter_release(void)
{
	nstuttering--;
}

static struct smtp_auth_client *
smtp_auth_client(const char *addr, int create)
{
	struct smtp_auth_client	*c, *oldest = &auth_clients[0];
	time_t			 now = time(NULL);
	int			 i;

	for (i = 0; i < SMTP_AUTH_CLIENTS; i++) {
		c = &auth_clients[i];
		if (c->addr[0] != '\0' && now - c->first > SMTP_AUTH_WINDOW)
			memset(c, 0, sizeof(*c));
		if (strcmp(c->addr, addr) == 0 && c->addr[0] != '\0')
			return (c);
		if (c->first < oldest->first)
			oldest = c;
	}
	if (!create)
		return (NULL);
	memset(oldest, 0, sizeof(*oldest));
	(void)strlcpy(oldest->addr, addr, sizeof(oldest->addr));
	oldest->first = now;
	return (oldest);
}

int
smtp_auth_blocked(const struct smtp_session *s)
{
	struct smtp_auth_client	*c;

	if ((c = smtp_auth_client(s->peer_addr, 0)) == NULL)
		return (0);
	return (c->failures >= env->smtp.max_auth_failures);
}

void
smtp_auth_failed(const struct smtp_session *s)
{
	struct smtp_auth_client	*c;

	smtp_stats.auth_failed++;
	c = smtp_auth_client(s->peer_addr, 1);
	c->failures++;
	smtp_auth_tell_grey(s);
}

/*
 * grey counts failed AUTHs, and those refused for too many failures,
 * for the firewall's block table.
 */
void
smtp_auth_tell_grey(const struct smtp_session *s)
{
	struct grey_connect	 gc;

	if (env->firewall.block_auth_failures == 0 ||
	    iev_peer[PROC_GREY] == NULL)
		return;
	memset(&gc, 0, sizeof(gc));
	gc.client = s->peer;
	if (imsgev_compose(iev_peer[PROC_GREY], IMSG_GREY_AUTH_FAILED, s->id,
	    0, -1, &gc, sizeof(gc)) == -1)
		log_warnx("session %u: cannot tell grey", s->id);
}

/*
 * Control.
 */

static void
smtp_ctl_stats(uint32_t id)
{
	const struct smtp_stats	*s = &smtp_stats;

	proc_ctl_stat(id, "connections", s->connections);
	proc_ctl_stat(id, "sessions.active", s->sessions_active);
	proc_ctl_stat(id, "sessions.refused", s->refused_sessions);
	proc_ctl_stat(id, "sessions.tls", s->sessions_tls);
	proc_ctl_stat(id, "sessions.timeout", s->timeouts);
	proc_ctl_stat(id, "auth.ok", s->auth_ok);
	proc_ctl_stat(id, "auth.failed", s->auth_failed);
	proc_ctl_stat(id, "messages.accepted", s->messages_accepted);
	proc_ctl_stat(id, "messages.bytes", s->bytes_accepted);
	proc_ctl_stat(id, "rejected.relay", s->rejected_relay);
	proc_ctl_stat(id, "rejected.recipients",
	    s->rejected_rcpt_limit);
	proc_ctl_stat(id, "rejected.size", s->rejected_size);
	proc_ctl_stat(id, "rejected.syntax", s->rejected_syntax);
	proc_ctl_stat(id, "rejected.data", s->rejected_data);
	proc_ctl_stat(id, "tempfail.queue", s->tempfail_queue);
	proc_ctl_stat(id, "greylisted", s->greylisted);
	proc_ctl_stat(id, "grey_passed", s->grey_passed);
	proc_ctl_stat(id, "grey_tempfail", s->grey_tempfail);
	proc_ctl_stat(id, "tarpitted", s->tarpitted);
	proc_ctl_stat(id, "tarpit.stuttering", nstuttering);
	proc_ctl_stat(id, "trapped", s->trapped);
	proc_ctl_stat(id, "blocked_at_connect", s->blocked_at_connect);
	proc_ctl_stat(id, "scan_rejected", s->scan_rejected);
	proc_ctl_stat(id, "scan_tempfail", s->scan_tempfail);
	proc_ctl_stat(id, "quarantined", s->quarantined);
	proc_ctl_send(id, IMSG_CTL_END, NULL, 0);
}

/* Pausing stops accepting connections; sessions in progress go on. */
static void
smtp_ctl_pause(uint32_t id, int pause)
{
	if (pause == paused) {
		proc_ctl_result(id, 1, "smtp %s", pause ? "already paused" :
		    "not paused");
		return;
	}
	paused = pause;
	smtp_listen_update();
	log_info("smtp %s", paused ? "paused: not accepting connections" :
	    "resumed");
	proc_ctl_result(id, 1, "smtp %s", pause ? "paused" : "resumed");
}

/*
 * SIGTERM: stop accepting, tell idle sessions 421, and wait a little
 * for the queue to answer sessions whose message it is committing.
 */
static void
smtp_shutdown(void)
{
	struct smtp_session	*s, *next;
	struct timeval		 tv = { SMTP_SHUTDOWN_WAIT, 0 };

	shutting_down = 1;
	smtp_listen(0);
	RB_FOREACH_SAFE(s, smtp_sessions, &sessions, next)
		smtp_session_shutdown(s);
	proc_exit_deferred = 1;
	evtimer_set(&shutdown_timer, smtp_shutdown_timeout, NULL);
	evtimer_add(&shutdown_timer, &tv);
	smtp_shutdown_check();
}

static void
smtp_shutdown_check(void)
{
	struct smtp_session	*s;

	RB_FOREACH(s, smtp_sessions, &sessions)
		if (smtp_session_busy(s))
			return;
	smtp_exit();
}

/* The last replies (a 250 among them) go out before we do. */
static void
smtp_exit(void)
{
	struct smtp_session	*s, *next;

	RB_FOREACH_SAFE(s, smtp_sessions, &sessions, next)
		smtp_session_shutdown(s);
	exit(0);
}

static void
smtp_shutdown_timeout(int fd, short event, void *arg)
{
	(void)fd;
	(void)event;
	(void)arg;
	log_warnx("shutdown: %u sessions still waiting; exiting", nsessions);
	smtp_exit();
}
