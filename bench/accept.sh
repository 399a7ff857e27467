#!/bin/bash
# bench/accept.sh -- durable accept rate of smarthostd against Postfix,
# measured in one run on this machine (issue 3, design.md section 11).
#
# Postfix's smtp-source opens SESSIONS concurrent sessions and sends
# MESSAGES messages of SIZE bytes, one recipient each, one message per
# connection, to each target in turn:
#
#   sink        Postfix's smtp-sink: no disk, no queue (the ceiling)
#   postfix     a private Postfix instance (its own config and queue
#               directories under the scratch directory) that relays
#               everything from loopback, fsyncs each queue file before
#               its 250 (the default), and delivers nothing during the
#               run (every message is put on hold; PF_HOLD=0: deferred)
#   smarthostd  ./smarthostd/smarthostd -d with a scratch config that
#               relays everything to a closed loopback port
#
# It repeats this RUNS times (interleaved, so drift hits every target
# alike), prints the median accepted messages/s of each, the ratio
# smarthostd/Postfix, the servers' CPU seconds per 1000 messages (from
# /proc/PID/stat of their process trees), and this disk's fdatasync rate
# measured in the same scratch directory.  It checks that smarthostd and
# Postfix each queued exactly what smtp-source sent.
#
# It reports and never fails on speed; it fails (exit 1) only when a
# target refuses mail, loses messages, or does not start.  Everything
# binds 127.0.0.1 only, counts and times are bounded, and everything it
# started is stopped on exit.  Run as root (it installs Debian packages
# by name when missing, and smarthostd drops privileges).
#
# Knobs (environment): SESSIONS=32 MESSAGES=10000 RUNS=3 SIZE=10240
#   WARMUP=200 TARGETS="sink postfix smarthostd" PORT=12525 (first port
#   tried) BENCH_TMPDIR=/var/tmp KEEP=1 (keep the scratch directory)
#   REUSE=1 (smtp-source -d: several messages per connection)
#   PF_IN_FLOW_DELAY=0s PF_HOLD=1 (see below)

set -eu
export LC_ALL=C

REPO=$(cd "$(dirname "$0")/.." && pwd)
SESSIONS=${SESSIONS:-32}
MESSAGES=${MESSAGES:-10000}
RUNS=${RUNS:-3}
SIZE=${SIZE:-10240}
WARMUP=${WARMUP:-200}
TARGETS=${TARGETS:-sink postfix smarthostd}
PORT=${PORT:-12525}
BENCH_TMPDIR=${BENCH_TMPDIR:-/var/tmp}
KEEP=${KEEP:-0}
REUSE=${REUSE:-0}
# Postfix's in_flow_delay (default 1s) makes cleanup wait for a token
# from the queue manager when arrivals outrun deliveries; with delivery
# deferred on purpose that would measure the throttle, not the accept
# path, so the default here is 0s (Postfix's best case).  Set
# PF_IN_FLOW_DELAY=1s to measure stock behaviour.
PF_IN_FLOW_DELAY=${PF_IN_FLOW_DELAY:-0s}
# PF_HOLD=1 (the default): Postfix puts every accepted message on hold,
# so its queue manager does no work during the run (smarthostd does no
# delivery work either); PF_HOLD=0 defers it instead (defer_transports),
# which costs Postfix ~20% of its accept rate here.
PF_HOLD=${PF_HOLD:-1}
RUN_TIMEOUT=${RUN_TIMEOUT:-600}		# seconds, per smtp-source run

SMTP_SOURCE=/usr/sbin/smtp-source
SMTP_SINK=/usr/sbin/smtp-sink
SMARTHOSTD=$REPO/smarthostd/smarthostd
SMARTHOSTCTL=$REPO/smarthostctl/smarthostctl
CLK_TCK=$(getconf CLK_TCK)

log() { printf 'accept.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

want() {
	case " $TARGETS " in *" $1 "*) return 0 ;; esac
	return 1
}

[ "$(id -u)" = 0 ] || die "run as root (package installs, privsep users)"
case $MESSAGES$SESSIONS$RUNS$SIZE$WARMUP in
*[!0-9]*) die "SESSIONS, MESSAGES, RUNS, SIZE, WARMUP must be numbers" ;;
esac
[ "$MESSAGES" -ge 1 ] && [ "$MESSAGES" -le 100000 ] ||
    die "MESSAGES must be 1..100000"
[ "$SESSIONS" -ge 1 ] && [ "$SESSIONS" -le 1000 ] ||
    die "SESSIONS must be 1..1000"
[ "$RUNS" -ge 1 ] && [ "$RUNS" -le 10 ] || die "RUNS must be 1..10"

