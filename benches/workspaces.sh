#!/usr/bin/env bash
# Workspace benchmark: how long `gzl run` takes to get a stage going in its pooled workspace,
# against `git worktree add` and `git clone --local` on the same commit.
#
# A repository of FILES files (default 5000) totalling about SIZE_MB (default 50 MB) of text,
# in nested directories (pkgNN/modN/partN/), with COMMITS commits of history, packed by
# `git gc` as a cloned repository would be. Its Gzlfile is
#
#   first:
#       date +%s%N > "$MARK"
#   check: first
#       (git add --all into a copy of the workspace's index; git write-tree > "$TREE_OUT")
#
# "start -> first stage" is the time from just before gzl is launched to the `date` of the
# first stage (so it includes the shell start of that stage, ~1-2 ms). `check` records the
# tree the workspace held, which must be the tree of the source state gzl was asked to run;
# it stages into a copy of the index so that the workspace's own index stays as gzl left it.
#
#   (a) clean commit, new workspace: `gzl run` on a clean tree with an empty GZL_HOME each
#       repetition, so the workspace is created (git init + checkout of every file)
#   (b) warm workspace, one commit forward: a commit changing one file, then `gzl run`,
#       in a workspace that has moved forward before (the steady state)
#   (b') the same in each workspace (a) made, whose first move forward this is: git
#       re-reads the files the creating checkout wrote just before its index ("racily
#       clean" entries), so this move pays once what (b) does not
#   (c) warm workspace, dirty tree: DIRTY (default 10) files modified, uncommitted; gzl
#       makes a snapshot and checks it out
#   (d) fully cached: a Gzlfile of STAGES (default 100) stages `true` in layers of 10, each
#       needing two stages of the layer before; the wall time of `gzl run` when nothing
#       changed since the last run (every stage must be reported `cached`)
#   (d') the same with DIRTY files modified: the snapshot is made again every time
#   references: `git worktree add --detach DIR COMMIT`, and
#       `git clone --local --no-checkout` + `git checkout --detach COMMIT` (wall time each)
#
# Medians of R repetitions (default 5) are printed as a Markdown table on stdout, with the
# goals; progress goes to stderr. (a) and the references interleave (worktree, clone, gzl,
# worktree, ...) so that drift on the machine hits them alike; each of them, and gzl in
# (b), (c), (d) and (d'), gets one untimed warm-up first ((b') is a first run by design).
#
# Environment:
#   R=5           timed repetitions
#   FILES=5000    files in the generated repository
#   SIZE_MB=50    their total size, about
#   COMMITS=4     commits of history (the first adds everything, the others change 1% of files)
#   DIRTY=10      files modified for (c) and (d')
#   STAGES=100    stages of the pipeline of (d) (a multiple of 10)
#   SYNC=1        `sync` before each timed command, so none pays for the last one's writeback
#   TRACE=0       1: run gzl with GZL_LOG=gzl=debug (timestamps of what it does in
#                 SCRATCH/out/*.err; keep them with KEEP=1)
#   GZL=path      use this gzl binary instead of building target/release/gzl
#   TMP=dir       where the scratch directory is made (default: $TMPDIR or /tmp)
#   KEEP=1        keep the scratch directory for inspection
#
# ext4: creating thousands of files shortly after deleting thousands is ~10x slower for
# minutes (shared PERF-NOTES.md, "Workspaces"). Nothing is deleted while measuring: every
# workspace, worktree and clone gets a directory of its own, made fresh, and all of it is
# removed only on exit (~20 trees of 5,000 files: that takes minutes on ext4). So leave a
# few minutes between two runs of this script, or between it and another benchmark.
set -euo pipefail

R=${R:-5}
FILES=${FILES:-5000}
SIZE_MB=${SIZE_MB:-50}
COMMITS=${COMMITS:-4}
DIRTY=${DIRTY:-10}
STAGES=${STAGES:-100}
SYNC=${SYNC:-1}
TRACE=${TRACE:-0}

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bench=workspaces.sh
# shellcheck source=benches/common.sh
source "$script_dir/common.sh"

