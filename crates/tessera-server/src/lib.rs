//! Tessera's PostgreSQL wire front end, built on pgwire.
//!
//! Owns startup (parameters that make psql and drivers treat Tessera as the PostgreSQL version
//! of the coordinator), the simple and extended query protocols, COPY FROM STDIN, per-session
//! state and the mapping of every error to a PostgreSQL ErrorResponse with its SQLSTATE. It
//! plans each statement with `tessera-planner` and runs it with `tessera-executor`; rows that
//! come back from a worker are handed to the client as the worker encoded them. Clients connect
//! to any database of the coordinator PostgreSQL ([`databases`]).

mod connection;
mod convert;
pub mod databases;
mod handlers;
pub mod tls;

pub use databases::{Database, Databases};
pub use handlers::{serve, Backend, ServerConfig};
