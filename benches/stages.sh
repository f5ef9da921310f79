#!/usr/bin/env bash
# Stage-graph overhead benchmark: gzl vs ninja vs make on the same graphs.
#
# Three graphs of N stages (default 1000) whose body does next to nothing:
#   independent  N stages with no needs
#   chain        N stages, each needing the previous one
#   layers       LAYERS (default 10) layers of N/LAYERS stages, each stage needing every
#                stage of the previous layer
# Each graph is written as a Gzlfile, a build.ninja and a Makefile, and timed with
#   gzl run -jJOBS --quiet      ninja -jJOBS      make -jJOBS
# R times (default 5); the median wall time is reported as a Markdown table on stdout
# (progress goes to stderr). Reference figures for make, ninja and just on this kind of
# machine are in the team's shared PERF-NOTES.md (beside the checkout, not in it).
#
# Environment:
#   N=1000        stages per graph (must be a multiple of LAYERS)
#   LAYERS=10     layers of the layered graph
#   R=5           timed repetitions per tool and graph
#   JOBS=2        parallelism (-j) for every tool
#   LOG=0         1: bodies write output -- `seq 1000` for gzl (gzl stores stage output in
#                 its own log files) and `seq 1000 > $target.log` for make and ninja
#   GZL=path      use this gzl binary instead of building target/release/gzl
#   GRAPHS="independent chain layers"   which graphs to run
#   TOOLS="gzl ninja make"              which tools to time
#   BENCH_TMPDIR  where to create the scratch directory (default: $TMPDIR or /tmp)
#   KEEP=1        keep the scratch directory (graphs, gzl's history) for inspection
#
# How gzl is measured: each graph gets its own git repository (Gzlfile committed, nothing
# else in it, so `is_dirty` sees a clean tree) and its own empty GZL_HOME. One untimed
# warm-up run fills the history, so the timed runs see a warm history as in real use (gzl
# reads previous stage durations to prioritise); the history then grows by one run per
# repetition, as it would in use. Make and ninja also get one untimed warm-up run (ninja's
# .ninja_log exists afterwards). Repetitions interleave the tools (gzl, ninja, make, gzl, ...)
# so that drift on the machine hits every tool alike.
#
# Every run is checked to have executed all N commands: gzl's exit status and the number of
# stages its summary reports as passed, ninja's and make's count of printed commands.
#
# Bodies are not run the same way by every tool, which is part of what is measured:
#   gzl    a one-line body of plain words (`true`, `seq 1000`) runs directly, without a
#          shell, as make does; any other body runs as `bash -e -o pipefail <script>`
#   ninja  `/bin/sh -c '<command>'`
#   make   execs `true` directly (no shell: no shell metacharacters); with LOG=1 it needs
#          /bin/sh -c for the redirection
#
# gzl writes a log file under GZL_HOME (runs/<id>/<stage>.log) for each stage that prints
# something (with LOG=1), as make and ninja do with their redirections, so file creation on
# the scratch filesystem counts for every tool alike. Scripts are stored once by content. Nothing is deleted while measuring (see the ext4 note in the shared PERF-NOTES.md), but the
# scratch directory (tens of thousands of files at N=1000) is removed on exit: on ext4, file
# creation just after a mass deletion is several times slower, so leave a pause between two
# runs of this script. BENCH_TMPDIR=/dev/shm takes the filesystem out of the measurement.
set -euo pipefail

N=${N:-1000}
LAYERS=${LAYERS:-10}
R=${R:-5}
JOBS=${JOBS:-2}
LOG=${LOG:-0}
GRAPHS=${GRAPHS:-independent chain layers}
TOOLS=${TOOLS:-gzl ninja make}

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bench=stages.sh
# shellcheck source=benches/common.sh
source "$script_dir/common.sh"

[[ $N =~ ^[1-9][0-9]*$ ]] || die "N must be a positive integer, not '$N'"
[[ $R =~ ^[1-9][0-9]*$ ]] || die "R must be a positive integer, not '$R'"
[[ $JOBS =~ ^[1-9][0-9]*$ ]] || die "JOBS must be a positive integer, not '$JOBS'"
[[ $LAYERS =~ ^[1-9][0-9]*$ ]] || die "LAYERS must be a positive integer, not '$LAYERS'"
(( N % LAYERS == 0 )) || die "N ($N) must be a multiple of LAYERS ($LAYERS)"
[[ $LOG == 0 || $LOG == 1 ]] || die "LOG must be 0 or 1"

