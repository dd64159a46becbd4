"""Deploy files, checked offline: every kustomization under deploy/kuberay renders with `kubectl kustomize`
and validates against the KubeRay CRDs (unknown fields rejected, as the API server's strict field
validation does) and, for pod templates and core objects, against Kubernetes' own schemas; the
manifests keep the promises of docs/cluster.md (secrets only by reference, GPUs on workers only,
token auth on, a recipe that loads and fits the cluster); the Dockerfiles' static properties hold.
Nothing here needs a cluster, Docker or network.
"""

from __future__ import annotations

import copy
import functools
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from cosmo.config import load_config, to_yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
KUBERAY = ROOT / "deploy" / "kuberay"
# The KubeRay CRDs live in the workplace's shared/ folder: beside the checkout, inside it, or at
# /work/shared (a clone elsewhere, e.g. in /tmp); COSMO_KUBERAY_CRDS overrides for other layouts.
_CRD_PLACES = [ROOT.parent / "shared" / "kuberay", ROOT / "shared" / "kuberay", Path("/work/shared/kuberay")]
CRD_DIR = Path(os.environ.get("COSMO_KUBERAY_CRDS") or next((p for p in _CRD_PLACES if p.is_dir()), _CRD_PLACES[0]))
K8S_VERSION = "1.32"  # the kubectl on the machine image; kubernetes-validate ships its schemas
KUSTOMIZATIONS = sorted(p.parent.relative_to(KUBERAY).as_posix() for p in KUBERAY.rglob("kustomization.yaml"))
JOB_KUSTOMIZATIONS = ["base"] + [k for k in KUSTOMIZATIONS if k.startswith("overlays/")]
SECRET_ENV = {"WANDB_API_KEY", "HF_TOKEN"}
GPU = "nvidia.com/gpu"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


# ---------------------------------------------------------------- rendering and schemas


@functools.cache
def _kubectl() -> str:
    path = shutil.which("kubectl") or ("/usr/bin/kubectl" if Path("/usr/bin/kubectl").is_file() else None)
    if path is None:
        pytest.fail("kubectl not found: the deploy tests render deploy/kuberay with `kubectl kustomize` "
                    "(offline, no cluster needed); install kubectl >= 1.27")
    return path


@functools.cache
def _render(kustomization: str) -> tuple[dict, ...]:
    proc = subprocess.run([_kubectl(), "kustomize", str(KUBERAY / kustomization)],
                          capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        pytest.fail(f"kubectl kustomize deploy/kuberay/{kustomization} failed:\n{proc.stderr}")
    return tuple(doc for doc in yaml.safe_load_all(proc.stdout) if doc)


def rendered(kustomization: str) -> list[dict]:
    """The objects of one kustomization (a fresh copy: tests may mutate it)."""
    return copy.deepcopy(list(_render(kustomization)))


def _strict(schema: dict) -> dict:
    """Reject unknown fields wherever the schema lists `properties` (and does not preserve unknown fields)."""
    if isinstance(schema, dict):
        for value in schema.values():
            _strict(value)
        if ("properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            schema["additionalProperties"] = False
    elif isinstance(schema, list):
        for value in schema:
            _strict(value)
    return schema


@functools.cache
def _crd_validator(kind: str) -> jsonschema.protocols.Validator:
    path = CRD_DIR / f"ray.io_{kind.lower()}s.yaml"
    if not path.is_file():
        pytest.fail(f"KubeRay CRD {path} not found: the deploy tests validate against shared/kuberay (looked in "
                    f"{', '.join(map(str, _CRD_PLACES))}; or set COSMO_KUBERAY_CRDS to a directory holding "
                    "ray.io_*.yaml)")
    with path.open() as f:
        crd = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return jsonschema.Draft7Validator(_strict(version["schema"]["openAPIV3Schema"]))


def _where(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "<root>"


def crd_errors(doc: dict) -> list[str]:
    validator = _crd_validator(doc["kind"])
    return [f"{_where(e)}: {e.message}" for e in validator.iter_errors(doc)]


def cluster_spec(doc: dict) -> dict:
    return doc["spec"]["rayClusterSpec"] if doc["kind"] == "RayJob" else doc["spec"]


def ray_groups(doc: dict) -> list[tuple[str, dict]]:
    """(name, group spec) of the head group and each worker group."""
    spec = cluster_spec(doc)
    return [("head", spec["headGroupSpec"])] + [(g["groupName"], g) for g in spec.get("workerGroupSpecs", [])]


def ray_container(group: dict) -> dict:
    return group["template"]["spec"]["containers"][0]  # KubeRay runs Ray in the first container


def pod_templates(doc: dict) -> list[tuple[str, dict]]:
    templates = [(name, group["template"]) for name, group in ray_groups(doc)]
    if doc["kind"] == "RayJob" and "submitterPodTemplate" in doc["spec"]:
        templates.append(("submitter", doc["spec"]["submitterPodTemplate"]))
    return templates


def _k8s_errors(obj: dict) -> list[str]:
    try:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        return [f"{_where(e)}: {e.message}"]
    return []


def k8s_errors(doc: dict) -> list[str]:
    """Pod templates of Ray objects (as PodTemplates) and core objects, against Kubernetes' strict schemas."""
    if doc["apiVersion"] != "ray.io/v1":
        return _k8s_errors(doc)
    errors = []
    for name, template in pod_templates(doc):
        wrapped = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "check"}, "template": template}
        errors += [f"{name} pod template: {e}" for e in _k8s_errors(wrapped)]
    return errors


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text)[:3])


