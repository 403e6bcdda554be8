//! Codec tests: every message kind round-trips, bytes that decode re-encode to themselves,
//! and truncated, garbage or out-of-range input is an error, never a panic.

use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::error::Error;
use crate::group::GroupError;
use crate::group::coordinator::{
    GroupProtocol, HeartbeatRequest, JoinGroupRequest, JoinGroupResponse, JoinedMember,
    LeaveGroupRequest, LeaveGroupResponse, OffsetCommit, OffsetCommitRequest, OffsetCommitResponse,
    OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest, SyncGroupResponse,
};
use crate::group::offsets::OffsetAndMetadata;
use crate::replication::messages::*;

fn pk(topic: &str, partition: u32) -> PartitionKey {
    PartitionKey::new(topic, partition)
}

/// One request of every kind, some twice (all options empty, then all set).
fn requests() -> Vec<Request> {
    vec![
        Request::Produce(ProduceRequest {
            acks: Acks::All,
            timeout_ms: 30_000,
            partition: pk("orders", 3),
            records: Bytes::from_static(b"\0\0\0\0batch"),
        }),
        Request::Produce(ProduceRequest {
            acks: Acks::None,
            timeout_ms: 0,
            partition: pk("", 0),
            records: Bytes::new(),
        }),
        Request::Fetch(FetchRequest {
            replica_id: Some(2),
            max_bytes: 1 << 20,
            partitions: vec![
                FetchPartition {
                    partition: pk("orders", 0),
                    current_leader_epoch: Some(4),
                    fetch_offset: 1_000,
                    last_fetched_epoch: Some(3),
                    log_start_offset: Some(10),
                    max_bytes: 65_536,
                },
                FetchPartition {
                    partition: pk("päyments", 7),
                    current_leader_epoch: None,
                    fetch_offset: u64::MAX,
                    last_fetched_epoch: None,
                    log_start_offset: None,
                    max_bytes: 0,
                },
            ],
        }),
        Request::Fetch(FetchRequest {
            replica_id: None,
            max_bytes: 0,
            partitions: vec![],
        }),
        Request::OffsetsForLeaderEpoch(OffsetsForLeaderEpochRequest {
            replica_id: Some(1),
            partitions: vec![
                EpochQuery {
                    partition: pk("t", 1),
                    current_leader_epoch: Some(9),
                    leader_epoch: 8,
                },
                EpochQuery {
                    partition: pk("t", 2),
                    current_leader_epoch: None,
                    leader_epoch: -1,
                },
            ],
        }),
        Request::Metadata(MetadataRequest { topics: None }),
        Request::Metadata(MetadataRequest {
            topics: Some(vec!["a".into(), String::new()]),
        }),
        Request::Group(GroupRequest::JoinGroup(
            JoinGroupRequest::new(
                "g",
                "client",
                "consumer",
                vec![
                    GroupProtocol::new("range", vec![1, 2, 3]),
                    GroupProtocol::new("roundrobin", vec![]),
                ],
            )
            .member_id("client-1")
            .require_known_member_id(false),
        )),
        Request::Group(GroupRequest::SyncGroup(SyncGroupRequest::default())),
        Request::Group(GroupRequest::SyncGroup(SyncGroupRequest {
            group_id: "g".into(),
            member_id: "m1".into(),
            generation: 5,
            protocol_type: Some("consumer".into()),
            protocol_name: Some("range".into()),
            assignments: BTreeMap::from([("m1".into(), vec![9]), ("m2".into(), vec![])]),
        })),
        Request::Group(GroupRequest::Heartbeat(HeartbeatRequest {
            group_id: "g".into(),
            member_id: "m1".into(),
            generation: -1,
        })),
        Request::Group(GroupRequest::LeaveGroup(LeaveGroupRequest {
            group_id: "g".into(),
            member_ids: vec!["m1".into(), "m2".into()],
        })),
        Request::Group(GroupRequest::OffsetCommit(OffsetCommitRequest {
            group_id: "g".into(),
            member_id: String::new(),
            generation: -1,
            retention_ms: Some(86_400_000),
            offsets: vec![
                (
                    ("t".into(), 0),
                    OffsetCommit {
                        offset: 42,
                        leader_epoch: Some(1),
                        metadata: "meta".into(),
                    },
                ),
                (
                    ("t".into(), 1),
                    OffsetCommit {
                        offset: 0,
                        leader_epoch: None,
                        metadata: String::new(),
                    },
                ),
            ],
        })),
        Request::Group(GroupRequest::OffsetFetch(OffsetFetchRequest {
            group_id: "g".into(),
            partitions: None,
        })),
        Request::Group(GroupRequest::OffsetFetch(OffsetFetchRequest {
            group_id: "g".into(),
            partitions: Some(vec![("t".into(), 0), ("u".into(), 9)]),
        })),
        Request::Group(GroupRequest::DeleteGroup("old".into())),
    ]
}

