//! The one integration-test binary: it runs the real `tcprelay-cc` and `tcprelay`
//! binaries in temporary directories.
