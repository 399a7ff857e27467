# smarthostd -- GNU make.  Kept plain so that an OpenBSD port is a small step.

PREFIX ?=	/usr/local
SBINDIR ?=	$(PREFIX)/sbin
MANDIR ?=	$(PREFIX)/share/man
SYSCONFDIR ?=	/etc
DESTDIR ?=

CC ?=		cc
YACC =		byacc
PKG_CONFIG ?=	pkg-config
PYTHON ?=	python3

# Libraries, by pkg-config name; grown as the daemon grows.
PKGS =		libevent libbsd-overlay lmdb libtls libcrypt libcares libclamav

WARNINGS =	-Wall -Wextra -Wstrict-prototypes -Wmissing-prototypes \
		-Wmissing-declarations -Wshadow -Wpointer-arith -Wcast-qual \
		-Wsign-compare
CFLAGS ?=	-O2 -g
CFLAGS +=	-std=gnu99 $(WARNINGS)
CPPFLAGS +=	-Icompat -Ismarthostd $(shell $(PKG_CONFIG) --cflags $(PKGS))
LDLIBS +=	$(shell $(PKG_CONFIG) --libs $(PKGS))
# Neither ships a pkg-config file on Debian 12.
LDLIBS +=	-lspf2 -lz

OS :=		$(shell uname -s)
ifeq ($(OS),Linux)
CPPFLAGS +=	-D_GNU_SOURCE
LDLIBS +=	-lresolv		# b64_pton, b64_ntop: in libc elsewhere
USERADD =	useradd -r -M -d /var/empty -s /usr/sbin/nologin
endif
# Not yet a working build (README, "Install on OpenBSD"): base has
# libtls, libevent 1.4 and libz without pkg-config files, crypt(3) and
# b64_pton(3) in libc; lmdb and libspf2 come as packages without them.
ifeq ($(OS),OpenBSD)
PKGS =		libcares libclamav
YACC =		yacc
CPPFLAGS +=	-I/usr/local/include
LDFLAGS +=	-L/usr/local/lib -pthread
LDLIBS +=	-levent -ltls -lssl -lcrypto -llmdb
USERADD =	useradd -L daemon -g =uid -d /var/empty -s /sbin/nologin
endif

# The pf process's firewall backend: nftables on Linux, pf on OpenBSD.
ifeq ($(OS),Linux)
PFCTL_BACKEND =	smarthostd/pfctl_nft.c
PKGS +=		libnftables
else ifeq ($(OS),OpenBSD)
PFCTL_BACKEND =	smarthostd/pfctl_pf.c
else
PFCTL_BACKEND =	smarthostd/pfctl_none.c
endif

# The Debian packages that build, run and test smarthostd.
DEBIAN_PACKAGES = gcc make pkg-config byacc mandoc libevent-dev libbsd-dev \
		liblmdb-dev libtls-dev libcrypt-dev python3 iproute2 \
		util-linux procps passwd swaks openssl libc-ares-dev \
		dnsmasq-base postfix libspf2-dev zlib1g-dev libclamav-dev \
		spamassassin zip nftables libnftables-dev

COMPAT_SRCS =	compat/compat.c compat/imsg.c
DAEMON_SRCS =	smarthostd/smarthostd.c smarthostd/parse.c \
		smarthostd/printconf.c smarthostd/config.c smarthostd/log.c \
		smarthostd/util.c smarthostd/proc.c smarthostd/parent.c \
		smarthostd/control.c smarthostd/smtp.c smarthostd/grey.c \
		smarthostd/scan.c smarthostd/queue.c smarthostd/pfctl.c \
		smarthostd/envelope.c smarthostd/smtp_session.c \
		smarthostd/mailaddr.c smarthostd/ruleset.c smarthostd/dns.c \
		smarthostd/bounce.c smarthostd/scheduler.c smarthostd/relay.c \
		smarthostd/relay_conn.c smarthostd/relay_smtp.c \
		smarthostd/spf.c smarthostd/addrset.c smarthostd/greydb.c \
		smarthostd/message.c smarthostd/scan_score.c \
		smarthostd/grey_lists.c smarthostd/grey_dns.c \
		smarthostd/grey_ctl.c smarthostd/grey_fw.c smarthostd/smtp_scan.c \
		smarthostd/smtp_data.c smarthostd/smtp_auth.c smarthostd/backup.c \
		$(PFCTL_BACKEND)
CTL_SRCS =	smarthostctl/smarthostctl.c smarthostctl/parser.c

