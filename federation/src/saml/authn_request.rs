//! Incoming AuthnRequests: HTTP-Redirect (base64 + raw DEFLATE, bounded inflate, optional query signature) and
//! HTTP-POST (base64). Parsed with quick-xml, which expands no entities; a DOCTYPE is refused outright.

use std::io::Read as _;

use base64::Engine as _;
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

use super::error::{SamlError, SignatureProblem};

/// Largest encoded request accepted.
pub const MAX_ENCODED: usize = 64 * 1024;
/// Largest inflated request accepted (a DEFLATE bomb stops here).
pub const MAX_XML: usize = 128 * 1024;

/// What we use from an AuthnRequest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuthnRequest {
    /// `ID` (echoed as `InResponseTo`).
    pub id: String,
    /// `Issuer`: the SP's entity ID.
    pub issuer: String,
    /// `AssertionConsumerServiceURL`, if given (must be registered).
    pub acs_url: Option<String>,
    /// `ForceAuthn`.
    pub force_authn: bool,
    /// `IsPassive`.
    pub is_passive: bool,
    /// Whether the XML carries an enveloped `Signature`.
    pub signed: bool,
    /// `NameIDPolicy/@Format`, if the SP asked for a format (SAML core §3.4.1.1).
    pub nameid_policy_format: Option<String>,
    /// `Destination`, as written, if given: the URL the SP sent it to, which must be where it arrived (SAML core
    /// §3.2.1).
    #[serde(default)]
    pub destination: Option<String>,
    /// Keycloak's `kc_idp_hint` from the SSO URL's query (outside the SAML message and its signature): the name
    /// of the identity provider the login should go straight to. Set by the caller; the parser never does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp_hint: Option<String>,
}

fn b64(s: &str) -> Result<Vec<u8>, SamlError> {
    if s.len() > MAX_ENCODED {
        return Err(SamlError::TooLarge(s.len(), MAX_ENCODED));
    }
    let cleaned: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(cleaned).map_err(|_| SamlError::Base64)
}

/// Decodes an HTTP-Redirect `SAMLRequest` value (already URL-decoded).
pub fn decode_redirect(saml_request: &str) -> Result<AuthnRequest, SamlError> {
    parse(&inflate(saml_request)?)
}

/// The XML of an HTTP-Redirect `SAMLRequest` value: base64, then raw DEFLATE, both bounded.
pub fn inflate(saml_request: &str) -> Result<Vec<u8>, SamlError> {
    let compressed = b64(saml_request)?;
    let mut xml = Vec::new();
    flate2::read::DeflateDecoder::new(compressed.as_slice())
        .take(MAX_XML as u64 + 1)
        .read_to_end(&mut xml)
        .map_err(SamlError::Inflate)?;
    if xml.len() > MAX_XML {
        return Err(SamlError::InflatesTooLarge(MAX_XML));
    }
    Ok(xml)
}

/// The XML of an HTTP-POST `SAMLRequest` value (base64, bounded).
pub fn post_xml(saml_request: &str) -> Result<Vec<u8>, SamlError> {
    let xml = b64(saml_request)?;
    if xml.len() > MAX_XML {
        return Err(SamlError::TooLarge(xml.len(), MAX_XML));
    }
    Ok(xml)
}

/// Whether a `SAMLRequest` value (HTTP-Redirect when `deflated`, else HTTP-POST) is a `LogoutRequest`, by its
/// document element's local name; for endpoints that take both kinds on one URL (Keycloak's `/protocol/saml`). Only
/// dispatches: the message is parsed and checked afterwards by the handler it goes to.
pub fn is_logout_request(saml_request: &str, deflated: bool) -> bool {
    let xml = if deflated { inflate(saml_request) } else { post_xml(saml_request) };
    let Ok(xml) = xml else { return false };
    let text = String::from_utf8_lossy(&xml);
    let mut rest = text.as_ref();
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        if rest.starts_with('?') || rest.starts_with('!') {
            continue;
        }
        let name = rest.split(|c: char| c.is_whitespace() || c == '>' || c == '/').next().unwrap_or("");
        return name.rsplit(':').next() == Some("LogoutRequest");
    }
    false
}

/// Decodes an HTTP-POST `SAMLRequest` value.
pub fn decode_post(saml_request: &str) -> Result<AuthnRequest, SamlError> {
    parse(&post_xml(saml_request)?)
}

