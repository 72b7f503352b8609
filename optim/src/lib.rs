//! flock-optim: not built yet.
