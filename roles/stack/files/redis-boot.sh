#!/bin/sh
# Starts one Redis server or Sentinel of the swarmlab stack (the stack role mounts this file into
# the Redis and Sentinel tasks as a Docker config; see docs/redis.md, "The stack").
#
#   redis-boot.sh server [redis-server options]    a Redis instance
#   redis-boot.sh sentinel [redis-server options]  a Sentinel
#   redis-boot.sh health server|sentinel           the health check: AUTH + PING
#   redis-boot.sh cli server|sentinel COMMAND...   one command to this task's server, authenticated
#                                                  (the replies, one per line): for operators
#
# It runs as root for as long as it needs to: it reads the secrets, writes the config file (mode
# 0600), hands the data directory to BOOT_USER, then replaces itself with the server running as
# BOOT_USER. Passwords go from the secret files into config files and into redis-cli's standard
# input, never into an argument list or an environment.
#
# Environment (nothing in it is secret):
#   BOOT_NAME      this instance's service name: what it announces to replicas and Sentinels
#                  (replica-announce-ip, sentinel announce-ip), and a name in its certificate
#   BOOT_PORT      its port (6379, 26379)
#   BOOT_DATA      its data directory, a volume (/data)
#   BOOT_RUN       a private directory in memory (a tmpfs, /run/redis) for the copy of the TLS key
#                  and, without Sentinel, the config file
#   BOOT_USER      the user the server runs as (redis); empty: stay who we are
#   BOOT_PASSWORD_FILE           the Redis password (requirepass, masterauth, Sentinel's auth-pass)
#   BOOT_SENTINEL_PASSWORD_FILE  the Sentinels' own password (requirepass, sentinel-pass)
#   BOOT_TLS       yes: TLS only (port 0, tls-port BOOT_PORT), for clients, replication and
#                  Sentinel; BOOT_TLS_CERT, BOOT_TLS_KEY, BOOT_TLS_CA are the files
#   BOOT_MASTER_NAME     the name the Sentinels monitor the master under (mymaster)
# server only:
#   BOOT_DEFAULT_MASTER  "host port" this instance follows on its first start; empty: master
#   BOOT_SENTINELS       "host:port ..." of the Sentinels; empty: no Sentinel
#   BOOT_WAIT            seconds to wait for a majority of the Sentinels to agree on the master
#
# The role of a server at start:
# - Without Sentinel the role is BOOT_DEFAULT_MASTER's, every time: the config file is written
#   anew in BOOT_RUN, so a role changed at runtime does not survive a restart (and
#   swarmlab.cluster.redis_failover refuses persist: true there).
# - With Sentinel the config file is on the volume (BOOT_DATA/redis.conf), so the role Sentinel
#   gives (REPLICAOF + CONFIG REWRITE) survives a restart. At every start the server asks the
#   Sentinels which instance is the master, and follows the answer of a majority of them (itself:
#   master; another: replica of it; none monitors one yet: its file's role, or on a first start
#   BOOT_DEFAULT_MASTER). Without such a majority within BOOT_WAIT seconds a server whose role
#   would be replica starts as that replica (it takes no writes; Sentinel corrects it later), but a
#   server whose role would be master exits instead: a former master never comes back as a master
#   with its old data while the Sentinels cannot say whether a replica has been promoted since.
#   Nor does a server whose volume holds no state yet become the master the Sentinels name: it
#   would be an empty master that its replicas copy; it waits until the Sentinels promote a
#   replica, and follows it.
set -eu
umask 077

say() { echo "redis-boot[${BOOT_NAME:-?}]: $*"; }
die() { say "$*" >&2; exit 1; }

# A Redis config or command string: double quotes, with \ and " escaped. printf is the shell's
# own, so the value travels to sed through a pipe, not an argument.
quote() { printf '"%s"' "$(printf '%s' "$1" | sed 's/[\\"]/\\&/g')"; }

secret() {
    [ -r "$1" ] || die "cannot read $1"
    cat "$1"
}

