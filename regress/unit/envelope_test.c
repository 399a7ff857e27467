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
 * Unit tests for smarthostd/envelope.c.  Each case prints one
 * "ok - name" or "not ok - name: reason" line; the exit status is 1 if
 * any failed.  Records are built by hand where a test needs bytes the
 * encoder would never write.
 */

#include <sys/types.h>

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smarthostd.h"

#define REQUIRE(cond, ...) do {						\
	if (!(cond)) {							\
		snprintf(why, sizeof(why), __VA_ARGS__);		\
		goto fail;						\
	}								\
} while (0)

/* Byte offsets in a version 1 record. */
#define OFF_VERSION	4
#define OFF_ID_LEN	8
#define OFF_ID		12

static char		 why[256];
static const char	*current;

/* A filled-in envelope with two recipients; free with envelope_clear. */
static void
sample(struct envelope *e)
{
	memset(e, 0, sizeof(*e));
	(void)strlcpy(e->id, "0123456789abcdef", sizeof(e->id));
	e->arrived = 1767225600;
	e->flags = ENVELOPE_8BITMIME | ENVELOPE_TLS;
	e->body_size = 12345;
	(void)strlcpy(e->sender, "alice@example.org", sizeof(e->sender));
	(void)strlcpy(e->client_addr, "192.0.2.1", sizeof(e->client_addr));
	(void)strlcpy(e->client_name, "mx.example.org",
	    sizeof(e->client_name));
	(void)strlcpy(e->helo, "mx.example.org", sizeof(e->helo));
	(void)strlcpy(e->auth_user, "alice", sizeof(e->auth_user));
	e->nrcpt = 2;
	if ((e->rcpts = calloc(2, sizeof(*e->rcpts))) == NULL)
		abort();
	(void)strlcpy(e->rcpts[0].addr, "bob@example.com",
	    sizeof(e->rcpts[0].addr));
	(void)strlcpy(e->rcpts[0].action, "inbound",
	    sizeof(e->rcpts[0].action));
	e->rcpts[0].state = RCPT_PENDING;
	(void)strlcpy(e->rcpts[1].addr, "carol@example.com",
	    sizeof(e->rcpts[1].addr));
	(void)strlcpy(e->rcpts[1].action, "outbound",
	    sizeof(e->rcpts[1].action));
	e->rcpts[1].state = RCPT_FAILED;
	e->rcpts[1].attempts = 7;
	e->rcpts[1].next_try = -1;
	(void)strlcpy(e->rcpts[1].last_error, "550 5.1.1 no such user",
	    sizeof(e->rcpts[1].last_error));
}

static int
same(const struct envelope *a, const struct envelope *b)
{
	uint32_t	 i;

	if (strcmp(a->id, b->id) != 0 || a->arrived != b->arrived ||
	    a->flags != b->flags || a->body_size != b->body_size ||
	    strcmp(a->sender, b->sender) != 0 ||
	    strcmp(a->client_addr, b->client_addr) != 0 ||
	    strcmp(a->client_name, b->client_name) != 0 ||
	    strcmp(a->helo, b->helo) != 0 ||
	    strcmp(a->auth_user, b->auth_user) != 0 || a->nrcpt != b->nrcpt)
		return (0);
	for (i = 0; i < a->nrcpt; i++) {
		if (strcmp(a->rcpts[i].addr, b->rcpts[i].addr) != 0 ||
		    strcmp(a->rcpts[i].action, b->rcpts[i].action) != 0 ||
		    a->rcpts[i].state != b->rcpts[i].state ||
		    a->rcpts[i].attempts != b->rcpts[i].attempts ||
		    a->rcpts[i].next_try != b->rcpts[i].next_try ||
		    strcmp(a->rcpts[i].last_error,
		    b->rcpts[i].last_error) != 0)
			return (0);
	}
	return (1);
}

static int
encode_sample(unsigned char **buf, size_t *len)
{
	struct envelope	 e;
	int		 rc;

	sample(&e);
	rc = envelope_encode(&e, buf, len);
	envelope_clear(&e);
	return (rc);
}

