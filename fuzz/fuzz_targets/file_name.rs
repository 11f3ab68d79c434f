#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| provider::fuzzing::file_name(data));
