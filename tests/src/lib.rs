//! Multi-node and fault tests for Larder. The tests live in `tests/`, sharing the
//! process harness in `tests/support/`; this package also builds the node binary they
//! start (`larder-under-test`, the same entry point as `larder`).
//!
//! [`fuzz`]: the fuzz targets' decoders and checks, shared by `fuzz/` and the corpus
//! replay test.

pub mod fuzz;
