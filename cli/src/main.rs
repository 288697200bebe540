//! The `amber` command-line tool. Not implemented yet: it prints usage and exits non-zero.

fn main() {
    eprintln!("amber: no commands are implemented yet");
    std::process::exit(2);
}
