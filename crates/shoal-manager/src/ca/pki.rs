//! Root CA, node keys, certificate issuance and the identity carried by a node certificate.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::Rng;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::error::CaError;

/// Common name of the cluster root CA (as in swarmkit).
pub const CA_COMMON_NAME: &str = "swarm-ca";
/// Root CA lifetime: 20 years.
pub const CA_VALIDITY: Duration = Duration::from_secs(20 * 365 * 24 * 3600);
/// Node certificate lifetime when the cluster does not set one: 90 days.
pub const DEFAULT_NODE_CERT_VALIDITY: Duration = Duration::from_secs(90 * 24 * 3600);
/// Shortest node certificate lifetime accepted.
pub const MIN_NODE_CERT_VALIDITY: Duration = Duration::from_secs(3600);
/// Node certificates start one hour in the past so that peers with a slow clock accept them.
const BACKDATE: Duration = Duration::from_secs(3600);

/// The role a node certificate grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Manager,
    Worker,
}

impl Role {
    /// The certificate OU for this role (swarmkit's names).
    pub fn ou(self) -> &'static str {
        match self {
            Role::Manager => "swarm-manager",
            Role::Worker => "swarm-worker",
        }
    }

    /// Short name used in the API and on the wire: "manager" / "worker".
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Manager => "manager",
            Role::Worker => "worker",
        }
    }

    /// Parses a certificate OU.
    pub fn from_ou(ou: &str) -> Option<Role> {
        match ou {
            "swarm-manager" => Some(Role::Manager),
            "swarm-worker" => Some(Role::Worker),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = CaError;
    /// Accepts "manager"/"worker" and the OU spellings.
    fn from_str(s: &str) -> Result<Self, CaError> {
        match s {
            "manager" | "swarm-manager" => Ok(Role::Manager),
            "worker" | "swarm-worker" => Ok(Role::Worker),
            other => Err(CaError::Invalid(format!(
                "invalid role {other:?}: expected \"manager\" or \"worker\""
            ))),
        }
    }
}

/// What a node certificate says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub node_id: String,
    pub role: Role,
    pub cluster_id: String,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl Identity {
    /// Parses the identity out of a DER node certificate (CN = node ID, OU = role,
    /// O = cluster ID). Does not verify the signature: that is the TLS layer's job.
    pub fn from_der(cert_der: &[u8]) -> Result<Identity, CaError> {
        parse_identity(cert_der)
    }

    /// As [`Identity::from_der`], from the first certificate of a PEM string.
    pub fn from_pem(cert_pem: &str) -> Result<Identity, CaError> {
        parse_identity(&pem_cert_der(cert_pem)?)
    }

    /// When this certificate should be renewed: a point in 50–80 % of its validity that is
    /// spread across nodes but fixed for a given certificate, so that checking it on every
    /// tick does not draw again (repeated draws would renew near 50 % every time).
    pub fn renewal_due(&self) -> SystemTime {
        let secs = |t: SystemTime| {
            t.duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs()
                .to_be_bytes()
        };
        let mut h = Sha256::new();
        h.update(self.node_id.as_bytes());
        h.update(secs(self.not_before));
        h.update(secs(self.not_after));
        let d = h.finalize();
        let x = u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
        let frac = 0.5 + 0.3 * (f64::from(x) / f64::from(u32::MAX));
        let total = self
            .not_after
            .duration_since(self.not_before)
            .unwrap_or_default();
        self.not_before + total.mul_f64(frac)
    }
}

/// See [`Identity::from_der`].
pub fn parse_identity(cert_der: &[u8]) -> Result<Identity, CaError> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| CaError::Cert(format!("cannot parse certificate: {e}")))?;
    let subject = cert.subject();
    let one = |what: &str, mut it: Box<dyn Iterator<Item = _> + '_>| -> Result<String, CaError> {
        let attr: &x509_parser::x509::AttributeTypeAndValue = it
            .next()
            .ok_or_else(|| CaError::Cert(format!("node certificate has no {what}")))?;
        let s = attr
            .as_str()
            .map_err(|e| CaError::Cert(format!("node certificate {what} is not a string: {e}")))?;
        if s.is_empty() {
            return Err(CaError::Cert(format!(
                "node certificate has an empty {what}"
            )));
        }
        Ok(s.to_string())
    };
    let node_id = one("CN (node ID)", Box::new(subject.iter_common_name()))?;
    let ou = one("OU (role)", Box::new(subject.iter_organizational_unit()))?;
    let cluster_id = one("O (cluster ID)", Box::new(subject.iter_organization()))?;
    let role = Role::from_ou(&ou)
        .ok_or_else(|| CaError::Cert(format!("node certificate has an unknown role OU {ou:?}")))?;
    let validity = cert.validity();
    Ok(Identity {
        node_id,
        role,
        cluster_id,
        not_before: unix_to_system(validity.not_before.timestamp()),
        not_after: unix_to_system(validity.not_after.timestamp()),
    })
}

