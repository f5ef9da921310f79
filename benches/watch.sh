#!/usr/bin/env bash
# Commit-trigger benchmark: how soon `gzl watch` starts a run after `git commit`, and what
# gzl's post-commit hook adds to the time `git commit` takes.
#
# A repository of FILES small text files (default 200, in dNN/ directories) whose Gzlfile is
#
#   first:
#       date +%s%N >> "$MARK"
#
# (stages inherit gzl's environment, and the hook's `gzl run` inherits git's, so MARK is
# exported before gzl or git starts). Every commit appends a line to one tracked file, so
# each one is a new tree and its stage really runs (nothing comes from the cache).
#
#   (1) watch latency: `gzl watch` runs in the background on the checked-out branch; each
#       repetition commits, takes a timestamp as soon as `git commit` has exited, and waits
#       (at most TIMEOUT seconds) for the new line in MARK; the latency is that line's
#       `date` minus the timestamp (so it includes the shell start of the stage, ~1-2 ms).
#       Before the next repetition gzl must be idle again (no run `running` in
#       `gzl ls --json`), so no repetition waits for the previous run. One untimed warm-up
#       commit first (it makes the workspace and proves the watcher is up). At the end
#       `gzl watch` gets SIGINT, and must exit with status 130.
#   (2) hook overhead: the wall time of `git commit -q -a` (one file changed, output to
#       /dev/null) in three copies of the repository:
#         no hook           .git/hooks has no post-commit
#         `sh` hook         a post-commit hook `#!/bin/sh` + `exit 0` (what any hook costs)
#         gzl hook          after `gzl hook install` (post-commit)
#       interleaved (none, sh, gzl, none, ...) so that drift on the machine hits them alike,
#       each with one untimed warm-up. After each commit with gzl's hook the script waits
#       (at most TIMEOUT seconds) for its background run to be recorded, to write its MARK
#       line and to finish, so that no background run overlaps a timed commit.
#       A further row: `git commit` (no hook) while `gzl watch` runs on that repository,
#       taken from (1).
#
# Medians, 90th percentiles (nearest rank) and maxima of R repetitions (default 20) are
# printed as a Markdown table on stdout, with the goals of the issue: a run starts within
# 1 s of `git commit` returning (judged on the 90th percentile), and the hook slows the
# commit by no more than a few ms (judged as median with gzl's hook minus median without
# any hook <= HOOK_GOAL_MS, default 5). Progress goes to stderr.
#
# Environment:
#   R=20          timed repetitions of each measurement
#   FILES=200     files in the generated repository
#   TIMEOUT=10    seconds to wait for a run to start (and again for gzl to be idle)
#   HOOK_GOAL_MS=5  what "a few ms" of hook overhead means for the verdict
#   GZL=path      use this gzl binary instead of building target/release/gzl
#   TMP=dir       where the scratch directory is made (default: $TMPDIR or /tmp)
#   KEEP=1        keep the scratch directory for inspection (gzl watch's stderr is in
#                 SCRATCH/out/watch.err)
#
# The scratch directory is small (4 copies of FILES files, 4 workspaces, gzl's history) and
# nothing is deleted while measuring (see the ext4 note in the shared PERF-NOTES.md); it is
# removed on exit. gzl runs with GZL_HOME inside it, and git with GIT_CONFIG_GLOBAL=/dev/null.
set -euo pipefail

R=${R:-20}
FILES=${FILES:-200}
TIMEOUT=${TIMEOUT:-10}
HOOK_GOAL_MS=${HOOK_GOAL_MS:-5}

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bench=watch.sh
# shellcheck source=benches/common.sh
source "$script_dir/common.sh"

for var in R FILES TIMEOUT HOOK_GOAL_MS; do
    [[ ${!var} =~ ^[1-9][0-9]*$ ]] || die "$var must be a positive integer, not '${!var}'"
done

repo_root=$(cd "$script_dir/.." && pwd)

command -v git >/dev/null 2>&1 || die "git is missing"
command -v jq >/dev/null 2>&1 || die "jq is missing (it reads \`gzl ls --json\`)"
find_gzl "$repo_root"

# --- scratch -----------------------------------------------------------------------------
make_scratch "${TMP:-${TMPDIR:-/tmp}}" gzl-watch

homes=$scratch/homes    # one GZL_HOME per repository
marks=$scratch/marks    # what the stages append: start stamps, one line per run
out=$scratch/out        # gzl's output
mkdir -p "$homes" "$marks" "$out"

