//! Pipelined router statements: several clients' single-statement queries share a worker
//! connection, written together and answered in order.
//!
//! On a router statement most of the coordinator's cost is not planning but waking processes:
//! every message to a worker wakes its backend, every answer wakes the coordinator. When many
//! clients send at once, a *lane* (one connection to a worker, driven by one task) takes every
//! query that is waiting, sends them in one write as separate Query messages, and reads the
//! answers in order; the worker backend runs them one after another, each in its own implicit
//! transaction exactly as if they had come one by one. Only statements that carry no session
//! state use lanes: router statements outside transaction blocks. A long query
//! delays only the queries queued behind it on its lane; new queries go to the first lane
//! with fewer than [`FILL`] queries waiting, else to the least busy one.
//!
//! Statements with bound parameters (a driver's prepared statements, pgbench `-M prepared`)
//! are prepared once per lane under a name of the lane's and then only bound and executed
//! (Bind/Describe/Execute/Sync), so the worker parses and plans each shard's statement once
//! per lane instead of once per execution, as it would for the client on one PostgreSQL.
//! PostgreSQL re-plans such a statement by itself when a table it reads changes; when the
//! change alters the statement's result columns it answers "cached plan must not change
//! result type" instead, and the lane then prepares the statement again and runs it once more
//! (nothing ran: the error comes before execution).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::wire::{BoundParam, ConnParams, StatementResult, WireConnection, WireError};

/// Most queries sent in one write.
const MAX_BATCH: usize = 16;

/// Queries a lane takes before the next lane is used. Filling one lane first makes batches
/// larger: each batch costs the worker backend and the coordinator one wake-up and a pair of
/// socket calls however many queries it holds, and on a machine whose cores are all busy
/// that, not the queries, is most of the work (`pgbench -S -c 16` against 3 local workers:
/// 18 000 tps spread over two lanes per worker, 29 000 tps filling one first). The other
/// lanes take the overflow of a busy lane, so a worker with many cores still runs
/// queries side by side.
const FILL: usize = MAX_BATCH / 2;

/// How long a lane's batch may run before the lane counts as held up by a slow statement:
/// new queries then go to another lane, instead of waiting behind it.
const STALLED: Duration = Duration::from_millis(2);

/// Statements a lane keeps prepared at most; beyond them a statement is parsed at each
/// execution (the unnamed statement).
const MAX_PREPARED: usize = 1024;

/// A statement for a lane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LaneStatement {
    /// One statement, sent as a simple Query.
    Simple(String),
    /// One statement with `$n` parameters, prepared on the lane and run with `params`
    /// (`param_types` may hold 0 for "let the server infer"; `result_formats` follows Bind's
    /// rules).
    Bound {
        sql: String,
        param_types: Vec<u32>,
        params: Vec<BoundParam>,
        result_formats: Vec<i16>,
    },
}

struct Job {
    statement: LaneStatement,
    reply: oneshot::Sender<Result<StatementResult, WireError>>,
    /// The lane prepared the statement again after "cached plan must not change result type".
    retried: bool,
}

/// The statements prepared on one lane's connection, by SQL: their parameter types and name.
#[derive(Default)]
struct PreparedOnLane {
    names: HashMap<String, (Vec<u32>, String)>,
    next: u64,
    /// Names to close before the next round (statements dropped after an error).
    to_close: Vec<String>,
}

impl PreparedOnLane {
    /// The name for `sql` with `types` and whether it must be parsed in this round
    /// ("" — the unnamed statement, always parsed — once [`MAX_PREPARED`] are kept, or when
    /// the SQL is prepared with other parameter types).
    fn name_for(&mut self, sql: &str, types: &[u32]) -> (String, bool) {
        match self.names.get(sql) {
            Some((prepared, name)) if prepared.as_slice() == types => (name.clone(), false),
            Some(_) => (String::new(), true),
            None if self.names.len() >= MAX_PREPARED => (String::new(), true),
            None => {
                self.next += 1;
                let name = format!("tessera_lane_{}", self.next);
                self.names
                    .insert(sql.to_string(), (types.to_vec(), name.clone()));
                (name, true)
            }
        }
    }

    /// Forgets `name` (its statement failed, or its plan went stale) and closes it on the
    /// connection before the next round.
    fn drop_name(&mut self, name: &str) {
        if name.is_empty() {
            return;
        }
        self.names.retain(|_, (_, n)| n != name);
        self.to_close.push(name.to_string());
    }
}

struct Lane {
    jobs: mpsc::UnboundedSender<Job>,
    load: Arc<LaneLoad>,
}

/// What a lane's task tells the queries choosing a lane.
#[derive(Default)]
struct LaneLoad {
    /// Queries sent to the lane and not yet answered.
    in_flight: AtomicUsize,
    /// When the batch being answered was sent, in microseconds after [`epoch`] plus one;
    /// 0 while the lane waits for work.
    sent_at: AtomicU64,
}