/// Verifies the enveloped XML signature of an HTTP-POST AuthnRequest whose root `ID` is `root_id`, with the SP's
/// certificate as the only trusted key (a key in `KeyInfo` is never trusted).
///
/// Acts only on what was signed: the verifier (bergshamra, strict mode: references must be the document element or
/// the signature's ancestors/siblings) must report exactly one reference, `#<root ID>`, with every digest computed
/// locally, and IDs must be unique. A signature over some other element (signature wrapping) is refused, so the
/// fields [`parse`] reads from the root are the ones the SP signed. SHA-1 algorithms are not accepted.
pub fn verify_post_signature(xml: &[u8], root_id: &str, cert_der: &[u8]) -> Result<(), SignatureProblem> {
    let text = std::str::from_utf8(xml).map_err(|_| SignatureProblem::NotUtf8)?;
    let key = bergshamra::keys::loader::load_x509_cert_der(cert_der).map_err(SignatureProblem::Certificate)?;
    let mut keys = bergshamra::KeysManager::new();
    keys.add_key(key);
    // Strict: trusted keys only, references limited to the document element or the signature's relatives; `ID`
    // is one of the id attributes it indexes, and a duplicate id is an error.
    let ctx = bergshamra::DsigContext::new(keys);
    match bergshamra::verify(&ctx, text) {
        Ok(result @ bergshamra::VerifyResult::Valid { .. }) if result.all_reference_digests_verified() => {
            let bergshamra::VerifyResult::Valid { references, .. } = result else {
                return Err(SignatureProblem::UnverifiedReferences);
            };
            let expected = format!("#{root_id}");
            match references.as_slice() {
                [only] if only.uri == expected => Ok(()),
                refs => Err(SignatureProblem::WrongReference {
                    found: refs.iter().map(|r| r.uri.clone()).collect(),
                    expected,
                }),
            }
        }
        Ok(bergshamra::VerifyResult::Valid { .. }) => Err(SignatureProblem::UnverifiedReferences),
        Ok(bergshamra::VerifyResult::Invalid { reason }) => Err(SignatureProblem::Invalid(reason)),
        Err(e) => Err(SignatureProblem::Unverifiable(e)),
    }
}

/// An element's attributes: (local name, value).
pub type XmlAttributes = Vec<(String, String)>;

/// SAML 2.0 Asynchronous Single Logout's namespace (its `Asynchronous` extension element).
pub const ASYNC_SLO_NS: &str = "urn:oasis:names:tc:SAML:2.0:protocol:ext:async-slo";

/// What a SAML protocol request carries that we read: the root's attributes, and the text of the root's direct
/// children (`Issuer`, `NameID`, `SessionIndex`, …). Nothing deeper is read, so content hidden inside a
/// `Signature` (or any other element) cannot stand in for a signed field. Every element read is in the namespace
/// SAML 2.0 puts it in ([`read_message`] refuses one that is not), so its local name is what it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProtocolMessage {
    /// Root attributes without a namespace prefix (as SAML defines them), by name.
    pub attributes: Vec<(String, String)>,
    /// `(local name, text)` of each direct child with text.
    pub children: Vec<(String, String)>,
    /// Whether an XML-DSig `Signature` is a direct child of the root.
    pub signed: bool,
    /// `(local name, attributes)` of each direct child element (unprefixed attributes, by name).
    pub child_attributes: Vec<(String, Vec<(String, String)>)>,
    /// `(namespace, local name)` of the elements inside the root's `Extensions` child (e.g. [`ASYNC_SLO_NS`],
    /// `Asynchronous`); extensions are in namespaces of their own (SAML core §3.2.1), so both are kept.
    pub extensions: Vec<(String, String)>,
    /// `(parent, local name, attributes)` of the elements one level below the root's children (e.g. `Status` →
    /// `StatusCode`).
    pub grandchildren: Vec<(String, String, XmlAttributes)>,
}

