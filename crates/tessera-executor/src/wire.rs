//! A PostgreSQL frontend connection that hands rows back as the server sent them.
//!
//! tokio-postgres decodes every value into Rust types and always asks for binary results; the
//! router path wants the opposite: send the client's parameters as they came (text or binary),
//! ask the worker for the result formats the client asked for, and pass RowDescription, DataRow
//! bodies, command tags and errors back without looking inside. Messages are encoded and parsed
//! with `postgres-protocol` (the same crate tokio-postgres is built on); this module only owns
//! the message exchange.

use std::collections::HashMap;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use postgres_protocol::message::backend::{self, Message};
use postgres_protocol::message::frontend;
use postgres_protocol::IsNull;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use tessera_planner::rewrite::quote_ident;

/// Where a connection's startup stands ([`WireConnection::begin`]).
pub enum Started {
    /// Authenticated and ready for queries.
    Ready(WireConnection),
    /// The server asks for authentication; answer through the handshake.
    Asks(Handshake, AuthRequest),
}

/// An authentication request of the server during startup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthRequest {
    /// AuthenticationCleartextPassword.
    Cleartext,
    /// AuthenticationMD5Password with its salt.
    Md5 {
        /// The 4 salt bytes.
        salt: [u8; 4],
    },
    /// AuthenticationSASL with the mechanisms offered (e.g. `SCRAM-SHA-256`).
    Sasl {
        /// Mechanism names.
        mechanisms: Vec<String>,
    },
    /// AuthenticationSASLContinue: the server's challenge.
    SaslContinue(Bytes),
    /// AuthenticationSASLFinal: the server's final message; no answer is expected (answer
    /// `None` to read on).
    SaslFinal(Bytes),
}

/// An answer to an [`AuthRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthAnswer {
    /// PasswordMessage: a cleartext password or an md5 hash as the protocol wants it.
    Password(String),
    /// SASLInitialResponse.
    SaslInitial {
        /// The chosen mechanism.
        mechanism: String,
        /// The client-first message.
        data: Bytes,
    },
    /// SASLResponse.
    Sasl(Bytes),
}

/// A connection waiting for the answer to an authentication request.
pub struct Handshake {
    conn: WireConnection,
}

impl std::fmt::Debug for Handshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handshake")
            .field("address", &self.conn.address)
            .finish()
    }
}

impl Handshake {
    /// Sends `answer` (`None` after [`AuthRequest::SaslFinal`]) and reads on.
    pub async fn answer(mut self, answer: Option<AuthAnswer>) -> Result<Started, WireError> {
        let address = self.conn.address.clone();
        let io = |source| WireError::Io { address, source };
        let buf = &mut self.conn.write_buf;
        match answer {
            None => {}
            Some(AuthAnswer::Password(pw)) => {
                frontend::password_message(pw.as_bytes(), buf).map_err(io)?
            }
            Some(AuthAnswer::SaslInitial { mechanism, data }) => {
                frontend::sasl_initial_response(&mechanism, &data, buf).map_err(io)?
            }
            Some(AuthAnswer::Sasl(data)) => frontend::sasl_response(&data, buf).map_err(io)?,
        }
        self.conn.flush().await?;
        self.conn.startup_step().await
    }
}

/// Opens the socket to the server `params` names: its Unix-domain socket when it is on this
/// machine and the socket exists, else TCP (10 s timeout).
async fn open_stream(params: &ConnParams) -> Result<Stream, WireError> {
    let address = params.address();
    let io = |source| WireError::Io {
        address: address.clone(),
        source,
    };
    let socket = params
        .socket_dir
        .as_ref()
        .filter(|_| is_loopback(&params.host))
        .map(|dir| dir.join(format!(".s.PGSQL.{}", params.port)))
        .filter(|path| path.exists());
    let timed_out = || std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out");
    Ok(match socket {
        Some(path) => Stream::Unix(
            tokio::time::timeout(Duration::from_secs(10), UnixStream::connect(path))
                .await
                .map_err(|_| io(timed_out()))?
                .map_err(io)?,
        ),
        None => {
            let tcp = tokio::time::timeout(
                Duration::from_secs(10),
                TcpStream::connect((params.host.as_str(), params.port)),
            )
            .await
            .map_err(|_| io(timed_out()))?
            .map_err(io)?;
            tcp.set_nodelay(true).map_err(io)?;
            Stream::Tcp(tcp)
        }
    })
}

/// Sends a CancelRequest for the server process `pid` (secret `secret`, from its
/// BackendKeyData) to the server `params` names: the query it runs, if any, is cancelled.
pub async fn send_cancel(params: &ConnParams, pid: i32, secret: i32) -> Result<(), WireError> {
    let address = params.address();
    let io = |source| WireError::Io { address, source };
    let mut stream = open_stream(params).await?;
    let mut buf = BytesMut::with_capacity(16);
    frontend::cancel_request(pid, secret, &mut buf);
    let result = match &mut stream {
        Stream::Tcp(s) => s.write_all(&buf).await,
        Stream::Unix(s) => s.write_all(&buf).await,
    };
    result.map_err(io)
}

/// A TCP or Unix-domain socket.
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    async fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Stream::Tcp(s) => s.write_all(buf).await,
            Stream::Unix(s) => s.write_all(buf).await,
        }
    }

    async fn read_buf(&mut self, buf: &mut BytesMut) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read_buf(buf).await,
            Stream::Unix(s) => s.read_buf(buf).await,
        }
    }
}

fn is_loopback(host: &str) -> bool {
    matches!(host, "127.0.0.1" | "localhost" | "::1")
}

/// Where and as whom to connect.
#[derive(Debug, Clone)]
pub struct ConnParams {
    /// Directory of the servers' Unix-domain sockets (`.s.PGSQL.<port>`), for servers on this
    /// machine: a socket there is used instead of loopback TCP, which costs the sender the
    /// receiver's TCP processing on every message.
    pub socket_dir: Option<std::path::PathBuf>,
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// User name.
    pub user: String,
    /// Password, if the server asks for one (never logged).
    pub password: Option<String>,
    /// Database name.
    pub database: String,
    /// More startup-packet parameters (a client's TimeZone, DateStyle, options, ...), which
    /// become the connection's defaults: what RESET returns to.
    pub startup: Vec<(String, String)>,
    /// When `database` does not exist on the server (3D000), create it by way of this
    /// database and connect again: a worker's database is created on first use, as Citus
    /// needs its extension in each database. `None` for the coordinator PostgreSQL, whose
    /// databases only a client creates.
    pub create_from: Option<String>,
}

