#!/bin/bash
# bench/scan.sh -- scanning before 250: smarthostd with its in-process
# libclamav (and SpamAssassin's spamd) against Postfix + amavisd-new +
# clamd (+ SpamAssassin inside amavisd), all from Debian, measured in one
# run on this machine (issue 6, design.md section 11).
#
# The same messages go through every target: bench/scan-load.py sends
# "text" (about 10 KB of plain text) and "attach" (about 100 KB: a text
# part and a base64 PDF-named attachment of random bytes), every message
# different, one message per connection, SESSIONS at once; 1% of them
# (message i with i % 100 == 50) carry EICAR as a base64 attachment.
# Every next hop is one Postfix smtp-sink (no disk) on loopback.
#
#   sink        smtp-sink itself: the load client's ceiling, no scanning
#   smarthostd  ./smarthostd/smarthostd -d: scan { clamav database DB },
#               action "out" relay host "smtp://127.0.0.1:SINK" scan
#               virus-only (phase "virus"); scan with spamassassin
#               "unix:SOCK" to a spamd started here and spam levels
#               that tag but never reject (phase "spam").  A virus gets
#               554 at the end of DATA.
#   amavis      a private Postfix (config and queue under the scratch
#               directory) with content_filter = smtp-amavis to
#               amavisd-new on AMAVIS_PORT (Debian's package, run in the
#               foreground with a private config file appended to
#               Debian's conf.d, AMAVIS_SERVERS children: its default),
#               which asks clamd (run in the foreground with a private
#               clamd.conf and socket, as user amavis, Debian's other
#               settings) and re-injects into Postfix's smtpd on
#               REINJECT_PORT, which relays to the sink.  A virus gets
#               250 from Postfix and is discarded (quarantined) by
#               amavisd (Debian's D_DISCARD).  Phase "virus": spam
#               checks bypassed; phase "spam": amavisd runs SpamAssassin
#               itself, local tests only.
#
# Both scanners load the same signature directory: a test database made
# here (EICAR's MD5 in a .hdb, EICAR's string and a few made-up body
# signatures in a .ndb, a few made-up hashes), plus the real ClamAV
# database when /var/lib/clamav has one (REAL_DB=0: never).
#
# For each phase, each run (RUNS, interleaved) and each kind:
#
#   throughput  scan-load.py sends MESSAGES (SHD_MESSAGES to smarthostd
#               and the sink, AMAVIS_MESSAGES to the amavis stack, whose
#               rate is far lower; SPAM_MESSAGES to both in the spam
#               phase, where spamd sets the pace) as fast as the
#               target answers; the end-to-end rate is the messages sent
#               divided by the time from the start to the arrival of the
#               last clean message at the sink (smtp-sink -c's counter);
#               CPU: every process of the stack (/proc/PID/stat, reaped
#               children included) from the start until its queue is
#               empty; memory: the sum of the PSS (/proc/PID/smaps_rollup)
#               of every process of the stack, read after each run while
#               they are all still there, the largest such sum; latency:
#               the client's end of DATA -> the server's reply (for the
#               amavis stack this is Postfix's accept: it scans after the
#               queue).
#   latency     LAT_MESSAGES messages of the kind at LAT_RATE msgs/s over
#               4 sessions to a recipient both stacks route to
#               relay-lat.py's sink: end of DATA -> arrival (scan
#               included for both), p50 and p99.
#
# It prints medians and smarthostd/amavis ratios.  It exits 1 when a
# target does not start, a session fails, a message is lost, a clean
# message is refused, or EICAR gets through; never on speed.  Everything
# runs inside a new network namespace (unshare --net, only lo up), every
# wait is bounded, and everything it started is stopped on exit.  Run as
# root (it installs Debian packages by name when missing; the daemons
# drop privileges).
#
# Knobs (environment): SESSIONS=16 RUNS=3 SHD_MESSAGES=3000
#   AMAVIS_MESSAGES=300 SPAM_MESSAGES=60 (both, with SpamAssassin)
#   KINDS="text attach"
#   PHASES="virus spam" TARGETS="sink smarthostd amavis"
#   AMAVIS_SERVERS=2 SPAMD_CHILDREN=2 LAT_MESSAGES=20 LAT_RATE=4
#   (LAT_MESSAGES=0: no latency runs) WARMUP=20 REAL_DB=1 PORT=15525
#   BENCH_TMPDIR=/var/tmp KEEP=1 (keep the scratch directory)
#   STALL=60 (seconds without an arrival before a run gives up)

