#!/usr/bin/env bash
# Attach latency: how long an output line takes from a stage writing it to `gzl attach`
# printing it, in another process. A stage prints N lines, each holding the time it was
# written (ns since the epoch), 100 ms apart; `gzl attach` reads them and this script stamps
# each line as it arrives. Prints the median and p90 in ms. The goal: within 100 ms.
#
# Environment: N (lines, default 50), GZL (a gzl binary), TMP (scratch parent), KEEP=1.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bench=attach.sh
# shellcheck source=benches/common.sh
source "$script_dir/common.sh"
repo_root=$(cd "$script_dir/.." && pwd)
N=${N:-50}
[[ $N =~ ^[1-9][0-9]*$ ]] || die "N must be a positive integer, not '$N'"
find_gzl "$repo_root"
make_scratch "${TMP:-${TMPDIR:-/tmp}}" gzl-attach

repo=$scratch/repo
export GZL_HOME=$scratch/home GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
mkdir -p "$repo"
git -C "$repo" init -q -b main
printf 'talk:\n    for i in $(seq %s); do date +%%s%%N; sleep 0.1; done\n' "$N" > "$repo/Gzlfile"
git -C "$repo" add -A
git -C "$repo" -c user.name=bench -c user.email=bench@localhost commit -q -m bench

(cd "$repo" && "$gzl" run --quiet >/dev/null 2>&1 &)
# Attach once the run is recorded.
until (cd "$repo" && "$gzl" ls --json 2>/dev/null | grep -q '"status":"running"'); do sleep 0.01; done
latencies=()
while IFS= read -r line; do
    now=$(date +%s%N)
    written=${line##*| }
    [[ $written =~ ^[0-9]+$ ]] || continue
    latencies+=($(( (now - written) / 1000000 )))
done < <(cd "$repo" && "$gzl" attach 2>/dev/null)
(( ${#latencies[@]} == N )) || die "saw ${#latencies[@]} lines instead of $N"
sorted=($(printf '%s\n' "${latencies[@]}" | sort -n))
p90=${sorted[$(( (N * 9 + 9) / 10 - 1 ))]}
printf '| measurement | median ms | p90 ms | goal |\n|---|---:|---:|---|\n'
printf '| line written → shown by `gzl attach` | %s | %s | ≤ 100 |\n' "$(median "${latencies[@]}")" "$p90"