fn unix_to_system(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

/// A random point in [50 %, 80 %] of the validity window, so that a cluster whose nodes all
/// joined at once does not renew all at once. Each call draws again: draw once per
/// certificate and keep the result (or use [`Identity::renewal_due`], which is stable).
pub fn renewal_due(not_before: SystemTime, not_after: SystemTime) -> SystemTime {
    let total = not_after.duration_since(not_before).unwrap_or_default();
    let frac: f64 = rand::thread_rng().gen_range(0.5..=0.8);
    not_before + total.mul_f64(frac)
}

/// How long from now until [`renewal_due`] (zero if already due).
pub fn renewal_delay(not_before: SystemTime, not_after: SystemTime) -> Duration {
    renewal_due(not_before, not_after)
        .duration_since(SystemTime::now())
        .unwrap_or_default()
}

/// First CERTIFICATE block of a PEM string, as DER.
pub(crate) fn pem_cert_der(pem: &str) -> Result<CertificateDer<'static>, CaError> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| CaError::Invalid(format!("invalid certificate PEM: {e}")))
}

pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

fn random_serial() -> SerialNumber {
    let mut b = [0u8; 16];
    rand::thread_rng().fill(&mut b);
    // Positive and without a leading zero byte, so it encodes to exactly 16 bytes.
    b[0] = (b[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&b)
}

/// The cluster root CA: certificate and signing key.
pub struct RootCa {
    cert_der: CertificateDer<'static>,
    cert_pem: String,
    key: KeyPair,
}

impl fmt::Debug for RootCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RootCa")
            .field("digest", &hex::encode(self.digest()))
            .finish_non_exhaustive()
    }
}

