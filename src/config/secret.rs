//! Credentials in the configuration, and the one place they are serialized
//! in clear.
//!
//! A [`Secret`] is shown as `<secret>` by `Debug` and by `Serialize`, so the
//! configuration can be logged or served (`/api/v1/status/config`) as
//! Prometheus serves it, without leaking passwords, tokens or keys.
//!
//! Reloads, however, must notice a changed password: the scrape manager and
//! the remote-write queues compare a [`fingerprint`] of each section, and a
//! fingerprint that masked secrets would keep running a job with its old
//! credentials. [`fingerprint`] therefore serializes with secrets revealed.
//! The switch is a thread-local flag rather than a second set of types or a
//! serializer parameter: serde has no way to pass context down to a field,
//! and serialization is synchronous, so a flag scoped to one call on one
//! thread cannot leak into another serialization (the guard restores it even
//! if serialization panics).

use std::cell::Cell;
use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

/// What a [`Secret`] serializes as outside [`fingerprint`].
pub const MASK: &str = "<secret>";

thread_local! {
    /// Whether [`Secret`]s on this thread serialize in clear (only inside [`fingerprint`]).
    static REVEAL: Cell<bool> = const { Cell::new(false) };
}

/// A credential read from the config: never shown by `Debug` or
/// `Serialize`, so a config dumped in a log, an error or the API does not
/// leak it. [`Secret::expose`] is for the code that sends it.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl Secret {
    /// The credential itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if REVEAL.with(Cell::get) {
            serializer.serialize_str(&self.0)
        } else {
            serializer.serialize_str(MASK)
        }
    }
}

/// Restores the reveal flag when dropped, so a panic inside serialization
/// does not leave secrets revealed on the thread.
struct Revealed {
    before: bool,
}

impl Revealed {
    fn start() -> Revealed {
        Revealed {
            before: REVEAL.with(|r| r.replace(true)),
        }
    }
}

impl Drop for Revealed {
    fn drop(&mut self) {
        REVEAL.with(|r| r.set(self.before));
    }
}

/// A value's settings as one string, to tell whether a reload changed them.
/// Secrets are included in clear, so a changed password is a change; the
/// string is compared and dropped, never logged or shown. YAML positions
/// (`Spanned`) are not part of it: a section that only moved is unchanged.
pub fn fingerprint<T: Serialize + ?Sized>(value: &T) -> String {
    let _revealed = Revealed::start();
    // Config types serialize to JSON without fail (string keys, no
    // non-finite floats); an empty fingerprint would only mean "changed".
    serde_json::to_string(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_except_in_fingerprints() {
        let secret = Secret("hunter2".into());
        assert_eq!(serde_json::to_string(&secret).unwrap(), "\"<secret>\"");
        assert_eq!(fingerprint(&secret), "\"hunter2\"");
        // The flag ends with the fingerprint.
        assert_eq!(serde_json::to_string(&secret).unwrap(), "\"<secret>\"");
        assert_eq!(format!("{secret:?}"), "<secret>");
        assert_ne!(fingerprint(&secret), fingerprint(&Secret("hunter3".into())));
    }

    #[test]
    fn a_panic_while_revealed_does_not_leave_secrets_revealed() {
        struct Boom;
        impl Serialize for Boom {
            fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                panic!("boom")
            }
        }
        let caught = std::panic::catch_unwind(|| fingerprint(&Boom));
        assert!(caught.is_err());
        let json = serde_json::to_string(&Secret("hunter2".into())).unwrap();
        assert_eq!(json, "\"<secret>\"");
    }
}
