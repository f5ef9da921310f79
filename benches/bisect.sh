#!/usr/bin/env bash
# Bisect benchmark: `gzl bisect` against `git bisect run` with the same commands, on a
# generated repository of COMMITS commits (default 40) with one regression at a known commit.
#
# The repository: `deps.txt` (the manifest) changes every DEPS_EVERY commits (default 10),
# `value` holds the commit's number, and commit REGRESSION (default 27) is the first whose
# test fails. Its Gzlfile:
#
#   install:
#       @when deps.txt ci/install.sh
#       @outputs deps
#       sh ci/install.sh      # sleep INSTALL_SECONDS, then deps/ (ignored) from deps.txt
#   test: install
#       sh ci/test.sh         # sleep PROBE_SECONDS; fails without deps/ matching deps.txt,
#                             # and from commit REGRESSION on
#
# Each tool looks for the first bad commit between the first commit (good) and HEAD (bad):
#
#   git bisect run, no deps/:     in the checkout, with a script that runs ci/install.sh when
#                                 deps/ is missing or deps.txt changed since it was made (as a
#                                 user would), then ci/test.sh; deps/ absent at the start
#   git bisect run, deps/ at HEAD: the same, deps/ installed at HEAD first (untimed), as in
#                                 the checkout of a user who has been working at HEAD
#   gzl bisect cold:              an empty GZL_HOME: no history, no workspace
#   gzl bisect warm:              a GZL_HOME where `gzl run test` ran at HEAD first (untimed):
#                                 history has the head's result, the pool a workspace with it
#
# For each: the wall time, the steps (commits tested: `git bisect run`'s script runs; gzl's
# probes, how many of them history decided, and the workspaces in gzl's pool at the end), how many times the install and the test
# really ran (the scripts count themselves), and whether the right commit was named. Medians of
# R repetitions (default 1) of the time; the counts and the answer are the last repetition's
# (they do not vary). A Markdown table goes to stdout, progress to stderr.
#
# The goal (issue 23): gzl bisect cold at most 1.0x `git bisect run`, warm at most 0.8x, both
# naming the right commit. With the defaults one run of the script takes about 2-3 minutes.
#
# Environment:
#   R=1                timed repetitions
#   COMMITS=40         commits in the repository
#   REGRESSION=27      the first bad commit's number (2..COMMITS)
#   DEPS_EVERY=10      the manifest changes every this many commits
#   INSTALL_SECONDS=10 how long the install stage takes
#   PROBE_SECONDS=2    how long the test stage takes
#   GZL=path           use this gzl binary instead of building target/release/gzl
#   TMP=dir            where the scratch directory is made (default: $TMPDIR or /tmp)
#   KEEP=1             keep the scratch directory for inspection (gzl's output in out/)
set -euo pipefail

R=${R:-1}
COMMITS=${COMMITS:-40}
REGRESSION=${REGRESSION:-27}
DEPS_EVERY=${DEPS_EVERY:-10}
INSTALL_SECONDS=${INSTALL_SECONDS:-10}
PROBE_SECONDS=${PROBE_SECONDS:-2}

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bench=bisect.sh
# shellcheck source=benches/common.sh
source "$script_dir/common.sh"

for var in R COMMITS REGRESSION DEPS_EVERY INSTALL_SECONDS PROBE_SECONDS; do
    [[ ${!var} =~ ^[0-9]+$ ]] || die "$var must be a non-negative integer, not '${!var}'"
done
(( R > 0 && DEPS_EVERY > 0 )) || die "R and DEPS_EVERY must be at least 1"
(( COMMITS >= 3 && REGRESSION >= 2 && REGRESSION <= COMMITS )) \
    || die "COMMITS must be at least 3 and REGRESSION between 2 and COMMITS"

repo_root=$(cd "$script_dir/.." && pwd)
command -v git >/dev/null 2>&1 || die "git is missing"
find_gzl "$repo_root"

make_scratch "${TMP:-${TMPDIR:-/tmp}}" gzl-bisect
repo=$scratch/repo
out=$scratch/out
mkdir -p "$repo/ci" "$out"

