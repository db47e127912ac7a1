//! A node's credentials on disk, under `<state dir>/certificates/`:
//!
//! - `swarm-root-ca.crt`: the cluster root certificate (PEM);
//! - `swarm-node.crt`: this node's certificate (PEM);
//! - `swarm-node.key` (mode 0600): [`NodeSecrets`], the TLS key plus the optional Raft DEK.
//!
//! Without autolock `swarm-node.key` is plain PEM: the PKCS#8 key (so openssl can read it),
//! followed by a `SHOAL RAFT DEK` block when the node has a DEK. With autolock the whole of
//! that text is sealed under the unlock key and stored as one `SHOAL SEALED NODE SECRETS`
//! block. Every file is written to a temporary name and renamed, so a crash never leaves a
//! half-written key.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::client::NodeCredentials;
use super::error::CaError;
use super::pki::NodeKey;
use super::seal::{Dek, Kek, open, seal};

pub const CERTIFICATES_DIR: &str = "certificates";
pub const CA_CERT_FILE: &str = "swarm-root-ca.crt";
pub const NODE_CERT_FILE: &str = "swarm-node.crt";
pub const NODE_KEY_FILE: &str = "swarm-node.key";

const DEK_LABEL: &str = "SHOAL RAFT DEK";
const SEALED_LABEL: &str = "SHOAL SEALED NODE SECRETS";

/// What `swarm-node.key` holds.
#[derive(Clone, PartialEq, Eq)]
pub struct NodeSecrets {
    /// PKCS#8 PEM of the node's TLS key.
    pub key_pem: String,
    /// Data-encryption key of the Raft log (managers only).
    pub dek: Option<Dek>,
}

impl std::fmt::Debug for NodeSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeSecrets")
            .field("has_dek", &self.dek.is_some())
            .finish_non_exhaustive()
    }
}

fn cert_dir(state_dir: &Path) -> PathBuf {
    state_dir.join(CERTIFICATES_DIR)
}

impl NodeSecrets {
    /// Writes `swarm-node.key`: in clear, or sealed by `lock` (autolock on).
    pub fn save(&self, state_dir: &Path, lock: Option<&Kek>) -> Result<(), CaError> {
        let dir = cert_dir(state_dir);
        ensure_dir(&dir)?;
        let text = self.encode(lock);
        write_atomic(&dir.join(NODE_KEY_FILE), text.as_bytes(), 0o600)
    }

    /// Reads `swarm-node.key`. A sealed file needs `unlock`; without it the error is
    /// [`CaError::Locked`]. An unlock key given for a clear file is ignored.
    pub fn load(state_dir: &Path, unlock: Option<&Kek>) -> Result<NodeSecrets, CaError> {
        let path = cert_dir(state_dir).join(NODE_KEY_FILE);
        let text = read_string(&path)?;
        NodeSecrets::decode(&text, unlock)
    }

    /// True if `swarm-node.key` exists and is sealed (the node needs an unlock key to start).
    pub fn is_sealed(state_dir: &Path) -> Result<bool, CaError> {
        let path = cert_dir(state_dir).join(NODE_KEY_FILE);
        let text = read_string(&path)?;
        Ok(pem_blocks(&text)?.iter().any(|(l, _)| l == SEALED_LABEL))
    }

    fn encode(&self, lock: Option<&Kek>) -> String {
        let mut clear = self.key_pem.trim_end().to_string();
        clear.push('\n');
        if let Some(dek) = &self.dek {
            clear.push_str(&pem_block(DEK_LABEL, dek.as_bytes()));
        }
        match lock {
            None => clear,
            Some(kek) => pem_block(SEALED_LABEL, &seal(kek, clear.as_bytes())),
        }
    }

    fn decode(text: &str, unlock: Option<&Kek>) -> Result<NodeSecrets, CaError> {
        let blocks = pem_blocks(text)?;
        if let Some((_, sealed)) = blocks.iter().find(|(l, _)| l == SEALED_LABEL) {
            let kek = unlock.ok_or(CaError::Locked)?;
            let clear = open(kek, sealed).map_err(|e| match e {
                CaError::Decrypt(_) => CaError::Decrypt("the node key with this unlock key"),
                other => other,
            })?;
            let clear = String::from_utf8(clear)
                .map_err(|_| CaError::Invalid("sealed node secrets are not text".into()))?;
            return NodeSecrets::decode(&clear, None);
        }
        let mut key_pem = None;
        let mut dek = None;
        for (label, der) in &blocks {
            match label.as_str() {
                "PRIVATE KEY" | "EC PRIVATE KEY" => {
                    key_pem = Some(pem_block(label, der));
                }
                DEK_LABEL => {
                    let b: [u8; 32] = der.as_slice().try_into().map_err(|_| {
                        CaError::Invalid(format!("{NODE_KEY_FILE}: DEK must be 32 bytes"))
                    })?;
                    dek = Some(Dek::from_bytes(b));
                }
                _ => {}
            }
        }
        let key_pem = key_pem
            .ok_or_else(|| CaError::Invalid(format!("{NODE_KEY_FILE} holds no private key")))?;
        // Fail here rather than at the first TLS handshake.
        NodeKey::from_pem(&key_pem)?;
        Ok(NodeSecrets { key_pem, dek })
    }
}

