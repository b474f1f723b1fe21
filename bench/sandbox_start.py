"""What starting a sandboxed run costs (issue 29), part by part. See bench/README.md.

    .venv/bin/python -m bench.sandbox_start [--runs 30]

Five commands, each run `--runs` times, taking turns (one of each per round, the order
rotating from round to round): a bare `true`; `true` behind `setpriv --pdeathsig`; `true` in
the sandbox without the gateway (setpriv and bwrap); `true` in the sandbox with the gateway
(the socat bridge, its readiness probe and the check that the worker lives); and one model
API request from inside through the bridge and the egress proxy to a loopback upstream. Each
part is the difference of two neighbours' medians: setpriv = setpriv - bare, bwrap = sandbox -
setpriv, bridge = gateway - sandbox, first request = request - gateway (the client's `sh`,
`socat` and `grep` included). Wall, CPU of every process of the run (this process adopts
the sandbox's pid 1, which bwrap's launcher leaves behind when the command is done) and this
process's own CPU (the worker's part: starting the run, the proxy serving it), in ms, median
and p90; and the worker's CPU to compute bwrap's arguments (`Sandbox.wrap`).
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from autopilot.agent import Egress, Gateway, Layout, Sandbox, detect_sandbox
from autopilot.agent.sandbox import GATEWAY_PORT
from autopilot.infra import exit_now
from bench import report

DEFAULT_RUNS = 30
PR_SET_CHILD_SUBREAPER = 36
WRAP_CALLS = 200
KINDS = ("bare", "setpriv", "sandbox", "gateway", "request")
PARTS = {
    "setpriv": ("setpriv", "bare"),
    "bwrap": ("sandbox", "setpriv"),
    "socat bridge": ("gateway", "sandbox"),
    "proxy's first request": ("request", "gateway"),
}
# One model API request as the CLI sends it, through the bridge; the upstream answers 200.
REQUEST = (
    "printf 'POST /v1/messages HTTP/1.1\\r\\nHost: api\\r\\nx-api-key: %s\\r\\n"
    'Content-Length: 2\\r\\n\\r\\n{}\' "$1" | socat -t 5 - TCP:127.0.0.1:{port} | '
    "grep -q '^HTTP/1.1 200'"
)


async def _upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """The model API's stand-in: reads a request head and its 2-byte body, answers 200."""
    await reader.readuntil(b"\r\n\r\n")
    await reader.readexactly(2)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
    await writer.drain()
    writer.close()


def children_cpu_s() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def own_cpu_s() -> float:
    """This process's: the worker's part (starting the run, and the proxy serving it)."""
    return time.process_time()


