//! flock-metrics: not built yet.
