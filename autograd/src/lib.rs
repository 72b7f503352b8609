//! flock-autograd: not built yet.
