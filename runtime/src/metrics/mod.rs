//! The metrics endpoint: `GET /metrics` in the Prometheus text format, served by the
//! master from the relay-wide counters (`stats`).

pub mod exposition;
pub mod http;
pub mod render;

#[cfg(test)]
mod tests;
