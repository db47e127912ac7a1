//! The one error type of this crate.

/// Everything that can go wrong in the data plane, with enough context to act on.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// Bad input from the caller; nothing was changed.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// A netlink request failed.
    #[error("netlink: {0}")]
    Netlink(String),
    /// Entering, creating or deleting a network namespace failed.
    #[error("netns: {0}")]
    Netns(String),
    /// Applying or reading an nftables ruleset failed.
    #[error("nftables: {0}")]
    Nft(String),
    /// The DNS server failed.
    #[error("dns: {0}")]
    Dns(String),
    /// The gossip layer failed.
    #[error("gossip: {0}")]
    Gossip(String),
    /// WireGuard device or configuration failed.
    #[error("wireguard: {0}")]
    WireGuard(String),
    /// A named object does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// Plain I/O.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, NetError>;