export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
# Nothing may reach the user's own GZL_HOME; each repository gets its own below.
export GZL_HOME=$homes/other

# `gzl watch` runs in a process group of its own (set -m), so that it gets SIGINT as from
# a terminal, and so that on exit it and any stage it started can be stopped together.
watch_pid=
stop_watch() { # stop_watch: SIGINT, then (after 5 s) SIGKILL to its group; sets watch_status
    local i
    watch_status=
    [[ -n $watch_pid ]] || return 0
    kill -INT "$watch_pid" 2>/dev/null || true
    for (( i = 0; i < 250; i++ )); do
        kill -0 "$watch_pid" 2>/dev/null || break
        sleep 0.02
    done
    if kill -0 "$watch_pid" 2>/dev/null; then
        say "   gzl watch (pid $watch_pid) still running 5 s after SIGINT; killing its group"
        kill -KILL -- "-$watch_pid" 2>/dev/null || true
    fi
    wait "$watch_pid" 2>/dev/null && watch_status=0 || watch_status=$?
    watch_pid=
}
cleanup() {
    stop_watch
    if [[ ${KEEP:-0} == 1 ]]; then say "kept $scratch"; else rm -rf -- "$scratch"; fi
}
trap cleanup EXIT

git_in() { # git_in REPO ARGS...
    local repo=$1
    shift
    git -C "$repo" -c user.name=bench -c user.email=bench@localhost -c commit.gpgsign=false "$@"
}

# gzl_in NAME ARGS...: gzl in repository NAME with its own GZL_HOME.
gzl_in() {
    local name=$1
    shift
    (cd "$scratch/$name" && GZL_HOME=$homes/$name "$gzl" "$@")
}

# make_repo NAME: FILES files of a few lines each, the probe Gzlfile, one commit.
make_repo() {
    local repo=$scratch/$1 i
    mkdir -p "$repo"
    git init -q -b main "$repo"
    for (( i = 0; i < FILES; i++ )); do
        mkdir -p "$repo/d$(( i / 20 ))"
        printf 'file %d line %d\n' "$i" 1 "$i" 2 "$i" 3 >"$repo/d$(( i / 20 ))/f$i.txt"
    done
    printf 'first:\n    date +%%s%%N >> "$MARK"\n' >"$repo/Gzlfile"
    git_in "$repo" add --all
    git_in "$repo" commit -q -m "generated tree"
}

# change NAME REP: appends a line to one tracked file of repository NAME.
change() {
    local i=$(( ($2 * 37 + 11) % FILES ))
    printf 'change %d\n' "$2" >>"$scratch/$1/d$(( i / 20 ))/f$i.txt"
}

lines() { # lines FILE: how many lines FILE has (0 when missing), without forking
    local -a l=()
    [[ -f $1 ]] && mapfile -t l <"$1"
    echo "${#l[@]}"
}

