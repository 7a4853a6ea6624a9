#!/usr/bin/env python3
"""An independent SAML 2.0 service provider (pysaml2) for fedgate's tests.

  saml_sp.py request IDP_METADATA SP_ENTITY ACS            -> JSON {"id", "url"}: an SP-initiated HTTP-Redirect
  saml_sp.py post-request IDP_METADATA SP_ENTITY ACS KEY CERT
                                                           -> JSON {"id", "xml"}: an AuthnRequest for the HTTP-POST
                                                              binding, signed by pysaml2 (enveloped, RSA-SHA256)
  saml_sp.py logout-request IDP_METADATA SP_ENTITY ACS NAME_ID
                                                           -> JSON {"id", "url"}: an SP-initiated LogoutRequest
                                                              (HTTP-Redirect) for NAME_ID
  saml_sp.py logout-consume IDP_METADATA SP_ENTITY ACS      -> reads SAMLResponse (a LogoutResponse) on stdin and
                                                              prints JSON {"ok", "status", "in_response_to"}
  saml_sp.py consume IDP_METADATA SP_ENTITY ACS [REQ_ID]   -> reads SAMLResponse (base64) on stdin, validates it
                                                              (signature via xmlsec1, audience, recipient, time,
                                                              InResponseTo when REQ_ID is given) and prints JSON
  saml_sp.py consume-encrypted IDP_METADATA SP_ENTITY ACS KEY CERT
                                                           -> like consume, for a Response whose assertion is an
                                                              EncryptedAssertion: pysaml2 decrypts it with KEY (by
                                                              xmlsec1), then checks the assertion's signature; JSON
                                                              also says whether the assertion was signed
"""
import json, sys
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.client import Saml2Client
from saml2.config import SPConfig


def client(metadata, entity, acs, key=None, cert=None):
    conf = SPConfig()
    extra = {"key_file": key, "cert_file": cert, "encryption_keypairs": [{"key_file": key, "cert_file": cert}]} if key else {}
    conf.load({
        **extra,
        "entityid": entity,
        "metadata": {"local": [metadata]},
        "service": {"sp": {
            "endpoints": {
                "assertion_consumer_service": [(acs, BINDING_HTTP_POST)],
                "single_logout_service": [(acs.rsplit("/", 1)[0] + "/slo", BINDING_HTTP_POST)],
            },
            "allow_unsolicited": True,
            "want_assertions_signed": True,
            "want_response_signed": False,
            "authn_requests_signed": bool(key),
        }},
        "xmlsec_binary": "/usr/bin/xmlsec1",
        "allow_unknown_attributes": True,
    })
    return Saml2Client(config=conf)


def main():
    mode, metadata, entity, acs = sys.argv[1:5]
    key, cert = (sys.argv[5], sys.argv[6]) if mode in ("post-request", "consume-encrypted") else (None, None)
    c = client(metadata, entity, acs, key, cert)
    idp = next(iter(c.metadata.identity_providers()))
    if mode == "request":
        req_id, info = c.prepare_for_authenticate(entityid=idp, relay_state="sp-relay-state", binding=BINDING_HTTP_REDIRECT)
        url = dict(info["headers"])["Location"]
        print(json.dumps({"id": req_id, "url": url}))
    elif mode == "post-request":
        from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256
        dest = c.metadata.single_sign_on_service(idp, BINDING_HTTP_POST)[0]["location"]
        req_id, xml = c.create_authn_request(dest, binding=BINDING_HTTP_POST, sign=True,
                                             sign_alg=SIG_RSA_SHA256, digest_alg=DIGEST_SHA256)
        print(json.dumps({"id": req_id, "xml": str(xml)}))
    elif mode == "logout-request":
        from saml2.saml import NAMEID_FORMAT_UNSPECIFIED, NameID
        dest = c.metadata.single_logout_service(idp, BINDING_HTTP_REDIRECT, "idpsso")[0]["location"]
        req_id, req = c.create_logout_request(dest, idp, name_id=NameID(text=sys.argv[5], format=NAMEID_FORMAT_UNSPECIFIED))
        info = c.apply_binding(BINDING_HTTP_REDIRECT, str(req), dest, relay_state="slo-relay")
        print(json.dumps({"id": req_id, "url": dict(info["headers"])["Location"]}))
    elif mode == "logout-consume":
        try:
            resp = c.parse_logout_request_response(sys.stdin.read().strip(), BINDING_HTTP_POST)
            r = resp.response
            print(json.dumps({"ok": True, "status": r.status.status_code.value, "in_response_to": r.in_response_to,
                              "signed": r.signature is not None}))
        except Exception as e:
            print(json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}"}))
    elif mode in ("consume", "consume-encrypted"):
        outstanding = {sys.argv[5]: acs} if mode == "consume" and len(sys.argv) > 5 else None
        resp = c.parse_authn_request_response(sys.stdin.read().strip(), BINDING_HTTP_POST, outstanding=outstanding)
        name_id = resp.assertion.subject.name_id
        print(json.dumps({
            "ok": True,
            "issuer": resp.issuer(),
            "name_id": name_id.text,
            "format": name_id.format,
            "in_response_to": resp.in_response_to,
            "attributes": resp.get_identity(),
            "assertion_signed": resp.assertion.signature is not None,
        }))


if __name__ == "__main__":
    main()
