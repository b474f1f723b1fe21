"""A stand-in Dagger engine session: the SDK's GraphQL requests answered on a loopback port.

This machine has no container runtime, so the container tests stop at the engine boundary, as
Dagger's own SDK tests do: the SDK connects through DAGGER_SESSION_PORT/DAGGER_SESSION_TOKEN
(here through an EngineAccess with the same two values), fetches the schema by introspection,
and sends its queries. The stand-in serves a schema of the part of Dagger's API the pipeline
uses, written here with the SDK's field and argument names, and executes every query against
it with graphql-core, so a query the SDK builds wrongly fails here as it would on an engine.

It checks the basic-auth token, records every request (`queries`), and keeps what the
pipeline built as plain objects: a Container is its list of operations. What an exec prints
and what an export writes are the test's to say (`on_exec`, `on_export`). Faults: `hang_on`
holds a matching request without answering until the client goes away (then `aborted` has
it); `drop_on` closes the connection without an answer.
"""

from __future__ import annotations

import base64
import itertools
import json
import select
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import graphql

SDL = """
scalar Platform

enum ReturnType { ANY FAILURE SUCCESS }
enum NetworkProtocol { TCP UDP }

input PortForward { backend: Int!, frontend: Int, protocol: NetworkProtocol }

interface Node { id: ID! }

type Query {
  container(platform: Platform): Container!
  host: Host!
  setSecret(name: String!, plaintext: String!): Secret!
  node(id: ID!): Node
  version: String!
}

type Host implements Node {
  id: ID!
  directory(path: String!, exclude: [String!], include: [String!], noCache: Boolean,
            gitignore: Boolean): Directory!
  service(ports: [PortForward!]!, host: String): Service!
}

type Container implements Node {
  id: ID!
  from(address: String!): Container!
  withExec(args: [String!]!, useEntrypoint: Boolean, stdin: String, redirectStdin: String,
           redirectStdout: String, redirectStderr: String, expect: ReturnType,
           experimentalPrivilegedNesting: Boolean, insecureRootCapabilities: Boolean,
           expand: Boolean, noInit: Boolean): Container!
  withNewFile(path: String!, contents: String!, permissions: Int, owner: String,
              expand: Boolean): Container!
  withWorkdir(path: String!, expand: Boolean): Container!
  withDirectory(path: String!, source: ID!, exclude: [String!], include: [String!],
                gitignore: Boolean, owner: String, expand: Boolean, permissions: Int): Container!
  withMountedDirectory(path: String!, source: ID!, owner: String, readOnly: Boolean,
                       expand: Boolean): Container!
  withUser(name: String!): Container!
  withEnvVariable(name: String!, value: String!, expand: Boolean): Container!
  withSecretVariable(name: String!, secret: ID!): Container!
  withServiceBinding(alias: String!, service: ID!): Container!
  directory(path: String!, expand: Boolean): Directory!
  sync: ID!
  exitCode: Int!
  stdout: String!
  stderr: String!
  combinedOutput: String!
}

type Directory implements Node {
  id: ID!
  export(path: String!, wipe: Boolean): String!
}

type Secret implements Node { id: ID! }
type Service implements Node { id: ID! }
"""


@dataclass
class ExecResult:
    exit_code: int = 0
    stdout: str = ""
    stderr: str = ""


@dataclass
class Recorded:
    query: str
    authorized: bool


class Obj:
    """Something the pipeline built; `id` registers it so later queries can name it."""

    def __init__(self, engine: StandIn) -> None:
        self.engine = engine
        self._id: str | None = None

    def id(self, _info: Any) -> str:
        if self._id is None:
            self._id = f"{type(self).__name__}:{next(self.engine.counter)}"
            self.engine.objects[self._id] = self
        return self._id


class Secret(Obj):
    def __init__(self, engine: StandIn, name: str, plaintext: str) -> None:
        super().__init__(engine)
        self.name, self.plaintext = name, plaintext


class Service(Obj):
    def __init__(self, engine: StandIn, ports: list[dict[str, Any]], host: str) -> None:
        super().__init__(engine)
        self.ports, self.host = ports, host


class Directory(Obj):
    def __init__(self, engine: StandIn, source: str, container: Container | None = None) -> None:
        super().__init__(engine)
        self.source = source  # a host path, or the path inside `container`
        self.container = container

    def export(self, _info: Any, path: str, wipe: bool = False) -> str:
        self.engine.exports.append((self, path, wipe))
        self.engine.on_export(self, path, wipe)
        return path


class Host(Obj):
    def directory(self, _info: Any, path: str, **_options: Any) -> Directory:
        return Directory(self.engine, path)

    def service(self, _info: Any, ports: list[dict[str, Any]], host: str = "localhost") -> Service:
        return Service(self.engine, ports, host)


@dataclass
class Op:
    name: str
    args: dict[str, Any]