impl ProtocolMessage {
    /// A root attribute.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attributes.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The text of the first direct child called `name`.
    pub fn child(&self, name: &str) -> Option<&str> {
        self.children.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Attribute `attr` of the first direct child element called `name`.
    pub fn child_attr(&self, name: &str, attr: &str) -> Option<&str> {
        let (_, attrs) = self.child_attributes.iter().find(|(k, _)| k == name)?;
        attrs.iter().find(|(k, _)| k == attr).map(|(_, v)| v.as_str())
    }
}

/// The attributes of a start tag without a namespace prefix (SAML's own attributes are unqualified: a prefixed
/// `evil:ID` is another attribute than `ID`), by name, unescaped.
fn attributes_of(e: &quick_xml::events::BytesStart<'_>) -> Result<Vec<(String, String)>, SamlError> {
    let mut out = Vec::new();
    for a in e.attributes() {
        let a = a.map_err(|e| SamlError::Xml(e.into()))?;
        if a.key.prefix().is_some() {
            continue;
        }
        let v = a.unescape_value().map_err(SamlError::Xml)?;
        out.push((String::from_utf8_lossy(a.key.local_name().as_ref()).into_owned(), v.into_owned()));
    }
    Ok(out)
}

/// The namespace SAML 2.0 puts an element fedgate reads in: the root (`depth` 1, a protocol message), the root's
/// children fedgate reads (`Issuer`, `NameID`: assertion; `Signature`: XML-DSig; `SessionIndex`, `NameIDPolicy`,
/// `Extensions`, `Status`: protocol) and `Status/StatusCode`. `None` for an element fedgate does not read (what is
/// inside `Extensions` is in namespaces of its own).
fn expected_namespace(depth: usize, parent: Option<&str>, name: &str) -> Option<&'static str> {
    use super::xml::ns::{DS, SAML, SAMLP};
    match (depth, parent, name) {
        (1, _, _) => Some(SAMLP.1),
        (2, _, "Issuer" | "NameID") => Some(SAML.1),
        (2, _, "Signature") => Some(DS.1),
        (2, _, "SessionIndex" | "NameIDPolicy" | "Extensions" | "Status") => Some(SAMLP.1),
        (3, Some("Status"), "StatusCode") => Some(SAMLP.1),
        _ => None,
    }
}

/// The namespace an element is in, as its URI (empty: none).
fn namespace(resolved: &ResolveResult<'_>) -> Result<String, SamlError> {
    match resolved {
        ResolveResult::Bound(ns) => Ok(String::from_utf8_lossy(ns.as_ref()).into_owned()),
        ResolveResult::Unbound => Ok(String::new()),
        ResolveResult::Unknown(prefix) => Err(SamlError::Malformed(format!(
            "the namespace prefix {:?} is used but never declared (xmlns:{0}=\"…\")",
            String::from_utf8_lossy(prefix)
        ))),
    }
}

/// Refuses element `name`, in namespace `found`, when SAML 2.0 puts it in another namespace at this place.
fn check_namespace(depth: usize, parent: Option<&str>, name: &str, found: &str) -> Result<(), SamlError> {
    match expected_namespace(depth, parent, name) {
        Some(expected) if expected != found => Err(SamlError::WrongNamespace {
            element: name.to_string(),
            expected,
            found: if found.is_empty() { "no namespace".into() } else { found.to_string() },
        }),
        _ => Ok(()),
    }
}

