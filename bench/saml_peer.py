#!/usr/bin/env python3
"""The peer for signed SAML responses/s: pysaml2 (its default xmlsec1 backend) creating a signed Response with a
signed Assertion (RSA-2048, RSA-SHA256/SHA-256) in a loop, one process, for SECS seconds. Prints JSON."""
import json, os, subprocess, sys, tempfile, time

from saml2 import BINDING_HTTP_REDIRECT
from saml2.config import IdPConfig
from saml2.saml import NAME_FORMAT_URI, NAMEID_FORMAT_PERSISTENT, NameID, AUTHN_PASSWORD_PROTECTED
from saml2.server import Server

SP, ACS, IDP = "https://sp.example.org/sp", "https://sp.example.org/acs", "https://idp.example.org/idp"
SP_MD = f"""<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{SP}"><md:SPSSODescriptor
 protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol" WantAssertionsSigned="true"><md:AssertionConsumerService
 Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{ACS}" index="0"/></md:SPSSODescriptor></md:EntityDescriptor>"""


def main():
    secs = float(sys.argv[1]) if len(sys.argv) > 1 else 8
    d = tempfile.mkdtemp(prefix="saml-peer.")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj", "/CN=idp",
                    "-keyout", f"{d}/idp.key", "-out", f"{d}/idp.crt"], check=True, capture_output=True)
    open(f"{d}/sp.xml", "w").write(SP_MD)
    cfg = IdPConfig()
    cfg.load({
        "entityid": IDP,
        "service": {"idp": {"endpoints": {"single_sign_on_service": [("http://127.0.0.1/sso", BINDING_HTTP_REDIRECT)]},
                            "policy": {"default": {"lifetime": {"minutes": 5}, "name_form": NAME_FORMAT_URI}}}},
        "key_file": f"{d}/idp.key", "cert_file": f"{d}/idp.crt", "metadata": {"local": [f"{d}/sp.xml"]},
        "xmlsec_binary": "/usr/bin/xmlsec1",
        "signing_algorithm": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
        "digest_algorithm": "http://www.w3.org/2001/04/xmlenc#sha256",
    })
    idp = Server(config=cfg)
    n, end = 0, time.monotonic() + secs
    start = time.monotonic()
    while time.monotonic() < end:
        idp.create_authn_response(
            identity={"mail": [f"user{n}@example.org"]}, in_response_to=None, destination=ACS, sp_entity_id=SP,
            name_id=NameID(format=NAMEID_FORMAT_PERSISTENT, text=f"user{n}"), sign_assertion=True, sign_response=False,
            authn={"class_ref": AUTHN_PASSWORD_PROTECTED})
        n += 1
    print(json.dumps({"responses": n, "rate": n / (time.monotonic() - start)}))


if __name__ == "__main__":
    main()
