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
 * The SMTP server: smtp.c runs the process (listeners, TLS contexts,
 * sessions by id, counters); smtp_session.c is the per-session state
 * machine; smtp_scan.c takes a message from the end of DATA through
 * grey's facts and the scan process to the queue.
 */

#ifndef SMTP_H
#define SMTP_H

#include <tls.h>

#define SMTP_INBUF_MAX		(64 * 1024)	/* pipelined input */
#define SMTP_OUTBUF_MAX		(64 * 1024)	/* stop reading above this */
#define SMTP_AUTH_LINE_MAX	2048		/* RFC 4954 section 4 */
#define SMTP_READ_CHUNK		(16 * 1024)	/* one TLS record */
#define SMTP_BODY_CHUNK		(64 * 1024)
#define SMTP_AUTH_WINDOW	(15 * 60)	/* failures counted this long */
#define SMTP_CLOSE_GRACE	10		/* to write a last reply */
#define SMTP_QUEUE_WAIT		(5 * 60)	/* for the queue's commit */
#define SMTP_GREY_CONNECT_WAIT	5		/* for grey's word at connect */
#define SMTP_GREY_CHECK_WAIT	10		/* for grey's verdict at RCPT */
#define SMTP_FACTS_WAIT		5		/* for grey's facts, after DATA */
#define SMTP_SCAN_GRACE		60		/* past scan's max-scantime */
/* Message bodies in memory (memfd) at once, all sessions together. */
#define SMTP_BODY_BUDGET	(1024ULL * 1024 * 1024)

enum smtp_state {
	SMTP_GREETING,		/* waiting for HELO/EHLO */
	SMTP_READY,		/* no transaction */
	SMTP_MAIL,		/* MAIL given, RCPT expected */
	SMTP_RCPT,		/* at least one RCPT accepted */
	SMTP_DATA,		/* reading the message */
	SMTP_AUTH_PLAIN,	/* waiting for the PLAIN response */
	SMTP_AUTH_USER,		/* LOGIN: waiting for the user name */
	SMTP_AUTH_PASSWORD,	/* LOGIN: waiting for the password */
	SMTP_QUIT
};

enum smtp_tls_state {
	SMTP_TLS_NONE,
	SMTP_TLS_STARTING,	/* 220 sent; handshake once it is written */
	SMTP_TLS_HANDSHAKE,
	SMTP_TLS_ON
};

/* What the session is waiting for before it reads the next command. */
enum smtp_wait {
	SMTP_WAIT_NONE,
	SMTP_WAIT_AUTH,		/* the parent's password check */
	SMTP_WAIT_QUEUE,	/* the queue's commit */
	SMTP_WAIT_GREY_CONNECT,	/* grey's word on the client: no banner yet */
	SMTP_WAIT_GREY,		/* grey's verdict on a recipient */
	SMTP_WAIT_FACTS,	/* grey's facts on the client, for the scan */
	SMTP_WAIT_SCAN		/* the scan process's verdict on the message */
};

/* Why a message is refused once its final dot arrives. */
enum smtp_data_error {
	DATA_OK,
	DATA_TOO_BIG,
	DATA_LINE_TOO_LONG,
	DATA_BARE_NEWLINE,
	DATA_NUL,
	DATA_TOO_MANY_HOPS,
	DATA_LEADING_FOLD,	/* the header section starts folded */
	DATA_NO_ROOM,		/* bodies in memory over the budget */
	DATA_IO_ERROR
};

struct smtp_rcpt {
	TAILQ_ENTRY(smtp_rcpt)	 entry;
	char			 addr[SMTP_ADDR_LEN];
	char			 action[NAME_MAX_LEN];
};

/* A listening socket as the parent bound it. */
struct smtp_listener {
	struct listener		 conf;
	int			 fd;
	struct event		 ev;
};