static void
put_u32_at(unsigned char *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

/*
 * A hand-built record: header, id, then the caller's strings for sender
 * (the only variable part), one recipient with the given state and
 * nrcpt as given.
 */
static unsigned char *
build(size_t *len, uint16_t version, const char *sender, size_t sender_len,
    uint32_t nrcpt, uint32_t state)
{
	unsigned char	*b, *p;
	size_t		 size = 512 + sender_len;
	uint32_t	 i;

	if ((b = p = calloc(1, size)) == NULL)
		abort();
	memcpy(p, "SHEV", 4);
	p[4] = version >> 8;
	p[5] = version;
	p += 8;
	put_u32_at(p, 16);
	memcpy(p + 4, "00000000000000ff", 16);
	p += 20;
	p += 8;		/* arrived 0 */
	p += 4;		/* flags 0 */
	p[7] = 10;	/* body_size 10 */
	p += 8;
	put_u32_at(p, (uint32_t)sender_len);
	memcpy(p + 4, sender, sender_len);
	p += 4 + sender_len;
	for (i = 0; i < 4; i++)	/* client_addr .. auth_user: empty */
		p += 4;
	put_u32_at(p, nrcpt);
	p += 4;
	put_u32_at(p, 1);
	p[4] = 'x';
	p += 5;
	put_u32_at(p, 1);
	p[4] = 'a';
	p += 5;
	put_u32_at(p, state);
	p += 4;
	p += 4 + 8 + 4;	/* attempts, next_try, last_error "" */
	*len = p - b;
	return (b);
}

static int
test_round_trip(void)
{
	struct envelope	 e, d;
	unsigned char	*buf = NULL;
	size_t		 len;

	memset(&d, 0, sizeof(d));
	sample(&e);
	REQUIRE(envelope_encode(&e, &buf, &len) == 0, "encode failed");
	REQUIRE(envelope_decode(buf, len, &d) == 0, "decode failed");
	REQUIRE(same(&e, &d), "decoded envelope differs");
	envelope_clear(&d);
	REQUIRE(d.rcpts == NULL && d.nrcpt == 0, "clear left recipients");
	free(buf);
	envelope_clear(&e);
	return (0);
 fail:
	free(buf);
	envelope_clear(&e);
	envelope_clear(&d);
	return (-1);
}

static int
test_null_sender_round_trip(void)
{
	struct envelope	 e, d;
	unsigned char	*buf = NULL;
	size_t		 len;

	memset(&d, 0, sizeof(d));
	sample(&e);
	e.sender[0] = '\0';
	e.auth_user[0] = '\0';
	REQUIRE(envelope_encode(&e, &buf, &len) == 0, "encode failed");
	REQUIRE(envelope_decode(buf, len, &d) == 0, "decode failed");
	REQUIRE(same(&e, &d) && d.sender[0] == '\0', "decoded differs");
	free(buf);
	envelope_clear(&d);
	envelope_clear(&e);
	return (0);
 fail:
	free(buf);
	envelope_clear(&e);
	envelope_clear(&d);
	return (-1);
}

static int
test_every_truncation(void)
{
	struct envelope	 d;
	unsigned char	*buf = NULL, *copy;
	size_t		 len, n;

	REQUIRE(encode_sample(&buf, &len) == 0, "encode failed");
	for (n = 0; n < len; n++) {
		/* An exact-size copy, so a read past the end is a crash. */
		if ((copy = malloc(n ? n : 1)) == NULL)
			abort();
		memcpy(copy, buf, n);
		if (envelope_decode(copy, n, &d) == 0) {
			envelope_clear(&d);
			free(copy);
			REQUIRE(0, "truncated to %zu of %zu bytes accepted",
			    n, len);
		}
		free(copy);
		REQUIRE(d.rcpts == NULL && d.nrcpt == 0,
		    "failed decode left recipients");
	}
	free(buf);
	return (0);
 fail:
	free(buf);
	return (-1);
}

static int
test_trailing_bytes(void)
{
	struct envelope	 d;
	unsigned char	*buf = NULL, *longer = NULL;
	size_t		 len;

	REQUIRE(encode_sample(&buf, &len) == 0, "encode failed");
	if ((longer = calloc(1, len + 1)) == NULL)
		abort();
	memcpy(longer, buf, len);
	REQUIRE(envelope_decode(longer, len + 1, &d) == -1,
	    "a trailing byte was accepted");
	free(buf);
	free(longer);
	return (0);
 fail:
	free(buf);
	free(longer);
	return (-1);
}

static int
test_bit_flips(void)
{
	struct envelope	 d;
	unsigned char	*buf = NULL;
	size_t		 len, i;
	int		 bit, accepted = 0;

	REQUIRE(encode_sample(&buf, &len) == 0, "encode failed");
	for (i = 0; i < len; i++) {
		for (bit = 0; bit < 8; bit++) {
			buf[i] ^= 1 << bit;
			if (envelope_decode(buf, len, &d) == 0) {
				/* Whatever it took must still be sane. */
				REQUIRE(d.nrcpt >= 1 && d.nrcpt <= 10000 &&
				    strlen(d.id) == 16 &&
				    strcspn(d.sender, "\r\n") ==
				    strlen(d.sender), "insane envelope "
				    "accepted at byte %zu bit %d", i, bit);
				envelope_clear(&d);
				accepted++;
			}
			buf[i] ^= 1 << bit;
		}
	}
	/* A flip in a value (a letter, a time) may be valid; most not. */
	REQUIRE(accepted < (int)(len * 8), "every flip accepted");
	free(buf);
	return (0);
 fail:
	free(buf);
	return (-1);
}

static int
test_random_bytes(void)
{
	struct envelope	 d;
	unsigned char	 buf[600];
	size_t		 i;
	int		 round;

	srandom(42);
	for (round = 0; round < 20000; round++) {
		for (i = 0; i < sizeof(buf); i++)
			buf[i] = (unsigned char)random();
		if (round % 2 == 0)
			memcpy(buf, "SHEV\0\1\0\0", 8);
		if (envelope_decode(buf, (size_t)random() % sizeof(buf),
		    &d) == 0)
			envelope_clear(&d);
	}
	return (0);
}

static int
test_bad_version_and_magic(void)
{
	struct envelope	 d;
	unsigned char	*buf = NULL;
	size_t		 len;

	REQUIRE(encode_sample(&buf, &len) == 0, "encode failed");
	buf[OFF_VERSION + 1] = 2;
	REQUIRE(envelope_decode(buf, len, &d) == -1 && errno == EINVAL,
	    "version 2 accepted");
	buf[OFF_VERSION + 1] = 0;
	REQUIRE(envelope_decode(buf, len, &d) == -1, "version 0 accepted");
	buf[OFF_VERSION + 1] = 1;
	REQUIRE(envelope_decode(buf, len, &d) == 0, "version 1 refused");
	envelope_clear(&d);
	buf[0] = 'X';
	REQUIRE(envelope_decode(buf, len, &d) == -1, "bad magic accepted");
	free(buf);
	return (0);
 fail:
	free(buf);
	return (-1);
}

static int
test_hand_built_record_decodes(void)
{
	struct envelope	 d;
	unsigned char	*b;
	size_t		 len;

	b = build(&len, 1, "a@b", 3, 1, RCPT_PENDING);
	REQUIRE(envelope_decode(b, len, &d) == 0, "valid record refused");
	REQUIRE(strcmp(d.sender, "a@b") == 0 && d.nrcpt == 1 &&
	    strcmp(d.rcpts[0].addr, "x") == 0 && d.body_size == 10,
	    "fields differ");
	envelope_clear(&d);
	free(b);
	return (0);
 fail:
	free(b);
	return (-1);
}

static int
test_oversize_strings(void)
{
	struct envelope	 d, e;
	unsigned char	*b = NULL, *out = NULL;
	char		 big[SMTP_ADDR_LEN + 1];
	size_t		 len;

	memset(big, 'a', sizeof(big));
	/* Exactly the buffer: no room for the NUL. */
	b = build(&len, 1, big, SMTP_ADDR_LEN, 1, RCPT_PENDING);
	REQUIRE(envelope_decode(b, len, &d) == -1, "sender of %d accepted",
	    SMTP_ADDR_LEN);
	free(b);
	b = build(&len, 1, big, SMTP_ADDR_LEN - 1, 1, RCPT_PENDING);
	REQUIRE(envelope_decode(b, len, &d) == 0, "sender of %d refused",
	    SMTP_ADDR_LEN - 1);
	envelope_clear(&d);
	free(b);
	b = NULL;

	/* A length far beyond the record. */
	b = build(&len, 1, "a@b", 3, 1, RCPT_PENDING);
	put_u32_at(b + OFF_ID_LEN, 0xffffffff);
	REQUIRE(envelope_decode(b, len, &d) == -1, "huge length accepted");
	free(b);
	b = NULL;

	/* The encoder refuses an unterminated field too. */
	sample(&e);
	memset(e.helo, 'h', sizeof(e.helo));
	REQUIRE(envelope_encode(&e, &out, &len) == -1 && out == NULL,
	    "unterminated helo encoded");
	envelope_clear(&e);
	return (0);
 fail:
	free(b);
	free(out);
	return (-1);
}

static int
test_line_breaks_and_nul_in_strings(void)
{
	struct envelope	 d, e;
	unsigned char	*b = NULL, *out = NULL;
	size_t		 len;
	const char	*bad[] = { "a\r\nRCPT:<x>", "a\nb", "a\rb", "a\0b" };
	size_t		 i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		b = build(&len, 1, bad[i], 3 + (i == 0 ? 8 : 0), 1,
		    RCPT_PENDING);
		REQUIRE(envelope_decode(b, len, &d) == -1,
		    "string %zu accepted", i);
		free(b);
		b = NULL;
	}
	sample(&e);
	(void)strlcpy(e.rcpts[1].addr, "x@y\r\nDATA", sizeof(e.rcpts[1].addr));
	REQUIRE(envelope_encode(&e, &out, &len) == -1, "CRLF encoded");
	envelope_clear(&e);
	return (0);
 fail:
	free(b);
	free(out);
	return (-1);
}

