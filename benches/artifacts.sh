#!/usr/bin/env bash
# Artifact benchmark: how fast `gzl obj-store` stores, and `gzl obj-get` restores, a directory
# of about 1 GB of mixed files through real `gzl run`s, against `cp -r` of the same directory
# on the same disk.
#
# The directory (`data/`, random bytes, so nothing compresses or dedupes by accident):
#   SMALL small files of 10 KiB, 500 to a directory   (default 20000: ~200 MB)
#   MEDIUM files of 500 KiB, 50 to a directory          (default 400:   ~200 MB)
#   LARGE files of LARGE_MB MiB each                    (default 6 x 100 MiB)
# with one executable and one symbolic link, which the restore must keep.
#
# Each repetition runs, with an empty GZL_HOME (so the store is empty and nothing is cached):
#
#   store:
#       cd "$BENCH"; (time) gzl obj-store data
#   restore: store
#       cd "$BENCH/restored.N"; (time) gzl obj-get data
#
# and then `gzl run --force store` again in the same home: every object is already in the
# store ("store again", the steady state of a build whose output did not change). The
# references, on the same disk: `cp -r data copy.N` alone, and followed by `sync` (gzl's store
# makes its objects durable before naming them, with `syncfs`: that is what `cp -r` + `sync`
# does). Before each timed command, `sync` so none pays for the last one's writeback. The
# source stays in the page cache throughout (on a 2-core machine with ~20 GB of memory), as
# it would right after a build wrote it.
#
# Medians of R repetitions (default 3) are printed as a Markdown table on stdout, with the
# throughput and the ratio to `cp -r`; the goal is at least 0.5. Progress goes to stderr.
#
# Environment:
#   R=3            timed repetitions
#   SMALL=20000    10 KiB files
#   MEDIUM=400     500 KiB files
#   LARGE=6        large files
#   LARGE_MB=100   size of each large file, in MiB
#   GZL=path       use this gzl binary instead of building target/release/gzl
#   TMP=dir        where the scratch directory is made (default: $TMPDIR or /tmp)
#   KEEP=1         keep the scratch directory for inspection
set -euo pipefail

R=${R:-3}
SMALL=${SMALL:-20000}
MEDIUM=${MEDIUM:-400}
LARGE=${LARGE:-6}
LARGE_MB=${LARGE_MB:-100}

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bench=artifacts.sh
# shellcheck source=benches/common.sh
source "$script_dir/common.sh"

for var in R SMALL MEDIUM LARGE LARGE_MB; do
    [[ ${!var} =~ ^[0-9]+$ ]] || die "$var must be a non-negative integer, not '${!var}'"
done
(( R > 0 )) || die "R must be at least 1"

repo_root=$(cd "$script_dir/.." && pwd)
command -v git >/dev/null 2>&1 || die "git is missing"
find_gzl "$repo_root"

make_scratch "${TMP:-${TMPDIR:-/tmp}}" gzl-artifacts
data=$scratch/data
repo=$scratch/repo
marks=$scratch/marks
mkdir -p "$data" "$repo" "$marks"

# --- the directory -----------------------------------------------------------------------
# `split` cuts one random stream into files of a size, PER to a directory.
fill() { # DIR COUNT SIZE_KIB PER
    local dir=$1 count=$2 kib=$3 per=$4 d=0 n
    while (( count > 0 )); do
        n=$(( count < per ? count : per ))
        mkdir -p "$dir/d$d"
        head -c $(( n * kib * 1024 )) /dev/urandom | split -b "${kib}k" -a 4 - "$dir/d$d/f"
        count=$(( count - n )) d=$(( d + 1 ))
    done
}
say "generating $SMALL x 10 KiB, $MEDIUM x 500 KiB, $LARGE x $LARGE_MB MiB in $data"
fill "$data/small" "$SMALL" 10 500
fill "$data/medium" "$MEDIUM" 500 50
mkdir -p "$data/large"
for (( i = 0; i < LARGE; i++ )); do
    head -c $(( LARGE_MB * 1024 * 1024 )) /dev/urandom >"$data/large/blob$i"
done
printf '#!/bin/sh\necho tool\n' >"$data/tool"
chmod 755 "$data/tool"
ln -s tool "$data/link"
files=$(find "$data" -type f | wc -l)
bytes=$(du -sb "$data" | cut -f1)
say "   $files files, $(( bytes / 1000000 )) MB"

# --- the pipeline --------------------------------------------------------------------------
git -C "$repo" init -q
cat >"$repo/Gzlfile" <<'EOF'
store:
    cd "$BENCH"
    t0=$(date +%s%N)
    "$GZL_BIN" obj-store data
    echo $(( ($(date +%s%N) - t0) / 1000 )) > "$MARKS/store.$REP"