/// Reads a protocol message whose root element is `root` (local name, in the SAML 2.0 protocol namespace). A
/// field's text is what every XML reader (and the signature's canonical form) makes of it: text, CDATA sections,
/// character references and the five predefined entities, joined across comments and processing instructions,
/// its ends trimmed. A DOCTYPE, or any other entity reference in a field, is refused (nothing is expanded).
///
/// Elements are matched by namespace and local name, as Shibboleth and Keycloak match them: the root, and every
/// element fedgate reads ([`expected_namespace`]), must be in the namespace SAML 2.0 puts it in, or the message is
/// refused naming the element and the namespace expected (`<evil:AuthnRequest xmlns:evil="urn:x">`, an `Issuer`
/// in no namespace or a foreign one).
pub fn read_message(xml: &[u8], root: &str) -> Result<ProtocolMessage, SamlError> {
    let mut reader = NsReader::from_reader(xml);
    let mut buf = Vec::new();
    let mut msg: Option<ProtocolMessage> = None;
    let mut depth = 0usize;
    let mut field: Option<(String, String)> = None;
    let mut root_closed = false;
    loop {
        let (resolved, event) = reader.read_resolved_event_into(&mut buf).map_err(SamlError::Xml)?;
        let empty = matches!(event, Event::Empty(_));
        // The namespace of a start tag, resolved against the declarations in scope (its own included).
        let ns = match &event {
            Event::Start(_) | Event::Empty(_) => namespace(&resolved)?,
            _ => String::new(),
        };
        match event {
            Event::DocType(_) => return Err(SamlError::Doctype),
            // One root: what follows it would be read by this parser as the root's, but not by a signature
            // checker's, and two readings of one message are what signature-wrapping attacks live on.
            Event::Text(t) if root_closed && t.iter().all(u8::is_ascii_whitespace) => {}
            Event::Start(_) | Event::Empty(_) | Event::Text(_) | Event::CData(_) | Event::GeneralRef(_)
                if root_closed =>
            {
                return Err(SamlError::Malformed(format!("content after the {root} element")));
            }
            Event::Start(e) | Event::Empty(e) if msg.is_none() => {
                if e.local_name().as_ref() != root.as_bytes() {
                    return Err(SamlError::Malformed(format!(
                        "the root element is {}, not {root}",
                        String::from_utf8_lossy(e.local_name().as_ref())
                    )));
                }
                check_namespace(1, None, root, &ns)?;
                let m = ProtocolMessage { attributes: attributes_of(&e)?, ..ProtocolMessage::default() };
                msg = Some(m);
                depth = usize::from(!empty);
                root_closed = empty;
            }
            Event::Start(e) => {
                depth += 1;
                if depth == 2 {
                    let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                    check_namespace(2, None, &name, &ns)?;
                    if let Some(m) = msg.as_mut() {
                        m.signed |= name == "Signature";
                        m.child_attributes.push((name.clone(), attributes_of(&e)?));
                    }
                    field = Some((name, String::new()));
                } else if depth == 3 {
                    note_grandchild(msg.as_mut(), field.as_ref(), &e, ns)?;
                }
            }
            Event::Empty(e) => {
                if depth == 1
                    && let Some(m) = msg.as_mut()
                {
                    let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                    check_namespace(2, None, &name, &ns)?;
                    m.signed |= name == "Signature";
                    m.child_attributes.push((name, attributes_of(&e)?));
                } else if depth == 2 {
                    note_grandchild(msg.as_mut(), field.as_ref(), &e, ns)?;
                }
            }
            Event::Text(t) if depth == 2 => {
                let text = t.decode().map_err(|e| SamlError::Xml(e.into()))?;
                if let Some((_, value)) = field.as_mut() {
                    value.push_str(&text);
                }
            }
            // `<Issuer><![CDATA[…]]></Issuer>` is the same text to every XML reader; skipped, the field read
            // otherwise than the signer and the SP meant it.
            Event::CData(t) if depth == 2 => {
                let text = t.decode().map_err(|e| SamlError::Xml(e.into()))?;
                if let Some((_, value)) = field.as_mut() {
                    value.push_str(&text);
                }
            }
            Event::GeneralRef(r) if depth == 2 => {
                let name = r.decode().map_err(|e| SamlError::Xml(e.into()))?;
                let resolved = if r.is_char_ref() {
                    r.resolve_char_ref().ok().flatten().map(String::from)
                } else {
                    quick_xml::escape::resolve_predefined_entity(&name).map(str::to_string)
                };
                let Some(text) = resolved else {
                    return Err(SamlError::Malformed(format!(
                        "the entity reference &{name}; in a request field is not accepted (only character \
                         references and &amp; &lt; &gt; &quot; &apos;)"
                    )));
                };
                if let Some((_, value)) = field.as_mut() {
                    value.push_str(&text);
                }
            }
            Event::End(_) => {
                if depth == 2
                    && let (Some((name, value)), Some(m)) = (field.take(), msg.as_mut())
                {
                    let value = value.trim();
                    if !value.is_empty() {
                        m.children.push((name, value.to_string()));
                    }
                }
                depth = depth.saturating_sub(1);
                root_closed = depth == 0 && msg.is_some();
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    msg.ok_or_else(|| SamlError::Malformed(format!("no {root} element")))
}

/// Records `e` (in namespace `ns`), an element inside a direct child of the root (and, inside `Extensions`, its
/// namespace and name); refuses one fedgate reads that is in the wrong namespace.
fn note_grandchild(
    msg: Option<&mut ProtocolMessage>,
    field: Option<&(String, String)>,
    e: &quick_xml::events::BytesStart<'_>,
    ns: String,
) -> Result<(), SamlError> {
    if let (Some(m), Some((parent, _))) = (msg, field) {
        let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
        check_namespace(3, Some(parent), &name, &ns)?;
        if parent == "Extensions" && m.extensions.len() < 16 {
            m.extensions.push((ns, name.clone()));
        }
        if m.grandchildren.len() < 16 {
            m.grandchildren.push((parent.clone(), name, attributes_of(e).unwrap_or_default()));
        }
    }
    Ok(())
}

/// Longest accepted AuthnRequest `ID`. The request is kept while the user logs in and its ID is echoed as
/// `InResponseTo`; IDs carry 128–160 random bits (SAML Core §1.3.4), a few dozen characters.
pub const MAX_ID: usize = 256;

/// Parses AuthnRequest XML.
pub fn parse(xml: &[u8]) -> Result<AuthnRequest, SamlError> {
    let m = read_message(xml, "AuthnRequest")?;
    let id = m.attr("ID").ok_or_else(|| SamlError::Malformed("AuthnRequest has no ID".into()))?.to_string();
    if id.len() > MAX_ID {
        return Err(SamlError::Malformed(format!("its ID is too long ({} bytes; the limit is {MAX_ID})", id.len())));
    }
    let issuer = m.child("Issuer").unwrap_or_default().to_string();
    if issuer.is_empty() {
        return Err(SamlError::Malformed("AuthnRequest has no Issuer".into()));
    }
    Ok(AuthnRequest {
        id,
        issuer,
        acs_url: m.attr("AssertionConsumerServiceURL").map(str::to_string),
        force_authn: m.attr("ForceAuthn") == Some("true"),
        is_passive: m.attr("IsPassive") == Some("true"),
        signed: m.signed,
        nameid_policy_format: m.child_attr("NameIDPolicy", "Format").map(str::to_string),
        destination: m.attr("Destination").map(str::to_string),
        idp_hint: None,
    })
}

/// The parameters of the HTTP-Redirect binding (SAML bindings §3.4.4.1), which a signature covers by their raw
/// spelling.
const BINDING_PARAMETERS: [&str; 5] = ["SAMLRequest", "SAMLResponse", "RelayState", "SigAlg", "Signature"];

/// Checks that an HTTP-Redirect query names each binding parameter at most once and plainly: a name that only
/// percent-decodes to one (`Relay%53tate`), or a second copy, would be read by one reader and not by another, so a
/// value the signature does not cover could be taken for the signed one.
pub fn check_redirect_query(raw_query: &str) -> Result<(), SamlError> {
    let mut seen = [false; BINDING_PARAMETERS.len()];
    for pair in raw_query.split('&') {
        let raw_key = pair.split_once('=').map_or(pair, |(k, _)| k);
        let key: String =
            url::form_urlencoded::parse(raw_key.as_bytes()).next().map(|(k, _)| k.into_owned()).unwrap_or_default();
        let Some(i) = BINDING_PARAMETERS.iter().position(|p| *p == key) else { continue };
        let name = BINDING_PARAMETERS[i];
        if raw_key != name {
            return Err(SamlError::AmbiguousQuery(format!(
                "{raw_key:?} stands for {name}; spell the parameter plainly"
            )));
        }
        if std::mem::replace(&mut seen[i], true) {
            return Err(SamlError::AmbiguousQuery(format!("{name} is given twice; send it once")));
        }
    }
    Ok(())
}

/// The URL-decoded value of binding parameter `name` in an HTTP-Redirect query, read by its raw name as the
/// signature check reads it (call [`check_redirect_query`] first).
pub fn redirect_parameter(raw_query: &str, name: &str) -> Option<String> {
    raw_query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name)
            .then(|| url::form_urlencoded::parse(format!("v={v}").as_bytes()).next().map(|(_, v)| v.into_owned()))?
    })
}

