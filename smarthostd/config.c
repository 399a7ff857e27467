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

#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tls.h>

#include "smarthostd.h"

static void	 config_recv_table_entry(struct smarthost_config *,
		    struct imsg *);
static void	 table_entries_free(struct table *);
static int	 config_maildir_escapes(const char *);
static int	 config_spam_levels_valid(const struct spam_levels *);
static int	 config_scan_valid(const struct scan_config *);
static int	 config_firewall_valid(const struct firewall_config *);

RB_GENERATE(table_entries, table_entry, entry, table_entry_cmp);

#define CHECK_STRING(field)						\
	do {								\
		if (memchr((field), '\0', sizeof(field)) == NULL)	\
			fatalx("config_recv: unterminated " #field);	\
	} while (0)

/* The first error of the last parse, for smarthostctl reload. */
static char	 config_first_error[MESSAGE_LEN];

/*
 * Report one configuration error, "file:line: message".  On a terminal
 * (smarthostd -n, or start-up) it is printed as it is; once the daemon
 * runs it goes to the log.
 */
void
config_error(const char *fmt, ...)
{
	char	 msg[MESSAGE_LEN];
	va_list	 ap;

	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (config_first_error[0] == '\0')
		(void)strlcpy(config_first_error, msg,
		    sizeof(config_first_error));
	if (log_on_stderr())
		(void)fprintf(stderr, "%s\n", msg);
	else
		log_warnx("%s", msg);
}

void
config_errors_reset(void)
{
	config_first_error[0] = '\0';
}

void
config_errors_first(char *buf, size_t len)
{
	(void)strlcpy(buf, config_first_error[0] != '\0' ?
	    config_first_error : "unknown error", len);
}

struct smarthost_config *
config_new(void)
{
	struct smarthost_config	*conf;

	if ((conf = calloc(1, sizeof(*conf))) == NULL)
		return (NULL);
	TAILQ_INIT(&conf->tables);
	TAILQ_INIT(&conf->pkis);
	TAILQ_INIT(&conf->listeners);
	TAILQ_INIT(&conf->blocklists);
	TAILQ_INIT(&conf->dnsbls);
	TAILQ_INIT(&conf->actions);
	TAILQ_INIT(&conf->matches);
	TAILQ_INIT(&conf->scan.banned_files);
	TAILQ_INIT(&conf->includes);
	config_set_defaults(conf);
	return (conf);
}

void
config_set_defaults(struct smarthost_config *conf)
{
	char	 host[HOSTNAME_LEN];

	if (gethostname(host, sizeof(host)) == -1)
		(void)strlcpy(host, "localhost", sizeof(host));
	host[sizeof(host) - 1] = '\0';
	(void)strlcpy(conf->hostname, host, sizeof(conf->hostname));
	(void)strlcpy(conf->user, SMARTHOSTD_USER, sizeof(conf->user));
	(void)strlcpy(conf->state_dir, SMARTHOSTD_STATE,
	    sizeof(conf->state_dir));
	(void)strlcpy(conf->control_path, SMARTHOSTD_SOCKET,
	    sizeof(conf->control_path));
	(void)strlcpy(conf->pidfile, SMARTHOSTD_PIDFILE,
	    sizeof(conf->pidfile));
	conf->resolver[0] = '\0';
	conf->resolver_port = 53;

	/* spamd(8)'s defaults. */
	conf->greylist.passtime = 25 * 60;
	conf->greylist.greyexp = 4 * 3600;
	conf->greylist.whiteexp = 864 * 3600;
	conf->greylist.spf_refresh = 3600;
	conf->greylist.trapexp = 24 * 3600;
	conf->greylist.ipv6_prefix = 64;
	conf->greylist.max_entries = 1000000;
	conf->greylist.map_size = 1024 * 1024 * 1024;
	conf->tarpit.stutter_ms = 1000;
	conf->tarpit.reply_code = 550;
	conf->tarpit.max_connections = 100;
	conf->dnsbl_threshold = 1;

	(void)strlcpy(conf->scan.user, SMARTHOSTD_SCAN_USER,
	    sizeof(conf->scan.user));
	conf->scan.threads = 2;
	/* libclamav's own defaults are these or lower; clamd.conf's too. */
	conf->scan.max_filesize = 25 * 1024 * 1024;
	conf->scan.max_scansize = 100 * 1024 * 1024;
	conf->scan.max_recursion = 16;
	conf->scan.max_files = 10000;
	conf->scan.max_scantime = 120;
	conf->scan.on_limit = SCAN_FALLBACK_TEMPFAIL;
	conf->scan.on_error = SCAN_FALLBACK_TEMPFAIL;
	conf->scan.spamassassin_timeout = 30;
	conf->scan.bad_headers_reject = 0;
	conf->scan.scores[RULE_SPF_FAIL] = 3.0;
	conf->scan.scores[RULE_SPF_SOFTFAIL] = 1.0;
	conf->scan.scores[RULE_SPF_PERMERROR] = 0.5;
	conf->scan.scores[RULE_DNSBL] = 2.0;
	conf->scan.scores[RULE_NO_RDNS] = 1.0;
	conf->scan.scores[RULE_RDNS_MISMATCH] = 0.5;
	conf->scan.scores[RULE_HELO_LITERAL] = 1.0;
	conf->scan.scores[RULE_HELO_BARE] = 1.0;
	conf->scan.scores[RULE_BAD_HEADER] = 1.0;
	conf->firewall.kind = FIREWALL_NONE;
	(void)strlcpy(conf->firewall.nft_table, "inet smarthostd",
	    sizeof(conf->firewall.nft_table));
	conf->firewall.block_auth_failures = 0;
	conf->firewall.block_auth_within = 10 * 60;
	conf->firewall.block_auth_for = 60 * 60;
	conf->firewall.block_trapped = 1;
	conf->firewall.block_blocklists = 0;

	/* RFC 5321 section 4.5.3 and what Postfix and OpenSMTPD ship. */
	conf->smtp.max_message_size = 35 * 1024 * 1024;
	conf->smtp.max_recipients = 100;
	conf->smtp.max_sessions = 1000;
	conf->smtp.max_sessions_per_client = 20;
	conf->smtp.max_errors = 10;
	conf->smtp.max_hops = 50;
	conf->smtp.max_auth_failures = 5;
	conf->smtp.command_timeout = 5 * 60;
	conf->smtp.data_timeout = 3 * 60;
	conf->smtp.transaction_timeout = 30 * 60;

	conf->queue.map_size = 4ULL * 1024 * 1024 * 1024;
	conf->queue.min_free = 100 * 1024 * 1024;
	/* RFC 5321 4.5.4.1: at least 30 minutes apart, 4-5 days in all. */
	conf->queue.retry_min = 5 * 60;
	conf->queue.retry_max = 4 * 3600;
	conf->queue.lifetime = 4 * 24 * 3600;
	conf->queue.delay_warning = 0;
	/* A month for a false positive to be found and released. */
	conf->queue.quarantine_expire = 30 * 24 * 3600;
	conf->queue.max_deliveries = 100;
	conf->queue.max_per_destination = 10;
}

void
config_free(struct smarthost_config *conf)
{
	struct table		*t;
	struct pki		*p;
	struct listener		*l;
	struct blocklist	*b;
	struct dnsbl		*d;
	struct string_entry	*s;
	struct action		*a;
	struct match_rule	*m;

	if (conf == NULL)
		return;
	while ((t = TAILQ_FIRST(&conf->tables)) != NULL) {
		TAILQ_REMOVE(&conf->tables, t, entry);
		table_free(t);
	}
	while ((p = TAILQ_FIRST(&conf->pkis)) != NULL) {
		TAILQ_REMOVE(&conf->pkis, p, entry);
		pki_free(p);
	}
	while ((l = TAILQ_FIRST(&conf->listeners)) != NULL) {
		TAILQ_REMOVE(&conf->listeners, l, entry);
		free(l);
	}
	while ((b = TAILQ_FIRST(&conf->blocklists)) != NULL) {
		TAILQ_REMOVE(&conf->blocklists, b, entry);
		free(b);
	}
	while ((d = TAILQ_FIRST(&conf->dnsbls)) != NULL) {
		TAILQ_REMOVE(&conf->dnsbls, d, entry);
		free(d);
	}
	while ((s = TAILQ_FIRST(&conf->scan.banned_files)) != NULL) {
		TAILQ_REMOVE(&conf->scan.banned_files, s, entry);
		free(s->value);
		free(s);
	}
	while ((s = TAILQ_FIRST(&conf->includes)) != NULL) {
		TAILQ_REMOVE(&conf->includes, s, entry);
		free(s->value);
		free(s);
	}
	while ((a = TAILQ_FIRST(&conf->actions)) != NULL) {
		TAILQ_REMOVE(&conf->actions, a, entry);
		free(a->ca_pem);
		free(a);
	}
	while ((m = TAILQ_FIRST(&conf->matches)) != NULL) {
		TAILQ_REMOVE(&conf->matches, m, entry);
		free(m);
	}
	free(conf);
}

/*
 * Tables.
 */

int
table_entry_cmp(struct table_entry *a, struct table_entry *b)
{
	return (strcmp(a->key, b->key));
}

struct table *
table_new(const char *name)
{
	struct table	*t;

	if ((t = calloc(1, sizeof(*t))) == NULL)
		return (NULL);
	if (strlcpy(t->name, name, sizeof(t->name)) >= sizeof(t->name)) {
		free(t);
		errno = ENAMETOOLONG;
		return (NULL);
	}
	RB_INIT(&t->entries);
	return (t);
}

struct table *
table_find(struct smarthost_config *conf, const char *name)
{
	struct table	*t;

	TAILQ_FOREACH(t, &conf->tables, entry)
		if (strcmp(t->name, name) == 0)
			return (t);
	return (NULL);
}

/*
 * Add a key with an optional value.  A duplicate key keeps the first
 * value, as lookup tables conventionally do, and returns 1.
 */
int
table_add(struct table *t, const char *key, const char *value)
{
	struct table_entry	*e;

	if (strlen(key) >= TABLE_ENTRY_MAX ||
	    (value != NULL && strlen(value) >= TABLE_ENTRY_MAX)) {
		errno = ENAMETOOLONG;
		return (-1);
	}
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return (-1);
	if ((e->key = strdup(key)) == NULL ||
	    (value != NULL && (e->value = strdup(value)) == NULL)) {
		free(e->key);
		free(e);
		return (-1);
	}
	if (RB_INSERT(table_entries, &t->entries, e) != NULL) {
		free(e->key);
		free(e->value);
		free(e);
		return (1);
	}
	t->count++;
	return (0);
}

static void
table_entries_free(struct table *t)
{
	struct table_entry	*e, *next;

	RB_FOREACH_SAFE(e, table_entries, &t->entries, next) {
		RB_REMOVE(table_entries, &t->entries, e);
		free(e->key);
		free(e->value);
		free(e);
	}
	t->count = 0;
}

void
table_free(struct table *t)
{
	if (t == NULL)
		return;
	table_entries_free(t);
	free(t);
}

static char *
trim(char *s)
{
	char	*end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return (s);
}

/*
 * Load a table file: one entry a line, "key" or "key value" or, as in
 * aliases(5), "key: value".  '#' starts a comment.  Errors are reported
 * as "file:line: message" in errbuf.
 */
int
table_load_file(struct table *t, char *errbuf, size_t errlen)
{
	FILE	*fp;
	char	*line = NULL, *key, *value, *p;
	size_t	 linesize = 0;
	ssize_t	 linelen;
	int	 lineno = 0, ret = -1;

	if ((fp = fopen(t->path, "r")) == NULL) {
		(void)snprintf(errbuf, errlen, "%s: %s", t->path,
		    strerror(errno));
		return (-1);
	}
	while ((linelen = getline(&line, &linesize, fp)) != -1) {
		lineno++;
		if (linelen > TABLE_LINE_MAX) {
			(void)snprintf(errbuf, errlen, "%s:%d: line too long",
			    t->path, lineno);
			goto done;
		}
		if (memchr(line, '\0', (size_t)linelen) != NULL) {
			(void)snprintf(errbuf, errlen, "%s:%d: NUL byte",
			    t->path, lineno);
			goto done;
		}
		if ((p = strchr(line, '#')) != NULL)
			*p = '\0';
		key = trim(line);
		if (*key == '\0')
			continue;
		value = NULL;
		if ((p = strpbrk(key, " \t")) != NULL) {
			*p++ = '\0';
			value = trim(p);
			/* aliases(5) style "key: value" */
			if (key[strlen(key) - 1] == ':')
				key[strlen(key) - 1] = '\0';
			if (*key == '\0') {
				(void)snprintf(errbuf, errlen,
				    "%s:%d: empty key", t->path, lineno);
				goto done;
			}
		}
		if (table_add(t, key, value) == -1) {
			(void)snprintf(errbuf, errlen, "%s:%d: %s", t->path,
			    lineno, strerror(errno));
			goto done;
		}
	}
	if (ferror(fp)) {
		(void)snprintf(errbuf, errlen, "%s: %s", t->path,
		    strerror(errno));
		goto done;
	}
	ret = 0;
 done:
	free(line);
	(void)fclose(fp);
	return (ret);
}

struct action *
action_find(struct smarthost_config *conf, const char *name)
{
	struct action	*a;

	TAILQ_FOREACH(a, &conf->actions, entry)
		if (strcmp(a->name, name) == 0)
			return (a);
	return (NULL);
}

struct pki *
pki_find(struct smarthost_config *conf, const char *name)
{
	struct pki	*p;

	TAILQ_FOREACH(p, &conf->pkis, entry)
		if (strcmp(p->name, name) == 0)
			return (p);
	return (NULL);
}

void
pki_free(struct pki *p)
{
	free(p->cert);
	freezero(p->key, p->key_len);
	free(p);
}

static char *
pki_read_file(const char *path, size_t *len, char *errbuf, size_t errlen)
{
	struct stat	 sb;
	const char	*why = NULL;
	char		*buf;
	ssize_t		 n;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		(void)snprintf(errbuf, errlen, "%s: %s", path, strerror(errno));
		return (NULL);
	}
	if (fstat(fd, &sb) == -1)
		why = strerror(errno);
	else if (!S_ISREG(sb.st_mode))
		why = "not a regular file";
	else if (sb.st_size <= 0)
		why = "empty file";
	else if (sb.st_size > PKI_FILE_MAX)
		why = "file too large";
	if (why != NULL) {
		(void)snprintf(errbuf, errlen, "%s: %s", path, why);
		(void)close(fd);
		return (NULL);
	}
	if ((buf = malloc(sb.st_size)) == NULL)
		fatal("pki_read_file");
	n = read(fd, buf, sb.st_size);
	(void)close(fd);
	if (n != sb.st_size) {
		(void)snprintf(errbuf, errlen, "%s: short read", path);
		freezero(buf, sb.st_size);
		return (NULL);
	}
	*len = n;
	return (buf);
}

