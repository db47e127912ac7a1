//! Image references `[[registry/]repo/]image[:tag][@digest]`, normalized the way Docker's
//! distribution/reference package does (`busybox` = `docker.io/library/busybox:latest`).

use std::fmt;

use super::digest::Digest;
use super::error::{ImageError, Result};

pub const DEFAULT_REGISTRY: &str = "docker.io";
pub const DEFAULT_TAG: &str = "latest";
/// Where the API of the default registry really lives.
const DEFAULT_REGISTRY_ENDPOINT: &str = "registry-1.docker.io";
const LEGACY_DEFAULT_REGISTRY: &str = "index.docker.io";
const NAME_TOTAL_MAX: usize = 255;

/// A normalized image reference. `Display` gives the full form
/// (`docker.io/library/busybox:latest`); [`Reference::familiar`] the short one (`busybox:latest`).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses and normalizes; adds `:latest` when neither tag nor digest is given (what
    /// `docker pull busybox` does).
    pub fn parse(s: &str) -> Result<Reference> {
        let mut r = Reference::parse_name_only(s)?;
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some(DEFAULT_TAG.to_string());
        }
        Ok(r)
    }

    /// Parses and normalizes without adding a default tag (for `docker push repo`, which means
    /// all tags, and for matching).
    pub fn parse_name_only(s: &str) -> Result<Reference> {
        let invalid = |why: &str| ImageError::InvalidReference(format!("{s:?}: {why}"));
        if s.is_empty() {
            return Err(invalid("empty reference"));
        }
        if is_full_hex_id(s) {
            return Err(ImageError::InvalidReference(format!(
                "invalid repository name ({s}), cannot specify 64-byte hexadecimal strings"
            )));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((rest, d)) => (
                rest,
                Some(Digest::parse(d).map_err(|_| invalid("invalid digest"))?),
            ),
            None => (s, None),
        };
        // A tag is whatever follows the last ':' that comes after the last '/'; an earlier ':'
        // belongs to the registry port.
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(t) = tag
            && !valid_tag(t)
        {
            return Err(invalid("invalid tag"));
        }
        let (domain, path) = split_domain(name);
        if !valid_domain(&domain) {
            return Err(invalid("invalid registry host"));
        }
        if path.is_empty() {
            return Err(invalid("missing repository name"));
        }
        for comp in path.split('/') {
            if !valid_path_component(comp) {
                if valid_path_component(&comp.to_ascii_lowercase()) {
                    return Err(ImageError::InvalidReference(format!(
                        "repository name ({path}) must be lowercase"
                    )));
                }
                return Err(invalid("invalid repository name"));
            }
        }
        if domain.len() + 1 + path.len() > NAME_TOTAL_MAX {
            return Err(invalid(
                "repository name must not be more than 255 characters",
            ));
        }
        Ok(Reference {
            domain,
            path,
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// Registry host as written in the reference (`docker.io`, `127.0.0.1:5000`).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Host to connect to for the registry API (`registry-1.docker.io` for `docker.io`).
    pub fn registry_endpoint(&self) -> &str {
        if self.domain == DEFAULT_REGISTRY {
            DEFAULT_REGISTRY_ENDPOINT
        } else {
            &self.domain
        }
    }

    /// Repository path inside the registry (`library/busybox`).
    pub fn repository(&self) -> &str {
        &self.path
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `docker.io/library/busybox`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// `busybox` (registry and `library/` dropped when they are the defaults).
    pub fn familiar_name(&self) -> String {
        if self.domain == DEFAULT_REGISTRY {
            match self.path.strip_prefix("library/") {
                Some(rest) if !rest.contains('/') => rest.to_string(),
                _ => self.path.clone(),
            }
        } else {
            self.name()
        }
    }

    /// `busybox:latest`, `busybox@sha256:…`: the form Docker shows in RepoTags/RepoDigests.
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_name();
        push_suffix(&mut s, self.tag.as_deref(), self.digest.as_ref());
        s
    }

    /// Same repository, given tag, no digest.
    pub fn with_tag(&self, tag: &str) -> Result<Reference> {
        if !valid_tag(tag) {
            return Err(ImageError::InvalidReference(format!("invalid tag {tag:?}")));
        }
        Ok(Reference {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: Some(tag.to_string()),
            digest: None,
        })
    }

    /// Same repository, given digest, no tag.
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: None,
            digest: Some(digest),
        }
    }

    /// Same repository, no tag and no digest.
    pub fn without_tag(&self) -> Reference {
        Reference {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: None,
            digest: None,
        }
    }

    /// What to ask the registry's manifests endpoint for: the digest when pinned, else the tag.
    pub fn manifest_selector(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => DEFAULT_TAG.to_string(),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.name();
        push_suffix(&mut s, self.tag.as_deref(), self.digest.as_ref());
        f.write_str(&s)
    }
}

impl std::str::FromStr for Reference {
    type Err = ImageError;
    fn from_str(s: &str) -> Result<Reference> {
        Reference::parse(s)
    }
}

fn push_suffix(s: &mut String, tag: Option<&str>, digest: Option<&Digest>) {
    if let Some(t) = tag {
        s.push(':');
        s.push_str(t);
    }
    if let Some(d) = digest {
        s.push('@');
        s.push_str(d.as_str());
    }
}

/// True for a bare 64-hex image ID, which Docker refuses as a repository name.
pub fn is_full_hex_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Docker's rule: the first component is a registry when it contains '.' or ':', is
/// `localhost`, or has uppercase letters; otherwise the name lives on docker.io.
fn split_domain(name: &str) -> (String, String) {
    let (mut domain, mut path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.to_ascii_lowercase() != first =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => (DEFAULT_REGISTRY.to_string(), name.to_string()),
    };
    if domain == LEGACY_DEFAULT_REGISTRY {
        domain = DEFAULT_REGISTRY.to_string();
    }
    if domain == DEFAULT_REGISTRY && !path.contains('/') {
        path = format!("library/{path}");
    }
    (domain, path)
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `[\w][\w.-]{0,127}`
fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    !b.is_empty()
        && b.len() <= 128
        && word(b[0])
        && b[1..].iter().all(|&x| word(x) || x == b'.' || x == b'-')
}

/// Host names (`a.b-c.d`), IPv4, bracketed IPv6, each with an optional `:port`.
fn valid_domain(d: &str) -> bool {
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        match after.strip_prefix(':') {
            Some(p) => ("", Some(p)),
            None if after.is_empty() => ("", None),
            None => return false,
        }
    } else {
        match d.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (d, None),
        }
    };
    if let Some(p) = port
        && (p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.len() > 5)
    {
        return false;
    }
    if d.starts_with('[') {
        return true;
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|&x| x.is_ascii_alphanumeric() || x == b'-')
        })
}
