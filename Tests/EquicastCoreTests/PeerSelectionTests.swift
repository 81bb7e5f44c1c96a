@testable import EquicastCore
import Testing

@Suite struct PeerSelectionTests {
    @Test func rendezvousTargetsAreDeterministicDistinctAndExcludeSelf() {
        let me = NodeID(rawValue: 42)
        for round in UInt64(0)..<200 {
            let a = PeerSelection.rendezvousTargets(
                selfID: me, round: round, viewDigest: 7, memberCount: 50, count: 4, excluding: 3)
            let b = PeerSelection.rendezvousTargets(
                selfID: me, round: round, viewDigest: 7, memberCount: 50, count: 4, excluding: 3)
            #expect(a == b)
            #expect(Set(a).count == 4)
            #expect(!a.contains(3))
            #expect(a.allSatisfy { $0 >= 0 && $0 < 50 })
        }
    }

    @Test(arguments: [(0, 3), (1, 3), (3, 3), (5, 10)])
    func smallViewsYieldWhatExists(members: Int, count: Int) {
        let picks = PeerSelection.rendezvousTargets(
            selfID: NodeID(rawValue: 1), round: 9, viewDigest: 1, memberCount: members, count: count, excluding: nil)
        #expect(picks.count == min(members, count))
        #expect(Set(picks).count == picks.count)
    }

    /// Over many rounds each member is chosen about equally often (the point of deterministic spreading).
    @Test func picksSpreadEvenly() {
        var hits = [Int](repeating: 0, count: 20)
        for round in UInt64(0)..<5000 {
            for p in PeerSelection.rendezvousTargets(
                selfID: NodeID(rawValue: 99), round: round, viewDigest: 3, memberCount: 20, count: 3, excluding: nil)
            {
                hits[p] += 1
            }
        }
        // 15,000 picks over 20 members: 750 each expected.
        #expect(hits.min()! > 650 && hits.max()! < 850, "\(hits)")
    }

    @Test func differentViewsGiveDifferentPicks() {
        let a = PeerSelection.rendezvousTargets(
            selfID: NodeID(rawValue: 5), round: 1, viewDigest: 100, memberCount: 1000, count: 3, excluding: nil)
        let b = PeerSelection.rendezvousTargets(
            selfID: NodeID(rawValue: 5), round: 1, viewDigest: 101, memberCount: 1000, count: 3, excluding: nil)
        #expect(a != b)
    }

    @Test(arguments: [
        // (self, ids, perSide, expected: successors and predecessors interleaved, nearest first)
        (UInt64(50), [UInt64](arrayLiteral: 10, 20, 30, 40, 60, 70, 80), 2, [UInt64](arrayLiteral: 60, 40, 70, 30)),
        (5, [10, 20, 30, 40], 1, [10, 40]),  // wraps around: the predecessor of the lowest is the highest
        (45, [10, 20, 30, 40], 1, [10, 40]),
        (15, [10, 20], 2, [20, 10]),  // a small ring: each node once
        (15, [], 2, []),
    ])
    func ringNeighbours(me: UInt64, ids: [UInt64], perSide: Int, expected: [UInt64]) {
        let sorted = ids.map { NodeID(rawValue: $0) }
        let result = PeerSelection.ringNeighbours(selfID: NodeID(rawValue: me), sortedIDs: sorted, perSide: perSide)
        #expect(result.map(\.rawValue) == expected)
        // The incremental tracker agrees with the pure function, whatever the insertion order.
        var tracker = RingTracker(selfID: NodeID(rawValue: me), perSide: perSide)
        for id in sorted.reversed() { tracker.add(id) }
        #expect(tracker.neighbours.map(\.rawValue) == expected)
    }

