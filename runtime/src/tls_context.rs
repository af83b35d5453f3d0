//! The TLS server context: built once by the master from the plan's `tls` material
//! (at start, before any socket is bound, and again on every reload) and inherited by
//! the workers it forks, which create one `Ssl` per accepted client from it.
//!
//! Two rules hold here. OpenSSL never prompts for a passphrase on a terminal: the key
//! is always loaded with an explicit passphrase (empty when the plan has none), which
//! OpenSSL uses instead of asking. And no error message ever contains the passphrase:
//! messages name the file and use OpenSSL's static reason strings only.
//!
//! The context follows Mozilla's "intermediate" server profile (TLS 1.2 and 1.3, AEAD
//! ciphers), prefers the server's cipher order, refuses renegotiation, and resumes
//! sessions by ticket (the ticket keys are made with the context, so every worker of a
//! generation accepts the tickets of the others) or by session id within a worker.
//!
//! The client side ([`client_context`]) is one context per remote with `tls = yes`
//! (stunnel's client mode): the remote's certificate verified against `tls ca-file` or
//! the system's store and its name checked (`tls sni`, else the remote's IP address),
//! the name sent as SNI, a client certificate when the plan gives one, and the last
//! session kept to be offered by the next connection (resumption). The master builds
//! them once to refuse a plan whose contexts cannot be built ([`for_plan`]); each
//! worker (and the health checker) builds its own when it loads the plan.

use crate::sys::net::KeptSession;
use openssl::error::ErrorStack;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{
    Ssl, SslAcceptor, SslContext, SslContextBuilder, SslContextRef, SslMethod, SslMode, SslOptions,
    SslSessionCacheMode, SslVerifyMode, SslVersion,
};
use openssl::x509::verify::X509CheckFlags;
use openssl::x509::{X509Ref, X509};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use tcprelay_plan::{OsText, Plan, RemoteTls, Tls};

/// The session id context: sessions are only resumed by contexts that set the same.
const SESSION_ID_CONTEXT: &[u8] = b"tcprelay";

/// What a plan's TLS material gives the master: the server context its workers
/// inherit, and the certificates the contexts were built with.
#[derive(Default)]
pub struct PlanTls {
    /// The context for the plan's TLS listeners, `None` when no listener has
    /// `tls = yes`, or when every SNI route passes TLS through or has its own
    /// certificate and no remote is outside the routes.
    pub server: Option<SslContext>,
    /// Each SNI route's own context (plan order), for the routes that terminate
    /// with a certificate of their own; `None` for the others.
    pub routes: Vec<Option<SslContext>>,
    /// Every certificate loaded for the plan, by file: what the control socket's
    /// `plan` answer gives out (public data: never a key).
    pub certificates: Certificates,
}

impl std::fmt::Debug for PlanTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlanTls")
            .field("server", &self.server.is_some())
            .field(
                "routes",
                &self.routes.iter().filter(|r| r.is_some()).count(),
            )
            .field("certificates", &self.certificates)
            .finish()
    }
}

/// The certificates a generation's TLS contexts were built with, one entry per file
/// in the order first loaded: the listeners' chain, then each `tls = yes` remote's
/// CA file and client certificate chain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Certificates(Vec<CertificateFile>);

/// One file's certificates, as the context holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFile {
    /// The path as the plan names it.
    pub file: String,
    /// The certificates the context took from it, re-encoded as PEM, in the file's
    /// order: never a key, even when the key is in the same file.
    pub pem: String,
    /// What the relay uses them for.
    pub uses: Vec<CertificateUse>,
}

/// What a certificate file is used for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateUse {
    /// The chain the TLS listeners present.
    Listener,
    /// The CA certificates a remote's certificate is verified against (`tls
    /// ca-file`); the remote as `ADDRESS:PORT/PROTOCOL`.
    Ca(String),
    /// The client certificate chain presented to a remote (`tls cert-file`).
    Client(String),
    /// The chain an SNI route presents (its own `tls cert-file`); the route by its
    /// number in the plan (from 1) and its names, e.g. `2 (*.api.example.com)`.
    Route(String),
}

impl Certificates {
    /// The files, in the order first loaded.
    pub fn files(&self) -> &[CertificateFile] {
        &self.0
    }

    /// Records `certs` loaded from `file` for `use_`: a file loaded before gets one
    /// more use (the first load's certificates are kept).
    fn add<'a>(
        &mut self,
        file: &str,
        certs: impl IntoIterator<Item = &'a X509Ref>,
        use_: CertificateUse,
    ) -> Result<(), String> {
        if let Some(known) = self.0.iter_mut().find(|f| f.file == file) {
            known.uses.push(use_);
            return Ok(());
        }
        let mut pem = String::new();
        for cert in certs {
            let one = cert
                .to_pem()
                .map_err(|e| format!("cannot encode a certificate of {file}: {}", reasons(&e)))?;
            pem.push_str(&String::from_utf8_lossy(&one));
        }
        self.0.push(CertificateFile {
            file: file.to_string(),
            pem,
            uses: vec![use_],
        });
        Ok(())
    }
}

