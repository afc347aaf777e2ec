#!/usr/bin/env bash
# Check an image from build-image.sh against the cargo-built binary.
#
# Usage: .ci/check-image.sh LAYOUT:TAG
#   Reads the OCI layout (no daemon): the config must run /probegate serve as
#   65532:65532 with the OCI labels; the one layer must hold exactly /probegate,
#   /etc/passwd and /etc/group (so no shell, nothing else); the binary taken out
#   of the layer must answer `--version` and `mutate` on every golden fixture
#   (stdout, stderr and exit code) exactly as the cargo-built binary does; the SBOM
#   beside the layout (LAYOUT.cdx.json) must be valid CycloneDX 1.5 and list every
#   crate compiled into the binary, and nothing else, with its version and licence
#   (.ci/check-sbom.py, run with its self-test: spoilt copies must fail).
#   Taken out of the layer as docs/cli.md says, under the name kubectl-probegate,
#   the binary must answer as `kubectl probegate`, and kubectl (if installed) must
#   list it and run it.
#   The TAG-fn image (the KRM function) must be the same layer with the command fn,
#   and answer a ResourceList, run as its config says with no network, as the
#   cargo-built `probegate fn` does.
#   Prints the image's sizes.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "check-image: FAIL: $*" >&2; exit 1; }
log() { echo "check-image: $*" >&2; }

