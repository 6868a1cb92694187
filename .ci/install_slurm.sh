# Single-node Slurm for the tests (Debian's slurm-wlm 22.05 + munge), no systemd, no cgroups.
# Sourced by .ci/run (under `set -euo pipefail`); also fine to run by hand: `bash .ci/install_slurm.sh`.
# Installs the packages, creates a munge key, starts munged, writes /etc/slurm/slurm.conf for this host
# (one node, partition `debug`), starts slurmctld and slurmd, waits until the node is idle and then exports
# APE_NAS_TEST_SLURM=1. Idempotent: a second run reuses running daemons when the config is unchanged.
# It never aborts the caller: when a step fails it prints the exact error, leaves APE_NAS_TEST_SLURM unset, and
# the Slurm test then fails (CI sets APE_NAS_REQUIRE_SERVICES=1) with that reason.

_ape_slurm_log=/var/log/slurm
_ape_slurm_conf=/etc/slurm/slurm.conf

_ape_slurm_fail() {
    echo "install_slurm: FAILED: $*" >&2
    return 1
}

_ape_slurm_show_log() {  # last lines of a log file, on failure
    if [[ -f "$1" ]]; then
        echo "---- last lines of $1" >&2
        tail -n "${2:-15}" "$1" >&2
    fi
}

_ape_slurm_install() {
    if command -v sbatch >/dev/null && command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
        && command -v munged >/dev/null; then
        return 0
    fi
    local created_policy=0 rc=0 log=/tmp/ape_nas_apt_slurm.log
    # services must not be started by the packages' maintainer scripts (no init system here)
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && created_policy=1
    fi
    {
        timeout 300 apt-get update -qq &&
            DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq --no-install-recommends \
                -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold slurm-wlm munge
    } >"$log" 2>&1 || rc=$?
    ((created_policy)) && rm -f /usr/sbin/policy-rc.d
    if ((rc != 0)); then
        _ape_slurm_show_log "$log" 20
        _ape_slurm_fail "apt-get install slurm-wlm munge exited with $rc"
        return 1
    fi
}

_ape_slurm_munge() {
    local key=/etc/munge/munge.key
    mkdir -p /etc/munge /var/lib/munge /var/log/munge /run/munge || return 1
    if [[ ! -s "$key" ]]; then
        if command -v mungekey >/dev/null; then
            mungekey --create --keyfile="$key" --force >/dev/null || { _ape_slurm_fail "mungekey failed"; return 1; }
        else
            dd if=/dev/urandom of="$key" bs=1 count=1024 status=none || return 1
        fi
    fi
    chown -R munge:munge /etc/munge /var/lib/munge /var/log/munge /run/munge || return 1
    chmod 700 /etc/munge && chmod 400 "$key" && chmod 755 /run/munge || return 1
    if timeout 5 munge -n </dev/null 2>/dev/null | timeout 5 unmunge >/dev/null 2>&1; then
        return 0  # already running
    fi
    rm -f /run/munge/munged.pid /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock
    # munged forks into the background itself; no inherited stdout so the caller's pipes can close
    timeout 20 runuser -u munge -- /usr/sbin/munged --force </dev/null >/dev/null 2>>/var/log/munge/munged.start.log ||
        { _ape_slurm_show_log /var/log/munge/munged.log; _ape_slurm_fail "munged did not start"; return 1; }
    local i
    for i in $(seq 1 20); do
        if timeout 5 munge -n </dev/null 2>/dev/null | timeout 5 unmunge >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.5
    done
    _ape_slurm_show_log /var/log/munge/munged.log
    _ape_slurm_fail "munge -n | unmunge still fails after 10 s: $(timeout 5 munge -n 2>&1 </dev/null | head -1)"
}

_ape_slurm_write_conf() {  # prints "changed" when the file was (re)written
    local host cpus mem_total mem_avail real_mem tmp
    host=$(hostname -s)
    cpus=$(nproc)
    mem_total=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
    mem_avail=$(awk '/^MemAvailable:/ {print int($2 / 1024)}' /proc/meminfo)
    # a bit below free memory (and never above 90 % of the total), rounded down to 1 GiB so it stays stable
    real_mem=$((mem_avail < mem_total * 9 / 10 ? mem_avail : mem_total * 9 / 10))
    real_mem=$((real_mem / 1024 * 1024))
    ((real_mem >= 1024)) || real_mem=1024
    mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd "$_ape_slurm_log" || return 1
    tmp=$(mktemp) || return 1
    cat >"$tmp" <<EOF
# Written by ape-nas .ci/install_slurm.sh: single-node Slurm for tests (no cgroups, no accounting database).
ClusterName=apenas
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MinJobAge=600
KillWait=10
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=${_ape_slurm_log}/slurmctld.log
SlurmdLogFile=${_ape_slurm_log}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
NodeName=${host} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${real_mem} State=UNKNOWN
PartitionName=debug Nodes=${host} Default=YES MaxTime=INFINITE State=UP
EOF
    if [[ -f "$_ape_slurm_conf" ]] && cmp -s "$tmp" "$_ape_slurm_conf"; then
        rm -f "$tmp"
    else
        mv "$tmp" "$_ape_slurm_conf" && chmod 644 "$_ape_slurm_conf" && echo changed
    fi
}