def operator_errors(doc: dict) -> list[str]:
    """The checks KubeRay's operator makes before it creates anything (ray-operator/controllers/ray/utils/
    validation.go) that apply to these manifests: it rejects such an object with an event, not at apply."""
    errors = []
    name = doc["metadata"]["name"]
    max_len = 47 if doc["kind"] == "RayJob" else 53
    if len(name) > max_len or not re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name):
        errors.append(f"name {name!r}: not a DNS-1035 label of at most {max_len} characters")
    spec = cluster_spec(doc)
    autoscaling = spec.get("enableInTreeAutoscaling", False)
    for group_name, group in ray_groups(doc):
        if not group["template"]["spec"].get("containers"):
            errors.append(f"{group_name}: no container")
        params = group.get("rayStartParams", {})
        if group.get("resources") and any(params.get(k) for k in ("num-cpus", "num-gpus", "memory", "resources")):
            errors.append(f"{group_name}: resources set both in rayStartParams and in `resources`")
        if "labels" in params:
            errors.append(f"{group_name}: rayStartParams['labels'] is not supported")
        if group_name == "head":
            continue
        lo, hi, n = group.get("minReplicas"), group.get("maxReplicas"), group.get("replicas", 0)
        if not autoscaling and (lo is None or hi is None):
            errors.append(f"{group_name}: minReplicas and maxReplicas are required without autoscaling")
        elif all(isinstance(x, int) for x in (lo, hi, n)) and not lo <= n <= hi:
            errors.append(f"{group_name}: replicas {n} outside [{lo}, {hi}]")
    token_auth = spec.get("authOptions", {}).get("mode") == "token"
    if token_auth and (not spec.get("rayVersion") or _version(spec["rayVersion"]) < (2, 52, 0)):
        errors.append(f"authOptions.mode token needs rayVersion >= 2.52.0, got {spec.get('rayVersion')!r}")
    if doc["kind"] == "RayJob":
        job = doc["spec"]
        mode = job.get("submissionMode", "K8sJobMode")
        if mode not in ("K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode"):
            errors.append(f"submissionMode {mode!r} unknown")
        if mode == "InteractiveMode" and job.get("backoffLimit", 0) > 0:
            errors.append("backoffLimit is incompatible with InteractiveMode")
        if mode == "SidecarMode" and ("submitterConfig" in job or "submitterPodTemplate" in job):
            errors.append("SidecarMode takes no submitterConfig or submitterPodTemplate")
        if job.get("ttlSecondsAfterFinished", 0) > 0 and not job.get("shutdownAfterJobFinishes"):
            errors.append("ttlSecondsAfterFinished needs shutdownAfterJobFinishes: true")
        for key in ("activeDeadlineSeconds", "preRunningDeadlineSeconds"):
            if key in job and job[key] <= 0:
                errors.append(f"{key} must be positive")
    return errors


