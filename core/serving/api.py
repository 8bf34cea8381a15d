"""The HTTP API of ``conceptlab serve`` (FastAPI): projects, predict, search, inputs and training jobs under ``/v1``.

Every error is ``{"error": {"code", "message", "input"}}`` with a 4xx (or 503) status. Files come in
the request (multipart) or texts in JSON; the server never opens a URL or a path a request names.
Handlers that embed or train run in worker threads; the embedding itself goes through one
``EmbedBatcher`` per embedder, so requests arriving together share a forward pass.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.access import AccessDenied, Action, UserStore, act_as, require
from core.errors import ConceptlabError, InputError, ModelVersionError, ProjectError
from core.ingestion import ingest
from core.inputs.raw import RawInput
from core.learning.heads import HeadConfig
from core.learning.models import resolve_version
from core.learning.training import plan_training, train
from core.prediction import get_model, predict_embedded_batch, search_similar
from core.serving.batching import BatchConfig, EmbedBatcher, QueueFullError
from core.serving.jobs import JobConflictError, TrainingJobs
from core.serving.limits import RateLimiter
from core.serving.requests import (
    INPUT_OPTIONS,
    PREDICT_OPTIONS,
    SEARCH_OPTIONS,
    ApiError,
    describe_request_body,
    error_body,
    read_bool_option,
    read_int_option,
    read_request,
)
from core.serving.tokens import TokenRecord, TokenStore
from core.storage.projects import Project, list_projects, open_project

logger = logging.getLogger(__name__)

API_VERSION = "v1"


@dataclass(frozen=True)
class ServerConfig:
    """What a server serves and the limits that protect it."""

    projects: tuple[str, ...] = ()  # empty: every project in the data home
    max_body_bytes: int = 64 * 1024**2
    max_files: int = 256  # per request
    max_in_flight: int = 64  # requests being handled at once; more get 503
    requests_per_minute: int = 600  # per token (per client address without tokens)
    batch: BatchConfig = BatchConfig()


def _input_error(error: InputError) -> dict:
    return error_body("bad_input", error.reason, error.name)


class _State:
    """What the handlers share: tokens, jobs, limits, open projects and one batcher per embedder."""

    def __init__(self, config: ServerConfig, tokens: TokenStore) -> None:
        self.config = config
        self.tokens = tokens
        self.users = UserStore()
        self.jobs = TrainingJobs()
        self.rates = RateLimiter(config.requests_per_minute)
        self._lock = threading.Lock()
        self._batchers: dict[str, EmbedBatcher] = {}
        self._projects: dict[str, Project] = {}
        self.in_flight = 0

    def project(self, name: str, access: TokenRecord | None) -> Project:
        if self.config.projects and name not in self.config.projects:
            raise ApiError(404, "unknown_project", f"this server does not serve a project named '{name}'")
        if access is not None and not access.may_use(name):
            raise ApiError(403, "forbidden", f"this token may not use project '{name}'")
        cached = self._projects.get(name)
        if cached is not None and (cached.root / "project.db").exists():  # deleted or renamed meanwhile: open again
            require(cached, Action.VIEW)  # opened for someone else before: this caller's role is checked too
            return cached
        try:
            project = open_project(name)
        except ProjectError as e:
            raise ApiError(404, "unknown_project", str(e)) from e
        with self._lock:
            self._projects[name] = project
        return project

    def batcher(self, project: Project) -> EmbedBatcher:
        with self._lock:
            if project.embedder_spec not in self._batchers:
                self._batchers[project.embedder_spec] = EmbedBatcher(project.embedder(), self.config.batch, lambda: self.in_flight)
            return self._batchers[project.embedder_spec]


class _Guard:
    """Body size and requests in flight, checked before anything is read (plain ASGI: no cost per request)."""

    def __init__(self, app, state: _State) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        refusal = self._refusal(scope)
        if refusal is not None:
            return await refusal(scope, receive, send)
        state = self.state
        with state._lock:
            busy = state.in_flight >= state.config.max_in_flight
            if not busy:
                state.in_flight += 1
        if busy:
            body = error_body("busy", "too many requests at once: try again shortly")
            return await JSONResponse(body, status_code=503, headers={"Retry-After": "1"})(scope, receive, send)
        try:
            await self.app(scope, receive, send)
        finally:
            with state._lock:
                state.in_flight -= 1

    def _refusal(self, scope) -> JSONResponse | None:
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            return None
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is None and headers.get(b"transfer-encoding"):
            return JSONResponse(error_body("length_required", "send a Content-Length (chunked bodies are refused)"), status_code=411)
        limit = self.state.config.max_body_bytes
        if length is not None and (not length.isdigit() or int(length) > limit):
            return JSONResponse(error_body("too_large", f"the request body is over the limit of {limit / 1024**2:.0f} MB"), status_code=413)
        return None


def create_app(config: ServerConfig = ServerConfig(), tokens: TokenStore | None = None) -> FastAPI:
    """The API as an ASGI app; ``conceptlab serve`` runs it under uvicorn."""
    state = _State(config, tokens or TokenStore())
    app = FastAPI(title="conceptlab", version=API_VERSION, description="Predict, search, add inputs and train, per project.")

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, e: ApiError) -> JSONResponse:
        return JSONResponse(error_body(e.code, e.message, e.input), status_code=e.status, headers=e.headers)

    @app.exception_handler(AccessDenied)
    async def _denied(request: Request, e: AccessDenied) -> JSONResponse:
        return JSONResponse(error_body("forbidden", str(e)), status_code=403)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()))
        return JSONResponse(error_body("bad_request", f"{where}: {first.get('msg', 'invalid request')}"), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, e: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(e.status_code, "http_error")
        return JSONResponse(error_body(code, str(e.detail)), status_code=e.status_code)

    app.add_middleware(_Guard, state=state)

    def authorise(request: Request, write: bool = False) -> TokenRecord | None:
        """The caller's token (None when the server has no tokens: loopback-only, single user)."""
        presented = request.headers.get("authorization", "")
        if not state.tokens.list_tokens():
            who = request.client.host if request.client else "local"
            _check_rate(state, f"address {who}")
            return None
        scheme, _, token = presented.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "unauthorised", "send the header 'Authorization: Bearer <token>'", headers={"WWW-Authenticate": "Bearer"})
        record = state.tokens.find_token(token.strip())
        if record is None:
            raise ApiError(401, "unauthorised", "unknown or revoked token", headers={"WWW-Authenticate": "Bearer"})
        _check_rate(state, f"token {record.name}")
        if write and record.read_only:
            raise ApiError(403, "read_only", f"token '{record.name}' is read-only: it may predict and search only")
        if record.user is not None:  # the request acts as the token's user, with that user's roles
            user = state.users.get_user(record.user)
            if user is None or user.disabled:
                raise ApiError(401, "unauthorised", f"token '{record.name}' belongs to an account that is disabled or gone")
            act_as(user.actor())
        return record

    @app.get("/v1/projects")
    def list_all(request: Request) -> list[dict]:
        """Every project this server serves (and the token may use)."""
        access = authorise(request)
        served = [info for info in list_projects() if not config.projects or info.name in config.projects]
        return [asdict(info) for info in served if access is None or access.may_use(info.name)]

    @app.get("/v1/projects/{name}")
    def describe(name: str, request: Request) -> dict:
        """Embedder, concepts with examples, versions, the active version, each concept's threshold and figures."""
        project = state.project(name, authorise(request))
        return _describe_project(project)

    @app.post("/v1/projects/{name}/predict", openapi_extra=describe_request_body(PREDICT_OPTIONS))
    async def predict_inputs(name: str, request: Request) -> JSONResponse:
        """Files (multipart, field ``files``) or ``{"texts": [...]}``: one result object per input, in order."""
        access = authorise(request)
        options, items = await read_request(request, config.max_files)
        version = read_int_option(options, "version")
        top_k = read_int_option(options, "top_k")
        neighbours = read_bool_option(options, "include_neighbours", True)
        project = state.project(name, access)
        results = await run_in_threadpool(_predict, state, project, items, version, top_k, neighbours)
        return JSONResponse({"results": results})

    @app.post("/v1/projects/{name}/search", openapi_extra=describe_request_body(SEARCH_OPTIONS))
    async def search(name: str, request: Request) -> dict:
        """The ``k`` stored inputs most similar to one file or one text."""
        access = authorise(request)
        options, items = await read_request(request, config.max_files)
        k = read_int_option(options, "k") or 10
        project = state.project(name, access)
        if len(items) != 1:
            raise ApiError(422, "bad_request", f"search takes exactly one file or one text, not {len(items)}")
        (query,) = items
        if isinstance(query, InputError):
            raise ApiError(422, "bad_input", query.reason, query.name)
        try:
            hits = await run_in_threadpool(search_similar, project, query, k)
        except InputError as e:
            raise ApiError(422, "bad_input", e.reason, e.name) from e
        return {"results": [{"id": h.record.id, "name": h.record.name, "kind": h.record.kind, "similarity": h.similarity} for h in hits]}

    @app.post("/v1/projects/{name}/inputs", openapi_extra=describe_request_body(INPUT_OPTIONS))
    async def add_inputs(name: str, request: Request) -> JSONResponse:
        """Store files or texts, labelled with ``concept`` (``negative``: as its negatives) when given."""
        access = authorise(request, write=True)
        options, items = await read_request(request, config.max_files)
        concept = options.get("concept") or None
        negative = read_bool_option(options, "negative", False)
        project = state.project(name, access)
        try:
            report = await run_in_threadpool(lambda: ingest(project, items, concept=concept, negative=negative))
        except AccessDenied:
            raise
        except ConceptlabError as e:
            raise ApiError(422, "bad_request", str(e)) from e
        body = {
            "added": report.added,
            "already_stored": report.already_stored,
            "labelled": report.labelled,
            "failed": [_input_error(f)["error"] for f in report.failed],
        }
        return JSONResponse(body, status_code=207 if report.failed and (report.added or report.already_stored) else 200)

    @app.post("/v1/projects/{name}/train", status_code=202)
    def start_training(name: str, request: Request) -> dict:
        """Start a training job; poll ``GET /v1/jobs/{id}``. One job per project at a time (409 otherwise)."""
        project = state.project(name, authorise(request, write=True))
        require(project, Action.TRAIN)  # now, as a 403, not later as a failed job

        def run(progress) -> dict:
            result = train(project, HeadConfig(), progress)
            return {
                "version": result.version,
                "seconds": round(result.seconds, 3),
                "concepts": [asdict(p) for p in result.concepts],
                "evaluations": [e.to_dict() for e in result.evaluations],
            }

        try:
            job = state.jobs.start_job(project.name, run)
        except JobConflictError as e:
            raise ApiError(409, "already_training", str(e)) from e
        return job.to_dict()

    @app.get("/v1/jobs/{job_id}")
    def get_job(job_id: str, request: Request) -> dict:
        """A training job's state, progress and, once done, its result (or error)."""
        access = authorise(request)
        job = state.jobs.get_job(job_id)
        if job is None or (access is not None and not access.may_use(job.project)):
            raise ApiError(404, "unknown_job", f"no training job '{job_id}'")
        return job.to_dict()

    return app