impl ConnParams {
    /// "host:port" for messages (no credentials).
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// One column of a RowDescription, as the server sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDescription {
    /// Column name.
    pub name: String,
    /// OID of the source table, 0 if none.
    pub table_oid: u32,
    /// Attribute number in the source table, 0 if none.
    pub column_id: i16,
    /// Type OID.
    pub type_oid: u32,
    /// Type size (`pg_type.typlen`).
    pub type_size: i16,
    /// Type modifier.
    pub type_modifier: i32,
    /// 0 text, 1 binary.
    pub format: i16,
}

/// The fields of an ErrorResponse (or NoticeResponse), by PostgreSQL's field codes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerError {
    /// `S`: ERROR, FATAL, ...
    pub severity: String,
    /// `C`: SQLSTATE.
    pub code: String,
    /// `M`: primary message.
    pub message: String,
    /// `D`.
    pub detail: Option<String>,
    /// `H`.
    pub hint: Option<String>,
    /// `P`: cursor position in the statement the server saw.
    pub position: Option<String>,
    /// `W`.
    pub context: Option<String>,
    /// `s`, `t`, `c`, `n`: schema, table, column, constraint.
    pub schema: Option<String>,
    /// Table name.
    pub table: Option<String>,
    /// Column name.
    pub column: Option<String>,
    /// Constraint name.
    pub constraint: Option<String>,
    /// `p`, `q`: position in and text of an internally generated query (PL/pgSQL).
    pub internal_position: Option<String>,
    /// Internal query.
    pub internal_query: Option<String>,
    /// `d`: data type name.
    pub data_type: Option<String>,
    /// `V`: severity, never localized.
    pub severity_nonlocalized: Option<String>,
    /// `F`, `L`, `R`: source file, line and routine in the server.
    pub file: Option<String>,
    /// Source line.
    pub line: Option<String>,
    /// Source routine.
    pub routine: Option<String>,
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} ({})", self.severity, self.message, self.code)
    }
}

/// Errors of a wire connection.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The socket failed; the connection is gone.
    #[error("connection to {address} failed: {source}")]
    Io {
        /// host:port.
        address: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The server answered with an error; the connection is still usable.
    #[error("{0}")]
    Server(Box<ServerError>),
    /// The server said something we did not expect; the connection is closed.
    #[error("protocol error talking to {address}: {detail}")]
    Protocol {
        /// host:port.
        address: String,
        /// What went wrong.
        detail: String,
    },
}

/// The result of one statement: row description (empty for statements without rows), the rows'
/// raw DataRow bodies, and the command tag.
#[derive(Debug, Clone, Default)]
pub struct StatementResult {
    /// Columns; empty when the statement returns no rows (NoData).
    pub fields: Vec<FieldDescription>,
    /// DataRow bodies: for each column a 4-byte length (-1 for NULL) and the value bytes.
    pub rows: Vec<Bytes>,
    /// CommandComplete tag, e.g. `SELECT 3`, `INSERT 0 1`; empty for an empty query.
    pub tag: String,
    /// A RowDescription came: the statement returns rows, even with no columns (`SELECT;`).
    pub described: bool,
}

impl StatementResult {
    /// The first column of every row as text (lossy UTF-8), NULLs left out: the lines of an
    /// EXPLAIN, the names a catalog query lists.
    pub fn first_column_text(&self) -> Vec<String> {
        self.rows
            .iter()
            .filter_map(|row| {
                row_values(row)
                    .first()
                    .copied()
                    .flatten()
                    .map(|v| String::from_utf8_lossy(v).into_owned())
            })
            .collect()
    }

    /// The row count at the end of the tag (`INSERT 0 5` → 5), 0 if none.
    pub fn affected_rows(&self) -> u64 {
        self.tag
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

/// A parameter value as the client bound it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundParam {
    /// The value's bytes, `None` for NULL.
    pub value: Option<Bytes>,
    /// 0 text, 1 binary.
    pub format: i16,
}

/// Transaction status from the last ReadyForQuery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxStatus {
    /// Not in a transaction block.
    Idle,
    /// In a transaction block.
    InTransaction,
    /// In a failed transaction block.
    Failed,
}

/// A connection speaking the PostgreSQL protocol v3 to one server.
pub struct WireConnection {
    stream: Stream,
    read_buf: BytesMut,
    write_buf: BytesMut,
    address: String,
    /// `server_version` and other ParameterStatus values.
    pub parameters: HashMap<String, String>,
    /// Status reported by the last ReadyForQuery.
    pub status: TxStatus,
    broken: bool,
    /// A streamed query's rows are still unread ([`Self::query_start`]); the connection
    /// must not be reused until they are.
    streaming: bool,
    /// Which session settings the connection carries ([`crate::settings::SessionSettings`]'s
    /// id; 0 = the server's defaults, as connected).
    pub settings_id: u64,
    /// NoticeResponses (NOTICE, WARNING, INFO, ...) received since they were last taken,
    /// oldest first; at most [`MAX_NOTICES`] are kept.
    pub notices: Vec<ServerError>,
    /// ParameterStatus changes received since they were last taken, in arrival order.
    pub parameter_changes: Vec<(String, String)>,
    /// NotificationResponses (LISTEN/NOTIFY) received since they were last taken, oldest
    /// first; at most [`MAX_NOTICES`] are kept.
    pub notifications: Vec<Notification>,
    /// BackendKeyData: the server process id and secret key, to cancel its query.
    pub backend_key: Option<(i32, i32)>,
    /// Statements deferred to go out ahead of the next request ([`Self::defer`]), one
    /// statement each, in order.
    prelude: Vec<String>,
}

/// A NotificationResponse: a NOTIFY on a channel this connection listens to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// Process id of the notifying backend.
    pub pid: i32,
    /// Channel name.
    pub channel: String,
    /// Payload ('' when none was given).
    pub payload: String,
}

