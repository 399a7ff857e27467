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
 * What the daemon needs from the OS beyond POSIX.  On OpenBSD everything
 * here is native; on Linux libbsd (through its overlay headers) provides
 * the BSD functions and this file fills the few gaps it leaves.
 */

#ifndef SMARTHOSTD_COMPAT_H
#define SMARTHOSTD_COMPAT_H

#include <sys/types.h>
#include <unistd.h>

#ifdef __OpenBSD__
#define compat_setproctitle_init(argc, argv, envp)	do { } while (0)
#define compat_no_new_privs()				(0)
#define compat_caps_keep()				(0)
#define compat_caps_net_admin_only()			(0)
#else
#include <stdlib.h>
#include <string.h>

int	 pledge(const char *, const char *);
int	 unveil(const char *, const char *);
int	 compat_no_new_privs(void);
/*
 * Around setresuid: keep the capabilities (PR_SET_KEEPCAPS), then keep
 * CAP_NET_ADMIN only, permitted and effective: 0, or 1 when there was
 * no CAP_NET_ADMIN to keep and none is left.
 */
int	 compat_caps_keep(void);
int	 compat_caps_net_admin_only(void);
int	 timingsafe_bcmp(const void *, const void *, size_t);
void	 compat_setproctitle_init(int, char *[], char *[]);
#endif

/*
 * An anonymous, unlinked file in memory for a message body: smtp writes
 * it from its chroot, where no directory is writable, and passes it on.
 */
int	 compat_memfd(const char *);

/* Absolute path of the running executable, for re-exec. */
int	 compat_exec_path(const char *, char *, size_t);

/*
 * bcrypt: 0 when the password matches the hash ("$2b$..."), and a new
 * hash of a password at cost 2^cost.  OpenBSD's crypt_checkpass(3) and
 * crypt_newhash(3); libxcrypt's crypt_r(3) and crypt_gensalt_ra(3)
 * elsewhere.
 */
int	 compat_crypt_check(const char *, const char *);
int	 compat_crypt_newhash(const char *, int, char *, size_t);

/*
 * OpenBSD's base libevent is 1.4, whose buffers are always one piece:
 * the two libevent 2 buffer calls the daemon makes, in 1.4's words.
 */
#ifdef __OpenBSD__
#include <event.h>
#define evbuffer_get_length(b)		EVBUFFER_LENGTH(b)
#define evbuffer_pullup(b, n)		((void)(n), EVBUFFER_DATA(b))
#endif

#endif /* SMARTHOSTD_COMPAT_H */
