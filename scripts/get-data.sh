#!/usr/bin/env bash
# Prints the FSDD recordings folder, fetching the data set first when it is not already here:
# $DIGITD_FSDD_DIR, then ../shared/fsdd/recordings, then data/fsdd/recordings (a clone of
# github.com/Jakobovski/free-spoken-digit-dataset, CC BY-SA 4.0, Zohar Jackson and contributors).
set -euo pipefail
cd "$(dirname "$0")/.."
for d in "${DIGITD_FSDD_DIR:-}" ../shared/fsdd/recordings data/fsdd/recordings; do
  if [ -n "$d" ] && [ -d "$d" ] && ls "$d"/*.wav >/dev/null 2>&1; then realpath "$d"; exit 0; fi
done
echo "FSDD not found; cloning it into data/fsdd ..." >&2
mkdir -p data
git clone --quiet --depth 1 https://github.com/Jakobovski/free-spoken-digit-dataset data/fsdd-repo >&2
mkdir -p data/fsdd && ln -sfn ../fsdd-repo/recordings data/fsdd/recordings
realpath data/fsdd/recordings
