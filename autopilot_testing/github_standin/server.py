"""GitHubStandIn: a loopback GitHub (REST under /api/v3, GraphQL, git's smart HTTP) over real
bare repositories, validating every REST exchange against GitHub's description."""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from autopilot_testing.github_standin import apps, gitrepo, graphql, rest, transport
from autopilot_testing.github_standin.faults import Faults
from autopilot_testing.github_standin.payloads import now
from autopilot_testing.github_standin.state import (
    CheckRun,
    ChecksRule,
    Person,
    Protection,
    Refused,
    World,
)
from autopilot_testing.github_standin.validation import (
    API_PREFIX,
    DEFAULT_SPEC,
    Req,
    Resp,
    Validator,
)
from autopilot_testing.github_standin.views import Urls, Views

DOCS = "https://docs.github.com/rest"
RATE_HEADERS = {
    "x-ratelimit-limit": "5000",
    "x-ratelimit-remaining": "4999",
    "x-ratelimit-reset": "4102444800",
    "x-ratelimit-used": "1",
    "x-ratelimit-resource": "core",
    "x-github-api-version-selected": "2022-11-28",
}


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    status: int
    operation_id: str
    login: str


class GitHubStandIn:
    def __init__(self, root: Path, port: int, spec_path: Path | None = None) -> None:
        self.root = root
        self.port = port
        base = f"http://127.0.0.1:{port}"
        self.api_url = base + API_PREFIX
        self.web_url = base
        self.world = World(root)
        self.views = Views(self.world, Urls(self.api_url, self.web_url, base))
        self.validator = Validator(spec_path or DEFAULT_SPEC)
        self.faults = Faults()
        self.requests: list[RecordedRequest] = []
        self.violations: list[str] = []
        self._log_lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # life

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        standin = self

        class Handler(_Handler):
            owner = standin

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> GitHubStandIn:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # the test's hand

    def git_url(self, owner: str, name: str) -> str:
        return f"{self.web_url}/{owner}/{name}.git"

    def add_user(self, login: str, *, permission: str = "write") -> str:
        return self.world.add_person(login, permission)

    def add_app(self, app_id: str, public_key_pem: str) -> int:
        return apps.add_app(self.world, app_id, public_key_pem)

    def create_repo(
        self, owner: str, name: str, *, default_branch: str = "main", source: Path | None = None
    ) -> Path:
        repo = self.world.create_repo(owner, name, default_branch)
        if source is not None:
            gitrepo.git(source, "push", "-q", str(repo.path), "refs/heads/*:refs/heads/*")
        return repo.path

    def protect(
        self, owner: str, name: str, branch: str, *, required_checks: list[str] | None = None,
        required_approvals: int = 0, merge_queue: bool = False, up_to_date: bool = False,
    ) -> None:  # fmt: skip
        repo = self.world.repo(owner, name)
        with self.world.lock:
            repo.protection[branch] = Protection(
                list(required_checks or []), required_approvals, merge_queue, up_to_date
            )

    def set_status(
        self, owner: str, name: str, sha: str, context: str, state: str, description: str = ""
    ) -> None:
        self.world.set_status(self.world.repo(owner, name), sha, context, state, description, owner)

    def set_check_run(
        self, owner: str, name: str, sha: str, check_name: str, *, status: str = "completed",
        conclusion: str | None = None, output_title: str = "", output_summary: str = "",
        output_text: str = "",
    ) -> None:  # fmt: skip
        stamp = now()
        run = CheckRun(
            self.world.next_id(), check_name, sha, status, conclusion, output_title,
            output_summary, output_text, stamp, stamp if status == "completed" else None,
        )  # fmt: skip
        self.world.set_check_run(self.world.repo(owner, name), run)

    def auto_checks(self, owner: str, name: str, rule: ChecksRule | None) -> None:
        self.world.repo(owner, name).rule = rule

    def review(
        self, owner: str, name: str, number: int, login: str, state: str, body: str = "",
        comments: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        payload: dict[str, Any] = {"event": state, "body": body}
        if comments:
            payload["comments"] = comments
        path = f"/repos/{owner}/{name}/pulls/{number}/reviews"
        return self._as(login, "POST", path, payload)

    def close_pull(self, owner: str, name: str, number: int, login: str) -> None:
        self._as(login, "PATCH", f"/repos/{owner}/{name}/pulls/{number}", {"state": "closed"})

    def pulls(self, owner: str, name: str) -> list[dict[str, Any]]:
        repo = self.world.repo(owner, name)
        with self.world.lock:
            return [
                {
                    "number": p.number,
                    "state": p.state,
                    "merged": p.merged,
                    "head": p.head,
                    "head_sha": p.head_sha,
                    "base": p.base,
                    "title": p.title,
                    "body": p.body,
                    "labels": list(p.labels),
                    "merged_by": p.merged_by,
                    "closed_by": p.closed_by,
                    "merge_commit_sha": p.merge_commit_sha,
                }
                for p in repo.pulls
            ]

    def branches(self, owner: str, name: str) -> dict[str, str]:
        return gitrepo.branches(self.world.repo(owner, name).path)

    def fail_next(self, n: int, status: int = 502) -> None:
        self.faults.fail_next(n, status)

    def rate_limit_next(self, n: int, kind: str = "primary", wait_s: float = 1.0) -> None:
        self.faults.rate_limit_next(n, kind, wait_s)

    def _as(self, login: str, method: str, path: str, payload: Any) -> dict[str, Any]:
        """A person's request through the stand-in's own REST endpoint (validated too)."""
        from urllib.request import Request, urlopen

        token = next(t for t, who in list(self.world.tokens.items()) if who == login)
        request = Request(
            self.api_url + path,
            data=json.dumps(payload).encode(),
            method=method,
            headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
        )
        with urlopen(request, timeout=30) as answer:
            result: dict[str, Any] = json.loads(answer.read() or b"{}")
            return result

    # the log

    def record(self, entry: RecordedRequest, violation: str = "") -> None:
        with self._log_lock:
            self.requests.append(entry)
            if violation:
                self.violations.append(f"{entry.method} {entry.path}: {violation}")
            with (self.root / "requests.jsonl").open("a") as log:
                log.write(json.dumps({**asdict(entry), "violation": violation}) + "\n")


class _Handler(BaseHTTPRequestHandler):
    owner: GitHubStandIn
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the stand-in keeps its own request log."""

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        split = urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        body = transport.read_body(self.rfile, headers)  # type: ignore[arg-type]
        if ".git/" in split.path:
            self._git(method, split.path, split.query, headers, body)
        elif split.path in ("/graphql", "/api/graphql"):
            self._graphql(split.path, headers, body)
        elif split.path.startswith(API_PREFIX):
            self._rest(method, split.path[len(API_PREFIX) :] or "/", split.query, headers, body)
        else:
            self._send(404, {"message": "Not Found"})

    # git

    def _git(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> None:
        standin = self.owner
        person = self._basic_person(headers)
        parts = path.strip("/").split("/")
        name = parts[1].removesuffix(".git") if len(parts) > 1 else ""
        if person is None:
            standin.record(RecordedRequest(method, path, 401, "git", ""))
            self._send_raw(401, [("WWW-Authenticate", 'Basic realm="GitHub"')], b"")
            return
        try:
            repo = standin.world.repo(parts[0], name)
        except Refused:
            self._send_raw(404, [("Content-Type", "text/plain")], b"Repository not found.\n")
            return
        push = transport.is_push(path, query)
        if push and person.permission == "read":
            message = f"Permission to {repo.owner}/{repo.name}.git denied to {person.login}.\n"
            standin.record(RecordedRequest(method, path, 403, "git", person.login))
            self._send_raw(403, [("Content-Type", "text/plain")], message.encode())
            return
        before = gitrepo.branches(repo.path) if push and method == "POST" else {}
        answer = transport.run_backend(
            standin.root / "repos", method, path, query, headers, body, person.login
        )
        # The PRs follow their heads (and CI runs) before git hears the push went through.
        if push and method == "POST":
            standin.world.pushed(repo, before, gitrepo.branches(repo.path))
        standin.record(RecordedRequest(method, path, answer.status, "git", person.login))
        self._send_raw(answer.status, answer.headers, answer.body)

    def _basic_person(self, headers: dict[str, str]) -> Person | None:
        scheme, _, value = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            _, _, token = base64.b64decode(value).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return self.owner.world.person_of(token)

    # GraphQL

    def _graphql(self, path: str, headers: dict[str, str], body: bytes) -> None:
        person = self._token_person(headers)
        if person is None:
            self.owner.record(RecordedRequest("POST", path, 401, "graphql", ""))
            self._send(401, {"message": "Bad credentials", "documentation_url": DOCS})
            return
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            payload = {}
        result = graphql.answer(self.owner.world, person, payload)
        self.owner.record(RecordedRequest("POST", path, 200, "graphql", person.login))
        self._send(200, result)

    def _token_person(self, headers: dict[str, str]) -> Person | None:
        scheme, _, value = headers.get("authorization", "").partition(" ")
        if scheme.lower() not in ("token", "bearer"):
            return None
        return self.owner.world.person_of(value.strip())

    # REST

    def _rest(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> None:
        standin = self.owner
        found = rest.find_route(method, path) or _app_route(method, path)
        if found is None:
            standin.record(
                RecordedRequest(method, path, 404, "", ""), f"no operation for {method} {path}"
            )
            self._send(404, {"message": "Not Found", "documentation_url": DOCS})
            return
        operation_id, handler, params, spelled = found
        args = parse_qs(query)
        req = Req.of(standin.web_url, API_PREFIX + spelled, method, body, headers, args, params)
        fault = standin.faults.take()
        if fault is not None:
            standin.record(RecordedRequest(method, path, fault.status, operation_id, ""))
            self._send(fault.status, fault.body, fault.headers)
            return
        violation = standin.validator.request(req)
        if violation:
            refusal = {"message": f"Invalid request.\n\n{violation}", "documentation_url": DOCS}
            standin.record(RecordedRequest(method, path, 400, operation_id, ""), violation)
            self._send(400, refusal, RATE_HEADERS)
            return
        status, payload, login = self._call(operation_id, handler, params, args, headers, body)
        data = b"" if payload is None else json.dumps(payload).encode()
        resp = Resp(status, data or None, "application/json" if data else "")
        problem = standin.validator.response(req, resp) or ""
        # Recorded before the answer leaves, so a test that got it sees the log complete.
        standin.record(RecordedRequest(method, path, status, operation_id, login), problem)
        pairs = [("Content-Type", "application/json; charset=utf-8"), *RATE_HEADERS.items()]
        self._send_raw(status, pairs if data else list(RATE_HEADERS.items()), data)

    def _call(
        self, operation_id: str, handler: rest.Handler | None, params: dict[str, str],
        args: dict[str, list[str]], headers: dict[str, str], body: bytes,
    ) -> tuple[int, Any, str]:  # fmt: skip
        world = self.owner.world
        scheme, _, token = headers.get("authorization", "").partition(" ")
        try:
            if handler is None:  # the App endpoints authenticate with the App's JWT
                app = apps.app_of_jwt(world, token.strip())
                if operation_id == "apps/create-installation-access-token":
                    return (
                        201,
                        apps.exchange(world, app, int(params["installation_id"])),
                        app.bot.login,
                    )
                world.repo(params["owner"], params["repo"])
                return 200, apps.installation(self.owner.views, app, params["owner"]), app.bot.login
            person = (
                world.person_of(token.strip()) if scheme.lower() in ("token", "bearer") else None
            )
            if person is None:
                message = "Bad credentials" if token else "Requires authentication"
                return 401, {"message": message, "documentation_url": DOCS}, ""
            call = rest.Call(
                person, params, args, json.loads(body) if body else {}, world,
                self.owner.views, headers,
            )  # fmt: skip
            status, payload = handler(call)
            return status, payload, person.login
        except Refused as refused:
            return refused.status, _error(refused), ""

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        pairs = [("Content-Type", "application/json; charset=utf-8"), *(headers or {}).items()]
        self._send_raw(status, pairs, data)

    def _send_raw(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _error(refused: Refused) -> dict[str, Any]:
    return {"message": refused.message, "documentation_url": DOCS}


def _app_route(method: str, path: str) -> tuple[str, None, dict[str, str], str] | None:
    parts = path.strip("/").split("/")
    if (
        method == "POST"
        and len(parts) == 4
        and parts[:2] == ["app", "installations"]
        and parts[3] == "access_tokens"
    ):
        return "apps/create-installation-access-token", None, {"installation_id": parts[2]}, path
    if method == "GET" and len(parts) == 4 and parts[0] == "repos" and parts[3] == "installation":
        return "apps/get-repo-installation", None, {"owner": parts[1], "repo": parts[2]}, path
    return None
