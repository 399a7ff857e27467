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

#ifndef SMARTHOSTD_H
#define SMARTHOSTD_H

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/tree.h>
#include <sys/socket.h>

#include <netinet/in.h>

#include <event.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>
#include <time.h>

#include "compat.h"
#include "imsg.h"

#define SMARTHOSTD_VERSION	"0.1.0"

/*
 * The control protocol version.  smarthostctl sends it first; any change
 * to an IMSG_CTL_* payload bumps it.
 */
#define CONTROL_VERSION		7

#define SMARTHOSTD_CONF		"/etc/smarthostd.conf"
#define SMARTHOSTD_STATE	"/var/smarthostd"
#define SMARTHOSTD_SOCKET	"/var/run/smarthostd.sock"
#define SMARTHOSTD_PIDFILE	"/var/run/smarthostd.pid"
#define SMARTHOSTD_USER		"_smarthostd"
#define SMARTHOSTD_SCAN_USER	"_smarthostd_scan"
#define SMARTHOSTD_EMPTY	"/var/empty"	/* chroot of smtp, control */

/* Every process talks to the parent on this descriptor after re-exec. */
#define PROC_PARENT_FD		3

/* Between our own processes; smarthostctl keeps the imsg default. */
#define PROC_IMSG_MAXSIZE	(64 * 1024)
#define PROC_ENVELOPE_MAXSIZE	(8 * 1024 * 1024)	/* smtp <-> queue */

#define NAME_MAX_LEN		64	/* table, action, blocklist names */
#define HOSTNAME_LEN		256
#define USERNAME_LEN		33
#define MESSAGE_LEN		512
#define TABLE_LINE_MAX		4096
#define TABLE_ENTRY_MAX		1024	/* key or value */
#define PKI_FILE_MAX		(30 * 1024)	/* fits one imsg */
#define CA_FILE_MAX		(4 * 1024 * 1024)

#define CONTROL_MAX_CLIENTS_PER_UID	16

enum smarthost_proc {
	PROC_PARENT,
	PROC_SMTP,
	PROC_GREY,
	PROC_SCAN,
	PROC_QUEUE,
	PROC_PF,
	PROC_CONTROL,
	PROC_MAX
};

enum imsg_type {
	/* Control protocol: IMSG_CTL_VERSION must keep its value forever. */
	IMSG_CTL_VERSION = 1,
	IMSG_CTL_OK,
	IMSG_CTL_FAIL,
	IMSG_CTL_END,
	IMSG_CTL_SHOW_STATUS,
	IMSG_CTL_STATUS,
	IMSG_CTL_STATUS_PROC,
	IMSG_CTL_RELOAD,
	IMSG_CTL_LOG_VERBOSE,
	IMSG_CTL_SHOW_QUEUE,
	IMSG_CTL_QUEUE_MESSAGE,
	IMSG_CTL_QUEUE_RCPT,
	IMSG_CTL_SHOW_MESSAGE,
	IMSG_CTL_MESSAGE_TEXT,
	IMSG_CTL_REMOVE,
	IMSG_CTL_SHOW_STATS,
	IMSG_CTL_STAT,
	IMSG_CTL_PAUSE_SMTP,
	IMSG_CTL_RESUME_SMTP,
	IMSG_CTL_SCHEDULE,
	IMSG_CTL_PAUSE_RELAY,
	IMSG_CTL_RESUME_RELAY,
	IMSG_CTL_SHOW_GREYLIST,		/* int grey_list_kind */
	IMSG_CTL_GREY_ENTRY,		/* struct ctl_grey_entry */
	IMSG_CTL_GREY_WHITE,		/* string: address */
	IMSG_CTL_GREY_DELETE,		/* string: address or tuple */
	IMSG_CTL_TRAP_ADD,		/* string: spamtrap address */
	IMSG_CTL_TRAP_DELETE,
	IMSG_CTL_SHOW_TABLES,
	IMSG_CTL_TABLE_INFO,		/* struct ctl_table_info */
	IMSG_CTL_UPDATE_TABLE,		/* string: table or list name */
	IMSG_CTL_EXPLAIN,		/* string: address */
	IMSG_CTL_TEXT,			/* string: one line of output */
	IMSG_CTL_SHOW_QUARANTINE,	/* answered as SHOW_QUEUE is */
	IMSG_CTL_QUARANTINE_RELEASE,	/* string: message id */
	IMSG_CTL_QUARANTINE_DELETE,	/* string: message id */
	IMSG_CTL_BACKUP,		/* string: absolute archive path */

	/* Process plumbing. */
	IMSG_PROC_PEER = 100,
	IMSG_PROC_CONTROL_SOCKET,

	/* Listeners: parent -> smtp, struct listener with the socket. */
	IMSG_SMTP_LISTENER = 150,
	IMSG_SMTP_LISTENERS_DONE,
	/* smtp -> parent: struct auth_request; parent -> smtp: int ok */
	IMSG_SMTP_AUTH,
	IMSG_SMTP_AUTH_RESULT,

	/* smtp -> queue: an encoded envelope with the body's fd. */
	IMSG_QUEUE_MESSAGE = 170,
	/* queue -> smtp: struct queue_result */
	IMSG_QUEUE_RESULT,
	/* queue -> smtp: int, 1 while the state dir has its free reserve */
	IMSG_QUEUE_DISK_OK,

	/* smtp -> grey at connect: struct grey_connect; id = session */
	IMSG_GREY_CONNECT = 180,
	IMSG_GREY_CONNECT_RESULT,	/* struct grey_connect_result */
	/* smtp -> grey at RCPT: struct grey_check; id = session */
	IMSG_GREY_CHECK,
	IMSG_GREY_CHECK_RESULT,		/* struct grey_check_result */
	/* queue -> grey: string, a domain the relay delivered to by MX */
	IMSG_GREY_LEARN,
	/* parent -> grey: a blocklist's file, string name, with the fd */
	IMSG_GREY_LIST_FILE,
	/* parent -> grey: string name: that list's file cannot be opened */
	IMSG_GREY_LIST_MISSING,
	/* smtp -> grey at DATA: struct grey_check, rcpt empty; id = session */
	IMSG_GREY_FACTS,
	IMSG_GREY_FACTS_RESULT,		/* struct grey_facts */