/// One response of every kind, some twice.
fn responses() -> Vec<Response> {
    vec![
        Response::Produce(ProduceResponse {
            partition: pk("orders", 3),
            error: None,
            base_offset: Some(100),
            log_start_offset: 0,
        }),
        Response::Produce(ProduceResponse {
            partition: pk("orders", 3),
            error: Some(ReplicaError::NotLeaderOrFollower { leader: Some(3) }),
            base_offset: None,
            log_start_offset: 7,
        }),
        Response::Fetch(FetchResponse {
            partitions: vec![
                FetchedPartition {
                    partition: pk("orders", 0),
                    error: None,
                    fetch_offset: 80,
                    high_watermark: 90,
                    log_start_offset: 0,
                    log_may_hold_gaps: true,
                    diverging_epoch: None,
                    records: Bytes::from_static(b"records"),
                },
                FetchedPartition {
                    partition: pk("orders", 1),
                    error: Some(ReplicaError::NotLeaderOrFollower { leader: None }),
                    fetch_offset: u64::MAX,
                    high_watermark: 0,
                    log_start_offset: 0,
                    log_may_hold_gaps: false,
                    diverging_epoch: Some(EpochEndOffset {
                        epoch: 2,
                        end_offset: 50,
                    }),
                    records: Bytes::new(),
                },
            ],
        }),
        Response::OffsetsForLeaderEpoch(OffsetsForLeaderEpochResponse {
            partitions: vec![
                EpochAnswer {
                    partition: pk("t", 0),
                    error: None,
                    end: Some(EpochEndOffset {
                        epoch: 3,
                        end_offset: 77,
                    }),
                },
                EpochAnswer {
                    partition: pk("t", 1),
                    error: Some(ReplicaError::FencedLeaderEpoch),
                    end: None,
                },
            ],
        }),
        Response::Metadata(MetadataResponse::default()),
        Response::Metadata(MetadataResponse {
            brokers: vec![1, 2, 3],
            controller: Some(1),
            topics: vec![
                TopicMetadata {
                    name: "orders".into(),
                    error: None,
                    partitions: vec![PartitionMetadata {
                        partition: 0,
                        leader: Some(2),
                        leader_epoch: 4,
                        replicas: vec![1, 2, 3],
                        isr: vec![2, 3],
                    }],
                },
                TopicMetadata {
                    name: "missing".into(),
                    error: Some(ReplicaError::UnknownTopicOrPartition),
                    partitions: vec![PartitionMetadata {
                        partition: 1,
                        leader: None,
                        leader_epoch: -1,
                        replicas: vec![],
                        isr: vec![],
                    }],
                },
            ],
        }),
        Response::Group(GroupResponse::JoinGroup(JoinGroupResponse::default())),
        Response::Group(GroupResponse::JoinGroup(JoinGroupResponse {
            error: Some(GroupError::MemberIdRequired),
            member_id: "c-1".into(),
            generation: 3,
            protocol_type: Some("consumer".into()),
            protocol_name: Some("range".into()),
            leader_id: Some("c-1".into()),
            members: vec![JoinedMember {
                member_id: "c-1".into(),
                metadata: vec![0, 1],
            }],
        })),
        Response::Group(GroupResponse::SyncGroup(SyncGroupResponse {
            error: Some(GroupError::RebalanceInProgress),
            protocol_type: None,
            protocol_name: Some("range".into()),
            assignment: vec![5; 10],
        })),
        Response::Group(GroupResponse::Heartbeat(Ok(()))),
        Response::Group(GroupResponse::Heartbeat(Err(
            GroupError::UnknownServerError,
        ))),
        Response::Group(GroupResponse::LeaveGroup(LeaveGroupResponse {
            error: None,
            members: vec![
                ("m1".into(), Ok(())),
                ("m2".into(), Err(GroupError::UnknownMemberId)),
            ],
        })),
        Response::Group(GroupResponse::OffsetCommit(OffsetCommitResponse {
            partitions: vec![(("t".into(), 0), Err(GroupError::IllegalGeneration))],
        })),
        Response::Group(GroupResponse::OffsetFetch(OffsetFetchResponse {
            error: None,
            partitions: vec![
                (("t".into(), 0), None),
                (
                    ("t".into(), 1),
                    Some(OffsetAndMetadata {
                        offset: 5,
                        leader_epoch: Some(2),
                        metadata: "m".into(),
                        commit_timestamp: 1_700_000_000_000,
                        expire_timestamp: Some(-1),
                    }),
                ),
            ],
        })),
        Response::Group(GroupResponse::DeleteGroup(Err(GroupError::NonEmptyGroup))),
    ]
}

