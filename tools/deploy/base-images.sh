#!/usr/bin/env bash
# Makes, locally, the images deploy/Dockerfile and deploy/compose.yaml build FROM and run,
# for machines that reach no container registry (no `docker pull`) but do reach a Debian
# mirror, crates.io and the host's Rust toolchain:
#
#   coffer/debian:bookworm   debootstrap --variant=minbase of Debian 12 from the apt mirror
#                            this machine is configured with, plus ca-certificates; imported
#                            with `docker import`.        (elsewhere: debian:bookworm-slim)
#   coffer/rust:1.95         that, plus gcc, libc6-dev, pkg-config and the host's rustup
#                            toolchain (rustc, cargo, the std library) in /usr/local, and
#                            the host's local CA certificates (see COFFER_EXTRA_CA_DIR).
#                                                         (elsewhere: rust:1.95-bookworm)
#   coffer/postgres:15       Debian's postgresql-15 with deploy/images/postgres-entrypoint
#                            (primary or streaming replica). Stop it with SIGINT
#                            (PostgreSQL's fast shutdown; SIGTERM's smart one waits for
#                            every client): compose.yaml sets stop_signal.
#   coffer/nats:2.9          Debian's nats-server (JetStream).
#   coffer/redis:7           Debian's redis-server.
#   coffer/haproxy:2.6       Debian's haproxy. Stop it with SIGUSR1 (its soft stop; as PID 1
#                            outside master-worker mode it ignores SIGTERM): compose.yaml
#                            sets stop_signal. (`docker commit --change` cannot set
#                            STOPSIGNAL.)
#
# Each derived image is one `docker run` on the Debian image (host network, for apt)
# followed by `docker commit`, so every image adds a single layer (on the vfs storage
# driver each layer is a full copy). Images that already exist are kept;
# COFFER_REBUILD_BASE_IMAGES=1 makes them again. Needs root (debootstrap), docker and
# debootstrap.
#
#   tools/deploy/base-images.sh [IMAGE...]     (no argument: all of them)
#
# Settings: COFFER_DEBIAN_MIRROR, COFFER_DEBIAN_SECURITY_MIRROR (default: read from
# /etc/apt/sources.list*), COFFER_RUST_SYSROOT (default: `rustc --print sysroot` of the
# host's active toolchain; its version must be 1.95.x), COFFER_BASE_IMAGES_WORK (scratch
# folder, default /var/tmp/coffer-base-images), COFFER_EXTRA_CA_DIR (default
# /usr/local/share/ca-certificates: the *.crt certificates there, public CA certificates the
# host trusts beyond Debian's, go into the builder image only, so that cargo reaches
# crates.io behind the same TLS-inspecting egress proxy as the host; empty: none).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
SUITE=bookworm
RUST_MINOR=1.95
WORK="${COFFER_BASE_IMAGES_WORK:-/var/tmp/coffer-base-images}"
REBUILD="${COFFER_REBUILD_BASE_IMAGES:-0}"
DOCKER="${DOCKER:-docker}"

DEBIAN_IMAGE=coffer/debian:bookworm
RUST_IMAGE=coffer/rust:$RUST_MINOR
POSTGRES_IMAGE=coffer/postgres:15
NATS_IMAGE=coffer/nats:2.9
REDIS_IMAGE=coffer/redis:7
HAPROXY_IMAGE=coffer/haproxy:2.6

log() { echo "base-images: $*" >&2; }

# The first URI of an apt source (deb822 .sources or one-line .list) that lists SUITE.
apt_mirror() { # suite
  local suite="$1" files=() file
  for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do
    [ -f "$file" ] && files+=("$file")
  done
  [ "${#files[@]}" -gt 0 ] || return 0
  awk -v suite="$suite" '
    function flush() { if (uri != "" && has) { print uri; uri = ""; exit } uri = ""; has = 0 }
    FNR == 1 { flush() }
    FILENAME ~ /\.sources$/ {
      if ($0 ~ /^[[:space:]]*$/) { flush(); next }
      if ($1 == "URIs:") uri = $2
      if ($1 == "Suites:") for (i = 2; i <= NF; i++) if ($i == suite) has = 1
      next
    }
    $1 == "deb" {
      i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
      if ($(i + 1) == suite) { print $i; exit }
    }
    END { flush() }
' "${files[@]}" 2>/dev/null | head -1
}