	/* smtp -> scan: struct scan_request with the body's fd; id = session */
	IMSG_SCAN_MESSAGE = 196,
	IMSG_SCAN_RESULT,		/* struct scan_result */

	/* grey -> pf: one table's whole contents, in parts (a resync) */
	IMSG_PF_TABLE_START = 190,	/* int enum firewall_table */
	IMSG_PF_TABLE_ADDRS,		/* struct fw_entry[] */
	IMSG_PF_TABLE_END,		/* int enum firewall_table */
	/* grey -> pf: additions and deletions since, batched */
	IMSG_PF_CHANGES,		/* struct fw_entry[] */
	/* smtp -> grey: a failed AUTH, struct grey_connect; id = session */
	IMSG_GREY_AUTH_FAILED,

	/* Configuration transfer, two-phase. */
	IMSG_CONF_START = 200,
	IMSG_CONF_GLOBALS,
	IMSG_CONF_TABLE,
	IMSG_CONF_TABLE_ENTRY,
	IMSG_CONF_PKI,
	IMSG_CONF_PKI_CERT,	/* to smtp only: PEM of the pki just sent */
	IMSG_CONF_PKI_KEY,	/* to smtp only */
	IMSG_CONF_LISTENER,
	IMSG_CONF_BLOCKLIST,
	IMSG_CONF_DNSBL,
	IMSG_CONF_BANNED_FILE,
	IMSG_CONF_ACTION,
	IMSG_CONF_ACTION_CA,	/* to queue only: the CA bundle, as an fd */
	IMSG_CONF_MATCH,
	IMSG_CONF_END,
	IMSG_CONF_READY,
	IMSG_CONF_FAILED,
	IMSG_CONF_COMMIT,
	IMSG_CONF_ABORT,

	/*
	 * parent -> queue, grey: copy your database into backup/ of the
	 * state directory; the answer is DONE with an empty string, or
	 * FAILED with the reason.
	 */
	IMSG_BACKUP_COPY = 240,
	IMSG_BACKUP_DONE,
	IMSG_BACKUP_FAILED
};

/*
 * Configuration.
 */

struct table_entry {
	RB_ENTRY(table_entry)	 entry;
	char			*key;
	char			*value;		/* NULL when the line has none */
};
RB_HEAD(table_entries, table_entry);
RB_PROTOTYPE(table_entries, table_entry, entry, table_entry_cmp);

enum table_source {
	TABLE_INLINE,
	TABLE_FILE
};

struct table {
	TAILQ_ENTRY(table)	 entry;
	char			 name[NAME_MAX_LEN];
	enum table_source	 source;
	char			 path[PATH_MAX];
	int			 secret;	/* stays in the parent */
	size_t			 count;
	struct table_entries	 entries;
};
TAILQ_HEAD(tables, table);

struct pki {
	TAILQ_ENTRY(pki)	 entry;
	char			 name[HOSTNAME_LEN];
	char			 cert_file[PATH_MAX];
	char			 key_file[PATH_MAX];
	/* Loaded by the parent; only smtp ever receives them. */
	char			*cert;
	size_t			 cert_len;
	char			*key;
	size_t			 key_len;
};
TAILQ_HEAD(pkis, pki);

enum listen_tls {
	LISTEN_PLAIN,		/* no TLS at all */
	LISTEN_STARTTLS,	/* "tls": STARTTLS offered */
	LISTEN_TLS_REQUIRE,	/* "tls-require": STARTTLS before MAIL */
	LISTEN_SMTPS		/* "smtps": implicit TLS */
};

struct listener {
	TAILQ_ENTRY(listener)	 entry;
	char			 on[HOSTNAME_LEN];	/* all, address, ifname */
	in_port_t		 port;			/* host byte order */
	enum listen_tls		 tls;
	char			 pki[HOSTNAME_LEN];
	char			 auth_table[NAME_MAX_LEN];
	char			 hostname[HOSTNAME_LEN];
};
TAILQ_HEAD(listeners, listener);

struct greylist_config {
	int			 enabled;
	time_t			 passtime;
	time_t			 greyexp;
	time_t			 whiteexp;
	time_t			 trapexp;	/* a trapped client, 24h */
	char			 whitelist[NAME_MAX_LEN];
	char			 spf_whitelist[NAME_MAX_LEN];
	time_t			 spf_refresh;
	char			 trap_table[NAME_MAX_LEN];	/* spamtraps */
	int			 ipv6_prefix;	/* IPv6 clients keyed by, 64 */
	uint32_t		 max_entries;	/* grey tuples, 1000000 */
	uint64_t		 map_size;	/* LMDB map of grey.mdb */
};

/* tarpit { ... }: how blocked and trapped clients are answered. */
struct tarpit_config {
	uint32_t		 stutter_ms;	/* per character, 1000 */
	int			 reply_code;	/* 550 or 450 */
	uint32_t		 max_connections;	/* stuttered at once */
};

/* The longest blocklist message: it ends a reply line. */
#define BLOCK_MESSAGE_MAX	400

/*
 * A blocklist file of addresses and networks, or a whitelist file
 * (white set) whose entries are subtracted from every blocklist.
 */
struct blocklist {
	TAILQ_ENTRY(blocklist)	 entry;
	char			 name[NAME_MAX_LEN];
	char			 path[PATH_MAX];
	char			 message[MESSAGE_LEN];	/* "" for a whitelist */
	int			 white;
};
TAILQ_HEAD(blocklists, blocklist);

/* dnsbl "zone" weight N: a negative weight makes it a DNSWL. */
struct dnsbl {
	TAILQ_ENTRY(dnsbl)	 entry;
	char			 zone[HOSTNAME_LEN];
	int			 weight;
};
TAILQ_HEAD(dnsbls, dnsbl);

struct string_entry {
	TAILQ_ENTRY(string_entry) entry;
	char			*value;
};
TAILQ_HEAD(string_list, string_entry);

/* What a scan does when it cannot give a verdict. */
enum scan_fallback {
	SCAN_FALLBACK_TEMPFAIL,		/* 451 4.3.0: the default */
	SCAN_FALLBACK_ACCEPT,		/* as if clean, with a header saying so */
	SCAN_FALLBACK_REJECT		/* 554 5.7.1 (limits only) */
};

