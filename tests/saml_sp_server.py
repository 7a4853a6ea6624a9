#!/usr/bin/env python3
"""A running SAML 2.0 service provider (pysaml2) for fedgate's single-logout tests: it keeps its own sessions and
handles logout the way a deployed SP does, by pysaml2's own code.

  saml_sp_server.py KEY CERT SLO_BINDING     SLO_BINDING: post or redirect (its metadata's only SingleLogoutService)

Prints its base URL (http://127.0.0.1:PORT, its entity ID is BASE/sp) on the first line, then serves:
  GET  /metadata          its SP metadata (AssertionConsumerService HTTP-POST, one SingleLogoutService, its cert)
  GET  /setup?idp=URL     loads the IdP's metadata from URL (the IdP is started after the SP)
  POST /acs               consumes the Response (pysaml2 checks signature, audience, times); starts a session
                          (cookie sp_<port>) and answers 200 JSON {name_id, format, session_index}
  GET  /whoami            200 JSON of the session, or 401
  GET  /sessions          JSON {"active": number of sessions}
  GET  /login[?binding=post][&passive=1]  SP-initiated SSO: a signed AuthnRequest by HTTP-Redirect (by
                          HTTP-POST with binding=post; IsPassive="true" with passive=1)
  GET  /logout[?binding=post]  SP-initiated logout of this browser's session (pysaml2 do_logout), signed, by
                          HTTP-Redirect (by HTTP-POST with ?binding=post)
  GET|POST /slo           an IdP LogoutRequest (pysaml2 handle_logout_request: the NameID must be the one it was
                          given; its session ends; a signed LogoutResponse by the SP's binding) or the IdP's
                          LogoutResponse to its own request (then 200 "SP signed out")
Every message it rejects is answered 400 with pysaml2's error.
"""
import json, secrets, sys, threading, urllib.parse, urllib.request
from http.cookies import SimpleCookie
from wsgiref.simple_server import make_server, WSGIRequestHandler

from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.client import Saml2Client
from saml2.config import SPConfig
from saml2.metadata import create_metadata_string
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

KEY, CERT, SLO = sys.argv[1], sys.argv[2], sys.argv[3]
SLO_BINDING = BINDING_HTTP_POST if SLO == "post" else BINDING_HTTP_REDIRECT
STATE = {"client": None, "base": None, "idp_md": None}
SESSIONS = {}  # cookie value -> {"name_id": NameID, "session_index": str}
LOCK = threading.Lock()


def config(idp_metadata_file=None):
    base = STATE["base"]
    conf = SPConfig()
    conf.load({
        "entityid": base + "/sp",
        "key_file": KEY,
        "cert_file": CERT,
        **({"metadata": {"local": [idp_metadata_file]}} if idp_metadata_file else {}),
        "service": {"sp": {
            "endpoints": {
                "assertion_consumer_service": [(base + "/acs", BINDING_HTTP_POST)],
                "single_logout_service": [(base + "/slo", SLO_BINDING)],
            },
            "allow_unsolicited": True,
            "want_assertions_signed": True,
            "want_response_signed": False,
            "authn_requests_signed": True,
            "logout_requests_signed": True,
            "logout_responses_signed": True,
            "signing_algorithm": SIG_RSA_SHA256,
            "digest_algorithm": DIGEST_SHA256,
        }},
        "xmlsec_binary": "/usr/bin/xmlsec1",
        "allow_unknown_attributes": True,
    })
    return conf


def reply(start, status, body, headers=()):
    if isinstance(body, (dict, list)):
        body, headers = json.dumps(body), [("Content-Type", "application/json"), *headers]
    start(status, [("Content-Type", "text/html; charset=utf-8"), *headers] if not any(
        h[0] == "Content-Type" for h in headers) else list(headers))
    return [body.encode()]


def send(start, binding, http_args, extra_headers=()):
    """pysaml2's http_args for a binding as a WSGI answer."""
    if binding == BINDING_HTTP_REDIRECT:
        location = dict(http_args["headers"])["Location"]
        return reply(start, "303 See Other", "", [("Location", location), *extra_headers])
    return reply(start, "200 OK", http_args["data"], extra_headers)


def form(environ):
    if environ["REQUEST_METHOD"] == "POST":
        size = int(environ.get("CONTENT_LENGTH") or 0)
        return {k: v[0] for k, v in urllib.parse.parse_qs(environ["wsgi.input"].read(size).decode()).items()}
    return {k: v[0] for k, v in urllib.parse.parse_qs(environ.get("QUERY_STRING", "")).items()}


def cookie_name():
    return "sp_" + STATE["base"].rsplit(":", 1)[1]


def session_of(environ):
    c = SimpleCookie(environ.get("HTTP_COOKIE", ""))
    m = c.get(cookie_name())
    return (m.value, SESSIONS.get(m.value)) if m else (None, None)


