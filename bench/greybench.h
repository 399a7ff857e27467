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
 * What bench/greyload.c and bench/grey-preload.c share: each is one
 * file compiled on its own by bench/grey.sh, so these are static.
 * Needs <err.h>, <errno.h>, <stdint.h> and <stdlib.h>.
 */

#ifndef GREYBENCH_H
#define GREYBENCH_H

/* A decimal command-line argument up to max, or exit 2. */
static unsigned long long
number(const char *s, unsigned long long max)
{
	unsigned long long	 n;
	char			*end;

	errno = 0;
	n = strtoull(s, &end, 10);
	if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0 ||
	    n > max)
		errx(2, "%s: not a number up to %llu", s, max);
	return (n);
}

/*
 * splitmix64: distinct inputs give distinct, well spread outputs, so
 * a counter becomes tuples that land all over the database's tree.
 */
static uint64_t
mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return (x ^ (x >> 31));
}

#endif /* GREYBENCH_H */
