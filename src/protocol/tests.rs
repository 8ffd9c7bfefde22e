//! Round-trip, truncation and hostile-input tests of the wire protocol.

use std::sync::Arc;

use serde::Serialize;
use smallvec::smallvec;

use super::message::*;
use super::*;
use crate::codec;
use crate::error::Error;

fn packed(items: &[&[u8]]) -> Packed {
    let mut p = Packed::default();
    for item in items {
        p.push(item);
    }
    p
}

#[test]
fn packed_strings_read_back_and_refuse_bad_offsets() {
    let p = packed(&[&[1, 2], &[], &[3]]);
    assert_eq!(p.len(), 3);
    assert_eq!(p.get(0).unwrap(), &[1, 2]);
    assert_eq!(p.get(1).unwrap(), &[] as &[u8]);
    assert_eq!(p.get(2).unwrap(), &[3]);
    assert!(matches!(p.get(3), Err(Error::Protocol(_))));
    // Offsets from the wire that go backwards or past the block.
    for (ends, bad) in [(vec![2, 1], 1), (vec![9], 0), (vec![u64::MAX], 0)] {
        let hostile = Packed {
            bytes: vec![0; 3],
            ends,
        };
        assert!(hostile.get(bad).is_err());
        assert!(hostile.get(5).is_err());
    }
}

fn samples() -> (Vec<Request>, Vec<Reply>) {
    let typed = Typed {
        fingerprint: 42,
        type_name: "alloc::vec::Vec<f64>".into(),
        bytes: Arc::new(vec![1, 2, 3]),
    };
    let requests = vec![
        Request::Apply {
            task: 7,
            function: u64::MAX,
            args: smallvec![WireArg::Value(vec![9; 100]), WireArg::Ref("a".into())],
            team: Some(TeamSpec::new(&[2, 0, 1])),
        },
        Request::Push {
            task: 8,
            items: vec![("a".into(), typed.clone())],
        },
        Request::Pull {
            task: 9,
            names: vec!["a".into(), "b".into()],
        },
        Request::Keys { task: 10 },
        Request::Clear { task: 11 },
        Request::Map {
            task: 12,
            function: 3,
            items: vec![vec![1], vec![]],
        },
        Request::Collective {
            task: 13,
            group: GroupSpec {
                id: 1,
                ranks: vec![0, 2, 3],
            },
            op: CollectiveOp::Scatter {
                name: "a".into(),
                value: ValueSpec {
                    fingerprint: 5,
                    type_name: "Vec<f64>".into(),
                    bulk: Some(crate::bulk::ElemKind::F64),
                },
                count: 3,
                shape: vec![3],
                total: 5,
                ready: true,
            },
        },
        Request::Collective {
            task: 14,
            group: GroupSpec {
                id: 1,
                ranks: vec![0, 1],
            },
            op: CollectiveOp::Prepare {
                name: "a".into(),
                value: ValueSpec {
                    fingerprint: 5,
                    type_name: "Vec<String>".into(),
                    bulk: None,
                },
                reduce: Some(crate::bulk::ReduceOp::Max),
            },
        },
        Request::Tasks {
            loads: vec![3, 0],
            fence: vec![5, 9],
            tasks: vec![
                WireTask {
                    work: Work::Apply {
                        task: 15,
                        function: 4,
                        args: smallvec![WireArg::Value(vec![1, 2])],
                    },
                    stealable: WireStealable::Only(vec![0, 2]),
                    hops: 1,
                },
                WireTask {
                    work: Work::Map {
                        task: 16,
                        function: 4,
                        items: packed(&[&[7], &[8, 9]]),
                        raw: false,
                    },
                    stealable: WireStealable::Never,
                    hops: 0,
                },
                WireTask {
                    work: Work::Map {
                        task: 17,
                        function: 4,
                        items: packed(&[&[7, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0]]),
                        raw: true,
                    },
                    stealable: WireStealable::Anyone,
                    hops: 0,
                },
            ],
        },
        Request::Abort {
            tasks: vec![15, 16],
        },
        Request::Shutdown { failed: true },
        Request::Exit,
    ];
    let replies = vec![
        Reply::Hello {
            binary: 1,
            registry: 2,
            pid: 3,
            host: "node".into(),
        },
        Reply::Done(Done {
            task: 7,
            started_us: 1,
            completed_us: 2,
            stdout: "out\n".into(),
            stderr: String::new(),
            hops: 0,
            outcome: Outcome::Values(vec![typed]),
        }),
        Reply::Done(Done {
            task: 8,
            started_us: 1,
            completed_us: 2,
            stdout: String::new(),
            stderr: "boom".into(),
            hops: 0,
            outcome: Outcome::Failed(Failure::Remote {
                kind: "panic".into(),
                message: "boom".into(),
                backtrace: Some("bt".into()),
            }),
        }),
        Reply::Ready {
            task: 14,
            len: 6,
            shape: vec![3, 2],
        },
        Reply::Progress {
            started: vec![17],
            done: vec![Done {
                task: 16,
                started_us: 3,
                completed_us: 4,
                stdout: String::new(),
                stderr: String::new(),
                hops: 2,
                outcome: Outcome::Each(Each {
                    values: packed(&[&[1], &[]]),
                    failed: vec![(1, Failure::Name("x".into()))],
                }),
            }],
        },
        Reply::Stolen {
            victim: 1,
            tasks: vec![(15, 2)],
        },
        Reply::Aborted { tasks: vec![16] },
        Reply::Quiet,
        Reply::Goodbye,
    ];
    (requests, replies)
}