/// The TLS material of `plan`: the context for its TLS listeners (`None` when no
/// listener has `tls = yes`) and the certificates loaded. The error is one line
/// naming the file at fault.
///
/// The client contexts of the plan's TLS remotes are built here too, and dropped
/// once their certificates are recorded: a plan whose contexts cannot be built (a
/// CA file, client certificate or key that does not load) is refused at start and at
/// a reload, as one line naming the remote and the file, before any worker would
/// fail on it.
pub fn for_plan(plan: &Plan) -> Result<PlanTls, String> {
    // The remotes' first, as before the listeners' (which message a plan with both
    // wrong gets does not change).
    let mut remotes: Vec<(&str, Vec<X509>, CertificateUse)> = Vec::new();
    for remote in &plan.relay.remotes {
        let Some(tls) = &remote.tls else {
            continue;
        };
        let (_, ca, chain) =
            client_parts(tls).map_err(|e| format!("remote {}: {e}", remote.address))?;
        let key = format!("{}/{}", remote.address, remote.protocol);
        if let (Some(ca_file), false) = (&tls.ca_file, ca.is_empty()) {
            remotes.push((ca_file, ca, CertificateUse::Ca(key.clone())));
        }
        if let Some(cert_file) = &tls.cert_file {
            remotes.push((cert_file, chain, CertificateUse::Client(key)));
        }
    }
    let mut certificates = Certificates::default();
    let tls_listener = plan.spawnd.listeners.iter().any(|l| l.tls);
    let server = if tls_listener {
        match &plan.relay.tls {
            Some(tls) => {
                let (context, chain) = server_parts(tls)?;
                certificates.add(
                    &tls.cert_file,
                    chain.iter().map(|c| &**c),
                    CertificateUse::Listener,
                )?;
                Some(context)
            }
            // Every route passes TLS through or has its own certificate.
            None if !tcprelay_plan::sni::section_certificate_needed(&plan.relay) => None,
            // `Plan::validate` refuses this; kept as an error rather than a panic.
            None => {
                return Err(
                    "a listener has tls = yes but the plan has no TLS certificate".to_string(),
                )
            }
        }
    } else {
        None
    };
    let mut routes = Vec::with_capacity(plan.relay.routes.len());
    for (i, route) in plan.relay.routes.iter().enumerate() {
        let tls = match (&route.tls, route.mode) {
            (Some(tls), tcprelay_plan::RouteMode::Terminate) if tls_listener => tls,
            _ => {
                routes.push(None);
                continue;
            }
        };
        let names = if route.names.is_empty() {
            "the default route".to_string()
        } else {
            route.names.join(" ")
        };
        let (context, chain) = server_parts(tls).map_err(|e| format!("route {}: {e}", i + 1))?;
        certificates.add(
            &tls.cert_file,
            chain.iter().map(|c| &**c),
            CertificateUse::Route(format!("{} ({names})", i + 1)),
        )?;
        routes.push(Some(context));
    }
    for (file, certs, use_) in remotes {
        certificates.add(file, certs.iter().map(|c| &**c), use_)?;
    }
    Ok(PlanTls {
        server,
        routes,
        certificates,
    })
}

/// Builds the server context from a certificate chain file and a PEM private key,
/// decrypted with the passphrase when the key is encrypted.
///
/// Errors are one line, e.g. "cannot load TLS key /x/key.pem: wrong passphrase or not
/// a key" or "TLS key /x does not match certificate /y"; they never contain the
/// passphrase.
pub fn server_context(tls: &Tls) -> Result<SslContext, String> {
    server_parts(tls).map(|(context, _)| context)
}

