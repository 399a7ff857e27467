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
 * The nftables backend (Linux), through libnftables.  Each configured
 * set NAME is two sets of the daemon's own table, NAME (ipv4_addr) and
 * NAME6 (ipv6_addr), with flags interval,timeout; they are created when
 * missing, and sets a ruleset declared with the same type and flags are
 * taken as they are.  Commands are generated here from binary addresses
 * and checked names, one transaction per replace or batch; nothing from
 * nft is read but its error text (for the log) and, for show tables, the
 * number of elements of a listing.  No other table is ever named.
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <linux/netlink.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <nftables/libnftables.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smarthostd.h"
#include "pfctl.h"

#define NFT_ELEMS_PER_LINE	1024

static void	 nft_init(void);
static int	 nft_replace(const struct firewall_config *, int,
		    const struct fw_entry *, size_t, char *, size_t);
static int	 nft_apply(const struct firewall_config *,
		    const struct fw_entry *, size_t, char *, size_t);
static int64_t	 nft_count(const struct firewall_config *, int);
static int	 nft_empty(const struct firewall_config *, int, char *,
		    size_t);
static FILE	*nft_begin(const struct firewall_config *, int, char *, size_t,
		    char **, size_t *, char *, size_t);
static int	 nft_names(const struct firewall_config *, int, char *,
		    size_t);
static void	 nft_elem(FILE *, const struct fw_entry *);
static int	 nft_run(FILE *, char **, char *, size_t);
static int64_t	 nft_count_elems(const char *);

const struct pfctl_backend pfctl_backend = {
	.kind =		FIREWALL_NFTABLES,
	.promises =	"stdio recvfd",
	.init =		nft_init,
	.replace =	nft_replace,
	.apply =	nft_apply,
	.count =	nft_count,
	.empty =	nft_empty,
	.expires =	1
};

static struct nft_ctx	*nft;

static void
nft_init(void)
{
	int	 fd;

	/*
	 * libnftables opens its netlink socket in nft_ctx_new and exits
	 * the process when it cannot: try first, so that a kernel without
	 * nf_tables leaves a process that says so at each replace while
	 * mail flows on.
	 */
	if ((fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC,
	    NETLINK_NETFILTER)) == -1) {
		log_warn("netlink socket for nftables");
		return;
	}
	(void)close(fd);
	if ((nft = nft_ctx_new(NFT_CTX_DEFAULT)) == NULL)
		return;
	if (nft_ctx_buffer_output(nft) != 0 || nft_ctx_buffer_error(nft) != 0) {
		nft_ctx_free(nft);
		nft = NULL;
	}
}

/*
 * The set's name for this table, as "family table name"; -1 when a
 * name is not one nft takes as it is (checked again: it becomes text).
 */
static int
nft_names(const struct firewall_config *fw, int t, char *buf, size_t size)
{
	const char	*name;
	size_t		 flen;

	flen = strcspn(fw->nft_table, " ");
	name = fw->nft_table + flen;
	if (*name++ != ' ' ||
	    config_firewall_name_error(FIREWALL_NFTABLES, name) != NULL ||
	    config_firewall_name_error(FIREWALL_NFTABLES,
	    fw->tables[t]) != NULL)
		return (-1);
	if ((flen != 4 || strncmp(fw->nft_table, "inet", 4) != 0) &&
	    (flen != 2 || strncmp(fw->nft_table, "ip", 2) != 0) &&
	    (flen != 3 || strncmp(fw->nft_table, "ip6", 3) != 0))
		return (-1);
	if ((size_t)snprintf(buf, size, "%s %s", fw->nft_table,
	    fw->tables[t]) >= size)
		return (-1);
	return (0);
}

/*
 * The set's name for table t into set, and a stream for the commands
 * of one transaction on it; NULL, with the reason in err, for a name
 * nft would not take.
 */
static FILE *
nft_begin(const struct firewall_config *fw, int t, char *set,
    size_t setsize, char **buf, size_t *len, char *err, size_t errsize)
{
	FILE	*f;

	if (nft_names(fw, t, set, setsize) == -1) {
		(void)snprintf(err, errsize, "invalid nftables name \"%s\" "
		    "or \"%s\"", fw->nft_table, fw->tables[t]);
		return (NULL);
	}
	if ((f = open_memstream(buf, len)) == NULL)
		fatal("open_memstream");
	return (f);
}

static int
nft_replace(const struct firewall_config *fw, int t,
    const struct fw_entry *e, size_t n, char *err, size_t errsize)
{
	FILE		*f;
	char		*buf, set[2 * NAME_MAX_LEN + 8];
	size_t		 i, line, len;
	int		 v6;

	if ((f = nft_begin(fw, t, set, sizeof(set), &buf, &len, err,
	    errsize)) == NULL)
		return (-1);
	(void)fprintf(f, "add table %s\n", fw->nft_table);
	for (v6 = 0; v6 <= 1; v6++) {
		(void)fprintf(f, "add set %s%s { type %s; "
		    "flags interval,timeout; }\n", set, v6 ? "6" : "",
		    v6 ? "ipv6_addr" : "ipv4_addr");
		(void)fprintf(f, "flush set %s%s\n", set, v6 ? "6" : "");
		line = 0;
		for (i = 0; i < n; i++) {
			if ((e[i].addr.af == AF_INET6) != v6)
				continue;
			if (line == 0)
				(void)fprintf(f, "add element %s%s { ", set,
				    v6 ? "6" : "");
			else
				(void)fprintf(f, ", ");
			nft_elem(f, &e[i]);
			if (++line == NFT_ELEMS_PER_LINE) {
				(void)fprintf(f, " }\n");
				line = 0;
			}
		}
		if (line > 0)
			(void)fprintf(f, " }\n");
	}
	return (nft_run(f, &buf, err, errsize));
}

