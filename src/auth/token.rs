//! Client tokens of the public API: `Authorization: Bearer <token>`, checked
//! against the configured list in constant time.

use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use super::Secret;

/// The token of an `Authorization` header value of the Bearer scheme
/// (RFC 6750 §2.1: the scheme's name in any case, then the token).
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim_start();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Whether `candidate` is one of `tokens`. The digests are compared, not
/// the tokens, so that neither a token's length nor the first byte that
/// differs shows in how long the answer takes; every token is compared,
/// so neither does which one matched.
pub fn matches(tokens: &[Secret], candidate: &str) -> bool {
    let candidate = Sha256::digest(candidate.as_bytes());
    let found = tokens
        .iter()
        .map(|token| Sha256::digest(token.expose().as_bytes()).ct_eq(&candidate))
        .fold(Choice::from(0), |found, this| found | this);
    found.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_takes_the_token_of_the_bearer_scheme_only() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("BEARER abc"), Some("abc"));
        for bad in ["", "Bearer", "Bearer ", "Basic abc", "Bearerabc", "abc"] {
            assert_eq!(bearer(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn matches_only_a_configured_token() {
        let tokens = [Secret::new("first-token-0123456789"), Secret::new("second-token-0123456789")];
        assert!(matches(&tokens, "first-token-0123456789"));
        assert!(matches(&tokens, "second-token-0123456789"));
        for wrong in ["", "first-token", "first-token-01234567890", "FIRST-TOKEN-0123456789"] {
            assert!(!matches(&tokens, wrong), "{wrong:?}");
        }
        assert!(!matches(&[], "anything"));
    }
}
