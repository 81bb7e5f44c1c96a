import EquicastCore
import EquicastCrypto
import Foundation
import Testing

/// Releases between real agent processes on loopback: pushed with the real `equicast rollout push`, spread by the
/// agents, assembled, installed by a real InstallCommand, and compared with the source image byte for byte.
@Suite(.serialized) struct RolloutTests {
    static var cliPath: String { AgentCluster.repository.appendingPathComponent(".build/debug/equicast").path }

    /// A deterministic image with firmware-like structure: runs of repeated blocks among pseudo-random bytes.
    static func image(size: Int, seed: UInt64) -> [UInt8] {
        var rng = DeterministicRandom(seed: seed)
        var out = [UInt8]()
        out.reserveCapacity(size)
        while out.count < size {
            let word = rng.next()
            if word % 4 == 0 {
                out += [UInt8](repeating: UInt8(word >> 8 & 0xff), count: Int((word >> 16) % 512))
            } else {
                for k in 0..<8 { out.append(UInt8(truncatingIfNeeded: word >> (8 * UInt64(k)))) }
            }
        }
        return Array(out.prefix(size))
    }

    /// Pseudo-random bytes: an image zlib cannot shrink, so transfers move `size` bytes.
    static func randomImage(size: Int, seed: UInt64) -> [UInt8] {
        var rng = DeterministicRandom(seed: seed)
        var out = [UInt8]()
        out.reserveCapacity(size + 8)
        while out.count < size { withUnsafeBytes(of: rng.next()) { out += $0 } }
        return Array(out.prefix(size))
    }

    /// Writes the release key's public half, builds a signed release of `image` as an .eqr file.
    static func makeRelease(in cluster: AgentCluster, image: [UInt8], version: UInt64) throws -> String {
        let key = try Ed25519.SigningKey(seed: [UInt8](repeating: 0x42, count: 32))
        let pub = key.publicKey.bytes.map { String(format: "%02x", $0) }.joined() + "\n"
        try Data(pub.utf8).write(to: URL(fileURLWithPath: cluster.directory + "/release.pub"))
        let built = try ReleaseBuilder.build(
            image: image, product: "test-gw", version: version, createdAt: 1, policy: RolloutPolicy(), key: key)
        let path = cluster.directory + "/v\(version).eqr"
        try Data(ReleaseFile.encode(built.manifest, chunks: built.chunks)).write(to: URL(fileURLWithPath: path))
        try Data(image).write(to: URL(fileURLWithPath: cluster.directory + "/v\(version).img"))
        return path
    }

    static func releaseFlags(_ cluster: AgentCluster, _ i: Int) -> [String] {
        let state = cluster.directory + "/n\(i)"
        return [
            "--ReleasePublicKeyFile", cluster.directory + "/release.pub", "--Product", "test-gw", "--FirmwareVersion",
            "1", "--InstallCommand", "cp \"$EQUICAST_IMAGE\" \(state)/installed.img",
            "--HealthCommand", "test -s \(state)/installed.img",
        ]
    }

    /// The flags that point `equicast rollout` at node i with the cluster's fleet key.
    static func agentFlags(_ cluster: AgentCluster, _ i: Int) -> [String] {
        ["--agent", "127.0.0.1:\(cluster.port(i))", "--fleet-key", cluster.directory + "/fleet.key"]
    }

