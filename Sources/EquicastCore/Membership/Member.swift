/// What a node believes about a member. APPEND ONLY: values travel in gossip and sync messages.
public enum MemberState: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// Answering probes (or not yet found otherwise).
    case alive = 0
    /// A probe went unanswered; the member has until its suspicion timeout to refute.
    case suspect = 1
    /// Declared failed: the suspicion timed out. Only the member itself can revive it, with a higher incarnation.
    case failed = 2
    /// Announced its own departure.
    case left = 3

    public var description: String {
        switch self {
        case .alive: return "alive"
        case .suspect: return "suspect"
        case .failed: return "failed"
        case .left: return "left"
        }
    }

    /// Alive and suspect members are still part of the overlay: probed, gossiped to, counted in the digest.
    public var isPresent: Bool { self == .alive || self == .suspect }
}

/// One row of a node's member table.
public struct Member: Equatable, Sendable {
    public let id: NodeID
    public internal(set) var address: SocketAddress
    public internal(set) var state: MemberState
    /// The member's own counter: only it may raise it, to refute suspicion or to rejoin after a restart.
    public internal(set) var incarnation: UInt64
    /// When this node last changed the member's state (ms, the node's clock).
    public internal(set) var stateChangedAt: UInt64
    /// When this node last received an authenticated frame from the member (ms; 0 = never directly).
    public internal(set) var lastHeard: UInt64
}

/// A change to one member, as gossiped and as carried in sync replies.
public struct MemberUpdate: Equatable, Sendable {
    public var state: MemberState
    public var id: NodeID
    public var incarnation: UInt64
    public var address: SocketAddress
    /// Who reported it: the suspecter for `suspect` (counted as a Lifeguard confirmation), else the member itself
    /// or the node that declared the failure.
    public var reporter: NodeID
    /// The member's own word for this incarnation: its public key and its signature of "alive at `incarnation`
    /// at `address`" (of "left" for a `left` update). Required to add a member, to raise its incarnation and
    /// for `alive` and `left`; a `suspect` or `failed` claim about an incarnation already known goes without.
    public var proof: MemberProof?

    public init(
        state: MemberState, id: NodeID, incarnation: UInt64, address: SocketAddress, reporter: NodeID,
        proof: MemberProof? = nil
    ) {
        self.state = state
        self.id = id
        self.incarnation = incarnation
        self.address = address
        self.reporter = reporter
        self.proof = proof
    }

    /// The statement `proof` signs.
    var statement: [UInt8] {
        Statement.member(id: id, incarnation: incarnation, address: address, left: state == .left)
    }
}

/// A member's public key and its signature of a `Statement.member`.
public struct MemberProof: Equatable, Sendable {
    public var key: [UInt8]
    public var signature: [UInt8]

    public init(key: [UInt8], signature: [UInt8]) {
        self.key = key
        self.signature = signature
    }

    static let encodedByteCount = 32 + 64
}
