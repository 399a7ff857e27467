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
 * Spam scoring for the scan process: the built-in rules over what grey
 * knows of the client, the bad-header checks, the SpamAssassin spamd
 * client, and the headers that report the outcome.  Everything here
 * runs in the scan process's worker threads: no event loop, no logging,
 * no global state.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "smarthostd.h"

#define SPAMD_REPLY_MAX		(64 * 1024)
#define SCORE_TESTS_MAX		1024
#define HEADER_LINE_WIDTH	76

struct score {
	double		 total;
	char		 tests[SCORE_TESTS_MAX];
	char		 first_bad[MESSAGE_LEN];	/* bad-headers reject */
};

static void	 score_add(struct score *, const char *, double);
static void	 score_facts(const struct scan_config *,
		    const struct scan_request *, struct score *);
static void	 score_helo(const struct scan_config *,
		    const struct scan_request *, struct score *);
static void	 score_headers(const struct scan_config *,
		    const unsigned char *, size_t, struct score *);
static void	 bad_header(const struct scan_config *, struct score *,
		    const char *, const char *);
static int	 spamd_score(const struct scan_config *,
		    const unsigned char *, size_t, struct score *, char *,
		    size_t);
static int	 spamd_connect(const char *, const char *, char *, size_t);
static int	 spamd_io(int, short, struct timespec *);
static int	 spamd_parse(char *, struct score *, char *, size_t);
static double	 timespec_left_ms(const struct timespec *);

/*
 * Score a message: the rules, the header checks, and spamd when one is
 * configured.  On return res has the verdict, the score, the headers and
 * the subject prefix; -1 (with why) when spamd failed, for the caller to
 * treat as on-error says.
 */
int
scan_score(const struct scan_config *sc, const char *hostname,
    const struct scan_request *req, const unsigned char *body, size_t len,
    struct scan_result *res, char *why, size_t whylen)
{
	const struct spam_levels	*lv = &req->spam;
	struct score			 s;
	char				 line[SCORE_TESTS_MAX + 128];
	char				 stars[51];
	int				 n, i;

	memset(&s, 0, sizeof(s));
	score_facts(sc, req, &s);
	score_helo(sc, req, &s);
	score_headers(sc, body, len, &s);
	if (sc->bad_headers_reject && s.first_bad[0] != '\0') {
		res->verdict = SCAN_BAD_HEADER;
		(void)strlcpy(res->reason, s.first_bad, sizeof(res->reason));
		return (0);
	}
	if (sc->spamassassin[0] != '\0' &&
	    spamd_score(sc, body, len, &s, why, whylen) == -1)
		return (-1);

	res->score = s.total;
	res->strip_spam_headers = 1;
	res->tagged = s.total >= lv->tag;
	if (s.total >= lv->reject) {
		res->verdict = SCAN_SPAM;
		(void)snprintf(res->reason, sizeof(res->reason),
		    "score %.1f", s.total);
	} else if (lv->quarantine > 0 && s.total >= lv->quarantine)
		res->verdict = SCAN_QUARANTINE;

	(void)snprintf(line, sizeof(line), "%s, score=%.1f required=%.1f "
	    "tests=%s", res->tagged ? "Yes" : "No", s.total, lv->tag,
	    s.tests[0] != '\0' ? s.tests : "none");
	scan_header_append(res, "X-Spam-Status", line);
	if (res->tagged) {
		scan_header_append(res, "X-Spam-Flag", "YES");
		(void)snprintf(line, sizeof(line), "%.1f", s.total);
		scan_header_append(res, "X-Spam-Score", line);
		n = s.total < 0 ? 0 : s.total > 50 ? 50 : (int)s.total;
		for (i = 0; i < n; i++)
			stars[i] = '*';
		stars[n] = '\0';
		if (n > 0)
			scan_header_append(res, "X-Spam-Level", stars);
		(void)strlcpy(res->subject_prefix, lv->subject,
		    sizeof(res->subject_prefix));
	}
	if (req->facts_known && req->facts.spf_domain[0] != '\0') {
		/* RFC 8601: the null sender's SPF identity is the HELO. */
		(void)snprintf(line, sizeof(line), "%s; spf=%s smtp.%s=%s",
		    hostname, spf_verdict_name(req->facts.spf),
		    req->sender[0] == '\0' ? "helo" : "mailfrom",
		    req->facts.spf_domain);
		scan_header_append(res, "Authentication-Results", line);
	}
	return (0);
}