[[ $# -eq 1 && $1 == *:* ]] || { echo "usage: $0 LAYOUT:TAG" >&2; exit 2; }
layout=${1%:*}
tag=${1##*:}
blob() { printf '%s/blobs/%s' "$layout" "${1/://}"; }

manifest=$(jq -r --arg tag "$tag" \
    '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $tag) | .digest' \
    "$layout/index.json")
[[ -n $manifest ]] || die "no tag $tag in $layout"
config=$(jq -r '.config.digest' "$(blob "$manifest")")

expect() { # expect WHAT JQ-FILTER EXPECTED
    local got
    got=$(jq -c "$2" "$(blob "$config")")
    [[ $got == "$3" ]] || die "$1 is $got, expected $3"
    log "ok: $1 $got"
}
expect user '.config.User' '"65532:65532"'
expect entrypoint '.config.Entrypoint' '["/probegate"]'
expect command '.config.Cmd' '["serve"]'
expect platform '[.os, .architecture]' '["linux","amd64"]'
version=$(cargo metadata --no-deps --format-version 1 --locked | jq -r '.packages[] | select(.name == "probegate") | .version')
expect version-label '.config.Labels["org.opencontainers.image.version"]' "\"$version\""
expect licenses-label '.config.Labels["org.opencontainers.image.licenses"]' '"Apache-2.0"'
for label in source revision; do
    expect "$label-label" ".config.Labels[\"org.opencontainers.image.$label\"] | type" '"string"'
done

sbom=$layout.cdx.json
[[ -f $sbom ]] || die "no SBOM $sbom beside the layout"
# The CycloneDX schema validator, from the tool cache (.ci/install-tools.sh).
python="$(.ci/install-tools.sh cyclonedx-validator | tail -n1)/cyclonedx-python"
"$python" .ci/check-sbom.py --self-test "$sbom" || die "the SBOM $sbom does not describe the binary (above)"

layers=$(jq -r '.layers[].digest' "$(blob "$manifest")")
[[ $(wc -l <<<"$layers") -eq 1 ]] || die "expected one layer, got: $layers"
entries=$(tar -tzf "$(blob "$layers")" | sed 's|^\./||; s|/$||' | grep -v -e '^$' -e '^\.$' | sort | paste -sd' ')
[[ $entries == "etc etc/group etc/passwd probegate" ]] ||
    die "the layer holds $entries; expected only etc/group, etc/passwd, probegate (no shell)"
log "ok: layer holds $entries"

work=$(mktemp -d)
trap 'rm -rf -- "$work"' EXIT
tar -xzf "$(blob "$layers")" -C "$work" ./probegate 2>/dev/null || tar -xzf "$(blob "$layers")" -C "$work" probegate
owner=$(tar -tvzf "$(blob "$layers")" | awk '$NF ~ /probegate$/ { print $2 }')
[[ $owner == 0/0 ]] || die "/probegate is owned by $owner; root-owned so the user 65532 cannot change it"
from_image=$work/probegate

cargo build --locked >&2
cargo_built=$PWD/target/debug/probegate

same() { # same WHAT ARGS...: both binaries answer alike
    local what=$1
    shift
    local a b
    a=$("$from_image" "$@" 2>"$work/a.err"; echo "exit $?")
    b=$("$cargo_built" "$@" 2>"$work/b.err"; echo "exit $?")
    [[ $a == "$b" ]] || die "$what: stdout differs: image: $a / cargo: $b"
    cmp -s "$work/a.err" "$work/b.err" || die "$what: stderr differs"
}
same --version --version
[[ $("$from_image" --version) == "probegate $version" ]] || die "--version is $("$from_image" --version)"
cases=0
for dir in tests/golden/*/; do
    args=()
    if [[ -f $dir/args ]]; then read -r -a args <"$dir/args"; fi
    # From the fixture's folder, as tests/golden.rs runs it: its args may name files there.
    (cd "$dir" && same "mutate $dir" mutate -f input.yaml "${args[@]}") || exit 1
    cases=$((cases + 1))
done
log "ok: --version and mutate on $cases golden fixtures answer as the cargo-built binary"

# As a kubectl plugin, installed as docs/cli.md says: the layer's /probegate taken out under
# the name kubectl-probegate answers as `kubectl probegate`, and kubectl lists it and runs it.
plugins=$work/plugins
mkdir -p "$plugins"
tar -xzOf "$(blob "$layers")" --wildcards '*probegate' >"$plugins/kubectl-probegate"
chmod +x "$plugins/kubectl-probegate"
cmp -s "$plugins/kubectl-probegate" "$from_image" || die "docs/cli.md's tar line does not take out /probegate"
usage=$("$plugins/kubectl-probegate" --help | grep '^Usage:' || true)
[[ $usage == "Usage: kubectl probegate <COMMAND>" ]] || die "named kubectl-probegate, --help says: $usage"
command -v kubectl >/dev/null || die "kubectl is needed to run the image's binary as a plugin"
listed=$(PATH=$plugins:$PATH kubectl plugin list 2>/dev/null || true)
grep -qxF "$plugins/kubectl-probegate" <<<"$listed" ||
    die "kubectl plugin list does not list $plugins/kubectl-probegate: $listed"
usage=$(PATH=$plugins:$PATH kubectl probegate --help | grep '^Usage:' || true)
[[ $usage == "Usage: kubectl probegate <COMMAND>" ]] || die "kubectl probegate --help says: $usage"
log "ok: named kubectl-probegate, the image's binary is the plugin kubectl probegate"

# The KRM function's image: the same layer, user and entrypoint, `fn` as its command.
fn_manifest=$(jq -r --arg tag "$tag-fn" \
    '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $tag) | .digest' \
    "$layout/index.json")
[[ -n $fn_manifest ]] || die "no tag $tag-fn (the KRM function) in $layout"
[[ $(jq -r '.layers[].digest' "$(blob "$fn_manifest")") == "$layers" ]] || die "$tag-fn has other layers than $tag"
config=$(jq -r '.config.digest' "$(blob "$fn_manifest")")
expect fn-user '.config.User' '"65532:65532"'
expect fn-entrypoint '.config.Entrypoint' '["/probegate"]'
expect fn-command '.config.Cmd' '["fn"]'
# Run as an orchestrator runs a container function: the image's own command, its user, no
# network (a namespace with loopback only; as non-root, a user namespace makes one).
mapfile -t command < <(jq -r '.config.Entrypoint + .config.Cmd | .[]' "$(blob "$config")")
command[0]=$from_image
if [[ $(id -u) -eq 0 ]]; then
    isolated=(unshare --net setpriv --reuid=65532 --regid=65532 --clear-groups)
else
    isolated=(unshare --user --map-root-user --net)
fi
list=$work/resource-list.yaml
cat >"$list" <<'YAML'
apiVersion: config.kubernetes.io/v1
kind: ResourceList
items:
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: web, namespace: apps}
  spec:
    selector: {matchLabels: {app: web}}
    template:
      metadata: {labels: {app: web}}
      spec:
        containers:
        - {name: web, image: example.com/web:1.0, ports: [{name: http, containerPort: 8080}]}
YAML
a=$("${isolated[@]}" "${command[@]}" <"$list" 2>"$work/a.err"; echo "exit $?") ||
    die "could not run the function image's command isolated: ${isolated[*]}"
b=$("$cargo_built" fn <"$list" 2>"$work/b.err"; echo "exit $?")
[[ $a == "$b" ]] || die "fn: the image's answer differs: image: $a / cargo: $b; stderr: $(cat "$work/a.err")"
grep -q 'readinessProbe' <<<"$a" || die "fn answered without the readiness probe it adds: $a"
log "ok: $tag-fn runs ${command[*]#"$work"/} as 65532 without network and answers as the cargo-built fn"

layer_bytes=$(jq -r '.layers[0].size' "$(blob "$manifest")")
binary_bytes=$(stat -c %s "$from_image")
total=$(du -sb "$layout" | cut -f1)
log "sizes: compressed layer $layer_bytes bytes, binary $binary_bytes bytes, OCI layout $total bytes"
