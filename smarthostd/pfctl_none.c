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
 * The none backend, for systems with neither pf nor nftables: no
 * configured firewall is ever this kind, so nothing reaches it.
 */

#include <sys/types.h>

#include <stdio.h>

#include "smarthostd.h"
#include "pfctl.h"

static void	 none_init(void);
static int	 none_replace(const struct firewall_config *, int,
		    const struct fw_entry *, size_t, char *, size_t);
static int64_t	 none_count(const struct firewall_config *, int);

const struct pfctl_backend pfctl_backend = {
	.kind =		FIREWALL_NONE,
	.promises =	"stdio recvfd",
	.init =		none_init,
	.replace =	none_replace,
	.count =	none_count,
	.expires =	1
};

static void
none_init(void)
{
}

static int
none_replace(const struct firewall_config *fw, int t,
    const struct fw_entry *e, size_t n, char *err, size_t errsize)
{
	(void)fw;
	(void)t;
	(void)e;
	(void)n;
	(void)snprintf(err, errsize, "no firewall on this system");
	return (-1);
}

static int64_t
none_count(const struct firewall_config *fw, int t)
{
	(void)fw;
	(void)t;
	return (-1);
}