set -eu
export LC_ALL=C

REPO=$(cd "$(dirname "$0")/.." && pwd)
SESSIONS=${SESSIONS:-16}
RUNS=${RUNS:-3}
SHD_MESSAGES=${SHD_MESSAGES:-3000}
AMAVIS_MESSAGES=${AMAVIS_MESSAGES:-300}
SPAM_MESSAGES=${SPAM_MESSAGES:-60}
KINDS=${KINDS:-text attach}
PHASES=${PHASES:-virus spam}
TARGETS=${TARGETS:-sink smarthostd amavis}
AMAVIS_SERVERS=${AMAVIS_SERVERS:-2}
SPAMD_CHILDREN=${SPAMD_CHILDREN:-2}
LAT_MESSAGES=${LAT_MESSAGES:-20}
LAT_RATE=${LAT_RATE:-4}
WARMUP=${WARMUP:-20}
REAL_DB=${REAL_DB:-1}
PORT=${PORT:-15525}
BENCH_TMPDIR=${BENCH_TMPDIR:-/var/tmp}
KEEP=${KEEP:-0}
STALL=${STALL:-60}
RUN_TIMEOUT=${RUN_TIMEOUT:-600}		# seconds, per load run
PF_IN_FLOW_DELAY=1s			# Postfix's default

BENCH=scan.sh
. "$(dirname "$0")/common.sh"
LOAD=$REPO/bench/scan-load.py
LAT=$REPO/bench/relay-lat.py

[ "$(id -u)" = 0 ] || die "run as root (package installs, privsep users)"
case $SESSIONS$RUNS$SHD_MESSAGES$AMAVIS_MESSAGES$SPAM_MESSAGES$AMAVIS_SERVERS$SPAMD_CHILDREN$LAT_MESSAGES$WARMUP$STALL in
*[!0-9]*) die "the numeric knobs must be numbers" ;;
esac
case $LAT_RATE in *[!0-9.]*|'') die "LAT_RATE must be a number" ;; esac
[ "$SESSIONS" -ge 1 ] && [ "$SESSIONS" -le 500 ] || die "SESSIONS: 1..500"
[ "$RUNS" -ge 1 ] && [ "$RUNS" -le 10 ] || die "RUNS must be 1..10"
for n in $SHD_MESSAGES $AMAVIS_MESSAGES $SPAM_MESSAGES; do
	[ "$n" -ge 1 ] && [ "$n" -le 100000 ] || die "MESSAGES: 1..100000"
done
[ "$AMAVIS_SERVERS" -ge 1 ] && [ "$AMAVIS_SERVERS" -le 50 ] ||
    die "AMAVIS_SERVERS must be 1..50"
[ "$SPAMD_CHILDREN" -ge 1 ] && [ "$SPAMD_CHILDREN" -le 50 ] ||
    die "SPAMD_CHILDREN must be 1..50"
for k in $KINDS; do
	case $k in text|attach) ;; *) die "unknown kind $k" ;; esac
done
for p in $PHASES; do
	case $p in virus|spam) ;; *) die "unknown phase $p" ;; esac
done
for t in $TARGETS; do
	case $t in sink|smarthostd|amavis) ;; *) die "unknown target $t" ;; esac
done

# ---------------------------------------------------------------- namespace

# Packages and the build need the host's network and tree; everything
# else runs again in a network namespace of its own, where nothing can
# leave this machine (DNS included).
if [ "${SCAN_BENCH_NETNS:-0}" != 1 ]; then
	install_packages
	missing=$(pkg_missing clamav-daemon amavisd-new spamassassin spamd \
	    libclamav-dev)
	if [ -n "$missing" ]; then
		log "installing$missing"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		    $missing >/dev/null
	fi
	build_smarthostd
	command -v unshare >/dev/null || die "unshare (util-linux) missing"
	exec unshare --net env SCAN_BENCH_NETNS=1 bash "$0" "$@"
fi
ip link set lo up || die "cannot bring lo up in the namespace"

scratch_dir smarthostd-scan

# ---------------------------------------------------------------- database

# One signature directory for both scanners, readable by both users.
DB=$WORK/clamav-db
mkdir -p "$DB"
python3 - "$DB" <<'EOF'
import hashlib, random, sys
d = sys.argv[1]
eicar = (b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-"
         b"FILE!$H+H*")
