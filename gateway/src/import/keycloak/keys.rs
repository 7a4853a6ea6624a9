//! Keycloak's key material as files fedgate reads: the realm's RSA key (base64 PKCS#8, or PKCS#1 from an
//! uploaded `rsa` provider) as a PKCS#8 PEM, and certificates (base64 DER) as PEM.

use base64::Engine as _;

/// PEM with 64-column lines.
pub fn pem(label: &str, der: &[u8]) -> String {
    federation::key_file::pem(label, der)
}

/// Base64 (whitespace and PEM armour tolerated) to DER.
pub fn decode(b64: &str) -> Option<Vec<u8>> {
    let body: String = b64.lines().filter(|l| !l.starts_with("-----")).flat_map(|l| l.chars()).collect();
    let body: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

/// The key as PKCS#8 DER, checked to be an RSA key fedgate can sign with. A PKCS#1 `RSAPrivateKey` is wrapped
/// into PKCS#8 (RFC 5208 §5 with the rsaEncryption algorithm identifier).
pub fn rsa_pkcs8(der: Vec<u8>) -> Option<Vec<u8>> {
    let usable = |d: &[u8]| aws_lc_rs::rsa::KeyPair::from_pkcs8(d).is_ok();
    if usable(&der) {
        return Some(der);
    }
    // AlgorithmIdentifier { rsaEncryption, NULL }.
    const RSA_ALG: &[u8] = &[0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00];
    let mut body = vec![0x02, 0x01, 0x00];
    body.extend_from_slice(RSA_ALG);
    body.extend(tlv(0x04, &der));
    let wrapped = tlv(0x30, &body);
    usable(&wrapped).then_some(wrapped)
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// Whether DER parses as an X.509 certificate.
pub fn is_certificate(der: &[u8]) -> bool {
    der.first() == Some(&0x30) && der.len() > 64
}
