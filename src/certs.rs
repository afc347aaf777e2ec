//! A CA and an ECDSA P-256 certificate it signs, as PEM: the webhook's serving certificate,
//! or the client certificate the API server presents to it.

use std::net::IpAddr;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot make the certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{name:?} is neither a DNS name nor an IP address: {reason}")]
    BadName { name: String, reason: String },
    #[error("validity must be 1 to 3650 days, got {0}")]
    BadValidity(u32),
    #[error("the CA certificate or key cannot be used: {0}")]
    BadCa(rcgen::Error),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// A CA and the certificate it signed.
pub struct Bundle {
    pub ca_pem: String,
    /// The CA's key, kept so the next serving certificate can come from the same CA (and
    /// the webhook's caBundle need not change). Keep it out of the cluster.
    pub ca_key_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// An existing CA to sign with.
pub struct Ca {
    pub cert_pem: String,
    pub key_pem: String,
}

/// Names the serving certificate covers.
#[derive(Debug, Default, Clone)]
pub struct Names {
    pub dns: Vec<String>,
    pub ips: Vec<IpAddr>,
}

impl Names {
    /// `NAME.NS.svc` and `NAME.NS.svc.cluster.local`: how the API server reaches a Service.
    pub fn for_service(service: &str, namespace: &str) -> Names {
        Names {
            dns: vec![
                format!("{service}.{namespace}.svc"),
                format!("{service}.{namespace}.svc.cluster.local"),
            ],
            ips: Vec::new(),
        }
    }
}

/// The common name of client certificates: what the API server is to probegate.
pub const CLIENT_NAME: &str = "kube-apiserver";

/// Makes a new CA and a serving certificate signed by it.
pub fn generate(names: &Names, days: u32) -> Result<Bundle, CertError> {
    sign(&new_ca(days)?, names, days)
}

/// Makes a new CA and a client certificate signed by it, for the API server.
pub fn generate_client(days: u32) -> Result<Bundle, CertError> {
    sign_client(&new_ca(days)?, days)
}

fn new_ca(days: u32) -> Result<Ca, CertError> {
    let (not_before, not_after) = validity(days)?;
    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut ca = CertificateParams::default();
    ca.distinguished_name = name("probegate CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.not_before = not_before;
    // The CA outlives its serving certificates, so they can be renewed under it.
    ca.not_after = not_after + Duration::days(days.into());
    let ca_cert = ca.self_signed(&ca_key)?;
    Ok(Ca {
        cert_pem: ca_cert.pem(),
        key_pem: ca_key.serialize_pem(),
    })
}

/// Makes a serving certificate signed by an existing CA.
pub fn sign(ca: &Ca, names: &Names, days: u32) -> Result<Bundle, CertError> {
    let mut serving = CertificateParams::default();
    serving.distinguished_name = name(names.dns.first().map_or("probegate", String::as_str));
    serving.subject_alt_names = subject_alt_names(names)?;
    serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    sign_leaf(ca, serving, days)
}

/// Makes a client certificate for the API server, signed by an existing CA. Only its chain
/// matters to probegate; its name shows who it was made for.
pub fn sign_client(ca: &Ca, days: u32) -> Result<Bundle, CertError> {
    let mut client = CertificateParams::default();
    client.distinguished_name = name(CLIENT_NAME);
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    sign_leaf(ca, client, days)
}

fn sign_leaf(ca: &Ca, mut params: CertificateParams, days: u32) -> Result<Bundle, CertError> {
    let (not_before, not_after) = validity(days)?;
    let ca_key = KeyPair::from_pem(&ca.key_pem).map_err(CertError::BadCa)?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key).map_err(CertError::BadCa)?;
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.not_before = not_before;
    params.not_after = not_after;
    let cert = params.signed_by(&key, &issuer)?;

    Ok(Bundle {
        ca_pem: ca.cert_pem.clone(),
        ca_key_pem: ca.key_pem.clone(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

fn validity(days: u32) -> Result<(OffsetDateTime, OffsetDateTime), CertError> {
    if !(1..=3650).contains(&days) {
        return Err(CertError::BadValidity(days));
    }
    let now = OffsetDateTime::now_utc();
    // A little slack for clocks that run behind ours.
    Ok((
        now - Duration::minutes(5),
        now + Duration::days(days.into()),
    ))
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

fn subject_alt_names(names: &Names) -> Result<Vec<SanType>, CertError> {
    let mut sans = Vec::new();
    for dns in &names.dns {
        crate::policy::check_dns_subdomain(dns).map_err(|reason| CertError::BadName {
            name: dns.clone(),
            reason,
        })?;
        let ia5 = dns
            .clone()
            .try_into()
            .map_err(|e: rcgen::Error| CertError::BadName {
                name: dns.clone(),
                reason: e.to_string(),
            })?;
        sans.push(SanType::DnsName(ia5));
    }
    sans.extend(names.ips.iter().copied().map(SanType::IpAddress));
    Ok(sans)
}

impl Bundle {
    /// Writes `ca.crt`, `ca.key`, `tls.crt` and `tls.key` into `dir`; keys get mode 0600.
    pub fn write(&self, dir: &Path) -> Result<(), CertError> {
        self.write_as(dir, ["ca.crt", "ca.key", "tls.crt", "tls.key"])
    }

    /// Writes a client bundle as `client-ca.crt`, `client-ca.key`, `client.crt` and
    /// `client.key`, names that cannot overwrite a serving pair in the same folder.
    pub fn write_client(&self, dir: &Path) -> Result<(), CertError> {
        self.write_as(
            dir,
            ["client-ca.crt", "client-ca.key", "client.crt", "client.key"],
        )
    }

    /// Writes the CA, its key, the certificate and its key under `files`, in that order.
    fn write_as(&self, dir: &Path, files: [&str; 4]) -> Result<(), CertError> {
        let write_error = |path: &Path| {
            let path = path.display().to_string();
            move |source| CertError::Write { path, source }
        };
        std::fs::create_dir_all(dir).map_err(write_error(dir))?;
        let [ca, ca_key, cert, key] = files;
        for (file, pem, private) in [
            (ca, &self.ca_pem, false),
            (ca_key, &self.ca_key_pem, true),
            (cert, &self.cert_pem, false),
            (key, &self.key_pem, true),
        ] {
            let path = dir.join(file);
            write_file(&path, pem, private).map_err(write_error(&path))?;
        }
        Ok(())
    }
}

fn write_file(path: &Path, contents: &str, private: bool) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let mode = if private { 0o600 } else { 0o644 };
        options.mode(mode);
        let mut file = options.open(path)?;
        // The mode given at open applies only to new files; an old key file keeps its own.
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.write_all(contents.as_bytes())
    }
    #[cfg(not(unix))]
    {
        let _ = private;
        options.open(path)?.write_all(contents.as_bytes())
    }
}
