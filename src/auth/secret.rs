//! `Secret`: a string from the config that must never be printed — the
//! cluster secret, a client token. Its `Debug` hides it, it has no
//! `Display` and no `Serialize`, so that neither a log line formatting the
//! config nor a JSON answer can carry it by accident.

use serde::Deserialize;

#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one use that needs it: a MAC key, a
    /// comparison. Never for a log line or an answer.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_value_and_its_length() {
        let shown = format!("{:?}", Secret::new("hunter2-hunter2-hunter2"));
        assert_eq!(shown, "Secret(***)");
        assert_eq!(format!("{:?}", Secret::new("x")), shown);
    }

    #[test]
    fn reads_from_a_plain_toml_string() {
        #[derive(Deserialize)]
        struct Holder {
            secret: Secret,
        }
        let holder: Holder = toml::from_str("secret = \"abc\"").unwrap();
        assert_eq!(holder.secret.expose(), "abc");
    }
}
