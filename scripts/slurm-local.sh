#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, everything under one folder: for the sweep tests and for
# trying `ticket-lab sweep` by hand. Debian's slurm-wlm and munge (scripts/system-deps.sh installs them).
#
#   scripts/slurm-local.sh start DIR   writes DIR/slurm.conf and a munge key, starts munged, slurmctld
#                                      and slurmd, waits until the node is idle; prints the line
#                                      `export SLURM_CONF=DIR/slurm.conf` (sbatch, squeue, sinfo need it)
#   scripts/slurm-local.sh stop DIR    stops those daemons (by their pid files) and removes DIR
#
# No systemd and no cgroups needed: processes are tracked by /proc (proctrack/linuxproc), tasks are
# not confined (task/none), and there is no accounting database (so `sacct` has nothing to say).
# Ports: SLURMCTLD_PORT and SLURMD_PORT, or two free ones. Needs root, or a user who may run slurmd
# (it starts jobs as their owners).
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
action=$1
dir=$2

pid_of() { cat "$1" 2>/dev/null || true; }
# Alive and not a zombie (a daemon's exit is reaped by whoever adopted it, which may be never in a container).
alive() { kill -0 "$1" 2>/dev/null && ! grep -q '^[0-9]* ([^)]*) Z' "/proc/$1/stat" 2>/dev/null; }

stop() {
  local d=$1 pid
  # Jobs first: their processes would outlive slurmd (slurmstepd keeps a step running across restarts).
  if [ -s "$d/slurmctld.pid" ] && command -v scancel >/dev/null 2>&1; then
    export SLURM_CONF=$d/slurm.conf
    timeout 10 scancel -u "$(id -un)" 2>/dev/null || true
    for _ in $(seq 1 50); do
      [ -z "$(timeout 5 squeue -h -t running,completing -o %i 2>/dev/null)" ] && break
      sleep 0.1
    done
  fi
  for name in slurmd slurmctld munged; do
    pid=$(pid_of "$d/$name.pid")
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  # Give them a moment to leave, then make sure.
  for _ in $(seq 1 50); do
    local alive=0
    for name in slurmd slurmctld munged; do
      pid=$(pid_of "$d/$name.pid")
      [ -n "$pid" ] && alive "$pid" && alive=1
    done
    [ $alive -eq 0 ] && break
    sleep 0.1
  done
  for name in slurmd slurmctld munged; do
    pid=$(pid_of "$d/$name.pid")
    { [ -n "$pid" ] && alive "$pid" && kill -9 "$pid" 2>/dev/null; } || true
  done
  return 0
}

fail() {
  echo "slurm-local: $1" >&2
  for log in munged.log slurmctld.log slurmd.log; do
    [ -s "$dir/$log" ] && { echo "--- $dir/$log (last lines)" >&2; tail -n 15 "$dir/$log" >&2; }
  done
  stop "$dir"
  exit 1
}

free_port() {
  node -e 'const s = require("net").createServer(); s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}

case $action in
  stop)
    [ -d "$dir" ] || exit 0
    stop "$dir"
    rm -rf "$dir"
    ;;
  start)
    for bin in munged slurmctld slurmd sinfo; do
      command -v "$bin" >/dev/null 2>&1 || { echo "slurm-local: $bin is not installed (apt-get install slurm-wlm munge)" >&2; exit 1; }
    done
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    # munged refuses a socket folder others may write to, and a key others may read.
    chmod 0700 "$dir"
    mkdir -p "$dir/state" "$dir/spool"
    dd if=/dev/urandom of="$dir/munge.key" bs=1024 count=1 status=none
    chmod 0400 "$dir/munge.key"

    host=$(hostname -s)
    user=$(id -un)
    ctld_port=${SLURMCTLD_PORT:-$(free_port)}
    slurmd_port=${SLURMD_PORT:-$(free_port)}
    [ "$ctld_port" != "$slurmd_port" ] || slurmd_port=$(free_port)
    # This machine as slurmd sees it: CPUs, sockets, cores, threads, RealMemory.
    node_line=$(slurmd -C | head -n 1 | sed -e "s/^NodeName=[^ ]*/NodeName=$host/")

    cat >"$dir/slurm.conf" <<EOF
# A one-node cluster written by scripts/slurm-local.sh; everything lives in $dir.
ClusterName=ticketlab
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=$user
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=300
$node_line NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    export SLURM_CONF=$dir/slurm.conf

    munged --key-file="$dir/munge.key" --socket="$dir/munge.socket" --pid-file="$dir/munged.pid" \
      --log-file="$dir/munged.log" --seed-file="$dir/munged.seed" --force ||
      fail "munged did not start"
    for _ in $(seq 1 50); do [ -S "$dir/munge.socket" ] && break; sleep 0.1; done
    [ -S "$dir/munge.socket" ] || fail "munged made no socket"

    slurmctld -f "$dir/slurm.conf" || fail "slurmctld did not start"
    slurmd -f "$dir/slurm.conf" -N "$host" || fail "slurmd did not start"

    # The node registers and turns idle within seconds; 60 s covers a slow machine.
    state=""
    for _ in $(seq 1 120); do
      state=$(sinfo -h -N -n "$host" -o '%T' 2>/dev/null || true)
      [ "$state" = idle ] && break
      sleep 0.5
    done
    [ "$state" = idle ] || fail "the node did not turn idle in 60 s (sinfo says '${state:-nothing}')"
    echo "export SLURM_CONF=$dir/slurm.conf"
    ;;
  *) usage ;;
esac
