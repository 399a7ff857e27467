# bench/common.sh -- what bench/accept.sh, grey.sh, relay.sh and scan.sh
# share, sourced by each once its knobs are set (it sets BENCH, its name
# for log lines, and REPO first): tool paths, logging, Debian packages
# and the smarthostd build, the scratch directory and the cleanup of
# everything started (smarthostd, the private Postfix, PIDS_TO_STOP) on
# exit, process trees and their CPU ticks, loopback ports, a plain
# smtp-sink (accept.sh, grey.sh), the counting smtp-sink and the latency
# sink of bench/relay-lat.py (relay.sh and scan.sh: the sink's "NS
# COUNT" file, waiting on it, the caller's queues settling), the private
# Postfix instance (config, start, queue count), smarthostd (scratch
# directory, config head, check, start, counters) and the report's
# median and ratio.  Functions and constants only: nothing runs until a
# script calls it.

SMTP_SOURCE=/usr/sbin/smtp-source
SMTP_SINK=/usr/sbin/smtp-sink
SMARTHOSTD=$REPO/smarthostd/smarthostd
SMARTHOSTCTL=$REPO/smarthostctl/smarthostctl
CLK_TCK=$(getconf CLK_TCK)

log() { printf '%s: %s\n' "$BENCH" "$*" >&2; }
die() { log "error: $*"; exit 1; }

want() {
	case " $TARGETS " in *" $1 "*) return 0 ;; esac
	return 1
}

# ---------------------------------------------------------------- packages

pkg_missing() {
	local p missing=""
	for p in "$@"; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null |
		    grep -q 'install ok installed' || missing="$missing $p"
	done
	echo "$missing"
}

install_packages() {	# the Debian packages every bench needs
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
}

build_smarthostd() {	# when smarthostd is a target
	if want smarthostd; then
		log "building smarthostd"
		make -s -C "$REPO" deps users >/dev/null
		make -s -C "$REPO" all >/dev/null || die "make all failed"
	fi
}

# ---------------------------------------------------------------- scratch

