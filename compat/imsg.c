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
 * An implementation of the imsg API for systems without OpenBSD's libutil,
 * written from the manual's description.  It works on stream sockets only.
 *
 * Differences in behaviour that callers may notice:
 * - Without imsgbuf_allow_fdpass() a received fd is closed at once and
 *   imsgbuf_read() fails with EBADMSG; so does imsg_get() on the message
 *   that announced it.  The connection should then be dropped.
 * - Received fds are marked close-on-exec.
 * - If imsg_compose() or imsg_composev() fail, the fd is not consumed and
 *   the caller must close it.
 * - imsgbuf_clear() releases everything imsgbuf_init() allocated; the
 *   imsgbuf must be initialised again before further use.
 */

#ifndef __OpenBSD__

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "imsg.h"

#define IMSG_ALLOW_FDPASS	0x01
#define IMSG_RBUFSIZE		65536	/* read buffer; grows for big ones */
#define IMSG_MAXFDQ		64	/* received fds not yet claimed */
#define IMSG_RFDS		4	/* fds taken per recvmsg() */
#define IMSG_IOV		128

/*
 * A received fd, with the stream offsets of the read that delivered it.
 * The sender passes an fd with its message's first byte, so the message
 * owning the fd starts within [start, end).
 */
struct imsg_rfd {
	int		 fd;
	uint64_t	 start;
	uint64_t	 end;
};

struct msgbuf {
	TAILQ_HEAD(, ibuf)	 bufs;
	uint32_t		 queued;
	unsigned char		*rbuf;
	size_t			 rsize;		/* allocated */
	size_t			 rlen;		/* bytes held */
	size_t			 roff;		/* first unparsed byte */
	uint64_t		 rabs;		/* stream offset of rbuf */
	struct imsg_rfd		 rfds[IMSG_MAXFDQ];
	int			 nrfds;
};

static struct ibuf *
ibuf_alloc(size_t len, size_t max)
{
	struct ibuf	*buf;

	if ((buf = calloc(1, sizeof(*buf))) == NULL)
		return (NULL);
	if (len > 0 && (buf->buf = calloc(len, 1)) == NULL) {
		free(buf);
		return (NULL);
	}
	buf->size = len;
	buf->max = max;
	buf->fd = -1;
	return (buf);
}

struct ibuf *
ibuf_open(size_t len)
{
	if (len == 0) {
		errno = EINVAL;
		return (NULL);
	}
	return (ibuf_alloc(len, len));
}

struct ibuf *
ibuf_dynamic(size_t len, size_t max)
{
	if (max == 0 || len > max) {
		errno = EINVAL;
		return (NULL);
	}
	return (ibuf_alloc(len, max));
}

void *
ibuf_reserve(struct ibuf *buf, size_t len)
{
	unsigned char	*p;
	size_t		 need;

	if (len > buf->max - buf->wpos) {
		errno = ERANGE;
		return (NULL);
	}
	need = buf->wpos + len;
	if (need > buf->size || buf->buf == NULL) {
		/* Doubling keeps a run of small imsg_add() calls linear. */
		if (buf->size < buf->max / 2 && need < buf->size * 2)
			need = buf->size * 2;
		if (need == 0)
			need = 1;
		if (need > buf->max) {
			errno = ERANGE;
			return (NULL);
		}
		if ((p = recallocarray(buf->buf, buf->size, need, 1)) == NULL)
			return (NULL);
		buf->buf = p;
		buf->size = need;
	}
	p = buf->buf + buf->wpos;
	buf->wpos += len;
	return (p);
}

int
ibuf_add(struct ibuf *buf, const void *data, size_t len)
{
	void	*p;

	if (len == 0)
		return (0);
	if ((p = ibuf_reserve(buf, len)) == NULL)
		return (-1);
	memcpy(p, data, len);
	return (0);
}

size_t
ibuf_size(struct ibuf *buf)
{
	return (buf->wpos - buf->rpos);
}

