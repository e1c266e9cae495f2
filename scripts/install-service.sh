#!/usr/bin/env bash
# Install droplorad as a systemd service: release binaries to /usr/local/bin, the units, the
# sysusers file (user and group droplora), the default config to /etc/droplora (an existing
# one is kept), the man pages, and the default model into /var/lib/droplora/models. Then
# creates the user, reloads systemd and enables the socket (the service starts on the first
# connection, or with `systemctl start droplorad`).
#
#   scripts/install-service.sh            build, install, enable (needs root or sudo)
#   DESTDIR=/tmp/stage scripts/install-service.sh --no-build
#                                          stage the files only: no user, no systemctl
#
# --no-build installs binaries already in .build/release.
set -euo pipefail
cd "$(dirname "$0")/.."

build=1
for arg in "$@"; do
  case "$arg" in
    --no-build) build=0 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "install-service.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done

DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr/local}
UNITDIR=/etc/systemd/system
MODEL_NAME=SmolLM2-135M-Instruct.Q4_1.gguf

SUDO=""
if [ -z "$DESTDIR" ] && [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi

if [ "$build" = 1 ]; then
  # The daemon and the client; built as the invoking user, installed as root.
  swift build -c release --product droplorad
  swift build -c release --product droplora
fi
for bin in droplorad droplora; do
  [ -x ".build/release/$bin" ] || { echo "install-service.sh: .build/release/$bin is missing; build it or drop --no-build" >&2; exit 1; }
done
if [ ! -f "models/$MODEL_NAME" ]; then scripts/fetch-model.sh; fi

$SUDO install -d "$DESTDIR$PREFIX/bin" "$DESTDIR$UNITDIR" "$DESTDIR/etc/sysusers.d" "$DESTDIR/etc/droplora" \
  "$DESTDIR$PREFIX/share/man/man1" "$DESTDIR$PREFIX/share/man/man5" "$DESTDIR$PREFIX/share/man/man8"
$SUDO install -m 0755 .build/release/droplorad .build/release/droplora "$DESTDIR$PREFIX/bin/"
$SUDO install -m 0644 systemd/droplorad.service systemd/droplorad.socket "$DESTDIR$UNITDIR/"
$SUDO install -m 0644 systemd/droplorad.sysusers "$DESTDIR/etc/sysusers.d/droplorad.conf"
$SUDO install -m 0644 man/droplora.1 "$DESTDIR$PREFIX/share/man/man1/"
$SUDO install -m 0644 man/droplorad.yaml.5 "$DESTDIR$PREFIX/share/man/man5/"
$SUDO install -m 0644 man/droplorad.8 "$DESTDIR$PREFIX/share/man/man8/"
if [ -e "$DESTDIR/etc/droplora/droplorad.yaml" ]; then
  echo "keeping the existing /etc/droplora/droplorad.yaml (the shipped one is config/droplorad.yaml)"
else
  $SUDO install -m 0644 config/droplorad.yaml "$DESTDIR/etc/droplora/droplorad.yaml"
fi

owner=()
if [ -z "$DESTDIR" ]; then
  # The user must exist before files are given to it and before the socket unit starts.
  $SUDO systemd-sysusers /etc/sysusers.d/droplorad.conf
  owner=(-o droplora -g droplora)
fi
$SUDO install -d -m 0750 "${owner[@]}" "$DESTDIR/var/lib/droplora" "$DESTDIR/var/lib/droplora/models" \
  "$DESTDIR/var/lib/droplora/adapters"
$SUDO install -m 0640 "${owner[@]}" "models/$MODEL_NAME" "$DESTDIR/var/lib/droplora/models/$MODEL_NAME"

if [ -z "$DESTDIR" ]; then
  $SUDO "$PREFIX/bin/droplorad" --check-config
  $SUDO systemctl daemon-reload
  $SUDO systemctl enable --now droplorad.socket
  echo "installed; add users to the droplora group to let them use the socket, then: droplora status"
else
  echo "staged under $DESTDIR"
fi