rng = random.Random("scan.sh signatures")
with open(d + "/bench.hdb", "w") as f:
    f.write("%s:%d:Eicar-Test-Signature\n" %
            (hashlib.md5(eicar).hexdigest(), len(eicar)))
    for i in range(5):
        blob = rng.randbytes(1000 + i)
        f.write("%s:%d:Bench.Madeup.Hash-%d\n" %
                (hashlib.md5(blob).hexdigest(), len(blob), i))
with open(d + "/bench.ndb", "w") as f:
    f.write("Bench.Eicar.Body:0:*:%s\n" % eicar.hex())
    for i in range(5):
        f.write("Bench.Madeup.Body-%d:0:*:%s\n" % (i, rng.randbytes(24).hex()))
EOF
DB_KIND="test database only (EICAR's MD5, 5 made-up hashes, EICAR's string and 5 made-up body signatures)"
if [ "$REAL_DB" = 1 ] &&
    ls /var/lib/clamav/*.cvd /var/lib/clamav/*.cld >/dev/null 2>&1; then
	cp /var/lib/clamav/*.c[vl]d "$DB"/
	DB_KIND="the real database ($(cd "$DB" && ls *.c[vl]d | tr '\n' ' '))plus the test signatures"
fi
chmod 755 "$DB"
chmod 644 "$DB"/*
log "signatures: $DB_KIND"

# ---------------------------------------------------------------- sinks

# One counting smtp-sink for every stack (the runs take turns), so one
# counts file; the latency sink takes the latency recipients of all.
SINK_PORT=$(next_port)
SINK_COUNTS=$WORK/sink.counts
counting_sink_start "$SINK_PORT" "$SINK_COUNTS" "$WORK/sink.err"

lat_sink_start

# ---------------------------------------------------------------- amavis

CLAMD_PID="" AMAVIS_PID="" AMAVIS_PORT="" REINJECT_PORT=""
if want amavis; then
	CLAMD=$WORK/clamd
	mkdir -p "$CLAMD/tmp"
	chown -R amavis:amavis "$CLAMD"
	sed -e '/^LocalSocket/d' -e '/^User /d' -e '/^Foreground/d' \
	    -e '/^DatabaseDirectory/d' -e '/^LogFile/d' -e '/^PidFile/d' \
	    -e '/^TemporaryDirectory/d' -e '/^LocalSocketGroup/d' \
	    /etc/clamav/clamd.conf >"$CLAMD/clamd.conf"
	cat >>"$CLAMD/clamd.conf" <<EOF
# bench/scan.sh: Debian's clamd.conf, private paths, amavisd's user.
LocalSocket $CLAMD/clamd.ctl
User amavis
Foreground true
DatabaseDirectory $DB
LogFile $CLAMD/clamd.log
TemporaryDirectory $CLAMD/tmp
EOF
	log "starting clamd"
	clamd -c "$CLAMD/clamd.conf" >"$CLAMD/stderr" 2>&1 &
	CLAMD_PID=$!
	PIDS_TO_STOP="$PIDS_TO_STOP $CLAMD_PID"
	for i in $(seq 300); do
		[ -S "$CLAMD/clamd.ctl" ] && break
		kill -0 "$CLAMD_PID" 2>/dev/null ||
		    { cat "$CLAMD/stderr" "$CLAMD/clamd.log" >&2
		      die "clamd exited"; }
		sleep 0.1
	done
	[ -S "$CLAMD/clamd.ctl" ] || die "clamd did not open its socket"

	# Nothing listens on these yet: next_port would give them again.
	AMAVIS_PORT=$(next_port)
	PORT=$((AMAVIS_PORT + 1))
	REINJECT_PORT=$(next_port)
	PORT=$((REINJECT_PORT + 1))
	postfix_config $((SESSIONS + AMAVIS_SERVERS + 50)) <<EOF
# Everything through amavisd-new (after the queue), then to smtp-sink;
# the latency recipients to the latency sink.
content_filter = smtp-amavis:[127.0.0.1]:$AMAVIS_PORT
relayhost = [127.0.0.1]:$SINK_PORT
transport_maps = inline:{lat.example=smtp:[127.0.0.1]:$LAT_PORT}
EOF
	# amavisd-new's README.postfix: the transport to amavisd and the
	# re-injection smtpd, without the checks of the first pass.
	cat >>"$PF_CONF/master.cf" <<EOF
smtp-amavis unix - - n - $AMAVIS_SERVERS smtp
  -o smtp_data_done_timeout=1200
  -o smtp_send_xforward_command=yes
  -o disable_dns_lookups=yes
  -o max_use=20
127.0.0.1:$REINJECT_PORT inet n - n - - smtpd
  -o content_filter=
  -o local_recipient_maps=
  -o relay_recipient_maps=
  -o smtpd_restriction_classes=
  -o smtpd_delay_reject=no
  -o smtpd_client_restrictions=permit_mynetworks,reject
  -o smtpd_helo_restrictions=
  -o smtpd_sender_restrictions=
  -o smtpd_recipient_restrictions=permit_mynetworks,reject
  -o smtpd_data_restrictions=reject_unauth_pipelining
  -o smtpd_end_of_data_restrictions=
  -o mynetworks=127.0.0.0/8
  -o smtpd_error_sleep_time=0
  -o smtpd_soft_error_limit=1001
  -o smtpd_hard_error_limit=1000
  -o smtpd_client_connection_count_limit=0
  -o smtpd_client_connection_rate_limit=0
  -o receive_override_options=no_header_body_checks,no_unknown_recipient_checks,no_milters
EOF
	postfix_start

	AMAVIS=$WORK/amavis
	mkdir -p "$AMAVIS/tmp" "$AMAVIS/db" "$AMAVIS/virusmails"
	chown -R amavis:amavis "$AMAVIS"
fi

# amavisd-new's configuration: Debian's conf.d as the package reads it,
# then a private file with this run's paths, ports and checks.
amavis_start() {	# phase
	local spam=1 f i
	[ "$1" = spam ] && spam=0
	# amavisd refuses a config file in a directory it could write.
	cat >"$WORK/amavisd.conf" <<EOF
use strict;
# bench/scan.sh, phase $1: private paths and ports; clamd only.
\$MYHOME = '$AMAVIS';
\$TEMPBASE = "\$MYHOME/tmp";
\$ENV{TMPDIR} = \$TEMPBASE;
\$db_home = "\$MYHOME/db";
\$QUARANTINEDIR = "\$MYHOME/virusmails";
\$pid_file = "\$MYHOME/amavisd.pid";
\$lock_file = "\$MYHOME/amavisd.lock";
\$myhostname = 'amavis-bench.example';
\$mydomain = 'example';
\$DO_SYSLOG = 0;
\$LOGFILE = "\$MYHOME/amavis.log";
\$log_level = 0;
\$max_servers = $AMAVIS_SERVERS;
\$inet_socket_bind = '127.0.0.1';
\$inet_socket_port = $AMAVIS_PORT;
@inet_acl = qw(127.0.0.1);
\$forward_method = 'smtp:[127.0.0.1]:$REINJECT_PORT';
\$notify_method = \$forward_method;
\$virus_admin = undef;
\$spam_admin = undef;
\$sa_local_tests_only = 1;
@bypass_virus_checks_maps = (0);
@bypass_spam_checks_maps = ($spam);
@av_scanners = (
 ['ClamAV-clamd',
   \\&ask_daemon, ["CONTSCAN {}\\n", "$CLAMD/clamd.ctl"],
   qr/\\bOK\$/m, qr/\\bFOUND\$/m,
   qr/^.*?: (?!Infected Archive)(.*) FOUND\$/m ],
);
@av_scanners_backup = ();
1;
EOF
	AMAVIS_ARGS=""
	for f in /usr/share/amavis/conf.d/* /etc/amavis/conf.d/*; do
		[ -f "$f" ] && AMAVIS_ARGS="$AMAVIS_ARGS -c $f"
	done
	log "starting amavisd-new ($1)"
	amavisd $AMAVIS_ARGS -c "$WORK/amavisd.conf" foreground \
	    >"$AMAVIS/stderr.$1" 2>&1 &
	AMAVIS_PID=$!
	PIDS_TO_STOP="$PIDS_TO_STOP $AMAVIS_PID"
	# SpamAssassin's rules take a while to compile.
	for i in $(seq 1200); do
		port_free "$AMAVIS_PORT" || return 0
		kill -0 "$AMAVIS_PID" 2>/dev/null || break
		sleep 0.1
	done
	tail -n 20 "$AMAVIS/stderr.$1" "$AMAVIS/amavis.log" >&2
	die "amavisd did not listen"
}
amavis_stop() {
	[ -n "$AMAVIS_PID" ] || return 0
	stop_pid "$AMAVIS_PID"
	wait "$AMAVIS_PID" 2>/dev/null || :
	AMAVIS_PID=""
	for i in $(seq 100); do port_free "$AMAVIS_PORT" && break; sleep 0.1; done
}

# ---------------------------------------------------------------- spamd

SPAMD_PID=""
# The scan process is chrooted in the database directory: the socket is
# there, named from inside the chroot in smarthostd.conf.
SPAMD_SOCK=$DB/spamd.sock
spamd_start() {
	mkdir -p "$WORK/spamd"
	chown nobody "$WORK/spamd"
	log "starting spamd"
	spamd -u nobody -L --socketpath="$SPAMD_SOCK" \
	    --max-children="$SPAMD_CHILDREN" --min-children=1 \
	    --syslog=stderr -r "$WORK/spamd/spamd.pid" \
	    >"$WORK/spamd/log" 2>&1 &
	SPAMD_PID=$!
	PIDS_TO_STOP="$PIDS_TO_STOP $SPAMD_PID"
	for i in $(seq 1200); do
		[ -S "$SPAMD_SOCK" ] && return 0
		kill -0 "$SPAMD_PID" 2>/dev/null || break
		sleep 0.1
	done
	tail -20 "$WORK/spamd/log" >&2
	die "spamd did not open its socket"
}

# ---------------------------------------------------------------- smarthostd

SHD_PORT=""
if want smarthostd; then
	shd_setup
	mkdir -p "$SHD/state"
fi
shd_scan_config() {	# phase
	local scanopt scanact
	if [ "$1" = spam ]; then
		# Tag, never refuse: like amavisd's D_PASS for spam.
		scanopt="	spamassassin \"unix:/${SPAMD_SOCK##*/}\"
	spam tag 2.0 reject 100.0"
		scanact="scan"
	else
		scanopt=""
		scanact="scan virus-only"
	fi
	shd_config_head "scan with libclamav ($1), relay to smtp-sink."
	cat <<EOF