size_t
ibuf_left(struct ibuf *buf)
{
	return (buf->max - buf->wpos);
}

void
ibuf_free(struct ibuf *buf)
{
	if (buf == NULL)
		return;
	if (buf->fd != -1)
		close(buf->fd);
	freezero(buf->buf, buf->size);
	free(buf);
}

int
imsgbuf_init(struct imsgbuf *imsgbuf, int fd)
{
	struct msgbuf	*w;

	if ((w = calloc(1, sizeof(*w))) == NULL)
		return (-1);
	if ((w->rbuf = malloc(IMSG_RBUFSIZE)) == NULL) {
		free(w);
		return (-1);
	}
	w->rsize = IMSG_RBUFSIZE;
	TAILQ_INIT(&w->bufs);
	imsgbuf->w = w;
	imsgbuf->fd = fd;
	imsgbuf->pid = getpid();
	imsgbuf->maxsize = MAX_IMSGSIZE;
	imsgbuf->flags = 0;
	return (0);
}

void
imsgbuf_allow_fdpass(struct imsgbuf *imsgbuf)
{
	imsgbuf->flags |= IMSG_ALLOW_FDPASS;
}

int
imsgbuf_set_maxsize(struct imsgbuf *imsgbuf, uint32_t max)
{
	if (max < IMSG_HEADER_SIZE || max > IMSG_MAXSIZE_LIMIT) {
		errno = EINVAL;
		return (-1);
	}
	imsgbuf->maxsize = max;
	return (0);
}

void
imsgbuf_clear(struct imsgbuf *imsgbuf)
{
	struct msgbuf	*w = imsgbuf->w;
	struct ibuf	*buf;
	int		 i;

	if (w == NULL)
		return;
	while ((buf = TAILQ_FIRST(&w->bufs)) != NULL) {
		TAILQ_REMOVE(&w->bufs, buf, entry);
		ibuf_free(buf);
	}
	for (i = 0; i < w->nrfds; i++)
		close(w->rfds[i].fd);
	freezero(w->rbuf, w->rsize);
	free(w);
	imsgbuf->w = NULL;
}

uint32_t
imsgbuf_queuelen(struct imsgbuf *imsgbuf)
{
	return (imsgbuf->w == NULL ? 0 : imsgbuf->w->queued);
}

/*
 * Look at the header at the parse position: 0 if it is incomplete, -1 if
 * it breaks the protocol, else 1 with the message length in *len.
 */
static int
imsg_peek_hdr(struct imsgbuf *imsgbuf, struct imsg_hdr *hdr, size_t *len)
{
	struct msgbuf	*w = imsgbuf->w;

	if (w->rlen - w->roff < IMSG_HEADER_SIZE)
		return (0);
	memcpy(hdr, w->rbuf + w->roff, sizeof(*hdr));
	*len = hdr->len & ~IMSG_FD_MARK;
	if (*len < IMSG_HEADER_SIZE) {
		errno = EBADMSG;
		return (-1);
	}
	if (*len > imsgbuf->maxsize) {
		errno = ERANGE;
		return (-1);
	}
	return (1);
}

