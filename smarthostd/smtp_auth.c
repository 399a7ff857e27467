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
 * AUTH PLAIN and LOGIN, after TLS and only where the listener has a
 * password table.  The password check is the parent's: smtp never sees
 * a hash, and waits for the parent's answer.
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/nameser.h>

#include <resolv.h>
#include <string.h>
#include <strings.h>

#include "smarthostd.h"
#include "smtp.h"

#define AUTH_MECH_PLAIN		"PLAIN"
#define AUTH_MECH_LOGIN		"LOGIN"

static void	 auth_plain(struct smtp_session *, const char *);
static void	 auth_check(struct smtp_session *, const char *, const char *);

/*
 * AUTH PLAIN and LOGIN, only after TLS and only where the listener has a
 * password table.  The check is the parent's; we wait for its answer.
 */
void
cmd_auth(struct smtp_session *s, char *arg)
{
	const struct listener	*l = &s->listener->conf;
	char			*mech, *initial;

	if (s->tarpit) {
		session_reply(s, "502 5.5.1 Command not implemented");
		return;
	}
	if (l->auth_table[0] == '\0') {
		session_error(s, "503 5.5.1 AUTH not available");
		return;
	}
	if (s->tls_state != SMTP_TLS_ON) {
		session_error(s, "530 5.7.0 Must issue a STARTTLS command "
		    "first");
		return;
	}
	if (s->state == SMTP_GREETING) {
		session_error(s, "503 5.5.1 Send EHLO first");
		return;
	}
	if (s->auth_user[0] != '\0') {
		session_error(s, "503 5.5.1 Already authenticated");
		return;
	}
	if (s->in_transaction) {
		session_error(s, "503 5.5.1 AUTH inside a transaction");
		return;
	}
	if (smtp_auth_blocked(s)) {
		log_info("session %u: AUTH refused: too many failures from "
		    "%s", s->id, s->peer_addr);
		smtp_auth_tell_grey(s);
		session_reply(s, "454 4.7.0 Too many authentication "
		    "failures, try again later");
		return;
	}
	mech = arg;
	initial = mech + strcspn(mech, " ");
	if (*initial == ' ')
		*initial++ = '\0';
	else
		initial = NULL;
	if (strcasecmp(mech, AUTH_MECH_PLAIN) == 0) {
		if (initial == NULL) {
			s->state = SMTP_AUTH_PLAIN;
			session_reply(s, "334 ");
		} else
			auth_plain(s, initial);
	} else if (strcasecmp(mech, AUTH_MECH_LOGIN) == 0) {
		s->state = SMTP_AUTH_USER;
		if (initial == NULL)
			session_reply(s, "334 VXNlcm5hbWU6");	/* Username: */
		else
			auth_continue(s, initial);
	} else
		session_error(s, "504 5.5.4 Unrecognized authentication "
		    "type");
}

void
auth_continue(struct smtp_session *s, char *line)
{
	unsigned char	 buf[AUTH_USER_MAX];
	int		 n;

	if (strcmp(line, "*") == 0) {
		s->state = SMTP_READY;
		session_error(s, "501 5.7.0 Authentication cancelled");
		return;
	}
	switch (s->state) {
	case SMTP_AUTH_PLAIN:
		s->state = SMTP_READY;
		auth_plain(s, line);
		return;
	case SMTP_AUTH_USER:
		n = b64_pton(line, buf, sizeof(buf) - 1);
		if (n <= 0 || memchr(buf, '\0', n) != NULL) {
			s->state = SMTP_READY;
			session_error(s, "501 5.5.2 Invalid base64 data");
			return;
		}
		buf[n] = '\0';
		(void)strlcpy(s->auth_login_user, (char *)buf,
		    sizeof(s->auth_login_user));
		s->state = SMTP_AUTH_PASSWORD;
		session_reply(s, "334 UGFzc3dvcmQ6");	/* Password: */
		return;
	case SMTP_AUTH_PASSWORD:
		s->state = SMTP_READY;
		n = b64_pton(line, buf, sizeof(buf) - 1);
		if (n <= 0 || memchr(buf, '\0', n) != NULL) {
			explicit_bzero(buf, sizeof(buf));
			session_error(s, "501 5.5.2 Invalid base64 data");
			return;
		}
		buf[n] = '\0';
		auth_check(s, s->auth_login_user, (char *)buf);
		explicit_bzero(buf, sizeof(buf));
		return;
	default:
		fatalx("auth_continue in state %d", s->state);
	}
}

/* "authzid NUL authcid NUL passwd"; we act for nobody else. */
static void
auth_plain(struct smtp_session *s, const char *b64)
{
	unsigned char	 buf[AUTH_USER_MAX + AUTH_PASSWORD_MAX + 2];
	const char	*authzid, *user, *pass;
	int		 n;

	s->state = SMTP_READY;
	n = b64_pton(b64, buf, sizeof(buf) - 1);
	if (n <= 0) {
		session_error(s, "501 5.5.2 Invalid base64 data");
		return;
	}
	buf[n] = '\0';
	authzid = (char *)buf;
	user = authzid + strlen(authzid) + 1;
	if (user >= (char *)buf + n) {
		explicit_bzero(buf, sizeof(buf));
		session_error(s, "501 5.5.2 Malformed PLAIN response");
		return;
	}
	pass = user + strlen(user) + 1;
	if (pass > (char *)buf + n || pass + strlen(pass) != (char *)buf + n ||
	    (authzid[0] != '\0' && strcmp(authzid, user) != 0)) {
		explicit_bzero(buf, sizeof(buf));
		session_error(s, "501 5.5.2 Malformed PLAIN response");
		return;
	}
	auth_check(s, user, pass);
	explicit_bzero(buf, sizeof(buf));
}

static void
auth_check(struct smtp_session *s, const char *user, const char *pass)
{
	if (user[0] == '\0' || pass[0] == '\0' ||
	    strlen(user) >= AUTH_USER_MAX || strlen(pass) >= AUTH_PASSWORD_MAX ||
	    smtp_send_auth(s, user, pass) == -1) {
		smtp_auth_failed(s);
		session_reply(s, "535 5.7.8 Authentication credentials "
		    "invalid");
		return;
	}
	(void)strlcpy(s->auth_login_user, user, sizeof(s->auth_login_user));
	s->wait = SMTP_WAIT_AUTH;
}

void
smtp_session_auth_result(struct smtp_session *s, int ok)
{
	char	 user[AUTH_USER_MAX];

	s->wait = SMTP_WAIT_NONE;
	sanitize(user, s->auth_login_user, sizeof(user));
	if (ok) {
		smtp_stats.auth_ok++;
		(void)strlcpy(s->auth_user, s->auth_login_user,
		    sizeof(s->auth_user));
		log_info("session %u: authenticated as %s", s->id, user);
		session_reply(s, "235 2.7.0 Authentication successful");
	} else {
		smtp_auth_failed(s);
		log_info("session %u: authentication failed for %s from %s",
		    s->id, user, s->peer_addr);
		session_reply(s, "535 5.7.8 Authentication credentials "
		    "invalid");
	}
	explicit_bzero(s->auth_login_user, sizeof(s->auth_login_user));
	session_continue(s);
}