# ---------------------------------------------------------------- packages

pkg_missing() {
	local p missing=""
	for p in "$@"; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null |
		    grep -q 'install ok installed' || missing="$missing $p"
	done
	echo "$missing"
}

postfix_was_running=0
if pgrep -x master >/dev/null 2>&1; then postfix_was_running=1; fi

missing=$(pkg_missing postfix python3 procps iproute2 coreutils)
if [ -n "$missing" ]; then
	log "installing$missing"
	# Postfix must not configure itself as the system MTA.
	echo "postfix postfix/main_mailer_type select No configuration" |
	    debconf-set-selections
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing \
	    >/dev/null
	# The package may have started the system instance: stop it and
	# keep it from starting again (it would hold port 25).
	if [ "$postfix_was_running" = 0 ]; then
		if command -v systemctl >/dev/null &&
		    systemctl is-system-running >/dev/null 2>&1; then
			systemctl disable --now postfix >/dev/null 2>&1 || :
		else
			update-rc.d postfix disable >/dev/null 2>&1 || :
		fi
		if [ -s /var/spool/postfix/pid/master.pid ]; then
			postfix stop >/dev/null 2>&1 || :
		fi
	fi
fi
[ -x "$SMTP_SOURCE" ] || die "$SMTP_SOURCE missing"

if want smarthostd; then
	log "building smarthostd"
	make -s -C "$REPO" deps users >/dev/null
	make -s -C "$REPO" all >/dev/null || die "make all failed"
fi

# ---------------------------------------------------------------- scratch

WORK=$(mktemp -d "$BENCH_TMPDIR/smarthostd-bench.XXXXXX")
chmod 755 "$WORK"
PIDS_TO_STOP=""
PF_CONF=""
SHD_PID=""

# The CPU ever used by a process tree: every live member's own times
# plus what it collected from reaped children (fields 14-17 of stat).
tree_pids() {
	local root=$1 pids=$1 frontier=$1 next p
	while [ -n "$frontier" ]; do
		next=""
		for p in $frontier; do
			next="$next $(pgrep -P "$p" 2>/dev/null | tr '\n' ' ')"
		done
		frontier=$(echo $next)
		pids="$pids $frontier"
	done
	echo $pids
}
tree_ticks() {
	local total=0 p t
	for p in $(tree_pids "$1"); do
		t=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null |
		    awk '{ print $12 + $13 + $14 + $15 }') || t=0
		total=$((total + ${t:-0}))
	done
	echo $total
}

machine_ticks() {	# busy ticks of the whole machine (user..steal)
	awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat
}

stop_pid() {	# pid: TERM, wait up to 15 s, then KILL
	local pid=$1 i
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || :
	for i in $(seq 150); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || :
}