int
imsgbuf_read(struct imsgbuf *imsgbuf)
{
	struct msgbuf	*w = imsgbuf->w;
	struct imsg_hdr	 hdr;
	struct msghdr	 msg;
	struct cmsghdr	*cmsg;
	struct iovec	 iov;
	union {
		struct cmsghdr	 hdr;
		unsigned char	 buf[CMSG_SPACE(IMSG_RFDS * sizeof(int))];
	} cbuf;
	unsigned char	*p;
	size_t		 len, want, i, nfd;
	ssize_t		 n;
	int		 fd, bad = 0;

	if (w->roff > 0) {
		memmove(w->rbuf, w->rbuf + w->roff, w->rlen - w->roff);
		w->rabs += w->roff;
		w->rlen -= w->roff;
		w->roff = 0;
	}

	/*
	 * Size the buffer for the message in front: grow it for one larger
	 * than the default and shrink it again once that has been taken, so
	 * a connection only holds maxsize bytes while it needs them.
	 */
	want = IMSG_RBUFSIZE;
	switch (imsg_peek_hdr(imsgbuf, &hdr, &len)) {
	case -1:
		return (-1);
	case 1:
		if (len > want)
			want = len;
		break;
	}
	if (want != w->rsize && w->rlen <= want) {
		p = recallocarray(w->rbuf, w->rsize, want, 1);
		if (p == NULL && want > w->rsize)
			return (-1);
		if (p != NULL) {
			w->rbuf = p;
			w->rsize = want;
		}
	}
	/* A full buffer holds a complete message for imsg_get(). */
	if (w->rlen == w->rsize)
		return (1);

	memset(&msg, 0, sizeof(msg));
	memset(&cbuf, 0, sizeof(cbuf));
	iov.iov_base = w->rbuf + w->rlen;
	iov.iov_len = w->rsize - w->rlen;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = cbuf.buf;
	msg.msg_controllen = sizeof(cbuf.buf);
	if ((n = recvmsg(imsgbuf->fd, &msg, MSG_CMSG_CLOEXEC)) == -1) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return (1);
		return (-1);
	}

	for (cmsg = CMSG_FIRSTHDR(&msg); cmsg != NULL;
	    cmsg = CMSG_NXTHDR(&msg, cmsg)) {
		if (cmsg->cmsg_level != SOL_SOCKET ||
		    cmsg->cmsg_type != SCM_RIGHTS)
			continue;
		nfd = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < nfd; i++) {
			memcpy(&fd, CMSG_DATA(cmsg) + i * sizeof(int),
			    sizeof(fd));
			if ((imsgbuf->flags & IMSG_ALLOW_FDPASS) == 0 ||
			    w->nrfds == IMSG_MAXFDQ || n == 0) {
				close(fd);
				bad = 1;
				continue;
			}
			w->rfds[w->nrfds].fd = fd;
			w->rfds[w->nrfds].start = w->rabs + w->rlen;
			w->rfds[w->nrfds].end = w->rabs + w->rlen + n;
			w->nrfds++;
		}
	}
	/* Truncated control data means fds were lost. */
	if (msg.msg_flags & MSG_CTRUNC)
		bad = 1;
	w->rlen += n;
	if (bad) {
		errno = EBADMSG;
		return (-1);
	}
	return (n == 0 ? 0 : 1);
}

ssize_t
imsg_get(struct imsgbuf *imsgbuf, struct imsg *imsg)
{
	struct msgbuf	*w = imsgbuf->w;
	struct imsg_hdr	 hdr;
	struct ibuf	*buf;
	uint64_t	 pos;
	size_t		 len;
	int		 r;

	if ((r = imsg_peek_hdr(imsgbuf, &hdr, &len)) <= 0)
		return (r);
	if (w->rlen - w->roff < len)
		return (0);

	/*
	 * An fd still queued from a read that ended before this header was
	 * never claimed by its message, and a header announcing an fd must
	 * find one delivered by a read that covered the header's first byte.
	 * Either is a protocol violation.
	 */
	pos = w->rabs + w->roff;
	if (w->nrfds > 0 && w->rfds[0].end <= pos)
		goto bad;
	if ((hdr.len & IMSG_FD_MARK) &&
	    (w->nrfds == 0 || w->rfds[0].start > pos))
		goto bad;

	if ((buf = ibuf_alloc(len - IMSG_HEADER_SIZE, 0)) == NULL)
		return (-1);
	buf->wpos = buf->max = buf->size;
	if (buf->size > 0)
		memcpy(buf->buf, w->rbuf + w->roff + IMSG_HEADER_SIZE,
		    buf->size);
	if (hdr.len & IMSG_FD_MARK) {
		buf->fd = w->rfds[0].fd;
		w->nrfds--;
		memmove(&w->rfds[0], &w->rfds[1],
		    w->nrfds * sizeof(w->rfds[0]));
	}
	w->roff += len;

	hdr.len = len;
	imsg->hdr = hdr;
	imsg->buf = buf;
	imsg->data = buf->size > 0 ? buf->buf : NULL;
	return (len);

 bad:
	errno = EBADMSG;
	return (-1);
}

