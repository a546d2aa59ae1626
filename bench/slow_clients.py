"""Slow and idle clients: read-one's latency with and without them, and /readyz meanwhile.

Hundreds of idle keep-alive connections (one request each, then silence; reopened silent when
the server closes them), dozens of slowloris clients (request headers at one byte a second,
never finished; reopened when the server answers) and dozens of slow readers (a 4 KB receive
buffer, ten requests for a 1.4 MB file pipelined, nothing read past the first buffers) are held
open while the normal read-one load runs. read-one's p99 is compared with the same load without
them (runs alternate: without, with, without, ...), and /readyz is polled twice a second
throughout. A phase of the normal run
(`python -m bench`), on the production server and on each `--variant`:
`--variant alone:WEB_FRONT=none` compares granian without its front door.
"""

import asyncio
import http.client
import resource
import socket
import threading
import time
from collections import Counter
from pathlib import Path
from statistics import median

from bench.errors import BenchError
from bench.load import run_wrk

FULL = {"idle": 500, "slow": 50, "readers": 60}
QUICK = {"idle": 20, "slow": 5, "readers": 5}
P99_RATIO_TARGET = 2.0
READYZ_EVERY_S = 0.5
READYZ_TIMEOUT_S = 5.0
HOST = "127.0.0.1"
# Each slowloris client's request: a line, then a header that grows a byte a second.
SLOW_START = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
IDLE_REQUEST = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
# Each slow reader's requests: the API docs page's script, ten times, never read.
LARGE_REQUESTS = 10 * b"GET /static/ninja/swagger-ui-bundle.js HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


async def read_response(reader: asyncio.StreamReader) -> bytes:
    """One HTTP/1.1 response, by Content-Length or chunked (/healthz is sent chunked)."""
    head = await reader.readuntil(b"\r\n\r\n")
    fields = dict(line.lower().split(b":", 1) for line in head.split(b"\r\n")[1:] if b":" in line)
    if fields.get(b"transfer-encoding", b"").strip() == b"chunked":
        return head + await reader.readuntil(b"\r\n0\r\n\r\n")
    return head + await reader.readexactly(int(fields.get(b"content-length", b"0")))


class HeldClients:
    """`idle` idle keep-alive connections and `slow` slowloris clients to `port`, held open by
    an event loop in a thread of their own. Use as a context manager."""

    def __init__(self, port: int, *, idle: int, slow: int, readers: int = 0):
        self.port, self.idle, self.slow, self.readers = port, idle, slow, readers
        self.open = Counter()  # connections open now, by kind
        self.most_open = Counter()
        self.connect_errors = 0
        self.idle_closed_after: list[float] = []  # seconds of silence until the server closed
        self.slow_answers: Counter = Counter()  # the status line each slow client got, if any
        self.slow_answered_after: list[float] = []
        self.slow_bytes_sent = 0
        self.loop = asyncio.new_event_loop()
        self.tasks: list[asyncio.Task] = []
        self.thread = threading.Thread(target=self._run, name="held-clients", daemon=True)

    def __enter__(self):
        wanted = (
            self.idle + self.slow + self.readers + 64
        )  # and the benchmark's own files and connections
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and soft < wanted:
            if hard != resource.RLIM_INFINITY and hard < wanted:
                raise BenchError(f"{wanted} open files needed, `ulimit -n` allows {hard}")
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        self.thread.start()
        deadline = time.monotonic() + 30
        while (
            self.open.total() < self.idle + self.slow + self.readers and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(lambda: [task.cancel() for task in self.tasks])
        self.thread.join(timeout=10)

    def _run(self):
        asyncio.set_event_loop(self.loop)

        async def everything():
            self.tasks = [asyncio.create_task(self._idle_client()) for _ in range(self.idle)]
            self.tasks += [asyncio.create_task(self._slow_client()) for _ in range(self.slow)]
            self.tasks += [asyncio.create_task(self._reader()) for _ in range(self.readers)]
            await asyncio.gather(*self.tasks, return_exceptions=True)

        self.loop.run_until_complete(everything())
        self.loop.close()

    async def _connect(self, kind: str, receive_buffer: int = 0):
        while True:
            try:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                if receive_buffer:  # before connecting, so that the window starts small
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
                sock.setblocking(False)
                await asyncio.get_running_loop().sock_connect(sock, (HOST, self.port))
                reader, writer = await asyncio.open_connection(sock=sock)
            except OSError:
                self.connect_errors += 1
                await asyncio.sleep(1)
                continue
            self.open[kind] += 1
            self.most_open[kind] = max(self.most_open[kind], self.open[kind])
            return reader, writer

    def _closed(self, kind: str, writer) -> None:
        self.open[kind] -= 1
        writer.close()

    async def _idle_client(self):
        first = True
        while True:
            reader, writer = await self._connect("idle")
            try:
                if first:  # one request, so that this is a kept-alive connection
                    writer.write(IDLE_REQUEST)
                    await read_response(reader)
                    first = False
                silent_since = time.monotonic()
                await reader.read(65536)  # until the server closes it (or sends a 408)
                self.idle_closed_after.append(time.monotonic() - silent_since)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                pass
            finally:
                self._closed("idle", writer)

    async def _slow_client(self):
        while True:
            reader, writer = await self._connect("slow")
            opened = time.monotonic()
            try:
                writer.write(SLOW_START)
                while True:
                    try:
                        answer = await asyncio.wait_for(reader.read(65536), timeout=1)
                    except TimeoutError:
                        writer.write(b"a")
                        await writer.drain()
                        self.slow_bytes_sent += 1
                        continue
                    status = answer.split(b"\r\n", 1)[0].decode(errors="replace") or "closed"
                    self.slow_answers[status] += 1
                    self.slow_answered_after.append(time.monotonic() - opened)
                    break
            except OSError:
                self.slow_answers["connection error"] += 1
            finally:
                self._closed("slow", writer)

    async def _reader(self):
        """Asks for ten large answers and never reads past what the loop's buffer takes in
        (about 128 KiB of the 14 MB): the server's writes to it stall, until it gives up."""
        _, writer = await self._connect("readers", receive_buffer=4096)
        try:
            writer.write(LARGE_REQUESTS)
            await asyncio.Event().wait()  # held until the phase ends
        finally:
            self._closed("readers", writer)

    def summary(self) -> dict:
        def seconds(values: list[float]) -> float | None:
            return round(median(values), 1) if values else None

        return {
            "idle_wanted": self.idle,
            "slow_wanted": self.slow,
            "idle_most_open": self.most_open["idle"],
            "slow_most_open": self.most_open["slow"],
            "connect_errors": self.connect_errors,
            "idle_closed_by_server": len(self.idle_closed_after),
            "idle_closed_after_s_median": seconds(self.idle_closed_after),
            "slow_bytes_sent": self.slow_bytes_sent,
            "slow_answers": dict(self.slow_answers),
            "slow_answered_after_s_median": seconds(self.slow_answered_after),
            "readers_wanted": self.readers,
            "readers_most_open": self.most_open["readers"],
        }


class ReadinessPoller:
    """GET /readyz every READYZ_EVERY_S seconds in a thread; what each answered, and when."""

    def __init__(self, port: int):
        self.port = port
        self.answers: list[tuple[int | str, float]] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._poll, name="readyz", daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopped.set()
        self.thread.join(timeout=READYZ_TIMEOUT_S + 2)

    def _poll(self):
        while not self.stopped.is_set():
            started = time.monotonic()
            connection = http.client.HTTPConnection(HOST, self.port, timeout=READYZ_TIMEOUT_S)
            try:
                connection.request("GET", "/readyz")
                status: int | str = connection.getresponse().status
            except OSError as error:
                status = type(error).__name__
            finally:
                connection.close()
            self.answers.append((status, time.monotonic() - started))
            self.stopped.wait(max(0, READYZ_EVERY_S - (time.monotonic() - started)))

    def summary(self) -> dict:
        statuses = Counter(str(status) for status, _ in self.answers)
        slowest = max((seconds for _, seconds in self.answers), default=0)
        return {
            "polls": len(self.answers),
            "statuses": dict(statuses),
            "all_200": bool(self.answers) and statuses == Counter({"200": len(self.answers)}),
            "slowest_ms": round(slowest * 1000, 1),
        }


def measure_one(
    url: str,
    port: int,
    wrk: str,
    dataset: Path,
    *,
    connections: int,
    seconds: int,
    threads: int,
    counts: dict,
    rounds: int = 1,
) -> dict:
    """read-one without, with, without... the held clients (`rounds` times with them);
    /readyz polled throughout. The ratio compares the medians of the p99s with and without."""

    def read_one() -> dict:
        return run_wrk(wrk, url, "read-one", connections, seconds, dataset, threads)

    without, during, held_summaries = [read_one()], [], []
    with ReadinessPoller(port) as readiness:
        for _ in range(rounds):
            with HeldClients(port, **counts) as held:
                time.sleep(1)  # the slow clients have sent their first bytes
                during.append(read_one())
            held_summaries.append(held.summary())
            without.append(read_one())
    p99_without = round(median(run["p99_ms"] for run in without), 2)
    p99_with = round(median(run["p99_ms"] for run in during), 2)
    # A run that got no answer has no latency to compare: it failed outright.
    served = all(run["requests"] > 0 for run in during)
    ratio = round(p99_with / max(p99_without, 0.01), 2) if served else None
    return {
        "connections": connections,
        "seconds": seconds,
        "rounds": rounds,
        "without": without,
        "during": during,
        "p99_without_ms": p99_without,
        "p99_with_ms": p99_with,
        "rps_without": median(run["rps"] for run in without),
        "rps_with": median(run["rps"] for run in during),
        "errors_with": sum(run["errors"] for run in during),
        "p99_ratio": ratio,
        "p99_ratio_target": P99_RATIO_TARGET,
        "p99_met": ratio is not None and ratio <= P99_RATIO_TARGET,
        "clients": held_summaries[-1],
        "readyz": readiness.summary(),
    }


def measure(plan, wrk: str, dataset: Path, by_name: dict, say=print) -> dict:
    """The scenario on the production server and each variant of it (the phase's entry)."""
    counts = QUICK if plan.quick else FULL
    rounds = 1 if plan.quick else 3  # the machine's noise moves a p99 by more than 2x
    results = {}
    for name, server in by_name.items():
        if name != "production" and not name.startswith("variant "):
            continue
        say(
            f"Slow and idle clients on {name}: {counts['idle']} idle, {counts['slow']} slow, "
            f"{counts['readers']} slow readers"
        )
        results[name] = measure_one(
            server.url,
            server.port,
            wrk,
            dataset,
            connections=min(plan.connections),
            seconds=plan.seconds,
            threads=plan.wrk_threads,
            counts=counts,
            rounds=rounds,
        )
        found = results[name]
        say(
            f"  read-one p99 {found['p99_without_ms']} ms without, {found['p99_with_ms']} ms "
            f"with them; /readyz {found['readyz']['statuses']}"
        )
    return {"counts": counts, "servers": results}


def verdict(row: dict) -> str:
    if row["p99_ratio"] is None:
        return "**no answers**"
    return f"**{row['p99_ratio']}x**" + ("" if row["p99_met"] else " (over)")


def markdown_section(report: dict) -> list[str]:
    """The report's section (bench/report.py), empty when the run had no such phase."""
    found = report.get("slow_clients")
    if not found:
        return []
    counts = found["counts"]
    lines = [
        "",
        "## Slow and idle clients",
        "",
        f"read-one with {counts['idle']} idle keep-alive connections, {counts['slow']} "
        "slowloris clients (headers at a byte a second) and "
        f"{counts.get('readers', 0)} slow readers (ten 1.4 MB answers pipelined, never read) "
        "held open, against the same load "
        "without them (the runs alternate, without first and last; medians of each side's "
        f"p99). /readyz polled every {READYZ_EVERY_S:g} s throughout. Target: p99 at most "
        f"{P99_RATIO_TARGET:g}x, /readyz always 200.",
        "",
        "| server | conns | runs with | p99 without | p99 with | x | req/s without | with "
        "| errors | /readyz | slowest /readyz ms | idle held | slow held | readers held "
        "| idle closed by server | slow answered |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|--:|--:|--:|--:|---|",
    ]
    for name, row in found["servers"].items():
        clients, readiness = row["clients"], row["readyz"]
        statuses = ", ".join(f"{status} x{n}" for status, n in readiness["statuses"].items())
        answers = ", ".join(f"{status} x{n}" for status, n in clients["slow_answers"].items())
        closed = clients["idle_closed_by_server"]
        if closed:
            closed = f"{closed} (after {clients['idle_closed_after_s_median']} s)"
        lines.append(
            f"| {name} | {row['connections']} | {row['rounds']} x {row['seconds']} s "
            f"| {row['p99_without_ms']} | {row['p99_with_ms']} "
            f"| {verdict(row)} "
            f"| {row['rps_without']:,.0f} | {row['rps_with']:,.0f} | {row['errors_with']} "
            f"| {statuses or 'none'} | {readiness['slowest_ms']} "
            f"| {clients['idle_most_open']} | {clients['slow_most_open']} "
            f"| {clients.get('readers_most_open', 0)} | {closed} "
            f"| {answers or 'none yet'} |"
        )
    return lines
