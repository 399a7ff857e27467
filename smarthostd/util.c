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

#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smarthostd.h"

/* The longest duration we accept: ten years is beyond any sane expiry. */
#define DURATION_MAX	(10LL * 365 * 86400)
#define SIZE_MAX_BYTES	(1ULL << 40)

/*
 * Parse "30", "30s", "25m", "4h" or "36d".  A bare number is seconds.
 */
int
parse_duration(const char *s, time_t *result)
{
	long long	 n, unit = 1;
	char		*end;

	if (s == NULL || *s < '0' || *s > '9')
		return (-1);
	errno = 0;
	n = strtoll(s, &end, 10);
	if (errno != 0 || end == s)
		return (-1);
	switch (*end) {
	case '\0':
		break;
	case 's':
		unit = 1;
		end++;
		break;
	case 'm':
		unit = 60;
		end++;
		break;
	case 'h':
		unit = 3600;
		end++;
		break;
	case 'd':
		unit = 86400;
		end++;
		break;
	default:
		return (-1);
	}
	if (*end != '\0' || n > DURATION_MAX / unit)
		return (-1);
	*result = (time_t)(n * unit);
	return (0);
}

/*
 * Parse "512", "64K", "35M" or "1G" into bytes (binary multiples).
 */
int
parse_size(const char *s, uint64_t *result)
{
	unsigned long long	 n, unit = 1;
	char			*end;

	if (s == NULL || *s < '0' || *s > '9')
		return (-1);
	errno = 0;
	n = strtoull(s, &end, 10);
	if (errno != 0 || end == s)
		return (-1);
	switch (*end) {
	case '\0':
		break;
	case 'K':
	case 'k':
		unit = 1024;
		end++;
		break;
	case 'M':
	case 'm':
		unit = 1024 * 1024;
		end++;
		break;
	case 'G':
	case 'g':
		unit = 1024 * 1024 * 1024;
		end++;
		break;
	default:
		return (-1);
	}
	if (*end != '\0' || n > SIZE_MAX_BYTES / unit)
		return (-1);
	*result = n * unit;
	return (0);
}

/*
 * Make sure a directory exists with the given owner and mode.  An existing
 * directory gets its owner and mode corrected; anything else in its place
 * is an error.
 */
int
mkdir_owned(const char *path, uid_t uid, gid_t gid, mode_t mode)
{
	struct stat	 sb;

	if (mkdir(path, mode) == -1 && errno != EEXIST)
		return (-1);
	if (lstat(path, &sb) == -1)
		return (-1);
	if (!S_ISDIR(sb.st_mode)) {
		errno = ENOTDIR;
		return (-1);
	}
	if ((sb.st_uid != uid || sb.st_gid != gid) &&
	    chown(path, uid, gid) == -1)
		return (-1);
	if ((sb.st_mode & 07777) != mode && chmod(path, mode) == -1)
		return (-1);
	return (0);
}

const char *
wait_status_string(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		(void)snprintf(buf, len, "exited with status %d",
		    WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		(void)snprintf(buf, len, "was killed by signal %d (%s)%s",
		    WTERMSIG(status), strsignal(WTERMSIG(status)),
		    WCOREDUMP(status) ? ", core dumped" : "");
	else
		(void)snprintf(buf, len, "stopped (status 0x%x)", status);
	return (buf);
}