/* spam tag N reject M [quarantine Q] [subject "..."] */
struct spam_levels {
	int			 set;		/* scoring is on */
	double			 tag;
	double			 reject;
	double			 quarantine;	/* 0: none */
	char			 subject[64];	/* "" for none */
};

/* The built-in spam rules, each with a score (score NAME N). */
enum scan_rule {
	RULE_SPF_FAIL,		/* SPF fail for the sender's domain */
	RULE_SPF_SOFTFAIL,
	RULE_SPF_PERMERROR,
	RULE_DNSBL,		/* per positive-weight zone that lists it */
	RULE_NO_RDNS,		/* no PTR record */
	RULE_RDNS_MISMATCH,	/* PTR name does not resolve back */
	RULE_HELO_LITERAL,	/* HELO an address literal, not the client's */
	RULE_HELO_BARE,		/* HELO not a dotted name */
	RULE_BAD_HEADER,	/* per bad-header finding */
	RULE_MAX
};

struct scan_config {
	int			 enabled;
	char			 user[USERNAME_LEN];
	char			 clamav_db[PATH_MAX];
	uint32_t		 threads;	/* scanning threads, 2 */
	/* libclamav's limits */
	uint64_t		 max_filesize;	/* 25M */
	uint64_t		 max_scansize;	/* 100M */
	uint32_t		 max_recursion;	/* 16 */
	uint32_t		 max_files;	/* 10000 */
	time_t			 max_scantime;	/* 120s */
	enum scan_fallback	 on_limit;	/* a limit was hit */
	enum scan_fallback	 on_error;	/* no engine, a failure */
	struct spam_levels	 spam;
	char			 spamassassin[PATH_MAX];  /* unix:/p, host:port */
	time_t			 spamassassin_timeout;	/* 30s */
	int			 bad_headers_reject;	/* else they score */
	double			 scores[RULE_MAX];
	struct string_list	 banned_files;
};

enum firewall_kind {
	FIREWALL_NONE,
	FIREWALL_PF,
	FIREWALL_NFTABLES
};

enum firewall_table {
	FW_WHITE,
	FW_TRAP,
	FW_BLOCK,
	FW_SPF_WHITE,
	FW_TABLE_MAX
};

struct firewall_config {
	int			 configured;	/* a firewall statement exists */
	enum firewall_kind	 kind;
	char			 nft_table[NAME_MAX_LEN];	/* "inet name" */
	char			 tables[FW_TABLE_MAX][NAME_MAX_LEN];
	/* Who goes to the block table: block auth-failures N within D for D */
	uint32_t		 block_auth_failures;	/* 0: nobody */
	time_t			 block_auth_within;	/* 10m */
	time_t			 block_auth_for;	/* 1h */
	int			 block_trapped;		/* 1 */
	int			 block_blocklists;	/* 0 */
};

enum relay_scheme {
	RELAY_SMTP,		/* opportunistic STARTTLS */
	RELAY_SMTP_TLS,		/* STARTTLS required */
	RELAY_SMTPS		/* implicit TLS */
};

#define ACTION_RELAY		0x01
#define ACTION_GREYLIST		0x02
#define ACTION_SCAN		0x04
#define ACTION_TLS_VERIFY	0x08
#define ACTION_MAILDIR		0x10

struct action {
	TAILQ_ENTRY(action)	 entry;
	char			 name[NAME_MAX_LEN];
	int			 flags;
	/* relay host: empty relay_host means delivery by MX */
	enum relay_scheme	 relay_scheme;
	char			 relay_host[HOSTNAME_LEN];
	in_port_t		 relay_port;		/* 0: scheme default */
	char			 helo[HOSTNAME_LEN];
	char			 auth_table[NAME_MAX_LEN];
	char			 alias_table[NAME_MAX_LEN];
	char			 maildir[PATH_MAX];
	char			 ca_file[PATH_MAX];	/* tls verify ca; "": system */
	/* scan [virus-only | spam tag N reject M ...]: this action's */
	int			 scan_virus_only;
	struct spam_levels	 spam;		/* set: instead of scan's */
	/* The CA bundle, read by the parent, sent to the queue only. */
	char			*ca_pem;
	size_t			 ca_len;
};
TAILQ_HEAD(actions, action);

/*
 * A match condition: a kind, an optional table or literal, and whether it
 * is negated.  A rule matches when every condition that is set matches.
 */
enum cond_kind {
	COND_UNSET,
	COND_ANY,		/* from any, for any */
	COND_LOCAL,		/* from local, for local */
	COND_TABLE,		/* src <t>, domain <t>, rcpt-to <t>, ... */
	COND_LITERAL		/* src "addr", domain "x", mail-from "@x" */
};

struct match_cond {
	enum cond_kind		 kind;
	int			 negate;
	char			 table[NAME_MAX_LEN];
	char			 literal[HOSTNAME_LEN];
};

struct match_rule {
	TAILQ_ENTRY(match_rule)	 entry;
	struct match_cond	 from;		/* any, local, src */
	struct match_cond	 auth;		/* any authenticated, or <t> */
	struct match_cond	 rcpt_for;	/* any, local, domain */
	struct match_cond	 rcpt_to;
	struct match_cond	 mail_from;
	int			 reject;
	char			 action[NAME_MAX_LEN];
};
TAILQ_HEAD(match_rules, match_rule);

/* smtp { ... }: limits of the SMTP server. */
struct smtp_limits {
	uint64_t		 max_message_size;
	uint32_t		 max_recipients;
	uint32_t		 max_sessions;
	uint32_t		 max_sessions_per_client;
	uint32_t		 max_errors;		/* bad commands, then 421 */
	uint32_t		 max_hops;		/* Received headers */
	uint32_t		 max_auth_failures;	/* per client, then 454 */
	time_t			 command_timeout;
	time_t			 data_timeout;		/* between reads in DATA */
	time_t			 transaction_timeout;	/* MAIL to end of DATA */
};

