/// A node's identity on the overlay: 64 bits that follow from its public key (`SignatureScheme.nodeID(of:)`), so
/// only the holder of the key can speak for the id. Ids also
/// place nodes on the ring used for ring neighbours, so they are compared as unsigned integers.
public struct NodeID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: UInt64

    public init(rawValue: UInt64) { self.rawValue = rawValue }

    public static func < (a: NodeID, b: NodeID) -> Bool { a.rawValue < b.rawValue }

    /// Sixteen lowercase hex digits, the form used in logs, the CLI and the MIB.
    public var description: String {
        hexWord(UInt32(truncatingIfNeeded: rawValue >> 32)) + hexWord(UInt32(truncatingIfNeeded: rawValue))
    }

    /// Parses sixteen hex digits (either case); nil for anything else.
    public init?(hex text: String) {
        let utf8 = Array(text.utf8)
        guard utf8.count == 16 else { return nil }
        var v: UInt64 = 0
        for c in utf8 {
            let d: UInt8
            switch c {
            case 0x30...0x39: d = c - 0x30
            case 0x61...0x66: d = c - 0x61 + 10
            case 0x41...0x46: d = c - 0x41 + 10
            default: return nil
            }
            v = v << 4 | UInt64(d)
        }
        rawValue = v
    }
}

extension Sequence where Element == NodeID {
    /// The ids in increasing order. Device code sorts nothing but `[UInt64]` with `<`: every other element type
    /// or comparison closure compiles a sort of its own, about 2 KiB of aarch64 code each.
    func sortedIDs() -> [NodeID] {
        var raw = map { $0.rawValue }
        raw.sort()
        return raw.map { NodeID(rawValue: $0) }
    }
}
