#!/usr/bin/env bash
# Build probegate's container image as an OCI image layout, without a daemon or a base.
#
# Usage: .ci/build-image.sh OUT
#   Builds a static binary (x86_64-unknown-linux-musl, release) and assembles a
#   single-layer image from scratch in OUT (an OCI image layout, tag = the crate
#   version): /probegate, image/rootfs/ (an /etc/passwd and /etc/group naming the
#   nonroot user), user 65532:65532, entrypoint /probegate, command serve, OCI labels;
#   and TAG-fn, the same layer with the command fn: `probegate fn` as a container KRM
#   function (kustomize's and kpt's `container: image:`).
#   Beside it, OUT.cdx.json: the image's software bill of materials (CycloneDX 1.5
#   JSON), every crate compiled into the binary with its version, licence and hash.
#   Prints OUT:TAG on its last line. Copy it to a registry with e.g.
#     skopeo copy oci:OUT:TAG docker://ghcr.io/probegate/probegate:TAG
#
# The SBOM: cargo-cyclonedx (pinned, cached by .ci/install-tools.sh) describes the crate
# for the target from `cargo metadata` and Cargo.lock, offline, without build
# dependencies (--no-build-deps; CycloneDX/cyclonedx-rust-cargo README, CHANGELOG 0.5.5).
# cargo metadata resolves features as if dev-dependencies and every optional dependency
# named by a `dep?/feature` were in the build (cyclonedx-rust-cargo#760, cargo#10718,
# cargo#15784), so its list holds crates never compiled (here bit-vec, rand_core 0.10,
# zerocopy-derive), and proc-macros and what only they use, which run on the build
# machine. The SBOM keeps the tool's entries for exactly the packages this build
# compiled for the target (cargo's own artifact messages), and fails if the tool lacks
# one. .ci/check-image.sh checks that list against `cargo tree` independently.
# SOURCE_DATE_EPOCH (the commit's time) makes it reproducible: no random serial number.
# It is a file beside the layout, not an OCI artifact in it: umoci writes images only.
#
# Needs: cargo with the x86_64-unknown-linux-musl target, musl-gcc (Debian:
# musl-tools) for ring's C code, umoci (Debian: umoci), jq, and cargo-cyclonedx
# (installed by .ci/install-tools.sh into its cache). When run as root
# with apt-get available, missing Debian packages are installed.
#
# Why umoci: it writes the OCI layout itself, from a plain directory, with no
# daemon, no storage driver and no user namespaces (buildah needs all of these
# set up, and a container engine would need a base image to pull). The layer
# is a tar of a folder we fill, so the image holds exactly what we put in it.
#
# The Dockerfile builds the same layout for those who have Docker.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "build-image: error: $*" >&2; exit 1; }
log() { echo "build-image: $*" >&2; }

