#!/bin/bash
# bench/relay.sh -- end-to-end relay throughput, CPU and latency of
# smarthostd against Postfix, measured in one run on this machine
# (issue 4, design.md section 11).
#
# Two relays, each in front of its own Postfix smtp-sink (no disk, the
# next hop), everything on 127.0.0.1:
#
#   smarthostd  ./smarthostd/smarthostd -d with a scratch config:
#               action "out" relay host "smtp://127.0.0.1:SINK",
#               match from any for any action "out"
#   postfix     a private Postfix instance (its own config and queue
#               directories under the scratch directory) with
#               relayhost = [127.0.0.1]:SINK, delivering as usual
#
# Both fsync each message before their 250 and remove it after the
# sink's 250.  For each message size (10 KB and 100 KB) and each run
# (interleaved, so drift hits both alike):
#
#   throughput  smtp-source sends MESSAGES messages, one recipient each,
#               over SESSIONS concurrent sessions (one message per
#               connection) to the relay; the end-to-end rate is MESSAGES
#               divided by the time from smtp-source's start to the
#               arrival of the last message at the sink (smtp-sink -c's
#               message counter, read as it changes).  CPU: all the
#               relay's processes (/proc/PID/stat of its process tree,
#               reaped children included), from the start until its
#               queue is empty again.
#   latency     bench/relay-lat.py sends LAT_MESSAGES messages at a fixed
#               LAT_RATE messages/s over LAT_SESSIONS sessions, each with
#               an X-Bench-Id and X-Sent header, to a recipient that both
#               relays route to a small Python sink on another port,
#               which records each message's arrival; latency is the
#               time from the client's end of DATA to the arrival at the
#               sink (p50, p99).
#
# It prints medians of RUNS runs side by side, with smarthostd/Postfix
# ratios.  It checks that every message sent arrived at a sink (at least
# once: duplicates are reported) and that both queues are empty at the
# end; it exits 1 only on such a correctness problem or when a relay
# refuses mail or does not start, never on speed.  Everything binds
# 127.0.0.1, every wait is bounded, and everything it started is stopped
# on exit.  Run as root (it installs Debian packages by name when
# missing, and smarthostd drops privileges).
#
# Knobs (environment): SESSIONS=32 MESSAGES=10000 RUNS=3
#   SIZES="10240 102400" WARMUP=200 TARGETS="smarthostd postfix"
#   PER_DEST=20 (concurrent deliveries to the sink, both relays;
#   Postfix's default) MAX_DELIVERIES=100 (smarthostd's global limit)
#   LAT_MESSAGES=2000 LAT_RATE=100 LAT_SESSIONS=4 (LAT_MESSAGES=0: no
#   latency) REUSE=1 (smtp-source -d: several messages per connection)
#   PF_IN_FLOW_DELAY=1s (Postfix's default) PORT=13525 (first port tried)
#   BENCH_TMPDIR=/var/tmp KEEP=1 (keep the scratch directory)
#   STALL=60 (seconds without an arrival before a run gives up)

set -eu
export LC_ALL=C

REPO=$(cd "$(dirname "$0")/.." && pwd)
SESSIONS=${SESSIONS:-32}
MESSAGES=${MESSAGES:-10000}
RUNS=${RUNS:-3}
SIZES=${SIZES:-10240 102400}
WARMUP=${WARMUP:-200}
TARGETS=${TARGETS:-smarthostd postfix}
PER_DEST=${PER_DEST:-20}
MAX_DELIVERIES=${MAX_DELIVERIES:-100}
LAT_MESSAGES=${LAT_MESSAGES:-2000}
LAT_RATE=${LAT_RATE:-100}
LAT_SESSIONS=${LAT_SESSIONS:-4}
REUSE=${REUSE:-0}
PF_IN_FLOW_DELAY=${PF_IN_FLOW_DELAY:-1s}
PORT=${PORT:-13525}
BENCH_TMPDIR=${BENCH_TMPDIR:-/var/tmp}
KEEP=${KEEP:-0}
STALL=${STALL:-60}
RUN_TIMEOUT=${RUN_TIMEOUT:-900}		# seconds, per smtp-source run

