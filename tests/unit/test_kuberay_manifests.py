"""deploy/kuberay/*.yaml: valid against KubeRay's CRD schemas (offline), token auth on, the embedded Serve config
one the app accepts, the job entrypoints ones the CLI accepts, and the validation able to fail.

The CRDs (ray.io/v1 RayService, RayJob, RayCronJob from ray-project/kuberay) are kept beside the repository in
../shared/standards/kuberay-crds. Each carries its OpenAPI v3 schema; validated here with jsonschema the way
`kubectl apply --dry-run=server --validate=strict` would check it: an unknown field anywhere is an error
(a CRD's structural schema would otherwise silently prune it, typos included).
"""

from __future__ import annotations

import copy
import functools
import re
import shlex
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "deploy" / "kuberay"
CRDS = REPO.parent / "shared" / "standards" / "kuberay-crds"
CRD_FILES = {"RayService": "ray.io_rayservices.yaml", "RayJob": "ray.io_rayjobs.yaml",
             "RayCronJob": "ray.io_raycronjobs.yaml"}
FILES = {"RayService": "rayservice.yaml", "RayJob": "rayjob-archive.yaml", "RayCronJob": "raycronjob-reprocess.yaml"}
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def _load(path: Path) -> Any:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRDs are ~1 MB each
    with open(path) as f:
        return yaml.load(f, Loader=loader)


