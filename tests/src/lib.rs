//! Helpers for end-to-end tests: build and start the real binaries on
//! loopback with OS-picked ports and temporary directories.
#![forbid(unsafe_code)]
