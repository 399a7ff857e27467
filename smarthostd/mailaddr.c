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
 * Envelope addresses, parsed strictly after RFC 5321 section 4.1.2.
 * An address is accepted exactly as the grammar allows or refused with
 * the reason; nothing is ever "repaired".  On top of the grammar we
 * refuse what a smarthost must never honour: source routes and the old
 * '%' and '!' relay forms.
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <string.h>

#include "smarthostd.h"

static int	 is_atext(int);
static int	 parse_local_part(const char **, char *, size_t *);
static int	 parse_domain(const char **, char *, size_t *);
static int	 parse_address_literal(const char **, char *, size_t *);

static int
is_atext(int c)
{
	return (isascii(c) && (isalnum(c) || strchr("!#$%&'*+-/=?^_`{|}~",
	    c) != NULL) && c != '\0');
}

static int
append(char *buf, size_t *len, size_t size, int c)
{
	if (*len + 1 >= size)
		return (-1);
	buf[(*len)++] = c;
	buf[*len] = '\0';
	return (0);
}

/* Dot-string or Quoted-string; the quotes are kept. */
static int
parse_local_part(const char **pp, char *out, size_t *len)
{
	const char	*p = *pp;
	size_t		 start = *len;

	if (*p == '"') {
		if (append(out, len, SMTP_ADDR_LEN, *p++) == -1)
			return (MAILADDR_TOO_LONG);
		for (;;) {
			if (*p == '"')
				break;
			if (*p == '\\') {
				if (append(out, len, SMTP_ADDR_LEN, *p++) == -1)
					return (MAILADDR_TOO_LONG);
				if (*p < 32 || *p > 126)
					return (MAILADDR_SYNTAX);
			} else if (*p < 32 || *p > 126)
				return (*p < 0 ? MAILADDR_NONASCII :
				    MAILADDR_SYNTAX);
			if (append(out, len, SMTP_ADDR_LEN, *p++) == -1)
				return (MAILADDR_TOO_LONG);
		}
		if (append(out, len, SMTP_ADDR_LEN, *p++) == -1)
			return (MAILADDR_TOO_LONG);
	} else {
		for (;;) {
			if (!is_atext((unsigned char)*p))
				return ((unsigned char)*p >= 0x80 ?
				    MAILADDR_NONASCII : MAILADDR_SYNTAX);
			while (is_atext((unsigned char)*p))
				if (append(out, len, SMTP_ADDR_LEN, *p++) == -1)
					return (MAILADDR_TOO_LONG);
			if (*p != '.')
				break;
			if (append(out, len, SMTP_ADDR_LEN, *p++) == -1)
				return (MAILADDR_TOO_LONG);
		}
	}
	if (*len - start > SMTP_LOCALPART_MAX)
		return (MAILADDR_TOO_LONG);
	/*
	 * '%', '!' and a quoted '@' all name another host inside the
	 * local part: a next hop that honours them makes us a relay.
	 */
	if (strpbrk(out + start, "%!@") != NULL)
		return (MAILADDR_RELAY_FORM);
	*pp = p;
	return (0);
}

/* sub-domain *("." sub-domain), each Let-dig [Ldh-str]; lowercased. */
static int
parse_domain(const char **pp, char *out, size_t *len)
{
	const char	*p = *pp;
	size_t		 start = *len, label;

	if (*p == '[')
		return (parse_address_literal(pp, out, len));
	for (;;) {
		if (!isascii((unsigned char)*p) || !isalnum((unsigned char)*p))
			return ((unsigned char)*p >= 0x80 ?
			    MAILADDR_NONASCII : MAILADDR_SYNTAX);
		label = 0;
		while (isascii((unsigned char)*p) &&
		    (isalnum((unsigned char)*p) || *p == '-')) {
			if (append(out, len, SMTP_ADDR_LEN,
			    tolower((unsigned char)*p++)) == -1)
				return (MAILADDR_TOO_LONG);
			label++;
		}
		if (out[*len - 1] == '-' || label > 63)
			return (MAILADDR_SYNTAX);
		if (*p != '.')
			break;
		if (append(out, len, SMTP_ADDR_LEN, *p++) == -1)
			return (MAILADDR_TOO_LONG);
	}
	if ((unsigned char)*p >= 0x80)
		return (MAILADDR_NONASCII);
	if (*len - start > SMTP_DOMAIN_MAX)
		return (MAILADDR_TOO_LONG);
	*pp = p;
	return (0);
}

