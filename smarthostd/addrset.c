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
 * Address sets: the blocklists, whitelists and spf-white networks of the
 * grey process.  A set is two sorted arrays of disjoint, non-adjacent
 * ranges, one per family, searched by bisection.  List files, plain or
 * gzip, load a bounded number of lines per step so that a big list never
 * holds up the event loop for long.
 */

#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "smarthostd.h"

#define ADDRSET_MAX_RANGES	10000000	/* before merging */
#define ADDRSET_LINE_MAX	1024
#define ADDRSET_LOAD_BUFSZ	(64 * 1024)
#define ADDRSET_LOG_BAD		5		/* bad lines logged per file */

#define ADDRSET_FULL_RANGES	1
#define ADDRSET_FULL_MEMORY	2

/* A 128-bit address in host order, compared as one number. */
struct addr128 {
	uint64_t		 hi;
	uint64_t		 lo;
};

struct range4 {
	uint32_t		 start;
	uint32_t		 end;
};

struct range6 {
	struct addr128		 start;
	struct addr128		 end;
};

struct addrset {
	struct range4		*v4;
	size_t			 n4;
	size_t			 cap4;
	struct range6		*v6;
	size_t			 n6;
	size_t			 cap6;
	int			 finished;
	int			 full;		/* ADDRSET_FULL_* */
};

struct addrset_loader {
	gzFile			 gz;
	char			*name;
	struct addrset		*set;
	char			*buf;
	size_t			 start;		/* unread: buf[start, end) */
	size_t			 end;
	size_t			 lineno;
	size_t			 bad;
	int			 eof;
	int			 skipping;	/* inside an overlong line */
	int			 failed;
	char			 err[256];
};

static int	 addrset_add_text(struct addrset *, const char *, size_t);
static void	 addrset_trim(const char **, size_t *);
static int	 addrset_parse(const char *, size_t, int *,
		    struct addr128 *);
static int	 addrset_push(struct addrset *, int, struct addr128,
		    struct addr128);
static int	 addrset_push_prefix(struct addrset *, int, struct addr128,
		    int);
static void	*addrset_room(struct addrset *, void *, size_t, size_t *,
		    size_t);
static void	*addrset_shrink(void *, size_t, size_t *, size_t);
static struct addr128 addr4(uint32_t);
static int	 addr128_cmp(const struct addr128 *, const struct addr128 *);
static struct addr128 addr128_mask(int);
static struct addr128 addr128_from_bytes(const uint8_t *);
static void	 addr128_to_bytes(struct addr128, uint8_t *);
static int	 addr128_ctz(struct addr128);
static int	 range4_cmp(const void *, const void *);
static int	 range6_cmp(const void *, const void *);
static void	 addrset_merge4(struct addrset *);
static void	 addrset_merge6(struct addrset *);
static size_t	 addrset_walk_ranges(const struct addrset *, size_t, size_t,
		    void (*)(const struct fw_addr *, void *), void *);
static size_t	 addrset_walk_range(int, struct addr128, struct addr128,
		    void (*)(const struct fw_addr *, void *), void *);
static int	 addrset_load_line(struct addrset_loader *, const char *,
		    size_t);
static void	 addrset_load_bad(struct addrset_loader *, size_t,
		    const char *, size_t);
static int	 addrset_load_fill(struct addrset_loader *);
static int	 addrset_load_fail(struct addrset_loader *, const char *, ...)
		    __attribute__((__format__(printf, 2, 3)));

struct addrset *
addrset_new(void)
{
	struct addrset	*set;

	/* Empty is finished; adding to a set unfinishes it. */
	if ((set = calloc(1, sizeof(*set))) != NULL)
		set->finished = 1;
	return (set);
}

void
addrset_free(struct addrset *set)
{
	if (set == NULL)
		return;
	free(set->v4);
	free(set->v6);
	free(set);
}

int
addrset_add(struct addrset *set, const char *text)
{
	return (addrset_add_text(set, text, strlen(text)));
}

