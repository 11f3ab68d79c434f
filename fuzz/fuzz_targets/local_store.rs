#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| provider::fuzzing::local_store(data));
