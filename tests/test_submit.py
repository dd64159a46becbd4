"""`cosmo submit`: local checks before anything is sent, what is sent (and what never is), how a job is
followed, and a whole submission of the tiny recipe to a real Ray head with token auth (slow)."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from cosmo.cli import main
from cosmo.config import ConfigError
from cosmo.submit import DEFAULT_ADDRESS, UPLOAD_EXCLUDES, auth_headers, prepare

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "configs" / "tiny-cpu.yaml"
SECRET_VALUE = "sk-do-not-ship-" + "x" * 16
SHARED = "logging.runs_dir=/checkpoints/runs"  # outputs must outlive the job's copy of the project


class FakeClient:
    """Stands in for ray.job_submission.JobSubmissionClient: records what would reach the cluster."""

    made: list[FakeClient] = []
    statuses: list[str] = ["PENDING", "RUNNING", "SUCCEEDED"]
    chunks: list[str] = ["[sft] step 1/4\n", "final model: /x\n"]
    message: str = ""

    def __init__(self, address=None, headers=None, **kwargs):
        self.address, self.headers = address, headers
        self.env_address = os.environ.get("RAY_ADDRESS")
        self.submitted: dict = {}
        self._statuses = list(self.statuses)
        FakeClient.made.append(self)

    def submit_job(self, *, entrypoint, submission_id, runtime_env, metadata):
        self.submitted = {"entrypoint": entrypoint, "submission_id": submission_id, "runtime_env": runtime_env,
                          "metadata": metadata}
        return submission_id

    def get_job_status(self, job_id):
        from ray.job_submission import JobStatus

        return JobStatus(self._statuses.pop(0) if len(self._statuses) > 1 else self._statuses[0])

    async def tail_job_logs(self, job_id):
        for chunk in self.chunks:
            yield chunk

    def get_job_logs(self, job_id):
        return "".join(self.chunks)

    def get_job_info(self, job_id):
        return SimpleNamespace(message=self.message)


@pytest.fixture
def fake_ray(monkeypatch):
    import ray.job_submission

    FakeClient.made = []
    monkeypatch.setattr(ray.job_submission, "JobSubmissionClient", FakeClient)
    monkeypatch.setattr("cosmo.submit.POLL_S", 0.01)
    for var in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "RAY_AUTH_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WANDB_API_KEY", SECRET_VALUE)
    return FakeClient


def run_cli(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_submit_has_help(capsys):
    code, out, _ = run_cli(["submit", "--help"], capsys)
    assert code == 0
    for word in ("--address", "--no-wait", "--job-id", "--env", "RAY_AUTH_TOKEN", "key=value"):
        assert word in out


def test_config_error_exits_2_before_contacting_the_cluster(fake_ray, capsys):
    code, _, err = run_cli(["submit", str(RECIPE), SHARED, "sft.stepz=3", "--address", "http://127.0.0.1:1"], capsys)
    assert code == 2
    assert "config error" in err and "sft.stepz" in err
    assert fake_ray.made == []


def test_secret_like_env_name_is_refused_and_its_value_never_shown(fake_ray, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", SECRET_VALUE)
    for name in ("WANDB_API_KEY", "HF_TOKEN"):
        code, out, err = run_cli(["submit", str(RECIPE), SHARED, "--env", name], capsys)
        assert code == 2
        assert name in err and "secret" in err and "Kubernetes Secret" in err
        assert SECRET_VALUE not in out + err
    assert fake_ray.made == []


def test_unset_env_name_is_refused(fake_ray, monkeypatch, capsys):
    monkeypatch.delenv("COSMO_NOT_SET_ANYWHERE", raising=False)
    code, _, err = run_cli(["submit", str(RECIPE), SHARED, "--env", "COSMO_NOT_SET_ANYWHERE"], capsys)
    assert code == 2 and "not set" in err
    assert fake_ray.made == []


def test_config_outside_the_project_is_refused(fake_ray, tmp_path, capsys):
    outside = tmp_path / "mine.yaml"
    shutil.copy(RECIPE, outside)
    code, _, err = run_cli(["submit", str(outside)], capsys)
    assert code == 2
    assert "outside the project directory" in err and str(ROOT) in err
    assert fake_ray.made == []


def test_upload_leaves_out_environments_outputs_and_weights_and_needs_the_config_in_it(tmp_path):
    root = tmp_path / "proj"
    for rel in ("pyproject.toml", "configs/a.yaml", "cosmo/cli.py", ".venv/lib/x.py", "runs/r/config.yaml",
                "runs/r/model.safetensors", "bench/w.safetensors", ".git/HEAD", "cosmo/__pycache__/c.pyc",
                "scratch/ignored.yaml"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(RECIPE.read_text() if rel.endswith(".yaml") else "x")
    (root / ".gitignore").write_text("scratch/\n")
    spec = prepare(root / "configs" / "a.yaml", ["sft.steps=3", SHARED], [], root=root)
    assert spec.upload_count == 4  # pyproject.toml, .gitignore, configs/a.yaml, cosmo/cli.py
    assert spec.runtime_env["working_dir"] == str(root)
    assert spec.runtime_env["excludes"] == list(UPLOAD_EXCLUDES)
    assert spec.entrypoint == ["python", "-m", "cosmo", "train", "configs/a.yaml", "sft.steps=3", SHARED,
                               "cluster.address=auto"]
    for excluded in ("runs/r/config.yaml", "scratch/ignored.yaml"):
        with pytest.raises(ConfigError, match="would not be uploaded"):
            prepare(root / excluded, [], [], root=root)


def _project(root: Path, files: tuple[str, ...] = (), gitignore: str = "") -> Path:
    """A project directory as `cosmo submit` uploads it, with the default recipe and extra files."""
    for rel in ("pyproject.toml", "configs/a.yaml", "cosmo/cli.py", *files):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(RECIPE.read_text() if rel.endswith(".yaml") else "x")
    (root / ".gitignore").write_text(gitignore)
    return root / "configs" / "a.yaml"


def _paths(recipe: Path, *overrides: str) -> dict[str, str]:
    spec = prepare(recipe, list(overrides), [], root=recipe.parents[1])
    return {use.key: use.line() for use in spec.paths}


def test_default_recipe_shows_what_the_job_builds_in_its_copy_and_where_it_writes(tmp_path):
    # model.path and data.dir are relative and under runs/ (never uploaded), with build_preset and
    # build_if_missing set: the job builds both inside its own copy; the run directory is on shared storage
    recipe = _project(tmp_path, files=("runs/assets/model-small/model.safetensors",))
    paths = _paths(recipe, SHARED)
    assert paths["model.path"] == ("reads  model.path=runs/assets/model-small: the job builds the tiny 'small' model "
                                   "there (model.build_preset), inside the job's copy of the project, deleted with "
                                   "it (your local copy is not uploaded)")
    assert "renders the built-in data set there (data.build_if_missing)" in paths["data.dir"]
    assert paths["logging.runs_dir"].startswith("writes logging.runs_dir=/checkpoints/runs: absolute")


def test_relative_model_without_build_preset_is_an_error_naming_the_key(tmp_path):
    recipe = _project(tmp_path, files=("runs/assets/model-small/model.safetensors",))
    with pytest.raises(ConfigError, match=r"model.path=runs/assets/model-small is relative and is not uploaded"):
        prepare(recipe, [SHARED, "model.build_preset=null"], [], root=tmp_path)
    with pytest.raises(ConfigError, match=r"model.path=nowhere/at/all is relative and does not exist"):
        prepare(recipe, [SHARED, "model.build_preset=null", "model.path=nowhere/at/all"], [], root=tmp_path)


def test_relative_run_directory_is_an_error_before_the_cluster_is_contacted(fake_ray, capsys):
    code, _, err = run_cli(["submit", str(RECIPE), "logging.runs_dir=runs", "--no-wait"], capsys)
    assert code == 2
    assert "logging.runs_dir=runs is relative" in err and "deletes" in err
    assert fake_ray.made == []


def test_every_bad_path_is_named_in_one_error(tmp_path):
    recipe = _project(tmp_path)
    with pytest.raises(ConfigError) as exc:
        prepare(recipe, ["model.build_preset=null", "data.build_if_missing=false"], [], root=tmp_path)
    assert [part.split("=")[0] for part in str(exc.value).split("; ")] == ["model.path", "data.dir",
                                                                          "logging.runs_dir"]


def test_uploaded_data_is_read_from_the_upload_and_ignored_data_is_refused(tmp_path):
    recipe = _project(tmp_path, files=("mydata/train.jsonl", "mydata/eval.jsonl", "private/train.jsonl"),
                      gitignore="private/\n")
    paths = _paths(recipe, SHARED, "data.dir=mydata", "data.build_if_missing=false")
    assert paths["data.dir"] == "reads  data.dir=mydata: uploaded with the project"
    with pytest.raises(ConfigError, match=r"data.dir=private is relative and is not uploaded"):
        prepare(recipe, [SHARED, "data.dir=private", "data.build_if_missing=false"], [], root=tmp_path)


def test_hub_ids_and_absolute_paths_are_the_clusters(tmp_path):
    recipe = _project(tmp_path)
    paths = _paths(recipe, SHARED, "model.path=Qwen/Qwen2.5-VL-3B-Instruct", "model.build_preset=null",
                   "data.dir=/checkpoints/data")
    assert "a hub id: the cluster downloads it" in paths["model.path"]
    assert paths["data.dir"].startswith("reads  data.dir=/checkpoints/data: absolute")


def test_submit_prints_the_paths_before_submitting(fake_ray, capsys):
    code, _, err = run_cli(["submit", str(RECIPE), SHARED, "--no-wait", "--job-id", "j6"], capsys)
    assert code == 0
    lines = [line for line in err.splitlines() if line.startswith("[submit]   ")]
    assert [line.split()[2].split("=")[0] for line in lines] == ["model.path", "data.dir", "logging.runs_dir"]
    assert err.index("logging.runs_dir=/checkpoints/runs") < err.index("uploading")


def test_submit_sends_named_variables_only_and_follows_the_job(fake_ray, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, out, err = run_cli(["submit", str(RECIPE), SHARED, "sft.steps=3", "train.stages=[sft,rl]",
                              "--env", "HF_HUB_OFFLINE",
                              "--job-id", "cosmo-test-1", "--address", "http://127.0.0.1:9999"], capsys)
    assert code == 0, err
    (client,) = fake_ray.made
    sent = client.submitted
    assert client.address == "http://127.0.0.1:9999"
    assert sent["submission_id"] == "cosmo-test-1"
    # quoted for the shell the job runs in: the brackets would otherwise be a glob
    assert sent["entrypoint"] == ("python -m cosmo train configs/tiny-cpu.yaml logging.runs_dir=/checkpoints/runs "
                                  "sft.steps=3 'train.stages=[sft,rl]' cluster.address=auto")
    assert sent["runtime_env"]["env_vars"] == {"PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
    assert sent["runtime_env"]["working_dir"] == str(ROOT)
    assert sent["metadata"] == {"cosmo_config": "configs/tiny-cpu.yaml", "cosmo_run_name": "tiny-cpu"}
    assert SECRET_VALUE not in json.dumps(sent) + out + err
    assert out.splitlines()[0] == "cosmo-test-1"  # the job id first, on stdout
    assert "[sft] step 1/4" in out and "final model: /x" in out  # the job's log, streamed
    for word in ("PENDING", "RUNNING", "SUCCEEDED", "HF_HUB_OFFLINE", "values not shown", "logging.runs_dir"):
        assert word in err


def test_failed_job_exits_1_with_its_message_and_last_lines(fake_ray, monkeypatch, capsys):
    monkeypatch.setattr(FakeClient, "statuses", ["RUNNING", "FAILED"])
    monkeypatch.setattr(FakeClient, "chunks", [f"line {i}\n" for i in range(50)] + ["ValueError: boom\n"])
    monkeypatch.setattr(FakeClient, "message", "Job entrypoint command failed with exit code 1, last logs:\nline 0")
    code, _, err = run_cli(["submit", str(RECIPE), SHARED, "--job-id", "j2"], capsys)
    assert code == 1
    assert "j2 FAILED" in err and "exit code 1" in err
    tail = err.split("last 30 log lines:")[1]
    assert "ValueError: boom" in tail and "line 21" in tail and "line 20\n" not in tail


def test_following_survives_a_few_failed_status_polls(fake_ray, monkeypatch, capsys):
    real = FakeClient.get_job_status
    failures = iter([True, True])

    def flaky(self, job_id):
        if next(failures, False):
            raise ConnectionError("port-forward dropped")
        return real(self, job_id)

    monkeypatch.setattr(FakeClient, "get_job_status", flaky)
    code, _, err = run_cli(["submit", str(RECIPE), SHARED, "--job-id", "j4"], capsys)
    assert code == 0 and err.count("port-forward dropped") == 2 and "j4 SUCCEEDED" in err

    monkeypatch.setattr("cosmo.submit.MAX_POLL_FAILURES", 1)
    failures = iter([True, True])
    code, _, err = run_cli(["submit", str(RECIPE), SHARED, "--job-id", "j5"], capsys)
    assert code == 1 and "lost contact" in err and "ray job status j5" in err and "Traceback" not in err


def test_no_wait_prints_the_id_and_returns(fake_ray, capsys):
    code, out, err = run_cli(["submit", str(RECIPE), SHARED, "--no-wait", "--job-id", "j3"], capsys)
    assert code == 0 and out.strip() == "j3"
    assert "ray job logs -f j3" in err
    assert fake_ray.made[0]._statuses == list(FakeClient.statuses)  # never polled


def test_address_comes_from_the_flag_then_ray_address_then_the_local_head(fake_ray, monkeypatch, capsys):
    run_cli(["submit", str(RECIPE), SHARED, "--no-wait"], capsys)
    monkeypatch.setenv("RAY_ADDRESS", "http://head:8265")
    run_cli(["submit", str(RECIPE), SHARED, "--no-wait"], capsys)
    run_cli(["submit", str(RECIPE), SHARED, "--no-wait", "--address", "http://other:8265"], capsys)
    assert [c.address for c in fake_ray.made] == [DEFAULT_ADDRESS, "http://head:8265", "http://other:8265"]
    # Ray's client lets RAY_ADDRESS override its argument: it is hidden while an --address client is made
    assert fake_ray.made[2].env_address is None and os.environ["RAY_ADDRESS"] == "http://head:8265"


def test_auth_token_is_sent_when_ray_would_not_send_it(monkeypatch):
    monkeypatch.setenv("RAY_AUTH_TOKEN", "t0k")
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    assert auth_headers() == {"Authorization": "Bearer t0k"}
    monkeypatch.setenv("RAY_AUTH_MODE", "token")  # Ray's client adds it itself
    assert auth_headers() == {}
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    assert auth_headers() == {}


def test_refused_auth_is_one_line_naming_the_token(fake_ray, monkeypatch, capsys):
    from ray.exceptions import AuthenticationError

    def refuse(self, *args, **kwargs):
        raise AuthenticationError("Authentication required: Unauthorized: Missing authentication token\n\nmore")

    monkeypatch.setattr(FakeClient, "__init__", refuse)
    code, _, err = run_cli(["submit", str(RECIPE), SHARED], capsys)
    assert code == 1
    assert "RAY_AUTH_TOKEN" in err and "Missing authentication token" in err and "Traceback" not in err


# --- a real head: `ray start` in this loopback-only namespace, token auth on as in deploy/kuberay ---


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _session_pids(sid: int) -> list[int]:
    """Live processes of session `sid`; zombies are reaped where they are ours (under deploy/loopback.sh
    pytest is the namespace's init, so the head's orphans end up as its children)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, _, _, session = stat[stat.rindex(")") + 2:].split()[:4]  # after "pid (comm) "
        if int(session) != sid:
            continue
        if state == "Z":
            with contextlib.suppress(ChildProcessError):
                os.waitpid(int(entry.name), os.WNOHANG)
            continue
        pids.append(int(entry.name))
    return pids