    /// Runs the CLI (through `launcher`, such as `ip netns exec NAME`, when given); returns its status and output.
    static func run(_ arguments: [String], launcher: [String] = []) throws -> (Int32, String) {
        let p = Process()
        let command = launcher + [cliPath] + arguments
        p.executableURL = URL(fileURLWithPath: command[0])
        p.arguments = Array(command.dropFirst())
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let out = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: out, as: UTF8.self))
    }

    @Test func sixteenMiBReleaseReachesEightAgents() throws {
        let cluster = AgentCluster(name: "rollout")
        let image = RolloutTests.image(size: 16 << 20, seed: 11)
        let file = try RolloutTests.makeRelease(in: cluster, image: image, version: 2)
        for i in 0..<8 { try cluster.start(i, extra: RolloutTests.releaseFlags(cluster, i)) }
        #expect(cluster.waitFor(seconds: 15) { (0..<8).allSatisfy { cluster.members($0)?.count == 8 } } != nil)
        let (pushStatus, pushOutput) = try RolloutTests.run(
            ["rollout", "push", file] + RolloutTests.agentFlags(cluster, 0))
        #expect(pushStatus == 0, "\(pushOutput)")
        let (watchStatus, watchOutput) = try RolloutTests.run(
            ["rollout", "status", "--watch", "--within", "120"] + RolloutTests.agentFlags(cluster, 5))
        #expect(watchStatus == 0, "\(watchOutput)")
        #expect(watchOutput.contains("8 of 8 eligible nodes running it"))
        let source = Digest256(hashing: image)
        for i in 0..<8 {
            let installed = try [UInt8](
                Data(contentsOf: URL(fileURLWithPath: cluster.directory + "/n\(i)/installed.img")))
            #expect(Digest256(hashing: installed) == source, "node \(i)")
            #expect(cluster.status(i)?["firmware_version"] == "2")
            #expect(cluster.status(i)?["update_state"] == "committed")
        }
        // Every byte fetched was served by some agent, and not all of it by the origin. (On loopback, with no
        // bandwidth limit, the origin answers at once and serves most; the simulator measures the swarm.)
        let served = (0..<8).map { Int(cluster.status($0)?["bytes_served"] ?? "") ?? 0 }
        let fetched = (0..<8).map { Int(cluster.status($0)?["bytes_downloaded"] ?? "") ?? 0 }.reduce(0, +)
        #expect(served.reduce(0, +) == fetched)
        #expect(served[1...].reduce(0, +) > 0)
        print("origin served \(served[0]) of \(fetched) bytes fetched by 7 agents")
    }

    /// Node 1 is a rogue: a debug build's fault switch makes it serve every chunk with one byte flipped, after
    /// its own store checked it (a compromised device holding the fleet key). The release is pushed to the rogue
    /// and to node 0, so the others find two sources and ask both. They refuse the rogue's chunks, log it by
    /// its id, stop asking it, fetch the chunks from node 0, and install the exact image; no honest node is blamed.
    @Test func aPeerServingCorruptedChunksIsDetectedAndAvoided() throws {
        let cluster = AgentCluster(name: "rogue")
        let image = RolloutTests.randomImage(size: 4 << 20, seed: 31)
        let file = try RolloutTests.makeRelease(in: cluster, image: image, version: 2)
        let rogue = 1
        for i in 0..<5 {
            try cluster.start(
                i, extra: RolloutTests.releaseFlags(cluster, i),
                environment: i == rogue ? ["EQUICAST_FAULT_SERVE_CORRUPT_CHUNKS": "1"] : [:])
        }
        #expect(cluster.waitFor(seconds: 15) { (0..<5).allSatisfy { cluster.members($0)?.count == 5 } } != nil)
        for origin in [rogue, 0] {
            let (status, output) = try RolloutTests.run(
                ["rollout", "push", file] + RolloutTests.agentFlags(cluster, origin))
            try #require(status == 0, "push to node \(origin): \(output)")
        }
        let done = cluster.waitFor(seconds: 60) {
            (0..<5).allSatisfy { cluster.status($0)?["update_state"] == "committed" }
        }
        try #require(done != nil, "not every node committed: \((0..<5).map { cluster.status($0)?["update_state"] })")
        let source = Digest256(hashing: image)
        for i in 0..<5 { #expect(ReleaseFaultTests.installedHash(cluster, i) == source, "node \(i)") }

        let rogueID = try #require(cluster.nodeID(rogue))
        var detections = 0
        for i in [0, 2, 3, 4] {  // node 0 too: it may fetch from the rogue before its own push arrives
            let lines = ReleaseFaultTests.log(cluster, i).split(separator: "\n").filter {
                $0.contains("that do not match its signed manifest")
            }
            // The first refused chunk bans the rogue for this release: only requests already in flight to it
            // (ChunkRequestsPerPeer, 2) can bring more.
            #expect(lines.count <= 2, "node \(i) kept asking the rogue: \(lines)")
            for line in lines { #expect(line.contains("peer \(rogueID) at "), "node \(i) blamed another: \(line)") }
            detections += lines.count
            #expect(cluster.status(i)?["bad_chunks"] == "\(lines.count)", "node \(i)")
        }
        #expect(detections > 0, "no node asked the rogue for a chunk")
        print("the rogue was caught \(detections) times by 4 honest nodes")
    }

    /// Issue 32, finding 8: a release file damaged after it was built (one chunk byte flipped) was pushed, the
    /// node took the valid manifest and the fleet waited forever at 0 chunks; the CLI said so only at the bad
    /// chunk. Now `rollout push` checks the whole file first and sends nothing.
    @Test func aDamagedReleaseFileIsRefusedBeforeAnythingIsSent() throws {
        let cluster = AgentCluster(name: "damaged")
        let image = RolloutTests.randomImage(size: 1 << 20, seed: 41)
        let file = try RolloutTests.makeRelease(in: cluster, image: image, version: 2)
        try cluster.start(0, extra: RolloutTests.releaseFlags(cluster, 0))
        try #require(cluster.waitFor(seconds: 10) { cluster.status(0) != nil } != nil)
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: file)))
        bytes[bytes.count - 1000] ^= 0x01  // inside the last chunk
        let damaged = cluster.directory + "/damaged.eqr"
        try Data(bytes).write(to: URL(fileURLWithPath: damaged))
        let (status, output) = try RolloutTests.run(["rollout", "push", damaged] + RolloutTests.agentFlags(cluster, 0))
        #expect(status == 1, "\(output)")
        #expect(output.contains("REFUSED \(damaged)") && output.contains("Nothing was sent"), "\(output)")
        #expect(cluster.status(0)?["manifests_accepted"] == "0")
        #expect(cluster.status(0)?["packets_in"] == "0", "the CLI sent something")
        // A file signed by a key the operator did not name is refused too, before anything is sent.
        let other = cluster.directory + "/other.pub"
        try Data((String(repeating: "ab", count: 32) + "\n").utf8).write(to: URL(fileURLWithPath: other))
        let (status2, output2) = try RolloutTests.run(
            ["rollout", "push", file, "--pubkey", other] + RolloutTests.agentFlags(cluster, 0))
        #expect(status2 == 1 && output2.contains("sign it with a release key the devices trust"), "\(output2)")
        // The intact file goes through.
        let (status3, output3) = try RolloutTests.run(
            ["rollout", "push", file, "--pubkey", cluster.directory + "/release.pub"]
                + RolloutTests.agentFlags(cluster, 0))
        #expect(status3 == 0, "\(output3)")
    }
}
