#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, -Dfuzz=true, in build-fuzz) and runs
# each for SECONDS (default 60) on its corpus; see test/fuzz/README.md.
#
#   test/fuzz/run.sh                 every target, 60 s each
#   test/fuzz/run.sh 3600            every target, an hour each
#   test/fuzz/run.sh 300 peer_message snapshot_file
#
# Environment:
#   FUZZ_BUILD_DIR  the clang build directory (default: build-fuzz)
#   JOBS            targets run at the same time (default 1)
#   FUZZ_ARGS       extra libFuzzer flags, e.g. "-dict=... -use_value_profile=1"
#
# New inputs libFuzzer finds go to test/fuzz/work/<target>/ (git-ignored; the
# committed seeds in corpus/<target>/ are only read). A crash, leak, timeout
# or sanitizer report stops that target and leaves the input in
# test/fuzz/crashes/<target>/ (git-ignored); the summary lists them. The exit
# status is non-zero if any target found something.
set -euo pipefail

cd "$(dirname "$0")/../.."
root=$PWD
fuzz_dir=$root/test/fuzz
build=${FUZZ_BUILD_DIR:-build-fuzz}
seconds=${1:-60}
shift || true
jobs=${JOBS:-1}

all_targets=(peer_message log_entry snapshot_header client_request client_response
             registry_command registry_result registry_snapshot registry_query registry_query_result
             snapshot_file)
if (($# > 0)); then targets=("$@"); else targets=("${all_targets[@]}"); fi

# Largest input tried: capnp messages of a few hundred bytes are the seeds; a
# snapshot file carries a header and data on top.
max_len_for() {
  case $1 in
    snapshot_file | registry_snapshot | peer_message) echo 8192 ;;
    *) echo 4096 ;;
  esac
}

# --- configure and build (only the fuzz targets) --------------------------------
if ! command -v clang++ >/dev/null; then
  echo "run.sh: clang++ not found; install clang-14 and libclang-rt-14-dev (see test/fuzz/README.md)" >&2
  exit 2
fi
if [[ ! -f $build/build.ninja ]]; then
  CC=clang CXX=clang++ meson setup "$build" -Dfuzz=true --buildtype=debugoptimized
else
  compiler=$(grep -o -m1 '"command": "[^ ]*' "$build/compile_commands.json" 2>/dev/null | sed 's/.*"//' || true)
  if [[ $(basename "${compiler:-unknown}") != clang++* ]]; then
    echo "run.sh: $build is configured with ${compiler:-an unknown compiler}, not clang++; remove it or set FUZZ_BUILD_DIR" >&2
    exit 2
  fi
  if ! python3 -c 'import json,sys; o={x["name"]:x["value"] for x in json.load(open(sys.argv[1]))}; sys.exit(0 if o.get("fuzz") else 1)' \
      "$build/meson-info/intro-buildoptions.json"; then
    meson configure "$build" -Dfuzz=true >/dev/null
  fi
fi
ninja -C "$build" $(for t in "${targets[@]}"; do echo "test/fuzz/${t}_fuzz"; done)

# --- run -------------------------------------------------------------------------
logs=$(mktemp -d "${TMPDIR:-/tmp}/conclave-fuzz-logs-XXXXXX")
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

run_one() {
  local t=$1
  local work=$fuzz_dir/work/$t crashes=$fuzz_dir/crashes/$t
  mkdir -p "$work" "$crashes"
  local dirs=("$work" "$fuzz_dir/corpus/$t")
  [[ -d $fuzz_dir/regressions/$t ]] && dirs+=("$fuzz_dir/regressions/$t")
  local rc=0
  # shellcheck disable=SC2086
  "$build/test/fuzz/${t}_fuzz" -max_total_time="$seconds" -max_len="$(max_len_for "$t")" \
    -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$crashes/" \
    ${FUZZ_ARGS:-} "${dirs[@]}" >"$logs/$t.log" 2>&1 || rc=$?
  echo "$rc" >"$logs/$t.rc"
}

echo "run.sh: ${#targets[@]} target(s), ${seconds}s each, $jobs at a time; logs in $logs"
running=0
for t in "${targets[@]}"; do
  mkdir -p "$fuzz_dir/crashes/$t"
  before=$(ls "$fuzz_dir/crashes/$t" | wc -l)
  echo "$before" >"$logs/$t.before"
  run_one "$t" &
  running=$((running + 1))
  if ((running >= jobs)); then
    wait -n || true
    running=$((running - 1))
  fi
done
wait || true

# --- summary ---------------------------------------------------------------------
set +e +o pipefail
status=0
printf '\n%-18s %8s %12s %9s %8s %s\n' target seconds executions exec/s corpus result
for t in "${targets[@]}"; do
  log=$logs/$t.log
  rc=$(cat "$logs/$t.rc" 2>/dev/null || echo '?')
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
  [[ -z $runs ]] && runs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#')
  corpus=$(grep -o 'corp: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  rate=$(grep -o 'exec/s: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  before=$(cat "$logs/$t.before")
  after=$(ls "$fuzz_dir/crashes/$t" | wc -l)
  if [[ $rc == 0 ]]; then
    result=ok
  else
    status=1
    kind=$(grep -o -m1 'ERROR: [A-Za-z]*Sanitizer: [a-z-]*\|ERROR: libFuzzer: [a-z-]*\|runtime error\|fuzz target [a-z_]*: check failed' "$log" || echo "exit $rc")
    result="FOUND ($kind): $((after - before)) new in test/fuzz/crashes/$t/ (log: $log)"
  fi
  printf '%-18s %8s %12s %9s %8s %s\n' "$t" "${secs:-?}" "${runs:-?}" "${rate:-?}" "${corpus:-?}" "$result"
done
exit $status
