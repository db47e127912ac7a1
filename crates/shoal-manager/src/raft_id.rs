//! Raft member IDs are derived from node IDs, so the mapping needs no table of its own:
//! the same node always has the same Raft ID, and a node's ID is never reused.

use sha2::{Digest, Sha256};

pub fn raft_id_for(node_id: &str) -> u64 {
    let digest = Sha256::digest(node_id.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    // Zero is not a valid member ID in some raft tooling; keep clear of it.
    u64::from_be_bytes(bytes).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_distinct() {
        assert_eq!(raft_id_for("abc"), raft_id_for("abc"));
        assert_ne!(raft_id_for("abc"), raft_id_for("abd"));
    }
}
