#[path = "../benches/support/workloads.rs"]
mod workloads;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let which = args[1].as_str();
    let reps: usize = args.get(2).map(|s| s.parse().unwrap()).unwrap_or(5);
    let rt = workloads::runtime();
    let t = std::time::Instant::now();
    for _ in 0..reps {
        match which {
            "amber_ask" => {
                rt.block_on(workloads::amber_ask(100_000));
            }
            "tokio_ask" => {
                rt.block_on(workloads::tokio_ask(100_000));
            }
            "amber_ring" => {
                rt.block_on(workloads::amber_ring(1000, 1_000_000));
            }
            "tokio_ring" => {
                rt.block_on(workloads::tokio_ring(1000, 1_000_000));
            }
            "amber_spawn" => {
                rt.block_on(workloads::amber_spawn(20_000));
            }
            "tokio_spawn" => {
                rt.block_on(workloads::tokio_spawn(20_000));
            }
            "amber_fan" => {
                rt.block_on(workloads::amber_fan_in(1_000_000));
            }
            "tokio_fan" => {
                rt.block_on(workloads::tokio_fan_in(1_000_000));
            }
            _ => panic!("?"),
        }
    }
    eprintln!("{which}: {:?}", t.elapsed());
}
