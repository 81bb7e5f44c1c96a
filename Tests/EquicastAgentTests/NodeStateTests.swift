import EquicastCore
import EquicastPosix
import Foundation
import Testing

@testable import EquicastAgent

/// `node.state` is read at every start: a boot count no node could reach is a clear error naming the file,
/// never an overflow trap (issue 32: `boots = 2^64-1` crashed the agent with SIGILL).
@Suite struct NodeStateTests {
    static func directory(_ name: String) -> String {
        let path = NSTemporaryDirectory() + "equicast-state-\(name)-\(UUID().uuidString.prefix(8))"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    @Test func advancesTheBootCount() throws {
        let dir = NodeStateTests.directory("advance")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (first, identity) = try NodeState.loadAndAdvance(directory: dir)
        let (second, again) = try NodeState.loadAndAdvance(directory: dir)
        #expect(first.bootCount == 1 && second.bootCount == 2 && first.id == second.id)
        // The id follows from the key made at the first start, kept 0600 beside the state.
        #expect(identity.id == first.id && again.publicKey == identity.publicKey)
        #expect(identity.id == SignatureScheme.ed25519.nodeID(of: identity.publicKey))
        #expect(try FileSystem.permissions(dir + "/node.key") == 0o600)
    }

    @Test(arguments: ["18446744073709551615", "18446744073709551614", "4294967294", "4294967295"])
    func refusesBootCountsPastTheLimit(boots: String) throws {
        let dir = NodeStateTests.directory("boots")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let text = "id = 0123456789abcdef\nboots = \(boots)\n"
        try Data(text.utf8).write(to: URL(fileURLWithPath: dir + "/node.state"))
        do {
            let (state, _) = try NodeState.loadAndAdvance(directory: dir)
            Issue.record("boots = \(boots) was accepted as \(state.bootCount)")
        } catch {
            #expect(error.description.contains(dir + "/node.state"), "\(error)")
            #expect(error.description.contains("boots = \(boots)"), "\(error)")
        }
        // The damaged file is left for the operator to look at.
        #expect(try String(contentsOfFile: dir + "/node.state", encoding: .utf8) == text)
    }

    /// A state directory from a version without node keys: the node gets a key and the id it stands for, keeps
    /// counting boots, and says which id it replaced (the daemon logs it); a directory with its key does not.
    @Test func anOldStateDirectoryGetsAKeyAndSaysTheIdChanged() throws {
        let dir = NodeStateTests.directory("upgrade")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data("id = 0123456789abcdef\nboots = 41\n".utf8).write(to: URL(fileURLWithPath: dir + "/node.state"))
        let (upgraded, identity) = try NodeState.loadAndAdvance(directory: dir)
        #expect(upgraded.replacedID == NodeID(rawValue: 0x0123_4567_89ab_cdef))
        #expect(upgraded.id == identity.id && upgraded.bootCount == 42)
        let (next, _) = try NodeState.loadAndAdvance(directory: dir)
        #expect(next.replacedID == nil && next.id == identity.id && next.bootCount == 43)
    }

    @Test func theLastBootBelowTheLimitStillStarts() throws {
        let dir = NodeStateTests.directory("last")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data("id = 0123456789abcdef\nboots = 4294967293\n".utf8).write(
            to: URL(fileURLWithPath: dir + "/node.state"))
        let (state, _) = try NodeState.loadAndAdvance(directory: dir)
        #expect(state.bootCount == NodeState.bootCountMax)
        // Its incarnations and sequence numbers start below UInt64.max with 2^32 - 1 to spare.
        #expect((state.bootCount << 32) >> 32 == state.bootCount)
    }
}