DAEMON_OBJS =	$(DAEMON_SRCS:.c=.o) $(COMPAT_SRCS:.c=.o)
CTL_OBJS =	$(CTL_SRCS:.c=.o) smarthostd/envelope.o $(COMPAT_SRCS:.c=.o)

UNIT_TESTS =	regress/unit/imsg_test regress/unit/envelope_test \
		regress/unit/mailaddr_test \
		regress/unit/dns_lookup regress/unit/bounce_test \
		regress/unit/relay_send regress/unit/addrset_test \
		regress/unit/grey_test regress/unit/spf_check \
		regress/unit/message_test

MANPAGES =	man/smarthostd.8 man/smarthostd.conf.5 man/smarthostctl.8

.PHONY: all deps users install run test clean lint

all: smarthostd/smarthostd smarthostctl/smarthostctl

smarthostd/smarthostd: $(DAEMON_OBJS)
	$(CC) $(LDFLAGS) -o $@ $(DAEMON_OBJS) $(LDLIBS)

smarthostctl/smarthostctl: $(CTL_OBJS)
	$(CC) $(LDFLAGS) -o $@ $(CTL_OBJS) $(LDLIBS)

smarthostd/parse.c: smarthostd/parse.y
	$(YACC) -o $@ smarthostd/parse.y

$(DAEMON_OBJS) $(CTL_OBJS): smarthostd/smarthostd.h compat/compat.h compat/imsg.h
smarthostctl/smarthostctl.o smarthostctl/parser.o: smarthostctl/smarthostctl.h

regress/unit/imsg_test: regress/unit/imsg_test.c compat/imsg.o
	$(CC) $(CFLAGS) $(CPPFLAGS) $(LDFLAGS) -o $@ regress/unit/imsg_test.c \
	    compat/imsg.o $(LDLIBS)

regress/unit/envelope_test: regress/unit/envelope_test.c smarthostd/envelope.o
	$(CC) $(CFLAGS) $(CPPFLAGS) $(LDFLAGS) -o $@ \
	    regress/unit/envelope_test.c smarthostd/envelope.o $(LDLIBS)

regress/unit/mailaddr_test: regress/unit/mailaddr_test.c smarthostd/mailaddr.o
	$(CC) $(CFLAGS) $(CPPFLAGS) $(LDFLAGS) -o $@ \
	    regress/unit/mailaddr_test.c smarthostd/mailaddr.o $(LDLIBS)

# Not a unit test of its own: regress/test_dns.py runs it against dnsmasq.
regress/unit/dns_lookup: regress/unit/dns_lookup.c smarthostd/dns.o \
    smarthostd/log.o
	$(CC) $(CFLAGS) $(CPPFLAGS) $(LDFLAGS) -o $@ regress/unit/dns_lookup.c \
	    smarthostd/dns.o smarthostd/log.o $(LDLIBS)

# Not a unit test of its own: regress/test_relay_client.py runs it against
# smtp-sink and small Python servers.
RELAY_SEND_OBJS = smarthostd/relay.o smarthostd/relay_conn.o \
		smarthostd/relay_smtp.o smarthostd/dns.o smarthostd/log.o \
		smarthostd/util.o $(COMPAT_SRCS:.c=.o)
regress/unit/relay_send: regress/unit/relay_send.c $(RELAY_SEND_OBJS)
	$(CC) $(CFLAGS) $(CPPFLAGS) $(LDFLAGS) -o $@ regress/unit/relay_send.c \
	    $(RELAY_SEND_OBJS) $(LDLIBS)

regress/unit/addrset_test: regress/unit/addrset_test.c \
    smarthostd/addrset.o smarthostd/util.o smarthostd/log.o
	$(CC) $(CFLAGS) $(CPPFLAGS) $(LDFLAGS) -o $@ \
	    regress/unit/addrset_test.c smarthostd/addrset.o smarthostd/util.o \
	    smarthostd/log.o $(LDLIBS)

# The greylist state machine with an injected clock.
regress/unit/grey_test: regress/unit/grey_test.c smarthostd/greydb.o \
    smarthostd/util.o smarthostd/log.o
	$(CC) $(CFLAGS) $(CPPFLAGS) $(LDFLAGS) -o $@ regress/unit/grey_test.c \
	    smarthostd/greydb.o smarthostd/util.o smarthostd/log.o $(LDLIBS)

