#!/bin/bash
# bench/grey.sh -- greylisting decisions per second of smarthostd against
# Postfix + postgrey, measured in one run on this machine (issue 5,
# design.md section 11).
#
# bench/greyload.c (compiled here with cc) runs SMTP sessions that stop
# at the greylisting decision: connect, banner, EHLO, MAIL FROM, RCPT TO
# (the decision: 4xx for a tuple never seen), QUIT.  Every session has a
# new tuple (a pseudo-random sender and recipient) and comes from one of
# NADDRS loopback addresses (127.0.0.2 on).  Three targets:
#
#   sink        Postfix's smtp-sink: 250 to everything, no database (the
#               ceiling of these sessions on this machine, greyload and
#               the kernel's TCP included)
#   smarthostd  ./smarthostd/smarthostd -d with a scratch config: a
#               greylist { } block (spamd's timers, max-entries and
#               map-size above the preload), an action marked greylist
#               for the bench's recipient domain.  Its resolver is a
#               dnsmasq on loopback that knows no records and answers
#               NXDOMAIN for bench.example, so the SPF check of each
#               sender domain (1000 of them) gives none, from the
#               daemon's SPF cache after the first query, and the tuple
#               is keyed by the client address (RESOLVER=closed: a
#               closed loopback port instead, every SPF check a
#               temperror that is not cached, a query each time).
#               grey.mdb is filled beforehand by bench/grey-preload.c
#               through the daemon's own greydb.c.
#   postfix     a private Postfix instance (config and queue under the
#               scratch directory) with smtpd_recipient_restrictions =
#               check_policy_service to postgrey (Debian's package, run
#               here in the foreground with its own --dbdir and
#               --delay=1500, its other settings the defaults: a
#               BerkeleyDB environment with transactions, one log flush
#               per decision).  Its postgrey.db is filled beforehand by
#               a small Perl script through the BerkeleyDB module and
#               the environment flags postgrey itself uses.
#
# Both greylisting targets start with PRELOAD tuples in their database.
#
# For each run (RUNS, interleaved so that drift hits both alike):
#
#   throughput  greyload with CONNS concurrent sessions for DURATION
#               seconds, as fast as the target answers: decisions/s,
#               p50/p99 of RCPT written -> reply read, and the CPU of
#               the target's processes (/proc/PID/stat of the process
#               trees, reaped children included: smarthostd's; Postfix's
#               master and its children plus postgrey).
#   latency     greyload at a steady LAT_RATE sessions/s over LAT_CONNS
#               connections for LAT_SECONDS: p50/p99 of the decision
#               when the target is not saturated.
#
# It prints medians and smarthostd/Postfix ratios.  It exits 1 when a
# target does not start, a session fails, or any RCPT to a greylisting
# target gets something other than a 4xx (greylisting did not decide);
# never on speed.  Everything runs inside a new network namespace (unshare --net, only
# lo up), every wait is bounded, and everything it started is stopped
# on exit.  Run as root (it installs Debian packages by name when
# missing, and smarthostd drops privileges).
#
# Knobs (environment): CONNS=64 DURATION=15 RUNS=3 PRELOAD=1000000
#   NADDRS=16 WARMUP=2 (seconds) LAT_RATE=200 LAT_CONNS=8 LAT_SECONDS=8
#   (LAT_SECONDS=0: no latency runs) TARGETS="sink smarthostd postfix"
#   MAX_ENTRIES=4000000 MAP_SIZE_MB=4096 RESOLVER=dnsmasq|closed
#   PORT=14525 (first port tried)
#   BENCH_TMPDIR=/var/tmp KEEP=1 (keep the scratch directory)

set -eu
export LC_ALL=C

