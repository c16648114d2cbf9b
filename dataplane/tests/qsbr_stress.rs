//! QSBR under load: readers check every snapshot they see for half-built or freed state while
//! the writer publishes thousands of times a second; offline readers must not hold up frees.

use rampart_dataplane::qsbr::{publisher, Publisher, Reader};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const POISON: u64 = 0xdead_dead_dead_dead;
const MAX_TABLES: usize = 1 << 20;

/// Bookkeeping shared by all tables of one test.
struct Ledger {
    /// `freed[id]` is set when table `id` is dropped, before its memory goes.
    freed: Vec<AtomicBool>,
    built: AtomicUsize,
    dropped: AtomicUsize,
}

impl Ledger {
    fn new() -> Arc<Ledger> {
        Arc::new(Ledger {
            freed: (0..MAX_TABLES).map(|_| AtomicBool::new(false)).collect(),
            built: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
        })
    }
}

/// A snapshot whose consistency a reader can check: every element equals `check`, and `epoch`
/// is the epoch it was published under.
struct Table {
    id: usize,
    epoch: u64,
    check: u64,
    data: Vec<u64>,
    ledger: Arc<Ledger>,
}

impl Table {
    fn new(ledger: &Arc<Ledger>, id: usize, epoch: u64) -> Table {
        let check = (id as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        ledger.built.fetch_add(1, Ordering::SeqCst);
        Table { id, epoch, check, data: vec![check; 16 + id % 64], ledger: ledger.clone() }
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        self.ledger.freed[self.id].store(true, Ordering::SeqCst);
        self.check = POISON;
        for x in self.data.iter_mut() {
            *x = POISON;
        }
        self.ledger.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Default)]
struct Seen {
    iterations: u64,
    bad: u64,
    distinct_epochs: u64,
    offline_spells: u64,
}

/// Verifies one snapshot; returns false on any sign of a half-built or freed table.
fn verify(r: &Reader<Table>, ledger: &Ledger) -> bool {
    let t = r.snapshot();
    let id = t.id;
    let mut ok = t.check != POISON && t.epoch == r.epoch() && t.data.len() == 16 + id % 64;
    ok &= t.data.iter().all(|&x| x == t.check);
    // Still ours: the publisher must not have started dropping it while we hold it.
    ok &= !ledger.freed[id].load(Ordering::SeqCst);
    ok
}

fn run_reader(
    mut r: Reader<Table>,
    ledger: Arc<Ledger>,
    stop: Arc<AtomicBool>,
    sleeper: bool,
) -> Seen {
    let mut seen = Seen::default();
    let mut last_epoch = 0;
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        // A few checks per iteration, as a worker looks at the tables once per packet.
        for _ in 0..4 {
            if !verify(&r, &ledger) {
                seen.bad += 1;
            }
        }
        if r.epoch() < last_epoch {
            seen.bad += 1;
        }
        if r.epoch() != last_epoch {
            seen.distinct_epochs += 1;
            last_epoch = r.epoch();
        }
        seen.iterations += 1;
        r.quiescent();
        n += 1;
        if sleeper && n.is_multiple_of(1000) {
            // A worker that blocks goes offline first.
            r.offline();
            thread::sleep(Duration::from_millis(1));
            r.online();
            seen.offline_spells += 1;
        }
    }
    seen
}

#[test]
fn readers_never_see_freed_or_partial_snapshots() {
    const READERS: usize = 4;
    let ledger = Ledger::new();
    let ids = AtomicUsize::new(1);
    let (mut publ, readers): (Publisher<Table>, _) = publisher(Table::new(&ledger, 0, 1), READERS);
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = readers
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let (ledger, stop) = (ledger.clone(), stop.clone());
            thread::spawn(move || run_reader(r, ledger, stop, i == 0))
        })
        .collect();

    let start = Instant::now();
    let (mut published, mut freed, mut max_pending) = (0u64, 0usize, 0usize);
    while start.elapsed() < Duration::from_secs(2) {
        let id = ids.fetch_add(1, Ordering::Relaxed);
        assert!(id < MAX_TABLES);
        let epoch = publ.epoch() + 1;
        assert_eq!(publ.publish(Table::new(&ledger, id, epoch)), epoch);
        assert_eq!(publ.current().id, id);
        published += 1;
        freed += publ.reclaim();
        max_pending = max_pending.max(publ.pending());
        if published % 8 == 0 {
            // A burst of back-to-back publishes, then a short pause: thousands per second.
            thread::sleep(Duration::from_micros(100));
        }
    }
    // The readers are still running and quiescing: everything retired gets freed.
    assert!(publ.synchronize(Duration::from_secs(5)), "pending {} never freed", publ.pending());
    assert_eq!(publ.pending(), 0);
    stop.store(true, Ordering::Relaxed);
    let seen: Vec<Seen> = handles.into_iter().map(|h| h.join().unwrap()).collect();

    let bad: u64 = seen.iter().map(|s| s.bad).sum();
    println!(
        "published {published} ({:.0}/s), freed by reclaim() {freed}, max pending {max_pending}",
        published as f64 / start.elapsed().as_secs_f64()
    );
    for (i, s) in seen.iter().enumerate() {
        println!(
            "reader {i}: {} iterations, {} epochs, {} offline spells",
            s.iterations, s.distinct_epochs, s.offline_spells
        );
        assert!(s.iterations > 0 && s.distinct_epochs > 1);
    }
    assert_eq!(bad, 0, "a reader saw a freed or half-built snapshot");
    assert!(published > 2000, "only {published} publishes");
    assert!(seen[0].offline_spells > 0);
    // Everything but the current snapshot is gone; dropping the publisher (the readers are
    // gone already) frees that too.
    assert_eq!(ledger.dropped.load(Ordering::SeqCst), ledger.built.load(Ordering::SeqCst) - 1);
    drop(publ);
    assert_eq!(ledger.dropped.load(Ordering::SeqCst), ledger.built.load(Ordering::SeqCst));
}