def _check_rate(state: _State, who: str) -> None:
    wait = state.rates.take(who)
    if wait > 0:
        raise ApiError(
            429, "rate_limited", f"too many requests from {who}: slow down", headers={"Retry-After": str(max(int(wait + 0.999), 1))}
        )


def _predict(state: _State, project: Project, items: list, version: int | None, top_k: int | None, neighbours: bool) -> list[dict]:
    if not items:
        raise ApiError(422, "bad_request", "nothing to predict: send files or texts")
    try:
        get_model(project, version)  # no model: say so before embedding anything
    except ModelVersionError as e:
        raise ApiError(409 if version is None else 404, "no_model", str(e)) from e
    raws = [item for item in items if isinstance(item, RawInput)]
    try:
        embedded = state.batcher(project).embed(raws)
    except QueueFullError as e:
        raise ApiError(503, "busy", str(e), headers={"Retry-After": "1"}) from e
    results = []
    for prediction in predict_embedded_batch(project, items, embedded, version):
        if isinstance(prediction, InputError):
            results.append(_input_error(prediction))
            continue
        data = prediction.to_dict()
        if top_k is not None:
            data["concepts"] = data["concepts"][:top_k]
        if not neighbours:
            data.pop("neighbours", None)
        results.append(data)
    return results


