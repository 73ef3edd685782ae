fn main() -> std::process::ExitCode {
    ltm::device::tune_process();
    ltm::cli::main()
}