tls=${BOOT_TLS:-no}
cli_tls=""
if [ "$tls" = yes ]; then
    cli_tls="--tls --cacert ${BOOT_TLS_CA}"
fi

# cli HOST PORT PASSWORD COMMAND...: AUTH and the command through redis-cli's standard input;
# prints the replies, one per line (--raw), the first being AUTH's "OK".
cli() {
    _host=$1 _port=$2 _pw=$3
    shift 3
    # shellcheck disable=SC2086 # cli_tls is a list of options
    { printf 'AUTH %s\n' "$(quote "$_pw")"; printf '%s\n' "$*"; } \
        | timeout 3 redis-cli $cli_tls -h "$_host" -p "$_port" --raw 2>/dev/null || true
}

# The server's config directives shared by both kinds: ports and TLS, data directory.
common_conf() {
    if [ "$tls" = yes ]; then
        printf 'port 0\ntls-port %s\n' "$BOOT_PORT"
        printf 'tls-cert-file %s\ntls-key-file %s\ntls-ca-cert-file %s\n' \
            "$(quote "$BOOT_TLS_CERT")" "$(quote "$run/tls/server.key")" "$(quote "$BOOT_TLS_CA")"
        # Clients prove who they are with the password; the link to a master or a Sentinel's
        # links are TLS too.
        printf 'tls-auth-clients no\ntls-replication yes\n'
    else
        printf 'port %s\n' "$BOOT_PORT"
    fi
    printf 'dir %s\nprotected-mode no\n' "$(quote "$BOOT_DATA")"
}

prepare_dirs() {
    run=${BOOT_RUN:-/run/redis}
    mkdir -p "$BOOT_DATA" "$run"
    chmod 0700 "$BOOT_DATA" "$run"
    if [ "$tls" = yes ]; then
        # The secret is root's (0400); the server reads its own copy, in memory.
        mkdir -p "$run/tls"
        cp "$BOOT_TLS_KEY" "$run/tls/server.key"
        chmod 0600 "$run/tls/server.key"
    fi
    if [ -n "${BOOT_USER:-}" ] && [ "$(id -u)" = 0 ]; then
        # Volumes made by an older version (or another image) may belong to root.
        find "$BOOT_DATA" "$run" ! -user "$BOOT_USER" -exec chown "$BOOT_USER:" {} +
    fi
}

# Write a config file atomically, owned by the user the server runs as.
install_conf() {
    if [ -n "${BOOT_USER:-}" ] && [ "$(id -u)" = 0 ]; then
        chown "$BOOT_USER:" "$1.new"
    fi
    mv "$1.new" "$1"
}

# Write the config file $1 anew: the comment line $2, the settings every server and Sentinel
# shares, the password $3 (the one its clients give, and the one it gives its peers with the
# setting $4: a replica its master, a Sentinel the other Sentinels), then what the function $5
# prints; installed atomically.
write_conf() {
    {
        echo "# $2"
        common_conf
        printf 'requirepass %s\n%s %s\n' "$(quote "$3")" "$4" "$(quote "$3")"
        "$5"
    } > "$1.new"
    install_conf "$1"
}

run_server() {
    if [ -z "${BOOT_USER:-}" ] || [ "$(id -u)" != 0 ]; then
        exec "$@"
    fi
    if command -v setpriv > /dev/null 2>&1; then
        exec setpriv --reuid="$BOOT_USER" --regid="$BOOT_USER" --init-groups -- "$@"
    fi
    if command -v gosu > /dev/null 2>&1; then
        exec gosu "$BOOT_USER" "$@"
    fi
    die "neither setpriv nor gosu in the image: cannot run the server as $BOOT_USER"
}

# Sets `answer` to what a majority of the Sentinels say: "host port" of the master, "none" when
# they monitor none under BOOT_MASTER_NAME, "" without a majority (unreachable, wrong password,
# split views). `heard` lists every Sentinel's answer, for the log.
ask_sentinels() {
    _count=0 _votes="" heard=""
    for _s in $BOOT_SENTINELS; do
        _count=$((_count + 1))
        _out=$(cli "${_s%:*}" "${_s##*:}" "$sentinel_password" SENTINEL get-master-addr-by-name "$BOOT_MASTER_NAME")
        if [ "$(printf '%s\n' "$_out" | sed -n 1p)" != OK ]; then
            heard="$heard $_s=($(printf '%s' "$_out" | head -n 1 | cut -c 1-60))"
            continue
        fi
        _addr=$(printf '%s\n' "$_out" | sed -n '2p;3p' | tr '\n' ' ' | sed 's/ *$//')
        [ -n "$_addr" ] || _addr=none
        heard="$heard $_s=($_addr)"
        _votes="$_votes$_addr
"
    done
    answer=$(printf '%s' "$_votes" | sort | uniq -c \
        | awk -v need=$((_count / 2 + 1)) '$1 >= need { $1 = ""; sub(/^ +/, ""); print; exit }')
}

# Whether "host port" is this instance: its service name, or one of its addresses.
is_me() {
    _h=${1% *} _p=${1##* }
    [ "$_p" = "$BOOT_PORT" ] || return 1
    [ "$_h" = "$BOOT_NAME" ] && return 0
    case " $(hostname -i 2> /dev/null) $(hostname -I 2> /dev/null) " in
        *" $_h "*) return 0 ;;
    esac
    return 1
}

server_settings() {
    printf 'replica-announce-ip %s\n' "$BOOT_NAME"
    if [ -n "$role" ]; then
        printf 'replicaof %s\n' "$role"
    fi
}

server() {
    password=$(secret "$BOOT_PASSWORD_FILE")
    prepare_dirs
    if [ -z "${BOOT_SENTINELS:-}" ]; then
        conf=$run/redis.conf
        role=${BOOT_DEFAULT_MASTER:-}
        why="without Sentinel the role is fixed"
    else
        sentinel_password=$(secret "$BOOT_SENTINEL_PASSWORD_FILE")
        conf=$BOOT_DATA/redis.conf
        if [ -f "$conf" ]; then
            first=no
            saved=$(sed -n 's/^\(replicaof\|slaveof\)[[:space:]]\+\([^[:space:]]\+\)[[:space:]]\+\([0-9]\+\).*/\2 \3/p' "$conf" | tail -n 1)
        else
            first=yes
            saved=${BOOT_DEFAULT_MASTER:-}
        fi
        deadline=$(($(date +%s) + ${BOOT_WAIT:-30}))
        while :; do
            ask_sentinels
            if [ "$answer" = none ]; then
                role=$saved
                why="no Sentinel monitors $BOOT_MASTER_NAME yet; the role from $([ $first = yes ] && echo 'the stack' || echo "$conf")"
                break
            elif [ -n "$answer" ] && is_me "$answer"; then
                if [ $first = no ]; then
                    role=""
                    why="a majority of the Sentinels names this instance the master"
                    break
                fi
                say "the Sentinels name this instance the master, but its volume holds no state yet:" \
                    "not starting as an empty master (they will promote a replica, which it then follows)"
            elif [ -n "$answer" ]; then
                role=$answer
                why="a majority of the Sentinels names $answer the master"
                break
            fi
            if [ "$(date +%s)" -ge "$deadline" ]; then
                if [ -n "$saved" ]; then
                    role=$saved
                    why="no usable answer from a majority of the Sentinels in ${BOOT_WAIT:-30} s (heard:$heard); a replica takes no writes"
                    break
                fi
                die "no majority of the Sentinels confirmed this instance as the master in ${BOOT_WAIT:-30} s" \
                    "(heard:$heard): not starting as a master that may have been replaced; exiting (Swarm restarts the task)"
            fi
            sleep 1
        done
    fi
    write_conf "$conf" "Written by redis-boot.sh at every start; Sentinel's CONFIG REWRITE adds the role." \
        "$password" masterauth server_settings
    say "starting as ${role:+replica of }${role:-master}: $why"
    run_server redis-server "$conf" "$@"
}

