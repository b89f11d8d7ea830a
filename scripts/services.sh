#!/usr/bin/env bash
# services.sh makes sure Redis (127.0.0.1:6379) and RabbitMQ (127.0.0.1:5672)
# run on this machine, for `make up`, the tests and .ci/run. It installs
# redis-server, rabbitmq-server, prometheus, prometheus-alertmanager and, for
# the browser tests, chromium and Node.js from the OS packages when they are
# missing and it can (root with apt-get), starts Redis and RabbitMQ when they
# are installed and stopped, and does nothing when they already run.
# Prometheus and Alertmanager are only installed: optio-up starts its own.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

say() { echo "services: $*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

install_missing() {
	local pkgs=()
	have redis-server || pkgs+=(redis-server)
	have rabbitmq-server || pkgs+=(rabbitmq-server)
	have prometheus || [ -x /usr/bin/prometheus ] || pkgs+=(prometheus)
	have prometheus-alertmanager || have alertmanager || [ -x /usr/bin/prometheus-alertmanager ] || pkgs+=(prometheus-alertmanager)
	# The dashboard's browser tests: Debian's Chromium (never a downloaded
	# browser) driven by playwright-core on Node.js.
	[ -x /usr/bin/chromium ] || pkgs+=(chromium)
	have node || pkgs+=(nodejs)
	have npm || pkgs+=(npm)
	[ ${#pkgs[@]} -eq 0 ] && return 0
	if [ "$(id -u)" != 0 ] || ! have apt-get; then
		say "missing ${pkgs[*]} and cannot install them here (needs root and apt-get): install them, then run this again"
		return 1
	fi
	say "installing ${pkgs[*]}"
	# Keep the packages' own service scripts from starting daemons: we start them.
	local policy=/usr/sbin/policy-rc.d made_policy=
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	local rc=0
	apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null || rc=$?
	[ -n "$made_policy" ] && rm -f "$policy"
	return $rc
}

start_redis() {
	if listening 6379; then
		return 0
	fi
	say "starting Redis"
	mkdir -p /var/lib/redis /var/log/redis
	if id redis >/dev/null 2>&1; then chown redis:redis /var/lib/redis /var/log/redis 2>/dev/null || true; fi
	redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
	for _ in $(seq 1 100); do
		listening 6379 && return 0
		sleep 0.1
	done
	say "Redis did not start: see /var/log/redis/ci.log"
	return 1
}

start_rabbitmq() {
	if listening 5672; then
		return 0
	fi
	say "starting RabbitMQ"
	rabbitmq-server -detached
	timeout 180 rabbitmqctl await_startup >/dev/null
	for _ in $(seq 1 100); do
		listening 5672 && return 0
		sleep 0.2
	done
	say "RabbitMQ started but does not listen on 5672"
	return 1
}

install_missing
start_redis
start_rabbitmq
say "Redis and RabbitMQ are running"