    @Test func trackerMatchesBruteForceUnderChurn() {
        var rng = DeterministicRandom(seed: 11)
        let me = NodeID(rawValue: rng.next())
        var tracker = RingTracker(selfID: me, perSide: 3)
        var members: [NodeID] = []
        for step in 0..<2000 {
            if members.isEmpty || rng.below(3) > 0 {
                let id = NodeID(rawValue: rng.next())
                members.append(id)
                tracker.add(id)
            } else {
                let gone = members.remove(at: rng.below(members.count))
                tracker.remove(gone)
            }
            if tracker.needsRescan { tracker.rescan(members) }
            let expected = PeerSelection.ringNeighbours(selfID: me, sortedIDs: members.sorted(), perSide: 3)
            #expect(tracker.neighbours == expected, "step \(step)")
        }
    }
}

@Suite struct SuspicionTimeoutTests {
    /// Lifeguard: max with no confirmations, min once K are in, logarithmic in between.
    @Test(arguments: [
        (0, 3, UInt64(1000), UInt64(4000), UInt64(4000)),
        (1, 3, 1000, 4000, 2500),  // 4000 - 3000 * log(2)/log(4) = 2500
        (3, 3, 1000, 4000, 1000),
        (10, 3, 1000, 4000, 1000),
        (0, 0, 1000, 4000, 1000),
        (2, 3, 4000, 4000, 4000),
    ])
    func timeouts(confirmations: Int, expected: Int, minimum: UInt64, maximum: UInt64, result: UInt64) {
        #expect(
            SuspicionTimeout.milliseconds(
                confirmations: confirmations, expected: expected, minimum: minimum, maximum: maximum)
                == result)
    }

    @Test(arguments: [1.0, 2.0, 3.0, 10.0, 0.1, 1024.0])
    func log2IsAccurate(x: Double) {
        let expected: [Double: Double] = [
            1: 0, 2: 1, 3: 1.584962500721156, 10: 3.321928094887362, 0.1: -3.321928094887362, 1024: 10,
        ]
        #expect(abs(SuspicionTimeout.log2(x) - expected[x]!) < 1e-9)
    }

    @Test func confirmationsCountDistinctMembersOnly() {
        var s = Suspicion(startedAt: 0, incarnation: 1, by: NodeID(rawValue: 1))
        let first = s.confirm(by: NodeID(rawValue: 2))
        let again = s.confirm(by: NodeID(rawValue: 2))
        let bySuspecter = s.confirm(by: NodeID(rawValue: 1))
        #expect(first && !again && !bySuspecter)
        #expect(s.confirmations == 1)
    }
}

@Suite struct GossipQueueTests {
    func update(_ id: UInt64, _ inc: UInt64 = 1) -> GossipItem {
        .member(
            MemberUpdate(
                state: .alive, id: NodeID(rawValue: id), incarnation: inc,
                address: SocketAddress(ipv4: 10, 0, 0, 1, port: 1), reporter: NodeID(rawValue: id)))
    }

    @Test func eachItemIsSentUpToTheLimitThenDropped() {
        var q = GossipQueue(capacity: 10)
        q.enqueue(update(1))
        for _ in 0..<3 {
            let taken = q.take(byteBudget: 1000, itemsMax: 10, limit: 3, priority: nil)
            #expect(taken.count == 1)
        }
        #expect(q.isEmpty)
        let after = q.take(byteBudget: 1000, itemsMax: 10, limit: 3, priority: nil)
        #expect(after.isEmpty)
    }

    @Test func newerNewsReplacesOlderAboutTheSameMember() {
        var q = GossipQueue(capacity: 10)
        q.enqueue(update(1, 1))
        q.enqueue(update(1, 2))
        let taken = q.take(byteBudget: 1000, itemsMax: 10, limit: 3, priority: nil)
        #expect(taken == [update(1, 2)])
    }

    @Test func leastSentFirstThenNewestAndPriorityAhead() {
        var q = GossipQueue(capacity: 10)
        q.enqueue(update(1))
        _ = q.take(byteBudget: 1000, itemsMax: 10, limit: 5, priority: nil)  // 1 sent once
        q.enqueue(update(2))
        q.enqueue(update(3))
        let newest = q.take(byteBudget: 1000, itemsMax: 2, limit: 5, priority: nil)
        #expect(newest == [update(3), update(2)])
        let prioritised = q.take(byteBudget: 1000, itemsMax: 1, limit: 5, priority: NodeID(rawValue: 1))
        #expect(prioritised == [update(1)])
    }