smtp {
	max-sessions $nsess
	max-sessions-per-client $nsess
}

scan {
	clamav database "$DB"
$scanopt
}

listen on 127.0.0.1 port $SHD_PORT

action "lat" relay host "smtp://127.0.0.1:$LAT_PORT" $scanact
action "out" relay host "smtp://127.0.0.1:$SINK_PORT" $scanact
match from any for domain "lat.example" action "lat"
match from any for any action "out"
EOF
}
shd_phase_start() {	# phase
	shd_scan_config "$1" >"$SHD/smarthostd.conf"
	shd_check_or_die
	shd_start
	# The engine loads after the port opens: wait for a scan to answer.
	sleep 2
	kill -0 "$SHD_PID" 2>/dev/null ||
	    { tail -20 "$SHD/log" >&2; die "smarthostd exited"; }
}
shd_phase_stop() {
	[ -n "$SHD_PID" ] || return 0
	local kids
	kids=$(tree_pids "$SHD_PID")
	stop_pid "$SHD_PID"
	wait "$SHD_PID" 2>/dev/null || :
	for p in $kids; do kill -KILL "$p" 2>/dev/null || :; done
	SHD_PID=""
	for i in $(seq 100); do port_free "$SHD_PORT" && break; sleep 0.1; done
}

# ---------------------------------------------------------------- accounting