/* queue { ... }: storage, and how the relay retries and gives up. */
struct queue_config {
	uint64_t		 map_size;	/* LMDB map of queue.mdb */
	uint64_t		 min_free;	/* refuse MAIL below this */
	time_t			 retry_min;	/* first retry after this */
	time_t			 retry_max;	/* intervals double up to this */
	time_t			 lifetime;	/* then bounce */
	time_t			 delay_warning;	/* 0: none */
	time_t			 quarantine_expire;	/* 0: never */
	uint32_t		 max_deliveries;	/* connections, all */
	uint32_t		 max_per_destination;	/* connections, one */
};

struct smarthost_config {
	char			 conffile[PATH_MAX];
	char			 hostname[HOSTNAME_LEN];
	char			 user[USERNAME_LEN];
	char			 state_dir[PATH_MAX];
	char			 control_path[PATH_MAX];
	char			 pidfile[PATH_MAX];
	char			 resolver[HOSTNAME_LEN];	/* numeric */
	in_port_t		 resolver_port;
	struct greylist_config	 greylist;
	struct tarpit_config	 tarpit;
	int			 dnsbl_threshold;	/* 1 */
	struct scan_config	 scan;
	struct firewall_config	 firewall;
	struct smtp_limits	 smtp;
	struct queue_config	 queue;
	struct tables		 tables;
	struct pkis		 pkis;
	struct listeners	 listeners;
	struct blocklists	 blocklists;
	struct dnsbls		 dnsbls;
	struct actions		 actions;
	struct match_rules	 matches;
	struct string_list	 includes;	/* files included, for backup */
};

/*
 * The flat part of the configuration that crosses imsg; lists travel
 * as their own messages.
 */
struct config_globals {
	char			 hostname[HOSTNAME_LEN];
	char			 user[USERNAME_LEN];
	char			 state_dir[PATH_MAX];
	char			 control_path[PATH_MAX];
	char			 pidfile[PATH_MAX];
	char			 resolver[HOSTNAME_LEN];
	in_port_t		 resolver_port;
	struct greylist_config	 greylist;
	struct tarpit_config	 tarpit;
	int			 dnsbl_threshold;
	struct scan_config	 scan;		/* banned_files travel apart */
	struct firewall_config	 firewall;
	struct smtp_limits	 smtp;
	struct queue_config	 queue;
};

/*
 * SMTP limits of RFC 5321 section 4.5.3.1, terminators included where
 * the RFC includes them.
 */
#define SMTP_COMMAND_LINE_MAX	512
#define SMTP_TEXT_LINE_MAX	1000
#define SMTP_LOCALPART_MAX	64
#define SMTP_DOMAIN_MAX		255
#define SMTP_PATH_MAX		256	/* "<" and ">" included */
#define SMTP_ADDR_LEN		(SMTP_PATH_MAX + 1)

#define QUEUE_ID_LEN		17	/* 16 hex digits */

enum rcpt_state {
	RCPT_PENDING,
	RCPT_DELIVERED,
	RCPT_FAILED
};

struct envelope_rcpt {
	char			 addr[SMTP_ADDR_LEN];
	char			 action[NAME_MAX_LEN];
	enum rcpt_state		 state;
	uint32_t		 attempts;
	int64_t			 next_try;
	char			 last_error[MESSAGE_LEN];
};

#define ENVELOPE_8BITMIME	0x01
#define ENVELOPE_TLS		0x02
#define ENVELOPE_AUTH		0x04
#define ENVELOPE_BOUNCE		0x08	/* a DSN we made: never bounced */
#define ENVELOPE_DELAY_WARNED	0x10	/* the delay DSN has gone out */
#define ENVELOPE_QUARANTINE	0x20	/* held: not relayed until released */

/*
 * A message's envelope.  On disk and across imsg it is a versioned,
 * length-prefixed binary record (envelope.c); nothing trusts it before
 * envelope_decode() has checked every field.
 */
struct envelope {
	char			 id[QUEUE_ID_LEN];
	int64_t			 arrived;
	uint32_t		 flags;
	uint64_t		 body_size;
	char			 sender[SMTP_ADDR_LEN];	/* "" for <> */
	char			 client_addr[64];
	char			 client_name[HOSTNAME_LEN];
	char			 helo[HOSTNAME_LEN];
	char			 auth_user[USERNAME_LEN * 8];
	uint32_t		 nrcpt;
	struct envelope_rcpt	*rcpts;
};

enum queue_status {
	QUEUE_OK,
	QUEUE_TEMPFAIL,		/* 451 4.3.0 */
	QUEUE_NOSPACE		/* 452 4.3.1: disk or map full */
};

/* queue -> smtp, imsg id = the smtp session. */
struct queue_result {
	enum queue_status	 status;
	char			 id[QUEUE_ID_LEN];
};

#define AUTH_USER_MAX		256
#define AUTH_PASSWORD_MAX	256

/* smtp -> parent, imsg id = the smtp session. */
struct auth_request {
	char			 table[NAME_MAX_LEN];
	char			 user[AUTH_USER_MAX];
	char			 password[AUTH_PASSWORD_MAX];
};

/*
 * smtp <-> grey.  Addresses travel as the session has them; grey keys
 * clients itself (IPv6 by its prefix).
 */
struct grey_connect {
	struct sockaddr_storage	 client;
};

enum grey_client {
	GREY_CLIENT_NONE,	/* nothing known: greylisting applies */
	GREY_CLIENT_BLOCKED,	/* a blocklist or the DNSBL score: tarpit */
	GREY_CLIENT_TRAPPED	/* hit a spamtrap lately: tarpit */
};

struct grey_connect_result {
	enum grey_client	 client;
	char			 list[NAME_MAX_LEN];	/* which list */
	char			 message[MESSAGE_LEN];	/* %A replaced */
};

struct grey_check {
	struct sockaddr_storage	 client;
	char			 helo[HOSTNAME_LEN];
	char			 sender[SMTP_ADDR_LEN];	/* "" for <> */
	char			 rcpt[SMTP_ADDR_LEN];
};

enum grey_verdict {
	GREY_PASS,		/* accept the recipient */
	GREY_GREYLISTED,	/* 451 4.7.1, try again later */
	GREY_TRAPPED,		/* a spamtrap: tarpit with message */
	GREY_TEMPFAIL		/* database full or broken: 451 */
};

struct grey_check_result {
	enum grey_verdict	 verdict;
	char			 reason[64];	/* for the log: "white", ... */
	char			 message[MESSAGE_LEN];	/* GREY_TRAPPED */
};

