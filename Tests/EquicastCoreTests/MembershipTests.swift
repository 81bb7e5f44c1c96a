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
}
