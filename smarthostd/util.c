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

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <arpa/inet.h>

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

/*
 * Does the address fall in the network?  The network is an address or
 * "address/prefix"; an IPv4-mapped IPv6 client matches IPv4 networks.
 * Returns -1 when the network does not parse.
 */
int
addr_in_net(const struct sockaddr_storage *ss, const char *net)
{
	unsigned char	 want[16], have[16];
	char		 buf[INET6_ADDRSTRLEN + 5], *slash, *end;
	const unsigned char *a;
	long		 prefix;
	int		 af, len, i, bits;

	if (strlcpy(buf, net, sizeof(buf)) >= sizeof(buf))
		return (-1);
	if ((slash = strchr(buf, '/')) != NULL)
		*slash++ = '\0';
	if (inet_pton(AF_INET, buf, want) == 1) {
		af = AF_INET;
		len = 4;
	} else if (inet_pton(AF_INET6, buf, want) == 1) {
		af = AF_INET6;
		len = 16;
	} else
		return (-1);
	prefix = len * 8;
	if (slash != NULL) {
		errno = 0;
		prefix = strtol(slash, &end, 10);
		if (*slash == '\0' || *end != '\0' || errno != 0 ||
		    prefix < 0 || prefix > len * 8)
			return (-1);
	}

	if (ss->ss_family == AF_INET) {
		a = (const unsigned char *)
		    &((const struct sockaddr_in *)ss)->sin_addr;
		if (af != AF_INET)
			return (0);
		memcpy(have, a, 4);
	} else if (ss->ss_family == AF_INET6) {
		a = (const unsigned char *)
		    &((const struct sockaddr_in6 *)ss)->sin6_addr;
		if (af == AF_INET6)
			memcpy(have, a, 16);
		else if (IN6_IS_ADDR_V4MAPPED(
		    &((const struct sockaddr_in6 *)ss)->sin6_addr))
			memcpy(have, a + 12, 4);
		else
			return (0);
	} else
		return (0);

	for (i = 0, bits = prefix; bits > 0; i++, bits -= 8) {
		unsigned char mask = bits >= 8 ? 0xff : (0xff << (8 - bits));

		if ((have[i] & mask) != (want[i] & mask))
			return (0);
	}
	return (1);
}

int
addr_is_loopback(const struct sockaddr_storage *ss)
{
	return (addr_in_net(ss, "127.0.0.0/8") == 1 ||
	    addr_in_net(ss, "::1") == 1);
}

const char *
addr_string(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	const void	*a;

	if (ss->ss_family == AF_INET)
		a = &((const struct sockaddr_in *)ss)->sin_addr;
	else if (ss->ss_family == AF_INET6)
		a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
	else {
		(void)strlcpy(buf, "unknown", len);
		return (buf);
	}
	if (inet_ntop(ss->ss_family, a, buf, len) == NULL)
		(void)strlcpy(buf, "unknown", len);
	return (buf);
}

/*
 * Parse a duration that may be given in milliseconds: "250ms", or any
 * form parse_duration() takes.
 */
int
parse_duration_ms(const char *s, uint32_t *result)
{
	unsigned long long	 n;
	time_t			 secs;
	size_t			 len;
	char			*end;

	len = strlen(s);
	if (len > 2 && strcmp(s + len - 2, "ms") == 0) {
		if (*s < '0' || *s > '9')
			return (-1);
		errno = 0;
		n = strtoull(s, &end, 10);
		if (errno != 0 || end != s + len - 2 || n > UINT32_MAX)
			return (-1);
		*result = (uint32_t)n;
		return (0);
	}
	if (parse_duration(s, &secs) == -1 || secs > UINT32_MAX / 1000)
		return (-1);
	*result = (uint32_t)secs * 1000;
	return (0);
}

/*
 * The key greylisting keeps a client under: its IPv4 address, or its
 * IPv6 address cut to prefix bits ("2001:db8:1:2::/64"), since one
 * IPv6 host may use a whole /64.  An IPv4-mapped address is IPv4.
 */
int
addr_client_key(const struct sockaddr_storage *ss, int prefix, char *buf,
    size_t len)
{
	struct in6_addr	 a6;
	char		 text[INET6_ADDRSTRLEN];
	int		 i, n;

	if (ss->ss_family == AF_INET) {
		if (inet_ntop(AF_INET,
		    &((const struct sockaddr_in *)ss)->sin_addr, buf, len) ==
		    NULL)
			return (-1);
		return (0);
	}
	if (ss->ss_family != AF_INET6)
		return (-1);
	a6 = ((const struct sockaddr_in6 *)ss)->sin6_addr;
	if (IN6_IS_ADDR_V4MAPPED(&a6)) {
		if (inet_ntop(AF_INET, &a6.s6_addr[12], buf, len) == NULL)
			return (-1);
		return (0);
	}
	if (prefix < 0 || prefix > 128)
		return (-1);
	for (i = 0; i < 16; i++) {
		if (prefix >= (i + 1) * 8)
			continue;
		if (prefix <= i * 8)
			a6.s6_addr[i] = 0;
		else
			a6.s6_addr[i] &= (uint8_t)(0xff << (8 - (prefix - i * 8)));
	}
	if (inet_ntop(AF_INET6, &a6, text, sizeof(text)) == NULL)
		return (-1);
	if (prefix == 128)
		n = snprintf(buf, len, "%s", text);
	else
		n = snprintf(buf, len, "%s/%d", text, prefix);
	if (n < 0 || (size_t)n >= len)
		return (-1);
	return (0);
}
