//! `tasker`: run the coordinator, submit tasks, inspect them, and check
//! templates. The commands are in `cli/`.

mod cli;

use std::process::ExitCode;

use clap::Parser;

/// jemalloc rather than the system allocator: every delivery's task is a
/// few kilobytes, too large for glibc's per-thread caches, and in the
/// benchmark jemalloc cut the CPU per step (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> ExitCode {
    cli::run(cli::Cli::parse()).await
}
