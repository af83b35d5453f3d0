//! STUB: certificate/key checks with openssl; to be written.