def ray_objects(kustomization: str) -> list[dict]:
    return [d for d in rendered(kustomization) if d["apiVersion"] == "ray.io/v1"]


def the_rayjob(kustomization: str) -> dict:
    (job,) = [d for d in rendered(kustomization) if d["kind"] == "RayJob"]
    return job


# ---------------------------------------------------------------- manifests


def test_every_kustomization_renders():
    assert {"base", "cluster", "overlays/h100", "overlays/dev"} <= set(KUSTOMIZATIONS)
    for kustomization in KUSTOMIZATIONS:
        assert rendered(kustomization), f"deploy/kuberay/{kustomization} renders nothing"
    assert [d["kind"] for d in ray_objects("cluster")] == ["RayCluster"]
    for kustomization in JOB_KUSTOMIZATIONS:
        assert [d["kind"] for d in ray_objects(kustomization)] == ["RayJob"]


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_manifests_validate(kustomization):
    errors = []
    for doc in rendered(kustomization):
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["apiVersion"] == "ray.io/v1":
            errors += [f"{where} (KubeRay CRD): {e}" for e in crd_errors(doc)]
            errors += [f"{where} (KubeRay operator): {e}" for e in operator_errors(doc)]
        errors += [f"{where} (Kubernetes schema): {e}" for e in k8s_errors(doc)]
    assert not errors, "\n".join(errors)


def _set(path: str, value):
    def mutate(job: dict) -> None:
        *parents, last = path.split(".")
        node = job
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[int(last) if isinstance(node, list) else last] = value
    return mutate


WORKER0 = "spec.rayClusterSpec.workerGroupSpecs.0"
LEARNER_CONTAINER = "spec.rayClusterSpec.workerGroupSpecs.1.template.spec.containers.0"
BAD_FIELDS = {
    "unknown worker-group field": (_set(f"{WORKER0}.gpus", 4), {"crd"}),
    "wrong worker-group type": (_set(f"{WORKER0}.replicas", "one"), {"crd"}),
    "unknown container field": (_set(f"{LEARNER_CONTAINER}.imagePullPolicyy", "Always"), {"crd", "k8s"}),
    "wrong resources type": (_set(f"{LEARNER_CONTAINER}.resources.limits", ["8"]), {"crd", "k8s"}),
    "unknown pod field": (_set(f"{WORKER0}.template.spec.nodeSelectors", {"a": "b"}), {"crd", "k8s"}),
    "bad env entry": (_set(f"{LEARNER_CONTAINER}.env.0.valueFrom.secretKeyRef.name", 7), {"crd", "k8s"}),
    "unknown auth mode": (_set("spec.rayClusterSpec.authOptions.mode", "on"), {"crd"}),
    "unknown top-level field": (_set("spec.shutdownAfterJobFinish", True), {"crd"}),
    "auth on an old Ray": (_set("spec.rayClusterSpec.rayVersion", "2.47.0"), {"operator"}),
    "no maxReplicas": (lambda job: job["spec"]["rayClusterSpec"]["workerGroupSpecs"][1].pop("maxReplicas"),
                       {"operator"}),
    "retries in InteractiveMode": (_set("spec.submissionMode", "InteractiveMode"), {"operator"}),
}


