//! Object IDs (swarmkit-style 25-char base36) and lookup by full ID, exact name or unique prefix.

use crate::error::ApiError;

/// Length of a generated ID.
pub const ID_LEN: usize = 25;

/// A new random ID: 128 random bits in base36 (`[a-z0-9]`), zero-padded to 25 characters.
pub fn new_id() -> String {
    let mut n: u128 = rand::random();
    let mut buf = [b'0'; ID_LEN];
    let mut i = ID_LEN;
    while n > 0 && i > 0 {
        i -= 1;
        let d = (n % 36) as u8;
        buf[i] = if d < 10 { b'0' + d } else { b'a' + d - 10 };
        n /= 36;
    }
    buf.iter().map(|&b| b as char).collect()
}

/// Anything that has an ID and maybe a unique name, so it can be looked up.
pub trait Named {
    fn id(&self) -> &str;
    /// The name a user may type to mean this object (None for tasks).
    fn lookup_name(&self) -> Option<&str>;
}

/// Why `resolve` found no single object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{key} is ambiguous ({count} matches found)")]
    Ambiguous { key: String, count: usize },
}

impl LookupError {
    /// The API error, with the object kind in the text: "service web not found" (404),
    /// "service ab is ambiguous (2 matches found)" (400).
    pub fn into_api(self, kind: &str) -> ApiError {
        match self {
            LookupError::NotFound(key) => ApiError::not_found(format!("{kind} {key} not found")),
            LookupError::Ambiguous { key, count } => ApiError::invalid_argument(format!(
                "{kind} {key} is ambiguous ({count} matches found)"
            )),
        }
    }
}

/// Finds the object a user means by `key`: a full ID, then an exact name, then a unique ID prefix.
pub fn resolve<'a, T, I>(items: I, key: &str) -> Result<&'a T, LookupError>
where
    T: Named + 'a,
    I: IntoIterator<Item = &'a T>,
{
    if key.is_empty() {
        return Err(LookupError::NotFound(key.to_string()));
    }
    let items: Vec<&T> = items.into_iter().collect();
    if let Some(t) = items.iter().find(|t| t.id() == key) {
        return Ok(t);
    }
    let by_name: Vec<&&T> = items
        .iter()
        .filter(|t| t.lookup_name() == Some(key))
        .collect();
    match by_name.len() {
        0 => {}
        1 => return Ok(by_name[0]),
        n => {
            return Err(LookupError::Ambiguous {
                key: key.to_string(),
                count: n,
            });
        }
    }
    let by_prefix: Vec<&&T> = items.iter().filter(|t| t.id().starts_with(key)).collect();
    match by_prefix.len() {
        0 => Err(LookupError::NotFound(key.to_string())),
        1 => Ok(by_prefix[0]),
        n => Err(LookupError::Ambiguous {
            key: key.to_string(),
            count: n,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct It(&'static str, Option<&'static str>);
    impl Named for It {
        fn id(&self) -> &str {
            self.0
        }
        fn lookup_name(&self) -> Option<&str> {
            self.1
        }
    }

    #[test]
    fn ids_are_25_base36() {
        let a = new_id();
        let b = new_id();
        assert_eq!(a.len(), ID_LEN);
        assert_ne!(a, b);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
        );
    }

    #[test]
    fn lookup_order() {
        let items = [
            It("abc123", Some("web")),
            It("abd456", Some("abc")),
            It("zzz", None),
        ];
        // Full ID wins over a name that equals another ID's prefix.
        assert_eq!(resolve(&items, "abc123").unwrap().0, "abc123");
        // Exact name beats prefix match.
        assert_eq!(resolve(&items, "abc").unwrap().0, "abd456");
        assert_eq!(resolve(&items, "web").unwrap().0, "abc123");
        assert_eq!(resolve(&items, "abd").unwrap().0, "abd456");
        assert_eq!(resolve(&items, "z").unwrap().0, "zzz");
        assert_eq!(
            resolve(&items, "ab").unwrap_err(),
            LookupError::Ambiguous {
                key: "ab".into(),
                count: 2
            }
        );
        assert_eq!(
            resolve(&items, "q").unwrap_err(),
            LookupError::NotFound("q".into())
        );
        assert!(resolve(&items, "").is_err());
        let e = resolve(&items, "ab").unwrap_err().into_api("service");
        assert_eq!(e.status_code(), 400);
        assert_eq!(e.message, "service ab is ambiguous (2 matches found)");
        let e = resolve(&items, "nosuch").unwrap_err().into_api("service");
        assert_eq!(e.status_code(), 404);
        assert_eq!(e.message, "service nosuch not found");
    }
}
