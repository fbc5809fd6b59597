//! The signature of a message between nodes: HMAC-SHA256 keyed with the
//! cluster secret over a label and a list of fields, each preceded by its
//! length as 8 bytes big-endian. The lengths make the encoding unambiguous
//! whatever the fields hold (a path cannot borrow bytes from the body), and
//! the label keeps a signature made for one kind of message (a request, an
//! announcement) from being passed off as another.
//!
//! A request's fields are its method, its path with the query, the sender's
//! name (`x-evalmesh-node`), its Lamport time (`x-evalmesh-lamport`), its
//! timestamp (`x-evalmesh-timestamp`) and its body: none of them can be
//! changed or swapped without the signature failing. The host is left out:
//! a node is named by its advertised address, which a proxy or NAT may not
//! show as the `Host` it is reached at.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{AuthError, Secret, SIGNATURE_HEADER};

type HmacSha256 = Hmac<Sha256>;

/// The label of a request to a peer.
const REQUEST_LABEL: &[u8] = b"evalmesh peer request v1";

/// What the signature of a request to a peer covers.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// The path and query as sent on the request line, `/evaluation/…?scope=local`.
    pub path: &'a str,
    /// The sender, as its `x-evalmesh-node` header names it.
    pub node: &'a str,
    pub lamport: u64,
    pub timestamp_ms: u64,
    pub body: &'a [u8],
}

impl SignedRequest<'_> {
    fn mac(&self, secret: &Secret) -> HmacSha256 {
        let (lamport, timestamp) = (self.lamport.to_string(), self.timestamp_ms.to_string());
        let fields: [&[u8]; 6] = [
            self.method.as_bytes(),
            self.path.as_bytes(),
            self.node.as_bytes(),
            lamport.as_bytes(),
            timestamp.as_bytes(),
            self.body,
        ];
        mac(secret, REQUEST_LABEL, &fields)
    }
}

/// The signature of `request`, as the hex digits of `x-evalmesh-signature`.
pub fn sign_request(secret: &Secret, request: &SignedRequest<'_>) -> String {
    hex(&request.mac(secret).finalize().into_bytes())
}

/// Checks `signature` (hex) against `request`, in constant time; answers
/// the signature's bytes, which the replay guard remembers.
pub fn verify_request(secret: &Secret, request: &SignedRequest<'_>, signature: &str) -> Result<[u8; 32], AuthError> {
    verify(request.mac(secret), signature)
}

/// The signature of `fields` under `label`, as hex digits.
pub fn sign(secret: &Secret, label: &[u8], fields: &[&[u8]]) -> String {
    hex(&mac(secret, label, fields).finalize().into_bytes())
}

/// Checks `signature` (hex) against `fields` under `label`, in constant time.
pub fn verify_fields(secret: &Secret, label: &[u8], fields: &[&[u8]], signature: &str) -> Result<[u8; 32], AuthError> {
    verify(mac(secret, label, fields), signature)
}

fn mac(secret: &Secret, label: &[u8], fields: &[&[u8]]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes a key of any length");
    for field in std::iter::once(&label).chain(fields) {
        let len = u64::try_from(field.len()).expect("a field is shorter than 2^64 bytes");
        mac.update(&len.to_be_bytes());
        mac.update(field);
    }
    mac
}

fn verify(mac: HmacSha256, signature: &str) -> Result<[u8; 32], AuthError> {
    let claimed = unhex(signature).ok_or(AuthError::Malformed(SIGNATURE_HEADER))?;
    // `verify_slice` compares in constant time: how long a wrong signature
    // took to refuse tells nothing of the right one.
    mac.verify_slice(&claimed).map_err(|_| AuthError::BadSignature)?;
    Ok(claimed)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// 64 hex digits, either case, as the 32 bytes they spell.
fn unhex(text: &str) -> Option<[u8; 32]> {
    let digits = text.as_bytes();
    if digits.len() != 64 {
        return None;
    }
    let mut bytes = [0u8; 32];
    for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> Secret {
        Secret::new("0123456789abcdef-test")
    }

    fn request() -> SignedRequest<'static> {
        SignedRequest {
            method: "POST",
            path: "/join",
            node: "127.0.0.1:5001",
            lamport: 7,
            timestamp_ms: 1_700_000_000_000,
            body: br#"{"a":1}"#,
        }
    }

    #[test]
    fn matches_a_vector_computed_apart() {
        // Python: hmac.new(key, b"".join(struct.pack(">Q", len(f)) + f for f
        // in [label, method, path, node, b"7", b"1700000000000", body]), sha256).
        let expected = "19491665efeb530251046984f97c3a6e1bc975bd9b0235b2eb69c594e856c82a";
        assert_eq!(sign_request(&secret(), &request()), expected);
    }

    #[test]
    fn a_good_signature_verifies_in_either_case() {
        let signature = sign_request(&secret(), &request());
        assert!(verify_request(&secret(), &request(), &signature).is_ok());
        assert!(verify_request(&secret(), &request(), &signature.to_uppercase()).is_ok());
    }

    #[test]
    fn a_wrong_secret_is_a_bad_signature() {
        let signature = sign_request(&Secret::new("another-secret-of-16"), &request());
        assert_eq!(verify_request(&secret(), &request(), &signature), Err(AuthError::BadSignature));
    }

    #[test]
    fn altering_any_covered_field_is_a_bad_signature() {
        let signature = sign_request(&secret(), &request());
        let altered = [
            SignedRequest { method: "GET", ..request() },
            SignedRequest { path: "/join?x=1", ..request() },
            SignedRequest { path: "/probe", ..request() },
            SignedRequest { node: "127.0.0.1:5002", ..request() },
            SignedRequest { lamport: 8, ..request() },
            SignedRequest { timestamp_ms: 1_700_000_000_001, ..request() },
            SignedRequest { body: br#"{"a":2}"#, ..request() },
            SignedRequest { body: b"", ..request() },
        ];
        for request in altered {
            assert_eq!(verify_request(&secret(), &request, &signature), Err(AuthError::BadSignature), "{request:?}");
        }
    }

    #[test]
    fn fields_cannot_trade_bytes() {
        let a = SignedRequest { path: "/a", node: "bc", ..request() };
        let b = SignedRequest { path: "/ab", node: "c", ..request() };
        assert_ne!(sign_request(&secret(), &a), sign_request(&secret(), &b));
    }

    #[test]
    fn a_signature_for_another_label_does_not_pass() {
        let fields: [&[u8]; 2] = [b"127.0.0.1:5001", b"1700000000000"];
        let announcement = sign(&secret(), b"evalmesh announcement v2", &fields);
        assert_eq!(announcement, "35547fba37e0be532d0a21bfb8b24d48af456fd26315becac978e8d28e12c184");
        assert!(verify_fields(&secret(), b"evalmesh announcement v2", &fields, &announcement).is_ok());
        assert_eq!(verify_fields(&secret(), REQUEST_LABEL, &fields, &announcement), Err(AuthError::BadSignature));
    }

    #[test]
    fn a_signature_that_is_not_64_hex_digits_is_malformed() {
        let good = sign_request(&secret(), &request());
        for bad in ["", "zz", &good[..62], &format!("{good}00"), &format!("{}zz", &good[..62]), &"é".repeat(32)] {
            assert_eq!(
                verify_request(&secret(), &request(), bad),
                Err(AuthError::Malformed(SIGNATURE_HEADER)),
                "{bad:?}"
            );
        }
    }
}
