#!/usr/bin/env bash
# Install the pinned helm, kube-score, kustomize, kube-linter and promtool binaries
# used to check manifests/, charts/probegate/ and probegate's own output, and the pinned
# cargo-cyclonedx and CycloneDX validator the image's SBOM is made and checked with.
#
# Usage: .ci/install-tools.sh [helm] [kube-score] [kustomize] [kube-linter] [promtool]
#                             [cargo-cyclonedx] [cyclonedx-validator]
#   With no arguments helm and kube-linter are installed. The binaries go to
#   ${PROBEGATE_CACHE:-$HOME/.cache/probegate}/bin (outside the repo); that
#   directory is printed on the last line of stdout, so callers can do
#     PATH="$(.ci/install-tools.sh | tail -n1):$PATH"
#
# A tool whose installed binary was built from the pinned module version with
# the same -ldflags (or, for the two SBOM tools, whose stamp names the pinned
# version) is skipped, so the script is cheap to re-run. Builds run under
# `nice -n 19`.
#
# `go install` alone would leave helm's default Kubernetes version at v1.20
# (its release Makefile sets it through -ldflags), which makes `helm template`
# reject charts with a newer kubeVersion; the -ldflags below set it the same
# way the release build does, from the client-go version in helm's go.mod.
# Exit status is non-zero if go (for a Go tool), cargo or python3 is missing or
# any requested tool could not be installed (e.g. the Go module proxy or the
# registry is unreachable or refuses the module).
set -euo pipefail

HELM_MODULE="helm.sh/helm/v3"
HELM_PKG="helm.sh/helm/v3/cmd/helm"
HELM_VERSION="v3.22.0"

KUBE_SCORE_MODULE="github.com/zegl/kube-score"
KUBE_SCORE_PKG="github.com/zegl/kube-score/cmd/kube-score"
KUBE_SCORE_VERSION="v1.20.0"

# kustomize runs `probegate fn` as an exec KRM function in tests/krm_function.rs.
KUSTOMIZE_MODULE="sigs.k8s.io/kustomize/kustomize/v5"
KUSTOMIZE_PKG="sigs.k8s.io/kustomize/kustomize/v5"
KUSTOMIZE_VERSION="v5.8.1"

KUBE_LINTER_MODULE="golang.stackrox.io/kube-linter"
KUBE_LINTER_PKG="golang.stackrox.io/kube-linter/cmd/kube-linter"
KUBE_LINTER_VERSION="v0.8.3"

# cargo-cyclonedx writes the image's SBOM (CycloneDX JSON) from cargo metadata and
# Cargo.lock, without a network (.ci/build-image.sh). `cargo install --locked` builds it
# with the Cargo.lock it is published with; about 3.5 minutes on a cold cache here.
CARGO_CYCLONEDX_VERSION="0.5.9"
# CycloneDX's own Python library validates the SBOM against the CycloneDX JSON schema it
# ships (its `json-validation` extra; docs/install.rst, examples/complex_validation.py),
# so .ci/check-image.sh needs no network for the schema.
CYCLONEDX_PYTHON_LIB_VERSION="11.12.0"

CACHE_DIR="${PROBEGATE_CACHE:-${HOME:-/tmp}/.cache/probegate}"
BIN_DIR="${CACHE_DIR}/bin"
PROXY_TIMEOUT="${PROBEGATE_PROXY_TIMEOUT:-60}"

die() { echo "install-tools: ERROR: $*" >&2; exit 1; }
log() { echo "install-tools: $*" >&2; }

GO="$(command -v go || true)"
if [[ -z "$GO" && -x /usr/local/go/bin/go ]]; then
  GO=/usr/local/go/bin/go
fi

mkdir -p "$BIN_DIR"
# Keep go's build cache and module cache under the tool cache too, so the
# repository and the user's GOPATH stay untouched.
export GOBIN="$BIN_DIR"
export GOMODCACHE="${GOMODCACHE:-${CACHE_DIR}/gomod}"
export GOCACHE="${GOCACHE:-${CACHE_DIR}/gobuild}"
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
export CGO_ENABLED=0
# Build outside any module so the repo's files (if any go.mod appears) are ignored.
cd "$CACHE_DIR"

# build_info BINARY MODULE -> "<module version> <-ldflags>" BINARY was built
# with. The module version comes from the binary itself; -ldflags (which
# -trimpath leaves out of the build info) from the stamp written next to it.
build_info() {
  local bin="$1" module="$2" version
  [[ -x "$bin" && -f "${bin}.stamp" ]] || return 0
  version="$("$GO" version -m "$bin" 2>/dev/null | awk -v m="$module" '$1 == "mod" && $2 == m { print $3 }')"
  [[ "$version" == "$(head -n1 "${bin}.stamp")" ]] || return 0
  paste -sd' ' "${bin}.stamp"
}