static int
test_id_must_be_16_lowercase_hex(void)
{
	struct envelope	 d, e;
	unsigned char	*b = NULL, *out = NULL;
	size_t		 len;

	b = build(&len, 1, "a@b", 3, 1, RCPT_PENDING);
	b[OFF_ID + 3] = 'A';
	REQUIRE(envelope_decode(b, len, &d) == -1, "uppercase id accepted");
	b[OFF_ID + 3] = '/';
	REQUIRE(envelope_decode(b, len, &d) == -1, "id with / accepted");
	free(b);
	b = NULL;
	sample(&e);
	(void)strlcpy(e.id, "0123", sizeof(e.id));
	REQUIRE(envelope_encode(&e, &out, &len) == -1, "short id encoded");
	envelope_clear(&e);
	return (0);
 fail:
	free(b);
	free(out);
	return (-1);
}

static int
test_rcpt_state_and_count_bounds(void)
{
	struct envelope	 d;
	unsigned char	*b = NULL;
	size_t		 len;

	b = build(&len, 1, "a@b", 3, 1, RCPT_FAILED + 1);
	REQUIRE(envelope_decode(b, len, &d) == -1, "state %d accepted",
	    RCPT_FAILED + 1);
	free(b);
	b = build(&len, 1, "a@b", 3, 0, RCPT_PENDING);
	REQUIRE(envelope_decode(b, len, &d) == -1, "nrcpt 0 accepted");
	free(b);
	b = build(&len, 1, "a@b", 3, 10001, RCPT_PENDING);
	REQUIRE(envelope_decode(b, len, &d) == -1, "nrcpt 10001 accepted");
	free(b);
	/* Claims two but holds one: must fail without reading past. */
	b = build(&len, 1, "a@b", 3, 2, RCPT_PENDING);
	REQUIRE(envelope_decode(b, len, &d) == -1, "missing rcpt accepted");
	free(b);
	return (0);
 fail:
	free(b);
	return (-1);
}

