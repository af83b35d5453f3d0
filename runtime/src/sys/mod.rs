//! The runtime's only `unsafe` code, behind functions that are safe to call.
//!
//! Everything the operating system offers through a safe wrapper is called through
//! `rustix` (or `socket2`, `mio`, the standard library) where it is used. What has
//! no such wrapper lives here, each `unsafe` block with the reason it is sound:
//!
//! | module      | what                                                           |
//! |-------------|----------------------------------------------------------------|
//! | [`process`] | fork, `_exit`, signal handlers writing to a self-pipe, user and group ids, `malloc_trim` |
//! | [`shared`]  | the shared anonymous mappings of atomics behind the load board and the counters |
//! | [`net`]     | socket options and ioctls without a wrapper, OpenSSL's byte source by descriptor |
//! | [`poll`]    | poll(2) over a `pollfd` array, select(2) and its `fd_set`      |
//! | [`title`]   | process titles: the argument area rewritten                      |
//! | [`uring`]   | io_uring submissions of polls and their cancellations (Linux)       |
//!
//! The crate root denies `unsafe_code`; only this module is allowed it, so a new
//! `unsafe` block anywhere else does not compile.

pub mod net;
pub mod poll;
pub mod process;
pub mod shared;
#[cfg(test)]
pub mod testing;
pub mod title;
#[cfg(target_os = "linux")]
pub mod uring;
