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
 * The scanner's edits to a message, made by smtp before the body goes
 * to the queue: its header lines after our Received header, incoming
 * X-Spam-* fields removed, the Subject prefixed.  The result is a new
 * anonymous file; the old one is never written, since the scan process
 * may still hold it.
 *
 * The header section ends at the first empty line, and a message with
 * none is header all through: a field hidden past a malformed line is
 * still a header to whoever reads the message next.
 */

#include <sys/types.h>
#include <sys/mman.h>

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "smarthostd.h"
#include "smtp.h"

#define SPAM_FIELD_PREFIX	"X-Spam-"

/*
 * The new body is written in runs: what is kept of the old one goes
 * out in one write from the mapping up to each edit.
 */
struct message_out {
	int		 fd;
	int		 error;
	uint64_t	 written;
	const char	*data;		/* the old body, mapped */
	uint64_t	 run;		/* kept from here, not yet written */
};

static void	 out_add(struct message_out *, const void *, size_t);
static void	 out_keep_until(struct message_out *, uint64_t);
static void	 out_drop(struct message_out *, uint64_t, size_t);
static size_t	 line_length(const char *, size_t);
static int	 field_is(const char *, size_t, const char *);
static size_t	 our_authserv(const struct scan_result *, const char **);
static int	 names_authserv(const char *, size_t, const char *, size_t);

/*
 * What the edits may add to a body, at most: the scanner's lines, the
 * prefix and its space, and a Subject field of its own (with a CRLF to
 * end an unterminated last line before it).
 */
uint64_t
message_edit_bound(const struct scan_result *res)
{
	return (strnlen(res->headers, sizeof(res->headers)) +
	    strnlen(res->subject_prefix, sizeof(res->subject_prefix)) +
	    sizeof("\r\nSubject:  \r\n"));
}

/*
 * The scan process's header lines go into a message unread by anyone
 * else: each must be printable, end in CRLF, and none may be empty
 * (which would end the header section) or start the block folded
 * (which would fold it into our Received header).
 */
int
message_scan_result_valid(const struct scan_result *res)
{
	const char	*h = res->headers;
	size_t		 len, i, start = 0;

	if ((len = strnlen(h, sizeof(res->headers))) == sizeof(res->headers) ||
	    memchr(res->reason, '\0', sizeof(res->reason)) == NULL ||
	    memchr(res->subject_prefix, '\0',
	    sizeof(res->subject_prefix)) == NULL)
		return (0);
	for (i = 0; res->subject_prefix[i] != '\0'; i++)
		if (!isprint((unsigned char)res->subject_prefix[i]))
			return (0);
	if (len > 0 && (h[0] == ' ' || h[0] == '\t'))
		return (0);
	for (i = 0; i < len; i++) {
		if (h[i] == '\r') {
			if (i + 1 == len || h[i + 1] != '\n' || i == start)
				return (0);
			start = ++i + 1;
		} else if (h[i] != '\t' && !isprint((unsigned char)h[i]))
			return (0);
	}
	return (start == len);
}

/*
 * Returns the new body's descriptor, its size in *newsize, or -1 with
 * errno set.  The old descriptor stays open and unchanged.
 */