# check_proxy MODULE VERSION: fail loudly unless the module proxy serves it.
check_proxy() {
  local module="$1" version="$2" out
  log "checking that the module proxy serves ${module}@${version}"
  if ! out="$(timeout "$PROXY_TIMEOUT" "$GO" list -m -json "${module}@${version}" 2>&1)"; then
    log "cannot resolve ${module}@${version} through GOPROXY=$("$GO" env GOPROXY)"
    printf '%s\n' "$out" | sed 's/^/install-tools:   /' >&2
    return 1
  fi
}

# install_tool NAME MODULE PACKAGE VERSION LDFLAGS
install_tool() {
  local name="$1" module="$2" pkg="$3" version="$4" ldflags="$5"
  local bin="${BIN_DIR}/${name}" want have
  want="${version} ${ldflags}"
  have="$(build_info "$bin" "$module")"
  if [[ "$have" == "$want" ]]; then
    log "${name} ${version} already installed at ${bin}"
    return 0
  fi
  log "installing ${name} ${version} (go install ${pkg}@${version}; this can take several minutes)"
  rm -f "${bin}.stamp"
  if ! nice -n 19 "$GO" install -trimpath -ldflags="$ldflags" "${pkg}@${version}"; then
    log "go install ${pkg}@${version} failed"
    return 1
  fi
  printf '%s\n%s\n' "$version" "$ldflags" > "${bin}.stamp"
  have="$(build_info "$bin" "$module")"
  [[ "$have" == "$want" ]] || { log "${bin} was built as '${have}', expected '${want}'"; return 1; }
  log "installed ${name} ${version} at ${bin}"
}

install_helm() {
  check_proxy "$HELM_MODULE" "$HELM_VERSION" || return 1
  # helm's release build sets its default Kubernetes version to client-go's
  # minor version (v0.N.x -> 1.N); do the same.
  local gomod minor
  gomod="$(timeout "$PROXY_TIMEOUT" "$GO" mod download -json "${HELM_MODULE}@${HELM_VERSION}" |
    awk -F'"' '$2 == "GoMod" { print $4 }')" || true
  [[ -n "$gomod" && -f "$gomod" ]] || { log "cannot download ${HELM_MODULE}@${HELM_VERSION}'s go.mod"; return 1; }
  minor="$(awk '$1 == "k8s.io/client-go" { split($2, v, "."); print v[2] }' "$gomod")"
  [[ "$minor" =~ ^[0-9]+$ ]] || { log "cannot find k8s.io/client-go in ${gomod}"; return 1; }
  local ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}"
  ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  ldflags+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1"
  ldflags+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=${minor}"
  ldflags+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1"
  ldflags+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=${minor}"
  install_tool helm "$HELM_MODULE" "$HELM_PKG" "$HELM_VERSION" "$ldflags"
}

install_kube_score() {
  local ldflags="-s -w"
  if [[ "$(build_info "${BIN_DIR}/kube-score" "$KUBE_SCORE_MODULE")" != "${KUBE_SCORE_VERSION} ${ldflags}" ]]; then
    check_proxy "$KUBE_SCORE_MODULE" "$KUBE_SCORE_VERSION" || return 1
  fi
  install_tool kube-score "$KUBE_SCORE_MODULE" "$KUBE_SCORE_PKG" "$KUBE_SCORE_VERSION" "$ldflags"
}

install_kustomize() {
  local ldflags="-s -w"
  if [[ "$(build_info "${BIN_DIR}/kustomize" "$KUSTOMIZE_MODULE")" != "${KUSTOMIZE_VERSION} ${ldflags}" ]]; then
    check_proxy "$KUSTOMIZE_MODULE" "$KUSTOMIZE_VERSION" || return 1
  fi
  install_tool kustomize "$KUSTOMIZE_MODULE" "$KUSTOMIZE_PKG" "$KUSTOMIZE_VERSION" "$ldflags"
}

install_kube_linter() {
  local ldflags="-s -w -X golang.stackrox.io/kube-linter/internal/version.version=${KUBE_LINTER_VERSION#v}"
  local have
  have="$(build_info "${BIN_DIR}/kube-linter" "$KUBE_LINTER_MODULE")"
  if [[ "$have" != "${KUBE_LINTER_VERSION} ${ldflags}" ]]; then
    check_proxy "$KUBE_LINTER_MODULE" "$KUBE_LINTER_VERSION" || return 1
  fi
  install_tool kube-linter "$KUBE_LINTER_MODULE" "$KUBE_LINTER_PKG" "$KUBE_LINTER_VERSION" "$ldflags"
}

# stamped NAME VERSION: NAME's stamp says VERSION was installed (and NAME is there).
stamped() {
  [[ -x "${BIN_DIR}/$1" && -f "${BIN_DIR}/$1.stamp" && "$(cat "${BIN_DIR}/$1.stamp")" == "$2" ]]
}

