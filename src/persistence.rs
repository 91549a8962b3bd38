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

impl StorePersistence {
    /// Starts the writer on the current tokio runtime. It ends once every sender is
    /// dropped and the queue is drained; the returned handle resolves then.
    pub fn start(store: DynStore) -> (Self, tokio::task::JoinHandle<()>) {
        // Unbounded on purpose: a record must not be dropped because the database is
        // slow; memory is the buffer while it is down (and the backlog is logged).
        let (tx, mut rx) = mpsc::unbounded_channel::<Op>();
        let handle = tokio::spawn(async move {
            while let Some(op) = rx.recv().await {
                let mut attempt: u32 = 0;
                loop {
                    let result = match &op {
                        Op::SaveBinding(b) => store.save_binding(b).await,
                        Op::RemoveBinding(b) => {
                            store
                                .remove_binding(b.tenant_id, b.device_id, &b.contact)
                                .await
                        }
                        Op::CallEnded(r) => store.insert_call_record(r).await,
                    };
                    match result {
                        Ok(()) => break,
                        Err(crate::store::StoreError::AlreadyExists { .. }) => break,
                        Err(e) => {
                            attempt += 1;
                            let backoff = Duration::from_millis(100 * 2u64.pow(attempt.min(6)));
                            if attempt == 1 || attempt % 10 == 0 {
                                warn!(attempt, backlog = rx.len(), error = %e, "database write failed; will retry");
                            }
                            if attempt > 1000 {
                                error!(error = %e, "giving up on a database write after 1000 attempts");
                                break;
                            }
                            tokio::time::sleep(backoff).await;
                        }
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