struct smtp_session {
	RB_ENTRY(smtp_session)	 entry;
	uint32_t		 id;
	int			 fd;
	struct smtp_listener	*listener;
	struct sockaddr_storage	 peer;
	char			 peer_addr[INET6_ADDRSTRLEN];
	char			 hostname[HOSTNAME_LEN];	/* ours */

	enum smtp_state		 state;
	enum smtp_tls_state	 tls_state;
	enum smtp_wait		 wait;
	struct tls		*tls;
	struct smtp_pki		*pki;		/* held while tls lives */
	struct evbuffer		*in;
	struct evbuffer		*out;
	struct event		 ev;
	struct event		 timer;
	short			 tls_want;	/* POLLIN/POLLOUT from libtls */
	int			 eof;
	int			 closing;	/* flush, then close */
	int			 discard_line;	/* inside an overlong line */
	uint32_t		 errors;
	int			 esmtp;
	char			 helo[HOSTNAME_LEN];
	char			 auth_user[AUTH_USER_MAX];
	char			 auth_login_user[AUTH_USER_MAX];

	/* the transaction */
	char			 sender[SMTP_ADDR_LEN];
	int			 in_transaction;
	uint32_t		 flags;		/* ENVELOPE_* */
	uint64_t		 declared_size;
	TAILQ_HEAD(, smtp_rcpt)	 rcpts;
	uint32_t		 nrcpt;
	char			 msgid[QUEUE_ID_LEN];
	time_t			 transaction_started;

	/* greylisting: the recipient grey is asked about */
	char			 grey_rcpt[SMTP_ADDR_LEN];
	char			 grey_action[NAME_MAX_LEN];
	uint32_t		 grey_late;	/* answers after a timeout */

	/*
	 * Scanning: grey's facts on (client, helo, sender), asked for at
	 * DATA, at most one question at a time; and the scan process's
	 * verdict, likewise.
	 */
	int			 facts_pending;	/* asked, no answer yet */
	int			 facts_known;	/* facts: for these two */
	char			 facts_helo[HOSTNAME_LEN];
	char			 facts_sender[SMTP_ADDR_LEN];
	struct grey_facts	 facts;
	int			 scan_late;	/* gave up on an answer */

	/*
	 * The tarpit: every reply ends the session at RCPT, and while
	 * stutter is set the output goes one byte per tick of the
	 * stutter event.
	 */
	int			 tarpit;
	char			 tarpit_message[BLOCK_MESSAGE_MAX];
	int			 stutter;	/* holds one of smtp.c's slots */
	int			 stutter_credit;	/* bytes that may go now */
	struct event		 stutter_ev;

	/* DATA */
	int			 body_fd;
	char			*body_buf;
	size_t			 body_buflen;
	uint64_t		 body_size;
	enum smtp_data_error	 data_error;
	int			 data_midline;	/* after a discarded chunk */
	int			 in_headers;
	int			 header_seen;	/* a field of the client's */
	uint32_t		 hops;
	uint64_t		 received_len;	/* our Received header */
};

/* Counters for smarthostctl show stats. */
struct smtp_stats {
	uint64_t		 connections;
	uint64_t		 refused_sessions;	/* 421 at connect */
	uint64_t		 sessions_active;
	uint64_t		 sessions_tls;
	uint64_t		 auth_ok;
	uint64_t		 auth_failed;
	uint64_t		 messages_accepted;
	uint64_t		 bytes_accepted;
	uint64_t		 rejected_relay;	/* match rules */
	uint64_t		 rejected_rcpt_limit;
	uint64_t		 rejected_size;
	uint64_t		 rejected_syntax;	/* bad commands, addresses */
	uint64_t		 rejected_data;		/* bare LF, NUL, hops */
	uint64_t		 tempfail_queue;
	uint64_t		 timeouts;
	uint64_t		 greylisted;		/* 451 4.7.1 by grey */
	uint64_t		 grey_passed;
	uint64_t		 grey_tempfail;		/* grey failed or silent */
	uint64_t		 tarpitted;		/* sessions */
	uint64_t		 trapped;		/* spamtrap hits at RCPT */
	uint64_t		 blocked_at_connect;	/* blocked or trapped */
	uint64_t		 scan_rejected;		/* 5xx by the scan */
	uint64_t		 scan_tempfail;		/* 451: scan failed */
	uint64_t		 quarantined;
};