/// [`server_context`], with the certificate chain it was given (the file's
/// certificates, read once: the leaf the key is checked against and the chain sent
/// after it come from the same read).
fn server_parts(tls: &Tls) -> Result<(SslContext, Vec<X509>), String> {
    let cert_file = tls.cert_file.as_str();
    let key_file = tls.key_file.as_str();
    // `Plan::validate` refuses these; checked here too because OpenSSL takes the
    // names as C strings (the openssl crate panics on a NUL), and a message that
    // quoted the name would carry the NUL byte into the log.
    for (what, name) in [("certificate", cert_file), ("key", key_file)] {
        OsText::check_name(name).map_err(|p| format!("the TLS {what} file {p}"))?;
    }
    let key = load_key(key_file, tls.passphrase.as_ref().map(|p| p.expose()))?;
    let chain = load_chain(cert_file)?;
    let leaf = &chain[0];
    let public = leaf
        .public_key()
        .map_err(|e| format!("cannot load TLS certificate {cert_file}: {}", reasons(&e)))?;
    if !key.public_eq(&public) {
        return Err(format!(
            "TLS key {key_file} does not match certificate {cert_file}"
        ));
    }
    let setup = |e: ErrorStack| format!("cannot set up TLS: {}", reasons(&e));
    let mut builder =
        SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).map_err(setup)?;
    builder
        .set_min_proto_version(Some(SslVersion::TLS1_2))
        .map_err(setup)?;
    builder.set_options(
        SslOptions::CIPHER_SERVER_PREFERENCE
            | SslOptions::NO_RENEGOTIATION
            | SslOptions::NO_COMPRESSION
            // A client that closes without close_notify ends its direction like a FIN
            // does on plain TCP, instead of failing the session.
            | SslOptions::IGNORE_UNEXPECTED_EOF,
    );
    builder.clear_options(SslOptions::NO_TICKET);
    relay_modes(&mut builder);
    builder.set_session_cache_mode(SslSessionCacheMode::SERVER);
    builder
        .set_session_id_context(SESSION_ID_CONTEXT)
        .map_err(setup)?;
    let load = |e: ErrorStack| format!("cannot load TLS certificate {cert_file}: {}", reasons(&e));
    builder.set_certificate(leaf).map_err(load)?;
    for cert in &chain[1..] {
        builder.add_extra_chain_cert(cert.clone()).map_err(load)?;
    }
    builder
        .set_private_key(&key)
        .map_err(|_| format!("TLS key {key_file} does not match certificate {cert_file}"))?;
    builder
        .check_private_key()
        .map_err(|_| format!("TLS key {key_file} does not match certificate {cert_file}"))?;
    Ok((builder.build().into_context(), chain))
}

/// The client side of TLS towards one remote: the context, what each connection
/// sets on top of it (SNI and the name checked), and the last session the remote
/// gave, offered by the next connection.
pub struct ClientContext {
    context: SslContext,
    sni: Option<String>,
    verify: bool,
    /// Written by OpenSSL's new-session callback (a handshake, or a TLS 1.3 ticket
    /// read after it), read by [`ClientContext::ssl`]. One worker thread uses it; the
    /// mutex is what the callback's `Sync` bound asks for, never contended.
    last: Arc<Mutex<Option<KeptSession>>>,
}

impl std::fmt::Debug for ClientContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientContext")
            .field("sni", &self.sni)
            .field("verify", &self.verify)
            .finish_non_exhaustive()
    }
}

impl ClientContext {
    /// A connection to the remote at `address`, in the connect state: SNI set, the
    /// name to verify set (`tls sni`, else `address`), and the last session offered.
    /// The error is one line.
    pub fn ssl(&self, address: IpAddr) -> Result<Ssl, String> {
        let setup = |e: ErrorStack| format!("cannot set up TLS: {}", reasons(&e));
        let mut ssl = Ssl::new(&self.context).map_err(setup)?;
        ssl.set_connect_state();
        if let Some(sni) = &self.sni {
            ssl.set_hostname(sni).map_err(setup)?;
        }
        if self.verify {
            let param = ssl.param_mut();
            param.set_hostflags(X509CheckFlags::NO_PARTIAL_WILDCARDS);
            match &self.sni {
                Some(sni) => param.set_host(sni).map_err(setup)?,
                None => param.set_ip(address).map_err(setup)?,
            }
        }
        let refused = self
            .last
            .lock()
            .is_ok_and(|last| last.as_ref().is_some_and(|kept| !kept.offer(&mut ssl)));
        if refused {
            self.forget_session();
        }
        Ok(ssl)
    }

    /// Forgets the session kept (after a failed handshake: the next connection
    /// starts afresh).
    pub fn forget_session(&self) {
        if let Ok(mut last) = self.last.lock() {
            *last = None;
        }
    }

    /// Whether a session is kept, to be offered by the next connection.
    pub fn has_session(&self) -> bool {
        self.last.lock().is_ok_and(|last| last.is_some())
    }

    /// The OpenSSL context.
    pub fn context(&self) -> &SslContextRef {
        &self.context
    }
}

/// The modes of a relay's TLS streams, both sides: writes return after each record
/// (the worker's transport loops), may be retried from another address (the relay
/// keeps unsent bytes in its own buffer), and idle connections give their buffers
/// back. Read-ahead saves a system call per record; the relay reads until
/// `WouldBlock`, so nothing is left behind in OpenSSL. A read buffer of four
/// records instead of one (`SSL_set_default_read_buffer_len` once a connection
/// shows bulk data) was measured and left out (issue 19): 1.6 receives per 64 KiB
/// relayed instead of 4, but OpenSSL moves the bytes after each record to the
/// buffer's front before reading the next, and the worker's CPU per byte did not
/// drop beyond the noise.
fn relay_modes(builder: &mut SslContextBuilder) {
    builder.set_mode(
        SslMode::ENABLE_PARTIAL_WRITE
            | SslMode::ACCEPT_MOVING_WRITE_BUFFER
            | SslMode::RELEASE_BUFFERS
            | SslMode::AUTO_RETRY,
    );
    builder.set_read_ahead(true);
}

