#!/usr/bin/env bash
# Orbit against rsync and cp on two Debian Linux source releases
# (linux-source-6.1 6.1.187-1 and 6.1.192-2, ~78,600 files, ~1.36 GB tars).
#
#   bench/compare.sh [BUILD_DIR] [--runs N] [--tree-runs N] [--scratch DIR]
#                    [--only LIST] [--fsync-ref] [--keep] [--doc]
#
#   BUILD_DIR     holds orbit and orbit-star (default build-bench; configured
#                 Release and built if the binaries are missing)
#   --runs N      repetitions of the single-tar cases (default 3)
#   --tree-runs N repetitions of the tree cases (default 1)
#   --scratch DIR where trees, destinations, journals and servers live
#                 (default bench/out/compare; same filesystem as the corpus)
#   --only LIST   comma-separated subset of: tree,tar,resume (default all)
#   --fsync-ref   also time `rsync -a --fsync` for the copies (orbit-star
#                 fsyncs every file before it acknowledges it; cp and plain
#                 rsync leave the data in the page cache)
#   --keep        leave the scratch directory in place
#   --doc         write the table into docs/benchmarks.md ("Orbit vs rsync
#                 and cp", between the compare:begin/end markers)
#
# Side by side in one run, every case from the same warm page cache:
#   tree-copy  cp -a, rsync -a to an rsync daemon, orbit copy to a local
#              destination (in-process star), orbit copy to an orbit-star
#              (--compress auto: raw chunks, the star being on this host),
#              and the same with --compress zstd (as to another host)
#   tree-sync  the newer tree over that copy: rsync -a, orbit sync (local,
#              star, star with --compress zstd)
#   tar-copy   the older .tar the same five ways
#   tar-sync   the newer .tar over it under the same name: rsync, orbit sync
#   resume     orbit copy of the .tar to a star under --bwlimit, the star
#              SIGKILLed at half the file, restarted, the same command rerun
# Every server runs on 127.0.0.1 on a free port and is stopped on exit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
corpus=$here/corpus
old_v=6.1.187-1
new_v=6.1.192-2

build=$repo/build-bench
runs=3
tree_runs=1
scratch=$here/out/compare
only=tree,tar,resume
keep=0
doc=0
fsync_ref=0
resume_bwlimit=${RESUME_BWLIMIT:-40M}
cmdline="bench/compare.sh $*"
while [ $# -gt 0 ]; do
    case $1 in
    --runs) runs=$2; shift 2 ;;
    --tree-runs) tree_runs=$2; shift 2 ;;
    --scratch) scratch=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --fsync-ref) fsync_ref=1; shift ;;
    --doc) doc=1; shift ;;
    -h | --help) sed -n '2,33p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "compare.sh: unknown option $1" >&2; exit 2 ;;
    *) build=$(cd "$1" 2>/dev/null && pwd || echo "$1"); shift ;;
    esac
done
want() { case ",$only," in *",$1,"*) return 0 ;; esac; return 1; }

# ---- tools -------------------------------------------------------------------
need_pkgs=()
command -v rsync >/dev/null || need_pkgs+=(rsync)
[ -x /usr/bin/time ] || need_pkgs+=(time)
command -v ss >/dev/null || need_pkgs+=(iproute2)
command -v python3 >/dev/null || need_pkgs+=(python3)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    echo "compare.sh: installing ${need_pkgs[*]}" >&2
    apt-get install -y "${need_pkgs[@]}" >/dev/null
fi
if [ ! -x "$build/cli/orbit" ] || [ ! -x "$build/cli/orbit-star" ]; then
    cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$build" --target orbit orbit-star -j2 >/dev/null
fi
btype=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build/CMakeCache.txt" 2>/dev/null)
[ "$btype" = Release ] ||
    echo "compare.sh: warning: $build is a '${btype:-?}' build, not Release" >&2
ORBIT=$build/cli/orbit
load_start=$(cut -d' ' -f1 /proc/loadavg)
commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$repo" diff --quiet HEAD -- 2>/dev/null || commit="$commit + uncommitted changes"
STAR=$build/cli/orbit-star