REPO=$(cd "$(dirname "$0")/.." && pwd)
CONNS=${CONNS:-64}
DURATION=${DURATION:-15}
RUNS=${RUNS:-3}
PRELOAD=${PRELOAD:-1000000}
NADDRS=${NADDRS:-16}
WARMUP=${WARMUP:-2}
LAT_RATE=${LAT_RATE:-200}
LAT_CONNS=${LAT_CONNS:-8}
LAT_SECONDS=${LAT_SECONDS:-8}
TARGETS=${TARGETS:-sink smarthostd postfix}
MAX_ENTRIES=${MAX_ENTRIES:-4000000}
MAP_SIZE_MB=${MAP_SIZE_MB:-4096}
RESOLVER=${RESOLVER:-dnsmasq}
PORT=${PORT:-14525}
BENCH_TMPDIR=${BENCH_TMPDIR:-/var/tmp}
KEEP=${KEEP:-0}
SHD_USER=${SHD_USER:-_smarthostd}	# the config's default user
# The libraries of the daemon's objects, as the Makefile links them.
SHD_PKGS="libevent libbsd-overlay lmdb libtls libcrypt libcares"
PF_IN_FLOW_DELAY=1s		# Postfix's default; no mail is accepted
SESSIONS=$CONNS			# for shd_setup's session limits

BENCH=grey.sh
. "$(dirname "$0")/common.sh"

[ "$(id -u)" = 0 ] || die "run as root (package installs, privsep users)"
case $CONNS$DURATION$RUNS$PRELOAD$NADDRS$WARMUP$LAT_RATE$LAT_CONNS$LAT_SECONDS$MAX_ENTRIES$MAP_SIZE_MB in
*[!0-9]*) die "the numeric knobs must be numbers" ;;
esac
[ "$CONNS" -ge 1 ] && [ "$CONNS" -le 1000 ] || die "CONNS must be 1..1000"
[ "$DURATION" -ge 1 ] && [ "$DURATION" -le 600 ] ||
    die "DURATION must be 1..600"
[ "$RUNS" -ge 1 ] && [ "$RUNS" -le 10 ] || die "RUNS must be 1..10"
[ "$NADDRS" -ge 1 ] && [ "$NADDRS" -le 250 ] || die "NADDRS must be 1..250"
[ "$PRELOAD" -le "$MAX_ENTRIES" ] || die "PRELOAD above MAX_ENTRIES"
case $RESOLVER in dnsmasq|closed) ;; *) die "RESOLVER: dnsmasq or closed" ;; esac

# ---------------------------------------------------------------- namespace

# Packages and the build need the host's network and tree; everything
# else runs again in a network namespace of its own, where nothing can
# leave this machine (DNS included).
if [ "${GREY_BENCH_NETNS:-0}" != 1 ]; then
	install_packages
	missing=$(pkg_missing postgrey libberkeleydb-perl gcc)
	if [ -n "$missing" ]; then
		log "installing$missing"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		    $missing >/dev/null
	fi
	# The package's own postgrey service is not ours to run.
	if command -v systemctl >/dev/null &&
	    systemctl is-active postgrey >/dev/null 2>&1; then
		log "note: a system postgrey is running; this bench starts" \
		    "its own"
	fi
	build_smarthostd
	command -v unshare >/dev/null || die "unshare (util-linux) missing"
	exec unshare --net env GREY_BENCH_NETNS=1 bash "$0" "$@"
fi
ip link set lo up || die "cannot bring lo up in the namespace"

# ---------------------------------------------------------------- scratch

scratch_dir smarthostd-grey

CC=${CC:-cc}
BENCH_CFLAGS="-std=gnu99 -O2 -D_GNU_SOURCE -Wall -Wextra"
log "building greyload"
$CC $BENCH_CFLAGS -o "$WORK/greyload" \
    "$REPO/bench/greyload.c" || die "greyload does not build"

# ---------------------------------------------------------------- sink

SINK_PID=""
if want sink; then
	plain_sink_start
fi

# ---------------------------------------------------------------- postfix + postgrey

PG_PID=""
if want postfix; then
	PG_PORT=$(next_port)
	PG=$WORK/postgrey
	mkdir -p "$PG"
	chown postgrey:postgrey "$PG"

	# postgrey.db is a BerkeleyDB btree in a transactional environment,
	# keyed "client-net/sender/recipient" (lower case; the client's
	# /24), valued "first-seen,last-seen" (see /usr/sbin/postgrey).
	# One transaction per 10,000 keys and no log flush per commit: the
	# preload is not what is measured.
	cat >"$WORK/postgrey-preload.pl" <<'EOF'
use strict;
use warnings;
use BerkeleyDB;

