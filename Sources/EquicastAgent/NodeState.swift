import EquicastCore
import EquicastCrypto
import EquicastPosix

/// The node's identity on disk: `StateDirectory/node.state`, written atomically. The id is drawn once; the boot
/// count rises at every start, which gives a restarted node a higher incarnation and frame sequence base.
public struct NodeState: Equatable {
    public var id: NodeID
    public var bootCount: UInt64

    public static let fileName = "node.state"
    /// The most starts a node can count: the boot count is the high 32 bits of its incarnations and frame
    /// sequence numbers (a device restarting every second reaches it after 136 years).
    public static let bootCountMax: UInt64 = 0xFFFF_FFFE

    /// Loads the state (or creates it on first start), increments the boot count and writes it back before the
    /// node says anything on the network.
    public static func loadAndAdvance(directory: String) throws(PosixError) -> NodeState {
        try FileSystem.makeDirectory(directory, mode: 0o700)
        let path = directory + "/" + fileName
        var state: NodeState
        if FileSystem.exists(path) {
            let text = String(decoding: try FileSystem.readFile(path, limit: 4096), as: UTF8.self)
            guard let parsed = NodeState(text: text) else {
                throw .file(path: path, operation: "parse (expected 'id = 16 hex digits' and 'boots = N')", errno: 22)
            }
            guard parsed.bootCount < bootCountMax else {
                throw .file(
                    path: path,
                    operation: "use (boots = \(parsed.bootCount) is past the limit 4294967293; the file is damaged: "
                        + "remove it and the node starts with a new id)", errno: 22)
            }
            state = parsed
        } else {
            var idBytes = secureRandomBytes(8)
            var raw: UInt64 = 0
            for b in idBytes { raw = raw << 8 | UInt64(b) }
            wipe(&idBytes)
            state = NodeState(id: NodeID(rawValue: raw), bootCount: 0)
        }
        state.bootCount += 1
        try FileSystem.writeFileAtomically(path, Array(state.text.utf8), mode: 0o600)
        return state
    }

    public init(id: NodeID, bootCount: UInt64) {
        self.id = id
        self.bootCount = bootCount
    }

    init?(text: String) {
        var id: NodeID?
        var boots: UInt64?
        for (key, value) in keyValueLines(text) ?? [] {
            if key.sameBytes("id") { id = NodeID(hex: value) }
            if key.sameBytes("boots") { boots = UInt64(value) }
        }
        guard let id, let boots else { return nil }
        self.id = id
        self.bootCount = boots
    }

    var text: String { "id = \(id)\nboots = \(bootCount)\n" }
}
