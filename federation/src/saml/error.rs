//! SAML failures. Bad input from a browser or SP is told apart from our own setup problems, so the gateway can
//! answer 4xx with a message that names the problem (and never 500 for someone else's mistake).

use std::path::PathBuf;

/// Why a signed (or unsigned) message from an SP is refused: [`SamlError::BadSignature`]'s reason.
#[derive(Debug, thiserror::Error)]
pub enum SignatureProblem {
    /// The SP wants signed requests (`want_authn_requests_signed`) and this one is not signed.
    #[error("the request is not signed")]
    Unsigned,
    /// An SP with a certificate must sign its logout messages: an unsigned one could come from any site.
    #[error("the LogoutRequest is not signed, and this service provider has a certificate")]
    UnsignedLogout,
    /// The XML is not UTF-8 (the verifier reads text).
    #[error("the request is not UTF-8")]
    NotUtf8,
    /// The configured SP certificate cannot be loaded as a verification key.
    #[error("the SP certificate cannot be used")]
    Certificate(#[source] bergshamra::Error),
    /// The signature verifies, but over something other than the message's root (signature wrapping).
    #[error("the signature covers {found:?}, not the AuthnRequest itself ({expected})")]
    WrongReference {
        /// The references the signature covers.
        found: Vec<String>,
        /// `#<root ID>`.
        expected: String,
    },
    /// Some reference's digest was not computed here.
    #[error("the signature leaves part of its references unverified")]
    UnverifiedReferences,
    /// The enveloped signature does not verify with the SP's certificate.
    #[error("the signature does not verify with the SP's certificate: {0}")]
    Invalid(String),
    /// The verifier could not process the signature at all.
    #[error("the signature cannot be checked")]
    Unverifiable(#[source] bergshamra::Error),
    /// An HTTP-Redirect query lacks a parameter the signature needs (`SigAlg`, `Signature`, the message).
    #[error("no {0} parameter")]
    MissingParameter(String),
    /// `SigAlg` does not percent-decode to UTF-8.
    #[error("SigAlg is not UTF-8")]
    SigAlgNotUtf8,
    /// `Signature` is not base64.
    #[error("Signature is not base64")]
    SignatureNotBase64(#[source] base64::DecodeError),
    /// An HTTP-Redirect `SigAlg` we do not verify.
    #[error("unsupported SigAlg {0}")]
    UnsupportedSigAlg(String),
    /// HTTP-Redirect signatures are checked with RSA keys only.
    #[error("the SP certificate has no RSA public key")]
    NoRsaKey,
    /// The HTTP-Redirect query signature does not verify with the SP's certificate.
    #[error("the signature does not verify with the SP's certificate")]
    QueryDoesNotVerify,
}

/// A SAML error.
#[derive(Debug, thiserror::Error)]
pub enum SamlError {
    /// `SAMLRequest` is not valid base64.
    #[error("SAMLRequest is not valid base64")]
    Base64,
    /// The HTTP-Redirect request did not inflate (not raw DEFLATE).
    #[error("SAMLRequest does not inflate: {0}")]
    Inflate(#[source] std::io::Error),
    /// The HTTP-Redirect request inflates to more than the limit (a compression bomb, or just too large).
    #[error("SAMLRequest does not inflate: it inflates to more than {0} bytes")]
    InflatesTooLarge(usize),
    /// The request is larger than we accept.
    #[error("SAMLRequest is too large ({0} bytes; the limit is {1})")]
    TooLarge(usize, usize),
    /// A DOCTYPE or entity declaration: refused, never expanded.
    #[error("SAMLRequest contains a DOCTYPE or entity declaration, which is refused")]
    Doctype,
    /// Not well-formed XML.
    #[error("SAMLRequest is not well-formed XML: {0}")]
    Xml(#[source] quick_xml::Error),
    /// Well-formed XML, but not the SAML message expected (root element, ID, Issuer, …).
    #[error("SAMLRequest is not a SAML AuthnRequest: {0}")]
    Malformed(String),
    /// An element fedgate reads has the right local name but is not in the namespace SAML 2.0 puts it in
    /// (`<evil:AuthnRequest xmlns:evil="urn:x">`, an `Issuer` in no namespace): it is not that element.
    #[error(
        "the {element} element is in {found}, not in the namespace SAML 2.0 defines it in ({expected}); \
         declare that namespace for it (e.g. xmlns:{prefix}=\"{expected}\")",
        prefix = namespace_prefix(expected)
    )]
    WrongNamespace {
        /// The element's local name.
        element: String,
        /// The namespace it must be in.
        expected: &'static str,
        /// The namespace it is in (`no namespace` when none).
        found: String,
    },
    /// An HTTP-Redirect query with a binding parameter given twice, or its name percent-encoded.
    #[error("the query is ambiguous: {0}")]
    AmbiguousQuery(String),
    /// `RelayState` is longer than `max_relay_state_bytes` (SAML 2.0 Bindings §3.4.3, §3.5.3).
    #[error(
        "RelayState is too long ({len} bytes; the limit is {max}, see SAML 2.0 Bindings §3.4.3); \
         the service provider must send a shorter RelayState"
    )]
    RelayStateTooLong {
        /// Its length in bytes.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// The message is too old, from the future, past its `NotOnOrAfter`, or has no usable `IssueInstant`
    /// ([`super::freshness`]).
    #[error("the {message} is refused: {reason}")]
    Stale {
        /// `LogoutRequest`, `AuthnRequest`.
        message: &'static str,
        /// Why, naming the attribute.
        reason: String,
    },
    /// The message's `Destination` is not the URL it arrived at (meant for another IdP or endpoint).
    #[error("the {message} is for {destination:?}, not for this endpoint {expected:?}")]
    WrongDestination {
        /// `LogoutRequest`, `AuthnRequest`.
        message: &'static str,
        /// Its `Destination`.
        destination: String,
        /// Where it arrived.
        expected: String,
    },
    /// A message with this ID was already taken (a replay).
    #[error("the {message} with ID {id:?} was already used; a captured message is not taken twice")]
    Replayed {
        /// `LogoutRequest`, `AuthnRequest`.
        message: &'static str,
        /// Its ID.
        id: String,
    },
    /// No configured SP has this entity ID.
    #[error("no service provider with entity ID {0:?} is configured")]
    UnknownIssuer(String),
    /// No configured SP has this name (IdP-initiated URL).
    #[error("no service provider named {0:?} is configured")]
    UnknownSp(String),
    /// The request asks for an ACS URL the SP did not register.
    #[error("AssertionConsumerServiceURL {url:?} is not registered for service provider {sp:?}")]
    AcsNotRegistered {
        /// The SP.
        sp: String,
        /// The URL requested.
        url: String,
    },
    /// The SP requires signed requests and this one is unsigned, or its signature does not verify.
    #[error("the AuthnRequest signature is missing or invalid for service provider {sp:?}: {reason}")]
    BadSignature {
        /// The SP.
        sp: String,
        /// Why.
        #[source]
        reason: SignatureProblem,
    },
    /// The user's data cannot make a valid NameID or role for this SP.
    #[error("cannot sign {username:?} in to {sp:?}: {reason}")]
    Mapping {
        /// The SP.
        sp: String,
        /// The user.
        username: String,
        /// What is missing or invalid, naming the user field.
        reason: String,
    },
    /// The AuthnRequest's `NameIDPolicy/@Format` cannot be produced for this user and SP: answered with the status
    /// `InvalidNameIDPolicy` (SAML core §3.4.1.1), never with another format.
    #[error("cannot issue the NameID format {requested:?} that {sp:?} asks for: {reason}")]
    InvalidNameIdPolicy {
        /// The SP.
        sp: String,
        /// The format URI asked for.
        requested: String,
        /// Why not.
        reason: String,
    },
    /// The user is not in the SP's allowed groups.
    #[error("{username:?} is not allowed to use {sp:?} (not in its allowed_groups)")]
    NotAllowed {
        /// The SP.
        sp: String,
        /// The user.
        username: String,
    },
    /// A LogoutRequest from an SP without a SingleLogoutService to answer to.
    #[error(
        "service provider {0:?} has no slo_url (SingleLogoutService) configured, so it cannot log out through this IdP"
    )]
    NoSingleLogout(String),
    /// An outgoing HTTP-Redirect message could not be DEFLATE-compressed.
    #[error("compressing an outgoing SAML message failed: {0}")]
    Deflate(#[source] std::io::Error),
    /// The assertion could not be encrypted for the SP.
    #[error("encrypting the assertion for {sp:?}: {source}")]
    Encrypt {
        /// The SP.
        sp: String,
        /// The cause.
        #[source]
        source: super::encrypt::EncryptError,
    },
    /// Keys or certificates could not be loaded, generated or used.
    #[error("SAML keys: {0}")]
    Keys(#[from] super::keys::KeyError),
    /// A service provider's files, metadata or settings could not be used.
    #[error("SAML configuration: {0}")]
    Config(#[from] ConfigError),
}

/// Why a service provider's configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file the SP's configuration names could not be read.
    #[error("service provider {sp:?}: reading {key} {}: {source}", path.display())]
    File {
        /// The SP.
        sp: String,
        /// The configuration key naming the file (`metadata_file`, `certificate_file`).
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `certificate_file` holds no PEM certificate.
    #[error("service provider {sp:?}: certificate_file {} holds no PEM certificate: {source}", path.display())]
    Certificate {
        /// The SP.
        sp: String,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// `metadata_file` is not usable SP metadata.
    #[error("service provider {sp:?}: metadata_file {}: {source}", path.display())]
    Metadata {
        /// The SP.
        sp: String,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: super::sp_metadata::MetadataError,
    },
    /// `encrypt_assertions` without any certificate to encrypt for.
    #[error("service provider {0:?} has encrypt_assertions = true but no encryption certificate")]
    NoEncryptionCertificate(String),
    /// Neither the configuration, the preset nor the metadata gives the SP an ACS URL.
    #[error("service provider {0:?} has no ACS URL")]
    NoAcsUrl(String),
}

/// The usual prefix of a SAML namespace, for messages.
fn namespace_prefix(ns: &str) -> &'static str {
    use super::xml::ns::{DS, SAML, SAMLP};
    [SAMLP, SAML, DS].iter().find(|(_, uri)| *uri == ns).map_or("ns", |(prefix, _)| prefix)
}

impl SamlError {
    /// True when the request (not our configuration) is at fault: answer 4xx.
    pub fn is_bad_request(&self) -> bool {
        !matches!(self, Self::Keys(_) | Self::Config(_) | Self::Deflate(_) | Self::Encrypt { .. })
    }
}
