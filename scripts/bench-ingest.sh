#!/usr/bin/env bash
# bench-ingest.sh — ingest throughput against cp(1), and index query
# latency at 1M instances, for `make bench`.
#
#   1. builds the benchmark corpus into var/bench-corpus once
#      (/work/shared/corpus/bench-corpus.sh; byte-identical on rebuild);
#   2. runs mint's BenchmarkIngest on it: cp -r, cp -r + sync, a durable
#      plaintext copy (blob store Put per file), and the pipeline (parse,
#      encrypt, hash, durable Put, index commit) with 1 and 4 senders, and
#      prints the pipeline's rate as a share of cp's (target >= 70%);
#   3. runs index's BenchmarkFind over 1M seeded instances (p50/p95 ms).
# Set SKIP_1M=1 to skip step 3 (it seeds for about two minutes).
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
	/BenchmarkIngest\/cp-/ { for (i = 1; i <= NF; i++) if ($(i+1) == "MB/s") cp = $i }
	/BenchmarkIngest\/pipeline-/ { for (i = 1; i <= NF; i++) if ($(i+1) == "MB/s") { split($1, n, "-"); pl[n[2]] = $i } }
	END { for (k in pl) if (cp > 0) printf "pipeline with %s sender(s): %.1f MB/s = %.0f%% of cp (%.1f MB/s)\n", k, pl[k], 100 * pl[k] / cp, cp }'

if [ -z "${SKIP_1M:-}" ]; then
	MEDIMINT_TEST_PG="$PG" MEDIMINT_BENCH_1M=1 go test -run='^$' -bench='^BenchmarkFind$' -benchtime=300x -timeout=30m ./index/ 2>&1 | grep -E '^(Benchmark|ok|FAIL|---)'
fi
