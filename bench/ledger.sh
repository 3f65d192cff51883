#!/usr/bin/env bash
# ledger.sh: issue 7's ledger benchmarks, both backends in one run
# (bench/ledgerbench does the measuring; see its doc comment):
#   1. sustained ingest with tree maintenance: EVENTS events of ~200 bytes
#      (VM sessions: vm.started, operator actions, lease.start/lease.end,
#      vm.stopped) from 16 hosts, signed in batches (ledger.Sign) and
#      ingested with Log.Ingest, 10k events per transaction on SQLite and
#      10k on PostgreSQL; events/s per million, and the time split between
#      making/signing events, the Log's checks and tree, and the store;
#   2. inclusion proof latency on the full log (Log.Prove + tlog.CheckRecord
#      of SAMPLES random entries, p50/p99; with Log.Entry first; and
#      Log.ProveEntry, as vmtrust ledger prove makes it);
#   3. who-had latency on the full log (Log.WhoHad with its 3 proofs, for
#      SAMPLES random leases, each answer checked);
#   4. the database size after 1M events and at the end (SQLite file + WAL
#      after a TRUNCATE checkpoint; PostgreSQL pg_database_size).
#
# PostgreSQL 15 is a private server started here as FIELD-NOTES.md §5 and
# internal/pgtest do: initdb and pg_ctl as the postgres user (when root),
# listening on 127.0.0.1 on a free port and on a socket in the work
# directory; fsync on, shared_buffers=$PG_SHARED_BUFFERS and, when root,
# huge pages: vm.nr_hugepages is raised for the run and put back on exit
# (without them each backend takes a page fault per 4 KiB of shared
# buffers it first touches, which on this VM tripled a random lookup). It
# is stopped (pg_ctl stop -m immediate on its own data directory) and the
# work directory removed on exit, however the script ends.
#
# Usage: bench/ledger.sh
# Environment:
#   BENCH_DIR  where the work directory is made (mktemp -d; large files; the
#              work directory is removed at the end) (default: /var/tmp)
#   EVENTS     events in each log (default: 10000000; a multiple of 10000)
#   SAMPLES    proofs and who-had queries timed per backend (default: 20000)
#   BACKENDS   which to run (default: "sqlite postgres")
#   INGESTERS  concurrent Log.Ingest calls (default: 2)
#   FOLLOW     true: the query indexer runs beside the ingests; false: it
#              catches up after them (default: true)
#   PASSES     who-had passes over the same sampled leases: the first is
#              the figure (a fresh process), the last is reported beside
#              it (default: 2)
# The proofs and who-had queries are timed by a second ledgerbench process
# (-queries-only) on the log the first one (-ingest-only) built.
#   PG_SHARED_BUFFERS  PostgreSQL's shared_buffers in MB (default: 4096)
#
# Needs: go; for PostgreSQL /usr/lib/postgresql/15/bin (scripts/setup.sh).
# Stdout is the Markdown result; progress, each backend's JSON and a CPU
# profile summary of each ingest on stderr.
# Exit status: 0 on success, 1 if a step fails or an answer is wrong.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
EVENTS=${EVENTS:-10000000}
SAMPLES=${SAMPLES:-20000}
BACKENDS=${BACKENDS:-sqlite postgres}
INGESTERS=${INGESTERS:-2}
FOLLOW=${FOLLOW:-true}
PASSES=${PASSES:-2}
PG_SHARED_BUFFERS=${PG_SHARED_BUFFERS:-4096}
PGBIN=/usr/lib/postgresql/15/bin

