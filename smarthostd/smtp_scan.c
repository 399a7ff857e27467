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
 * Scanning a message at the end of DATA: grey's facts on the client,
 * asked for at DATA so that its DNS work overlaps the body; the request
 * to the scan process; and its verdict, which queues the message
 * (after the scanner's header edits), refuses it or defers it.
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smarthostd.h"
#include "smtp.h"

static void	 data_scan_refuse(struct smtp_session *,
		    const struct scan_result *, const char *);
static int	 data_edit(struct smtp_session *, const struct scan_result *);

/*
 * How long a verdict may take: libclamav's limit, then spamd's when
 * there is one, and a grace for the queue of jobs in between.
 */
time_t
session_scan_deadline(void)
{
	return (env->scan.max_scantime + (env->scan.spamassassin[0] != '\0' ?
	    env->scan.spamassassin_timeout : 0) + SMTP_SCAN_GRACE);
}

/*
 * Scanning.  A message is scanned once, whatever its recipients'
 * actions: virus-only when every scanned recipient's action says so,
 * and otherwise with the strictest spam levels (the lowest reject)
 * among them.  Returns -1 when a recipient's action is gone, 0 when no
 * recipient's action scans, 1 otherwise, with the levels in req.
 */
int
data_scan_levels(const struct smtp_session *s, struct scan_request *req)
{
	const struct smtp_rcpt		*r;
	const struct action		*a;
	const struct spam_levels	*l;
	int				 scanned = 0;

	if (!env->scan.enabled)
		return (0);
	if (req != NULL) {
		req->virus_only = 1;
		memset(&req->spam, 0, sizeof(req->spam));
	}
	TAILQ_FOREACH(r, &s->rcpts, entry) {
		if ((a = action_find(env, r->action)) == NULL)
			return (-1);
		if (!(a->flags & ACTION_SCAN))
			continue;
		scanned = 1;
		if (req == NULL || a->scan_virus_only)
			continue;
		req->virus_only = 0;
		l = a->spam.set ? &a->spam : &env->scan.spam;
		if (l->set && (!req->spam.set || l->reject < req->spam.reject))
			req->spam = *l;
	}
	return (scanned);
}

/* Grey's facts depend on the client, its HELO and the sender. */
int
data_facts_for_this(const struct smtp_session *s)
{
	return (strcmp(s->facts_helo, s->helo) == 0 &&
	    strcmp(s->facts_sender, s->sender) == 0);
}

/*
 * At DATA, so that grey's DNS work overlaps the body.  Our own
 * authenticated users are not scored on their address, and a session
 * keeps what it learnt for its next message from the same sender.
 */
void
data_ask_facts(struct smtp_session *s)
{
	if (s->auth_user[0] != '\0' || data_scan_levels(s, NULL) != 1 ||
	    s->facts_pending || (s->facts_known && data_facts_for_this(s)))
		return;
	s->facts_known = 0;
	(void)strlcpy(s->facts_helo, s->helo, sizeof(s->facts_helo));
	(void)strlcpy(s->facts_sender, s->sender, sizeof(s->facts_sender));
	if (smtp_send_grey_facts(s) == -1) {
		log_debug("session %u: grey unavailable for facts", s->id);
		return;
	}
	s->facts_pending = 1;
}

void
smtp_session_facts(struct smtp_session *s, const struct grey_facts *facts)
{
	s->facts_pending = 0;
	s->facts = *facts;
	s->facts_known = 1;
	if (s->wait != SMTP_WAIT_FACTS)
		return;
	s->wait = SMTP_WAIT_NONE;
	data_scan(s);
	session_continue(s);
}

void
data_scan(struct smtp_session *s)
{
	struct scan_request	 req;

	if (s->scan_late) {
		log_info("session %u: not scanned: the scan process has not "
		    "answered for an earlier message", s->id);
		data_scan_tempfail(s, "451 4.3.0 Scanner unavailable, try "
		    "again later");
		return;
	}
	memset(&req, 0, sizeof(req));
	if (data_scan_levels(s, &req) != 1) {
		/* A reload between the end of DATA and now. */
		data_scan_tempfail(s, "451 4.3.0 Configuration changing, try "
		    "again later");
		return;
	}
	req.size = s->body_size;
	req.client = s->peer;
	(void)strlcpy(req.helo, s->helo, sizeof(req.helo));
	(void)strlcpy(req.sender, s->sender, sizeof(req.sender));
	req.nrcpt = s->nrcpt;
	if (s->tls_state == SMTP_TLS_ON)
		req.flags |= ENVELOPE_TLS;
	if (s->auth_user[0] != '\0')
		req.flags |= ENVELOPE_AUTH;
	if (s->facts_known && data_facts_for_this(s) &&
	    s->auth_user[0] == '\0') {
		req.facts_known = 1;
		req.facts = s->facts;
	}
	req.received_len = s->received_len;
	if (smtp_send_scan(s, &req) == -1) {
		log_warnx("session %u: scan process unavailable", s->id);
		data_scan_tempfail(s, "451 4.3.0 Scanner unavailable, try "
		    "again later");
		return;
	}
	s->wait = SMTP_WAIT_SCAN;
	session_timer_reset(s);
}

void
data_scan_tempfail(struct smtp_session *s, const char *reply)
{
	smtp_stats.scan_tempfail++;
	session_reply(s, "%s", reply);
	data_answered(s);
}

void
smtp_session_scanned(struct smtp_session *s, const struct scan_result *res)
{
	char	 reason[sizeof(res->reason)];

	s->wait = SMTP_WAIT_NONE;
	evtimer_del(&s->timer);
	sanitize(reason, res->reason, sizeof(reason));
	switch (res->verdict) {
	case SCAN_PASS:
	case SCAN_QUARANTINE:
		if (data_edit(s, res) == -1) {
			data_scan_tempfail(s, "451 4.3.0 Temporary failure, "
			    "try again later");
			break;
		}
		if (res->verdict == SCAN_QUARANTINE) {
			smtp_stats.quarantined++;
			log_info("session %u: quarantined, score %.1f, from "
			    "<%s>", s->id, res->score, s->sender);
		} else
			log_debug("session %u: scanned clean, score %.1f%s",
			    s->id, res->score, res->tagged ? ", tagged" : "");
		data_queue(s, res->verdict == SCAN_QUARANTINE ?
		    ENVELOPE_QUARANTINE : 0);
		break;
	case SCAN_TEMPFAIL:
		log_info("session %u: scan failed (%s) for a message from "
		    "<%s>", s->id, reason, s->sender);
		data_scan_tempfail(s, "451 4.3.0 Scanner unavailable, try "
		    "again later");
		break;
	default:
		data_scan_refuse(s, res, reason);
		break;
	}
	session_continue(s);
}

/* The scan's refusals: what the log says, and what the client is told. */
static const struct {
	enum scan_verdict	 verdict;
	const char		*what;
	const char		*reply;		/* the reason follows if ": " */
} scan_refusals[] = {
	{ SCAN_VIRUS,		"virus",	"554 5.7.1 Virus found: " },
	{ SCAN_BANNED,		"banned attachment",
	    "554 5.7.1 Banned attachment: " },
	{ SCAN_SPAM,		"spam",	"550 5.7.1 Message considered spam" },
	{ SCAN_BAD_HEADER,	"bad headers",
	    "554 5.6.0 Message has bad headers: " },
	{ SCAN_LIMIT,		"not scannable",
	    "554 5.7.1 Message could not be scanned" }
};

static void
data_scan_refuse(struct smtp_session *s, const struct scan_result *res,
    const char *reason)
{
	size_t	 i, len;

	for (i = 0; i < sizeof(scan_refusals) / sizeof(scan_refusals[0]); i++)
		if (scan_refusals[i].verdict == res->verdict)
			break;
	if (i == sizeof(scan_refusals) / sizeof(scan_refusals[0]))
		fatalx("scan verdict %d", res->verdict);
	log_info("session %u: %s%s%s from <%s>, score %.1f", s->id,
	    scan_refusals[i].what, reason[0] != '\0' ? " " : "", reason,
	    s->sender, res->score);
	smtp_stats.scan_rejected++;
	len = strlen(scan_refusals[i].reply);
	if (len >= 2 && strcmp(scan_refusals[i].reply + len - 2, ": ") == 0)
		session_reply(s, "%s%s", scan_refusals[i].reply,
		    reason[0] != '\0' ? reason : "unknown");
	else
		session_reply(s, "%s", scan_refusals[i].reply);
	data_answered(s);
}

/*
 * The scanner's header edits make a new body.  The bodies-in-memory
 * budget counts both for as long as both exist.
 */
static int
data_edit(struct smtp_session *s, const struct scan_result *res)
{
	uint64_t	 newsize;
	int		 fd;

	if (res->headers[0] == '\0' && res->subject_prefix[0] == '\0' &&
	    !res->strip_spam_headers)
		return (0);
	if (smtp_body_bytes + s->body_size + message_edit_bound(res) >
	    SMTP_BODY_BUDGET) {
		log_warnx("session %u: message bodies in memory over %llu "
		    "bytes; message refused", s->id,
		    (unsigned long long)SMTP_BODY_BUDGET);
		return (-1);
	}
	if ((fd = message_apply_scan(s->body_fd, s->body_size,
	    s->received_len, res, &newsize)) == -1) {
		log_warn("session %u: the scanner's header edits", s->id);
		return (-1);
	}
	(void)close(s->body_fd);
	s->body_fd = fd;
	smtp_body_bytes += newsize;
	smtp_body_bytes -= s->body_size;
	s->body_size = newsize;
	return (0);
}

/* The scan process or grey died: nobody waits for them. */
void
smtp_session_peer_lost(struct smtp_session *s, enum smarthost_proc peer)
{
	if (peer == PROC_GREY) {
		s->facts_pending = 0;
		if (s->wait != SMTP_WAIT_FACTS)
			return;
		s->wait = SMTP_WAIT_NONE;
		evtimer_del(&s->timer);
		data_scan(s);
	} else {
		s->scan_late = 0;
		if (s->wait != SMTP_WAIT_SCAN)
			return;
		log_warnx("session %u: the scan process is gone", s->id);
		s->wait = SMTP_WAIT_NONE;
		evtimer_del(&s->timer);
		data_scan_tempfail(s, "451 4.3.0 Scanner unavailable, try "
		    "again later");
	}
	session_continue(s);
}
