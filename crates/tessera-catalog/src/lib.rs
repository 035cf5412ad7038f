//! Tessera's metadata catalog.
//!
//! Owns the types that describe the cluster (nodes, distributed and reference tables, shards,
//! placements, co-location groups), PostgreSQL-compatible hashing and Citus' shard ranges, and
//! loading the catalog from the coordinator PostgreSQL into an immutable [`CatalogSnapshot`].
//!
//! The hashing and shard math ([`hash`], [`shard_range`]) and the model are pure: no sockets,
//! no tokio. Only [`store`] talks to PostgreSQL. The one idea to hold: a row's shard is
//! `shard_index(hashfn(value), shard_count)`, with PostgreSQL's own `hashfn` for the column's
//! type, so Tessera and Citus agree on where every row lives.

pub mod hash;
pub mod model;
pub mod shard_range;
pub mod snapshot;
pub mod store;

pub use model::{
    shard_name, Column, DistributionColumnType, MatView, Node, Placement, Shard, Table, TableKind,
    View,
};
pub use snapshot::{CatalogSnapshot, SnapshotCell};

/// Errors from the catalog.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The coordinator PostgreSQL refused a catalog query.
    #[error("catalog query failed: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// A catalog row does not make sense (hand-edited catalog?).
    #[error("catalog is inconsistent: {0}")]
    Corrupt(String),
    /// A value is not valid input for the distribution column's type (SQLSTATE 22P02).
    #[error("invalid input syntax for type {type_name}: \"{value}\"")]
    InvalidValue {
        /// PostgreSQL's name of the type.
        type_name: String,
        /// The offending text.
        value: String,
    },
}