/// Every sample as a message, requests and responses.
fn messages() -> Vec<Message> {
    let requests = requests()
        .into_iter()
        .zip(0..)
        .map(|(request, correlation_id)| Message::Request {
            correlation_id,
            request,
        });
    let responses =
        responses()
            .into_iter()
            .zip(u64::MAX - 100..)
            .map(|(response, correlation_id)| Message::Response {
                correlation_id,
                response,
            });
    requests.chain(responses).collect()
}

fn invalid_frame_position(result: Result<Message, Error>) -> usize {
    match result {
        Err(Error::InvalidFrame { position, .. }) => position,
        other => panic!("expected InvalidFrame, got {other:?}"),
    }
}

#[test]
fn every_api_key_is_sampled_as_request_and_response() {
    for key in ApiKey::ALL {
        assert!(requests().iter().any(|r| r.api_key() == key), "{key:?}");
        assert!(responses().iter().any(|r| r.api_key() == key), "{key:?}");
        assert_eq!(ApiKey::from_code(key.code()), Some(key));
    }
    assert_eq!(ApiKey::from_code(2), None);
}

#[test]
fn every_message_round_trips() {
    for message in messages() {
        let frame = encode(&message).unwrap();
        assert_eq!(frame.get(..2), Some(&FORMAT_VERSION.to_be_bytes()[..]));
        assert_eq!(
            frame.get(2..4),
            Some(&message.api_key().code().to_be_bytes()[..])
        );
        assert_eq!(frame.get(4), Some(&u8::from(message.is_response())));
        assert_eq!(decode(&frame).unwrap(), message, "{message:?}");
    }
}

#[test]
fn every_envelope_round_trips() {
    for (i, message) in messages().into_iter().enumerate() {
        let from = u32::try_from(i).unwrap();
        let envelope = Envelope {
            from,
            to: u32::MAX - from,
            message,
        };
        let frame = encode_envelope(&envelope).unwrap();
        assert_eq!(decode_envelope(&frame).unwrap(), envelope);
    }
}

#[test]
fn every_truncation_is_an_invalid_frame_at_or_before_the_cut() {
    for message in messages() {
        let frame = encode(&message).unwrap();
        for len in 0..frame.len() {
            let position = invalid_frame_position(decode(&frame[..len]));
            assert!(position <= len, "{message:?} cut at {len}: {position}");
        }
    }
}

#[test]
fn trailing_bytes_are_refused() {
    let mut frame = encode(&messages()[0]).unwrap();
    let len = frame.len();
    frame.push(0);
    assert_eq!(invalid_frame_position(decode(&frame)), len);
}

#[test]
fn unknown_version_is_named() {
    let mut frame = encode(&messages()[0]).unwrap();
    frame[..2].copy_from_slice(&7u16.to_be_bytes());
    let err = decode(&frame).unwrap_err();
    assert!(err.to_string().contains("version 7"), "{err}");
    assert!(matches!(err, Error::InvalidFrame { position: 0, .. }));
}

