#!/usr/bin/env bash
# testenv.sh — throw-away Redis + RabbitMQ servers for taskgen's integration tests.
#
# Usage:
#   scripts/testenv.sh install          install missing Debian packages (root/sudo)
#   scripts/testenv.sh start            start Redis + RabbitMQ, print the path of the env file
#   scripts/testenv.sh stop DIR         stop everything started by "start" and remove DIR (idempotent)
#   scripts/testenv.sh run [--] CMD...  install if needed, start, run CMD with the env exported,
#                                       always stop; exits with CMD's status
#
# Everything listens on 127.0.0.1 only, on free ports picked at start time, with all
# state in a fresh directory /tmp/taskgen-testenv.XXXX, so several environments can run
# side by side and nothing touches a system Redis/RabbitMQ/epmd.
#
# The env file (DIR/env) exports:
#   TASKGEN_TESTENV_DIR      DIR
#   TASKGEN_REDIS_URL        redis://127.0.0.1:PORT/0
#   TASKGEN_REDIS_ADDR       127.0.0.1:PORT
#   TASKGEN_REDIS_PORT       PORT
#   TASKGEN_REDIS_START      DIR/redis-start.sh     (same port, same data dir)
#   TASKGEN_REDIS_STOP       DIR/redis-stop.sh
#   TASKGEN_AMQP_URL         amqp://taskgen:taskgen-secret@127.0.0.1:PORT/taskgen
#   TASKGEN_AMQP_GUEST_URL   amqp://guest:guest@127.0.0.1:PORT/
#   TASKGEN_AMQP_ADDR        127.0.0.1:PORT
#   TASKGEN_AMQP_PORT        PORT
#   TASKGEN_RABBITMQ_NODE    taskgen-XXXX@localhost
#   TASKGEN_RABBITMQCTL      DIR/rabbitmqctl        (rabbitmqctl bound to the test node)
#   TASKGEN_RABBITMQ_START   DIR/rabbitmq-start.sh  (same node, port, data dir: users survive)
#   TASKGEN_RABBITMQ_STOP    DIR/rabbitmq-stop.sh
#   TASKGEN_PYTHON           /usr/bin/python3 (has celery, msgpack, redis)
#   TASKGEN_TESTENV_SCRIPT   absolute path of this script (internal/testenv.PrivateEnv uses it)
#
# Environment knobs: TESTENV_CHROMIUM=1 (install also installs chromium),
# TESTENV_KEEP=1 (run/stop keep DIR, e.g. to read logs).
set -euo pipefail

readonly PYTHON=/usr/bin/python3
SELF=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
readonly SELF
readonly AMQP_USER=taskgen
readonly AMQP_PASSWORD=taskgen-secret
readonly AMQP_VHOST=taskgen

log() { printf 'testenv: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
}

now_ms() { date +%s%3N; }

# --------------------------------------------------------------------------------------
# install

rabbitmq_bin_dir() {
	# Debian: /usr/sbin/rabbitmq-server is a wrapper that su's to the rabbitmq user and
	# insists on /var/lib/rabbitmq; the real scripts live in /usr/lib/rabbitmq/bin and run
	# fine as any user (we run the node as the invoking user, with all state in DIR).
	if [[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]]; then
		echo /usr/lib/rabbitmq/bin
		return 0
	fi
	local p
	p=$(command -v rabbitmq-server 2>/dev/null) || return 1
	dirname "$(readlink -f "$p")"
}

