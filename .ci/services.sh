#!/usr/bin/env bash
# Make sure PostgreSQL (127.0.0.1:5432, trust for local TCP) and RabbitMQ (127.0.0.1:5672,
# guest/guest) are reachable: start them if they are installed, install them if not; and install
# Debian's chromium for the dashboard's browser tests when it is missing.
set -euo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_ready=
apt_install() {
  [ -n "$apt_ready" ] || { as_root apt-get update -q; apt_ready=1; }
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q "$@"
}
wait_port() {
  for _ in $(seq 1 60); do port_open "$1" && return 0; sleep 1; done
  echo "port $1 did not open: $2" >&2; return 1
}

if ! port_open 5432; then
  echo "PostgreSQL is not reachable on 127.0.0.1:5432: starting it"
  command -v pg_ctlcluster >/dev/null 2>&1 || apt_install postgresql
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start || true
  wait_port 5432 "see /var/log/postgresql/"
fi
if ! psql -h 127.0.0.1 -U postgres -d postgres -tAc 'select 1' >/dev/null 2>&1; then
  echo "PostgreSQL refuses passwordless TCP logins for postgres: allowing trust on loopback"
  hba=$(ls /etc/postgresql/*/main/pg_hba.conf | sort -V | tail -1)
  as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main reload
  sleep 1
  psql -h 127.0.0.1 -U postgres -d postgres -tAc 'select 1' >/dev/null
fi

if ! port_open 5672; then
  echo "RabbitMQ is not reachable on 127.0.0.1:5672: starting it"
  command -v rabbitmq-server >/dev/null 2>&1 || apt_install rabbitmq-server
  as_root rabbitmq-server -detached || true
  wait_port 5672 "see /var/log/rabbitmq/"
fi
# The port opens before the node accepts work; the tests also use rabbitmqctl for vhosts.
for _ in $(seq 1 60); do as_root rabbitmqctl -q status >/dev/null 2>&1 && break; sleep 1; done
echo "PostgreSQL and RabbitMQ are reachable"

# The dashboard's browser tests drive Debian's Chromium through Playwright (never Playwright's
# own browser downloads, which this network does not reach); without it they fail, not skip.
if ! command -v chromium >/dev/null 2>&1; then
  echo "chromium is missing: installing Debian's package for the dashboard's browser tests"
  apt_install chromium
fi
chromium --version 2>/dev/null || true