# --- the repository ------------------------------------------------------------------------
say "generating $COMMITS commits, the regression at commit $REGRESSION"
git_() { git -C "$repo" -c user.name=bench -c user.email=bench@localhost -c commit.gpgsign=false "$@"; }
git_ init -q
printf 'deps/\n' >"$repo/.gitignore"
cat >"$repo/Gzlfile" <<'EOF'
install:
    @when deps.txt ci/install.sh
    @outputs deps
    sh ci/install.sh
test: install
    sh ci/test.sh
EOF
# The scripts count their runs in $COUNT_DIR when it is set (the benchmark sets it for both
# tools); it is not part of what they do.
cat >"$repo/ci/install.sh" <<EOF
set -e
[ -z "\${COUNT_DIR:-}" ] || echo install >>"\$COUNT_DIR/installs"
sleep $INSTALL_SECONDS
rm -rf deps
mkdir -p deps/lib
cp deps.txt deps/manifest
echo 'echo ok' >deps/lib/tool.sh
EOF
cat >"$repo/ci/test.sh" <<EOF
set -e
[ -z "\${COUNT_DIR:-}" ] || echo test >>"\$COUNT_DIR/tests"
sleep $PROBE_SECONDS
cmp -s deps/manifest deps.txt || { echo "deps/ is missing or stale: install first" >&2; exit 1; }
sh deps/lib/tool.sh
v=\$(cat value)
[ "\$v" -lt $REGRESSION ] || { echo "value \$v: the regression" >&2; exit 1; }
EOF
for (( c = 1; c <= COMMITS; c++ )); do
    echo "$c" >"$repo/value"
    printf 'dep-a %d.0\ndep-b 1.0\n' $(( (c - 1) / DEPS_EVERY )) >"$repo/deps.txt"
    git_ add -A
    git_ commit -q -m "commit $c"
done
first=$(git_ rev-list --max-parents=0 HEAD)
culprit=$(git_ rev-parse "HEAD~$(( COMMITS - REGRESSION ))")

# The script `git bisect run` runs: install when deps/ is missing or made from another
# deps.txt, then the test. It runs outside the repository, so it is not part of the commits.
cat >"$scratch/git-step.sh" <<'EOF'
#!/bin/sh
cmp -s deps/manifest deps.txt || sh ci/install.sh || exit 125
exec sh ci/test.sh
EOF
chmod +x "$scratch/git-step.sh"

counts() { # DIR -> "installs tests" (lines in the count files)
    local i=0 t=0
    [[ -f $1/installs ]] && i=$(wc -l <"$1/installs")
    [[ -f $1/tests ]] && t=$(wc -l <"$1/tests")
    echo "$i $t"
}

# Each of these sets `us` (wall time), `steps`, `answer` (the commit named) and `extra`.
git_bisect() { # deps|nodeps TAG
    local tag=$2 t0 t1
    rm -rf "$repo/deps"
    if [[ $1 == deps ]]; then
        (cd "$repo" && sh ci/install.sh)
    fi
    rm -rf "$out/$tag.count" && mkdir -p "$out/$tag.count"
    t0=$(now_us)
    (cd "$repo" && git bisect start HEAD "$first" && \
        COUNT_DIR="$out/$tag.count" git bisect run "$scratch/git-step.sh") \
        >"$out/$tag.out" 2>&1 || { cat "$out/$tag.out" >&2; die "git bisect run failed"; }
    t1=$(now_us)
    us=$(( t1 - t0 ))
    answer=$(git_ rev-parse --verify -q refs/bisect/bad || echo none)
    steps=$(wc -l <"$out/$tag.count/tests")
    extra=""
    git_ bisect reset >/dev/null 2>&1
}

