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

%{
#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <netinet/in.h>
#include <arpa/inet.h>
#include <net/if.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smarthostd.h"

#define INCLUDE_DEPTH_MAX	8

/* Free the parser's stack after each parse, as a reload parses again. */
#define YY_NO_LEAKS

/*
 * Markers around a macro's value in the pushback buffer.  They lie
 * outside the range of getc() so that no byte of a file can fake one.
 */
#define START_EXPAND		0x100
#define DONE_EXPAND		0x101

TAILQ_HEAD(files, file);
static struct files		 files = TAILQ_HEAD_INITIALIZER(files);
static struct file {
	TAILQ_ENTRY(file)	 entry;
	FILE			*stream;
	char			*name;
	dev_t			 dev;
	ino_t			 ino;
	int			*ungetbuf;
	size_t			 ungetpos;
	size_t			 ungetsize;
	int			 lastc;		/* last byte read */
	int			 eof_reached;
	int			 newline_pending;
	int			 lineno;
} *file, *topfile;

static struct file	*pushfile(const char *, char *, size_t);
static int		 popfile(void);
static int		 yylex(void);
static int		 yyerror(const char *, ...)
			    __attribute__((__format__(printf, 1, 2)));
static void		 yyerror_at(const char *, int, const char *, ...)
			    __attribute__((__format__(printf, 3, 4)));
static void		 syntax_error(const char *);
static int		 kw_cmp(const void *, const void *);
static int		 lookup(const char *);
static int		 igetc(void);
static int		 lgetc(int);
static void		 lungetc(int);
static int		 findeol(void);
static int		 allowed_in_string(int);
static int		 expand_macro(void);

#define YYERROR_CALL(msg)	syntax_error(msg)

TAILQ_HEAD(symhead, sym);
static struct symhead	 symhead = TAILQ_HEAD_INITIALIZER(symhead);
struct sym {
	TAILQ_ENTRY(sym)	 entry;
	int			 persist;
	char			*nam;
	char			*val;
};
static int		 symset(const char *, const char *, int);
static const char	*symget(const char *);
static void		 symclear(void);

/*
 * Every string the lexer hands to the grammar lives in this arena until
 * the parse ends.  Error recovery discards tokens without running any
 * action, so this is what keeps a bad configuration from leaking.
 */
struct parse_string {
	SLIST_ENTRY(parse_string) entry;
	char			 data[];
};
static SLIST_HEAD(, parse_string) strings = SLIST_HEAD_INITIALIZER(strings);
static char		*pstrdup(const char *);
static void		 pstrings_free(void);

/* Where each pki was first named, for the check at the end. */
struct pki_origin {
	TAILQ_ENTRY(pki_origin)	 entry;
	struct pki		*pki;
	char			*file;
	int			 lineno;
	int			 cert_lineno;
	int			 key_lineno;
	int			 failed;	/* a file error is reported */
};
static TAILQ_HEAD(, pki_origin) pki_origins =
    TAILQ_HEAD_INITIALIZER(pki_origins);

static struct smarthost_config	*conf;
static int			 errors;
static int			 expanding;

/* Statements with options in any order are gathered here first. */
static struct listener	 lopts;
static int		 lopts_set;
static struct action	 aopts;
static int		 aopts_set;
static int		 aopts_ok;
static int		 aopts_auth_lineno;
static struct match_rule mrule;
static int		 grey_set;
static int		 scan_set;
static int		 scan_limits_set;
static int		 scan_scores_set;
static struct spam_levels slevels;
static int		 slevels_set;
/* The first action with scan, checked against the scan block at the end. */
static char		*scan_action_file;
static int		 scan_action_lineno;
static char		 scan_action_name[NAME_MAX_LEN];
static int		 fw_set;
static int		 smtp_block_set;
static int		 smtp_set;
static int		 queue_block_set;
static int		 queue_set;
static int		 tarpit_block_set;
static int		 tarpit_set;
static int		 dnsbl_threshold_set;
static struct string_list pending_list =
    TAILQ_HEAD_INITIALIZER(pending_list);

/* What a statement has set so far, to refuse an option given twice. */
#define LOPT_PORT	0x01
#define LOPT_TLS	0x02
#define LOPT_PKI	0x04
#define LOPT_AUTH	0x08
#define LOPT_HOSTNAME	0x10
#define AOPT_HOST	0x01
#define AOPT_VERIFY	0x02
#define AOPT_HELO	0x04
#define AOPT_AUTH	0x08
#define AOPT_ALIAS	0x10
#define GOPT_PASSTIME	0x01
#define GOPT_GREYEXP	0x02
#define GOPT_WHITEEXP	0x04
#define GOPT_WHITELIST	0x08
#define GOPT_SPFWHITE	0x10
#define GOPT_TRAPEXP	0x20
#define GOPT_TRAP	0x40
#define GOPT_IPV6PREFIX	0x80
#define GOPT_MAXENTRIES	0x100
#define GOPT_MAPSIZE	0x200
#define TOPT_STUTTER	0x01
#define TOPT_REPLY	0x02
#define TOPT_MAXCONN	0x04
#define SOPT_CLAMAV	0x01
#define SOPT_SPAM	0x02
#define SOPT_BANNED	0x04
#define SOPT_USER	0x08
#define SOPT_THREADS	0x10
#define SOPT_LIMITS	0x20
#define SOPT_ONLIMIT	0x40
#define SOPT_ONERROR	0x80
#define SOPT_SPAMD	0x100
#define SOPT_BADHEADERS	0x200
#define SLOPT_FILESIZE	0x01
#define SLOPT_SCANSIZE	0x02
#define SLOPT_RECURSION	0x04
#define SLOPT_FILES	0x08
#define SLOPT_SCANTIME	0x10
#define POPT_QUARANTINE	0x01
#define POPT_SUBJECT	0x02
#define FOPT_NFTTABLE	0x100		/* above the 1 << FW_* bits */
#define FOPT_AUTHFAIL	0x200
#define FOPT_TRAPPED	0x400
#define FOPT_BLOCKLISTS	0x800
#define MOPT_MSGSIZE	0x001
#define MOPT_RCPTS	0x002
#define MOPT_SESSIONS	0x004
#define MOPT_PERCLIENT	0x008
#define MOPT_ERRORS	0x010
#define MOPT_HOPS	0x020
#define MOPT_AUTHFAIL	0x040
#define MOPT_CMDTIME	0x080
#define MOPT_DATATIME	0x100
#define MOPT_TRANSTIME	0x200
#define QOPT_MAPSIZE	0x01
#define QOPT_MINFREE	0x02
#define QOPT_RETRYMIN	0x04
#define QOPT_RETRYMAX	0x08
#define QOPT_LIFETIME	0x10
#define QOPT_DELAYWARN	0x20
#define QOPT_DELIVERIES	0x40
#define QOPT_PERDEST	0x80
#define QOPT_QUAREXPIRE	0x100

#define KBYTE		1024LL
#define MBYTE		(1024LL * KBYTE)
#define GBYTE		(1024LL * MBYTE)
#define TBYTE		(1024LL * GBYTE)

#define MINUTE		60
#define HOUR		(60 * MINUTE)
#define DAY		(24 * HOUR)

/* Where each listener was written, for the checks at the end. */
struct listener_origin {
	TAILQ_ENTRY(listener_origin) entry;
	struct listener		*listener;
	char			*file;
	int			 lineno;
	int			 auth;		/* auth was given */
};
static TAILQ_HEAD(, listener_origin) listener_origins =
    TAILQ_HEAD_INITIALIZER(listener_origins);

static int	 set_string(char *, size_t, const char *, const char *);
static int	 set_path(char *, size_t, const char *, const char *);
static int	 valid_name(const char *);
static int	 valid_hostname(const char *);
static int	 valid_address(const char *, int);
static struct table *table_ref(const char *);
static struct table *table_define(const char *, int);
static void	 table_file(const char *, const char *);
static int	 table_secret(struct table *);
static void	 pki_set(const char *, const char *, int, int);
static void	 listener_begin(const char *);
static void	 listener_finish(int);
static void	 listener_tls(enum listen_tls);
static void	 check_listeners(void);
static void	 check_map_size(int);
static int	 option_once(int *, int, const char *);
static void	 set_count(uint32_t *, int64_t, const char *, int64_t,
		    int64_t);
static void	 set_size(uint64_t *, int64_t, const char *, int64_t,
		    int64_t, const char *);
static void	 set_timeout(time_t *, time_t, const char *, time_t,
		    const char *);
static void	 set_duration(time_t *, time_t, const char *, time_t,
		    time_t, const char *);
static void	 check_queue(int);
static int	 check_readable_file(const char *, char *, size_t);
static int	 valid_maildir(const char *);
static void	 check_relay_auth(struct table *, const char *, int);
static void	 check_aliases(struct table *);
static void	 blocklist_add(const char *, const char *, const char *,
		    int, int);
static int	 check_block_message(const char *, const char *, int);
static void	 dnsbl_add(const char *, int64_t, int);
static void	 action_begin(const char *);
static void	 action_finish(void);
static int	 parse_relay_url(const char *, struct action *);
static void	 match_cond(struct match_cond *, const char *, int, int,
		    enum cond_kind, const char *);
static void	 match_finish(void);
static void	 firewall_begin(enum firewall_kind);
static void	 firewall_table(int, const char *, const char *);
static const char *firewall_name_taken(int, const char *);
static void	 nft_table(const char *);
static void	 string_list_clear(struct string_list *);
static void	 spam_levels_finish(void);
static int	 valid_spamd(const char *);
static void	 scan_action(int);
static void	 check_scan_actions(void);
static void	 check_pkis(void);

typedef struct {
	union {
		int64_t			 number;
		char			*string;
		double			 decimal;
		time_t			 duration;
	} v;
	int lineno;
} YYSTYPE;

%}

%token	ACTION ALIAS ALL ANY AUTH BANNEDFILES BLOCK BLOCKLIST CERT
%token	CLAMAV CONTROL DATABASE DOMAIN FILENAME FIREWALL FOR FROM GREYEXP
%token	GREYLIST HELO HOST HOSTNAME INCLUDE KEY LISTEN LOCAL MAILDIR
%token	MAILFROM MATCH MESSAGE NFTABLES NONE ON PASSTIME PF PIDFILE PKI
%token	PORT RCPTTO REFRESH REJECT RELAY RESOLVER SCAN SET SMTPS SOCKET
%token	SPAM SPFWHITE SPFWHITELIST SRC STATE TABLE TAG TLS TLSREQUIRE TRAP
%token	USER VERIFY WHITE WHITEEXP WHITELIST
%token	SMTP QUEUE MAXMESSAGESIZE MAXRECIPIENTS MAXSESSIONS
%token	MAXSESSIONSPERCLIENT MAXERRORS MAXHOPS MAXAUTHFAILURES
%token	COMMANDTIMEOUT DATATIMEOUT TRANSACTIONTIMEOUT MAPSIZE MINFREE
%token	RETRYMIN RETRYMAX LIFETIME DELAYWARNING OFF MAXDELIVERIES
%token	MAXPERDESTINATION CA QUARANTINEEXPIRE NEVER
%token	TRAPEXP IPV6PREFIX MAXENTRIES TARPIT STUTTER REPLY MAXCONNECTIONS
%token	DNSBL WEIGHT THRESHOLD
%token	THREADS LIMITS MAXFILESIZE MAXSCANSIZE MAXRECURSION MAXFILES
%token	MAXSCANTIME ONLIMIT ONERROR TEMPFAIL ACCEPT QUARANTINE SUBJECT
%token	SPAMASSASSIN TIMEOUT BADHEADERS SCORE VIRUSONLY
%token	SPFFAIL SPFSOFTFAIL SPFPERMERROR NORDNS RDNSMISMATCH HELOLITERAL
%token	HELOBARE BADHEADER
%token	AUTHFAILURES WITHIN TRAPPED BLOCKLISTS YES NO
%token	ERROR
%token	<v.string>	STRING TABLEREF
%token	<v.number>	NUMBER
%type	<v.string>	strnum blockmsg cafile
%type	<v.number>	port resolverport negation fwtable size signed
%type	<v.number>	msduration weight fallback scorerule scanmode yesno
%type	<v.duration>	duration refresh spamdtimeout authwithin authfor
%type	<v.decimal>	decimal

%%

grammar		: /* empty */
		| grammar '\n'
		| grammar include '\n'
		| grammar varset '\n'
		| grammar main '\n'
		| grammar error '\n'		{ yyerrok; }
		;

include		: INCLUDE STRING		{
			struct file	*nfile;
			char		 path[PATH_MAX], errbuf[128];
			const char	*slash;
			int		 n;

			if ($2[0] == '/' ||
			    (slash = strrchr(file->name, '/')) == NULL)
				n = snprintf(path, sizeof(path), "%s", $2);
			else
				n = snprintf(path, sizeof(path), "%.*s/%s",
				    (int)(slash - file->name), file->name, $2);
			if (n < 0 || (size_t)n >= sizeof(path))
				yyerror("include path too long");
			else if ((nfile = pushfile(path, errbuf,
			    sizeof(errbuf))) == NULL)
				yyerror("include \"%s\": %s", path, errbuf);
			else {
				if (string_list_add(&conf->includes, path) == -1)
					fatal("include");
				file = nfile;
				lungetc('\n');
			}
		}
		;

