//! What `diff` found, as data: the human renderer (`human.rs`) and `--format json`
//! (serde, the schema of docs/diff.md) print the same [`Report`].

use serde::Serialize;

use crate::tlscheck::CertFacts;

/// Everything a reload from OLD to NEW changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Whether anything changes (the exit status: 1 if so, else 0).
    pub changed: bool,
    pub old: SideInfo,
    pub new: SideInfo,
    /// Listeners added, removed or changed, by `ADDRESS/PROTOCOL`.
    pub listeners: Vec<ItemChange>,
    /// Remotes added, removed or changed, by `ADDRESS:PORT/PROTOCOL`.
    pub remotes: Vec<ItemChange>,
    /// Names resolved at run time added, removed or changed, by `NAME:PORT/PROTOCOL
    /// (A/AAAA)` or `NAME/PROTOCOL (SRV)` (left out of the JSON when empty).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub discovered: Vec<ItemChange>,
    /// The access rules' edit script (only the lines removed and added).
    pub acl: Vec<AclLine>,
    /// Certificate files whose certificates differ.
    pub certificates: Vec<CertChange>,
    /// Every other setting that differs, relay-wide.
    pub settings: Vec<FieldChange>,
    /// What the reload means for the sessions open at the time.
    pub sessions: Sessions,
    /// Things not compared, and why (they do not count as changes).
    pub notes: Vec<String>,
}

/// One side of the comparison.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SideInfo {
    /// `configuration`, `plan` or `running`.
    pub kind: &'static str,
    /// The input as given (path, URL, `-`), or the control socket's path.
    pub input: String,
    /// The plan's own `source` (where it was compiled from).
    pub source: String,
    /// The section ids the plan was compiled with.
    pub spawnd_id: String,
    pub tcprelay_id: String,
    /// The running relay's generation and plan hash (`running` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan_hash: Option<String>,
}

/// When a changed value takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Effect {
    /// The master applies it to the listening socket it keeps: the connections
    /// accepted from then on have it.
    Socket,
    /// The new generation's workers use it: new sessions; the old generation's
    /// sessions keep the old value until they end.
    NewSessions,
    /// The master applies it at the reload (its own work, not the sessions').
    Reload,
    /// Read at start only: the running relay keeps the old value until it is
    /// restarted.
    Restart,
    /// Used only when a socket is bound (a kept socket is not bound again).
    Bind,
    /// Accepted for compatibility, without effect.
    None,
}

impl Effect {
    /// The words of the human output.
    pub fn words(self) -> &'static str {
        match self {
            Effect::Socket => "applied to the kept socket at reload",
            Effect::NewSessions => "new sessions",
            Effect::Reload => "applied by the master at reload",
            Effect::Restart => "takes effect at restart only",
            Effect::Bind => "used when the socket is bound: no effect on a kept socket",
            Effect::None => "no effect",
        }
    }
}

/// One value that differs. Values are written as in a configuration; `None` is a
/// value not set (the default). A secret's values are never its text: `set`,
/// `none`, `changed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    pub field: String,
    pub old: Option<String>,
    pub new: Option<String>,
    pub effect: Effect,
    /// A precision about this change, when it needs one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// How a listener or remote changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Added,
    Removed,
    Changed,
}

/// A listener or a remote that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemChange {
    /// Its identity: `ADDRESS/PROTOCOL` for a listener, `ADDRESS:PORT/PROTOCOL` for a
    /// remote.
    pub key: String,
    pub change: Change,
    /// Its position in OLD and in NEW (from 0).
    pub old_index: Option<usize>,
    pub new_index: Option<usize>,
    /// Listeners: `kept` (same address and protocol: the socket stays open, its
    /// queue included), `bound` (a new socket at the reload), `closed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket: Option<&'static str>,
    /// What differs, for `changed`; the settings of an added one are not listed.
    pub fields: Vec<FieldChange>,
    /// With `--running`: the sessions the running relay has on this remote, or
    /// accepted by this listener.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_sessions: Option<u64>,
}

/// A line of the access rules' edit script.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AclLine {
    /// `-` (in OLD only) or `+` (in NEW only).
    pub op: &'static str,
    /// The rule's position in its list (OLD's for `-`, NEW's for `+`), from 0.
    pub index: usize,
    /// `permit 10.0.0.0/8`, `deny not 192.0.2.0/24`.
    pub rule: String,
}

/// A certificate file whose certificates differ between the sides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertChange {
    /// What the file is for: `listener certificate`, `client certificate of
    /// REMOTE`, `CA file of REMOTE`.
    pub role: String,
    pub change: Change,
    pub old: Option<CertSide>,
    pub new: Option<CertSide>,
}

/// A certificate file as one side has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertSide {
    pub file: String,
    /// `now` (the file read by this command) or `running` (what the running
    /// generation loaded).
    pub read: &'static str,
    /// Its certificates in file order (empty when the file could not be read).
    pub certificates: Vec<CertFacts>,
    /// Why the file could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The sessions open at the reload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Sessions {
    /// What the old generation keeps and for how long, in sentences.
    pub summary: Vec<String>,
    /// With `--running`: the sessions open now, all generations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// With `--running`: the generations running now.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub generations: Vec<Generation>,
}

/// A generation of the running relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Generation {
    pub generation: u64,
    pub sessions: u64,
    pub draining: bool,
}
