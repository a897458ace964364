#!/usr/bin/env bash
# Make sure a Docker engine answers, for batchbox's local backend.
#
# - An engine already answers (`docker info`, or a docker-py ping with $BATCHBOX_PYTHON): do nothing, exit 0.
# - Else, as root on Debian/Ubuntu: install docker.io with apt-get when dockerd is missing, start
#     dockerd --bridge=none --iptables=false --ip-masq=false
#   detached (setsid + nohup, so it outlives make), log to $BATCHBOX_DOCKERD_LOG, write its pid to
#   $BATCHBOX_DOCKERD_PIDFILE, and wait up to 60 s for it to answer.
# - Else print what to start and exit 1.
#
# Shipped inside the batchbox package: `make setup` runs it, and so does `batchbox local up` as root on
# Debian/Ubuntu when no engine answers. BATCHBOX_PYTHON names a Python with docker-py, for engines the
# `docker` CLI cannot reach. BATCHBOX_ASSUME_NONROOT=1 behaves as if not root (tests use it).
# The node image's offline recipe installs debootstrap itself when needed (batchbox/backends/local/node_image.py).
set -euo pipefail

DOCKERD_ARGS=(--bridge=none --iptables=false --ip-masq=false)
LOG_FILE="${BATCHBOX_DOCKERD_LOG:-/var/log/batchbox-dockerd.log}"
PID_FILE="${BATCHBOX_DOCKERD_PIDFILE:-/var/run/batchbox-dockerd.pid}"
WAIT_SECONDS=60

say() { echo "ensure-docker: $*" >&2; }

engine_answers() {
    if command -v docker >/dev/null 2>&1; then
        timeout 20 docker info >/dev/null 2>&1 && return 0
        return 1
    fi
    if [[ -n "${BATCHBOX_PYTHON:-}" && -x "$BATCHBOX_PYTHON" ]]; then
        timeout 20 "$BATCHBOX_PYTHON" -c 'import docker; docker.from_env(timeout=10).ping()' \
            >/dev/null 2>&1 && return 0
    fi
    return 1
}

tell_user() {
    local where="${DOCKER_HOST:-unix:///var/run/docker.sock}"
    say "no Docker engine answers at $where. $1"
    say "start one as root (install it first if needed: apt-get install -y docker.io):"
    say "  dockerd ${DOCKERD_ARGS[*]} >/var/log/batchbox-dockerd.log 2>&1 &"
    say "or run \`batchbox local up\` (or \`make setup\` in a checkout) as root on Debian/Ubuntu, which does that for you."
    exit 1
}

is_root() {
    [[ "${BATCHBOX_ASSUME_NONROOT:-0}" != "1" && "$(id -u)" == "0" ]]
}

apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    if ! compgen -G "/var/lib/apt/lists/*_Packages" >/dev/null; then
        apt-get update
    fi
    if ! apt-get install -y --no-install-recommends "$@"; then
        apt-get update
        apt-get install -y --no-install-recommends "$@"
    fi
}

if engine_answers; then
    say "Docker engine answers at ${DOCKER_HOST:-unix:///var/run/docker.sock}"
    exit 0
fi

if ! is_root; then
    tell_user "Not starting one (not root)."
fi
if [[ ! -f /etc/debian_version ]] || ! command -v apt-get >/dev/null 2>&1; then
    tell_user "Not starting one (not Debian/Ubuntu)."
fi
if [[ -n "${DOCKER_HOST:-}" && "$DOCKER_HOST" != "unix:///var/run/docker.sock" ]]; then
    tell_user "Not starting one: DOCKER_HOST names another engine; start that one, or unset DOCKER_HOST."
fi
if [[ -f /var/run/docker.pid ]] && kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
    tell_user "A dockerd (pid $(cat /var/run/docker.pid)) runs but does not answer; see its log, stop it by pid, retry."
fi

if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
    say "installing docker.io with apt-get"
    apt_install docker.io
fi

mkdir -p "$(dirname "$LOG_FILE")" "$(dirname "$PID_FILE")"
say "starting: dockerd ${DOCKERD_ARGS[*]} (log: $LOG_FILE, pid file: $PID_FILE)"
# setsid: own session, so make's process group ending does not stop it; nohup: ignore SIGHUP.
setsid nohup dockerd "${DOCKERD_ARGS[@]}" >>"$LOG_FILE" 2>&1 </dev/null &
echo $! >"$PID_FILE"

for ((i = 0; i < WAIT_SECONDS; i++)); do
    if engine_answers; then
        say "Docker engine is up (pid $(cat "$PID_FILE"), ${i}s)"
        exit 0
    fi
    if ! kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
        say "dockerd exited; last lines of $LOG_FILE:"
        tail -n 20 "$LOG_FILE" >&2 || true
        exit 1
    fi
    sleep 1
done
say "dockerd did not answer within ${WAIT_SECONDS}s; see $LOG_FILE"
exit 1
