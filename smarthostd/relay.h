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
 * The relay engine, the outbound SMTP client of the queue process:
 * relay.c takes the scheduler's jobs and gives them to connections
 * (setup, destinations, results); relay_conn.c makes and keeps the
 * connections (DNS, connect, I/O, timeouts, TLS, errors); relay_smtp.c
 * speaks SMTP over them (replies, EHLO, STARTTLS, AUTH, transactions,
 * the body).
 */

#ifndef RELAY_H
#define RELAY_H

#define RELAY_CONN_MESSAGES	100	/* transactions, then a new one */
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

struct relay_cmd_info {
	const char	*name;		/* for "in reply to" */
	time_t		 timeout;
};

enum conn_phase {
	PHASE_RESOLVE,		/* waiting to start or for DNS */
	PHASE_CONNECT,		/* TCP connect in progress */
	PHASE_SETUP,		/* greeting, EHLO, STARTTLS, AUTH */
	PHASE_READY,		/* in a transaction, or idle */
	PHASE_QUIT
};

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
TAILQ_HEAD(relay_dests_pending, relay_dest);

/* The CA bundles of tls verify, by name (the action's). */
struct relay_ca {
	TAILQ_ENTRY(relay_ca)	 entry;
	char			 name[NAME_MAX_LEN];
	struct tls_config	*cfg;
};

/* relay.c */
extern struct relay_dests_pending dests_pending;
extern struct relay_conns	 conns_dead;
extern int			 nconn_total;
extern time_t			 timeout_max;
extern int			 shutting_down;
extern struct tls_config	*tls_cfg_verify, *tls_cfg_any;
extern struct relay_stats	 stats_total;
void	 relay_kick(void);
struct relay_ca *relay_ca_find(const char *);
void	 dest_defer_waiting(struct relay_dest *, struct relay_conn *);
void	 job_result(struct relay_job *, size_t, enum relay_status,
	    int, const char *, const char *);
void	 job_all(struct relay_job *, enum relay_status, int,
	    const char *, const char *);
void	 job_finish(struct relay_job *, struct relay_dest *);
int	 target_equal(const struct relay_target *,
	    const struct relay_target *);

/* relay_conn.c */
void	 conn_new(struct relay_dest *, struct relay_job *);
void	 conn_update(struct relay_conn *);
int	 conn_flush(struct relay_conn *);
void	 conn_timer(struct relay_conn *, time_t);
void	 conn_timer_expect(struct relay_conn *);
void	 conn_tls_start(struct relay_conn *);
int	 conn_tls_required(const struct relay_conn *);
void	 conn_fail(struct relay_conn *, const char *, ...)
	    __attribute__((__format__(printf, 2, 3)));
void	 conn_error(struct relay_conn *, int, const char *);
void	 conn_quit(struct relay_conn *);
void	 conn_close(struct relay_conn *);
void	 conn_free(struct relay_conn *);
void	 conn_next(struct relay_conn *);

/* relay_smtp.c */
extern const struct relay_cmd_info relay_cmds[];
void	 conn_cmd(struct relay_conn *, enum relay_cmd, size_t,
	    const char *, ...)
	    __attribute__((__format__(printf, 4, 5)));
void	 conn_process(struct relay_conn *);
void	 conn_send_ehlo(struct relay_conn *, enum relay_cmd);
void	 txn_start(struct relay_conn *);
void	 txn_abort(struct relay_conn *);
void	 body_fill(struct relay_conn *);
void	 text_clean(char *, size_t, const char *, size_t);

#endif /* RELAY_H */
