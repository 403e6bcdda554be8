//! The versioned binary form of a [`Message`] and an [`Envelope`], big-endian like Kafka.
//!
//! ```text
//! message frame:
//!   version          u16   FORMAT_VERSION (2); any other is refused
//!   api key          i16   Kafka's number (ApiKey::code)
//!   kind             u8    0 = request, 1 = response
//!   correlation id   u64
//!   body                   the request or response, field by field
//!                          (replica_codec.rs, group_codec.rs; primitives in wire.rs)
//! envelope:
//!   from             u32   sending broker
//!   to               u32   receiving broker
//!   message frame
//! ```
//!
//! A frame has no length prefix: the transport carries whole frames (a stream transport
//! adds its own). Decoding reads the whole input and refuses trailing bytes. Every value
//! has one encoding, so bytes that decode re-encode to the same bytes. Decoding never
//! panics; faults are [`Error::InvalidFrame`] with the byte position, frames above
//! [`MAX_FRAME_BYTES`] are [`Error::FrameTooLarge`].

use crate::error::{Error, Result};
use crate::replication::messages::{
    FetchRequest, FetchResponse, MetadataRequest, MetadataResponse, OffsetsForLeaderEpochRequest,
    OffsetsForLeaderEpochResponse, ProduceRequest, ProduceResponse,
};

use super::Envelope;
use super::group_codec::{read_result, write_result};
use super::message::{ApiKey, GroupRequest, GroupResponse, Message, Request, Response};
use super::wire::{Reader, Wire, Writer};

/// The frame format this build writes and reads. Version 2 added two fields to a fetched
/// partition (the echoed fetch offset, and whether the leader's log may hold offset
/// gaps); version 1 frames are refused.
pub const FORMAT_VERSION: u16 = 2;

/// The largest frame encoded or decoded: 100 MiB, Kafka's `socket.request.max.bytes`.
pub const MAX_FRAME_BYTES: usize = 100 * 1024 * 1024;

/// Bytes of a message frame before the body.
pub const MESSAGE_HEADER_BYTES: usize = 2 + 2 + 1 + 8;

/// Bytes of an envelope before its message frame.
pub const ENVELOPE_HEADER_BYTES: usize = 4 + 4;

const KIND_REQUEST: u8 = 0;
const KIND_RESPONSE: u8 = 1;

/// Encodes `message` as one frame; [`Error::FrameTooLarge`] past [`MAX_FRAME_BYTES`].
///
/// ```
/// use streamlog::replication::messages::MetadataRequest;
/// use streamlog::replication::transport::{Message, Request, decode, encode};
/// # fn main() -> streamlog::Result<()> {
/// let message = Message::Request {
///     correlation_id: 7,
///     request: Request::Metadata(MetadataRequest { topics: None }),
/// };
/// let frame = encode(&message)?;
/// assert_eq!(&frame[..2], &[0, 2]); // format version 2
/// assert_eq!(decode(&frame)?, message);
/// # Ok(()) }
/// ```
pub fn encode(message: &Message) -> Result<Vec<u8>> {
    let mut w = Writer::default();
    write_message(&mut w, message);
    finish(w)
}

/// Decodes one message frame, the whole of `bytes`.
pub fn decode(bytes: &[u8]) -> Result<Message> {
    check_size(bytes.len())?;
    let mut r = Reader::new(bytes);
    let message = read_message(&mut r)?;
    r.finish()?;
    Ok(message)
}

/// Encodes `envelope`: the two broker ids, then the message frame.
pub fn encode_envelope(envelope: &Envelope) -> Result<Vec<u8>> {
    let mut w = Writer::default();
    w.u32(envelope.from);
    w.u32(envelope.to);
    write_message(&mut w, &envelope.message);
    finish(w)
}

/// Decodes one envelope, the whole of `bytes`.
pub fn decode_envelope(bytes: &[u8]) -> Result<Envelope> {
    check_size(bytes.len())?;
    let mut r = Reader::new(bytes);
    let from = r.u32()?;
    let to = r.u32()?;
    let message = read_message(&mut r)?;
    r.finish()?;
    Ok(Envelope { from, to, message })
}

fn check_size(size: usize) -> Result<()> {
    if size > MAX_FRAME_BYTES {
        return Err(Error::FrameTooLarge {
            size,
            max: MAX_FRAME_BYTES,
        });
    }
    Ok(())
}

fn finish(w: Writer) -> Result<Vec<u8>> {
    check_size(w.len())?;
    Ok(w.into_bytes())
}

fn write_message(w: &mut Writer, message: &Message) {
    w.u16(FORMAT_VERSION);
    w.i16(message.api_key().code());
    match message {
        Message::Request {
            correlation_id,
            request,
        } => {
            w.u8(KIND_REQUEST);
            w.u64(*correlation_id);
            write_request(w, request);
        }
        Message::Response {
            correlation_id,
            response,
        } => {
            w.u8(KIND_RESPONSE);
            w.u64(*correlation_id);
            write_response(w, response);
        }
    }
}