/* smtp.c */
extern struct smtp_stats	 smtp_stats;
extern uint64_t			 smtp_body_bytes;
int	 smtp_disk_ok(void);
int	 smtp_shutting_down(void);
struct smtp_pki *smtp_pki_get(const char *);
void	 smtp_pki_put(struct smtp_pki *);
struct tls *smtp_pki_context(struct smtp_pki *);
void	 smtp_session_register(struct smtp_session *);
void	 smtp_session_unregister(struct smtp_session *);
int	 smtp_auth_blocked(const struct smtp_session *);
void	 smtp_auth_failed(const struct smtp_session *);
void	 smtp_auth_tell_grey(const struct smtp_session *);
int	 smtp_send_auth(struct smtp_session *, const char *, const char *);
int	 smtp_send_message(struct smtp_session *, struct envelope *);
int	 smtp_grey_wanted(void);
int	 smtp_grey_whitelisted(const struct smtp_session *);
int	 smtp_send_grey_connect(struct smtp_session *);
int	 smtp_send_grey_check(struct smtp_session *, const char *);
int	 smtp_send_grey_facts(struct smtp_session *);
int	 smtp_send_scan(struct smtp_session *, const struct scan_request *);
int	 smtp_stutter_acquire(void);
void	 smtp_stutter_release(void);

/* smtp_session.c */
void	 smtp_session_start(int, struct smtp_listener *,
	    const struct sockaddr_storage *, uint32_t);
void	 smtp_session_auth_result(struct smtp_session *, int);
void	 smtp_session_grey_client(struct smtp_session *,
	    const struct grey_connect_result *);
void	 smtp_session_grey_verdict(struct smtp_session *,
	    const struct grey_check_result *);
void	 smtp_session_queued(struct smtp_session *,
	    const struct queue_result *);
void	 smtp_session_shutdown(struct smtp_session *);
int	 smtp_session_busy(const struct smtp_session *);
void	 session_continue(struct smtp_session *);
void	 session_timer_reset(struct smtp_session *);
void	 session_reply(struct smtp_session *, const char *, ...)
	    __attribute__((__format__(printf, 2, 3)));
void	 session_error(struct smtp_session *, const char *, ...)
	    __attribute__((__format__(printf, 2, 3)));
void	 session_close_with(struct smtp_session *, const char *);
void	 session_reset(struct smtp_session *);
void	 sanitize(char *, const char *, size_t);

/* smtp_auth.c */
void	 cmd_auth(struct smtp_session *, char *);
void	 auth_continue(struct smtp_session *, char *);

/* smtp_data.c */
int	 data_start(struct smtp_session *);
int	 data_process(struct smtp_session *);
void	 data_queue(struct smtp_session *, uint32_t);
void	 data_answered(struct smtp_session *);

/* smtp_scan.c */
void	 smtp_session_facts(struct smtp_session *,
	    const struct grey_facts *);
void	 smtp_session_scanned(struct smtp_session *,
	    const struct scan_result *);
void	 smtp_session_peer_lost(struct smtp_session *, enum smarthost_proc);
time_t	 session_scan_deadline(void);
int	 data_scan_levels(const struct smtp_session *, struct scan_request *);
int	 data_facts_for_this(const struct smtp_session *);
void	 data_ask_facts(struct smtp_session *);
void	 data_scan(struct smtp_session *);
void	 data_scan_tempfail(struct smtp_session *, const char *);

/* message.c */
uint64_t message_edit_bound(const struct scan_result *);
int	 message_scan_result_valid(const struct scan_result *);
int	 message_apply_scan(int, uint64_t, uint64_t, const struct scan_result *,
	    uint64_t *);

#endif /* SMTP_H */