strnum		: STRING
		| NUMBER			{
			char	 buf[32];

			(void)snprintf(buf, sizeof(buf), "%" PRId64, $1);
			$$ = pstrdup(buf);
		}
		;

varset		: STRING '=' strnum		{
			const char	*s;

			for (s = $1; *s != '\0'; s++)
				if (!isalnum((unsigned char)*s) && *s != '_')
					break;
			if (*s != '\0' || s == $1)
				yyerror("invalid macro name \"%s\"", $1);
			else if (symset($1, $3, 0) == -1)
				fatal("cannot store macro");
		}
		;

optnl		: '\n' optnl
		| /* empty */
		;

nl		: '\n' optnl
		;

comma		: ',' optnl
		| optnl
		;

port		: NUMBER			{
			if ($1 < 1 || $1 > 65535) {
				yyerror("invalid port %" PRId64, $1);
				$$ = 0;
			} else
				$$ = $1;
		}
		;

duration	: STRING			{
			if (parse_duration($1, &$$) == -1) {
				yyerror("invalid duration \"%s\"", $1);
				$$ = -1;
			}
		}
		| NUMBER			{
			char	 buf[32];

			(void)snprintf(buf, sizeof(buf), "%" PRId64, $1);
			if (parse_duration(buf, &$$) == -1) {
				yyerror("invalid duration \"%s\"", buf);
				$$ = -1;
			}
		}
		;

size		: STRING			{
			uint64_t	 n;
			size_t		 digits = strspn($1, "0123456789");

			/* Too large to parse is out of every range. */
			if (parse_size($1, &n) == 0)
				$$ = n;
			else if (digits > 0 && ($1[digits] == '\0' ||
			    (strchr("KkMmGg", $1[digits]) != NULL &&
			    $1[digits + 1] == '\0')))
				$$ = INT64_MAX;
			else {
				yyerror("invalid size \"%s\"", $1);
				$$ = -1;
			}
		}
		| NUMBER			{
			char		 buf[32];
			uint64_t	 n;

			(void)snprintf(buf, sizeof(buf), "%" PRId64, $1);
			if (parse_size(buf, &n) == -1)
				$$ = INT64_MAX;
			else
				$$ = n;
		}
		;

decimal		: NUMBER			{ $$ = (double)$1; }
		| STRING			{
			char	*end;

			errno = 0;
			$$ = strtod($1, &end);
			if (end == $1 || *end != '\0' || errno == ERANGE ||
			    !isfinite($$)) {
				yyerror("invalid number \"%s\"", $1);
				$$ = 0;
			}
		}
		;

/* A number that may be negative: "-5" is read as a string. */
signed		: NUMBER
		| STRING			{
			const char	*errstr;

			if ($1[0] != '-' || $1[1] < '0' || $1[1] > '9') {
				yyerror("invalid number \"%s\"", $1);
				$$ = INT64_MIN;
			} else {
				$$ = strtonum($1, -INT64_MAX, 0, &errstr);
				if (errstr != NULL) {
					yyerror("number %s is %s", $1, errstr);
					$$ = INT64_MIN;
				}
			}
		}
		;

/* A duration in milliseconds, "250ms" or as duration takes; -1: invalid. */
msduration	: STRING			{
			uint32_t	 ms;

			if (parse_duration_ms($1, &ms) == -1) {
				yyerror("invalid duration \"%s\"", $1);
				$$ = -1;
			} else
				$$ = ms;
		}
		| NUMBER			{
			char		 buf[32];
			uint32_t	 ms;

			(void)snprintf(buf, sizeof(buf), "%" PRId64, $1);
			if (parse_duration_ms(buf, &ms) == -1) {
				yyerror("invalid duration \"%s\"", buf);
				$$ = -1;
			} else
				$$ = ms;
		}
		;

main		: HOSTNAME STRING		{
			if (!valid_hostname($2))
				yyerror("invalid hostname \"%s\"", $2);
			else
				(void)set_string(conf->hostname,
				    sizeof(conf->hostname), $2, "hostname");
		}
		| USER STRING			{
			if ($2[0] == '\0')
				yyerror("empty user name");
			else
				(void)set_string(conf->user,
				    sizeof(conf->user), $2, "user name");
		}
		| STATE STRING			{
			(void)set_path(conf->state_dir,
			    sizeof(conf->state_dir), $2, "state directory");
		}
		| CONTROL SOCKET STRING		{
			struct sockaddr_un	 sun;

			if (set_path(conf->control_path,
			    sizeof(conf->control_path), $3,
			    "control socket") == 0 &&
			    strlen($3) >= sizeof(sun.sun_path))
				yyerror("control socket path too long");
		}
		| PIDFILE STRING		{
			(void)set_path(conf->pidfile, sizeof(conf->pidfile),
			    $2, "pidfile");
		}
		| RESOLVER STRING resolverport	{
			if (!valid_address($2, 0))
				yyerror("invalid resolver address \"%s\"", $2);
			else {
				(void)set_string(conf->resolver,
				    sizeof(conf->resolver), $2, "resolver");
				conf->resolver_port = $3;
			}
		}
		| PKI STRING CERT STRING	{
			pki_set($2, $4, 0, $<lineno>1);
		}
		| PKI STRING KEY STRING		{
			pki_set($2, $4, 1, $<lineno>1);
		}
		| TABLE STRING FILENAME STRING	{
			table_file($2, $4);
		}
		| TABLE STRING stringlist	{
			struct table		*t;
			struct string_entry	*s;

			if ((t = table_define($2, TABLE_INLINE)) != NULL) {
				TAILQ_FOREACH(s, &pending_list, entry)
					if (table_add(t, s->value, NULL) == -1)
						yyerror("table %s: \"%s\": %s",
						    $2, s->value,
						    strerror(errno));
			}
			string_list_clear(&pending_list);
		}
		| listen
		| smtp
		| queue
		| greylist
		| BLOCKLIST STRING FILENAME STRING blockmsg {
			blocklist_add($2, $4, $5, 0, $<lineno>1);
		}
		| WHITELIST STRING FILENAME STRING {
			blocklist_add($2, $4, NULL, 1, $<lineno>1);
		}
		| tarpit
		| DNSBL STRING weight		{
			dnsbl_add($2, $3, $<lineno>1);
		}
		| DNSBL THRESHOLD NUMBER	{
			if (dnsbl_threshold_set)
				yyerror("dnsbl threshold specified twice");
			dnsbl_threshold_set = 1;
			if ($3 < 1 || $3 > 1000)
				yyerror("dnsbl threshold must be between 1 "
				    "and 1000");
			else
				conf->dnsbl_threshold = $3;
		}
		| scan
		| firewall
		| action
		| match
		;

resolverport	: /* empty */			{ $$ = 53; }
		| PORT port			{ $$ = $2; }
		;

liststart	: '{'				{
			string_list_clear(&pending_list);
		}
		;

stringlist	: liststart optnl strentries '}'
		| liststart optnl strentries error '}' { yyerrok; }
		;

strentries	: /* empty */
		| strentries strnum comma	{
			if (string_list_add(&pending_list, $2) == -1)
				fatal("string_list_add");
		}
		| strentries error nl		{ yyerrok; }
		;

listen		: LISTEN ON listenon listenopts	{
			listener_finish($<lineno>1);
		}
		;

listenon	: ALL				{ listener_begin("all"); }
		| STRING			{
			listener_begin($1);
			if (!valid_address($1, 0) && ($1[0] == '\0' ||
			    strlen($1) >= IFNAMSIZ || strchr($1, '/') != NULL))
				yyerror("invalid address or interface \"%s\"",
				    $1);
		}
		;

listenopts	: /* empty */
		| listenopts listenopt
		;

listenopt	: PORT port			{
			if (lopts_set & LOPT_PORT)
				yyerror("port specified twice");
			lopts_set |= LOPT_PORT;
			lopts.port = $2;
		}
		| TLS				{
			listener_tls(LISTEN_STARTTLS);
		}
		| TLSREQUIRE			{
			listener_tls(LISTEN_TLS_REQUIRE);
		}
		| SMTPS				{
			listener_tls(LISTEN_SMTPS);
		}
		| PKI STRING			{
			if (lopts_set & LOPT_PKI)
				yyerror("pki specified twice");
			lopts_set |= LOPT_PKI;
			if ($2[0] == '\0')
				yyerror("invalid pki name \"\"");
			else
				(void)set_string(lopts.pki, sizeof(lopts.pki),
				    $2, "pki name");
		}
		| AUTH TABLEREF			{
			struct table	*t;

			if (lopts_set & LOPT_AUTH)
				yyerror("auth specified twice");
			lopts_set |= LOPT_AUTH;
			if ((t = table_ref($2)) != NULL &&
			    table_secret(t) == 0)
				(void)strlcpy(lopts.auth_table, $2,
				    sizeof(lopts.auth_table));
		}
		| HOSTNAME STRING		{
			if (lopts_set & LOPT_HOSTNAME)
				yyerror("hostname specified twice");
			lopts_set |= LOPT_HOSTNAME;
			if (!valid_hostname($2))
				yyerror("invalid hostname \"%s\"", $2);
			else
				(void)set_string(lopts.hostname,
				    sizeof(lopts.hostname), $2, "hostname");
		}
		;

smtp		: smtphead optnl smtpopts '}'	{
			struct smtp_limits	*l = &conf->smtp;

			/*
			 * The per-client limit follows a lower max-sessions
			 * unless it was given; given, it must fit.
			 */
			if (l->max_sessions_per_client > l->max_sessions) {
				if (smtp_set & MOPT_PERCLIENT)
					yyerror_at(file->name, $<lineno>1,
					    "max-sessions-per-client must not "
					    "exceed max-sessions");
				else
					l->max_sessions_per_client =
					    l->max_sessions;
			}
			if (queue_block_set)
				check_map_size($<lineno>1);
		}
		| smtphead optnl smtpopts error '}' { yyerrok; }
		;

smtphead	: SMTP '{'			{
			if (smtp_block_set)
				yyerror("smtp specified twice");
			smtp_block_set = 1;
			smtp_set = 0;
		}
		;

smtpopts	: /* empty */
		| smtpopts smtpopt optnl
		| smtpopts error nl		{ yyerrok; }
		;

smtpopt		: MAXMESSAGESIZE size		{
			if (option_once(&smtp_set, MOPT_MSGSIZE,
			    "max-message-size"))
				set_size(&conf->smtp.max_message_size, $2,
				    "max-message-size", KBYTE, GBYTE,
				    "1K and 1G");
		}
		| MAXRECIPIENTS NUMBER		{
			if (option_once(&smtp_set, MOPT_RCPTS,
			    "max-recipients"))
				set_count(&conf->smtp.max_recipients, $2,
				    "max-recipients", 1, 10000);
		}
		| MAXSESSIONS NUMBER		{
			if (option_once(&smtp_set, MOPT_SESSIONS,
			    "max-sessions"))
				set_count(&conf->smtp.max_sessions, $2,
				    "max-sessions", 1, 100000);
		}
		| MAXSESSIONSPERCLIENT NUMBER	{
			if (option_once(&smtp_set, MOPT_PERCLIENT,
			    "max-sessions-per-client"))
				set_count(&conf->smtp.max_sessions_per_client,
				    $2, "max-sessions-per-client", 1, 100000);
		}
		| MAXERRORS NUMBER		{
			if (option_once(&smtp_set, MOPT_ERRORS, "max-errors"))
				set_count(&conf->smtp.max_errors, $2,
				    "max-errors", 1, 1000);
		}
		| MAXHOPS NUMBER		{
			if (option_once(&smtp_set, MOPT_HOPS, "max-hops"))
				set_count(&conf->smtp.max_hops, $2,
				    "max-hops", 1, 1000);
		}
		| MAXAUTHFAILURES NUMBER	{
			if (option_once(&smtp_set, MOPT_AUTHFAIL,
			    "max-auth-failures"))
				set_count(&conf->smtp.max_auth_failures, $2,
				    "max-auth-failures", 1, 1000);
		}
		| COMMANDTIMEOUT duration	{
			if (option_once(&smtp_set, MOPT_CMDTIME,
			    "command-timeout"))
				set_timeout(&conf->smtp.command_timeout, $2,
				    "command-timeout", 3600, "1h");
		}
		| DATATIMEOUT duration		{
			if (option_once(&smtp_set, MOPT_DATATIME,
			    "data-timeout"))
				set_timeout(&conf->smtp.data_timeout, $2,
				    "data-timeout", 3600, "1h");
		}
		| TRANSACTIONTIMEOUT duration	{
			if (option_once(&smtp_set, MOPT_TRANSTIME,
			    "transaction-timeout"))
				set_timeout(&conf->smtp.transaction_timeout,
				    $2, "transaction-timeout", 86400, "1d");
		}
		;

