//! Pipelined router statements: several clients' single-statement queries share a worker
//! connection, written together and answered in order.
//!
//! On a router statement most of the coordinator's cost is not planning but waking processes:
//! every message to a worker wakes its backend, every answer wakes the coordinator. When many
//! clients send at once, a *lane* (one connection to a worker, driven by one task) takes every
//! query that is waiting, sends them in one write as separate Query messages, and reads the
//! answers in order; the worker backend runs them one after another, each in its own implicit
//! transaction exactly as if they had come one by one. Only statements that carry no session
//! state use lanes: simple-protocol router statements outside transaction blocks. A long query
//! delays only the queries queued behind it on its lane; new queries go to the least busy lane.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::wire::{ConnParams, StatementResult, WireConnection, WireError};

/// Most queries sent in one write.
const MAX_BATCH: usize = 16;

struct Job {
    sql: String,
    reply: oneshot::Sender<Result<StatementResult, WireError>>,
}

struct Lane {
    jobs: mpsc::UnboundedSender<Job>,
    in_flight: Arc<AtomicUsize>,
}

/// The lanes to one worker.
pub struct Pipeline {
    lanes: Vec<Lane>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("lanes", &self.lanes.len())
            .finish()
    }
}

impl Pipeline {
    /// `lanes` connections to the server `params` names, each driven by its own task (must be
    /// called inside a tokio runtime). Connections open on first use and reopen after errors.
    pub fn new(params: ConnParams, lanes: usize) -> Pipeline {
        let lanes = (0..lanes.max(1))
            .map(|_| {
                let (tx, rx) = mpsc::unbounded_channel();
                let in_flight = Arc::new(AtomicUsize::new(0));
                tokio::spawn(drive(params.clone(), rx, in_flight.clone()));
                Lane {
                    jobs: tx,
                    in_flight,
                }
            })
            .collect();
        Pipeline { lanes }
    }

    /// Runs one single-statement query on the least busy lane.
    pub async fn query(&self, sql: String) -> Result<StatementResult, WireError> {
        let lane = self
            .lanes
            .iter()
            .min_by_key(|l| l.in_flight.load(Ordering::Relaxed))
            .ok_or_else(closed)?;
        let (reply, answer) = oneshot::channel();
        lane.in_flight.fetch_add(1, Ordering::Relaxed);
        if lane.jobs.send(Job { sql, reply }).is_err() {
            lane.in_flight.fetch_sub(1, Ordering::Relaxed);
            return Err(closed());
        }
        answer.await.map_err(|_| closed())?
    }
}

fn closed() -> WireError {
    WireError::Protocol {
        address: String::new(),
        detail: "pipeline lane stopped".into(),
    }
}

async fn drive(
    params: ConnParams,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    in_flight: Arc<AtomicUsize>,
) {
    let mut conn: Option<WireConnection> = None;
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if conn.as_ref().is_none_or(|c| c.is_broken()) {
            match WireConnection::connect(&params).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    let text = e.to_string();
                    for job in batch {
                        in_flight.fetch_sub(1, Ordering::Relaxed);
                        let _ = job.reply.send(Err(WireError::Protocol {
                            address: params.address(),
                            detail: text.clone(),
                        }));
                    }
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let mut queued = 0;
        let mut failure = None;
        for job in &batch {
            if let Err(e) = c.queue_query(&job.sql) {
                failure = Some(e.to_string());
                break;
            }
            queued += 1;
        }
        if failure.is_none() {
            if let Err(e) = c.send_queued().await {
                failure = Some(e.to_string());
            }
        }
        let mut jobs_iter = batch.into_iter();
        if failure.is_none() {
            for job in jobs_iter.by_ref().take(queued) {
                let result = c
                    .read_query_results()
                    .await
                    .map(|mut r| r.pop().unwrap_or_default());
                let broken = c.is_broken();
                in_flight.fetch_sub(1, Ordering::Relaxed);
                let _ = job.reply.send(result);
                if broken {
                    failure = Some("worker connection lost".into());
                    break;
                }
            }
        }
        if let Some(detail) = failure {
            for job in jobs_iter {
                in_flight.fetch_sub(1, Ordering::Relaxed);
                let _ = job.reply.send(Err(WireError::Protocol {
                    address: params.address(),
                    detail: detail.clone(),
                }));
            }
            conn = None;
        }
    }
}