fn read_message(r: &mut Reader<'_>) -> Result<Message> {
    let position = r.position();
    let version = r.u16()?;
    if version != FORMAT_VERSION {
        return Err(Reader::error_at(
            position,
            format!(
                "unsupported frame format version {version} (this build reads version {FORMAT_VERSION})"
            ),
        ));
    }
    let position = r.position();
    let code = r.i16()?;
    let api_key = ApiKey::from_code(code)
        .ok_or_else(|| Reader::error_at(position, format!("unknown api key {code}")))?;
    let position = r.position();
    let kind = r.u8()?;
    let correlation_id = r.u64()?;
    match kind {
        KIND_REQUEST => Ok(Message::Request {
            correlation_id,
            request: read_request(r, api_key)?,
        }),
        KIND_RESPONSE => Ok(Message::Response {
            correlation_id,
            response: read_response(r, api_key)?,
        }),
        other => Err(Reader::error_at(
            position,
            format!("message kind must be 0 (request) or 1 (response), found {other}"),
        )),
    }
}

fn write_request(w: &mut Writer, request: &Request) {
    match request {
        Request::Produce(r) => r.write(w),
        Request::Fetch(r) => r.write(w),
        Request::OffsetsForLeaderEpoch(r) => r.write(w),
        Request::Metadata(r) => r.write(w),
        Request::Group(group) => match group {
            GroupRequest::JoinGroup(r) => r.write(w),
            GroupRequest::SyncGroup(r) => r.write(w),
            GroupRequest::Heartbeat(r) => r.write(w),
            GroupRequest::LeaveGroup(r) => r.write(w),
            GroupRequest::OffsetCommit(r) => r.write(w),
            GroupRequest::OffsetFetch(r) => r.write(w),
            GroupRequest::DeleteGroup(group_id) => w.string(group_id),
        },
    }
}

fn read_request(r: &mut Reader<'_>, api_key: ApiKey) -> Result<Request> {
    Ok(match api_key {
        ApiKey::Produce => Request::Produce(ProduceRequest::read(r)?),
        ApiKey::Fetch => Request::Fetch(FetchRequest::read(r)?),
        ApiKey::OffsetForLeaderEpoch => {
            Request::OffsetsForLeaderEpoch(OffsetsForLeaderEpochRequest::read(r)?)
        }
        ApiKey::Metadata => Request::Metadata(MetadataRequest::read(r)?),
        ApiKey::JoinGroup => Request::Group(GroupRequest::JoinGroup(Wire::read(r)?)),
        ApiKey::SyncGroup => Request::Group(GroupRequest::SyncGroup(Wire::read(r)?)),
        ApiKey::Heartbeat => Request::Group(GroupRequest::Heartbeat(Wire::read(r)?)),
        ApiKey::LeaveGroup => Request::Group(GroupRequest::LeaveGroup(Wire::read(r)?)),
        ApiKey::OffsetCommit => Request::Group(GroupRequest::OffsetCommit(Wire::read(r)?)),
        ApiKey::OffsetFetch => Request::Group(GroupRequest::OffsetFetch(Wire::read(r)?)),
        ApiKey::DeleteGroups => Request::Group(GroupRequest::DeleteGroup(r.string()?)),
    })
}

fn write_response(w: &mut Writer, response: &Response) {
    match response {
        Response::Produce(r) => r.write(w),
        Response::Fetch(r) => r.write(w),
        Response::OffsetsForLeaderEpoch(r) => r.write(w),
        Response::Metadata(r) => r.write(w),
        Response::Group(group) => match group {
            GroupResponse::JoinGroup(r) => r.write(w),
            GroupResponse::SyncGroup(r) => r.write(w),
            GroupResponse::Heartbeat(result) | GroupResponse::DeleteGroup(result) => {
                write_result(w, result);
            }
            GroupResponse::LeaveGroup(r) => r.write(w),
            GroupResponse::OffsetCommit(r) => r.write(w),
            GroupResponse::OffsetFetch(r) => r.write(w),
        },
    }
}

fn read_response(r: &mut Reader<'_>, api_key: ApiKey) -> Result<Response> {
    Ok(match api_key {
        ApiKey::Produce => Response::Produce(ProduceResponse::read(r)?),
        ApiKey::Fetch => Response::Fetch(FetchResponse::read(r)?),
        ApiKey::OffsetForLeaderEpoch => {
            Response::OffsetsForLeaderEpoch(OffsetsForLeaderEpochResponse::read(r)?)
        }
        ApiKey::Metadata => Response::Metadata(MetadataResponse::read(r)?),
        ApiKey::JoinGroup => Response::Group(GroupResponse::JoinGroup(Wire::read(r)?)),
        ApiKey::SyncGroup => Response::Group(GroupResponse::SyncGroup(Wire::read(r)?)),
        ApiKey::Heartbeat => Response::Group(GroupResponse::Heartbeat(read_result(r)?)),
        ApiKey::LeaveGroup => Response::Group(GroupResponse::LeaveGroup(Wire::read(r)?)),
        ApiKey::OffsetCommit => Response::Group(GroupResponse::OffsetCommit(Wire::read(r)?)),
        ApiKey::OffsetFetch => Response::Group(GroupResponse::OffsetFetch(Wire::read(r)?)),
        ApiKey::DeleteGroups => Response::Group(GroupResponse::DeleteGroup(read_result(r)?)),
    })
}
