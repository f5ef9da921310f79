# Shared by the bench scripts: messages, timing, medians, finding gzl and a scratch directory.
# Source it after setting `bench` to the script's name.

say() { printf '%s\n' "$*" >&2; }
die() { say "$bench: $*"; exit 1; }

# Microseconds since the epoch, without forking where bash can tell.
now_us() {
    if [[ -n ${EPOCHREALTIME:-} ]]; then
        local t=${EPOCHREALTIME/[.,]/}
        printf '%s' "$t"
    else
        echo $(( $(date +%s%N) / 1000 ))
    fi
}

median() { # numbers on the arguments -> the median (the mean of the middle two when even)
    printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END {
        if (NR % 2) print v[(NR + 1) / 2]; else print int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}

# Sets `gzl` to $GZL, or builds the release binary of the checkout at $1 and uses it.
find_gzl() {
    local repo_root=$1
    if [[ -n ${GZL:-} ]]; then
        [[ -x $GZL ]] || die "GZL=$GZL is not an executable"
        gzl=$(cd "$(dirname "$GZL")" && pwd)/$(basename "$GZL")
    else
        say "building gzl (cargo build --release) in $repo_root"
        (cd "$repo_root" && cargo build --release --quiet >&2) || die "cargo build --release failed"
        gzl=$repo_root/target/release/gzl
    fi
}

# Sets `scratch` to a new directory under $1 named after $2, removed on exit unless KEEP=1.
make_scratch() {
    scratch=$(mktemp -d "$1/$2.XXXXXX")
    trap 'if [[ ${KEEP:-0} == 1 ]]; then say "kept $scratch"; else rm -rf -- "$scratch"; fi' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}
