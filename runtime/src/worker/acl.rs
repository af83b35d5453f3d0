//! Client access rules (`acl = permit|deny [not] NETWORK[/PREFIX]` in the spawnd
//! section) and the trusted senders of PROXY headers (`accept proxy from`): the
//! decisions are the plan crate's ([`tcprelay_plan::route`]), shared with
//! `tcprelay-cc route`, so that what it explains is what the workers do. Their tests
//! are there.

pub use tcprelay_plan::route::{canonical, decide, trusted};

/// The deciding rule of a verdict for a log line: `rule #2` (counted from 1, as
/// `tcprelay-cc route` shows them), or `no rule matches`.
pub fn deciding(verdict: tcprelay_plan::route::Verdict) -> String {
    match verdict.rule {
        Some(index) => format!("rule #{}", index + 1),
        None => "no rule matches".to_string(),
    }
}
