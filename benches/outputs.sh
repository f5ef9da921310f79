#!/usr/bin/env bash
# Outputs benchmark: how fast gzl restores a cached stage's `@outputs` into a workspace that
# lacks them, for a `node_modules`-like tree of PACKAGES x FILES small files, against `cp -r`
# of the same tree on the same disk.
#
# The tree (`node_modules/`, ignored): PACKAGES package directories (default 1000), each with
# a `package.json` and FILES-1 files of 2 KiB of random text in `lib/` (default 20: 20,000
# files, ~40 MB), and a `.bin/` of one symbolic link per 10 packages, as npm makes them.
#
# The pipeline:
#
#   install:
#       @when package.json
#       @outputs node_modules
#       cp -r "$TREE" node_modules
#   test: install
#       test -e node_modules/.bin/p0
#   other:
#       true
#
# One `gzl run` stores the tree. Then each repetition moves the pool's workspaces aside
# (outside the timed part), so the next run leases a new one, and times:
#
#   restore:  `gzl run --force test test`: a new workspace, `install` cached, its outputs restored;
#   baseline: `gzl run --force other other`: a new workspace, nothing restored.
#
# The restore costs the difference. The reference: `cp -r` of the tree on the same disk.
# Before each timed command, `sync` so none pays for the last one's writeback.
#
# Medians of R repetitions (default 5) are printed as a Markdown table on stdout; the goal is
# a restore at least 2 times as fast as `cp -r`. Progress goes to stderr.
#
# Environment:
#   R=5            timed repetitions
#   PACKAGES=1000  package directories
#   FILES=20       files per package
#   GZL=path       use this gzl binary instead of building target/release/gzl
#   TMP=dir        where the scratch directory is made (default: $TMPDIR or /tmp)
#   KEEP=1         keep the scratch directory for inspection
set -euo pipefail

R=${R:-5}
PACKAGES=${PACKAGES:-1000}
FILES=${FILES:-20}

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bench=outputs.sh
# shellcheck source=benches/common.sh
source "$script_dir/common.sh"

for var in R PACKAGES FILES; do
    [[ ${!var} =~ ^[0-9]+$ ]] || die "$var must be a non-negative integer, not '${!var}'"
done
(( R > 0 && PACKAGES > 0 && FILES > 1 )) || die "R and PACKAGES must be at least 1, FILES at least 2"

repo_root=$(cd "$script_dir/.." && pwd)
command -v git >/dev/null 2>&1 || die "git is missing"
find_gzl "$repo_root"

make_scratch "${TMP:-${TMPDIR:-/tmp}}" gzl-outputs
tree=$scratch/tree
repo=$scratch/repo
home=$scratch/home
mkdir -p "$tree/.bin" "$repo"

# --- the tree ------------------------------------------------------------------------------
say "generating $PACKAGES packages of $FILES files in $tree"
for (( p = 0; p < PACKAGES; p++ )); do
    mkdir -p "$tree/p$p/lib"
    printf '{"name":"p%d","version":"1.0.0","main":"lib/faaa.js"}\n' "$p" >"$tree/p$p/package.json"
    head -c $(( (FILES - 1) * 1536 )) /dev/urandom | base64 -w 0 \
        | split -b 2k -a 3 --additional-suffix=.js - "$tree/p$p/lib/f"
    if (( p % 10 == 0 )); then
        ln -s "../p$p/package.json" "$tree/.bin/p$p"
    fi
done
files=$(find "$tree" -type f -o -type l | wc -l)
bytes=$(du -sb "$tree" | cut -f1)
say "   $files files and links, $(( bytes / 1000000 )) MB"

# --- the pipeline --------------------------------------------------------------------------
git -C "$repo" init -q
printf 'node_modules/\n' >"$repo/.gitignore"
printf '{}\n' >"$repo/package.json"
cat >"$repo/Gzlfile" <<'EOF'
install:
    @when package.json
    @outputs node_modules
    cp -r "$TREE" node_modules
test: install
    test -e node_modules/.bin/p0
other:
    true
EOF
git -C "$repo" -c user.name=bench -c user.email=bench@localhost -c commit.gpgsign=false \
    add -A
git -C "$repo" -c user.name=bench -c user.email=bench@localhost -c commit.gpgsign=false \
    commit -q -m pipeline

gzl_run() { # ARGS...
    (cd "$repo" && env GZL_HOME="$home" TREE="$tree" "$gzl" run "$@" >"$scratch/run.out" 2>&1) \
        || { cat "$scratch/run.out" >&2; die "gzl run $* failed"; }
}

timed() { # COMMAND... -> microseconds on stdout
    local t0 t1
    t0=$(now_us)
    "$@" >&2
    t1=$(now_us)
    echo $(( t1 - t0 ))
}

# Old workspaces and copies are moved aside, not deleted, until the end: on ext4, creating
# thousands of files right after deleting thousands is many times slower for minutes, which
# would time the deletion, not the restore.
aside=0
new_workspaces() {
    if [[ -d $home/cache/workspaces ]]; then
        mv "$home/cache/workspaces" "$scratch/old.$aside"
        aside=$(( aside + 1 ))
    fi
    sync
}

say "storing the tree (the first run)"
gzl_run -j 1
grep -q 'kept @outputs' <(cd "$repo" && GZL_HOME="$home" "$gzl" logs 1 install) \
    || die "install kept no outputs"

restore_us=() baseline_us=() cp_us=()
for (( rep = 0; rep <= R; rep++ )); do
    # Repetition 0 warms up (caches, the binary) and is not counted.
    say "repetition $rep of $R$( (( rep == 0 )) && echo ' (warm-up)')"
    sync
    c=$(timed cp -r "$tree" "$scratch/copy.$rep")
    new_workspaces
    b=$(timed gzl_run -j 1 --force other other)
    new_workspaces
    r=$(timed gzl_run -j 1 --force test test)
    grep -q 'outputs restored' "$scratch/run.out" || { cat "$scratch/run.out" >&2; die "nothing was restored"; }
    restored=$(find "$home/cache/workspaces" -path '*/node_modules/*' \( -type f -o -type l \) | wc -l)
    (( restored == files )) || die "restored $restored files and links of $files"
    if (( rep > 0 )); then
        cp_us+=("$c") baseline_us+=("$b") restore_us+=("$r")
    fi
    say "   cp -r $(( c / 1000 )) ms, run with restore $(( r / 1000 )) ms, without $(( b / 1000 )) ms"
done

cp_m=$(median "${cp_us[@]}")
run_m=$(median "${restore_us[@]}")
base_m=$(median "${baseline_us[@]}")
restore_m=$(( run_m - base_m ))
(( restore_m > 0 )) || restore_m=1
printf '\n%d files and links, %d MB; medians of %d repetitions.\n\n' "$files" $(( bytes / 1000000 )) "$R"
printf '| what | time | vs cp -r |\n|---|---|---|\n'
printf '| cp -r | %d ms | 1.00 |\n' $(( cp_m / 1000 ))
printf '| gzl run, new workspace, outputs restored | %d ms | |\n' $(( run_m / 1000 ))
printf '| gzl run, new workspace, nothing restored | %d ms | |\n' $(( base_m / 1000 ))
printf '| the restore (the difference) | %d ms | %s |\n' $(( restore_m / 1000 )) \
    "$(awk -v us="$restore_m" -v ref="$cp_m" 'BEGIN { printf "%.2f", ref / us }')"
