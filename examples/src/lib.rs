//! Examples live in the package root as [[example]] targets.
