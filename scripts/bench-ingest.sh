#!/usr/bin/env bash
# bench-ingest.sh — ingest throughput against cp(1) and dcmtk's storescp,
# and index query and /metadata latency, for `make bench`.
#
#   1. builds the benchmark corpus into var/bench-corpus once
#      (/work/shared/corpus/bench-corpus.sh; byte-identical on rebuild);
#   2. runs mint's BenchmarkIngest on it: cp -r, cp -r + sync, a durable
#      plaintext copy (blob store Put per file), and the pipeline (parse,
#      encrypt, hash, durable Put, index commit) with 1 and 4 senders, and
#      prints the pipeline's rate as a share of cp's and of the durable
#      copy's (target >= 70%);
#   3. runs mint's BenchmarkCStore: storescu (TCP_NODELAY) into the
#      pipeline over DIMSE and into storescp (files, no fsync), 1 and 4
#      associations, in the same run, and prints the ratios (target >= 70%);
#   4. runs index's BenchmarkMetadata (24-instance study, 1,000-instance
#      series; p50/p95 ms, targets 2 and 50 ms through the gateway);
#   5. runs index's BenchmarkFind over 1M seeded instances (p50/p95 ms).
# Set SKIP_1M=1 to skip step 5 (it seeds for about two minutes).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
CORPUS="${MEDIMINT_BENCH_CORPUS:-$ROOT/var/bench-corpus}"
GEN="${BENCH_CORPUS_SCRIPT:-/work/shared/corpus/bench-corpus.sh}"

if [ ! -f "$CORPUS/MANIFEST.sha256" ]; then
	echo "bench-ingest: building the corpus in $CORPUS" >&2
	bash "$GEN" "$CORPUS" >&2
fi
PG="${MEDIMINT_TEST_PG:-$(scripts/ensure-postgres.sh)}"

out="$(MEDIMINT_TEST_PG="$PG" MEDIMINT_BENCH_CORPUS="$CORPUS" go test -run='^$' -bench='^BenchmarkIngest$' -benchtime=3x -timeout=30m ./mint/ 2>&1 | grep -E '^(Benchmark|ok|FAIL|---)' )"
echo "$out"
echo "$out" | awk '
	function rate(unit) { for (i = 1; i <= NF; i++) if ($(i+1) == unit) return $i }
	/BenchmarkIngest\/cp-/ { cp = rate("MB/s") }
	/BenchmarkIngest\/put-plaintext-/ { put = rate("MB/s") }
	/BenchmarkIngest\/pipeline-/ { split($1, n, "-"); pl[n[2]] = rate("MB/s") }
	END { for (k in pl) if (cp > 0 && put > 0) printf "pipeline with %s sender(s): %.1f MB/s = %.0f%% of cp (%.1f MB/s), %.0f%% of a durable copy (%.1f MB/s)\n", k, pl[k], 100 * pl[k] / cp, cp, 100 * pl[k] / put, put }'

out="$(MEDIMINT_TEST_PG="$PG" MEDIMINT_BENCH_CORPUS="$CORPUS" go test -run='^$' -bench='^BenchmarkCStore$' -benchtime=3x -timeout=30m ./mint/ 2>&1 | grep -E '^(Benchmark|ok|FAIL|---)' )"
echo "$out"
echo "$out" | awk '
	function rate() { for (i = 1; i <= NF; i++) if ($(i+1) == "inst/s") return $i }
	/BenchmarkCStore\/storescp\/assoc=/ { split($1, n, "assoc="); split(n[2], a, "-"); scp[a[1]] = rate() }
	/BenchmarkCStore\/medimint\/assoc=/ { split($1, n, "assoc="); split(n[2], a, "-"); mm[a[1]] = rate() }
	END { for (k in mm) if (scp[k] > 0) printf "C-STORE, %s association(s): %.1f inst/s = %.0f%% of storescp (%.1f inst/s)\n", k, mm[k], 100 * mm[k] / scp[k], scp[k] }'

MEDIMINT_TEST_PG="$PG" go test -run='^$' -bench='^BenchmarkMetadata$' -benchtime=300x -timeout=30m ./index/ 2>&1 | grep -E '^(Benchmark|ok|FAIL|---)'

if [ -z "${SKIP_1M:-}" ]; then
	MEDIMINT_TEST_PG="$PG" MEDIMINT_BENCH_1M=1 go test -run='^$' -bench='^BenchmarkFind$' -benchtime=300x -timeout=30m ./index/ 2>&1 | grep -E '^(Benchmark|ok|FAIL|---)'
fi