def become_subreaper() -> None:
    """Adopt the sandbox's pid 1 when bwrap's launcher leaves it (it exits as soon as the
    command has): reaped here, its CPU and its children's count in RUSAGE_CHILDREN."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def reap_orphans() -> None:
    """Wait for every adopted process (only ours: this process starts nothing else)."""
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


async def timed(argv: Sequence[str]) -> tuple[float, float, float]:
    """(wall, CPU of all its processes, this process's CPU) in ms of one run of `argv`, which
    must succeed. Wall ends when the command is done, as the worker sees it; CPU counts what
    ran after that too."""
    cpu, own, started = children_cpu_s(), own_cpu_s(), time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, said = await process.communicate()
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"{argv[-1]} failed ({process.returncode}): {said.decode()[-300:]}")
    own = own_cpu_s() - own
    await asyncio.to_thread(reap_orphans)
    return wall * 1000, (children_cpu_s() - cpu) * 1000, own * 1000


def quantiles(values: Sequence[float]) -> dict[str, float]:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return {"median": round(statistics.median(ordered), 2), "p90": round(p90, 2)}


def wrap_cpu_ms(wrap: Callable[[], list[str]], calls: int = WRAP_CALLS) -> float:
    """The worker's own CPU per `Sandbox.wrap` call, in ms."""
    started = time.process_time()
    for _ in range(calls):
        wrap()
    return round((time.process_time() - started) * 1000 / calls, 3)


async def measure(runs: int, root: Path, sandbox: Sandbox | None = None) -> dict[str, Any]:
    sandbox = sandbox or detect_sandbox()
    upstream = await asyncio.start_server(_upstream, "127.0.0.1", 0)
    port = upstream.sockets[0].getsockname()[1]
    env = {"ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}", "ANTHROPIC_API_KEY": "bench"}
    egress = await Egress(root / "egress.sock", env).start()
    gateway = Gateway(egress.socket_path)
    layout = Layout(workdir=root, writable=[root / "space"], tmp=root / "tmp")
    request = REQUEST.replace("{port}", str(GATEWAY_PORT))
    try:
        with egress.grant(model_api=True) as grant:
            argvs = {
                "bare": ["true"],
                "setpriv": [*sandbox.death, "true"],
                "sandbox": sandbox.wrap(["true"], layout),
                "gateway": sandbox.wrap(["true"], layout, gateway),
                "request": sandbox.wrap(["sh", "-c", request, "sh", grant.token], layout, gateway),
            }
            walls: dict[str, list[float]] = {kind: [] for kind in KINDS}
            cpus: dict[str, list[float]] = {kind: [] for kind in KINDS}
            owns: dict[str, list[float]] = {kind: [] for kind in KINDS}
            for round_ in range(runs):
                shift = round_ % len(KINDS)
                for kind in KINDS[shift:] + KINDS[:shift]:
                    wall, cpu, own = await timed(argvs[kind])
                    walls[kind].append(wall)
                    cpus[kind].append(cpu)
                    owns[kind].append(own)
    finally:
        await egress.close()
        upstream.close()
        await upstream.wait_closed()
    kinds = {
        kind: {
            "wall_ms": quantiles(walls[kind]),
            "cpu_ms": quantiles(cpus[kind]),
            "worker_cpu_ms": quantiles(owns[kind]),
        }
        for kind in KINDS
    }
    parts = {
        part: {
            measure: round(kinds[later][measure]["median"] - kinds[earlier][measure]["median"], 2)
            for measure in ("wall_ms", "cpu_ms", "worker_cpu_ms")
        }
        for part, (later, earlier) in PARTS.items()
    }
    return {
        "runs": runs,
        "kinds": kinds,
        "parts": parts,
        "wrap_cpu_ms": wrap_cpu_ms(lambda: sandbox.wrap(["true"], layout, gateway)),
        "bwrap_arguments": len(argvs["gateway"]),
    }


def sandbox_start(runs: int = DEFAULT_RUNS) -> dict[str, Any]:
    """The section: `measure` in a scratch folder of its own."""
    become_subreaper()
    with tempfile.TemporaryDirectory(prefix="autopilot-sandbox-start-") as scratch:
        return asyncio.run(measure(runs, Path(scratch)))


def table(result: dict[str, Any]) -> str:
    body = [
        [
            kind,
            f"{figures['wall_ms']['median']:.1f}",
            f"{figures['wall_ms']['p90']:.1f}",
            f"{figures['cpu_ms']['median']:.1f}",
            f"{figures['cpu_ms']['p90']:.1f}",
            f"{figures['worker_cpu_ms']['median']:.1f}",
        ]
        for kind, figures in result["kinds"].items()
    ]
    body += [
        [
            f"= {part}",
            f"{figures['wall_ms']:+.1f}",
            "",
            f"{figures['cpu_ms']:+.1f}",
            "",
            f"{figures['worker_cpu_ms']:+.1f}",
        ]
        for part, figures in result["parts"].items()
    ]
    header = [
        f"{result['runs']} runs each, ms",
        "wall median",
        "p90",
        "CPU median",
        "p90",
        "worker CPU",
    ]
    return report.table(header, body, "lrrrrr")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sandbox_start", description=__doc__)
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS, help="runs of each command")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    result = sandbox_start(max(1, args.runs))
    print(table(result))
    print(
        f"Sandbox.wrap: {result['wrap_cpu_ms']:.2f} ms of the worker's CPU per run "
        f"({result['bwrap_arguments']} arguments); load average {os.getloadavg()[0]:.2f}"
    )
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    exit_now(main())
