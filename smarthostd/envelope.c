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
 * The envelope record: how an envelope crosses from smtp to queue and how
 * queue.mdb stores it.  A binary record, so that no CR or LF in an address
 * can extend it:
 *
 *	magic "SHEV", u16 version, u16 reserved (0)
 *	id		string, 16 lowercase hex digits
 *	arrived		i64
 *	flags		u32, ENVELOPE_* bits only
 *	body_size	u64
 *	sender		string ("" for <>)
 *	client_addr	string
 *	client_name	string
 *	helo		string
 *	auth_user	string
 *	nrcpt		u32, 1 to ENVELOPE_RCPT_MAX
 *	nrcpt times:
 *	  addr		string, not empty
 *	  action	string, not empty
 *	  state		u32, an enum rcpt_state
 *	  attempts	u32
 *	  next_try	i64
 *	  last_error	string
 *
 * Integers are big-endian and fixed-width; a string is a u32 length and
 * that many bytes, no terminator.  The decoder checks every field and that
 * the record ends exactly where the last field does: anything else is
 * refused, never repaired.  A new field means a new version.
 */

#include <sys/types.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smarthostd.h"

#define ENVELOPE_MAGIC		"SHEV"
#define ENVELOPE_VERSION	1
#define ENVELOPE_RCPT_MAX	10000
#define ENVELOPE_FLAGS		(ENVELOPE_8BITMIME | ENVELOPE_TLS | \
				    ENVELOPE_AUTH | ENVELOPE_BOUNCE | \
				    ENVELOPE_DELAY_WARNED | ENVELOPE_QUARANTINE)
/* Far above any message size limit; a bigger value is corruption. */
#define ENVELOPE_BODY_MAX	((uint64_t)1 << 32)

struct wbuf {
	unsigned char	*buf;
	size_t		 len;
	size_t		 size;
};

struct rbuf {
	const unsigned char	*p;
	size_t			 left;
};

static int	 envelope_string_ok(const char *, size_t);
static void	 put_bytes(struct wbuf *, const void *, size_t);
static void	 put_u16(struct wbuf *, uint16_t);
static void	 put_u32(struct wbuf *, uint32_t);
static void	 put_u64(struct wbuf *, uint64_t);
static void	 put_string(struct wbuf *, const char *);
static int	 get_bytes(struct rbuf *, void *, size_t);
static int	 get_u16(struct rbuf *, uint16_t *);
static int	 get_u32(struct rbuf *, uint32_t *);
static int	 get_u64(struct rbuf *, uint64_t *);
static int	 get_i64(struct rbuf *, int64_t *);
static int	 get_string(struct rbuf *, char *, size_t, int);

/*
 * Encode an envelope into a malloc'd record.  The envelope must be one
 * the decoder would accept: encoding something unreadable would only
 * move the failure to the worst moment.
 */
int
envelope_encode(const struct envelope *e, unsigned char **out,
    size_t *outlen)
{
	struct wbuf	 w;
	uint32_t	 i;
	size_t		 size;

	*out = NULL;
	*outlen = 0;
	if (!envelope_id_valid(e->id) || (e->flags & ~ENVELOPE_FLAGS) != 0 ||
	    e->body_size > ENVELOPE_BODY_MAX ||
	    e->nrcpt < 1 || e->nrcpt > ENVELOPE_RCPT_MAX || e->rcpts == NULL ||
	    !envelope_string_ok(e->sender, sizeof(e->sender)) ||
	    !envelope_string_ok(e->client_addr, sizeof(e->client_addr)) ||
	    !envelope_string_ok(e->client_name, sizeof(e->client_name)) ||
	    !envelope_string_ok(e->helo, sizeof(e->helo)) ||
	    !envelope_string_ok(e->auth_user, sizeof(e->auth_user))) {
		errno = EINVAL;
		return (-1);
	}
	size = 64 + 5 * 4 + sizeof(*e);
	for (i = 0; i < e->nrcpt; i++) {
		const struct envelope_rcpt	*r = &e->rcpts[i];

		if (!envelope_string_ok(r->addr, sizeof(r->addr)) ||
		    r->addr[0] == '\0' ||
		    !envelope_string_ok(r->action, sizeof(r->action)) ||
		    r->action[0] == '\0' ||
		    !envelope_string_ok(r->last_error,
		    sizeof(r->last_error)) ||
		    (r->state != RCPT_PENDING && r->state != RCPT_DELIVERED &&
		    r->state != RCPT_FAILED)) {
			errno = EINVAL;
			return (-1);
		}
		size += 32 + strlen(r->addr) + strlen(r->action) +
		    strlen(r->last_error);
	}

	memset(&w, 0, sizeof(w));
	if ((w.buf = malloc(size)) == NULL)
		return (-1);
	w.size = size;
	put_bytes(&w, ENVELOPE_MAGIC, 4);
	put_u16(&w, ENVELOPE_VERSION);
	put_u16(&w, 0);
	put_string(&w, e->id);
	put_u64(&w, (uint64_t)e->arrived);
	put_u32(&w, e->flags);
	put_u64(&w, e->body_size);
	put_string(&w, e->sender);
	put_string(&w, e->client_addr);
	put_string(&w, e->client_name);
	put_string(&w, e->helo);
	put_string(&w, e->auth_user);
	put_u32(&w, e->nrcpt);
	for (i = 0; i < e->nrcpt; i++) {
		put_string(&w, e->rcpts[i].addr);
		put_string(&w, e->rcpts[i].action);
		put_u32(&w, (uint32_t)e->rcpts[i].state);
		put_u32(&w, e->rcpts[i].attempts);
		put_u64(&w, (uint64_t)e->rcpts[i].next_try);
		put_string(&w, e->rcpts[i].last_error);
	}
	if (w.len > w.size) {
		/* The size estimate above is an upper bound; never here. */
		free(w.buf);
		errno = EOVERFLOW;
		return (-1);
	}
	*out = w.buf;
	*outlen = w.len;
	return (0);
}