BENCH=relay.sh
. "$(dirname "$0")/common.sh"
LAT=$REPO/bench/relay-lat.py

[ "$(id -u)" = 0 ] || die "run as root (package installs, privsep users)"
case $MESSAGES$SESSIONS$RUNS$WARMUP$PER_DEST$MAX_DELIVERIES$LAT_MESSAGES$LAT_SESSIONS$STALL in
*[!0-9]*) die "SESSIONS, MESSAGES, RUNS, WARMUP, PER_DEST," \
    "MAX_DELIVERIES, LAT_MESSAGES, LAT_SESSIONS, STALL must be numbers" ;;
esac
for s in $SIZES; do
	case $s in *[!0-9]*|'') die "SIZES must be numbers" ;; esac
	[ "$s" -ge 1 ] && [ "$s" -le 10485760 ] || die "SIZES: 1..10485760"
done
case $LAT_RATE in *[!0-9.]*|'') die "LAT_RATE must be a number" ;; esac
[ "$MESSAGES" -ge 1 ] && [ "$MESSAGES" -le 100000 ] ||
    die "MESSAGES must be 1..100000"
[ "$SESSIONS" -ge 1 ] && [ "$SESSIONS" -le 1000 ] ||
    die "SESSIONS must be 1..1000"
[ "$RUNS" -ge 1 ] && [ "$RUNS" -le 10 ] || die "RUNS must be 1..10"
[ "$LAT_MESSAGES" -le 100000 ] || die "LAT_MESSAGES must be 0..100000"
[ "$LAT_SESSIONS" -ge 1 ] && [ "$LAT_SESSIONS" -le 100 ] ||
    die "LAT_SESSIONS must be 1..100"
[ "$PER_DEST" -ge 1 ] && [ "$PER_DEST" -le "$MAX_DELIVERIES" ] ||
    die "PER_DEST must be 1..MAX_DELIVERIES"
[ "$STALL" -ge 5 ] && [ "$STALL" -le 3600 ] || die "STALL must be 5..3600"
[ -n "$TARGETS" ] || die "TARGETS is empty"
for t in $TARGETS; do
	case $t in smarthostd|postfix) ;; *) die "unknown target $t" ;; esac
done

# ---------------------------------------------------------------- packages

install_packages
[ -x "$SMTP_SOURCE" ] && [ -x "$SMTP_SINK" ] ||
    die "$SMTP_SOURCE or $SMTP_SINK missing"

build_smarthostd

# ---------------------------------------------------------------- scratch

scratch_dir smarthostd-relay

now_ns() { date +%s%N; }

# ---------------------------------------------------------------- sinks

# One counting smtp-sink per relay, so that each has its own message
# counter and counts file; the latency sink takes the latency recipients
# of both.
declare -A SINK_PORT SINK_COUNTS
for t in $TARGETS; do
	SINK_PORT[$t]=$(next_port)
	SINK_COUNTS[$t]=$WORK/sink.$t.counts
	counting_sink_start "${SINK_PORT[$t]}" "${SINK_COUNTS[$t]}" \
	    "$WORK/sink.$t.err"
done

lat_sink_start
LAT_SENT=$WORK/lat.sent
: >"$LAT_SENT"

# ---------------------------------------------------------------- postfix

PF_PORT=""
if want postfix; then
	postfix_config $((SESSIONS + PER_DEST + 50)) <<EOF
# Everything to this run's smtp-sink; the latency recipients to the
# latency sink.
relayhost = [127.0.0.1]:${SINK_PORT[postfix]}
transport_maps = inline:{lat.example=smtp:[127.0.0.1]:$LAT_PORT}
default_destination_concurrency_limit = $PER_DEST
EOF
	postfix_start
fi

# ---------------------------------------------------------------- smarthostd

