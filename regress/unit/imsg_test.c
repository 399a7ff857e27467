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
 * Unit tests for compat/imsg.c.  Each case prints one "ok - name" or
 * "not ok - name: reason" line; the exit status is 1 if any failed.
 * Raw socket writes stand in for the peer where a test needs a byte
 * stream that imsg itself would never produce.
 */

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "imsg.h"

#define REQUIRE(cond, ...) do {						\
	if (!(cond)) {							\
		snprintf(why, sizeof(why), __VA_ARGS__);		\
		goto fail;						\
	}								\
} while (0)

struct pair {
	int		 sv[2];
	struct imsgbuf	 a;	/* sender, on sv[0] */
	struct imsgbuf	 b;	/* receiver, on sv[1] */
};

static char		 why[256];
static const char	*current;

static int
pair_open(struct pair *p, int nonblock)
{
	memset(p, 0, sizeof(*p));
	p->sv[0] = p->sv[1] = -1;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, p->sv) == -1)
		return (-1);
	if (nonblock && (fcntl(p->sv[0], F_SETFL, O_NONBLOCK) == -1 ||
	    fcntl(p->sv[1], F_SETFL, O_NONBLOCK) == -1))
		return (-1);
	if (imsgbuf_init(&p->a, p->sv[0]) == -1)
		return (-1);
	if (imsgbuf_init(&p->b, p->sv[1]) == -1)
		return (-1);
	return (0);
}

static void
pair_close(struct pair *p)
{
	imsgbuf_clear(&p->a);
	imsgbuf_clear(&p->b);
	if (p->sv[0] != -1)
		close(p->sv[0]);
	if (p->sv[1] != -1)
		close(p->sv[1]);
	p->sv[0] = p->sv[1] = -1;
}

/*
 * Get the next message on p->b, writing out p->a's queue and reading as
 * needed.  Returns imsg_get()'s result; EOF and a 5 s stall count as -1.
 */
static ssize_t
recv_one(struct pair *p, struct imsg *imsg)
{
	struct pollfd	 pfd;
	ssize_t		 n;

	for (;;) {
		if ((n = imsg_get(&p->b, imsg)) != 0)
			return (n);
		if (imsgbuf_write(&p->a) == -1)
			return (-1);
		pfd.fd = p->b.fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, 5000) <= 0) {
			errno = ETIMEDOUT;
			return (-1);
		}
		switch (imsgbuf_read(&p->b)) {
		case -1:
			return (-1);
		case 0:
			errno = ENOTCONN;
			return (-1);
		}
	}
}

static int
write_all(int s, const void *data, size_t len)
{
	const unsigned char	*p = data;
	ssize_t			 n;

	while (len > 0) {
		if ((n = write(s, p, len)) == -1)
			return (-1);
		p += n;
		len -= n;
	}
	return (0);
}

/* Send raw bytes with an fd attached to the first of them. */
static int
send_with_fd(int s, void *data, size_t len, int fd)
{
	struct msghdr	 msg;
	struct cmsghdr	*cmsg;
	struct iovec	 iov;
	union {
		struct cmsghdr	 hdr;
		unsigned char	 buf[CMSG_SPACE(sizeof(int))];
	} cbuf;

	memset(&msg, 0, sizeof(msg));
	memset(&cbuf, 0, sizeof(cbuf));
	iov.iov_base = data;
	iov.iov_len = len;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = cbuf.buf;
	msg.msg_controllen = sizeof(cbuf.buf);
	cmsg = CMSG_FIRSTHDR(&msg);
	cmsg->cmsg_len = CMSG_LEN(sizeof(int));
	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	memcpy(CMSG_DATA(cmsg), &fd, sizeof(fd));
	return (sendmsg(s, &msg, 0) == (ssize_t)len ? 0 : -1);
}

/* Build a raw message: header with the given len field, then payload. */
static size_t
raw_msg(unsigned char *out, uint32_t type, uint32_t lenfield,
    const void *data, size_t datalen)
{
	struct imsg_hdr	 hdr;

	hdr.type = type;
	hdr.len = lenfield;
	hdr.peerid = type + 1;
	hdr.pid = type + 2;
	memcpy(out, &hdr, sizeof(hdr));
	if (datalen > 0)
		memcpy(out + sizeof(hdr), data, datalen);
	return (sizeof(hdr) + datalen);
}

/* A pipe whose read end does not block, to observe its write ends. */
static int
open_pipe(int pfd[2])
{
	if (pipe(pfd) == -1)
		return (-1);
	return (fcntl(pfd[0], F_SETFL, O_NONBLOCK));
}

/* True once every write end of the pipe has been closed. */
static int
pipe_at_eof(int rfd)
{
	char	 c;

	return (read(rfd, &c, 1) == 0);
}

static void
close_pipe(int pfd[2])
{
	if (pfd[0] != -1)
		close(pfd[0]);
	if (pfd[1] != -1)
		close(pfd[1]);
	pfd[0] = pfd[1] = -1;
}

static void
fill(unsigned char *p, size_t len, unsigned int seed)
{
	size_t	 i;

	for (i = 0; i < len; i++)
		p[i] = (unsigned char)(seed * 7 + i);
}

