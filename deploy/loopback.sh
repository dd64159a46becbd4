#!/usr/bin/env bash
# Run a command inside a loopback-only network namespace, so that every listener Ray, vLLM and
# torch.distributed open ends up on 127.0.0.1 and every process dies with the command.
#   deploy/loopback.sh CMD [ARGS...]
# Falls back to a plain run, with a warning, where unshare is not permitted (non-root, containers
# without CAP_SYS_ADMIN). Set COSMO_NO_NETNS=1 to skip the namespace on purpose.
set -euo pipefail

if [ "${COSMO_NO_NETNS:-0}" != 1 ] && unshare --net --pid --fork --mount-proc true 2>/dev/null; then
    export COSMO_LOOPBACK=1
    exec unshare --net --pid --fork --mount-proc bash -c 'ip link set lo up && exec "$@"' loopback "$@"
fi
export COSMO_LOOPBACK=0
echo "[loopback] WARNING: cannot create a loopback-only network namespace here; running without it." \
     "Ray may bind non-loopback interfaces." >&2
exec "$@"