SHD_PORT=""
SHD_SOCK=""
if want smarthostd; then
	shd_setup
	{
		shd_config_head "accept everything from loopback," \
		    "relay it to smtp-sink."
		cat <<EOF

smtp {
	max-sessions $nsess
	max-sessions-per-client $nsess
}
queue {
	max-deliveries $MAX_DELIVERIES
	max-per-destination $PER_DEST
}

listen on 127.0.0.1 port $SHD_PORT

action "lat" relay host "smtp://127.0.0.1:$LAT_PORT"
action "out" relay host "smtp://127.0.0.1:${SINK_PORT[smarthostd]}"
match from any for domain "lat.example" action "lat"
match from any for any action "out"
EOF
	} >"$SHD/smarthostd.conf"
	shd_check_or_die
	shd_start
fi

smarthostd_queued() {
	stat_of "$(smarthostd_stats || echo '{}')" queue.messages
}

# ---------------------------------------------------------------- runs

target_port() {
	case $1 in
	postfix) echo "$PF_PORT" ;;
	smarthostd) echo "$SHD_PORT" ;;
	esac
}
target_pid() {
	case $1 in
	postfix) echo "$PF_PID" ;;
	smarthostd) echo "$SHD_PID" ;;
	esac
}
queued() {	# target: for queue_settle (common.sh)
	case $1 in
	postfix) postfix_queued ;;
	smarthostd) smarthostd_queued ;;
	esac
}

SRC_FLAGS=""
[ "$REUSE" = 1 ] && SRC_FLAGS="-d"

declare -A SENT		# messages sent to each target's smtp-sink path
for t in $TARGETS; do SENT[$t]=0; done
STATUS=0

# One throughput run; sets RES to "seconds-end-to-end seconds-accept
# cpu-ticks", or to "fail" when not every message arrived.
RES=""
source_run() {	# target count size label
	local t=$1 n=$2 size=$3 counts=${SINK_COUNTS[$1]} port pid base c0 c1
	local t0 t1 tl rc
	port=$(target_port "$t")
	pid=$(target_pid "$t")
	base=$(sink_count "$counts")
	c0=$(tree_ticks "$pid")
	t0=$(now_ns)
	rc=0
	timeout "$RUN_TIMEOUT" "$SMTP_SOURCE" $SRC_FLAGS -s "$SESSIONS" \
	    -m "$n" -l "$size" -M bench-client.example \
	    -f sender@src.example -t rcpt@dst.example \
	    127.0.0.1:"$port" >"$WORK/source.$t.$4.log" 2>&1 || rc=$?
	t1=$(now_ns)
	SENT[$t]=$((${SENT[$t]} + n))
	if [ $rc != 0 ]; then
		log "smtp-source against $t failed (exit $rc):"
		head -5 "$WORK/source.$t.$4.log" >&2
		exit 1
	fi
	if ! sink_wait "$counts" $((base + n)); then
		log "$t: only $(($(sink_count "$counts") - base)) of $n messages" \
		    "arrived, none for ${STALL}s; $(queued "$t") queued"
		[ "$t" = smarthostd ] && smarthostd_stats | python3 -c '
import json, sys
d = json.load(sys.stdin)
print("relay.sh:   " + ", ".join("%s %s" % (k, d[k]) for k in (
    "relay.running", "relay.connections.active", "relay.delivered",
    "relay.deferred") if k in d))' >&2 || :
		RES=fail
		return 0
	fi
	tl=$(sink_time_of "$counts" $((base + n)))
	queue_settle "$t" || :
	c1=$(tree_ticks "$pid")
	RES=$(awk -v t0="$t0" -v t1="$t1" -v tl="$tl" -v c=$((c1 - c0)) \
	    'BEGIN { printf "%.3f %.3f %d\n", (tl - t0) / 1e9,
	    (t1 - t0) / 1e9, c }')
}

