#!/usr/bin/env bash
# bench-system.sh — the whole-system benchmark: the same corpus into
# Medimint and into Orthanc (and dcmtk's storescp as the DIMSE baseline,
# as it is and made durable by bench/durable: storescp_fsync) in
# one run, systems alternating, BENCH_ROUNDS rounds (default 3); then the Go
# benchmarks; then bench/report writes bench/results/YYYY-MM-DD.{md,png}
# (and the raw .jsonl and -go.txt beside them).
#
# Per round and system, each on a fresh server (new database, data dir,
# Orthanc storage): C-STORE of the corpus over 1 and over 4 associations
# (storescu, TCP_NODELAY=1); STOW-RS in requests of 20; WADO-RS whole
# studies; QIDO-RS ?PatientID= and ?StudyDate= ranges, p50/p95; /metadata
# p50/p95; peak RSS (VmHWM) of the server; for Medimint, studies minted a
# minute once the 60 s quiet period is over.
#
# Environment: BENCH_ROUNDS (3), BENCH_GO=0 skips the Go benchmarks,
# BENCH_GOTIME (-benchtime, default 300ms), MEDIMINT_BENCH_1M=1 adds the
# index's Find benchmark over 1M seeded instances, MEDIMINT_BENCH_CORPUS
# (a prebuilt bench corpus), MEDIMINT_TEST_PG (Postgres admin URL),
# BENCH_OUT (output directory, default bench/results).
# Loopback only; every server it starts is stopped on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
ROUNDS=${BENCH_ROUNDS:-3}
DATE=$(date -u +%F)
OUT="${BENCH_OUT:-$ROOT/bench/results}"
WORK=$(mktemp -d /tmp/medimint-bench.XXXXXX)
RESULTS="$WORK/run.jsonl"
: >"$RESULTS"
PIDS=()
DBS=()
PG=

log() { echo "bench-system: $*" >&2; }

