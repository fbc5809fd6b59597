#!/usr/bin/env bash
# Starts a local evalmesh cluster on loopback, N nodes behind nginx, for trying
# the cluster out; `cluster.sh stop` stops it again.
#
#   scripts/cluster.sh [start] [-n NODES] [-p BASE_PORT] [-s SLOTS] [-P PROXY_PORT] [-d RUN_DIR]
#   scripts/cluster.sh status  [-d RUN_DIR]
#   scripts/cluster.sh stop    [-d RUN_DIR]
#
# Defaults: 4 nodes on ports 5001 up, 2 slots each, nginx on 8080, files in
# run/cluster. Node i listens on 127.0.0.1:BASE_PORT+i-1 with its config, data
# and log in RUN_DIR/node-PORT/; the first node is the seed of the others.
# nginx is rendered from config/nginx.conf (only its upstream servers and
# listen port change) into RUN_DIR/nginx/ and listens on 127.0.0.1:PROXY_PORT.
# The pids are kept in RUN_DIR/pids, which is what `stop` signals. Data stays
# in RUN_DIR between runs; remove the folder for a fresh cluster.
#
# Environment: EVALMESH_BIN (the node binary; default
# ${CARGO_TARGET_DIR:-target}/release/evalmesh, built with
# `cargo build --release` when missing), NGINX (default nginx),
# CLUSTER_WAIT_S (how long start waits for the cluster, default 60),
# STOP_GRACE_S (from SIGTERM to SIGKILL, default 15).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

nodes=4
base_port=5001
slots=2
proxy_port=8080
run_dir=$root/run/cluster
wait_s=${CLUSTER_WAIT_S:-60}
grace_s=${STOP_GRACE_S:-15}
nginx_bin=${NGINX:-nginx}

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

die() {
    echo "cluster: $*" >&2
    exit 1
}

# A whole number from 1 up, without leading zeros (which bash reads as octal).
positive() {
    [[ $1 =~ ^[1-9][0-9]{0,5}$ ]]
}

command=start
if (($#)) && [[ $1 != -* ]]; then
    command=$1
    shift
fi
while getopts ':n:p:s:P:d:h' opt; do
    case $opt in
    n) nodes=$OPTARG ;;
    p) base_port=$OPTARG ;;
    s) slots=$OPTARG ;;
    P) proxy_port=$OPTARG ;;
    d) run_dir=$OPTARG ;;
    h)
        usage
        exit 0
        ;;
    :) die "-$OPTARG needs a value" ;;
    *) die "unknown option -$OPTARG (try -h)" ;;
    esac
