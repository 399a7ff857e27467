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
 * Unit tests for smarthostd/message.c, the scanner's header edits.
 * Each case prints "ok - name" or "not ok - name: reason".
 */

#include <sys/stat.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smarthostd.h"
#include "smtp.h"

#define RCVD	"Received: from a ([192.0.2.1])\r\n\tby b; date\r\n"

static int	 failures;

struct edit_case {
	const char	*name;
	const char	*input;		/* after our Received header */
	const char	*headers;	/* the scanner's */
	const char	*prefix;
	int		 strip;
	const char	*expect;	/* after our Received header */
};

static const struct edit_case cases[] = {
	{ "headers_follow_our_received",
	    "From: a@b\r\nSubject: hi\r\n\r\nbody\r\n",
	    "X-Virus-Scanned: ClamAV\r\n", "", 1,
	    "X-Virus-Scanned: ClamAV\r\nFrom: a@b\r\nSubject: hi\r\n"
	    "\r\nbody\r\n" },
	{ "incoming_spam_fields_stripped_with_continuations",
	    "X-Spam-Flag: YES\r\nFrom: a@b\r\nx-spam-status: Yes,\r\n"
	    "\tscore=99\r\n  tests=FAKE\r\nTo: c@d\r\n\r\nX-Spam-Flag: body\r\n",
	    "X-Spam-Flag: NO\r\n", "", 1,
	    "X-Spam-Flag: NO\r\nFrom: a@b\r\nTo: c@d\r\n\r\n"
	    "X-Spam-Flag: body\r\n" },
	{ "spam_fields_kept_without_strip",
	    "X-Spam-Flag: YES\r\n\r\nbody\r\n", "", "", 0,
	    "X-Spam-Flag: YES\r\n\r\nbody\r\n" },
	{ "x_spammer_is_not_a_spam_field",
	    "X-Spammer: kept\r\n\r\n", "", "", 1,
	    "X-Spammer: kept\r\n\r\n" },
	{ "subject_prefixed",
	    "From: a@b\r\nSubject:   cheap pills\r\n\r\nSubject: body\r\n",
	    "", "***SPAM***", 1,
	    "From: a@b\r\nSubject: ***SPAM*** cheap pills\r\n\r\n"
	    "Subject: body\r\n" },
	{ "folded_subject_keeps_its_continuation",
	    "Subject: one\r\n two\r\n\r\n", "", "[SPAM]", 1,
	    "Subject: [SPAM] one\r\n two\r\n\r\n" },
	{ "obsolete_subject_syntax",
	    "subject : x\r\n\r\n", "", "[SPAM]", 1,
	    "Subject: [SPAM] x\r\n\r\n" },
	{ "empty_subject",
	    "Subject:\r\n\r\n", "", "[SPAM]", 1,
	    "Subject: [SPAM]\r\n\r\n" },
	{ "only_the_first_subject_prefixed",
	    "Subject: a\r\nSubject: b\r\n\r\n", "", "[S]", 1,
	    "Subject: [S] a\r\nSubject: b\r\n\r\n" },
	{ "subject_added_when_missing",
	    "From: a@b\r\n\r\nSubject: in the body\r\n", "", "[SPAM]", 1,
	    "From: a@b\r\nSubject: [SPAM]\r\n\r\nSubject: in the body\r\n" },
	{ "subject_like_name_is_not_subject",
	    "Subjects: x\r\n\r\n", "", "[S]", 1,
	    "Subjects: x\r\nSubject: [S]\r\n\r\n" },
	{ "no_empty_line_all_header",
	    "From: a@b\r\nX-Spam-Score: 9\r\nSubject: s\r\n", "", "[S]", 1,
	    "From: a@b\r\nSubject: [S] s\r\n" },
	{ "no_empty_line_unterminated",
	    "From: a@b", "", "[S]", 1,
	    "From: a@b\r\nSubject: [S]\r\n" },
	{ "empty_message",
	    "", "X-A: b\r\n", "[S]", 1,
	    "X-A: b\r\nSubject: [S]\r\n" },
	{ "spam_header_after_empty_line_is_body",
	    "From: a@b\r\n\r\nX-Spam-Flag: YES\r\n", "", "", 1,
	    "From: a@b\r\n\r\nX-Spam-Flag: YES\r\n" },
	{ "our_authserv_id_results_stripped_others_kept",
	    "Authentication-Results: MX.test; spf=pass smtp.mailfrom=\r\n"
	    "\tbank.example\r\nAuthentication-Results: other.example; "
	    "spf=fail\r\nAuthentication-Results: mx.tester; x\r\n\r\n",
	    "Authentication-Results: mx.test; spf=none\r\n", "", 1,
	    "Authentication-Results: mx.test; spf=none\r\n"
	    "Authentication-Results: other.example; spf=fail\r\n"
	    "Authentication-Results: mx.tester; x\r\n\r\n" },
	{ "results_kept_when_we_add_none",
	    "Authentication-Results: mx.test; spf=pass\r\n\r\n", "", "", 1,
	    "Authentication-Results: mx.test; spf=pass\r\n\r\n" },
	{ "leading_continuation_without_field_kept",
	    " folded\r\nX-Spam-Level: ***\r\n more\r\nA: b\r\n\r\n", "", "",
	    1, " folded\r\nA: b\r\n\r\n" }
};

