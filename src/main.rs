//! The `edgeship` binary: parse arguments, run the command, map errors to exit codes.

use std::process::ExitCode;

use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc commits its arenas eagerly on Linux (an overcommit system), so every page it
/// has used once stays resident: a deploy of 7,800 files to S3 peaked at 300 MB of RSS
/// for 18 MB of live heap (bench/RESULTS.md, large). With lazy commit it peaks at 90 MB
/// and runs as fast. The option is read when the first arena is reserved, on the first
/// allocation, which std's runtime makes before `main`; so it is set here, as a process
/// constructor, through the environment (mimalloc's documented way to set options,
/// stable across its versions). A value the user set is kept.
#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array")]
static MIMALLOC_LAZY_COMMIT: extern "C" fn() = {
    unsafe extern "C" {
        fn setenv(
            name: *const std::ffi::c_char,
            value: *const std::ffi::c_char,
            overwrite: std::ffi::c_int,
        ) -> std::ffi::c_int;
    }
    extern "C" fn lazy_commit() {
        // SAFETY: runs once, single-threaded, before `main`; both strings are static and
        // NUL-terminated; glibc's setenv does not use the Rust allocator.
        unsafe {
            setenv(c"MIMALLOC_ARENA_EAGER_COMMIT".as_ptr(), c"0".as_ptr(), 0);
        }
    }
    lazy_commit
};

fn main() -> ExitCode {
    let cli = edgeship::cli::Cli::parse();
    edgeship::cli::run(cli)
}
