#!/usr/bin/env bash
# The cost of the pin: how long `gzl check` takes in a repository with no gzl.toml, with a pin
# this gzl satisfies (gzl.toml read, nothing else), and with a pin a cached gzl serves (read,
# then exec of the cached binary, here a copy of the same gzl). Prints the median of N runs of
# each, in ms, and the pin's share. The goal: reading the pin costs a few ms at most, with no
# network.
#
# Environment: N (runs of each, default 50), GZL (a gzl binary), TMP (scratch parent), KEEP=1.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bench=pin.sh
# shellcheck source=benches/common.sh
source "$script_dir/common.sh"
repo_root=$(cd "$script_dir/.." && pwd)
N=${N:-50}
[[ $N =~ ^[1-9][0-9]*$ ]] || die "N must be a positive integer, not '$N'"
find_gzl "$repo_root"
make_scratch "${TMP:-${TMPDIR:-/tmp}}" gzl-pin

repo=$scratch/repo
# Nothing listens on the discard port: the bench fails rather than touch the network.
export GZL_HOME=$scratch/home GZL_RELEASE_URL=http://127.0.0.1:9
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
mkdir -p "$repo"
git -C "$repo" init -q -b main
printf 'a:\n    true\n' > "$repo/Gzlfile"
version=$("$gzl" --version | awk '{print $2}')

time_check() { # label -> median ms of N `gzl check`, printed with the label
    local times=() i start
    "$gzl" -C "$repo" check >/dev/null 2>&1 || die "gzl check failed ($1)"
    for ((i = 0; i < N; i++)); do
        start=$(now_us)
        "$gzl" -C "$repo" check >/dev/null 2>&1
        times+=($(( $(now_us) - start )))
    done
    local m
    m=$(median "${times[@]}")
    printf '%-34s %6.2f ms\n' "$1" "$(awk -v us="$m" 'BEGIN { print us / 1000 }')"
    echo "$m" > "$scratch/$2"
}

time_check "no gzl.toml" none
printf '[gzl]\nversion = "%s"\n' "$version" > "$repo/gzl.toml"
time_check "pin this gzl satisfies" this
mkdir -p "$GZL_HOME/cache/bin/999.0.0"
cp "$gzl" "$GZL_HOME/cache/bin/999.0.0/gzl"
printf '[gzl]\nversion = "999.0.0"\n' > "$repo/gzl.toml"
time_check "pin a cached gzl serves (exec)" cached
awk -v none="$(cat "$scratch/none")" -v this="$(cat "$scratch/this")" -v cached="$(cat "$scratch/cached")" 'BEGIN {
    printf "reading the pin: %+.2f ms; handing over: %+.2f ms\n", (this - none) / 1000, (cached - none) / 1000 }'