/// Builds the client context towards a remote with `tls = yes`: the remote's
/// certificate is verified (with `verify`) against the certificates of `ca_file`, or
/// the system's store without one; the client certificate and key are loaded when
/// given (the key decrypted with the passphrase, never prompted for); sessions are
/// kept for resumption. The health checker uses it too.
///
/// Errors are one line naming the file, e.g. "cannot read TLS CA file /x: ..."; they
/// never contain the passphrase.
pub fn client_context(tls: &RemoteTls) -> Result<ClientContext, String> {
    client_parts(tls).map(|(context, _, _)| context)
}

/// [`client_context`], with the CA certificates loaded from `tls ca-file` (none
/// for the system's store or without verification) and the client certificate
/// chain (none without `tls cert-file`).
type ClientParts = (ClientContext, Vec<X509>, Vec<X509>);

fn client_parts(tls: &RemoteTls) -> Result<ClientParts, String> {
    let setup = |e: ErrorStack| format!("cannot set up TLS: {}", reasons(&e));
    let files = [
        ("CA", tls.ca_file.as_deref()),
        ("certificate", tls.cert_file.as_deref()),
        ("key", tls.key_file.as_deref()),
    ];
    for (what, name) in files {
        if let Some(name) = name {
            OsText::check_name(name).map_err(|p| format!("the TLS {what} file {p}"))?;
        }
    }
    if let Some(sni) = &tls.sni {
        if sni.is_empty() || sni.contains('\0') {
            return Err("the TLS server name (tls sni) is empty or contains a NUL".to_string());
        }
    }
    let mut builder = SslContextBuilder::new(SslMethod::tls_client()).map_err(setup)?;
    let mut ca = Vec::new();
    let mut given = Vec::new();
    builder
        .set_min_proto_version(Some(SslVersion::TLS1_2))
        .map_err(setup)?;
    builder.set_options(
        SslOptions::NO_RENEGOTIATION
            | SslOptions::NO_COMPRESSION
            // A remote that closes without close_notify ends its direction like a
            // FIN does on plain TCP.
            | SslOptions::IGNORE_UNEXPECTED_EOF,
    );
    relay_modes(&mut builder);
    if tls.verify {
        builder.set_verify(SslVerifyMode::PEER);
        match &tls.ca_file {
            Some(ca_file) => {
                let fail = |what: String| format!("cannot load TLS CA file {ca_file}: {what}");
                let pem = read_pem(ca_file)
                    .map_err(|e| format!("cannot read TLS CA file {ca_file}: {e}"))?;
                let certs = X509::stack_from_pem(&pem).map_err(|e| fail(reasons(&e)))?;
                if certs.is_empty() {
                    return Err(fail("no PEM certificate in the file".to_string()));
                }
                for cert in certs {
                    ca.push(cert.clone());
                    builder
                        .cert_store_mut()
                        .add_cert(cert)
                        .map_err(|e| fail(reasons(&e)))?;
                }
            }
            None => builder.set_default_verify_paths().map_err(setup)?,
        }
    } else {
        builder.set_verify(SslVerifyMode::NONE);
    }
    if let Some(cert_file) = &tls.cert_file {
        let key_file = tls.key_file.as_deref().unwrap_or(cert_file);
        let key = load_key(key_file, tls.passphrase.as_ref().map(|p| p.expose()))?;
        let pem = read_pem(cert_file)
            .map_err(|e| format!("cannot read TLS certificate {cert_file}: {e}"))?;
        let chain = X509::stack_from_pem(&pem).unwrap_or_default();
        given.clone_from(&chain);
        let mut chain = chain.into_iter();
        let leaf = chain.next().ok_or_else(|| {
            format!("cannot load TLS certificate {cert_file}: no PEM certificate")
        })?;
        let mismatch = || format!("TLS key {key_file} does not match certificate {cert_file}");
        let public = leaf
            .public_key()
            .map_err(|e| format!("cannot load TLS certificate {cert_file}: {}", reasons(&e)))?;
        if !key.public_eq(&public) {
            return Err(mismatch());
        }
        builder.set_certificate(&leaf).map_err(setup)?;
        for cert in chain {
            builder.add_extra_chain_cert(cert).map_err(setup)?;
        }
        builder.set_private_key(&key).map_err(|_| mismatch())?;
        builder.check_private_key().map_err(|_| mismatch())?;
    }
    builder.set_session_cache_mode(SslSessionCacheMode::CLIENT);
    let last: Arc<Mutex<Option<KeptSession>>> = Arc::default();
    let keep = Arc::clone(&last);
    builder.set_new_session_callback(move |ssl, session| {
        if let Ok(mut last) = keep.lock() {
            *last = Some(KeptSession::new(ssl, session));
        }
    });
    let context = ClientContext {
        context: builder.build(),
        sni: tls.sni.clone(),
        verify: tls.verify,
        last,
    };
    Ok((context, ca, given))
}