# Not a unit test of its own: regress/test_spf.py runs it against dnsmasq.
SPF_CHECK_OBJS = smarthostd/spf.o smarthostd/dns.o smarthostd/log.o \
		smarthostd/util.o $(COMPAT_SRCS:.c=.o)
regress/unit/spf_check: regress/unit/spf_check.c $(SPF_CHECK_OBJS)
	$(CC) $(CFLAGS) $(CPPFLAGS) $(LDFLAGS) -o $@ regress/unit/spf_check.c \
	    $(SPF_CHECK_OBJS) $(LDLIBS)

regress/unit/bounce_test: regress/unit/bounce_test.c smarthostd/bounce.o \
    smarthostd/envelope.o
	$(CC) $(CFLAGS) $(CPPFLAGS) $(LDFLAGS) -o $@ regress/unit/bounce_test.c \
	    smarthostd/bounce.o smarthostd/envelope.o $(LDLIBS)

# The scanner's header edits, on memfds.
regress/unit/message_test: regress/unit/message_test.c smarthostd/message.o \
    $(COMPAT_SRCS:.c=.o)
	$(CC) $(CFLAGS) $(CPPFLAGS) $(LDFLAGS) -o $@ \
	    regress/unit/message_test.c smarthostd/message.o \
	    $(COMPAT_SRCS:.c=.o) $(LDLIBS)

smarthostd/smtp.o smarthostd/smtp_session.o smarthostd/smtp_scan.o \
    smarthostd/smtp_data.o smarthostd/smtp_auth.o \
    smarthostd/message.o: smarthostd/smtp.h
smarthostd/pfctl.o $(PFCTL_BACKEND:.c=.o): smarthostd/pfctl.h
smarthostd/grey.o smarthostd/grey_lists.o smarthostd/grey_dns.o \
    smarthostd/grey_ctl.o smarthostd/grey_fw.o: smarthostd/grey.h
smarthostd/relay.o smarthostd/relay_conn.o \
    smarthostd/relay_smtp.o: smarthostd/relay.h

# Install missing Debian packages, by name; a no-op when all are present.
deps:
	@if command -v dpkg-query >/dev/null 2>&1; then \
		missing=""; \
		for p in $(DEBIAN_PACKAGES); do \
			dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | \
			    grep -q 'install ok installed' || missing="$$missing $$p"; \
		done; \
		if [ -n "$$missing" ]; then \
			echo "deps: installing$$missing"; \
			sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
			echo "postfix postfix/main_mailer_type select No configuration" | \
			    $$sudo debconf-set-selections; \
			$$sudo apt-get update -qq && \
			DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$missing; \
		fi; \
	fi

# The unprivileged users the daemon runs its processes as (root only).
users:
	@if [ -z "$(USERADD)" ]; then \
		echo "users: on $(OS), create _smarthostd and" \
		    "_smarthostd_scan by hand"; \
		exit 1; \
	fi
	@if [ "$$(id -u)" = 0 ]; then \
		for u in _smarthostd _smarthostd_scan; do \
			id -u $$u >/dev/null 2>&1 && continue; \
			echo "users: creating $$u"; \
			$(USERADD) -c "smarthostd privsep" $$u || exit 1; \
		done; \
	fi

test: deps users
	@$(MAKE) -s all $(UNIT_TESTS)
	@$(PYTHON) regress/run.py

