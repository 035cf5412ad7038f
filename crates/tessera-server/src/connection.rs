//! One client connection's message loop.
//!
//! pgwire's own loop (`pgwire::tokio::process_socket`) ends a connection when a message does
//! not decode, and pgwire does not know the FunctionCall message (`F`, PostgreSQL's fast-path
//! interface) that libpq's large-object functions and psql's `\lo_*` commands send. This loop
//! is pgwire's — TLS negotiation, startup timeout, dispatch through pgwire's
//! `process_message` — with two differences: a FunctionCall is taken off the read buffer
//! here and relayed to the session's coordinator connection
//! ([`tessera_executor::Executor::function_call`]), and any other unknown message ends the
//! connection with PostgreSQL's FATAL 08P01 instead of silently.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Buf;
use futures::{SinkExt, StreamExt};
use pgwire::api::{ClientInfo, PgWireConnectionState};
use pgwire::error::{ErrorInfo, PgWireError};
use pgwire::messages::copy::CopyFail;
use pgwire::messages::response::ReadyForQuery;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::tokio::server::{
    negotiate_tls, process_error, process_message, MaybeTls, PgWireMessageServerCodec,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, FramedParts};

use crate::convert::exec_error;
use crate::handlers::{
    send_side_messages, session_of, transaction_status, Backend, Prepared, SessionState,
};

type ClientSocket = Framed<Coalescing, PgWireMessageServerCodec<Prepared>>;

/// Most bytes held back while replies to an extended-protocol batch accumulate; a larger
/// reply (many rows) goes out as it is written.
const HOLD_LIMIT: usize = 64 * 1024;

/// The client's stream, holding back what is written while the messages of an
/// extended-protocol batch (Parse, Bind, Describe, Execute, Close) are answered, until the
/// batch's Sync or Flush: PostgreSQL's backend flushes only then, and pgwire's handlers
/// flush after every reply (ParseComplete, BindComplete, CommandComplete, ...), which cost a
/// `sendto` and a TCP segment each — five per `pgbench -M prepared` statement instead of one.
pub(crate) struct Coalescing {
    inner: MaybeTls,
    held: Vec<u8>,
    hold: bool,
}

impl Coalescing {
    fn new(inner: MaybeTls) -> Coalescing {
        Coalescing {
            inner,
            held: Vec::new(),
            hold: false,
        }
    }

