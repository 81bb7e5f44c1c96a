import EquicastCore
import Testing

@Suite struct MembershipTests {
    @Test(arguments: [1, 2, 3])
    func sixteenNodesConvergeThroughOneSeed(seed: UInt64) {
        let fleet = TestFleet(count: 16, seed: seed)
        let at = fleet.runUntil(deadline: 10_000) { fleet.converged() }
        #expect(at != nil, "seed \(seed): not converged after 10 s")
        #expect((at ?? .max) < 3_000, "seed \(seed): converged only at \(at ?? 0) ms")
        for n in fleet.nodes { #expect(n.presentCount == 15) }
        // All digests agree once converged.
        #expect(Set(fleet.nodes.map { $0.digest }).count == 1)
    }

    /// 128 nodes joining through one seed at the same moment: each joiner's snapshot misses the arrivals that
    /// follow it, so this needs the joiners' self-announcements and an early repair sync; convergence must not
    /// wait for the periodic sync pace.
    @Test(arguments: [1, 2, 3])
    func simultaneousJoinConvergesBeforeTheSyncInterval(seed: UInt64) {
        let fleet = TestFleet(count: 128, seed: seed)
        let at = fleet.runUntil(deadline: 10_000) { fleet.converged() }
        #expect(at != nil, "seed \(seed): not converged after 10 s")
        #expect((at ?? .max) < fleet.config.syncInterval, "seed \(seed): converged only at \(at ?? 0) ms")
    }

    @Test(arguments: [1, 2, 3])
    func crashedNodeIsDeclaredFailedWithinTheBound(seed: UInt64) {
        let fleet = TestFleet(count: 16, seed: seed)
        _ = fleet.runUntil(deadline: 10_000) { fleet.converged() }
        let crashAt = fleet.now
        fleet.crashed.insert(5)
        let at = fleet.runUntil(deadline: crashAt + 30_000) { fleet.converged(crashedState: .failed) }
        #expect(at != nil, "seed \(seed): survivors did not all mark the crashed node failed")
        // Bound: first probe within one ring cycle of probe periods, then HeartbeatTimeout, then gossip.
        let config = fleet.config
        let bound = config.probeInterval * UInt64(config.ringSize + 1) + config.heartbeatTimeout + 1000
        #expect((at ?? .max) - crashAt <= bound, "seed \(seed): took \((at ?? 0) - crashAt) ms, bound \(bound)")
        // Nobody else was falsely declared failed.
        for (i, e) in fleet.eventLog where i != 5 {
            if case .memberFailed(let id) = e { #expect(id == fleet.nodes[5].id) }
        }
    }

    @Test func suspectedNodeRefutesWithHigherIncarnation() {
        let fleet = TestFleet(count: 8, seed: 4)
        _ = fleet.runUntil(deadline: 10_000) { fleet.converged() }
        let before = fleet.nodes[3].incarnation
        // Cut node 3's inbound traffic from everyone long enough to be suspected, not failed.
        for i in fleet.nodes.indices where i != 3 { fleet.blocked.insert([i, 3]) }
        let suspected = fleet.runUntil(deadline: fleet.now + 10_000) {
            (0..<8).contains { $0 != 3 && fleet.state(of: 3, seenBy: $0) == .suspect }
        }
        #expect(suspected != nil)
        fleet.blocked.removeAll()
        let healed = fleet.runUntil(deadline: fleet.now + 20_000) { fleet.converged() }
        #expect(healed != nil, "node 3 did not recover everywhere")
        #expect(fleet.nodes[3].incarnation > before)
        #expect(fleet.nodes[3].counters.refutations >= 1)
        for i in fleet.nodes.indices where i != 3 {
            #expect(fleet.nodes[i].member(fleet.nodes[3].id)?.incarnation == fleet.nodes[3].incarnation)
        }
    }

    @Test func gracefulLeaveShowsAsLeftNotFailed() {
        let fleet = TestFleet(count: 10, seed: 5)
        _ = fleet.runUntil(deadline: 10_000) { fleet.converged() }
        fleet.nodes[7].handleCommand(.leave, now: fleet.now)
        _ = fleet.runUntil(deadline: fleet.now + 5_000) { fleet.nodes[7].leaveComplete }
        fleet.crashed.insert(7)  // the process exits after announcing
        let at = fleet.runUntil(deadline: fleet.now + 10_000) { fleet.converged(crashedState: .left) }
        #expect(at != nil, "not every node saw node 7 leave")
        for (_, e) in fleet.eventLog {
            if case .memberFailed(let id) = e {
                #expect(id != fleet.nodes[7].id, "a graceful leave was taken for a failure")
            }
        }
    }

    @Test func restartedNodeRejoinsWithHigherIncarnation() {
        let fleet = TestFleet(count: 10, seed: 6)
        _ = fleet.runUntil(deadline: 10_000) { fleet.converged() }
        fleet.crashed.insert(4)
        _ = fleet.runUntil(deadline: fleet.now + 30_000) { fleet.converged(crashedState: .failed) }
        #expect(fleet.state(of: 4, seenBy: 0) == .failed)
        let oldIncarnation = fleet.nodes[4].incarnation
        fleet.restart(4)
        let at = fleet.runUntil(deadline: fleet.now + 10_000) { fleet.converged() }
        #expect(at != nil, "restarted node not alive everywhere")
        #expect(fleet.nodes[4].incarnation > oldIncarnation)
        #expect(fleet.nodes[0].member(fleet.nodes[4].id)?.incarnation == fleet.nodes[4].incarnation)
    }

    @Test func digestMismatchTriggersSyncThatRepairsAView() {
        let fleet = TestFleet(count: 12, seed: 8)
        _ = fleet.runUntil(deadline: 10_000) { fleet.converged() }
        // Node 11 misses the gossip about a member leaving...
        for i in fleet.nodes.indices where i != 11 { fleet.blocked.insert([i, 11]) }
        fleet.nodes[2].handleCommand(.leave, now: fleet.now)
        _ = fleet.runUntil(deadline: fleet.now + 5_000) { fleet.nodes[2].leaveComplete }
        fleet.crashed.insert(2)
        fleet.run(until: fleet.now + 3_000)  // long enough for the leave's retransmissions to run out
        fleet.blocked.removeAll()
        #expect(fleet.state(of: 2, seenBy: 11) != .left)
        let syncsBefore = fleet.nodes.reduce(0) { $0 + $1.counters.syncsCompleted }
        // ...and learns it through a digest-triggered sync, since no gossip about it is left to carry it.
        let at = fleet.runUntil(deadline: fleet.now + 20_000) { fleet.state(of: 2, seenBy: 11) == .left }
        #expect(at != nil, "node 11 never learned that node 2 left")
        #expect(fleet.nodes.reduce(0) { $0 + $1.counters.syncsCompleted } > syncsBefore)
    }

    @Test func broadcastReachesEveryNode() {
        let fleet = TestFleet(count: 16, seed: 9)
        _ = fleet.runUntil(deadline: 10_000) { fleet.converged() }
        fleet.nodes[3].handleCommand(.broadcast(Array("pause rollout".utf8)), now: fleet.now)
        let start = fleet.now
        let at = fleet.runUntil(deadline: start + 5_000) {
            fleet.nodes.indices.allSatisfy { i in
                i == 3
                    || fleet.eventLog.contains {
                        $0.node == i
                            && {
                                if case .eventReceived(let e) = $0.event {
                                    return e.payload == Array("pause rollout".utf8)
                                } else {
                                    return false
                                }
                            }($0)
                    }
            }
        }
        #expect(at != nil)
        #expect((at ?? .max) - start < 500, "broadcast took \((at ?? 0) - start) ms")
    }

    @Test func idleFleetSendsOnlyProbes() {
        let fleet = TestFleet(count: 8, seed: 10)
        _ = fleet.runUntil(deadline: 10_000) { fleet.converged() }
        fleet.run(until: fleet.now + 20_000)  // let every queue drain
        let before = fleet.nodes.map { $0.counters.packetsOut }
        let probesBefore = fleet.nodes.map { $0.counters.probesSent }
        fleet.run(until: fleet.now + 10_000)
        for (i, n) in fleet.nodes.enumerated() {
            let sent = n.counters.packetsOut - before[i]
            let probes = n.counters.probesSent - probesBefore[i]
            // Each probe costs this node one ping; it also acks the pings it receives (about one per period).
            #expect(probes >= 8 && probes <= 11, "node \(i) sent \(probes) probes in 10 s")
            #expect(sent <= probes * 3 + 4, "node \(i) sent \(sent) packets in 10 idle seconds")
        }
    }

    /// Two halves cut apart long enough to declare each other failed find each other again after the cut
    /// heals: reconnect syncs carry each side's verdict across, and everyone refutes. (With reconnects turned
    /// off this fleet never heals.)
    @Test func healedPartitionRejoinsIntoOneFleet() {
        let fleet = TestFleet(count: 12, seed: 12)
        _ = fleet.runUntil(deadline: 10_000) { fleet.converged() }
        for i in 0..<6 { for j in 6..<12 { fleet.blocked.insert([i, j]); fleet.blocked.insert([j, i]) } }
        let split = fleet.runUntil(deadline: fleet.now + 30_000) {
            (0..<6).allSatisfy { i in (6..<12).allSatisfy { fleet.state(of: $0, seenBy: i) == .failed } }
        }
        #expect(split != nil, "the halves never declared each other failed")
        fleet.blocked.removeAll()
        let healedAt = fleet.now
        let joined = fleet.runUntil(deadline: healedAt + 60_000) { fleet.converged() }
        #expect(joined != nil, "the halves never found each other again")
        let bound = 3 * fleet.config.reconnectInterval
        #expect((joined ?? .max) - healedAt <= bound, "took \((joined ?? 0) - healedAt) ms")
    }

    /// Loads `count` IPv4 members into a lone node through join-style sync requests (which it merges) and
    /// returns their ids.
    /// Loads `count` made-up members into `node` as the replies to pulls it makes (a pull request may carry only
    /// its sender's record, and gossip introduces new members at a bounded rate).
    static func loadMembers(_ node: Node, count: Int, sealer: FrameSealer, rng: inout DeterministicRandom) -> [NodeID] {
        var ids: [NodeID] = []
        var sequence: UInt64 = 1
        while node.pollTransmit() != nil {}
        while ids.count < count {
            node.handleCommand(.join([SocketAddress(ipv4: 10, 0, 0, 250, port: 7946)]), now: 10)
            var pull: UInt64?
            while let t = node.pollTransmit() {
                if case .streamOpen(let sid, _, _) = t { pull = sid }
            }
            guard let sid = pull else { break }
            var items: [GossipItem] = []
            for _ in 0..<min(1_000, count - ids.count) {
                ids.append(NodeID(rawValue: rng.next()))
                let address = SocketAddress(bytes: rng.bytes(4), port: 7946)!
                items.append(
                    .member(NodeIdentity(simulated: ids.last!).record(incarnation: 1, address: address)))
            }
            let reply = Message(type: .syncResponse, digest: 0, items: items).encode()
            node.handleStreamFrame(
                sealer.seal(reply, messageClass: .control, sequence: sequence, nonce: rng.bytes(24)),
                stream: .outgoing(sid), now: 10)
            sequence += 1
        }
        while node.pollTransmit() != nil {}
        return ids
    }

    /// The node's bucket digests and counts and the members of each bucket, recomputed from its member list.
    static func summary(_ node: Node, buckets n: Int) -> (digests: [UInt64], counts: [UInt16], members: [Set<NodeID>]) {
        var digests = [UInt64](repeating: 0, count: n)
        var counts = [UInt16](repeating: 0, count: n)
        var members = [Set<NodeID>](repeating: [], count: n)
        for m in node.members where m.state.isPresent {
            let b = Int(m.id.rawValue >> UInt64(64 - n.trailingZeroBitCount))
            digests[b] = digests[b] &+ Node.digestTerm(m.id, m.incarnation)
            counts[b] += 1
            members[b].insert(m.id)
        }
        return (digests, counts, members)
    }

    /// A lone node holding `count` members, learnt through join-style sync requests from a peer (id 0x5eed) that
    /// `sealer` speaks for.
    static func loadedNode(count: Int, seed: UInt64, config: MembershipConfig = MembershipConfig()) -> (
        node: Node, sealer: FrameSealer, ids: [NodeID], rng: DeterministicRandom
    ) {
        let node = TestFleet(count: 1, config: config, scheme: .simulated).nodes[0]
        let sealer = FrameSealer(sender: NodeID(rawValue: 0x5eed), keyring: TestFleet.keyring, encryptionEnabled: true)
        var rng = DeterministicRandom(seed: seed)
        let ids = loadMembers(node, count: count, sealer: sealer, rng: &rng)
        return (node, sealer, ids, rng)
    }

    /// Tells `node`, in a sync request from `sealer`'s sender, that `member` has failed.
    static func tellFailed(
        _ node: Node, _ member: NodeID, sealer: FrameSealer, sequence: UInt64, rng: inout DeterministicRandom,
        now: UInt64
    ) {
        _ = try? tell(node, member, is: .failed, sealer: sealer, sequence: sequence, rng: &rng, now: now)
    }

    /// Tells `node`, in a gossip datagram from `sealer`'s member, that `member` is in `state`; returns whom the
    /// node pinged in response.
    static func tell(
        _ node: Node, _ member: NodeID, is state: MemberState, sealer: FrameSealer, sequence: UInt64,
        rng: inout DeterministicRandom, now: UInt64
    ) throws -> [NodeID] {
        let news = NodeIdentity(simulated: member).record(
            state, incarnation: 1, address: node.member(member)!.address, reporter: sealer.sender)
        let gossip = Message(type: .gossip, digest: 0, items: [.member(news)]).encode()
        node.handleDatagram(
            sealer.seal(gossip, messageClass: .control, sequence: sequence, nonce: rng.bytes(24)),
            from: SocketAddress(ipv4: 10, 0, 0, 250, port: 7946), now: now)
        var opener = FrameOpener(keyring: TestFleet.keyring, requireEncryption: true, senderCapacity: 4)
        var pinged: [NodeID] = []
        while let t = node.pollTransmit() {
            guard case .datagram(_, let bytes) = t else { continue }
            let m = try Message.decode(
                try opener.open(bytes, transport: .datagram).payload, itemsMax: Message.datagramItemsMax)
            if m.type == .ping { pinged.append(m.target) }
        }
        return pinged
    }

    /// Sends one sync request to `node` and returns the decoded reply.
    static func pull(
        _ node: Node, request: Message, sealer: FrameSealer, sequence: UInt64, rng: inout DeterministicRandom
    ) throws -> Message {
        node.handleStreamFrame(
            sealer.seal(request.encode(), messageClass: .control, sequence: sequence, nonce: rng.bytes(24)),
            stream: .accepted(sequence), now: 20)
        var replies: [[UInt8]] = []
        while let t = node.pollTransmit() {
            if case .streamReply(_, let bytes) = t { replies.append(bytes) }
        }
        try #require(replies.count == 1)
        var opener = FrameOpener(keyring: TestFleet.keyring, requireEncryption: true, senderCapacity: 4)
        let reply = try Message.decode(try opener.open(replies[0], transport: .stream).payload, itemsMax: 20_000)
        #expect(reply.type == .syncResponse)
        return reply
    }

    static func ids(_ m: Message) -> [NodeID] {
        m.items.compactMap { item -> NodeID? in
            if case .member(let u) = item { return u.id } else { return nil }
        }
    }

    /// A member's pull names its view by 256 bucket digests; the reply holds the node itself and every member
    /// of each bucket whose digest differs, whole buckets only, within the reply budget.
    @Test func pullReplyCarriesWholeDifferingBucketsWithinTheBudget() throws {
        var (node, sealer, _, rng) = MembershipTests.loadedNode(count: 14_000, seed: 42)
        #expect(node.presentCount == 14_000)
        let coarse = MembershipTests.summary(node, buckets: Message.bucketCount)
        let fine = MembershipTests.summary(node, buckets: Message.fineBucketCount)
        let finest = MembershipTests.summary(node, buckets: Message.finestBucketCount)
        #expect(coarse.digests.reduce(0, &+) == node.digest)

        // A few buckets differ (at any granularity): exactly their members come back, after the node itself.
        let cases = [(coarse, [3, 77, 200]), (fine, [0, 500, 501, 1023]), (finest, [1, 2, 2047, 2048, 4095])]
        for (k, (s, differing)) in cases.enumerated() {
            var theirs = s.digests
            for b in differing { theirs[b] = theirs[b] &+ 1 }
            let request = Message(type: .syncRequest, digest: 1, bucketDigests: theirs, bucketCounts: s.counts)
            let reply = try MembershipTests.pull(
                node, request: request, sealer: sealer, sequence: 100 + UInt64(k), rng: &rng)
            let ids = MembershipTests.ids(reply)
            #expect(ids.first == node.id)
            let expected = differing.reduce(into: Set<NodeID>()) { $0.formUnion(s.members[$1]) }
            #expect(Set(ids.dropFirst()) == expected.subtracting([node.id]))
        }

        // Every bucket differs and the requester holds nothing: whole buckets, fullest first, up to the 64 KiB
        // budget, not the whole view.
        let all = Message(
            type: .syncRequest, digest: 1, bucketDigests: [UInt64](repeating: 0, count: 256),
            bucketCounts: [UInt16](repeating: 0, count: 256))
        let reply = try MembershipTests.pull(node, request: all, sealer: sealer, sequence: 110, rng: &rng)
        let replyIDs = Set(MembershipTests.ids(reply).dropFirst())
        #expect(reply.encode().count <= node.config.syncReplyByteBudget)
        #expect(replyIDs.count > 1_000 && replyIDs.count < 14_000, "\(replyIDs.count) members")
        var sentSizes: [Int] = []
        var unsentSizes: [Int] = []
        for b in 0..<Message.bucketCount {
            let others = coarse.members[b].subtracting([node.id])
            if others.isDisjoint(with: replyIDs) {
                unsentSizes.append(coarse.members[b].count)
            } else {
                #expect(others.isSubset(of: replyIDs), "bucket \(b) sent in part")
                sentSizes.append(coarse.members[b].count)
            }
        }
        #expect((sentSizes.min() ?? 0) >= (unsentSizes.max() ?? 0), "a fuller bucket was left for later")
    }

    /// After a wave of failures, a pull from a node that has heard of none of them gets the latest departures
    /// first, newest first, then the rest of their buckets; when the departures alone overflow the reply, it
    /// carries nothing else (whole buckets from a random start would carry a fraction of them).
    @Test func pullReplySendsTheLatestDeparturesFirst() throws {
        var (node, sealer, ids, rng) = MembershipTests.loadedNode(count: 14_000, seed: 43)
        let before = MembershipTests.summary(node, buckets: Message.finestBucketCount)
        var sequence: UInt64 = 1000
        func fail(_ members: ArraySlice<NodeID>) {
            for m in members {
                sequence += 1
                MembershipTests.tellFailed(node, m, sealer: sealer, sequence: sequence, rng: &rng, now: 15)
            }
        }
        func pullWithOldView() throws -> [MemberUpdate] {
            sequence += 1
            let request = Message(
                type: .syncRequest, digest: 1, bucketDigests: before.digests, bucketCounts: before.counts)
            let reply = try MembershipTests.pull(node, request: request, sealer: sealer, sequence: sequence, rng: &rng)
            return reply.items.compactMap { item -> MemberUpdate? in
                if case .member(let u) = item { return u } else { return nil }
            }
        }

        // 100 failures: those, newest first, then the other members of their buckets, and nothing more.
        fail(ids[0..<100])
        var got = try pullWithOldView()
        #expect(got.first?.id == node.id)
        #expect(got[1...100].map(\.id) == ids[0..<100].reversed())
        #expect(got[1...100].allSatisfy { $0.state == .failed })
        let shift = UInt64(64 - Message.finestBucketCount.trailingZeroBitCount)
        let differing = Set(ids[0..<100].map { Int($0.rawValue >> shift) })
        let rest = differing.reduce(into: Set<NodeID>()) { $0.formUnion(before.members[$1]) }
            .subtracting(ids[0..<100]).subtracting([node.id])
        #expect(Set(got.dropFirst(101).map(\.id)) == rest)
        #expect(got.count == 101 + rest.count)

        // 2,500 failures overflow a reply: it holds the latest of them, newest first, and no other record.
        fail(ids[100..<2_500])
        got = try pullWithOldView()
        #expect(got.count > 1_000 && got.count < 2_501, "\(got.count) records")
        #expect(got.dropFirst().map(\.id) == Array(ids[0..<2_500].reversed().prefix(got.count - 1)))
    }

    /// A sync request naming `view` (ids and incarnations of the members the requester holds present) in `n`
    /// buckets, with the fingerprint of each member listed bucket by bucket.
    static func request(naming view: [(id: NodeID, incarnation: UInt64)], buckets n: Int) -> Message {
        let shift = UInt64(64 - n.trailingZeroBitCount)
        var digests = [UInt64](repeating: 0, count: n)
        var counts = [UInt16](repeating: 0, count: n)
        var lists = [[UInt16]](repeating: [], count: n)
        for m in view {
            let b = Int(m.id.rawValue >> shift)
            let term = Node.digestTerm(m.id, m.incarnation)
            digests[b] = digests[b] &+ term
            counts[b] += 1
            lists[b].append(UInt16(truncatingIfNeeded: term))
        }
        return Message(
            type: .syncRequest, digest: digests.reduce(0, &+), bucketDigests: digests, bucketCounts: counts,
            memberFingerprints: lists.flatMap { $0 })
    }

    /// A requester lists its members' fingerprints only while pulls keep adding members: after a pull that added
    /// `fingerprintPullGain` (32) or more, not after one that added fewer (in a wave of failures a listed pull
    /// would cost the whole view in fingerprints for a few departures).
    @Test func pullsListFingerprintsOnlyWhilePullsAddMembers() throws {
        var (node, _, ids, rng) = MembershipTests.loadedNode(count: 40, seed: 46)
        let peer = ids[0]
        let peerSealer = FrameSealer(sender: peer, keyring: TestFleet.keyring, encryptionEnabled: true)
        var opener = FrameOpener(keyring: TestFleet.keyring, requireEncryption: true, senderCapacity: 4)
        var now: UInt64 = 100
        var sequence: UInt64 = 100
        // The peer shows a view unlike ours; the node pulls from it. Returns the request's stream, how many
        // fingerprints it lists and how many members its bucket counts hold.
        func nextPull() throws -> (sid: UInt64, fingerprints: Int, members: Int) {
            sequence += 1
            let hello = Message(type: .gossip, digest: node.digest &+ 1).encode()
            node.handleDatagram(
                peerSealer.seal(hello, messageClass: .control, sequence: sequence, nonce: rng.bytes(24)),
                from: node.member(peer)!.address, now: now)
            for _ in 0..<50 {
                now = max(now + 1, node.pollTimeout())
                node.handleTimeout(now: now)
                while let t = node.pollTransmit() {
                    guard case .streamOpen(let sid, _, let bytes) = t else { continue }
                    let m = try Message.decode(
                        try opener.open(bytes, transport: .stream).payload, itemsMax: 20_000)
                    try #require(m.type == .syncRequest && !m.bucketCounts.isEmpty)
                    return (sid, m.memberFingerprints.count, m.bucketCounts.reduce(0) { $0 + Int($1) })
                }
            }
            throw PullNotStarted()
        }
        // Answers pull `sid` with `count` members the node lacks.
        func answer(_ sid: UInt64, adding count: Int) {
            var items: [GossipItem] = []
            for _ in 0..<count {
                let address = SocketAddress(bytes: rng.bytes(4), port: 7946)!
                items.append(
                    .member(
                        NodeIdentity(simulated: NodeID(rawValue: rng.next())).record(incarnation: 1, address: address)))
            }
            sequence += 1
            let reply = Message(type: .syncResponse, digest: 0, items: items).encode()
            node.handleStreamFrame(
                peerSealer.seal(reply, messageClass: .control, sequence: sequence, nonce: rng.bytes(24)),
                stream: .outgoing(sid), now: now)
            while node.pollTransmit() != nil {}
        }
        let first = try nextPull()
        #expect(first.members > 40 && first.fingerprints == first.members)  // until a pull says otherwise
        answer(first.sid, adding: Node.fingerprintPullGain)
        let second = try nextPull()
        #expect(second.members == first.members + Node.fingerprintPullGain)
        #expect(second.fingerprints == second.members)
        answer(second.sid, adding: Node.fingerprintPullGain - 1)
        let third = try nextPull()
        #expect(third.members == second.members + Node.fingerprintPullGain - 1)
        #expect(third.fingerprints == 0)
        answer(third.sid, adding: 0)
        #expect(try nextPull().fingerprints == 0)
    }

    struct PullNotStarted: Error {}

    /// A pull that lists its members' fingerprints gets exactly the members it lacks (or holds at another
    /// incarnation), not whole differing buckets; a bucket where it holds everything the responder does, and
    /// more, costs nothing; a bucket whose difference the 16-bit fingerprints cannot show comes whole.
    @Test func pullReplyWithFingerprintsCarriesOnlyWhatTheRequesterLacks() throws {
        var (node, sealer, ids, rng) = MembershipTests.loadedNode(count: 3_000, seed: 45)
        let n = Message.fineBucketCount
        let shift = UInt64(64 - n.trailingZeroBitCount)
        // The requester holds about 85% of the members, one of them at an older incarnation, plus members the
        // node has never heard of in buckets where it holds all the node's members.
        var view: [(id: NodeID, incarnation: UInt64)] = [(node.id, node.incarnation)]
        var lacking = Set<NodeID>()
        for (i, m) in ids.enumerated() {
            if rng.below(100) < 15 || i == 7 { lacking.insert(m) } else { view.append((m, 1)) }
        }
        view.append((ids[7], 0))
        let complete = Set(0..<n).subtracting(lacking.map { Int($0.rawValue >> shift) })
        for b in complete.sorted().prefix(5) { view.append((NodeID(rawValue: UInt64(b) << shift | 0xabc), 1)) }
        var reply = try MembershipTests.pull(
            node, request: MembershipTests.request(naming: view, buckets: n), sealer: sealer, sequence: 100,
            rng: &rng)
        var got = MembershipTests.ids(reply)
        #expect(got.first == node.id)
        #expect(got.count == Set(got).count, "a member sent twice")
        #expect(Set(got.dropFirst()) == lacking)

        // A member held at an incarnation whose fingerprint collides with the node's: the digest differs, the
        // fingerprints show nothing missing, and the whole bucket comes.
        let held = ids.first { !lacking.contains($0) }!
        let wanted = Node.digestTerm(held, 1) & 0xffff
        let other = (2..<UInt64(1 << 22)).first { Node.digestTerm(held, $0) & 0xffff == wanted }!
        let collided = [(node.id, node.incarnation)] + ids.map { (id: $0, incarnation: $0 == held ? other : 1) }
        reply = try MembershipTests.pull(
            node, request: MembershipTests.request(naming: collided, buckets: n), sealer: sealer, sequence: 101,
            rng: &rng)
        got = MembershipTests.ids(reply)
        let bucket = Set(ids.filter { $0.rawValue >> shift == held.rawValue >> shift }).subtracting([node.id])
        #expect(Set(got.dropFirst()) == bucket)
        #expect(bucket.contains(held))
    }

    /// A member that has just become a ring neighbour (the one before it failed) gets the next probe, whatever
    /// the turn of the neighbour cycle: in a crash of many at once it may be down too and watched by nobody.
    @Test func newRingNeighbourIsProbedFirst() throws {
        var config = MembershipConfig()
        config.heartbeatTimeout = 600_000  // no suspicion may end while the test runs
        var (node, sealer, _, rng) = MembershipTests.loadedNode(count: 40, seed: 44, config: config)
        var opener = FrameOpener(keyring: TestFleet.keyring, requireEncryption: true, senderCapacity: 4)
        var now: UInt64 = 10
        func nextProbe() throws -> NodeID? {
            try MembershipTests.nextProbe(node, opener: &opener, now: &now, answer: true)
        }
        // A full cycle: every neighbour has had its probe.
        for _ in 0..<6 { _ = try nextProbe() }
        // The neighbours among all present members: one that has not answered a probe yet is probed before it
        // takes its place in the ring.
        func nearest() -> [NodeID] {
            let others = node.members.filter { $0.state.isPresent && $0.id != node.id }.map { $0.id }
            return PeerSelection.ringNeighbours(selfID: node.id, sortedIDs: others.sorted(), perSide: 2)
        }
        var sequence: UInt64 = 1000
        for round in 0..<3 {
            let ring = nearest()
            let gone = ring[round % ring.count]
            sequence += 1
            MembershipTests.tellFailed(node, gone, sealer: sealer, sequence: sequence, rng: &rng, now: now)
            let fresh = nearest().filter { !ring.contains($0) }
            try #require(fresh.count == 1, "round \(round)")
            #expect(try nextProbe() == fresh[0], "round \(round)")
            #expect(node.ringNeighbours.contains(fresh[0]), "round \(round)")
        }
    }

    /// Runs `node`'s timers up to its next probe and returns the probe's target (the first, when one wake-up
    /// sends several). `answer`: every target acks, so that it stays alive in the node's view (unanswered probes
    /// make it suspect).
    static func nextProbe(_ node: Node, opener: inout FrameOpener, now: inout UInt64, answer: Bool = false) throws
        -> NodeID?
    {
        for _ in 0..<20 {
            now = max(now, node.pollTimeout())
            node.handleTimeout(now: now)
            var pings: [Message] = []
            while let t = node.pollTransmit() {
                guard case .datagram(_, let bytes) = t else { continue }
                let m = try Message.decode(
                    try opener.open(bytes, transport: .datagram).payload, itemsMax: Message.datagramItemsMax)
                if m.type == .ping { pings.append(m) }
            }
            guard let first = pings.first else { continue }
            for ping in pings where answer {
                guard let address = node.member(ping.target)?.address else { continue }
                let ack = Message(type: .ack, digest: node.digest, probeID: ping.probeID).encode()
                var nonces = DeterministicRandom(seed: now ^ ping.target.rawValue)
                let sealer = FrameSealer(sender: ping.target, keyring: TestFleet.keyring, encryptionEnabled: true)
                node.handleDatagram(
                    sealer.seal(ack, messageClass: .control, sequence: now, nonce: nonces.bytes(24)), from: address,
                    now: now)
                while node.pollTransmit() != nil {}
            }
            return first.target
        }
        return nil
    }

    /// A suspect ring neighbour is passed over for the member beyond it, which is probed at once and from then on
    /// in the suspect's turn, and which this node now verifies suspicions of: in a crash of many at once the
    /// members beyond a crashed neighbour may be down too, and their own neighbours with them.
    @Test func memberBeyondASuspectNeighbourIsWatched() throws {
        var config = MembershipConfig()
        config.heartbeatTimeout = 600_000  // no suspicion may end while the test runs
        var (node, sealer, _, rng) = MembershipTests.loadedNode(count: 40, seed: 45, config: config)
        var opener = FrameOpener(keyring: TestFleet.keyring, requireEncryption: true, senderCapacity: 4)
        var now: UInt64 = 10
        func nextProbe() throws -> NodeID? {
            try MembershipTests.nextProbe(node, opener: &opener, now: &now, answer: true)
        }
        for _ in 0..<6 { _ = try nextProbe() }
        let ring = node.ringNeighbours
        let suspect = ring[0]
        // Told of the suspicion, a ring neighbour checks it at once.
        #expect(
            try MembershipTests.tell(node, suspect, is: .suspect, sealer: sealer, sequence: 1000, rng: &rng, now: now)
                == [suspect])
        let others = node.members.map { $0.id }.filter { $0 != node.id && $0 != suspect }
        let beyond = PeerSelection.ringNeighbours(selfID: node.id, sortedIDs: others.sorted(), perSide: 2)
            .filter { !ring.contains($0) }
        try #require(beyond.count == 1)
        #expect(node.ringNeighbours == ring)  // still a ring neighbour (and gossip target) while only suspected
        #expect(try nextProbe() == beyond[0])
        // A full cycle and more: every watched member in turn, never the suspect.
        var probed: Set<NodeID> = []
        for _ in 0..<10 {
            let target = try #require(try nextProbe())
            #expect(target != suspect)
            probed.insert(target)
        }
        #expect(probed.isSuperset(of: Set(ring.dropFirst() + beyond)))
        // A suspicion of the member beyond, raised by someone else, is checked by this node now.
        #expect(
            try MembershipTests.tell(node, beyond[0], is: .suspect, sealer: sealer, sequence: 1001, rng: &rng, now: now)
                == [beyond[0]])
    }