sentinel_settings() {
    # Replicas and peers are known by their service names, which survive a task's restart
    # on a new overlay address.
    printf 'sentinel resolve-hostnames yes\nsentinel announce-hostnames yes\nsentinel announce-ip %s\n' "$BOOT_NAME"
    if [ -n "$state" ]; then
        printf '%s\n' "$state"
    fi
    if printf '%s\n' "$state" | grep -q "^sentinel monitor $BOOT_MASTER_NAME "; then
        printf 'sentinel auth-pass %s %s\n' "$BOOT_MASTER_NAME" "$(quote "$password")"
    fi
}

sentinel() {
    sentinel_password=$(secret "$BOOT_SENTINEL_PASSWORD_FILE")
    password=$(secret "$BOOT_PASSWORD_FILE")
    prepare_dirs
    conf=$BOOT_DATA/sentinel.conf
    # What Sentinel learned (its id, epochs, the monitored master, replicas, peers) stays; the
    # settings this script owns are written anew, before the state: a `sentinel monitor` by host
    # name only loads after `resolve-hostnames yes`.
    managed='^(#|$|port |tls-|dir |requirepass |masterauth |user |protected-mode |daemonize |pidfile |logfile |bind |sentinel (sentinel-pass|sentinel-user|auth-pass|auth-user|resolve-hostnames|announce-hostnames|announce-ip|announce-port) )'
    state=""
    if [ -f "$conf" ]; then
        # Redis 7.0 Sentinel compares addresses by IP, and an address it could not resolve has an
        # empty one: a rewrite while the names do not resolve (every task restarting at once) can
        # write each known replica as the master's name, and Sentinel then refuses its own file
        # ("Duplicate hostname and port for replica"). Drop a replica entry that names the master
        # and repeated entries; Sentinel finds the replicas again through the master.
        state=$(grep -Ev "$managed" "$conf" | awk '
            $1 == "sentinel" && $2 == "monitor" { master[$3] = $4 " " $5 }
            $1 == "sentinel" && ($2 == "known-replica" || $2 == "known-slave") && master[$3] == $4 " " $5 {
                print "redis-boot: dropped from the saved state: " $0 > "/dev/stderr"; next }
            seen[$0]++ { print "redis-boot: dropped a repeated line: " $0 > "/dev/stderr"; next }
            { print }' || true)
    fi
    write_conf "$conf" "Written by redis-boot.sh at every start, then rewritten by Sentinel as it learns." \
        "$sentinel_password" "sentinel sentinel-pass" sentinel_settings
    say "starting$(printf '%s\n' "$state" | grep -q '^sentinel monitor ' && echo ' with its saved state' || echo ', monitoring nothing yet')"
    run_server redis-server "$conf" --sentinel "$@"
}

own_password() {
    if [ "$1" = sentinel ]; then
        secret "$BOOT_SENTINEL_PASSWORD_FILE"
    else
        secret "$BOOT_PASSWORD_FILE"
    fi
}

health() {
    case "$(cli 127.0.0.1 "$BOOT_PORT" "$(own_password "$1")" PING)" in
        *PONG*) exit 0 ;;
    esac
    exit 1
}

# One command, its replies without AUTH's "OK"; fails when AUTH did.
own_cli() {
    _kind=$1
    shift
    _out=$(cli 127.0.0.1 "$BOOT_PORT" "$(own_password "$_kind")" "$@")
    [ "$(printf '%s\n' "$_out" | sed -n 1p)" = OK ] || die "cannot authenticate to 127.0.0.1:$BOOT_PORT: $(printf '%s' "$_out" | head -n 1)"
    printf '%s\n' "$_out" | sed 1d
}

kind=${1:-}
[ $# -gt 0 ] && shift
case $kind in
    server) server "$@" ;;
    sentinel) sentinel "$@" ;;
    health) health "${1:-server}" ;;
    cli) own_cli "$@" ;;
    *) die "usage: redis-boot.sh server|sentinel [redis-server options] | health server|sentinel | cli server|sentinel COMMAND..." ;;
esac