MIRROR="${COFFER_DEBIAN_MIRROR:-$(apt_mirror "$SUITE")}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${COFFER_DEBIAN_SECURITY_MIRROR:-$(apt_mirror "$SUITE-security")}"
SECURITY_MIRROR="${SECURITY_MIRROR:-${MIRROR%/debian}/debian-security}"

have() { [ "$REBUILD" != 1 ] && "$DOCKER" image inspect "$1" >/dev/null 2>&1; }

# derive IMAGE SCRIPT [docker-commit --change ...]: run SCRIPT (bash) in a container of
# the Debian image with the host network and deploy/images mounted at /src, then commit the
# container as IMAGE. RUN_ARGS (an array) adds docker-run arguments.
RUN_ARGS=()
derive() {
  local image="$1" script="$2" name
  shift 2
  local changes=()
  for change in "$@"; do changes+=(--change "$change"); done
  local logfile="$WORK/${image//[^a-z0-9]/-}.log"
  name="coffer-base-images-$$-${image//[^a-z0-9]/-}"
  "$DOCKER" rm -f "$name" >/dev/null 2>&1 || true
  mkdir -p "$WORK"
  if ! "$DOCKER" run --name "$name" --network host -v "$ROOT/deploy/images:/src:ro" "${RUN_ARGS[@]}" \
    "$DEBIAN_IMAGE" bash -euo pipefail -c "$script" >"$logfile" 2>&1; then
    tail -30 "$logfile" >&2
    "$DOCKER" rm -f "$name" >/dev/null 2>&1 || true
    log "making $image failed (log: $logfile)"
    exit 1
  fi
  if ! "$DOCKER" commit "${changes[@]}" "$name" "$image" >/dev/null; then
    "$DOCKER" rm -f "$name" >/dev/null 2>&1 || true
    log "committing $image failed"
    exit 1
  fi
  "$DOCKER" rm "$name" >/dev/null
  RUN_ARGS=()
}

APT_INSTALL='apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends'
APT_CLEAN='apt-get clean; rm -rf /var/lib/apt/lists/* /var/cache/debconf/*-old /var/log/apt/* /var/log/dpkg.log'