/*
 * The parent reads certificates and keys once per (re)load, so that a
 * reload picks up renewed certificates and smtp never needs the files.
 */
int
pki_load(struct pki *p, char *errbuf, size_t errlen)
{
	free(p->cert);
	freezero(p->key, p->key_len);
	p->cert = p->key = NULL;
	p->cert_len = p->key_len = 0;
	if ((p->cert = pki_read_file(p->cert_file, &p->cert_len, errbuf,
	    errlen)) == NULL)
		return (-1);
	if ((p->key = pki_read_file(p->key_file, &p->key_len, errbuf,
	    errlen)) == NULL)
		return (-1);
	return (0);
}

int
string_list_add(struct string_list *list, const char *value)
{
	struct string_entry	*s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return (-1);
	if ((s->value = strdup(value)) == NULL) {
		free(s);
		return (-1);
	}
	TAILQ_INSERT_TAIL(list, s, entry);
	return (0);
}

/*
 * Password tables and private keys must be readable by their owner only:
 * a secret that others can read is no secret, and refusing to start is
 * kinder than a silent leak.
 */
int
config_check_secret_file(const char *path, char *errbuf, size_t errlen)
{
	struct stat	 sb;

	if (stat(path, &sb) == -1) {
		(void)snprintf(errbuf, errlen, "%s: %s", path,
		    strerror(errno));
		return (-1);
	}
	if (!S_ISREG(sb.st_mode)) {
		(void)snprintf(errbuf, errlen, "%s: not a regular file", path);
		return (-1);
	}
	if (sb.st_mode & (S_IRWXG | S_IRWXO)) {
		(void)snprintf(errbuf, errlen,
		    "%s: secret file is group- or world-accessible "
		    "(mode %04o); chmod 0600 it", path,
		    (unsigned int)(sb.st_mode & 07777));
		return (-1);
	}
	return (0);
}