static int
test_round_trip(void)
{
	struct pair	 p;
	struct imsg	 imsg;
	char		 payload[] = "hello, world";
	char		 got[sizeof(payload)];
	ssize_t		 n;
	int		 rv = -1;

	memset(&imsg, 0, sizeof(imsg));
	REQUIRE(pair_open(&p, 0) == 0, "setup: %s", strerror(errno));
	REQUIRE(imsg_compose(&p.a, 42, 7, 0, -1, payload, sizeof(payload)) ==
	    1, "imsg_compose: %s", strerror(errno));
	REQUIRE(imsg_compose(&p.a, 43, 8, 4242, -1, NULL, 0) == 1,
	    "imsg_compose (empty): %s", strerror(errno));
	REQUIRE(imsgbuf_queuelen(&p.a) == 2, "queuelen %u, want 2",
	    imsgbuf_queuelen(&p.a));
	REQUIRE(imsgbuf_flush(&p.a) == 0, "flush: %s", strerror(errno));
	REQUIRE(imsgbuf_queuelen(&p.a) == 0, "queuelen %u after flush",
	    imsgbuf_queuelen(&p.a));

	n = recv_one(&p, &imsg);
	REQUIRE(n == (ssize_t)(IMSG_HEADER_SIZE + sizeof(payload)),
	    "imsg_get returned %zd", n);
	REQUIRE(imsg_get_type(&imsg) == 42, "type %u", imsg_get_type(&imsg));
	REQUIRE(imsg_get_id(&imsg) == 7, "id %u", imsg_get_id(&imsg));
	REQUIRE(imsg_get_pid(&imsg) == getpid(), "pid %d, want %d",
	    (int)imsg_get_pid(&imsg), (int)getpid());
	REQUIRE(imsg.hdr.len == IMSG_HEADER_SIZE + sizeof(payload),
	    "hdr.len %u", imsg.hdr.len);
	REQUIRE(imsg_get_len(&imsg) == sizeof(payload), "len %zu",
	    imsg_get_len(&imsg));
	REQUIRE(imsg_get_data(&imsg, got, sizeof(got)) == 0 &&
	    memcmp(got, payload, sizeof(got)) == 0 &&
	    memcmp(imsg.data, payload, sizeof(payload)) == 0,
	    "payload differs");
	REQUIRE(imsg_get_fd(&imsg) == -1, "unexpected fd");
	imsg_free(&imsg);

	n = recv_one(&p, &imsg);
	REQUIRE(n == IMSG_HEADER_SIZE, "second imsg_get returned %zd", n);
	REQUIRE(imsg_get_type(&imsg) == 43 && imsg_get_id(&imsg) == 8 &&
	    imsg_get_pid(&imsg) == 4242, "second header differs");
	REQUIRE(imsg_get_len(&imsg) == 0 && imsg.data == NULL,
	    "empty message has a payload");
	REQUIRE(imsg_get(&p.b, &imsg) == 0, "a third message appeared");
	rv = 0;
 fail:
	imsg_free(&imsg);
	pair_close(&p);
	return (rv);
}

static int
test_many_in_one_read(void)
{
	struct pair	 p;
	struct imsg	 imsg;
	struct pollfd	 pfd;
	uint32_t	 i, v;
	ssize_t		 n;
	int		 rv = -1;

	memset(&imsg, 0, sizeof(imsg));
	REQUIRE(pair_open(&p, 0) == 0, "setup: %s", strerror(errno));
	for (i = 0; i < 1000; i++)
		REQUIRE(imsg_compose(&p.a, 1000 + i, i, 0, -1, &i,
		    sizeof(i)) == 1, "imsg_compose %u: %s", i,
		    strerror(errno));
	REQUIRE(imsgbuf_flush(&p.a) == 0, "flush: %s", strerror(errno));
	pfd.fd = p.b.fd;
	pfd.events = POLLIN;
	REQUIRE(poll(&pfd, 1, 5000) == 1, "nothing to read");
	REQUIRE(imsgbuf_read(&p.b) == 1, "imsgbuf_read: %s", strerror(errno));
	for (i = 0; i < 1000; i++) {
		n = imsg_get(&p.b, &imsg);
		REQUIRE(n > 0, "message %u missing after one read (%zd)", i, n);
		REQUIRE(imsg_get_type(&imsg) == 1000 + i &&
		    imsg_get_id(&imsg) == i, "message %u out of order", i);
		REQUIRE(imsg_get_data(&imsg, &v, sizeof(v)) == 0 && v == i,
		    "message %u payload differs", i);
		imsg_free(&imsg);
	}
	REQUIRE(imsg_get(&p.b, &imsg) == 0, "extra message");
	rv = 0;
 fail:
	imsg_free(&imsg);
	pair_close(&p);
	return (rv);
}

static int
test_partial_read(void)
{
	struct pair	 p;
	struct imsg	 imsg;
	unsigned char	 raw[IMSG_HEADER_SIZE + 100], data[100], got[100];
	size_t		 len, i;
	ssize_t		 n;
	int		 rv = -1;

	memset(&imsg, 0, sizeof(imsg));
	REQUIRE(pair_open(&p, 0) == 0, "setup: %s", strerror(errno));
	fill(data, sizeof(data), 9);
	len = raw_msg(raw, 9, sizeof(raw), data, sizeof(data));
	for (i = 0; i < len; i++) {
		REQUIRE(write_all(p.sv[0], raw + i, 1) == 0, "write: %s",
		    strerror(errno));
		REQUIRE(imsgbuf_read(&p.b) == 1, "imsgbuf_read at byte %zu: %s",
		    i, strerror(errno));
		n = imsg_get(&p.b, &imsg);
		if (i + 1 < len)
			REQUIRE(n == 0, "imsg_get returned %zd after %zu of "
			    "%zu bytes", n, i + 1, len);
		else
			REQUIRE(n == (ssize_t)len, "imsg_get returned %zd on "
			    "the last byte", n);
	}
	REQUIRE(imsg_get_type(&imsg) == 9 && imsg_get_id(&imsg) == 10 &&
	    imsg_get_pid(&imsg) == 11, "header differs");
	REQUIRE(imsg_get_data(&imsg, got, sizeof(got)) == 0 &&
	    memcmp(got, data, sizeof(got)) == 0, "payload differs");
	rv = 0;
 fail:
	imsg_free(&imsg);
	pair_close(&p);
	return (rv);
}

