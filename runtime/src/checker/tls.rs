//! The TLS client side of a check with `tls = yes`.
//!
//! A remote without TLS settings is checked without verification: the check asks
//! whether the remote completes a handshake, not whom it is. A remote with `tls`
//! settings is checked as the workers connect to it: its CA file (or the system's
//! store), its name (`tls sni`, else its IP address) when `tls verify = yes`, its
//! client certificate.
//!
//! Note for the merge: the workers' client context is built by
//! `tls_context::client_context(&RemoteTls)`, written at the same time as this;
//! [`context`] is the checker's own small builder until the two are made one.

use openssl::ssl::{SslContext, SslMethod, SslVerifyMode, SslVersion};
use std::net::IpAddr;
use tcprelay_plan::RemoteTls;

/// The client context for checks of a remote with these TLS settings (`None`: no
/// verification). The error is one line naming the file, never the passphrase.
pub fn context(tls: Option<&RemoteTls>) -> Result<SslContext, String> {
    let mut builder = SslContext::builder(SslMethod::tls_client())
        .map_err(|e| format!("cannot make a TLS client context: {e}"))?;
    builder
        .set_min_proto_version(Some(SslVersion::TLS1_2))
        .map_err(|e| format!("cannot make a TLS client context: {e}"))?;
    let Some(tls) = tls.filter(|t| t.verify || t.cert_file.is_some()) else {
        builder.set_verify(SslVerifyMode::NONE);
        return Ok(builder.build());
    };
    if tls.verify {
        builder.set_verify(SslVerifyMode::PEER);
        match &tls.ca_file {
            Some(file) => builder
                .set_ca_file(file)
                .map_err(|e| format!("{file}: cannot read CA certificates: {e}"))?,
            None => builder
                .set_default_verify_paths()
                .map_err(|e| format!("cannot read the system's CA certificates: {e}"))?,
        }
    } else {
        builder.set_verify(SslVerifyMode::NONE);
    }
    if let Some(cert) = &tls.cert_file {
        let key = tls.key_file.as_deref().unwrap_or(cert);
        builder
            .set_certificate_chain_file(cert)
            .map_err(|e| format!("{cert}: cannot read the client certificate: {e}"))?;
        // Always with a passphrase (empty without one): OpenSSL never prompts.
        let pass = tls.passphrase.as_ref().map_or("", |p| p.expose());
        let pem = std::fs::read(key).map_err(|e| format!("{key}: {e}"))?;
        let pkey = openssl::pkey::PKey::private_key_from_pem_passphrase(&pem, pass.as_bytes())
            .map_err(|_| {
                format!("{key}: cannot read the client key (wrong passphrase or not a PEM key)")
            })?;
        builder
            .set_private_key(&pkey)
            .map_err(|e| format!("{key}: {e}"))?;
        builder
            .check_private_key()
            .map_err(|_| format!("{key}: the client key does not match {cert}"))?;
    }
    Ok(builder.build())
}

/// A TLS session for one check: SNI sent when the remote has `tls sni`, the name
/// (or `ip`, without one) checked when it verifies.
pub fn session(
    context: &SslContext,
    tls: Option<&RemoteTls>,
    ip: IpAddr,
) -> Result<openssl::ssl::Ssl, openssl::error::ErrorStack> {
    let mut ssl = openssl::ssl::Ssl::new(context)?;
    if let Some(tls) = tls {
        if let Some(sni) = &tls.sni {
            ssl.set_hostname(sni)?;
        }
        if tls.verify {
            let param = ssl.param_mut();
            match &tls.sni {
                Some(sni) => param.set_host(sni)?,
                None => param.set_ip(ip)?,
            }
        }
    }
    Ok(ssl)
}