# A self-signed certificate and a password file (user "test", password
# "test") under var, made once, for etc/smarthostd-dev.conf.
run: deps users
	@$(MAKE) -s all
	@mkdir -p var
	@if [ ! -s $(CURDIR)/var/dev.crt ] || [ ! -s $(CURDIR)/var/dev.key ]; then \
		echo "run: making a self-signed certificate, var/dev.crt"; \
		(umask 077; openssl req -x509 -newkey rsa:2048 -nodes -days 365 \
		    -subj /CN=localhost -keyout $(CURDIR)/var/dev.key \
		    -out $(CURDIR)/var/dev.crt 2>/dev/null) || exit 1; \
	fi
	@chmod 0644 $(CURDIR)/var/dev.crt
	@chmod 0600 $(CURDIR)/var/dev.key
	@if [ ! -s $(CURDIR)/var/passwd ]; then \
		if ! hash=$$(smarthostctl/smarthostctl encrypt test 2>/dev/null) || \
		    [ -z "$$hash" ]; then \
			echo "run: no smarthostctl encrypt yet; hashing with python3's crypt"; \
			hash=$$($(PYTHON) -W ignore -c 'import crypt; print(crypt.crypt("test", crypt.mksalt(crypt.METHOD_BLOWFISH)))') || exit 1; \
		fi; \
		(umask 077; echo "test $$hash" > $(CURDIR)/var/passwd); \
	fi
	@chmod 0600 $(CURDIR)/var/passwd
	@echo "smarthostd: starting in the foreground; state under ./var"
	@echo "  port 2525: STARTTLS; mail to any address @smarthost.test from this host"
	@echo "  port 5870: STARTTLS required, AUTH as user \"test\", password \"test\""
	@echo "  in another terminal, send a test message:"
	@echo "    swaks --server 127.0.0.1:2525 --tls --to user@smarthost.test"
	@echo "    swaks --server 127.0.0.1:5870 --tls --auth-user test --auth-password test --to someone@example.org"
	@echo "  mail to @smarthost.test is delivered as files into var/state/maildir/new:"
	@echo "    ls var/state/maildir/new"
	@echo "  mail to other domains goes out by MX; look at the queue and the counters:"
	@echo "    smarthostctl/smarthostctl -s var/smarthostd.sock show queue"
	@echo "    smarthostctl/smarthostctl -s var/smarthostd.sock show stats"
	@echo "  stop with ^C"
	./smarthostd/smarthostd -d -f etc/smarthostd-dev.conf -D vardir=$(CURDIR)/var

# Where install puts what is not a binary or a manual.  STATEDIR must
# match "state" in smarthostd.conf; the service files name SBINDIR.
STATEDIR ?=	/var/smarthostd
EXAMPLEDIR ?=	$(PREFIX)/share/examples/smarthostd
SYSTEMDDIR ?=	/lib/systemd/system
RCDIR ?=	/etc/rc.d
INSTALL_FILES =	$(DESTDIR)$(SBINDIR)/smarthostd \
		$(DESTDIR)$(SBINDIR)/smarthostctl \
		$(DESTDIR)$(MANDIR)/man8/smarthostd.8 \
		$(DESTDIR)$(MANDIR)/man8/smarthostctl.8 \
		$(DESTDIR)$(MANDIR)/man5/smarthostd.conf.5 \
		$(DESTDIR)$(SYSCONFDIR)/smarthostd.conf.example \
		$(DESTDIR)$(SYSTEMDDIR)/smarthostd.service \
		$(DESTDIR)$(SYSTEMDDIR)/smarthostd-backup.service \
		$(DESTDIR)$(SYSTEMDDIR)/smarthostd-backup.timer \
		$(DESTDIR)$(SYSCONFDIR)/logrotate.d/smarthostd \
		$(DESTDIR)$(SYSCONFDIR)/rsyslog.d/smarthostd.conf \
		$(DESTDIR)$(RCDIR)/smarthostd \
		$(DESTDIR)$(SYSCONFDIR)/login.conf.d/smarthostd
EXAMPLES =	etc/pf.conf etc/cron.example etc/syslog.conf \
		etc/newsyslog.conf
ifneq ($(OS),OpenBSD)
EXAMPLES +=	etc/nftables.conf
endif
SYSTEMD_UNITS =	smarthostd.service smarthostd-backup.service \
		smarthostd-backup.timer

.PHONY: install uninstall

# Never overwrites an existing smarthostd.conf.  With DESTDIR set (a
# package build), the users are not created and the state directory is
# left owned by whoever installs: both are the package's job.
install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man5 \
	    $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(SYSCONFDIR) \
	    $(DESTDIR)$(EXAMPLEDIR)
	install -m 0555 smarthostd/smarthostd smarthostctl/smarthostctl \
	    $(DESTDIR)$(SBINDIR)/
	install -m 0444 man/smarthostd.8 man/smarthostctl.8 \
	    $(DESTDIR)$(MANDIR)/man8/
	install -m 0444 man/smarthostd.conf.5 $(DESTDIR)$(MANDIR)/man5/
	install -m 0444 $(EXAMPLES) $(DESTDIR)$(EXAMPLEDIR)/
	install -m 0644 etc/smarthostd.conf \
	    $(DESTDIR)$(SYSCONFDIR)/smarthostd.conf.example
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/smarthostd.conf ]; then \
		echo "install: keeping $(DESTDIR)$(SYSCONFDIR)/smarthostd.conf;" \
		    "the new example is smarthostd.conf.example"; \
	else \
		echo "install -m 0644 etc/smarthostd.conf" \
		    "$(DESTDIR)$(SYSCONFDIR)/smarthostd.conf"; \
		install -m 0644 etc/smarthostd.conf \
		    $(DESTDIR)$(SYSCONFDIR)/smarthostd.conf; \
	fi