def app(environ, start):
    path, q = environ["PATH_INFO"], form(environ)
    c = STATE["client"]
    try:
        if path == "/metadata":
            return reply(start, "200 OK", create_metadata_string(None, config(), 4, None, None, None, None, None).decode(),
                         [("Content-Type", "application/samlmetadata+xml")])
        if path == "/setup":
            xml = urllib.request.urlopen(q["idp"]).read()
            STATE["idp_md"] = KEY + ".idp.xml"
            with open(STATE["idp_md"], "wb") as f:
                f.write(xml)
            STATE["client"] = Saml2Client(config=config(STATE["idp_md"]))
            return reply(start, "200 OK", {"ok": True})
        if path == "/sessions":
            return reply(start, "200 OK", {"active": len(SESSIONS)})
        if path == "/login":
            idp = next(iter(c.metadata.identity_providers()))
            # ?binding=post: the AuthnRequest by HTTP-POST (an auto-submitting form on this SP's page);
            # &passive=1: IsPassive="true" (sign in only if already signed in at the IdP).
            binding = BINDING_HTTP_POST if q.get("binding") == "post" else BINDING_HTTP_REDIRECT
            extra = {"is_passive": "true"} if q.get("passive") else {}
            _, info = c.prepare_for_authenticate(entityid=idp, binding=binding,
                                                  sigalg=SIG_RSA_SHA256, digest_alg=DIGEST_SHA256, **extra)
            return send(start, binding, info)
        if path == "/acs":
            resp = c.parse_authn_request_response(q["SAMLResponse"], BINDING_HTTP_POST)
            name_id = resp.assertion.subject.name_id
            index = resp.assertion.authn_statement[0].session_index
            sid = secrets.token_urlsafe(16)
            with LOCK:
                SESSIONS[sid] = {"name_id": name_id, "session_index": index}
            body = {"name_id": name_id.text, "format": name_id.format, "session_index": index}
            return reply(start, "200 OK", body, [("Set-Cookie", f"{cookie_name()}={sid}; Path=/; HttpOnly")])
        if path == "/whoami":
            _, s = session_of(environ)
            if not s:
                return reply(start, "401 Unauthorized", {"signed_in": False})
            return reply(start, "200 OK", {"name_id": s["name_id"].text, "session_index": s["session_index"]})
        if path == "/logout":
            _, s = session_of(environ)
            if not s:
                return reply(start, "401 Unauthorized", {"signed_in": False})
            # ?binding=post: send the LogoutRequest by HTTP-POST (else pysaml2 prefers HTTP-Redirect).
            expected = BINDING_HTTP_POST if q.get("binding") == "post" else None
            result = c.do_logout(s["name_id"], c.users.issuers_of_info(s["name_id"]), "", None, sign=True,
                                 expected_binding=expected, sign_alg=SIG_RSA_SHA256, digest_alg=DIGEST_SHA256)
            for _idp, (binding, http_args) in result.items():
                return send(start, binding, http_args)
            return reply(start, "500 Internal Server Error", {"error": "global_logout sent nothing"})
        if path == "/slo":
            binding = BINDING_HTTP_POST if environ["REQUEST_METHOD"] == "POST" else BINDING_HTTP_REDIRECT
            if "SAMLRequest" in q:
                # The IdP asks us to end the user's session: pysaml2 checks the signature and the NameID.
                req = c.parse_logout_request(q["SAMLRequest"], binding, relay_state=q.get("RelayState"),
                                             sigalg=q.get("SigAlg"), signature=q.get("Signature"))
                name_id = req.message.name_id
                with LOCK:
                    mine = [k for k, v in SESSIONS.items() if v["name_id"] == name_id]
                    for k in mine:
                        del SESSIONS[k]
                http_args = c.handle_logout_request(q["SAMLRequest"], name_id, binding, sign=True,
                                                    sign_alg=SIG_RSA_SHA256, digest_alg=DIGEST_SHA256,
                                                    relay_state=q.get("RelayState"), sigalg=q.get("SigAlg"),
                                                    signature=q.get("Signature"))
                out = BINDING_HTTP_REDIRECT if "Location" in dict(http_args.get("headers", [])) else BINDING_HTTP_POST
                return send(start, out, http_args)
            if "SAMLResponse" in q:
                resp = c.parse_logout_request_response(q["SAMLResponse"], binding)
                status = resp.response.status.status_code.value
                sid, s = session_of(environ)
                with LOCK:
                    if s and status.endswith(":Success"):
                        SESSIONS.pop(sid, None)
                return reply(start, "200 OK", {"logged_out": status.endswith(":Success"), "status": status})
        return reply(start, "404 Not Found", {"error": "not found"})
    except Exception as e:  # pysaml2 refused the message: a clear 400 for the test to show
        return reply(start, "400 Bad Request", {"error": f"{type(e).__name__}: {e}"})


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


def main():
    server = make_server("127.0.0.1", 0, app, handler_class=Quiet)
    STATE["base"] = f"http://127.0.0.1:{server.server_port}"
    print(STATE["base"], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