/*
 * Decode and check a record.  On success the caller owns e->rcpts and
 * frees it with envelope_clear(); on failure e is left cleared and errno
 * is EINVAL.
 */
int
envelope_decode(const unsigned char *buf, size_t len, struct envelope *e)
{
	struct rbuf		 r;
	struct envelope_rcpt	*rc;
	char			 magic[4];
	uint32_t		 i, state;
	uint16_t		 version, reserved;

	memset(e, 0, sizeof(*e));
	r.p = buf;
	r.left = len;

	if (buf == NULL ||
	    get_bytes(&r, magic, sizeof(magic)) == -1 ||
	    memcmp(magic, ENVELOPE_MAGIC, sizeof(magic)) != 0 ||
	    get_u16(&r, &version) == -1 || version != ENVELOPE_VERSION ||
	    get_u16(&r, &reserved) == -1 || reserved != 0)
		goto bad;
	if (get_string(&r, e->id, sizeof(e->id), 0) == -1 ||
	    !envelope_id_valid(e->id) ||
	    get_i64(&r, &e->arrived) == -1 ||
	    get_u32(&r, &e->flags) == -1 ||
	    (e->flags & ~ENVELOPE_FLAGS) != 0 ||
	    get_u64(&r, &e->body_size) == -1 ||
	    e->body_size > ENVELOPE_BODY_MAX ||
	    get_string(&r, e->sender, sizeof(e->sender), 1) == -1 ||
	    get_string(&r, e->client_addr, sizeof(e->client_addr), 1) == -1 ||
	    get_string(&r, e->client_name, sizeof(e->client_name), 1) == -1 ||
	    get_string(&r, e->helo, sizeof(e->helo), 1) == -1 ||
	    get_string(&r, e->auth_user, sizeof(e->auth_user), 1) == -1 ||
	    get_u32(&r, &e->nrcpt) == -1 ||
	    e->nrcpt < 1 || e->nrcpt > ENVELOPE_RCPT_MAX)
		goto bad;
	/*
	 * Each recipient takes at least 26 bytes; checking that first keeps
	 * a short record from making us allocate for 10000.
	 */
	if (r.left / 26 < e->nrcpt)
		goto bad;
	if ((e->rcpts = calloc(e->nrcpt, sizeof(*e->rcpts))) == NULL) {
		e->nrcpt = 0;
		return (-1);
	}
	for (i = 0; i < e->nrcpt; i++) {
		rc = &e->rcpts[i];
		if (get_string(&r, rc->addr, sizeof(rc->addr), 0) == -1 ||
		    get_string(&r, rc->action, sizeof(rc->action), 0) == -1 ||
		    get_u32(&r, &state) == -1 || state > RCPT_FAILED ||
		    get_u32(&r, &rc->attempts) == -1 ||
		    get_i64(&r, &rc->next_try) == -1 ||
		    get_string(&r, rc->last_error, sizeof(rc->last_error),
		    1) == -1)
			goto bad;
		rc->state = (enum rcpt_state)state;
	}
	if (r.left != 0)
		goto bad;
	return (0);

 bad:
	envelope_clear(e);
	memset(e, 0, sizeof(*e));
	errno = EINVAL;
	return (-1);
}

