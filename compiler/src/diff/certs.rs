//! The TLS material of both sides: every certificate file a plan references (the
//! listeners' certificate, each remote's client certificate and CA file), its
//! certificates' facts (subject, names, validity, SHA-256 fingerprint) compared.
//! Never a key: key files are compared by path only (`compare.rs`).
//!
//! A file is read now, by this command, unless the running relay gave the
//! certificates its generation loaded (`--running`): then a file whose path did not
//! change but whose content did shows as a new fingerprint.

use tcprelay_plan::Plan;

use super::report::{CertChange, CertSide, Change};
use crate::tlscheck;

/// A certificate the running relay says it loaded: the file as the plan names it
/// and its certificates in PEM.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Loaded {
    pub file: String,
    pub pem: String,
}

/// The certificate files of a plan, each with what it is for.
fn files(plan: &Plan) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(tls) = &plan.relay.tls {
        out.push(("listener certificate".to_string(), tls.cert_file.clone()));
    }
    let found = plan
        .relay
        .discovered
        .iter()
        .map(|d| (&d.template, super::compare::discovered_key(d)));
    for (remote, key) in plan.relay.remotes.iter().map(|r| (r, r.key())).chain(found) {
        let Some(tls) = &remote.tls else { continue };
        if let Some(file) = &tls.cert_file {
            out.push((format!("client certificate of {key}"), file.clone()));
        }
        if let Some(file) = &tls.ca_file {
            out.push((format!("CA file of {key}"), file.clone()));
        }
    }
    out
}

/// A file's certificates: from `loaded` when the running relay gave them, else read
/// now.
fn side(file: &str, loaded: Option<&[Loaded]>) -> CertSide {
    let given = loaded.and_then(|l| l.iter().find(|c| c.file == file));
    let (read, facts) = match given {
        Some(c) => ("running", tlscheck::facts_from_pem(file, c.pem.as_bytes())),
        None => ("now", tlscheck::certificate_facts(file)),
    };
    let (certificates, error) = match facts {
        Ok(certificates) => (certificates, None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    CertSide {
        file: file.to_string(),
        read,
        certificates,
        error,
    }
}

/// The certificate files whose certificates differ (or that one side alone has).
/// `old_loaded`: what the running relay loaded, when OLD is the running relay.
pub(super) fn compare(old: &Plan, new: &Plan, old_loaded: Option<&[Loaded]>) -> Vec<CertChange> {
    let (old_files, new_files) = (files(old), files(new));
    let mut out = Vec::new();
    for (role, file) in &old_files {
        let old_side = side(file, old_loaded);
        match new_files.iter().find(|(r, _)| r == role) {
            Some((_, new_file)) => {
                let new_side = side(new_file, None);
                if (&old_side.certificates, &old_side.error)
                    != (&new_side.certificates, &new_side.error)
                {
                    out.push(CertChange {
                        role: role.clone(),
                        change: Change::Changed,
                        old: Some(old_side),
                        new: Some(new_side),
                    });
                }
            }
            None => out.push(CertChange {
                role: role.clone(),
                change: Change::Removed,
                old: Some(old_side),
                new: None,
            }),
        }
    }
    for (role, file) in &new_files {
        if !old_files.iter().any(|(r, _)| r == role) {
            out.push(CertChange {
                role: role.clone(),
                change: Change::Added,
                old: None,
                new: Some(side(file, None)),
            });
        }
    }
    out
}