/*
 * Whether a maildir path could leave the state directory, where the queue
 * process is chrooted: absolute, or with a ".." component.
 */
static int
config_maildir_escapes(const char *path)
{
	const char	*p;
	size_t		 len;

	if (path[0] == '/')
		return (1);
	for (p = path; *p != '\0'; p += len) {
		p += strspn(p, "/");
		len = strcspn(p, "/");
		if (len == 2 && p[0] == '.' && p[1] == '.')
			return (1);
	}
	return (0);
}

/*
 * Configuration transfer from the parent to a child.  Fixed-size structs
 * travel as they are (both ends are the same binary); the receiver clears
 * every pointer and checks every string before it uses anything.
 */

static void
compose_or_die(struct imsgev *iev, uint32_t type, const void *data,
    size_t len)
{
	if (imsgev_compose(iev, type, 0, 0, -1, data, len) == -1)
		fatal("config_send");
}

/*
 * An action that checks certificates needs its CA bundle in the queue
 * process, which is chrooted away from /etc/ssl: the parent opens the
 * file and passes the descriptor along.
 */
static void
config_send_action(struct imsgev *iev, struct action *a,
    enum smarthost_proc proc)
{
	struct action	 wire;
	const char	*path;
	int		 fd;

	wire = *a;
	memset(&wire.entry, 0, sizeof(wire.entry));
	wire.ca_pem = NULL;
	wire.ca_len = 0;
	compose_or_die(iev, IMSG_CONF_ACTION, &wire, sizeof(wire));
	if (proc != PROC_QUEUE || !(a->flags & ACTION_TLS_VERIFY))
		return;
	path = a->ca_file[0] != '\0' ? a->ca_file : tls_default_ca_cert_file();
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		log_warn("action %s: CA file %s", a->name, path);
		return;
	}
	if (imsgev_compose(iev, IMSG_CONF_ACTION_CA, 0, 0, fd, a->name,
	    strlen(a->name) + 1) == -1)
		fatal("config_send");
}