/// Notices kept per connection until taken; more are dropped (a runaway loop of RAISE NOTICE
/// must not exhaust the coordinator's memory).
pub const MAX_NOTICES: usize = 10_000;

/// How a statement sent by [`WireConnection::copy_begin`] began.
#[derive(Debug)]
pub enum CopyBegin {
    /// The server waits for COPY data (`COPY ... FROM STDIN`).
    In {
        /// Overall format: 0 text/csv, 1 binary.
        format: i8,
        /// Number of columns.
        columns: usize,
    },
    /// The server sends COPY data (`COPY ... TO STDOUT`); read it with
    /// [`WireConnection::copy_out_next`].
    Out {
        /// Overall format: 0 text/csv, 1 binary.
        format: i8,
        /// Number of columns.
        columns: usize,
    },
    /// The statement was no COPY to or from the client (e.g. a COPY from a server file): it
    /// ran to completion.
    Done(Vec<StatementResult>),
}

impl std::fmt::Debug for WireConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WireConnection")
            .field("address", &self.address)
            .field("status", &self.status)
            .finish()
    }
}

fn server_error(body: &backend::ErrorResponseBody) -> ServerError {
    error_fields(body.fields())
}

fn notice_fields(body: &backend::NoticeResponseBody) -> ServerError {
    error_fields(body.fields())
}

fn error_fields(mut fields: backend::ErrorFields<'_>) -> ServerError {
    use fallible_iterator::FallibleIterator;
    let mut e = ServerError::default();
    while let Ok(Some(f)) = fields.next() {
        let v = String::from_utf8_lossy(f.value_bytes()).into_owned();
        match f.type_() {
            b'S' => e.severity = v,
            b'V' => {
                if e.severity.is_empty() {
                    e.severity = v.clone();
                }
                e.severity_nonlocalized = Some(v);
            }
            b'p' => e.internal_position = Some(v),
            b'q' => e.internal_query = Some(v),
            b'd' => e.data_type = Some(v),
            b'F' => e.file = Some(v),
            b'L' => e.line = Some(v),
            b'R' => e.routine = Some(v),
            b'C' => e.code = v,
            b'M' => e.message = v,
            b'D' => e.detail = Some(v),
            b'H' => e.hint = Some(v),
            b'P' => e.position = Some(v),
            b'W' => e.context = Some(v),
            b's' => e.schema = Some(v),
            b't' => e.table = Some(v),
            b'c' => e.column = Some(v),
            b'n' => e.constraint = Some(v),
            _ => {}
        }
    }
    e
}

fn fields_of(body: &backend::RowDescriptionBody) -> Result<Vec<FieldDescription>, std::io::Error> {
    use fallible_iterator::FallibleIterator;
    let mut out = Vec::new();
    let mut it = body.fields();
    while let Some(f) = it.next()? {
        out.push(FieldDescription {
            name: f.name().to_string(),
            table_oid: f.table_oid(),
            column_id: f.column_id(),
            type_oid: f.type_oid(),
            type_size: f.type_size(),
            type_modifier: f.type_modifier(),
            format: f.format(),
        });
    }
    Ok(out)
}

impl WireConnection {
    /// Connects, authenticates (trust, password, md5, SCRAM-SHA-256) and waits for
    /// ReadyForQuery. Times out after 10 s.
    ///
    /// With [`ConnParams::create_from`] set, a missing database is created first (`CREATE
    /// DATABASE`, the server's default template; a concurrent creation of the same database
    /// is no error).
    pub async fn connect(params: &ConnParams) -> Result<WireConnection, WireError> {
        match Self::connect_once(params).await {
            Err(WireError::Server(e)) if e.code == "3D000" => {
                let Some(from) = params
                    .create_from
                    .as_ref()
                    .filter(|f| **f != params.database)
                else {
                    return Err(WireError::Server(e));
                };
                let maintenance = ConnParams {
                    database: from.clone(),
                    create_from: None,
                    startup: Vec::new(),
                    ..params.clone()
                };
                let mut conn = Self::connect_once(&maintenance).await?;
                let create = format!("CREATE DATABASE {}", quote_ident(&params.database));
                match conn.simple_query(&create).await {
                    Ok(_) => tracing::info!(
                        "created database {} on {}",
                        params.database,
                        params.address()
                    ),
                    // Another connection created it meanwhile.
                    Err(WireError::Server(e)) if matches!(e.code.as_str(), "42P04" | "23505") => {}
                    Err(e) => return Err(e),
                }
                Self::connect_once(params).await
            }
            other => other,
        }
    }

    async fn connect_once(params: &ConnParams) -> Result<WireConnection, WireError> {
        let mut started = Self::begin(params).await?;
        let mut scram: Option<ScramSha256> = None;
        loop {
            let (handshake, request) = match started {
                Started::Ready(conn) => return Ok(conn),
                Started::Asks(h, r) => (h, r),
            };
            let conn = &handshake.conn;
            let answer = match request {
                AuthRequest::Cleartext => Some(AuthAnswer::Password(conn.password(params)?)),
                AuthRequest::Md5 { salt } => {
                    let pw = conn.password(params)?;
                    Some(AuthAnswer::Password(
                        postgres_protocol::authentication::md5_hash(
                            params.user.as_bytes(),
                            pw.as_bytes(),
                            salt,
                        ),
                    ))
                }
                AuthRequest::Sasl { .. } => {
                    let pw = conn.password(params)?;
                    let s = ScramSha256::new(pw.as_bytes(), ChannelBinding::unsupported());
                    let data = Bytes::copy_from_slice(s.message());
                    scram = Some(s);
                    Some(AuthAnswer::SaslInitial {
                        mechanism: "SCRAM-SHA-256".into(),
                        data,
                    })
                }
                AuthRequest::SaslContinue(body) => {
                    let address = conn.address.clone();
                    let s = scram.as_mut().ok_or_else(|| WireError::Protocol {
                        address: address.clone(),
                        detail: "unexpected SASL continue".into(),
                    })?;
                    s.update(&body)
                        .map_err(|source| WireError::Io { address, source })?;
                    Some(AuthAnswer::Sasl(Bytes::copy_from_slice(s.message())))
                }
                AuthRequest::SaslFinal(body) => {
                    let address = conn.address.clone();
                    let s = scram.as_mut().ok_or_else(|| WireError::Protocol {
                        address: address.clone(),
                        detail: "unexpected SASL final".into(),
                    })?;
                    s.finish(&body)
                        .map_err(|source| WireError::Io { address, source })?;
                    None
                }
            };
            started = handshake.answer(answer).await?;
        }
    }