impl LaneLoad {
    fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    fn done(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    fn stalled(&self) -> bool {
        let sent = self.sent_at.load(Ordering::Relaxed);
        sent != 0 && now_micros().saturating_sub(sent) > STALLED.as_micros() as u64
    }
}

/// The instant lane times count from.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Microseconds since [`epoch`], plus one (so that 0 can mean "not sent").
fn now_micros() -> u64 {
    epoch().elapsed().as_micros() as u64 + 1
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
                let load = Arc::new(LaneLoad::default());
                tokio::spawn(drive(params.clone(), rx, load.clone()));
                Lane { jobs: tx, load }
            })
            .collect();
        Pipeline { lanes }
    }

    /// Runs one single-statement query on the first lane not yet filled (see [`FILL`]).
    pub async fn query(&self, statement: LaneStatement) -> Result<StatementResult, WireError> {
        let ready = |l: &&Lane| !l.load.stalled();
        let lane = self
            .lanes
            .iter()
            .filter(ready)
            .find(|l| l.load.in_flight() < FILL)
            .or_else(|| {
                self.lanes
                    .iter()
                    .filter(ready)
                    .min_by_key(|l| l.load.in_flight())
            })
            .or_else(|| self.lanes.iter().min_by_key(|l| l.load.in_flight()))
            .ok_or_else(closed)?;
        let (reply, answer) = oneshot::channel();
        lane.load.in_flight.fetch_add(1, Ordering::Relaxed);
        let job = Job {
            statement,
            reply,
            retried: false,
        };
        if lane.jobs.send(job).is_err() {
            lane.load.done();
            return Err(closed());
        }
        answer.await.map_err(|_| closed())?
    }
}

/// Whether `e` is PostgreSQL's refusal to run a prepared statement whose result columns
/// changed since it was prepared (plancache.c, SQLSTATE 0A000).
fn stale_result_type(e: &WireError) -> bool {
    matches!(e, WireError::Server(s)
        if s.code == "0A000" && s.message.starts_with("cached plan must not change result type"))
}

fn closed() -> WireError {
    WireError::Protocol {
        address: String::new(),
        detail: "pipeline lane stopped".into(),
    }
}

async fn drive(params: ConnParams, mut jobs: mpsc::UnboundedReceiver<Job>, load: Arc<LaneLoad>) {
    let mut conn: Option<WireConnection> = None;
    let mut prepared = PreparedOnLane::default();
    // Jobs to run again at once (their statement is prepared anew).
    let mut again: Vec<Job> = Vec::new();
    loop {
        let mut batch = std::mem::take(&mut again);
        if batch.is_empty() {
            match jobs.recv().await {
                Some(first) => batch.push(first),
                None => return,
            }
        }
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if conn.as_ref().is_none_or(|c| c.is_broken()) {
            prepared = PreparedOnLane::default();
            match WireConnection::connect(&params).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    let text = e.to_string();
                    for job in batch {
                        load.done();
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
        // The prepared statement each job ran ("" for none).
        let mut names: Vec<String> = Vec::with_capacity(batch.len());
        for job in &batch {
            let done = match &job.statement {
                LaneStatement::Simple(sql) => {
                    names.push(String::new());
                    c.queue_query(sql)
                }
                LaneStatement::Bound {
                    sql,
                    param_types,
                    params,
                    result_formats,
                } => {
                    let closes = std::mem::take(&mut prepared.to_close);
                    let closed = closes
                        .iter()
                        .try_for_each(|name| c.queue_close_statement(name));
                    let (name, parse) = prepared.name_for(sql, param_types);
                    let parse = parse.then_some((sql.as_str(), param_types.as_slice()));
                    names.push(name.clone());
                    closed.and_then(|()| c.queue_bound(&name, parse, params, result_formats))
                }
            };
            if let Err(e) = done {
                failure = Some(e.to_string());
                break;
            }
            queued += 1;
        }
        load.sent_at.store(now_micros(), Ordering::Relaxed);
        if failure.is_none() {
            if let Err(e) = c.send_queued().await {
                failure = Some(e.to_string());
            }
        }
        let mut jobs_iter = batch.into_iter().zip(names);
        if failure.is_none() {
            for (job, name) in jobs_iter.by_ref().take(queued) {
                let result = c
                    .read_query_results()
                    .await
                    .map(|mut r| r.pop().unwrap_or_default());
                let broken = c.is_broken();
                if let Err(e) = &result {
                    // A statement that failed may not be prepared (its Parse failed) or may
                    // hold a plan for columns that changed: prepared anew next time.
                    prepared.drop_name(&name);
                    if !job.retried && !broken && stale_result_type(e) {
                        again.push(Job {
                            retried: true,
                            ..job
                        });
                        continue;
                    }
                }
                load.done();
                let _ = job.reply.send(result);
                if broken {
                    failure = Some("worker connection lost".into());
                    break;
                }
            }
        }
        if let Some(detail) = failure {
            for (job, _) in jobs_iter.chain(again.drain(..).map(|j| (j, String::new()))) {
                load.done();
                let _ = job.reply.send(Err(WireError::Protocol {
                    address: params.address(),
                    detail: detail.clone(),
                }));
            }
            conn = None;
        }
        load.sent_at.store(0, Ordering::Relaxed);
    }
}
