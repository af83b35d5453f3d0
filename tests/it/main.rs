//! The one integration-test binary: it runs the real `tcprelay-cc` (and later
//! `tcprelay`) binaries in temporary directories, and drives the library where a
//! property is easier to state on functions.

mod balance;
mod cli;
mod corpus;
mod ctl;
mod diff;
mod dns;
mod docs;
mod editors;
mod effects;
mod harness;
mod health;
mod manual;
mod notify;
mod operate;
mod process;
mod props;
mod proxy;
mod records;
mod relay;
mod route;
mod setup;
mod sni;
mod steering;
mod sticky;
mod strings;
mod timeouts;
mod tls_remote;
mod ui;