/*
 * Append "Name: value" CRLF to the result's headers, folded at spaces
 * and commas so that lines stay near 76 characters.  What does not fit
 * in SCAN_HEADERS_MAX is dropped whole, never cut in the middle.
 */
void
scan_header_append(struct scan_result *res, const char *name,
    const char *value)
{
	char		 out[SCAN_HEADERS_MAX];
	size_t		 o = 0, col, have, i, run;
	const char	*p;
	int		 n;

	n = snprintf(out, sizeof(out), "%s:", name);
	if (n < 0 || (size_t)n >= sizeof(out))
		return;
	o = col = n;
	for (p = value; *p != '\0';) {
		/* One word: up to and including a comma, or to a space. */
		for (run = 0; p[run] != '\0' && p[run] != ' '; run++)
			if (p[run] == ',') {
				run++;
				break;
			}
		if (o + run + 4 >= sizeof(out))
			return;
		if (col + run + 1 > HEADER_LINE_WIDTH && col > 8) {
			out[o++] = '\r';
			out[o++] = '\n';
			out[o++] = '\t';
			col = 8;
		} else {
			out[o++] = ' ';
			col++;
		}
		for (i = 0; i < run; i++) {
			/* Headers carry printable ASCII only. */
			out[o++] = (p[i] >= 0x21 && p[i] <= 0x7e) ? p[i] : '?';
		}
		col += run;
		p += run;
		while (*p == ' ')
			p++;
	}
	if (o + 3 > sizeof(out))
		return;
	out[o++] = '\r';
	out[o++] = '\n';
	out[o] = '\0';
	have = strlen(res->headers);
	if (have + o >= sizeof(res->headers))
		return;
	memcpy(res->headers + have, out, o + 1);
}

static void
score_add(struct score *s, const char *test, double value)
{
	s->total += value;
	if (s->tests[0] != '\0')
		(void)strlcat(s->tests, ",", sizeof(s->tests));
	(void)strlcat(s->tests, test, sizeof(s->tests));
}

/* What grey found out: SPF, DNSBLs, reverse DNS. */
static void
score_facts(const struct scan_config *sc, const struct scan_request *req,
    struct score *s)
{
	const struct grey_facts	*f = &req->facts;
	int			 i;

	if (!req->facts_known)
		return;
	switch (f->spf) {
	case SPF_VERDICT_FAIL:
		score_add(s, "SPF_FAIL", sc->scores[RULE_SPF_FAIL]);
		break;
	case SPF_VERDICT_SOFTFAIL:
		score_add(s, "SPF_SOFTFAIL", sc->scores[RULE_SPF_SOFTFAIL]);
		break;
	case SPF_VERDICT_PERMERROR:
		score_add(s, "SPF_PERMERROR", sc->scores[RULE_SPF_PERMERROR]);
		break;
	default:
		break;
	}
	for (i = 0; i < f->dnsbl_hits && i < 64; i++)
		score_add(s, "RCVD_IN_DNSBL", sc->scores[RULE_DNSBL]);
	if (f->rdns == RDNS_NONE)
		score_add(s, "RDNS_NONE", sc->scores[RULE_NO_RDNS]);
	else if (f->rdns == RDNS_MISMATCH)
		score_add(s, "RDNS_MISMATCH", sc->scores[RULE_RDNS_MISMATCH]);
}

/* HELO [address] that is not the client's; HELO without a dot. */
static void
score_helo(const struct scan_config *sc, const struct scan_request *req,
    struct score *s)
{
	char		 lit[HOSTNAME_LEN], addr[64];
	const char	*h = req->helo;
	size_t		 n;

	if (h[0] == '[') {
		(void)strlcpy(lit, h + 1, sizeof(lit));
		n = strlen(lit);
		if (n > 0 && lit[n - 1] == ']')
			lit[n - 1] = '\0';
		h = lit;
		if (strncasecmp(h, "IPv6:", 5) == 0)
			h += 5;
		(void)addr_string(&req->client, addr, sizeof(addr));
		if (strcasecmp(h, addr) != 0)
			score_add(s, "HELO_LITERAL",
			    sc->scores[RULE_HELO_LITERAL]);
	} else if (strchr(h, '.') == NULL)
		score_add(s, "HELO_BARE", sc->scores[RULE_HELO_BARE]);
}

