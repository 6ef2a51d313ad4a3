"""An `identify` route from every door a serve config comes in by reaches the deployment that handles HTTP, and one
the store cannot serve is refused at start (issue 43). Built as tests/unit/test_serve_config_plumbing.py builds: the
real `build_app`, Serve's own builder, no cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from model_store import ModelStore
from serve import detector_deployment_name
from serve.config import IdentifyRoute, ServeConfigError
from tests.unit.test_serve_config_plumbing import CLF, base, build, make_site, with_sample

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def site(tmp_path_factory, fixture_models, colour_onnx) -> dict[str, Any]:
    return make_site(tmp_path_factory.mktemp("identify-routes"), fixture_models, colour_onnx)


def _serve_file(source: str, site: dict[str, Any], path: Path) -> Path:
    """The repo's Serve config file (serve.yaml, or the RayService's serveConfigV2; a bare ServeConfig for `bare`)
    with an `identify` route on its first model and the store swapped for the local one."""
    if source == "bare":
        data: dict[str, Any] = base(site, "one_hop")
        args = data
    else:
        text = (REPO / source).read_text()
        data = yaml.safe_load(yaml.safe_load(text)["spec"]["serveConfigV2"] if source.startswith("deploy/") else text)
        args = data["applications"][0]["args"]
        args["record"] = {"archive": site["archive"], "tables": site["tables"]}
    args["store"] = site["store"]
    args["models"][0]["identify"] = {"identifier": "coats@production", "threshold": 0.8}
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("source", ["serve.yaml", "deploy/kuberay/rayservice.yaml", "bare"])
def test_identify_reaches_http_from_every_door_a_config_comes_in_by(site, source, tmp_path, capsys):
    """`serve run`/`serve deploy` and KubeRay call the file's import_path with its `args`; `trapline serve --config`
    reads the file first (its --print-config shows what it deploys). Either way, whichever deployment handles HTTP
    identifies individuals for the model: one hop (serve.yaml, a bare config) or a separate ingress (the RayService)."""
    from ray._common.utils import import_attr
    from ray.serve._private.build_app import build_app as build_deployments

    from serve.ingress import IngressCore
    from trapline.cli import main

    path = _serve_file(source, site, tmp_path / "serve.yaml")
    assert main(["serve", "--config", str(path), "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    apps = [printed["applications"][0]]
    if source != "bare":
        apps.append(yaml.safe_load(path.read_text())["applications"][0])  # as serve run / deploy / KubeRay take it
    for app in apps:
        name = app["args"]["models"][0]["name"]
        built = build_deployments(import_attr(app["import_path"])(app["args"]), name=app["name"])
        deployments = {d.name: d for d in built.deployments}
        http = deployments.get("ingress") or deployments[detector_deployment_name(name)]
        config, _, admin, api = http.init_args
        core = IngressCore(config, {}, admin, api, classifiers=http.init_kwargs["classifiers"])
        assert core.identifiers[name].route == IdentifyRoute(identifier="coats@production", threshold=0.8,
                                                             tables=site["tables"]), source
        assert ("ingress" in deployments) == (source.startswith("deploy/"))


@pytest.mark.parametrize("identifier, match", [
    ("spots@production", r"model 'det', identify: .*spots"),
    (f"{CLF}@production", r"model 'det', identify: species:1 is a classifier; identify needs an identifier"),
    ("zebras@production", r"model 'det', identify: zebras:1 identifies \['zebra'\], none of which det detects"),
])
def test_an_identify_route_the_store_cannot_serve_is_refused_at_start(site, identifier, match):
    if identifier.startswith("zebras"):
        store = ModelStore(site["store"])
        if "zebras" not in store.list_models():
            store.publish(None, "zebras", "1", {"backend": "keypoints", "applies_to": ["zebra"]})
            store.promote("zebras:1")
    config = with_sample(base(site, "one_hop"), IdentifyRoute, "identifier", identifier)
    with pytest.raises(ServeConfigError, match=match):
        build(config)