int
message_apply_scan(int fd, uint64_t size, uint64_t received_len,
    const struct scan_result *res, uint64_t *newsize)
{
	struct message_out	*out;
	const char		*data, *line, *prefix = res->subject_prefix;
	const char		*authserv = NULL;
	uint64_t		 off, header_end;
	size_t			 len, n, authserv_len;
	int			 skipping = 0, subject_done, saved, newfd;

	if (received_len > size || size > SIZE_MAX) {
		errno = EINVAL;
		return (-1);
	}
	subject_done = prefix[0] == '\0';
	authserv_len = our_authserv(res, &authserv);
	data = NULL;
	if (size > 0 && (data = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd,
	    0)) == MAP_FAILED)
		return (-1);
	if ((out = calloc(1, sizeof(*out))) == NULL) {
		saved = errno;
		newfd = -1;
		goto done;
	}
	if ((out->fd = compat_memfd("smarthostd-body")) == -1) {
		saved = errno;
		newfd = -1;
		goto done;
	}
	out->data = data;
	out_add(out, data, received_len);
	out_add(out, res->headers, strnlen(res->headers,
	    sizeof(res->headers)));
	out->run = received_len;

	for (off = received_len; off < size; off += len) {
		line = data + off;
		len = line_length(line, size - off);
		if (line[0] == '\n' || (len == 2 && line[0] == '\r'))
			break;		/* the empty line */
		if (line[0] == ' ' || line[0] == '\t') {
			if (skipping) {
				out_drop(out, off, len);
			}
			continue;
		}
		skipping = 0;
		if (res->strip_spam_headers &&
		    len >= sizeof(SPAM_FIELD_PREFIX) - 1 &&
		    strncasecmp(line, SPAM_FIELD_PREFIX,
		    sizeof(SPAM_FIELD_PREFIX) - 1) == 0 &&
		    memchr(line, ':', len) != NULL) {
			out_drop(out, off, len);
			skipping = 1;
			continue;
		}
		if (authserv_len > 0 &&
		    field_is(line, len, "Authentication-Results") &&
		    names_authserv(line, len, authserv, authserv_len)) {
			/* RFC 8601 5: ours to say, not the sender's. */
			out_drop(out, off, len);
			skipping = 1;
			continue;
		}
		if (!subject_done && field_is(line, len, "Subject")) {
			subject_done = 1;
			out_drop(out, off, len);
			n = (const char *)memchr(line, ':', len) - line + 1;
			while (n < len && (line[n] == ' ' || line[n] == '\t'))
				n++;
			out_add(out, "Subject: ", strlen("Subject: "));
			out_add(out, prefix, strlen(prefix));
			if (n < len && line[n] != '\r' && line[n] != '\n')
				out_add(out, " ", 1);
			out_add(out, line + n, len - n);
			continue;
		}
	}
	header_end = off;
	out_keep_until(out, header_end);
	if (!subject_done) {
		if (header_end > received_len && data[header_end - 1] != '\n')
			out_add(out, "\r\n", 2);
		out_add(out, "Subject: ", strlen("Subject: "));
		out_add(out, prefix, strlen(prefix));
		out_add(out, "\r\n", 2);
	}
	out_keep_until(out, size);

	if (out->error == 0 && out->written > size + message_edit_bound(res))
		out->error = EFBIG;	/* a bug above; never store it */
	if (out->error != 0) {
		saved = out->error;
		(void)close(out->fd);
		newfd = -1;
	} else {
		saved = 0;
		newfd = out->fd;
		*newsize = out->written;
	}
 done:
	free(out);
	if (data != NULL)
		(void)munmap((void *)(uintptr_t)data, size);
	errno = saved;
	return (newfd);
}

static void
out_add(struct message_out *out, const void *data, size_t len)
{
	const char	*p = data;
	ssize_t		 n;

	while (len > 0 && out->error == 0) {
		if ((n = write(out->fd, p, len)) == -1) {
			if (errno != EINTR)
				out->error = errno;
			continue;
		}
		p += n;
		len -= n;
		out->written += n;
	}
}

static void
out_keep_until(struct message_out *out, uint64_t off)
{
	if (off > out->run)
		out_add(out, out->data + out->run, off - out->run);
	out->run = off;
}

/* The old body's bytes at off are not copied. */
static void
out_drop(struct message_out *out, uint64_t off, size_t len)
{
	out_keep_until(out, off);
	out->run = off + len;
}

/* The line at p with its LF, or what is left when it has none. */
static size_t
line_length(const char *p, size_t left)
{
	const char	*nl;

	if ((nl = memchr(p, '\n', left)) == NULL)
		return (left);
	return (nl - p + 1);
}

/* "Name:" or "Name :" (obsolete syntax, RFC 5322 section 4.5). */
static int
field_is(const char *line, size_t len, const char *name)
{
	size_t	 n = strlen(name);

	if (len <= n || strncasecmp(line, name, n) != 0)
		return (0);
	while (n < len && (line[n] == ' ' || line[n] == '\t'))
		n++;
	return (n < len && line[n] == ':');
}

/*
 * The authserv-id of the Authentication-Results header the scanner
 * adds (our host name), or 0 when it adds none.
 */
static size_t
our_authserv(const struct scan_result *res, const char **id)
{
	static const char	 field[] = "Authentication-Results: ";
	const char		*p = res->headers, *end, *nl;

	end = p + strnlen(res->headers, sizeof(res->headers));
	*id = NULL;
	while (p < end) {
		if ((size_t)(end - p) > sizeof(field) - 1 &&
		    strncasecmp(p, field, sizeof(field) - 1) == 0) {
			*id = p + sizeof(field) - 1;
			return (strcspn(*id, "; \r\n"));
		}
		if ((nl = memchr(p, '\n', end - p)) == NULL)
			break;
		p = nl + 1;
	}
	return (0);
}

/* Does this Authentication-Results field carry that authserv-id? */
static int
names_authserv(const char *line, size_t len, const char *id, size_t idlen)
{
	const char	*v = memchr(line, ':', len);
	size_t		 n;

	if (v == NULL)
		return (0);
	n = v - line + 1;
	while (n < len && (line[n] == ' ' || line[n] == '\t'))
		n++;
	return (len - n > idlen && strncasecmp(line + n, id, idlen) == 0 &&
	    (line[n + idlen] == ';' || line[n + idlen] == ' ' ||
	    line[n + idlen] == '\t' || line[n + idlen] == '\r'));
}