/* A finding of the header checks: scored, or the reason to refuse. */
static void
bad_header(const struct scan_config *sc, struct score *s, const char *test,
    const char *what)
{
	if (s->first_bad[0] == '\0')
		(void)strlcpy(s->first_bad, what, sizeof(s->first_bad));
	score_add(s, test, sc->scores[RULE_BAD_HEADER]);
}

/*
 * The header section, field by field (continuation lines belong to the
 * field before): the fields that must be there once, the ones that must
 * not be there twice, bytes that have no place in a header, and a
 * multipart Content-Type without its boundary.
 */
static void
score_headers(const struct scan_config *sc, const unsigned char *body,
    size_t len, struct score *s)
{
	static const struct {
		const char	*name;
		int		 required;
		const char	*missing, *dup;
	} fields[] = {
		{ "From", 1, "MISSING_FROM", "DUP_FROM" },
		{ "Date", 1, "MISSING_DATE", "DUP_DATE" },
		{ "Message-ID", 1, "MISSING_MID", "DUP_MID" },
		{ "Subject", 0, NULL, "DUP_SUBJECT" },
		{ "To", 0, NULL, "DUP_TO" },
		{ "Content-Type", 0, NULL, "DUP_CONTENT_TYPE" },
		{ "Content-Transfer-Encoding", 0, NULL, "DUP_CTE" }
	};
	const size_t	 nfields = sizeof(fields) / sizeof(fields[0]);
	int		 count[sizeof(fields) / sizeof(fields[0])];
	char		 ctype[512], what[MESSAGE_LEN], name[80];
	size_t		 i, pos = 0, eol, nlen, f, vstart;
	int		 eight = 0, ctrl = 0, in_ctype = 0;
	unsigned char	 c;

	memset(count, 0, sizeof(count));
	ctype[0] = '\0';
	while (pos < len) {
		for (eol = pos; eol < len && body[eol] != '\n'; eol++)
			;
		nlen = eol - pos;
		if (nlen > 0 && body[pos + nlen - 1] == '\r')
			nlen--;
		if (nlen == 0)
			break;		/* the end of the header section */
		for (i = pos; i < pos + nlen; i++) {
			c = body[i];
			if (c >= 0x80)
				eight = 1;
			else if ((c < 0x20 && c != '\t') || c == 0x7f)
				ctrl = 1;
		}
		vstart = pos;
		if (body[pos] != ' ' && body[pos] != '\t') {
			in_ctype = 0;
			for (i = pos; i < pos + nlen && body[i] != ':'; i++)
				;
			f = i - pos;
			if (f >= sizeof(name))
				f = sizeof(name) - 1;
			memcpy(name, body + pos, f);
			name[f] = '\0';
			while (f > 0 && (name[f - 1] == ' ' ||
			    name[f - 1] == '\t'))
				name[--f] = '\0';
			for (f = 0; f < nfields; f++)
				if (strcasecmp(name, fields[f].name) == 0) {
					count[f]++;
					if (strcasecmp(fields[f].name,
					    "Content-Type") == 0 &&
					    count[f] == 1)
						in_ctype = 1;
				}
			vstart = i < pos + nlen ? i + 1 : pos + nlen;
		}
		if (in_ctype && (i = strlen(ctype)) + 2 < sizeof(ctype)) {
			f = pos + nlen - vstart;
			if (f > sizeof(ctype) - 2 - i)
				f = sizeof(ctype) - 2 - i;
			ctype[i++] = ' ';
			memcpy(ctype + i, body + vstart, f);
			ctype[i + f] = '\0';
		}
		pos = eol + 1;
	}

	for (f = 0; f < nfields; f++) {
		if (fields[f].required && count[f] == 0) {
			(void)snprintf(what, sizeof(what),
			    "no %s header", fields[f].name);
			bad_header(sc, s, fields[f].missing, what);
		} else if (count[f] > 1) {
			(void)snprintf(what, sizeof(what),
			    "%d %s headers", count[f], fields[f].name);
			bad_header(sc, s, fields[f].dup, what);
		}
	}
	if (eight)
		bad_header(sc, s, "HEADER_8BIT",
		    "8-bit characters in the header");
	if (ctrl)
		bad_header(sc, s, "HEADER_CTRL",
		    "control characters in the header");
	for (i = 0; ctype[i] == ' ' || ctype[i] == '\t'; i++)
		;
	if (strncasecmp(ctype + i, "multipart/", 10) == 0 &&
	    strcasestr(ctype, "boundary=") == NULL)
		bad_header(sc, s, "MIME_NO_BOUNDARY",
		    "multipart Content-Type without a boundary");
}