#[test]
fn unknown_api_key_and_kind_are_refused() {
    let mut frame = encode(&messages()[0]).unwrap();
    frame[2..4].copy_from_slice(&2i16.to_be_bytes());
    assert_eq!(invalid_frame_position(decode(&frame)), 2);
    let mut frame = encode(&messages()[0]).unwrap();
    frame[4] = 2;
    assert_eq!(invalid_frame_position(decode(&frame)), 4);
}

#[test]
fn out_of_range_fields_are_refused() {
    let body = MESSAGE_HEADER_BYTES;
    // Produce request: acks (i16) comes first; 2 is no acks setting.
    let mut frame = encode(&messages()[0]).unwrap();
    frame[body..body + 2].copy_from_slice(&2i16.to_be_bytes());
    assert_eq!(invalid_frame_position(decode(&frame)), body);
    // Heartbeat response: the error code; 9999 is none this crate knows.
    let heartbeat = Message::Response {
        correlation_id: 1,
        response: Response::Group(GroupResponse::Heartbeat(Ok(()))),
    };
    let mut frame = encode(&heartbeat).unwrap();
    frame[body..body + 2].copy_from_slice(&9999i16.to_be_bytes());
    assert_eq!(invalid_frame_position(decode(&frame)), body);
    // Metadata request: an option's presence byte must be 0 or 1.
    let metadata = Message::Request {
        correlation_id: 1,
        request: Request::Metadata(MetadataRequest { topics: None }),
    };
    let mut frame = encode(&metadata).unwrap();
    frame[body] = 2;
    assert_eq!(invalid_frame_position(decode(&frame)), body);
}

#[test]
fn a_string_that_is_not_utf8_is_refused() {
    let message = Message::Request {
        correlation_id: 1,
        request: Request::Group(GroupRequest::DeleteGroup("ab".into())),
    };
    let mut frame = encode(&message).unwrap();
    let last = frame.len() - 1;
    frame[last] = 0xff;
    assert_eq!(invalid_frame_position(decode(&frame)), MESSAGE_HEADER_BYTES);
}

