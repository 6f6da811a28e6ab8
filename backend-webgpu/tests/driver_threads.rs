//! The driver shared across threads (as prefetch workers share it with the forward pass): each
//! thread's read-back must follow its own dispatches however the threads' writes interleave.

mod common;

use common::*;
use engine_core::backend::Backend;

#[test]
fn read_backs_follow_their_dispatches_across_threads() {
    let Some(g) = gpu() else { return };
    std::thread::scope(|s| {
        for t in 0..4 {
            let g = &g;
            s.spawn(move || {
                for i in 0..500 {
                    let n = 64 + t;
                    let base = (t * 1000 + i) as f32;
                    let mut acc = gpu_buf(g, &vec![base; n]);
                    let one = gpu_buf(g, &vec![1.0; n]);
                    g.add(&mut acc, &one, n).expect("add");
                    let got = read(g, &acc, n);
                    assert!(
                        got.iter().all(|&x| x == base + 1.0),
                        "thread {t} iteration {i}: {:?}",
                        &got[..4]
                    );
                }
            });
        }
    });
}