/*
 * SpamAssassin's spamd: SYMBOLS over the spamc protocol 1.5, within
 * spamassassin-timeout for the whole exchange.  Blocking is fine here:
 * this is a worker thread, never the event loop.
 */
static int
spamd_score(const struct scan_config *sc, const unsigned char *body,
    size_t len, struct score *s, char *why, size_t whylen)
{
	struct timespec	 deadline;
	char		 head[128], *reply = NULL;
	size_t		 off = 0, got = 0;
	ssize_t		 n;
	int		 fd, ret = -1, hlen;

	if (clock_gettime(CLOCK_MONOTONIC, &deadline) == -1) {
		(void)snprintf(why, whylen, "clock_gettime: %s",
		    strerror(errno));
		return (-1);
	}
	deadline.tv_sec += sc->spamassassin_timeout > 0 ?
	    sc->spamassassin_timeout : 30;
	if ((fd = spamd_connect(sc->spamassassin, sc->clamav_db, why,
	    whylen)) == -1)
		return (-1);
	if (spamd_io(fd, POLLOUT, &deadline) == -1 ||
	    (errno = 0, getsockopt(fd, SOL_SOCKET, SO_ERROR, &ret,
	    &(socklen_t){ sizeof(ret) }) == -1) || ret != 0) {
		(void)snprintf(why, whylen, "spamd %s: connect: %s",
		    sc->spamassassin, strerror(ret > 0 ? ret :
		    errno ? errno : ETIMEDOUT));
		ret = -1;
		goto done;
	}
	ret = -1;
	hlen = snprintf(head, sizeof(head), "SYMBOLS SPAMC/1.5\r\n"
	    "Content-length: %zu\r\n\r\n", len);
	if (hlen < 0 || (size_t)hlen >= sizeof(head))
		goto done;
	while (off < (size_t)hlen + len) {
		if (spamd_io(fd, POLLOUT, &deadline) == -1)
			goto timeout;
		if (off < (size_t)hlen)
			n = write(fd, head + off, hlen - off);
		else
			n = write(fd, body + (off - hlen), len - (off - hlen));
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0) {
			(void)snprintf(why, whylen, "spamd %s: write: %s",
			    sc->spamassassin, strerror(errno));
			goto done;
		}
		off += n;
	}
	(void)shutdown(fd, SHUT_WR);
	if ((reply = malloc(SPAMD_REPLY_MAX + 1)) == NULL) {
		(void)snprintf(why, whylen, "out of memory");
		goto done;
	}
	for (;;) {
		if (got == SPAMD_REPLY_MAX) {
			(void)snprintf(why, whylen, "spamd %s: reply too long",
			    sc->spamassassin);
			goto done;
		}
		if (spamd_io(fd, POLLIN, &deadline) == -1)
			goto timeout;
		n = read(fd, reply + got, SPAMD_REPLY_MAX - got);
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n == -1) {
			(void)snprintf(why, whylen, "spamd %s: read: %s",
			    sc->spamassassin, strerror(errno));
			goto done;
		}
		if (n == 0)
			break;
		got += n;
	}
	reply[got] = '\0';
	ret = spamd_parse(reply, s, why, whylen);
	goto done;
 timeout:
	(void)snprintf(why, whylen, "spamd %s: no answer in %llds",
	    sc->spamassassin, (long long)sc->spamassassin_timeout);
 done:
	free(reply);
	(void)close(fd);
	return (ret);
}