#[test]
fn a_huge_array_count_is_refused_before_allocating() {
    let message = Message::Response {
        correlation_id: 1,
        response: Response::Fetch(FetchResponse { partitions: vec![] }),
    };
    let mut frame = encode(&message).unwrap();
    let body = MESSAGE_HEADER_BYTES;
    frame[body..body + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    let err = decode(&frame).unwrap_err();
    assert!(err.to_string().contains("does not fit"), "{err}");
}

#[test]
fn sync_assignments_out_of_order_are_refused() {
    let message = Message::Request {
        correlation_id: 1,
        request: Request::Group(GroupRequest::SyncGroup(SyncGroupRequest {
            assignments: BTreeMap::from([("a".into(), vec![]), ("b".into(), vec![])]),
            ..SyncGroupRequest::default()
        })),
    };
    let mut frame = encode(&message).unwrap();
    // The frame ends with ("a", []) then ("b", []), each a 4-byte length, the member id
    // and a 4-byte empty length: the ids sit 14 and 5 bytes from the end.
    let n = frame.len();
    assert_eq!((frame[n - 14], frame[n - 5]), (b'a', b'b'));
    frame[n - 14] = b'b';
    frame[n - 5] = b'a';
    assert!(decode(&frame).is_err(), "out of order");
    frame[n - 5] = b'b';
    assert!(decode(&frame).is_err(), "repeated");
    frame[n - 14] = b'a';
    assert!(decode(&frame).is_ok());
}

#[test]
fn oversized_frames_are_refused_both_ways() {
    let message = Message::Request {
        correlation_id: 1,
        request: Request::Produce(ProduceRequest {
            acks: Acks::Leader,
            timeout_ms: 0,
            partition: pk("t", 0),
            records: Bytes::from(vec![0; MAX_FRAME_BYTES]),
        }),
    };
    assert!(matches!(
        encode(&message),
        Err(Error::FrameTooLarge {
            max: MAX_FRAME_BYTES,
            ..
        })
    ));
    let bytes = vec![0; MAX_FRAME_BYTES + 1];
    assert!(matches!(decode(&bytes), Err(Error::FrameTooLarge { .. })));
}

#[test]
fn coordinator_responses_convert() {
    use crate::group::coordinator::Response as R;
    assert_eq!(
        GroupResponse::from(R::Heartbeat(Err(GroupError::RebalanceInProgress))),
        GroupResponse::Heartbeat(Err(GroupError::RebalanceInProgress))
    );
    assert_eq!(
        GroupResponse::from(R::DeleteGroup(Ok(()))).api_key(),
        ApiKey::DeleteGroups
    );
}

fn arb_partition() -> impl Strategy<Value = PartitionKey> {
    (".{0,8}", any::<u32>()).prop_map(|(topic, partition)| PartitionKey { topic, partition })
}

fn arb_replica_error() -> impl Strategy<Value = Option<ReplicaError>> {
    (any::<i16>(), proptest::option::of(any::<u32>()))
        .prop_map(|(code, leader)| ReplicaError::from_code(code, leader))
}

fn arb_fetch_request() -> impl Strategy<Value = Request> {
    let partition = (
        arb_partition(),
        proptest::option::of(any::<i32>()),
        any::<u64>(),
        proptest::option::of(any::<i32>()),
        proptest::option::of(any::<u64>()),
        any::<u32>(),
    )
        .prop_map(
            |(partition, current, fetch_offset, last, start, max_bytes)| FetchPartition {
                partition,
                current_leader_epoch: current,
                fetch_offset,
                last_fetched_epoch: last,
                log_start_offset: start,
                max_bytes,
            },
        );
    (
        proptest::option::of(any::<u32>()),
        any::<u32>(),
        proptest::collection::vec(partition, 0..4),
    )
        .prop_map(|(replica_id, max_bytes, partitions)| {
            Request::Fetch(FetchRequest {
                replica_id,
                max_bytes,
                partitions,
            })
        })
}

fn arb_fetch_response() -> impl Strategy<Value = Response> {
    let partition = (
        arb_partition(),
        arb_replica_error(),
        (any::<u64>(), any::<u64>(), any::<u64>(), any::<bool>()),
        proptest::option::of((any::<i32>(), any::<u64>())),
        proptest::collection::vec(any::<u8>(), 0..32),
    )
        .prop_map(
            |(partition, error, (fetch_offset, hw, lso, gaps), diverging, records)| {
                FetchedPartition {
                    partition,
                    error,
                    fetch_offset,
                    high_watermark: hw,
                    log_start_offset: lso,
                    log_may_hold_gaps: gaps,
                    diverging_epoch: diverging
                        .map(|(epoch, end_offset)| EpochEndOffset { epoch, end_offset }),
                    records: Bytes::from(records),
                }
            },
        );
    proptest::collection::vec(partition, 0..4)
        .prop_map(|partitions| Response::Fetch(FetchResponse { partitions }))
}

fn arb_group_message() -> impl Strategy<Value = Message> {
    let sync = (
        ".{0,6}",
        any::<i32>(),
        proptest::option::of(".{0,6}"),
        proptest::collection::btree_map(
            ".{0,4}",
            proptest::collection::vec(any::<u8>(), 0..8),
            0..4,
        ),
    )
        .prop_map(|(member_id, generation, protocol_name, assignments)| {
            Request::Group(GroupRequest::SyncGroup(SyncGroupRequest {
                group_id: "g".into(),
                member_id,
                generation,
                protocol_type: None,
                protocol_name,
                assignments,
            }))
        });
    let errors = proptest::collection::vec(((".{0,4}", any::<u32>()), any::<i16>()), 0..4)
        .prop_map(|partitions| {
            Response::Group(GroupResponse::OffsetCommit(OffsetCommitResponse {
                partitions: partitions
                    .into_iter()
                    .map(|(tp, code)| (tp, GroupError::from_code(code).map_or(Ok(()), Err)))
                    .collect(),
            }))
        });
    (any::<u64>(), sync, errors, any::<bool>()).prop_map(|(id, sync, errors, pick)| {
        if pick {
            Message::Request {
                correlation_id: id,
                request: sync,
            }
        } else {
            Message::Response {
                correlation_id: id,
                response: errors,
            }
        }
    })
}

proptest! {
    #[test]
    fn fetch_requests_round_trip(request in arb_fetch_request(), id in any::<u64>()) {
        let message = Message::Request { correlation_id: id, request };
        prop_assert_eq!(decode(&encode(&message).unwrap()).unwrap(), message);
    }

    #[test]
    fn fetch_responses_round_trip(response in arb_fetch_response(), from in any::<u32>()) {
        let envelope = Envelope {
            from,
            to: 1,
            message: Message::Response { correlation_id: 3, response },
        };
        let frame = encode_envelope(&envelope).unwrap();
        prop_assert_eq!(decode_envelope(&frame).unwrap(), envelope);
    }

    #[test]
    fn group_messages_round_trip(message in arb_group_message()) {
        prop_assert_eq!(decode(&encode(&message).unwrap()).unwrap(), message);
    }

    #[test]
    fn garbage_never_panics_and_what_decodes_re_encodes_to_itself(
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        if let Ok(envelope) = decode_envelope(&bytes) {
            prop_assert_eq!(encode_envelope(&envelope).unwrap(), bytes);
        }
    }

    #[test]
    fn flipping_a_byte_never_panics(index in any::<prop::sample::Index>(), value in any::<u8>(), which in any::<prop::sample::Index>()) {
        let messages = messages();
        let message = which.get(&messages);
        let mut frame = encode(message).unwrap();
        let at = index.index(frame.len());
        frame[at] = value;
        if let Ok(decoded) = decode(&frame) {
            prop_assert_eq!(encode(&decoded).unwrap(), frame);
        }
    }
}

#[test]
fn error_codes_decode_to_what_encoded_them() {
    for code in i16::MIN..=i16::MAX {
        if let Some(error) = GroupError::from_code(code) {
            assert_eq!(error.code(), code);
        }
        if let Some(error) = ReplicaError::from_code(code, Some(1)) {
            assert_eq!(error.code(), code);
        }
    }
    assert_eq!(
        GroupError::from_code(0),
        None,
        "0 means no error on the wire"
    );
    assert_eq!(ReplicaError::from_code(0, None), None);
}

/// A fetched partition byte for byte (format 2): the echoed fetch offset follows the
/// error, the offset-gaps flag the log start offset.
#[test]
fn a_fetched_partition_has_this_exact_encoding() {
    let message = Message::Response {
        correlation_id: 5,
        response: Response::Fetch(FetchResponse {
            partitions: vec![FetchedPartition {
                partition: pk("t", 1),
                error: None,
                fetch_offset: 7,
                high_watermark: 9,
                log_start_offset: 2,
                log_may_hold_gaps: true,
                diverging_epoch: None,
                records: Bytes::from_static(b"ab"),
            }],
        }),
    };
    let frame = encode(&message).unwrap();
    #[rustfmt::skip]
    let expected: Vec<u8> = vec![
        0, 2,                       // format version 2
        0, 1,                       // api key: fetch
        1,                          // response
        0, 0, 0, 0, 0, 0, 0, 5,     // correlation id
        0, 0, 0, 1,                 // one partition
        0, 0, 0, 1, b't',           // topic
        0, 0, 0, 1,                 // partition
        0, 0,                       // no error
        0, 0, 0, 0, 0, 0, 0, 7,     // fetch offset
        0, 0, 0, 0, 0, 0, 0, 9,     // high watermark
        0, 0, 0, 0, 0, 0, 0, 2,     // log start offset
        1,                          // the leader's log may hold offset gaps
        0,                          // no diverging epoch
        0, 0, 0, 2, b'a', b'b',     // records
    ];
    assert_eq!(frame, expected);
    assert_eq!(decode(&expected).unwrap(), message);

    // The flag is a bool: 0 or 1, nothing else.
    let flag = expected.len() - 8;
    let mut bad = expected.clone();
    bad[flag] = 2;
    assert_eq!(invalid_frame_position(decode(&bad)), flag);
    // A format 1 frame (which had neither field) is refused by its version.
    let mut old = expected;
    old[..2].copy_from_slice(&1u16.to_be_bytes());
    let err = decode(&old).unwrap_err();
    assert!(err.to_string().contains("version 1"), "{err}");
}