/* What grey knows of a client at DATA, for scoring and headers. */
enum rdns_status {
	RDNS_UNKNOWN,		/* not looked up, or no answer in time */
	RDNS_NONE,		/* no PTR record */
	RDNS_MISMATCH,		/* the PTR name does not resolve back */
	RDNS_OK			/* forward-confirmed */
};

struct grey_facts {
	int			 spf;		/* enum spf_verdict */
	char			 spf_domain[HOSTNAME_LEN];	/* checked */
	int			 dnsbl_score;
	int			 dnsbl_hits;	/* positive zones listing it */
	char			 dnsbl_zones[256];
	enum rdns_status	 rdns;
	char			 rdns_name[HOSTNAME_LEN];
};

/*
 * smtp -> scan at the end of DATA.  The body (CRLF lines, our Received
 * header first) is the fd that comes with it: scan reads it, never
 * writes it.
 */
struct scan_request {
	uint64_t		 size;
	struct sockaddr_storage	 client;
	char			 helo[HOSTNAME_LEN];
	char			 sender[SMTP_ADDR_LEN];	/* "" for <> */
	uint32_t		 nrcpt;
	uint32_t		 flags;		/* ENVELOPE_TLS, ENVELOPE_AUTH */
	int			 virus_only;	/* no spam scoring */
	struct spam_levels	 spam;		/* the action's levels */
	int			 facts_known;
	struct grey_facts	 facts;
	uint64_t		 received_len;	/* our Received header's bytes */
};

enum scan_verdict {
	SCAN_PASS,		/* deliver, headers added (tagged or not) */
	SCAN_QUARANTINE,	/* 250, but held in the quarantine */
	SCAN_VIRUS,		/* 554 5.7.1 */
	SCAN_BANNED,		/* 554 5.7.1 */
	SCAN_SPAM,		/* 550 5.7.1 */
	SCAN_BAD_HEADER,	/* 554 5.6.0, with bad-headers reject */
	SCAN_LIMIT,		/* 554 5.7.1, with on-limit reject */
	SCAN_TEMPFAIL		/* 451 4.3.0 */
};

#define SCAN_HEADERS_MAX	4096

/* scan -> smtp, imsg id = the session. */
struct scan_result {
	enum scan_verdict	 verdict;
	double			 score;
	int			 tagged;	/* at or over the tag level */
	char			 reason[MESSAGE_LEN];	/* printable ASCII */
	/* Header lines to add after our Received, each ending in CRLF. */
	char			 headers[SCAN_HEADERS_MAX];
	char			 subject_prefix[64];	/* "" for none */
	int			 strip_spam_headers;	/* incoming X-Spam-* */
};

/* grey -> pf: one address or network of a table. */
struct fw_addr {
	uint8_t			 af;		/* AF_INET, AF_INET6 */
	uint8_t			 prefixlen;
	uint8_t			 addr[16];
};

/* One change to a firewall table, or one entry of a resync. */
struct fw_entry {
	struct fw_addr		 addr;
	uint8_t			 table;		/* enum firewall_table */
	uint8_t			 add;		/* 1: add, 0: delete */
	uint16_t		 reserved;
	uint32_t		 timeout;	/* seconds left; 0: none */
};

/* smarthostctl show greylist [grey|white|trap|block] */
enum grey_list_kind {
	GREY_LIST_ALL,
	GREY_LIST_GREY,
	GREY_LIST_WHITE,
	GREY_LIST_TRAP,		/* trapped clients and spamtrap addresses */
	GREY_LIST_BLOCK		/* blocklist entries and blocked clients */
};

/*
 * One entry of show greylist, spamdb's fields.  type is "GREY",
 * "WHITE", "TRAPPED", "SPAMTRAP", "BLOCK", "BLOCKED", "SPFWHITE" or
 * "LEARNED";
 * unused strings are empty, unused times zero.
 */
struct ctl_grey_entry {
	char			 type[16];
	char			 key[HOSTNAME_LEN];	/* client, /64, spf:dom */
	char			 helo[HOSTNAME_LEN];
	char			 sender[SMTP_ADDR_LEN];
	char			 rcpt[SMTP_ADDR_LEN];
	char			 list[NAME_MAX_LEN];	/* BLOCK: its list */
	int64_t			 first;
	int64_t			 pass;
	int64_t			 expire;
	uint32_t		 blocked;	/* attempts refused */
	uint32_t		 passed;	/* deliveries let through */
};

/* One table or list of show tables. */
struct ctl_table_info {
	char			 name[NAME_MAX_LEN];
	char			 kind[16];	/* table, blocklist, whitelist, */
						/* spf-white, white, trap ... */
	char			 source[PATH_MAX];	/* file, or "" */
	uint64_t		 count;
	int64_t			 loaded;	/* 0: never */
	int64_t			 firewall_count; /* kind "firewall": -1 unknown */
};

/* One message in smarthostctl show queue. */
struct ctl_queue_message {
	char			 id[QUEUE_ID_LEN];
	int64_t			 arrived;
	uint64_t		 size;
	char			 sender[SMTP_ADDR_LEN];
	uint32_t		 nrcpt;
	uint32_t		 flags;		/* ENVELOPE_* */
};

/* One recipient of the message sent just before it. */
struct ctl_queue_rcpt {
	char			 addr[SMTP_ADDR_LEN];
	char			 action[NAME_MAX_LEN];
	enum rcpt_state		 state;
	uint32_t		 attempts;
	int64_t			 next_try;
	char			 last_error[MESSAGE_LEN];
};

/* One counter of smarthostctl show stats: "process.name value". */
struct ctl_stat {
	char			 name[64];
	uint64_t		 value;
};

/*
 * Processes.
 */

struct imsgev {
	struct imsgbuf		 ibuf;
	struct event		 ev;
	enum smarthost_proc	 peer;
	void			(*handler)(struct imsgev *, struct imsg *);
};

/* Status of one process as the parent reports it to smarthostctl. */
struct ctl_proc_status {
	char			 name[16];
	pid_t			 pid;
	char			 state[16];
};

struct ctl_status {
	char			 version[32];
	char			 conffile[PATH_MAX];
	time_t			 started;
	time_t			 now;
	int			 verbose;
	int			 privsep;
	time_t			 config_loaded;
};

