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
use std::sync::Arc;

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
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

use crate::convert::exec_error;
use crate::handlers::{
    send_side_messages, session_of, transaction_status, Backend, Prepared, SessionState,
};

type ClientSocket = Framed<MaybeTls, PgWireMessageServerCodec<Prepared>>;

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
    let Some(mut socket) = socket else {
        return Ok(());
    };
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
            Some(Ok(message)) => dispatch(&mut socket, &backend, message).await?,
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
