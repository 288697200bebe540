use amber::prelude::*;

struct Worker;

#[amber::actor]
impl Worker {
    #[on_start]
    fn first(&mut self) {}

    #[on_start]
    fn second(&mut self) {}

    #[on_stop(now)]
    fn stopping(&mut self, reason: &ExitReason) -> bool {
        let _ = reason;
        true
    }

    fn on_start(&mut self, extra: u32) {
        let _ = extra;
    }

    fn on_down(&mut self, ctx: Context<Self>, down: Down, more: Down) {
        let _ = (ctx, down, more);
    }
}

fn main() {}
