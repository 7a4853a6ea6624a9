//! The `fedgate` binary; the commands are [`gateway::cli`].

/// mimalloc: per-thread heaps avoid glibc's arena lock, which showed up in profiles of the proxy path.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    gateway::cli::run()
}