make_debian() {
  command -v debootstrap >/dev/null || { log "debootstrap is missing (apt-get install debootstrap)"; exit 1; }
  local rootfs="$WORK/debian-$SUITE"
  rm -rf "$rootfs"
  mkdir -p "$WORK"
  log "debootstrap $SUITE (minbase) from $MIRROR"
  debootstrap --variant=minbase --include=ca-certificates "$SUITE" "$rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -20 "$WORK/debootstrap.log" >&2; exit 1; }
  cat >"$rootfs/etc/apt/sources.list" <<LIST
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY_MIRROR $SUITE-security main
LIST
  # What the official slim images leave out: documentation, man pages, translations;
  # recommended packages are not installed.
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-minimal" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
CFG
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$rootfs/etc/apt/apt.conf.d/docker-no-recommends"
  rm -rf "$rootfs"/usr/share/doc/*/[!c]* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
    "$rootfs"/usr/share/locale/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
    "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/*
  tar -C "$rootfs" --numeric-owner -c . | "$DOCKER" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' - "$DEBIAN_IMAGE" >/dev/null
  rm -rf "$rootfs"
}

make_rust() {
  local sysroot version
  sysroot="${COFFER_RUST_SYSROOT:-$(rustc --print sysroot)}"
  version="$("$sysroot/bin/rustc" -V | awk '{print $2}')"
  case "$version" in
    "$RUST_MINOR".*) ;;
    *) log "the toolchain at $sysroot is rustc $version, not $RUST_MINOR.x (set COFFER_RUST_SYSROOT)"; exit 1 ;;
  esac
  log "$RUST_IMAGE: gcc, libc6-dev, pkg-config and rustc $version from $sysroot"
  local ca_dir="${COFFER_EXTRA_CA_DIR-/usr/local/share/ca-certificates}"
  RUN_ARGS=(-v "$sysroot:/toolchain:ro")
  if [ -n "$ca_dir" ] && compgen -G "$ca_dir/*.crt" >/dev/null; then
    RUN_ARGS+=(-v "$ca_dir:/extra-ca:ro")
    log "$RUST_IMAGE: with the host's CA certificates from $ca_dir"
  fi
  derive "$RUST_IMAGE" "$APT_INSTALL gcc libc6-dev pkg-config
$APT_CLEAN
if compgen -G '/extra-ca/*.crt' >/dev/null; then
  cp /extra-ca/*.crt /usr/local/share/ca-certificates/
  update-ca-certificates >/dev/null
fi
cp -a /toolchain/bin/rustc /toolchain/bin/rustdoc /toolchain/bin/cargo /usr/local/bin/
mkdir -p /usr/local/lib /usr/local/cargo
cp -a /toolchain/lib/. /usr/local/lib/
rm -rf /usr/local/lib/rustlib/src /usr/local/lib/rustlib/rustc-src
chmod 777 /usr/local/cargo
rustc -V && cargo -V" \
    'ENV CARGO_HOME=/usr/local/cargo' \
    'ENV PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "ENV RUST_VERSION=$version" \
    'CMD ["bash"]'
}

make_postgres() {
  # No cluster made by the package: the entry point makes one in PGDATA.
  derive "$POSTGRES_IMAGE" "mkdir -p /etc/postgresql-common
echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.conf
$APT_INSTALL postgresql-15
$APT_CLEAN
install -m 755 /src/postgres-entrypoint /usr/local/bin/coffer-postgres
install -d -o postgres -g postgres -m 700 /var/lib/postgresql/data" \
    'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    'ENV PGDATA=/var/lib/postgresql/data' \
    'USER postgres' \
    'WORKDIR /var/lib/postgresql' \
    'VOLUME /var/lib/postgresql/data' \
    'EXPOSE 5432' \
    'ENTRYPOINT ["coffer-postgres"]' \
    'CMD []'
}

make_nats() {
  derive "$NATS_IMAGE" "$APT_INSTALL nats-server
$APT_CLEAN
install -m 755 /src/http-probe /usr/local/bin/http-probe
install -d -o nats -g nats /var/lib/nats" \
    'USER nats' \
    'WORKDIR /var/lib/nats' \
    'VOLUME /var/lib/nats' \
    'EXPOSE 4222 6222 8222' \
    'ENTRYPOINT ["nats-server"]' \
    'CMD ["-js", "-sd", "/var/lib/nats", "-m", "8222"]'
}

make_redis() {
  derive "$REDIS_IMAGE" "$APT_INSTALL redis-server
$APT_CLEAN
install -d -o redis -g redis /var/lib/redis" \
    'USER redis' \
    'WORKDIR /var/lib/redis' \
    'EXPOSE 6379' \
    'ENTRYPOINT ["redis-server"]' \
    'CMD ["--bind", "0.0.0.0", "--protected-mode", "no", "--save", "", "--appendonly", "no"]'
}

make_haproxy() {
  derive "$HAPROXY_IMAGE" "$APT_INSTALL haproxy
$APT_CLEAN
install -m 755 /src/http-probe /usr/local/bin/http-probe
install -d /usr/local/etc/haproxy" \
    'USER haproxy' \
    'ENTRYPOINT ["haproxy"]' \
    'CMD ["-f", "/usr/local/etc/haproxy/haproxy.cfg"]'
}

wanted=("$@")
[ "${#wanted[@]}" -gt 0 ] || wanted=(debian rust postgres nats redis haproxy)
for what in "${wanted[@]}"; do
  case "$what" in
    debian) image="$DEBIAN_IMAGE" ;;
    rust) image="$RUST_IMAGE" ;;
    postgres) image="$POSTGRES_IMAGE" ;;
    nats) image="$NATS_IMAGE" ;;
    redis) image="$REDIS_IMAGE" ;;
    haproxy) image="$HAPROXY_IMAGE" ;;
    *) log "no image '$what' (debian, rust, postgres, nats, redis, haproxy)"; exit 2 ;;
  esac
  if have "$image"; then
    log "$image exists; kept"
    continue
  fi
  if [ "$what" != debian ] && ! "$DOCKER" image inspect "$DEBIAN_IMAGE" >/dev/null 2>&1; then
    start=$SECONDS; make_debian; log "$DEBIAN_IMAGE made in $((SECONDS - start))s"
  fi
  start=$SECONDS
  "make_$what"
  log "$image made in $((SECONDS - start))s ($("$DOCKER" image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1 / 1e6}'))"
done
