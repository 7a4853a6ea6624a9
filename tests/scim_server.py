"""A real SCIM 2.0 server for fedgate's tests: scim2-server (PyPI) in memory, behind a thin test harness that adds
what a provisioning client meets in the wild and the library leaves to its host:

- authentication: static bearer tokens (--token) and/or an OAuth 2.0 client-credentials token endpoint
  (--client ID:SECRET) at /oauth/token that answers like Alibaba's (expires_in as a string);
- fault injection, switched at run time through POST /_control: `throttle` (answer the next N SCIM requests with
  429 and Retry-After), `fail_writes_after` (every write after N more succeeds with 500), `reset`;
- GET /_control: request counts by method, tokens issued, requests throttled and failed;
- GET /_control/users: every user, without authentication (for assertions).

Listens on 127.0.0.1 only; prints "READY <port>" once it accepts connections.
"""

import argparse
import base64
import io
import json
import secrets
import sys
import threading
import urllib.parse
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from scim2_models import ScimProvider
from scim2_server.memory import InMemoryStorage
from scim2_server.service import ScimService
from scim2_server.testserver.application import BearerTokenApplication
from scim2_server.utils import (
    load_default_resource_types,
    load_default_schemas,
    load_default_service_provider_config,
)


class ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


def json_response(start_response, status, body, headers=()):
    data = json.dumps(body).encode()
    start_response(
        status,
        [("Content-Type", "application/scim+json"), ("Content-Length", str(len(data))), *headers],
    )
    return [data]


def scim_error(start_response, status, detail, headers=()):
    code = status.split()[0]
    body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": code, "detail": detail}
    return json_response(start_response, status, body, headers)


class Harness:
    def __init__(self, app, tokens, client):
        self.app = app
        self.tokens = set(tokens)
        self.client = client
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.counts = {}
        self.issued = 0
        self.throttle = 0
        self.throttled = 0
        self.retry_after = "1"
        self.fail_writes_after = None
        self.failed = 0

    def auth_required(self):
        return bool(self.tokens) or self.client is not None

    def token_endpoint(self, environ, start_response):
        if environ["REQUEST_METHOD"] != "POST":
            return json_response(start_response, "405 Method Not Allowed", {"error": "invalid_request"})
        length = int(environ.get("CONTENT_LENGTH") or 0)
        form = urllib.parse.parse_qs(environ["wsgi.input"].read(length).decode())
        scheme, _, creds = (environ.get("HTTP_AUTHORIZATION") or "").partition(" ")
        try:
            cid, _, secret = base64.b64decode(creds).decode().partition(":")
            cid, secret = urllib.parse.unquote_plus(cid), urllib.parse.unquote_plus(secret)
        except Exception:
            cid, secret = "", ""
        if scheme.lower() != "basic" or self.client is None or (cid, secret) != self.client:
            return json_response(start_response, "401 Unauthorized", {"error": "invalid_client"})
        if form.get("grant_type") != ["client_credentials"]:
            return json_response(start_response, "400 Bad Request", {"error": "unsupported_grant_type"})
        token = secrets.token_urlsafe(24)
        with self.lock:
            self.tokens.add(token)
            self.issued += 1
        body = {"access_token": token, "token_type": "Bearer", "expires_in": "3599", "scope": " ".join(form.get("scope", []))}
        return json_response(start_response, "200 OK", body)

    def control(self, environ, start_response):
        method = environ["REQUEST_METHOD"]
        if environ["PATH_INFO"] == "/_control/users":
            return self.dump_users(start_response)
        if method == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = json.loads(environ["wsgi.input"].read(length) or b"{}")
            with self.lock:
                if body.get("reset"):
                    self.reset()
                if "throttle" in body:
                    self.throttle = int(body["throttle"])
                if "retry_after" in body:
                    self.retry_after = str(body["retry_after"])
                if "fail_writes_after" in body:
                    self.fail_writes_after = body["fail_writes_after"]
        with self.lock:
            stats = {
                "requests": dict(self.counts),
                "tokens_issued": self.issued,
                "throttled": self.throttled,
                "failed": self.failed,
            }
        return json_response(start_response, "200 OK", stats)

    def dump_users(self, start_response):
        captured = {}

        def inner_start(status, headers, exc_info=None):
            captured["status"] = status
            return lambda data: None

        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": "/v2/Users",
            "SCRIPT_NAME": "",
            "QUERY_STRING": "count=100000",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "0",
            "HTTP_HOST": "127.0.0.1",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(b""),
            "CONTENT_LENGTH": "0",
        }
        body = b"".join(self.app(environ, inner_start))
        return json_response(start_response, captured["status"], json.loads(body))

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        method = environ["REQUEST_METHOD"]
        if path == "/oauth/token":
            return self.token_endpoint(environ, start_response)
        if path.startswith("/_control"):
            return self.control(environ, start_response)
        with self.lock:
            self.counts[method] = self.counts.get(method, 0) + 1
            if self.throttle > 0:
                self.throttle -= 1
                self.throttled += 1
                return scim_error(start_response, "429 Too Many Requests", "slow down", [("Retry-After", self.retry_after)])
        if self.auth_required():
            scheme, _, token = (environ.get("HTTP_AUTHORIZATION") or "").partition(" ")
            if scheme.lower() != "bearer" or token not in self.tokens:
                return scim_error(start_response, "401 Unauthorized", "a valid bearer token is required")
        if method in ("POST", "PUT", "PATCH", "DELETE"):
            with self.lock:
                if self.fail_writes_after is not None:
                    if self.fail_writes_after <= 0:
                        self.failed += 1
                        return scim_error(start_response, "500 Internal Server Error", "injected failure: the store is down")
                    self.fail_writes_after -= 1
        return self.app(environ, start_response)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", action="append", default=[])
    parser.add_argument("--client", help="ID:SECRET accepted at /oauth/token")
    args = parser.parse_args()
    client = tuple(args.client.split(":", 1)) if args.client else None

    provider = ScimProvider.from_discovery(
        load_default_schemas().values(),
        load_default_resource_types().values(),
        config=load_default_service_provider_config(),
    )
    service = ScimService(provider, secret=secrets.token_urlsafe(32))
    app = BearerTokenApplication(InMemoryStorage(), provider, service=service)
    harness = Harness(app, args.token, client)
    with make_server("127.0.0.1", args.port, harness, server_class=ThreadingServer, handler_class=QuietHandler) as server:
        print(f"READY {server.server_port}", flush=True)
        server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
