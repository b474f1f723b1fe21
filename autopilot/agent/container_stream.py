"""The agent's stdout from inside a container, line by line, while it runs.

The Dagger SDK gives an exec's stdout only once the exec has ended. To heartbeat turns and
cost as a local run does, the agent's command runs under a small forwarder (FORWARDER_JS, run
by the image's node) that copies its stdout, as it comes, to a TCP listener in the worker,
reached through a host service bound into the container. The forwarder also writes it to its
own stdout, so the exec's buffered stdout holds the whole output too: when the stream could
not connect, or ended early, the rest is read from there.

The listener takes one connection, and only one that starts with the run's token: anything
else on the host that finds the port cannot feed the run events.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from types import TracebackType

from autopilot.agent.runner import STREAM_LINE_LIMIT

# Inside the container: where the forwarder is written, and how it finds the listener.
FORWARDER_PATH = "/opt/autopilot/stream-stdout.mjs"
ADDRESS_VAR = "AUTOPILOT_STREAM_ADDR"
STREAM_TOKEN_VAR = "AUTOPILOT_STREAM_TOKEN"
SERVICE_ALIAS = "autopilot-worker"
SERVICE_PORT = 7070
# A connection must say its token this soon, or it is dropped.
HELLO_TIMEOUT_S = 10.0

FORWARDER_JS = """\
// Runs the agent's command (argv after this file) with its stdout copied, as it comes, to
// the worker that started the container, and to this process's stdout. The exit status is
// the command's: its code, or 128 + the signal that ended it.
import { spawn } from "node:child_process";
import net from "node:net";
import os from "node:os";

const address = process.env.AUTOPILOT_STREAM_ADDR || "";
const token = process.env.AUTOPILOT_STREAM_TOKEN || "";
const env = { ...process.env };
delete env.AUTOPILOT_STREAM_ADDR;
delete env.AUTOPILOT_STREAM_TOKEN;

const [command, ...args] = process.argv.slice(2);
const child = spawn(command, args, { env, stdio: ["inherit", "pipe", "inherit"] });

let socket = null;
const cut = address.lastIndexOf(":");
if (cut > 0 && token) {
  const [host, port] = [address.slice(0, cut), Number(address.slice(cut + 1))];
  socket = net.createConnection({ host, port });
  // Without the worker the output still reaches it, all at once, through the exec's stdout.
  socket.on("error", () => { socket = null; });
  socket.write(token + "\\n");
}

child.stdout.on("data", (chunk) => {
  process.stdout.write(chunk);
  if (socket) socket.write(chunk);
});
child.on("error", (err) => {
  process.stderr.write(`cannot start ${command}: ${err.message}\\n`);
  process.exitCode = 127;
  if (socket) socket.end();
});
child.on("close", (code, signal) => {
  process.exitCode = signal ? 128 + (os.constants.signals[signal] || 0) : code;
  if (socket) socket.end();
  // A worker that stopped reading must not keep the container alive.
  setTimeout(() => process.exit(), 5000).unref();
});
"""


class StreamListener:
    """A listener on 127.0.0.1 for one run's forwarded stdout; lines go to `lines`, None last."""

    def __init__(self) -> None:
        self.token = secrets.token_hex(16)
        self.lines: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.connected = False
        self.port = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> StreamListener:
        self._server = await asyncio.start_server(
            self._accept, "127.0.0.1", 0, limit=STREAM_LINE_LIMIT
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        for handler in list(self._handlers):
            handler.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            try:
                hello = await asyncio.wait_for(reader.readline(), HELLO_TIMEOUT_S)
            except (TimeoutError, ValueError, ConnectionError):
                return
            if self.connected or not secrets.compare_digest(hello.strip(), self.token.encode()):
                return
            self.connected = True
            try:
                while line := await reader.readline():
                    self.lines.put_nowait(line)
            except (ValueError, ConnectionError):
                pass  # a line over the limit, or a reset: the exec's stdout has the rest
            self.lines.put_nowait(None)
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