/// Verifies an HTTP-Redirect binding signature (SAML bindings §3.4.4.1): the signed octets are the raw query
/// parameters `SAMLRequest=…&RelayState=…&SigAlg=…` exactly as received (URL-encoded), in that order.
pub fn verify_redirect_signature(raw_query: &str, cert_der: &[u8]) -> Result<(), SignatureProblem> {
    verify_redirect_signature_of(raw_query, "SAMLRequest", cert_der)
}

/// [`verify_redirect_signature`] for the message in `field` (`SAMLRequest` or `SAMLResponse`).
pub fn verify_redirect_signature_of(raw_query: &str, field: &str, cert_der: &[u8]) -> Result<(), SignatureProblem> {
    let mut parts: Vec<(&str, &str)> = Vec::new();
    for pair in raw_query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        parts.push((k, v));
    }
    let get = |k: &str| parts.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
    let missing = |name: &str| SignatureProblem::MissingParameter(name.to_string());
    let sig_alg_raw = get("SigAlg").ok_or_else(|| missing("SigAlg"))?;
    let signature_raw = get("Signature").ok_or_else(|| missing("Signature"))?;
    let mut signed = format!("{field}={}", get(field).ok_or_else(|| missing(field))?);
    if let Some(rs) = get("RelayState") {
        signed.push_str(&format!("&RelayState={rs}"));
    }
    signed.push_str(&format!("&SigAlg={sig_alg_raw}"));
    let sig_alg =
        percent_encoding::percent_decode_str(sig_alg_raw).decode_utf8().map_err(|_| SignatureProblem::SigAlgNotUtf8)?;
    let signature = percent_encoding::percent_decode_str(&signature_raw.replace('+', " ")).collect::<Vec<u8>>();
    let signature = base64::engine::general_purpose::STANDARD
        .decode(String::from_utf8_lossy(&signature).replace(' ', "+"))
        .map_err(SignatureProblem::SignatureNotBase64)?;
    let alg: &'static dyn aws_lc_rs::signature::VerificationAlgorithm = match sig_alg.as_ref() {
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256" => &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
        "http://www.w3.org/2000/09/xmldsig#rsa-sha1" => {
            &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY
        }
        other => return Err(SignatureProblem::UnsupportedSigAlg(other.to_string())),
    };
    let spki = der::rsa_public_key(cert_der).ok_or(SignatureProblem::NoRsaKey)?;
    aws_lc_rs::signature::UnparsedPublicKey::new(alg, spki)
        .verify(signed.as_bytes(), &signature)
        .map_err(|_| SignatureProblem::QueryDoesNotVerify)
}