ifeq ($(OS),OpenBSD)
	install -d $(DESTDIR)$(RCDIR) $(DESTDIR)$(SYSCONFDIR)/login.conf.d
	sed 's,/usr/local/sbin/,$(SBINDIR)/,g' etc/rc.d/smarthostd \
	    >$(DESTDIR)$(RCDIR)/smarthostd
	chmod 0555 $(DESTDIR)$(RCDIR)/smarthostd
	install -m 0644 etc/login.conf.d/smarthostd \
	    $(DESTDIR)$(SYSCONFDIR)/login.conf.d/smarthostd
else
	install -d $(DESTDIR)$(SYSTEMDDIR) $(DESTDIR)$(SYSCONFDIR)/logrotate.d \
	    $(DESTDIR)$(SYSCONFDIR)/rsyslog.d
	for u in $(SYSTEMD_UNITS); do \
		sed 's,/usr/local/sbin/,$(SBINDIR)/,g' etc/systemd/$$u \
		    >$(DESTDIR)$(SYSTEMDDIR)/$$u && \
		chmod 0644 $(DESTDIR)$(SYSTEMDDIR)/$$u || exit 1; \
	done
	install -d -m 0700 $(DESTDIR)/var/backups/smarthostd
	install -m 0644 etc/logrotate.d/smarthostd \
	    $(DESTDIR)$(SYSCONFDIR)/logrotate.d/smarthostd
	install -m 0644 etc/rsyslog.d/smarthostd.conf \
	    $(DESTDIR)$(SYSCONFDIR)/rsyslog.d/smarthostd.conf
endif
	install -d -m 0755 $(DESTDIR)/var/empty
ifeq ($(DESTDIR),)
	@$(MAKE) -s users
	install -d -m 0700 -o _smarthostd -g "$$(id -g _smarthostd)" \
	    $(STATEDIR)
else
	install -d -m 0700 $(DESTDIR)$(STATEDIR)
	@echo "install: DESTDIR is set: not creating the users _smarthostd" \
	    "and _smarthostd_scan, and $(STATEDIR) is not chowned to" \
	    "_smarthostd; the package must do both"
endif

# Leaves smarthostd.conf, the state directory and the users alone.
uninstall:
	rm -f $(INSTALL_FILES)
	rm -f $(addprefix $(DESTDIR)$(EXAMPLEDIR)/,$(notdir $(EXAMPLES)))
	-rmdir $(DESTDIR)$(EXAMPLEDIR)

# The appliance (vm/): a Debian 12 qcow2 image with smarthostd, and its
# boot test under qemu with software emulation.  Not part of make test;
# their packages are installed here, not with DEBIAN_PACKAGES.
VM_PACKAGES =	mmdebstrap qemu-system-x86 qemu-utils grub-pc-bin fdisk \
		e2fsprogs
VM_IMAGE =	vm/smarthostd.qcow2
VM_INPUTS =	smarthostd/smarthostd smarthostctl/smarthostctl $(MANPAGES) \
		etc/smarthostd.conf $(EXAMPLES) \
		$(addprefix etc/systemd/,$(SYSTEMD_UNITS)) \
		etc/logrotate.d/smarthostd etc/rsyslog.d/smarthostd.conf \
		vm/build-image.sh vm/customize.sh $(shell find vm/rootfs -type f)

.PHONY: vm-image vm-test

vm-image: deps
	@rm -f $(VM_IMAGE)
	@$(MAKE) -s $(VM_IMAGE)

$(VM_IMAGE): $(VM_INPUTS)
	@$(MAKE) -s deps DEBIAN_PACKAGES="$(VM_PACKAGES)"
	vm/build-image.sh $@

vm-test: deps
	@$(MAKE) -s $(VM_IMAGE)
	@$(MAKE) -s deps DEBIAN_PACKAGES="$(VM_PACKAGES)"
	$(PYTHON) vm/vmtest.py qemu $(VM_IMAGE)

lint:
	mandoc -Tlint -W warning $(MANPAGES)

clean:
	rm -f $(DAEMON_OBJS) $(CTL_OBJS) smarthostd/parse.c \
	    smarthostd/smarthostd smarthostctl/smarthostctl $(UNIT_TESTS)
	rm -rf regress/__pycache__ regress/*/__pycache__