int
addrset_add_sockaddr(struct addrset *set, const struct sockaddr_storage *ss,
    int prefixlen)
{
	const struct sockaddr_in	*sin;
	const struct sockaddr_in6	*sin6;
	struct addr128			 a;
	int				 width;

	switch (ss->ss_family) {
	case AF_INET:
		sin = (const struct sockaddr_in *)ss;
		a = addr4(ntohl(sin->sin_addr.s_addr));
		width = 32;
		break;
	case AF_INET6:
		sin6 = (const struct sockaddr_in6 *)ss;
		a = addr128_from_bytes(sin6->sin6_addr.s6_addr);
		width = 128;
		break;
	default:
		return (-1);
	}
	if (prefixlen == -1)
		prefixlen = width;
	if (prefixlen < 0 || prefixlen > width)
		return (-1);
	return (addrset_push_prefix(set, ss->ss_family, a, prefixlen));
}

/* The network of a with this prefix; host bits are cleared. */
static int
addrset_push_prefix(struct addrset *set, int af, struct addr128 a,
    int prefixlen)
{
	struct addr128	 m, end;

	m = addr128_mask(af == AF_INET ? 96 + prefixlen : prefixlen);
	a.hi &= m.hi;
	a.lo &= m.lo;
	end.hi = a.hi | ~m.hi;
	end.lo = a.lo | ~m.lo;
	return (addrset_push(set, af, a, end));
}

/*
 * Accepted: "ADDR", "ADDR/PREFIX" (host bits are cleared, as spamd-setup
 * did) and "ADDR - ADDR" (spaces optional), IPv4 or IPv6.
 */
static int
addrset_add_text(struct addrset *set, const char *text, size_t len)
{
	struct addr128	 start, end;
	const char	*dash, *slash;
	char		 num[4];
	const char	*errstr;
	size_t		 n;
	int		 af, af2, prefixlen, max;

	addrset_trim(&text, &len);

	if ((dash = memchr(text, '-', len)) != NULL) {
		n = dash - text;
		if (addrset_parse(text, n, &af, &start) == -1 ||
		    addrset_parse(dash + 1, len - n - 1, &af2, &end) == -1 ||
		    af != af2 || addr128_cmp(&start, &end) > 0)
			return (-1);
		return (addrset_push(set, af, start, end));
	}

	if ((slash = memchr(text, '/', len)) == NULL) {
		if (addrset_parse(text, len, &af, &start) == -1)
			return (-1);
		return (addrset_push(set, af, start, start));
	}

	n = slash - text;
	if (addrset_parse(text, n, &af, &start) == -1)
		return (-1);
	if (len - n - 1 == 0 || len - n - 1 >= sizeof(num))
		return (-1);
	memcpy(num, slash + 1, len - n - 1);
	num[len - n - 1] = '\0';
	if (!isdigit((unsigned char)num[0]))
		return (-1);
	max = af == AF_INET ? 32 : 128;
	prefixlen = strtonum(num, 0, max, &errstr);
	if (errstr != NULL)
		return (-1);
	return (addrset_push_prefix(set, af, start, prefixlen));
}

static void
addrset_trim(const char **text, size_t *len)
{
	while (*len > 0 && isspace((unsigned char)**text)) {
		(*text)++;
		(*len)--;
	}
	while (*len > 0 && isspace((unsigned char)(*text)[*len - 1]))
		(*len)--;
}

/* One address, surrounded by optional white space. */
static int
addrset_parse(const char *text, size_t len, int *af, struct addr128 *a)
{
	char		 buf[INET6_ADDRSTRLEN];
	struct in_addr	 in4;
	struct in6_addr	 in6;

	addrset_trim(&text, &len);
	if (len == 0 || len >= sizeof(buf))
		return (-1);
	memcpy(buf, text, len);
	buf[len] = '\0';

	if (inet_pton(AF_INET, buf, &in4) == 1) {
		*af = AF_INET;
		a->hi = 0;
		a->lo = ntohl(in4.s_addr);
		return (0);
	}
	if (inet_pton(AF_INET6, buf, &in6) == 1) {
		*af = AF_INET6;
		*a = addr128_from_bytes(in6.s6_addr);
		return (0);
	}
	return (-1);
}