static int
test_encoder_refuses_bad_envelopes(void)
{
	struct envelope	 e;
	unsigned char	*out = NULL;
	size_t		 len;

	sample(&e);
	e.nrcpt = 0;
	REQUIRE(envelope_encode(&e, &out, &len) == -1, "nrcpt 0 encoded");
	e.nrcpt = 2;
	e.flags = 0x80;
	REQUIRE(envelope_encode(&e, &out, &len) == -1, "bad flag encoded");
	e.flags = 0;
	e.rcpts[0].action[0] = '\0';
	REQUIRE(envelope_encode(&e, &out, &len) == -1, "empty action "
	    "encoded");
	envelope_clear(&e);
	return (0);
 fail:
	envelope_clear(&e);
	free(out);
	return (-1);
}

static int
test_many_recipients(void)
{
	struct envelope	 e, d;
	unsigned char	*buf = NULL;
	size_t		 len;
	uint32_t	 i;

	memset(&d, 0, sizeof(d));
	sample(&e);
	free(e.rcpts);
	e.nrcpt = 10000;
	if ((e.rcpts = calloc(e.nrcpt, sizeof(*e.rcpts))) == NULL)
		abort();
	for (i = 0; i < e.nrcpt; i++) {
		(void)snprintf(e.rcpts[i].addr, sizeof(e.rcpts[i].addr),
		    "user%u@example.com", i);
		(void)strlcpy(e.rcpts[i].action, "a",
		    sizeof(e.rcpts[i].action));
	}
	REQUIRE(envelope_encode(&e, &buf, &len) == 0, "encode failed");
	REQUIRE(envelope_decode(buf, len, &d) == 0, "decode failed");
	REQUIRE(same(&e, &d), "decoded differs");
	free(buf);
	envelope_clear(&d);
	envelope_clear(&e);
	return (0);
 fail:
	free(buf);
	envelope_clear(&d);
	envelope_clear(&e);
	return (-1);
}

