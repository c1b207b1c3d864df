//! Busy loops: other work keeping every core busy, as on a loaded machine.

use std::process::{Child, Command, Stdio};

/// `sh -c 'while :; do :; done'` processes at normal priority, killed when
/// dropped.
pub struct BusyLoops(Vec<Child>);

impl BusyLoops {
    pub fn start(count: usize) -> BusyLoops {
        let loops = (0..count)
            .map(|_| {
                Command::new("sh")
                    .args(["-c", "while :; do :; done"])
                    .stdin(Stdio::null())
                    .spawn()
                    .expect("start a busy loop")
            })
            .collect();
        BusyLoops(loops)
    }
}

impl Drop for BusyLoops {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