/// Just enough DER to find an X.509 certificate's RSA public key (PKCS#1 `RSAPublicKey` in the SPKI bit string).
pub(crate) mod der {
    /// One TLV: (tag, contents, rest).
    fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = input.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (first as usize, rest)
        } else {
            let n = (first & 0x7f) as usize;
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            (rest[..n].iter().fold(0usize, |acc, b| (acc << 8) | *b as usize), &rest[n..])
        };
        if rest.len() < len {
            return None;
        }
        Some((tag, &rest[..len], &rest[len..]))
    }

    /// Certificate → tbsCertificate → the whole `SubjectPublicKeyInfo` (tag and length included).
    pub fn subject_public_key_info(cert: &[u8]) -> Option<&[u8]> {
        let (_, cert, _) = tlv(cert)?;
        let (_, tbs, _) = tlv(cert)?;
        let mut rest = tbs;
        let (tag, _, r) = tlv(rest)?;
        if tag == 0xa0 {
            rest = r;
        }
        for _ in 0..5 {
            rest = tlv(rest)?.2;
        }
        let (_, _, after) = tlv(rest)?;
        Some(&rest[..rest.len() - after.len()])
    }

    /// Certificate → tbsCertificate → subjectPublicKeyInfo → BIT STRING contents (without the unused-bits byte).
    pub fn rsa_public_key(cert: &[u8]) -> Option<&[u8]> {
        let (_, cert, _) = tlv(cert)?;
        let (_, tbs, _) = tlv(cert)?;
        let mut rest = tbs;
        // [0] version (optional), serial, signature, issuer, validity, subject, then SPKI.
        let (tag, _, r) = tlv(rest)?;
        if tag == 0xa0 {
            rest = r;
        }
        for _ in 0..5 {
            rest = tlv(rest)?.2;
        }
        let (_, spki, _) = tlv(rest)?;
        let (_, _alg, after_alg) = tlv(spki)?;
        let (tag, bits, _) = tlv(after_alg)?;
        (tag == 0x03 && bits.first() == Some(&0)).then(|| &bits[1..])
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {

    #[test]
    fn logout_requests_are_told_from_authn_requests_by_their_root_element() {
        use base64::Engine as _;
        use std::io::Write as _;
        let post = |xml: &str| base64::engine::general_purpose::STANDARD.encode(xml);
        let deflated = |xml: &str| {
            let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(xml.as_bytes()).unwrap();
            base64::engine::general_purpose::STANDARD.encode(enc.finish().unwrap())
        };
        let logout = r#"<?xml version="1.0"?><!-- x --><samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_1"/>"#;
        let authn = r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_LogoutRequest"/>"#;
        assert!(is_logout_request(&post(logout), false));
        assert!(is_logout_request(&deflated(logout), true));
        assert!(!is_logout_request(&post(authn), false));
        assert!(!is_logout_request(&deflated(authn), true));
        assert!(!is_logout_request("%%%not base64", true));
        assert!(!is_logout_request(&post(logout), true), "not deflated");
    }

    use super::*;
    use std::io::Write as _;

    fn deflate(xml: &str) -> String {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(xml.as_bytes()).unwrap();
        base64::engine::general_purpose::STANDARD.encode(e.finish().unwrap())
    }

    const REQ: &str = r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="a2eg9c2g" Version="2.0" IssueInstant="2020-09-28T13:09:57.896Z" AssertionConsumerServiceURL="https://signin.aliyun.com/saml/SSO" ProtocolBinding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" ForceAuthn="false" IsPassive="false"><saml2:Issuer xmlns:saml2="urn:oasis:names:tc:SAML:2.0:assertion">https://signin.aliyun.com/1234567890123456/saml/SSO</saml2:Issuer></samlp:AuthnRequest>"#;

    #[test]
    fn content_after_the_root_element_is_refused() {
        let issuer =
            r#"<saml2:Issuer xmlns:saml2="urn:oasis:names:tc:SAML:2.0:assertion">https://evil.example/</saml2:Issuer>"#;
        let empty_root = format!(
            r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="a1" Version="2.0"/>{issuer}"#
        );
        for xml in [empty_root, format!("{REQ}{issuer}"), format!("{REQ}trailing text")] {
            let err = parse(xml.as_bytes()).unwrap_err();
            assert!(err.to_string().contains("content after the AuthnRequest"), "{xml}: {err}");
        }
        assert!(parse(format!("{REQ}\n  ").as_bytes()).is_ok(), "white space after the root is fine");
    }

    #[test]
    fn fields_read_as_every_xml_reader_reads_them() {
        let with_issuer =
            |issuer: &str| REQ.replace(">https://signin.aliyun.com/1234567890123456/saml/SSO<", &format!(">{issuer}<"));
        let expected = "https://signin.aliyun.com/1234567890123456/saml/SSO";
        for issuer in [
            "https://signin.aliyun.com/<!---->1234567890123456/saml/SSO",
            "https://signin.aliyun.com/<?pi x?>1234567890123456/saml/SSO",
            "https://signin.aliyun.com/<![CDATA[1234567890123456]]>/saml/SSO",
            "<![CDATA[https://signin.aliyun.com/1234567890123456/saml/SSO]]>",
            "https://signin.aliyun.com/&#x31;234567890123456&#47;saml/SSO",
            "\n  https://signin.aliyun.com/1234567890123456/saml/SSO\n",
        ] {
            assert_eq!(parse(with_issuer(issuer).as_bytes()).unwrap().issuer, expected, "{issuer}");
        }
        let amp = parse(with_issuer("https://sp.example/?a=1&amp;b=&lt;2&gt; &quot;x&apos;").as_bytes()).unwrap();
        assert_eq!(amp.issuer, "https://sp.example/?a=1&b=<2> \"x'", "predefined entities; inner spaces kept");
        let err = parse(with_issuer("https://sp.example/&ext;").as_bytes()).unwrap_err();
        assert!(err.to_string().contains("&ext;"), "{err}");
    }

    #[test]
    fn decodes_the_aliyun_request_by_both_bindings() {
        let r = decode_redirect(&deflate(REQ)).unwrap();
        assert_eq!(r.id, "a2eg9c2g");
        assert_eq!(r.issuer, "https://signin.aliyun.com/1234567890123456/saml/SSO");
        assert_eq!(r.acs_url.as_deref(), Some("https://signin.aliyun.com/saml/SSO"));
        assert!(!r.signed);
        let p = decode_post(&base64::engine::general_purpose::STANDARD.encode(REQ)).unwrap();
        assert_eq!(p, r);
    }

    #[test]
    fn refuses_bad_input_with_a_reason() {
        assert!(matches!(decode_redirect("!!!not base64"), Err(SamlError::Base64)));
        assert!(matches!(decode_redirect("aGVsbG8="), Err(SamlError::Inflate(_))));
        let doctype = format!("<!DOCTYPE x [<!ENTITY e \"boom\">]>{REQ}");
        assert!(matches!(
            decode_post(&base64::engine::general_purpose::STANDARD.encode(doctype)),
            Err(SamlError::Doctype)
        ));
        let bomb = deflate(&format!("<samlp:AuthnRequest ID=\"x\">{}</samlp:AuthnRequest>", " ".repeat(10_000_000)));
        assert!(bomb.len() < MAX_ENCODED, "a small bomb: {} bytes", bomb.len());
        assert!(
            matches!(decode_redirect(&bomb), Err(e @ SamlError::InflatesTooLarge(_)) if e.to_string().contains("more than"))
        );
        assert!(matches!(decode_post(&"A".repeat(MAX_ENCODED + 4)), Err(SamlError::TooLarge(..))));
        let long_id = REQ.replace("a2eg9c2g", &"i".repeat(MAX_ID + 1));
        assert!(
            matches!(decode_redirect(&deflate(&long_id)), Err(SamlError::Malformed(m)) if m.contains("ID is too long"))
        );
        let no_issuer = r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="x"/>"#;
        assert!(matches!(
            decode_post(&base64::engine::general_purpose::STANDARD.encode(no_issuer)),
            Err(SamlError::Malformed(_))
        ));
        assert!(matches!(
            decode_post(&base64::engine::general_purpose::STANDARD.encode("<x/>")),
            Err(SamlError::Malformed(_))
        ));
    }

    /// The elements fedgate reads are matched by namespace and local name: the right local name in another
    /// namespace (or none) is not that element, and the message is refused naming the element and the namespace
    /// SAML 2.0 puts it in. The namespace may be declared anywhere in scope, under any prefix, or as the default.
    #[test]
    fn elements_in_a_foreign_namespace_are_refused_naming_the_element_and_the_namespace() {
        const P: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
        const A: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
        let issuer = r#"<saml:Issuer xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">https://sp</saml:Issuer>"#;
        for (xml, element, expected) in [
            (
                format!(r#"<evil:AuthnRequest xmlns:evil="urn:x" ID="a">{issuer}</evil:AuthnRequest>"#),
                "AuthnRequest",
                P,
            ),
            (format!(r#"<AuthnRequest ID="a">{issuer}</AuthnRequest>"#), "AuthnRequest", P),
            (
                format!(
                    r#"<samlp:AuthnRequest xmlns:samlp="{P}" ID="a"><evil:Issuer xmlns:evil="urn:x">https://sp</evil:Issuer></samlp:AuthnRequest>"#
                ),
                "Issuer",
                A,
            ),
            (
                format!(
                    r#"<samlp:AuthnRequest xmlns:samlp="{P}" ID="a"><Issuer>https://sp</Issuer></samlp:AuthnRequest>"#
                ),
                "Issuer",
                A,
            ),
            (
                format!(
                    r#"<samlp:AuthnRequest xmlns:samlp="{P}" ID="a">{issuer}<evil:NameIDPolicy xmlns:evil="urn:x" Format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"/></samlp:AuthnRequest>"#
                ),
                "NameIDPolicy",
                P,
            ),
            (
                format!(
                    r#"<samlp:AuthnRequest xmlns:samlp="{P}" ID="a">{issuer}<Signature xmlns="urn:x"/></samlp:AuthnRequest>"#
                ),
                "Signature",
                "http://www.w3.org/2000/09/xmldsig#",
            ),
        ] {
            match parse(xml.as_bytes()) {
                Err(e @ SamlError::WrongNamespace { .. }) => {
                    let m = e.to_string();
                    assert!(m.contains(&format!("the {element} element")) && m.contains(expected), "{xml}: {m}");
                    assert!(e.is_bad_request());
                }
                other => panic!("{xml}: {other:?}"),
            }
        }
        // An undeclared prefix is no namespace at all.
        let undeclared = r#"<samlp:AuthnRequest ID="a"><saml:Issuer>https://sp</saml:Issuer></samlp:AuthnRequest>"#;
        assert!(matches!(parse(undeclared.as_bytes()), Err(SamlError::Malformed(m)) if m.contains("\"samlp\"")));
        // The right namespaces under other prefixes, or as the default namespace, are the same elements.
        for xml in [
            format!(
                r#"<p:AuthnRequest xmlns:p="{P}" ID="a"><a:Issuer xmlns:a="{A}">https://sp</a:Issuer><p:NameIDPolicy Format="f"/></p:AuthnRequest>"#
            ),
            format!(
                r#"<AuthnRequest xmlns="{P}" ID="a"><Issuer xmlns="{A}">https://sp</Issuer><NameIDPolicy Format="f"/></AuthnRequest>"#
            ),
        ] {
            let r = parse(xml.as_bytes()).unwrap_or_else(|e| panic!("{xml}: {e}"));
            assert_eq!((r.issuer.as_str(), r.nameid_policy_format.as_deref()), ("https://sp", Some("f")));
        }
        // Elements fedgate does not read may be in any namespace.
        let other = format!(
            r#"<samlp:AuthnRequest xmlns:samlp="{P}" ID="a">{issuer}<x:Whatever xmlns:x="urn:x"/></samlp:AuthnRequest>"#
        );
        assert!(parse(other.as_bytes()).is_ok());
    }

    /// SAML's attributes are unqualified: a prefixed `evil:ID` or `evil:AssertionConsumerServiceURL` is another
    /// attribute, never read as the one SAML defines.
    #[test]
    fn prefixed_attributes_are_not_samls() {
        let xml = r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:evil="urn:x" evil:ID="evil" ID="a" evil:AssertionConsumerServiceURL="https://evil.example/acs"><saml:Issuer xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">https://sp</saml:Issuer></samlp:AuthnRequest>"#;
        let r = parse(xml.as_bytes()).unwrap();
        assert_eq!((r.id.as_str(), r.acs_url), ("a", None));
    }
}