static int
table_is_relay_auth(struct smarthost_config *conf, struct table *t)
{
	struct action	*a;

	TAILQ_FOREACH(a, &conf->actions, entry)
		if ((a->flags & ACTION_RELAY) &&
		    strcmp(a->auth_table, t->name) == 0)
			return (1);
	return (0);
}

static void
config_send_table(struct imsgev *iev, struct smarthost_config *conf,
    struct table *t, enum smarthost_proc proc)
{
	struct table_entry	*e;
	struct table		 wire;
	char			 buf[TABLE_ENTRY_MAX * 2];
	size_t			 klen, vlen;
	int			 send = !t->secret;

	/* The relay's own credentials go to the queue, which logs in. */
	if (t->secret && proc == PROC_QUEUE && table_is_relay_auth(conf, t))
		send = 1;
	wire = *t;
	memset(&wire.entry, 0, sizeof(wire.entry));
	RB_INIT(&wire.entries);
	/* Entries count themselves; a secret table keeps its size. */
	if (send)
		wire.count = 0;
	compose_or_die(iev, IMSG_CONF_TABLE, &wire, sizeof(wire));
	if (!send)
		return;
	RB_FOREACH(e, table_entries, &t->entries) {
		klen = strlen(e->key) + 1;
		vlen = e->value == NULL ? 0 : strlen(e->value) + 1;
		memcpy(buf, e->key, klen);
		if (vlen)
			memcpy(buf + klen, e->value, vlen);
		compose_or_die(iev, IMSG_CONF_TABLE_ENTRY, buf, klen + vlen);
	}
}

/*
 * A pki's certificate and key travel only to smtp, which builds its TLS
 * contexts from memory and never opens the files itself.
 */
static void
config_send_pki(struct imsgev *iev, struct pki *p, enum smarthost_proc proc)
{
	struct pki	 wire;

	wire = *p;
	memset(&wire.entry, 0, sizeof(wire.entry));
	wire.cert = wire.key = NULL;
	wire.cert_len = wire.key_len = 0;
	compose_or_die(iev, IMSG_CONF_PKI, &wire, sizeof(wire));
	if (proc != PROC_SMTP || p->cert == NULL || p->key == NULL)
		return;
	compose_or_die(iev, IMSG_CONF_PKI_CERT, p->cert, p->cert_len);
	compose_or_die(iev, IMSG_CONF_PKI_KEY, p->key, p->key_len);
}