my ($dir, $count) = @ARGV;
my $env = BerkeleyDB::Env->new(
	-Home      => $dir,
	-Flags     => DB_CREATE|DB_RECOVER|DB_INIT_TXN|DB_INIT_MPOOL|DB_INIT_LOG,
	-SetFlags  => DB_AUTO_COMMIT|DB_TXN_NOSYNC,
	-Cachesize => 64 * 1024 * 1024,
) or die "env: $BerkeleyDB::Error\n";
my $db = BerkeleyDB::Btree->new(
	-Filename => 'postgrey.db',
	-Flags    => DB_CREATE,
	-Env      => $env,
) or die "postgrey.db: $BerkeleyDB::Error\n";
my $now = time;
srand($now);
my $txn;
for my $i (0 .. $count - 1) {
	if ($i % 10000 == 0) {
		$txn->txn_commit() == 0 or die "commit\n" if $txn;
		$txn = $env->txn_begin() or die "txn_begin\n";
		$db->Txn($txn);
	}
	my $key = sprintf("10.%d.%d.0/p%08x%08x\@pre%d.example/" .
	    "q%08x%08x\@grey.bench.example", int(rand(256)), int(rand(256)),
	    int(rand(2**32)), $i, int(rand(10000)), int(rand(2**32)), $i);
	my $first = $now - int(rand(3600));
	$db->db_put($key, "$first,$first") == 0 or die "put $key\n";
}
$txn->txn_commit() == 0 or die "commit\n" if $txn;
undef $txn;
$env->txn_checkpoint(0, 0, 0);
$env->log_archive(DB_ARCH_REMOVE);	# the preload's logs, now checkpointed
undef $db;
undef $env;
print "$count keys\n";
EOF
	log "preloading postgrey.db with $PRELOAD tuples"
	t0=$(date +%s)
	su -s /bin/sh postgrey -c \
	    "perl '$WORK/postgrey-preload.pl' '$PG' '$PRELOAD'" \
	    >"$WORK/postgrey-preload.log" 2>&1 ||
	    { cat "$WORK/postgrey-preload.log" >&2
	      die "postgrey preload failed"; }
	log "postgrey.db: $PRELOAD tuples in $(($(date +%s) - t0))s," \
	    "$(du -sm "$PG/postgrey.db" | cut -f1) MB"
	rm -f "$PG"/__db.*	# postgrey's DB_RECOVER makes its own

	log "starting postgrey on 127.0.0.1:$PG_PORT"
	postgrey --inet=127.0.0.1:"$PG_PORT" --dbdir="$PG" --delay=1500 \
	    --pidfile="$PG/postgrey.pid" >"$WORK/postgrey.log" 2>&1 &
	PG_PID=$!
	PIDS_TO_STOP="$PIDS_TO_STOP $PG_PID"
	wait_port "$PG_PORT" 60 ||
	    { tail -20 "$WORK/postgrey.log" >&2
	      die "postgrey did not listen"; }

	postfix_config $((CONNS + 50)) <<EOF
# Greylist every recipient through postgrey; accept nothing else.
smtpd_recipient_restrictions = check_policy_service inet:127.0.0.1:$PG_PORT
relayhost = [127.0.0.1]:2
defer_transports = smtp, relay, local, virtual, lmtp
EOF
	postfix_start
fi

# ---------------------------------------------------------------- smarthostd