# wait_lines FILE N: waits until FILE has more than N lines, at most TIMEOUT s; prints line
# N+1, or fails.
wait_lines() {
    local file=$1 n=$2 deadline=$(( $(now_us) + TIMEOUT * 1000000 ))
    local -a l=()
    while (( $(now_us) < deadline )); do
        if [[ -f $file ]]; then
            mapfile -t l <"$file"
            if (( ${#l[@]} > n )); then echo "${l[n]}"; return 0; fi
        fi
        sleep 0.01
    done
    return 1
}

# wait_idle NAME RUNS: waits until repository NAME's history holds at least RUNS runs and
# none of them is running, at most TIMEOUT s; fails otherwise.
wait_idle() {
    local name=$1 want=$2 deadline=$(( $(now_us) + TIMEOUT * 1000000 )) state have running
    while (( $(now_us) < deadline )); do
        state=$(gzl_in "$name" ls --json -n 100000 2>/dev/null |
            jq -r '"\(.runs | length) \([.runs[] | select(.status == "running")] | length)"') ||
            state=''
        if [[ -n $state ]]; then
            read -r have running <<<"$state"
            (( have >= want && running == 0 )) && return 0
        fi
        sleep 0.05
    done
    return 1
}

runs_of() { gzl_in "$1" ls --json -n 100000 | jq '.runs | length'; }

# timed_commit NAME MESSAGE: commits what changed; sets `t_end` (µs, as soon as git has
# exited) and `commit_us` (its wall time).
timed_commit() {
    local t0
    t0=$(now_us)
    git_in "$scratch/$1" commit -q -a -m "$2" >/dev/null 2>&1 || die "git commit in $1 failed"
    t_end=$(now_us)
    commit_us=$(( t_end - t0 ))
}

percentile90() { # nearest rank: the value at rank ceil(0.9 n) of the sorted numbers
    printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { r = int((9 * NR + 9) / 10); print v[r] }'
}
maximum() { printf '%s\n' "$@" | sort -n | tail -n 1; }

say "generating 4 repositories of $FILES files in $scratch"
for name in watch none sh gzl; do make_repo "$name"; done
printf '#!/bin/sh\nexit 0\n' >"$scratch/sh/.git/hooks/post-commit"
chmod +x "$scratch/sh/.git/hooks/post-commit"
gzl_in gzl hook install post-commit >&2 || die "gzl hook install failed"
grep -q gzl "$scratch/gzl/.git/hooks/post-commit" || die "gzl hook install wrote no post-commit hook"

# --- (1) watch latency ---------------------------------------------------------------------
say "== (1) gzl watch: git commit -> first stage"
watch_mark=$marks/watch
set -m
(cd "$scratch/watch" && exec env GZL_HOME="$homes/watch" MARK="$watch_mark" "$gzl" watch \
    >"$out/watch.out" 2>"$out/watch.err") &
watch_pid=$!
set +m
# Let it set up its watches; the warm-up commit then shows it is running.
sleep 1
kill -0 "$watch_pid" 2>/dev/null || { cat "$out/watch.err" >&2; die "gzl watch exited at once"; }

declare -a s_watch s_watch_commit
watch_missed=0 watch_extra=0
for (( rep = 0; rep <= R; rep++ )); do   # rep 0 is the warm-up
    n=$(lines "$watch_mark")
    runs=$(runs_of watch)
    change watch "$rep"
    timed_commit watch "watch $rep"
    commit_end=$t_end
    if ! mark=$(wait_lines "$watch_mark" "$n"); then
        say "   rep $rep/$R: no stage started within $TIMEOUT s of the commit"
        (( rep > 0 )) && watch_missed=$(( watch_missed + 1 ))
        wait_idle watch 0 || true
        continue
    fi
    latency=$(( mark / 1000 - commit_end ))
    wait_idle watch $(( runs + 1 )) || die "watch: gzl was not idle $TIMEOUT s after rep $rep"
    extra=$(( $(lines "$watch_mark") - n - 1 ))
    if (( extra > 0 )); then
        say "   rep $rep/$R: $extra more stage start(s) than commits"
        (( rep > 0 )) && watch_extra=$(( watch_extra + extra ))
    fi
    if (( rep == 0 )); then
        say "   warm-up: $(( latency / 1000 )) ms to first stage"
    else
        s_watch+=("$latency") s_watch_commit+=("$commit_us")
        say "   rep $rep/$R: $(( latency / 1000 )) ms to first stage (git commit took $(( commit_us / 1000 )) ms)"
    fi
done
watch_runs=$(runs_of watch)
say "== stopping gzl watch with SIGINT"
stop_watch
say "   gzl watch exited with status $watch_status"
(( ${#s_watch[@]} > 0 )) || { cat "$out/watch.err" >&2; die "watch: no repetition started a run"; }

# --- (2) hook overhead ---------------------------------------------------------------------
say "== (2) git commit: no hook, sh hook, gzl hook"
declare -a s_none s_sh s_gzl
hook_mark=$marks/gzl
export MARK=$hook_mark
hook_missed=0
for (( rep = 0; rep <= R; rep++ )); do   # rep 0 is the warm-up
    change none "$rep"
    GZL_HOME=$homes/none timed_commit none "commit $rep"
    none_us=$commit_us
    change sh "$rep"
    GZL_HOME=$homes/sh timed_commit sh "commit $rep"
    sh_us=$commit_us
    n=$(lines "$hook_mark")
    runs=$(runs_of gzl)
    change gzl "$rep"
    GZL_HOME=$homes/gzl timed_commit gzl "commit $rep"
    gzl_us=$commit_us
    if ! wait_lines "$hook_mark" "$n" >/dev/null; then
        say "   rep $rep/$R: the hook's run started no stage within $TIMEOUT s"
        hook_missed=$(( hook_missed + 1 ))
    fi
    wait_idle gzl $(( runs + 1 )) || die "hook: no finished run of commit $rep within $TIMEOUT s"
    if (( rep > 0 )); then
        s_none+=("$none_us") s_sh+=("$sh_us") s_gzl+=("$gzl_us")
        say "   rep $rep/$R: no hook $(( none_us / 1000 )).$(( none_us % 1000 / 100 )) ms, sh hook $(( sh_us / 1000 )).$(( sh_us % 1000 / 100 )) ms, gzl hook $(( gzl_us / 1000 )).$(( gzl_us % 1000 / 100 )) ms"
    fi
done
hook_runs=$(runs_of gzl)
hook_commits=$(git_in "$scratch/gzl" rev-list --count HEAD)
hook_runs_at=$(gzl_in gzl ls --json -n 100000 | jq -r '.runs[].commit' | sort -u | wc -l)

# --- report --------------------------------------------------------------------------------
ms() { awk -v us="$1" 'BEGIN { v = us / 1000; if (v < 10) printf "%.1f", v; else printf "%.0f", v }'; }
verdict() { if (( $1 <= $2 )); then echo yes; else echo "**no**"; fi; }
stats() { printf '%s | %s | %s' "$(ms "$(median "$@")")" "$(ms "$(percentile90 "$@")")" "$(ms "$(maximum "$@")")"; }

m_none=$(median "${s_none[@]}") m_sh=$(median "${s_sh[@]}") m_gzl=$(median "${s_gzl[@]}")
p90_watch=$(percentile90 "${s_watch[@]}")
over_gzl=$(( m_gzl - m_none )) over_sh=$(( m_sh - m_none ))
declare -a d_gzl=()
for (( i = 0; i < ${#s_gzl[@]}; i++ )); do d_gzl+=($(( s_gzl[i] - s_none[i] ))); done

missed_note() { (( $1 == 0 )) || printf ' (%d of %d: nothing within %d s)' "$1" "$R" "$TIMEOUT"; }
printf '### Commit triggers: %d files, %d repetitions (ms)\n\n' "$FILES" "$R"
printf '%s; git %s; %d CPUs; %s\n\n' "$("$gzl" --version)" "$(git --version | cut -d' ' -f3)" \
    "$(nproc)" "$(df -T "$scratch" | awk 'NR == 2 { print $2 }')"
printf '| measurement | median | p90 | max | goal | met |\n'
printf '|---|---:|---:|---:|---|---|\n'
printf '| (1) `gzl watch`: `git commit` returned → first stage%s | %s | ≤ 1000 (p90) | %s |\n' \
    "$(missed_note "$watch_missed")" "$(stats "${s_watch[@]}")" "$(verdict "$p90_watch" 1000000)"
printf '| (2) `git commit`, no hook | %s | | |\n' "$(stats "${s_none[@]}")"
printf '| (2) `git commit`, `sh` hook `exit 0` (reference) | %s | | |\n' "$(stats "${s_sh[@]}")"
printf '| (2) `git commit`, gzl post-commit hook%s | %s | | |\n' \
    "$(missed_note "$hook_missed")" "$(stats "${s_gzl[@]}")"
printf '| (2) gzl hook − no hook, per repetition | %s | | |\n' "$(stats "${d_gzl[@]}")"
printf '| (2) gzl hook overhead: median − median without hook | %s | | | ≤ %d | %s |\n' \
    "$(ms "$over_gzl")" "$HOOK_GOAL_MS" "$(verdict "$over_gzl" $(( HOOK_GOAL_MS * 1000 )))"
printf '| (2) `sh` hook overhead: median − median without hook (reference) | %s | | | | |\n' \
    "$(ms "$over_sh")"
printf '| `git commit`, no hook, while `gzl watch` runs (from 1) | %s | | |\n' \
    "$(stats "${s_watch_commit[@]}")"
printf '\n'
printf -- '- `gzl watch`: %d runs for %d commits (warm-up included)' "$watch_runs" $(( R + 1 ))
(( watch_extra == 0 )) || printf ', %d stage start(s) more than commits' "$watch_extra"
printf '; exit status on SIGINT: %s (expected 130)\n' "${watch_status:-?}"
printf -- '- gzl hook: %d runs of %d distinct commits for %d commits with the hook (warm-up included)\n' \
    "$hook_runs" "$hook_runs_at" $(( hook_commits - 1 ))
