// An independent SAML 2.0 service provider (node-saml, the library behind passport-saml) for fedgate's tests.
// Reads the SAMLResponse (base64) from SAML_RESPONSE and validates it as the SP SP_ENTITY with ACS SP_ACS, trusting
// only the IdP certificate in IDP_CERT (PEM file) and requiring signed assertions. Prints the profile as JSON, or
// exits 1 with node-saml's reason.
import { readFileSync } from "node:fs";
import { SAML } from "@node-saml/node-saml";

const saml = new SAML({
  callbackUrl: process.env.SP_ACS,
  issuer: process.env.SP_ENTITY,
  audience: process.env.SP_ENTITY,
  idpCert: readFileSync(process.env.IDP_CERT, "utf8"),
  idpIssuer: process.env.IDP_ENTITY,
  wantAssertionsSigned: true,
  wantAuthnResponseSigned: process.env.WANT_RESPONSE_SIGNED === "1",
  validateInResponseTo: "never",
  signatureAlgorithm: "sha256",
});

try {
  const { profile } = await saml.validatePostResponseAsync({ SAMLResponse: process.env.SAML_RESPONSE });
  console.log(JSON.stringify({ ok: true, nameID: profile.nameID, nameIDFormat: profile.nameIDFormat, issuer: profile.issuer, attributes: profile.attributes ?? {}, mail: profile.mail, groups: profile.groups }));
} catch (e) {
  console.error(`node-saml refused the response: ${e.message}`);
  process.exit(1);
}