    @Test func respectsTheByteBudgetAndCapacity() {
        var q = GossipQueue(capacity: 4)
        for i in 1...6 { q.enqueue(update(UInt64(i))) }
        #expect(q.count == 4)
        let size = update(1).encodedByteCount
        let taken = q.take(byteBudget: size * 2 + 1, itemsMax: 10, limit: 5, priority: nil)
        #expect(taken.count == 2)
    }

    /// Random enqueues, replacements and takes: every version of an item is sent exactly `limit` times unless
    /// replaced or evicted, no packet exceeds its limits, and no item is taken while a less-sent one that would
    /// fit waits.
    @Test(arguments: [1, 2, 3] as [UInt64])
    func randomWorkloadKeepsItsPromises(seed: UInt64) {
        var rng = DeterministicRandom(seed: seed)
        let limit = 4
        var q = GossipQueue(capacity: 64)
        var sends: [UInt64: Int] = [:]  // member id -> sends of its current version
        var versions: [UInt64: UInt64] = [:]
        var replacedOrEvicted = 0
        for step in 0..<5_000 {
            if rng.below(3) == 0 {
                let id = UInt64(rng.below(100))
                if sends[id] != nil { replacedOrEvicted += 1 }
                versions[id, default: 0] += 1
                q.enqueue(update(id, versions[id]!))
                sends[id] = 0
                // An eviction may have made room: forget whatever the queue no longer holds.
                for key in sends.keys where !q.contains(.member(NodeID(rawValue: key))) {
                    sends[key] = nil
                    replacedOrEvicted += 1
                }
            } else {
                let itemsMax = 1 + rng.below(8)
                let budget = rng.below(400)
                let countsBefore = sends
                let taken = q.take(byteBudget: budget, itemsMax: itemsMax, limit: limit, priority: nil)
                #expect(taken.count <= itemsMax, "step \(step)")
                #expect(taken.reduce(0) { $0 + $1.encodedByteCount } <= budget, "step \(step)")
                var takenIDs: Set<UInt64> = []
                for item in taken {
                    guard case .member(let u) = item else { continue }
                    takenIDs.insert(u.id.rawValue)
                    #expect(u.incarnation == versions[u.id.rawValue], "a stale version was sent")
                    sends[u.id.rawValue, default: 0] += 1
                    #expect(sends[u.id.rawValue]! <= limit, "sent more than the limit")
                    if sends[u.id.rawValue]! == limit { sends[u.id.rawValue] = nil }
                }
                // Least-sent first: when the packet had room for another item, nothing left behind was less sent.
                if taken.count < itemsMax, let maxTaken = takenIDs.compactMap({ countsBefore[$0] }).max() {
                    let leftBehind = countsBefore.filter { !takenIDs.contains($0.key) && sends[$0.key] != nil }
                    let roomLeft = budget - taken.reduce(0) { $0 + $1.encodedByteCount }
                    if roomLeft >= update(1).encodedByteCount {
                        #expect(leftBehind.allSatisfy { $0.value >= maxTaken }, "step \(step)")
                    }
                }
            }
        }
        // Draining sends every remaining item exactly up to its limit, then the queue is empty.
        #expect(
            Set(sends.keys)
                == Set(q.keys.compactMap { if case .member(let id) = $0 { id.rawValue } else { nil } }))
        while !q.isEmpty {
            for item in q.take(byteBudget: 10_000, itemsMax: 64, limit: limit, priority: nil) {
                guard case .member(let u) = item else { continue }
                sends[u.id.rawValue, default: 0] += 1
                if sends[u.id.rawValue]! == limit { sends[u.id.rawValue] = nil }
            }
        }
        #expect(sends.isEmpty, "items dropped before their limit: \(sends)")
        #expect(replacedOrEvicted > 0)
    }

    @Test func evictsTheMostSentOldestFirst() {
        var q = GossipQueue(capacity: 3)
        q.enqueue(update(1))
        q.enqueue(update(2))
        _ = q.take(byteBudget: 1000, itemsMax: 2, limit: 9, priority: nil)  // 1 and 2 sent once
        q.enqueue(update(3))
        q.enqueue(update(4))  // full: evicts the oldest of the most-sent
        let all = q.take(byteBudget: 1000, itemsMax: 10, limit: 9, priority: nil)
        #expect(Set(all.map { GossipQueue.key($0) }).count == 3)
        #expect(all.count == 3)
        #expect(!all.contains(update(1)) || !all.contains(update(2)))
        #expect(all.contains(update(3)) && all.contains(update(4)))
    }
}