impl RootCa {
    /// A new self-signed ECDSA P-256 root, CN `swarm-ca`, valid 20 years.
    pub fn generate() -> Result<RootCa, CaError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, CA_COMMON_NAME);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + CA_VALIDITY;
        params.serial_number = Some(random_serial());
        let cert = params.self_signed(&key)?;
        Ok(RootCa {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            key,
        })
    }

    /// Loads a root from its certificate and PKCS#8 key PEMs, checking they belong together.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<RootCa, CaError> {
        let cert_der = pem_cert_der(cert_pem)?;
        let key = KeyPair::from_pem(key_pem)
            .map_err(|e| CaError::Invalid(format!("invalid CA key PEM: {e}")))?;
        let (_, cert) = x509_parser::parse_x509_certificate(&cert_der)
            .map_err(|e| CaError::Invalid(format!("invalid CA certificate: {e}")))?;
        if !cert.is_ca() {
            return Err(CaError::Invalid(
                "the certificate is not a CA certificate".to_string(),
            ));
        }
        if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(CaError::Invalid(
                "the CA key does not match the CA certificate".to_string(),
            ));
        }
        // Re-encode so cert_pem() is canonical whatever whitespace the input had.
        let cert_pem = der_to_pem(&cert_der);
        Ok(RootCa {
            cert_der,
            cert_pem,
            key,
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// PKCS#8 PEM of the signing key (kept in Raft so every manager can sign).
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// sha256 of the DER certificate: what join tokens pin.
    pub fn digest(&self) -> [u8; 32] {
        sha256(&self.cert_der)
    }

    /// Signs a node certificate for the public key in `csr_pem`. The subject is set here (CN
    /// node ID, OU role, O cluster ID); nothing the requester put in its CSR is copied.
    pub fn issue(
        &self,
        csr_pem: &str,
        node_id: &str,
        role: Role,
        cluster_id: &str,
        validity: Duration,
    ) -> Result<String, CaError> {
        let csr = Csr::parse(csr_pem)?;
        self.issue_for(&csr, node_id, role, cluster_id, validity)
    }

    /// As [`RootCa::issue`] with an already parsed CSR.
    pub fn issue_for(
        &self,
        csr: &Csr,
        node_id: &str,
        role: Role,
        cluster_id: &str,
        validity: Duration,
    ) -> Result<String, CaError> {
        check_name("node ID", node_id)?;
        check_name("cluster ID", cluster_id)?;
        if validity < MIN_NODE_CERT_VALIDITY {
            return Err(CaError::Invalid(format!(
                "node certificate validity {validity:?} is below the minimum of 1h"
            )));
        }
        if validity > CA_VALIDITY {
            return Err(CaError::Invalid(format!(
                "node certificate validity {validity:?} exceeds the root CA's 20 years"
            )));
        }
        let now = OffsetDateTime::now_utc();
        self.sign_node_cert(
            csr,
            node_id,
            role,
            cluster_id,
            now - BACKDATE,
            now + validity,
        )
    }

    /// Signs with an explicit validity window (validated by the callers).
    pub(crate) fn sign_node_cert(
        &self,
        csr: &Csr,
        node_id: &str,
        role: Role,
        cluster_id: &str,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<String, CaError> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, cluster_id);
        dn.push(DnType::OrganizationalUnitName, role.ou());
        dn.push(DnType::CommonName, node_id);
        params.distinguished_name = dn;
        // The role as a DNS SAN: clients dial managers with server name "swarm-manager", so
        // only a manager certificate can serve the cluster port (see tls.rs).
        params.subject_alt_names = vec![SanType::DnsName(role.ou().try_into()?)];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        params.not_before = not_before;
        params.not_after = not_after;
        params.serial_number = Some(random_serial());
        let issuer = Issuer::from_ca_cert_der(&self.cert_der, &self.key)?;
        let cert = params.signed_by(&csr.0.public_key, &issuer)?;
        Ok(cert.pem())
    }
}

/// Node IDs and cluster IDs go into certificate names and file names: keep them plain.
fn check_name(what: &str, s: &str) -> Result<(), CaError> {
    if s.is_empty() || s.len() > 64 {
        return Err(CaError::Invalid(format!(
            "{what} must be 1 to 64 characters, got {}",
            s.len()
        )));
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(CaError::Invalid(format!(
            "{what} {s:?} may only contain letters, digits, '-', '_' and '.'"
        )));
    }
    Ok(())
}

pub(crate) fn der_to_pem(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// A parsed certificate signing request whose self-signature has been checked.
pub struct Csr(CertificateSigningRequestParams);

impl Csr {
    pub fn parse(csr_pem: &str) -> Result<Csr, CaError> {
        CertificateSigningRequestParams::from_pem(csr_pem)
            .map(Csr)
            .map_err(|e| CaError::Invalid(format!("invalid certificate signing request: {e}")))
    }

    /// The raw subject public key (to match it against a private key).
    pub fn public_key_raw(&self) -> &[u8] {
        use rcgen::PublicKeyData;
        self.0.public_key.der_bytes()
    }
}

/// A node's private key (ECDSA P-256).
pub struct NodeKey(KeyPair);

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NodeKey(..)")
    }
}

impl NodeKey {
    pub fn generate() -> Result<NodeKey, CaError> {
        Ok(NodeKey(KeyPair::generate()?))
    }

    pub fn from_pem(key_pem: &str) -> Result<NodeKey, CaError> {
        KeyPair::from_pem(key_pem)
            .map(NodeKey)
            .map_err(|e| CaError::Invalid(format!("invalid node key PEM: {e}")))
    }

    /// PKCS#8 PEM.
    pub fn key_pem(&self) -> String {
        self.0.serialize_pem()
    }

