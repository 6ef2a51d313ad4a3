"""The FastAPI routes without Ray: auth order, body limits, multipart, error shapes.

The service behind the routes is a small stand-in that runs the real token checks and the
real detector core on the fixture model, so what is asserted is the router's own work.
"""

from __future__ import annotations

import warnings

import pytest

from ground.errors import NotFoundError
from model_store import decode_image
from serve.answers import DetectAnswer
from serve.auth import Tokens, token_digest
from serve.config import parse_serve_config
from serve.protocol import AliasMoveResponse, ModelsResponse, core_error
from serve.routes import create_api
from tests.fixtures.images import encode, gradient

with warnings.catch_warnings():  # starlette's TestClient warns about httpx; it is still what FastAPI ships
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

API_TOKEN, ADMIN_TOKEN = "api-token", "admin-token"
IMAGE = encode(gradient(640, 480))


class CoreService:
    """The ingress interface used by the router, answering with the detector core in-process."""

    def __init__(self, detector, admin: bool = True) -> None:
        self.config = parse_serve_config({"models": [{"name": "fixture"}], "http": {"max_body_bytes": 100_000}})
        self.detector = detector
        self.admin = admin
        self.calls: list[tuple] = []

    def authorize(self, authorization, role):  # the service's two tokens, as serve/auth.py `Tokens` checks them
        return Tokens(token_digest(ADMIN_TOKEN) if self.admin else None, token_digest(API_TOKEN),
                      "TRAPLINE_ADMIN_TOKEN").authorize(authorization, role)

    def refuse_early(self, model):  # never full here; the one-hop replica's check is in test_serve_burst.py
        pass

    async def detect(self, ask, data):
        self.calls.append((ask.model, ask.version, ask.alias, len(data), ask.filters, ask.render))
        if ask.model not in (None, "fixture"):
            raise NotFoundError(f"model {ask.model!r} is not served here")
        try:
            [rec] = self.detector.predict_batch([decode_image(data)], filters=ask.filters)
        except Exception as exc:
            raise (core_error(exc) or exc) from None
        return DetectAnswer(rec, jpeg=b"\xff\xd8jpeg" if ask.render else None)

    async def models(self):
        return ModelsResponse(models=[], admin_routes="enabled")

    async def promote(self, model, version, alias):
        self.calls.append(("promote", model, version, alias))
        return AliasMoveResponse(model=model, alias=alias, version=version, previous="1", serving=[{alias: version}])


@pytest.fixture
def client(local_store):
    service = CoreService(local_store.load_detector("fixture:1"))
    with TestClient(create_api(service)) as c:
        c.service = service
        yield c


AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def test_api_token_guards_detect_and_models_but_not_health(client):
    assert client.get("/healthz").status_code == 200
    for method, path in (("post", "/v1/detect"), ("get", "/v1/models")):
        r = client.request(method, path, content=IMAGE)
        assert r.status_code == 401 and r.json()["error"]["type"] == "unauthorized"
        assert r.headers["www-authenticate"] == "Bearer"
    r = client.post("/v1/detect?min_score=notanumber", content=IMAGE)
    assert r.status_code == 401  # auth is checked before the parameters
    assert client.post("/v1/detect", content=IMAGE, headers=AUTH).status_code == 200
    assert not any(c[3] == 0 for c in client.service.calls)


