//! STUB: lowering; to be written.
use crate::check::Model;
use tcprelay_plan::Plan;

pub fn lower(model: &Model, source: &str) -> Plan {
    let _ = (model, source);
    unimplemented!()
}
