#!/usr/bin/env bash
# One rank of a run split into logical hosts on one machine, as FlagCX's own CI runs two
# 4-GPU "nodes" on an 8-GPU runner: each group of ranks gets its own FLAGCX_HOSTID (and
# NCCL_HOSTID) and only its own GPUs in CUDA_VISIBLE_DEVICES, so FlagCX takes its path
# between hosts for real. Usage (under mpirun): split_host.sh HOSTS RANKS PROGRAM [ARGS...]
set -euo pipefail
hosts=$1 ranks=$2
shift 2
if (( hosts < 1 || ranks % hosts != 0 )); then
  echo "split_hosts=$hosts does not divide the $ranks ranks into equal hosts" >&2
  exit 2
fi
rank=${OMPI_COMM_WORLD_RANK:-${PMI_RANK:-${PMIX_RANK:-0}}}
per=$(( ranks / hosts ))
host=$(( rank / per ))
# The GPUs as CUDA_VISIBLE_DEVICES gave them (or 0..ranks-1), this host's slice of them.
IFS=, read -r -a gpus <<< "${CUDA_VISIBLE_DEVICES:-$(seq -s, 0 $(( ranks - 1 )))}"
mine=("${gpus[@]:$(( host * per )):$per}")
CUDA_VISIBLE_DEVICES=$(IFS=,; echo "${mine[*]}")
export CUDA_VISIBLE_DEVICES FLAGCX_HOSTID=node$host NCCL_HOSTID=node$host
exec "$@"