    /// Writes out what is held back.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.held.is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.held))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.held.drain(..n);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for Coalescing {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Coalescing {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        // Also after the hold ends, while bytes are still held: they go out together.
        if (this.hold || !this.held.is_empty()) && this.held.len() + buf.len() <= HOLD_LIMIT {
            this.held.extend_from_slice(buf);
            return Poll::Ready(Ok(buf.len()));
        }
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.hold {
            return Poll::Ready(Ok(()));
        }
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// Whether the reply to `message` may wait for the batch's Sync or Flush.
fn holds_reply(message: &PgWireFrontendMessage) -> bool {
    matches!(
        message,
        PgWireFrontendMessage::Parse(_)
            | PgWireFrontendMessage::Bind(_)
            | PgWireFrontendMessage::Describe(_)
            | PgWireFrontendMessage::Execute(_)
            | PgWireFrontendMessage::Close(_)
    )
}

/// Time a client has to finish startup and authentication (PostgreSQL's
/// `authentication_timeout` default, and pgwire's).
const STARTUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Message type byte of FunctionCall (protocol v3).
const FUNCTION_CALL: u8 = b'F';

/// Largest FunctionCall accepted, as PostgreSQL's `PQ_LARGE_MESSAGE_LIMIT` (1 GB - 1).
const MAX_FUNCTION_CALL: usize = 0x3fff_ffff;

/// Serves one client connection until it ends.
pub async fn process_socket(
    tcp: TcpStream,
    tls: Option<pgwire::tokio::TlsAcceptor>,
    backend: Arc<Backend>,
) -> io::Result<()> {
    let timeout = tokio::time::sleep(STARTUP_TIMEOUT);
    tokio::pin!(timeout);
    let socket = tokio::select! {
        _ = &mut timeout => return Ok(()),
        socket = negotiate_tls::<Prepared>(tcp, tls) => socket?,
    };
    // A client that asked for TLS directly from a server without a certificate.
    let Some(socket) = socket else {
        return Ok(());
    };
    let parts = socket.into_parts();
    let mut coalescing = FramedParts::new(Coalescing::new(parts.io), parts.codec);
    coalescing.read_buf = parts.read_buf;
    coalescing.write_buf = parts.write_buf;
    let mut socket = Framed::from_parts(coalescing);
    loop {
        let starting = matches!(
            socket.state(),
            PgWireConnectionState::AwaitingStartup
                | PgWireConnectionState::AuthenticationInProgress
        );
        let message = if starting {
            tokio::select! {
                _ = &mut timeout => None,
                m = socket.next() => m,
            }
        } else {
            socket.next().await
        };
        match message {
            None | Some(Ok(PgWireFrontendMessage::Terminate(_))) => return Ok(()),
            Some(Ok(PgWireFrontendMessage::CopyDone(done)))
                if matches!(socket.state(), PgWireConnectionState::CopyInProgress(false)) =>
            {
                copy_done(&mut socket, &backend, done).await?
            }
            Some(Ok(message)) => {
                let hold = holds_reply(&message);
                socket.get_mut().hold = hold;
                dispatch(&mut socket, &backend, message).await?;
                // A COPY's start must reach the client, which waits for it to send data.
                if !hold || matches!(socket.state(), PgWireConnectionState::CopyInProgress(_)) {
                    socket.get_mut().hold = false;
                    socket.flush().await?;
                }
            }
            Some(Err(PgWireError::InvalidMessageType(FUNCTION_CALL))) if !starting => {
                let (rebuilt, body) = take_function_call(socket).await?;
                socket = rebuilt;
                match socket.state() {
                    // After an error in an extended-protocol batch, everything up to Sync
                    // is discarded, as PostgreSQL does.
                    PgWireConnectionState::AwaitingSync => {}
                    PgWireConnectionState::CopyInProgress(_) => {
                        let fail = CopyFail::new(format!(
                            "unexpected message type 0x{FUNCTION_CALL:02X} during COPY from stdin"
                        ));
                        dispatch(&mut socket, &backend, PgWireFrontendMessage::CopyFail(fail))
                            .await?;
                    }
                    _ => function_call(&mut socket, &body).await?,
                }
            }
            Some(Err(e)) => {
                let detail = match e {
                    PgWireError::InvalidMessageType(t) => {
                        format!("invalid frontend message type {t}")
                    }
                    other => format!("invalid frontend message: {other}"),
                };
                let info = ErrorInfo::new("FATAL".into(), "08P01".into(), detail);
                socket
                    .send(PgWireBackendMessage::ErrorResponse(info.into()))
                    .await?;
                return Ok(());
            }
        }
    }
}

/// Hands a decoded message to pgwire's dispatch (startup, simple and extended query, COPY,
/// cancel), and its error to pgwire's error reply.
async fn dispatch(
    socket: &mut ClientSocket,
    backend: &Arc<Backend>,
    message: PgWireFrontendMessage,
) -> io::Result<()> {
    let extended = match socket.state() {
        PgWireConnectionState::CopyInProgress(extended) => extended,
        _ => message.is_extended_query(),
    };
    let handled = process_message(
        message,
        socket,
        backend.clone(),
        backend.clone(),
        backend.clone(),
        backend.clone(),
        backend.clone(),
    )
    .await;
    match handled {
        Ok(()) => Ok(()),
        Err(e) => process_error(socket, e, extended).await,
    }
}

/// The end of a simple Query's COPY FROM STDIN. The rest of the Query runs then, and may
/// begin the next COPY FROM STDIN (`COPY a FROM STDIN; COPY b FROM STDIN`): ReadyForQuery
/// comes only when the Query is over, which pgwire's dispatch, sending it after every COPY,
/// does not allow for.
async fn copy_done(
    socket: &mut ClientSocket,
    backend: &Backend,
    done: pgwire::messages::copy::CopyDone,
) -> io::Result<()> {
    use pgwire::api::copy::CopyHandler;
    // Out of COPY: a COPY begun by the rest of the Query puts the state back.
    socket.set_state(PgWireConnectionState::QueryInProgress);
    let result = backend.on_copy_done(socket, done).await;
    if matches!(result, Ok(()))
        && matches!(socket.state(), PgWireConnectionState::CopyInProgress(_))
    {
        return socket.flush().await;
    }
    socket.set_state(PgWireConnectionState::ReadyForQuery);
    match result {
        Ok(()) => {
            let status = socket.transaction_status();
            socket
                .send(PgWireBackendMessage::ReadyForQuery(ReadyForQuery::new(
                    status,
                )))
                .await
        }
        Err(e) => process_error(socket, e, false).await,
    }
}

/// Takes the FunctionCall message at the front of the socket's read buffer (reading the rest
/// of it from the client when it has not all arrived) and returns its body, after the length
/// word. The socket is rebuilt from its parts: pgwire's decoder failed on the message, and a
/// `Framed` that saw a decode error would end the stream.
async fn take_function_call(socket: ClientSocket) -> io::Result<(ClientSocket, bytes::Bytes)> {
    let mut parts = socket.into_parts();
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    loop {
        let buf = &parts.read_buf;
        if buf.len() >= 5 {
            let len = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
            let len = usize::try_from(len)
                .ok()
                .filter(|l| (4..=MAX_FUNCTION_CALL).contains(l))
                .ok_or_else(|| invalid("invalid FunctionCall message length"))?;
            if buf.len() > len {
                let mut message = parts.read_buf.split_to(len + 1);
                message.advance(5);
                return Ok((Framed::from_parts(parts), message.freeze()));
            }
        }
        if parts.io.read_buf(&mut parts.read_buf).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "client closed the connection in a FunctionCall message",
            ));
        }
    }
}

/// Runs a FunctionCall for the session and answers as PostgreSQL does: the notices it
/// raised, then FunctionCallResponse or ErrorResponse, then ReadyForQuery.
async fn function_call(socket: &mut ClientSocket, body: &[u8]) -> io::Result<()> {
    let shared = match session_of(socket) {
        Ok(s) => s,
        Err(e) => return process_error(socket, e, false).await,
    };
    let mut state = shared.lock().await;
    let SessionState { session, db, .. } = &mut *state;
    let result = db.executor.function_call(session, body).await;
    session.release_gate_outside_block();
    let sent = send_side_messages(socket, session).await;
    if let Err(e) = sent {
        return process_error(socket, e, false).await;
    }
    match result {
        Ok(response) => {
            // pgwire has no FunctionCallResponse message: the server's goes out as it came,
            // ahead of the ReadyForQuery below.
            socket.flush().await?;
            socket.write_buffer_mut().extend_from_slice(&response);
        }
        Err(e) => {
            socket
                .feed(PgWireBackendMessage::ErrorResponse(exec_error(e).into()))
                .await?;
        }
    }
    let status = transaction_status(session);
    socket.set_transaction_status(status);
    socket
        .send(PgWireBackendMessage::ReadyForQuery(ReadyForQuery::new(
            status,
        )))
        .await
}