SHD_PORT=""
if want smarthostd; then
	# next_port finds the first port nothing listens on: start what
	# holds one before asking for the next.
	DNS_PORT=1	# closed
	if [ "$RESOLVER" = dnsmasq ]; then
		DNS_PORT=$(next_port)
		/usr/sbin/dnsmasq -k -p "$DNS_PORT" --listen-address=127.0.0.1 \
		    --bind-interfaces --no-resolv --no-hosts \
		    --conf-file=/dev/null --pid-file= --user=root \
		    --local=/bench.example/ >"$WORK/dnsmasq.log" 2>&1 &
		PIDS_TO_STOP="$PIDS_TO_STOP $!"
		wait_port "$DNS_PORT" 10 || die "dnsmasq did not listen"
	fi
	shd_setup
	{
		shd_config_head "greylist every recipient of" \
		    "grey.bench.example; SPF: $RESOLVER resolver." |
		    sed "s/^resolver .*/resolver 127.0.0.1 port $DNS_PORT/"
		cat <<EOF
listen on 127.0.0.1 port $SHD_PORT

smtp {
	max-sessions $nsess
	max-sessions-per-client $nsess
}

greylist {
	passtime 25m
	greyexp 4h
	whiteexp 864h
	max-entries $MAX_ENTRIES
	map-size ${MAP_SIZE_MB}M
}

action "inbound" relay host "smtp://127.0.0.1:2" greylist
match from any for domain "grey.bench.example" action "inbound"
EOF
	} >"$SHD/smarthostd.conf"
	shd_check_or_die

	log "building grey-preload"
	$CC $BENCH_CFLAGS -I"$REPO/compat" \
	    -I"$REPO/smarthostd" $(pkg-config --cflags $SHD_PKGS) \
	    -o "$WORK/grey-preload" "$REPO/bench/grey-preload.c" \
	    "$REPO/smarthostd/greydb.o" "$REPO/smarthostd/util.o" \
	    "$REPO/smarthostd/log.o" \
	    $(pkg-config --libs $SHD_PKGS) -lspf2 -lz -lresolv ||
	    die "grey-preload does not build"
	log "preloading grey.mdb with $PRELOAD tuples"
	mkdir -p "$SHD/state"
	t0=$(date +%s)
	"$WORK/grey-preload" "$SHD/state" "$PRELOAD" "$MAX_ENTRIES" \
	    "$MAP_SIZE_MB" >"$WORK/grey-preload.log" 2>&1 ||
	    { cat "$WORK/grey-preload.log" >&2; die "grey preload failed"; }
	chown -R "$SHD_USER:" "$SHD/state"
	log "grey.mdb: $PRELOAD tuples in $(($(date +%s) - t0))s," \
	    "$(du -sm "$SHD/state" | cut -f1) MB"
	shd_start
	# Its port opens before grey has its configuration; a session in
	# that moment stops grey ("request before the configuration").
	sleep 2
	kill -0 "$SHD_PID" 2>/dev/null ||
	    { tail -20 "$SHD/log" >&2; die "smarthostd exited"; }
fi

# ---------------------------------------------------------------- runs

target_port() {
	case $1 in
	sink) echo "$SINK_PORT" ;;
	postfix) echo "$PF_PORT" ;;
	smarthostd) echo "$SHD_PORT" ;;
	esac
}
target_ticks() {	# CPU ticks so far of every process of the target
	case $1 in
	sink) tree_ticks "$SINK_PID" ;;
	postfix) echo $(($(tree_ticks "$PF_PID") + $(tree_ticks "$PG_PID"))) ;;
	smarthostd) tree_ticks "$SHD_PID" ;;
	esac
}

load_run() {	# target label greyload-args...: prints greyload's line
	local t=$1 label=$2 out rc=0
	shift 2
	out=$WORK/greyload.$t.$label.log
	timeout $((DURATION + LAT_SECONDS + WARMUP + 120)) \
	    "$WORK/greyload" -p "$(target_port "$t")" -n "$NADDRS" "$@" \
	    >"$out" 2>&1 || rc=$?
	if [ $rc != 0 ]; then
		log "greyload against $t ($label) failed (exit $rc):"
		head -8 "$out" >&2
		exit 1
	fi
	# Every decision must be a 4xx: a 250 means nothing greylisted.
	if [ "$t" != sink ] && tail -1 "$out" | tr ' ' '\n' | grep -q '^[^4][0-9][0-9]:'; then
		log "$t ($label): a RCPT got something other than 4xx:"
		tail -1 "$out" >&2
		exit 1
	fi
	tail -1 "$out"
}
field() {	# greyload-line name: that field's value
	echo "$1" | awk -v k="$2" '{ for (i = 1; i < NF; i++)
	    if ($i == k) { print $(i + 1); exit } }'
}

declare -A RATES CPUS P99 P50 LP50 LP99 CODES
for t in $TARGETS; do
	RATES[$t]="" CPUS[$t]="" P99[$t]="" P50[$t]="" LP50[$t]="" LP99[$t]=""
done

if [ "$WARMUP" -gt 0 ]; then
	log "warm-up: ${WARMUP}s against each target"
	for t in $TARGETS; do
		load_run "$t" warmup -c "$CONNS" -d "$WARMUP" >/dev/null
	done
