//! A tiny XML element tree whose serialization *is* its Exclusive XML Canonicalization (exc-c14n, without
//! comments), so the bytes we digest and sign are exactly the bytes a verifier re-canonicalizes.
//!
//! How that holds: elements are written with start and end tags (never `<a/>`), attributes sorted by name (we
//! only use unprefixed attributes), text and attribute values escaped per C14N §2.3, no XML declaration, no
//! whitespace between elements, and each element declares the namespace prefix it uses unless an ancestor in the
//! same rendering already did — which is what exc-c14n renders for any subtree taken as the apex. Values come
//! from directories and requests, so every value is escaped here and nowhere else; characters that XML 1.0 does not
//! allow are replaced, never emitted.

/// Namespace prefixes and URIs we write.
pub mod ns {
    /// SAML 2.0 protocol.
    pub const SAMLP: (&str, &str) = ("samlp", "urn:oasis:names:tc:SAML:2.0:protocol");
    /// SAML 2.0 assertion.
    pub const SAML: (&str, &str) = ("saml", "urn:oasis:names:tc:SAML:2.0:assertion");
    /// XML-DSig.
    pub const DS: (&str, &str) = ("ds", "http://www.w3.org/2000/09/xmldsig#");
    /// XML Encryption.
    pub const XENC: (&str, &str) = ("xenc", "http://www.w3.org/2001/04/xmlenc#");
    /// SAML 2.0 metadata.
    pub const MD: (&str, &str) = ("md", "urn:oasis:names:tc:SAML:2.0:metadata");
}

/// An element with its namespace, unprefixed attributes and children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    ns: (&'static str, &'static str),
    name: &'static str,
    attrs: Vec<(&'static str, String)>,
    children: Vec<Node>,
}

/// A child: an element or text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// An element.
    Element(Element),
    /// Character data.
    Text(String),
}

impl Element {
    /// `<prefix:name>` in namespace `ns`.
    pub fn new(ns: (&'static str, &'static str), name: &'static str) -> Self {
        Self { ns, name, attrs: Vec::new(), children: Vec::new() }
    }

    /// Adds an unprefixed attribute.
    pub fn attr(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.attrs.push((name, value.into()));
        self
    }

    /// Adds an attribute if `value` is present.
    pub fn attr_opt(self, name: &'static str, value: Option<impl Into<String>>) -> Self {
        match value {
            Some(v) => self.attr(name, v),
            None => self,
        }
    }

    /// Appends a child element.
    pub fn child(mut self, child: Element) -> Self {
        self.children.push(Node::Element(child));
        self
    }

    /// Appends text.
    pub fn text(mut self, text: impl Into<String>) -> Self {
        self.children.push(Node::Text(text.into()));
        self
    }

    /// Inserts a child element at `index` (e.g. a signature right after `Issuer`).
    pub fn insert_child(&mut self, index: usize, child: Element) {
        let i = index.min(self.children.len());
        self.children.insert(i, Node::Element(child));
    }

    /// The value of attribute `name`.
    pub fn get_attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    /// The canonical (exc-c14n) serialization of this element as the apex.
    pub fn to_canonical(&self) -> String {
        let mut out = String::with_capacity(1024);
        self.write(&mut out, &mut Vec::new());
        out
    }

    fn write(&self, out: &mut String, declared: &mut Vec<&'static str>) {
        let (prefix, uri) = self.ns;
        out.push('<');
        out.push_str(prefix);
        out.push(':');
        out.push_str(self.name);
        let new_decl = !declared.contains(&prefix);
        if new_decl {
            out.push_str(" xmlns:");
            out.push_str(prefix);
            out.push_str("=\"");
            escape_attr(uri, out);
            out.push('"');
        }
        let mut attrs: Vec<&(&str, String)> = self.attrs.iter().collect();
        attrs.sort_by(|a, b| a.0.cmp(b.0));
        for (name, value) in attrs {
            out.push(' ');
            out.push_str(name);
            out.push_str("=\"");
            escape_attr(value, out);
            out.push('"');
        }
        out.push('>');
        if new_decl {
            declared.push(prefix);
        }
        for child in &self.children {
            match child {
                Node::Element(e) => e.write(out, declared),
                Node::Text(t) => escape_text(t, out),
            }
        }
        if new_decl {
            declared.pop();
        }
        out.push_str("</");
        out.push_str(prefix);
        out.push(':');
        out.push_str(self.name);
        out.push('>');
    }
}

/// XML 1.0 allows tab, LF, CR and everything from U+0020 except surrogates and U+FFFE/U+FFFF.
fn allowed(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')
}

/// C14N text escaping: `&`, `<`, `>`, CR.
fn escape_text(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#xD;"),
            c if allowed(c) => out.push(c),
            _ => out.push('\u{FFFD}'),
        }
    }
}

/// C14N attribute escaping: `&`, `<`, `"`, tab, LF, CR.
fn escape_attr(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '"' => out.push_str("&quot;"),
            '\t' => out.push_str("&#x9;"),
            '\n' => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            c if allowed(c) => out.push(c),
            _ => out.push('\u{FFFD}'),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn writes_canonical_form_with_namespaces_where_first_used() {
        let doc = Element::new(ns::SAMLP, "Response")
            .attr("Version", "2.0")
            .attr("ID", "_1")
            .child(Element::new(ns::SAML, "Issuer").text("idp"))
            .child(Element::new(ns::SAML, "Assertion").child(Element::new(ns::SAML, "Subject")));
        assert_eq!(
            doc.to_canonical(),
            "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" ID=\"_1\" Version=\"2.0\">\
             <saml:Issuer xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\">idp</saml:Issuer>\
             <saml:Assertion xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\"><saml:Subject></saml:Subject></saml:Assertion>\
             </samlp:Response>"
        );
    }

    #[test]
    fn escapes_values_so_they_cannot_change_the_structure() {
        let e = Element::new(ns::SAML, "AttributeValue")
            .attr("Name", "a\"b<c&d\te\nf")
            .text("x</saml:AttributeValue><saml:Attribute Name=\"role\">admin & <b>\r\u{0}");
        assert_eq!(
            e.to_canonical(),
            "<saml:AttributeValue xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" Name=\"a&quot;b&lt;c&amp;d&#x9;e&#xA;f\">\
             x&lt;/saml:AttributeValue&gt;&lt;saml:Attribute Name=\"role\"&gt;admin &amp; &lt;b&gt;&#xD;\u{FFFD}</saml:AttributeValue>"
        );
    }
}
