//! Fuzz target: see `bastion_core::fuzzing::connection_reply` for what must hold.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    bastion_core::fuzzing::connection_reply(data);
});
