//! The Bastion data-plane emulator (feature `emulator`).