_ape_slurm_pid_alive() {  # pid file of a daemon this script started
    local pid
    [[ -f "$1" ]] || return 1
    pid=$(<"$1")
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null
}

_ape_slurm_stop() {  # stop a daemon by its pid file (only the one it names)
    local pid i
    _ape_slurm_pid_alive "$1" || return 0
    pid=$(<"$1")
    kill "$pid" 2>/dev/null || true
    for i in $(seq 1 20); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.5
    done
    kill -9 "$pid" 2>/dev/null || true
}

_ape_slurm_node_state() {
    timeout 10 sinfo -h -N -n "$(hostname -s)" -o '%T' 2>/dev/null | head -1
}

_ape_slurm_start() {
    local changed=$1 host i state
    host=$(hostname -s)
    if [[ -n "$changed" ]]; then
        _ape_slurm_stop /run/slurmd.pid
        _ape_slurm_stop /run/slurmctld.pid
    fi
    if ! _ape_slurm_pid_alive /run/slurmctld.pid; then
        # -i: ignore unreadable state from an earlier configuration instead of refusing to start
        timeout 30 slurmctld -i </dev/null >/dev/null 2>>"$_ape_slurm_log/slurmctld.start.log" ||
            { _ape_slurm_show_log "$_ape_slurm_log/slurmctld.log"; _ape_slurm_fail "slurmctld did not start"; return 1; }
    fi
    for i in $(seq 1 40); do
        timeout 5 scontrol ping 2>/dev/null | grep -q 'is UP' && break
        sleep 0.5
    done
    timeout 5 scontrol ping 2>/dev/null | grep -q 'is UP' ||
        { _ape_slurm_show_log "$_ape_slurm_log/slurmctld.log"; _ape_slurm_fail "slurmctld does not answer: $(timeout 5 scontrol ping 2>&1)"; return 1; }
    if ! _ape_slurm_pid_alive /run/slurmd.pid; then
        timeout 30 slurmd </dev/null >/dev/null 2>>"$_ape_slurm_log/slurmd.start.log" ||
            { _ape_slurm_show_log "$_ape_slurm_log/slurmd.log"; _ape_slurm_fail "slurmd did not start"; return 1; }
    fi
    for i in $(seq 1 60); do
        state=$(_ape_slurm_node_state)
        case "$state" in
            idle | mixed | allocated) return 0 ;;
            down* | drain* | drained* | fail*)
                # left down by an earlier run (ReturnToService covers most cases; this covers the rest)
                timeout 10 scontrol update NodeName="$host" State=RESUME >/dev/null 2>&1 || true ;;
        esac
        sleep 0.5
    done
    _ape_slurm_show_log "$_ape_slurm_log/slurmd.log"
    _ape_slurm_show_log "$_ape_slurm_log/slurmctld.log"
    _ape_slurm_fail "node $host is '${state:-unknown}' after 30 s, not idle: $(timeout 10 scontrol show node "$host" 2>&1 | grep -E 'State|Reason')"
}

_ape_slurm_main() {
    local t0 t1 changed
    t0=$(date +%s)
    if [[ $(id -u) != 0 ]]; then
        _ape_slurm_fail "needs root (installs packages and starts daemons)"
        return 1
    fi
    _ape_slurm_install || return 1
    t1=$(date +%s)
    _ape_slurm_munge || return 1
    changed=$(_ape_slurm_write_conf) || { _ape_slurm_fail "could not write $_ape_slurm_conf"; return 1; }
    _ape_slurm_start "$changed" || return 1
    # a trivial job proves that slurmd can launch work (munge credentials, spool dir, proctrack)
    local out
    out=$(timeout 60 srun -N1 -n1 -t 1 hostname 2>&1) ||
        { _ape_slurm_show_log "$_ape_slurm_log/slurmd.log"; _ape_slurm_fail "srun hostname: $out"; return 1; }
    echo "install_slurm: ok — node $(hostname -s) idle ($(nproc) CPUs); install $((t1 - t0)) s," \
        "daemons $(($(date +%s) - t1)) s; srun ran on '$out'"
}

if _ape_slurm_main; then
    export APE_NAS_TEST_SLURM=1
else
    echo "install_slurm: Slurm not available; APE_NAS_TEST_SLURM not set (tests needing it fail in CI)" >&2
fi
unset -f _ape_slurm_fail _ape_slurm_show_log _ape_slurm_install _ape_slurm_munge _ape_slurm_write_conf \
    _ape_slurm_pid_alive _ape_slurm_stop _ape_slurm_node_state _ape_slurm_start _ape_slurm_main
unset _ape_slurm_log _ape_slurm_conf
