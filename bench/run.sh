#!/usr/bin/env bash
# `make bench`: runs every bench/<name>.sh with the given build directory.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-build}" 2>/dev/null && pwd || echo "${1:-build}")
for s in "$here"/*.sh; do
    [ "$(basename "$s")" = run.sh ] && continue
    echo "### $(basename "$s")"
    "$s" "$build"
done