#[test]
fn offline_readers_do_not_block_reclamation() {
    let ledger = Ledger::new();
    let (mut publ, mut rs) = publisher(Table::new(&ledger, 0, 1), 3);
    let mut c = rs.pop().unwrap();
    let mut b = rs.pop().unwrap();
    let mut a = rs.pop().unwrap();
    a.offline();
    assert!(!a.is_online());

    publ.publish(Table::new(&ledger, 1, 2));
    // b and c are online and still on epoch 1.
    assert_eq!(publ.pending(), 1);
    assert_eq!(b.snapshot().id, 0);
    b.quiescent();
    assert_eq!((b.snapshot().id, b.epoch()), (1, 2));
    assert_eq!(publ.reclaim(), 0, "c still holds epoch 1");
    // c stalls; once it goes offline it no longer counts.
    c.offline();
    assert_eq!(publ.reclaim(), 1);
    assert_eq!(publ.pending(), 0);
    assert!(ledger.freed[0].load(Ordering::SeqCst));

    // Coming back online picks up the newest snapshot and protects it.
    publ.publish(Table::new(&ledger, 2, 3));
    c.online();
    assert_eq!((c.snapshot().id, c.epoch()), (2, 3));
    // b is on epoch 2: snapshot 1 stays until b moves on.
    assert_eq!(publ.reclaim(), 0);
    b.quiescent();
    assert_eq!(publ.reclaim(), 1);
    publ.publish(Table::new(&ledger, 3, 4));
    assert_eq!(publ.pending(), 1);
    // Dropping a reader is going offline.
    drop(c);
    assert!(!publ.synchronize(Duration::from_millis(20)), "b is online on epoch 3");
    b.quiescent();
    assert!(publ.synchronize(Duration::from_secs(1)));

    // With every reader offline, retired snapshots go at once.
    b.offline();
    publ.publish(Table::new(&ledger, 4, 5));
    assert_eq!(publ.pending(), 0);
    assert_eq!(publ.current().id, 4);
    drop(a);
    drop(b);
    drop(publ);
    assert_eq!(ledger.dropped.load(Ordering::SeqCst), 5);
}

#[test]
fn publisher_dropped_first_leaves_held_snapshots_to_the_readers() {
    let ledger = Ledger::new();
    let (mut publ, mut rs) = publisher(Table::new(&ledger, 0, 1), 1);
    let mut r = rs.pop().unwrap();
    publ.publish(Table::new(&ledger, 1, 2));
    drop(publ);
    // The reader still holds snapshot 0; it must be intact.
    assert!(verify(&r, &ledger));
    r.quiescent();
    assert_eq!(r.snapshot().id, 1);
    assert_eq!(ledger.dropped.load(Ordering::SeqCst), 0);
    drop(r);
    assert_eq!(ledger.dropped.load(Ordering::SeqCst), 2);
}

#[test]
#[should_panic(expected = "offline")]
fn snapshot_of_an_offline_reader_panics() {
    let (_publ, mut rs) = publisher(1u32, 1);
    rs[0].offline();
    let _ = rs[0].snapshot();
}

#[test]
fn reclaim_frees_without_readers() {
    let (mut publ, _) = publisher(0u64, 0);
    for i in 1..100 {
        publ.publish(i);
        assert_eq!(publ.pending(), 0);
    }
    assert_eq!((*publ.current(), publ.epoch()), (99, 100));
}