# The CPU ever used by a process tree: every live member's own times
# plus what it collected from reaped children (fields 14-17 of stat).
tree_pids() {
	local pids=$1 frontier=$1 next p
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
	local rc=$? p i kids=""
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

scratch_dir() {	# name: make WORK, and clean up everything on exit
	WORK=$(mktemp -d "$BENCH_TMPDIR/$1.XXXXXX")
	chmod 755 "$WORK"
	PIDS_TO_STOP=""
	PF_CONF=""
	SHD_PID=""
	trap cleanup EXIT
	trap 'exit 130' INT TERM
}

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

# ---------------------------------------------------------------- sinks

# A plain smtp-sink on a new loopback port: SINK_PORT and SINK_PID set.
# -u: smtp-sink refuses to run as root; 5000 is its listen backlog.
plain_sink_start() {
	[ -x "$SMTP_SINK" ] || die "$SMTP_SINK missing"
	SINK_PORT=$(next_port)
	"$SMTP_SINK" -u nobody 127.0.0.1:"$SINK_PORT" 5000 \
	    >"$WORK/sink.log" 2>&1 &
	SINK_PID=$!
	PIDS_TO_STOP="$PIDS_TO_STOP $SINK_PID"
	wait_port "$SINK_PORT" 10 || die "smtp-sink did not listen"
}

# smtp-sink -c on 127.0.0.1:port; relay-lat.py watch turns its counter
# into a counts file, a "NS COUNT" line each time it changes.  Sets
# SINK_PID, the sink itself (for its CPU; the watcher is stopped too).
counting_sink_start() {	# port counts-file stderr-file
	local i
	: >"$2"
	# -u: smtp-sink refuses to run as root; 5000 is its listen backlog,
	# -m the most connections it serves at once.
	"$SMTP_SINK" -u nobody -c -m 1000 127.0.0.1:"$1" 5000 2>"$3" |
	    python3 "$REPO/bench/relay-lat.py" watch "$2" &
	# $! is the watcher; stop the sink itself by its pid.
	PIDS_TO_STOP="$PIDS_TO_STOP $!"
	SINK_PID=""
	for i in $(seq 50); do
		SINK_PID=$(pgrep -f "^$SMTP_SINK -u nobody -c -m 1000 127.0.0.1:$1 " ||
		    :)
		[ -n "$SINK_PID" ] && break
		sleep 0.1
	done
	[ -n "$SINK_PID" ] || die "smtp-sink on port $1 did not start"
	PIDS_TO_STOP="$SINK_PID $PIDS_TO_STOP"
	wait_port "$1" 10 || die "smtp-sink did not listen on $1"
}
sink_count() {	# counts-file: messages received so far
	local n
	n=$(tail -n 1 "$1" | awk '{ print $2 }')
	echo "${n:-0}"
}
sink_time_of() {	# counts-file count: time (ns) the counter reached count
	awk -v n="$2" '$2 >= n { print $1; exit }' "$1"
}
# Wait until a sink's counter reaches a value; give up after STALL
# seconds without an arrival.
sink_wait() {	# counts-file count: 0 when reached, 1 when given up
	local n last=-1 still=0
	while :; do
		n=$(sink_count "$1")
		[ "$n" -ge "$2" ] && return 0
		if [ "$n" = "$last" ]; then
			still=$((still + 1))
			[ "$still" -ge $((STALL * 10)) ] && return 1
		else
			still=0
			last=$n
		fi
		sleep 0.1
	done
}

# Wait until a target's queue is empty, bounded by STALL seconds.  The
# caller defines queued (target: the messages in its queue): each bench
# has its own targets and queues.
queue_settle() {	# target
	local i n
	for i in $(seq $((STALL * 10))); do
		n=$(queued "$1")
		[ "$n" = 0 ] && return 0
		sleep 0.1
	done
	log "warning: $1 still has $n messages queued after ${STALL}s"
	return 1
}

# relay-lat.py sink on LAT_PORT: an "ID NS" line in LAT_LOG for every
# message that arrives (latency: end of DATA -> arrival).
lat_sink_start() {
	LAT_PORT=$(next_port)
	LAT_LOG=$WORK/lat.arrivals
	: >"$LAT_LOG"
	python3 "$REPO/bench/relay-lat.py" sink "$LAT_PORT" "$LAT_LOG" \
	    2>"$WORK/lat-sink.err" &
	PIDS_TO_STOP="$PIDS_TO_STOP $!"
	wait_port "$LAT_PORT" 10 || die "latency sink did not listen"
}

# ---------------------------------------------------------------- postfix

# A private Postfix under $WORK/postfix listening on PF_PORT: main.cf
# gets the caller's own lines (stdin) between the common ones.
postfix_config() {	# default_process_limit <main.cf-lines
	PF_PORT=$(next_port)
	PF=$WORK/postfix
	PF_CONF=$PF/etc
	mkdir -p "$PF_CONF" "$PF/queue" "$PF/data"
	chown postfix "$PF/data"
	{
		cat <<EOF
# A private, loopback-only Postfix for bench/$BENCH.
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
EOF
		cat
		cat <<EOF
disable_dns_lookups = yes
smtp_dns_support_level = disabled
smtpd_peername_lookup = no
in_flow_delay = $PF_IN_FLOW_DELAY
default_process_limit = $1
smtpd_client_connection_count_limit = 0
maillog_file = $PF/maillog
EOF
	} >"$PF_CONF/main.cf"
	# Every service the accepting path, the queue manager and delivery
	# need, nothing chrooted (the queue directory is not a prepared
	# chroot).
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
}

postfix_start() {	# start it, wait for its port, set PF_PID
	local i
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
}

postfix_queued() {	# messages in the private Postfix's queue
	find "$PF/queue/incoming" "$PF/queue/active" "$PF/queue/deferred" \
	    "$PF/queue/hold" "$PF/queue/maildrop" -type f 2>/dev/null | wc -l
}

# ---------------------------------------------------------------- smarthostd

shd_setup() {	# SHD_PORT, the scratch directory SHD, SHD_SOCK, nsess
	SHD_PORT=$(next_port)
	SHD=$WORK/smarthostd
	mkdir -p "$SHD"
	chmod 755 "$SHD"
	SHD_SOCK=$SHD/smarthostd.sock
	# Every bench session comes from 127.0.0.1; smtp-source may briefly
	# hold more connections than -s while closing: leave room, and never
	# lower the global default (1000).
	nsess=$((SESSIONS * 2 + 100))
	[ "$nsess" -ge 1000 ] || nsess=1000
}

shd_config_head() {	# what-it-does: the first lines of smarthostd.conf
	cat <<EOF
# bench/$BENCH: $*
hostname "smarthostd-bench.example"
state "$SHD/state"
control socket "$SHD_SOCK"
pidfile "$SHD/smarthostd.pid"
resolver 127.0.0.1 port 1
EOF
}

shd_check() {	# does smarthostd -n accept $SHD/smarthostd.conf?
	"$SMARTHOSTD" -n -f "$SHD/smarthostd.conf" >"$SHD/check.log" 2>&1
}
shd_check_or_die() {
	shd_check ||
	    { cat "$SHD/check.log" >&2
	      die "smarthostd rejects the bench config"; }
}

shd_start() {	# start it in the foreground (-d), wait for its port
	log "starting smarthostd on 127.0.0.1:$SHD_PORT"
	"$SMARTHOSTD" -d -f "$SHD/smarthostd.conf" >"$SHD/log" 2>&1 &
	SHD_PID=$!
	wait_port "$SHD_PORT" 15 ||
	    { tail -20 "$SHD/log" >&2; die "smarthostd did not listen"; }
}

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

median() {	# numbers...: their median; "nan" (a run with no result) skipped
	echo "$@" | tr ' ' '\n' | grep -v '^nan$' | grep . | sort -g |
	    awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2];
	    else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
# a/b with 2 decimals and an "x"; "-" when either is missing ("" or "-")
# or b is 0.
ratio() {	# a b
	awk -v a="$1" -v b="$2" 'BEGIN {
	    if (a == "" || a == "-" || b == "" || b == "-" || b + 0 == 0)
		print "-";
	    else printf "%.2fx\n", a / b }'
}
