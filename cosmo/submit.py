"""`cosmo submit`: run a recipe as a Ray job on a running cluster, from this source tree.

It wraps Ray's job API (`ray.job_submission.JobSubmissionClient`) so that a bad job fails here,
before anything is uploaded, rather than on the cluster: the recipe and its overrides are validated
locally, the config must be part of what is uploaded, and only named, non-secret variables travel
in the job's runtime_env (which anyone with dashboard access can read). Secrets belong in the
cluster's own environment (a Kubernetes Secret on the Ray pods, docs/cluster.md).

The job runs `python -m cosmo train CONFIG overrides... cluster.address=auto` in an uploaded copy
of the project directory, on the cluster's Python environment.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import re
import secrets
import shlex
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from cosmo.config import ConfigError, CosmoConfig, load_config
from cosmo.submit_paths import PathUse, job_paths

DEFAULT_ADDRESS = "http://127.0.0.1:8265"
"""The job API of a local head (`ray start --head --include-dashboard=true`)."""

UPLOAD_EXCLUDES = (
    "/.git", "/.venv", "/venv", "/runs", "/wandb", "/build", "/dist", "*.egg-info",
    "__pycache__", "*.pyc", ".pytest_cache", ".ruff_cache", ".mypy_cache",
    "*.safetensors", "*.gguf", "*.pt", "*.pth", "*.ckpt",
)
"""gitignore-style patterns (relative to the project directory) left out of the upload, on top of
.gitignore and .rayignore: environments, run outputs, caches and weights. Anchored, slash-free
patterns let Ray skip a whole directory without walking it (.gitignore's `runs/` does not)."""

SECRET_MARKERS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL")
"""`--env` refuses names containing one of these: their values would sit in the job's runtime_env."""

JOB_ENV = {"PYTHONUNBUFFERED": "1"}
"""Set in every job so that its log reaches `cosmo submit` as it is written."""

POLL_S = 5.0
"""Seconds between status polls while following a job."""

MAX_POLL_FAILURES = 12
"""Consecutive failed status polls (one every poll_s) before `cosmo submit` gives up following a job."""

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ADDRESS_VARS = ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS")


class SubmitError(RuntimeError):
    """The cluster cannot be reached, refuses the job, or the project cannot be uploaded: one line."""


def _env_name_problem(name: str) -> str | None:
    if not _ENV_NAME.match(name):
        return f"{name}: not an environment variable name"
    if any(marker in name.upper() for marker in SECRET_MARKERS):
        return (f"{name} looks like a secret, and --env copies its value into the job's runtime_env, which the "
                "Ray dashboard shows: give secrets to the cluster instead (a Kubernetes Secret on the Ray pods, "
                "docs/cluster.md)")
    if name not in os.environ:
        return f"{name} is not set in this environment"
    return None


def check_env_name(name: str) -> str:
    """A set, non-secret variable name for `--env`: its value is copied into the job's runtime_env."""
    problem = _env_name_problem(name)
    if problem:
        raise SubmitError(f"--env {problem}")
    return name


def env_name(name: str) -> str:
    """argparse type of `--env`: a bad name is a usage error (exit 2), reported before anything runs."""
    problem = _env_name_problem(name)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return name


def project_root() -> Path:
    """The source checkout this `cosmo` runs from: what the job uploads and runs."""
    root = Path(__file__).resolve().parents[1]
    if not (root / "pyproject.toml").is_file() or not (root / "cosmo" / "cli.py").is_file():
        raise SubmitError(f"cosmo is installed in {root}, not in a source checkout: `cosmo submit` uploads the "
                          "project directory, so run it from a checkout installed with `pip install -e .`")
    return root


def resolve_address(address: str | None) -> str:
    """--address, else RAY_API_SERVER_ADDRESS or RAY_ADDRESS (as Ray reads them), else the local head."""
    if address:
        return address
    for var in _ADDRESS_VARS:
        if os.environ.get(var):
            return os.environ[var]
    return DEFAULT_ADDRESS


def auth_headers() -> dict[str, str]:
    """The bearer token for a cluster with token auth, when Ray would not add it itself.

    With RAY_AUTH_MODE=token Ray's client sends the token (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or
    ~/.ray/auth_token) on its own; with RAY_AUTH_MODE unset it sends nothing, so a RAY_AUTH_TOKEN
    exported alone is passed here. RAY_AUTH_MODE=disabled sends none.
    """
    mode = os.environ.get("RAY_AUTH_MODE", "").strip().lower()
    token = os.environ.get("RAY_AUTH_TOKEN", "").strip()
    if not mode and token:
        return {"Authorization": f"Bearer {token}"}
    return {}


def upload_files(root: Path, excludes: tuple[str, ...] = UPLOAD_EXCLUDES) -> list[Path]:
    """The files Ray will upload as the job's working_dir (relative to root), by Ray's own rules."""
    from ray._private.ray_constants import get_runtime_env_default_excludes  # noqa: PLC0415 - Ray: only when submitting
    from ray._private.runtime_env.packaging import _dir_travel, _get_excludes  # noqa: PLC0415 - Ray: only when submitting

    patterns = [*get_runtime_env_default_excludes(), *excludes]  # Ray adds its defaults (.git, .venv, ...)
    quiet = logging.getLogger("cosmo.submit.scan")
    quiet.setLevel(logging.WARNING)
    files: list[Path] = []

    def add(path: Path) -> None:
        if path.is_file():
            files.append(path.relative_to(root))

    include_gitignore = os.environ.get("RAY_RUNTIME_ENV_IGNORE_GITIGNORE", "0") != "1"
    _dir_travel(root, [_get_excludes(root, patterns)], add, include_gitignore=include_gitignore, logger=quiet)
    return sorted(files)


@dataclass
class JobSpec:
    """Everything sent to the cluster; built and checked without contacting it."""

    job_id: str
    entrypoint: list[str]
    runtime_env: dict[str, Any]
    metadata: dict[str, str]
    upload_count: int
    upload_bytes: int
    paths: list[PathUse] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def command(self) -> str:
        return shlex.join(self.entrypoint)


def prepare(config: str | Path, overrides: list[str], env_names: list[str], job_id: str | None = None,
            root: Path | None = None) -> JobSpec:
    """Validate the recipe with its overrides and build the job; raises ConfigError before any upload."""
    cfg = load_config(config, overrides)
    root = root or project_root()
    path = Path(config).resolve()
    try:
        rel = path.relative_to(root)
    except ValueError:
        raise ConfigError(f"{config} is outside the project directory {root}, which is what the job uploads: "
                          "put the recipe under it (e.g. configs/) or pass changes as key=value overrides") from None
    files = upload_files(root)
    if rel not in files:
        raise ConfigError(f"{config} would not be uploaded: it is excluded by .gitignore/.rayignore or by "
                          f"cosmo submit's excludes ({', '.join(UPLOAD_EXCLUDES)}); move it, e.g. to configs/")
    paths = job_paths(cfg, root, set(files))
    entrypoint = ["python", "-m", "cosmo", "train", rel.as_posix(), *overrides]
    notes = []
    if cfg.cluster.address is None:
        # Join the cluster the job runs on: RAY_ADDRESS is set for the job's driver.
        entrypoint.append("cluster.address=auto")
    if cfg.logging.wandb_mode == "online":
        notes.append("logging.wandb_mode=online: WANDB_API_KEY must be in the cluster's environment "
                     "(Kubernetes Secret), it is not sent from here")
    judge_token = getattr(getattr(cfg.reward, "http_judge", None), "token_env", None)
    if judge_token:
        notes.append(f"reward.http_judge.token_env={judge_token}: {judge_token} must be in the cluster's "
                     "environment (Kubernetes Secret), it is not sent from here")
    env_vars = dict(JOB_ENV)
    for name in env_names:
        check_env_name(name)  # argparse checked it already; callers from Python get the same refusal
        env_vars[name] = os.environ[name]
    job_id = job_id or _default_job_id(cfg)
    sizes = sum((root / f).stat().st_size for f in files)
    return JobSpec(job_id=job_id, entrypoint=entrypoint,
                   runtime_env={"working_dir": str(root), "excludes": list(UPLOAD_EXCLUDES), "env_vars": env_vars},
                   metadata={"cosmo_config": rel.as_posix(), "cosmo_run_name": cfg.logging.run_name},
                   upload_count=len(files), upload_bytes=sizes, paths=paths, notes=notes)


def _default_job_id(cfg: CosmoConfig) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", cfg.logging.run_name).strip("-") or "run"
    return f"cosmo-{name}-{stamp}-{secrets.token_hex(2)}"


@contextlib.contextmanager
def _address_env_cleared(explicit: bool) -> Iterator[None]:
    """Ray's client lets RAY_ADDRESS override its address argument; --address must win."""
    saved = {var: os.environ.pop(var) for var in _ADDRESS_VARS if explicit and var in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def connect(address: str, explicit: bool) -> Any:
    """A JobSubmissionClient for the cluster at `address`, with Ray's errors turned into one line."""
    from ray.exceptions import AuthenticationError  # noqa: PLC0415 - Ray: only when submitting
    from ray.job_submission import JobSubmissionClient  # noqa: PLC0415 - Ray: only when submitting

    _quiet_ray_client_logs()
    try:
        with _address_env_cleared(explicit):
            return JobSubmissionClient(address, headers=auth_headers() or None)
    except AuthenticationError as exc:
        raise SubmitError(_auth_message(address, exc)) from None
    except ConnectionError:
        raise SubmitError(f"cannot reach the Ray job API at {address}: is the cluster up with its dashboard "
                          "(ray start --head --include-dashboard=true) and the port forwarded? "
                          "(--address or RAY_ADDRESS)") from None
    except (RuntimeError, ValueError) as exc:  # e.g. a malformed address, or not a Ray dashboard
        raise SubmitError(f"cannot use the Ray job API at {address}: {_one_line(exc)}") from None


def _quiet_ray_client_logs() -> None:
    """Ray's client logs every packaging step at INFO (and warns about its own default excludes):
    `cosmo submit` prints its own one-line summary instead."""
    for name in ("ray.dashboard.modules.dashboard_sdk", "ray.dashboard.modules.job.sdk",
                 "ray._private.runtime_env.packaging"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("ray._private.runtime_env.working_dir").setLevel(logging.ERROR)


def _auth_message(address: str, exc: Exception) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return (f"the cluster at {address} refused the request ({first}): export RAY_AUTH_MODE=token and "
            "RAY_AUTH_TOKEN=<the cluster's token> (docs/cluster.md, 'Ray token auth')")


def submit(config: str | Path, overrides: list[str], *, address: str | None = None, wait: bool = True,
           job_id: str | None = None, env_names: list[str] | tuple[str, ...] = (), poll_s: float | None = None,
           heartbeat_s: float = 60.0, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Submit the recipe as a Ray job; print its id (stdout) and, when waiting, its log until it ends.

    Returns the exit status: 0 when submitted (--no-wait) or SUCCEEDED, 1 when FAILED or STOPPED.
    """
    from ray.exceptions import AuthenticationError  # noqa: PLC0415 - Ray: only when submitting

    out, err = out or sys.stdout, err or sys.stderr
    spec = prepare(config, list(overrides), list(env_names), job_id)
    target = resolve_address(address)
    print("[submit] paths of the job (a relative one resolves in its copy of the project on the cluster):", file=err)
    for use in spec.paths:
        print(f"[submit]   {use.line()}", file=err)
    for note in spec.notes:
        print(f"[submit] note: {note}", file=err)
    client = connect(target, explicit=bool(address))
    shown_env = ", ".join(sorted(spec.runtime_env["env_vars"]))
    print(f"[submit] uploading {spec.runtime_env['working_dir']} ({spec.upload_count} files, "
          f"{spec.upload_bytes / 2**20:.1f} MiB) to {target}; job env: {shown_env} (values not shown)", file=err)
    started = time.monotonic()
    try:
        submitted = client.submit_job(entrypoint=spec.command, submission_id=spec.job_id,
                                      runtime_env=spec.runtime_env, metadata=spec.metadata)
    except AuthenticationError as exc:
        raise SubmitError(_auth_message(target, exc)) from None
    except (RuntimeError, ValueError) as exc:
        raise SubmitError(f"the cluster at {target} did not accept the job: {_one_line(exc)}") from None
    print(f"[submit] submitted in {time.monotonic() - started:.1f} s: {spec.command}", file=err)
    print(submitted, file=out, flush=True)
    follow_hint = f"ray job logs -f {submitted} --address {target}; stop it with ray job stop {submitted}"
    if not wait:
        print(f"[submit] not waiting; follow it with: {follow_hint}", file=err)
        return 0
    try:
        return follow(client, submitted, poll_s=poll_s, heartbeat_s=heartbeat_s, out=out, err=err)
    except KeyboardInterrupt:
        print(f"\n[submit] stopped following; job {submitted} keeps running ({follow_hint})", file=err)
        raise


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:500] or type(exc).__name__


def follow(client: Any, job_id: str, *, poll_s: float | None = None, heartbeat_s: float = 60.0,
           out: TextIO | None = None, err: TextIO | None = None, tail_lines: int = 30) -> int:
    """Stream the job's log and report its status until it ends; 0 on SUCCEEDED, else 1 with its last lines."""
    out, err = out or sys.stdout, err or sys.stderr
    started = time.monotonic()
    status = asyncio.run(_follow(client, job_id, poll_s or POLL_S, heartbeat_s, out, err, started))
    elapsed = _duration(time.monotonic() - started)
    if str(status) == "SUCCEEDED":
        print(f"[submit] job {job_id} SUCCEEDED after {elapsed}", file=err)
        return 0
    message = ""
    with contextlib.suppress(Exception):  # its first line; the rest repeats the log
        message = (client.get_job_info(job_id).message or "").strip().splitlines()[0]
        message = message.split(", last available logs")[0]
    lines = []
    with contextlib.suppress(Exception):
        lines = client.get_job_logs(job_id).splitlines()[-tail_lines:]
    print(f"[submit] job {job_id} {status} after {elapsed}" + (f": {message}" if message else ""), file=err)
    if lines:
        print(f"[submit] last {len(lines)} log lines:\n" + "\n".join(lines), file=err)
    return 1


async def _follow(client: Any, job_id: str, poll_s: float, heartbeat_s: float, out: TextIO, err: TextIO,
                  started: float) -> Any:
    loop = asyncio.get_running_loop()
    last_output = time.monotonic()

    async def tail() -> None:
        nonlocal last_output
        async for chunk in client.tail_job_logs(job_id):
            out.write(chunk)
            out.flush()
            last_output = time.monotonic()

    tail_task = asyncio.create_task(tail())
    status = None
    tail_reported = False
    failures = 0
    while True:
        try:
            new = await loop.run_in_executor(None, client.get_job_status, job_id)
            failures = 0
        except Exception as exc:  # a dropped port-forward or a restarting head: retry for a while
            failures += 1
            if failures > MAX_POLL_FAILURES:
                raise SubmitError(f"lost contact with the cluster ({_one_line(exc)}); job {job_id} may still be "
                                  f"running: ray job status {job_id}") from None
            print(f"[submit] cannot get the job's status ({_one_line(exc)}); retrying", file=err, flush=True)
            await asyncio.sleep(poll_s)
            continue
        if new != status:
            print(f"[submit] job {job_id} {new} ({_duration(time.monotonic() - started)})", file=err, flush=True)
            status = new
        if status.is_terminal():
            break
        if tail_task.done() and not tail_reported:
            tail_reported = True
            exc = tail_task.exception()
            if exc is not None:
                print(f"[submit] log stream lost ({_one_line(exc)}); still polling the job's status", file=err)
        if time.monotonic() - last_output >= heartbeat_s:
            print(f"[submit] job {job_id} {status}, no new log lines for {_duration(heartbeat_s)} "
                  f"({_duration(time.monotonic() - started)} in all)", file=err, flush=True)
            last_output = time.monotonic()
        if tail_task.done():
            await asyncio.sleep(poll_s)
        else:
            await asyncio.wait({tail_task}, timeout=poll_s)  # wakes early when the stream ends with the job
    # The server closes the stream once the job has ended; give it a moment to deliver the last lines.
    with contextlib.suppress(Exception):
        await asyncio.wait_for(tail_task, timeout=10)
    if not tail_task.done():
        tail_task.cancel()
        with contextlib.suppress(BaseException):
            await tail_task
    return status


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