@pytest.mark.parametrize("case", sorted(BAD_FIELDS))
def test_validation_rejects_a_bad_manifest(case):
    mutate, expected = BAD_FIELDS[case]
    job = the_rayjob("base")
    assert not (crd_errors(job) or k8s_errors(job) or operator_errors(job))
    mutate(job)
    found = {name for name, check in (("crd", crd_errors), ("k8s", k8s_errors), ("operator", operator_errors))
             if check(job)}
    assert expected <= found, f"{case}: rejected by {sorted(found) or 'nothing'}, expected {sorted(expected)}"


def _env(container: dict) -> list[dict]:
    return container.get("env", [])


def _strings(node) -> list[str]:
    if isinstance(node, dict):
        return [s for value in node.values() for s in _strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in _strings(value)]
    return [node] if isinstance(node, str) else []


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_secrets_come_only_from_secret_key_refs(kustomization):
    docs = rendered(kustomization)
    assert not [d for d in docs if d["kind"] == "Secret"], "no Secret objects in the repository: create them"
    for doc in docs:
        for text in _strings(doc):
            assert not re.search(r"(WANDB_API_KEY|HF_TOKEN)\s*[=:]\s*\S", text), f"literal secret in {text!r}"
    for doc in [d for d in docs if d["apiVersion"] == "ray.io/v1"]:
        head_env = {e["name"] for e in _env(ray_container(cluster_spec(doc)["headGroupSpec"]))}
        assert head_env >= SECRET_ENV, "the driver (head) gets WANDB_API_KEY and HF_TOKEN"
        for name, template in pod_templates(doc):
            for container in template["spec"]["containers"]:
                for var in _env(container):
                    if var["name"] in SECRET_ENV or re.search(r"(KEY|TOKEN|PASSWORD|SECRET)$", var["name"]):
                        assert "value" not in var, f"{name}: {var['name']} has a literal value"
                        ref = var.get("valueFrom", {}).get("secretKeyRef")
                        assert ref and ref["name"] == "cosmo-secrets" and ref["key"] == var["name"], \
                            f"{name}: {var['name']} must come from secret cosmo-secrets, key {var['name']}"


@pytest.mark.parametrize("kustomization", ["cluster", *JOB_KUSTOMIZATIONS])
def test_gpus_on_worker_groups_only(kustomization):
    for doc in ray_objects(kustomization):
        names = []
        for name, group in ray_groups(doc):
            names.append(name)
            resources = ray_container(group)["resources"]
            requests, limits = resources.get("requests", {}), resources.get("limits", {})
            if name == "head":
                assert GPU not in requests and GPU not in limits, "the head holds no GPU"
                assert "num-gpus" not in group.get("rayStartParams", {})
            else:
                assert GPU in requests and GPU in limits, f"worker group {name} requests no GPU"
                assert str(requests[GPU]) == str(limits[GPU]) and int(limits[GPU]) >= 1
        assert names == ["head", "rollout", "learner"]


@pytest.mark.parametrize("kustomization", ["cluster", *JOB_KUSTOMIZATIONS])
def test_ray_token_auth_is_on(kustomization):
    for doc in ray_objects(kustomization):
        assert cluster_spec(doc)["authOptions"] == {"mode": "token"}
        for name, template in pod_templates(doc):
            for container in template["spec"]["containers"]:
                assert "RAY_AUTH_MODE" not in {e["name"] for e in _env(container)}, \
                    f"{name}: RAY_AUTH_MODE in the pod would override the operator's token mode"