/*
 * An IPv6 range inside ::ffff:0.0.0.0/96 is stored as IPv4, so that the
 * mapped form of an address and its plain form are the same entry.
 */
static int
addrset_push(struct addrset *set, int af, struct addr128 start,
    struct addr128 end)
{
	struct range4	*v4;
	struct range6	*v6;

	if (af == AF_INET6 && start.hi == 0 && end.hi == 0 &&
	    (start.lo >> 32) == 0xffff && (end.lo >> 32) == 0xffff) {
		start.lo &= 0xffffffff;
		end.lo &= 0xffffffff;
		af = AF_INET;
	}
	if (af == AF_INET) {
		if ((v4 = addrset_room(set, set->v4, set->n4, &set->cap4,
		    sizeof(*v4))) == NULL)
			return (-1);
		set->v4 = v4;
		v4[set->n4].start = start.lo;
		v4[set->n4].end = end.lo;
		set->n4++;
	} else {
		if ((v6 = addrset_room(set, set->v6, set->n6, &set->cap6,
		    sizeof(*v6))) == NULL)
			return (-1);
		set->v6 = v6;
		v6[set->n6].start = start;
		v6[set->n6].end = end;
		set->n6++;
	}
	set->finished = 0;
	return (0);
}

/*
 * The array v of one family, with room for one more range: v itself or
 * a bigger copy; NULL, with the reason in set->full, if it cannot grow.
 */
static void *
addrset_room(struct addrset *set, void *v, size_t n, size_t *cap,
    size_t size)
{
	size_t	 newcap;

	if (set->n4 + set->n6 >= ADDRSET_MAX_RANGES) {
		set->full = ADDRSET_FULL_RANGES;
		return (NULL);
	}
	if (n < *cap)
		return (v);
	newcap = *cap == 0 ? 64 : *cap * 2;
	if ((v = reallocarray(v, newcap, size)) == NULL) {
		set->full = ADDRSET_FULL_MEMORY;
		return (NULL);
	}
	*cap = newcap;
	return (v);
}

/* Gives back the unused half of a merged array. */
static void *
addrset_shrink(void *v, size_t n, size_t *cap, size_t size)
{
	void	*p;

	if (n == 0 || n >= *cap / 2 || (p = reallocarray(v, n, size)) == NULL)
		return (v);
	*cap = n;
	return (p);
}

void
addrset_finish(struct addrset *set)
{
	addrset_merge4(set);
	addrset_merge6(set);
	set->finished = 1;
}

static void
addrset_merge4(struct addrset *set)
{
	struct range4	*v = set->v4, *p;
	size_t		 i, n;

	/* Lists are often sorted already; a pass costs less than a sort. */
	for (i = 1; i < set->n4; i++)
		if (v[i].start < v[i - 1].start)
			break;
	if (i < set->n4)
		qsort(v, set->n4, sizeof(*v), range4_cmp);

	for (i = 0, n = 0; i < set->n4; i++) {
		p = n > 0 ? &v[n - 1] : NULL;
		if (p != NULL && (p->end == UINT32_MAX ||
		    v[i].start <= p->end + 1)) {
			if (v[i].end > p->end)
				p->end = v[i].end;
		} else
			v[n++] = v[i];
	}
	set->n4 = n;
	set->v4 = addrset_shrink(v, n, &set->cap4, sizeof(*v));
}

static void
addrset_merge6(struct addrset *set)
{
	struct range6	*v = set->v6, *p;
	struct addr128	 next;
	size_t		 i, n;

	for (i = 1; i < set->n6; i++)
		if (addr128_cmp(&v[i].start, &v[i - 1].start) < 0)
			break;
	if (i < set->n6)
		qsort(v, set->n6, sizeof(*v), range6_cmp);

	for (i = 0, n = 0; i < set->n6; i++) {
		p = n > 0 ? &v[n - 1] : NULL;
		if (p != NULL) {
			/* next = p->end + 1, or p reaches the top */
			next.lo = p->end.lo + 1;
			next.hi = p->end.hi + (next.lo == 0);
			if ((p->end.hi == UINT64_MAX &&
			    p->end.lo == UINT64_MAX) ||
			    addr128_cmp(&v[i].start, &next) <= 0) {
				if (addr128_cmp(&v[i].end, &p->end) > 0)
					p->end = v[i].end;
				continue;
			}
		}
		v[n++] = v[i];
	}
	set->n6 = n;
	set->v6 = addrset_shrink(v, n, &set->cap6, sizeof(*v));
}