# ---- corpus (the fetch of bench/starmap.sh) ----------------------------------
fetch() { # version -> corpus/linux-source-<version>.tar
    local v=$1 tar=$corpus/linux-source-$1.tar
    [ -s "$tar" ] && return 0
    mkdir -p "$corpus/deb-$v"
    (cd "$corpus/deb-$v" && ls ./*.deb >/dev/null 2>&1 ||
        apt-get download "linux-source-6.1=$v")
    dpkg-deb -x "$corpus"/deb-"$v"/*.deb "$corpus/x-$v"
    local xz
    xz=$(find "$corpus/x-$v" -name 'linux-source-*.tar.xz' | sed -n 1p)
    [ -n "$xz" ] || { echo "no .tar.xz in the $v package" >&2; exit 1; }
    unxz -c "$xz" >"$tar.part" && mv "$tar.part" "$tar"
    rm -rf "$corpus/x-$v"
}
mkdir -p "$corpus"
fetch "$old_v"
fetch "$new_v"
old_tar=$corpus/linux-source-$old_v.tar
new_tar=$corpus/linux-source-$new_v.tar

# ---- scratch, servers, cleanup -----------------------------------------------
S=$scratch
rm -rf "$S"
mkdir -p "$S"/{src,dst,state,tmp}
S=$(cd "$S" && pwd)
export ORBIT_STATE_DIR=$S/state
results=$S/results.tsv
: >"$results"
servers=() # "timepid:childpid"
cleanup() {
    local s
    for s in "${servers[@]}"; do
        kill -TERM "${s#*:}" 2>/dev/null || true
    done
    for s in "${servers[@]}"; do
        wait "${s%%:*}" 2>/dev/null || true
    done
    if [ "$keep" = 0 ]; then rm -rf "$S"; else echo "kept $S" >&2; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_listen() { # port pid
    local _
    for _ in $(seq 1 200); do
        ss -Hltn "sport = :$1" | grep -q . && return 0
        kill -0 "$2" 2>/dev/null || break
        sleep 0.05
    done
    echo "compare.sh: server on port $1 did not start" >&2
    return 1
}
# start_server NAME CMD...: runs CMD under GNU time (its %M covers the
# forked children it reaps, e.g. rsync's per-connection receivers); sets
# srv_tpid, srv_pid.
start_server() {
    local name=$1
    shift
    /usr/bin/time -f '%M %U %S' -o "$S/tmp/$name.time" "$@" \
        >"$S/tmp/$name.out" 2>&1 &
    srv_tpid=$!
    srv_pid=
    local _
    for _ in $(seq 1 100); do
        srv_pid=$(pgrep -P "$srv_tpid" | head -n1 || true)
        [ -n "$srv_pid" ] && break
        sleep 0.02
    done
    servers+=("$srv_tpid:$srv_pid")
}
# stop_server NAME: sets srv_rss (KiB, max of VmHWM and GNU time's %M)
# and srv_cpu (user+sys seconds).
stop_server() {
    local name=$1 hwm
    hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$srv_pid/status" 2>/dev/null || echo 0)
    kill -TERM "$srv_pid" 2>/dev/null || true
    wait "$srv_tpid" 2>/dev/null || true
    local m u s
    read -r m u s < <(tail -n1 "$S/tmp/$name.time")
    srv_rss=$((m > ${hwm:-0} ? m : ${hwm:-0}))
    srv_cpu=$(awk -v u="$u" -v s="$s" 'BEGIN {printf "%.2f", u + s}')
    local keep_s=() x
    for x in "${servers[@]}"; do
        [ "$x" = "$srv_tpid:$srv_pid" ] || keep_s+=("$x")
    done
    servers=("${keep_s[@]}")
}

token=$S/token
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$token"
rsync_conf=$S/rsyncd.conf
{
    echo "use chroot = no"
    echo "munge symlinks = no"
    echo "log file = $S/tmp/rsyncd.log"
    if [ "$(id -u)" = 0 ]; then echo "uid = root"; echo "gid = root"; fi
    echo "[bench]"
    echo "    path = $S/dst/rsync"
    echo "    read only = no"
} >"$rsync_conf"

start_rsyncd() {
    rsync_port=$(free_port)
    start_server rsyncd rsync --daemon --no-detach --config="$rsync_conf" \
        --address=127.0.0.1 --port="$rsync_port"
    wait_listen "$rsync_port" "$srv_tpid"
}
start_star() { # root
    star_port=$(free_port)
    start_server star "$STAR" --root "$1" --listen "127.0.0.1:$star_port" \
        --token-file "$token" --quiet
    wait_listen "$star_port" "$srv_tpid"
}

# ---- one timed run -------------------------------------------------------------
# client CASE TOOL REP CMD...: runs CMD under GNU time; sets cl_wall, cl_rss,
# cl_cpu; its stdout is in $S/tmp/last.out.
client() {
    local c=$1 t=$2 r=$3
    shift 3
    sync # start every run with no dirty pages of the previous one
    local rc=0
    /usr/bin/time -f '%e %M %U %S' -o "$S/tmp/client.time" "$@" \
        >"$S/tmp/last.out" 2>"$S/tmp/last.err" || rc=$?
    if [ $rc -ne 0 ]; then
        echo "compare.sh: $c/$t run $r failed (exit $rc): $*" >&2
        tail -n 20 "$S/tmp/last.out" "$S/tmp/last.err" >&2
        exit 1
    fi
    local e m u s
    read -r e m u s < <(tail -n1 "$S/tmp/client.time")
    cl_wall=$e
    cl_rss=$m
    cl_cpu=$(awk -v u="$u" -v s="$s" 'BEGIN {printf "%.2f", u + s}')
}
record() { # case tool rep wall rss_c rss_s cpu_c cpu_s sent raw(bytes|human) wire
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$results"
    printf '  %-9s %-12s run %s: %6.2f s  sent %s  rss %s/%s KiB  cpu %s/%s s\n' \
        "$1" "$2" "$3" "$4" "$9" "$5" "$6" "$7" "$8" >&2
}
human_to_bytes() { # "1.3 GiB" -> bytes
    awk -v v="$1" -v u="$2" 'BEGIN {
        m = 1; if (u == "KiB") m = 1024; else if (u == "MiB") m = 1048576;
        else if (u == "GiB") m = 1073741824; else if (u == "TiB") m = 1099511627776;
        printf "%.0f", v * m }'
}
# orbit's report line "bytes: X read, Y sent (Z of chunks), W deduplicated";
# the exact sent count comes from the journal (`orbit status`).
orbit_sent() { # state dir -> exact bytes sent by the last run of its only job
    ORBIT_STATE_DIR=$1 "$ORBIT" status | sed -n 's/.*  sent \([0-9]*\) .*/\1/p' | tail -n1
}
orbit_wire() { # report -> bytes of every frame both ways ("wire: X out, Y in")
    local o i
    o=$(grep -m1 '^  wire:' "$1" | sed 's/^  wire: \([0-9.]*\) \([A-Za-z]*\) out.*/\1 \2/')
    i=$(grep -m1 '^  wire:' "$1" | sed 's/.* out, \([0-9.]*\) \([A-Za-z]*\) in.*/\1 \2/')
    if [ -z "$o" ] || [ -z "$i" ]; then echo -; return; fi
    # shellcheck disable=SC2086
    echo $(($(human_to_bytes $o) + $(human_to_bytes $i)))
}
orbit_raw() { # report -> "bytes|human" of chunks before compression
    local l
    l=$(grep -m1 '^  bytes:' "$1" | sed 's/.*sent (\([0-9.]*\) \([A-Za-z]*\) of chunks.*/\1 \2/')
    # shellcheck disable=SC2086
    echo "$(human_to_bytes $l)|$l"
}

run_cp() { # case rep src dst
    client "$1" cp "$2" cp -a "$3" "$4"
    record "$1" cp "$2" "$cl_wall" "$cl_rss" - "$cl_cpu" - - - -
}
run_rsync() { # case rep src/ module-path/ [rsync options]
    local c=$1 r=$2 src=$3 dst=$4 tool=rsync
    shift 4
    [ $# -gt 0 ] && tool=rsync-fsync
    start_rsyncd
    client "$c" $tool "$r" rsync -a --stats "$@" "$src" \
        "rsync://127.0.0.1:$rsync_port/bench/$dst"
    stop_server rsyncd
    local sent recv
    sent=$(sed -n 's/^Total bytes sent: \([0-9,]*\).*/\1/p' "$S/tmp/last.out" | tr -d ,)
    recv=$(sed -n 's/^Total bytes received: \([0-9,]*\).*/\1/p' "$S/tmp/last.out" | tr -d ,)
    record "$c" $tool "$r" "$cl_wall" "$cl_rss" "$srv_rss" "$cl_cpu" "$srv_cpu" "$sent" "$sent" \
        "$((sent + recv))"
}
run_orbit_local() { # case rep copy|sync src/ dst
    local st=$S/state/$1-local-$2
    ORBIT_STATE_DIR=$st client "$1" orbit-local "$2" "$ORBIT" "$3" "$4" "$5"
    record "$1" orbit-local "$2" "$cl_wall" "$cl_rss" - "$cl_cpu" - \
        "$(orbit_sent "$st")" "$(orbit_raw "$S/tmp/last.out")" \
        "$(orbit_wire "$S/tmp/last.out")"
}
# run_orbit_star case rep copy|sync src/ star-root path [TOOL OPTION...]:
# by default TOOL orbit-star with no options (--compress auto: raw chunks to
# a star on this host); orbit-star-z passes --compress zstd, what auto does
# for a star on another host.
run_orbit_star() {
    local c=$1 r=$2 verb=$3 src=$4 root=$5 path=$6 tool=orbit-star
    shift 6
    if [ $# -gt 0 ]; then tool=$1; shift; fi
    local st=$S/state/$c-$tool-$r
    start_star "$root"
    ORBIT_STATE_DIR=$st client "$c" $tool "$r" "$ORBIT" "$verb" "$@" "$src" \
        "star://127.0.0.1:$star_port/$path" --token-file "$token"
    stop_server star
    record "$c" $tool "$r" "$cl_wall" "$cl_rss" "$srv_rss" "$cl_cpu" "$srv_cpu" \
        "$(orbit_sent "$st")" "$(orbit_raw "$S/tmp/last.out")" \
        "$(orbit_wire "$S/tmp/last.out")"
}
ZSTD=(orbit-star-z --compress zstd)
# differs REF DIR: files of REF missing or different in DIR (extras are fine:
# neither rsync -a nor orbit sync deletes without --delete). An rsync daemon
# stores link targets with "./" steps removed: the same target, not a difference.
differs() {
    diff -rq --no-dereference "$1" "$2" 2>&1 | grep -v "^Only in $2" |
        while IFS= read -r line; do
            if [[ $line =~ ^Symbolic\ links\ (.*)\ and\ (.*)\ differ$ ]]; then
                local a b
                a=$(readlink "${BASH_REMATCH[1]}" | sed 's#/\./#/#g; s#^\./##')
                b=$(readlink "${BASH_REMATCH[2]}" | sed 's#/\./#/#g; s#^\./##')
                [ "$a" = "$b" ] && continue
            fi
            echo "$line"
        done | head -n 5 || true
}
check() { # what ref dir
    local d
    d=$(differs "$2" "$3")
    if [ -n "$d" ]; then
        echo "compare.sh: $1: $3 differs from $2:" >&2
        echo "$d" >&2
        exit 1
    fi
}
fresh() { local d; for d in "$@"; do rm -rf "$d"; mkdir -p "$d"; done; }

# first lines read with sed, which drains the pipe: no SIGPIPE under pipefail
orbit_version=$("$ORBIT" --version 2>/dev/null | sed -n 1p)
rsync_version=$(rsync --version | sed -n 1p)
echo "== $orbit_version ($btype), $rsync_version" >&2
echo "== scratch $S" >&2

# ---- trees ---------------------------------------------------------------------
if want tree; then
    echo "== unpacking both trees" >&2
    mkdir -p "$S/src/old" "$S/src/new"
    tar -xf "$old_tar" -C "$S/src/old"
    tar -xf "$new_tar" -C "$S/src/new"
    OLD=$(echo "$S"/src/old/*)
    NEW=$(echo "$S"/src/new/*)
    files=$(find "$OLD" -type f | wc -l)
    changed=$( (cd "$OLD" && find . -type f -print0 | xargs -0 sha256sum) |
        (cd "$NEW" && sha256sum --quiet -c - 2>/dev/null) | grep -c FAILED || true)
    echo "tree	$files	$changed	$(du -sb "$OLD" | cut -f1)" >"$S/tree.info"
    echo "== tree: $files files, $changed of them changed in $new_v" >&2
    for r in $(seq 1 "$tree_runs"); do
        fresh "$S/dst/cp" "$S/dst/rsync/tree" "$S/dst/orbit-local" "$S/dst/orbit-star" \
            "$S/dst/orbit-star-z"
        rmdir "$S/dst/cp" # cp -a SRC DST creates DST
        run_cp tree-copy "$r" "$OLD" "$S/dst/cp"
        if [ "$fsync_ref" = 1 ]; then
            run_rsync tree-copy "$r" "$OLD/" tree-fsync/ --fsync
            rm -rf "$S/dst/rsync/tree-fsync"
        fi
        run_rsync tree-copy "$r" "$OLD/" tree/
        run_orbit_local tree-copy "$r" copy "$OLD/" "$S/dst/orbit-local/tree"
        run_orbit_star tree-copy "$r" copy "$OLD/" "$S/dst/orbit-star" tree
        run_orbit_star tree-copy "$r" copy "$OLD/" "$S/dst/orbit-star-z" tree "${ZSTD[@]}"
        run_rsync tree-sync "$r" "$NEW/" tree/
        run_orbit_local tree-sync "$r" sync "$NEW/" "$S/dst/orbit-local/tree"
        run_orbit_star tree-sync "$r" sync "$NEW/" "$S/dst/orbit-star" tree
        run_orbit_star tree-sync "$r" sync "$NEW/" "$S/dst/orbit-star-z" tree "${ZSTD[@]}"
        if [ "$r" = 1 ]; then
            echo "  checking the synced trees" >&2
            check tree-sync "$NEW" "$S/dst/rsync/tree"
            check tree-sync "$NEW" "$S/dst/orbit-local/tree"
            check tree-sync "$NEW" "$S/dst/orbit-star/tree"
            check tree-sync "$NEW" "$S/dst/orbit-star-z/tree"
        fi
    done
    rm -rf "$S/dst/cp" "$S/dst/rsync/tree" "$S/dst/orbit-local" "$S/dst/orbit-star" \
        "$S/dst/orbit-star-z"
fi

# ---- the single .tar -----------------------------------------------------------
# Both versions under one name, so the newer one syncs over the older one.
link_or_copy() { ln "$1" "$2" 2>/dev/null || cp --reflink=auto "$1" "$2"; }
if want tar || want resume; then
    mkdir -p "$S/src/tar-old" "$S/src/tar-new"
    link_or_copy "$old_tar" "$S/src/tar-old/linux.tar"
    link_or_copy "$new_tar" "$S/src/tar-new/linux.tar"
    touch -r "$old_tar" "$S/src/tar-old/linux.tar"
    touch -r "$new_tar" "$S/src/tar-new/linux.tar"
fi
if want tar; then
    echo "== tar: $(stat -c %s "$old_tar") bytes" >&2
    for r in $(seq 1 "$runs"); do
        fresh "$S/dst/cp-tar" "$S/dst/rsync/tar" "$S/dst/orbit-local" "$S/dst/orbit-star" \
            "$S/dst/orbit-star-z"
        run_cp tar-copy "$r" "$S/src/tar-old/linux.tar" "$S/dst/cp-tar/linux.tar"
        if [ "$fsync_ref" = 1 ]; then
            run_rsync tar-copy "$r" "$S/src/tar-old/" tar-fsync/ --fsync
            rm -rf "$S/dst/rsync/tar-fsync"
        fi
        run_rsync tar-copy "$r" "$S/src/tar-old/" tar/
        run_orbit_local tar-copy "$r" copy "$S/src/tar-old/" "$S/dst/orbit-local/tar"
        run_orbit_star tar-copy "$r" copy "$S/src/tar-old/" "$S/dst/orbit-star" tar
        run_orbit_star tar-copy "$r" copy "$S/src/tar-old/" "$S/dst/orbit-star-z" tar \
            "${ZSTD[@]}"
        run_rsync tar-sync "$r" "$S/src/tar-new/" tar/
        run_orbit_local tar-sync "$r" sync "$S/src/tar-new/" "$S/dst/orbit-local/tar"
        run_orbit_star tar-sync "$r" sync "$S/src/tar-new/" "$S/dst/orbit-star" tar
        run_orbit_star tar-sync "$r" sync "$S/src/tar-new/" "$S/dst/orbit-star-z" tar \
            "${ZSTD[@]}"
        if [ "$r" = 1 ]; then
            cmp "$S/src/tar-new/linux.tar" "$S/dst/rsync/tar/linux.tar"
            cmp "$S/src/tar-new/linux.tar" "$S/dst/orbit-local/tar/linux.tar"
            cmp "$S/src/tar-new/linux.tar" "$S/dst/orbit-star/tar/linux.tar"
            cmp "$S/src/tar-new/linux.tar" "$S/dst/orbit-star-z/tar/linux.tar"
        fi
    done
    rm -rf "$S/dst/cp-tar" "$S/dst/rsync/tar" "$S/dst/orbit-local" "$S/dst/orbit-star" \
        "$S/dst/orbit-star-z"
fi

# ---- resume --------------------------------------------------------------------
if want resume; then
    size=$(stat -c %s "$old_tar")
    # what one uninterrupted copy sends (chunks after in-file dedup and zstd)
    fresh "$S/dst/resume-ref"
    start_star "$S/dst/resume-ref"
    ORBIT_STATE_DIR=$S/state/resume-ref "$ORBIT" copy -q "$S/src/tar-old/" \
        "star://127.0.0.1:$star_port/tar" --token-file "$token"
    stop_server star
    ref_sent=$(orbit_sent "$S/state/resume-ref")
    rm -rf "$S/dst/resume-ref"
    root=$S/dst/resume
    fresh "$root"
    st=$S/state/resume
    start_star "$root"
    port=$star_port
    resume_cmd=("$ORBIT" copy --bwlimit "$resume_bwlimit" "$S/src/tar-old/"
        "star://127.0.0.1:$port/tar" --token-file "$token")
    echo "== resume: ${resume_cmd[*]#"$S/"}" >&2
    ORBIT_STATE_DIR=$st "${resume_cmd[@]}" >"$S/tmp/resume1.out" 2>&1 &
    cpid=$!
    t0=$(date +%s.%N)
    held=0
    while kill -0 "$cpid" 2>/dev/null; do
        held=$(du -s -B1 "$root/.orbit" 2>/dev/null | cut -f1 || echo 0)
        [ "${held:-0}" -ge $((size / 2)) ] && break
        sleep 0.1
    done
    kill -KILL "$srv_pid"
    wait "$srv_tpid" 2>/dev/null || true
    servers=()
    t1=$(date +%s.%N)
    # The source outlives the star and retries; the operator presses ^C.
    for _ in $(seq 1 30); do kill -0 "$cpid" 2>/dev/null || break; sleep 0.1; done
    kill -INT "$cpid" 2>/dev/null || true
    rc1=0
    wait "$cpid" || rc1=$?
    run1_sent=$(orbit_sent "$st")
    echo "  star killed after $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}') s," \
        "$held bytes under .orbit, $run1_sent sent; first run exit $rc1" >&2
    # restart on the same root and port, rerun the same command
    start_server star "$STAR" --root "$root" --listen "127.0.0.1:$port" \
        --token-file "$token" --quiet
    wait_listen "$port" "$srv_tpid"
    ORBIT_STATE_DIR=$st client resume orbit-star 1 "${resume_cmd[@]}"
    stop_server star
    cmp "$S/src/tar-old/linux.tar" "$root/tar/linux.tar"
    record resume orbit-star 1 "$cl_wall" "$cl_rss" "$srv_rss" "$cl_cpu" "$srv_cpu" \
        "$(orbit_sent "$st")" "$(orbit_raw "$S/tmp/last.out")" \
        "$(orbit_wire "$S/tmp/last.out")"
    printf 'resume\t%s\t%s\t%s\t%s\t%s\t%s\n' "$size" "$held" "$rc1" \
        "$resume_bwlimit" "$run1_sent" "$ref_sent" >"$S/resume.info"
    rm -rf "$root"
fi

# ---- the table -------------------------------------------------------------------
args=(--results "$results" --scratch "$S" --runs "$runs" --tree-runs "$tree_runs"
    --old "$old_v" --new "$new_v" --command "$cmdline"
    --orbit-version "$orbit_version" --commit "$commit"
    --load "$load_start $(cut -d' ' -f1 /proc/loadavg)"
    --rsync-version "$rsync_version")
[ "$doc" = 1 ] && args+=(--doc "$repo/docs/benchmarks.md")
python3 "$here/compare_report.py" "${args[@]}"