repo_root=$(cd "$script_dir/.." && pwd)

# --- tools -------------------------------------------------------------------------------
if ! command -v ninja >/dev/null 2>&1; then
    say "ninja is missing; installing ninja-build"
    if (( EUID == 0 )); then sudo=(); else sudo=(sudo); fi
    if ! "${sudo[@]}" apt-get install -y ninja-build >&2; then
        "${sudo[@]}" apt-get update >&2
        "${sudo[@]}" apt-get install -y ninja-build >&2
    fi
    command -v ninja >/dev/null 2>&1 || die "ninja is still missing after installing ninja-build"
fi
command -v make >/dev/null 2>&1 || die "make is missing"
command -v git >/dev/null 2>&1 || die "git is missing (gzl runs inside a git repository)"

find_gzl "$repo_root"

# --- scratch -----------------------------------------------------------------------------
make_scratch "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}" gzl-stages


# --- graphs ------------------------------------------------------------------------------
# needs_of GRAPH I: sets `needs` to the names stage I needs, space separated.
width=$(( N / LAYERS ))
needs_of() {
    local graph=$1 i=$2
    needs=''
    case $graph in
        independent) ;;
        chain) (( i > 0 )) && needs="s$(( i - 1 ))" ;;
        layers)
            local layer=$(( i / width ))
            if (( layer > 0 )); then
                # The previous layer's names are the same for the whole layer.
                if [[ ${layer_cache_key:-} != "$layer" ]]; then
                    local first=$(( (layer - 1) * width )) j list=''
                    for (( j = first; j < first + width; j++ )); do list+=" s$j"; done
                    layer_cache=${list# }
                    layer_cache_key=$layer
                fi
                needs=$layer_cache
            fi
            ;;
        *) die "unknown graph '$graph'" ;;
    esac
    return 0
}

if (( LOG )); then
    gzl_body='seq 1000'
    ninja_command='seq 1000 > $out.log'
    make_recipe='seq 1000 > $@.log'
else
    gzl_body='true'
    ninja_command='true'
    make_recipe='true'
fi

# write_graph GRAPH DIR: DIR/gzl (a git repository with a committed Gzlfile), DIR/ninja,
# DIR/make. Stage i is named s<i> in all three.
write_graph() {
    local graph=$1 dir=$2 i needs all=''
    mkdir -p "$dir/gzl" "$dir/ninja" "$dir/make" "$dir/home"
    for (( i = 0; i < N; i++ )); do all+=" s$i"; done
    {
        # Outputs are never created, so every edge is dirty on every run; no `restat`.
        printf 'rule run\n  command = %s\n  description = %s\n\n' "$ninja_command" "$ninja_command"
    } >"$dir/ninja/build.ninja"
    printf '.PHONY: all%s\nall:%s\n' "$all" "$all" >"$dir/make/Makefile"
    : >"$dir/gzl/Gzlfile"
    exec 3>>"$dir/gzl/Gzlfile" 4>>"$dir/ninja/build.ninja" 5>>"$dir/make/Makefile"
    for (( i = 0; i < N; i++ )); do
        needs_of "$graph" "$i"
        printf 's%d:%s\n    %s\n' "$i" "${needs:+ $needs}" "$gzl_body" >&3
        printf 'build s%d: run%s\n' "$i" "${needs:+ | $needs}" >&4
        printf 's%d:%s\n\t%s\n' "$i" "${needs:+ $needs}" "$make_recipe" >&5
    done
    # Every stage is a target by default, as in the other two tools.
    printf 'build all: phony%s\ndefault all\n' "$all" >&4
    exec 3>&- 4>&- 5>&-
    (
        cd "$dir/gzl"
        git init -q .
        git add Gzlfile
        git -c user.name=bench -c user.email=bench@localhost -c commit.gpgsign=false \
            commit -q -m "stages benchmark: $graph"
    )
}

