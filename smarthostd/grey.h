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
 * The grey process: grey.c runs it (configuration, the tick, dispatch,
 * the decisions at connect and at RCPT, learning); grey_lists.c keeps
 * the blocklist and whitelist files, the whitelist table and the
 * spf-whitelist networks; grey_dns.c the DNSBL cache and score, the
 * reverse-DNS cache and the facts smtp asks for at DATA; grey_fw.c
 * tells the pf process what the firewall tables hold; grey_ctl.c
 * answers control.
 */

#ifndef GREY_H
#define GREY_H

struct grey_list {
	TAILQ_ENTRY(grey_list)	 entry;
	char			 name[NAME_MAX_LEN];
	char			 path[PATH_MAX];
	char			 message[MESSAGE_LEN];
	int			 white;
	int			 seen;		/* in this configuration */
	struct addrset		*set;		/* NULL: never loaded */
	struct addrset_loader	*loader;	/* a new version coming in */
	time_t			 loaded;
	size_t			 bad_lines;
};
TAILQ_HEAD(grey_lists, grey_list);

/* An spf-whitelist domain and the networks it expanded to. */
struct spf_domain {
	TAILQ_ENTRY(spf_domain)	 entry;
	char			 name[HOSTNAME_LEN];
	char			*nets;		/* lines; NULL: none yet */
	size_t			 nets_len;
	time_t			 refreshed;
	time_t			 next;
	int			 pending;
	int			 seen;
	char			 status[MESSAGE_LEN];
};
TAILQ_HEAD(spf_domains, spf_domain);

/* One client's answer in one DNSBL zone, cached for its TTL. */
struct dnsbl_cached {
	RB_ENTRY(dnsbl_cached)	 entry;
	char			 name[HOSTNAME_LEN];	/* reversed.zone */
	int			 listed;
	time_t			 expire;
};

struct grey_facts_req;

/*
 * A client's reverse DNS: its PTR name, and whether that name resolves
 * back to it.  Looked up at connect, cached an hour; facts requests
 * that come while it is out wait for it.
 */
struct rdns_cached {
	RB_ENTRY(rdns_cached)	 entry;
	char			 addr[INET6_ADDRSTRLEN];
	struct sockaddr_storage	 client;
	enum rdns_status	 status;
	char			 name[HOSTNAME_LEN];
	int			 pending;
	time_t			 expire;
	TAILQ_HEAD(, grey_facts_req) waiters;
};
RB_HEAD(rdns_cache, rdns_cached);

struct grey_stats {
	uint64_t		 connects;
	uint64_t		 blocked;
	uint64_t		 trapped_connects;
	uint64_t		 checks;
	uint64_t		 passed;
	uint64_t		 greylisted;
	uint64_t		 tempfail;
	uint64_t		 trapped;
};

/* grey.c */
extern struct grey_stats	 grey_stats;
extern time_t			 grey_config_loaded;
int	 grey_parse_addr(const char *, struct sockaddr_storage *);

/* grey_lists.c */
extern struct grey_lists	 grey_lists;
extern struct spf_domains	 spf_domains;
extern struct addrset		*spf_white;
extern struct addrset		*whitelist_set;
extern time_t			 spf_white_built;
void	 grey_lists_init(void);
void	 grey_lists_config(void);
void	 grey_list_file(struct imsg *);
void	 grey_whitelist_build(void);
int	 grey_whitelisted(const struct sockaddr_storage *);
void	 spf_white_config(void);
void	 spf_white_tick(time_t);

/* grey_dns.c */
extern struct rdns_cache	 rdns_cache;
extern size_t			 dnsbl_cache_count;
int	 dnsbl_name(const struct sockaddr_storage *, const char *, char *,
	    size_t);
struct dnsbl_cached *dnsbl_cache_get(const char *, time_t);
void	 dnsbl_cache_put(const char *, int, uint32_t);
int	 dnsbl_listed_addr(const char *);
int	 dnsbl_score(const struct sockaddr_storage *, char *, size_t);
void	 grey_facts(uint32_t, const struct grey_check *);
struct rdns_cached *rdns_lookup(const struct sockaddr_storage *,
	    struct grey_facts_req *);
int	 rdns_cached_cmp(struct rdns_cached *, struct rdns_cached *);
RB_PROTOTYPE(rdns_cache, rdns_cached, entry, rdns_cached_cmp);

/* grey_fw.c */
void	 grey_fw_change(enum firewall_table, const char *, int, time_t);
void	 grey_fw_white_renewed(const char *, time_t, time_t);
void	 grey_fw_flush(void);
void	 grey_fw_resync(enum firewall_table);
void	 grey_fw_resync_all(void);
void	 grey_auth_failed(const struct sockaddr_storage *);

/* grey_ctl.c */
void	 grey_ctl_init(void);
void	 grey_dispatch_control(struct imsg *);
void	 grey_ctl_send(uint32_t, uint32_t, const void *, size_t);
void	 grey_spf_remember(const char *, const char *, enum spf_verdict);

#endif /* GREY_H */