target_port() {
	case $1 in
	sink) echo "$SINK_PORT" ;;
	smarthostd) echo "$SHD_PORT" ;;
	amavis) echo "$PF_PORT" ;;
	esac
}
target_roots() {	# the root pids of a stack's process trees
	case $1 in
	sink) echo "$SINK_PID" ;;
	smarthostd) echo "$SHD_PID $SPAMD_PID" ;;
	amavis) echo "$PF_PID $AMAVIS_PID $CLAMD_PID" ;;
	esac
}
target_ticks() {
	local total=0 p
	for p in $(target_roots "$1"); do
		total=$((total + $(tree_ticks "$p")))
	done
	echo $total
}
pss_kb() {	# root-pids...: summed PSS (kB) of their process trees
	local p all=""
	for p in "$@"; do all="$all $(tree_pids "$p")"; done
	for p in $all; do
		awk '$1 == "Pss:" { print $2 }' "/proc/$p/smaps_rollup" \
		    2>/dev/null || :
	done | awk '{ s += $1 } END { print s + 0 }'
}
queued() {	# target: for queue_settle (common.sh)
	case $1 in
	smarthostd) stat_of "$(smarthostd_stats || echo '{}')" queue.messages ;;
	amavis) postfix_queued ;;
	*) echo 0 ;;
	esac
}

