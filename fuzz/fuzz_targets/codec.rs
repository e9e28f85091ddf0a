//! Fuzz target `codec`: see [`edgeship_fuzz::codec`] for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| edgeship_fuzz::codec(data));