/// The largest certificate chain or key file read (a chain of a dozen certificates
/// is about 20 KiB).
const MAX_PEM: u64 = 1024 * 1024;

/// Reads a certificate or key file: a regular file of at most [`MAX_PEM`] bytes, so
/// that a FIFO or a device named in the plan never blocks or exhausts the master.
fn read_pem(path: &str) -> Result<Vec<u8>, String> {
    tcprelay_plan::read_regular(path.as_ref(), MAX_PEM).map_err(|e| match e {
        tcprelay_plan::Refused::TooLarge => {
            format!(
                "it is larger than {} MiB, the limit",
                MAX_PEM / (1024 * 1024)
            )
        }
        e => e.to_string(),
    })
}

/// The certificates of the chain file, in its order, at least one: the first is the
/// one the key must match (a key in the same file is skipped).
fn load_chain(cert_file: &str) -> Result<Vec<X509>, String> {
    let pem =
        read_pem(cert_file).map_err(|e| format!("cannot read TLS certificate {cert_file}: {e}"))?;
    let no_certificate = |e: ErrorStack| {
        format!(
            "cannot load TLS certificate {cert_file}: no PEM certificate ({})",
            reasons(&e)
        )
    };
    // The leaf first, for the error of a file that starts with none.
    X509::from_pem(&pem).map_err(no_certificate)?;
    let chain = X509::stack_from_pem(&pem).map_err(no_certificate)?;
    if chain.is_empty() {
        return Err(format!(
            "cannot load TLS certificate {cert_file}: no PEM certificate"
        ));
    }
    Ok(chain)
}

/// Loads the private key of `key_file` (which may also hold the certificate).
fn load_key(key_file: &str, passphrase: Option<&str>) -> Result<PKey<Private>, String> {
    let pem = read_pem(key_file).map_err(|e| format!("cannot read TLS key {key_file}: {e}"))?;
    let fail = |what: &str| format!("cannot load TLS key {key_file}: {what}");
    let passphrase = passphrase.unwrap_or("");
    if passphrase.contains('\0') {
        // OpenSSL takes the passphrase as a C string (and the openssl crate panics).
        return Err(fail("the passphrase contains a NUL character"));
    }
    // A passphrase is always given, empty if need be: OpenSSL uses it instead of
    // prompting on the terminal.
    match PKey::private_key_from_pem_passphrase(&pem, passphrase.as_bytes()) {
        Ok(key) => Ok(key),
        Err(_) if looks_encrypted(&pem) && passphrase.is_empty() => {
            Err(fail("the key is encrypted and the plan has no passphrase"))
        }
        Err(_) if looks_encrypted(&pem) => Err(fail("wrong passphrase or not a key")),
        Err(_) if passphrase.is_empty() => Err(fail("no PEM private key in the file")),
        Err(_) => Err(fail("wrong passphrase or not a key")),
    }
}

/// An encrypted PKCS#8 key, or a traditional one with `Proc-Type: 4,ENCRYPTED`.
fn looks_encrypted(pem: &[u8]) -> bool {
    let has = |needle: &[u8]| pem.windows(needle.len()).any(|w| w == needle);
    has(b"-----BEGIN ENCRYPTED PRIVATE KEY-----") || has(b"Proc-Type: 4,ENCRYPTED")
}

/// OpenSSL's static reason strings of an error stack (never its data, so no input of
/// ours can appear), e.g. "OpenSSL: no start line".
pub(crate) fn reasons(stack: &ErrorStack) -> String {
    let mut out: Vec<&str> = Vec::new();
    for reason in stack.errors().iter().filter_map(|e| e.reason()) {
        if !out.contains(&reason) {
            out.push(reason);
        }
    }
    if out.is_empty() {
        "unknown OpenSSL error".to_string()
    } else {
        format!("OpenSSL: {}", out.join("; "))
    }
}

/// Test material: a self-signed certificate for `localhost` and 127.0.0.1 with its
/// key, plain and encrypted, written into a temporary directory.
#[cfg(test)]
pub(crate) mod test_certs {
    use openssl::asn1::Asn1Time;
    use openssl::bn::BigNum;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;
    use openssl::pkey::{PKey, Private};
    use openssl::symm::Cipher;
    use openssl::x509::extension::SubjectAlternativeName;
    use openssl::x509::{X509NameBuilder, X509};
    use tcprelay_plan::{Secret, Tls};
    use tempfile::TempDir;

    /// The passphrase of `enc-key.pem`.
    pub const PASSPHRASE: &str = "correct horse";

    /// A fresh EC P-256 key.
    pub fn new_key() -> PKey<Private> {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("P-256");
        PKey::from_ec_key(EcKey::generate(&group).expect("EC key")).expect("key")
    }

