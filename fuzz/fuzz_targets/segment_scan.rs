#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tidelog_fuzz::run(tidelog_fuzz::segment_scan, data));
