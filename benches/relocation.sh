#!/usr/bin/env bash
# Relocation benchmark: what it costs `gzl obj-store` to find, and `gzl obj-get` to rewrite,
# the workspace's path in stored text files (docs/design/relocation.md), through real
# `gzl run`s in two workspaces of one repository.
#
# The stored directory (`data/`) is FILES text files of 1 KiB, 500 to a directory, each naming
# the workspace on every line (the worst case: every file is rewritten, many times). Each
# repetition, with an empty GZL_HOME:
#
#   store:                      run 1, workspace A: makes data/, then (time) obj-store data
#   restore: store              run 1, workspace A: (time) obj-get data into a new directory
#                                 (the same workspace: the stored bytes), then (time) cp -r
#                                 data; the stage fails, so A is kept
#                               run 2, workspace B: `store` is cached; (time) obj-get data,
#                                 rewritten to B
#
# Medians of R repetitions (default 3) are printed as a Markdown table on stdout, relative to
# `cp -r`. Progress goes to stderr.
#
# Environment:
#   R=3            timed repetitions
#   FILES=20000    1 KiB text files
#   GZL=path       use this gzl binary instead of building target/release/gzl
#   TMP=dir        where the scratch directory is made (default: $TMPDIR or /tmp)
#   KEEP=1         keep the scratch directory for inspection
set -euo pipefail

R=${R:-3}
FILES=${FILES:-20000}

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bench=relocation.sh
# shellcheck source=benches/common.sh
source "$script_dir/common.sh"

for var in R FILES; do
    [[ ${!var} =~ ^[0-9]+$ ]] || die "$var must be a non-negative integer, not '${!var}'"
done
(( R > 0 )) || die "R must be at least 1"

repo_root=$(cd "$script_dir/.." && pwd)
command -v git >/dev/null 2>&1 || die "git is missing"
find_gzl "$repo_root"

make_scratch "${TMP:-${TMPDIR:-/tmp}}" gzl-relocation
marks=$scratch/marks
mkdir -p "$marks"

git_() {
    git -c user.name=bench -c user.email=bench@localhost -c commit.gpgsign=false "$@"
}

store_us=() same_us=() moved_us=() cp_us=()
for (( rep = 0; rep <= R; rep++ )); do
    # Repetition 0 warms up (caches, the binary) and is not counted.
    say "repetition $rep of $R$( (( rep == 0 )) && echo ' (warm-up)')"
    repo=$scratch/repo.$rep
    mkdir -p "$repo"
    git_ -C "$repo" init -q
    cat >"$repo/Gzlfile" <<'EOF'
store:
    @when seed
    per=500 left=$FILES d=0
    while (( left > 0 )); do
        n=$(( left < per ? left : per ))
        mkdir -p data/d$d
        { yes "$GZL_REPO_ROOT/.venv/lib/python3/site-packages" || true; } | head -c $(( n * 1024 )) \
            | split -b 1k -a 4 - data/d$d/f
        left=$(( left - n )) d=$(( d + 1 ))
    done
    sync
    t0=$(date +%s%N)
    "$GZL_BIN" obj-store data
    echo $(( ($(date +%s%N) - t0) / 1000 )) > "$MARKS/store"

restore: store
    mkdir -p restored
    sync
    t0=$(date +%s%N)
    (cd restored && "$GZL_BIN" obj-get data)
    echo $(( ($(date +%s%N) - t0) / 1000 )) > "$MARKS/restore.$(cat fail)"
    if [ -d data ]; then
        sync
        t0=$(date +%s%N)
        cp -r data copy
        echo $(( ($(date +%s%N) - t0) / 1000 )) > "$MARKS/cp"
    fi
    exit $(cat fail)
EOF
    echo seed >"$repo/seed"
    echo 1 >"$repo/fail"
    git_ -C "$repo" add -A
    git_ -C "$repo" commit -q -m first
    run() {
        (cd "$repo" && env GZL_HOME="$scratch/home.$rep" GZL_BIN="$gzl" FILES="$FILES" \
            MARKS="$marks" "$gzl" run -j 1 >"$marks/run.out" 2>&1)
    }
    ! run || die "the first run passed: it must fail to keep its workspace"
    [[ -s $marks/restore.1 ]] || { cat "$marks/run.out" >&2; die "the first run failed early"; }
    echo 0 >"$repo/fail"
    git_ -C "$repo" commit -q -am second
    run || { cat "$marks/run.out" >&2; die "the second run failed"; }
    grep -q 'cached' "$marks/run.out" || die "store was not reused"
    s=$(cat "$marks/store") same=$(cat "$marks/restore.1") moved=$(cat "$marks/restore.0")
    c=$(cat "$marks/cp")
    if (( rep > 0 )); then
        store_us+=("$s") same_us+=("$same") moved_us+=("$moved") cp_us+=("$c")
    fi
    say "   store $(( s / 1000 )) ms, restore in the same workspace $(( same / 1000 )) ms, restore rewritten $(( moved / 1000 )) ms, cp -r $(( c / 1000 )) ms"
    rm -rf "$repo" "$scratch/home.$rep" "$marks"/*
    sync
done

row() { # NAME MICROSECONDS REFERENCE_MICROSECONDS
    local ratio
    ratio=$(awk -v us="$2" -v ref="$3" 'BEGIN { printf "%.2f", ref / us }')
    printf '| %s | %d ms | %s |\n' "$1" $(( $2 / 1000 )) "$ratio"
}

cp_m=$(median "${cp_us[@]}")
printf '\n%d text files of 1 KiB, each naming its workspace 16 times; medians of %d repetitions.\n\n' \
    "$FILES" "$R"
printf '| what | time | vs cp -r |\n|---|---|---|\n'
row 'cp -r' "$cp_m" "$cp_m"
row 'gzl obj-store (scanned, every file names the workspace)' "$(median "${store_us[@]}")" "$cp_m"
row 'gzl obj-get, same workspace (stored bytes)' "$(median "${same_us[@]}")" "$cp_m"
row 'gzl obj-get, other workspace (every file rewritten)' "$(median "${moved_us[@]}")" "$cp_m"