queue		: queuehead optnl queueopts '}'	{
			check_map_size($<lineno>1);
			check_queue($<lineno>1);
		}
		| queuehead optnl queueopts error '}' { yyerrok; }
		;

queuehead	: QUEUE '{'			{
			if (queue_block_set)
				yyerror("queue specified twice");
			queue_block_set = 1;
			queue_set = 0;
		}
		;

queueopts	: /* empty */
		| queueopts queueopt optnl
		| queueopts error nl		{ yyerrok; }
		;

queueopt	: MAPSIZE size			{
			if (option_once(&queue_set, QOPT_MAPSIZE, "map-size"))
				set_size(&conf->queue.map_size, $2,
				    "map-size", MBYTE, TBYTE, "1M and 1024G");
		}
		| MINFREE size			{
			if (option_once(&queue_set, QOPT_MINFREE, "min-free"))
				set_size(&conf->queue.min_free, $2,
				    "min-free", 0, TBYTE, "0 and 1024G");
		}
		| RETRYMIN duration		{
			if (option_once(&queue_set, QOPT_RETRYMIN,
			    "retry-min"))
				set_duration(&conf->queue.retry_min, $2,
				    "retry-min", 1, DAY, "1s and 1d");
		}
		| RETRYMAX duration		{
			if (option_once(&queue_set, QOPT_RETRYMAX,
			    "retry-max"))
				set_duration(&conf->queue.retry_max, $2,
				    "retry-max", 1, 7 * DAY, "1s and 7d");
		}
		| LIFETIME duration		{
			if (option_once(&queue_set, QOPT_LIFETIME, "lifetime"))
				set_duration(&conf->queue.lifetime, $2,
				    "lifetime", MINUTE, 30 * DAY,
				    "1m and 30d");
		}
		| DELAYWARNING duration		{
			if (option_once(&queue_set, QOPT_DELAYWARN,
			    "delay-warning"))
				set_duration(&conf->queue.delay_warning, $2,
				    "delay-warning", 1, 30 * DAY,
				    "1s and 30d");
		}
		| DELAYWARNING OFF		{
			if (option_once(&queue_set, QOPT_DELAYWARN,
			    "delay-warning"))
				conf->queue.delay_warning = 0;
		}
		| QUARANTINEEXPIRE duration	{
			if (option_once(&queue_set, QOPT_QUAREXPIRE,
			    "quarantine-expire"))
				set_duration(&conf->queue.quarantine_expire,
				    $2, "quarantine-expire", 1, 365 * DAY,
				    "1s and 365d");
		}
		| QUARANTINEEXPIRE NEVER	{
			if (option_once(&queue_set, QOPT_QUAREXPIRE,
			    "quarantine-expire"))
				conf->queue.quarantine_expire = 0;
		}
		| MAXDELIVERIES NUMBER		{
			if (option_once(&queue_set, QOPT_DELIVERIES,
			    "max-deliveries"))
				set_count(&conf->queue.max_deliveries, $2,
				    "max-deliveries", 1, 10000);
		}
		| MAXPERDESTINATION NUMBER	{
			if (option_once(&queue_set, QOPT_PERDEST,
			    "max-per-destination"))
				set_count(&conf->queue.max_per_destination, $2,
				    "max-per-destination", 1, 1000);
		}
		;

greylist	: greyhead optnl greyopts '}'	{
			if (conf->greylist.passtime >= 0 &&
			    conf->greylist.passtime >= conf->greylist.greyexp)
				yyerror_at(file->name, $<lineno>1,
				    "greylist: passtime must be shorter than "
				    "greyexp");
		}
		| greyhead optnl greyopts error '}' { yyerrok; }
		;

greyhead	: GREYLIST '{'			{
			if (conf->greylist.enabled)
				yyerror("greylist specified twice");
			conf->greylist.enabled = 1;
			grey_set = 0;
		}
		;

greyopts	: /* empty */
		| greyopts greyopt optnl
		| greyopts error nl		{ yyerrok; }
		;

greyopt		: PASSTIME duration		{
			if (option_once(&grey_set, GOPT_PASSTIME, "passtime"))
				conf->greylist.passtime = $2;
		}
		| GREYEXP duration		{
			if (option_once(&grey_set, GOPT_GREYEXP, "greyexp"))
				conf->greylist.greyexp = $2;
		}
		| WHITEEXP duration		{
			if (option_once(&grey_set, GOPT_WHITEEXP, "whiteexp"))
				conf->greylist.whiteexp = $2;
		}
		| TRAPEXP duration		{
			if (option_once(&grey_set, GOPT_TRAPEXP, "trapexp"))
				set_duration(&conf->greylist.trapexp, $2,
				    "trapexp", 1, 365 * DAY, "1s and 365d");
		}
		| TRAP TABLEREF			{
			if (option_once(&grey_set, GOPT_TRAP, "trap") &&
			    table_ref($2) != NULL)
				(void)strlcpy(conf->greylist.trap_table, $2,
				    sizeof(conf->greylist.trap_table));
		}
		| IPV6PREFIX NUMBER		{
			if (!option_once(&grey_set, GOPT_IPV6PREFIX,
			    "ipv6-prefix"))
				;
			else if ($2 < 16 || $2 > 128)
				yyerror("ipv6-prefix must be between 16 and "
				    "128");
			else
				conf->greylist.ipv6_prefix = $2;
		}
		| MAXENTRIES NUMBER		{
			if (option_once(&grey_set, GOPT_MAXENTRIES,
			    "max-entries"))
				set_count(&conf->greylist.max_entries, $2,
				    "max-entries", 1, 100000000);
		}
		| MAPSIZE size			{
			if (option_once(&grey_set, GOPT_MAPSIZE, "map-size"))
				set_size(&conf->greylist.map_size, $2,
				    "map-size", MBYTE, TBYTE, "1M and 1024G");
		}
		| WHITELIST TABLEREF		{
			if (grey_set & GOPT_WHITELIST)
				yyerror("whitelist specified twice");
			grey_set |= GOPT_WHITELIST;
			if (table_ref($2) != NULL)
				(void)strlcpy(conf->greylist.whitelist, $2,
				    sizeof(conf->greylist.whitelist));
		}
		| SPFWHITELIST TABLEREF refresh	{
			if (grey_set & GOPT_SPFWHITE)
				yyerror("spf-whitelist specified twice");
			grey_set |= GOPT_SPFWHITE;
			if (table_ref($2) != NULL)
				(void)strlcpy(conf->greylist.spf_whitelist, $2,
				    sizeof(conf->greylist.spf_whitelist));
			if ($3 != -1)
				conf->greylist.spf_refresh = $3;
		}
		;

refresh		: /* empty */			{ $$ = -1; }
		| REFRESH duration		{
			if ($2 == 0) {
				yyerror("refresh must not be zero");
				$$ = -1;
			} else
				$$ = $2;
		}
		;

blockmsg	: /* empty */			{ $$ = NULL; }
		| MESSAGE STRING		{ $$ = $2; }
		;

tarpit		: tarpithead optnl tarpitopts '}'
		| tarpithead optnl tarpitopts error '}' { yyerrok; }
		;

tarpithead	: TARPIT '{'			{
			if (tarpit_block_set)
				yyerror("tarpit specified twice");
			tarpit_block_set = 1;
			tarpit_set = 0;
		}
		;

tarpitopts	: /* empty */
		| tarpitopts tarpitopt optnl
		| tarpitopts error nl		{ yyerrok; }
		;

tarpitopt	: STUTTER msduration		{
			if (!option_once(&tarpit_set, TOPT_STUTTER, "stutter") ||
			    $2 == -1)
				;
			else if ($2 > 10000)
				yyerror("stutter must be between 0 and 10s");
			else
				conf->tarpit.stutter_ms = $2;
		}
		| REPLY NUMBER			{
			if (!option_once(&tarpit_set, TOPT_REPLY, "reply"))
				;
			else if ($2 != 450 && $2 != 550)
				yyerror("reply must be 450 or 550");
			else
				conf->tarpit.reply_code = $2;
		}
		| MAXCONNECTIONS NUMBER		{
			if (option_once(&tarpit_set, TOPT_MAXCONN,
			    "max-connections"))
				set_count(&conf->tarpit.max_connections, $2,
				    "max-connections", 0, 100000);
		}
		;

weight		: /* empty */			{ $$ = 1; }
		| WEIGHT signed			{ $$ = $2; }
		;

scan		: scanhead optnl scanopts '}'
		| scanhead optnl scanopts error '}' { yyerrok; }
		;

scanhead	: SCAN '{'			{
			if (conf->scan.enabled)
				yyerror("scan specified twice");
			conf->scan.enabled = 1;
			scan_set = scan_scores_set = 0;
		}
		;

scanopts	: /* empty */
		| scanopts scanopt optnl
		| scanopts error nl		{ yyerrok; }
		;

scanopt		: CLAMAV DATABASE STRING	{
			if (scan_set & SOPT_CLAMAV)
				yyerror("clamav database specified twice");
			scan_set |= SOPT_CLAMAV;
			(void)set_path(conf->scan.clamav_db,
			    sizeof(conf->scan.clamav_db), $3,
			    "clamav database");
		}
		| SPAM spamlevels		{
			if (scan_set & SOPT_SPAM)
				yyerror("spam levels specified twice");
			scan_set |= SOPT_SPAM;
			conf->scan.spam = slevels;
		}
		| THREADS NUMBER		{
			if (option_once(&scan_set, SOPT_THREADS, "threads"))
				set_count(&conf->scan.threads, $2, "threads", 1,
				    64);
		}
		| limitshead optnl limitopts '}'
		| limitshead optnl limitopts error '}' { yyerrok; }
		| ONLIMIT fallback		{
			if (option_once(&scan_set, SOPT_ONLIMIT, "on-limit"))
				conf->scan.on_limit = $2;
		}
		| ONERROR fallback		{
			/* A message never scanned is not known to be bad. */
			if (!option_once(&scan_set, SOPT_ONERROR, "on-error"))
				;
			else if ($2 == SCAN_FALLBACK_REJECT)
				yyerror("on-error must be tempfail or accept");
			else
				conf->scan.on_error = $2;
		}
		| SPAMASSASSIN STRING spamdtimeout {
			if (!option_once(&scan_set, SOPT_SPAMD, "spamassassin"))
				;
			else if (!valid_spamd($2))
				yyerror("invalid spamassassin address \"%s\": "
				    "\"unix:/path\" or \"address:port\" expected",
				    $2);
			else
				(void)set_string(conf->scan.spamassassin,
				    sizeof(conf->scan.spamassassin), $2,
				    "spamassassin address");
			if ($3 != -2)
				set_duration(&conf->scan.spamassassin_timeout,
				    $3, "spamassassin timeout", 1, 10 * MINUTE,
				    "1s and 10m");
		}
		| BADHEADERS REJECT		{
			if (option_once(&scan_set, SOPT_BADHEADERS,
			    "bad-headers"))
				conf->scan.bad_headers_reject = 1;
		}
		| BADHEADERS SCORE		{
			if (option_once(&scan_set, SOPT_BADHEADERS,
			    "bad-headers"))
				conf->scan.bad_headers_reject = 0;
		}
		| SCORE scorerule decimal	{
			static const char *names[RULE_MAX] = {
				"spf-fail", "spf-softfail", "spf-permerror",
				"dnsbl", "no-rdns", "rdns-mismatch",
				"helo-literal", "helo-bare", "bad-header"
			};

			if (scan_scores_set & (1 << $2))
				yyerror("score %s specified twice", names[$2]);
			else if ($3 < -100 || $3 > 100)
				yyerror("score %s must be between -100 and 100",
				    names[$2]);
			else
				conf->scan.scores[$2] = $3;
			scan_scores_set |= 1 << $2;
		}
		| BANNEDFILES stringlist	{
			struct string_entry	*s;

			if (scan_set & SOPT_BANNED)
				yyerror("banned-files specified twice");
			scan_set |= SOPT_BANNED;
			while ((s = TAILQ_FIRST(&pending_list)) != NULL) {
				TAILQ_REMOVE(&pending_list, s, entry);
				if (s->value[0] == '\0')
					yyerror("empty banned-files pattern");
				TAILQ_INSERT_TAIL(&conf->scan.banned_files, s,
				    entry);
			}
		}
		| USER STRING			{
			if (scan_set & SOPT_USER)
				yyerror("user specified twice");
			scan_set |= SOPT_USER;
			if ($2[0] == '\0')
				yyerror("empty user name");
			else
				(void)set_string(conf->scan.user,
				    sizeof(conf->scan.user), $2, "user name");
		}
		;

limitshead	: LIMITS '{'			{
			if (scan_set & SOPT_LIMITS)
				yyerror("limits specified twice");
			scan_set |= SOPT_LIMITS;
			scan_limits_set = 0;
		}
		;

limitopts	: /* empty */
		| limitopts limitopt optnl
		| limitopts error nl		{ yyerrok; }
		;

