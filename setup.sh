#!/usr/bin/env bash
# conclave setup: installs the Debian packages the build needs (only those
# missing), configures the meson build directory and builds.
#
#   ./setup.sh          install what is missing, configure, build
#   ./setup.sh test     the same, then run every test; the last line printed
#                       is "N passed, N failed, N skipped" (test cases)
#   ./setup.sh deps     only install what is missing
#   ./setup.sh demo     the same as build, then run examples/demo.sh (a local cluster)
#   ./setup.sh compare  the same as build, plus etcd, ZooKeeper and their client
#                       libraries for `conclave-bench --compare etcd,zookeeper`
#   ./setup.sh fuzz [S] install clang with libFuzzer, then run every fuzz target
#                       for S seconds (default 60; test/fuzz/README.md)
#
# Environment: BUILD_DIR (default: build), BUILDTYPE (default: debugoptimized).
set -euo pipefail

cd "$(dirname "$0")"
BUILD_DIR=${BUILD_DIR:-build}
BUILDTYPE=${BUILDTYPE:-debugoptimized}

# Build dependencies (Debian 12). lmdb-utils gives mdb_stat for the crash tests;
# ccache only speeds rebuilds of the CAF code.
PACKAGES=(
  g++ meson ninja-build pkg-config ccache
  libcaf-dev capnproto libcapnp-dev liblmdb-dev lmdb-utils libfmt-dev doctest-dev zlib1g-dev libssl-dev python3
  iproute2  # the fault suite's real link cuts (network namespaces, tc)
  systemd  # systemd-analyze verify of the installed unit (test/install_test.cpp); no systemd needs to run
  # etcd's v3 API (client-listen): gRPC and protobuf; etcdctl and python3-etcd3 for its tests,
  # and etcd itself for the conformance test (test/etcd_conformance)
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler etcd-client python3-etcd3 etcd-server
  # etcd's JSON gateway (http-listen): cpp-httplib; curl and python3-etcd3gw for its tests
  libcpp-httplib-dev curl python3-etcd3gw
  # the status page (http-listen, /): JSON with nlohmann's; headless chromium renders it in its test
  nlohmann-json3-dev chromium
  # TLS (README "TLS"): the openssl command makes the test's throwaway CA and certificates
  openssl
  # Go clientv3 against the etcd API (test/etcd_go_test.cpp): Debian's go and etcd 3.4's sources, built offline
  golang-go golang-etcd-server-dev
  # /metrics on http-listen: prometheus-cpp (core and its text serializer); promtool checks it in the tests
  # (Debian ships promtool only in `prometheus`, whose service starts on :9090 on a host running systemd)
  prometheus-cpp-dev prometheus
)

# Only for `conclave-bench --compare`: the systems it compares with (Debian's
# etcd 3.4, in PACKAGES, and ZooKeeper 3.8 with a Java runtime) and their client libraries.
COMPARE_PACKAGES=(zookeeper default-jre-headless libzookeeper-mt-dev libcurl4-openssl-dev)
# Only for `./setup.sh fuzz`: clang and its libFuzzer/sanitizer runtimes.
FUZZ_PACKAGES=(clang libclang-rt-14-dev)

install_missing() {
  local missing=()
  for p in "$@"; do
    # dpkg-query is fast; a package counts as present only when fully installed.
    if [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]]; then
      missing+=("$p")
    fi
  done
  if ((${#missing[@]} == 0)); then
    return 0
  fi
  echo "setup: installing ${missing[*]}"
  local sudo=()
  if ((EUID != 0)); then
    command -v sudo >/dev/null || { echo "setup: need root or sudo to install ${missing[*]}" >&2; exit 1; }
    sudo=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  # Update the package lists only when an install without it fails (fresh images
  # often ship empty lists).
  if ! "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"; then
    "${sudo[@]}" apt-get update -q
    "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
}

configure_and_build() {
  if [[ ! -f "$BUILD_DIR/build.ninja" ]]; then
    meson setup "$BUILD_DIR" --buildtype="$BUILDTYPE"
  fi
  ninja -C "$BUILD_DIR"
}

case "${1:-build}" in
  deps) install_missing "${PACKAGES[@]}" ;;
  demo)
    install_missing "${PACKAGES[@]}"
    configure_and_build
    exec examples/demo.sh
    ;;
  build) install_missing "${PACKAGES[@]}"; configure_and_build ;;
  compare)
    install_missing "${PACKAGES[@]}" "${COMPARE_PACKAGES[@]}"
    configure_and_build
    # meson looks for the client libraries when it configures, and keeps a
    # failed header check cached across --reconfigure: if a driver is still
    # left out, configure from scratch (ccache makes the rebuild cheap).
    meson setup --reconfigure "$BUILD_DIR" >/dev/null
    if ! grep -q etcd_system "$BUILD_DIR/build.ninja" || ! grep -q zookeeper_system "$BUILD_DIR/build.ninja"; then
      meson setup --wipe "$BUILD_DIR" >/dev/null
    fi
    ninja -C "$BUILD_DIR"
    for driver in etcd_system zookeeper_system; do
      grep -q "$driver" "$BUILD_DIR/build.ninja" || { echo "setup: bench/$driver.cpp is still not built; see meson's log in $BUILD_DIR/meson-logs" >&2; exit 1; }
    done
    echo "setup: ready for $BUILD_DIR/bench/conclave-bench --compare etcd,zookeeper"
    ;;
  fuzz)
    install_missing "${PACKAGES[@]}" "${FUZZ_PACKAGES[@]}"
    exec test/fuzz/run.sh "${2:-60}"
    ;;
  test)
    install_missing "${PACKAGES[@]}"
    configure_and_build
    exec python3 test/run_tests.py "$BUILD_DIR"
    ;;
  *) echo "usage: $0 [build|test|deps|demo|compare|fuzz [SECONDS]]" >&2; exit 2 ;;
esac
