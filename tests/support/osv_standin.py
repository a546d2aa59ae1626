"""A stand-in for OSV's query API (what `pip-audit -s osv` asks), on a loopback port."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["OsvStandIn"]


class OsvStandIn:
    """Answers POST /v1/query: one made-up advisory for each package named in `vulnerable`.

    Use as a context manager; `url` is what PIP_AUDIT_OSV_URL takes.
    """

    def __init__(self, vulnerable: set[str]):
        self.vulnerable = vulnerable
        self.asked: list[str] = []
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                query = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                name = query["package"]["name"]
                standin.asked.append(name)
                answer = {"vulns": [standin.advisory(name)]} if name in standin.vulnerable else {}
                body = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1/query"

    @staticmethod
    def advisory(name: str) -> dict:
        return {
            "id": f"STANDIN-{name}",
            "summary": "a made-up advisory",
            "affected": [
                {
                    "package": {"name": name, "ecosystem": "PyPI"},
                    "ranges": [
                        {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "999"}]}
                    ],
                }
            ],
        }

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