limitopt	: MAXFILESIZE size		{
			if (option_once(&scan_limits_set, SLOPT_FILESIZE,
			    "max-filesize"))
				set_size(&conf->scan.max_filesize, $2,
				    "max-filesize", KBYTE, 4 * GBYTE,
				    "1K and 4G");
		}
		| MAXSCANSIZE size		{
			if (option_once(&scan_limits_set, SLOPT_SCANSIZE,
			    "max-scansize"))
				set_size(&conf->scan.max_scansize, $2,
				    "max-scansize", KBYTE, 4 * GBYTE,
				    "1K and 4G");
		}
		| MAXRECURSION NUMBER		{
			if (option_once(&scan_limits_set, SLOPT_RECURSION,
			    "max-recursion"))
				set_count(&conf->scan.max_recursion, $2,
				    "max-recursion", 1, 64);
		}
		| MAXFILES NUMBER		{
			if (option_once(&scan_limits_set, SLOPT_FILES,
			    "max-files"))
				set_count(&conf->scan.max_files, $2,
				    "max-files", 1, 1000000);
		}
		| MAXSCANTIME duration		{
			if (option_once(&scan_limits_set, SLOPT_SCANTIME,
			    "max-scantime"))
				set_duration(&conf->scan.max_scantime, $2,
				    "max-scantime", 1, HOUR, "1s and 1h");
		}
		;

fallback	: TEMPFAIL			{ $$ = SCAN_FALLBACK_TEMPFAIL; }
		| ACCEPT			{ $$ = SCAN_FALLBACK_ACCEPT; }
		| REJECT			{ $$ = SCAN_FALLBACK_REJECT; }
		;

spamdtimeout	: /* empty */			{ $$ = -2; }
		| TIMEOUT duration		{ $$ = $2; }
		;

scorerule	: SPFFAIL			{ $$ = RULE_SPF_FAIL; }
		| SPFSOFTFAIL			{ $$ = RULE_SPF_SOFTFAIL; }
		| SPFPERMERROR			{ $$ = RULE_SPF_PERMERROR; }
		| DNSBL				{ $$ = RULE_DNSBL; }
		| NORDNS			{ $$ = RULE_NO_RDNS; }
		| RDNSMISMATCH			{ $$ = RULE_RDNS_MISMATCH; }
		| HELOLITERAL			{ $$ = RULE_HELO_LITERAL; }
		| HELOBARE			{ $$ = RULE_HELO_BARE; }
		| BADHEADER			{ $$ = RULE_BAD_HEADER; }
		;

/* spam tag N reject M [quarantine Q] [subject "..."], into slevels. */
spamlevels	: spamhead spamopts		{ spam_levels_finish(); }
		;

spamhead	: TAG decimal REJECT decimal	{
			memset(&slevels, 0, sizeof(slevels));
			slevels_set = 0;
			slevels.set = 1;
			slevels.tag = $2;
			slevels.reject = $4;
		}
		;

spamopts	: /* empty */
		| spamopts spamopt
		;

spamopt		: QUARANTINE decimal		{
			if (option_once(&slevels_set, POPT_QUARANTINE,
			    "quarantine"))
				slevels.quarantine = $2;
		}
		| SUBJECT STRING		{
			const char	*p;

			for (p = $2; *p != '\0'; p++)
				if (*p < ' ' || *p > '~')
					break;
			if (!option_once(&slevels_set, POPT_SUBJECT, "subject"))
				;
			else if ($2[0] == '\0')
				yyerror("empty spam subject");
			else if (*p != '\0')
				yyerror("spam subject must be printable ASCII");
			else if (strlcpy(slevels.subject, $2,
			    sizeof(slevels.subject)) >= sizeof(slevels.subject))
				yyerror("spam subject must be at most %zu "
				    "characters", sizeof(slevels.subject) - 1);
		}
		;

firewall	: FIREWALL NONE			{
			firewall_begin(FIREWALL_NONE);
		}
		| pfhead optnl pfopts '}'
		| pfhead optnl pfopts error '}'	{ yyerrok; }
		| nfthead optnl nftopts '}'
		| nfthead optnl nftopts error '}' { yyerrok; }
		;

pfhead		: FIREWALL PF '{'		{
			firewall_begin(FIREWALL_PF);
		}
		;

nfthead		: FIREWALL NFTABLES '{'		{
			firewall_begin(FIREWALL_NFTABLES);
		}
		;

fwtable		: WHITE				{ $$ = FW_WHITE; }
		| TRAP				{ $$ = FW_TRAP; }
		| BLOCK				{ $$ = FW_BLOCK; }
		| SPFWHITE			{ $$ = FW_SPF_WHITE; }
		;

pfopts		: /* empty */
		| pfopts pfopt optnl
		| pfopts error nl		{ yyerrok; }
		;

pfopt		: TABLE fwtable STRING		{
			firewall_table($2, $3, "table");
		}
		| fwblock
		;

/* Who goes to the block table, in pf and nftables alike. */
fwblock		: BLOCK AUTHFAILURES NUMBER authwithin authfor {
			struct firewall_config	*f = &conf->firewall;

			if (option_once(&fw_set, FOPT_AUTHFAIL,
			    "block auth-failures")) {
				set_count(&f->block_auth_failures, $3,
				    "block auth-failures", 0, 1000);
				set_duration(&f->block_auth_within, $4,
				    "block auth-failures within", MINUTE, DAY,
				    "1m and 1d");
				set_duration(&f->block_auth_for, $5,
				    "block auth-failures for", MINUTE,
				    30 * DAY, "1m and 30d");
			}
		}
		| BLOCK TRAPPED yesno		{
			if (option_once(&fw_set, FOPT_TRAPPED, "block trapped"))
				conf->firewall.block_trapped = $3;
		}
		| BLOCK BLOCKLISTS yesno	{
			if (option_once(&fw_set, FOPT_BLOCKLISTS,
			    "block blocklists"))
				conf->firewall.block_blocklists = $3;
		}
		;

/* Absent: the default, which set_duration() keeps for -1. */
authwithin	: /* empty */			{ $$ = -1; }
		| WITHIN duration		{ $$ = $2; }
		;

authfor		: /* empty */			{ $$ = -1; }
		| FOR duration			{ $$ = $2; }
		;

yesno		: YES				{ $$ = 1; }
		| NO				{ $$ = 0; }
		;

nftopts		: /* empty */
		| nftopts nftopt optnl
		| nftopts error nl		{ yyerrok; }
		;

nftopt		: TABLE STRING			{
			if (fw_set & FOPT_NFTTABLE)
				yyerror("table specified twice");
			fw_set |= FOPT_NFTTABLE;
			nft_table($2);
		}
		| SET fwtable STRING		{
			firewall_table($2, $3, "set");
		}
		| fwblock
		;

action		: actionhead actionopts		{
			action_finish();
		}
		;

actionhead	: ACTION STRING			{ action_begin($2); }
		;

actionopts	: /* empty */
		| actionopts actionopt
		;

actionopt	: relay relayopts
		| MAILDIR STRING		{
			if (aopts.flags & ACTION_MAILDIR)
				yyerror("maildir specified twice");
			aopts.flags |= ACTION_MAILDIR;
			/* The queue process is chrooted in the state dir. */
			if ($2[0] == '/')
				yyerror("maildir \"%s\" must be relative to "
				    "the state directory", $2);
			else if (!valid_maildir($2))
				yyerror("maildir \"%s\" must name a directory "
				    "below the state directory", $2);
			else
				(void)set_string(aopts.maildir,
				    sizeof(aopts.maildir), $2, "maildir");
		}
		| ALIAS TABLEREF		{
			struct table	*t;

			if (aopts_set & AOPT_ALIAS)
				yyerror("alias specified twice");
			aopts_set |= AOPT_ALIAS;
			if ((t = table_ref($2)) != NULL) {
				check_aliases(t);
				(void)strlcpy(aopts.alias_table, $2,
				    sizeof(aopts.alias_table));
			}
		}
		| GREYLIST			{
			if (aopts.flags & ACTION_GREYLIST)
				yyerror("greylist specified twice");
			aopts.flags |= ACTION_GREYLIST;
		}
		| SCAN scanmode			{
			scan_action($<lineno>1);
			if ($2 == 1)
				aopts.scan_virus_only = 1;
			else if ($2 == 2)
				aopts.spam = slevels;
		}
		;

scanmode	: /* empty */			{ $$ = 0; }
		| VIRUSONLY			{ $$ = 1; }
		| SPAM spamlevels		{ $$ = 2; }
		;

relay		: RELAY				{
			if (aopts.flags & ACTION_RELAY)
				yyerror("relay specified twice");
			aopts.flags |= ACTION_RELAY;
		}
		;

relayopts	: /* empty */
		| relayopts relayopt
		;

relayopt	: HOST STRING			{
			if (aopts_set & AOPT_HOST)
				yyerror("host specified twice");
			aopts_set |= AOPT_HOST;
			if (parse_relay_url($2, &aopts) == -1)
				yyerror("invalid relay URL \"%s\"", $2);
		}
		| TLS VERIFY cafile		{
			char	 errbuf[PATH_MAX + 128];

			if (aopts_set & AOPT_VERIFY)
				yyerror("tls verify specified twice");
			aopts_set |= AOPT_VERIFY;
			aopts.flags |= ACTION_TLS_VERIFY;
			/* The parent reads the file for the queue process. */
			if ($3 != NULL && set_path(aopts.ca_file,
			    sizeof(aopts.ca_file), $3, "ca file") == 0 &&
			    check_readable_file($3, errbuf,
			    sizeof(errbuf)) == -1)
				yyerror("action \"%s\": ca file %s",
				    aopts.name, errbuf);
		}
		| HELO STRING			{
			if (aopts_set & AOPT_HELO)
				yyerror("helo specified twice");
			aopts_set |= AOPT_HELO;
			if (!valid_hostname($2))
				yyerror("invalid helo name \"%s\"", $2);
			else
				(void)set_string(aopts.helo, sizeof(aopts.helo),
				    $2, "helo name");
		}
		| AUTH TABLEREF			{
			struct table	*t;

			if (aopts_set & AOPT_AUTH)
				yyerror("auth specified twice");
			aopts_set |= AOPT_AUTH;
			aopts_auth_lineno = $<lineno>1;
			/* An inline table has no values to hold passwords. */
			if ((t = table_ref($2)) != NULL &&
			    t->source != TABLE_FILE)
				yyerror("auth <%s>: relay credentials must be "
				    "in a file table", $2);
			else if (t != NULL && table_secret(t) == 0)
				(void)strlcpy(aopts.auth_table, $2,
				    sizeof(aopts.auth_table));
		}
		;

cafile		: /* empty */			{ $$ = NULL; }
		| CA STRING			{ $$ = $2; }
		;

match		: matchhead matchconds decision	{ match_finish(); }
		;

matchhead	: MATCH				{
			memset(&mrule, 0, sizeof(mrule));
		}
		;

matchconds	: /* empty */
		| matchconds matchcond
		;

negation	: /* empty */			{ $$ = 0; }
		| '!'				{ $$ = 1; }
		;

matchcond	: negation FROM negation ANY	{
			match_cond(&mrule.from, "from", $1, $3, COND_ANY, NULL);
		}
		| negation FROM negation LOCAL	{
			match_cond(&mrule.from, "from", $1, $3, COND_LOCAL,
			    NULL);
		}
		| negation FROM negation SRC TABLEREF {
			match_cond(&mrule.from, "from", $1, $3, COND_TABLE, $5);
		}
		| negation FROM negation SRC STRING {
			if (!valid_address($5, 1))
				yyerror("invalid address \"%s\"", $5);
			match_cond(&mrule.from, "from", $1, $3, COND_LITERAL,
			    $5);
		}
		| negation FROM negation AUTH	{
			match_cond(&mrule.auth, "auth", $1, $3, COND_ANY, NULL);
		}
		| negation FROM negation AUTH TABLEREF {
			match_cond(&mrule.auth, "auth", $1, $3, COND_TABLE, $5);
		}
		| negation AUTH			{
			match_cond(&mrule.auth, "auth", $1, 0, COND_ANY, NULL);
		}
		| negation AUTH TABLEREF	{
			match_cond(&mrule.auth, "auth", $1, 0, COND_TABLE, $3);
		}
		| negation FOR negation ANY	{
			match_cond(&mrule.rcpt_for, "for", $1, $3, COND_ANY,
			    NULL);
		}
		| negation FOR negation LOCAL	{
			match_cond(&mrule.rcpt_for, "for", $1, $3, COND_LOCAL,
			    NULL);
		}
		| negation FOR negation DOMAIN TABLEREF {
			match_cond(&mrule.rcpt_for, "for", $1, $3, COND_TABLE,
			    $5);
		}
		| negation FOR negation DOMAIN STRING {
			if (!valid_hostname($5))
				yyerror("invalid domain \"%s\"", $5);
			match_cond(&mrule.rcpt_for, "for", $1, $3,
			    COND_LITERAL, $5);
		}
		| negation RCPTTO negation TABLEREF {
			match_cond(&mrule.rcpt_to, "rcpt-to", $1, $3,
			    COND_TABLE, $4);
		}
		| negation RCPTTO negation STRING {
			if ($4[0] == '\0')
				yyerror("empty rcpt-to address");
			match_cond(&mrule.rcpt_to, "rcpt-to", $1, $3,
			    COND_LITERAL, $4);
		}
		| negation MAILFROM negation TABLEREF {
			match_cond(&mrule.mail_from, "mail-from", $1, $3,
			    COND_TABLE, $4);
		}
		| negation MAILFROM negation STRING {
			if ($4[0] == '\0')
				yyerror("empty mail-from address");
			match_cond(&mrule.mail_from, "mail-from", $1, $3,
			    COND_LITERAL, $4);
		}
		;

