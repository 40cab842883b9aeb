#!/usr/bin/env bash
# Builds the real control plane used by tests, benchmarks and the demo, from the Go module proxy:
# kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd, kwok and helm; and promtool
# for the chart's alert rules.
#
# Output: $KUBE_HEALER_TESTBIN, default ${XDG_CACHE_HOME:-~/.cache}/kube-healer/testbin/<versions>,
# outside the repo and keyed by the control plane's versions in versions.env, so a build happens once
# per machine (promtool, checked by its version output, is rebuilt in place when its version changes).
# Idempotent: a component whose binaries are present and report the right version is skipped.
# Prints the directory holding the binaries as its last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

key="k8s-${KUBERNETES_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}_helm-${HELM_VERSION}"
out=${KUBE_HEALER_TESTBIN:-${XDG_CACHE_HOME:-$HOME/.cache}/kube-healer/testbin/$key}
mkdir -p "$out"

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false"
command -v go >/dev/null || { echo "build.sh: go is not on PATH (Go 1.26 is needed)" >&2; exit 1; }

log() { printf '[controlplane %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# present NAME EXPECTED_SUBSTRING ARGS...: the binary exists and its version output names the version.
present() {
  local bin="$out/$1" want=$2; shift 2
  [[ -x "$bin" ]] || return 1
  # The whole output, not a pipe into head: under pipefail, head closing the pipe early can kill
  # the binary with SIGPIPE (etcd prints four lines), and a good binary would read as missing.
  local got; got=$("$bin" "$@" 2>&1) || return 1
  [[ "${got:0:400}" == *"$want"* ]]
}

# check NAME EXPECTED ARGS...: like present, but fails loudly (used right after a build).
check() {
  local name=$1 want=$2
  if ! present "$@"; then
    log "FAILED: $name does not report $want; it says: $("$out/$name" "${@:3}" 2>&1 | sed -n 1,3p)"
    exit 1
  fi
  log "ok: $name reports $want"
}

build() { # build MODULE_DIR LDFLAGS PACKAGES...
  local dir=$1 ldflags=$2; shift 2
  (cd "$here/$dir" && go build -trimpath -pgo=off -ldflags "-s -w $ldflags" -o "$out/" "$@")
}

k8s_minor=${KUBERNETES_VERSION#v1.}; k8s_minor=${k8s_minor%%.*}
if present kube-apiserver "$KUBERNETES_VERSION" --version && present kube-controller-manager "$KUBERNETES_VERSION" --version \
  && present kube-scheduler "$KUBERNETES_VERSION" --version && present kubectl "$KUBERNETES_VERSION" version --client; then
  log "kubernetes $KUBERNETES_VERSION: cached"
else
  log "kubernetes $KUBERNETES_VERSION: building kube-apiserver, kube-controller-manager, kube-scheduler, kubectl (cold: about 6 min on 2 cores)"
  vflags=""
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    vflags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$k8s_minor"
    vflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  build kubernetes "$vflags" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
  check kube-apiserver "$KUBERNETES_VERSION" --version
  check kube-controller-manager "$KUBERNETES_VERSION" --version
  check kube-scheduler "$KUBERNETES_VERSION" --version
  check kubectl "$KUBERNETES_VERSION" version --client
fi

if present etcd "${ETCD_VERSION#v}" --version; then
  log "etcd $ETCD_VERSION: cached"
else
  log "etcd $ETCD_VERSION: building"
  (cd "$here/etcd" && go build -trimpath -pgo=off -ldflags "-s -w" -o "$out/etcd" go.etcd.io/etcd/server/v3)
  check etcd "${ETCD_VERSION#v}" --version
fi

if present kwok "${KWOK_VERSION#v}" --version; then
  log "kwok $KWOK_VERSION: cached"
else
  log "kwok $KWOK_VERSION: building"
  build tools "-X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}" sigs.k8s.io/kwok/cmd/kwok
  check kwok "${KWOK_VERSION#v}" --version
fi

if present helm "$HELM_VERSION" version --short; then
  log "helm $HELM_VERSION: cached"
else
  log "helm $HELM_VERSION: building"
  build tools "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean \
    -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$k8s_minor \
    -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$k8s_minor" \
    helm.sh/helm/v3/cmd/helm
  check helm "$HELM_VERSION" version --short
fi

# promtool checks the chart's alert rules and runs their unit tests. Not in the directory's key:
# like every binary here it is rebuilt when its version output differs from versions.env.
IFS=. read -r prom_major prom_minor prom_patch <<< "${PROMETHEUS_VERSION#v}"
if present promtool "version ${PROMETHEUS_VERSION#v}" --version; then
  log "promtool $PROMETHEUS_VERSION: cached"
else
  log "promtool $PROMETHEUS_VERSION: building (module v0.${prom_major}$(printf %02d "$prom_minor").${prom_patch}; cold: about 5 min on 2 cores)"
  build prometheus "-X github.com/prometheus/common/version.Version=${PROMETHEUS_VERSION#v}" \
    github.com/prometheus/prometheus/cmd/promtool
  check promtool "version ${PROMETHEUS_VERSION#v}" --version
fi

# The stock kwok stages ship in kwok's module source; copy them next to the binaries.
stages="$out/kwok-stages"
if [[ ! -d "$stages" ]]; then
  src=$(cd "$here/tools" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)/kustomize/stage
  mkdir -p "$stages.tmp" && cp -r "$src"/. "$stages.tmp"/ && chmod -R u+w "$stages.tmp" && mv "$stages.tmp" "$stages"
  log "kwok stock stages copied to $stages"
fi
echo "$out"