log() { printf 'ledger-bench: %s\n' "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

for v in EVENTS SAMPLES INGESTERS PASSES PG_SHARED_BUFFERS; do
	[[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a number"
done
((EVENTS >= 10000 && EVENTS % 10000 == 0)) || die "EVENTS must be a multiple of 10000"
((SAMPLES >= 100)) || die "SAMPLES must be at least 100"
[[ $FOLLOW == true || $FOLLOW == false ]] || die "FOLLOW must be true or false"
command -v go >/dev/null || die "go is not installed"

BENCH_DIR=$(mktemp -d "${BENCH_DIR:-/var/tmp}/vmtrust-ledger-bench.XXXXXX")
PGDIR=$BENCH_DIR/pg
PG_STARTED=0
HUGEPAGES_BEFORE=
PG_HUGE=off

cleanup() {
	if ((PG_STARTED)); then
		log "stopping PostgreSQL"
		pgrun "$PGBIN/pg_ctl" -D "$PGDIR/data" -m immediate -w stop >/dev/null 2>&1 || log "pg_ctl stop failed"
	fi
	if [[ -n $HUGEPAGES_BEFORE ]]; then
		echo "$HUGEPAGES_BEFORE" >/proc/sys/vm/nr_hugepages || log "could not put vm.nr_hugepages back to $HUGEPAGES_BEFORE"
	fi
	rm -rf "$BENCH_DIR"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# pgrun runs a PostgreSQL binary as the postgres user when root.
pgrun() {
	if [[ $(id -u) == 0 ]]; then
		(cd / && runuser -u postgres -- "$@")
	else
		(cd / && "$@")
	fi
}

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start_pg() {
	[[ -x $PGBIN/pg_ctl ]] || die "PostgreSQL 15 is not installed: run scripts/setup.sh as root"
	mkdir -p "$PGDIR/sock" "$PGDIR/log"
	chmod 700 "$PGDIR" "$PGDIR/sock" "$PGDIR/log"
	if [[ $(id -u) == 0 ]]; then
		chmod 755 "$BENCH_DIR"
		chown -R postgres:postgres "$PGDIR"
	fi
	pgrun "$PGBIN/initdb" -D "$PGDIR/data" -A trust -U postgres -E UTF8 --no-sync >/dev/null
	PGPORT=$(free_port)
	# Huge pages for the shared buffers (and 10% for the rest of the
	# shared memory), when root can reserve them.
	if [[ $(id -u) == 0 && -w /proc/sys/vm/nr_hugepages ]]; then
		local want=$((PG_SHARED_BUFFERS * 11 / 10 / 2 + 64)) now
		now=$(cat /proc/sys/vm/nr_hugepages)
		if ((now < want)); then
			HUGEPAGES_BEFORE=$now
			echo "$want" >/proc/sys/vm/nr_hugepages
		fi
		if (($(awk '/HugePages_Free/ {print $2}' /proc/meminfo) >= want - 64)); then
			PG_HUGE=on
		else
			log "could not reserve $want huge pages: PostgreSQL runs without"
		fi
	fi
	PG_STARTED=1
	pgrun "$PGBIN/pg_ctl" -D "$PGDIR/data" -o "-k $PGDIR/sock -h 127.0.0.1 -p $PGPORT -c shared_buffers=${PG_SHARED_BUFFERS}MB -c huge_pages=$PG_HUGE" -l "$PGDIR/log/postgres.log" -w start >/dev/null
	pgrun "$PGBIN/createdb" -h "$PGDIR/sock" -p "$PGPORT" -U postgres ledgerbench
	PGDSN="host=$PGDIR/sock port=$PGPORT user=postgres dbname=ledgerbench sslmode=disable"
	log "PostgreSQL on 127.0.0.1:$PGPORT, socket in $PGDIR/sock, shared_buffers ${PG_SHARED_BUFFERS}MB, huge pages $PG_HUGE"
}

log "working in $BENCH_DIR; EVENTS=$EVENTS SAMPLES=$SAMPLES BACKENDS=$BACKENDS"
(cd "$ROOT" && go build -o "$BENCH_DIR/ledgerbench" ./bench/ledgerbench)
START=$(date -u +'%Y-%m-%d %H:%M')
for b in $BACKENDS; do
	case $b in
	sqlite) args=(-backend sqlite -path "$BENCH_DIR/ledger.db") ;;
	postgres) start_pg; args=(-backend postgres -dsn "$PGDSN") ;;
	*) die "backend $b: want sqlite or postgres" ;;
	esac
	log "$b: $EVENTS events"
	"$BENCH_DIR/ledgerbench" "${args[@]}" -events "$EVENTS" -samples "$SAMPLES" -ingesters "$INGESTERS" -follow="$FOLLOW" -cpuprofile "$BENCH_DIR/$b.prof" -ingest-only >"$BENCH_DIR/$b-ingest.json"
	# The queries in a process of their own, as `vmtrust who-had` is one:
	# not the process that has just ingested 10M events.
	log "$b: proofs and who-had in a new process"
	"$BENCH_DIR/ledgerbench" "${args[@]}" -events "$EVENTS" -samples "$SAMPLES" -passes "$PASSES" -queries-only >"$BENCH_DIR/$b-query.json"
	python3 - "$BENCH_DIR/$b-ingest.json" "$BENCH_DIR/$b-query.json" >"$BENCH_DIR/$b.json" <<'PY'
import json, sys
ingest, query = (json.load(open(f)) for f in sys.argv[1:3])
for k in ("prove", "prove_entry", "prove_one_call", "who_had", "who_had_store", "who_had_last_pass", "settled", "settle_seconds"):
    ingest[k] = query[k]
print(json.dumps(ingest))
PY
	cat "$BENCH_DIR/$b.json" >&2
	log "$b: where the ingest's CPU went (go tool pprof -top)"
	(cd "$ROOT" && go tool pprof -top -nodecount=30 "$BENCH_DIR/ledgerbench" "$BENCH_DIR/$b.prof" 2>/dev/null | sed 's/^/  /' >&2) || true
	if [[ $b == sqlite ]]; then rm -f "$BENCH_DIR"/ledger.db*; fi
done
END=$(date -u +'%H:%M')

# The Markdown table, one column per backend.
python3 - "$BENCH_DIR" "$START" "$END" "$INGESTERS" "$PG_SHARED_BUFFERS MB, huge pages $PG_HUGE" $BACKENDS <<'PY'
import json, sys
d, start, end, ingesters, pgconf, backends = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6:]
r = {b: json.load(open(f"{d}/{b}.json")) for b in backends}
def row(name, f):
    print(f"| {name} | " + " | ".join(f(r[b]) for b in backends) + " |")
