//! tessera-executor