@Suite struct MessageCodecTests {
    static let addr = SocketAddress(ipv4: 192, 0, 2, 7, port: 7946)
    static let addr6 = SocketAddress(bytes: [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 12), port: 9)!

    static let samples: [Message] = [
        Message(type: .ping, digest: 1, probeID: 9, target: NodeID(rawValue: 5)),
        Message(type: .ack, digest: 2, probeID: 9),
        Message(type: .pingRequest, digest: 3, probeID: 4, target: NodeID(rawValue: 8), targetAddress: addr6),
        Message(
            type: .gossip, digest: 4,
            items: [
                .member(
                    MemberUpdate(
                        state: .suspect, id: NodeID(rawValue: 1), incarnation: 7, address: addr,
                        reporter: NodeID(rawValue: 2))),
                .event(GossipEvent(origin: NodeID(rawValue: 3), id: 1, payload: [1, 2, 3])),
                .member(
                    MemberUpdate(
                        state: .left, id: NodeID(rawValue: 4), incarnation: 1 << 40, address: addr6,
                        reporter: NodeID(rawValue: 4))),
            ]),
        Message(type: .syncRequest, digest: 5),
        Message(
            type: .syncRequest, digest: 6,
            items: [
                .member(
                    MemberUpdate(
                        state: .alive, id: NodeID(rawValue: 9), incarnation: 3, address: addr,
                        reporter: NodeID(rawValue: 9)))
            ],
            bucketDigests: (0..<UInt64(Message.bucketCount)).map { $0 &* 0x9e37_79b9_7f4a_7c15 },
            bucketCounts: (0..<UInt16(Message.bucketCount)).map { $0 * 3 }),
        Message(
            type: .syncRequest, digest: 8, bucketDigests: [UInt64](repeating: 1, count: Message.fineBucketCount),
            bucketCounts: [UInt16](repeating: 9, count: Message.fineBucketCount)),
        Message(type: .syncResponse, digest: 7),
        Message(
            type: .syncRequest, digest: 10, bucketDigests: [UInt64](repeating: 4, count: Message.bucketCount),
            bucketCounts: [UInt16](repeating: 0, count: Message.bucketCount - 2) + [2, 3],
            memberFingerprints: [0x0102, 0xfffe, 7, 0, 0x8000]),
        Message(
            type: .gossip, digest: 11,
            items: [
                .member(NodeIdentity(simulated: NodeID(rawValue: 12)).record(incarnation: 3, address: addr6)),
                .status(
                    NodeIdentity(simulated: NodeID(rawValue: 12)).signed(
                        NodeStatus(
                            node: NodeID(rawValue: 12), productTag: 5, sequence: 9, installedVersion: 2,
                            targetVersion: 3, state: .downloading, chunksHave: 1, chunksTotal: 4))),
            ]),
    ]

    @Test(arguments: samples.indices)
    func roundTrips(index: Int) throws {
        let m = MessageCodecTests.samples[index]
        let bytes = m.encode()
        #expect(try Message.decode(bytes, itemsMax: 64) == m)
        #expect(bytes.count == m.headerByteCount + m.items.reduce(0) { $0 + $1.encodedByteCount })
        // Every truncation is refused with a typed error.
        for cut in 0..<bytes.count {
            #expect(throws: WireError.self) { try Message.decode(Array(bytes[0..<cut]), itemsMax: 64) }
        }
    }