static int
test_odd_chunks(void)
{
	struct pair	 p;
	struct imsg	 imsg;
	unsigned char	 raw[512], data[64], got[64];
	size_t		 sizes[3] = { 0, 5, 33 }, ends[3], len = 0;
	size_t		 off, c;
	ssize_t		 n;
	int		 i, nrecv = 0, rv = -1;

	memset(&imsg, 0, sizeof(imsg));
	REQUIRE(pair_open(&p, 0) == 0, "setup: %s", strerror(errno));
	for (i = 0; i < 3; i++) {
		fill(data, sizes[i], i);
		len += raw_msg(raw + len, i, IMSG_HEADER_SIZE + sizes[i], data,
		    sizes[i]);
		ends[i] = len;
	}
	/* Chunks of 7 bytes cut through headers and payloads alike. */
	for (off = 0; off < len; off += c) {
		c = len - off < 7 ? len - off : 7;
		REQUIRE(write_all(p.sv[0], raw + off, c) == 0, "write: %s",
		    strerror(errno));
		REQUIRE(imsgbuf_read(&p.b) == 1, "imsgbuf_read: %s",
		    strerror(errno));
		while ((n = imsg_get(&p.b, &imsg)) > 0) {
			REQUIRE(nrecv < 3 && ends[nrecv] <= off + c,
			    "message %d complete too early", nrecv);
			fill(data, sizes[nrecv], nrecv);
			REQUIRE(imsg_get_type(&imsg) == (uint32_t)nrecv &&
			    imsg_get_data(&imsg, got, sizes[nrecv]) == 0 &&
			    memcmp(got, data, sizes[nrecv]) == 0,
			    "message %d differs", nrecv);
			imsg_free(&imsg);
			nrecv++;
		}
		REQUIRE(n == 0, "imsg_get: %s", strerror(errno));
		REQUIRE(nrecv == 3 || ends[nrecv] > off + c,
		    "message %d not delivered when complete", nrecv);
	}
	REQUIRE(nrecv == 3, "got %d of 3 messages", nrecv);
	rv = 0;
 fail:
	imsg_free(&imsg);
	pair_close(&p);
	return (rv);
}

/*
 * A small send buffer and a large backlog force imsgbuf_write() to stop
 * part way through messages; every 50th message carries an fd.
 */
static int
test_partial_writes(void)
{
	struct pair	 p;
	struct imsg	 imsg;
	struct stat	 want, st;
	unsigned char	*data = NULL, *got = NULL;
	const uint32_t	 total = 2000;
	uint32_t	 i, nrecv = 0;
	size_t		 len;
	ssize_t		 n;
	long		 iter, stalls = 0;
	int		 pfd[2] = { -1, -1 }, sndbuf = 4096, fd, r, rv = -1;

	memset(&imsg, 0, sizeof(imsg));
	REQUIRE(pair_open(&p, 1) == 0, "setup: %s", strerror(errno));
	REQUIRE(open_pipe(pfd) == 0 && fstat(pfd[1], &want) == 0,
	    "pipe: %s", strerror(errno));
	REQUIRE(setsockopt(p.sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf,
	    sizeof(sndbuf)) == 0, "SO_SNDBUF: %s", strerror(errno));
	imsgbuf_allow_fdpass(&p.b);
	REQUIRE((data = malloc(3001)) != NULL && (got = malloc(3001)) != NULL,
	    "malloc");

	for (i = 0; i < total; i++) {
		len = (i * 37) % 3001;
		fill(data, len, i);
		fd = -1;
		if (i % 50 == 7)
			REQUIRE((fd = dup(pfd[1])) != -1, "dup: %s",
			    strerror(errno));
		REQUIRE(imsg_compose(&p.a, i, i, 0, fd, data, len) == 1,
		    "imsg_compose %u: %s", i, strerror(errno));
	}

	for (iter = 0; nrecv < total && iter < 1000000; iter++) {
		REQUIRE(imsgbuf_write(&p.a) == 0, "imsgbuf_write: %s",
		    strerror(errno));
		if (imsgbuf_queuelen(&p.a) > 0)
			stalls++;
		r = imsgbuf_read(&p.b);
		REQUIRE(r == 1, "imsgbuf_read returned %d: %s", r,
		    strerror(errno));
		while ((n = imsg_get(&p.b, &imsg)) > 0) {
			i = nrecv++;
			len = (i * 37) % 3001;
			fill(data, len, i);
			REQUIRE(imsg_get_type(&imsg) == i,
			    "got type %u, want %u", imsg_get_type(&imsg), i);
			REQUIRE(imsg_get_data(&imsg, got, len) == 0 &&
			    memcmp(got, data, len) == 0,
			    "message %u payload differs", i);
			fd = imsg_get_fd(&imsg);
			if (i % 50 == 7) {
				REQUIRE(fd != -1, "message %u lost its fd", i);
				REQUIRE(fstat(fd, &st) == 0 &&
				    st.st_ino == want.st_ino &&
				    st.st_dev == want.st_dev,
				    "message %u got a foreign fd", i);
				close(fd);
			} else
				REQUIRE(fd == -1, "message %u got an fd", i);
			imsg_free(&imsg);
		}
		REQUIRE(n == 0, "imsg_get: %s", strerror(errno));
	}
	REQUIRE(nrecv == total, "got %u of %u messages", nrecv, total);
	REQUIRE(imsgbuf_queuelen(&p.a) == 0, "queue not empty");
	REQUIRE(stalls > 0, "the send buffer never filled up");
	close(pfd[1]);
	pfd[1] = -1;
	REQUIRE(pipe_at_eof(pfd[0]), "a passed fd was left open");
	rv = 0;
 fail:
	imsg_free(&imsg);
	free(data);
	free(got);
	close_pipe(pfd);
	pair_close(&p);
	return (rv);
}