def _describe_project(project: Project) -> dict:
    info = asdict(project.info())
    versions = project.store.list_versions(report_keys=("metrics", "thresholds"))
    try:
        active = resolve_version(project)
    except ModelVersionError:
        active = None
    report = next((v[4] for v in versions if v[0] == active), {})
    thresholds = report.get("thresholds", {})
    figures = {m["space"]: {c["concept"]: c for c in m.get("concepts", [])} for m in report.get("metrics", [])}
    examples = project.store.count_examples()
    plans = {(p.concept, p.space): p.head for p in plan_training(project)}
    concepts = []
    for concept, kinds in examples.items():
        spaces = sorted({space for (name, space) in plans if name == concept})
        concepts.append(
            {
                "name": concept,
                "examples": {kind: {"positive": pos, "negative": neg} for kind, (pos, neg) in kinds.items()},
                "threshold": {s: thresholds[s][concept] for s in thresholds if concept in thresholds[s]},
                "cross_validated": {s: figures[s][concept] for s in figures if concept in figures[s]},
                "heads_planned": {s: plans[(concept, s)] for s in spaces},
            }
        )
    info.update(
        concepts=concepts,
        versions=[{"version": v[0], "created_at": v[1], "seconds": round(v[3], 3)} for v in versions],
        active_version=active,
    )
    return info