void
config_send(struct imsgev *iev, struct smarthost_config *conf,
    enum smarthost_proc proc)
{
	struct config_globals	 g;
	struct table		*t;
	struct pki		*p;
	struct listener		*l;
	struct blocklist	*b;
	struct dnsbl		*d;
	struct string_entry	*s;
	struct action		*a;
	struct match_rule	*m;

	compose_or_die(iev, IMSG_CONF_START, NULL, 0);

	memset(&g, 0, sizeof(g));
	(void)strlcpy(g.hostname, conf->hostname, sizeof(g.hostname));
	(void)strlcpy(g.user, conf->user, sizeof(g.user));
	(void)strlcpy(g.state_dir, conf->state_dir, sizeof(g.state_dir));
	(void)strlcpy(g.control_path, conf->control_path,
	    sizeof(g.control_path));
	(void)strlcpy(g.pidfile, conf->pidfile, sizeof(g.pidfile));
	(void)strlcpy(g.resolver, conf->resolver, sizeof(g.resolver));
	g.resolver_port = conf->resolver_port;
	g.greylist = conf->greylist;
	g.tarpit = conf->tarpit;
	g.dnsbl_threshold = conf->dnsbl_threshold;
	g.scan = conf->scan;
	memset(&g.scan.banned_files, 0, sizeof(g.scan.banned_files));
	g.firewall = conf->firewall;
	g.smtp = conf->smtp;
	g.queue = conf->queue;
	compose_or_die(iev, IMSG_CONF_GLOBALS, &g, sizeof(g));

	TAILQ_FOREACH(t, &conf->tables, entry)
		config_send_table(iev, conf, t, proc);
	TAILQ_FOREACH(p, &conf->pkis, entry)
		config_send_pki(iev, p, proc);
	TAILQ_FOREACH(l, &conf->listeners, entry)
		compose_or_die(iev, IMSG_CONF_LISTENER, l, sizeof(*l));
	TAILQ_FOREACH(b, &conf->blocklists, entry)
		compose_or_die(iev, IMSG_CONF_BLOCKLIST, b, sizeof(*b));
	TAILQ_FOREACH(d, &conf->dnsbls, entry)
		compose_or_die(iev, IMSG_CONF_DNSBL, d, sizeof(*d));
	TAILQ_FOREACH(s, &conf->scan.banned_files, entry)
		compose_or_die(iev, IMSG_CONF_BANNED_FILE, s->value,
		    strlen(s->value) + 1);
	TAILQ_FOREACH(a, &conf->actions, entry)
		config_send_action(iev, a, proc);
	TAILQ_FOREACH(m, &conf->matches, entry)
		compose_or_die(iev, IMSG_CONF_MATCH, m, sizeof(*m));
	compose_or_die(iev, IMSG_CONF_END, NULL, 0);
}

/* What parse.y allows; the subject is known to be terminated. */
static int
config_spam_levels_valid(const struct spam_levels *l)
{
	const char	*p;

	if (!l->set)
		return (l->tag == 0 && l->reject == 0 && l->quarantine == 0 &&
		    l->subject[0] == '\0');
	if (l->set != 1 || !(l->tag >= -1000 && l->tag < l->reject &&
	    l->reject <= 1000))
		return (0);
	if (l->quarantine != 0 && !(l->quarantine > 0 &&
	    l->quarantine >= l->tag && l->quarantine < l->reject))
		return (0);
	for (p = l->subject; *p != '\0'; p++)
		if (*p < ' ' || *p > '~')
			return (0);
	return (1);
}

/* The scan settings, strings already known to be terminated. */
static int
config_scan_valid(const struct scan_config *s)
{
	const char	*p = s->spamassassin;
	int		 i;

	if ((s->enabled != 0 && s->enabled != 1) ||
	    s->threads < 1 || s->threads > 64 ||
	    s->max_filesize < 1024 || s->max_filesize > 4ULL << 30 ||
	    s->max_scansize < 1024 || s->max_scansize > 4ULL << 30 ||
	    s->max_recursion < 1 || s->max_recursion > 64 ||
	    s->max_files < 1 || s->max_files > 1000000 ||
	    s->max_scantime < 1 || s->max_scantime > 3600 ||
	    s->on_limit > SCAN_FALLBACK_REJECT ||
	    s->on_error > SCAN_FALLBACK_ACCEPT ||
	    s->spamassassin_timeout < 1 || s->spamassassin_timeout > 600 ||
	    (s->bad_headers_reject != 0 && s->bad_headers_reject != 1) ||
	    !config_spam_levels_valid(&s->spam))
		return (0);
	if (p[0] != '\0' && strncmp(p, "unix:/", 6) != 0 &&
	    strchr(p, ':') == NULL)
		return (0);
	for (i = 0; i < RULE_MAX; i++)
		if (!(s->scores[i] >= -100 && s->scores[i] <= 100))
			return (0);
	return (1);
}

/*
 * What parse.y allows, strings already known to be terminated.  The pf
 * process builds nftables commands from these names, so they are checked
 * again here rather than trusted.
 */