    /// A joining node is introduced, not handed the view: the node itself, the 3 members nearest the joiner on
    /// the id ring (nearest first), and a random other, 5 records in all.
    @Test func joinerGetsABoundedIntroduction() throws {
        var (node, _, ids, rng) = MembershipTests.loadedNode(count: 3_000, seed: 7)
        let joiner = NodeID(rawValue: rng.next())
        let hello = Message(
            type: .syncRequest, digest: Node.digestTerm(joiner, 1),
            items: [
                .member(
                    NodeIdentity(simulated: joiner).record(
                        incarnation: 1, address: SocketAddress(ipv4: 10, 0, 0, 9, port: 7946)))
            ])
        let joinerSealer = FrameSealer(sender: joiner, keyring: TestFleet.keyring, encryptionEnabled: true)
        let reply = try MembershipTests.pull(node, request: hello, sealer: joinerSealer, sequence: 1, rng: &rng)
        let got = MembershipTests.ids(reply)
        #expect(got.count == 5)
        #expect(got.first == node.id)
        #expect(Set(got).count == got.count)
        func distance(_ id: NodeID) -> UInt64 { min(id.rawValue &- joiner.rawValue, joiner.rawValue &- id.rawValue) }
        let nearest = ids.sorted { distance($0) < distance($1) }.prefix(3)
        #expect(Array(got[1...3]) == Array(nearest))
        #expect(!got.contains(joiner))
        // The node took the joiner in.
        #expect(node.member(joiner)?.state == .alive)
    }
}