# run_tool TOOL DIR -> prints the wall time in µs; fails loudly unless all N commands ran.
run_tool() {
    local tool=$1 dir=$2 t0 t1 status=0 count
    case $tool in
        gzl)
            t0=$(now_us)
            # In place, as make and ninja run, and so never reusing a result: this times the
            # executor, not workspaces or reuse (benches/workspaces.sh times those).
            (cd "$dir/gzl" && GZL_HOME="$dir/home" "$gzl" run --in-place -j"$JOBS" --quiet \
                >"$dir/gzl.out" 2>"$dir/gzl.err") || status=$?
            t1=$(now_us)
            (( status == 0 )) || { cat "$dir/gzl.err" >&2; die "gzl run failed with status $status in $dir/gzl"; }
            # The run's summary counts the stages that passed.
            count=$(sed -n 's/^run [0-9]* passed: \([0-9]*\) passed.*/\1/p' "$dir/gzl.err")
            ;;
        ninja)
            t0=$(now_us)
            ninja -C "$dir/ninja" -j"$JOBS" >"$dir/ninja.out" 2>&1 || status=$?
            t1=$(now_us)
            (( status == 0 )) || { cat "$dir/ninja.out" >&2; die "ninja failed with status $status"; }
            count=$(grep -c '^\[' "$dir/ninja.out" || true)
            ;;
        make)
            t0=$(now_us)
            MAKEFLAGS= make -C "$dir/make" --no-print-directory -j"$JOBS" >"$dir/make.out" 2>&1 || status=$?
            t1=$(now_us)
            (( status == 0 )) || { cat "$dir/make.out" >&2; die "make failed with status $status"; }
            count=$(grep -cvx '' "$dir/make.out" || true)
            ;;
        *) die "unknown tool '$tool'" ;;
    esac
    (( count == N )) || die "$tool ran $count commands instead of $N on $dir"
    echo $(( t1 - t0 ))
}

label() {
    local graph=$1 body
    if (( LOG )); then body='`seq 1000` (log)'; else body='`true`'; fi
    case $graph in
        independent) printf 'independent, %s' "$body" ;;
        chain) printf 'chain of %d, %s' "$N" "$body" ;;
        layers) printf '%d layers x %d, %s' "$LAYERS" "$width" "$body" ;;
    esac
}

# --- measure -----------------------------------------------------------------------------
declare -A median_us
for graph in $GRAPHS; do
    dir=$scratch/$graph
    say "== $graph: writing $N stages"
    write_graph "$graph" "$dir"
    for tool in $TOOLS; do
        say "   $tool: warm-up"
        run_tool "$tool" "$dir" >/dev/null
    done
    declare -A samples=()
    for (( rep = 1; rep <= R; rep++ )); do
        line="   rep $rep/$R:"
        for tool in $TOOLS; do
            us=$(run_tool "$tool" "$dir")
            samples[$tool]+=" $us"
            line+=" $tool $(( us / 1000 )) ms"
        done
        say "$line"
    done
    for tool in $TOOLS; do
        # shellcheck disable=SC2086
        median_us[$graph,$tool]=$(median ${samples[$tool]})
    done
    unset samples
done

# --- report ------------------------------------------------------------------------------
gzl_version=$("$gzl" --version 2>/dev/null || echo gzl)
ninja_version=$(ninja --version)
make_version=$(make --version | head -n 1)
printf '### Stage graphs, %d stages, -j%d, median of %d (wall ms; µs per stage)\n\n' "$N" "$JOBS" "$R"
printf '%s; ninja %s; %s; %d CPUs\n\n' "$gzl_version" "$ninja_version" "$make_version" "$(nproc)"
header='| graph |'
rule='|---|'
for tool in $TOOLS; do header+=" $tool ms | $tool µs/stage |"; rule+='---:|---:|'; done
has_ratio=0
if [[ " $TOOLS " == *" gzl "* && " $TOOLS " == *" ninja "* ]]; then
    header+=' gzl/ninja |'; rule+='---:|'; has_ratio=1
fi
printf '%s\n%s\n' "$header" "$rule"
for graph in $GRAPHS; do
    row="| $(label "$graph") |"
    for tool in $TOOLS; do
        us=${median_us[$graph,$tool]}
        row+=" $(( (us + 500) / 1000 )) | $(( (us + N / 2) / N )) |"
    done
    if (( has_ratio )); then
        row+=" $(awk -v a="${median_us[$graph,gzl]}" -v b="${median_us[$graph,ninja]}" 'BEGIN { printf "%.2f", a / b }') |"
    fi
    printf '%s\n' "$row"
done
