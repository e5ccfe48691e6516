#!/usr/bin/env bash
# Copy a tree with orbit onto a freshly made ext4 file system (a loop-mounted
# image), so that runs compare code, not the state of a file system that has
# had a million files created and deleted on it.
#
#   bench/copy_fresh.sh BUILD_DIR TREE [local|star] [--runs N] [--rsync]
#
#   BUILD_DIR  a Release build (cli/orbit, cli/orbit-star)
#   TREE       the source directory (e.g. an unpacked linux-source tree)
#   local      orbit copy TREE DST (in-process star; the default)
#   star       orbit-star on 127.0.0.1 with an ephemeral port, orbit copy to it
#   --runs N   repeat N times, each on a new file system (default 1)
#   --rsync    also time rsync -a and rsync -a --fsync (local, no daemon),
#              each onto a new file system
#
# Prints one line per run: wall, user and system seconds, peak RSS of orbit.
# Needs root (mkfs, mount); the image (6 GiB, sparse) lives in $TMPDIR.
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
build=$(cd "$1" && pwd)
tree=$(cd "$2" && pwd)
shift 2
mode=local runs=1 with_rsync=0
while [ $# -gt 0 ]; do
    case $1 in
    local | star) mode=$1; shift ;;
    --runs) runs=$2; shift 2 ;;
    --rsync) with_rsync=1; shift ;;
    *) echo "copy_fresh.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "copy_fresh.sh: needs root (mkfs, mount)" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/orbit-fresh.XXXXXX")
mnt=$work/mnt
star_pid=
cleanup() {
    [ -n "$star_pid" ] && kill -TERM "$star_pid" 2>/dev/null && wait "$star_pid" 2>/dev/null
    mountpoint -q "$mnt" && umount "$mnt"
    rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$mnt"
head -c 32 /dev/urandom | base64 >"$work/token"

fresh_fs() {
    mountpoint -q "$mnt" && umount "$mnt"
    rm -f "$work/fs.img"
    truncate -s 6G "$work/fs.img"
    mkfs.ext4 -q -F "$work/fs.img" >/dev/null
    mount -o loop "$work/fs.img" "$mnt"
    mkdir -p "$mnt/state" "$mnt/dst"
}

timed() { # label cmd...
    local label=$1
    shift
    /usr/bin/time -f "$label	%e s wall	%U s user	%S s sys	%M KiB" "$@"
}

for r in $(seq 1 "$runs"); do
    fresh_fs
    if [ "$mode" = local ]; then
        ORBIT_STATE_DIR=$mnt/state timed "orbit-local run $r" \
            "$build/cli/orbit" copy -q "$tree/" "$mnt/dst/tree"
    else
        port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
        "$build/cli/orbit-star" --root "$mnt/dst" --token-file "$work/token" \
            --listen "127.0.0.1:$port" --quiet 2>"$work/star.log" &
        star_pid=$!
        for _ in $(seq 1 100); do
            ss -Hltn "sport = :$port" | grep -q . && break
            sleep 0.05
        done
        ORBIT_STATE_DIR=$mnt/state timed "orbit-star run $r" \
            "$build/cli/orbit" copy -q --token-file "$work/token" \
            "$tree/" "star://127.0.0.1:$port/tree"
        kill -TERM "$star_pid"
        wait "$star_pid" || true
        star_pid=
    fi
    if [ "$with_rsync" = 1 ]; then
        fresh_fs
        timed "rsync -a run $r" rsync -a "$tree/" "$mnt/dst/rsync/"
        fresh_fs
        timed "rsync -a --fsync run $r" rsync -a --fsync "$tree/" "$mnt/dst/rsync/"
    fi
done