    /// A self-signed certificate for `key`, valid for a day.
    pub fn self_signed(key: &PKey<Private>) -> X509 {
        let mut name = X509NameBuilder::new().expect("name");
        name.append_entry_by_nid(Nid::COMMONNAME, "localhost")
            .expect("CN");
        let name = name.build();
        let mut b = X509::builder().expect("builder");
        b.set_version(2).expect("version");
        let serial = BigNum::from_u32(1).and_then(|n| n.to_asn1_integer());
        b.set_serial_number(&serial.expect("serial"))
            .expect("serial");
        b.set_subject_name(&name).expect("subject");
        b.set_issuer_name(&name).expect("issuer");
        b.set_pubkey(key).expect("public key");
        b.set_not_before(&Asn1Time::days_from_now(0).expect("time"))
            .expect("not before");
        b.set_not_after(&Asn1Time::days_from_now(1).expect("time"))
            .expect("not after");
        let san = SubjectAlternativeName::new()
            .dns("localhost")
            .ip("127.0.0.1")
            .build(&b.x509v3_context(None, None))
            .expect("SAN");
        b.append_extension(san).expect("SAN");
        b.sign(key, MessageDigest::sha256()).expect("sign");
        b.build()
    }

    /// `cert.pem`, `key.pem`, `enc-key.pem` (encrypted with [`PASSPHRASE`]),
    /// `combined.pem` (certificate then key) and `other-key.pem` (a key of another
    /// certificate).
    pub struct Certs {
        pub dir: TempDir,
        pub cert: X509,
    }

    impl Certs {
        pub fn new() -> Certs {
            let dir = tempfile::tempdir().expect("temporary directory");
            let key = new_key();
            let cert = self_signed(&key);
            let cert_pem = cert.to_pem().expect("PEM");
            let key_pem = key.private_key_to_pem_pkcs8().expect("PEM");
            let enc = key
                .private_key_to_pem_pkcs8_passphrase(Cipher::aes_256_cbc(), PASSPHRASE.as_bytes())
                .expect("encrypted PEM");
            let other = new_key().private_key_to_pem_pkcs8().expect("PEM");
            let write = |name: &str, bytes: &[u8]| {
                std::fs::write(dir.path().join(name), bytes).expect("write test material");
            };
            write("cert.pem", &cert_pem);
            write("key.pem", &key_pem);
            write("enc-key.pem", &enc);
            write("other-key.pem", &other);
            write("combined.pem", &[cert_pem.as_slice(), &key_pem].concat());
            Certs { dir, cert }
        }

        pub fn path(&self, name: &str) -> String {
            self.dir.path().join(name).to_string_lossy().into_owned()
        }

        /// The plan's TLS material for `cert`, `key` and `passphrase`.
        pub fn tls(&self, cert: &str, key: &str, passphrase: Option<&str>) -> Tls {
            Tls {
                cert_file: self.path(cert),
                key_file: self.path(key),
                passphrase: passphrase.map(Secret::new),
            }
        }
    }

    /// A plan with one listener on 127.0.0.1:1 (`tls` or not) and `relay`.
    pub fn plan(tls: bool, relay: tcprelay_plan::Relay) -> tcprelay_plan::Plan {
        use tcprelay_plan::*;
        let mut listener = Listener::new(ListenAddress::Inet(([127, 0, 0, 1], 1).into()));
        listener.tls = tls;
        Plan::new("t.cfg", Spawnd::new(vec![listener]), relay)
    }