static int
test_maxsize(void)
{
	struct pair	 p;
	struct imsg	 imsg;
	struct ibuf	*buf;
	unsigned char	*data = NULL, *got = NULL;
	size_t		 max = MAX_IMSGSIZE - IMSG_HEADER_SIZE;
	ssize_t		 n;
	int		 rv = -1;

	memset(&imsg, 0, sizeof(imsg));
	REQUIRE(pair_open(&p, 0) == 0, "setup: %s", strerror(errno));
	REQUIRE(p.a.maxsize == MAX_IMSGSIZE, "default maxsize %u",
	    p.a.maxsize);
	REQUIRE((data = malloc(max + 1)) != NULL && (got = malloc(max)) != NULL,
	    "malloc");
	fill(data, max + 1, 3);

	errno = 0;
	REQUIRE(imsg_compose(&p.a, 1, 0, 0, -1, data, max + 1) == -1 &&
	    errno == ERANGE, "maxsize + 1 not refused with ERANGE");
	errno = 0;
	REQUIRE(imsg_create(&p.a, 1, 0, 0, max + 1) == NULL && errno == ERANGE,
	    "imsg_create accepted maxsize + 1");
	REQUIRE((buf = imsg_create(&p.a, 1, 0, 0, 0)) != NULL,
	    "imsg_create: %s", strerror(errno));
	REQUIRE(imsg_add(buf, data, max) == (int)max, "imsg_add up to maxsize");
	/* A failed imsg_add() frees the ibuf; valgrind checks it does. */
	REQUIRE(imsg_add(buf, data, 1) == -1, "imsg_add beyond maxsize");
	REQUIRE(imsgbuf_queuelen(&p.a) == 0, "refused messages were queued");

	REQUIRE(imsg_compose(&p.a, 2, 0, 0, -1, data, max) == 1,
	    "maxsize refused: %s", strerror(errno));
	REQUIRE(imsgbuf_flush(&p.a) == 0, "flush: %s", strerror(errno));
	n = recv_one(&p, &imsg);
	REQUIRE(n == MAX_IMSGSIZE, "imsg_get returned %zd: %s", n,
	    strerror(errno));
	REQUIRE(imsg_get_data(&imsg, got, max) == 0 &&
	    memcmp(got, data, max) == 0, "payload differs");
	rv = 0;
 fail:
	imsg_free(&imsg);
	free(data);
	free(got);
	pair_close(&p);
	return (rv);
}

/*
 * A maxsize above the default read buffer needs the buffer to grow, and
 * to keep working for the small message queued behind the large one.
 */
static int
test_large_maxsize(void)
{
	struct pair	 p;
	struct imsg	 imsg;
	unsigned char	*data = NULL, *got = NULL;
	const size_t	 max = 300000 - IMSG_HEADER_SIZE;
	ssize_t		 n;
	int		 rv = -1;

	memset(&imsg, 0, sizeof(imsg));
	REQUIRE(pair_open(&p, 1) == 0, "setup: %s", strerror(errno));
	errno = 0;
	REQUIRE(imsgbuf_set_maxsize(&p.a, IMSG_HEADER_SIZE - 1) == -1 &&
	    errno == EINVAL, "maxsize below the header size accepted");
	errno = 0;
	REQUIRE(imsgbuf_set_maxsize(&p.a, IMSG_MAXSIZE_LIMIT + 1) == -1 &&
	    errno == EINVAL, "maxsize above the limit accepted");
	REQUIRE(imsgbuf_set_maxsize(&p.a, 300000) == 0 &&
	    imsgbuf_set_maxsize(&p.b, 300000) == 0, "imsgbuf_set_maxsize: %s",
	    strerror(errno));
	REQUIRE((data = malloc(max)) != NULL && (got = malloc(max)) != NULL,
	    "malloc");
	fill(data, max, 5);
	REQUIRE(imsg_compose(&p.a, 1, 0, 0, -1, data, max) == 1 &&
	    imsg_compose(&p.a, 2, 0, 0, -1, data, 10) == 1,
	    "imsg_compose: %s", strerror(errno));
	n = recv_one(&p, &imsg);
	REQUIRE(n == 300000, "imsg_get returned %zd: %s", n, strerror(errno));
	REQUIRE(imsg_get_data(&imsg, got, max) == 0 &&
	    memcmp(got, data, max) == 0, "large payload differs");
	imsg_free(&imsg);
	n = recv_one(&p, &imsg);
	REQUIRE(n == IMSG_HEADER_SIZE + 10 && imsg_get_type(&imsg) == 2,
	    "small message after the large one: %zd", n);
	REQUIRE(imsg_get_data(&imsg, got, 10) == 0 &&
	    memcmp(got, data, 10) == 0, "small payload differs");
	rv = 0;
 fail:
	imsg_free(&imsg);
	free(data);
	free(got);
	pair_close(&p);
	return (rv);
}

static int
bad_header(uint32_t lenfield, int want_errno)
{
	struct pair	 p;
	struct imsg	 imsg;
	unsigned char	 raw[IMSG_HEADER_SIZE];
	ssize_t		 n;
	int		 r, rv = -1;

	memset(&imsg, 0, sizeof(imsg));
	REQUIRE(pair_open(&p, 0) == 0, "setup: %s", strerror(errno));
	raw_msg(raw, 1, lenfield, NULL, 0);
	REQUIRE(write_all(p.sv[0], raw, sizeof(raw)) == 0, "write: %s",
	    strerror(errno));
	REQUIRE(imsgbuf_read(&p.b) == 1, "imsgbuf_read: %s", strerror(errno));
	errno = 0;
	n = imsg_get(&p.b, &imsg);
	REQUIRE(n == -1 && errno == want_errno, "len 0x%x: imsg_get returned "
	    "%zd, errno %d (want -1, %d)", lenfield, n, errno, want_errno);
	/* The error sticks, and no more is read from such a peer. */
	REQUIRE(imsg_get(&p.b, &imsg) == -1, "error did not stick");
	REQUIRE((r = imsgbuf_read(&p.b)) == -1, "imsgbuf_read returned %d", r);
	rv = 0;
 fail:
	imsg_free(&imsg);
	pair_close(&p);
	return (rv);
}