done
shift $((OPTIND - 1))
(($# == 0)) || die "unexpected argument $1 (try -h)"
run_dir=$(mkdir -p "$run_dir" && cd "$run_dir" && pwd)
pids_file=$run_dir/pids

# The pids file holds one line per process started: name, pid, log file and
# the config path, which the process's command line must hold for the pid to
# still be ours (pids are reused), separated by tabs.
ours() {
    local pid=$1 config=$2
    # The process may end between two reads: that is "not ours" too.
    { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -qF -- "$config"
}

# Prints the lines of the pids file whose process still runs.
running() {
    [[ -f $pids_file ]] || return 0
    local name pid log config
    while IFS=$'\t' read -r name pid log config; do
        if ours "$pid" "$config"; then
            printf '%s\t%s\t%s\t%s\n' "$name" "$pid" "$log" "$config"
        fi
    done <"$pids_file"
}

# Prints the pids of the processes descended from pid.
descendants() {
    local child
    for child in $(pgrep -P "$1" || true); do
        echo "$child"
        descendants "$child"
    done
}

# SIGTERM to each recorded process still running, SIGKILL to those left
# after the grace.
stop_all() {
    local live name pid log config i
    live=$(running)
    if [[ -z $live ]]; then
        rm -f "$pids_file"
        echo "cluster: nothing running in $run_dir"
        return 0
    fi
    # nginx first, so that no new client reaches a node that is leaving.
    while IFS=$'\t' read -r name pid log config; do
        echo "cluster: stopping $name (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
    done < <(grep '^nginx' <<<"$live" || true; grep -v '^nginx' <<<"$live" || true)
    # A node on SIGTERM leaves the cluster, so that its peers take its tasks
    # back at once, and finishes the requests in flight.
    for ((i = 0; i < grace_s * 10; i++)); do
        [[ -z $(running) ]] && break
        sleep 0.1
    done
    live=$(running)
    if [[ -n $live ]]; then
        local tree
        while IFS=$'\t' read -r name pid log config; do
            echo "cluster: $name (pid $pid) still running after ${grace_s}s: SIGKILL"
            # Its descendants too (nginx's workers, a node's pytest runs),
            # listed before it dies: they would outlive it otherwise.
            mapfile -t tree < <(descendants "$pid")
            kill -KILL "$pid" "${tree[@]}" 2>/dev/null || true
        done <<<"$live"
        sleep 0.2
    fi
    rm -f "$pids_file"
    echo "cluster: stopped"
}

status() {
    local live
    live=$(running)
    if [[ -z $live ]]; then
        echo "cluster: nothing running in $run_dir"
        return 1
    fi
    local name pid log config
    while IFS=$'\t' read -r name pid log config; do
        echo "$name: pid $pid, log $log"
    done <<<"$live"
}

# The binary: $EVALMESH_BIN, or the release build, built when missing.
find_binary() {
    if [[ -n ${EVALMESH_BIN:-} ]]; then
        [[ -x $EVALMESH_BIN ]] || die "EVALMESH_BIN=$EVALMESH_BIN is not an executable"
        bin=$EVALMESH_BIN
        return
    fi
    bin=${CARGO_TARGET_DIR:-$root/target}/release/evalmesh
    if [[ ! -x $bin ]]; then
        echo "cluster: $bin missing, building it (cargo build --release; a few minutes)"
        (cd "$root" && cargo build --release)
    fi
    [[ -x $bin ]] || die "no binary at $bin after the build"
}

write_node_config() {
    local port=$1 seed=$2 dir=$3
    {
        echo "# written by scripts/cluster.sh: node $port of a local cluster"
        echo "[node]"
        echo "listen = \"127.0.0.1:$port\""
        echo "data_dir = \"$dir/data\""
        echo "slots = $slots"
        echo
        echo "[cluster]"
        if [[ -n $seed ]]; then
            echo "seeds = [\"$seed\"]"
        else
            echo "seeds = []"
        fi
        echo "secret = \"$secret\""
    } >"$dir/node.toml"
}

# config/nginx.conf with its upstream servers replaced by this cluster's nodes
# (each keeping the first server line's parameters) and its listen port moved.
render_nginx() {
    local out=$1 servers="" port i
    for ((i = 0; i < nodes; i++)); do
        port=$((base_port + i))
        servers+="127.0.0.1:$port "
    done
    awk -v servers="$servers" -v proxy="$proxy_port" '
        /^[[:space:]]*upstream evalmesh[[:space:]]*\{/ { in_upstream = 1 }
        in_upstream && /^[[:space:]]*}/ { in_upstream = 0 }
        in_upstream && /^[[:space:]]*server[[:space:]]+127\.0\.0\.1:[0-9]+/ {
            if (!done) {
                match($0, /^[[:space:]]*/); indent = substr($0, 1, RLENGTH)
                params = $0; sub(/^[[:space:]]*server[[:space:]]+[^[:space:];]+/, "", params)
                n = split(servers, list, " ")
                for (i = 1; i <= n; i++) print indent "server " list[i] params
                done = 1
            }
            next
        }
        /^[[:space:]]*listen[[:space:]]+127\.0\.0\.1:[0-9]+;/ {
            sub(/127\.0\.0\.1:[0-9]+/, "127.0.0.1:" proxy); listened = 1
        }
        { print }
        END { if (!done || !listened) exit 1 }
    ' "$root/config/nginx.conf" >"$out" ||
        die "config/nginx.conf has no 'server 127.0.0.1:PORT' upstream line or 'listen 127.0.0.1:PORT;' line to render"
}

# Whether something already accepts connections on the loopback port.
port_taken() {
    (: <"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

http_ok() {
    curl -fsS --max-time 2 -o /dev/null "$1" 2>/dev/null
}

alive_members() {
    curl -fsS --max-time 2 "$1/network" 2>/dev/null | grep -o '"status":"alive"' | wc -l
}

# Stops what this start launched, then fails: a half-started cluster is no use.
abort() {
    echo "cluster: $*" >&2
    stop_all >&2 || true
    exit 1
}

# Fails when a recorded process has exited, showing the end of its log.
check_started() {
    local name pid log config
    while IFS=$'\t' read -r name pid log config; do
        if ! ours "$pid" "$config"; then
            echo "cluster: $name exited; end of $log:" >&2
            tail -n 20 "$log" >&2 || true
            abort "$name did not start"
        fi
    done <"$pids_file"
}

# Records a process just started in the background.
record() {
    local name=$1 pid=$2 log=$3 config=$4
    printf '%s\t%s\t%s\t%s\n' "$name" "$pid" "$log" "$config" >>"$pids_file"
}

start() {
    positive "$nodes" || die "-n wants a number of nodes, at least 1"
    positive "$slots" || die "-s wants a number of slots, at least 1"
    positive "$base_port" || die "-p wants a port number"
    positive "$proxy_port" || die "-P wants a port number"
    ((base_port >= 1 && base_port + nodes - 1 <= 65535 && proxy_port >= 1 && proxy_port <= 65535)) ||
        die "ports must be within 1-65535"
    ((proxy_port < base_port || proxy_port >= base_port + nodes)) ||
        die "proxy port $proxy_port is one of the nodes' ports"
    if [[ -n $(running) ]]; then
        die "a cluster is already running in $run_dir (scripts/cluster.sh stop -d $run_dir)"
    fi
    command -v curl >/dev/null || die "curl is needed to wait for the nodes"
    command -v "$nginx_bin" >/dev/null || die "$nginx_bin not found: install nginx (apt-get install nginx) or set NGINX"
    local port
    for port in $(seq "$base_port" $((base_port + nodes - 1))) "$proxy_port"; do
        ! port_taken "$port" || die "127.0.0.1:$port is already in use"
    done
    find_binary

    # nginx's config first: a config nginx refuses should stop us before any
    # node starts.
    local ngx=$run_dir/nginx
    mkdir -p "$ngx/logs" "$ngx/temp"
    render_nginx "$ngx/nginx.conf"
    "$nginx_bin" -t -q -c "$ngx/nginx.conf" -p "$ngx/" 2>"$ngx/logs/test.log" || {
        cat "$ngx/logs/test.log" >&2
        die "the rendered nginx config $ngx/nginx.conf does not pass nginx -t"
    }

    # One secret per run; every node of the cluster shares it.
    secret=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
    : >"$pids_file"
    trap 'abort "interrupted"' INT TERM

    local seed="" dir log i
    for ((i = 0; i < nodes; i++)); do
        port=$((base_port + i))
        dir=$run_dir/node-$port
        mkdir -p "$dir"
        write_node_config "$port" "$seed" "$dir"
        log=$dir/node.log
        # nohup: the node outlives the terminal this script ran in.
        nohup "$bin" node --config "$dir/node.toml" >>"$log" 2>&1 </dev/null &
        record "node-$port" "$!" "$log" "$dir/node.toml"
        echo "cluster: node 127.0.0.1:$port started (pid $!, log $log)"
        [[ -n $seed ]] || seed=127.0.0.1:$port
    done

    nohup "$nginx_bin" -c "$ngx/nginx.conf" -p "$ngx/" >>"$ngx/logs/stdout.log" 2>&1 </dev/null &
    record nginx "$!" "$ngx/logs/error.log" "$ngx/nginx.conf"
    echo "cluster: nginx on 127.0.0.1:$proxy_port started (pid $!, logs $ngx/logs/)"

    echo "cluster: waiting up to ${wait_s}s for $nodes nodes to see each other"
    local deadline=$((SECONDS + wait_s)) ready
    while :; do
        check_started
        ready=0
        for ((i = 0; i < nodes; i++)); do
            port=$((base_port + i))
            if http_ok "http://127.0.0.1:$port/health" &&
                (($(alive_members "http://127.0.0.1:$port") == nodes)); then
                ready=$((ready + 1))
            fi
        done
        if ((ready == nodes)) && http_ok "http://127.0.0.1:$proxy_port/health"; then
            break
        fi
        ((SECONDS < deadline)) ||
            abort "after ${wait_s}s only $ready of $nodes nodes see the whole cluster (logs in $run_dir)"
        sleep 0.5
    done
    trap - INT TERM

    cat <<EOF

evalmesh cluster ready: $nodes nodes, slots per node: $slots
  through nginx   http://127.0.0.1:$proxy_port
  nodes           http://127.0.0.1:$base_port ... http://127.0.0.1:$((base_port + nodes - 1))
  files           $run_dir (node-PORT/node.log, nginx/logs/)

  curl -F file=@projects.zip http://127.0.0.1:$proxy_port/evaluation
  curl http://127.0.0.1:$proxy_port/evaluation/ID
  curl http://127.0.0.1:$proxy_port/network

stop it with: scripts/cluster.sh stop$([[ $run_dir == "$root/run/cluster" ]] || echo " -d $run_dir")
EOF
}

case $command in
start) start ;;
stop) stop_all ;;
status) status ;;
-h | --help | help) usage ;;
*) die "unknown command $command: start, status or stop (try -h)" ;;
esac