cleanup() {
	local rc=$? p kids=""
	set +e
	if [ -n "$SHD_PID" ]; then
		kids=$(tree_pids "$SHD_PID")
		stop_pid "$SHD_PID"
		wait "$SHD_PID" 2>/dev/null
		for p in $kids; do kill -KILL "$p" 2>/dev/null; done
	fi
	if [ -n "$PF_CONF" ]; then
		postfix -c "$PF_CONF" stop >/dev/null 2>&1
		p=$(cat "$WORK/postfix/queue/pid/master.pid" 2>/dev/null)
		p=$(echo $p)
		for i in $(seq 100); do
			[ -n "$p" ] && kill -0 "$p" 2>/dev/null || break
			sleep 0.1
		done
		[ -n "$p" ] && kill -0 "$p" 2>/dev/null &&
		    postfix -c "$PF_CONF" abort >/dev/null 2>&1
	fi
	for p in $PIDS_TO_STOP; do stop_pid "$p"; done
	if [ "$KEEP" = 1 ] || [ $rc != 0 ]; then
		log "scratch directory kept: $WORK"
	else
		rm -rf "$WORK"
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_free() { ! ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }
next_port() {
	while ! port_free "$PORT"; do PORT=$((PORT + 1)); done
	echo "$PORT"
	PORT=$((PORT + 1))
}

wait_port() {	# port seconds
	local i
	for i in $(seq $(($2 * 10))); do
		port_free "$1" || return 0
		sleep 0.1
	done
	return 1
}

# ---------------------------------------------------------------- disk

log "probing fdatasync in $WORK"
FSYNC=$(python3 "$REPO/bench/fsync-probe.py" "$WORK" 2)
FSYNC_APPEND=$(echo "$FSYNC" | awk '$1 == "append" { print $2 }')
FSYNC_OVERWRITE=$(echo "$FSYNC" | awk '$1 == "overwrite" { print $2 }')

# ---------------------------------------------------------------- sink

SINK_PORT=""
if want sink; then
	SINK_PORT=$(next_port)
	# -u: smtp-sink refuses to run as root; 5000 is its listen backlog.
	"$SMTP_SINK" -u nobody 127.0.0.1:"$SINK_PORT" 5000 \
	    >"$WORK/sink.log" 2>&1 &
	SINK_PID=$!
	PIDS_TO_STOP="$PIDS_TO_STOP $SINK_PID"
	wait_port "$SINK_PORT" 10 || die "smtp-sink did not listen"
fi

# ---------------------------------------------------------------- postfix

PF_PORT=""
if want postfix; then
	PF_PORT=$(next_port)
	PF=$WORK/postfix
	PF_CONF=$PF/etc
	mkdir -p "$PF_CONF" "$PF/queue" "$PF/data"
	chown postfix "$PF/data"
	cat >"$PF_CONF/main.cf" <<EOF
# A private, loopback-only Postfix for bench/accept.sh.
compatibility_level = 3.6
queue_directory = $PF/queue
data_directory = $PF/data
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix-bench.example
mydomain = example
myorigin = \$myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relay_domains =
smtpd_relay_restrictions = permit_mynetworks, reject
alias_maps =
alias_database =
local_recipient_maps =
# Accept, fsync (the default), and deliver nothing during the run.
defer_transports = smtp, relay, local, virtual, lmtp
relayhost = [127.0.0.1]:2
disable_dns_lookups = yes
smtp_dns_support_level = disabled
smtpd_peername_lookup = no
in_flow_delay = $PF_IN_FLOW_DELAY
default_process_limit = $((SESSIONS + 50))
smtpd_client_connection_count_limit = 0
maillog_file = $PF/maillog
EOF
	if [ "$PF_HOLD" = 1 ]; then
		# Straight into the hold queue: the queue manager never
		# sees the mail, so nothing but the accept path runs.
		echo "smtpd_data_restrictions = check_client_access static:HOLD" \
		    >>"$PF_CONF/main.cf"
	fi
	# Every service the accepting path and the queue manager need,
	# nothing chrooted (the queue directory is not a prepared chroot).
	cat >"$PF_CONF/master.cf" <<EOF
127.0.0.1:$PF_PORT inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
proxywrite unix - - n - 1 proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
local     unix  - n n - - local
virtual   unix  - n n - - virtual
lmtp      unix  - - n - - lmtp
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
EOF
	log "starting Postfix on 127.0.0.1:$PF_PORT"
	postfix -c "$PF_CONF" start >"$PF/start.log" 2>&1 ||
	    { cat "$PF/start.log" >&2; die "postfix start failed"; }
	wait_port "$PF_PORT" 15 || die "Postfix did not listen"
	PF_PID=""
	for i in $(seq 50); do
		PF_PID=$(echo $(cat "$PF/queue/pid/master.pid" 2>/dev/null))
		[ -n "$PF_PID" ] && break
		sleep 0.1
	done
	[ -n "$PF_PID" ] || die "no Postfix master pid"
fi

postfix_queued() {	# messages in the private Postfix's queue
	find "$PF/queue/incoming" "$PF/queue/active" "$PF/queue/deferred" \
	    "$PF/queue/hold" "$PF/queue/maildrop" -type f 2>/dev/null | wc -l
}
postfix_settle() {	# wait (bounded) until qmgr has moved everything
	local i n
	for i in $(seq 600); do
		n=$(find "$PF/queue/incoming" "$PF/queue/active" -type f \
		    2>/dev/null | wc -l)
		[ "$n" = 0 ] && return 0
		sleep 0.1
	done
}

# ---------------------------------------------------------------- smarthostd

SHD_PORT=""
SHD_SOCK=""
if want smarthostd; then
	SHD_PORT=$(next_port)
	SHD=$WORK/smarthostd
	mkdir -p "$SHD"
	chmod 755 "$SHD"
	SHD_SOCK=$SHD/smarthostd.sock
	shd_config() {	# $1: extra statements
		cat <<EOF
# bench/accept.sh: accept everything from loopback, relay to a closed port.
hostname "smarthostd-bench.example"
state "$SHD/state"
control socket "$SHD_SOCK"
pidfile "$SHD/smarthostd.pid"
resolver 127.0.0.1 port 1
$1
listen on 127.0.0.1 port $SHD_PORT

action "bench" relay host "smtp://127.0.0.1:2"
match from any for any action "bench"
EOF
	}
	# Every bench session comes from 127.0.0.1: raise the per-client
	# session limit when this version has one.
	# smtp-source may briefly hold more connections than -s while
	# closing: leave room, and never lower the global default (1000).
	nsess=$((SESSIONS * 2 + 100))
	[ "$nsess" -ge 1000 ] || nsess=1000
	LIMITS="smtp {
	max-sessions $nsess
	max-sessions-per-client $nsess
}"
	shd_config "$LIMITS" >"$SHD/smarthostd.conf"
	if ! "$SMARTHOSTD" -n -f "$SHD/smarthostd.conf" >"$SHD/check.log" 2>&1
	then
		LIMITS="smtp { max-sessions-per-client $nsess }"
		shd_config "$LIMITS" >"$SHD/smarthostd.conf"
		if ! "$SMARTHOSTD" -n -f "$SHD/smarthostd.conf" \
		    >"$SHD/check.log" 2>&1; then
			LIMITS=""
			shd_config "" >"$SHD/smarthostd.conf"
			"$SMARTHOSTD" -n -f "$SHD/smarthostd.conf" \
			    >"$SHD/check.log" 2>&1 ||
			    { cat "$SHD/check.log" >&2
			      die "smarthostd rejects the bench config"; }
			log "warning: no smtp { } limits in this version;" \
			    "default per-client session limit applies"
		fi
	fi
	log "starting smarthostd on 127.0.0.1:$SHD_PORT"
	"$SMARTHOSTD" -d -f "$SHD/smarthostd.conf" >"$SHD/log" 2>&1 &
	SHD_PID=$!
	wait_port "$SHD_PORT" 15 ||
	    { tail -20 "$SHD/log" >&2; die "smarthostd did not listen"; }