decision	: REJECT			{ mrule.reject = 1; }
		| ACTION STRING			{
			if (action_find(conf, $2) == NULL)
				yyerror("no such action \"%s\"", $2);
			else
				(void)strlcpy(mrule.action, $2,
				    sizeof(mrule.action));
		}
		;

%%

struct keywords {
	const char	*k_name;
	int		 k_val;
};

static int
yyerror(const char *fmt, ...)
{
	va_list	 ap;
	char	 msg[MESSAGE_LEN];

	errors++;
	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	config_error("%s:%d: %s", file->name, file->lineno, msg);
	return (0);
}

static void
yyerror_at(const char *name, int lineno, const char *fmt, ...)
{
	va_list	 ap;
	char	 msg[MESSAGE_LEN];

	errors++;
	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	config_error("%s:%d: %s", name, lineno, msg);
}

/*
 * The parser's own complaint.  When the lexer has already said what is
 * wrong and handed over ERROR, a second "syntax error" would only be noise.
 */
static void
syntax_error(const char *msg)
{
	if (yychar == ERROR)
		return;
	if (yychar == 0)
		(void)yyerror("unexpected end of file");
	else
		(void)yyerror("%s", msg);
}

static int
kw_cmp(const void *k, const void *e)
{
	return (strcmp(k, ((const struct keywords *)e)->k_name));
}

static int
lookup(const char *s)
{
	/* This has to be sorted always: the first lookup checks it. */
	static const struct keywords keywords[] = {
		{ "accept",		ACCEPT },
		{ "action",		ACTION },
		{ "alias",		ALIAS },
		{ "all",		ALL },
		{ "any",		ANY },
		{ "auth",		AUTH },
		{ "auth-failures",	AUTHFAILURES },
		{ "bad-header",		BADHEADER },
		{ "bad-headers",	BADHEADERS },
		{ "banned-files",	BANNEDFILES },
		{ "block",		BLOCK },
		{ "blocklist",		BLOCKLIST },
		{ "blocklists",		BLOCKLISTS },
		{ "ca",			CA },
		{ "cert",		CERT },
		{ "clamav",		CLAMAV },
		{ "command-timeout",	COMMANDTIMEOUT },
		{ "control",		CONTROL },
		{ "data-timeout",	DATATIMEOUT },
		{ "database",		DATABASE },
		{ "delay-warning",	DELAYWARNING },
		{ "dnsbl",		DNSBL },
		{ "domain",		DOMAIN },
		{ "file",		FILENAME },
		{ "firewall",		FIREWALL },
		{ "for",		FOR },
		{ "from",		FROM },
		{ "greyexp",		GREYEXP },
		{ "greylist",		GREYLIST },
		{ "helo",		HELO },
		{ "helo-bare",		HELOBARE },
		{ "helo-literal",	HELOLITERAL },
		{ "host",		HOST },
		{ "hostname",		HOSTNAME },
		{ "include",		INCLUDE },
		{ "ipv6-prefix",	IPV6PREFIX },
		{ "key",		KEY },
		{ "lifetime",		LIFETIME },
		{ "limits",		LIMITS },
		{ "listen",		LISTEN },
		{ "local",		LOCAL },
		{ "mail-from",		MAILFROM },
		{ "maildir",		MAILDIR },
		{ "map-size",		MAPSIZE },
		{ "match",		MATCH },
		{ "max-auth-failures",	MAXAUTHFAILURES },
		{ "max-connections",	MAXCONNECTIONS },
		{ "max-deliveries",	MAXDELIVERIES },
		{ "max-entries",	MAXENTRIES },
		{ "max-errors",		MAXERRORS },
		{ "max-files",		MAXFILES },
		{ "max-filesize",	MAXFILESIZE },
		{ "max-hops",		MAXHOPS },
		{ "max-message-size",	MAXMESSAGESIZE },
		{ "max-per-destination", MAXPERDESTINATION },
		{ "max-recipients",	MAXRECIPIENTS },
		{ "max-recursion",	MAXRECURSION },
		{ "max-scansize",	MAXSCANSIZE },
		{ "max-scantime",	MAXSCANTIME },
		{ "max-sessions",	MAXSESSIONS },
		{ "max-sessions-per-client", MAXSESSIONSPERCLIENT },
		{ "message",		MESSAGE },
		{ "min-free",		MINFREE },
		{ "never",		NEVER },
		{ "nftables",		NFTABLES },
		{ "no",			NO },
		{ "no-rdns",		NORDNS },
		{ "none",		NONE },
		{ "off",		OFF },
		{ "on",			ON },
		{ "on-error",		ONERROR },
		{ "on-limit",		ONLIMIT },
		{ "passtime",		PASSTIME },
		{ "pf",			PF },
		{ "pidfile",		PIDFILE },
		{ "pki",		PKI },
		{ "port",		PORT },
		{ "quarantine",		QUARANTINE },
		{ "quarantine-expire",	QUARANTINEEXPIRE },
		{ "queue",		QUEUE },
		{ "rcpt-to",		RCPTTO },
		{ "rdns-mismatch",	RDNSMISMATCH },
		{ "refresh",		REFRESH },
		{ "reject",		REJECT },
		{ "relay",		RELAY },
		{ "reply",		REPLY },
		{ "resolver",		RESOLVER },
		{ "retry-max",		RETRYMAX },
		{ "retry-min",		RETRYMIN },
		{ "scan",		SCAN },
		{ "score",		SCORE },
		{ "set",		SET },
		{ "smtp",		SMTP },
		{ "smtps",		SMTPS },
		{ "socket",		SOCKET },
		{ "spam",		SPAM },
		{ "spamassassin",	SPAMASSASSIN },
		{ "spf-fail",		SPFFAIL },
		{ "spf-permerror",	SPFPERMERROR },
		{ "spf-softfail",	SPFSOFTFAIL },
		{ "spf-white",		SPFWHITE },
		{ "spf-whitelist",	SPFWHITELIST },
		{ "src",		SRC },
		{ "state",		STATE },
		{ "stutter",		STUTTER },
		{ "subject",		SUBJECT },
		{ "table",		TABLE },
		{ "tag",		TAG },
		{ "tarpit",		TARPIT },
		{ "tempfail",		TEMPFAIL },
		{ "threads",		THREADS },
		{ "threshold",		THRESHOLD },
		{ "timeout",		TIMEOUT },
		{ "tls",		TLS },
		{ "tls-require",	TLSREQUIRE },
		{ "transaction-timeout", TRANSACTIONTIMEOUT },
		{ "trap",		TRAP },
		{ "trapexp",		TRAPEXP },
		{ "trapped",		TRAPPED },
		{ "user",		USER },
		{ "verify",		VERIFY },
		{ "virus-only",		VIRUSONLY },
		{ "weight",		WEIGHT },
		{ "white",		WHITE },
		{ "whiteexp",		WHITEEXP },
		{ "whitelist",		WHITELIST },
		{ "within",		WITHIN },
		{ "yes",		YES }
	};
	static int		 checked;
	const struct keywords	*p;
	size_t			 i;

	if (!checked) {
		for (i = 1; i < sizeof(keywords) / sizeof(keywords[0]); i++)
			if (strcmp(keywords[i - 1].k_name,
			    keywords[i].k_name) >= 0)
				fatalx("parse.y: keyword \"%s\" out of order",
				    keywords[i].k_name);
		checked = 1;
	}
	p = bsearch(s, keywords, sizeof(keywords) / sizeof(keywords[0]),
	    sizeof(keywords[0]), kw_cmp);
	return (p != NULL ? p->k_val : STRING);
}

static int
igetc(void)
{
	int	 c;

	for (;;) {
		if (file->ungetpos > 0)
			c = file->ungetbuf[--file->ungetpos];
		else if ((c = getc(file->stream)) != EOF)
			file->lastc = c;
		if (c == START_EXPAND)
			expanding = 1;
		else if (c == DONE_EXPAND)
			expanding = 0;
		else
			return (c);
	}
}

/*
 * The next character, with backslash-newline folded into a blank outside
 * quotes, and the end of an included file leading back to its includer.
 */
static int
lgetc(int quotec)
{
	int	 c, next;

	if (quotec)
		return (igetc());
	for (;;) {
		c = igetc();
		if (c == '\\') {
			next = igetc();
			if (next == '\n') {
				file->lineno++;
				return (' ');
			}
			lungetc(next);
			return (c);
		}
		if (c != EOF)
			return (c);
		/* A last line without its newline still ends there. */
		if (!file->eof_reached) {
			file->eof_reached = 1;
			if (file->lastc != '\n')
				return ('\n');
		}
		if (file == topfile || popfile() == EOF)
			return (EOF);
	}
}

static void
lungetc(int c)
{
	int	*p;
	size_t	 size;

	if (c == EOF)
		return;
	if (file->ungetpos >= file->ungetsize) {
		size = file->ungetsize * 2;
		if ((p = reallocarray(file->ungetbuf, size,
		    sizeof(*p))) == NULL)
			fatal("lungetc");
		file->ungetbuf = p;
		file->ungetsize = size;
	}
	file->ungetbuf[file->ungetpos++] = c;
}

/*
 * Skip the rest of a line after a lexical error.  The newline stays, so
 * that the grammar's error rule resumes at the next statement.
 */
static int
findeol(void)
{
	int	 c;

	while ((c = lgetc(0)) != '\n' && c != EOF)
		;
	lungetc(c);
	return (ERROR);
}

static int
allowed_in_string(int c)
{
	if (isalnum(c))
		return (1);
	if (c < 0 || c > 127 || !ispunct(c))
		return (0);
	switch (c) {
	case '!':
	case '"':
	case '#':
	case '$':
	case '\'':
	case '(':
	case ')':
	case ',':
	case ';':
	case '<':
	case '=':
	case '>':
	case '\\':
	case '{':
	case '}':
		return (0);
	}
	return (1);
}

/*
 * Push a macro's value back into the input, so that it is read as if it
 * had been written there and joins whatever follows it.
 */
static int
expand_macro(void)
{
	char		 name[128], *p = name;
	const char	*val;
	size_t		 i;
	int		 c;

	while ((c = lgetc(0)) != EOF && (isalnum(c) || c == '_')) {
		if (p + 1 >= name + sizeof(name)) {
			yyerror("macro name too long");
			return (-1);
		}
		*p++ = c;
	}
	lungetc(c);
	*p = '\0';
	if (name[0] == '\0') {
		yyerror("macro name expected after '$'");
		return (-1);
	}
	if ((val = symget(name)) == NULL) {
		yyerror("macro '%s' not defined", name);
		return (-1);
	}
	lungetc(DONE_EXPAND);
	for (i = strlen(val); i > 0; i--)
		lungetc((unsigned char)val[i - 1]);
	lungetc(START_EXPAND);
	return (0);
}

static int
yylex(void)
{
	char		 buf[8192];
	char		*p;
	const char	*errstr;
	int		 quotec, next, c, token;

	/*
	 * A newline counts once the next token is read, so that an error
	 * found while looking at it names the line it ends, and the end of
	 * the file is reported on the last line.
	 */
 top:
	p = buf;
	while ((c = lgetc(0)) == ' ' || c == '\t')
		;
	if (c != EOF && file->newline_pending) {
		file->newline_pending = 0;
		file->lineno++;
	}
	yylval.lineno = file->lineno;
	if (c == '#')
		while ((c = lgetc(0)) != '\n' && c != EOF)
			;
	if (c == '$' && !expanding) {
		if (expand_macro() == -1)
			return (findeol());
		goto top;
	}

	switch (c) {
	case '\'':
	case '"':
		quotec = c;
		for (;;) {
			if ((c = lgetc(quotec)) == EOF || c == '\n') {
				yyerror("unterminated quoted string");
				lungetc(c);
				return (ERROR);
			}
			if (c == '\\') {
				next = lgetc(quotec);
				if (next == '\n') {
					file->lineno++;
					continue;
				}
				if (next == quotec || next == '\\')
					c = next;
				else
					lungetc(next);
			} else if (c == quotec)
				break;
			else if (c == '\0') {
				yyerror("NUL byte in quoted string");
				return (findeol());
			}
			if (p + 1 >= buf + sizeof(buf)) {
				yyerror("string too long");
				return (findeol());
			}
			*p++ = c;
		}
		*p = '\0';
		yylval.v.string = pstrdup(buf);
		return (STRING);
	case '<':
		while ((c = lgetc(0)) != EOF && (isalnum(c) || c == '_' ||
		    c == '-' || c == '.')) {
			if (p + 1 >= buf + NAME_MAX_LEN) {
				yyerror("table name too long");
				return (findeol());
			}
			*p++ = c;
		}
		*p = '\0';
		if (c != '>' || p == buf) {
			yyerror("invalid table reference");
			lungetc(c);
			return (findeol());
		}
		yylval.v.string = pstrdup(buf);
		return (TABLEREF);
	}

	if (allowed_in_string(c) || c == '$') {
		do {
			if (c == '$' && !expanding) {
				if (expand_macro() == -1)
					return (findeol());
				continue;
			}
			if (p + 1 >= buf + sizeof(buf)) {
				yyerror("string too long");
				return (findeol());
			}
			*p++ = c;
		} while ((c = lgetc(0)) != EOF &&
		    (allowed_in_string(c) || c == '$'));
		lungetc(c);
		*p = '\0';
		if ((token = lookup(buf)) != STRING)
			return (token);
		if (strspn(buf, "0123456789") == strlen(buf)) {
			yylval.v.number = strtonum(buf, 0, INT64_MAX, &errstr);
			if (errstr != NULL) {
				yyerror("number %s is %s", buf, errstr);
				return (findeol());
			}
			return (NUMBER);
		}
		yylval.v.string = pstrdup(buf);
		return (STRING);
	}
	if (c == '\n') {
		yylval.lineno = file->lineno;
		file->newline_pending = 1;
	}
	if (c == EOF)
		return (0);
	return (c);
}

