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
 * The pf backend (OpenBSD): table ioctls on /dev/pf, which is opened
 * before pledge("pf").  The tables must exist, declared in pf.conf
 * ("table <white> persist"); the process only replaces their contents.
 * Every update is DIOCRSETADDRS, the whole table at once, and the count
 * is DIOCRGETTSTATS: both are among the few ioctls pledge(2) allows
 * with "pf" (DIOCRADDADDRS and DIOCRDELADDRS are not).  pf tables have
 * no timeouts: pfctl.c replaces a table when its entries expire.
 *
 * How this was verified: it was NOT compiled; the build machine has no
 * <net/pfvar.h>.  The structures and ioctls were checked by reading
 * OpenBSD's sbin/pfctl/pfctl_radix.c (pfr_set_addrs, pfr_get_tstats),
 * sys/net/pfvar.h and pf_table.c (a too small buffer gets the count back
 * in pfrio_size), and pledge(2).  Build and test it on OpenBSD before
 * relying on it.
 */

#ifdef __OpenBSD__

#include <sys/types.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <net/if.h>
#include <net/pfvar.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smarthostd.h"
#include "pfctl.h"

static void	 pf_init(void);
static int	 pf_replace(const struct firewall_config *, int,
		    const struct fw_entry *, size_t, char *, size_t);
static int64_t	 pf_count(const struct firewall_config *, int);
static int	 pf_table(const struct firewall_config *, int,
		    struct pfr_table *);

const struct pfctl_backend pfctl_backend = {
	.kind =		FIREWALL_PF,
	.promises =	"stdio recvfd pf",
	.init =		pf_init,
	.replace =	pf_replace,
	.count =	pf_count,
	.expires =	0
};

static int	 pf_dev = -1;

static void
pf_init(void)
{
	/* Failure is said at the first replace, and mail flows on. */
	pf_dev = open("/dev/pf", O_RDWR | O_CLOEXEC);
}

static int
pf_table(const struct firewall_config *fw, int t, struct pfr_table *tbl)
{
	memset(tbl, 0, sizeof(*tbl));
	if (strlcpy(tbl->pfrt_name, fw->tables[t], sizeof(tbl->pfrt_name)) >=
	    sizeof(tbl->pfrt_name))
		return (-1);
	return (0);
}

static int
pf_replace(const struct firewall_config *fw, int t,
    const struct fw_entry *e, size_t n, char *err, size_t errsize)
{
	struct pfioc_table	 io;
	struct pfr_addr		*a;
	size_t			 i;

	if (pf_dev == -1) {
		(void)snprintf(err, errsize, "/dev/pf could not be opened");
		return (-1);
	}
	if (n > INT_MAX) {
		(void)snprintf(err, errsize, "table too large");
		return (-1);
	}
	memset(&io, 0, sizeof(io));
	if (pf_table(fw, t, &io.pfrio_table) == -1) {
		(void)snprintf(err, errsize, "table name too long: %s",
		    fw->tables[t]);
		return (-1);
	}
	if ((a = calloc(n == 0 ? 1 : n, sizeof(*a))) == NULL)
		fatal(NULL);
	for (i = 0; i < n; i++) {
		a[i].pfra_af = e[i].addr.af;
		a[i].pfra_net = e[i].addr.prefixlen;
		if (e[i].addr.af == AF_INET)
			memcpy(&a[i].pfra_ip4addr, e[i].addr.addr, 4);
		else
			memcpy(&a[i].pfra_ip6addr, e[i].addr.addr, 16);
	}
	io.pfrio_buffer = a;
	io.pfrio_esize = sizeof(*a);
	io.pfrio_size = (int)n;
	if (ioctl(pf_dev, DIOCRSETADDRS, &io) == -1) {
		(void)snprintf(err, errsize, "pf table <%s>: %s",
		    fw->tables[t], errno == ESRCH ? "no such table in pf.conf" :
		    strerror(errno));
		free(a);
		return (-1);
	}
	free(a);
	return (0);
}

/* DIOCRGETTSTATS lists the anchor's tables: ours is found by name. */
static int64_t
pf_count(const struct firewall_config *fw, int t)
{
	struct pfioc_table	 io;
	struct pfr_tstats	*ts = NULL;
	struct pfr_table	 tbl;
	int64_t			 count = -1;
	int			 i, size = 0;

	if (pf_dev == -1 || pf_table(fw, t, &tbl) == -1)
		return (-1);
	for (;;) {
		memset(&io, 0, sizeof(io));
		io.pfrio_buffer = ts;
		io.pfrio_esize = sizeof(*ts);
		io.pfrio_size = size;
		if (ioctl(pf_dev, DIOCRGETTSTATS, &io) == -1)
			goto done;
		if (io.pfrio_size <= size)
			break;
		size = io.pfrio_size;
		free(ts);
		if ((ts = calloc(size, sizeof(*ts))) == NULL)
			fatal(NULL);
	}
	for (i = 0; i < io.pfrio_size; i++)
		if (strcmp(ts[i].pfrts_name, tbl.pfrt_name) == 0 &&
		    ts[i].pfrts_t.pfrt_anchor[0] == '\0')
			count = ts[i].pfrts_cnt;
 done:
	free(ts);
	return (count);
}

#endif /* __OpenBSD__ */