static int
test_bad_headers(void)
{
	if (bad_header(MAX_IMSGSIZE + 1, ERANGE) == -1 ||
	    bad_header(0xffffffffU, ERANGE) == -1 ||
	    bad_header(IMSG_HEADER_SIZE - 1, EBADMSG) == -1 ||
	    bad_header(0, EBADMSG) == -1)
		return (-1);
	return (0);
}

static int
test_fd_passing(void)
{
	struct pair	 p;
	struct imsg	 imsg;
	char		 buf[8];
	int		 pfd[2] = { -1, -1 }, fd = -1, rv = -1;

	memset(&imsg, 0, sizeof(imsg));
	REQUIRE(pair_open(&p, 0) == 0, "setup: %s", strerror(errno));
	REQUIRE(open_pipe(pfd) == 0, "pipe: %s", strerror(errno));
	imsgbuf_allow_fdpass(&p.b);
	REQUIRE(imsg_compose(&p.a, 1, 0, 0, -1, "one", 3) == 1 &&
	    imsg_compose(&p.a, 2, 0, 0, pfd[1], NULL, 0) == 1 &&
	    imsg_compose(&p.a, 3, 0, 0, -1, "three", 5) == 1,
	    "imsg_compose: %s", strerror(errno));
	pfd[1] = -1;		/* now owned by the imsgbuf */
	REQUIRE(imsgbuf_flush(&p.a) == 0, "flush: %s", strerror(errno));

	REQUIRE(recv_one(&p, &imsg) > 0, "message 1: %s", strerror(errno));
	REQUIRE(imsg_get_type(&imsg) == 1 && imsg_get_fd(&imsg) == -1,
	    "message 1 wrong or with an fd");
	imsg_free(&imsg);
	REQUIRE(recv_one(&p, &imsg) > 0, "message 2: %s", strerror(errno));
	REQUIRE(imsg_get_type(&imsg) == 2, "message 2 has type %u",
	    imsg_get_type(&imsg));
	REQUIRE((fd = imsg_get_fd(&imsg)) != -1, "message 2 has no fd");
	REQUIRE(imsg_get_fd(&imsg) == -1, "fd handed out twice");
	imsg_free(&imsg);
	REQUIRE(recv_one(&p, &imsg) > 0, "message 3: %s", strerror(errno));
	REQUIRE(imsg_get_type(&imsg) == 3 && imsg_get_fd(&imsg) == -1,
	    "message 3 wrong or with an fd");

	REQUIRE(write(fd, "ping", 4) == 4, "write to passed fd: %s",
	    strerror(errno));
	REQUIRE(read(pfd[0], buf, sizeof(buf)) == 4 &&
	    memcmp(buf, "ping", 4) == 0, "pipe did not carry the data");
	close(fd);
	fd = -1;
	/* The sender's copy must be gone too, once sent. */
	REQUIRE(pipe_at_eof(pfd[0]), "sender did not close the sent fd");
	rv = 0;
 fail:
	if (fd != -1)
		close(fd);
	imsg_free(&imsg);
	close_pipe(pfd);
	pair_close(&p);
	return (rv);
}

/*
 * The fd rides on the first 3 bytes of message 2, read together with
 * message 1; the rest of message 2 and message 3 trickle in bytewise.
 */
static int
test_fd_split_message(void)
{
	struct pair	 p;
	struct imsg	 imsg;
	unsigned char	 m1[64], m2[64], m3[64];
	size_t		 l1, l2, l3, i;
	ssize_t		 n;
	int		 pfd[2] = { -1, -1 }, fd, type = 1, rv = -1;

	memset(&imsg, 0, sizeof(imsg));
	REQUIRE(pair_open(&p, 0) == 0, "setup: %s", strerror(errno));
	REQUIRE(open_pipe(pfd) == 0, "pipe: %s", strerror(errno));
	imsgbuf_allow_fdpass(&p.b);
	l1 = raw_msg(m1, 1, IMSG_HEADER_SIZE + 10, "0123456789", 10);
	l2 = raw_msg(m2, 2, (IMSG_HEADER_SIZE + 5) | IMSG_FD_MARK, "abcde",
	    5);
	l3 = raw_msg(m3, 3, IMSG_HEADER_SIZE + 1, "x", 1);
	REQUIRE(write_all(p.sv[0], m1, l1) == 0 &&
	    send_with_fd(p.sv[0], m2, 3, pfd[1]) == 0, "send: %s",
	    strerror(errno));
	close(pfd[1]);
	pfd[1] = -1;

	for (i = 3; i <= l2 + l3; i++) {
		REQUIRE(imsgbuf_read(&p.b) == 1, "imsgbuf_read: %s",
		    strerror(errno));
		while ((n = imsg_get(&p.b, &imsg)) > 0) {
			REQUIRE(imsg_get_type(&imsg) == (uint32_t)type,
			    "got type %u, want %d", imsg_get_type(&imsg), type);
			fd = imsg_get_fd(&imsg);
			if (type == 2) {
				REQUIRE(fd != -1, "message 2 lost its fd");
				REQUIRE(write(fd, "!", 1) == 1, "write: %s",
				    strerror(errno));
				close(fd);
			} else
				REQUIRE(fd == -1, "message %d has the fd",
				    type);
			imsg_free(&imsg);
			type++;
		}
		REQUIRE(n == 0, "imsg_get: %s", strerror(errno));
		if (i < l2 + l3)
			REQUIRE(write_all(p.sv[0], i < l2 ? m2 + i :
			    m3 + i - l2, 1) == 0, "write: %s", strerror(errno));
	}
	REQUIRE(type == 4, "stopped before message %d", type);
	REQUIRE(read(pfd[0], m1, 1) == 1 && pipe_at_eof(pfd[0]),
	    "passed fd did not reach the pipe, or stayed open");
	rv = 0;
 fail:
	imsg_free(&imsg);
	close_pipe(pfd);
	pair_close(&p);
	return (rv);
}