[[ $# -eq 1 && -n $1 ]] || { echo "usage: $0 OUT" >&2; exit 2; }
out=${1%/}

target=x86_64-unknown-linux-musl
missing=()
command -v umoci >/dev/null || missing+=(umoci)
command -v musl-gcc >/dev/null || missing+=(musl-tools)
command -v jq >/dev/null || missing+=(jq)
if (( ${#missing[@]} )); then
    .ci/debian-packages.sh "${missing[@]}" || die "missing ${missing[*]}"
fi
if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
    log "adding the $target target"
    rustup target add "$target" >&2 || die "rustup target add $target failed"
fi

version=$(cargo metadata --no-deps --format-version 1 --locked | jq -r '.packages[] | select(.name == "probegate") | .version')
licence=$(cargo metadata --no-deps --format-version 1 --locked | jq -r '.packages[] | select(.name == "probegate") | .license // "NOASSERTION"')
source=${PROBEGATE_IMAGE_SOURCE:-https://github.com/probegate/probegate}
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)

work=$(mktemp -d)
trap 'rm -rf -- "$work"' EXIT
mkdir -p -- "$(dirname -- "$out")"
sbom=$out.cdx.json
rm -f -- "$sbom"
cyclonedx="$(.ci/install-tools.sh cargo-cyclonedx | tail -n1)/cargo-cyclonedx"

log "building the static binary ($target, release)"
# JSON messages to stdout (one per compiled unit, fresh or not), diagnostics as usual.
CC_x86_64_unknown_linux_musl=musl-gcc cargo build --release --locked --target "$target" \
    --message-format=json-render-diagnostics >"$work/build.jsonl"
binary=target/$target/release/probegate
# A static binary: no interpreter to load it, so it runs on an image with nothing else.
if readelf -l "$binary" | grep -q 'INTERP'; then
    die "$binary is dynamically linked"
fi

log "writing the SBOM $sbom"
# Units built for the target land under target/TRIPLE/; build scripts and proc-macros
# (and their dependencies) are built for the host, under target/release/.
jq -r --arg dir "$PWD/target/$target/" \
    'select(.reason == "compiler-artifact" and any(.filenames[]; startswith($dir))) | .package_id' \
    "$work/build.jsonl" | sort -u | jq -R . | jq -s . >"$work/linked.json"
# It writes NAME.json beside Cargo.toml; CARGO_NET_OFFLINE: cargo metadata reads Cargo.lock
# and the registry cache only (cargo's net.offline setting).
name=.build-image-sbom-$$
trap 'rm -rf -- "$work" "$name.json"' EXIT
lock=$(sha256sum Cargo.lock)
CARGO_NET_OFFLINE=true SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || echo 0) \
    "$cyclonedx" cyclonedx --quiet --format json --spec-version 1.5 --target "$target" \
    --no-build-deps --override-filename "$name" >&2
[[ $(sha256sum Cargo.lock) == "$lock" ]] || die "cargo-cyclonedx changed Cargo.lock"
lacking=$(jq -r --slurpfile linked "$work/linked.json" \
    '[.metadata.component["bom-ref"], .components[]["bom-ref"]] as $refs | $linked[0] - $refs | .[]' \
    "$name.json")
[[ -z $lacking ]] || die "cargo-cyclonedx left out crates the binary has: $lacking"
jq --slurpfile linked "$work/linked.json" '
    ($linked[0] | map({(.): true}) | add) as $keep
    | .components |= map(select($keep[.["bom-ref"]]))
    | .dependencies |= map(select($keep[.ref])
        | if has("dependsOn") then .dependsOn |= map(select($keep[.])) else . end)' \
    "$name.json" >"$sbom"
rm -f -- "$name.json"

rm -rf -- "$out"
umoci init --layout "$out"
umoci new --image "$out:$version"
# --rootless: no need to be root; files are recorded as owned by root all the same.
umoci unpack --rootless --image "$out:$version" "$work/bundle" >&2
cp -a image/rootfs/. "$work/bundle/rootfs/"
# Symbols stripped: a fifth smaller, and nothing the server reads at run time.
install -s -m 0755 "$binary" "$work/bundle/rootfs/probegate"
umoci repack --image "$out:$version" "$work/bundle" >&2
umoci config --image "$out:$version" \
    --os linux --architecture amd64 \
    --config.user 65532:65532 \
    --config.entrypoint /probegate \
    --config.cmd serve \
    --config.exposedports 8443/tcp \
    --config.exposedports 8081/tcp \
    --config.exposedports 9090/tcp \
    --config.label "org.opencontainers.image.title=probegate" \
    --config.label "org.opencontainers.image.version=$version" \
    --config.label "org.opencontainers.image.source=$source" \
    --config.label "org.opencontainers.image.revision=$revision" \
    --config.label "org.opencontainers.image.licenses=$licence" \
    --history.created_by ".ci/build-image.sh" \
    --history.comment "probegate $version, static, from scratch" >&2
# The KRM function's image: the same layer with `fn` as its command, since orchestrators run
# a container function with the image's own command and pass it no arguments (kpt's exec
# runtime guide: an exec function becomes a container one as the image's CMD or ENTRYPOINT).
umoci config --image "$out:$version" --tag "$version-fn" \
    --config.cmd fn \
    --config.label "org.opencontainers.image.description=probegate fn, a KRM function" \
    --history.created_by ".ci/build-image.sh" \
    --history.comment "probegate fn: a ResourceList on stdin, the same on stdout" >&2
umoci gc --layout "$out"
log "built $out:$version and $out:$version-fn (the KRM function)"
echo "$out:$version"