int
imsg_get_data(struct imsg *imsg, void *data, size_t len)
{
	if (len != imsg_get_len(imsg)) {
		errno = EBADMSG;
		return (-1);
	}
	if (len > 0)
		memcpy(data, imsg->buf->buf + imsg->buf->rpos, len);
	return (0);
}

int
imsg_get_fd(struct imsg *imsg)
{
	int	 fd;

	if (imsg->buf == NULL)
		return (-1);
	fd = imsg->buf->fd;
	imsg->buf->fd = -1;
	return (fd);
}

uint32_t
imsg_get_id(struct imsg *imsg)
{
	return (imsg->hdr.peerid);
}

size_t
imsg_get_len(struct imsg *imsg)
{
	return (imsg->buf == NULL ? 0 : ibuf_size(imsg->buf));
}

pid_t
imsg_get_pid(struct imsg *imsg)
{
	return (imsg->hdr.pid);
}

uint32_t
imsg_get_type(struct imsg *imsg)
{
	return (imsg->hdr.type);
}

void
imsg_free(struct imsg *imsg)
{
	ibuf_free(imsg->buf);
	imsg->buf = NULL;
	imsg->data = NULL;
}

struct ibuf *
imsg_create(struct imsgbuf *imsgbuf, uint32_t type, uint32_t id, pid_t pid,
    size_t datalen)
{
	struct imsg_hdr	 hdr;
	struct ibuf	*buf;

	if (datalen > imsgbuf->maxsize - IMSG_HEADER_SIZE) {
		errno = ERANGE;
		return (NULL);
	}
	buf = ibuf_dynamic(IMSG_HEADER_SIZE + datalen, imsgbuf->maxsize);
	if (buf == NULL)
		return (NULL);
	hdr.type = type;
	hdr.len = 0;
	hdr.peerid = id;
	hdr.pid = pid == 0 ? imsgbuf->pid : pid;
	if (ibuf_add(buf, &hdr, sizeof(hdr)) == -1) {
		ibuf_free(buf);
		return (NULL);
	}
	return (buf);
}

int
imsg_add(struct ibuf *buf, const void *data, size_t len)
{
	if (buf == NULL)
		return (-1);
	if (ibuf_add(buf, data, len) == -1) {
		ibuf_free(buf);
		return (-1);
	}
	return (len);
}

void
imsg_close(struct imsgbuf *imsgbuf, struct ibuf *buf)
{
	uint32_t	 len;

	if (buf == NULL)
		return;
	len = ibuf_size(buf);
	if (buf->fd != -1)
		len |= IMSG_FD_MARK;
	memcpy(buf->buf + offsetof(struct imsg_hdr, len), &len, sizeof(len));
	TAILQ_INSERT_TAIL(&imsgbuf->w->bufs, buf, entry);
	imsgbuf->w->queued++;
}

int
imsg_compose(struct imsgbuf *imsgbuf, uint32_t type, uint32_t id, pid_t pid,
    int fd, const void *data, size_t datalen)
{
	struct ibuf	*buf;

	if ((buf = imsg_create(imsgbuf, type, id, pid, datalen)) == NULL)
		return (-1);
	if (imsg_add(buf, data, datalen) == -1)
		return (-1);
	buf->fd = fd;
	imsg_close(imsgbuf, buf);
	return (1);
}