/*
 * Without imsgbuf_allow_fdpass() a received fd is closed at once and
 * imsgbuf_read() fails with EBADMSG, as does imsg_get() on the message.
 */
static int
test_fd_refused(void)
{
	struct pair	 p;
	struct imsg	 imsg;
	struct pollfd	 pfd1;
	int		 pfd[2] = { -1, -1 }, r, rv = -1;

	memset(&imsg, 0, sizeof(imsg));
	REQUIRE(pair_open(&p, 0) == 0, "setup: %s", strerror(errno));
	REQUIRE(open_pipe(pfd) == 0, "pipe: %s", strerror(errno));
	REQUIRE(imsg_compose(&p.a, 1, 0, 0, pfd[1], "x", 1) == 1,
	    "imsg_compose: %s", strerror(errno));
	pfd[1] = -1;
	REQUIRE(imsgbuf_flush(&p.a) == 0, "flush: %s", strerror(errno));
	pfd1.fd = p.b.fd;
	pfd1.events = POLLIN;
	REQUIRE(poll(&pfd1, 1, 5000) == 1, "nothing to read");
	errno = 0;
	r = imsgbuf_read(&p.b);
	REQUIRE(r == -1 && errno == EBADMSG,
	    "imsgbuf_read returned %d, errno %d", r, errno);
	errno = 0;
	REQUIRE(imsg_get(&p.b, &imsg) == -1 && errno == EBADMSG,
	    "imsg_get accepted a message whose fd was refused");
	REQUIRE(pipe_at_eof(pfd[0]), "refused fd was kept open");
	rv = 0;
 fail:
	imsg_free(&imsg);
	close_pipe(pfd);
	pair_close(&p);
	return (rv);
}

/* An fd without a marked header, or a marked header without an fd. */
static int
test_fd_mismatch(void)
{
	struct pair	 p;
	struct imsg	 imsg;
	unsigned char	 raw[64];
	size_t		 len;
	ssize_t		 n;
	int		 pfd[2] = { -1, -1 }, rv = -1;

	memset(&imsg, 0, sizeof(imsg));
	REQUIRE(pair_open(&p, 0) == 0, "setup: %s", strerror(errno));
	imsgbuf_allow_fdpass(&p.b);
	len = raw_msg(raw, 1, (IMSG_HEADER_SIZE + 2) | IMSG_FD_MARK, "ab", 2);
	REQUIRE(write_all(p.sv[0], raw, len) == 0, "write: %s",
	    strerror(errno));
	errno = 0;
	n = recv_one(&p, &imsg);
	REQUIRE(n == -1 && errno == EBADMSG, "marked header without an fd: "
	    "imsg_get returned %zd, errno %d", n, errno);
	pair_close(&p);

	/* The fd comes with the payload, after the header was read. */
	REQUIRE(pair_open(&p, 0) == 0, "setup: %s", strerror(errno));
	REQUIRE(open_pipe(pfd) == 0, "pipe: %s", strerror(errno));
	imsgbuf_allow_fdpass(&p.b);
	len = raw_msg(raw, 1, (IMSG_HEADER_SIZE + 2) | IMSG_FD_MARK, "ab", 2);
	REQUIRE(write_all(p.sv[0], raw, IMSG_HEADER_SIZE) == 0, "write: %s",
	    strerror(errno));
	REQUIRE(imsgbuf_read(&p.b) == 1 && imsg_get(&p.b, &imsg) == 0,
	    "header alone: %s", strerror(errno));
	REQUIRE(send_with_fd(p.sv[0], raw + IMSG_HEADER_SIZE, 2, pfd[1]) == 0,
	    "sendmsg: %s", strerror(errno));
	errno = 0;
	n = recv_one(&p, &imsg);
	REQUIRE(n == -1 && errno == EBADMSG, "late fd: imsg_get returned %zd, "
	    "errno %d", n, errno);
	pair_close(&p);
	close_pipe(pfd);

	REQUIRE(pair_open(&p, 0) == 0, "setup: %s", strerror(errno));
	REQUIRE(open_pipe(pfd) == 0, "pipe: %s", strerror(errno));
	imsgbuf_allow_fdpass(&p.b);
	len = raw_msg(raw, 1, IMSG_HEADER_SIZE + 2, "ab", 2);
	REQUIRE(send_with_fd(p.sv[0], raw, len, pfd[1]) == 0, "sendmsg: %s",
	    strerror(errno));
	close(pfd[1]);
	pfd[1] = -1;
	len = raw_msg(raw, 2, IMSG_HEADER_SIZE, NULL, 0);
	REQUIRE(write_all(p.sv[0], raw, len) == 0, "write: %s",
	    strerror(errno));
	REQUIRE(recv_one(&p, &imsg) > 0, "first message: %s", strerror(errno));
	REQUIRE(imsg_get_fd(&imsg) == -1, "unmarked message got an fd");
	imsg_free(&imsg);
	errno = 0;
	n = recv_one(&p, &imsg);
	REQUIRE(n == -1 && errno == EBADMSG, "unclaimed fd: imsg_get "
	    "returned %zd, errno %d", n, errno);
	pair_close(&p);
	REQUIRE(pipe_at_eof(pfd[0]), "imsgbuf_clear left the stray fd open");
	rv = 0;
 fail:
	imsg_free(&imsg);
	close_pipe(pfd);
	pair_close(&p);
	return (rv);
}

