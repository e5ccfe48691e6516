#!/usr/bin/env bash
# The fuzz pass: runs every libFuzzer binary of a clang -DORBIT_FUZZ=ON build
# for a fixed time over a scratch copy of its checked-in corpus (the
# repository is not modified unless something crashes).
#
#   tests/fuzz/run.sh BUILD NAME...      (make fuzz does this)
#
# Environment: FUZZ_SECONDS (per target, default 20), FUZZ_JOBS (targets run
# at once, default 2), FUZZ_RSS_MB (default 2048), FUZZ_TIMEOUT (seconds per
# input, default 10).
#
# A crash, leak, timeout or out-of-memory input is copied into
# tests/fuzz/crashes/NAME/ as NAME-crash-SHA1 (NAME-leak-..., ...);
# the replay tests run that directory too once it holds a file, so the input
# stays a regression test once it is committed with its fix. The pass then
# fails, naming the input. Inputs already in tests/fuzz/crashes/NAME/ are
# loaded with the corpus, before any fuzzing: a crash that comes back fails
# the pass at once.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: run.sh BUILD NAME...}
shift
[ $# -gt 0 ] || { echo "usage: run.sh BUILD NAME..." >&2; exit 2; }
secs=${FUZZ_SECONDS:-20}
jobs=${FUZZ_JOBS:-2}
rss=${FUZZ_RSS_MB:-2048}
per_input=${FUZZ_TIMEOUT:-10}
work=$build/fuzz-work

# One target: copy its corpus, fuzz, and leave a summary in $dir/result.
run_one() {
    local name=$1 bin=$build/tests/fuzz/fuzz_$1 dir=$work/$1
    local crashes=$here/crashes/$1
    rm -rf "$dir"
    mkdir -p "$dir/corpus" "$dir/artifacts"
    if [ ! -x "$bin" ]; then
        echo "FAIL $name: $bin is not built" >"$dir/result"
        return
    fi
    cp "$here/corpus/$name/"* "$dir/corpus/"
    local seeds extra=()
    seeds=$(find "$dir/corpus" -type f | wc -l)
    if [ -n "$(ls -A "$crashes" 2>/dev/null)" ]; then
        extra=("$crashes")
    fi
    local t0 t1 rc
    t0=$(date +%s.%N)
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:symbolize=1 \
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        "$bin" -max_total_time="$secs" -rss_limit_mb="$rss" \
        -timeout="$per_input" -print_final_stats=1 \
        -artifact_prefix="$dir/artifacts/" "$dir/corpus" "${extra[@]}" \
        >"$dir/log" 2>&1
    rc=$?
    t1=$(date +%s.%N)
    local execs size secs_taken
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" |
            tail -1)
    size=$(find "$dir/corpus" -type f | wc -l)
    secs_taken=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    local line
    line=$(printf '%-12s %10s execs  corpus %4s -> %4s  %6s s' "$name" \
           "${execs:-?}" "$seeds" "$size" "$secs_taken")
    local found=()
    for a in "$dir/artifacts/"*; do
        [ -f "$a" ] || continue
        # NAME-crash-SHA1: .gitignore hides a bare crash-* file.
        mkdir -p "$crashes"
        cp "$a" "$crashes/$name-$(basename "$a")"
        found+=("tests/fuzz/crashes/$name/$name-$(basename "$a")")
    done
    if [ "$rc" -eq 0 ] && [ ${#found[@]} -eq 0 ]; then
        echo "ok   $line" >"$dir/result"
    elif [ ${#found[@]} -gt 0 ]; then
        echo "FAIL $line  exit $rc, input: ${found[*]}" >"$dir/result"
    else
        echo "FAIL $line  exit $rc, no input saved (see $dir/log)" \
            >"$dir/result"
    fi
}

mkdir -p "$work"
echo "fuzz: $# target(s), ${secs} s each, $jobs at a time, rss limit ${rss} MB"
running=0
for name in "$@"; do
    if [ "$running" -ge "$jobs" ]; then
        wait -n
        running=$((running - 1))
    fi
    run_one "$name" &
    running=$((running + 1))
done
wait

failed=0
total=0
for name in "$@"; do
    r=$(cat "$work/$name/result" 2>/dev/null || echo "FAIL $name: no result")
    echo "fuzz: $r"
    n=$(awk '{ print $3 }' <<<"$r")
    [[ "$n" =~ ^[0-9]+$ ]] && total=$((total + n))
    case $r in
    ok*) ;;
    *)
        failed=$((failed + 1))
        echo "---- $work/$name/log (last 40 lines)"
        tail -n 40 "$work/$name/log" 2>/dev/null
        ;;
    esac
done
if [ "$failed" -gt 0 ]; then
    echo "fuzz: $failed of $# target(s) FAILED; each input above is saved under"
    echo "fuzz: tests/fuzz/crashes/NAME/ - reproduce with"
    echo "fuzz:   $build/tests/fuzz/fuzz_NAME tests/fuzz/crashes/NAME/FILE"
    echo "fuzz: fix it and commit the input: the replay tests keep running it"
    exit 1
fi
echo "fuzz: all $# target(s) passed, $total executions"