def _kill_session(sid: int) -> None:
    """Ends the head's processes (all in the session its `ray start` opened) and nothing else:
    `ray stop` would also end any other Ray of this test run, and outside a namespace other users' Ray."""
    for sig, grace in ((signal.SIGTERM, 5), (signal.SIGKILL, 10)):
        for pid in _session_pids(sid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while _session_pids(sid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not _session_pids(sid):
            return


@pytest.fixture(scope="module")
def ray_head():
    """A 2-CPU head started with `ray start` (job API on), on ports of its own, with token auth."""
    if "COSMO_LOOPBACK" not in os.environ:
        pytest.fail("this test starts a Ray head: run it through deploy/loopback.sh (as `make test` does): "
                    "deploy/loopback.sh .venv/bin/python -m pytest tests/test_submit.py")
    bin_dir = Path(sys.executable).parent
    temp_dir = tempfile.mkdtemp(prefix="cosmo-ray-", dir="/tmp")  # short: Ray's socket paths live here
    gcs, dashboard, agent, agent_grpc, runtime_env_agent, client, metrics = _free_ports(7)
    token = secrets.token_hex(32)
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token,
           "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}  # the job's `python` is this venv's
    env.pop("RAY_ADDRESS", None)
    cmd = [str(bin_dir / "ray"), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={gcs}",
           "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
           f"--dashboard-agent-listen-port={agent}", f"--dashboard-agent-grpc-port={agent_grpc}",
           f"--runtime-env-agent-port={runtime_env_agent}", f"--ray-client-server-port={client}",
           f"--metrics-export-port={metrics}", "--num-cpus=2", f"--temp-dir={temp_dir}", "--disable-usage-stats"]
    log = Path(temp_dir) / "ray-start.log"
    started = time.monotonic()
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        rc = proc.wait(timeout=180)
        assert rc == 0, f"ray start failed ({rc}):\n{log.read_text()[-4000:]}"
        print(f"ray head up in {time.monotonic() - started:.1f} s", file=sys.stderr)
        yield SimpleNamespace(address=f"http://127.0.0.1:{dashboard}", token=token, env=env)
    finally:
        _kill_session(proc.pid)
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.parametrize("token", [None, "0" * 64], ids=["no-token", "wrong-token"])
def test_cluster_with_token_auth_refuses_a_missing_or_wrong_token(ray_head, token, monkeypatch, capsys):
    # In-process, RAY_AUTH_MODE unset: the token travels in the header cosmo submit adds itself (the
    # whole run below goes through Ray's own RAY_AUTH_MODE=token path).
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    if token:
        monkeypatch.setenv("RAY_AUTH_TOKEN", token)
    else:
        monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    code, out, err = run_cli(["submit", str(RECIPE), SHARED, "--address", ray_head.address, "--no-wait"], capsys)
    assert code == 1, err
    assert "refused" in err and "RAY_AUTH_TOKEN" in err and "Traceback" not in err
    assert out == "" and ray_head.token not in err


@pytest.mark.slow
def test_submit_runs_the_tiny_recipe_as_a_job(ray_head, tiny_model, builtin_data, tmp_path):
    from ray.job_submission import JobStatus, JobSubmissionClient

    runs = tmp_path / "runs"
    job_id = f"cosmo-test-{secrets.token_hex(3)}"
    overrides = [f"model.path={tiny_model}", "model.build_preset=null", f"data.dir={builtin_data['train'].parent}",
                 "data.rl_per_task=0",
                 f"logging.runs_dir={runs}", "logging.run_name=job", "logging.log_every=2",
                 "sft.steps=4", "sft.warmup_steps=1", "sft.global_batch_size=8", "sft.micro_batch_size=4",
                 "train.stages=[sft,rl]", "rl.steps=2", "rl.prompts_per_step=2", "algorithm.group_size=4",
                 "rl.micro_batch_size=4", "rollout.max_new_tokens=8", "checkpoint.keep_last=1",
                 "eval.max_rows_per_task=2", "eval.max_new_tokens=8", "logging.wandb_mode=disabled",
                 # one of each actor: this test is about the submission; test_driver.py covers the 2-rank run
                 "learner.num_ranks=1", "rollout.num_actors=1", "reward.num_workers=1"]
    env = {**ray_head.env, "COSMO_SUBMIT_TEST_VAR": "forwarded", "WANDB_API_KEY": SECRET_VALUE,
           "HF_HUB_OFFLINE": "1"}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "cosmo", "submit", str(RECIPE), *overrides,
                           "--address", ray_head.address, "--job-id", job_id,
                           "--env", "COSMO_SUBMIT_TEST_VAR", "--env", "HF_HUB_OFFLINE"],
                          capture_output=True, text=True, timeout=540, env=env, cwd=tmp_path)
    print(f"cosmo submit: exit {proc.returncode} after {time.monotonic() - started:.1f} s", file=sys.stderr)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.splitlines()[0] == job_id
    assert "[sft] step 4/4" in proc.stdout and "[rl] step 2/2" in proc.stdout  # the job's log, streamed
    assert f"job {job_id} SUCCEEDED" in proc.stderr
    assert SECRET_VALUE not in proc.stdout + proc.stderr and ray_head.token not in proc.stdout + proc.stderr

    client = JobSubmissionClient(ray_head.address, headers={"Authorization": f"Bearer {ray_head.token}"})
    assert client.get_job_status(job_id) == JobStatus.SUCCEEDED
    info = client.get_job_info(job_id)
    assert info.runtime_env["env_vars"] == {"PYTHONUNBUFFERED": "1", "COSMO_SUBMIT_TEST_VAR": "forwarded",
                                            "HF_HUB_OFFLINE": "1"}
    assert SECRET_VALUE not in json.dumps(info.runtime_env) + info.entrypoint
    assert info.entrypoint.endswith("cluster.address=auto")

    run = runs / "job"
    assert "sft:\n  steps: 4" in (run / "config.yaml").read_text()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["stage"] == "sft"] == [1, 2, 3, 4]
    assert [r["step"] for r in records if r["stage"] == "rl"] == [1, 2]
    assert sorted(p.name for p in (run / "checkpoints" / "sft").iterdir()) == ["step_4"]
    assert sorted(p.name for p in (run / "checkpoints" / "rl").iterdir()) == ["step_2"]
    assert (run / "checkpoints" / "rl" / "step_2" / "config.json").is_file()