restore: store
    mkdir -p "$BENCH/restored.$REP"
    cd "$BENCH/restored.$REP"
    t0=$(date +%s%N)
    "$GZL_BIN" obj-get data
    echo $(( ($(date +%s%N) - t0) / 1000 )) > "$MARKS/restore.$REP"
EOF
git -C "$repo" -c user.name=bench -c user.email=bench@localhost -c commit.gpgsign=false \
    add Gzlfile
git -C "$repo" -c user.name=bench -c user.email=bench@localhost -c commit.gpgsign=false \
    commit -q -m pipeline

gzl_run() { # REP ARGS...
    local rep=$1
    shift
    (cd "$repo" && env GZL_HOME="$scratch/home.$rep" GZL_BIN="$gzl" BENCH="$scratch" \
        MARKS="$marks" REP="$rep" "$gzl" run "$@" >"$marks/run.$rep.out" 2>&1) \
        || { cat "$marks/run.$rep.out" >&2; die "gzl run failed (repetition $rep)"; }
}

timed() { # COMMAND... -> microseconds on stdout
    local t0 t1
    t0=$(now_us)
    "$@"
    t1=$(now_us)
    echo $(( t1 - t0 ))
}

cp_sync() { cp -r "$1" "$2" && sync; }

store_us=() restore_us=() again_us=() cp_us=() cp_sync_us=()
for (( rep = 0; rep <= R; rep++ )); do
    # Repetition 0 warms up (caches, the binary) and is not counted.
    say "repetition $rep of $R$( (( rep == 0 )) && echo ' (warm-up)')"
    sync
    c=$(timed cp -r "$data" "$scratch/copy.$rep")
    sync
    cs=$(timed cp_sync "$data" "$scratch/copysync.$rep")
    sync
    gzl_run "$rep" -j 1
    cmp -s "$data/tool" "$scratch/restored.$rep/data/tool" || die "restore lost data/tool"
    [[ -x $scratch/restored.$rep/data/tool ]] || die "restore lost the executable bit"
    [[ $(readlink "$scratch/restored.$rep/data/link") == tool ]] || die "restore lost the link"
    cmp -s "$data/large/blob0" "$scratch/restored.$rep/data/large/blob0" 2>/dev/null \
        || (( LARGE == 0 )) || die "restore changed data/large/blob0"
    s=$(cat "$marks/store.$rep") r=$(cat "$marks/restore.$rep")
    sync
    gzl_run "$rep" -j 1 --force store
    a=$(cat "$marks/store.$rep")
    if (( rep > 0 )); then
        cp_us+=("$c") cp_sync_us+=("$cs") store_us+=("$s") restore_us+=("$r") again_us+=("$a")
    fi
    say "   cp -r $(( c / 1000 )) ms, cp -r + sync $(( cs / 1000 )) ms, store $(( s / 1000 )) ms, restore $(( r / 1000 )) ms, store again $(( a / 1000 )) ms"
    # Made room for the next repetition outside the timed part.
    rm -rf "$scratch/copy.$rep" "$scratch/copysync.$rep" "$scratch/restored.$rep" "$scratch/home.$rep"
    sync
done

row() { # NAME MICROSECONDS REFERENCE_MICROSECONDS
    local mbps ratio
    mbps=$(awk -v b="$bytes" -v us="$2" 'BEGIN { printf "%.0f", b / us }')
    ratio=$(awk -v us="$2" -v ref="$3" 'BEGIN { printf "%.2f", ref / us }')
    printf '| %s | %d ms | %s MB/s | %s |\n' "$1" $(( $2 / 1000 )) "$mbps" "$ratio"
}

cp_m=$(median "${cp_us[@]}")
cps_m=$(median "${cp_sync_us[@]}")
printf '\n%d files, %d MB; medians of %d repetitions. Speed relative to `cp -r` (goal: at least 0.50).\n\n' \
    "$files" $(( bytes / 1000000 )) "$R"
printf '| what | time | throughput | vs cp -r |\n|---|---|---|---|\n'
row 'cp -r' "$cp_m" "$cp_m"
row 'cp -r + sync' "$cps_m" "$cp_m"
row 'gzl obj-store (new objects, durable)' "$(median "${store_us[@]}")" "$cp_m"
row 'gzl obj-store, vs cp -r + sync' "$(median "${store_us[@]}")" "$cps_m"
row 'gzl obj-store again (all objects known)' "$(median "${again_us[@]}")" "$cp_m"
row 'gzl obj-get' "$(median "${restore_us[@]}")" "$cp_m"
