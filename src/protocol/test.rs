//! Round-trip, truncation and hostile-input tests of the wire protocol.

use super::*;

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
        bytes: vec![1, 2, 3],
    };
    let requests = vec![
        Request::Apply {
            task: 7,
            function: u64::MAX,
            args: vec![WireArg::Value(vec![9; 100]), WireArg::Ref("a".into())],
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
                        args: vec![WireArg::Value(vec![1, 2])],
                    },
                    stealable: WireStealable::Only(vec![0, 2]),
                    hops: 1,
                },
                WireTask {
                    work: Work::Map {
                        task: 16,
                        function: 4,
                        items: packed(&[&[7], &[8, 9]]),
                    },
                    stealable: WireStealable::Never,
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
            args: Vec::new(),
        },
        stealable: WireStealable::Anyone,
        hops: 3,
    };
    for message in [
        Peer::Steal { max: 9 },
        Peer::Give {
            tasks: vec![(task, vec![1, 2, 3])],
            left: 4,
        },
        Peer::Give {
            tasks: Vec::new(),
            left: 0,
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