static int
nft_apply(const struct firewall_config *fw, const struct fw_entry *e,
    size_t n, char *err, size_t errsize)
{
	FILE		*f;
	char		*buf, set[2 * NAME_MAX_LEN + 8];
	size_t		 i, len;

	if ((f = open_memstream(&buf, &len)) == NULL)
		fatal("open_memstream");
	for (i = 0; i < n; i++) {
		if (nft_names(fw, e[i].table, set, sizeof(set)) == -1) {
			(void)fclose(f);
			free(buf);
			(void)snprintf(err, errsize, "invalid nftables name");
			return (-1);
		}
		(void)fprintf(f, "%s element %s%s { ", e[i].add ? "add" :
		    "delete", set, e[i].addr.af == AF_INET6 ? "6" : "");
		nft_elem(f, &e[i]);
		(void)fprintf(f, " }\n");
	}
	return (nft_run(f, &buf, err, errsize));
}

/* What the kernel holds: the elements of both sets, counted. */
static int64_t
nft_count(const struct firewall_config *fw, int t)
{
	char		 set[2 * NAME_MAX_LEN + 8], cmd[sizeof(set) + 16];
	int64_t		 total = 0, n;
	int		 v6, rv;

	if (nft == NULL || nft_names(fw, t, set, sizeof(set)) == -1)
		return (-1);
	for (v6 = 0; v6 <= 1; v6++) {
		(void)snprintf(cmd, sizeof(cmd), "list set %s%s", set,
		    v6 ? "6" : "");
		nft_ctx_output_set_flags(nft, NFT_CTX_OUTPUT_JSON);
		rv = nft_run_cmd_from_buffer(nft, cmd);
		nft_ctx_output_set_flags(nft, 0);
		if (rv != 0 ||
		    (n = nft_count_elems(nft_ctx_get_output_buffer(nft))) == -1)
			return (-1);
		total += n;
	}
	return (total);
}

/*
 * The number of items of the first "elem" array of nft's JSON listing
 * of one set: commas at the array's own depth, strings skipped.  No
 * "elem" is an empty set.
 */
static int64_t
nft_count_elems(const char *s)
{
	int64_t		 n = 0;
	int		 depth = 1, item = 0;

	if (s == NULL)
		return (-1);
	if ((s = strstr(s, "\"elem\":")) == NULL)
		return (0);
	s += strlen("\"elem\":");
	s += strspn(s, " \t\n");
	if (*s++ != '[')
		return (-1);
	for (; *s != '\0' && depth > 0; s++) {
		if (*s == '"') {
			for (s++; *s != '\0' && *s != '"'; s++)
				if (*s == '\\' && s[1] != '\0')
					s++;
			if (*s == '\0')
				return (-1);
		}
		if (*s == '[' || *s == '{')
			depth++;
		else if (*s == ']' || *s == '}')
			depth--;
		else if (*s == ',' && depth == 1)
			n++;
		if (depth > 0 && !isspace((unsigned char)*s))
			item = 1;
	}
	return (depth == 0 ? n + item : -1);
}

/* "1.2.3.4", "10.0.0.0/8", with " timeout 3600s" when it has one. */
static void
nft_elem(FILE *f, const struct fw_entry *e)
{
	char	 a[INET6_ADDRSTRLEN];
	int	 max = e->addr.af == AF_INET6 ? 128 : 32;

	if (inet_ntop(e->addr.af, e->addr.addr, a, sizeof(a)) == NULL)
		fatal("inet_ntop");
	(void)fprintf(f, "%s", a);
	if (e->addr.prefixlen != max)
		(void)fprintf(f, "/%u", e->addr.prefixlen);
	/* nft 1.0.6 refuses 100000000s and more, but not 1200d. */
	if (e->add && e->timeout > 0)
		(void)fprintf(f, " timeout %ud%uh%um%us", e->timeout / 86400,
		    e->timeout / 3600 % 24, e->timeout / 60 % 60,
		    e->timeout % 60);
}

/*
 * Only "flush": a set that is gone (the ruleset dropped it too) is not
 * made again, and the error says so.
 */
static int
nft_empty(const struct firewall_config *fw, int t, char *err,
    size_t errsize)
{
	FILE	*f;
	char	*buf, set[2 * NAME_MAX_LEN + 8];
	size_t	 len;

	if ((f = nft_begin(fw, t, set, sizeof(set), &buf, &len, err,
	    errsize)) == NULL)
		return (-1);
	(void)fprintf(f, "flush set %s\nflush set %s6\n", set, set);
	return (nft_run(f, &buf, err, errsize));
}

/* Run the commands written to f as one transaction. */
static int
nft_run(FILE *f, char **buf, char *err, size_t errsize)
{
	const char	*msg;
	int		 rv;

	if (fclose(f) != 0)
		fatal("open_memstream");
	if (nft == NULL) {
		free(*buf);
		(void)snprintf(err, errsize, "no nftables context");
		return (-1);
	}
	rv = nft_run_cmd_from_buffer(nft, *buf);
	free(*buf);
	if (rv == 0)
		return (0);
	msg = nft_ctx_get_error_buffer(nft);
	if (msg == NULL || *msg == '\0')
		msg = "nftables refused the changes";
	(void)snprintf(err, errsize, "%.*s", (int)strcspn(msg, "\n"), msg);
	return (-1);
}
