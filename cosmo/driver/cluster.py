"""The Ray session of a run: a fresh local cluster, or a named one joined within a bounded time.

Ray's own `ray.init()` without an address joins whatever `/tmp/ray/ray_current_cluster` names, and
keeps retrying a dead address for minutes; a crashed `ray start --head` would then wedge every later
run. So the driver decides the address itself and checks that a named one answers before joining.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import ray

from cosmo import logs
from cosmo.config import ClusterConfig

log = logging.getLogger("cosmo")

RAY_CURRENT_CLUSTER = Path("/tmp/ray/ray_current_cluster")  # where `ray start --head` writes its address


class ClusterError(RuntimeError):
    """The named Ray cluster cannot be reached; the message names the address and what to check."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that every `finally` runs (actors stopped, files closed)."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(f"received signal {signum}")


def handle_sigterm() -> None:
    """End the run on SIGTERM as on Ctrl-C (Ray's driver handler calls sys.exit, which a retry loop may
    swallow); called before and again after `ray.init`, which installs its own."""
    signal.signal(signal.SIGTERM, _raise_terminated)


def resolve_address(cluster: ClusterConfig) -> str | None:
    """The address to join, or None to start a fresh local cluster. `auto` resolves as Ray does
    (RAY_ADDRESS, else the address file of a `ray start --head` on this machine)."""
    address = cluster.address or os.environ.get("RAY_ADDRESS") or None
    if address == "auto":
        address = os.environ.get("RAY_ADDRESS")
        if not address and RAY_CURRENT_CLUSTER.is_file():
            address = RAY_CURRENT_CLUSTER.read_text().strip()
        if not address:
            raise ClusterError("cluster.address=auto: no Ray cluster to join (RAY_ADDRESS is unset and no "
                               f"{RAY_CURRENT_CLUSTER}); start one with `ray start --head` or set cluster.address")
    return address


def wait_reachable(address: str, timeout_s: float) -> None:
    """Return once the cluster's head accepts a TCP connection; past `timeout_s`, a ClusterError."""
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(f"cluster.address={address!r}: expected host:port, ray://host:port or auto")
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=min(5.0, max(0.1, timeout_s))):
                return
        except OSError as exc:
            if time.monotonic() >= deadline:
                raise ClusterError(f"cannot reach the Ray cluster at {address} within cluster.connect_timeout_s="
                                   f"{timeout_s:g} s ({exc.strerror or exc}); check that its head is running "
                                   "(`ray status`), or set cluster.address=null for a local cluster") from None
            time.sleep(0.5)


@contextlib.contextmanager
def ray_session(cluster: ClusterConfig) -> Iterator[None]:
    """Join the named cluster (cluster.address, or RAY_ADDRESS under `ray job submit`), else start a
    fresh local one; shut down at the end."""
    if ray.is_initialized():
        yield
        return
    address = resolve_address(cluster)
    # every worker filters library noise as the driver does, and gets the log level (cosmo.logs)
    kwargs: dict = {"namespace": cluster.namespace, "log_to_driver": True, "runtime_env": logs.ray_runtime_env()}
    if address:
        wait_reachable(address, cluster.connect_timeout_s)
        kwargs["address"] = address
    else:  # "local": always a new cluster, never one an earlier `ray start` left behind
        kwargs.update(address="local", num_cpus=cluster.num_cpus, include_dashboard=False,
                      _node_ip_address="127.0.0.1")
    started = time.perf_counter()
    ray.init(**kwargs)
    handle_sigterm()
    log.info("Ray ready in %.1f s: %s", time.perf_counter() - started, ray.cluster_resources())
    try:
        yield
    finally:
        ray.shutdown()