/* "[" IPv4 "]" or "[IPv6:" IPv6 "]", checked by inet_pton. */
static int
parse_address_literal(const char **pp, char *out, size_t *len)
{
	const char	*p = *pp, *end;
	char		 lit[INET6_ADDRSTRLEN + 8];
	unsigned char	 addr[sizeof(struct in6_addr)];
	size_t		 n;

	if ((end = strchr(p, ']')) == NULL)
		return (MAILADDR_SYNTAX);
	n = end - p - 1;
	if (n >= sizeof(lit))
		return (MAILADDR_SYNTAX);
	memcpy(lit, p + 1, n);
	lit[n] = '\0';
	if (strncasecmp(lit, "IPv6:", 5) == 0) {
		if (inet_pton(AF_INET6, lit + 5, addr) != 1)
			return (MAILADDR_SYNTAX);
	} else if (inet_pton(AF_INET, lit, addr) != 1)
		return (MAILADDR_SYNTAX);
	for (; p <= end; p++)
		if (append(out, len, SMTP_ADDR_LEN, *p) == -1)
			return (MAILADDR_TOO_LONG);
	*pp = p;
	return (0);
}

/*
 * Parse the Reverse-path or Forward-path at the start of arg: "<>",
 * "<local@domain>", or (for RCPT only, flag MAILADDR_POSTMASTER)
 * "<postmaster>".  The address without brackets goes to out, "" for the
 * null path; *rest points after the closing bracket, where ESMTP
 * parameters may follow.  Returns 0 or a MAILADDR_* error.
 */
int
mailaddr_parse_path(const char *arg, char *out, size_t outlen,
    const char **rest, int flags)
{
	const char	*p = arg, *close;
	char		 buf[SMTP_ADDR_LEN];
	size_t		 len = 0;
	int		 error;

	buf[0] = '\0';
	if (*p++ != '<')
		return (MAILADDR_SYNTAX);
	if ((close = strchr(p, '>')) == NULL)
		return (MAILADDR_SYNTAX);
	if (close - arg + 1 > SMTP_PATH_MAX)
		return (MAILADDR_TOO_LONG);
	if (*p == '@')
		return (MAILADDR_ROUTE);
	if (*p == '>') {
		if (!(flags & MAILADDR_NULL_OK))
			return (MAILADDR_SYNTAX);
		p++;
		goto done;
	}
	if ((flags & MAILADDR_POSTMASTER) &&
	    strncasecmp(p, "postmaster>", 11) == 0) {
		(void)strlcpy(buf, "postmaster", sizeof(buf));
		p += 11;
		goto done;
	}
	if ((error = parse_local_part(&p, buf, &len)) != 0)
		return (error);
	if (*p != '@')
		return ((unsigned char)*p >= 0x80 ? MAILADDR_NONASCII :
		    MAILADDR_SYNTAX);
	if (append(buf, &len, sizeof(buf), *p++) == -1)
		return (MAILADDR_TOO_LONG);
	if ((error = parse_domain(&p, buf, &len)) != 0)
		return (error);
	if (*p++ != '>')
		return (MAILADDR_SYNTAX);
 done:
	if (strlcpy(out, buf, outlen) >= outlen)
		return (MAILADDR_TOO_LONG);
	*rest = p;
	return (0);
}

/* The domain of a parsed address, or NULL (postmaster, the null path). */
const char *
mailaddr_domain(const char *addr)
{
	const char	*at;

	if ((at = strrchr(addr, '@')) == NULL)
		return (NULL);
	return (at + 1);
}

/* Is this a whole address as mailaddr_parse_path would give it? */
int
mailaddr_valid(const char *addr)
{
	char		 path[SMTP_ADDR_LEN + 2], out[SMTP_ADDR_LEN];
	const char	*rest;

	if ((size_t)snprintf(path, sizeof(path), "<%s>", addr) >=
	    sizeof(path))
		return (0);
	return (mailaddr_parse_path(path, out, sizeof(out), &rest, 0) == 0 &&
	    *rest == '\0' && strcmp(out, addr) == 0);
}

const char *
mailaddr_strerror(int error)
{
	switch (error) {
	case MAILADDR_SYNTAX:
		return ("syntax error in address");
	case MAILADDR_TOO_LONG:
		return ("address too long");
	case MAILADDR_ROUTE:
		return ("source routes are not accepted");
	case MAILADDR_RELAY_FORM:
		return ("'%', '!' and quoted '@' relay forms are not "
		    "accepted");
	case MAILADDR_NONASCII:
		return ("non-ASCII address without SMTPUTF8");
	}
	return ("bad address");
}