for var in R FILES SIZE_MB COMMITS DIRTY STAGES; do
    [[ ${!var} =~ ^[1-9][0-9]*$ ]] || die "$var must be a positive integer, not '${!var}'"
done
(( STAGES % 10 == 0 )) || die "STAGES ($STAGES) must be a multiple of 10"
(( DIRTY <= FILES )) || die "DIRTY ($DIRTY) must not exceed FILES ($FILES)"

repo_root=$(cd "$script_dir/.." && pwd)

command -v git >/dev/null 2>&1 || die "git is missing"
command -v perl >/dev/null 2>&1 || die "perl is missing (it generates the repository)"
find_gzl "$repo_root"

# --- scratch -----------------------------------------------------------------------------
# Everything lives in one directory made here, and only it is removed on exit.
make_scratch "${TMP:-${TMPDIR:-/tmp}}" gzl-workspaces

repo=$scratch/repo      # the generated repository
homes=$scratch/homes    # one GZL_HOME per (a) repetition, plus `warm` for (b)-(d)
refs=$scratch/refs      # worktrees and clones, one directory each
marks=$scratch/marks    # what the stages write: start stamps and trees
out=$scratch/out        # gzl's output, one file per run
mkdir -p "$homes" "$refs" "$marks" "$out"


settle() { if (( SYNC )); then sync; fi; }

git_in() { git -C "$repo" -c user.name=bench -c user.email=bench@localhost -c commit.gpgsign=false "$@"; }

# --- the repository ----------------------------------------------------------------------
# Deterministic text files (random words, seeded) of 0.2x to 1.8x the mean size; file i
# lives in pkg(i/500)/mod(i/100%5)/part(i/25%4)/. Prints the paths, one a line.
generate() {
    perl - "$repo" "$FILES" "$(( SIZE_MB * 1024 * 1024 ))" <<'PERL'
use strict; use warnings;
use File::Path qw(make_path);
my ($root, $files, $bytes) = @ARGV;
srand(42);
my @words = map { join '', map { ('a'..'z')[rand 26] } 1 .. 2 + int rand 9 } 1 .. 4000;
my $mean = $bytes / $files;
my @ext = qw(rs c h txt md json);
for my $i (0 .. $files - 1) {
    my $dir = sprintf '%s/pkg%02d/mod%d/part%d', $root, $i / 500, ($i / 100) % 5, ($i / 25) % 4;
    make_path($dir);
    my $path = sprintf '%s/file%04d.%s', $dir, $i, $ext[$i % @ext];
    my $size = int($mean * (0.2 + 1.6 * rand));
    my $text = '';
    while (length $text < $size) {
        $text .= join(' ', map { $words[rand @words] } 1 .. 12) . "\n";
    }
    open my $fh, '>', $path or die "$path: $!";
    print $fh $text;
    close $fh;
    print substr($path, length($root) + 1), "\n";
}
PERL
}

write_probe_gzlfile() {
    cat >"$repo/Gzlfile" <<'EOF'
first:
    date +%s%N > "$MARK"

check: first
    cp .git/index "$TREE_OUT.index"
    GIT_INDEX_FILE="$TREE_OUT.index" git add --all
    GIT_INDEX_FILE="$TREE_OUT.index" git write-tree > "$TREE_OUT"
EOF
}

# STAGES stages `true` in layers of 10; a stage needs the same and the next stage of the
# layer before.
write_cached_gzlfile() {
    local i layer k needs
    {
        for (( i = 0; i < STAGES; i++ )); do
            layer=$(( i / 10 )) k=$(( i % 10 )) needs=''
            if (( layer > 0 )); then
                needs=" s$(( (layer - 1) * 10 + k )) s$(( (layer - 1) * 10 + (k + 1) % 10 ))"
            fi
            printf 's%d:%s\n    true\n\n' "$i" "$needs"
        done
    } >"$repo/Gzlfile"
}

