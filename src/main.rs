fn main() -> std::process::ExitCode {
    ltm::device::tune_allocator();
    ltm::cli::main()
}