install_cargo_cyclonedx() {
  local bin="${BIN_DIR}/cargo-cyclonedx" version="$CARGO_CYCLONEDX_VERSION"
  if stamped cargo-cyclonedx "$version"; then
    log "cargo-cyclonedx ${version} already installed at ${bin}"
    return 0
  fi
  command -v cargo >/dev/null || { log "cargo not found"; return 1; }
  log "installing cargo-cyclonedx ${version} (cargo install; about 3.5 minutes)"
  rm -f "${bin}.stamp"
  # --root CACHE_DIR puts the binary in BIN_DIR (CACHE_DIR/bin), beside the Go tools.
  nice -n 19 cargo install --locked --force --version "$version" --root "$CACHE_DIR" cargo-cyclonedx >&2 ||
    { log "cargo install cargo-cyclonedx@${version} failed"; return 1; }
  # It runs as a cargo subcommand: the first argument is the subcommand's name.
  [[ "$("$bin" cyclonedx --version)" == *" ${version}" ]] ||
    { log "${bin} reports $("$bin" cyclonedx --version), expected ${version}"; return 1; }
  printf '%s\n' "$version" > "${bin}.stamp"
  log "installed cargo-cyclonedx ${version} at ${bin}"
}

# The validator is a virtual environment with cyclonedx-python-lib in it; BIN_DIR gets
# cyclonedx-python, that environment's python3.
install_cyclonedx_validator() {
  local version="$CYCLONEDX_PYTHON_LIB_VERSION" venv="${CACHE_DIR}/cyclonedx-python-lib"
  local bin="${BIN_DIR}/cyclonedx-python"
  if stamped cyclonedx-python "$version"; then
    log "cyclonedx-python-lib ${version} already installed at ${venv}"
    return 0
  fi
  command -v python3 >/dev/null || { log "python3 not found"; return 1; }
  log "installing cyclonedx-python-lib ${version} into ${venv}"
  rm -rf "$venv" "$bin" "${bin}.stamp"
  python3 -m venv "$venv" >&2 &&
    "${venv}/bin/python3" -m pip install --quiet --disable-pip-version-check \
      "cyclonedx-python-lib[json-validation]==${version}" >&2 ||
    { log "pip install cyclonedx-python-lib==${version} failed"; return 1; }
  printf '#!/bin/sh\nexec "%s" "$@"\n' "${venv}/bin/python3" > "$bin"
  chmod +x "$bin"
  "$bin" -c 'import cyclonedx.validation.json' ||
    { log "cyclonedx-python-lib ${version} does not import"; return 1; }
  printf '%s\n' "$version" > "${bin}.stamp"
  log "installed cyclonedx-python-lib ${version} (${bin})"
}

# promtool checks the chart's alert rules (check rules, test rules) in tests/monitoring.rs.
PROMTOOL_MODULE="github.com/prometheus/prometheus"
PROMTOOL_PKG="github.com/prometheus/prometheus/cmd/promtool"
PROMTOOL_VERSION="v0.316.0"

install_promtool() {
  local ldflags="-s -w"
  if [[ "$(build_info "${BIN_DIR}/promtool" "$PROMTOOL_MODULE")" != "${PROMTOOL_VERSION} ${ldflags}" ]]; then
    check_proxy "$PROMTOOL_MODULE" "$PROMTOOL_VERSION" || return 1
  fi
  install_tool promtool "$PROMTOOL_MODULE" "$PROMTOOL_PKG" "$PROMTOOL_VERSION" "$ldflags"
}

tools=("$@")
[[ ${#tools[@]} -gt 0 ]] || tools=(helm kube-linter)

failed=()
for t in "${tools[@]}"; do
  case "$t" in
    helm | kube-score | kustomize | kube-linter | promtool)
      [[ -n "$GO" ]] || die "go not found on PATH (nor /usr/local/go/bin/go); install Go >= 1.26 first" ;;
  esac
  case "$t" in
    helm)        install_helm || failed+=("$t") ;;
    kube-score)  install_kube_score || failed+=("$t") ;;
    kustomize)   install_kustomize || failed+=("$t") ;;
    kube-linter) install_kube_linter || failed+=("$t") ;;
    cargo-cyclonedx) install_cargo_cyclonedx || failed+=("$t") ;;
    cyclonedx-validator) install_cyclonedx_validator || failed+=("$t") ;;
    promtool)    install_promtool || failed+=("$t") ;;
    *)           die "unknown tool '$t' (known: helm kube-score kustomize kube-linter promtool cargo-cyclonedx cyclonedx-validator)" ;;
  esac
done

if [[ ${#failed[@]} -gt 0 ]]; then
  die "could not install: ${failed[*]} (is the Go module proxy reachable and does it serve these modules?)"
fi
echo "$BIN_DIR"