fi

for r in $(seq "$RUNS"); do
	for t in $TARGETS; do
		c0=$(target_ticks "$t")
		line=$(load_run "$t" "$r" -c "$CONNS" -d "$DURATION")
		c1=$(target_ticks "$t")
		n=$(field "$line" decisions)
		rate=$(field "$line" rate)
		cpu=$(awk -v c="$((c1 - c0))" -v hz="$CLK_TCK" -v n="$n" \
		    'BEGIN { printf "%.2f", n ? c / hz / n * 1000 : 0 }')
		RATES[$t]="${RATES[$t]} $rate"
		CPUS[$t]="${CPUS[$t]} $cpu"
		P50[$t]="${P50[$t]} $(field "$line" p50_ms)"
		P99[$t]="${P99[$t]} $(field "$line" p99_ms)"
		CODES[$t]=$(echo "$line" | sed 's/.*codes //')
		log "run $r/$RUNS $t: $n decisions, $rate/s, p50" \
		    "$(field "$line" p50_ms) ms, p99 $(field "$line" p99_ms)" \
		    "ms, $cpu CPU s/1000 decisions, replies ${CODES[$t]}"
		[ "$LAT_SECONDS" -gt 0 ] || continue
		line=$(load_run "$t" "lat$r" -c "$LAT_CONNS" -r "$LAT_RATE" \
		    -d "$LAT_SECONDS")
		LP50[$t]="${LP50[$t]} $(field "$line" p50_ms)"
		LP99[$t]="${LP99[$t]} $(field "$line" p99_ms)"
		log "run $r/$RUNS $t at $LAT_RATE/s: p50" \
		    "$(field "$line" p50_ms) ms, p99 $(field "$line" p99_ms) ms"
	done
done

# ---------------------------------------------------------------- report

label() {
	case $1 in
	sink) echo "smtp-sink (250, no database)" ;;
	postfix) echo "Postfix $(postconf -d -h mail_version 2>/dev/null)" \
	    "+ postgrey $(dpkg-query -W -f='${Version}' postgrey 2>/dev/null |
	    sed 's/-.*//')" ;;
	smarthostd) echo "smarthostd" ;;
	esac
}

echo
echo "grey.sh: $(nproc) cores, $(uname -r), $PRELOAD tuples preloaded," \
    "smarthostd's resolver: $RESOLVER"
echo "greyload -c $CONNS for ${DURATION}s from $NADDRS addresses," \
    "a new tuple per session, median of $RUNS, ${WARMUP}s warm-up;" \
    "latency at $LAT_RATE sessions/s over $LAT_CONNS connections"
echo
printf '%-34s %12s %12s %18s %18s  %s\n' target "decisions/s" \
    "CPU s/1000" "p50/p99 ms (sat.)" "p50/p99 ms (${LAT_RATE}/s)" \
    "runs (decisions/s)"
for t in $TARGETS; do
	lat="-"
	[ "$LAT_SECONDS" -gt 0 ] &&
	    lat="$(median ${LP50[$t]}) / $(median ${LP99[$t]})"
	printf '%-34s %12s %12s %18s %18s  %s\n' "$(label "$t")" \
	    "$(median ${RATES[$t]})" "$(median ${CPUS[$t]})" \
	    "$(median ${P50[$t]}) / $(median ${P99[$t]})" "$lat" \
	    "$(echo ${RATES[$t]})"
done
echo
if want postfix && want smarthostd; then
	awk -v a="$(median ${RATES[smarthostd]})" \
	    -v b="$(median ${RATES[postfix]})" \
	    -v ca="$(median ${CPUS[smarthostd]})" \
	    -v cb="$(median ${CPUS[postfix]})" \
	    -v pa="$(median ${P99[smarthostd]})" \
	    -v pb="$(median ${P99[postfix]})" 'BEGIN {
		printf "ratio smarthostd/(Postfix+postgrey): %.1fx decisions/s", a / b
		if (cb > 0) printf ", %.2fx CPU per decision", ca / cb
		if (pb > 0) printf ", %.2fx p99 at saturation", pa / pb
		printf "\n" }'
fi
for t in $TARGETS; do
	echo "$t replies to RCPT (last run): ${CODES[$t]}"
done
