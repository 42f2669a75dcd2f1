"""`rft eval --engine openai` throughput against a served model, by `--concurrency`.

Two servers on 127.0.0.1: a stand-in API that answers every chat request right after a fixed latency (what a
hosted API or a busy vLLM looks like from the client: time spent waiting, not computing), and `rft serve` on a
tiny model (one model lock: the requests queue there, so concurrency only overlaps HTTP and grading).
Anchor: concurrency 1 against the same server in the same run. Each row is one `evaluate_suite` of `--limit`
addition-v0 problems (greedy, grading in this process), best of `--repeat`.
Run: python bench/bench_served_eval.py [--limit 48] [--latency 0.1] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from rft.eval.evaluate import evaluate_suite
from rft.eval.spec import EvalSpec, ServerSpec

SUITE = "rft/addition-v0"


def latency_server(latency: float) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            time.sleep(latency)
            a, b = map(int, re.findall(r"\d+", body["messages"][-1]["content"]))
            doc = {"choices": [{"index": 0, "finish_reason": "stop",
                                "message": {"role": "assistant", "content": f"\\boxed{{{a + b}}}"}}]}  # fmt: skip
            data = json.dumps(doc).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def run(url: str, model: str, limit: int, concurrency: int, repeat: int, out: Path) -> tuple[float, float]:
    """(best seconds, pass@1) of one evaluation at `concurrency`."""
    best, score = float("inf"), 0.0
    for _ in range(repeat):
        spec = EvalSpec(suite=SUITE, limit=limit, max_new_tokens=12, grader_workers=0, engine="openai",
                        server=ServerSpec(base_url=url, concurrency=concurrency))  # fmt: skip
        t0 = time.perf_counter()
        scored = evaluate_suite(model, spec, out)
        best = min(best, time.perf_counter() - t0)
        score = next(r["value"] for r in scored["results"] if r["metric"] == "pass@1")
    return best, score


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=48)
    ap.add_argument("--latency", type=float, default=0.1)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()

    import torch

    from rft.app.serve import serve
    from rft.tiny import save_tiny

    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="rft-bench-served-"))
    httpd = latency_server(args.latency)
    stand_in = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    model = save_tiny(tmp / "model", corpus=["What is 12 + 34?", "\\boxed{46}"])
    print(
        f"{args.limit} problems of {SUITE}, best of {args.repeat}; anchor: concurrency 1 on the same server"
    )
    print(
        f"{'server':<28} {'concurrency':>11} {'seconds':>8} {'problems/s':>10} {'pass@1':>7} {'vs anchor':>9}"
    )
    with serve(str(model)) as tiny:
        for name, url, served_name, levels in (
            (f"stand-in API ({args.latency * 1000:.0f} ms)", stand_in, "m", (1, 4, 16)),
            ("rft serve (tiny model)", tiny.url, str(model), (1, 4)),
        ):
            anchor = None
            for c in levels:
                seconds, score = run(url, served_name, args.limit, c, args.repeat, tmp / "eval")
                anchor = anchor or seconds
                print(f"{name:<28} {c:>11} {seconds:>8.2f} {args.limit / seconds:>10.1f} {score:>7.2f} "
                      f"{anchor / seconds:>8.2f}x")  # fmt: skip
    httpd.shutdown()


if __name__ == "__main__":
    main()