static int
config_firewall_valid(const struct firewall_config *f)
{
	int		 i;

	if ((f->configured != 0 && f->configured != 1) ||
	    (f->kind != FIREWALL_NONE && f->kind != FIREWALL_PF &&
	    f->kind != FIREWALL_NFTABLES) ||
	    f->block_auth_failures > 1000 ||
	    f->block_auth_within < 60 || f->block_auth_within > 86400 ||
	    f->block_auth_for < 60 || f->block_auth_for > 30 * 86400 ||
	    (f->block_trapped != 0 && f->block_trapped != 1) ||
	    (f->block_blocklists != 0 && f->block_blocklists != 1))
		return (0);
	if (strncmp(f->nft_table, "inet ", 5) != 0 &&
	    strncmp(f->nft_table, "ip ", 3) != 0 &&
	    strncmp(f->nft_table, "ip6 ", 4) != 0)
		return (0);
	if (config_firewall_name_error(FIREWALL_NFTABLES,
	    strchr(f->nft_table, ' ') + 1) != NULL)
		return (0);
	for (i = 0; i < FW_TABLE_MAX; i++)
		if (f->tables[i][0] != '\0' &&
		    config_firewall_name_error(f->kind, f->tables[i]) != NULL)
			return (0);
	return (1);
}

/*
 * Why a firewall table or set name cannot be used, or NULL: pf holds 31
 * characters (PF_TABLE_NAME_SIZE); nft(8) reads an identifier that starts
 * with a letter, and the daemon adds NAME6 for the IPv6 set.  parse.y,
 * config_recv and the backends share these rules.
 */
const char *
config_firewall_name_error(enum firewall_kind kind, const char *name)
{
	const char	*s;
	size_t		 max = kind == FIREWALL_PF ? 31 : NAME_MAX_LEN - 2;

	if (*name == '\0')
		return ("empty");
	if (strlen(name) > max)
		return (kind == FIREWALL_PF ? "longer than 31 characters" :
		    "longer than 62 characters");
	if (kind == FIREWALL_NFTABLES && !isalpha((unsigned char)*name))
		return ("an nftables name starts with a letter");
	for (s = name; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' &&
		    *s != '.')
			return ("only letters, digits, '_', '-' and '.' "
			    "are allowed");
	return (NULL);
}

static void
config_recv_globals(struct smarthost_config *conf, struct imsg *imsg)
{
	struct config_globals	 g;
	int			 i;

	imsg_expect_size(imsg, sizeof(g));
	(void)imsg_get_data(imsg, &g, sizeof(g));
	CHECK_STRING(g.hostname);
	CHECK_STRING(g.user);
	CHECK_STRING(g.state_dir);
	CHECK_STRING(g.control_path);
	CHECK_STRING(g.pidfile);
	CHECK_STRING(g.resolver);
	CHECK_STRING(g.greylist.whitelist);
	CHECK_STRING(g.greylist.spf_whitelist);
	CHECK_STRING(g.greylist.trap_table);
	CHECK_STRING(g.scan.user);
	CHECK_STRING(g.scan.clamav_db);
	CHECK_STRING(g.scan.spam.subject);
	CHECK_STRING(g.scan.spamassassin);
	CHECK_STRING(g.firewall.nft_table);
	for (i = 0; i < FW_TABLE_MAX; i++)
		CHECK_STRING(g.firewall.tables[i]);
	/* The relay schedules by these; parse.y has checked them. */
	if (g.queue.retry_min < 1 || g.queue.retry_max < g.queue.retry_min ||
	    g.queue.lifetime <= g.queue.retry_min ||
	    g.queue.delay_warning < 0 ||
	    (g.queue.delay_warning != 0 &&
	    g.queue.delay_warning >= g.queue.lifetime) ||
	    g.queue.quarantine_expire < 0 ||
	    g.queue.quarantine_expire > 365 * 86400 ||
	    g.queue.max_deliveries < 1 || g.queue.max_per_destination < 1 ||
	    g.queue.max_per_destination > g.queue.max_deliveries)
		fatalx("config_recv: bad queue limits");
	/* grey keys, sizes and stutters by these; parse.y has checked them. */
	if (g.greylist.trapexp < 1 || g.greylist.ipv6_prefix < 16 ||
	    g.greylist.ipv6_prefix > 128 || g.greylist.max_entries < 1 ||
	    g.greylist.max_entries > 100000000 ||
	    g.greylist.map_size < 1024 * 1024)
		fatalx("config_recv: bad greylist limits");
	if (g.tarpit.stutter_ms > 10000 || (g.tarpit.reply_code != 450 &&
	    g.tarpit.reply_code != 550) || g.tarpit.max_connections > 100000)
		fatalx("config_recv: bad tarpit settings");
	if (g.dnsbl_threshold < 1 || g.dnsbl_threshold > 1000)
		fatalx("config_recv: bad dnsbl threshold");
	if (!config_scan_valid(&g.scan))
		fatalx("config_recv: bad scan settings");
	if (!config_firewall_valid(&g.firewall))
		fatalx("config_recv: bad firewall settings");

	(void)strlcpy(conf->hostname, g.hostname, sizeof(conf->hostname));
	(void)strlcpy(conf->user, g.user, sizeof(conf->user));
	(void)strlcpy(conf->state_dir, g.state_dir, sizeof(conf->state_dir));
	(void)strlcpy(conf->control_path, g.control_path,
	    sizeof(conf->control_path));
	(void)strlcpy(conf->pidfile, g.pidfile, sizeof(conf->pidfile));
	(void)strlcpy(conf->resolver, g.resolver, sizeof(conf->resolver));
	conf->resolver_port = g.resolver_port;
	conf->greylist = g.greylist;
	conf->tarpit = g.tarpit;
	conf->dnsbl_threshold = g.dnsbl_threshold;
	g.scan.banned_files = conf->scan.banned_files;
	conf->scan = g.scan;
	conf->firewall = g.firewall;
	conf->smtp = g.smtp;
	conf->queue = g.queue;
}