static int
test_fd_freed(void)
{
	struct pair	 p;
	struct imsg	 imsg;
	int		 pfd[2] = { -1, -1 }, rv = -1;

	memset(&imsg, 0, sizeof(imsg));
	REQUIRE(pair_open(&p, 0) == 0, "setup: %s", strerror(errno));
	REQUIRE(open_pipe(pfd) == 0, "pipe: %s", strerror(errno));
	imsgbuf_allow_fdpass(&p.b);
	REQUIRE(imsg_compose(&p.a, 1, 0, 0, pfd[1], NULL, 0) == 1,
	    "imsg_compose: %s", strerror(errno));
	pfd[1] = -1;
	REQUIRE(recv_one(&p, &imsg) > 0, "imsg_get: %s", strerror(errno));
	REQUIRE(!pipe_at_eof(pfd[0]), "fd closed before imsg_free");
	imsg_free(&imsg);
	REQUIRE(pipe_at_eof(pfd[0]), "imsg_free left the fd open");
	rv = 0;
 fail:
	imsg_free(&imsg);
	close_pipe(pfd);
	pair_close(&p);
	return (rv);
}

static int
test_clear_closes_fds(void)
{
	struct pair	 p;
	int		 pfd[2] = { -1, -1 }, rv = -1;

	REQUIRE(pair_open(&p, 0) == 0, "setup: %s", strerror(errno));
	REQUIRE(open_pipe(pfd) == 0, "pipe: %s", strerror(errno));
	REQUIRE(imsg_compose(&p.a, 1, 0, 0, pfd[1], "x", 1) == 1,
	    "imsg_compose: %s", strerror(errno));
	pfd[1] = -1;
	REQUIRE(!pipe_at_eof(pfd[0]), "fd closed before it was sent");
	imsgbuf_clear(&p.a);
	REQUIRE(imsgbuf_queuelen(&p.a) == 0, "queue survived imsgbuf_clear");
	REQUIRE(pipe_at_eof(pfd[0]), "imsgbuf_clear left a queued fd open");
	rv = 0;
 fail:
	close_pipe(pfd);
	pair_close(&p);
	return (rv);
}

static int
test_get_data_size(void)
{
	struct pair	 p;
	struct imsg	 imsg;
	uint64_t	 v = 0x0123456789abcdefULL, got;
	unsigned char	 big[16];
	int		 rv = -1;

	memset(&imsg, 0, sizeof(imsg));
	REQUIRE(pair_open(&p, 0) == 0, "setup: %s", strerror(errno));
	REQUIRE(imsg_compose(&p.a, 1, 0, 0, -1, &v, sizeof(v)) == 1 &&
	    imsg_compose(&p.a, 2, 0, 0, -1, NULL, 0) == 1,
	    "imsg_compose: %s", strerror(errno));
	REQUIRE(recv_one(&p, &imsg) > 0, "imsg_get: %s", strerror(errno));
	errno = 0;
	REQUIRE(imsg_get_data(&imsg, big, sizeof(v) - 1) == -1 &&
	    errno == EBADMSG, "short read accepted");
	errno = 0;
	REQUIRE(imsg_get_data(&imsg, big, sizeof(v) + 1) == -1 &&
	    errno == EBADMSG, "long read accepted");
	REQUIRE(imsg_get_data(&imsg, big, 0) == -1, "empty read accepted");
	REQUIRE(imsg_get_data(&imsg, &got, sizeof(got)) == 0 && got == v,
	    "exact read failed");
	imsg_free(&imsg);
	REQUIRE(recv_one(&p, &imsg) > 0, "imsg_get: %s", strerror(errno));
	REQUIRE(imsg_get_data(&imsg, NULL, 0) == 0,
	    "empty read of an empty message failed");
	REQUIRE(imsg_get_data(&imsg, big, 1) == -1,
	    "read from an empty message accepted");
	rv = 0;
 fail:
	imsg_free(&imsg);
	pair_close(&p);
	return (rv);
}

/* Flush ib and read the n bytes that arrive on s. */
static int
wire_bytes(struct imsgbuf *ib, int s, unsigned char *out, size_t n)
{
	ssize_t	 r;

	if (imsgbuf_flush(ib) == -1)
		return (-1);
	while (n > 0) {
		if ((r = read(s, out, n)) <= 0)
			return (-1);
		out += r;
		n -= r;
	}
	return (0);
}

static int
test_create_matches_compose(void)
{
	struct pair	 p1, p2, p3;
	struct ibuf	*buf;
	struct iovec	 iov[3];
	struct imsg_hdr	 hdr;
	unsigned char	 data[300], w1[316], w2[316], w3[316];
	int		 rv = -1;

	memset(&p2, 0, sizeof(p2));
	memset(&p3, 0, sizeof(p3));
	p2.sv[0] = p2.sv[1] = p3.sv[0] = p3.sv[1] = -1;
	fill(data, sizeof(data), 1);
	REQUIRE(pair_open(&p1, 0) == 0 && pair_open(&p2, 0) == 0 &&
	    pair_open(&p3, 0) == 0, "setup: %s", strerror(errno));

	REQUIRE(imsg_compose(&p1.a, 5, 6, 7, -1, data, sizeof(data)) == 1,
	    "imsg_compose: %s", strerror(errno));
	/* Start smaller than the final size so the ibuf has to grow. */
	REQUIRE((buf = imsg_create(&p2.a, 5, 6, 7, 10)) != NULL,
	    "imsg_create: %s", strerror(errno));
	REQUIRE(imsg_add(buf, data, 100) == 100 &&
	    imsg_add(buf, data + 100, 200) == 200, "imsg_add: %s",
	    strerror(errno));
	imsg_close(&p2.a, buf);
	iov[0].iov_base = data;
	iov[0].iov_len = 1;
	iov[1].iov_base = data + 1;
	iov[1].iov_len = 0;
	iov[2].iov_base = data + 1;
	iov[2].iov_len = sizeof(data) - 1;
	REQUIRE(imsg_composev(&p3.a, 5, 6, 7, -1, iov, 3) == 1,
	    "imsg_composev: %s", strerror(errno));

	REQUIRE(wire_bytes(&p1.a, p1.sv[1], w1, sizeof(w1)) == 0 &&
	    wire_bytes(&p2.a, p2.sv[1], w2, sizeof(w2)) == 0 &&
	    wire_bytes(&p3.a, p3.sv[1], w3, sizeof(w3)) == 0,
	    "transfer: %s", strerror(errno));
	REQUIRE(memcmp(w1, w2, sizeof(w1)) == 0,
	    "imsg_create/imsg_add/imsg_close differs from imsg_compose");
	REQUIRE(memcmp(w1, w3, sizeof(w1)) == 0,
	    "imsg_composev differs from imsg_compose");
	memcpy(&hdr, w1, sizeof(hdr));
	REQUIRE(hdr.type == 5 && hdr.len == sizeof(w1) && hdr.peerid == 6 &&
	    hdr.pid == 7 && memcmp(w1 + sizeof(hdr), data, sizeof(data)) == 0,
	    "wire image is not header + payload");
	rv = 0;
 fail:
	pair_close(&p1);
	pair_close(&p2);
	pair_close(&p3);
	return (rv);
}

