//! amber-macros: derive and attribute macros for amber actors.
//!
//! **Not implemented yet.** Today this crate exports no macros.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
