//! The durable-write port of the actors, backed by the store. Writes are queued and
//! applied by one writer task that retries until the database accepts them: a slow or
//! failing database degrades to "written later" (and is logged), never to "lost",
//! and never stalls a call or a registration.

use crate::store::DynStore;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{error, warn};
use tsps_actors::model::{Binding, CallRecord};
use tsps_actors::ports::Persistence;
use tsps_actors::{TenantId, UserId};

enum Op {
    SaveBinding(Binding),
    RemoveBinding(Binding),
    CallEnded(Box<CallRecord>),
}

pub struct StorePersistence {
    tx: mpsc::UnboundedSender<Op>,
}

/// Most operations one writer round takes from the queue.
const BATCH: usize = 512;

/// How long a round waits for more operations after the first (docs/benchmarks.md,
/// "Where the time goes": one transaction per call record cost ~70 system calls a call).
const GROUP_WINDOW: Duration = Duration::from_millis(10);

impl StorePersistence {
    /// Starts the writer on the current tokio runtime. It ends once every sender is
    /// dropped and the queue is drained; the returned handle resolves then.
    pub fn start(store: DynStore) -> (Self, tokio::task::JoinHandle<()>) {
        // Unbounded on purpose: a record must not be dropped because the database is
        // slow; memory is the buffer while it is down (and the backlog is logged).
        let (tx, mut rx) = mpsc::unbounded_channel::<Op>();
        let handle = tokio::spawn(async move {
            let mut ops = Vec::with_capacity(BATCH);
            while rx.recv_many(&mut ops, BATCH).await > 0 {
                // Group commit of call records: what arrives within a short window
                // goes in the same round, so that a call rate of hundreds per second
                // is a few transactions per second, not one per call (each is a dozen
                // or more system calls on SQLite). Nothing waits on a record; a
                // registration change is written at once (a restart must find it).
                let window = tokio::time::Instant::now() + GROUP_WINDOW;
                let only_records = |ops: &[Op]| ops.iter().all(|o| matches!(o, Op::CallEnded(_)));
                let mut waiting = only_records(&ops);
                while waiting && ops.len() < BATCH {
                    let (seen, room) = (ops.len(), BATCH - ops.len());
                    let more = rx.recv_many(&mut ops, room);
                    match tokio::time::timeout_at(window, more).await {
                        // only what just arrived: a registration change ends the wait
                        Ok(n) if n > 0 => waiting = only_records(&ops[seen..]),
                        _ => break, // the window is over, or every sender is gone
                    }
                }
                let backlog = rx.len();
                // Registration changes keep their order; call records are independent
                // and go in one transaction per round.
                let mut records = Vec::new();
                for op in ops.drain(..) {
                    match op {
                        Op::SaveBinding(b) => {
                            retry("save binding", backlog, || store.save_binding(&b)).await
                        }
                        Op::RemoveBinding(b) => {
                            retry("remove binding", backlog, || {
                                store.remove_binding(b.tenant_id, b.device_id, &b.contact)
                            })
                            .await
                        }
                        Op::CallEnded(r) => records.push(*r),
                    }
                }
                if records.is_empty() {
                    continue;
                }
                if let Err(e) = store.insert_call_records(&records).await {
                    // One bad record must not hold back the others: one by one.
                    warn!(error = %e, n = records.len(), "batch insert of call records failed; inserting one by one");
                    for r in &records {
                        retry("insert call record", backlog, || {
                            store.insert_call_record(r)
                        })
                        .await;
                    }
                }
            }
        });
        (Self { tx }, handle)
    }

    fn push(&self, op: Op) {
        if self.tx.send(op).is_err() {
            error!("persistence writer has stopped; a write was not queued");
        }
    }
}

/// Runs a write until it succeeds (or is a duplicate), backing off while the
/// database is unavailable.
async fn retry<F, Fut>(what: &str, backlog: usize, op: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), crate::store::StoreError>>,
{
    let mut attempt: u32 = 0;
    loop {
        match op().await {
            Ok(()) | Err(crate::store::StoreError::AlreadyExists { .. }) => return,
            Err(e) => {
                attempt += 1;
                if attempt == 1 || attempt % 10 == 0 {
                    warn!(what, attempt, backlog, error = %e, "database write failed; will retry");
                }
                if attempt > 1000 {
                    error!(what, error = %e, "giving up on a database write after 1000 attempts");
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100 * 2u64.pow(attempt.min(6)))).await;
            }
        }
    }
}

impl Persistence for StorePersistence {
    fn binding_saved(&self, binding: &Binding) {
        self.push(Op::SaveBinding(binding.clone()));
    }
    fn binding_removed(&self, _tenant: TenantId, _user: UserId, binding: &Binding) {
        self.push(Op::RemoveBinding(binding.clone()));
    }
    fn call_ended(&self, record: CallRecord) {
        self.push(Op::CallEnded(Box::new(record)));
    }
}
