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
 * grey-preload: fills the grey.mdb of a state directory with COUNT
 * greylisted tuples through the daemon's own greydb.c, as first
 * attempts would: distinct clients (10.0.0.0/8), HELO names, senders
 * and recipients, first seen within the last hour, so that none has
 * expired or passed during a bench run.  Linked by bench/grey.sh with
 * smarthostd/greydb.o, util.o and log.o.
 *
 *	grey-preload statedir count max-entries map-size-mb
 */

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/tree.h>

#include <err.h>
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "smarthostd.h"
#include "greybench.h"

#define COMMIT_EVERY	10000

static void
tuple_make(struct grey_tuple *t, uint64_t i)
{
	uint64_t	r = mix(i);

	if ((size_t)snprintf(t->client, sizeof(t->client), "10.%u.%u.%u",
	    (unsigned int)(r >> 56), (unsigned int)(r >> 48) & 0xff,
	    (unsigned int)(r >> 40) & 0xff) >= sizeof(t->client) ||
	    (size_t)snprintf(t->helo, sizeof(t->helo), "mx%u.pre%u.example",
	    (unsigned int)(r % 100), (unsigned int)(r >> 20) % 10000) >=
	    sizeof(t->helo) ||
	    (size_t)snprintf(t->sender, sizeof(t->sender),
	    "p%016" PRIx64 "@pre%u.example", r,
	    (unsigned int)(r >> 20) % 10000) >= sizeof(t->sender) ||
	    (size_t)snprintf(t->rcpt, sizeof(t->rcpt),
	    "q%016" PRIx64 "@grey.bench.example", mix(r)) >= sizeof(t->rcpt))
		errx(1, "tuple too long");
}

int
main(int argc, char *argv[])
{
	struct greylist_config	 conf;
	struct grey_tuple	 t;
	enum grey_verdict	 v;
	uint64_t		 i, count, seed;
	uint64_t		 refused = 0;
	time_t			 now;

	if (argc != 5) {
		fprintf(stderr, "usage: grey-preload statedir count "
		    "max-entries map-size-mb\n");
		return (2);
	}
	count = number(argv[2], 100000000);

	memset(&conf, 0, sizeof(conf));
	conf.enabled = 1;
	conf.passtime = 25 * 60;
	conf.greyexp = 4 * 3600;
	conf.whiteexp = 864 * 3600;
	conf.trapexp = 24 * 3600;
	conf.ipv6_prefix = 64;
	conf.max_entries = number(argv[3], UINT32_MAX);
	conf.map_size = number(argv[4], 1024 * 1024) * 1024 * 1024;
	if (conf.max_entries < count)
		errx(2, "max-entries below the count");

	log_init(1, LOG_DAEMON);
	log_procinit("grey-preload");
	if (greydb_open(argv[1], conf.map_size) == -1)
		errx(1, "cannot open grey.mdb in %s", argv[1]);

	now = time(NULL);
	seed = mix((uint64_t)now);
	memset(&t, 0, sizeof(t));
	for (i = 0; i < count; i++) {
		tuple_make(&t, seed + i);
		v = greydb_check(&conf, &t, t.client,
		    now - (time_t)(mix(seed ^ i) % 3600));
		if (v != GREY_GREYLISTED)
			refused++;
		if ((i + 1) % COMMIT_EVERY == 0 && greydb_commit() == -1)
			errx(1, "commit failed after %" PRIu64 " tuples", i + 1);
	}
	if (greydb_commit() == -1)
		errx(1, "the last commit failed");
	greydb_close();
	if (refused) {
		warnx("%" PRIu64 " of %" PRIu64 " tuples not greylisted as "
		    "first attempts", refused, count);
		return (1);
	}
	printf("%" PRIu64 " tuples\n", count);
	return (0);
}
