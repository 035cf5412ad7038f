//! tessera-planner