field() {	# scan-load-line name: that field's value
	echo "$1" | awk -v k="$2" '{ for (i = 1; i < NF; i++)
	    if ($i == k) { print $(i + 1); exit } }'
}

STATUS=0
SENT_LOG=$WORK/sent.log
: >"$SENT_LOG"

# Arrivals a stack owes the sink: the 2xx'd messages, less the EICAR ones
# that amavisd discards after Postfix's 250.
expected_arrivals() {	# target load-line
	local acc ea
	acc=$(field "$2" accepted)
	ea=$(field "$2" eicar_accepted)
	case $1 in
	amavis) echo $((acc - ea)) ;;
	*) echo "$acc" ;;
	esac
}

# A run's checks: nothing refused but EICAR, and EICAR refused by
# smarthostd (the sink takes everything).
check_replies() {	# target label load-line
	local acc rej tmp n e ea
	n=$(field "$3" sent) acc=$(field "$3" accepted)
	rej=$(field "$3" rejected) tmp=$(field "$3" tempfailed)
	e=$(field "$3" eicar) ea=$(field "$3" eicar_accepted)
	if [ "$tmp" != 0 ]; then
		log "$1 ($2): $tmp messages tempfailed"
		STATUS=1
	fi
	case $1 in
	smarthostd)
		if [ "$ea" != 0 ] || [ "$rej" != "$e" ]; then
			log "$1 ($2): $rej refused, $e carried EICAR," \
			    "$ea of them accepted"
			STATUS=1
		fi ;;
	*)
		if [ "$acc" != "$n" ]; then
			log "$1 ($2): only $acc of $n accepted"
			STATUS=1
		fi ;;
	esac
}

# One scan-load.py run: its summary line in LINE, its replies checked.
LINE=""
load_send() {	# target kind count sessions rate label sent-log
	local out=$WORK/load.$1.$6.log rc=0
	timeout "$RUN_TIMEOUT" python3 "$LOAD" send "$(target_port "$1")" \
	    "$2" "$3" "$4" "$5" "$6" "$7" >"$out" 2>&1 || rc=$?
	if [ $rc != 0 ]; then
		log "scan-load.py against $1 ($6) failed (exit $rc):"
		head -5 "$out" >&2
		exit 1
	fi
	LINE=$(tail -1 "$out")
	check_replies "$1" "$6" "$LINE"
}

# One throughput run; sets RES to "rate cpu-s/1000 pss-kB p50 p99", or
# to "fail".
RES=""
load_run() {	# target kind count label
	local t=$1 base c0 c1 t0 tl line want got
	base=$(sink_count "$SINK_COUNTS")
	c0=$(target_ticks "$t")
	t0=$(date +%s%N)
	load_send "$t" "$2" "$3" "$SESSIONS" 0 "$4" "$WORK/throughput.$t.log"
	line=$LINE
	want=$((base + $(expected_arrivals "$t" "$line")))
	if [ "$want" = "$base" ]; then
		log "$t ($4): nothing to measure, no message accepted"
		STATUS=1
		RES=fail
		return 0
	fi
	if ! sink_wait "$SINK_COUNTS" "$want"; then
		log "$t ($4): only $(($(sink_count "$SINK_COUNTS") - base)) of" \
		    "$((want - base)) messages arrived, none for ${STALL}s;" \
		    "$(queued "$t") queued"
		STATUS=1
		RES=fail
		return 0
	fi
	tl=$(sink_time_of "$SINK_COUNTS" "$want")
	[ -n "$tl" ] || tl=$(date +%s%N)
	queue_settle "$t" || STATUS=1
	c1=$(target_ticks "$t")
	got=$(sink_count "$SINK_COUNTS")
	if [ "$got" -gt "$want" ]; then
		log "$t ($4): $((got - want)) more messages arrived" \
		    "than were clean: EICAR got through"
		STATUS=1
	fi
	RES=$(awk -v n="$3" -v t0="$t0" -v tl="$tl" -v c=$((c1 - c0)) \
	    -v hz="$CLK_TCK" -v pss="$(pss_kb $(target_roots "$t"))" \
	    -v p50="$(field "$line" p50_ms)" -v p99="$(field "$line" p99_ms)" \
	    'BEGIN { s = (tl - t0) / 1e9; if (s <= 0) s = 0.001
	    printf "%.1f %.2f %d %s %s\n", n / s, c / hz / n * 1000, pss,
	    p50, p99 }')
}