    /// A relay with one remote on 127.0.0.1:`port` per `tls` given.
    pub fn relay(
        tls: Option<Tls>,
        remotes: Vec<Option<tcprelay_plan::RemoteTls>>,
    ) -> tcprelay_plan::Relay {
        use tcprelay_plan::*;
        let remotes = remotes
            .into_iter()
            .enumerate()
            .map(|(i, tls)| Remote {
                tls,
                ..Remote::new(([127, 0, 0, 1], 1000 + i as u16).into())
            })
            .collect();
        Relay {
            tls,
            ..Relay::new(remotes)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_certs::{Certs, PASSPHRASE};
    use super::*;

    /// The certificates a plan's contexts were built with, by file and use: a file
    /// that holds the key too gives its certificates only, re-encoded, and a file
    /// used twice is one entry with both uses.
    #[test]
    fn for_plan_records_the_certificates_loaded_never_a_key() {
        let c = Certs::new();
        let remote = RemoteTls {
            sni: Some("localhost".into()),
            verify: true,
            ca_file: Some(c.path("cert.pem")),
            cert_file: Some(c.path("combined.pem")),
            key_file: None,
            passphrase: None,
        };
        let unverified = RemoteTls {
            verify: false,
            ..remote.clone()
        };
        let relay = test_certs::relay(
            Some(c.tls("combined.pem", "combined.pem", None)),
            vec![Some(remote), None, Some(unverified)],
        );
        let tls = for_plan(&test_certs::plan(true, relay)).expect("the material loads");
        assert!(tls.server.is_some());
        let pem = String::from_utf8(c.cert.to_pem().unwrap()).unwrap();
        let files = tls.certificates.files();
        let want = vec![
            CertificateFile {
                file: c.path("combined.pem"),
                pem: pem.clone(),
                uses: vec![
                    CertificateUse::Listener,
                    CertificateUse::Client("127.0.0.1:1000/TCP".into()),
                    CertificateUse::Client("127.0.0.1:1002/TCP".into()),
                ],
            },
            // The third remote does not verify: its CA file is not loaded.
            CertificateFile {
                file: c.path("cert.pem"),
                pem,
                uses: vec![CertificateUse::Ca("127.0.0.1:1000/TCP".into())],
            },
        ];
        assert_eq!(files, want.as_slice());
        let key = std::fs::read_to_string(c.path("key.pem")).unwrap();
        for f in files {
            assert!(!f.pem.contains("PRIVATE KEY"), "{}", f.pem);
            assert!(!f.pem.contains(key.lines().nth(1).unwrap()));
        }
        // No TLS listener, no TLS remote: nothing loaded, nothing listed.
        let plain = for_plan(&test_certs::plan(
            false,
            test_certs::relay(None, vec![None]),
        ))
        .unwrap();
        assert!(plain.server.is_none() && plain.certificates.files().is_empty());
    }

    /// A listener chain of two certificates is given as the context holds it: both,
    /// in the file's order.
    #[test]
    fn the_listener_chain_is_given_whole_in_order() {
        let c = Certs::new();
        let other = test_certs::self_signed(&test_certs::new_key());
        let chain = [c.cert.to_pem().unwrap(), other.to_pem().unwrap()].concat();
        let key = std::fs::read(c.path("key.pem")).unwrap();
        std::fs::write(c.path("chain.pem"), [chain.as_slice(), &key].concat()).unwrap();
        let relay = test_certs::relay(Some(c.tls("chain.pem", "key.pem", None)), vec![None]);
        let tls = for_plan(&test_certs::plan(true, relay)).unwrap();
        let files = tls.certificates.files();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].pem.as_bytes(), chain.as_slice());
    }

    #[test]
    fn a_good_pair_loads() {
        let c = Certs::new();
        assert!(server_context(&c.tls("cert.pem", "key.pem", None)).is_ok());
        assert!(server_context(&c.tls("combined.pem", "combined.pem", None)).is_ok());
        assert!(server_context(&c.tls("cert.pem", "enc-key.pem", Some(PASSPHRASE))).is_ok());
        // A passphrase for a key that is not encrypted is not needed, and harmless.
        assert!(server_context(&c.tls("cert.pem", "key.pem", Some("unused"))).is_ok());
    }

    #[test]
    fn a_wrong_passphrase_is_one_line_without_the_passphrase() {
        let c = Certs::new();
        let secret = "not the passphrase 42";
        let e = server_context(&c.tls("cert.pem", "enc-key.pem", Some(secret))).unwrap_err();
        assert_eq!(
            e,
            format!(
                "cannot load TLS key {}: wrong passphrase or not a key",
                c.path("enc-key.pem")
            )
        );
        assert!(!e.contains(secret) && !e.contains(PASSPHRASE), "{e}");
        assert_eq!(e.lines().count(), 1);
    }

    #[test]
    fn an_encrypted_key_without_passphrase_fails_without_prompting() {
        let c = Certs::new();
        let started = std::time::Instant::now();
        let e = server_context(&c.tls("cert.pem", "enc-key.pem", None)).unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert!(e.contains(&c.path("enc-key.pem")), "{e}");
        assert!(e.contains("encrypted"), "{e}");
    }

    #[test]
    fn a_nul_in_the_passphrase_is_an_error_not_a_panic() {
        let c = Certs::new();
        let e = server_context(&c.tls("cert.pem", "enc-key.pem", Some("a\0b"))).unwrap_err();
        assert!(e.contains("NUL"), "{e}");
        assert!(!e.contains("a\0b"));
    }

    #[test]
    fn a_nul_in_a_file_name_is_one_line_that_does_not_quote_it() {
        let c = Certs::new();
        let cut = format!("{}\0.old", c.path("cert.pem"));
        let e = server_context(&c.tls("cert.pem", "key.pem", None));
        assert!(e.is_ok());
        for (tls, what) in [
            (
                Tls {
                    cert_file: cut.clone(),
                    ..c.tls("cert.pem", "key.pem", None)
                },
                "certificate",
            ),
            (
                Tls {
                    key_file: cut.clone(),
                    ..c.tls("cert.pem", "key.pem", None)
                },
                "key",
            ),
        ] {
            let e = server_context(&tls).unwrap_err();
            assert_eq!(
                e,
                format!("the TLS {what} file contains a NUL byte (\\0), which ends a string for the operating system")
            );
        }
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let c = Certs::new();
        let e = server_context(&c.tls("cert.pem", "other-key.pem", None)).unwrap_err();
        assert_eq!(
            e,
            format!(
                "TLS key {} does not match certificate {}",
                c.path("other-key.pem"),
                c.path("cert.pem")
            )
        );
    }