static void
fail(const char *name, const char *fmt, const char *detail)
{
	failures++;
	printf("not ok - %s: ", name);
	printf(fmt, detail);
	printf("\n");
}

static int
body_fd(const char *text, size_t len)
{
	int	 fd;

	if ((fd = compat_memfd("message_test")) == -1) {
		perror("memfd");
		exit(1);
	}
	if (write(fd, text, len) != (ssize_t)len) {
		perror("write");
		exit(1);
	}
	return (fd);
}

static char *
read_all(int fd, uint64_t size)
{
	char	*buf;

	if ((buf = calloc(1, size + 1)) == NULL)
		exit(1);
	if (pread(fd, buf, size, 0) != (ssize_t)size) {
		perror("pread");
		exit(1);
	}
	return (buf);
}

static void
run_case(const struct edit_case *c)
{
	struct scan_result	 res;
	struct stat		 st;
	char			*in, *want, *got;
	uint64_t		 size;
	int			 fd, newfd;

	memset(&res, 0, sizeof(res));
	(void)strlcpy(res.headers, c->headers, sizeof(res.headers));
	(void)strlcpy(res.subject_prefix, c->prefix,
	    sizeof(res.subject_prefix));
	res.strip_spam_headers = c->strip;
	if (!message_scan_result_valid(&res)) {
		fail(c->name, "%s", "the result is not valid");
		return;
	}
	if (asprintf(&in, "%s%s", RCVD, c->input) == -1 ||
	    asprintf(&want, "%s%s", RCVD, c->expect) == -1)
		exit(1);
	fd = body_fd(in, strlen(in));
	if ((newfd = message_apply_scan(fd, strlen(in), strlen(RCVD), &res,
	    &size)) == -1) {
		fail(c->name, "message_apply_scan: %s", strerror(errno));
		goto done;
	}
	if (fstat(newfd, &st) == -1 || (uint64_t)st.st_size != size) {
		fail(c->name, "%s", "the size returned is not the file's");
		goto done;
	}
	if (size > strlen(in) + message_edit_bound(&res)) {
		fail(c->name, "%s", "over the bound");
		goto done;
	}
	got = read_all(newfd, size);
	if (strcmp(got, want) != 0) {
		failures++;
		printf("not ok - %s\n# want: ", c->name);
		fwrite(want, 1, strlen(want), stdout);
		printf("\n# got: ");
		fwrite(got, 1, strlen(got), stdout);
		printf("\n");
	} else
		printf("ok - %s\n", c->name);
	free(got);
 done:
	if (newfd != -1)
		(void)close(newfd);
	/* The old body is never written. */
	got = read_all(fd, strlen(in));
	if (strcmp(got, in) != 0)
		fail(c->name, "%s", "the old body changed");
	free(got);
	(void)close(fd);
	free(in);
	free(want);
}

