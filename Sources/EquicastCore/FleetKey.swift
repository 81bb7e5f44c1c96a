import EquicastCrypto

/// The fleet key and the sub-keys Equicast derives from it. Every node of a fleet holds the same 32-byte fleet
/// key; frames are sealed with a derived AEAD key, authenticated-only frames carry a MAC under a separate derived
/// key, and the key id in each frame header is derived too, so rotating the fleet key changes all three.
public final class FleetKey: Sendable {
    /// Identifies this key in frame headers (derived; not secret, but reveals nothing about the key).
    public let keyID: UInt32
    let aeadKey: SymmetricKey
    let macKey: SymmetricKey

    /// KDF contexts (8 bytes each). Changing one changes the wire protocol.
    static let frameContext: StaticString = "EQCFRAME"
    static let keyIDContext: StaticString = "EQCKEYID"

    public init(master: SymmetricKey) {
        aeadKey = master.deriveSubkey(id: 1, context: FleetKey.frameContext)
        macKey = master.deriveSubkey(id: 2, context: FleetKey.frameContext)
        var idBytes = master.deriveSubkey(id: 0, context: FleetKey.keyIDContext).exportBytes()
        keyID = UInt32(idBytes[0]) << 24 | UInt32(idBytes[1]) << 16 | UInt32(idBytes[2]) << 8 | UInt32(idBytes[3])
        wipe(&idBytes)
    }
}

/// The keys a node accepts: the one it seals with, plus older ones still accepted during a rotation.
/// Operators rotate by adding the new key everywhere (accepted, not yet used), then making it primary, then
/// removing the old one.
public struct FleetKeyring: Sendable {
    /// At most this many keys at once: current, next and previous cover any rotation.
    public static let keyCountMax = 4

    public private(set) var keys: [FleetKey]
    /// The key new frames are sealed with.
    public var primary: FleetKey { keys[0] }

    /// A keyring whose first key is primary. Fails on more than `keyCountMax` keys or two keys with the same id.
    public init(primary: FleetKey, accepted: [FleetKey] = []) throws(WireError) {
        let all = [primary] + accepted
        if all.count > FleetKeyring.keyCountMax {
            throw .lengthOverLimit(field: "fleet keyring", length: all.count, limit: FleetKeyring.keyCountMax)
        }
        for i in 0..<all.count {
            for j in (i + 1)..<all.count where all[i].keyID == all[j].keyID {
                throw .invalidValue(field: "duplicate fleet key id", value: UInt64(all[i].keyID))
            }
        }
        keys = all
    }

    /// The key with `id`, or nil when this node does not hold it.
    public func key(id: UInt32) -> FleetKey? {
        for k in keys where k.keyID == id { return k }
        return nil
    }
}
