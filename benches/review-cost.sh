#!/usr/bin/env bash
# Instructions per review on each review fixture, counted by callgrind: repeatable on a busy
# machine, where timings are not. The cost of one review is the difference between two runs
# (110 and 10 reviews) divided by 100, so start-up does not count.
#
# Usage: benches/review-cost.sh [FIXTURE.json ...]
#   A fixture is an AdmissionReview, or an object to wrap in a CREATE review. Default: the
#   synthetic 10 KB Deployment and every captured benches/fixtures/review-*.json.
# With PROFILE=1, also prints the functions that cost most (callgrind_annotate, inclusive).
# The last column is the floor: serde_json reading past the same body, building nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "review-cost: valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
bin=$(cargo bench --locked --bench review_cost --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\))/\1/p' | tail -n1)
[[ -x "$bin" ]] || { echo "review-cost: could not build the review_cost bench" >&2; exit 1; }
fixtures=("$@")
[[ ${#fixtures[@]} -gt 0 ]] || fixtures=(benches/fixtures/deployment.json benches/fixtures/review-*.json)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
count() { # FIXTURE N [--read-past] -> total instructions
  valgrind --tool=callgrind --callgrind-out-file="$out/cg.$2" "$bin" "$@" >/dev/null 2>"$out/log" ||
    { echo "review-cost: the run on $1 failed:" >&2; tail -n 20 "$out/log" >&2; exit 1; }
  sed -n 's/^summary: //p' "$out/cg.$2"
}
printf '%-32s %10s %14s %14s\n' fixture bytes instructions/review read-past
for fixture in "${fixtures[@]}"; do
  low=$(count "$fixture" 10)
  high=$(count "$fixture" 110)
  if [[ "${PROFILE:-}" == 1 ]]; then
    callgrind_annotate --inclusive=yes "$out/cg.110" 2>/dev/null | sed -n '1,60p' | grep -v '^-' | cut -c1-160
  fi
  floor_low=$(count "$fixture" 10 --read-past)
  floor_high=$(count "$fixture" 110 --read-past)
  printf '%-32s %10s %14s %14s\n' "$(basename "$fixture" .json)" "$(wc -c < "$fixture")" \
    "$(( (high - low) / 100 ))" "$(( (floor_high - floor_low) / 100 ))"
done