static struct file *
pushfile(const char *name, char *errbuf, size_t errlen)
{
	struct file	*nfile, *f;
	struct stat	 sb;
	int		 depth = 0;

	TAILQ_FOREACH(f, &files, entry)
		depth++;
	if (depth > INCLUDE_DEPTH_MAX) {
		(void)snprintf(errbuf, errlen, "includes nested more than %d "
		    "deep", INCLUDE_DEPTH_MAX);
		return (NULL);
	}
	if ((nfile = calloc(1, sizeof(*nfile))) == NULL ||
	    (nfile->name = strdup(name)) == NULL ||
	    (nfile->ungetbuf = calloc(64, sizeof(int))) == NULL) {
		(void)strlcpy(errbuf, strerror(errno), errlen);
		goto fail;
	}
	nfile->ungetsize = 64;
	nfile->lastc = '\n';
	if ((nfile->stream = fopen(name, "r")) == NULL ||
	    fstat(fileno(nfile->stream), &sb) == -1) {
		(void)strlcpy(errbuf, strerror(errno), errlen);
		goto fail;
	}
	if (!S_ISREG(sb.st_mode)) {
		(void)strlcpy(errbuf, "not a regular file", errlen);
		goto fail;
	}
	TAILQ_FOREACH(f, &files, entry)
		if (f->dev == sb.st_dev && f->ino == sb.st_ino) {
			(void)strlcpy(errbuf, "include loop", errlen);
			goto fail;
		}
	nfile->dev = sb.st_dev;
	nfile->ino = sb.st_ino;
	/* An included file starts with the newline its include pushed. */
	nfile->lineno = TAILQ_EMPTY(&files) ? 1 : 0;
	TAILQ_INSERT_TAIL(&files, nfile, entry);
	return (nfile);

 fail:
	if (nfile != NULL) {
		if (nfile->stream != NULL)
			(void)fclose(nfile->stream);
		free(nfile->ungetbuf);
		free(nfile->name);
		free(nfile);
	}
	return (NULL);
}

static int
popfile(void)
{
	struct file	*prev;

	prev = TAILQ_PREV(file, files, entry);
	TAILQ_REMOVE(&files, file, entry);
	(void)fclose(file->stream);
	free(file->name);
	free(file->ungetbuf);
	free(file);
	file = prev;
	return (file != NULL ? 0 : EOF);
}

struct smarthost_config *
parse_config(const char *filename)
{
	struct smarthost_config	*result;
	struct pki_origin	*o;
	struct listener_origin	*lo;
	char			 errbuf[128];

	if ((conf = config_new()) == NULL) {
		config_error("%s: %s", filename, strerror(errno));
		return (NULL);
	}
	if (strlcpy(conf->conffile, filename, sizeof(conf->conffile)) >=
	    sizeof(conf->conffile)) {
		config_error("%s: path too long", filename);
		config_free(conf);
		return (NULL);
	}
	if ((file = pushfile(filename, errbuf, sizeof(errbuf))) == NULL) {
		config_error("%s: %s", filename, errbuf);
		config_free(conf);
		return (NULL);
	}
	topfile = file;
	errors = 0;
	expanding = 0;

	if (yyparse() != 0 && errors == 0)
		yyerror("cannot parse the configuration");
	while (file != NULL)
		(void)popfile();
	topfile = NULL;

	check_pkis();
	check_listeners();
	check_scan_actions();

	while ((o = TAILQ_FIRST(&pki_origins)) != NULL) {
		TAILQ_REMOVE(&pki_origins, o, entry);
		free(o->file);
		free(o);
	}
	while ((lo = TAILQ_FIRST(&listener_origins)) != NULL) {
		TAILQ_REMOVE(&listener_origins, lo, entry);
		free(lo->file);
		free(lo);
	}
	free(scan_action_file);
	scan_action_file = NULL;
	scan_action_lineno = 0;
	smtp_block_set = queue_block_set = 0;
	tarpit_block_set = dnsbl_threshold_set = 0;
	string_list_clear(&pending_list);
	pstrings_free();
	symclear();

	result = conf;
	conf = NULL;
	if (errors) {
		config_free(result);
		return (NULL);
	}
	return (result);
}

/*
 * Every pki needs both halves, reported where it was first named, and
 * both files must load, reported where the file was named.
 */
static void
check_pkis(void)
{
	struct pki_origin	*o;
	char			 errbuf[PATH_MAX + 128];
	int			 lineno;

	TAILQ_FOREACH(o, &pki_origins, entry) {
		if (o->pki->cert_file[0] == '\0')
			yyerror_at(o->file, o->lineno,
			    "pki \"%s\" has no certificate", o->pki->name);
		else if (o->pki->key_file[0] == '\0')
			yyerror_at(o->file, o->lineno,
			    "pki \"%s\" has no key", o->pki->name);
		else if (!o->failed &&
		    pki_load(o->pki, errbuf, sizeof(errbuf)) == -1) {
			lineno = o->pki->cert == NULL ? o->cert_lineno :
			    o->key_lineno;
			yyerror_at(o->file, lineno, "pki \"%s\": %s",
			    o->pki->name, errbuf);
		}
	}
}

/*
 * TLS needs a pki that exists, and AUTH is offered only after TLS, so a
 * password never crosses the network in the clear.  Checked at the end,
 * so that a listener may name a pki defined below it.
 */
static void
check_listeners(void)
{
	struct listener_origin	*o;
	struct listener		*l;
	const char		*mode;

	TAILQ_FOREACH(o, &listener_origins, entry) {
		l = o->listener;
		mode = l->tls == LISTEN_SMTPS ? "smtps" :
		    l->tls == LISTEN_TLS_REQUIRE ? "tls-require" : "tls";
		if (l->tls == LISTEN_PLAIN) {
			if (l->pki[0] != '\0')
				yyerror_at(o->file, o->lineno, "pki needs tls, "
				    "tls-require or smtps");
			if (o->auth)
				yyerror_at(o->file, o->lineno,
				    "auth needs a TLS listener");
		} else if (l->pki[0] == '\0')
			yyerror_at(o->file, o->lineno, "%s needs a pki", mode);
		else if (pki_find(conf, l->pki) == NULL)
			yyerror_at(o->file, o->lineno, "unknown pki \"%s\"",
			    l->pki);
	}
}

static int
symset(const char *nam, const char *val, int persist)
{
	struct sym	*sym;

	TAILQ_FOREACH(sym, &symhead, entry)
		if (strcmp(nam, sym->nam) == 0)
			break;
	if (sym != NULL) {
		/* -D wins over the file. */
		if (sym->persist && !persist)
			return (0);
		TAILQ_REMOVE(&symhead, sym, entry);
		free(sym->nam);
		free(sym->val);
		free(sym);
	}
	if ((sym = calloc(1, sizeof(*sym))) == NULL)
		return (-1);
	if ((sym->nam = strdup(nam)) == NULL) {
		free(sym);
		return (-1);
	}
	if ((sym->val = strdup(val)) == NULL) {
		free(sym->nam);
		free(sym);
		return (-1);
	}
	sym->persist = persist;
	TAILQ_INSERT_TAIL(&symhead, sym, entry);
	return (0);
}

int
cmdline_symset(char *s)
{
	char	*val, *nam;
	int	 ret;

	if ((val = strchr(s, '=')) == NULL || val == s)
		return (-1);
	if ((nam = strndup(s, val - s)) == NULL)
		return (-1);
	ret = symset(nam, val + 1, 1);
	free(nam);
	return (ret);
}

static const char *
symget(const char *nam)
{
	struct sym	*sym;

	TAILQ_FOREACH(sym, &symhead, entry)
		if (strcmp(nam, sym->nam) == 0)
			return (sym->val);
	return (NULL);
}

/* Macros from the file die with the parse; those from -D persist. */
static void
symclear(void)
{
	struct sym	*sym, *next;

	TAILQ_FOREACH_SAFE(sym, &symhead, entry, next) {
		if (sym->persist)
			continue;
		TAILQ_REMOVE(&symhead, sym, entry);
		free(sym->nam);
		free(sym->val);
		free(sym);
	}
}

static char *
pstrdup(const char *s)
{
	struct parse_string	*ps;
	size_t			 len = strlen(s) + 1;

	if ((ps = malloc(sizeof(*ps) + len)) == NULL)
		fatal("pstrdup");
	memcpy(ps->data, s, len);
	SLIST_INSERT_HEAD(&strings, ps, entry);
	return (ps->data);
}

static void
pstrings_free(void)
{
	struct parse_string	*ps;

	while ((ps = SLIST_FIRST(&strings)) != NULL) {
		SLIST_REMOVE_HEAD(&strings, entry);
		free(ps);
	}
}

static void
string_list_clear(struct string_list *list)
{
	struct string_entry	*s;

	while ((s = TAILQ_FIRST(list)) != NULL) {
		TAILQ_REMOVE(list, s, entry);
		free(s->value);
		free(s);
	}
}

static int
set_string(char *dst, size_t len, const char *src, const char *what)
{
	if (strlcpy(dst, src, len) >= len) {
		yyerror("%s too long", what);
		return (-1);
	}
	return (0);
}

static int
set_path(char *dst, size_t len, const char *src, const char *what)
{
	if (src[0] != '/') {
		yyerror("%s must be an absolute path", what);
		return (-1);
	}
	return (set_string(dst, len, src, what));
}

/* Names of tables, actions, blocklists and firewall tables. */
static int
valid_name(const char *s)
{
	if (*s == '\0' || strlen(s) >= NAME_MAX_LEN)
		return (0);
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' &&
		    *s != '.')
			return (0);
	return (1);
}

static int
valid_hostname(const char *s)
{
	if (*s == '\0' || strlen(s) >= HOSTNAME_LEN)
		return (0);
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' &&
		    *s != '.')
			return (0);
	return (1);
}

/* A numeric IPv4 or IPv6 address, with a prefix length if allowed. */
static int
valid_address(const char *s, int prefix_ok)
{
	struct in6_addr	 in6;
	char		 buf[INET6_ADDRSTRLEN];
	const char	*slash, *errstr;
	size_t		 len;
	int		 max;

	if ((slash = strchr(s, '/')) != NULL && !prefix_ok)
		return (0);
	len = slash != NULL ? (size_t)(slash - s) : strlen(s);
	if (len == 0 || len >= sizeof(buf))
		return (0);
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (inet_pton(AF_INET, buf, &in6) == 1)
		max = 32;
	else if (inet_pton(AF_INET6, buf, &in6) == 1)
		max = 128;
	else
		return (0);
	if (slash != NULL) {
		if (slash[1] < '0' || slash[1] > '9')
			return (0);
		(void)strtonum(slash + 1, 0, max, &errstr);
		if (errstr != NULL)
			return (0);
	}
	return (1);
}

static struct table *
table_ref(const char *name)
{
	struct table	*t;

	if ((t = table_find(conf, name)) == NULL)
		yyerror("no such table <%s>", name);
	return (t);
}

static struct table *
table_define(const char *name, int source)
{
	struct table	*t;

	if (!valid_name(name)) {
		yyerror("invalid table name \"%s\"", name);
		return (NULL);
	}
	if (table_find(conf, name) != NULL) {
		yyerror("duplicate table %s", name);
		return (NULL);
	}
	if ((t = table_new(name)) == NULL)
		fatal("table_new");
	t->source = source;
	TAILQ_INSERT_TAIL(&conf->tables, t, entry);
	return (t);
}

static void
table_file(const char *name, const char *path)
{
	struct table	*t;
	char		 errbuf[PATH_MAX + 128];

	if ((t = table_define(name, TABLE_FILE)) == NULL)
		return;
	if (path[0] != '/')
		yyerror("table %s: file path must be absolute", name);
	else if (strlcpy(t->path, path, sizeof(t->path)) >= sizeof(t->path))
		yyerror("table %s: file path too long", name);
	else if (table_load_file(t, errbuf, sizeof(errbuf)) == -1)
		yyerror("table %s: %s", name, errbuf);
}