def test_admin_token_and_parameters(client):
    assert client.post("/v1/admin/models/fixture/promote").status_code == 401
    r = client.post("/v1/admin/models/fixture/promote", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert r.status_code == 422 and r.json()["error"]["type"] == "invalid_parameter"  # version is required
    r = client.post("/v1/admin/models/fixture/promote?version=2", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert r.json() == {"model": "fixture", "alias": "production", "version": "2", "previous": "1",
                        "serving": [{"production": "2"}],
                        "gate": {"ran": False, "forced": False, "reason": "this service has no views over tables "
                                 "(the online door alone): the gate was not run"}}
    schema = client.get("/openapi.json").json()["paths"]
    for path in ("/v1/models", "/readyz", "/v1/admin/models/{model}/promote", "/v1/admin/models/{model}/reload"):
        method = "get" if path in ("/v1/models", "/readyz") else "post"  # every body is a declared model
        assert "$ref" in schema[path][method]["responses"]["200"]["content"]["application/json"]["schema"], path
    client.service.admin = False
    assert client.post("/v1/admin/models/fixture/reload", headers=AUTH).status_code == 403


def test_body_limit_on_header_and_on_bytes_read(client):
    r = client.post("/v1/detect", content=b"\x00" * 100_001, headers=AUTH)
    assert r.status_code == 413 and r.json()["error"]["limit"] == 100_000

    def chunks():
        for _ in range(4):
            yield b"\x00" * 30_000

    r = client.post("/v1/detect", content=chunks(), headers=AUTH)
    assert r.status_code == 413
    assert client.service.calls == []  # refused before any dispatch


def test_multipart_filters_and_render(client):
    r = client.post("/v1/detect", files={"image": ("a.jpg", IMAGE, "image/jpeg")}, data={"note": "x"},
                    params={"filters": '{"score": {"min_score": 0.5}}', "labels": "deer,fox", "min_score": 0.65},
                    headers=AUTH)
    assert r.status_code == 200, r.text
    *_, size, filters, render = client.service.calls[-1]
    assert size == len(IMAGE) and render is False
    assert filters == {"score": {"min_score": 0.65}, "class_mask": {"allowed_labels": ["deer", "fox"]}}
    assert [d["score"] for d in r.json()["detections"]] == [0.9, 0.7]
    r = client.post("/v1/detect", params={"render": "true"}, content=IMAGE, headers=AUTH)
    assert r.headers["content-type"] == "image/jpeg" and r.headers["x-detections"] == "4"
    r = client.post("/v1/detect", content=b"--x\r\n", headers={**AUTH, "Content-Type": "multipart/form-data"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "bad_request"


def test_the_query_shortcuts_are_the_filter_registrys(client):
    """Each registered filter's `shortcut` is a query parameter of /v1/detect, described from its config field, with
    no other list of them: serve/ spells no shortcut's config field (the registry's modules do)."""
    import ast
    from pathlib import Path

    from model_store.core.filters import REGISTRY, SHORTCUTS

    declared = {f.shortcut.name: (name, f.shortcut.field) for name, f in REGISTRY.items() if f.shortcut}
    assert SHORTCUTS == declared and {"min_score", "min_area_fraction", "labels"} <= set(declared)
    params = {p["name"]: p for p in client.get("/openapi.json").json()["paths"]["/v1/detect"]["post"]["parameters"]}
    for param, (name, field) in SHORTCUTS.items():
        info = REGISTRY[name].config_model.model_fields[field]
        assert params[param]["in"] == "query" and info.description in params[param]["description"], param
    spelled = {field for _, field in SHORTCUTS.values()}
    serve = Path(__file__).resolve().parents[2] / "serve"
    found = [(p.name, n.value) for p in serve.rglob("*.py") for n in ast.walk(ast.parse(p.read_text()))
             if isinstance(n, ast.Constant) and n.value in spelled]
    assert found == [], found
    r = client.post("/v1/detect", params={"min_area_fraction": 2}, content=IMAGE, headers=AUTH)
    assert r.status_code == 422 and "min_area_fraction" in r.json()["error"]["message"], r.text


def test_errors_are_json(client):
    assert client.get("/nope").json()["error"]["type"] == "not_found"
    r = client.post("/v1/detect", content=b"", headers=AUTH)
    assert r.status_code == 400 and r.json()["error"] == {"type": "invalid_image", "reason": "empty",
                                                          "message": r.json()["error"]["message"]}
    r = client.post("/v1/detect?filters=[1]", content=IMAGE, headers=AUTH)
    assert r.status_code == 422 and r.json()["error"]["type"] == "invalid_filter"
    r = client.post("/v1/detect?model=other", content=IMAGE, headers=AUTH)
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found"


def test_the_filters_are_described_on_the_online_door_alone(client):
    """`GET /v1/filters`, which /v1/detect's `filters` points to, answers on the online door with no jobs feature
    attached (this app has none): every registered filter with its description, defaults, required fields, schema."""
    from model_store.core.filters import REGISTRY

    assert client.get("/v1/filters").status_code == 401  # a read: the API (or admin) token
    filters = client.get("/v1/filters", headers=AUTH).json()["filters"]
    assert [f["name"] for f in filters] == list(REGISTRY)
    score = next(f for f in filters if f["name"] == "score")
    assert score["required"] == ["min_score"] and score["schema"]["properties"]["min_score"]["maximum"] == 1.0
    assert score["kind"] == REGISTRY["score"].kind and score["table_level"] is False
    assert all(f["description"] and set(f) == {"name", "kind", "table_level", "description", "defaults", "required",
                                               "schema"} for f in filters)
    assert "/v1/jobs" not in client.get("/openapi.json").json()["paths"]