static void
config_recv_table(struct smarthost_config *conf, struct imsg *imsg)
{
	struct table	*t;

	imsg_expect_size(imsg, sizeof(*t));
	if ((t = calloc(1, sizeof(*t))) == NULL)
		fatal("config_recv");
	(void)imsg_get_data(imsg, t, sizeof(*t));
	CHECK_STRING(t->name);
	CHECK_STRING(t->path);
	RB_INIT(&t->entries);
	if (table_find(conf, t->name) != NULL)
		fatalx("config_recv: duplicate table %s", t->name);
	TAILQ_INSERT_TAIL(&conf->tables, t, entry);
}

static void
config_recv_table_entry(struct smarthost_config *conf, struct imsg *imsg)
{
	struct table	*t;
	char		 buf[TABLE_ENTRY_MAX * 2], *key, *value = NULL;
	size_t		 len, klen;

	if ((t = TAILQ_LAST(&conf->tables, tables)) == NULL ||
	    (t->secret && smarthost_process != PROC_QUEUE))
		fatalx("config_recv: table entry without a table");
	len = imsg_get_len(imsg);
	if (len == 0 || len > sizeof(buf))
		fatalx("config_recv: bad table entry size %zu", len);
	(void)imsg_get_data(imsg, buf, len);
	if (buf[len - 1] != '\0')
		fatalx("config_recv: unterminated table entry");
	key = buf;
	klen = strlen(key) + 1;
	if (klen < len) {
		value = buf + klen;
		if (strlen(value) + 1 != len - klen)
			fatalx("config_recv: malformed table entry");
	}
	if (table_add(t, key, value) == -1)
		fatal("config_recv: table %s", t->name);
}

static void
config_recv_pki_pem(struct smarthost_config *conf, struct imsg *imsg)
{
	struct pki	*p;
	char		*pem;
	size_t		 len = imsg_get_len(imsg);

	if (smarthost_process != PROC_SMTP)
		fatalx("config_recv: key material outside smtp");
	if ((p = TAILQ_LAST(&conf->pkis, pkis)) == NULL)
		fatalx("config_recv: pem without a pki");
	if (len == 0 || (pem = malloc(len)) == NULL)
		fatal("config_recv: pem");
	(void)imsg_get_data(imsg, pem, len);
	if (imsg_get_type(imsg) == IMSG_CONF_PKI_CERT) {
		if (p->cert != NULL)
			fatalx("config_recv: second certificate");
		p->cert = pem;
		p->cert_len = len;
	} else {
		if (p->key != NULL)
			fatalx("config_recv: second key");
		p->key = pem;
		p->key_len = len;
	}
}

static void
config_recv_action_ca(struct smarthost_config *conf, struct imsg *imsg)
{
	struct action	*a;
	struct stat	 sb;
	char		*name;
	ssize_t		 n;
	int		 fd;

	if (smarthost_process != PROC_QUEUE)
		fatalx("config_recv: CA bundle outside the queue");
	name = imsg_expect_string(imsg);
	if ((a = TAILQ_LAST(&conf->actions, actions)) == NULL ||
	    strcmp(a->name, name) != 0 || a->ca_pem != NULL)
		fatalx("config_recv: CA bundle for the wrong action");
	free(name);
	if ((fd = imsg_get_fd(imsg)) == -1)
		fatalx("config_recv: CA bundle without a descriptor");
	if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode) || sb.st_size <= 0 ||
	    sb.st_size > CA_FILE_MAX) {
		log_warnx("action %s: the CA bundle is not a regular file of "
		    "1 to %d bytes", a->name, CA_FILE_MAX);
		(void)close(fd);
		return;
	}
	if ((a->ca_pem = malloc(sb.st_size)) == NULL)
		fatal("config_recv");
	n = read(fd, a->ca_pem, sb.st_size);
	(void)close(fd);
	if (n != sb.st_size) {
		log_warnx("action %s: short read of the CA bundle", a->name);
		free(a->ca_pem);
		a->ca_pem = NULL;
		return;
	}
	a->ca_len = n;
}

static void *
config_recv_struct(struct imsg *imsg, size_t size)
{
	void	*p;

	imsg_expect_size(imsg, size);
	if ((p = calloc(1, size)) == NULL)
		fatal("config_recv");
	(void)imsg_get_data(imsg, p, size);
	return (p);
}

/*
 * Feed one configuration message into *pending.  Returns 1 when the
 * configuration is complete, 0 while more is expected.
 */
