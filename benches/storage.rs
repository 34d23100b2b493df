//! Storage throughput without Python: single enqueues, batch enqueues, claims and batched
//! outcome writes on a fresh database. `cargo bench --bench storage`.

use std::time::Instant;

use _taskito::job::{now_ms, NewJob};
use _taskito::storage::{Durability, SqliteStorage, Storage, Write};

fn job() -> NewJob {
    NewJob {
        task_name: "bench.noop".into(),
        queue: "default".into(),
        payload: vec![0x80, 5, 0x95, 0x08],
        priority: 0,
        scheduled_at: now_ms(),
        max_retries: 3,
        retry_backoff: 1.0,
        timeout_ms: 300_000,
        unique_key: None,
        metadata: None,
        result_ttl_ms: None,
    }
}

fn rate(label: &str, n: usize, start: Instant) {
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{label:<28} {:>10.0} /s  ({n} in {secs:.3} s)",
        n as f64 / secs
    );
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.db");
    let s = SqliteStorage::open(path.to_str().unwrap(), Durability::Normal).unwrap();
    let n = 20_000;

    let start = Instant::now();
    for _ in 0..n {
        s.enqueue(&[job()]).unwrap();
    }
    rate("enqueue one by one", n, start);

    let batch: Vec<NewJob> = (0..n).map(|_| job()).collect();
    let start = Instant::now();
    s.enqueue(&batch).unwrap();
    rate("enqueue batch", n, start);

    let start = Instant::now();
    let mut claimed = Vec::new();
    loop {
        let got = s.claim(None, &"bench".into(), 64, now_ms()).unwrap();
        if got.is_empty() {
            break;
        }
        claimed.extend(got);
    }
    rate("claim (64 per transaction)", claimed.len(), start);

    let start = Instant::now();
    for chunk in claimed.chunks(256) {
        let writes: Vec<Write> = chunk
            .iter()
            .map(|j| Write::Complete {
                id: j.id.clone(),
                token: j.claim_token,
                thread_id: "bench-0".into(),
                result: vec![0x80, 5, 0x4e, 0x2e],
            })
            .collect();
        s.record(&writes, now_ms()).unwrap();
    }
    rate("complete (256 per batch)", claimed.len(), start);
}