fi

SHD_STATS=""
smarthostd_stats() {	# flat JSON counters of smarthostctl -j show stats
	timeout 30 "$SMARTHOSTCTL" -s "$SHD_SOCK" -j show stats 2>/dev/null
}
stat_of() {	# json-text counter-name: the counter's value, or "?"
	echo "$1" | python3 -c '
import json, sys
try:
    v = json.load(sys.stdin).get(sys.argv[1])
except ValueError:
    v = None
print(v if isinstance(v, int) else "?")' "$2"
}

# ---------------------------------------------------------------- runs

target_port() {
	case $1 in
	sink) echo "$SINK_PORT" ;;
	postfix) echo "$PF_PORT" ;;
	smarthostd) echo "$SHD_PORT" ;;
	esac
}
target_pid() {
	case $1 in
	sink) echo "$SINK_PID" ;;
	postfix) echo "$PF_PID" ;;
	smarthostd) echo "$SHD_PID" ;;
	esac
}

SRC_FLAGS=""
[ "$REUSE" = 1 ] && SRC_FLAGS="-d"

source_run() {	# target count run-label: prints "seconds cpu-ticks"
	local t=$1 n=$2 port pid c0 c1 t0 t1 rc
	port=$(target_port "$t")
	pid=$(target_pid "$t")
	c0=$(tree_ticks "$pid")
	m0=$(machine_ticks)
	t0=$(date +%s.%N)
	rc=0
	timeout "$RUN_TIMEOUT" "$SMTP_SOURCE" $SRC_FLAGS -s "$SESSIONS" \
	    -m "$n" -l "$SIZE" -M bench-client.example \
	    -f sender@src.example -t rcpt@dst.example \
	    127.0.0.1:"$port" >"$WORK/source.$t.$3.log" 2>&1 || rc=$?
	t1=$(date +%s.%N)
	c1=$(tree_ticks "$pid")
	m1=$(machine_ticks)
	if [ $rc != 0 ]; then
		log "smtp-source against $t failed (exit $rc):"
		head -5 "$WORK/source.$t.$3.log" >&2
		exit 1
	fi
	echo "$t0 $t1 $((c1 - c0)) $((m1 - m0))" |
	    awk '{ printf "%.3f %d %d\n", $2 - $1, $3, $4 }'
}

declare -A SENT RATES CPUS
for t in $TARGETS; do SENT[$t]=0; RATES[$t]=""; CPUS[$t]=""; done

log "warm-up: $WARMUP messages to each target"
for t in $TARGETS; do
	if [ "$WARMUP" -gt 0 ]; then
		source_run "$t" "$WARMUP" warmup >/dev/null
		SENT[$t]=$((${SENT[$t]} + WARMUP))
	fi
	[ "$t" = postfix ] && postfix_settle
done

