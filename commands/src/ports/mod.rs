//! Ports: the traits through which the write side and its process managers reach external
//! systems. Each is implemented by an adapter in `dezky-adapters` and, for the simulation
//! suites, by an in-memory fake; one contract suite holds both to the same behaviour.

pub mod booking_mail;
pub mod calendar;
pub mod dns;
pub mod mail;

/// A value that must never reach a log line or a panic message (a password, an API secret).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value, for the one place that needs it (a request body, an auth header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}
