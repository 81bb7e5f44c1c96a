import EquicastCrypto

/// How nodes sign what they say about themselves, and how a node id follows from a public key.
///
/// `ed25519` on devices: the key pair is made at first start and kept in the state directory, and a node id is the
/// first 8 bytes of BLAKE2b-256 of the public key. `simulated` in the simulator, where ten thousand nodes checking
/// each other's records with Ed25519 would take hours of CPU: the same bytes travel (a 32-byte key, a 64-byte
/// signature) and are checked at the same points, but the key holds the node id and the "signature" is a mix of
/// key and message that anyone could compute. It stands in for the bytes and the checks, not for the security;
/// the simulator's adversaries send random signatures. A fleet uses one scheme.
public enum SignatureScheme: Sendable {
    case ed25519
    case simulated

    /// The node id a public key stands for.
    public func nodeID(of key: [UInt8]) -> NodeID {
        guard key.count == Ed25519.publicKeyByteCount else { return NodeID(rawValue: 0) }
        let source = self == .ed25519 ? Digest256(hashing: key).bytes : key
        var v: UInt64 = 0
        for b in source[0..<8] { v = v << 8 | UInt64(b) }
        return NodeID(rawValue: v)
    }

    /// True when `signature` is `key`'s signature of `message`.
    public func isValid(_ signature: [UInt8], of message: [UInt8], by key: [UInt8]) -> Bool {
        guard signature.count == Ed25519.signatureByteCount, key.count == Ed25519.publicKeyByteCount else {
            return false
        }
        switch self {
        case .ed25519:
            guard let k = try? Ed25519.PublicKey(bytes: key) else { return false }
            return k.isValidSignature(signature, for: message)
        case .simulated:
            return signature == SignatureScheme.simulatedSignature(of: message, by: key)
        }
    }

    /// The simulated scheme's signature: a SplitMix64 chain over key and message, eight words at a time,
    /// spread over 64 bytes.
    static func simulatedSignature(of message: [UInt8], by key: [UInt8]) -> [UInt8] {
        var h: UInt64 = 0x5349_4d55_4c41_5445 ^ UInt64(message.count)
        key.withUnsafeBytes { k in
            for w in 0..<4 { h = SplitMix64.mix(h ^ k.loadUnaligned(fromByteOffset: 8 * w, as: UInt64.self)) }
        }
        message.withUnsafeBytes { m in
            var at = 0
            while at + 8 <= m.count {
                h = SplitMix64.mix(h ^ m.loadUnaligned(fromByteOffset: at, as: UInt64.self))
                at += 8
            }
            var tail: UInt64 = 0
            while at < m.count {
                tail = tail << 8 | UInt64(m[at])
                at += 1
            }
            h = SplitMix64.mix(h ^ tail)
        }
        var out = [UInt8](repeating: 0, count: Ed25519.signatureByteCount)
        out.withUnsafeMutableBytes { o in
            for w in 0..<8 { o.storeBytes(of: SplitMix64.mix(h &+ UInt64(w)), toByteOffset: 8 * w, as: UInt64.self) }
        }
        return out
    }
}

/// A node's own key pair and the id that follows from it. What the node says about itself (alive at an
/// incarnation, leaving, its update status) is signed with it and checked by every node before it is applied
/// or passed on; claims by others about a node (suspect, failed) are not signed and can never outrank the
/// node's own word.
public final class NodeIdentity {
    public let scheme: SignatureScheme
    public let publicKey: [UInt8]
    public let id: NodeID
    let signingKey: Ed25519.SigningKey?

    /// A device's identity, from its Ed25519 key pair.
    public init(signingKey: Ed25519.SigningKey) {
        scheme = .ed25519
        publicKey = signingKey.publicKey.bytes
        id = SignatureScheme.ed25519.nodeID(of: publicKey)
        self.signingKey = signingKey
    }

    /// A simulated node's identity (see `SignatureScheme.simulated`).
    public init(simulated id: NodeID) {
        scheme = .simulated
        var key = [UInt8](repeating: 0, count: Ed25519.publicKeyByteCount)
        for k in 0..<8 { key[k] = UInt8(truncatingIfNeeded: id.rawValue >> UInt64(56 - 8 * k)) }
        publicKey = key
        self.id = id
        signingKey = nil
    }

    public func sign(_ message: [UInt8]) -> [UInt8] {
        if let k = signingKey { return k.sign(message) }
        return SignatureScheme.simulatedSignature(of: message, by: publicKey)
    }

    /// `status` (which must describe this node) with this node's signature.
    public func signed(_ status: NodeStatus) -> NodeStatus {
        var st = status
        st.signature = sign(Statement.status(st))
        return st
    }

    /// A record of this node with its own word: alive (or `left`) at `incarnation` at `address`, signed. With
    /// `suspect` or `failed`, a claim by `reporter` about that incarnation, carrying the node's word for it (as
    /// sync replies do).
    public func record(
        _ state: MemberState = .alive, incarnation: UInt64, address: SocketAddress, reporter: NodeID? = nil
    ) -> MemberUpdate {
        var u = MemberUpdate(
            state: state, id: id, incarnation: incarnation, address: address, reporter: reporter ?? id)
        u.proof = MemberProof(key: publicKey, signature: sign(u.statement))
        return u
    }
}

/// The byte strings nodes sign. Each begins with its own 8-byte context, so a signature of one kind can never be
/// taken for another.
enum Statement {
    /// "Node `id`, at `incarnation`, is alive at `address`" (or has left, `left`).
    static func member(id: NodeID, incarnation: UInt64, address: SocketAddress, left: Bool) -> [UInt8] {
        var w = ByteWriter(capacity: 8 + 8 + 8 + 1 + 19)
        w.write(Array("EQCMEMB1".utf8))
        w.write(id.rawValue)
        w.write(incarnation)
        w.write(UInt8(left ? 1 : 0))
        Message.encode(address, into: &w)
        return w.bytes
    }

    /// A node's update status.
    static func status(_ st: NodeStatus) -> [UInt8] {
        var w = ByteWriter(capacity: 8 + NodeStatus.encodedByteCount)
        w.write(Array("EQCSTAT1".utf8))
        st.encode(into: &w)
        return w.bytes
    }
}
