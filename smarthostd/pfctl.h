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
 * The pf process's firewall backends: pfctl_nft.c (Linux), pfctl_pf.c
 * (OpenBSD, and the none backend elsewhere).  The Makefile links one.
 * pfctl.c checks every entry before a backend sees it; the entries a
 * backend gets are well formed, host bits clear, one table at a time.
 */

struct pfctl_backend {
	enum firewall_kind	 kind;
	const char		*promises;	/* pledge(2), after init */
	/* privileged setup before pledge; may fail, which replace says */
	void	(*init)(void);
	/*
	 * A table's whole contents: the firewall holds exactly these
	 * entries afterwards.  timeout is the seconds left, 0 for none.
	 * -1, with the reason in err, if the firewall refused.
	 */
	int	(*replace)(const struct firewall_config *, int,
		    const struct fw_entry *, size_t, char *, size_t);
	/*
	 * Deletions and additions, in order, in one transaction; NULL
	 * when the backend only replaces.
	 */
	int	(*apply)(const struct firewall_config *,
		    const struct fw_entry *, size_t, char *, size_t);
	/* What the firewall holds for a table; -1 if unknown. */
	int64_t	(*count)(const struct firewall_config *, int);
	/*
	 * Empty a table the configuration no longer names, without
	 * creating it; NULL when a replace with nothing does that.
	 */
	int	(*empty)(const struct firewall_config *, int, char *, size_t);
	/* Does the firewall drop timed-out entries by itself? */
	int	 expires;
};

extern const struct pfctl_backend pfctl_backend;