int
config_recv(struct smarthost_config **pending, struct imsg *imsg)
{
	struct smarthost_config	*conf = *pending;
	struct pki		*p;
	struct listener		*l;
	struct blocklist	*b;
	struct dnsbl		*d;
	struct action		*a;
	struct match_rule	*m;
	char			*s;
	uint32_t		 type = imsg_get_type(imsg);

	if (type == IMSG_CONF_START) {
		imsg_expect_size(imsg, 0);
		config_free(*pending);
		if ((*pending = config_new()) == NULL)
			fatal("config_recv");
		return (0);
	}
	if (conf == NULL)
		fatalx("config_recv: %u before IMSG_CONF_START", type);

	switch (type) {
	case IMSG_CONF_GLOBALS:
		config_recv_globals(conf, imsg);
		break;
	case IMSG_CONF_TABLE:
		config_recv_table(conf, imsg);
		break;
	case IMSG_CONF_TABLE_ENTRY:
		config_recv_table_entry(conf, imsg);
		break;
	case IMSG_CONF_PKI:
		p = config_recv_struct(imsg, sizeof(*p));
		CHECK_STRING(p->name);
		CHECK_STRING(p->cert_file);
		CHECK_STRING(p->key_file);
		p->cert = p->key = NULL;
		p->cert_len = p->key_len = 0;
		TAILQ_INSERT_TAIL(&conf->pkis, p, entry);
		break;
	case IMSG_CONF_PKI_CERT:
	case IMSG_CONF_PKI_KEY:
		config_recv_pki_pem(conf, imsg);
		break;
	case IMSG_CONF_LISTENER:
		l = config_recv_struct(imsg, sizeof(*l));
		CHECK_STRING(l->on);
		CHECK_STRING(l->pki);
		CHECK_STRING(l->auth_table);
		CHECK_STRING(l->hostname);
		if (l->tls > LISTEN_SMTPS)
			fatalx("config_recv: bad listener tls mode");
		TAILQ_INSERT_TAIL(&conf->listeners, l, entry);
		break;
	case IMSG_CONF_BLOCKLIST:
		b = config_recv_struct(imsg, sizeof(*b));
		CHECK_STRING(b->name);
		CHECK_STRING(b->path);
		CHECK_STRING(b->message);
		if ((b->white != 0 && b->white != 1) ||
		    strlen(b->message) > BLOCK_MESSAGE_MAX)
			fatalx("config_recv: bad blocklist %s", b->name);
		TAILQ_INSERT_TAIL(&conf->blocklists, b, entry);
		break;
	case IMSG_CONF_DNSBL:
		d = config_recv_struct(imsg, sizeof(*d));
		CHECK_STRING(d->zone);
		if (d->zone[0] == '\0' ||
		    strspn(d->zone, "abcdefghijklmnopqrstuvwxyz0123456789-.") !=
		    strlen(d->zone) || d->weight == 0 || d->weight < -100 ||
		    d->weight > 100)
			fatalx("config_recv: bad dnsbl %s", d->zone);
		TAILQ_INSERT_TAIL(&conf->dnsbls, d, entry);
		break;
	case IMSG_CONF_BANNED_FILE:
		s = imsg_expect_string(imsg);
		if (string_list_add(&conf->scan.banned_files, s) == -1)
			fatal("config_recv");
		free(s);
		break;
	case IMSG_CONF_ACTION_CA:
		config_recv_action_ca(conf, imsg);
		break;
	case IMSG_CONF_ACTION:
		a = config_recv_struct(imsg, sizeof(*a));
		a->ca_pem = NULL;
		a->ca_len = 0;
		CHECK_STRING(a->name);
		CHECK_STRING(a->relay_host);
		CHECK_STRING(a->helo);
		CHECK_STRING(a->auth_table);
		CHECK_STRING(a->alias_table);
		CHECK_STRING(a->maildir);
		CHECK_STRING(a->ca_file);
		if (a->relay_scheme > RELAY_SMTPS)
			fatalx("config_recv: bad relay scheme");
		if (config_maildir_escapes(a->maildir))
			fatalx("config_recv: maildir outside the state dir");
		CHECK_STRING(a->spam.subject);
		if ((a->scan_virus_only != 0 && a->scan_virus_only != 1) ||
		    (a->scan_virus_only && a->spam.set) ||
		    !config_spam_levels_valid(&a->spam))
			fatalx("config_recv: bad scan options of action %s",
			    a->name);
		TAILQ_INSERT_TAIL(&conf->actions, a, entry);
		break;
	case IMSG_CONF_MATCH:
		m = config_recv_struct(imsg, sizeof(*m));
		CHECK_STRING(m->action);
		CHECK_STRING(m->from.table);
		CHECK_STRING(m->from.literal);
		CHECK_STRING(m->auth.table);
		CHECK_STRING(m->auth.literal);
		CHECK_STRING(m->rcpt_for.table);
		CHECK_STRING(m->rcpt_for.literal);
		CHECK_STRING(m->rcpt_to.table);
		CHECK_STRING(m->rcpt_to.literal);
		CHECK_STRING(m->mail_from.table);
		CHECK_STRING(m->mail_from.literal);
		TAILQ_INSERT_TAIL(&conf->matches, m, entry);
		break;
	case IMSG_CONF_END:
		imsg_expect_size(imsg, 0);
		return (1);
	default:
		fatalx("config_recv: unexpected imsg %u", type);
	}
	return (0);
}
