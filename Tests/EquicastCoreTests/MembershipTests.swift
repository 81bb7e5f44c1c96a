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

    /// A view larger than one stream frame still syncs in one valid frame: the node itself, then its ring
    /// neighbourhood in order, as much as fits.
    @Test func syncOfALargeViewFitsOneStreamFrame() throws {
        let node = TestFleet(count: 1).nodes[0]
        let peer = NodeID(rawValue: 0x5eed)
        let sealer = FrameSealer(sender: peer, keyring: TestFleet.keyring, encryptionEnabled: true)
        var rng = DeterministicRandom(seed: 42)
        var sent: [NodeID] = []
        // Two requests of 7,000 IPv6 members each: 14,001 members, about 660 KB of state.
        for batch in 0..<2 {
            var items: [GossipItem] = []
            for _ in 0..<7_000 {
                let address = SocketAddress(bytes: rng.bytes(16), port: 7946)!
                sent.append(NodeID(rawValue: rng.next()))
                items.append(
                    .member(
                        MemberUpdate(
                            state: .alive, id: sent.last!, incarnation: 1, address: address,
                            reporter: peer)))
            }
            let request = Message(type: .syncRequest, digest: 0, items: items).encode()
            let frame = sealer.seal(request, messageClass: .control, sequence: UInt64(batch + 1), nonce: rng.bytes(24))
            node.handleStreamFrame(frame, stream: .accepted(UInt64(batch)), now: 10)
        }
        #expect(node.presentCount == 14_000)
        var replies: [[UInt8]] = []
        while let t = node.pollTransmit() {
            if case .streamReply(_, let bytes) = t { replies.append(bytes) }
        }
        try #require(replies.count == 2)
        var framer = StreamFramer()
        framer.append(replies[1])
        let frame = try #require(try framer.nextFrame())
        var opener = FrameOpener(keyring: TestFleet.keyring, requireEncryption: true, senderCapacity: 4)
        let reply = try Message.decode(try opener.open(frame, transport: .stream).payload, itemsMax: 20_000)
        #expect(reply.type == .syncResponse)
        #expect(reply.items.count > 10_000 && reply.items.count < 14_001, "\(reply.items.count) items")
        let ids = reply.items.compactMap { item -> NodeID? in
            if case .member(let u) = item { return u.id } else { return nil }
        }
        #expect(ids.first == node.id)
        // The rest are the members nearest on the ring after the node, in order, with none skipped.
        let ringOrder = sent.sorted { $0.rawValue &- node.id.rawValue < $1.rawValue &- node.id.rawValue }
        #expect(Array(ids.dropFirst()) == Array(ringOrder.prefix(ids.count - 1)))
    }
}
