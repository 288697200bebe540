//! amber-remote: TCP remoting for amber.
//!
//! **Not implemented yet.** This crate will hold the TCP transport (length-prefixed
//! MessagePack frames), the authenticated handshake, remote `ActorRef` routing, failure
//! detection and cross-node snapshots. Today it exports nothing.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