/*
 * A table that holds credentials stays in the parent, and its file must
 * be as private as a key.
 */
static int
table_secret(struct table *t)
{
	char	 errbuf[PATH_MAX + 128];

	t->secret = 1;
	if (t->source == TABLE_FILE &&
	    config_check_secret_file(t->path, errbuf, sizeof(errbuf)) == -1) {
		yyerror("table %s: %s", t->name, errbuf);
		return (-1);
	}
	return (0);
}

static void
pki_set(const char *name, const char *path, int is_key, int lineno)
{
	struct pki_origin	*o = NULL;
	struct pki		*p;
	char			 errbuf[PATH_MAX + 128];

	if ((p = pki_find(conf, name)) == NULL) {
		if (name[0] == '\0' || strlen(name) >= sizeof(p->name)) {
			yyerror("invalid pki name \"%s\"", name);
			return;
		}
		if ((p = calloc(1, sizeof(*p))) == NULL ||
		    (o = calloc(1, sizeof(*o))) == NULL ||
		    (o->file = strdup(file->name)) == NULL)
			fatal("pki_set");
		(void)strlcpy(p->name, name, sizeof(p->name));
		TAILQ_INSERT_TAIL(&conf->pkis, p, entry);
		o->pki = p;
		o->lineno = lineno;
		TAILQ_INSERT_TAIL(&pki_origins, o, entry);
	} else
		TAILQ_FOREACH(o, &pki_origins, entry)
			if (o->pki == p)
				break;
	if (is_key) {
		if (p->key_file[0] != '\0') {
			yyerror("pki \"%s\": key specified twice", name);
			return;
		}
		if (set_path(p->key_file, sizeof(p->key_file), path,
		    "key file") == -1)
			return;
		if (o != NULL)
			o->key_lineno = lineno;
		if (config_check_secret_file(path, errbuf,
		    sizeof(errbuf)) == -1) {
			yyerror("pki \"%s\": %s", name, errbuf);
			if (o != NULL)
				o->failed = 1;
		}
	} else {
		if (p->cert_file[0] != '\0') {
			yyerror("pki \"%s\": certificate specified twice",
			    name);
			return;
		}
		if (set_path(p->cert_file, sizeof(p->cert_file), path,
		    "certificate file") == 0 && o != NULL)
			o->cert_lineno = lineno;
	}
}

static void
listener_begin(const char *on)
{
	memset(&lopts, 0, sizeof(lopts));
	lopts_set = 0;
	(void)set_string(lopts.on, sizeof(lopts.on), on, "listen address");
}

static void
listener_tls(enum listen_tls tls)
{
	if (lopts_set & LOPT_TLS)
		yyerror("tls mode specified twice");
	lopts_set |= LOPT_TLS;
	lopts.tls = tls;
}

static void
listener_finish(int lineno)
{
	struct listener_origin	*o;
	struct listener		*l;

	if (!(lopts_set & LOPT_PORT))
		lopts.port = lopts.tls == LISTEN_SMTPS ? 465 : 25;
	TAILQ_FOREACH(l, &conf->listeners, entry)
		if (strcmp(l->on, lopts.on) == 0 && l->port == lopts.port) {
			yyerror_at(file->name, lineno,
			    "duplicate listener on %s port %u", l->on,
			    (unsigned int)l->port);
			return;
		}
	if ((l = malloc(sizeof(*l))) == NULL ||
	    (o = calloc(1, sizeof(*o))) == NULL ||
	    (o->file = strdup(file->name)) == NULL)
		fatal("listener_finish");
	*l = lopts;
	TAILQ_INSERT_TAIL(&conf->listeners, l, entry);
	o->listener = l;
	o->lineno = lineno;
	o->auth = (lopts_set & LOPT_AUTH) != 0;
	TAILQ_INSERT_TAIL(&listener_origins, o, entry);
}

/*
 * A message is one LMDB value, and copy-on-write needs room for the new
 * pages before the old ones are freed: a map smaller than twice the
 * largest message could refuse every such message.
 */
static void
check_map_size(int lineno)
{
	if (conf->queue.map_size / 2 < conf->smtp.max_message_size)
		yyerror_at(file->name, lineno, "map-size must be at least "
		    "twice max-message-size");
}

/* Each option of a block once; returns whether this is the first time. */
static int
option_once(int *set, int bit, const char *what)
{
	if (*set & bit) {
		yyerror("%s specified twice", what);
		return (0);
	}
	*set |= bit;
	return (1);
}

static void
set_count(uint32_t *dst, int64_t v, const char *what, int64_t min,
    int64_t max)
{
	if (v < min || v > max)
		yyerror("%s must be between %" PRId64 " and %" PRId64, what,
		    min, max);
	else
		*dst = v;
}

/* A size of -1 was invalid and has been reported. */
static void
set_size(uint64_t *dst, int64_t v, const char *what, int64_t min,
    int64_t max, const char *range)
{
	if (v == -1)
		return;
	if (v < min || v > max)
		yyerror("%s must be between %s", what, range);
	else
		*dst = v;
}

/* Timeouts are at least a second; -1 was invalid and has been reported. */
static void
set_timeout(time_t *dst, time_t v, const char *what, time_t max,
    const char *maxstr)
{
	if (v == -1)
		return;
	if (v < 1 || v > max)
		yyerror("%s must be between 1s and %s", what, maxstr);
	else
		*dst = v;
}

/* Durations with a range of their own; -1 was invalid and is reported. */
static void
set_duration(time_t *dst, time_t v, const char *what, time_t min,
    time_t max, const char *range)
{
	if (v == -1)
		return;
	if (v < min || v > max)
		yyerror("%s must be between %s", what, range);
	else
		*dst = v;
}

/*
 * The relay's retry limits depend on each other.  A default that a given
 * value passes follows it, as max-sessions-per-client follows
 * max-sessions; a given value must fit.
 */
static void
check_queue(int lineno)
{
	struct queue_config	*q = &conf->queue;

	if (q->retry_max < q->retry_min) {
		if (queue_set & QOPT_RETRYMAX)
			yyerror_at(file->name, lineno, "retry-max must not be "
			    "shorter than retry-min");
		else
			q->retry_max = q->retry_min;
	}
	if (q->lifetime <= q->retry_min)
		yyerror_at(file->name, lineno, "lifetime must be longer than "
		    "retry-min");
	if (q->delay_warning != 0 && q->delay_warning >= q->lifetime)
		yyerror_at(file->name, lineno, "delay-warning must be shorter "
		    "than lifetime");
	if (q->max_per_destination > q->max_deliveries) {
		if (queue_set & QOPT_PERDEST)
			yyerror_at(file->name, lineno, "max-per-destination "
			    "must not exceed max-deliveries");
		else
			q->max_per_destination = q->max_deliveries;
	}
}

/* A file the parent will read: it must be there, regular and not empty. */
static int
check_readable_file(const char *path, char *errbuf, size_t errlen)
{
	struct stat	 sb;
	const char	*why = NULL;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		(void)snprintf(errbuf, errlen, "%s: %s", path, strerror(errno));
		return (-1);
	}
	if (fstat(fd, &sb) == -1)
		why = strerror(errno);
	else if (!S_ISREG(sb.st_mode))
		why = "not a regular file";
	else if (sb.st_size == 0)
		why = "empty file";
	(void)close(fd);
	if (why != NULL) {
		(void)snprintf(errbuf, errlen, "%s: %s", path, why);
		return (-1);
	}
	return (0);
}

/*
 * A maildir is a relative path below the state directory: no ".."
 * component, and not the state directory itself.
 */
static int
valid_maildir(const char *s)
{
	size_t	 len;
	int	 below = 0;

	while (*s != '\0') {
		s += strspn(s, "/");
		len = strcspn(s, "/");
		if (len == 2 && s[0] == '.' && s[1] == '.')
			return (0);
		if (len > 0 && !(len == 1 && s[0] == '.'))
			below = 1;
		s += len;
	}
	return (below);
}

/*
 * The relay looks its credentials up by the host name of the URL; an
 * entry that is missing or not "user:password" would only show at the
 * first delivery.
 */
static void
check_relay_auth(struct table *t, const char *host, int lineno)
{
	struct table_entry	 find, *e;
	char			 key[HOSTNAME_LEN];
	const char		*colon;

	(void)strlcpy(key, host, sizeof(key));
	find.key = key;
	if ((e = RB_FIND(table_entries, &t->entries, &find)) == NULL)
		yyerror_at(file->name, lineno, "auth <%s>: no entry for relay "
		    "host \"%s\"", t->name, host);
	else if (e->value == NULL || (colon = strchr(e->value, ':')) == NULL ||
	    colon == e->value || colon[1] == '\0')
		yyerror_at(file->name, lineno, "auth <%s>: the entry for "
		    "\"%s\" is not \"user:password\"", t->name, host);
}

/*
 * An aliases table maps a local part, in lower case as recipients are
 * looked up, to one address.  The first bad entry is reported.
 */
static void
check_aliases(struct table *t)
{
	struct table_entry	*e;
	const char		*p, *why = NULL;

	RB_FOREACH(e, table_entries, &t->entries) {
		for (p = e->key; *p != '\0'; p++)
			if (isupper((unsigned char)*p) || *p == '@')
				break;
		if (*p != '\0')
			why = "the name must be a local part in lower case";
		else if (e->value == NULL)
			why = "no address";
		else if (strpbrk(e->value, ", \t") != NULL)
			why = "one address per alias";
		if (why != NULL) {
			yyerror("alias <%s>: \"%s\": %s", t->name, e->key,
			    why);
			return;
		}
	}
}

/*
 * A blocklist's file of addresses, or a whitelist's whose entries are
 * taken out of every blocklist.  Both kinds share one name space, as
 * smarthostctl update table names either.
 */
static void
blocklist_add(const char *name, const char *path, const char *message,
    int white, int lineno)
{
	const char		*kind = white ? "whitelist" : "blocklist";
	struct blocklist	*b;
	int			 n;

	if (!valid_name(name)) {
		yyerror_at(file->name, lineno, "invalid %s name \"%s\"", kind,
		    name);
		return;
	}
	TAILQ_FOREACH(b, &conf->blocklists, entry)
		if (strcmp(b->name, name) == 0) {
			if (b->white == white)
				yyerror_at(file->name, lineno,
				    "duplicate %s \"%s\"", kind, name);
			else
				yyerror_at(file->name, lineno,
				    "%s \"%s\": a %s has that name", kind,
				    name, b->white ? "whitelist" : "blocklist");
			return;
		}
	if (path[0] != '/') {
		yyerror_at(file->name, lineno,
		    "%s \"%s\": file path must be absolute", kind, name);
		return;
	}
	if (message != NULL && check_block_message(name, message, lineno) == -1)
		return;
	if ((b = calloc(1, sizeof(*b))) == NULL)
		fatal("blocklist_add");
	(void)strlcpy(b->name, name, sizeof(b->name));
	b->white = white;
	if (strlcpy(b->path, path, sizeof(b->path)) >= sizeof(b->path)) {
		yyerror_at(file->name, lineno,
		    "%s \"%s\": file path too long", kind, name);
		free(b);
		return;
	}
	if (!white) {
		if (message == NULL)
			n = snprintf(b->message, sizeof(b->message),
			    "Your address %%A is in the %s list", name);
		else
			n = snprintf(b->message, sizeof(b->message), "%s",
			    message);
		if (n < 0 || (size_t)n >= sizeof(b->message))
			fatalx("blocklist_add: message");
	}
	TAILQ_INSERT_TAIL(&conf->blocklists, b, entry);
}

/*
 * The message ends the reply line of an SMTP response: printable ASCII
 * only, bounded, with %A for the client's address and %% for a '%'.
 */
static int
check_block_message(const char *name, const char *msg, int lineno)
{
	const char	*p;

	if (*msg == '\0') {
		yyerror_at(file->name, lineno, "blocklist \"%s\": message is "
		    "empty", name);
		return (-1);
	}
	if (strlen(msg) > BLOCK_MESSAGE_MAX) {
		yyerror_at(file->name, lineno, "blocklist \"%s\": message "
		    "longer than %d characters", name, BLOCK_MESSAGE_MAX);
		return (-1);
	}
	for (p = msg; *p != '\0'; p++) {
		if (*p < 0x20 || *p > 0x7e) {
			yyerror_at(file->name, lineno, "blocklist \"%s\": "
			    "message must be printable ASCII", name);
			return (-1);
		}
		if (*p != '%')
			continue;
		if (p[1] == 'A' || p[1] == '%') {
			p++;
			continue;
		}
		if (p[1] < 0x20 || p[1] > 0x7e)
			yyerror_at(file->name, lineno, "blocklist \"%s\": "
			    "message ends with a lone %%", name);
		else
			yyerror_at(file->name, lineno, "blocklist \"%s\": "
			    "unknown escape %%%c in message", name, p[1]);
		return (-1);
	}
	return (0);
}