print(f"One run, {start}–{end} UTC, backends: {', '.join(backends)}; {ingesters} concurrent Ingest calls" + (f"; PostgreSQL shared_buffers {pgconf}" if "postgres" in backends else "") + ".\n")
print("| figure | " + " | ".join(backends) + " |")
print("|---|" + "---:|" * len(backends))
row("events (leases)", lambda x: f"{x['events']:,} ({x['leases']:,})")
row("events per Ingest, mean body", lambda x: f"{x['tx_events']:,}, {x['mean_body_bytes']} B")
row("ingest events/s, all", lambda x: f"{x['ingest']['events_per_sec']:,.0f}")
row("ingest events/s per million", lambda x: ", ".join(f"{v:,.0f}" for v in x['ingest']['per_million_per_sec'] or []))
row("indexer beside the ingests", lambda x: "yes" if x['index']['follow'] else "no: after them")
row("entries not indexed when the last Ingest returned", lambda x: f"{x['index']['lag_at_end']:,}")
row("index seconds after the ingests: drain / catch-up", lambda x: f"{x['index']['drain_seconds']:.1f} / {x['index']['catch_up_seconds']:.1f}")
row("log and indexes, events/s (all events ÷ ingest + drain + catch-up)", lambda x: f"{x['index']['log_and_index_per_sec']:,.0f}")
row("with NewEvent + Sign in the same thread", lambda x: f"{x['ingest']['with_make_sign_per_sec']:,.0f}")
row("seconds: make / sign / Ingest", lambda x: f"{x['ingest']['make_seconds']:.1f} / {x['ingest']['sign_seconds']:.1f} / {x['ingest']['seconds']:.1f}")
row("Ingest seconds: Log (verify, parse, tree) / store (Append, begin+commit)", lambda x: f"{x['ingest']['log_cpu_seconds']:.1f} / {x['ingest']['store_seconds']:.1f} ({x['ingest']['append_seconds']:.1f}, {x['ingest']['commit_seconds']:.1f})")
row("µs/event: Parse, batch root+verify, record hash, Sign", lambda x: f"{x['micro']['parse_us_per_event']}, {x['micro']['batch_root_verify_us_per_event']}, {x['micro']['record_hash_us_per_event']}, {x['micro']['sign_us_per_event']}")
row("Prove + CheckRecord p50 / p99 µs", lambda x: f"{x['prove']['p50_us']:,} / {x['prove']['p99_us']:,}")
row("Entry + Prove + CheckRecord p50 / p99 µs", lambda x: f"{x['prove_entry']['p50_us']:,} / {x['prove_entry']['p99_us']:,}")
row("ProveEntry (as vmtrust ledger prove: one store call, checked) p50 / p99 µs", lambda x: f"{x['prove_one_call']['p50_us']:,} / {x['prove_one_call']['p99_us']:,}")
row("queries on a settled database (WAL checkpointed, sync), seconds to settle", lambda x: ("yes, %.1f s" % x['settle_seconds']) if x.get('settled') else "no")
row("WhoHad (3 proofs) p50 / p99 µs", lambda x: f"{x['who_had']['p50_us']:,} / {x['who_had']['p99_us']:,}")
row("of which Store.Holder (the one statement) p50 / p99 µs", lambda x: f"{x['who_had_store']['p50_us']:,} / {x['who_had_store']['p99_us']:,}")
row("WhoHad, last pass over the same leases, p50 / p99 µs", lambda x: f"{x['who_had_last_pass']['p50_us']:,} / {x['who_had_last_pass']['p99_us']:,}")
row("size at 1M events / at the end, MB", lambda x: f"{x['size_bytes_at_1m']/1e6:,.0f} / {x['size_bytes_at_end']/1e6:,.0f}")
row("MB per million events (end)", lambda x: f"{x['size_mb_per_million']:,.0f}")
PY