for r in $(seq "$RUNS"); do
	for t in $TARGETS; do
		res=$(source_run "$t" "$MESSAGES" "$r")
		set -- $res
		secs=$1 ticks=$2 mticks=$3
		SENT[$t]=$((${SENT[$t]} + MESSAGES))
		rate=$(awk -v n="$MESSAGES" -v s="$secs" \
		    'BEGIN { printf "%.0f", n / s }')
		cpu=$(awk -v c="$ticks" -v hz="$CLK_TCK" -v n="$MESSAGES" \
		    'BEGIN { printf "%.2f", c / hz / n * 1000 }')
		RATES[$t]="${RATES[$t]} $rate"
		CPUS[$t]="${CPUS[$t]} $cpu"
		log "run $r/$RUNS $t: $MESSAGES msgs in ${secs}s = $rate msgs/s," \
		    "$cpu CPU s/1000 msgs ($(awk -v c="$mticks" -v hz="$CLK_TCK" \
		    -v n="$MESSAGES" 'BEGIN { printf "%.2f", c / hz / n * 1000 }')" \
		    "machine-wide, smtp-source included)"
		# Let Postfix's queue manager finish filing the backlog so
		# that it does not eat the next target's CPU.
		[ "$t" = postfix ] && postfix_settle
	done
done

median() { echo "$@" | tr ' ' '\n' | grep . | sort -g |
    awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2];
    else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# ---------------------------------------------------------------- checks

status=0
checks=""
if want postfix; then
	sleep 1
	n=$(postfix_queued)
	if [ "$n" = "${SENT[postfix]}" ]; then
		checks="${checks}postfix: $n queued of ${SENT[postfix]} sent: ok\n"
	else
		checks="${checks}postfix: $n queued of ${SENT[postfix]} sent: MISMATCH\n"
		status=1
	fi
fi
if want smarthostd; then
	# Each 250 followed a commit: the counters are final once
	# smtp-source has exited.
	SHD_STATS=$(smarthostd_stats) || SHD_STATS="{}"
	acc=$(stat_of "$SHD_STATS" smtp.messages.accepted)
	stored=$(stat_of "$SHD_STATS" queue.messages)
	want_n=${SENT[smarthostd]}
	if [ "$acc" = "$want_n" ] && [ "$stored" = "$want_n" ]; then
		checks="${checks}smarthostd: $acc accepted and $stored in the queue of $want_n sent: ok\n"
	else
		checks="${checks}smarthostd: $acc accepted and $stored in the queue of $want_n sent: MISMATCH\n"
		status=1
	fi
fi

# ---------------------------------------------------------------- report

label() {
	case $1 in
	sink) echo "smtp-sink (no disk: ceiling)" ;;
	postfix) echo "Postfix $(postconf -d -h mail_version 2>/dev/null)" ;;
	smarthostd) echo "smarthostd" ;;
	esac
}

echo
echo "accept.sh: $(nproc) cores, $(uname -r), scratch on" \
    "$(df -PT "$WORK" | awk 'NR == 2 { print $2 " " $1 }')"
echo "smtp-source -s $SESSIONS -m $MESSAGES -l $SIZE" \
    "${SRC_FLAGS:+$SRC_FLAGS }(1 rcpt/msg), median of $RUNS, $WARMUP warm-up"
echo
printf '%-30s %10s %14s  %s\n' target "msgs/s" "CPU s/1000" "runs (msgs/s)"
for t in $TARGETS; do
	printf '%-30s %10s %14s  %s\n' "$(label "$t")" \
	    "$(median ${RATES[$t]})" "$(median ${CPUS[$t]})" \
	    "$(echo ${RATES[$t]})"
done
echo
if want postfix && want smarthostd; then
	awk -v a="$(median ${RATES[smarthostd]})" \
	    -v b="$(median ${RATES[postfix]})" \
	    -v ca="$(median ${CPUS[smarthostd]})" \
	    -v cb="$(median ${CPUS[postfix]})" 'BEGIN {
		printf "ratio smarthostd/Postfix: %.2fx msgs/s", a / b
		if (cb > 0) printf ", %.2fx CPU per message", ca / cb
		printf "\n" }'
fi
echo "disk fdatasync (10 KB writes, same directory): $FSYNC_APPEND/s" \
    "appending, $FSYNC_OVERWRITE/s overwriting"
if want smarthostd; then
	commits=$(stat_of "$SHD_STATS" queue.commits)
	batch=$(stat_of "$SHD_STATS" queue.commit_batch_max)
	qacc=$(stat_of "$SHD_STATS" queue.accepted)
	echo "smarthostd group commit: $qacc messages in $commits" \
	    "commits, largest batch $batch"
fi
printf "$checks"
exit $status
