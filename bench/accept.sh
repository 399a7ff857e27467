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

BENCH=accept.sh
. "$(dirname "$0")/common.sh"

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

install_packages
[ -x "$SMTP_SOURCE" ] || die "$SMTP_SOURCE missing"

build_smarthostd

# ---------------------------------------------------------------- scratch

scratch_dir smarthostd-bench

machine_ticks() {	# busy ticks of the whole machine (user..steal)
	awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat
}

# ---------------------------------------------------------------- disk

log "probing fdatasync in $WORK"
FSYNC=$(python3 "$REPO/bench/fsync-probe.py" "$WORK" 2)
FSYNC_APPEND=$(echo "$FSYNC" | awk '$1 == "append" { print $2 }')
FSYNC_OVERWRITE=$(echo "$FSYNC" | awk '$1 == "overwrite" { print $2 }')

# ---------------------------------------------------------------- sink

SINK_PORT=""
if want sink; then
	plain_sink_start
fi

# ---------------------------------------------------------------- postfix

PF_PORT=""
if want postfix; then
	postfix_config $((SESSIONS + 50)) <<EOF
# Accept, fsync (the default), and deliver nothing during the run.
defer_transports = smtp, relay, local, virtual, lmtp
relayhost = [127.0.0.1]:2
EOF
	if [ "$PF_HOLD" = 1 ]; then
		# Straight into the hold queue: the queue manager never
		# sees the mail, so nothing but the accept path runs.
		echo "smtpd_data_restrictions = check_client_access static:HOLD" \
		    >>"$PF_CONF/main.cf"
	fi
	postfix_start
fi

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
	shd_setup
	shd_config() {	# $1: extra statements
		shd_config_head "accept everything from loopback," \
		    "relay to a closed port."
		cat <<EOF
$1
listen on 127.0.0.1 port $SHD_PORT

action "bench" relay host "smtp://127.0.0.1:2"
match from any for any action "bench"
EOF
	}
	# Raise the per-client session limit when this version has one.
	LIMITS="smtp {
	max-sessions $nsess
	max-sessions-per-client $nsess
}"
	shd_config "$LIMITS" >"$SHD/smarthostd.conf"
	if ! shd_check; then
		LIMITS="smtp { max-sessions-per-client $nsess }"
		shd_config "$LIMITS" >"$SHD/smarthostd.conf"
		if ! shd_check; then
			LIMITS=""
			shd_config "" >"$SHD/smarthostd.conf"
			shd_check_or_die
			log "warning: no smtp { } limits in this version;" \
			    "default per-client session limit applies"
		fi
	fi
	shd_start
fi

SHD_STATS=""

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
