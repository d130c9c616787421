//! Fuzz target: see `bastion_core::fuzzing::in_band_detector` for what must hold.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    bastion_core::fuzzing::in_band_detector(data);
});