struct ctl_result {
	int			 ok;
	char			 message[MESSAGE_LEN];
};

/* Globals set up by main and proc. */
extern struct smarthost_config	*env;
extern enum smarthost_proc	 smarthost_process;
extern struct imsgev		*iev_peer[PROC_MAX];
extern int			 proc_exit_deferred;	/* set by shutdown */

/* config.c */
struct smarthost_config *config_new(void);
void	 config_free(struct smarthost_config *);
void	 config_set_defaults(struct smarthost_config *);
struct table *table_find(struct smarthost_config *, const char *);
struct table *table_new(const char *);
int	 table_add(struct table *, const char *, const char *);
void	 table_free(struct table *);
int	 table_load_file(struct table *, char *, size_t);
struct action *action_find(struct smarthost_config *, const char *);
struct pki *pki_find(struct smarthost_config *, const char *);
int	 pki_load(struct pki *, char *, size_t);
void	 pki_free(struct pki *);
int	 string_list_add(struct string_list *, const char *);
void	 config_send(struct imsgev *, struct smarthost_config *,
	    enum smarthost_proc);
int	 config_recv(struct smarthost_config **, struct imsg *);
int	 config_check_secret_file(const char *, char *, size_t);
const char *config_firewall_name_error(enum firewall_kind, const char *);
int	 table_entry_cmp(struct table_entry *, struct table_entry *);
void	 config_error(const char *, ...)
	    __attribute__((__format__(printf, 1, 2)));
void	 config_errors_reset(void);
void	 config_errors_first(char *, size_t);

/* parse.y */
struct smarthost_config *parse_config(const char *);
int	 cmdline_symset(char *);

/* printconf.c */
void	 print_config(FILE *, struct smarthost_config *);
const char *duration_fmt(time_t, char *, size_t);

/* log.c */
void	 log_init(int, int);
void	 log_procinit(const char *);
int	 log_on_stderr(void);
void	 log_setverbose(int);
int	 log_getverbose(void);
void	 log_warn(const char *, ...) __attribute__((__format__(printf, 1, 2)));
void	 log_warnx(const char *, ...) __attribute__((__format__(printf, 1, 2)));
void	 log_info(const char *, ...) __attribute__((__format__(printf, 1, 2)));
void	 log_debug(const char *, ...) __attribute__((__format__(printf, 1, 2)));
void	 vlog(int, const char *, va_list)
	    __attribute__((__format__(printf, 2, 0)));
void	 logit(int, const char *, ...)
	    __attribute__((__format__(printf, 2, 3)));
void	 fatal(const char *, ...) __attribute__((__noreturn__))
	    __attribute__((__format__(printf, 1, 2)));
void	 fatalx(const char *, ...) __attribute__((__noreturn__))
	    __attribute__((__format__(printf, 1, 2)));

/* proc.c */
struct proc_handlers {
	/* messages from the parent that proc.c does not handle itself */
	void	(*parent)(struct imsgev *, struct imsg *);
	/* messages from peer children */
	void	(*peer)(struct imsgev *, struct imsg *);
	/* may the new configuration be taken?  -1 and a reason if not */
	int	(*config_check)(struct smarthost_config *, char *, size_t);
	/* env is the new configuration; the argument the old one */
	void	(*config_commit)(struct smarthost_config *);
	/*
	 * SIGTERM from the parent: finish what must be finished.  The
	 * process exits on return unless the handler set
	 * proc_exit_deferred, in which case it calls exit() itself.
	 */
	void	(*shutdown)(void);
	/* a peer child's socket arrived: it can be talked to (may be NULL) */
	void	(*peer_up)(enum smarthost_proc);
	/* a peer child's socket closed: it died (may be NULL) */
	void	(*peer_lost)(enum smarthost_proc);
};

const char *proc_name(enum smarthost_proc);
int	 proc_from_name(const char *);
int	 proc_talks_to(enum smarthost_proc, enum smarthost_proc);
int	 proc_link_count(void);
void	 proc_link(int, enum smarthost_proc *, enum smarthost_proc *);
pid_t	 proc_exec_child(enum smarthost_proc, const char *, int, int, int,
	    const char *, const char *);
void	 proc_child_start(enum smarthost_proc, const char *, const char *)
	    __attribute__((__noreturn__));
void	 proc_child_run(const struct proc_handlers *)
	    __attribute__((__noreturn__));
void	 proc_child_dispatch_parent(struct imsgev *, struct imsg *);
void	 proc_drop_privileges(const char *, const char *, int);
int	 proc_privsep(void);
void	 imsgev_init(struct imsgev *, int, enum smarthost_proc,
	    void (*)(struct imsgev *, struct imsg *));
void	 imsgev_update(struct imsgev *);
int	 imsgev_compose(struct imsgev *, uint32_t, uint32_t, pid_t, int,
	    const void *, size_t);
void	 imsgev_clear(struct imsgev *);
void	 imsg_expect_size(struct imsg *, size_t);
char	*imsg_expect_string(struct imsg *);
void	 proc_ctl_send(uint32_t, uint32_t, const void *, size_t);
void	 proc_ctl_result(uint32_t, int, const char *, ...)
	    __attribute__((__format__(printf, 3, 4)));
void	 proc_ctl_stat(uint32_t, const char *, uint64_t);

/* parent.c */
int	 parent_main(int, int, const char *, const char *);
void	 parent_reply(uint32_t, int, const char *);
struct imsgev *parent_child(enum smarthost_proc);

/* backup.c */
void	 backup_init(void);
void	 backup_start(uint32_t, const char *);
void	 backup_answer(struct imsgev *, struct imsg *);
void	 backup_abort(void);
void	 backup_reaped(pid_t, int);

/* smtp.c, grey.c, scan.c, queue.c, pfctl.c, control.c */
void	 smtp_main(void) __attribute__((__noreturn__));
void	 grey_main(void) __attribute__((__noreturn__));
void	 scan_main(void) __attribute__((__noreturn__));
void	 queue_main(void) __attribute__((__noreturn__));
void	 pfctl_main(const char *, const char *) __attribute__((__noreturn__));
void	 control_main(void) __attribute__((__noreturn__));