    #[test]
    fn missing_or_wrong_files_name_the_file() {
        let c = Certs::new();
        let e = server_context(&c.tls("cert.pem", "absent.pem", None)).unwrap_err();
        assert!(
            e.starts_with(&format!("cannot read TLS key {}", c.path("absent.pem"))),
            "{e}"
        );
        let e = server_context(&c.tls("key.pem", "key.pem", None)).unwrap_err();
        assert!(
            e.starts_with(&format!(
                "cannot load TLS certificate {}",
                c.path("key.pem")
            )),
            "{e}"
        );
        let e = server_context(&c.tls("cert.pem", "cert.pem", None)).unwrap_err();
        assert_eq!(
            e,
            format!(
                "cannot load TLS key {}: no PEM private key in the file",
                c.path("cert.pem")
            )
        );
        assert_eq!(e.lines().count(), 1);
    }

    #[test]
    fn a_fifo_or_a_device_as_a_file_is_refused_without_waiting() {
        let c = Certs::new();
        let fifo = c.path("fifo.pem");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .is_ok_and(|s| s.success()));
        let e = server_context(&c.tls("cert.pem", "fifo.pem", None)).unwrap_err();
        assert_eq!(
            e,
            format!("cannot read TLS key {fifo}: it is a FIFO, not a regular file")
        );
        let e = server_context(&Tls {
            cert_file: "/dev/zero".into(),
            ..c.tls("cert.pem", "key.pem", None)
        })
        .unwrap_err();
        assert_eq!(
            e,
            "cannot read TLS certificate /dev/zero: it is a character device (such as /dev/zero or /dev/urandom), not a regular file"
        );
    }

    fn remote_tls(c: &Certs) -> RemoteTls {
        RemoteTls {
            sni: Some("localhost".to_string()),
            verify: true,
            ca_file: Some(c.path("cert.pem")),
            cert_file: None,
            key_file: None,
            passphrase: None,
        }
    }

    #[test]
    fn a_client_context_loads_with_a_ca_file_the_system_store_and_a_client_certificate() {
        let c = Certs::new();
        assert!(client_context(&remote_tls(&c)).is_ok());
        let system = RemoteTls {
            ca_file: None,
            ..remote_tls(&c)
        };
        assert!(client_context(&system).is_ok());
        let with_cert = RemoteTls {
            cert_file: Some(c.path("cert.pem")),
            key_file: Some(c.path("enc-key.pem")),
            passphrase: Some(tcprelay_plan::Secret::new(PASSPHRASE)),
            ..remote_tls(&c)
        };
        assert!(client_context(&with_cert).is_ok());
        // The key defaults to the certificate's file.
        let combined = RemoteTls {
            cert_file: Some(c.path("combined.pem")),
            ..remote_tls(&c)
        };
        assert!(client_context(&combined).is_ok());
    }

    #[test]
    fn a_client_context_that_cannot_be_built_is_one_line_naming_the_file() {
        let c = Certs::new();
        let absent = RemoteTls {
            ca_file: Some(c.path("absent.pem")),
            ..remote_tls(&c)
        };
        let e = client_context(&absent).unwrap_err();
        assert!(
            e.starts_with(&format!("cannot read TLS CA file {}", c.path("absent.pem"))),
            "{e}"
        );
        let no_certificate = RemoteTls {
            ca_file: Some(c.path("key.pem")),
            ..remote_tls(&c)
        };
        assert_eq!(
            client_context(&no_certificate).unwrap_err(),
            format!(
                "cannot load TLS CA file {}: no PEM certificate in the file",
                c.path("key.pem")
            )
        );
        let mismatch = RemoteTls {
            cert_file: Some(c.path("cert.pem")),
            key_file: Some(c.path("other-key.pem")),
            ..remote_tls(&c)
        };
        assert_eq!(
            client_context(&mismatch).unwrap_err(),
            format!(
                "TLS key {} does not match certificate {}",
                c.path("other-key.pem"),
                c.path("cert.pem")
            )
        );
        let secret = "not the passphrase 42";
        let wrong = RemoteTls {
            cert_file: Some(c.path("cert.pem")),
            key_file: Some(c.path("enc-key.pem")),
            passphrase: Some(tcprelay_plan::Secret::new(secret)),
            ..remote_tls(&c)
        };
        let e = client_context(&wrong).unwrap_err();
        assert!(!e.contains(secret) && !e.contains(PASSPHRASE), "{e}");
        assert_eq!(e.lines().count(), 1);
        assert!(e.contains(&c.path("enc-key.pem")), "{e}");
    }
}
