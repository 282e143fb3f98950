//! Shared helpers for the Rollcall benchmarks (counting allocator lives in each bench).