# One latency run; sets RES to "p50_ms p99_ms arrived missing duplicates".
latency_run() {	# target size label
	local t=$1 port rc=0
	port=$(target_port "$t")
	timeout "$RUN_TIMEOUT" python3 "$LAT" send "$port" "$3" \
	    "$LAT_MESSAGES" "$LAT_SESSIONS" "$LAT_RATE" "$2" "$LAT_SENT" \
	    2>"$WORK/lat-send.$3.err" || rc=$?
	if [ $rc != 0 ]; then
		log "latency client against $t failed (exit $rc):"
		head -5 "$WORK/lat-send.$3.err" >&2
		exit 1
	fi
	RES=$(python3 "$LAT" report "$LAT_SENT" "$LAT_LOG" "$3" "$STALL")
}

size_label() {
	awk -v s="$1" 'BEGIN { if (s % 1024 == 0) printf "%dk", s / 1024;
	    else printf "%db", s }'
}

declare -A RATES ACCEPTS CPUS P50 P99
for s in $SIZES; do
	for t in $TARGETS; do
		RATES[$t.$s]=""; ACCEPTS[$t.$s]=""; CPUS[$t.$s]=""
		P50[$t.$s]=""; P99[$t.$s]=""
	done
done

if [ "$WARMUP" -gt 0 ]; then
	log "warm-up: $WARMUP messages through each relay"
	for t in $TARGETS; do
		source_run "$t" "$WARMUP" 10240 warmup
		[ "$RES" != fail ] || STATUS=1
	done
fi

for r in $(seq "$RUNS"); do
	for s in $SIZES; do
		sl=$(size_label "$s")
		for t in $TARGETS; do
			source_run "$t" "$MESSAGES" "$s" "$r.$sl"
			if [ "$RES" = fail ]; then
				STATUS=1
				continue
			fi
			set -- $RES
			rate=$(awk -v n="$MESSAGES" -v s="$1" \
			    'BEGIN { printf "%.0f", n / s }')
			acc=$(awk -v n="$MESSAGES" -v s="$2" \
			    'BEGIN { printf "%.0f", n / s }')
			cpu=$(awk -v c="$3" -v hz="$CLK_TCK" -v n="$MESSAGES" \
			    'BEGIN { printf "%.2f", c / hz / n * 1000 }')
			RATES[$t.$s]="${RATES[$t.$s]} $rate"
			ACCEPTS[$t.$s]="${ACCEPTS[$t.$s]} $acc"
			CPUS[$t.$s]="${CPUS[$t.$s]} $cpu"
			log "run $r/$RUNS $sl $t: $MESSAGES msgs end-to-end in" \
			    "${1}s = $rate msgs/s (accepted at $acc/s)," \
			    "$cpu CPU s/1000 msgs"
		done
		[ "$LAT_MESSAGES" -gt 0 ] || continue
		for t in $TARGETS; do
			latency_run "$t" "$s" "r$r-$sl-$t"
			set -- $RES
			if [ "$4" != 0 ]; then
				log "$t: latency run lost $4 of $LAT_MESSAGES" \
				    "messages"
				STATUS=1
			fi
			[ "$5" = 0 ] || log "$t: latency run: $5 duplicates"
			P50[$t.$s]="${P50[$t.$s]} $1"
			P99[$t.$s]="${P99[$t.$s]} $2"
			log "run $r/$RUNS $sl $t: latency at $LAT_RATE msgs/s:" \
			    "p50 ${1} ms, p99 ${2} ms ($3 arrived, $4 missing," \
			    "$5 duplicates)"
			queue_settle "$t" || :
		done
	done
done


# ---------------------------------------------------------------- checks

checks=""
for t in $TARGETS; do
	queue_settle "$t" || :
	# Late duplicates would arrive within a few seconds of the last
	# delivery.
	sleep 2
	got=$(sink_count "${SINK_COUNTS[$t]}")
	q=$(queued "$t")
	if [ "$got" -lt "${SENT[$t]}" ]; then
		checks="${checks}$t: $got of ${SENT[$t]} messages arrived at smtp-sink, $q still queued: MISSING\n"
		STATUS=1
	elif [ "$got" -gt "${SENT[$t]}" ]; then
		checks="${checks}$t: $got arrivals for ${SENT[$t]} messages: $((got - ${SENT[$t]})) duplicates\n"
	else
		checks="${checks}$t: ${SENT[$t]} sent, $got arrived at smtp-sink, $q queued: ok\n"
	fi
	if [ "$q" != 0 ]; then
		checks="${checks}$t: queue not empty at the end ($q)\n"
		STATUS=1
	fi
