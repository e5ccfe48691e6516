#!/usr/bin/env bash
# core-starmap benchmark: chunker, SHA-256 and codec throughput on one Linux
# source tarball, and the dedup ratio between two releases, at the default
# chunk sizes (16/64/256 KiB) and at 8 KiB average (2/8/64 KiB).
#
#   bench/starmap.sh [BUILD_DIR]     (default: build-release, configured
#                                     with -DCMAKE_BUILD_TYPE=Release)
# The corpus is fetched once into bench/corpus/ (gitignored).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
build=${1:-$repo/build-release}
corpus=$here/corpus
old=6.1.187-1
new=6.1.192-2
runs=${RUNS:-5}

fetch() { # version -> corpus/linux-source-<version>.tar
    local v=$1 tar=$corpus/linux-source-$1.tar
    [ -s "$tar" ] && return 0
    mkdir -p "$corpus/deb-$v"
    (cd "$corpus/deb-$v" && ls ./*.deb >/dev/null 2>&1 ||
        apt-get download "linux-source-6.1=$v")
    dpkg-deb -x "$corpus"/deb-"$v"/*.deb "$corpus/x-$v"
    local xz
    xz=$(find "$corpus/x-$v" -name 'linux-source-*.tar.xz' | head -n1)
    [ -n "$xz" ] || { echo "no .tar.xz in the $v package" >&2; exit 1; }
    unxz -c "$xz" > "$tar.part" && mv "$tar.part" "$tar"
    rm -rf "$corpus/x-$v"
}

mkdir -p "$corpus"
if ! command -v apt-get >/dev/null; then
    echo "starmap.sh: apt-get is needed to fetch the corpus" >&2
    exit 1
fi
fetch "$old"
fetch "$new"

if [ ! -x "$build/bench/bench_starmap" ]; then
    cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$build" --target bench_starmap -j2 >/dev/null
fi
bin=$build/bench/bench_starmap
a=$corpus/linux-source-$old.tar
b=$corpus/linux-source-$new.tar

echo "== default sizes (16/64/256 KiB): throughput on $(basename "$b")"
"$bin" --runs "$runs" "$b"
echo "== dedup $(basename "$a") -> $(basename "$b"), default sizes"
"$bin" --dedup-only "$a" "$b"
echo "== dedup, 8 KiB average (2/8/64 KiB)"
"$bin" --dedup-only --min 2048 --avg 8192 --max 65536 "$a" "$b"