# One latency run; sets RES to "p50 p99" (ms, end of DATA -> arrival).
latency_run() {	# target kind label
	local t=$1 line got
	load_send "$t" "$2" "$LAT_MESSAGES" 4 "$LAT_RATE" "$3" "$SENT_LOG"
	line=$LINE
	got=$(python3 "$LAT" report "$SENT_LOG" "$LAT_LOG" "$3" "$STALL")
	set -- $got
	if [ "$4" -gt "$(field "$line" eicar_accepted)" ]; then
		log "$t ($3): $4 latency messages did not arrive"
		STATUS=1
	fi
	RES="$1 $2"
}

# ---------------------------------------------------------------- runs

declare -A RATE CPU PSS P50 P99 LP50 LP99
phase_targets() {	# phase: the targets it measures
	local t out=""
	for t in $TARGETS; do
		[ "$1" = spam ] && [ "$t" = sink ] && continue
		out="$out $t"
	done
	echo $out
}
count_of() {	# phase target
	case $1.$2 in
	virus.amavis) echo "$AMAVIS_MESSAGES" ;;
	spam.*) echo "$SPAM_MESSAGES" ;;	# spamd sets both paces
	*) echo "$SHD_MESSAGES" ;;
	esac
}

for ph in $PHASES; do
	want smarthostd && [ "$ph" = spam ] && spamd_start
	want smarthostd && shd_phase_start "$ph"
	want amavis && amavis_start "$ph"
	tgts=$(phase_targets "$ph")
	for k in $KINDS; do
		for t in $tgts; do
			k2=$ph.$k.$t
			RATE[$k2]="" CPU[$k2]="" PSS[$k2]="" P50[$k2]=""
			P99[$k2]="" LP50[$k2]="" LP99[$k2]=""
		done
	done
	if [ "$WARMUP" -gt 0 ]; then
		log "$ph: warm-up, $WARMUP messages to each target"
		for t in $tgts; do
			load_run "$t" text "$WARMUP" "w-$ph-$t"
			[ "$RES" != fail ] || exit 1
		done
	fi
	for r in $(seq "$RUNS"); do
		for k in $KINDS; do
			for t in $tgts; do
				k2=$ph.$k.$t
				n=$(count_of "$ph" "$t")
				load_run "$t" "$k" "$n" "r$r-$ph-$k-$t"
				[ "$RES" = fail ] && continue
				set -- $RES
				RATE[$k2]="${RATE[$k2]} $1"
				CPU[$k2]="${CPU[$k2]} $2"
				PSS[$k2]="${PSS[$k2]} $3"
				P50[$k2]="${P50[$k2]} $4"
				P99[$k2]="${P99[$k2]} $5"
				log "run $r/$RUNS $ph $k $t: $n msgs, $1 msgs/s" \
				    "end-to-end, $2 CPU s/1000, PSS" \
				    "$(($3 / 1024)) MiB, DATA->reply p50 $4" \
				    "ms p99 $5 ms"
			done
			[ "$LAT_MESSAGES" -gt 0 ] || continue
			for t in $tgts; do
				[ "$t" = sink ] && continue
				k2=$ph.$k.$t
				latency_run "$t" "$k" "r$r-$ph-$k-$t-l"
				set -- $RES
				LP50[$k2]="${LP50[$k2]} $1"
				LP99[$k2]="${LP99[$k2]} $2"
				log "run $r/$RUNS $ph $k $t at $LAT_RATE msgs/s:" \
				    "end of DATA -> arrival p50 $1 ms, p99 $2 ms"
				queue_settle "$t" || STATUS=1
			done
		done
	done
	want amavis && amavis_stop
	if want smarthostd; then
		shd_phase_stop
		[ -n "$SPAMD_PID" ] && { stop_pid "$SPAMD_PID"; SPAMD_PID=""; }
	fi