@pytest.mark.parametrize("kustomization", ["cluster", *JOB_KUSTOMIZATIONS])
def test_volumes_and_references(kustomization):
    docs = rendered(kustomization)
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for doc in [d for d in docs if d["apiVersion"] == "ray.io/v1"]:
        images = set()
        for name, group in ray_groups(doc):
            pod = group["template"]["spec"]
            container = ray_container(group)
            images.add(container["image"])
            volumes = {v["name"]: v for v in pod.get("volumes", [])}
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            assert set(mounts.values()) <= set(volumes), f"{name}: a mount names no volume"
            shm = volumes[mounts["/dev/shm"]]
            assert shm["emptyDir"]["medium"] == "Memory", f"{name}: /dev/shm must be a memory emptyDir"
            claim = volumes[mounts["/checkpoints"]]["persistentVolumeClaim"]["claimName"]
            assert ("PersistentVolumeClaim", claim) in names, f"{name}: claim {claim} is not in the output"
            for volume in volumes.values():
                if "configMap" in volume:
                    assert ("ConfigMap", volume["configMap"]["name"]) in names, \
                        f"{name}: ConfigMap {volume['configMap']['name']} is not in the output (kustomize renamed it?)"
            if name == "head":
                recipe = volumes[mounts["/etc/cosmo"]]["configMap"]["name"]
                (config_map,) = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == recipe]
                assert "recipe.yaml" in config_map["data"]
        assert len(images) == 1, f"head and workers must run one image (one Ray version): {images}"


def _entrypoint(job: dict) -> tuple[str, list[str]]:
    words = shlex.split(job["spec"]["entrypoint"])
    assert words[:2] == ["cosmo", "train"], "the job runs `cosmo train RECIPE key=value...`"
    return words[2], words[3:]


def _recipe(kustomization: str) -> str:
    (config_map,) = [d for d in rendered(kustomization) if d["kind"] == "ConfigMap"]
    return config_map["data"]["recipe.yaml"]


def _cpus(quantity) -> float:
    text = str(quantity)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


@pytest.mark.parametrize("kustomization", JOB_KUSTOMIZATIONS)
def test_rayjob_recipe_loads_and_fits_the_cluster(kustomization, tmp_path):
    job = the_rayjob(kustomization)
    recipe_path, overrides = _entrypoint(job)
    assert recipe_path == "/etc/cosmo/recipe.yaml"
    assert "logging.runs_dir=/checkpoints/runs" in overrides, "runs must land on the checkpoint volume"
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(_recipe(kustomization))
    cfg = load_config(recipe, overrides)
    assert cfg.device == "cuda"
    assert cfg.cluster.address in (None, "auto"), "the driver must join the job's cluster, not start its own"
    assert cfg.data.dir.startswith("/checkpoints/"), "the eval task on a worker reads the data: keep it shared"
    workers = [g for name, g in ray_groups(job) if name != "head"]
    gpus = sum(g["replicas"] * int(ray_container(g)["resources"]["limits"][GPU]) for g in workers)
    need = cfg.learner.num_ranks + cfg.rollout.num_actors * cfg.rollout.tensor_parallel_size
    assert gpus >= need, f"{gpus} worker GPUs for {need} (learner ranks + rollout engines x tensor parallel)"
    cpus = sum(g["replicas"] * _cpus(ray_container(g)["resources"]["limits"]["cpu"]) for g in workers)
    need_cpus = cfg.learner.num_ranks * cfg.learner.cpus_per_rank + cfg.rollout.num_actors * cfg.rollout.cpus_per_actor
    assert cpus >= need_cpus, f"{cpus} worker CPUs for the {need_cpus} the actors reserve"
    spec = job["spec"]
    assert spec["shutdownAfterJobFinishes"] is True and spec["submissionMode"] == "K8sJobMode"
    assert isinstance(spec.get("backoffLimit"), int)
    # a retry of the job (backoffLimit) continues from the newest checkpoint instead of step 1
    assert cfg.resume == "auto" and cfg.checkpoint.every_steps > 0


def test_shipped_recipe_is_configs_qwen2_5_vl_7b():
    shipped = load_config(KUBERAY / "common" / "recipe.yaml")
    source = load_config(ROOT / "configs" / "qwen2.5-vl-7b.yaml")
    assert to_yaml(shipped) == to_yaml(source), \
        "deploy/kuberay/common/recipe.yaml drifted from configs/qwen2.5-vl-7b.yaml: copy the recipe over"


def test_interactive_cluster_matches_the_job_cluster():
    (cluster,) = ray_objects("cluster")
    assert cluster["spec"] == cluster_spec(the_rayjob("base"))


