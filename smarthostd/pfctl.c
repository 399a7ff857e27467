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
 * The pf process: the only code with firewall privileges; it mirrors
 * grey's lists into pf tables or nftables sets.  The firewall backends
 * arrive with the firewall issue; for now it takes grey's tables in,
 * checks them and says what it would install.
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>

#include <string.h>

#include "smarthostd.h"

static void	 pfctl_dispatch_peer(struct imsgev *, struct imsg *);

static const char *const pfctl_table_names[FW_TABLE_MAX] = {
	[FW_WHITE] =		"white",
	[FW_TRAP] =		"trap",
	[FW_BLOCK] =		"block",
	[FW_SPF_WHITE] =	"spf-white"
};

/* The table being received, and its size so far. */
static int	 pfctl_table = -1;
static size_t	 pfctl_count;

void
pfctl_main(void)
{
	static const struct proc_handlers	 handlers = {
		.peer =		pfctl_dispatch_peer
	};

	if (pledge("stdio recvfd", NULL) == -1)
		fatal("pledge");
	proc_child_run(&handlers);
}

static void
pfctl_dispatch_peer(struct imsgev *iev, struct imsg *imsg)
{
	struct fw_addr	 a;
	size_t		 len = imsg_get_len(imsg), i;
	int		 table;

	if (iev->peer != PROC_GREY)
		fatalx("unexpected imsg %u from %s", imsg_get_type(imsg),
		    proc_name(iev->peer));
	switch (imsg_get_type(imsg)) {
	case IMSG_PF_TABLE_START:
	case IMSG_PF_TABLE_END:
		imsg_expect_size(imsg, sizeof(table));
		(void)imsg_get_data(imsg, &table, sizeof(table));
		if (table < 0 || table >= FW_TABLE_MAX)
			fatalx("grey sent a bad table");
		if (imsg_get_type(imsg) == IMSG_PF_TABLE_START) {
			pfctl_table = table;
			pfctl_count = 0;
			break;
		}
		if (table != pfctl_table)
			fatalx("grey ended a table it did not start");
		log_info("table %s: %zu addresses and networks (no firewall "
		    "backend yet)", pfctl_table_names[table], pfctl_count);
		pfctl_table = -1;
		break;
	case IMSG_PF_TABLE_ADDRS:
		if (pfctl_table == -1 || len % sizeof(a) != 0)
			fatalx("grey sent addresses out of a table");
		for (i = 0; i < len / sizeof(a); i++) {
			memcpy(&a, (unsigned char *)imsg->data + i * sizeof(a),
			    sizeof(a));
			if ((a.af != AF_INET || a.prefixlen > 32) &&
			    (a.af != AF_INET6 || a.prefixlen > 128))
				fatalx("grey sent a bad address");
		}
		pfctl_count += len / sizeof(a);
		break;
	default:
		fatalx("unexpected imsg %u from grey", imsg_get_type(imsg));
	}
}
