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

#include <sys/mman.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef __linux__
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <linux/capability.h>
#endif
#ifndef __OpenBSD__
#include <crypt.h>
#endif

#include "compat.h"

#ifndef __OpenBSD__
/*
 * Linux has no pledge(2) or unveil(2).  The chroot and uid separation do
 * the real work there; these keep the call sites identical.
 */
int
pledge(const char *promises, const char *execpromises)
{
	(void)promises;
	(void)execpromises;
	return (0);
}

int
unveil(const char *path, const char *permissions)
{
	(void)path;
	(void)permissions;
	return (0);
}

/* Compare without an early exit, so that timing tells nothing. */
int
timingsafe_bcmp(const void *a, const void *b, size_t len)
{
	const unsigned char	*p = a, *q = b;
	unsigned char		 diff = 0;
	size_t			 i;

	for (i = 0; i < len; i++)
		diff |= p[i] ^ q[i];
	return (diff != 0);
}

int
compat_no_new_privs(void)
{
#ifdef __linux__
	return (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
#else
	return (0);
#endif
}

#ifdef __linux__
int
compat_caps_keep(void)
{
	return (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0));
}

/*
 * 0 when CAP_NET_ADMIN is all that is left; 1 when it was not there to
 * keep (a container, a unit without it), and nothing is left.
 */
int
compat_caps_net_admin_only(void)
{
	struct __user_cap_header_struct	 head;
	struct __user_cap_data_struct	 data[_LINUX_CAPABILITY_U32S_3];
	int				 i = CAP_TO_INDEX(CAP_NET_ADMIN);
	uint32_t			 bit = CAP_TO_MASK(CAP_NET_ADMIN);
	int				 had;

	memset(&head, 0, sizeof(head));
	head.version = _LINUX_CAPABILITY_VERSION_3;
	if (syscall(SYS_capget, &head, data) == -1)
		return (-1);
	had = (data[i].permitted & bit) != 0;
	memset(data, 0, sizeof(data));
	if (had)
		data[i].permitted = data[i].effective = bit;
	if (syscall(SYS_capset, &head, data) == -1 ||
	    prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) == -1)
		return (-1);
	return (had ? 0 : 1);
}
#else
/* No capabilities: the descriptors opened as root are what is kept. */
int
compat_caps_keep(void)
{
	return (0);
}

int
compat_caps_net_admin_only(void)
{
	return (0);
}
#endif

void
compat_setproctitle_init(int argc, char *argv[], char *envp[])
{
	setproctitle_init(argc, argv, envp);
}
#endif

int
compat_exec_path(const char *argv0, char *buf, size_t len)
{
	if (argv0 != NULL && argv0[0] == '/') {
		if (strlcpy(buf, argv0, len) >= len) {
			errno = ENAMETOOLONG;
			return (-1);
		}
		return (0);
	}
#ifdef __linux__
	{
		ssize_t	 n;

		if ((n = readlink("/proc/self/exe", buf, len - 1)) == -1)
			return (-1);
		if ((size_t)n >= len - 1) {
			errno = ENAMETOOLONG;
			return (-1);
		}
		buf[n] = '\0';
		return (0);
	}
#else
	/* OpenBSD daemons require an absolute path to re-exec. */
	errno = EINVAL;
	return (-1);
#endif
}

#ifdef __OpenBSD__
int
compat_memfd(const char *name)
{
	char	 path[] = "/tmp/smarthostd.XXXXXXXXXX";
	int	 fd;

	(void)name;
	if ((fd = shm_mkstemp(path)) == -1)
		return (-1);
	(void)shm_unlink(path);
	return (fd);
}
#else
int
compat_memfd(const char *name)
{
	return (memfd_create(name, MFD_CLOEXEC));
}
#endif

#ifdef __OpenBSD__
int
compat_crypt_check(const char *password, const char *hash)
{
	return (crypt_checkpass(password, hash) == 0 ? 0 : -1);
}

int
compat_crypt_newhash(const char *password, int cost, char *hash, size_t len)
{
	char	 pref[32];

	(void)snprintf(pref, sizeof(pref), "bcrypt,%d", cost);
	return (crypt_newhash(password, pref, hash, len));
}
#else
/* The parent checks one password at a time: one crypt_data will do. */
int
compat_crypt_check(const char *password, const char *hash)
{
	static struct crypt_data	 cd;
	const char			*res;
	size_t				 len = strlen(hash);
	int				 rc = -1;

	res = crypt_r(password, hash, &cd);
	if (res != NULL && res[0] != '*' && strlen(res) == len &&
	    timingsafe_bcmp(res, hash, len) == 0)
		rc = 0;
	explicit_bzero(&cd, sizeof(cd));
	return (rc);
}

int
compat_crypt_newhash(const char *password, int cost, char *hash, size_t len)
{
	struct crypt_data	*cd;
	char			*salt, *res;
	int			 rc = -1;

	errno = 0;
	if ((salt = crypt_gensalt_ra("$2b$", cost, NULL, 0)) == NULL)
		return (-1);
	if ((cd = calloc(1, sizeof(*cd))) == NULL) {
		free(salt);
		return (-1);
	}
	res = crypt_rn(password, salt, cd, sizeof(*cd));
	if (res != NULL && res[0] != '*') {
		if (strlcpy(hash, res, len) < len)
			rc = 0;
		else
			errno = ERANGE;
	} else if (errno == 0)
		errno = EINVAL;
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	free(salt);
	return (rc);
}
#endif