    /// A CSR for this key. Its subject is left empty: the CA decides the node's names.
    pub fn csr_pem(&self) -> Result<String, CaError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        Ok(params.serialize_request(&self.0)?.pem()?)
    }

    /// True if `cert_pem` certifies this key.
    pub fn matches_cert(&self, cert_pem: &str) -> Result<bool, CaError> {
        let der = pem_cert_der(cert_pem)?;
        let (_, cert) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| CaError::Cert(format!("cannot parse certificate: {e}")))?;
        Ok(cert.public_key().subject_public_key.data.as_ref() == self.0.public_key_raw())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_round_trips_through_pem() {
        let ca = RootCa::generate().unwrap();
        let again = RootCa::from_pem(ca.cert_pem(), &ca.key_pem()).unwrap();
        assert_eq!(ca.digest(), again.digest());
        let other = RootCa::generate().unwrap();
        let err = RootCa::from_pem(ca.cert_pem(), &other.key_pem()).unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
        assert!(RootCa::from_pem("garbage", &ca.key_pem()).is_err());
    }

    #[test]
    fn issued_cert_carries_identity() {
        let ca = RootCa::generate().unwrap();
        let key = NodeKey::generate().unwrap();
        let pem = ca
            .issue(
                &key.csr_pem().unwrap(),
                "node1abc",
                Role::Worker,
                "clusterxyz",
                DEFAULT_NODE_CERT_VALIDITY,
            )
            .unwrap();
        let id = Identity::from_pem(&pem).unwrap();
        assert_eq!(id.node_id, "node1abc");
        assert_eq!(id.role, Role::Worker);
        assert_eq!(id.cluster_id, "clusterxyz");
        let life = id.not_after.duration_since(id.not_before).unwrap();
        // 90 days plus the one hour backdate (second granularity).
        assert!(life >= DEFAULT_NODE_CERT_VALIDITY + BACKDATE - Duration::from_secs(2));
        assert!(life <= DEFAULT_NODE_CERT_VALIDITY + BACKDATE + Duration::from_secs(2));
        assert!(key.matches_cert(&pem).unwrap());
        assert!(!NodeKey::generate().unwrap().matches_cert(&pem).unwrap());
    }

    #[test]
    fn issue_rejects_bad_input() {
        let ca = RootCa::generate().unwrap();
        let csr = NodeKey::generate().unwrap().csr_pem().unwrap();
        let short = ca.issue(&csr, "n", Role::Worker, "c", Duration::from_secs(60));
        assert!(short.unwrap_err().to_string().contains("minimum"));
        let bad_id = ca.issue(&csr, "a/b", Role::Worker, "c", DEFAULT_NODE_CERT_VALIDITY);
        assert!(bad_id.is_err());
        let bad_csr = ca.issue("nope", "n", Role::Worker, "c", DEFAULT_NODE_CERT_VALIDITY);
        assert!(bad_csr.unwrap_err().to_string().contains("signing request"));
    }

    #[test]
    fn renewal_falls_between_half_and_four_fifths() {
        let start = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let end = start + Duration::from_secs(1000);
        for _ in 0..100 {
            let due = renewal_due(start, end);
            let off = due.duration_since(start).unwrap().as_secs_f64();
            assert!((500.0..=800.0).contains(&off), "{off}");
        }
    }

    #[test]
    fn identity_renewal_point_is_stable_and_in_range() {
        let start = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut seen = std::collections::HashSet::new();
        for i in 0..50 {
            let id = Identity {
                node_id: format!("node{i}"),
                role: Role::Worker,
                cluster_id: "c".into(),
                not_before: start,
                not_after: start + Duration::from_secs(1000),
            };
            let due = id.renewal_due();
            assert_eq!(due, id.renewal_due());
            let off = due.duration_since(start).unwrap().as_secs_f64();
            assert!((500.0..=800.0).contains(&off), "{off}");
            seen.insert(due);
        }
        // Spread across nodes.
        assert!(seen.len() > 10, "{}", seen.len());
    }

    #[test]
    fn role_parsing() {
        assert_eq!("manager".parse::<Role>().unwrap(), Role::Manager);
        assert_eq!("swarm-worker".parse::<Role>().unwrap(), Role::Worker);
        assert!("boss".parse::<Role>().is_err());
    }
}