int
imsg_composev(struct imsgbuf *imsgbuf, uint32_t type, uint32_t id, pid_t pid,
    int fd, const struct iovec *iov, int iovcnt)
{
	struct ibuf	*buf;
	size_t		 datalen = 0;
	int		 i;

	for (i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len > imsgbuf->maxsize - datalen) {
			errno = ERANGE;
			return (-1);
		}
		datalen += iov[i].iov_len;
	}
	if ((buf = imsg_create(imsgbuf, type, id, pid, datalen)) == NULL)
		return (-1);
	for (i = 0; i < iovcnt; i++)
		if (imsg_add(buf, iov[i].iov_base, iov[i].iov_len) == -1)
			return (-1);
	buf->fd = fd;
	imsg_close(imsgbuf, buf);
	return (1);
}

int
imsgbuf_write(struct imsgbuf *imsgbuf)
{
	struct msgbuf	*w = imsgbuf->w;
	struct ibuf	*buf, *next;
	struct iovec	 iov[IMSG_IOV];
	struct msghdr	 msg;
	struct cmsghdr	*cmsg;
	union {
		struct cmsghdr	 hdr;
		unsigned char	 buf[CMSG_SPACE(sizeof(int))];
	} cbuf;
	ssize_t		 n;
	size_t		 left;
	int		 i;

	while ((buf = TAILQ_FIRST(&w->bufs)) != NULL) {
		/*
		 * The receiver gives an fd to a message starting in the read
		 * that brought it, so an fd travels with the first byte of
		 * its message: such a message always starts a sendmsg() and
		 * ends the one before.  Once a byte of it is out, its fd is.
		 */
		memset(&msg, 0, sizeof(msg));
		if (buf->fd != -1) {
			memset(&cbuf, 0, sizeof(cbuf));
			msg.msg_control = cbuf.buf;
			msg.msg_controllen = sizeof(cbuf.buf);
			cmsg = CMSG_FIRSTHDR(&msg);
			cmsg->cmsg_len = CMSG_LEN(sizeof(int));
			cmsg->cmsg_level = SOL_SOCKET;
			cmsg->cmsg_type = SCM_RIGHTS;
			memcpy(CMSG_DATA(cmsg), &buf->fd, sizeof(int));
		}
		i = 0;
		do {
			iov[i].iov_base = buf->buf + buf->rpos;
			iov[i].iov_len = buf->wpos - buf->rpos;
			i++;
		} while (i < IMSG_IOV &&
		    (buf = TAILQ_NEXT(buf, entry)) != NULL && buf->fd == -1);
		msg.msg_iov = iov;
		msg.msg_iovlen = i;

		if ((n = sendmsg(imsgbuf->fd, &msg, MSG_NOSIGNAL)) == -1) {
			if (errno == EAGAIN || errno == EWOULDBLOCK ||
			    errno == EINTR)
				return (0);
			return (-1);
		}
		if (n == 0)
			return (0);

		buf = TAILQ_FIRST(&w->bufs);
		if (buf->fd != -1) {
			close(buf->fd);
			buf->fd = -1;
		}
		for (left = n; buf != NULL && left > 0; buf = next) {
			next = TAILQ_NEXT(buf, entry);
			if (left < buf->wpos - buf->rpos) {
				buf->rpos += left;
				break;
			}
			left -= buf->wpos - buf->rpos;
			TAILQ_REMOVE(&w->bufs, buf, entry);
			ibuf_free(buf);
			w->queued--;
		}
	}
	return (0);
}

int
imsgbuf_flush(struct imsgbuf *imsgbuf)
{
	struct pollfd	 pfd;

	pfd.fd = imsgbuf->fd;
	pfd.events = POLLOUT;
	while (imsgbuf_queuelen(imsgbuf) > 0) {
		if (imsgbuf_write(imsgbuf) == -1)
			return (-1);
		if (imsgbuf_queuelen(imsgbuf) > 0 && poll(&pfd, 1, -1) == -1 &&
		    errno != EINTR)
			return (-1);
	}
	return (0);
}

#endif /* !__OpenBSD__ */
