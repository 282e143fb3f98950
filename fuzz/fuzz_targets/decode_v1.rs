#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rollcall_phoenix::fuzzing::decode_v1(data));
