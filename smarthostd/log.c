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

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "smarthostd.h"

static int	 log_to_stderr;
static int	 log_verbose;
static char	 log_procname[32] = "smarthostd";

/*
 * With -d every line goes to stderr; otherwise to syslog with facility
 * mail, like every other MTA, so it lands in the mail log.
 */
void
log_init(int to_stderr, int facility)
{
	log_to_stderr = to_stderr;
	if (!log_to_stderr)
		openlog("smarthostd", LOG_PID | LOG_NDELAY, facility);
	tzset();
}

int
log_on_stderr(void)
{
	return (log_to_stderr);
}

void
log_procinit(const char *name)
{
	if (name != NULL)
		(void)strlcpy(log_procname, name, sizeof(log_procname));
}

void
log_setverbose(int verbose)
{
	log_verbose = verbose;
}

int
log_getverbose(void)
{
	return (log_verbose);
}

void
vlog(int priority, const char *fmt, va_list ap)
{
	char	 line[1024];
	int	 saved_errno = errno;

	(void)vsnprintf(line, sizeof(line), fmt, ap);
	if (log_to_stderr) {
		(void)fprintf(stderr, "smarthostd[%ld]: %s: %s\n",
		    (long)getpid(), log_procname, line);
		(void)fflush(stderr);
	} else
		syslog(priority, "%s: %s", log_procname, line);
	errno = saved_errno;
}

static void
vlog_errno(int priority, int errnum, const char *fmt, va_list ap)
{
	char	 line[1024];

	if (fmt == NULL) {
		logit(priority, "%s", strerror(errnum));
		return;
	}
	(void)vsnprintf(line, sizeof(line), fmt, ap);
	logit(priority, "%s: %s", line, strerror(errnum));
}

void
logit(int priority, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog(priority, fmt, ap);
	va_end(ap);
}

void
log_warn(const char *fmt, ...)
{
	va_list	 ap;
	int	 saved_errno = errno;

	va_start(ap, fmt);
	vlog_errno(LOG_ERR, saved_errno, fmt, ap);
	va_end(ap);
	errno = saved_errno;
}

void
log_warnx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog(LOG_ERR, fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog(LOG_INFO, fmt, ap);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list	 ap;

	if (!log_verbose)
		return;
	va_start(ap, fmt);
	vlog(LOG_DEBUG, fmt, ap);
	va_end(ap);
}

static void __attribute__((__noreturn__))
vfatalc(int errnum, const char *fmt, va_list ap)
{
	char	 line[1024];

	(void)vsnprintf(line, sizeof(line), fmt, ap);
	if (errnum != 0)
		logit(LOG_CRIT, "fatal: %s: %s", line, strerror(errnum));
	else
		logit(LOG_CRIT, "fatal: %s", line);
	exit(1);
}

void
fatal(const char *fmt, ...)
{
	va_list	 ap;
	int	 saved_errno = errno;

	va_start(ap, fmt);
	vfatalc(saved_errno, fmt, ap);
	va_end(ap);
}

void
fatalx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vfatalc(0, fmt, ap);
	va_end(ap);
}
