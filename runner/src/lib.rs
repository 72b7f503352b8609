//! flock-runner: not built yet.