/* scan_score.c: spam scoring and headers, from scan.c's worker threads */
int	 scan_score(const struct scan_config *, const char *,
	    const struct scan_request *, const unsigned char *, size_t,
	    struct scan_result *, char *, size_t);
void	 scan_header_append(struct scan_result *, const char *, const char *);

/* mailaddr.c */
#define MAILADDR_SYNTAX		(-1)
#define MAILADDR_TOO_LONG	(-2)
#define MAILADDR_ROUTE		(-3)
#define MAILADDR_RELAY_FORM	(-4)
#define MAILADDR_NONASCII	(-5)
#define MAILADDR_NULL_OK	0x01	/* "<>" allowed: MAIL FROM */
#define MAILADDR_POSTMASTER	0x02	/* "<postmaster>" allowed: RCPT TO */
int	 mailaddr_parse_path(const char *, char *, size_t, const char **, int);
int	 mailaddr_valid(const char *);
const char *mailaddr_domain(const char *);
const char *mailaddr_strerror(int);

/* ruleset.c */
struct rule_context {
	const struct sockaddr_storage	*client;
	const char			*auth_user;	/* NULL: none */
	const char			*sender;	/* "" for <> */
	const char			*rcpt;
	const char			*local_name;	/* our hostname */
};
const struct match_rule *ruleset_match(struct smarthost_config *,
	    const struct rule_context *);
int	 table_lookup(struct table *, const char *);
int	 table_match_addr(struct table *, const struct sockaddr_storage *);

/* queue.c */
const char *queue_state_path(void);
int	 queue_envelope_load(const char *, struct envelope *);
int	 queue_body_load(const char *, unsigned char **, size_t *);
size_t	 queue_envelope_walk(void (*)(const struct envelope *, void *),
	    void *);
int	 queue_delivery_commit(const struct envelope *, int,
	    const struct envelope *, const unsigned char *, size_t);
int	 queue_quarantine_expire(const char *, char *, size_t);

/* scheduler.c */
void	 scheduler_init(void);
void	 scheduler_config_changed(void);
void	 scheduler_add(const char *);
void	 scheduler_hold(const char *, int64_t);
void	 scheduler_forget(const char *);
size_t	 scheduler_schedule(const char *);
int	 scheduler_pause(int);
void	 scheduler_stats(void (*)(const char *, uint64_t, void *), void *);
void	 scheduler_shutdown(void);

/* envelope.c */
int	 envelope_encode(const struct envelope *, unsigned char **, size_t *);
int	 envelope_decode(const unsigned char *, size_t, struct envelope *);
void	 envelope_clear(struct envelope *);
int	 envelope_id_valid(const char *);
const char *envelope_rcpt_state_name(enum rcpt_state);

/* bounce.c */
int	 bounce_build(const struct envelope *, const unsigned char *, size_t,
	    int, time_t, const char *, time_t, const char *, struct envelope *,
	    unsigned char **, size_t *);

/* util.c */
int	 parse_duration(const char *, time_t *);
int	 parse_size(const char *, uint64_t *);
int	 parse_duration_ms(const char *, uint32_t *);
int	 addr_client_key(const struct sockaddr_storage *, int, char *, size_t);
int	 mkdir_owned(const char *, uid_t, gid_t, mode_t);
const char *wait_status_string(int, char *, size_t);
int	 addr_in_net(const struct sockaddr_storage *, const char *);
int	 addr_is_loopback(const struct sockaddr_storage *);
const char *addr_string(const struct sockaddr_storage *, char *, size_t);

/* relay.c */
#define RELAY_KEY_LEN		(NAME_MAX_LEN + HOSTNAME_LEN + 8)

/* Zero is "deferred": a result never set cannot count as delivered. */
enum relay_status {
	RELAY_DEFERRED,
	RELAY_DELIVERED,
	RELAY_FAILED
};

/* The outcome for one recipient; text is printable ASCII only. */
struct relay_result {
	enum relay_status	 status;
	int			 code;		/* the server's reply, 0: none */
	char			 enhanced[16];	/* RFC 3463 status: "5.1.1" */
	char			 text[MESSAGE_LEN];
};

/*
 * Where a job goes.  Jobs with equal keys share connections, so the key
 * must differ whenever anything else here differs.
 */
struct relay_target {
	char			 key[RELAY_KEY_LEN];	/* action + host/domain */
	char			 domain[HOSTNAME_LEN];	/* MX: rcpts' domain */
	char			 host[HOSTNAME_LEN];	/* "": by MX */
	in_port_t		 port;			/* 0: 25, smtps 465 */
	enum relay_scheme	 scheme;
	int			 tls_verify;		/* implies TLS required */
	char			 helo[HOSTNAME_LEN];	/* "": [our address] */
	char			 ca_name[NAME_MAX_LEN];	/* relay_set_ca()'s, or "" */
	char			 auth_user[AUTH_USER_MAX];	/* "": none */
	char			 auth_password[AUTH_PASSWORD_MAX];
};

/*
 * One message for some of its recipients.  The caller owns every
 * pointer and keeps it valid until done() is called: once, from the
 * event loop, when every results[i] is set.
 */
struct relay_job {
	TAILQ_ENTRY(relay_job)	 entry;
	char			 id[QUEUE_ID_LEN];
	char			 sender[SMTP_ADDR_LEN];	/* "" for <> */
	uint32_t		 flags;			/* ENVELOPE_* */
	size_t			 nrcpt;
	char			(*rcpts)[SMTP_ADDR_LEN];
	struct relay_result	*results;
	const unsigned char	*body;		/* CRLF lines, not dot-stuffed */
	size_t			 body_len;
	void			(*done)(struct relay_job *);
	void			*arg;
};

/* Counters of one destination key, or of all. */
struct relay_stats {
	uint64_t		 connections;	/* TCP connections made */
	uint64_t		 connect_failures;
	uint64_t		 messages;	/* transactions with a 250 */
	uint64_t		 delivered;	/* recipients */
	uint64_t		 deferred;
	uint64_t		 failed;
	uint32_t		 active;	/* connections now */
	uint32_t		 waiting;	/* jobs queued for a connection */
};