static const struct {
	const char	*name;
	int		(*fn)(void);
} tests[] = {
	{ "envelope_round_trip_keeps_every_field", test_round_trip },
	{ "envelope_null_sender_round_trips", test_null_sender_round_trip },
	{ "envelope_10000_recipients_round_trip", test_many_recipients },
	{ "envelope_hand_built_record_decodes",
	    test_hand_built_record_decodes },
	{ "envelope_every_truncation_rejected", test_every_truncation },
	{ "envelope_trailing_byte_rejected", test_trailing_bytes },
	{ "envelope_bit_flips_never_crash_or_pass_insane",
	    test_bit_flips },
	{ "envelope_random_bytes_never_crash", test_random_bytes },
	{ "envelope_bad_version_or_magic_rejected",
	    test_bad_version_and_magic },
	{ "envelope_oversize_strings_rejected", test_oversize_strings },
	{ "envelope_cr_lf_nul_in_strings_rejected",
	    test_line_breaks_and_nul_in_strings },
	{ "envelope_id_must_be_16_lowercase_hex",
	    test_id_must_be_16_lowercase_hex },
	{ "envelope_rcpt_state_and_count_bounded",
	    test_rcpt_state_and_count_bounds },
	{ "envelope_encoder_refuses_what_decoder_would",
	    test_encoder_refuses_bad_envelopes },
};

/* A test that hangs must still fail, with its line, not block the build. */
static void
timeout(int sig)
{
	char	 line[256];

	(void)sig;
	strlcpy(line, "not ok - ", sizeof(line));
	strlcat(line, current, sizeof(line));
	strlcat(line, ": timed out\n", sizeof(line));
	if (write(STDOUT_FILENO, line, strlen(line)) == -1)
		_exit(2);
	_exit(1);
}

int
main(void)
{
	size_t	 i;
	int	 failed = 0;

	signal(SIGALRM, timeout);
	for (i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
		why[0] = '\0';
		current = tests[i].name;
		alarm(60);
		if (tests[i].fn() == 0)
			printf("ok - %s\n", tests[i].name);
		else {
			printf("not ok - %s: %s\n", tests[i].name, why);
			failed = 1;
		}
		fflush(stdout);
	}
	alarm(0);
	return (failed);
}