done
if [ "$LAT_MESSAGES" -gt 0 ]; then
	lsent=$(wc -l <"$LAT_SENT")
	larr=$(wc -l <"$LAT_LOG")
	lstray=$(awk '$1 == "-"' "$LAT_LOG" | wc -l)
	checks="${checks}latency sink: $larr arrivals for $lsent messages acknowledged"
	if [ "$lstray" != 0 ]; then
		checks="$checks, $lstray without X-Bench-Id: MISROUTED"
		STATUS=1
	fi
	checks="$checks\n"
fi

# ---------------------------------------------------------------- report

label() {
	case $1 in
	postfix) echo "Postfix $(postconf -d -h mail_version 2>/dev/null)" ;;
	smarthostd) echo "smarthostd" ;;
	esac
}

echo
echo "relay.sh: $(nproc) cores, $(uname -r), scratch on" \
    "$(df -PT "$WORK" | awk 'NR == 2 { print $2 " " $1 }')"
echo "throughput: smtp-source -s $SESSIONS -m $MESSAGES" \
    "${SRC_FLAGS:+$SRC_FLAGS }(1 rcpt/msg) -> relay -> smtp-sink;" \
    "$PER_DEST deliveries at once"
[ "$LAT_MESSAGES" -gt 0 ] &&
    echo "latency: $LAT_MESSAGES msgs at $LAT_RATE msgs/s over" \
	"$LAT_SESSIONS sessions, end of DATA -> arrival at the sink"
echo "median of $RUNS runs, $WARMUP warm-up messages"
for s in $SIZES; do
	echo
	printf '%-12s %-19s %8s %8s %10s %8s %8s\n' "$(size_label "$s")" \
	    relay "e2e/s" "accept/s" "CPU s/1k" "p50 ms" "p99 ms"
	for t in $TARGETS; do
		printf '%-12s %-19s %8s %8s %10s %8s %8s\n' "" "$(label "$t")" \
		    "$(median ${RATES[$t.$s]})" "$(median ${ACCEPTS[$t.$s]})" \
		    "$(median ${CPUS[$t.$s]})" "$(median ${P50[$t.$s]})" \
		    "$(median ${P99[$t.$s]})"
	done
	if want smarthostd && want postfix; then
		printf '%-12s %-19s %8s %8s %10s %8s %8s\n' "" \
		    "smarthostd/Postfix" \
		    "$(ratio "$(median ${RATES[smarthostd.$s]})" \
			"$(median ${RATES[postfix.$s]})")" \
		    "$(ratio "$(median ${ACCEPTS[smarthostd.$s]})" \
			"$(median ${ACCEPTS[postfix.$s]})")" \
		    "$(ratio "$(median ${CPUS[smarthostd.$s]})" \
			"$(median ${CPUS[postfix.$s]})")" \
		    "$(ratio "$(median ${P50[smarthostd.$s]})" \
			"$(median ${P50[postfix.$s]})")" \
		    "$(ratio "$(median ${P99[smarthostd.$s]})" \
			"$(median ${P99[postfix.$s]})")"
	fi
	for t in $TARGETS; do
		echo "  $t runs (e2e msgs/s):$(echo " ${RATES[$t.$s]}" |
		    tr -s ' ')"
	done
done
echo
if want smarthostd; then
	st=$(smarthostd_stats) || st="{}"
	echo "smarthostd: relay.delivered $(stat_of "$st" relay.delivered)," \
	    "deferred $(stat_of "$st" relay.deferred)," \
	    "failed $(stat_of "$st" relay.failed)," \
	    "connections $(stat_of "$st" relay.connections);" \
	    "queue commits $(stat_of "$st" queue.commits) for" \
	    "$(stat_of "$st" queue.accepted) accepted," \
	    "delivery commits $(stat_of "$st" queue.delivery_commits)"
fi
printf "$checks"
exit $STATUS