void	 relay_init(void);
void	 relay_set_limits(int, int);
void	 relay_set_ca(const char *, const char *, size_t);
void	 relay_clear_cas(void);
void	 relay_set_timeout_max(time_t);
void	 relay_submit(const struct relay_target *, struct relay_job *);
void	 relay_shutdown(void);
void	 relay_stats_total(struct relay_stats *);
void	 relay_stats_walk(void (*)(const char *, const struct relay_stats *,
	    void *), void *);

/* dns.c */
#define DNS_OK			0
#define DNS_TEMPFAIL		1	/* SERVFAIL, timeout, refused */
#define DNS_PERMFAIL		2	/* NXDOMAIN, null MX, no address */
#define DNS_ADDR_MAX		64	/* addresses in one answer */

/* An address to try, with the MX name and preference it came from. */
struct dns_addr {
	struct sockaddr_storage	 ss;		/* port set */
	char			 host[HOSTNAME_LEN];
	uint16_t		 preference;
};

void	 dns_init(const char *, in_port_t);
int	 dns_resolve_mx(const char *, void (*)(void *, int,
	    const struct dns_addr *, size_t), void *);
int	 dns_resolve_host(const char *, in_port_t, void (*)(void *, int,
	    const struct dns_addr *, size_t), void *);
void	 dns_cancel(void *);
const char *dns_reason(void);

/*
 * One question of any type (ns_t_a, ns_t_aaaa, ns_t_txt, ns_t_mx,
 * ns_t_ptr): the records of that type in text form (an address, a TXT
 * record's strings joined, "preference host" for MX, a host for PTR),
 * and the smallest TTL among them.  status is DNS_OK with count 0 for
 * NODATA, DNS_PERMFAIL for NXDOMAIN, DNS_TEMPFAIL otherwise.
 * dns_cancel(arg) cancels it like the other requests.
 */
struct dns_answer {
	int			 status;
	int			 nxdomain;	/* DNS_PERMFAIL: no such name */
	uint32_t		 ttl;
	size_t			 count;
	char			**records;
};
int	 dns_query(const char *, int, void (*)(void *,
	    const struct dns_answer *), void *);

/* spf.c: RFC 7208 through libspf2, its DNS answered from dns.c */
enum spf_verdict {
	SPF_VERDICT_NONE,
	SPF_VERDICT_NEUTRAL,
	SPF_VERDICT_PASS,
	SPF_VERDICT_FAIL,
	SPF_VERDICT_SOFTFAIL,
	SPF_VERDICT_TEMPERROR,
	SPF_VERDICT_PERMERROR
};

void	 spf_init(void);
int	 spf_check(const struct sockaddr_storage *, const char *,
	    const char *, void (*)(void *, enum spf_verdict, const char *),
	    void *);
int	 spf_expand(const char *, void (*)(void *, int, const char *const *,
	    size_t, const char *), void *);
void	 spf_cancel(void *);
const char *spf_verdict_name(enum spf_verdict);

/*
 * addrset.c: sets of IPv4 and IPv6 addresses as sorted, merged ranges.
 * Entries are added in any order; addrset_finish() sorts and merges
 * them, and only a finished set answers addrset_contains().
 */
struct addrset;
struct addrset_loader;

struct addrset *addrset_new(void);
void	 addrset_free(struct addrset *);
int	 addrset_add(struct addrset *, const char *);
int	 addrset_add_sockaddr(struct addrset *, const struct sockaddr_storage *,
	    int);
void	 addrset_finish(struct addrset *);
int	 addrset_contains(const struct addrset *,
	    const struct sockaddr_storage *);
size_t	 addrset_count(const struct addrset *);
struct addrset *addrset_subtract(const struct addrset *,
	    const struct addrset *);
size_t	 addrset_walk(const struct addrset *, void (*)(const struct fw_addr *,
	    void *), void *);
int	 addrset_walk_part(const struct addrset *, size_t *, size_t,
	    void (*)(const struct fw_addr *, void *), void *);
struct addrset_loader *addrset_load_start(int, const char *);
int	 addrset_load_step(struct addrset_loader *, size_t);
struct addrset *addrset_load_finish(struct addrset_loader *, size_t *,
	    char *, size_t);
void	 addrset_load_abort(struct addrset_loader *);

/*
 * greydb.c: grey.mdb and the greylist state machine.  Time is passed in
 * so that the unit test can drive the clock.  Writes collect in one
 * transaction that greydb_commit() ends (grey.c calls it every second).
 */
struct grey_tuple {
	char			 client[HOSTNAME_LEN];	/* key: addr, /64, spf:dom */
	char			 helo[HOSTNAME_LEN];
	char			 sender[SMTP_ADDR_LEN];
	char			 rcpt[SMTP_ADDR_LEN];
};

int	 greydb_open(const char *, uint64_t);
void	 greydb_close(void);
int	 greydb_commit(void);
int	 greydb_backup(const char *, char *, size_t);
enum grey_verdict greydb_check(const struct greylist_config *,
	    const struct grey_tuple *, const char *, time_t);
int	 greydb_white_check(const struct greylist_config *, const char *,
	    time_t, int64_t *);
int	 greydb_white_add(const struct greylist_config *, const char *,
	    time_t);
int	 greydb_trapped(const char *, time_t, int64_t *);
int	 greydb_trap_client(const struct greylist_config *, const char *,
	    time_t);
int	 greydb_block_client(const char *, time_t, time_t);
int	 greydb_spamtrap(const char *);
int	 greydb_spamtrap_set(const char *, int);
int	 greydb_learn(const struct greylist_config *, const char *, time_t);
int	 greydb_learned(const char *, time_t);
int	 greydb_delete(const char *);
size_t	 greydb_expire(time_t, size_t);
struct greydb_walk {
	enum grey_list_kind	 kind;
	int			 stage;		/* zero it to start */
	int			 started;
	size_t			 last_len;
	char			 last[512];
};
int	 greydb_walk_page(struct greydb_walk *, size_t,
	    void (*)(const struct ctl_grey_entry *, void *), void *);
size_t	 greydb_walk_client(const char *,
	    void (*)(const struct ctl_grey_entry *, void *), void *);
uint64_t greydb_count(const char *);
int	 greydb_spf_nets_save(const char *, const char *, size_t, time_t);
int	 greydb_spf_nets_load(const char *, char **, size_t *, time_t *);

#endif /* SMARTHOSTD_H */
