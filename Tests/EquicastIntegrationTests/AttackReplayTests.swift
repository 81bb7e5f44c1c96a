import EquicastCore
import EquicastCrypto
import EquicastPosix
import Foundation
import Testing

/// Issue 32's attack on three agents, replayed: a device holding the fleet key sends well-sealed datagrams built
/// from docs/protocol.md (suspect at incarnation 2^64-1, forged leaves, a pinned sequence number, a pinned
/// status, unsigned members in bulk). The agents must stay up, keep their views, and still detect a real failure.
@Suite(.serialized) struct AttackReplayTests {
    /// A fleet-key holder on loopback: frames sealed under any sender id, sent from its own UDP socket.
    final class Attacker {
        let sealer: FleetKeyring
        let socket: UDPSocket
        var sequence: UInt64 = 1

        init(keyFile: String) throws {
            sealer = try FleetKeyring(primary: FleetKey(master: KeyFile.loadSymmetric(keyFile)))
            socket = try UDPSocket(bindingTo: SocketAddress(ipv4: 127, 0, 0, 1, port: 0))
        }

        func send(_ message: Message, as sender: NodeID, to port: Int, sequence explicit: UInt64? = nil) throws {
            sequence += 1
            let frame = FrameSealer(sender: sender, keyring: sealer, encryptionEnabled: true).seal(
                message.encode(), messageClass: .control, sequence: explicit ?? sequence,
                nonce: secureRandomBytes(24))
            _ = try socket.send(frame, to: SocketAddress(ipv4: 127, 0, 0, 1, port: UInt16(port)))
        }
    }

    /// Node i's view: id -> (state, incarnation).
    static func view(_ cluster: AgentCluster, _ i: Int) -> [String: (String, UInt64)] {
        guard let text = cluster.request(i, "members") else { return [:] }
        var out: [String: (String, UInt64)] = [:]
        for line in text.split(separator: "\n").dropFirst() {
            let cols = line.split(separator: "\t").map(String.init)
            if cols.count >= 4 { out[cols[0]] = (cols[2], UInt64(cols[3]) ?? 0) }
        }
        return out
    }

    @Test func threeAgentsStayUpWithTheirViewsIntact() throws {
        let cluster = AgentCluster(name: "attack")
        for i in 0..<3 { try cluster.start(i) }
        try #require(cluster.waitFor(seconds: 10) { (0..<3).allSatisfy { cluster.members($0)?.count == 3 } } != nil)
        let ids = try (0..<3).map { try #require(cluster.nodeID($0)).description }
        let nodeIDs = ids.map { NodeID(hex: $0)! }
        let before = AttackReplayTests.view(cluster, 0)
        let attacker = try Attacker(keyFile: cluster.directory + "/fleet.key")
        let stranger = NodeID(rawValue: 0xBAD)
        let address = { (i: Int) in SocketAddress(ipv4: 127, 0, 0, 1, port: UInt16(cluster.port(i))) }

        for round in 0..<3 {
            for target in 0..<3 {
                let victim = (target + 1) % 3
                let v = nodeIDs[victim]
                // Finding 1: suspect (and failed, and left) at the last incarnation there is.
                var items: [GossipItem] = [MemberState.suspect, .failed, .left].map {
                    .member(
                        MemberUpdate(state: $0, id: v, incarnation: .max, address: address(victim), reporter: stranger))
                }
                // Finding 4: left at the victim's incarnation + 1, unsigned and signed by a key of the attacker's.
                let inc = before[ids[victim]]?.1 ?? 0
                items.append(
                    .member(
                        MemberUpdate(state: .left, id: v, incarnation: inc + 1, address: address(victim), reporter: v)))
                // Finding 5: a status of the victim at sequence 2^64-1, version 999 committed, unsigned.
                items.append(
                    .status(
                        NodeStatus(
                            node: v, productTag: 1, sequence: .max, installedVersion: 999, targetVersion: 999,
                            state: .committed, chunksHave: 0, chunksTotal: 0)))
                try attacker.send(
                    Message(type: .gossip, digest: 0, items: items), as: stranger, to: cluster.port(target))
                // Finding 5: a frame under the victim's id numbered 2^64-1, to pin its replay window.
                try attacker.send(
                    Message(type: .gossip, digest: 0), as: v, to: cluster.port(target), sequence: .max - UInt64(round))
                // Finding 3, in part: strangers announced unsigned, in bulk.
                let fakes: [GossipItem] = (0..<60).map { k in
                    .member(
                        MemberUpdate(
                            state: .alive, id: NodeID(rawValue: 0xFA4E_0000 + UInt64(round * 100 + k)), incarnation: 1,
                            address: SocketAddress(ipv4: 127, 0, 0, 9, port: UInt16(2000 + k)),
                            reporter: stranger))
                }
                try attacker.send(
                    Message(type: .gossip, digest: 0, items: fakes), as: stranger, to: cluster.port(target))
            }
            Thread.sleep(forTimeInterval: 1)
        }
        Thread.sleep(forTimeInterval: 3)
        for i in 0..<3 {
            #expect(cluster.isRunning(i), "agent \(i) crashed")
            let view = AttackReplayTests.view(cluster, i)
            #expect(view.count == 3, "agent \(i) holds \(view.count) members")
            for (k, id) in ids.enumerated() {
                #expect(view[id]?.0 == "alive", "agent \(i) holds agent \(k) as \(view[id]?.0 ?? "unknown")")
                // Nobody's incarnation went anywhere near the end of its range.
                #expect((view[id]?.1 ?? 0) < (before[id]?.1 ?? 0) + 16, "agent \(k)'s incarnation at agent \(i)")
            }
            let status = cluster.status(i) ?? [:]
            #expect((Int(status["signatures_refused"] ?? "") ?? 0) + (Int(status["claims_refused"] ?? "") ?? 0) > 0)
        }
        // Failure detection still works: agent 2 killed is marked failed by both others.
        cluster.kill9(2)
        let detected = cluster.waitFor(seconds: 15) {
            (0..<2).allSatisfy { AttackReplayTests.view(cluster, $0)[ids[2]]?.0 == "failed" }
        }
        #expect(detected != nil, "the survivors did not mark the killed agent failed")
    }
}
