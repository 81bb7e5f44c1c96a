import EquicastCore
import EquicastCrypto
import EquicastPosix

/// The node's identity on disk: its Ed25519 key pair (`StateDirectory/node.key`, the 32-byte seed, mode 0600,
/// made at first start) and `StateDirectory/node.state` (the id that follows from the key, for people to read,
/// and the boot count), both written atomically. The boot count rises at every start, which gives a restarted
/// node a higher incarnation and frame sequence base.
public struct NodeState: Equatable {
    public var id: NodeID
    public var bootCount: UInt64
    /// The id `node.state` held when it was not the one the key stands for (a state directory from a version
    /// without node keys): the fleet will see this node as a new member, and the old id stop answering.
    public var replacedID: NodeID?

    public static let fileName = "node.state"
    public static let keyFileName = "node.key"
    /// The most starts a node can count: the boot count is the high 32 bits of its incarnations and frame
    /// sequence numbers (a device restarting every second reaches it after 136 years).
    public static let bootCountMax: UInt64 = 0xFFFF_FFFE

    /// Loads the node's key (or makes one on first start) and its state, increments the boot count and writes
    /// it back before the node says anything on the network. A state directory from a version without node
    /// keys gets a key now; the node then has a new id (its old one could not be proven).
    public static func loadAndAdvance(directory: String) throws(PosixError) -> (NodeState, NodeIdentity) {
        try FileSystem.makeDirectory(directory, mode: 0o700)
        let keyPath = directory + "/" + keyFileName
        let signingKey: Ed25519.SigningKey
        if FileSystem.exists(keyPath) {
            var seed = try KeyFile.loadSecret(keyPath, byteCount: Ed25519.seedByteCount)
            defer { wipe(&seed) }
            signingKey = try! Ed25519.SigningKey(seed: seed)  // loadSecret returned exactly seedByteCount bytes
        } else {
            signingKey = Ed25519.SigningKey.generate()
            var seed = signingKey.exportSeed()
            defer { wipe(&seed) }
            try KeyFile.store(seed, to: keyPath, secret: true)
        }
        let identity = NodeIdentity(signingKey: signingKey)
        let path = directory + "/" + fileName
        var state = NodeState(id: identity.id, bootCount: 0)
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
            state.bootCount = parsed.bootCount
            if parsed.id != identity.id { state.replacedID = parsed.id }
        }
        state.bootCount += 1
        try FileSystem.writeFileAtomically(path, Array(state.text.utf8), mode: 0o600)
        return (state, identity)
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