/// True if this state dir holds a node certificate (the node is part of a swarm).
pub fn credentials_exist(state_dir: &Path) -> bool {
    let dir = cert_dir(state_dir);
    dir.join(NODE_CERT_FILE).is_file() && dir.join(NODE_KEY_FILE).is_file()
}

/// Writes the root CA, node certificate and node key. The DEK already in `swarm-node.key`
/// is kept; `lock` seals the key (autolock) and must then also open the existing file.
pub fn save_credentials(
    state_dir: &Path,
    creds: &NodeCredentials,
    lock: Option<&Kek>,
) -> Result<(), CaError> {
    let dir = cert_dir(state_dir);
    ensure_dir(&dir)?;
    let dek = if dir.join(NODE_KEY_FILE).is_file() {
        NodeSecrets::load(state_dir, lock)?.dek
    } else {
        None
    };
    let secrets = NodeSecrets {
        key_pem: creds.key_pem.clone(),
        dek,
    };
    // Key first: a crash after it leaves a key without its certificate, which load refuses
    // clearly, never a new certificate next to an old key.
    secrets.save(state_dir, lock)?;
    write_atomic(&dir.join(CA_CERT_FILE), creds.ca_pem.as_bytes(), 0o644)?;
    write_atomic(&dir.join(NODE_CERT_FILE), creds.cert_pem.as_bytes(), 0o644)?;
    Ok(())
}

/// Reads the credentials written by [`save_credentials`], checking that the key belongs to
/// the certificate. `unlock` is needed when the key is sealed.
pub fn load_credentials(
    state_dir: &Path,
    unlock: Option<&Kek>,
) -> Result<NodeCredentials, CaError> {
    let dir = cert_dir(state_dir);
    if !credentials_exist(state_dir) {
        return Err(CaError::NotFound(dir.display().to_string()));
    }
    let secrets = NodeSecrets::load(state_dir, unlock)?;
    let cert_pem = read_string(&dir.join(NODE_CERT_FILE))?;
    let ca_pem = read_string(&dir.join(CA_CERT_FILE))?;
    NodeCredentials::from_parts(secrets.key_pem, cert_pem, ca_pem)
}

fn ensure_dir(dir: &Path) -> Result<(), CaError> {
    fs::create_dir_all(dir).map_err(|e| CaError::io(format!("create {}", dir.display()), e))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| CaError::io(format!("chmod {}", dir.display()), e))
}

fn read_string(path: &Path) -> Result<String, CaError> {
    fs::read_to_string(path).map_err(|e| CaError::io(format!("read {}", path.display()), e))
}

fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), CaError> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let ctx = |what: &str| format!("{what} {}", tmp.display());
    let result = (|| {
        let _ = fs::remove_file(&tmp);
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(|e| CaError::io(ctx("create"), e))?;
        f.write_all(data)
            .map_err(|e| CaError::io(ctx("write"), e))?;
        f.sync_all().map_err(|e| CaError::io(ctx("sync"), e))?;
        fs::rename(&tmp, path).map_err(|e| CaError::io(format!("rename to {}", path.display()), e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn pem_block(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// All `-----BEGIN X-----` blocks of a text, as (label, decoded bytes).
fn pem_blocks(text: &str) -> Result<Vec<(String, Vec<u8>)>, CaError> {
    let bad = |why: String| CaError::Invalid(format!("{NODE_KEY_FILE}: {why}"));
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(label) = line
            .trim()
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        else {
            continue;
        };
        let end = format!("-----END {label}-----");
        let mut b64 = String::new();
        let mut closed = false;
        for l in lines.by_ref() {
            let l = l.trim();
            if l == end {
                closed = true;
                break;
            }
            // PEM headers (RFC 1421 "Name: value") are not used here; skip them.
            if !l.contains(':') {
                b64.push_str(l);
            }
        }
        if !closed {
            return Err(bad(format!("unterminated {label} block")));
        }
        let der = STANDARD
            .decode(&b64)
            .map_err(|e| bad(format!("{label} block is not base64: {e}")))?;
        out.push((label.to_string(), der));
    }
    Ok(out)
}