class Container(Obj):
    def __init__(self, engine: StandIn, ops: tuple[Op, ...] = ()) -> None:
        super().__init__(engine)
        self.ops = ops
        self._result: ExecResult | None = None

    def _with(self, name: str, args: dict[str, Any]) -> Container:
        return Container(self.engine, (*self.ops, Op(name, args)))

    def __getattr__(self, name: str) -> Callable[..., Container]:
        if not name.startswith("with") and name != "from_":
            raise AttributeError(name)
        return lambda _info, **args: self._with(name.removesuffix("_"), args)

    def op(self, name: str) -> list[dict[str, Any]]:
        return [op.args for op in self.ops if op.name == name]

    def env(self) -> dict[str, str]:
        return {args["name"]: args["value"] for args in self.op("withEnvVariable")}

    def secret(self, variable: str) -> Secret:
        ids = [a["secret"] for a in self.op("withSecretVariable") if a["name"] == variable]
        found = self.engine.objects[ids[-1]]
        assert isinstance(found, Secret)
        return found

    def result(self) -> ExecResult:
        if self._result is None:
            self._result = self.engine.on_exec(self)
        return self._result

    def sync(self, info: Any) -> str:
        self.result()
        return self.id(info)

    def exitCode(self, _info: Any) -> int:
        return self.result().exit_code

    def stdout(self, _info: Any) -> str:
        return self.result().stdout

    def stderr(self, _info: Any) -> str:
        return self.result().stderr

    def combinedOutput(self, _info: Any) -> str:
        result = self.result()
        return result.stdout + result.stderr

    def directory(self, _info: Any, path: str, **_options: Any) -> Directory:
        return Directory(self.engine, path, self)


class Root:
    def __init__(self, engine: StandIn) -> None:
        self.engine = engine

    def container(self, _info: Any, **_options: Any) -> Container:
        return Container(self.engine)

    def host(self, _info: Any) -> Host:
        return Host(self.engine)

    def setSecret(self, _info: Any, name: str, plaintext: str) -> Secret:
        return Secret(self.engine, name, plaintext)

    def node(self, _info: Any, id: str) -> Obj:
        return self.engine.objects[id]

    def version(self, _info: Any) -> str:
        return "v0.21.11"


def _resolve(parent: Any, info: Any, /, **args: Any) -> Any:
    name = "from_" if info.field_name == "from" else info.field_name
    value = getattr(parent, name, None)
    return value(info, **args) if callable(value) else value


@dataclass
class StandIn:
    token: str = "standin-session-token"
    port: int = 0
    queries: list[Recorded] = field(default_factory=list)
    in_flight: list[str] = field(default_factory=list)
    aborted: list[str] = field(default_factory=list)
    exports: list[tuple[Directory, str, bool]] = field(default_factory=list)
    objects: dict[str, Obj] = field(default_factory=dict)
    counter: itertools.count[int] = field(default_factory=itertools.count)
    on_exec: Callable[[Container], ExecResult] = lambda _c: ExecResult()
    on_export: Callable[[Directory, str, bool], None] = lambda _d, _p, _w: None
    hang_on: Callable[[str], bool] = lambda _q: False
    drop_on: Callable[[str], bool] = lambda _q: False

    def __post_init__(self) -> None:
        self.schema = graphql.build_schema(SDL)
        node = self.schema.get_type("Node")
        assert isinstance(node, graphql.GraphQLInterfaceType)
        node.resolve_type = lambda obj, _info, _type: type(obj).__name__
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> StandIn:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # --- what the tests read ---------------------------------------------------------------

    def pipeline(self) -> list[str]:
        """The recorded queries, the schema's introspection left out."""
        return [r.query for r in self.queries if "__schema" not in r.query]

    def executed(self) -> list[Container]:
        """Every container whose exec the pipeline ran, in order."""
        return [c for c in self.objects.values() if isinstance(c, Container) and c._result]

    # --- serving ---------------------------------------------------------------------------

    def answer(self, query: str, variables: dict[str, Any] | None) -> dict[str, Any]:
        with self._lock:  # one query at a time: the objects are plain Python
            result = graphql.graphql_sync(
                self.schema,
                query,
                root_value=Root(self),
                variable_values=variables,
                field_resolver=_resolve,
            )
        answer: dict[str, Any] = {"data": result.data}
        if result.errors:
            answer["errors"] = [error.formatted for error in result.errors]
        return answer

    def hold(self, connection: socket.socket, query: str) -> None:
        """Answer nothing until the client closes its side (or the stand-in stops)."""
        with self._lock:
            self.in_flight.append(query)
        while not self._stop.is_set():
            readable, _, _ = select.select([connection], [], [], 0.05)
            if readable and not connection.recv(1, socket.MSG_PEEK):
                with self._lock:
                    self.aborted.append(query)
                return


def _handler_for(engine: StandIn) -> type[BaseHTTPRequestHandler]:
    expected = "Basic " + base64.b64encode(f"{engine.token}:".encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: the tests read `queries`

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            query, variables = body["query"], body.get("variables")
            authorized = self.headers.get("Authorization") == expected
            engine.queries.append(Recorded(query, authorized))
            if not authorized:
                self._reply(401, {"message": "unauthorized"})
                return
            if engine.drop_on(query):
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if engine.hang_on(query):
                engine.hold(self.connection, query)
                self.close_connection = True
                return
            self._reply(200, engine.answer(query, variables))

        def _reply(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler
