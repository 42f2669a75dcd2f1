"""`rft view`: a local web page over a run, pipeline or evaluation folder (curves, rollouts with their
grades, per-problem results, paired comparisons), served by the standard library.

Safe by default: it binds 127.0.0.1 unless a host is given explicitly, answers GET (and HEAD) only, serves its
own static files by fixed name and data files only under the folder, refuses requests whose Host header is
not the address it serves (a web page elsewhere cannot reach it through DNS rebinding), and sends a Content
Security Policy that allows no inline script. The page renders every model-written string as text."""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import parse_qs, urlsplit

import typer

from rft.app.cli_base import fail, out
from rft.graders.sandbox.service import is_loopback

if TYPE_CHECKING:
    from rft.app.view_data import RowFilter, ViewRoot
    from rft.app.view_regrade import HeldoutRegrader

__all__ = ["ViewServer", "make_server", "serve_in_thread", "is_loopback", "view_cmd", "STATIC"]

STATIC = {  # URL path -> (file in rft/app/view_static, content type)
    "/": ("index.html", "text/html; charset=utf-8"),
    "/view.js": ("view.js", "text/javascript; charset=utf-8"),
    "/view.css": ("view.css", "text/css; charset=utf-8"),
}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")  # fmt: skip
PAGE_MAX = 500  # rows per page at most


class ViewServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: ViewRoot, host: str, port: int) -> None:
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), Handler)
        self.view = root
        self.regraders: dict[Path, HeldoutRegrader] = {}
        self.regrade_lock = threading.Lock()
        port = self.server_address[1]
        names = (host if ":" not in host else f"[{host}]", "127.0.0.1", "localhost", "[::1]")
        # Bound to every interface (0.0.0.0, ::), the page is reached by names this process cannot know.
        self.allowed_hosts: set[str] | None = None if _unspecified(host) else {f"{h}:{port}" for h in names}

    def regrader(self, run: Path) -> HeldoutRegrader:
        """The held-out regrade of a run's rollouts (its grader loaded once)."""
        from rft.app.view_regrade import HeldoutRegrader  # rft.envs: only when the filter is used

        with self.regrade_lock:
            if run not in self.regraders:
                self.regraders[run] = HeldoutRegrader(run)
            return self.regraders[run]

    @property
    def url(self) -> str:
        host, port = str(self.server_address[0]), self.server_address[1]
        return f"http://{host if ':' not in host else f'[{host}]'}:{port}/"


