import EquicastCore
import Foundation
import Testing

/// Multi-process tests: real equicastd processes on loopback (run `swift build` first; `make test` does).
@Suite(.serialized) struct ClusterTests {
    /// 16 agents join through one seed and all see 16 alive; kill -9 of one is seen as failed by every survivor
    /// within the bound; SIGTERM of another is seen as left, not failed.
    @Test func sixteenAgentsJoinDetectFailureAndLeave() throws {
        let cluster = AgentCluster(name: "sixteen")
        for i in 0..<16 { try cluster.start(i) }
        let ids = (0..<16).map { i in
            cluster.waitFor(seconds: 5) { cluster.nodeID(i) != nil }.flatMap { _ in cluster.nodeID(i) }
        }
        #expect(ids.allSatisfy { $0 != nil }, "some agents did not start: \(ids)")
        let joined = cluster.waitFor(seconds: 15) {
            (0..<16).allSatisfy { i in
                let m = cluster.members(i) ?? [:]
                return m.count == 16 && m.values.allSatisfy { $0 == "alive" }
            }
        }
        #expect(joined != nil, "not every agent saw 16 alive")

        let victim = 7
        let victimID = try #require(ids[victim])
        cluster.kill9(victim)
        // Bound: a ring cycle of probe periods (5 x 500 ms) + HeartbeatTimeout (2.5 s) + dissemination slack.
        let detected = cluster.waitFor(seconds: 8) {
            (0..<16).filter { $0 != victim }.allSatisfy { cluster.members($0)?[victimID] == "failed" }
        }
        #expect(detected != nil, "not every survivor marked the killed agent failed within 8 s")
        print(
            "cluster: 16 joined in \(joined ?? -1) s; kill -9 seen as failed by all 15 survivors in \(detected ?? -1) s"
        )

        let leaver = 11
        let leaverID = try #require(ids[leaver])
        cluster.terminate(leaver)
        #expect(!cluster.isRunning(leaver))
        let left = cluster.waitFor(seconds: 5) {
            (0..<16).filter { $0 != victim && $0 != leaver }.allSatisfy { cluster.members($0)?[leaverID] == "left" }
        }
        #expect(left != nil, "a graceful stop did not show as left everywhere")
        for i in 0..<16 where i != victim && i != leaver {
            #expect(cluster.members(i)?.values.filter { $0 == "failed" }.count == 1, "agent \(i) has false failures")
        }
    }

    /// A node with another fleet key is never admitted, and the others count authentication failures.
    @Test func wrongFleetKeyIsNeverAdmitted() throws {
        let cluster = AgentCluster(name: "wrongkey")
        try cluster.writeKey("other.key")
        for i in 0..<3 { try cluster.start(i) }
        _ = cluster.waitFor(seconds: 10) { (0..<3).allSatisfy { cluster.members($0)?.count == 3 } }
        try cluster.start(3, key: "other.key")
        let intruder = cluster.waitFor(seconds: 5) { cluster.nodeID(3) != nil }.flatMap { _ in cluster.nodeID(3) }
        let intruderID = try #require(intruder)
        Thread.sleep(forTimeInterval: 4)
        for i in 0..<3 {
            #expect(cluster.members(i)?[intruderID] == nil, "agent \(i) admitted a node with the wrong key")
            #expect(cluster.members(i)?.count == 3)
        }
        #expect(cluster.members(3)?.count == 1, "the intruder learned the fleet's members")
        let failures = Int(cluster.status(0)?["authentication_failures"] ?? "0") ?? 0
        #expect(failures > 0, "the seed counted no authentication failures")
    }

    /// 10,000 random datagrams at an agent are counted and dropped while it stays healthy.
    @Test func randomDatagramsAreCountedAndDropped() throws {
        let cluster = AgentCluster(name: "noise")
        for i in 0..<3 { try cluster.start(i) }
        #expect(cluster.waitFor(seconds: 10) { (0..<3).allSatisfy { cluster.members($0)?.count == 3 } } != nil)
        let before = cluster.status(1) ?? [:]
        let sender = try UDPNoise(to: cluster.port(1))
        var rng = DeterministicRandom(seed: 42)
        for n in 0..<10_000 {
            var bytes = rng.bytes(1 + rng.below(1400))
            if n % 2 == 0 { bytes[0] = 1 }  // half start like a frame, to reach deeper checks
            sender.send(bytes)
            if n % 50 == 0 { Thread.sleep(forTimeInterval: 0.005) }  // stay under the socket buffer
        }
        Thread.sleep(forTimeInterval: 1)
        let after = cluster.status(1) ?? [:]
        func counter(_ s: [String: String], _ k: String) -> Int { Int(s[k] ?? "0") ?? 0 }
        let refused =
            (counter(after, "decode_errors") - counter(before, "decode_errors"))
            + (counter(after, "authentication_failures") - counter(before, "authentication_failures"))
        let received = counter(after, "packets_in") - counter(before, "packets_in")
        // Every datagram the kernel delivered is refused and counted; pacing keeps kernel drops to a handful.
        #expect(refused >= 9_900, "only \(refused) of 10,000 random datagrams were counted as refused")
        #expect(received >= refused)
        #expect(cluster.isRunning(1))
        let healthy = cluster.waitFor(seconds: 5) {
            (0..<3).allSatisfy { i in
                (cluster.members(i) ?? [:]).values.allSatisfy { $0 == "alive" } && cluster.members(i)?.count == 3
            }
        }
        #expect(healthy != nil, "the fleet did not stay healthy under noise")
    }
}

/// A plain UDP sender for hostile traffic.
final class UDPNoise {
    let fd: Int32
    var address = sockaddr_in()

    init(to port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
    }

    deinit { close(fd) }

    func send(_ bytes: [UInt8]) {
        var a = address
        _ = withUnsafePointer(to: &a) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                bytes.withUnsafeBytes {
                    sendto(fd, $0.baseAddress, $0.count, 0, sa, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
    }
}
