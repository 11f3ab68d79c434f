#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| provider::fuzzing::jmes_extract(data));