def _unspecified(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return host == ""


def make_server(folder: Path, host: str = "127.0.0.1", port: int = 8080) -> ViewServer:
    """A server for `folder` (not started: call serve_forever, or run it in a thread)."""
    from rft.app.view_data import ViewRoot  # numpy: imported when a viewer starts, not with the CLI

    return ViewServer(ViewRoot(folder), host, port)


def _int(
    q: dict[str, list[str]], key: str, default: int | None, lo: int = 0, hi: int = 1 << 62
) -> int | None:
    raw = q.get(key, [""])[0]
    if raw == "":
        return default
    value = int(raw)
    if not lo <= value <= hi:
        raise ValueError(f"{key}={value} is out of range {lo}..{hi}")
    return value


def _float(q: dict[str, list[str]], key: str) -> float | None:
    raw = q.get(key, [""])[0]
    return float(raw) if raw != "" else None


def _row_filter(q: dict[str, list[str]]) -> RowFilter:
    from rft.app.view_data import RowFilter

    def s(k: str) -> str:
        return q.get(k, [""])[0]

    return RowFilter(step=_int(q, "step", None, -1), status=s("status"), suite=s("suite"), id=s("id"),
                     text=s("q"), reward_min=_float(q, "reward_min"), reward_max=_float(q, "reward_max"),
                     heldout_failed=s("heldout_failed") == "1")  # fmt: skip


class Handler(BaseHTTPRequestHandler):
    server: ViewServer
    server_version = "rft-view"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the terminal shows the URL only
        pass

    def do_HEAD(self) -> None:
        self.do_GET(head=True)

    def do_GET(self, head: bool = False) -> None:
        allowed = self.server.allowed_hosts
        if allowed is not None and self.headers.get("Host", "") not in allowed:
            return self._send(
                421, {"error": f"Host {self.headers.get('Host')!r} is not this viewer's address"}, head
            )
        url = urlsplit(self.path)
        if url.path in STATIC:
            name, ctype = STATIC[url.path]
            body = files("rft.app").joinpath("view_static", name).read_bytes()
            return self._send(200, body, head, ctype)
        if url.path == "/favicon.ico":
            return self._send(204, b"", head, "image/x-icon")
        if not url.path.startswith("/api/"):
            return self._send(404, {"error": f"no page {url.path}"}, head)
        q = parse_qs(url.query)
        from rft.app.view_data import PathOutsideRoot

        try:
            return self._send(200, self._api(url.path[5:], q), head)
        except PathOutsideRoot as e:
            return self._send(404, {"error": str(e)}, head)
        except (ValueError, KeyError) as e:
            return self._send(400, {"error": f"{type(e).__name__}: {e}"}, head)
        except FileNotFoundError as e:
            return self._send(404, {"error": str(e)}, head)

    def _api(self, name: str, q: dict[str, list[str]]) -> Any:
        from rft.app.view_data import query

        view = self.server.view
        if name == "tree":
            return view.tree()
        if name == "curves":
            return view.curves()
        if name == "rows":
            index = view.index(q["file"][0])
            flt = _row_filter(q)
            regrade = None
            if flt.heldout_failed and index.path.name == "rollouts.jsonl":
                regrade = self.server.regrader(index.path.parent)
            page = query(
                index,
                flt,
                cursor=_int(q, "cursor", 0) or 0,
                limit=_int(q, "limit", 50, 1, PAGE_MAX) or 50,
                enrich=regrade,
            )
            if regrade is not None:
                page["heldout_note"] = regrade.note
            if q.get("steps", [""])[0] == "1" and index.with_steps:
                import numpy as np

                page["steps"] = np.unique(index.step_array()).tolist()
            return page
        if name == "eval":
            return view.evaluation(q["path"][0])
        if name == "compare":
            return view.compare(q["path"][0])
        raise KeyError(f"no API {name!r} (tree, curves, rows, eval, compare)")

    def _send(self, code: int, body: Any, head: bool, ctype: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body, allow_nan=False, default=str).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if not head:
            self.wfile.write(data)


def serve_in_thread(server: ViewServer) -> threading.Thread:
    """Serve in a daemon thread (tests, screenshots); `server.shutdown()` stops it."""
    t = threading.Thread(target=server.serve_forever, name="rft-view", daemon=True)
    t.start()
    return t


def view_cmd(
    path: Annotated[Path, typer.Argument(help="a run, pipeline (rft demo's) or evaluation folder")],
    port: Annotated[int, typer.Option(help="port to serve on (0: any free port)")] = 8080,
    host: Annotated[
        str | None,
        typer.Option(help="address to bind; 127.0.0.1 unless given (another one exposes the rollouts)"),
    ] = None,
) -> None:
    """A local web page over a run folder: curves over steps (pipeline stages marked), rollouts by step with
    filters and their grades, per-problem evaluation results and paired comparisons. Read-only; Ctrl-C
    stops it."""
    if not path.is_dir():
        fail(f"no such folder: {path} (give a run, pipeline or evaluation folder)")
    bind = host or "127.0.0.1"
    try:
        server = make_server(path, bind, port)
    except OSError as e:
        fail(f"cannot serve on {bind}:{port}: {e.strerror or e} (pick another --port, or --port 0)")
    if not is_loopback(bind):
        out.print(
            f"[yellow]serving on {bind}: anyone who can reach this address can read the rollouts[/yellow]"
        )
    out.print(f"rft view: {server.url}  ({server.view.root}; Ctrl-C stops)", soft_wrap=True, highlight=False)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