cleanup() {
	local p
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${PIDS[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	for d in "${DBS[@]}"; do
		[[ -n "$PG" ]] || break
		psql -qX "$PG" -c "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1 || true
	done
	rm -rf "$WORK"
}
trap cleanup EXIT

scripts/conformance-deps.sh
PG="${MEDIMINT_TEST_PG:-$(scripts/ensure-postgres.sh)}"

CORPUS=${MEDIMINT_BENCH_CORPUS:-}
if [[ -z "$CORPUS" ]]; then
	sum=$(sha256sum /work/shared/corpus/bench-corpus.sh | cut -c1-16)
	CORPUS="${XDG_CACHE_HOME:-$HOME/.cache}/medimint/bench-corpus-$sum"
fi
if [[ ! -f "$CORPUS/MANIFEST.sha256" ]]; then
	log "building the bench corpus into $CORPUS"
	/work/shared/corpus/bench-corpus.sh "$CORPUS" >&2
fi
mapfile -t FILES < <(awk -F'\t' '!/^#/ {print d "/" $1}' d="$CORPUS" "$CORPUS/index.tsv")
NFILES=${#FILES[@]}
log "corpus: $NFILES instances in $CORPUS"

log "building"
go build -o "$WORK/medimint" ./cmd/medimint
go build -o "$WORK/loadgen" ./bench/loadgen
go build -o "$WORK/report" ./bench/report
# storescp made to fsync each file and its directory before answering, as
# Medimint does: the baseline that pays the same durability.
SYSTEMS_SCP=(storescp)
if cc -O2 -shared -fPIC -o "$WORK/durable.so" bench/durable/durable.c -ldl 2>"$WORK/cc.log"; then
	SYSTEMS_SCP+=(storescp_fsync)
else
	log "no C compiler or build failed (see below): no storescp + fsync baseline"
	cat "$WORK/cc.log" >&2
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }

# wait_until SECONDS CMD...: poll CMD every 0.1 s, bounded.
wait_until() {
	local limit=$1
	shift
	local end=$((SECONDS + limit))
	until "$@" >/dev/null 2>&1; do
		((SECONDS < end)) || return 1
		sleep 0.1
	done
}

tcp_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
http_ok() { curl -sf -o /dev/null "$1"; }

# record SYSTEM ROUND METRIC VALUE UNIT
record() {
	printf '{"system":"%s","round":%d,"metric":"%s","value":%s,"unit":"%s"}\n' "$1" "$2" "$3" "$4" "$5" >>"$RESULTS"
}

# loadgen SYSTEM ROUND ARGS...: run loadgen and tag its figures.
loadgen() {
	local sys=$1 round=$2
	shift 2
	"$WORK/loadgen" "$@" | sed "s/^{/{\"system\":\"$sys\",\"round\":$round,/" >>"$RESULTS"
}

hwm_mib() { awk '/^VmHWM:/ {printf "%.1f", $2/1024}' "/proc/$1/status" 2>/dev/null || echo 0; }

# stop PID: SIGTERM, bounded wait, then SIGKILL.
stop() {
	local pid=$1 i
	kill -TERM "$pid" 2>/dev/null || return 0
	for i in $(seq 1 300); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# Server state, set by start_*: SRV_PID, SRV_DIMSE, SRV_AET, SRV_WEB, SRV_DB, SRV_KEY.
N=0
start_medimint() {
	N=$((N + 1))
	local d="$WORK/mm$N" http dimse devnet
	mkdir -p "$d"
	http=$(free_port)
	dimse=$(free_port)
	devnet=$(free_port)
	SRV_DB="mm_bench_$$_$N"
	DBS+=("$SRV_DB")
	local base="${PG%%\?*}" query=""
	[[ "$PG" == *\?* ]] && query="?${PG#*\?}"
	local url="${base%/*}/$SRV_DB$query"
	SRV_URL="$url"
	MEDIMINT_HTTP_ADDR="127.0.0.1:$http" MEDIMINT_DIMSE_ADDR="127.0.0.1:$dimse" MEDIMINT_DEVNET_ADDR="127.0.0.1:$devnet" \
		MEDIMINT_AE_TITLE=MEDIMINT DATABASE_URL="$url" MEDIMINT_DATA_DIR="$d/data" MEDIMINT_KEK_FILE="$d/kek" \
		MEDIMINT_LOG_LEVEL=warn "$WORK/medimint" serve >"$d/log" 2>&1 &
	SRV_PID=$!
	PIDS+=("$SRV_PID")
	SRV_DIMSE=$dimse SRV_AET=MEDIMINT SRV_WEB="http://127.0.0.1:$http/dicom-web"
	wait_until 90 http_ok "http://127.0.0.1:$http/readyz" && wait_until 30 tcp_open "$dimse" ||
		{ log "medimint did not start:"; tail -20 "$d/log" >&2; return 1; }
	# DICOMweb is gated: the first start prints a bootstrap API key.
	SRV_KEY=$(grep -o 'API key  *[^ ]*' "$d/log" | awk '{print $NF}' | head -1)
}

start_orthanc() {
	N=$((N + 1))
	local d="$WORK/or$N" http dimse
	mkdir -p "$d"
	http=$(free_port)
	dimse=$(free_port)
	cat >"$d/orthanc.json" <<-EOF
		{
		  "Name": "bench", "StorageDirectory": "$d/storage", "IndexDirectory": "$d/index",
		  "HttpPort": $http, "DicomPort": $dimse, "DicomAet": "ORTHANC",
		  "RemoteAccessAllowed": false, "AuthenticationEnabled": false,
		  "Plugins": ["/usr/share/orthanc/plugins/libOrthancDicomWeb.so"],
		  "DicomWeb": {"Enable": true, "Root": "/dicom-web/"}
		}
	EOF
	# Orthanc's DICOM server is dcmtk's: without TCP_NODELAY=1 its
	# responses wait on Nagle (about 7 inst/s instead of 80 here).
	TCP_NODELAY=1 Orthanc "$d/orthanc.json" >"$d/log" 2>&1 &
	SRV_PID=$!
	PIDS+=("$SRV_PID")
	SRV_DIMSE=$dimse SRV_AET=ORTHANC SRV_WEB="http://127.0.0.1:$http/dicom-web" SRV_DB= SRV_KEY=
	wait_until 90 http_ok "http://127.0.0.1:$http/system" && wait_until 30 tcp_open "$dimse" ||
		{ log "Orthanc did not start:"; tail -20 "$d/log" >&2; return 1; }
}

start_storescp() {
	N=$((N + 1))
	local d="$WORK/scp$N" port
	mkdir -p "$d"
	port=$(free_port)
	# --fork: one process per association, so 4 associations run at once.
	LD_PRELOAD=${SCP_PRELOAD:-} TCP_NODELAY=1 storescp --fork -aet STORESCP -od "$d" "$port" >"$d.log" 2>&1 &
	SRV_PID=$!
	PIDS+=("$SRV_PID")
	SRV_DIMSE=$port SRV_AET=STORESCP SRV_WEB= SRV_DB=
	wait_until 30 tcp_open "$port" || { log "storescp did not start"; return 1; }
}

start_storescp_fsync() { SCP_PRELOAD="$WORK/durable.so" start_storescp; }

# cstore NASSOC: send the corpus over NASSOC parallel associations; prints inst/s.
cstore() {
	local n=$1 i t0 t1 pids=() fail=0
	t0=$(now)
	for ((i = 0; i < n; i++)); do
		local part=()
		local j
		for ((j = i; j < NFILES; j += n)); do part+=("${FILES[j]}"); done
		TCP_NODELAY=1 storescu -R -x= -aec "$SRV_AET" -aet BENCHSCU 127.0.0.1 "$SRV_DIMSE" "${part[@]}" >"$WORK/storescu.$i.log" 2>&1 &
		pids+=($!)
	done
	for i in "${pids[@]}"; do wait "$i" || fail=1; done
	t1=$(now)
	if ((fail)) || grep -q "E: " "$WORK"/storescu.*.log; then
		log "storescu failed:"
		cat "$WORK"/storescu.*.log >&2
		return 1
	fi
	python3 -c "print($NFILES / ($t1 - $t0))"
}

# Each system's round: fresh servers for each ingest. Nothing is deleted
# until the run ends (cleanup): this machine's ext4 has no journal, and
# without one creating a file in the ~30 s after a burst of deletions (a
# dropped database is a thousand files) costs up to 1 ms of CPU, which
# would land on whichever system runs next.
round_system() {
	local sys=$1 r=$2 peak=0 v start stop_ hwm
	start=start_$sys
	for assoc in 1 4; do
		$start
		v=$(cstore "$assoc")
		record "$sys" "$r" "cstore_${assoc}_inst_per_s" "$v" inst/s
		hwm=$(hwm_mib "$SRV_PID")
		stop "$SRV_PID"
		peak=$(python3 -c "print(max($peak, $hwm))")
	done
	if [[ "$sys" != storescp* ]]; then
		$start
		local ingest_end
		loadgen "$sys" "$r" stow -api-key "$SRV_KEY" -url "$SRV_WEB" -corpus "$CORPUS" -batch 20
		ingest_end=$(now)
		loadgen "$sys" "$r" wado -api-key "$SRV_KEY" -url "$SRV_WEB" -corpus "$CORPUS"
		loadgen "$sys" "$r" qido -api-key "$SRV_KEY" -url "$SRV_WEB" -corpus "$CORPUS" -n 200
		loadgen "$sys" "$r" metadata -api-key "$SRV_KEY" -url "$SRV_WEB" -corpus "$CORPUS" -n 50
		hwm=$(hwm_mib "$SRV_PID")
		peak=$(python3 -c "print(max($peak, $hwm))")
		if [[ "$sys" == medimint ]]; then
			mint_rate "$r" "$ingest_end"
		fi
		stop "$SRV_PID"
	fi
	record "$sys" "$r" peak_rss_mib "$peak" MiB
}

# mint_rate ROUND INGEST_END: wait (bounded) for every study to be minted;
# studies a minute, counted from the end of the 60 s quiet period.
mint_rate() {
	local r=$1 t0=$2 studies end last count
	studies=$(awk -F'\t' '!/^#/ {print $4}' "$CORPUS/index.tsv" | sort -u | wc -l)
	end=$((SECONDS + ${BENCH_MINT_WAIT:-300}))
	while ((SECONDS < end)); do
		count=$(psql -qXAt "$SRV_URL" -c "SELECT count(*) FROM minted_records" 2>/dev/null || echo 0)
		((count >= studies)) && break
		sleep 1
	done
	if ((count < studies)); then
		log "round $r: only $count of $studies studies minted in time; no mint figure"
		return 0
	fi
	last=$(psql -qXAt "$SRV_URL" -c "SELECT extract(epoch FROM max(minted_at)) FROM minted_records")
	record medimint "$r" mint_studies_per_min "$(python3 -c "print($studies * 60 / max($last - $t0 - 60, 0.001))")" studies/min
}

for ((r = 1; r <= ROUNDS; r++)); do
	if ((r % 2)); then order=(medimint orthanc "${SYSTEMS_SCP[@]}"); else order=(orthanc "${SYSTEMS_SCP[@]}" medimint); fi
	for sys in "${order[@]}"; do
		log "round $r/$ROUNDS: $sys"
		# The machine is shared: the load is part of the record.
		record machine "$r" loadavg_1m "$(cut -d' ' -f1 /proc/loadavg)" load
		round_system "$sys" "$r"
	done
done

GOBENCH="$WORK/go.txt"
: >"$GOBENCH"
if [[ "${BENCH_GO:-1}" != 0 ]]; then
	for pkg in dicom dimse mint/envelope mint/blobstore mint/pinning mint mint/chain index gateway access; do
		log "go test -bench ./$pkg"
		MEDIMINT_TEST_PG="$PG" go test -run '^$' -bench . -benchmem -benchtime="${BENCH_GOTIME:-300ms}" -timeout 30m "./$pkg" >>"$GOBENCH" 2>&1 ||
			log "benchmarks of $pkg failed (kept in the report)"
	done
	if [[ "${MEDIMINT_BENCH_1M:-}" == 1 ]]; then
		log "index Find over 1M instances"
		MEDIMINT_BENCH_1M=1 MEDIMINT_TEST_PG="$PG" go test -run '^$' -bench 'Find' -benchmem -timeout 60m ./index >>"$GOBENCH" 2>&1 ||
			log "1M index benchmark failed"
	fi
fi

mkdir -p "$OUT"
cp "$RESULTS" "$OUT/$DATE.jsonl"
# BENCH_GO=0 keeps the day's Go benchmark figures, if any.
if [[ "${BENCH_GO:-1}" != 0 || ! -f "$OUT/$DATE-go.txt" ]]; then
	cp "$GOBENCH" "$OUT/$DATE-go.txt"
fi
GOBENCH="$OUT/$DATE-go.txt"
peers="Orthanc $(dpkg-query -W -f '${Version}' orthanc) with DICOMweb plugin $(dpkg-query -W -f '${Version}' orthanc-dicomweb), default settings; dcmtk $(dpkg-query -W -f '${Version}' dcmtk) storescp writing files (--fork), as it is and under bench/durable (fsync of each file and its directory before the response)"
"$WORK/report" -results "$RESULTS" -gobench "$GOBENCH" -peers "$peers" -md "$OUT/$DATE.md" -png "$OUT/$DATE.png"
log "wrote $OUT/$DATE.md and $OUT/$DATE.png"