    /// Opens a connection and sends the startup packet; the server's authentication requests
    /// come back for the caller to answer ([`Handshake::answer`]) — with a client's own
    /// answers when Tessera relays the client's authentication to the coordinator PostgreSQL,
    /// which then checks the client's password against its roles.
    pub async fn begin(params: &ConnParams) -> Result<Started, WireError> {
        let address = params.address();
        let io = |source| WireError::Io {
            address: address.clone(),
            source,
        };
        let stream = open_stream(params).await?;
        let mut conn = WireConnection {
            stream,
            read_buf: BytesMut::with_capacity(16 * 1024),
            write_buf: BytesMut::with_capacity(4096),
            address: address.clone(),
            parameters: HashMap::new(),
            status: TxStatus::Idle,
            broken: false,
            streaming: false,
            settings_id: 0,
            notices: Vec::new(),
            parameter_changes: Vec::new(),
            notifications: Vec::new(),
            backend_key: None,
            prelude: Vec::new(),
        };
        let mut startup = vec![
            ("user", params.user.as_str()),
            ("database", params.database.as_str()),
            ("client_encoding", "UTF8"),
        ];
        if !params.startup.iter().any(|(k, _)| k == "application_name") {
            startup.push(("application_name", "tessera"));
        }
        startup.extend(
            params
                .startup
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "user" | "database" | "client_encoding"))
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        frontend::startup_message(startup, &mut conn.write_buf).map_err(io)?;
        conn.flush().await?;
        conn.startup_step().await
    }

    /// Reads the server's startup messages up to ReadyForQuery (the connection is ready) or an
    /// authentication request that needs an answer.
    async fn startup_step(mut self) -> Result<Started, WireError> {
        loop {
            let request = match self.read_message().await? {
                Message::AuthenticationOk => continue,
                Message::AuthenticationCleartextPassword => AuthRequest::Cleartext,
                Message::AuthenticationMd5Password(body) => AuthRequest::Md5 { salt: body.salt() },
                Message::AuthenticationSasl(body) => {
                    use fallible_iterator::FallibleIterator;
                    let address = self.address.clone();
                    let mechanisms = body
                        .mechanisms()
                        .map(|m| Ok(m.to_string()))
                        .collect()
                        .map_err(|source| WireError::Io { address, source })?;
                    AuthRequest::Sasl { mechanisms }
                }
                Message::AuthenticationSaslContinue(body) => {
                    AuthRequest::SaslContinue(Bytes::copy_from_slice(body.data()))
                }
                Message::AuthenticationSaslFinal(body) => {
                    AuthRequest::SaslFinal(Bytes::copy_from_slice(body.data()))
                }
                Message::BackendKeyData(key) => {
                    self.backend_key = Some((key.process_id(), key.secret_key()));
                    continue;
                }
                Message::ReadyForQuery(_) => {
                    self.parameter_changes.clear();
                    return Ok(Started::Ready(self));
                }
                Message::ErrorResponse(body) => {
                    return Err(WireError::Server(Box::new(server_error(&body))))
                }
                _ => return Err(self.protocol("unexpected message during startup")),
            };
            return Ok(Started::Asks(Handshake { conn: self }, request));
        }
    }

    fn password(&self, params: &ConnParams) -> Result<String, WireError> {
        params.password.clone().ok_or_else(|| {
            WireError::Server(Box::new(ServerError {
                severity: "FATAL".into(),
                code: "28P01".into(),
                message: format!(
                    "{} asks for a password, but none is configured for it",
                    self.address
                ),
                ..Default::default()
            }))
        })
    }

    fn protocol(&mut self, detail: &str) -> WireError {
        self.broken = true;
        WireError::Protocol {
            address: self.address.clone(),
            detail: detail.to_string(),
        }
    }

    /// Whether the connection hit an I/O or protocol error and must not be reused.
    pub fn is_broken(&self) -> bool {
        self.broken || self.streaming
    }

    /// "host:port" of the server.
    pub fn address(&self) -> &str {
        &self.address
    }

    async fn flush(&mut self) -> Result<(), WireError> {
        let buf = self.write_buf.split();
        if let Err(source) = self.stream.write_all(&buf).await {
            self.broken = true;
            return Err(WireError::Io {
                address: self.address.clone(),
                source,
            });
        }
        Ok(())
    }

    /// The next message that answers what was sent; NoticeResponse and ParameterStatus,
    /// which may come at any time, are kept aside (see [`Self::notices`] and
    /// [`Self::parameter_changes`]).
    async fn read_message(&mut self) -> Result<Message, WireError> {
        loop {
            match self.read_any_message().await? {
                Message::NoticeResponse(body) => {
                    if self.notices.len() < MAX_NOTICES {
                        self.notices.push(notice_fields(&body));
                    }
                }
                Message::ParameterStatus(p) => {
                    if let (Ok(k), Ok(v)) = (p.name(), p.value()) {
                        self.parameters.insert(k.to_string(), v.to_string());
                        self.parameter_changes.push((k.to_string(), v.to_string()));
                    }
                }
                Message::NotificationResponse(n) => {
                    if let (Ok(channel), Ok(payload)) = (n.channel(), n.message()) {
                        if self.notifications.len() < MAX_NOTICES {
                            self.notifications.push(Notification {
                                pid: n.process_id(),
                                channel: channel.to_string(),
                                payload: payload.to_string(),
                            });
                        }
                    }
                }
                other => return Ok(other),
            }
        }
    }

    async fn read_any_message(&mut self) -> Result<Message, WireError> {
        loop {
            match Message::parse(&mut self.read_buf) {
                Ok(Some(m)) => return Ok(m),
                Ok(None) => {}
                Err(e) => {
                    self.broken = true;
                    return Err(WireError::Io {
                        address: self.address.clone(),
                        source: e,
                    });
                }
            }
            self.fill().await?;
        }
    }

    /// Reads more bytes from the server into the read buffer (at least one).
    async fn fill(&mut self) -> Result<(), WireError> {
        if self.read_buf.capacity() - self.read_buf.len() < 4096 {
            self.read_buf.reserve(16 * 1024);
        }
        match self.stream.read_buf(&mut self.read_buf).await {
            Ok(0) => {
                self.broken = true;
                Err(WireError::Io {
                    address: self.address.clone(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "server closed the connection",
                    ),
                })
            }
            Ok(_) => Ok(()),
            Err(source) => {
                self.broken = true;
                Err(WireError::Io {
                    address: self.address.clone(),
                    source,
                })
            }
        }
    }

    /// Relays a fast-path FunctionCall (protocol message `F`, which libpq's `PQfn` and so
    /// psql's `\lo_*` commands send): `body` is the message after its length word, as the
    /// client sent it (function OID, argument formats and values, result format). Returns the
    /// server's whole FunctionCallResponse message (`V`, its length, the result's length or
    /// -1 for NULL, and the result's bytes), to be passed on as it is; or the server's error.
    /// Notices go where [`Self::read_message`] puts them.
    pub async fn function_call(&mut self, body: &[u8]) -> Result<Bytes, WireError> {
        self.send_prelude().await?;
        let Ok(len) = i32::try_from(body.len() + 4) else {
            return Err(self.protocol("FunctionCall message too long"));
        };
        self.write_buf.extend_from_slice(b"F");
        self.write_buf.extend_from_slice(&len.to_be_bytes());
        self.write_buf.extend_from_slice(body);
        self.flush().await?;
        let mut response = None;
        let mut error = None;
        loop {
            // postgres-protocol does not know FunctionCallResponse: take it off the buffer
            // here, and leave every other message to the parser.
            if self.read_buf.is_empty() {
                self.fill().await?;
                continue;
            }
            if self.read_buf[0] == b'V' {
                if self.read_buf.len() < 5 {
                    self.fill().await?;
                    continue;
                }
                let len = i32::from_be_bytes([
                    self.read_buf[1],
                    self.read_buf[2],
                    self.read_buf[3],
                    self.read_buf[4],
                ]);
                let Some(total) = usize::try_from(len).ok().filter(|l| *l >= 8) else {
                    return Err(self.protocol("malformed FunctionCallResponse"));
                };
                if self.read_buf.len() < total + 1 {
                    self.fill().await?;
                    continue;
                }
                response = Some(self.read_buf.split_to(total + 1).freeze());
                continue;
            }
            match self.read_message().await? {
                Message::ErrorResponse(body) => error = Some(server_error(&body)),
                Message::NoticeResponse(_) | Message::ParameterStatus(_) => {}
                Message::ReadyForQuery(body) => {
                    self.ready(&body);
                    return match (error, response) {
                        (Some(e), _) => Err(WireError::Server(Box::new(e))),
                        (None, Some(r)) => Ok(r),
                        (None, None) => {
                            Err(self.protocol("FunctionCall answered without a result"))
                        }
                    };
                }
                _ => return Err(self.protocol("unexpected message answering FunctionCall")),
            }
        }
    }

    fn ready(&mut self, body: &backend::ReadyForQueryBody) {
        self.status = match body.status() {
            b'T' => TxStatus::InTransaction,
            b'E' => TxStatus::Failed,
            _ => TxStatus::Idle,
        };
    }

    /// Runs one statement with the extended protocol (Parse/Bind/Describe/Execute/Sync in one
    /// round trip). `param_types` may hold 0 for "let the server infer". `result_formats`
    /// follows Bind's rules (empty: all text; one: all that; else per column).
    pub async fn execute(
        &mut self,
        sql: &str,
        param_types: &[u32],
        params: &[BoundParam],
        result_formats: &[i16],
    ) -> Result<StatementResult, WireError> {
        // Deferred statements go first in the same round, without a Sync of their own: when
        // one fails, PostgreSQL skips everything up to the Sync, so the statement never runs
        // without them.
        for statement in std::mem::take(&mut self.prelude) {
            let address = self.address.clone();
            let io = |source| WireError::Io {
                address: address.clone(),
                source,
            };
            frontend::parse("", &statement, [], &mut self.write_buf).map_err(io)?;
            if frontend::bind(
                "",
                "",
                std::iter::empty::<i16>(),
                std::iter::empty::<&BoundParam>(),
                |_, _| Ok(IsNull::Yes),
                std::iter::empty::<i16>(),
                &mut self.write_buf,
            )
            .is_err()
            {
                return Err(self.protocol("could not encode Bind"));
            }
            frontend::execute("", 0, &mut self.write_buf).map_err(io)?;
        }
        self.queue_bound("", Some((sql, param_types)), params, result_formats)?;
        self.flush().await?;
        self.collect_one().await
    }

    /// Defers `statements` (one statement each, e.g. `BEGIN` and the savepoints of a
    /// transaction block a connection joins) to go out with the next request instead of
    /// costing a round trip of their own: [`Self::execute`] sends them ahead of its statement
    /// in the same Sync (the statement is skipped when one fails), [`Self::simple_query`]
    /// ahead of its text in the same Query; any other request runs them first as a Query of
    /// their own. Their results are not returned; their errors are the request's.
    pub fn defer(&mut self, statements: impl IntoIterator<Item = String>) {
        self.prelude.extend(statements);
    }

    /// Whether statements are deferred to go out with the next request ([`Self::defer`]).
    pub fn has_deferred(&self) -> bool {
        !self.prelude.is_empty()
    }

    /// Forgets deferred statements that never went out (a connection handed back idle).
    pub fn forget_deferred(&mut self) {
        self.prelude.clear();
    }

    /// Runs deferred statements now, as a Query of their own (requests that cannot carry
    /// them).
    async fn send_prelude(&mut self) -> Result<(), WireError> {
        if self.prelude.is_empty() {
            return Ok(());
        }
        let sql = std::mem::take(&mut self.prelude).join("; ");
        self.queue_query(&sql)?;
        self.flush().await?;
        self.read_query_results().await.map(drop)
    }

    /// Buffers one extended-protocol round without sending it: Parse of `statement` (only
    /// when `parse` gives its SQL and parameter types; "" is the unnamed statement), Bind of
    /// `params` to the unnamed portal, Describe, Execute and Sync. Its answer is read with
    /// [`Self::read_query_results`]. A named statement stays prepared on the connection for
    /// later rounds that leave `parse` out (PostgreSQL keeps its plan and re-plans it when a
    /// table it reads changes).
    pub fn queue_bound(
        &mut self,
        statement: &str,
        parse: Option<(&str, &[u32])>,
        params: &[BoundParam],
        result_formats: &[i16],
    ) -> Result<(), WireError> {
        let address = self.address.clone();
        let io = |source| WireError::Io {
            address: address.clone(),
            source,
        };
        let mark = self.write_buf.len();
        if let Some((sql, param_types)) = parse {
            frontend::parse(
                statement,
                sql,
                param_types.iter().copied(),
                &mut self.write_buf,
            )
            .map_err(io)?;
        }
        let bind = frontend::bind(
            "",
            statement,
            params.iter().map(|p| p.format),
            params.iter(),
            |p, buf| match &p.value {
                Some(v) => {
                    buf.extend_from_slice(v);
                    Ok(IsNull::No)
                }
                None => Ok(IsNull::Yes),
            },
            result_formats.iter().copied(),
            &mut self.write_buf,
        );
        if bind.is_err() {
            self.write_buf.truncate(mark);
            return Err(self.protocol("could not encode Bind"));
        }
        frontend::describe(b'P', "", &mut self.write_buf).map_err(io)?;
        frontend::execute("", 0, &mut self.write_buf).map_err(io)?;
        frontend::sync(&mut self.write_buf);
        Ok(())
    }

    /// Buffers Close of the prepared statement `statement` without a Sync: it goes out with
    /// the next round queued after it, whose answer takes its CloseComplete along. Closing a
    /// name that is not prepared is no error.
    pub fn queue_close_statement(&mut self, statement: &str) -> Result<(), WireError> {
        let address = self.address.clone();
        frontend::close(b'S', statement, &mut self.write_buf)
            .map_err(|source| WireError::Io { address, source })
    }

    /// Describes a statement without running it: parameter types and result columns, or
    /// `None` for a statement that returns no rows (NoData; a zero-column SELECT has
    /// `Some` of no columns).
    pub async fn describe(
        &mut self,
        sql: &str,
        param_types: &[u32],
    ) -> Result<(Vec<u32>, Option<Vec<FieldDescription>>), WireError> {
        self.send_prelude().await?;
        let address = self.address.clone();
        let io = |source| WireError::Io {
            address: address.clone(),
            source,
        };
        frontend::parse("", sql, param_types.iter().copied(), &mut self.write_buf).map_err(io)?;
        frontend::describe(b'S', "", &mut self.write_buf).map_err(io)?;
        frontend::sync(&mut self.write_buf);
        self.flush().await?;
        self.read_description().await
    }

    /// Describes the open portal `name` (a cursor DECLAREd on this connection): its columns,
    /// or `None` when it returns no rows (NoData). Errors: the server's (34000 when there is
    /// no such portal).
    pub async fn describe_portal(
        &mut self,
        name: &str,
    ) -> Result<Option<Vec<FieldDescription>>, WireError> {
        self.send_prelude().await?;
        let address = self.address.clone();
        frontend::describe(b'P', name, &mut self.write_buf)
            .map_err(|source| WireError::Io { address, source })?;
        frontend::sync(&mut self.write_buf);
        self.flush().await?;
        Ok(self.read_description().await?.1)
    }

    /// Reads the answer to a Describe and its Sync: parameter types (statements only) and
    /// columns (`None` for NoData), or the server's error.
    async fn read_description(
        &mut self,
    ) -> Result<(Vec<u32>, Option<Vec<FieldDescription>>), WireError> {
        let address = self.address.clone();
        let io = |source| WireError::Io {
            address: address.clone(),
            source,
        };
        let mut error = None;
        let mut types = Vec::new();
        let mut fields = None;
        loop {
            match self.read_message().await? {
                Message::ParseComplete | Message::NoData | Message::NoticeResponse(_) => {}
                Message::ParameterStatus(_) => {}
                Message::ParameterDescription(body) => {
                    use fallible_iterator::FallibleIterator;
                    types = body.parameters().collect().map_err(io)?;
                }
                Message::RowDescription(body) => fields = Some(fields_of(&body).map_err(io)?),
                Message::ErrorResponse(body) => error = Some(server_error(&body)),
                Message::ReadyForQuery(body) => {
                    self.ready(&body);
                    return match error {
                        Some(e) => Err(WireError::Server(Box::new(e))),
                        None => Ok((types, fields)),
                    };
                }
                _ => return Err(self.protocol("unexpected message answering Describe")),
            }
        }
    }

    /// The first column of the first row of `sql`'s first result, as text (lossy UTF-8);
    /// `None` when there is no row or the value is NULL. Errors: the server's or the
    /// connection's.
    pub async fn query_value(&mut self, sql: &str) -> Result<Option<String>, WireError> {
        let results = self.simple_query(sql).await?;
        Ok(results
            .first()
            .and_then(|r| r.rows.first())
            .and_then(|row| row_values(row).first().copied().flatten())
            .map(|v| String::from_utf8_lossy(v).into_owned()))
    }

    /// Runs SQL with the simple protocol (may hold several statements); returns one result
    /// per statement, or the first error.
    pub async fn simple_query(&mut self, sql: &str) -> Result<Vec<StatementResult>, WireError> {
        if self.prelude.is_empty() {
            self.queue_query(sql)?;
            self.flush().await?;
            return self.read_query_results().await;
        }
        // Deferred statements lead the same Query: an error in one ends the Query there.
        let ahead = self.prelude.len();
        let mut text = std::mem::take(&mut self.prelude).join("; ");
        text.push_str(";\n");
        text.push_str(sql);
        self.queue_query(&text)?;
        self.flush().await?;
        let mut results = self.read_query_results().await?;
        results.drain(..ahead.min(results.len()));
        Ok(results)
    }

    /// Buffers a Query message without sending it (pipelining: several queued queries go out
    /// in one write, see [`Self::send_queued`]).
    pub fn queue_query(&mut self, sql: &str) -> Result<(), WireError> {
        let address = self.address.clone();
        frontend::query(sql, &mut self.write_buf)
            .map_err(|source| WireError::Io { address, source })
    }

    /// Sends everything queued.
    pub async fn send_queued(&mut self) -> Result<(), WireError> {
        self.flush().await
    }

    /// Reads the answer to one Query message (one result per statement) or to one extended
    /// Parse/Bind/Describe/Execute/Sync round, up to ReadyForQuery; or the error.
    pub async fn read_query_results(&mut self) -> Result<Vec<StatementResult>, WireError> {
        let mut results = Vec::new();
        let mut current = StatementResult::default();
        let mut error = None;
        loop {
            match self.read_message().await? {
                Message::RowDescription(body) => {
                    current.fields = fields_of(&body).map_err(|source| WireError::Io {
                        address: self.address.clone(),
                        source,
                    })?;
                    current.described = true;
                }
                Message::DataRow(body) => current.rows.push(body.buffer_bytes().clone()),
                Message::CommandComplete(body) => {
                    current.tag = body.tag().unwrap_or_default().to_string();
                    results.push(std::mem::take(&mut current));
                }
                Message::EmptyQueryResponse => results.push(std::mem::take(&mut current)),
                Message::ErrorResponse(body) => error = Some(server_error(&body)),
                // Extended-protocol acknowledgements carry nothing to return.
                Message::ParseComplete
                | Message::BindComplete
                | Message::CloseComplete
                | Message::NoData
                | Message::PortalSuspended
                | Message::NoticeResponse(_)
                | Message::ParameterStatus(_) => {}
                Message::CopyInResponse(_) => {
                    frontend::copy_fail("COPY FROM STDIN is not allowed here", &mut self.write_buf)
                        .map_err(|source| WireError::Io {
                            address: self.address.clone(),
                            source,
                        })?;
                    self.flush().await?;
                }
                Message::CopyOutResponse(_) | Message::CopyData(_) | Message::CopyDone => {}
                Message::ReadyForQuery(body) => {
                    self.ready(&body);
                    return match error {
                        Some(e) => Err(WireError::Server(Box::new(e))),
                        None => Ok(results),
                    };
                }
                _ => return Err(self.protocol("unexpected message answering Query")),
            }
        }
    }

    /// Reads the answer to Parse/Bind/Describe/Execute/Sync: the statement's result.
    async fn collect_one(&mut self) -> Result<StatementResult, WireError> {
        let mut results = self.read_query_results().await?;
        Ok(results.pop().unwrap_or_default())
    }

    /// Starts `COPY ... FROM STDIN` (simple protocol); afterwards call [`Self::copy_data`] and
    /// [`Self::copy_done`].
    pub async fn copy_in_start(&mut self, sql: &str) -> Result<(), WireError> {
        self.send_prelude().await?;
        self.copy_start(sql, true).await
    }

    /// Sends a COPY statement and waits for the server to enter COPY IN (`copy_in`) or COPY
    /// OUT mode; the server's error if it refuses.
    async fn copy_start(&mut self, sql: &str, copy_in: bool) -> Result<(), WireError> {
        let address = self.address.clone();
        frontend::query(sql, &mut self.write_buf)
            .map_err(|source| WireError::Io { address, source })?;
        self.flush().await?;
        let mut error = None;
        loop {
            match self.read_message().await? {
                Message::CopyInResponse(_) if copy_in => return Ok(()),
                Message::CopyOutResponse(_) if !copy_in => return Ok(()),
                Message::NoticeResponse(_) | Message::ParameterStatus(_) => {}
                Message::ErrorResponse(body) => error = Some(server_error(&body)),
                Message::ReadyForQuery(body) => {
                    self.ready(&body);
                    return Err(match error {
                        Some(e) => WireError::Server(Box::new(e)),
                        None => self.protocol("COPY did not start"),
                    });
                }
                _ => return Err(self.protocol("unexpected message starting COPY")),
            }
        }
    }

    /// Sends a statement (simple protocol) that may be a COPY to or from the client, and
    /// reads until the server either enters COPY mode or has finished the statement.
    pub async fn copy_begin(&mut self, sql: &str) -> Result<CopyBegin, WireError> {
        self.send_prelude().await?;
        self.queue_query(sql)?;
        self.flush().await?;
        let mut results = Vec::new();
        let mut current = StatementResult::default();
        let mut error = None;
        loop {
            match self.read_message().await? {
                Message::CopyInResponse(body) => {
                    return Ok(CopyBegin::In {
                        format: body.format() as i8,
                        columns: copy_columns(body.column_formats()),
                    })
                }
                Message::CopyOutResponse(body) => {
                    return Ok(CopyBegin::Out {
                        format: body.format() as i8,
                        columns: copy_columns(body.column_formats()),
                    })
                }
                Message::RowDescription(body) => {
                    current.fields = fields_of(&body).map_err(|source| WireError::Io {
                        address: self.address.clone(),
                        source,
                    })?;
                    current.described = true;
                }
                Message::DataRow(body) => current.rows.push(body.buffer_bytes().clone()),
                Message::CommandComplete(body) => {
                    current.tag = body.tag().unwrap_or_default().to_string();
                    results.push(std::mem::take(&mut current));
                }
                Message::EmptyQueryResponse => results.push(std::mem::take(&mut current)),
                Message::ErrorResponse(body) => error = Some(server_error(&body)),
                Message::ReadyForQuery(body) => {
                    self.ready(&body);
                    return match error {
                        Some(e) => Err(WireError::Server(Box::new(e))),
                        None => Ok(CopyBegin::Done(results)),
                    };
                }
                _ => return Err(self.protocol("unexpected message answering COPY")),
            }
        }
    }

    /// Sends COPY data (buffered; flushed every 256 KiB).
    pub async fn copy_data(&mut self, data: &[u8]) -> Result<(), WireError> {
        let address = self.address.clone();
        let msg =
            frontend::CopyData::new(data).map_err(|source| WireError::Io { address, source })?;
        msg.write(&mut self.write_buf);
        if self.write_buf.len() > 256 * 1024 {
            self.flush().await?;
        }
        Ok(())
    }

    /// Ends COPY; returns the row count from the `COPY n` tag.
    pub async fn copy_done(&mut self) -> Result<u64, WireError> {
        frontend::copy_done(&mut self.write_buf);
        self.flush().await?;
        let mut error = None;
        let mut count = 0;
        loop {
            match self.read_message().await? {
                Message::CommandComplete(body) => {
                    count = body
                        .tag()
                        .ok()
                        .and_then(|t| t.rsplit(' ').next().and_then(|n| n.parse().ok()))
                        .unwrap_or(0)
                }
                Message::NoticeResponse(_) | Message::ParameterStatus(_) => {}
                Message::ErrorResponse(body) => error = Some(server_error(&body)),
                Message::ReadyForQuery(body) => {
                    self.ready(&body);
                    return match error {
                        Some(e) => Err(WireError::Server(Box::new(e))),
                        None => Ok(count),
                    };
                }
                _ => return Err(self.protocol("unexpected message ending COPY")),
            }
        }
    }

    /// Sends one query (simple protocol) whose rows are then read one by one with
    /// [`Self::query_next_row`]; returns its columns (empty for a statement without rows,
    /// whose answer has then been read completely).
    pub async fn query_start(&mut self, sql: &str) -> Result<Vec<FieldDescription>, WireError> {
        self.send_prelude().await?;
        self.queue_query(sql)?;
        self.flush().await?;
        self.streaming = true;
        let mut error = None;
        loop {
            match self.read_message().await? {
                Message::RowDescription(body) => {
                    return fields_of(&body).map_err(|source| WireError::Io {
                        address: self.address.clone(),
                        source,
                    });
                }
                Message::ErrorResponse(body) => error = Some(server_error(&body)),
                Message::ReadyForQuery(body) => {
                    self.ready(&body);
                    self.streaming = false;
                    return match error {
                        Some(e) => Err(WireError::Server(Box::new(e))),
                        None => Ok(Vec::new()),
                    };
                }
                Message::CommandComplete(_)
                | Message::EmptyQueryResponse
                | Message::NoticeResponse(_)
                | Message::ParameterStatus(_) => {}
                _ => return Err(self.protocol("unexpected message starting a query")),
            }
        }
    }

    /// The next DataRow body of a query begun with [`Self::query_start`], or `None` once the
    /// server is ready again.
    pub async fn query_next_row(&mut self) -> Result<Option<Bytes>, WireError> {
        let mut error = None;
        loop {
            match self.read_message().await? {
                Message::DataRow(body) if error.is_none() => {
                    return Ok(Some(body.buffer_bytes().clone()));
                }
                Message::ErrorResponse(body) => error = Some(server_error(&body)),
                Message::ReadyForQuery(body) => {
                    self.ready(&body);
                    self.streaming = false;
                    return match error {
                        Some(e) => Err(WireError::Server(Box::new(e))),
                        None => Ok(None),
                    };
                }
                Message::DataRow(_)
                | Message::CommandComplete(_)
                | Message::NoticeResponse(_)
                | Message::ParameterStatus(_) => {}
                _ => return Err(self.protocol("unexpected message reading rows")),
            }
        }
    }

    /// Starts `COPY ... TO STDOUT` (simple protocol); then call [`Self::copy_out_next`] until
    /// it returns `None`.
    pub async fn copy_out_start(&mut self, sql: &str) -> Result<(), WireError> {
        self.send_prelude().await?;
        self.copy_start(sql, false).await
    }

    /// The next CopyData payload of a running `COPY ... TO STDOUT` (one row in text format),
    /// or `None` once the server has finished (after ReadyForQuery).
    pub async fn copy_out_next(&mut self) -> Result<Option<Bytes>, WireError> {
        let mut error = None;
        loop {
            match self.read_message().await? {
                Message::CopyData(body) if error.is_none() => {
                    return Ok(Some(body.into_bytes()));
                }
                Message::CopyData(_)
                | Message::CopyDone
                | Message::CommandComplete(_)
                | Message::NoticeResponse(_)
                | Message::ParameterStatus(_) => {}
                Message::ErrorResponse(body) => error = Some(server_error(&body)),
                Message::ReadyForQuery(body) => {
                    self.ready(&body);
                    return match error {
                        Some(e) => Err(WireError::Server(Box::new(e))),
                        None => Ok(None),
                    };
                }
                _ => return Err(self.protocol("unexpected message during COPY TO STDOUT")),
            }
        }
    }

    /// Aborts COPY with a message (the server rolls the COPY back).
    pub async fn copy_fail(&mut self, message: &str) -> Result<(), WireError> {
        let address = self.address.clone();
        frontend::copy_fail(message, &mut self.write_buf)
            .map_err(|source| WireError::Io { address, source })?;
        self.flush().await?;
        loop {
            if let Message::ReadyForQuery(body) = self.read_message().await? {
                self.ready(&body);
                return Ok(());
            }
        }
    }
}

/// Splits a DataRow body into its column values (`None` for NULL).
pub fn row_values(row: &[u8]) -> Vec<Option<&[u8]>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 4 <= row.len() {
        let len = i32::from_be_bytes([row[i], row[i + 1], row[i + 2], row[i + 3]]);
        i += 4;
        if len < 0 {
            out.push(None);
        } else {
            let end = (i + len as usize).min(row.len());
            out.push(Some(&row[i..end]));
            i = end;
        }
    }
    out
}

/// Builds a DataRow body from column values.
pub fn encode_row<'a>(values: impl IntoIterator<Item = Option<&'a [u8]>>) -> Bytes {
    let mut buf = BytesMut::new();
    for v in values {
        match v {
            Some(b) => {
                buf.extend_from_slice(&(b.len() as i32).to_be_bytes());
                buf.extend_from_slice(b);
            }
            None => buf.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    buf.freeze()
}

fn copy_columns(formats: backend::ColumnFormats<'_>) -> usize {
    use fallible_iterator::FallibleIterator;
    formats.count().unwrap_or(0)
}