def test_overlays_apply_their_changes():
    def gpus(job):
        return {n: int(ray_container(g)["resources"]["limits"][GPU]) for n, g in ray_groups(job) if n != "head"}

    base, h100, dev = the_rayjob("base"), the_rayjob("overlays/h100"), the_rayjob("overlays/dev")
    assert gpus(base) == {"rollout": 4, "learner": 4} and gpus(h100) == {"rollout": 8, "learner": 8}
    assert gpus(dev) == {"rollout": 1, "learner": 1}
    for name, group in ray_groups(h100):
        pod = group["template"]["spec"]
        if name == "head":
            assert "nodeSelector" not in pod
        else:
            assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
            assert {"key": GPU, "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert all("nodeSelector" not in g["template"]["spec"] for _, g in ray_groups(base))
    assert {d["metadata"]["name"].split("-")[0] for d in rendered("overlays/dev")} == {"dev"}
    assert _recipe("overlays/h100") == _recipe("base") and "build_preset: small" in _recipe("overlays/dev")


def test_ray_version_matches_the_pin():
    (ray_pin,) = [d for d in PYPROJECT["project"]["dependencies"] if d.startswith("ray[")]
    for kustomization in ["cluster", *JOB_KUSTOMIZATIONS]:
        for doc in ray_objects(kustomization):
            assert ray_pin.endswith("==" + cluster_spec(doc)["rayVersion"]), (ray_pin, kustomization)


# ---------------------------------------------------------------- images


def dockerfile(name: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, with continuations joined and comments dropped."""
    out, buf = [], ""
    for raw in (ROOT / "deploy" / name).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        instruction, _, args = (buf + line).partition(" ")
        out.append((instruction.upper(), args.strip()))
        buf = ""
    return out


def final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    starts = [i for i, (op, _) in enumerate(instructions) if op == "FROM"]
    return instructions[starts[-1]:]


def dockerignored(path: str) -> bool:
    """Whether Docker leaves `path` (relative to the context) out, per .dockerignore (last match wins)."""
    patterns = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines()]
    ignored = False
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        if not pattern or pattern.startswith("#"):
            continue
        negate, pattern = pattern.startswith("!"), pattern.lstrip("!").strip("/")
        regex = re.escape(pattern).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
        regex = regex.replace(r"\?", "[^/]")
        if any(re.fullmatch(regex, prefix) for prefix in prefixes):
            ignored = not negate
    return ignored


DOCKERFILES = ["Dockerfile", "Dockerfile.cpu"]


@pytest.mark.parametrize("name", DOCKERFILES)
def test_image_runs_as_a_non_root_user(name):
    stage = final_stage(dockerfile(name))
    ops = [op for op, _ in stage]
    assert "CMD" in ops or "ENTRYPOINT" in ops
    users = [i for i, (op, _) in enumerate(stage) if op == "USER"]
    assert users, f"{name}: the final stage sets no USER (it would run as root)"
    user = stage[users[-1]][1].split(":")[0]
    assert user not in ("root", "0"), f"{name}: runs as {user}"
    first_start = min(i for i, (op, _) in enumerate(stage) if op in ("CMD", "ENTRYPOINT"))
    assert users[-1] < first_start, f"{name}: USER must come before CMD/ENTRYPOINT"
    assert any(op == "RUN" and "useradd" in args and user in args for op, args in stage), \
        f"{name}: user {user} is not created in the final stage"


@pytest.mark.parametrize("name", DOCKERFILES)
def test_base_images_are_pinned_and_python_fits(name):
    instructions = dockerfile(name)
    images = [args.split()[0] for op, args in instructions if op == "FROM"]
    for image in images:
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest", f"{name}: base image {image} has no fixed tag"
    run = " ".join(args for op, args in instructions if op == "RUN")
    versions = set(re.findall(r"python3\.(\d+)", run)) | set(re.findall(r"^python:3\.(\d+)", images[-1]))
    assert len(versions) == 1, f"{name}: one Python version expected, found 3.{versions}"
    from packaging.specifiers import SpecifierSet  # noqa: PLC0415 - a dependency of our dependencies

    assert f"3.{versions.pop()}" in SpecifierSet(PYPROJECT["project"]["requires-python"])


def test_gpu_image_cuda_follows_the_torch_pin():
    # PyPI's torch wheels are built for one CUDA major version each: compile flash-attn with the same nvcc.
    cuda_of_torch = {"2.13.0": "13."}
    (torch_pin,) = [d for d in PYPROJECT["project"]["dependencies"] if d.startswith("torch==")]
    torch_version = torch_pin.split("==")[1]
    assert torch_version in cuda_of_torch, f"torch pin {torch_version}: check the CUDA of its wheels, " \
        "then update deploy/Dockerfile's base images and this table"
    images = [args.split()[0] for op, args in dockerfile("Dockerfile") if op == "FROM"]
    assert images[0].split(":")[0] == "nvidia/cuda" and "-devel-" in images[0]
    assert images[-1].split(":")[0] == "nvidia/cuda" and "-runtime-" in images[-1]
    for image in images:
        assert image.split(":")[1].startswith(cuda_of_torch[torch_version]), image


def test_images_install_extras_that_exist():
    extras = set(PYPROJECT["project"]["optional-dependencies"])
    gpu_run = " ".join(args for op, args in dockerfile("Dockerfile") if op == "RUN")
    installed = {e for group in re.findall(r"\.\[([\w,-]+)\]", gpu_run) for e in group.split(",")}
    assert installed == {"gpu"} and installed <= extras
    cpu_runs = [args for op, args in dockerfile("Dockerfile.cpu") if op == "RUN" and "deploy/install.sh" in args]
    assert cpu_runs and re.search(r"deploy/install\.sh \S+ cpu\b", cpu_runs[0]), "CPU image: install.sh VENV cpu"
    script = (ROOT / "deploy" / "install.sh").read_text()
    used = {e for group in re.findall(r"\.\[([\w,-]+)\]", script) for e in group.split(",")}
    assert "cpu" in used and used <= extras, f"install.sh installs extras {used - extras} missing in pyproject"


@pytest.mark.parametrize("name", DOCKERFILES)
def test_copied_files_exist_and_reach_the_build_context(name):
    for op, args in dockerfile(name):
        if op not in ("COPY", "ADD"):
            continue
        words = shlex.split(args)
        if any(w.startswith("--from") for w in words):
            continue
        sources = [w for w in words if not w.startswith("--")][:-1]
        for source in sources:
            if source == ".":
                continue
            assert (ROOT / source).exists(), f"{name}: COPY {source}: no such file in the repository"
            assert not dockerignored(source), f"{name}: COPY {source}: excluded by .dockerignore"


def test_gpu_image_copies_every_installed_package():
    copied = {shlex.split(args)[0] for op, args in dockerfile("Dockerfile") if op == "COPY" and "--from" not in args}
    for pattern in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]:
        top = pattern.split(".")[0].rstrip("*")
        assert top in copied, f"pyproject installs package {pattern}, deploy/Dockerfile does not COPY {top}"
    assert {"pyproject.toml", "README.md"} <= {w for op, a in dockerfile("Dockerfile") if op == "COPY"
                                                for w in shlex.split(a)}


def test_dockerignore_keeps_local_state_out():
    for path in [".venv/bin/python", "runs/tiny-cpu/metrics.jsonl", ".git/HEAD", "cosmo/__pycache__/x.pyc",
                 "wandb/run/files", "cosmo_rl.egg-info/PKG-INFO", ".pytest_cache/v"]:
        assert dockerignored(path), f"{path} would be sent to the Docker build"
    for path in ["cosmo/cli.py", "configs/tiny-cpu.yaml", "deploy/install.sh", "deploy/patch_torchvision.py",
                 "pyproject.toml", "README.md", "learner/engine.py"]:
        assert not dockerignored(path), f"{path} is needed by the images"