missing_packages() {
	local -a pkgs=()
	command -v redis-server >/dev/null 2>&1 || pkgs+=(redis-server)
	command -v redis-cli >/dev/null 2>&1 || pkgs+=(redis-tools)
	command -v redis-sentinel >/dev/null 2>&1 || pkgs+=(redis-sentinel)
	rabbitmq_bin_dir >/dev/null 2>&1 || pkgs+=(rabbitmq-server)
	if ! [[ -x $PYTHON ]] || ! "$PYTHON" -c 'import celery, msgpack, redis' >/dev/null 2>&1; then
		local m
		for m in celery msgpack redis; do
			[[ -x $PYTHON ]] && "$PYTHON" -c "import $m" >/dev/null 2>&1 || pkgs+=("python3-$m")
		done
	fi
	if [[ ${TESTENV_CHROMIUM:-} == 1 ]] && ! command -v chromium >/dev/null 2>&1; then pkgs+=(chromium); fi
	command -v promtool >/dev/null 2>&1 || pkgs+=(prometheus) # promtool: monitor's metrics lint
	# de-duplicate (redis-server pulls redis-tools anyway)
	if ((${#pkgs[@]})); then printf '%s\n' "${pkgs[@]}" | awk '!seen[$0]++'; fi
}

cmd_install() {
	local -a pkgs
	mapfile -t pkgs < <(missing_packages)
	if ((${#pkgs[@]} == 0)); then
		log "install: nothing to do"
		return 0
	fi
	local -a sudo=()
	if ((EUID != 0)); then
		command -v sudo >/dev/null 2>&1 || die "install: need root (or sudo) to install: ${pkgs[*]}"
		sudo=(sudo)
	fi
	local rabbit_was_missing=0 p
	for p in "${pkgs[@]}"; do [[ $p == rabbitmq-server ]] && rabbit_was_missing=1; done

	# Keep maintainer scripts from starting system services (rabbitmq-server, epmd,
	# redis-server) that would sit on the default ports. Only add our own policy-rc.d if
	# there is none; Docker-style images already ship one that denies everything.
	local policy=/usr/sbin/policy-rc.d added_policy=0
	if ! "${sudo[@]}" test -e "$policy"; then
		printf '#!/bin/sh\n# added by taskgen scripts/testenv.sh during apt-get install\nexit 101\n' |
			"${sudo[@]}" tee "$policy" >/dev/null
		"${sudo[@]}" chmod 755 "$policy"
		added_policy=1
	fi
	local rc=0
	log "install: apt-get install ${pkgs[*]}"
	(
		export DEBIAN_FRONTEND=noninteractive
		"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=600 update &&
			"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=600 install "${pkgs[@]}"
	) >&2 || rc=$?
	if ((added_policy)); then "${sudo[@]}" rm -f "$policy"; fi
	((rc == 0)) || die "install: apt-get failed with status $rc"

	if ((rabbit_was_missing)); then
		stop_stray_system_rabbitmq
	fi
	local -a still
	mapfile -t still < <(missing_packages)
	((${#still[@]} == 0)) || die "install: still missing after apt-get: ${still[*]}"
	log "install: done"
}

# If the package's postinst managed to start the default node (rabbit@host, as user
# rabbitmq, on 5672/25672 + epmd on 4369) stop it: it would only collide with later
# system use and waste memory. Only called right after we installed rabbitmq-server.
stop_stray_system_rabbitmq() {
	local -a sudo=()
	((EUID == 0)) || sudo=(sudo)
	id rabbitmq >/dev/null 2>&1 || return 0
	if pgrep -u rabbitmq -f beam >/dev/null 2>&1; then
		log "install: stopping the default rabbitmq node started by the package"
		"${sudo[@]}" timeout 60 /usr/sbin/rabbitmqctl stop >/dev/null 2>&1 || true
		sleep 1
		"${sudo[@]}" pkill -TERM -u rabbitmq -f beam >/dev/null 2>&1 || true
	fi
	local u
	for u in rabbitmq epmd; do
		id "$u" >/dev/null 2>&1 || continue
		if pgrep -u "$u" -x epmd >/dev/null 2>&1; then
			log "install: stopping the system epmd (user $u) started by the package"
			"${sudo[@]}" pkill -TERM -u "$u" -x epmd >/dev/null 2>&1 || true
		fi
	done
}

# --------------------------------------------------------------------------------------
# start

# free_ports N: print N distinct free TCP ports on 127.0.0.1, one per line,
# below the kernel's ephemeral range when it leaves room (a port from that
# range, released until a server binds it or is restarted on it, could be
# handed meanwhile to any outgoing connection; see internal/testenv/ports.go).
free_ports() {
	local n=$1
	if [[ -x $PYTHON ]]; then
		"$PYTHON" - "$n" <<-'EOF'
			import random, socket, sys
			try:
			    low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0]) - 1
			except (OSError, ValueError, IndexError):
			    low = 32767
			socks = []
			for _ in range(int(sys.argv[1])):
			    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
			    for _ in range(200 if low - 20000 >= 1000 else 0):
			        try:
			            s.bind(("127.0.0.1", random.randint(20000, low)))
			            break
			        except OSError:
			            pass
			    else:
			        s.bind(("127.0.0.1", 0))
			    socks.append(s)
			for s in socks:
			    print(s.getsockname()[1])
			    s.close()
		EOF
		return
	fi
	# bash fallback: random ports nobody answers on
	local -A seen=()
	local got=0 p
	while ((got < n)); do
		p=$((20000 + RANDOM % 12000))
		[[ -n ${seen[$p]:-} ]] && continue
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			seen[$p]=1
			echo "$p"
			got=$((got + 1))
		fi
	done
}

# write_file PATH MODE: write stdin to PATH with MODE.
write_file() {
	cat >"$1"
	chmod "$2" "$1"
}

q() { printf '%q' "$1"; }

start_env() {
	local t0 t1
	t0=$(now_ms)
	command -v redis-server >/dev/null 2>&1 || die "redis-server not found (run: $0 install)"
	command -v redis-cli >/dev/null 2>&1 || die "redis-cli not found (run: $0 install)"
	local rbin
	rbin=$(rabbitmq_bin_dir) || die "rabbitmq-server not found (run: $0 install)"
	local epmd_bin
	epmd_bin=$(command -v epmd 2>/dev/null) || die "epmd not found (erlang-base missing?)"

	local dir
	dir=$(mktemp -d /tmp/taskgen-testenv.XXXX)
	chmod 755 "$dir"
	TESTENV_DIR=$dir
	# If anything below fails, tear down what is already running.
	trap 'rc=$?; if ((rc != 0)); then log "start failed, cleaning up $TESTENV_DIR"; stop_env "$TESTENV_DIR" || true; fi' EXIT

	local -a ports
	mapfile -t ports < <(free_ports 4)
	((${#ports[@]} == 4)) || die "could not pick free ports"
	local redis_port=${ports[0]} amqp_port=${ports[1]} dist_port=${ports[2]} epmd_port=${ports[3]}
	local suffix
	suffix=$(basename "$dir")
	suffix=${suffix#taskgen-testenv.}
	local node="taskgen-${suffix}@localhost"

	mkdir -p "$dir/redis" "$dir/rabbitmq/home" "$dir/rabbitmq/mnesia" "$dir/rabbitmq/log"

	# ---- shared helper library (sourced by the generated scripts) -------------------
	write_file "$dir/lib.sh" 644 <<-EOF
		# generated by scripts/testenv.sh; sourced by the helper scripts in this directory
		# shellcheck disable=SC2034
		TESTENV_DIR=$(q "$dir")
		REDIS_PORT=$redis_port
		REDIS_SERVER_BIN=$(q "$(command -v redis-server)")
		REDIS_CLI_BIN=$(q "$(command -v redis-cli)")
		RABBITMQ_BIN=$(q "$rbin")
		EPMD_BIN=$(q "$epmd_bin")
	EOF
	cat >>"$dir/lib.sh" <<-'EOF'
		# alive PID: the process exists and is not a zombie (kill -0 succeeds on zombies,
		# and daemons reparented to a lazy init can linger as zombies for a while).
		alive() {
		  [[ $1 =~ ^[0-9]+$ ]] || return 1
		  if [[ -r /proc/$1/stat ]]; then
		    local st
		    st=$(sed -e 's/^.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
		    [[ -n $st && ${st:0:1} != Z && ${st:0:1} != X ]]
		  else
		    kill -0 "$1" 2>/dev/null
		  fi
		}
		# pidfile_alive FILE: FILE names a live process.
		pidfile_alive() { [[ -s $1 ]] && alive "$(cat "$1")"; }
		# group_alive PGID: some live process is in process group PGID.
		group_alive() {
		  local p
		  for p in $(pgrep -g "$1" 2>/dev/null); do alive "$p" && return 0; done
		  return 1
		}
		# port_open PORT: something accepts TCP connections on 127.0.0.1:PORT.
		port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
		# stop_pid PID TENTHS: SIGTERM, wait up to TENTHS/10 s, then SIGKILL.
		stop_pid() {
		  local pid=$1 n=${2:-100}
		  alive "$pid" || return 0
		  kill -TERM "$pid" 2>/dev/null || true
		  for ((i = 0; i < n; i++)); do alive "$pid" || return 0; sleep 0.1; done
		  echo "testenv: pid $pid ignored SIGTERM for $((n / 10)) s, sending SIGKILL" >&2
		  kill -KILL "$pid" 2>/dev/null || true
		  for ((i = 0; i < 50; i++)); do alive "$pid" || return 0; sleep 0.1; done
		}
	EOF

	# ---- Redis ----------------------------------------------------------------------
	write_file "$dir/redis-start.sh" 755 <<-'EOF'
		#!/usr/bin/env bash
		# Start the test Redis (same port and data dir as before; no-op if it is running)
		# and wait until it answers PING.
		set -euo pipefail
		. "$(dirname "$0")/lib.sh"
		pidfile=$TESTENV_DIR/redis/redis.pid
		pidfile_alive "$pidfile" && exit 0
		rm -f "$pidfile"
		"$REDIS_SERVER_BIN" --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$TESTENV_DIR/redis" \
		  --save '' --appendonly no --daemonize yes --pidfile "$pidfile" \
		  --logfile "$TESTENV_DIR/redis/redis.log" </dev/null >/dev/null 2>&1
		for _ in $(seq 1 200); do
		  if [[ $("$REDIS_CLI_BIN" -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]; then
		    # Make sure it is our server answering, not someone who grabbed the port meanwhile.
		    served_by=$("$REDIS_CLI_BIN" -h 127.0.0.1 -p "$REDIS_PORT" info server 2>/dev/null |
		      tr -d '\r' | sed -n 's/^process_id://p')
		    [[ -s $pidfile && $served_by == "$(cat "$pidfile")" ]] && exit 0
		  fi
		  sleep 0.05
		done
		echo "redis-start: our redis on 127.0.0.1:$REDIS_PORT does not answer PING; log:" >&2
		tail -n 20 "$TESTENV_DIR/redis/redis.log" >&2 || true
		exit 1
	EOF
	write_file "$dir/redis-stop.sh" 755 <<-'EOF'
		#!/usr/bin/env bash
		# Stop the test Redis (SIGTERM, SIGKILL after 10 s). Idempotent.
		set -euo pipefail
		. "$(dirname "$0")/lib.sh"
		pidfile=$TESTENV_DIR/redis/redis.pid
		[[ -s $pidfile ]] && stop_pid "$(cat "$pidfile")" 100
		rm -f "$pidfile"
	EOF

	# ---- RabbitMQ -------------------------------------------------------------------
	# Erlang cookie: a private HOME holding .erlang.cookie, used by both the node and the
	# CLI tools (both read $HOME/.erlang.cookie). No RABBITMQ_ERLANG_COOKIE (deprecated)
	# and no --erlang-cookie on every call; we never touch /var/lib/rabbitmq/.erlang.cookie
	# or the caller's ~/.erlang.cookie.
	local cookie
	cookie=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr 'a-f' 'A-F')
	(umask 077 && printf '%s' "$cookie" >"$dir/rabbitmq/home/.erlang.cookie")
	chmod 400 "$dir/rabbitmq/home/.erlang.cookie"
	printf '[].\n' >"$dir/rabbitmq/enabled_plugins"
	: >"$dir/rabbitmq/rabbitmq-env.conf"
	printf '[].\n' >"$dir/rabbitmq/advanced.config"
	cat >"$dir/rabbitmq/rabbitmq.conf" <<-EOF
		# taskgen test node: AMQP 0-9-1 on 127.0.0.1:$amqp_port only, no plugins
		listeners.tcp.1 = 127.0.0.1:$amqp_port
		loopback_users.guest = true
		log.console = false
		log.file.level = info
		disk_free_limit.absolute = 10MB
	EOF
	# ERL_EPMD_PORT is honoured by erl (node and CLI) and by epmd itself; every erl we run
	# sees it, so nothing ever registers with (or spawns) a system epmd on 4369.
	write_file "$dir/rabbitmq/env.sh" 644 <<-EOF
		# generated by scripts/testenv.sh; sourced by rabbitmq-*.sh and rabbitmqctl
		. $(q "$dir/lib.sh")
		export HOME=$(q "$dir/rabbitmq/home")
		export ERL_EPMD_PORT=$epmd_port
		export ERL_EPMD_ADDRESS=127.0.0.1
		export ERL_CRASH_DUMP=$(q "$dir/rabbitmq/log/erl_crash.dump")
		export ERL_CRASH_DUMP_SECONDS=0
		export RABBITMQ_NODENAME=$node
		export RABBITMQ_USE_LONGNAME=false
		export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
		export RABBITMQ_NODE_PORT=$amqp_port
		export RABBITMQ_DIST_PORT=$dist_port
		export RABBITMQ_CONF_ENV_FILE=$(q "$dir/rabbitmq/rabbitmq-env.conf")
		export RABBITMQ_CONFIG_FILE=$(q "$dir/rabbitmq/rabbitmq.conf")
		export RABBITMQ_ADVANCED_CONFIG_FILE=$(q "$dir/rabbitmq/advanced.config")
		export RABBITMQ_ENABLED_PLUGINS_FILE=$(q "$dir/rabbitmq/enabled_plugins")
		export RABBITMQ_MNESIA_BASE=$(q "$dir/rabbitmq/mnesia")
		export RABBITMQ_LOG_BASE=$(q "$dir/rabbitmq/log")
		export RABBITMQ_PID_FILE=$(q "$dir/rabbitmq/rabbitmq.pid")
		export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS='-kernel inet_dist_use_interface {127,0,0,1}'
		export RABBITMQ_CTL_ERL_ARGS='-kernel inet_dist_use_interface {127,0,0,1}'
		export RABBITMQ_CTL_DIST_PORT_MIN=0
		export RABBITMQ_CTL_DIST_PORT_MAX=0
	EOF
	write_file "$dir/rabbitmqctl" 755 <<-EOF
		#!/usr/bin/env bash
		# rabbitmqctl for the test node $node
		. $(q "$dir/rabbitmq/env.sh")
		cd "\$TESTENV_DIR" || exit 1
		exec "\$RABBITMQ_BIN/rabbitmqctl" -n "\$RABBITMQ_NODENAME" "\$@"
	EOF
	write_file "$dir/rabbitmq-start.sh" 755 <<-'EOF'
		#!/usr/bin/env bash
		# Start the test RabbitMQ node (same node name, port and data dir as before, so
		# users/vhosts survive; no-op if it is running) and wait until it is fully booted.
		set -euo pipefail
		. "$(dirname "$0")/rabbitmq/env.sh"
		cd "$TESTENV_DIR"
		grp=
		fail() {
		  echo "rabbitmq-start: $*" >&2
		  # Do not leave a half-booted node behind (a later start would take it for a running one).
		  if [[ -n $grp ]] && group_alive "$grp"; then
		    kill -KILL -- "-$grp" 2>/dev/null || true
		    for _ in $(seq 1 50); do group_alive "$grp" || break; sleep 0.1; done
		    rm -f "$RABBITMQ_PID_FILE" "$TESTENV_DIR/rabbitmq/server-group.pid"
		  fi
		  local out=$RABBITMQ_LOG_BASE/server.out
		  if grep -q 'BOOT FAILED' "$out" 2>/dev/null; then
		    # The one-line reason ("init terminating in do_boot ...") is the most useful bit.
		    grep -A 3 'BOOT FAILED' "$out" | tail -n 4 >&2
		    grep 'init terminating in do_boot' "$out" | tail -n 1 | cut -c1-600 >&2
		  else
		    tail -n 20 "$out" "$RABBITMQ_LOG_BASE/$RABBITMQ_NODENAME.log" 2>/dev/null | cut -c1-300 >&2
		  fi
		  echo "rabbitmq-start: logs in $RABBITMQ_LOG_BASE" >&2
		  exit 1
		}
		# Our own epmd, loopback only, on the private port; survives node restarts and is
		# killed by "testenv.sh stop".
		if ! pidfile_alive "$TESTENV_DIR/rabbitmq/epmd.pid"; then
		  setsid "$EPMD_BIN" -address 127.0.0.1 -port "$ERL_EPMD_PORT" \
		    </dev/null >>"$RABBITMQ_LOG_BASE/epmd.log" 2>&1 &
		  echo $! >"$TESTENV_DIR/rabbitmq/epmd.pid"
		  for _ in $(seq 1 100); do port_open "$ERL_EPMD_PORT" && break; sleep 0.05; done
		  port_open "$ERL_EPMD_PORT" || fail "epmd did not come up on port $ERL_EPMD_PORT"
		fi
		pidfile_alive "$RABBITMQ_PID_FILE" && exit 0
		rm -f "$RABBITMQ_PID_FILE"
		# Run the real start script (not Debian's /usr/sbin wrapper, which su's to user
		# rabbitmq and insists on /var/lib/rabbitmq) as the invoking user. setsid: own
		# session and process group, so a ^C on the terminal goes to the tests only (the
		# EXIT trap of "testenv.sh run" then stops us cleanly), and rabbitmq-stop.sh can
		# kill the whole group as a last resort.
		setsid "$RABBITMQ_BIN/rabbitmq-server" </dev/null >>"$RABBITMQ_LOG_BASE/server.out" 2>&1 &
		grp=$!
		disown "$grp" 2>/dev/null || true # no "Killed" job notices if fail() has to kill it
		echo "$grp" >"$TESTENV_DIR/rabbitmq/server-group.pid"
		# The pid file is written early in the boot; fail fast if the VM dies before that.
		for _ in $(seq 1 600); do
		  [[ -s $RABBITMQ_PID_FILE ]] && break
		  group_alive "$grp" || fail "rabbitmq-server exited during startup"
		  sleep 0.1
		done
		[[ -s $RABBITMQ_PID_FILE ]] || fail "no pid file after 60 s"
		# "rabbitmqctl wait" returns when the rabbit app is running, and fails early if the
		# OS process goes away.
		timeout 120 "$TESTENV_DIR/rabbitmqctl" -q wait --timeout 110 "$RABBITMQ_PID_FILE" \
		  >>"$RABBITMQ_LOG_BASE/ctl-wait.out" 2>&1 || fail "node $RABBITMQ_NODENAME did not boot"
		for _ in $(seq 1 100); do port_open "$RABBITMQ_NODE_PORT" && exit 0; sleep 0.05; done
		fail "node booted but 127.0.0.1:$RABBITMQ_NODE_PORT does not accept connections"
	EOF
	write_file "$dir/rabbitmq-stop.sh" 755 <<-'EOF'
		#!/usr/bin/env bash
		# Stop the test RabbitMQ node: SIGTERM to the VM (a clean shutdown since RabbitMQ
		# 3.8, and ~2 s faster than "rabbitmqctl stop", which must boot a CLI VM first),
		# SIGKILL to its whole process group after 30 s. Leaves epmd running for the next
		# rabbitmq-start.sh. Idempotent.
		set -euo pipefail
		. "$(dirname "$0")/rabbitmq/env.sh"
		pid='' grp=''
		[[ -s $RABBITMQ_PID_FILE ]] && pid=$(cat "$RABBITMQ_PID_FILE")
		[[ -s $TESTENV_DIR/rabbitmq/server-group.pid ]] && grp=$(cat "$TESTENV_DIR/rabbitmq/server-group.pid")
		running() { { [[ -n $pid ]] && alive "$pid"; } || { [[ -n $grp ]] && group_alive "$grp"; }; }
		if running; then
		  if [[ -n $pid ]] && alive "$pid"; then
		    kill -TERM "$pid" 2>/dev/null || true
		  else
		    kill -TERM -- "-$grp" 2>/dev/null || true
		  fi
		  for _ in $(seq 1 300); do running || break; sleep 0.1; done
		  if running; then
		    echo "rabbitmq-stop: node did not stop within 30 s, killing it" >&2
		    [[ -n $grp ]] && { kill -KILL -- "-$grp" 2>/dev/null || true; }
		    [[ -n $pid ]] && { kill -KILL "$pid" 2>/dev/null || true; }
		    for _ in $(seq 1 50); do running || break; sleep 0.1; done
		  fi
		fi
		rm -f "$RABBITMQ_PID_FILE" "$TESTENV_DIR/rabbitmq/server-group.pid"
	EOF

	# ---- env file -------------------------------------------------------------------
	{
		echo "# generated by scripts/testenv.sh start; source it"
		echo "export TASKGEN_TESTENV_DIR=$(q "$dir")"
		echo "export TASKGEN_REDIS_URL=$(q "redis://127.0.0.1:$redis_port/0")"
		echo "export TASKGEN_REDIS_ADDR=$(q "127.0.0.1:$redis_port")"
		echo "export TASKGEN_REDIS_PORT=$redis_port"
		echo "export TASKGEN_REDIS_START=$(q "$dir/redis-start.sh")"
		echo "export TASKGEN_REDIS_STOP=$(q "$dir/redis-stop.sh")"
		echo "export TASKGEN_AMQP_URL=$(q "amqp://$AMQP_USER:$AMQP_PASSWORD@127.0.0.1:$amqp_port/$AMQP_VHOST")"
		echo "export TASKGEN_AMQP_GUEST_URL=$(q "amqp://guest:guest@127.0.0.1:$amqp_port/")"
		echo "export TASKGEN_AMQP_ADDR=$(q "127.0.0.1:$amqp_port")"
		echo "export TASKGEN_AMQP_PORT=$amqp_port"
		echo "export TASKGEN_RABBITMQ_NODE=$(q "$node")"
		echo "export TASKGEN_RABBITMQCTL=$(q "$dir/rabbitmqctl")"
		echo "export TASKGEN_RABBITMQ_START=$(q "$dir/rabbitmq-start.sh")"
		echo "export TASKGEN_RABBITMQ_STOP=$(q "$dir/rabbitmq-stop.sh")"
		echo "export TASKGEN_PYTHON=$(q "$PYTHON")"
		echo "export TASKGEN_TESTENV_SCRIPT=$(q "$SELF")"
	} >"$dir/env"

	log "dir $dir"
	log "starting redis on 127.0.0.1:$redis_port"
	"$dir/redis-start.sh"
	t1=$(now_ms)
	log "redis up ($((t1 - t0)) ms); starting rabbitmq $node on 127.0.0.1:$amqp_port (dist $dist_port, epmd $epmd_port)"
	"$dir/rabbitmq-start.sh"
	local t2
	t2=$(now_ms)
	log "rabbitmq up ($((t2 - t1)) ms); adding user $AMQP_USER, vhost $AMQP_VHOST"
	local ctl="$dir/rabbitmqctl"
	# The commands from Celery's RabbitMQ guide. Each rabbitmqctl call boots a CLI VM
	# (~0.6 s), so independent ones run two at a time.
	local p1 p2
	"$ctl" -q add_user "$AMQP_USER" "$AMQP_PASSWORD" >/dev/null &
	p1=$!
	"$ctl" -q add_vhost "$AMQP_VHOST" >/dev/null &
	p2=$!
	wait "$p1" || die "rabbitmqctl add_user failed"
	wait "$p2" || die "rabbitmqctl add_vhost failed"
	"$ctl" -q set_user_tags "$AMQP_USER" administrator >/dev/null &
	p1=$!
	"$ctl" -q set_permissions -p "$AMQP_VHOST" "$AMQP_USER" ".*" ".*" ".*" >/dev/null &
	p2=$!
	wait "$p1" || die "rabbitmqctl set_user_tags failed"
	wait "$p2" || die "rabbitmqctl set_permissions failed"
	local t3
	t3=$(now_ms)
	log "rabbitmq configured ($((t3 - t2)) ms); environment ready in $((t3 - t0)) ms"
	trap - EXIT
	echo "$dir/env"
}

cmd_start() {
	(($# == 0)) || die "start takes no arguments"
	start_env
}

# --------------------------------------------------------------------------------------
# stop

stop_env() {
	local dir=$1
	[[ -d $dir ]] || return 0
	case $(basename "$dir") in
	taskgen-testenv.*) ;;
	*) die "stop: $dir is not a taskgen-testenv directory" ;;
	esac
	local t0
	t0=$(now_ms)
	# Remember every process we are about to stop, to wait for it to be gone for good.
	local -a pids=()
	local f p
	for f in "$dir/rabbitmq/rabbitmq.pid" "$dir/redis/redis.pid" "$dir/rabbitmq/epmd.pid"; do
		[[ -s $f ]] && pids+=("$(cat "$f")")
	done
	if [[ -s $dir/rabbitmq/server-group.pid ]]; then
		for p in $(pgrep -g "$(cat "$dir/rabbitmq/server-group.pid")" 2>/dev/null); do pids+=("$p"); done
	fi

	# RabbitMQ and Redis in parallel; epmd last (the node deregisters from it on the way out).
	local rpid='' dpid=''
	if [[ -x $dir/rabbitmq-stop.sh ]]; then
		"$dir/rabbitmq-stop.sh" &
		rpid=$!
	fi
	if [[ -x $dir/redis-stop.sh ]]; then
		"$dir/redis-stop.sh" &
		dpid=$!
	fi
	# Private redis-servers of internal/testenv.NewRedisServer that a crashed or killed
	# test binary left behind (they run with their data dir as working directory).
	local pf pid
	for pf in "$dir"/private/*/redis.pid; do
		[[ -s $pf ]] || continue
		pid=$(cat "$pf")
		[[ $pid =~ ^[0-9]+$ ]] || continue
		if [[ $(readlink "/proc/$pid/cwd" 2>/dev/null) == "$(dirname "$pf")" ]]; then
			log "stop: killing leftover private redis-server $pid"
			kill -KILL "$pid" 2>/dev/null || true
			pids+=("$pid")
		fi
	done
	if [[ -n $rpid ]]; then wait "$rpid" || log "stop: rabbitmq-stop.sh failed"; fi
	if [[ -n $dpid ]]; then wait "$dpid" || log "stop: redis-stop.sh failed"; fi
	if [[ -s $dir/rabbitmq/epmd.pid && -f $dir/lib.sh ]]; then
		(
			# shellcheck disable=SC1091
			. "$dir/lib.sh"
			stop_pid "$(cat "$dir/rabbitmq/epmd.pid")" 20
		)
		rm -f "$dir/rabbitmq/epmd.pid"
	fi
	# The daemons are orphans, reaped by PID 1; in containers whose init reaps lazily
	# they linger as <defunct> for a second or two. Wait (max 5 s) so that nothing of
	# ours shows up in ps/pgrep once we return.
	local deadline=$(($(now_ms) + 5000)) left
	while :; do
		left=0
		for p in "${pids[@]}"; do [[ $p =~ ^[0-9]+$ && -e /proc/$p ]] && left=1; done
		if ((left == 0 || $(now_ms) >= deadline)); then break; fi
		sleep 0.05
	done
	if [[ ${TESTENV_KEEP:-} == 1 ]]; then
		log "stop: keeping $dir (TESTENV_KEEP=1)"
	else
		rm -rf "$dir"
	fi
	log "stopped in $(($(now_ms) - t0)) ms"
}

cmd_stop() {
	(($# == 1)) || die "usage: $0 stop DIR"
	local dir=${1%/}
	# accept the env file path too
	[[ $(basename "$dir") == env && -f $dir ]] && dir=$(dirname "$dir")
	stop_env "$dir"
}

# --------------------------------------------------------------------------------------
# run

cmd_run() {
	[[ ${1:-} == -- ]] && shift
	(($# > 0)) || die "usage: $0 run [--] CMD..."
	if [[ -n $(missing_packages) ]]; then cmd_install; fi
	TESTENV_DIR=
	# start_env runs in this shell (not in $(...)) and sets TESTENV_DIR
	start_env >/dev/null
	local envfile=$TESTENV_DIR/env
	trap 'stop_env "$TESTENV_DIR"' EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	# shellcheck disable=SC1090
	. "$envfile"
	local rc=0
	"$@" || rc=$?
	exit "$rc"
}

# --------------------------------------------------------------------------------------

main() {
	# Make ^C / SIGTERM run the EXIT traps (cleanup of a half-started environment).
	trap 'exit 130' INT
	trap 'exit 143' TERM
	local cmd=${1:-}
	(($#)) && shift
	case $cmd in
	install) cmd_install "$@" ;;
	start) cmd_start "$@" ;;
	stop) cmd_stop "$@" ;;
	run) cmd_run "$@" ;;
	-h | --help | help)
		usage
		;;
	*)
		usage
		exit 2
		;;
	esac
}

main "$@"