void
envelope_clear(struct envelope *e)
{
	free(e->rcpts);
	e->rcpts = NULL;
	e->nrcpt = 0;
}

/* Fits its buffer with the NUL and holds no byte that ends a line. */
static int
envelope_string_ok(const char *s, size_t size)
{
	size_t	 len;

	if ((len = strnlen(s, size)) == size)
		return (0);
	return (strcspn(s, "\r\n") == len);
}

/* 16 lowercase hex digits, as smtp makes them. */
int
envelope_id_valid(const char *id)
{
	size_t	 i;

	for (i = 0; i < QUEUE_ID_LEN - 1; i++)
		if (!((id[i] >= '0' && id[i] <= '9') ||
		    (id[i] >= 'a' && id[i] <= 'f')))
			return (0);
	return (id[i] == '\0');
}

/*
 * Writing: the buffer is sized in advance, so the puts only count past
 * its end; envelope_encode() checks once at the end.
 */

static void
put_bytes(struct wbuf *w, const void *p, size_t n)
{
	if (w->len <= w->size && n <= w->size - w->len)
		memcpy(w->buf + w->len, p, n);
	w->len += n;
}

static void
put_u16(struct wbuf *w, uint16_t v)
{
	unsigned char	 b[2];

	b[0] = v >> 8;
	b[1] = v;
	put_bytes(w, b, sizeof(b));
}

static void
put_u32(struct wbuf *w, uint32_t v)
{
	unsigned char	 b[4];

	b[0] = v >> 24;
	b[1] = v >> 16;
	b[2] = v >> 8;
	b[3] = v;
	put_bytes(w, b, sizeof(b));
}

static void
put_u64(struct wbuf *w, uint64_t v)
{
	put_u32(w, (uint32_t)(v >> 32));
	put_u32(w, (uint32_t)v);
}

static void
put_string(struct wbuf *w, const char *s)
{
	size_t	 len = strlen(s);

	put_u32(w, (uint32_t)len);
	put_bytes(w, s, len);
}

/*
 * Reading: every get checks what is left before it looks.
 */

static int
get_bytes(struct rbuf *r, void *p, size_t n)
{
	if (n > r->left)
		return (-1);
	memcpy(p, r->p, n);
	r->p += n;
	r->left -= n;
	return (0);
}

static int
get_u16(struct rbuf *r, uint16_t *v)
{
	unsigned char	 b[2];

	if (get_bytes(r, b, sizeof(b)) == -1)
		return (-1);
	*v = (uint16_t)(b[0] << 8 | b[1]);
	return (0);
}

static int
get_u32(struct rbuf *r, uint32_t *v)
{
	unsigned char	 b[4];

	if (get_bytes(r, b, sizeof(b)) == -1)
		return (-1);
	*v = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 |
	    (uint32_t)b[2] << 8 | (uint32_t)b[3];
	return (0);
}

static int
get_u64(struct rbuf *r, uint64_t *v)
{
	uint32_t	 hi, lo;

	if (get_u32(r, &hi) == -1 || get_u32(r, &lo) == -1)
		return (-1);
	*v = (uint64_t)hi << 32 | lo;
	return (0);
}

static int
get_i64(struct rbuf *r, int64_t *v)
{
	uint64_t	 u;

	if (get_u64(r, &u) == -1)
		return (-1);
	*v = (int64_t)u;
	return (0);
}

/*
 * A string into a buffer of size bytes: shorter than the buffer, no NUL,
 * CR or LF inside, and empty only where allowed.
 */
static int
get_string(struct rbuf *r, char *s, size_t size, int empty_ok)
{
	uint32_t	 len;

	if (get_u32(r, &len) == -1 || len >= size || len > r->left ||
	    (len == 0 && !empty_ok))
		return (-1);
	if (memchr(r->p, '\0', len) != NULL ||
	    memchr(r->p, '\r', len) != NULL ||
	    memchr(r->p, '\n', len) != NULL)
		return (-1);
	memcpy(s, r->p, len);
	s[len] = '\0';
	r->p += len;
	r->left -= len;
	return (0);
}

const char *
envelope_rcpt_state_name(enum rcpt_state state)
{
	switch (state) {
	case RCPT_PENDING:
		return ("pending");
	case RCPT_DELIVERED:
		return ("delivered");
	case RCPT_FAILED:
		return ("failed");
	}
	return ("unknown");
}