gzl_bisect() { # cold|warm TAG
    local tag=$2 home=$scratch/home.$2 t0 t1 line
    rm -rf "$home" "$out/$tag.count" && mkdir -p "$out/$tag.count"
    if [[ $1 == warm ]]; then
        # HEAD is bad: the run fails, and history holds its result.
        if (cd "$repo" && COUNT_DIR="$out/$tag.count" GZL_HOME="$home" "$gzl" run test \
            >"$out/$tag.warmup" 2>&1); then
            die "gzl run test passed at HEAD"
        fi
        grep -q 'regression' "$out/$tag.warmup" || { cat "$out/$tag.warmup" >&2; die "gzl run test at HEAD failed, not for the regression"; }
        rm -rf "$out/$tag.count" && mkdir -p "$out/$tag.count"
    fi
    t0=$(now_us)
    (cd "$repo" && COUNT_DIR="$out/$tag.count" GZL_HOME="$home" \
        "$gzl" bisect test --good "$first" >"$out/$tag.out" 2>"$out/$tag.err") \
        || { cat "$out/$tag.out" "$out/$tag.err" >&2; die "gzl bisect failed"; }
    t1=$(now_us)
    us=$(( t1 - t0 ))
    answer=$(sed -n 's/^first bad commit: \([0-9a-f]*\).*/\1/p' "$out/$tag.out")
    [[ -n $answer ]] || answer=none
    line=$(grep -E '^[0-9]+ probes?:' "$out/$tag.out" || echo '? probes: ? ran, ? from history')
    steps=${line%% *}
    # The pool's workspaces (one per N.json), the warm-up's included: a probe that failed
    # keeps its workspace, so the next one starts in another.
    local ws
    ws=$(find "$home/cache/workspaces" -mindepth 2 -maxdepth 2 -name '[0-9]*.json' 2>/dev/null | wc -l)
    extra=" (${line#*: }; $ws workspaces)"
}

declare -A times=() steps_of=() answer_of=() extra_of=() counts_of=()
kinds=(git-nodeps git-deps gzl-cold gzl-warm)
for (( rep = 1; rep <= R; rep++ )); do
    for kind in "${kinds[@]}"; do
        say "repetition $rep of $R: $kind"
        case $kind in
            git-nodeps) git_bisect nodeps "$kind" ;;
            git-deps) git_bisect deps "$kind" ;;
            gzl-cold) gzl_bisect cold "$kind" ;;
            gzl-warm) gzl_bisect warm "$kind" ;;
        esac
        times[$kind]+="$us "
        steps_of[$kind]=$steps answer_of[$kind]=$answer extra_of[$kind]=$extra
        counts_of[$kind]=$(counts "$out/$kind.count")
        say "   $(( us / 1000 )) ms, $steps steps$extra, installs/tests run: ${counts_of[$kind]}"
    done
done

label() {
    case $1 in
        git-nodeps) echo 'git bisect run, no deps/' ;;
        git-deps) echo 'git bisect run, deps/ at HEAD' ;;
        gzl-cold) echo 'gzl bisect cold' ;;
        gzl-warm) echo 'gzl bisect warm' ;;
    esac
}
# shellcheck disable=SC2086 # the times are space-separated numbers
ref=$(median ${times[git-deps]})
printf '\n%d commits, regression at commit %d, install %d s, test %d s; median of %d.\n\n' \
    "$COMMITS" "$REGRESSION" "$INSTALL_SECONDS" "$PROBE_SECONDS" "$R"
printf '| tool | wall time | vs git bisect run (deps/ at HEAD) | steps | installs run | tests run | right commit |\n'
printf '|---|---|---|---|---|---|---|\n'
for kind in "${kinds[@]}"; do
    # shellcheck disable=SC2086
    m=$(median ${times[$kind]})
    read -r inst tst <<<"${counts_of[$kind]}"
    if [[ ${answer_of[$kind]} == "$culprit" ]]; then
        right=yes
    else
        right="no (${answer_of[$kind]:0:10})"
    fi
    printf '| %s | %s s | %s | %s%s | %d | %d | %s |\n' "$(label "$kind")" \
        "$(awk -v us="$m" 'BEGIN { printf "%.1f", us / 1e6 }')" \
        "$(awk -v us="$m" -v ref="$ref" 'BEGIN { printf "%.2f", us / ref }')x" \
        "${steps_of[$kind]}" "${extra_of[$kind]}" "$inst" "$tst" "$right"
done