say "generating $FILES files, ~$SIZE_MB MB, in $repo"
mkdir -p "$repo"
git init -q "$repo"
mapfile -t paths < <(generate)
(( ${#paths[@]} == FILES )) || die "generated ${#paths[@]} files instead of $FILES"
write_probe_gzlfile
git_in add --all
git_in commit -q -m "generated tree"
for (( c = 2; c <= COMMITS; c++ )); do
    # 1% of the files get a line, spread over the tree.
    for (( i = c; i < FILES; i += 100 )); do
        printf 'change %d of history\n' "$c" >>"$repo/${paths[i]}"
    done
    git_in commit -q -a -m "history $c"
done
git_in gc --quiet
commit=$(git_in rev-parse HEAD)
say "   $(du -sh --apparent-size --exclude=.git "$repo" | cut -f1) checked out, $(du -sh "$repo/.git" | cut -f1) in .git"

# --- runs ----------------------------------------------------------------------------------
# gzl_run HOME NAME [gzl args...]: runs gzl in the repository with GZL_HOME=HOME, its
# output in out/NAME.err, MARK and TREE_OUT in marks/NAME.*; sets `start_us`, `wall_us`.
gzl_run() {
    local home=$1 name=$2 status=0 t1
    shift 2
    local vars=(GZL_HOME="$home" MARK="$marks/$name.mark" TREE_OUT="$marks/$name.tree")
    (( TRACE )) && vars+=(GZL_LOG=gzl=debug)
    settle
    start_us=$(now_us)
    (cd "$repo" && env "${vars[@]}" "$gzl" run "$@" >"$out/$name.out" 2>"$out/$name.err") || status=$?
    t1=$(now_us)
    wall_us=$(( t1 - start_us ))
    (( status == 0 )) || { cat "$out/$name.err" >&2; die "gzl run ($name) failed with status $status"; }
}

summary() { grep -o 'run [0-9]* [a-z]*: .*' "$out/$1.err" | tail -n 1; }

# probe_run HOME NAME EXPECTED_TREE: a run of the probe Gzlfile; checks that both stages
# ran and that the workspace held EXPECTED_TREE; prints start -> first stage in µs.
probe_run() {
    local home=$1 name=$2 expected=$3 mark tree
    gzl_run "$home" "$name"
    [[ -s $marks/$name.mark ]] || die "$name: the first stage did not run ($(summary "$name"))"
    mark=$(<"$marks/$name.mark")
    tree=$(<"$marks/$name.tree")
    [[ $tree == "$expected" ]] || die "$name: the workspace held tree $tree, expected $expected"
    summary "$name" | grep -q ': 2 passed' || die "$name: unexpected summary: $(summary "$name")"
    echo $(( mark / 1000 - start_us )) "$wall_us"
}

timed() { # timed CMD...: wall time of CMD in µs, its output discarded
    local t0 t1
    settle
    t0=$(now_us)
    "$@" >/dev/null 2>&1 || die "failed: $*"
    t1=$(now_us)
    echo $(( t1 - t0 ))
}

worktree_add() { git -C "$repo" worktree add -q --detach "$1" "$commit"; }
clone_checkout() {
    git clone -q --local --no-checkout "$repo" "$1" && git -C "$1" checkout -q --detach "$commit"
}

head_tree=$(git_in rev-parse 'HEAD^{tree}')
declare -a s_wt s_clone s_a s_a_wall s_b1 s_b1_wall s_b s_b_wall s_c s_c_wall s_d s_ddirty

# (a) and the references, interleaved; the warm-up gzl run makes the workspace (b) uses.
say "== (a) new workspace, and the references: warm-up"
timed worktree_add "$refs/wt0" >/dev/null
timed clone_checkout "$refs/clone0" >/dev/null
probe_run "$homes/warm" a0 "$head_tree" >/dev/null
for (( rep = 1; rep <= R; rep++ )); do
    us=$(timed worktree_add "$refs/wt$rep") && s_wt+=("$us")
    us=$(timed clone_checkout "$refs/clone$rep") && s_clone+=("$us")
    result=$(probe_run "$homes/a$rep" "a$rep" "$head_tree")
    read -r first wall <<<"$result"
    s_a+=("$first") s_a_wall+=("$wall")
    say "   rep $rep/$R: worktree add $(( s_wt[-1] / 1000 )) ms, clone+checkout $(( s_clone[-1] / 1000 )) ms, gzl $(( first / 1000 )) ms to first stage ($(( wall / 1000 )) ms in all)"
done

# (b') one commit forward in each workspace (a) made, the first time it is reused.
say "== (b') one commit forward, first reuse of the workspaces (a) made"
printf 'first-forward\n' >>"$repo/${paths[FILES / 2]}"
git_in commit -q -a -m "first forward"
forward_tree=$(git_in rev-parse 'HEAD^{tree}')
for (( rep = 1; rep <= R; rep++ )); do
    result=$(probe_run "$homes/a$rep" "bfirst$rep" "$forward_tree")
    read -r first wall <<<"$result"
    s_b1+=("$first") s_b1_wall+=("$wall")
    say "   rep $rep/$R: $(( first / 1000 )) ms to first stage ($(( wall / 1000 )) ms in all)"
done

# (b) one commit forward, one file changed each time, in the warm workspace; its first
# move forward is the warm-up.
say "== (b) warm workspace, one commit forward"
for (( rep = 0; rep <= R; rep++ )); do   # rep 0 is the warm-up
    file=${paths[(rep * 997 + 13) % FILES]}
    printf 'commit-forward %d\n' "$rep" >>"$repo/$file"
    git_in commit -q -a -m "forward $rep"
    result=$(probe_run "$homes/warm" "b$rep" "$(git_in rev-parse 'HEAD^{tree}')")
    read -r first wall <<<"$result"
    if (( rep > 0 )); then
        s_b+=("$first") s_b_wall+=("$wall")
        say "   rep $rep/$R: $(( first / 1000 )) ms to first stage ($(( wall / 1000 )) ms in all)"
    fi
done

# (c) DIRTY files modified and left uncommitted; each repetition changes them again, so
# each one is a new snapshot. The expected tree is the snapshot made with a scratch index.
say "== (c) warm workspace, $DIRTY modified files"
snapshot_tree() {
    local index=$scratch/snapshot-index
    cp "$repo/.git/index" "$index"
    GIT_INDEX_FILE=$index git_in add --all
    GIT_INDEX_FILE=$index git_in write-tree
}
for (( rep = 0; rep <= R; rep++ )); do
    for (( i = 0; i < DIRTY; i++ )); do
        printf 'dirty %d\n' "$rep" >>"$repo/${paths[(i * FILES / DIRTY + 7) % FILES]}"
    done
    expected=$(snapshot_tree)
    result=$(probe_run "$homes/warm" "c$rep" "$expected")
    read -r first wall <<<"$result"
    if (( rep > 0 )); then
        s_c+=("$first") s_c_wall+=("$wall")
        say "   rep $rep/$R: $(( first / 1000 )) ms to first stage ($(( wall / 1000 )) ms in all)"
    fi
done
git_in checkout -q -- .

# (d) STAGES stages, all cached: one run executes them, the next ones must reuse them all;
# on the clean tree, then (d') with DIRTY files modified (a snapshot run again).
declare -A d_misses=()
cached_runs() { # cached_runs NAME: the warm-up run, then R timed ones into s_NAME
    local name=$1 line
    local -n samples=s_$name
    gzl_run "$homes/warm" "${name}0"
    summary "${name}0" | grep -q ": $STAGES passed" || die "${name}0: unexpected summary: $(summary "${name}0")"
    d_misses[$name]=0
    for (( rep = 1; rep <= R; rep++ )); do
        gzl_run "$homes/warm" "$name$rep"
        samples+=("$wall_us")
        line=$(summary "$name$rep")
        if ! grep -q ": $STAGES cached in" <<<"$line"; then
            d_misses[$name]=$(( d_misses[$name] + 1 ))
            say "   NOT ALL CACHED: $line"
        fi
        say "   rep $rep/$R: $(( wall_us / 1000 )) ms ($line)"
    done
}
say "== (d) $STAGES stages, nothing changed"
write_cached_gzlfile
git_in commit -q -a -m "$STAGES stages"
cached_runs d
say "== (d') $STAGES stages, nothing changed, $DIRTY modified files"
for (( i = 0; i < DIRTY; i++ )); do
    printf 'dirty again\n' >>"$repo/${paths[(i * FILES / DIRTY + 7) % FILES]}"
done
cached_runs ddirty

# --- report --------------------------------------------------------------------------------
ms() { awk -v us="$1" 'BEGIN { v = us / 1000; if (v < 10) printf "%.1f", v; else printf "%.0f", v }'; }
m_wt=$(median "${s_wt[@]}")
m_clone=$(median "${s_clone[@]}")
m_a=$(median "${s_a[@]}") m_a_wall=$(median "${s_a_wall[@]}")
m_b=$(median "${s_b[@]}") m_b_wall=$(median "${s_b_wall[@]}")
m_b1=$(median "${s_b1[@]}") m_b1_wall=$(median "${s_b1_wall[@]}")
m_c=$(median "${s_c[@]}") m_c_wall=$(median "${s_c_wall[@]}")
m_d=$(median "${s_d[@]}") m_ddirty=$(median "${s_ddirty[@]}")
goal_a=$(( m_wt * 3 / 2 )) goal_b=$(( m_wt / 5 )) goal_c=500000 goal_d=100000
verdict() { if (( $1 <= $2 )); then echo yes; else echo "**no**"; fi; }

printf '### Workspaces: %d files, %s MB, median of %d (ms)\n\n' \
    "$FILES" "$(du -s --apparent-size --block-size=1M --exclude=.git "$repo" | cut -f1)" "$R"
printf '%s; git %s; %d CPUs; %s\n\n' "$("$gzl" --version)" "$(git --version | cut -d' ' -f3)" \
    "$(nproc)" "$(df -T "$scratch" | awk 'NR == 2 { print $2 }')"
printf '| measurement | start → first stage | gzl run wall | goal | met |\n'
printf '|---|---:|---:|---|---|\n'
printf '| `git worktree add --detach` (reference) | | %s | | |\n' "$(ms "$m_wt")"
printf '| `git clone --local --no-checkout` + checkout (reference) | | %s | | |\n' "$(ms "$m_clone")"
printf '| (a) clean commit, new workspace | %s | %s | ≤ 1.5 × worktree add = %s | %s |\n' \
    "$(ms "$m_a")" "$(ms "$m_a_wall")" "$(ms "$goal_a")" "$(verdict "$m_a" "$goal_a")"
printf '| (b) warm workspace, one commit forward | %s | %s | < 20%% of worktree add = %s | %s |\n' \
    "$(ms "$m_b")" "$(ms "$m_b_wall")" "$(ms "$goal_b")" "$(verdict "$m_b" "$goal_b")"
printf '| (b'"'"') one commit forward, first reuse after (a) | %s | %s | < 20%% of worktree add = %s | %s |\n' \
    "$(ms "$m_b1")" "$(ms "$m_b1_wall")" "$(ms "$goal_b")" "$(verdict "$m_b1" "$goal_b")"
printf '| (c) warm workspace, %d files modified | %s | %s | < 500 | %s |\n' \
    "$DIRTY" "$(ms "$m_c")" "$(ms "$m_c_wall")" "$(verdict "$m_c" "$goal_c")"
not_cached() { (( d_misses[$1] == 0 )) || printf ' (%d of %d runs not all cached)' "${d_misses[$1]}" "$R"; }
printf '| (d) %d stages, all cached, clean tree%s | | %s | < 100 | %s |\n' \
    "$STAGES" "$(not_cached d)" "$(ms "$m_d")" "$(verdict "$m_d" "$goal_d")"
printf '| (d'"'"') %d stages, all cached, %d files modified%s | | %s | < 100 | %s |\n' \
    "$STAGES" "$DIRTY" "$(not_cached ddirty)" "$(ms "$m_ddirty")" "$(verdict "$m_ddirty" "$goal_d")"