def _strict(schema: Any) -> Any:
    """The schema with unknown fields refused wherever the CRD lists an object's fields (kubectl's strict mode)."""
    if isinstance(schema, dict):
        schema = {k: _strict(v) for k, v in schema.items()}
        if ("properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@functools.cache
def validator(kind: str) -> jsonschema.Draft4Validator:
    path = CRDS / CRD_FILES[kind]
    if not path.is_file():
        pytest.fail(f"KubeRay CRD not found: {path} (the suite expects ../shared/standards/kuberay-crds beside "
                    "the repository, as CI has it)")
    crd = _load(path)
    assert crd["kind"] == "CustomResourceDefinition" and crd["spec"]["names"]["kind"] == kind
    [v1] = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    assert v1["served"] and v1["storage"]
    schema = _strict(v1["schema"]["openAPIV3Schema"])  # OpenAPI 3.0 schemas are JSON Schema draft 4 + extras
    return jsonschema.Draft4Validator(schema)


def schema_errors(kind: str, manifest: dict) -> list[str]:
    return [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in validator(kind).iter_errors(manifest)]


@pytest.fixture(scope="module")
def manifests() -> dict[str, dict]:
    found = {}
    for kind, name in FILES.items():
        docs = [d for d in yaml.safe_load_all((MANIFESTS / name).read_text()) if d is not None]
        assert len(docs) == 1, f"{name}: one resource per file"
        found[kind] = docs[0]
    assert sorted(p.name for p in MANIFESTS.glob("*.yaml")) == sorted(FILES.values())
    return found


def cluster_spec(kind: str, manifest: dict) -> dict:
    spec = manifest["spec"]
    return {"RayService": lambda: spec["rayClusterConfig"], "RayJob": lambda: spec["rayClusterSpec"],
            "RayCronJob": lambda: spec["jobTemplate"]["rayClusterSpec"]}[kind]()


def containers(cluster: dict) -> list[dict]:
    groups = [cluster["headGroupSpec"], *cluster.get("workerGroupSpecs", [])]
    return [c for g in groups for c in g["template"]["spec"]["containers"]]


@pytest.mark.parametrize("kind", FILES)
def test_manifest_matches_its_crd_schema(manifests, kind):
    m = manifests[kind]
    assert m["apiVersion"] == "ray.io/v1" and m["kind"] == kind
    assert DNS_LABEL.fullmatch(m["metadata"]["name"])
    assert schema_errors(kind, m) == []


@pytest.mark.parametrize("kind", FILES)
def test_token_auth_on_and_ray_version_matches_the_pinned_ray(manifests, kind):
    import ray

    cluster = cluster_spec(kind, manifests[kind])
    assert cluster["authOptions"]["mode"] == "token" and cluster["authOptions"]["secretName"]
    assert cluster["rayVersion"] == ray.__version__  # the version constraints.txt pins, and CI runs
    for c in containers(cluster):
        env = {e["name"]: e.get("value") for e in c.get("env", [])}
        assert env.get("RAY_AUTH_MODE") in (None, "token"), c["name"]
        assert ":" in c["image"] and not c["image"].endswith(":latest")
        assert c["resources"]["limits"], c["name"]
    # The head notices a lost node in seconds (the node-loss figures in RELIABILITY.md were measured so).
    head_env = {e["name"]: e.get("value") for e in cluster["headGroupSpec"]["template"]["spec"]["containers"][0]["env"]}
    assert head_env["RAY_health_check_period_ms"] == "1000" and head_env["RAY_health_check_failure_threshold"] == "3"
    head_ports = {p["containerPort"] for p in cluster["headGroupSpec"]["template"]["spec"]["containers"][0]["ports"]}
    assert {6379, 8265} <= head_ports
    assert cluster["headGroupSpec"].get("serviceType") in (None, "ClusterIP")  # Ray's ports never leave the cluster


def serve_config(manifests) -> dict:
    return yaml.safe_load(manifests["RayService"]["spec"]["serveConfigV2"])


def test_embedded_serve_config_is_one_ray_and_the_app_accept(manifests, tmp_path):
    from ray.serve._private.build_app import build_app as build_deployments
    from ray.serve.schema import ServeDeploySchema

    from serve.app import build_app
    from serve.config import parse_serve_config
    from serve.config_files import trapline_app

    raw = serve_config(manifests)
    schema = ServeDeploySchema.model_validate(raw)
    assert schema.http_options.port == 8000  # the port KubeRay's serve Service targets
    app = trapline_app(raw)
    assert app["import_path"] == "trapline.service:app_builder"
    cfg = parse_serve_config(app["args"], "serveConfigV2")
    assert cfg.store.startswith("s3://") and cfg.admin_token_env == "TRAPLINE_ADMIN_TOKEN"
    # What the cluster would build, with the store swapped for an empty local one (build_app only reads it).
    built = build_deployments(build_app({**app["args"], "store": str(tmp_path)}, environ={}), name=app["name"])
    detectors = [d for d in built.deployments if d.name.startswith("detector-")]
    assert [d.name for d in detectors] == [f"detector-{m.name}" for m in cfg.models]
    # The replicas ask for GPUs, and the GPU group can hold them at its minimum size.
    cluster = manifests["RayService"]["spec"]["rayClusterConfig"]
    gpus = sum(int(g["template"]["spec"]["containers"][0]["resources"]["limits"].get("nvidia.com/gpu", 0))
               * g["minReplicas"] for g in cluster["workerGroupSpecs"])
    wanted = 0.0
    for d, m in zip(detectors, cfg.models, strict=True):
        assert d.ray_actor_options["num_gpus"] == m.num_gpus > 0
        wanted += m.num_gpus * (m.num_replicas or 1)
    assert 0 < wanted <= gpus
    # Replicas on two or more pods: losing one pod leaves a serving replica (RELIABILITY.md, node loss).
    assert all((m.num_replicas or 0) >= 2 for m in cfg.models)


def entrypoint_args(entrypoint: str) -> list[str]:
    argv = shlex.split(entrypoint)
    assert argv[:2] == ["trapline", "reprocess"], entrypoint
    return argv[1:]


@pytest.mark.parametrize("kind", ["RayJob", "RayCronJob"])
def test_job_entrypoint_is_one_the_cli_accepts(manifests, kind):
    from model_store import ModelRef
    from trapline.cli import build_parser

    spec = manifests[kind]["spec"]
    job = spec["jobTemplate"] if kind == "RayCronJob" else spec
    args = build_parser().parse_args(entrypoint_args(job["entrypoint"]))
    assert args.command == "reprocess"
    for url in (args.archive, args.out, args.store):
        assert url.startswith("s3://"), url  # pods have no shared disk: everything lives in object storage
    ModelRef.parse(args.model)
    assert job["shutdownAfterJobFinishes"] is True and job.get("entrypointNumCpus", 0) == 0
    assert cluster_spec(kind, manifests[kind])["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"


# The checks above must be able to fail: each broken copy below is refused, naming what is wrong.
BROKEN = [
    ("RayService", lambda m: m["spec"]["rayClusterConfig"]["workerGroupSpecs"][0].update(replica=2),
     r"workerGroupSpecs\.0: Additional properties are not allowed \('replica' was unexpected\)"),
    ("RayService", lambda m: m["spec"]["rayClusterConfig"]["workerGroupSpecs"][0].pop("groupName"),
     r"'groupName' is a required property"),
    ("RayJob", lambda m: m["spec"].update(backoffLimit="two"), r"backoffLimit: 'two' is not of type 'integer'"),
    ("RayJob", lambda m: m["spec"]["rayClusterSpec"]["authOptions"].update(mode="none"),
     r"authOptions.mode: 'none' is not one of \['disabled', 'token'\]"),
    ("RayCronJob", lambda m: m["spec"].pop("schedule"), r"'schedule' is a required property"),
    ("RayCronJob", lambda m: m["spec"]["jobTemplate"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
     ["containers"][0].update(imagePullPolcy="Always"), r"'imagePullPolcy' was unexpected"),
]


@pytest.mark.parametrize("kind, breaks, message", BROKEN)
def test_schema_validation_refuses_broken_manifests(manifests, kind, breaks, message):
    broken = copy.deepcopy(manifests[kind])
    breaks(broken)
    errors = schema_errors(kind, broken)
    assert any(re.search(message, e) for e in errors), errors


def test_a_bad_serve_config_or_entrypoint_is_refused(manifests, capsys):
    from serve.config import ServeConfigError, parse_serve_config
    from serve.config_files import trapline_app
    from trapline.cli import build_parser

    args = trapline_app(serve_config(manifests))["args"]
    bad = {**args, "models": [{**args["models"][0], "num_gpu": 0.5}]}
    with pytest.raises(ServeConfigError, match="num_gpu"):
        parse_serve_config(bad, "serveConfigV2")
    argv = entrypoint_args(manifests["RayJob"]["spec"]["entrypoint"]) + ["--num-workers", "4"]
    with pytest.raises(SystemExit):
        build_parser().parse_args(argv)
    assert "unrecognized arguments: --num-workers 4" in capsys.readouterr().err


@pytest.mark.parametrize("kind, sample", [("RayService", "ray-service.sample.yaml"), ("RayJob", "ray-job.sample.yaml"),
                                          ("RayCronJob", "ray-cronjob.sample.yaml")])
def test_strict_validation_accepts_kuberays_own_samples(kind, sample):
    """Strictness is not over-strict: KubeRay's samples (kept beside the CRDs) pass it."""
    [doc] = [d for d in yaml.safe_load_all((CRDS / sample).read_text()) if d and d.get("kind") == kind]
    assert schema_errors(kind, doc) == []