static void
check_valid(const char *name, const char *headers, const char *prefix,
    int expect)
{
	struct scan_result	 res;

	memset(&res, 0, sizeof(res));
	(void)strlcpy(res.headers, headers, sizeof(res.headers));
	(void)strlcpy(res.subject_prefix, prefix, sizeof(res.subject_prefix));
	if (message_scan_result_valid(&res) != expect)
		fail(name, "expected %s", expect ? "valid" : "invalid");
	else
		printf("ok - %s\n", name);
}

static void
check_unterminated(void)
{
	struct scan_result	 res;

	memset(&res, 0, sizeof(res));
	memset(res.headers, 'a', sizeof(res.headers));
	if (message_scan_result_valid(&res))
		fail("result_headers_without_nul", "%s", "taken as valid");
	else
		printf("ok - result_headers_without_nul\n");
}

/* A body larger than the output buffer, and the most the edits add. */
static void
check_large(void)
{
	struct scan_result	 res;
	const char		*name = "large_body_bounded";
	char			*in, *got;
	size_t			 len = 3 * 65536 + 17, hlen, i;
	uint64_t		 size;
	int			 fd, newfd;

	memset(&res, 0, sizeof(res));
	for (i = 0; i + 12 < sizeof(res.headers) - 1; i += 12)
		memcpy(res.headers + i, "X-Abc: def\r\n", 12);
	hlen = strlen(res.headers);
	memset(res.subject_prefix, 'S', sizeof(res.subject_prefix) - 1);
	res.strip_spam_headers = 1;
	if ((in = malloc(len)) == NULL)
		exit(1);
	memcpy(in, RCVD "From: a\r\n\r\n", strlen(RCVD) + 11);
	for (i = strlen(RCVD) + 11; i < len; i++)
		in[i] = i % 80 == 79 ? '\n' : 'x';
	fd = body_fd(in, len);
	if ((newfd = message_apply_scan(fd, len, strlen(RCVD), &res,
	    &size)) == -1) {
		fail(name, "message_apply_scan: %s", strerror(errno));
		return;
	}
	got = read_all(newfd, size);
	if (size != len + hlen + strlen("Subject: \r\n") +
	    sizeof(res.subject_prefix) - 1)
		fail(name, "%s", "unexpected size");
	else if (size > len + message_edit_bound(&res))
		fail(name, "%s", "over the bound");
	else if (memcmp(got + size - (len - strlen(RCVD) - 11),
	    in + strlen(RCVD) + 11, len - strlen(RCVD) - 11) != 0)
		fail(name, "%s", "the body changed");
	else
		printf("ok - %s\n", name);
	free(got);
	free(in);
	(void)close(fd);
	(void)close(newfd);
}

int
main(void)
{
	size_t	 i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(&cases[i]);
	check_valid("result_lines_crlf", "A: b\r\nC: d\r\n", "[S]", 1);
	check_valid("result_empty", "", "", 1);
	check_valid("result_bare_lf", "A: b\n", "", 0);
	check_valid("result_no_final_crlf", "A: b", "", 0);
	check_valid("result_empty_line", "A: b\r\n\r\nC: d\r\n", "", 0);
	check_valid("result_starts_folded", " A: b\r\n", "", 0);
	check_valid("result_folded_line", "A: b\r\n\tc\r\n", "", 1);
	check_valid("result_control_character", "A: \033b\r\n", "", 0);
	check_valid("result_prefix_crlf", "", "[S]\r\nBcc: x", 0);
	check_unterminated();
	check_large();
	return (failures > 0);
}
