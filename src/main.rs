fn main() -> std::process::ExitCode {
    gzl::cli::main()
}