done

# ---------------------------------------------------------------- report

label() {	# phase target
	case $1.$2 in
	*.sink) echo "smtp-sink (no scan: ceiling)" ;;
	virus.smarthostd) echo "smarthostd + libclamav" ;;
	spam.smarthostd) echo "smarthostd + libclamav + spamd" ;;
	virus.amavis) echo "Postfix + amavisd-new + clamd" ;;
	spam.amavis) echo "Postfix + amavisd-new + clamd + SA" ;;
	esac
}
maxof() { echo "$@" | tr ' ' '\n' | grep . | sort -g | tail -1; }

echo
echo "scan.sh: $(nproc) cores, $(uname -r); Postfix" \
    "$(postconf -d -h mail_version 2>/dev/null), amavisd-new" \
    "$(dpkg-query -W -f='${Version}' amavisd-new 2>/dev/null)," \
    "ClamAV $(clamd -V 2>/dev/null | sed 's|^ClamAV \([^/]*\).*|\1|')," \
    "SpamAssassin $(dpkg-query -W -f='${Version}' spamassassin 2>/dev/null)"
echo "signatures: $DB_KIND"
echo "scan-load.py: $SESSIONS sessions, 1 message per connection, 1%" \
    "EICAR; median of $RUNS; amavisd $AMAVIS_SERVERS children," \
    "spamd $SPAMD_CHILDREN"
echo "msgs/s: end-to-end (to the last arrival at smtp-sink); CPU and" \
    "PSS: every process of the stack (PSS: the largest sum after a run);"
echo "DATA->reply: the client's end of DATA to the 250/554 (Postfix" \
    "answers before amavisd scans); e2e: end of DATA -> arrival at" \
    "$LAT_RATE msgs/s"
for ph in $PHASES; do
	for k in $KINDS; do
		echo
		printf '%-6s %-6s %-36s %9s %9s %8s %16s %16s\n' "$ph" "$k" \
		    target "msgs/s" "CPU s/1k" "PSS MiB" "DATA->reply ms" \
		    "e2e p50/p99 ms"
		for t in $(phase_targets "$ph"); do
			k2=$ph.$k.$t
			pss=$(maxof ${PSS[$k2]})
			lat="-"
			[ -n "${LP50[$k2]}" ] &&
			    lat="$(median ${LP50[$k2]}) / $(median ${LP99[$k2]})"
			printf '%-6s %-6s %-36s %9s %9s %8s %16s %16s\n' "" "" \
			    "$(label "$ph" "$t")" "$(median ${RATE[$k2]})" \
			    "$(median ${CPU[$k2]})" \
			    "$(awk -v k="${pss:-0}" 'BEGIN { printf "%.1f", k / 1024 }')" \
			    "$(median ${P50[$k2]}) / $(median ${P99[$k2]})" "$lat"
		done
		if want smarthostd && want amavis; then
			a=$ph.$k.smarthostd b=$ph.$k.amavis
			printf '%-6s %-6s %-36s %9s %9s %8s %16s %16s\n' "" "" \
			    "smarthostd/amavis" \
			    "$(ratio "$(median ${RATE[$a]})" "$(median ${RATE[$b]})")" \
			    "$(ratio "$(median ${CPU[$a]})" "$(median ${CPU[$b]})")" \
			    "$(ratio "$(maxof ${PSS[$a]})" "$(maxof ${PSS[$b]})")" \
			    "" "$(ratio "$(median ${LP99[$a]})" "$(median ${LP99[$b]})")"
		fi
		for t in $(phase_targets "$ph"); do
			echo "       $t runs (msgs/s):$(echo " ${RATE[$ph.$k.$t]}" |
			    tr -s ' ')"
		done
	done
done
echo
if want amavis; then
	echo "amavisd-new: $(grep -c 'Blocked INFECTED' "$AMAVIS/amavis.log" \
	    2>/dev/null) messages blocked INFECTED," \
	    "$(grep -c 'Passed CLEAN' "$AMAVIS/amavis.log" 2>/dev/null)" \
	    "passed CLEAN"
fi
if [ "$STATUS" = 0 ]; then
	echo "checks: every clean message arrived, every EICAR was refused" \
	    "(smarthostd) or discarded (amavisd): ok"
else
	echo "checks: FAILED (see the log lines above)"
fi
exit $STATUS
