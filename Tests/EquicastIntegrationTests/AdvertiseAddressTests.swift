import Foundation
import Testing

/// An agent bound to a wildcard address announces an address others can reach: the source address of its route
/// to a seed, or else the first address of an interface that is up.
@Suite(.serialized) struct AdvertiseAddressTests {
    @Test func wildcardBindAnnouncesTheRouteToItsSeed() throws {
        let cluster = AgentCluster(name: "advertise")
        try cluster.start(0)
        try cluster.start(1, bind: "0.0.0.0:\(cluster.port(1))")
        let joined = cluster.waitFor(seconds: 10) {
            (0..<2).allSatisfy { cluster.members($0)?.values.filter { $0 == "alive" }.count == 2 }
        }
        #expect(joined != nil, "the wildcard-bound agent did not join")
        #expect(cluster.status(1)?["address"] == "127.0.0.1:\(cluster.port(1))")
        // Node 0 reaches node 1 by what it announced: its row shows that address.
        let row = cluster.request(0, "members")?.split(separator: "\n").first { $0.hasPrefix(cluster.nodeID(1) ?? "?") }
        #expect(row?.split(separator: "\t").dropFirst().first == "127.0.0.1:\(cluster.port(1))")
    }

    /// In a network namespace of its own with one veth address and no seeds, the agent announces that address.
    @Test(.enabled(if: getuid() == 0, "creates a network namespace"))
    func wildcardBindWithoutSeedsAnnouncesAnInterfaceAddress() throws {
        let ns = try NetworkNamespace("eqadv")
        try ns.ip("link", "add", "v0", "type", "veth", "peer", "name", "v1")
        try ns.ip("addr", "add", "10.77.0.5/24", "dev", "v0")
        try ns.ip("link", "set", "v0", "up")
        try ns.ip("link", "set", "v1", "up")

        let cluster = AgentCluster(name: "advertise-ns")
        try cluster.start(0, bind: "0.0.0.0:7946", seeds: [], launcher: ns.launcher)
        let address = cluster.waitFor(seconds: 10) { cluster.status(0) != nil }.flatMap { _ in
            cluster.status(0)?["address"]
        }
        #expect(address == "10.77.0.5:7946")
        let log = try String(contentsOfFile: cluster.directory + "/n0.log", encoding: .utf8)
        #expect(log.contains("announcing 10.77.0.5:7946 (first address of interface v0)"), "log: \(log)")
        cluster.terminate(0)
    }
}