/*
 * A DNSBL zone is a domain name: labels of letters, digits and hyphens,
 * kept in lower case.  A client's reversed IPv6 address (64 characters)
 * goes in front of it, and the whole must stay a valid name.
 */
#define DNSBL_ZONE_MAX	(253 - 64)

static void
dnsbl_add(const char *zone, int64_t weight, int lineno)
{
	struct dnsbl	*d;
	char		 name[HOSTNAME_LEN];
	size_t		 len, i, label = 0;
	int		 bad = 0;

	len = strlen(zone);
	if (len > 0 && zone[len - 1] == '.')
		len--;
	if (len == 0 || len > DNSBL_ZONE_MAX)
		bad = 1;
	for (i = 0; !bad && i < len; i++) {
		name[i] = tolower((unsigned char)zone[i]);
		if (zone[i] == '.') {
			if (label == 0 || zone[i - 1] == '-')
				bad = 1;
			label = 0;
		} else if ((!isalnum((unsigned char)zone[i]) &&
		    (zone[i] != '-' || label == 0)) || ++label > 63)
			bad = 1;
	}
	if (!bad && zone[len - 1] == '-')
		bad = 1;
	if (bad) {
		yyerror_at(file->name, lineno, "invalid dnsbl zone \"%s\"",
		    zone);
		return;
	}
	name[len] = '\0';
	if (weight == INT64_MIN)
		return;
	if (weight == 0 || weight < -100 || weight > 100) {
		yyerror_at(file->name, lineno, "dnsbl \"%s\": weight must be "
		    "between -100 and 100, and not 0", name);
		return;
	}
	TAILQ_FOREACH(d, &conf->dnsbls, entry)
		if (strcmp(d->zone, name) == 0) {
			yyerror_at(file->name, lineno, "duplicate dnsbl "
			    "\"%s\"", name);
			return;
		}
	if ((d = calloc(1, sizeof(*d))) == NULL)
		fatal("dnsbl_add");
	(void)strlcpy(d->zone, name, sizeof(d->zone));
	d->weight = weight;
	TAILQ_INSERT_TAIL(&conf->dnsbls, d, entry);
}

static void
action_begin(const char *name)
{
	memset(&aopts, 0, sizeof(aopts));
	aopts_set = 0;
	aopts_ok = 1;
	if (!valid_name(name)) {
		yyerror("invalid action name \"%s\"", name);
		aopts_ok = 0;
	} else if (action_find(conf, name) != NULL) {
		yyerror("duplicate action \"%s\"", name);
		aopts_ok = 0;
	} else
		(void)strlcpy(aopts.name, name, sizeof(aopts.name));
}

static void
action_finish(void)
{
	struct action	*a;
	struct table	*t;
	int		 kind;

	kind = aopts.flags & (ACTION_RELAY | ACTION_MAILDIR);
	if (kind == 0)
		yyerror("action \"%s\": relay or maildir required",
		    aopts.name);
	else if (kind == (ACTION_RELAY | ACTION_MAILDIR))
		yyerror("action \"%s\": relay and maildir are exclusive",
		    aopts.name);
	/*
	 * The password goes only to a relay host whose certificate and
	 * name were checked: opportunistic TLS would hand it to anyone
	 * in the middle.
	 */
	if ((aopts.flags & ACTION_RELAY) && aopts.auth_table[0] != '\0') {
		if (aopts.relay_host[0] == '\0')
			yyerror_at(file->name, aopts_auth_lineno, "auth <%s>: "
			    "needs a relay host", aopts.auth_table);
		else if (!(aopts.flags & ACTION_TLS_VERIFY))
			yyerror_at(file->name, aopts_auth_lineno, "auth <%s>: "
			    "needs tls verify, so that the password goes only "
			    "to the server named", aopts.auth_table);
	}
	if ((aopts.flags & ACTION_RELAY) && aopts.relay_host[0] != '\0' &&
	    aopts.auth_table[0] != '\0' &&
	    (t = table_find(conf, aopts.auth_table)) != NULL)
		check_relay_auth(t, aopts.relay_host, aopts_auth_lineno);
	if (!aopts_ok)
		return;
	if ((a = malloc(sizeof(*a))) == NULL)
		fatal("action_finish");
	*a = aopts;
	TAILQ_INSERT_TAIL(&conf->actions, a, entry);
}

/*
 * The levels of a spam statement, in the scan block or an action.  The
 * quarantine level sits between the others, or it would never apply;
 * 0 stands for no quarantine, so a quarantine level is above 0.
 */
static void
spam_levels_finish(void)
{
	struct spam_levels	*l = &slevels;

	if (l->tag < -1000 || l->tag > 1000 || l->reject < -1000 ||
	    l->reject > 1000 || l->quarantine < -1000 || l->quarantine > 1000)
		yyerror("spam levels must be between -1000 and 1000");
	else if (l->reject <= l->tag)
		yyerror("spam reject level must be higher than the tag level");
	else if ((slevels_set & POPT_QUARANTINE) && (l->quarantine <= 0 ||
	    l->quarantine < l->tag || l->quarantine >= l->reject))
		yyerror("spam quarantine level must be above 0, at least the "
		    "tag level and below the reject level");
}

/* "unix:/path", or "address:port" with an IPv6 address in brackets. */
static int
valid_spamd(const char *s)
{
	struct sockaddr_un	 sun;
	struct in6_addr		 in6;
	char			 host[HOSTNAME_LEN];
	const char		*colon, *errstr;
	size_t			 len;

	if (strncmp(s, "unix:", 5) == 0)
		return (s[5] == '/' && strlen(s + 5) < sizeof(sun.sun_path));
	if (s[0] == '[') {
		if ((colon = strchr(s, ']')) == NULL || colon[1] != ':')
			return (0);
		len = colon - s - 1;
		colon++;
		if (len == 0 || len >= sizeof(host))
			return (0);
		memcpy(host, s + 1, len);
		host[len] = '\0';
		if (inet_pton(AF_INET6, host, &in6) != 1)
			return (0);
	} else {
		if ((colon = strchr(s, ':')) == NULL)
			return (0);
		len = colon - s;
		if (len == 0 || len >= sizeof(host))
			return (0);
		memcpy(host, s, len);
		host[len] = '\0';
		/* The scan process does no DNS: a numeric address. */
		if (!valid_address(host, 0))
			return (0);
	}
	if (colon[1] < '0' || colon[1] > '9')
		return (0);
	(void)strtonum(colon + 1, 1, 65535, &errstr);
	return (errstr == NULL);
}

static void
scan_action(int lineno)
{
	if (aopts.flags & ACTION_SCAN)
		yyerror("scan specified twice");
	aopts.flags |= ACTION_SCAN;
	if (scan_action_file != NULL)
		return;
	if ((scan_action_file = strdup(file->name)) == NULL)
		fatal("scan_action");
	scan_action_lineno = lineno;
	(void)strlcpy(scan_action_name, aopts.name, sizeof(scan_action_name));
}

/* An action may come before the scan block, so this waits for the end. */
static void
check_scan_actions(void)
{
	if (scan_action_file != NULL && !conf->scan.enabled)
		yyerror_at(scan_action_file, scan_action_lineno,
		    "action \"%s\": scan needs a scan block",
		    scan_action_name);
}

/*
 * smtp://host[:port], smtp+tls://host[:port] or smtps://host[:port],
 * with an IPv6 address in brackets; host[:port] alone is smtp://.
 */
static int
parse_relay_url(const char *url, struct action *a)
{
	static const struct {
		const char		*prefix;
		enum relay_scheme	 scheme;
	} schemes[] = {
		{ "smtp://",		RELAY_SMTP },
		{ "smtp+tls://",	RELAY_SMTP_TLS },
		{ "smtps://",		RELAY_SMTPS }
	};
	char		 host[HOSTNAME_LEN];
	const char	*p = NULL, *end, *errstr;
	size_t		 i, len;
	long long	 port = 0;

	for (i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
		len = strlen(schemes[i].prefix);
		if (strncmp(url, schemes[i].prefix, len) == 0) {
			p = url + len;
			a->relay_scheme = schemes[i].scheme;
			break;
		}
	}
	if (p == NULL) {
		if (strstr(url, "://") != NULL)
			return (-1);
		p = url;
		a->relay_scheme = RELAY_SMTP;
	}
	if (*p == '[') {
		if ((end = strchr(p, ']')) == NULL)
			return (-1);
		len = end - p - 1;
		if (len == 0 || len >= sizeof(host))
			return (-1);
		memcpy(host, p + 1, len);
		host[len] = '\0';
		if (!valid_address(host, 0) || strchr(host, ':') == NULL)
			return (-1);
		p = end + 1;
	} else {
		len = strcspn(p, ":");
		if (len == 0 || len >= sizeof(host))
			return (-1);
		memcpy(host, p, len);
		host[len] = '\0';
		if (!valid_hostname(host))
			return (-1);
		p += len;
	}
	if (*p == ':') {
		if (p[1] < '0' || p[1] > '9')
			return (-1);
		port = strtonum(p + 1, 1, 65535, &errstr);
		if (errstr != NULL)
			return (-1);
	} else if (*p != '\0')
		return (-1);
	(void)strlcpy(a->relay_host, host, sizeof(a->relay_host));
	a->relay_port = port;
	return (0);
}

static void
match_cond(struct match_cond *c, const char *what, int neg_before,
    int neg_after, enum cond_kind kind, const char *arg)
{
	if (c->kind != COND_UNSET) {
		yyerror("%s specified twice", what);
		return;
	}
	if (neg_before && neg_after)
		yyerror("%s: double negation", what);
	c->kind = kind;
	c->negate = neg_before || neg_after;
	if (kind == COND_TABLE) {
		if (table_ref(arg) != NULL)
			(void)strlcpy(c->table, arg, sizeof(c->table));
	} else if (kind == COND_LITERAL)
		(void)set_string(c->literal, sizeof(c->literal), arg,
		    "address");
}

static void
match_finish(void)
{
	struct match_rule	*m;

	if ((m = malloc(sizeof(*m))) == NULL)
		fatal("match_finish");
	*m = mrule;
	TAILQ_INSERT_TAIL(&conf->matches, m, entry);
}

/* config_set_defaults() has set the nftables table and the block options. */
static void
firewall_begin(enum firewall_kind kind)
{
	if (conf->firewall.configured)
		yyerror("firewall specified twice");
	conf->firewall.configured = 1;
	conf->firewall.kind = kind;
	fw_set = 0;
}

static void
firewall_table(int which, const char *name, const char *what)
{
	static const char	*names[FW_TABLE_MAX] = {
		"white", "trap", "block", "spf-white"
	};
	const char		*why;

	if (fw_set & (1 << which))
		yyerror("%s %s specified twice", what, names[which]);
	fw_set |= 1 << which;
	if ((why = config_firewall_name_error(conf->firewall.kind, name)) !=
	    NULL) {
		yyerror("invalid %s name \"%s\": %s", what, name, why);
		return;
	}
	if ((why = firewall_name_taken(which, name)) != NULL) {
		yyerror("%s %s \"%s\": the name is taken by %s", what,
		    names[which], name, why);
		return;
	}
	(void)strlcpy(conf->firewall.tables[which], name,
	    sizeof(conf->firewall.tables[which]));
}

/*
 * Two lists in one set would overwrite each other at every resync;
 * with nftables, NAME6 is a set of its own too.
 */
static const char *
firewall_name_taken(int which, const char *name)
{
	static const char	*names[FW_TABLE_MAX] = {
		"white", "trap", "block", "spf-white"
	};
	const char		*other;
	size_t			 len, olen;
	int			 i, nft = conf->firewall.kind == FIREWALL_NFTABLES;

	len = strlen(name);
	for (i = 0; i < FW_TABLE_MAX; i++) {
		other = conf->firewall.tables[i];
		if (i == which || other[0] == '\0')
			continue;
		olen = strlen(other);
		if (strcmp(other, name) == 0 || (nft && ((olen == len + 1 &&
		    strncmp(other, name, len) == 0 && other[len] == '6') ||
		    (len == olen + 1 && strncmp(name, other, olen) == 0 &&
		    name[olen] == '6'))))
			return (names[i]);
	}
	return (NULL);
}

/* "family name", as nft(8) names a table. */
static void
nft_table(const char *spec)
{
	char		 family[8];
	const char	*name;
	size_t		 len;

	len = strcspn(spec, " \t");
	name = spec + len + strspn(spec + len, " \t");
	if (len >= sizeof(family) || config_firewall_name_error(
	    FIREWALL_NFTABLES, name) != NULL) {
		yyerror("invalid nftables table \"%s\"", spec);
		return;
	}
	memcpy(family, spec, len);
	family[len] = '\0';
	if (strcmp(family, "inet") != 0 && strcmp(family, "ip") != 0 &&
	    strcmp(family, "ip6") != 0) {
		yyerror("invalid nftables table \"%s\": family must be "
		    "inet, ip or ip6", spec);
		return;
	}
	if ((size_t)snprintf(conf->firewall.nft_table,
	    sizeof(conf->firewall.nft_table), "%s %s", family, name) >=
	    sizeof(conf->firewall.nft_table))
		yyerror("nftables table name too long");
}
