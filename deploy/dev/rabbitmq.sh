#!/usr/bin/env bash
# Makes sure a development RabbitMQ is installed, running and has the plugins Mirsal
# needs (management for onboarding and the tests' per-test vhosts, prometheus for
# metrics). Idempotent: on a machine where RabbitMQ already runs it only checks.
#
#   bash deploy/dev/rabbitmq.sh          # ensure it is up
#   bash deploy/dev/rabbitmq.sh restart  # stop the node, wait for it to exit, start it
#
# Uses the /usr/sbin/rabbitmq* wrappers, which switch to the rabbitmq user and its
# Erlang cookie; it needs root (or sudo) to install, start and enable plugins.
set -euo pipefail

PLUGINS=(rabbitmq_management rabbitmq_prometheus)
SBIN=/usr/sbin

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi
}

say() { printf 'rabbitmq: %s\n' "$*" >&2; }

install() {
  if [ -x "$SBIN/rabbitmq-server" ]; then return; fi
  say "not installed; installing Debian's rabbitmq-server"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q rabbitmq-server
}

running() {
  as_root "$SBIN/rabbitmqctl" -q status >/dev/null 2>&1
}

await_startup() {
  # `await_startup` exits 69 at once while the node is still booting: loop on it.
  for _ in $(seq 1 120); do
    if as_root "$SBIN/rabbitmqctl" -q await_startup >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  say "the node did not finish booting within 60 s; see /var/log/rabbitmq/"
  return 1
}

start() {
  if running; then return; fi
  say "not running; starting it"
  as_root "$SBIN/rabbitmq-server" -detached
  await_startup
}

stop() {
  local pidfile
  pidfile="/var/lib/rabbitmq/mnesia/rabbit@$(hostname -s).pid"
  if ! running; then return; fi
  # With the pid file, `stop` waits until the node has really exited.
  if [ -f "$pidfile" ]; then
    as_root "$SBIN/rabbitmqctl" -q stop "$pidfile"
  else
    as_root "$SBIN/rabbitmqctl" -q stop
    for _ in $(seq 1 120); do running || return 0; sleep 0.5; done
  fi
}

plugins() {
  local missing=()
  for plugin in "${PLUGINS[@]}"; do
    if ! as_root "$SBIN/rabbitmq-plugins" -q list -E "^${plugin}\$" 2>/dev/null | grep -q "$plugin"; then
      missing+=("$plugin")
    fi
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    say "enabling ${missing[*]}"
    as_root "$SBIN/rabbitmq-plugins" -q enable "${missing[@]}" >/dev/null
  fi
  for _ in $(seq 1 120); do
    if curl -fsS -u guest:guest http://127.0.0.1:15672/api/overview >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  say "the management API on 127.0.0.1:15672 did not answer within 60 s"
  return 1
}

case "${1:-ensure}" in
  ensure) install; start; plugins ;;
  restart) install; stop; start; plugins ;;
  stop) stop ;;
  *) say "usage: $0 [ensure|restart|stop]"; exit 64 ;;
esac