    @Test func refusesHostileMessages() {
        let gossip = MessageCodecTests.samples[3].encode()
        #expect(throws: WireError.unknownMessageType(0)) {
            try Message.decode([0] + Array(gossip.dropFirst()), itemsMax: 64)
        }
        #expect(throws: WireError.unknownMessageType(200)) { try Message.decode([200], itemsMax: 64) }
        #expect(throws: WireError.lengthOverLimit(field: "item count", length: 3, limit: 2)) {
            try Message.decode(gossip, itemsMax: 2)
        }
        #expect(throws: WireError.trailingBytes(count: 1)) { try Message.decode(gossip + [0], itemsMax: 64) }
        var badState = gossip
        badState[12] = 9  // first item's state byte
        #expect(throws: WireError.invalidValue(field: "member state", value: 9)) {
            try Message.decode(badState, itemsMax: 64)
        }
        var badTag = gossip
        badTag[11] = 7
        #expect(throws: WireError.invalidValue(field: "item tag", value: 7)) {
            try Message.decode(badTag, itemsMax: 64)
        }
        // A sync request carries no bucket digests (a joiner) or exactly one per bucket.
        var shortBuckets = MessageCodecTests.samples[5].encode()
        let countAt = shortBuckets.count - 10 * Message.bucketCount - 2 - 4
        shortBuckets[countAt] = 0
        shortBuckets[countAt + 1] = 3
        #expect(throws: WireError.invalidValue(field: "bucket count", value: 3)) {
            try Message.decode(Array(shortBuckets[0..<(countAt + 2 + 30)]), itemsMax: 64)
        }
        // Member fingerprints: none, or exactly one per member the counts declare, within the item limit.
        let fingerprinted = MessageCodecTests.samples[8].encode()
        let fingerprintsAt = fingerprinted.count - 2 * 5 - 4
        var miscounted = fingerprinted
        miscounted[fingerprintsAt + 3] = 4
        #expect(throws: WireError.invalidValue(field: "fingerprint count", value: 4)) {
            try Message.decode(Array(miscounted.dropLast(2)), itemsMax: 64)
        }
        #expect(throws: WireError.lengthOverLimit(field: "fingerprint count", length: 5, limit: 4)) {
            try Message.decode(fingerprinted, itemsMax: 4)
        }
        var huge = fingerprinted
        huge[fingerprintsAt] = 0x7f
        #expect(throws: WireError.lengthOverLimit(field: "fingerprint count", length: 0x7f00_0005, limit: 64)) {
            try Message.decode(huge, itemsMax: 64)
        }
        var badFamily = gossip
        badFamily[12 + 1 + 24] = 5
        #expect(throws: WireError.invalidValue(field: "address family", value: 5)) {
            try Message.decode(badFamily, itemsMax: 64)
        }
    }

    /// Every sample damaged in one byte, and random bytes behind each message type: each is refused with a
    /// typed error, or decodes into a message within the item limit that encodes and decodes back to itself (what
    /// a decoder accepts is what it reports). Both outcomes must occur, so a decoder that refuses everything fails.
    @Test func damagedAndRandomBytesAreRefusedOrDecodeConsistently() throws {
        var rng = DeterministicRandom(seed: 5)
        var decoded = 0
        var refused = 0
        func check(_ bytes: [UInt8]) throws {
            let m: Message
            do throws(WireError) { m = try Message.decode(bytes, itemsMax: 64) } catch {
                refused += 1
                return
            }
            decoded += 1
            #expect(m.items.count <= 64)
            #expect(try Message.decode(m.encode(), itemsMax: 64) == m)
        }
        for sample in MessageCodecTests.samples {
            let good = sample.encode()
            for _ in 0..<200 {
                var bytes = good
                bytes[rng.below(bytes.count)] ^= UInt8(truncatingIfNeeded: 1 + rng.below(255))
                try check(bytes)
            }
        }
        for length in 0..<3000 {
            var bytes = rng.bytes(length % 300)
            if !bytes.isEmpty { bytes[0] = UInt8(1 + length % 6) }
            try check(bytes)
        }
        #expect(decoded > 100 && refused > 100, "decoded \(decoded), refused \(refused)")
    }
}