static int
test_eof(void)
{
	struct pair	 p;
	struct imsg	 imsg;
	int		 r, rv = -1;

	memset(&imsg, 0, sizeof(imsg));
	REQUIRE(pair_open(&p, 0) == 0, "setup: %s", strerror(errno));
	REQUIRE(imsg_compose(&p.a, 1, 0, 0, -1, "bye", 3) == 1 &&
	    imsgbuf_flush(&p.a) == 0, "send: %s", strerror(errno));
	close(p.sv[0]);
	p.sv[0] = -1;
	REQUIRE(imsgbuf_read(&p.b) == 1, "data before EOF lost");
	REQUIRE(imsg_get(&p.b, &imsg) > 0 && imsg_get_type(&imsg) == 1,
	    "message before EOF lost");
	r = imsgbuf_read(&p.b);
	REQUIRE(r == 0, "imsgbuf_read returned %d at EOF: %s", r,
	    strerror(errno));
	rv = 0;
 fail:
	imsg_free(&imsg);
	pair_close(&p);
	return (rv);
}

static int
test_eagain(void)
{
	struct pair	 p;
	struct imsg	 imsg;
	int		 r, rv = -1;

	memset(&imsg, 0, sizeof(imsg));
	REQUIRE(pair_open(&p, 1) == 0, "setup: %s", strerror(errno));
	r = imsgbuf_read(&p.b);
	REQUIRE(r == 1, "imsgbuf_read on an empty socket returned %d: %s", r,
	    strerror(errno));
	REQUIRE(imsg_get(&p.b, &imsg) == 0, "imsg_get found a message");
	REQUIRE(imsgbuf_write(&p.a) == 0, "imsgbuf_write with nothing queued");
	rv = 0;
 fail:
	imsg_free(&imsg);
	pair_close(&p);
	return (rv);
}

/* Also proves MSG_NOSIGNAL: a SIGPIPE would kill the test program. */
static int
test_epipe(void)
{
	struct pair	 p;
	int		 r, rv = -1;

	REQUIRE(pair_open(&p, 0) == 0, "setup: %s", strerror(errno));
	close(p.sv[1]);
	p.sv[1] = -1;
	REQUIRE(imsg_compose(&p.a, 1, 0, 0, -1, "x", 1) == 1,
	    "imsg_compose: %s", strerror(errno));
	errno = 0;
	r = imsgbuf_write(&p.a);
	REQUIRE(r == -1 && errno == EPIPE, "imsgbuf_write returned %d, "
	    "errno %d", r, errno);
	REQUIRE(imsgbuf_flush(&p.a) == -1, "imsgbuf_flush succeeded");
	rv = 0;
 fail:
	pair_close(&p);
	return (rv);
}

static const struct {
	const char	*name;
	int		(*fn)(void);
} tests[] = {
	{ "imsg_round_trip_preserves_header_and_payload", test_round_trip },
	{ "imsg_many_small_messages_arrive_in_one_read",
	    test_many_in_one_read },
	{ "imsg_partial_read_reassembles_message", test_partial_read },
	{ "imsg_odd_chunks_reassemble_messages_in_order", test_odd_chunks },
	{ "imsg_partial_writes_deliver_all_messages_and_fds_in_order",
	    test_partial_writes },
	{ "imsg_maxsize_message_passes_and_larger_is_erange", test_maxsize },
	{ "imsg_large_maxsize_grows_and_shrinks_read_buffer",
	    test_large_maxsize },
	{ "imsg_header_len_out_of_range_is_protocol_error", test_bad_headers },
	{ "imsg_fd_passes_with_its_message_only", test_fd_passing },
	{ "imsg_fd_follows_message_split_across_reads", test_fd_split_message },
	{ "imsg_fd_refused_without_allow_fdpass_is_closed", test_fd_refused },
	{ "imsg_fd_without_mark_or_mark_without_fd_is_error",
	    test_fd_mismatch },
	{ "imsg_free_closes_untaken_fd", test_fd_freed },
	{ "imsgbuf_clear_closes_queued_fds", test_clear_closes_fds },
	{ "imsg_get_data_requires_exact_length", test_get_data_size },
	{ "imsg_create_add_close_and_composev_match_compose",
	    test_create_matches_compose },
	{ "imsgbuf_read_returns_zero_at_eof", test_eof },
	{ "imsgbuf_read_reports_eagain_as_nothing_read", test_eagain },
	{ "imsgbuf_write_to_closed_peer_fails_with_epipe", test_epipe },
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
		alarm(30);
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