int
addrset_contains(const struct addrset *set, const struct sockaddr_storage *ss)
{
	const struct sockaddr_in	*sin;
	const struct sockaddr_in6	*sin6;
	struct addr128			 a;
	uint32_t			 a4;
	size_t				 lo, hi, mid;

	if (!set->finished)
		fatalx("%s: set not finished", __func__);

	switch (ss->ss_family) {
	case AF_INET:
		sin = (const struct sockaddr_in *)ss;
		a4 = ntohl(sin->sin_addr.s_addr);
		break;
	case AF_INET6:
		sin6 = (const struct sockaddr_in6 *)ss;
		a = addr128_from_bytes(sin6->sin6_addr.s6_addr);
		if (a.hi == 0 && (a.lo >> 32) == 0xffff) {
			a4 = a.lo & 0xffffffff;
			break;
		}
		/* The first range that starts above a, then the one before. */
		for (lo = 0, hi = set->n6; lo < hi; ) {
			mid = lo + (hi - lo) / 2;
			if (addr128_cmp(&set->v6[mid].start, &a) <= 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		return (lo > 0 && addr128_cmp(&a, &set->v6[lo - 1].end) <= 0);
	default:
		return (0);
	}

	for (lo = 0, hi = set->n4; lo < hi; ) {
		mid = lo + (hi - lo) / 2;
		if (set->v4[mid].start <= a4)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (lo > 0 && a4 <= set->v4[lo - 1].end);
}

size_t
addrset_count(const struct addrset *set)
{
	return (set->n4 + set->n6);
}

/*
 * a minus b, both finished: one pass over each.  The pieces of a range of
 * a stay apart from each other and from the other ranges of a, so the
 * result is finished as it is built.
 */
struct addrset *
addrset_subtract(const struct addrset *a, const struct addrset *b)
{
	struct addrset	*set;
	struct addr128	 cur, bs, be;
	uint32_t	 cur4;
	size_t		 i, j;
	int		 done;

	if (!a->finished || !b->finished)
		fatalx("%s: set not finished", __func__);
	if ((set = addrset_new()) == NULL)
		return (NULL);

	for (i = 0, j = 0; i < a->n4; i++) {
		cur4 = a->v4[i].start;
		done = 0;
		while (j < b->n4 && b->v4[j].end < cur4)
			j++;
		for (; j < b->n4 && b->v4[j].start <= a->v4[i].end; j++) {
			if (b->v4[j].start > cur4 && addrset_push(set, AF_INET,
			    addr4(cur4), addr4(b->v4[j].start - 1)) == -1)
				goto fail;
			if (b->v4[j].end >= a->v4[i].end) {
				/* b[j] may cover the next range of a too */
				done = 1;
				break;
			}
			cur4 = b->v4[j].end + 1;
		}
		if (!done && addrset_push(set, AF_INET, addr4(cur4),
		    addr4(a->v4[i].end)) == -1)
			goto fail;
	}

	for (i = 0, j = 0; i < a->n6; i++) {
		cur = a->v6[i].start;
		done = 0;
		while (j < b->n6 && addr128_cmp(&b->v6[j].end, &cur) < 0)
			j++;
		for (; j < b->n6 &&
		    addr128_cmp(&b->v6[j].start, &a->v6[i].end) <= 0; j++) {
			bs = b->v6[j].start;
			be = b->v6[j].end;
			if (addr128_cmp(&bs, &cur) > 0) {
				bs.hi -= (bs.lo == 0);
				bs.lo--;
				if (addrset_push(set, AF_INET6, cur, bs) == -1)
					goto fail;
			}
			if (addr128_cmp(&be, &a->v6[i].end) >= 0) {
				done = 1;
				break;
			}
			cur.lo = be.lo + 1;
			cur.hi = be.hi + (cur.lo == 0);
		}
		if (!done && addrset_push(set, AF_INET6, cur,
		    a->v6[i].end) == -1)
			goto fail;
	}
	set->finished = 1;
	return (set);

 fail:
	addrset_free(set);
	return (NULL);
}

size_t
addrset_walk(const struct addrset *set,
    void (*cb)(const struct fw_addr *, void *), void *arg)
{
	return (addrset_walk_ranges(set, 0, set->n4 + set->n6, cb, arg));
}

/*
 * The walk a page at a time: the blocks of up to max ranges from *pos,
 * which starts at 0 and moves on.  Returns 1 when the set is done.
 */
int
addrset_walk_part(const struct addrset *set, size_t *pos, size_t max,
    void (*cb)(const struct fw_addr *, void *), void *arg)
{
	size_t	 n = set->n4 + set->n6, to;

	if (*pos >= n) {
		*pos = n;
		return (1);
	}
	to = max < n - *pos ? *pos + max : n;
	(void)addrset_walk_ranges(set, *pos, to, cb, arg);
	*pos = to;
	return (to == n);
}

/* The blocks of ranges [from, to), the IPv4 ones first. */
static size_t
addrset_walk_ranges(const struct addrset *set, size_t from, size_t to,
    void (*cb)(const struct fw_addr *, void *), void *arg)
{
	size_t	 i, n = 0;

	if (!set->finished)
		fatalx("%s: set not finished", __func__);
	for (i = from; i < to && i < set->n4; i++)
		n += addrset_walk_range(AF_INET, addr4(set->v4[i].start),
		    addr4(set->v4[i].end), cb, arg);
	for (i = from > set->n4 ? from - set->n4 : 0; i + set->n4 < to; i++)
		n += addrset_walk_range(AF_INET6, set->v6[i].start,
		    set->v6[i].end, cb, arg);
	return (n);
}

/*
 * The minimal list of CIDR blocks covering [s, e]: from s, the largest
 * block that s is aligned to and that ends at or before e, then on from
 * its end.  IPv4 runs in the low 32 bits with the bit count capped at 32.
 */
static size_t
addrset_walk_range(int af, struct addr128 s, struct addr128 e,
    void (*cb)(const struct fw_addr *, void *), void *arg)
{
	struct fw_addr	 fa;
	struct addr128	 last, m;
	int		 bits, width = af == AF_INET ? 32 : 128;
	size_t		 n = 0;

	for (;;) {
		bits = addr128_ctz(s);
		if (bits > width)
			bits = width;
		for (;;) {
			m = addr128_mask(128 - bits);
			last.hi = s.hi | ~m.hi;
			last.lo = s.lo | ~m.lo;
			if (addr128_cmp(&last, &e) <= 0)
				break;
			bits--;
		}
		memset(&fa, 0, sizeof(fa));
		fa.af = af;
		fa.prefixlen = width - bits;
		if (af == AF_INET) {
			fa.addr[0] = s.lo >> 24;
			fa.addr[1] = s.lo >> 16;
			fa.addr[2] = s.lo >> 8;
			fa.addr[3] = s.lo;
		} else
			addr128_to_bytes(s, fa.addr);
		cb(&fa, arg);
		n++;
		if (addr128_cmp(&last, &e) == 0)
			break;
		s.lo = last.lo + 1;
		s.hi = last.hi + (s.lo == 0);
	}
	return (n);
}

struct addrset_loader *
addrset_load_start(int fd, const char *name)
{
	struct addrset_loader	*l;

	if ((l = calloc(1, sizeof(*l))) == NULL ||
	    (l->name = strdup(name)) == NULL ||
	    (l->buf = malloc(ADDRSET_LOAD_BUFSZ)) == NULL ||
	    (l->set = addrset_new()) == NULL) {
		log_warn("%s: %s", __func__, name);
		goto fail;
	}
	if ((l->gz = gzdopen(fd, "rb")) == NULL) {
		log_warnx("%s: %s: gzdopen failed", __func__, name);
		goto fail;
	}
	(void)gzbuffer(l->gz, ADDRSET_LOAD_BUFSZ);
	return (l);

 fail:
	if (l != NULL) {
		addrset_free(l->set);
		free(l->buf);
		free(l->name);
		free(l);
	}
	close(fd);
	return (NULL);
}

/*
 * Reads up to max_lines lines: 1 when there is more to read, 0 at the end
 * of the file, -1 on a read error or when the set cannot grow.
 */
int
addrset_load_step(struct addrset_loader *l, size_t max_lines)
{
	char	*line, *nl;
	size_t	 n = 0, len;

	if (l->failed)
		return (-1);
	while (n < max_lines) {
		nl = memchr(l->buf + l->start, '\n', l->end - l->start);
		if (nl == NULL) {
			len = l->end - l->start;
			if (len > ADDRSET_LINE_MAX && !l->skipping) {
				/* Counted now, numbered when it ends. */
				addrset_load_bad(l, l->lineno + 1,
				    l->buf + l->start, len);
				l->skipping = 1;
			}
			if (l->skipping) {
				/* A step stays bounded without newlines. */
				l->start = l->end = 0;
				n++;
			}
			if (l->eof) {
				if (l->skipping) {
					l->skipping = 0;
					l->lineno++;
				} else if (len > 0 && addrset_load_line(l,
				    l->buf + l->start, len) == -1)
					return (-1);
				l->start = l->end;
				return (0);
			}
			if (addrset_load_fill(l) == -1)
				return (-1);
			continue;
		}
		line = l->buf + l->start;
		len = nl - line;
		l->start += len + 1;
		n++;
		if (l->skipping) {
			l->skipping = 0;
			l->lineno++;
			continue;
		}
		if (addrset_load_line(l, line, len) == -1)
			return (-1);
	}
	return (1);
}

static int
addrset_load_fill(struct addrset_loader *l)
{
	const char	*msg, *p;
	int		 r, errnum;

	if (l->start > 0) {
		memmove(l->buf, l->buf + l->start, l->end - l->start);
		l->end -= l->start;
		l->start = 0;
	}
	r = gzread(l->gz, l->buf + l->end, ADDRSET_LOAD_BUFSZ - l->end);
	if (r > 0) {
		l->end += r;
		return (0);
	}
	/* zlib reports a truncated stream as an end of file with an error. */
	msg = gzerror(l->gz, &errnum);
	if (r < 0 || errnum != Z_OK) {
		if (errnum == Z_ERRNO)
			return (addrset_load_fail(l, "%s: read: %s", l->name,
			    strerror(errno)));
		/* zlib names a gzdopen'd file "<fd:N>"; we have a name. */
		if (msg[0] == '<' && (p = strstr(msg, ">: ")) != NULL)
			msg = p + 3;
		return (addrset_load_fail(l, "%s: %s", l->name, msg));
	}
	l->eof = 1;
	return (0);
}

static int
addrset_load_line(struct addrset_loader *l, const char *line, size_t len)
{
	const char	*p;

	l->lineno++;
	if (len > ADDRSET_LINE_MAX || memchr(line, '\0', len) != NULL) {
		addrset_load_bad(l, l->lineno, line, len);
		return (0);
	}
	if ((p = memchr(line, '#', len)) != NULL)
		len = p - line;
	addrset_trim(&line, &len);
	if (len == 0)
		return (0);
	if (addrset_add_text(l->set, line, len) == 0)
		return (0);
	if (l->set->full == ADDRSET_FULL_RANGES)
		return (addrset_load_fail(l, "%s:%zu: more than %d ranges",
		    l->name, l->lineno, ADDRSET_MAX_RANGES));
	if (l->set->full == ADDRSET_FULL_MEMORY)
		return (addrset_load_fail(l, "%s:%zu: out of memory", l->name,
		    l->lineno));
	addrset_load_bad(l, l->lineno, line, len);
	return (0);
}

static void
addrset_load_bad(struct addrset_loader *l, size_t lineno, const char *line,
    size_t len)
{
	char	 text[41];
	size_t	 i;

	if (l->bad++ >= ADDRSET_LOG_BAD)
		return;
	if (len > sizeof(text) - 1)
		len = sizeof(text) - 1;
	for (i = 0; i < len; i++)
		text[i] = isprint((unsigned char)line[i]) ? line[i] : '?';
	text[i] = '\0';
	log_warnx("%s:%zu: bad address \"%.40s\"", l->name, lineno, text);
}

static int
addrset_load_fail(struct addrset_loader *l, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	(void)vsnprintf(l->err, sizeof(l->err), fmt, ap);
	va_end(ap);
	l->failed = 1;
	return (-1);
}

/*
 * Reads what is left, frees the loader and returns the finished set, or
 * NULL with the reason in err.
 */
struct addrset *
addrset_load_finish(struct addrset_loader *l, size_t *bad_lines, char *err,
    size_t errlen)
{
	struct addrset	*set = NULL;
	int		 r;

	while ((r = addrset_load_step(l, SIZE_MAX)) == 1)
		;
	if (bad_lines != NULL)
		*bad_lines = l->bad;
	if (r == -1) {
		if (err != NULL && errlen > 0)
			(void)strlcpy(err, l->err, errlen);
	} else {
		if (l->bad > ADDRSET_LOG_BAD)
			log_warnx("%s: %zu bad lines, the first %d logged",
			    l->name, l->bad, ADDRSET_LOG_BAD);
		set = l->set;
		l->set = NULL;
		addrset_finish(set);
	}
	addrset_load_abort(l);
	return (set);
}

void
addrset_load_abort(struct addrset_loader *l)
{
	if (l == NULL)
		return;
	(void)gzclose(l->gz);
	addrset_free(l->set);
	free(l->buf);
	free(l->name);
	free(l);
}

static struct addr128
addr4(uint32_t a)
{
	struct addr128	 r = { 0, a };

	return (r);
}

static int
addr128_cmp(const struct addr128 *a, const struct addr128 *b)
{
	if (a->hi != b->hi)
		return (a->hi < b->hi ? -1 : 1);
	if (a->lo != b->lo)
		return (a->lo < b->lo ? -1 : 1);
	return (0);
}

/* The netmask of a prefix length, 0 to 128. */
static struct addr128
addr128_mask(int prefixlen)
{
	struct addr128	 m;

	if (prefixlen <= 0)
		m.hi = 0;
	else if (prefixlen >= 64)
		m.hi = UINT64_MAX;
	else
		m.hi = UINT64_MAX << (64 - prefixlen);
	if (prefixlen <= 64)
		m.lo = 0;
	else if (prefixlen >= 128)
		m.lo = UINT64_MAX;
	else
		m.lo = UINT64_MAX << (128 - prefixlen);
	return (m);
}

static int
addr128_ctz(struct addr128 a)
{
	int	 n = 0;

	if (a.lo == 0) {
		if (a.hi == 0)
			return (128);
		a.lo = a.hi;
		n = 64;
	}
	while ((a.lo & 1) == 0) {
		a.lo >>= 1;
		n++;
	}
	return (n);
}

static struct addr128
addr128_from_bytes(const uint8_t *b)
{
	struct addr128	 a = { 0, 0 };
	int		 i;

	for (i = 0; i < 8; i++)
		a.hi = a.hi << 8 | b[i];
	for (i = 8; i < 16; i++)
		a.lo = a.lo << 8 | b[i];
	return (a);
}

static void
addr128_to_bytes(struct addr128 a, uint8_t *b)
{
	int	 i;

	for (i = 7; i >= 0; i--) {
		b[i] = a.hi & 0xff;
		a.hi >>= 8;
	}
	for (i = 15; i >= 8; i--) {
		b[i] = a.lo & 0xff;
		a.lo >>= 8;
	}
}

static int
range4_cmp(const void *a, const void *b)
{
	const struct range4	*x = a, *y = b;

	if (x->start != y->start)
		return (x->start < y->start ? -1 : 1);
	return (0);
}

static int
range6_cmp(const void *a, const void *b)
{
	const struct range6	*x = a, *y = b;

	return (addr128_cmp(&x->start, &y->start));
}