#[test]
fn every_message_round_trips() {
    let (requests, replies) = samples();
    for r in requests {
        let back: Request = decode(&encode(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }
    for r in replies {
        let back: Reply = decode(&encode(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }
}

#[test]
fn peer_messages_round_trip_and_refuse_truncation() {
    let task = WireTask {
        work: Work::Apply {
            task: 1,
            function: 2,
            args: WireArgs::new(),
        },
        stealable: WireStealable::Anyone,
        hops: 3,
    };
    for message in [
        Peer::Steal { max: 9, seen: 12 },
        Peer::Give {
            tasks: vec![(task, vec![1, 2, 3])],
            left: 4,
        },
        Peer::Give {
            tasks: Vec::new(),
            left: 0,
        },
        Peer::GroupRun {
            leader: 2,
            size: 2,
            hops: 1,
            work: Work::Group {
                size: 2,
                work: Box::new(Work::Apply {
                    task: 5,
                    function: 6,
                    args: smallvec![WireArg::Value(vec![7])],
                }),
            },
        },
        Peer::GroupDone {
            done: Done {
                task: 5,
                started_us: 1,
                completed_us: 2,
                stdout: "out".into(),
                stderr: String::new(),
                hops: 0,
                outcome: Outcome::Group(Box::new(GroupOutcome {
                    outcome: Outcome::Failed(Failure::Member {
                        engine: 3,
                        failure: Box::new(Failure::Usage("x".into())),
                    }),
                    members: Vec::new(),
                })),
            },
        },
        Peer::GroupAbandon {
            task: 5,
            size: 2,
            why: "the part on engine 3 returned".into(),
        },
    ] {
        let bytes = encode(&message).unwrap();
        assert_eq!(decode::<Peer>(&bytes).unwrap(), message);
        for cut in 0..bytes.len() {
            assert!(matches!(
                decode::<Peer>(&bytes[..cut]),
                Err(Error::Protocol(_))
            ));
        }
    }
}

#[test]
fn every_truncation_is_a_protocol_error() {
    let (requests, _) = samples();
    for r in requests {
        let bytes = encode(&r).unwrap();
        for cut in 0..bytes.len() {
            match decode::<Request>(&bytes[..cut]) {
                Err(Error::Protocol(_)) => {}
                other => panic!("cut at {cut} of {r:?} gave {other:?}"),
            }
        }
    }
}

#[test]
fn arbitrary_bytes_never_panic() {
    // A small xorshift generator: deterministic, no dependency.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut accepted = 0;
    for _ in 0..20_000 {
        let len = (next() % 64) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if decode::<Request>(&bytes).is_ok() {
            accepted += 1;
        }
        let _ = decode::<Reply>(&bytes);
        let _ = decode::<Peer>(&bytes);
    }
    // Random bytes are almost never a valid message.
    assert!(accepted < 2_000, "{accepted} random inputs decoded");
}

#[test]
fn hostile_length_prefix_is_refused() {
    // Variant 2 (Pull), task 1, then a names vector claiming ~2^62 entries.
    let bytes = [2u8, 1, 0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f];
    assert!(matches!(decode::<Request>(&bytes), Err(Error::Protocol(_))));
    // A push whose value claims 2^40 bytes.
    let mut bytes = vec![1u8, 1, 1, 1, b'a', 0, 0, 0xfd];
    bytes.extend_from_slice(&(1u64 << 40).to_le_bytes());
    assert!(matches!(decode::<Request>(&bytes), Err(Error::Protocol(_))));
}

/// Sends `message` through [`encode_framed`] and back, the attachments
/// handed over as a transport would (their lengths checked).
fn through_frames<M>(mut message: M) -> (M, usize)
where
    M: Serialize + serde::de::DeserializeOwned + Blobs,
{
    let framed = encode_framed(&mut message).unwrap();
    let head = decode_head::<M>(&framed.head).unwrap();
    let sent: Vec<Vec<u8>> = framed.blobs.iter().map(|b| b.to_vec()).collect();
    let count = sent.len();
    let back = head
        .receive(|lens| {
            assert_eq!(
                lens,
                sent.iter().map(|b| b.len() as u64).collect::<Vec<_>>()
            );
            Ok(sent)
        })
        .unwrap();
    (back, count)
}

#[test]
fn large_fields_travel_as_attachments_and_come_back_in_place() {
    let big = |fill: u8| vec![fill; framed::ATTACH_FROM + usize::from(fill)];
    let typed = |fill: u8| Typed {
        fingerprint: u64::from(fill),
        type_name: "T".into(),
        bytes: Arc::new(big(fill)),
    };
    let mut each = Each::default();
    each.values.push(&big(9));
    let requests = vec![
        Request::Apply {
            task: 1,
            function: 2,
            args: smallvec![
                WireArg::Value(big(1)),
                WireArg::Ref("r".into()),
                WireArg::Value(vec![5; 10]),
                WireArg::Value(big(2)),
            ],
            team: None,
        },
        Request::Push {
            task: 3,
            items: vec![("a".into(), typed(3)), ("b".into(), typed(0))],
        },
        Request::Map {
            task: 4,
            function: 5,
            items: vec![vec![1], big(4), vec![]],
        },
    ];
    for (k, (request, expected)) in requests.into_iter().zip([2, 2, 1]).enumerate() {
        let (back, attached) = through_frames(request.clone());
        assert!(back == request, "request {k} changed on the way");
        assert_eq!(attached, expected, "request {k}");
    }
    let done = |outcome| Done {
        task: 6,
        started_us: 1,
        completed_us: 2,
        stdout: "out".into(),
        stderr: String::new(),
        hops: 0,
        outcome,
    };
    let replies = [
        Reply::Done(done(Outcome::Value(big(6)))),
        Reply::Done(done(Outcome::Values(vec![typed(7), typed(8)]))),
        Reply::Progress {
            started: vec![1],
            done: vec![
                done(Outcome::Each(each)),
                done(Outcome::Many(vec![big(10)])),
            ],
        },
    ];
    for (k, (reply, expected)) in replies.into_iter().zip([1, 2, 2]).enumerate() {
        let (back, attached) = through_frames(reply.clone());
        assert!(back == reply, "reply {k} changed on the way");
        assert_eq!(attached, expected, "reply {k}");
    }
    // A stolen task's large argument, engine to engine.
    let give = Peer::Give {
        tasks: vec![(
            WireTask {
                work: Work::Apply {
                    task: 1,
                    function: 2,
                    args: smallvec![WireArg::Value(big(11))],
                },
                stealable: WireStealable::Anyone,
                hops: 1,
            },
            vec![3],
        )],
        left: 0,
    };
    let (back, attached) = through_frames(give.clone());
    assert!(back == give && attached == 1);
    // A small message is one plain message, as before.
    let small = Request::Keys { task: 1 };
    let framed = encode_framed(&mut small.clone()).unwrap();
    assert!(framed.blobs.is_empty());
    assert_eq!(*framed.head, encode(&small).unwrap());
}

#[test]
fn an_attached_value_is_shared_not_copied() {
    let bytes = Arc::new(vec![3u8; framed::ATTACH_FROM]);
    let mut reply = Reply::Done(Done {
        task: 1,
        started_us: 0,
        completed_us: 0,
        stdout: String::new(),
        stderr: String::new(),
        hops: 0,
        outcome: Outcome::Values(vec![Typed {
            fingerprint: 1,
            type_name: "T".into(),
            bytes: bytes.clone(),
        }]),
    });
    let framed = encode_framed(&mut reply).unwrap();
    assert!(Arc::ptr_eq(&framed.blobs[0], &bytes));
}

#[test]
fn hostile_heads_are_protocol_errors() {
    let mut request = Request::Apply {
        task: 1,
        function: 2,
        args: smallvec![WireArg::Value(vec![1; framed::ATTACH_FROM])],
        team: None,
    };
    let framed = encode_framed(&mut request).unwrap();
    // Every truncation of a head.
    for cut in 0..framed.head.len() {
        assert!(matches!(
            decode_head::<Request>(&framed.head[..cut]),
            Err(Error::Protocol(_))
        ));
    }
    // Fewer attachments than announced.
    let head = decode_head::<Request>(&framed.head).unwrap();
    assert!(matches!(
        head.receive(|_| Ok(Vec::new())),
        Err(Error::Protocol(_))
    ));
    // `read_framed` tells the two apart: a malformed head loses that
    // message (inner error, nothing received); attachments that do not
    // arrive as announced put the stream out of step (outer error).
    let nothing = |_: &[u64]| -> Result<Vec<Vec<u8>>> { panic!("nothing is to be received") };
    let cut = &framed.head[..framed.head.len() - 1];
    assert!(matches!(
        framed::read_framed::<Request>(cut, nothing),
        Ok(Err(Error::Protocol(_)))
    ));
    assert!(matches!(
        framed::read_framed::<Request>(&framed.head, |_| Ok(Vec::new())),
        Err(Error::Protocol(_))
    ));
    let whole = framed::read_framed::<Request>(&framed.head, |lens| {
        Ok(lens.iter().map(|&l| vec![1; l as usize]).collect())
    });
    assert!(matches!(whole, Ok(Ok(Request::Apply { .. }))));
    // An attachment for a field the message does not have (index 5), and
    // for a field that is not empty.
    let hostile = |attached: Vec<(u32, u64)>, message: &Request| {
        let mut head = vec![0xfe];
        codec::encode_into(&(attached, message), &mut head).unwrap();
        decode_head::<Request>(&head)
            .and_then(|h| h.receive(|lens| Ok(lens.iter().map(|&l| vec![0; l as usize]).collect())))
    };
    let empty = Request::Apply {
        task: 1,
        function: 2,
        args: smallvec![WireArg::Value(Vec::new())],
        team: None,
    };
    assert!(hostile(vec![(0, 3)], &empty).is_ok());
    assert!(matches!(
        hostile(vec![(5, 3)], &empty),
        Err(Error::Protocol(_))
    ));
    let full = Request::Apply {
        task: 1,
        function: 2,
        args: smallvec![WireArg::Value(vec![1])],
        team: None,
    };
    assert!(matches!(
        hostile(vec![(0, 3)], &full),
        Err(Error::Protocol(_))
    ));
    // Out of order, repeated, or none at all.
    for attached in [vec![(1, 3), (0, 3)], vec![(0, 3), (0, 3)], Vec::new()] {
        assert!(matches!(hostile(attached, &empty), Err(Error::Protocol(_))));
    }
}
