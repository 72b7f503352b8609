//! flock-ensemble: not built yet.