/* "unix:/path", "host:port" or "[v6]:port", numeric: no DNS here. */
static int
spamd_connect(const char *where, const char *dbdir, char *why, size_t whylen)
{
	struct sockaddr_un	 sun;
	struct addrinfo		 hints, *ai = NULL;
	char			 host[HOSTNAME_LEN], *port;
	size_t			 dblen;
	int			 fd = -1, e;

	if (strncmp(where, "unix:", 5) == 0) {
		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		if (strlcpy(sun.sun_path, where + 5, sizeof(sun.sun_path)) >=
		    sizeof(sun.sun_path)) {
			(void)snprintf(why, whylen, "spamd %s: path too long",
			    where);
			return (-1);
		}
		if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0)) == -1)
			goto fail;
		if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
			/*
			 * Chrooted in the database directory, a socket
			 * given by its full path inside it is found
			 * without that directory's part.
			 */
			if (errno != ENOENT || (dblen = strlen(dbdir)) == 0 ||
			    strncmp(where + 5, dbdir, dblen) != 0 ||
			    where[5 + dblen] != '/')
				goto fail;
			(void)strlcpy(sun.sun_path, where + 5 + dblen,
			    sizeof(sun.sun_path));
			if (connect(fd, (struct sockaddr *)&sun,
			    sizeof(sun)) == -1)
				goto fail;
		}
		return (fd);
	}
	(void)strlcpy(host, where, sizeof(host));
	if ((port = strrchr(host, ':')) == NULL) {
		(void)snprintf(why, whylen, "spamd %s: no port", where);
		return (-1);
	}
	*port++ = '\0';
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	if ((e = getaddrinfo(host, port, &hints, &ai)) != 0) {
		(void)snprintf(why, whylen, "spamd %s: %s", where,
		    gai_strerror(e));
		return (-1);
	}
	if ((fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1 ||
	    (connect(fd, ai->ai_addr, ai->ai_addrlen) == -1 &&
	    errno != EINPROGRESS)) {
		freeaddrinfo(ai);
		goto fail;
	}
	freeaddrinfo(ai);
	return (fd);
 fail:
	(void)snprintf(why, whylen, "spamd %s: %s", where, strerror(errno));
	if (fd != -1)
		(void)close(fd);
	return (-1);
}

static double
timespec_left_ms(const struct timespec *deadline)
{
	struct timespec	 now;

	(void)clock_gettime(CLOCK_MONOTONIC, &now);
	return ((deadline->tv_sec - now.tv_sec) * 1000.0 +
	    (deadline->tv_nsec - now.tv_nsec) / 1e6);
}

/* Wait until fd is ready for events, or fail at the deadline. */
static int
spamd_io(int fd, short events, struct timespec *deadline)
{
	struct pollfd	 pfd;
	double		 left;
	int		 n;

	for (;;) {
		if ((left = timespec_left_ms(deadline)) <= 0)
			return (-1);
		pfd.fd = fd;
		pfd.events = events;
		pfd.revents = 0;
		n = poll(&pfd, 1, left > 1e6 ? 1000000 : (int)left + 1);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return (-1);
		return (0);
	}
}

/*
 * "SPAMD/1.5 0 EX_OK", headers up to an empty line, among them
 * "Spam: True ; 15.0 / 5.0", then the symbols, comma-separated.
 */
static int
spamd_parse(char *reply, struct score *s, char *why, size_t whylen)
{
	char	*line, *next, *p, *end, *sym;
	double	 score = 0;
	int	 have_score = 0, in_body = 0, first = 1;

	for (line = reply; line != NULL && *line != '\0'; line = next) {
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		line[strcspn(line, "\r")] = '\0';
		if (first) {
			first = 0;
			if (strncmp(line, "SPAMD/", 6) != 0 ||
			    (p = strchr(line, ' ')) == NULL ||
			    strncmp(p + 1, "0 ", 2) != 0) {
				(void)snprintf(why, whylen,
				    "spamd answered \"%.80s\"", line);
				for (p = why; *p != '\0'; p++)
					if (*p < 0x20 || *p > 0x7e)
						*p = '?';
				return (-1);
			}
			continue;
		}
		if (!in_body) {
			if (*line == '\0') {
				in_body = 1;
				continue;
			}
			if (strncasecmp(line, "Spam:", 5) != 0)
				continue;
			if ((p = strchr(line, ';')) == NULL)
				break;
			score = strtod(p + 1, &end);
			if (end == p + 1)
				break;
			have_score = 1;
			continue;
		}
		for (sym = strtok_r(line, ",", &p); sym != NULL;
		    sym = strtok_r(NULL, ",", &p)) {
			while (*sym == ' ')
				sym++;
			if (*sym != '\0')
				score_add(s, sym, 0);
		}
	}
	if (!have_score) {
		(void)snprintf(why, whylen, "spamd gave no score");
		return (-1);
	}
	s->total += score;
	return (0);
}
