#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, to try the cluster path of a sweep (and to test it in CI).
#
#   sudo bash scripts/slurm_cluster.sh start    # install (Debian), configure, start; waits until the node is idle
#   sudo bash scripts/slurm_cluster.sh status   # sinfo and the daemons
#   sudo bash scripts/slurm_cluster.sh stop     # stop the daemons (the config and the database stay)
#
# Then, as in the docs' cluster page:
#   python scripts/run.py --multirun hydra/launcher=slurm_cpu degradation=mult_gauss,ablation
#
# One partition, `debug`, holding this host with all its CPUs and memory. Accounting is on (slurmdbd over
# a local MariaDB): submitit learns through `sacct` how each job ended, so a cancelled or failed job is
# reported as such instead of being waited for. Time limits are enforced at once (OverTimeLimit=0) and
# the scheduler runs every second, so a time-limited job is signalled and requeued in seconds.
# It starts the daemons directly (no systemd needed, as in a container), with an empty queue: jobs queued
# before a stop are not run again. Root is needed.
set -euo pipefail

CONF_DIR=/etc/slurm
STATE=/var/lib/slurm-degrade
LOGS=/var/log/slurm-degrade
HOST=$(hostname -s)
DB_PASS=degrade-local  # a local MariaDB user reachable from this host only

need_root() { [[ $(id -u) -eq 0 ]] || { echo "slurm_cluster: run as root (sudo)" >&2; exit 2; }; }

install_packages() {
  local missing=()
  for cmd in munged slurmctld slurmd slurmdbd sbatch mariadbd; do command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd"); done
  [[ ${#missing[@]} -eq 0 ]] && return
  command -v apt-get >/dev/null 2>&1 || { echo "slurm_cluster: missing ${missing[*]} and no apt-get" >&2; exit 2; }
  echo "slurm_cluster: installing slurmctld slurmd slurmdbd slurm-client munge mariadb-server"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurmdbd slurm-client munge mariadb-server >/dev/null
}

write_config() {
  local cpus mem_mb
  cpus=$(nproc)
  mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))  # leave 1 GiB to the system
  mkdir -p "$CONF_DIR" "$STATE/ctld" "$STATE/d" "$LOGS" /run/munge /var/run/slurm
  chown slurm:slurm "$STATE/ctld" "$STATE/d" "$LOGS" /var/run/slurm
  cat >"$CONF_DIR/slurm.conf" <<EOF
ClusterName=degrade
SlurmctldHost=$HOST
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=/var/run/slurm/slurmctld.pid
SlurmdPidFile=/var/run/slurm/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1,bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
JobAcctGatherType=jobacct_gather/linux
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=$HOST
JobRequeue=1
OverTimeLimit=0
KillWait=5
MinJobAge=30
InactiveLimit=0
MessageTimeout=10
NodeName=$HOST CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
  cat >"$CONF_DIR/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=$HOST
SlurmUser=slurm
PidFile=/var/run/slurm/slurmdbd.pid
LogFile=$LOGS/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
  chown slurm:slurm "$CONF_DIR/slurmdbd.conf"
  chmod 600 "$CONF_DIR/slurmdbd.conf"
  [[ -s /etc/munge/munge.key ]] || dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
  chown munge:munge /etc/munge/munge.key /run/munge
  chmod 400 /etc/munge/munge.key
}

running() { pgrep -x "$1" >/dev/null 2>&1; }

wait_for() {  # wait_for SECONDS WHAT COMMAND...: poll until COMMAND succeeds
  local seconds=$1 what=$2; shift 2
  for _ in $(seq "$seconds"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  echo "slurm_cluster: $what did not come up in ${seconds}s (logs in $LOGS)" >&2
  exit 1
}

start() {
  need_root
  install_packages
  write_config
  running munged || runuser -u munge -- munged --force
  if ! running mariadbd; then
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
    (mysqld_safe >/dev/null 2>&1 &)
    wait_for 60 MariaDB mysqladmin ping
  fi
  mysql -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db; CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS'; GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
  running slurmdbd || slurmdbd
  wait_for 60 slurmdbd sacctmgr -i show cluster
  sacctmgr -i show cluster format=cluster -n | grep -qw degrade || sacctmgr -i add cluster degrade >/dev/null
  # -c: start with an empty queue; jobs left from before (a killed test run) must not run again here
  running slurmctld || slurmctld -c
  running slurmd || slurmd -c
  wait_for 90 "the node" bash -c "sinfo -h -N -o '%T' | grep -Eq '^(idle|mixed|allocated)'"
  scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true
  sinfo
}

stop() {
  need_root
  for daemon in slurmd slurmctld slurmdbd; do pkill -x "$daemon" 2>/dev/null || true; done
  for _ in $(seq 30); do  # until they have exited, so that a start right after starts them again
    running slurmd || running slurmctld || running slurmdbd || break
    sleep 1
  done
  echo "slurm_cluster: stopped (munge and MariaDB left running)"
}

status() {
  for daemon in munged mariadbd slurmdbd slurmctld slurmd; do
    printf '%-10s %s\n' "$daemon" "$(running "$daemon" && echo running || echo stopped)"
  done
  sinfo 2>&1 || true
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: bash scripts/slurm_cluster.sh start|stop|status" >&2; exit 2 ;;
esac
