import EquicastCrypto

/// What the driver must send.
public enum Transmit: Equatable, Sendable {
    /// One UDP datagram.
    case datagram(to: SocketAddress, bytes: [UInt8])
    /// Open a TCP connection to `to` (or reuse an idle one), send `bytes`, and hand the frames that come back to
    /// `handleStreamFrame(_:stream:now:)` with `.outgoing(id)` until `awaitsMoreFrames(stream:)` is false (one
    /// frame, except for a chunk's pieces); report failure with `handleStreamFailed`.
    case streamOpen(id: UInt64, to: SocketAddress, bytes: [UInt8])
    /// Send `bytes`, the reply (or its last frame) to the request read from an accepted connection.
    case streamReply(connection: UInt64, bytes: [UInt8])
    /// Send `bytes` on an accepted connection: one frame of a reply that more frames follow (a chunk's pieces).
    case streamPart(connection: UInt64, bytes: [UInt8])
}

/// Which TCP connection a stream frame came from.
public enum StreamOrigin: Equatable, Sendable {
    /// A connection this node opened with `Transmit.streamOpen`.
    case outgoing(UInt64)
    /// A connection the driver accepted; the id is the driver's.
    case accepted(UInt64)
}

/// What happened, for the driver to log, count or act on.
public enum NodeEvent: Equatable, Sendable {
    case memberJoined(NodeID, SocketAddress)
    case memberSuspect(NodeID)
    case memberFailed(NodeID)
    case memberLeft(NodeID)
    /// A suspected or failed member proved alive with a higher incarnation.
    case memberRecovered(NodeID)
    /// This node refuted a suspicion about itself.
    case refuted(incarnation: UInt64)
    case eventReceived(GossipEvent)
    /// This node verified a release's manifest and now holds and spreads it; it installs it if `installable`.
    case releaseAccepted(ReleaseAdvert, installable: Bool)
    /// A manifest or a pushed release was refused: why, and who sent it.
    case releaseRefused(ReleaseError, from: SocketAddress)
    /// Every chunk of an installable release is stored and verified: the driver assembles and installs it.
    case releaseDownloaded(Digest256)
    /// A download stopped by a storage failure (`chunkStoreFailed`) starts again.
    case releaseResumed(Digest256)
    /// A peer served a chunk that does not match its id (it is no longer asked for this release).
    case integrityViolation(peer: NodeID, address: SocketAddress, release: Digest256, chunk: Int)
    /// A frame or message was refused (counted; the driver may log it at debug level).
    case refused(WireError, from: SocketAddress)
}

/// Operator commands.
public enum NodeCommand: Equatable, Sendable {
    /// Announce departure and stop probing; the driver exits once `leaveComplete` is true.
    case leave
    /// Broadcast an application event to the whole fleet.
    case broadcast([UInt8])
    /// Sync with these addresses now (join through seeds).
    case join([SocketAddress])
}

/// The Equicast membership node: a deterministic state machine (see STYLE.md on quinn-proto). It never reads a
/// clock, a socket or an OS random source: `now` (milliseconds, monotonic) comes with every input and randomness
/// from the seeded generator it was given. The driver feeds `handle…` inputs, then drains `pollTransmit`,
/// `pollEvent`, and sleeps until `pollTimeout`.
public final class Node {
    public let id: NodeID
    public let address: SocketAddress
    public let config: MembershipConfig
    public internal(set) var incarnation: UInt64
    public internal(set) var counters = NodeCounters()
    public internal(set) var isLeaving = false

    var rng: DeterministicRandom
    var sealer: FrameSealer
    var opener: FrameOpener
    var sequence: UInt64
    var streamSequence: StreamSequencer

    // Members: a table, a list for O(1) random picks, and the incrementally kept ring and digests.
    var table: MemberTable
    var present: [NodeID] = []  // alive and suspect members, self excluded
    var ring: RingTracker
    /// The view digest: the wrapping sum of `digestTerm` over self and the present members.
    public internal(set) var digest: UInt64 = 0
    /// The same sum per finest id range (the top 12 bits of the id), and the present members in each: a pull
    /// names these (or their sums over 4 or 16 neighbouring ranges) and receives only the ranges whose sums
    /// differ.
    var fineDigests = [UInt64](repeating: 0, count: Message.finestBucketCount)
    var fineCounts = [UInt16](repeating: 0, count: Message.finestBucketCount)
    var suspicions: [NodeID: Suspicion] = [:] {
        didSet { earliestSuspicionDeadline = nil }
    }
    /// The soonest suspicion deadline, recomputed only after `suspicions` changes: `pollTimeout` runs after every
    /// input, and a wave of failures holds hundreds of suspicions.
    var earliestSuspicionDeadline: UInt64?
    /// Suspicion timeouts by confirmation count (0 ... `Suspicion.confirmersMax - 1`), fixed by the config.
    let suspicionTimeouts: [UInt64]

    var queue: GossipQueue
    var seenEvents: [NodeID: UInt64] = [:]  // highest event id delivered per origin
    var nextEventID: UInt64 = 1

    // Timers (absolute ms).
    var nextGossip: UInt64
    var nextProbe: UInt64
    var nextSyncAllowed: UInt64 = 0
    /// Wait after the next mismatch sync: doubles from GossipInterval to SyncInterval while mismatches keep
    /// coming, back to the start after a quiet 2 * SyncInterval.
    var syncBackoff: UInt64 = 0
    /// Whether the next pull lists member fingerprints: true while pulls keep bringing members this node lacked
    /// (a join, a healed partition), when the reply would otherwise repeat most of what it holds. A pull after a
    /// small change or during a wave of failures goes without: 2 bytes per member held would be most of it.
    var pullWithFingerprints = true
    var lastMismatchSync: UInt64 = 0
    var nextReclaim: UInt64
    var nextReconnect: UInt64
    var round: UInt64 = 0
    var probePeriod: UInt64 = 0
    /// Ring neighbours probed since they became neighbours (see `startPeriodicProbe`).
    var ringProbed: [NodeID] = []

    var probes: [UInt32: Probe] = [:]
    var forwarded: [UInt32: ForwardedProbe] = [:]
    var nextProbeID: UInt32 = 1
    var seeds: [SocketAddress]
    var pendingSyncs: [UInt64: PendingSync] = [:]
    var nextStreamID: UInt64 = 1
    var mismatchPeer: NodeID?
    /// Distinct peers in a row whose digest matched ours, and the last of them.
    var matchingPeers = 0
    var lastMatchingPeer: NodeID?
    /// The last differing digest heard and from whom; pulls made because two peers agreed on it, since our
    /// digest last matched a peer's.
    var lastForeignDigest: UInt64 = 0
    var lastForeignPeer: NodeID?
    var agreedPulls = 0
    var leaveRoundsLeft = 0

    var transmits = OutputQueue<Transmit>()
    var events = OutputQueue<NodeEvent>()
    var storage = OutputQueue<StorageRequest>()

    // Releases (Node+Release.swift).
    let releaseSettings: ReleaseSettings
    let productTag: UInt64
    public internal(set) var installedVersion: UInt64
    public internal(set) var updateState: UpdateState
    var transfer: ReleaseTransfer?
    /// Releases refused or failed here: never fetched again.
    var rejectedReleases: [Digest256]
    /// An announced release whose manifest is being fetched: from whom, by which stream.
    var manifestFetch: (advert: ReleaseAdvert, stream: UInt64, startedAt: UInt64, peer: NodeID, address: SocketAddress)?
    /// Chunk requests in flight (at most `chunkRequestsMax`, so a list).
    var chunkFetches: [ChunkFetch] = []
    var trickle: Trickle
    var statusSequence: UInt64
    var nextHaves: UInt64 = 0
    var nextDiscovery: UInt64 = 0
    var publishedTenth = -1
    /// When a download stopped by a storage failure tries again (0: not stopped).
    var storageRetryAt: UInt64 = 0

    struct Probe {
        let target: NodeID
        let sentAt: UInt64
        var indirect: Bool
        var deadline: UInt64
    }

    struct ForwardedProbe {
        let requester: SocketAddress
        let requesterProbeID: UInt32
        let deadline: UInt64
    }

    struct PendingSync {
        let peer: SocketAddress
        let startedAt: UInt64
    }

    /// - Parameters:
    ///   - bootCount: how many times this node has started (persisted by the driver). It seeds the incarnation
    ///     and the frame sequence base, so a restarted node outranks its previous life everywhere.
    ///   - randomSeed: seeds every random choice and the frame nonces; the daemon draws it from the OS CSPRNG.
    ///   - directory: where member ids and addresses are interned; nil for a private one (a daemon). A simulator
    ///     passes one shared directory to all its nodes.
    public init(
        id: NodeID, address: SocketAddress, bootCount: UInt64, keyring: FleetKeyring, encryptionEnabled: Bool,
        config: MembershipConfig, seeds: [SocketAddress], randomSeed: [UInt8], now: UInt64,
        directory: MemberDirectory? = nil, release: ReleaseSettings = ReleaseSettings()
    ) {
        self.id = id
        self.address = address
        self.config = config
        self.suspicionTimeouts = (0..<Suspicion.confirmersMax).map {
            SuspicionTimeout.milliseconds(
                confirmations: $0, expected: max(1, config.ringSize - 1), minimum: config.suspicionTimeoutMin,
                maximum: config.suspicionTimeoutMax)
        }
        self.incarnation = bootCount << 32
        self.sequence = bootCount << 32
        self.streamSequence = StreamSequencer(base: bootCount << 32)
        var random = DeterministicRandom(seedBytes: randomSeed)
        let salt = random.next()
        self.releaseSettings = release
        self.productTag = ReleaseAdvert.productTag(release.product)
        self.installedVersion = release.installedVersion
        self.updateState = release.updateState
        self.rejectedReleases = release.rejectedReleases
        self.statusSequence = bootCount << 32
        self.trickle = Trickle(
            minimum: release.trickleMinimum, maximum: release.trickleMaximum, redundancy: release.trickleRedundancy,
            now: now, rng: &random)
        self.rng = random
        self.sealer = FrameSealer(sender: id, keyring: keyring, encryptionEnabled: encryptionEnabled)
        self.opener = FrameOpener(
            keyring: keyring, requireEncryption: encryptionEnabled,
            senderCapacity: min(config.membersMax, Node.replaySendersMax))
        self.table = MemberTable(directory: directory ?? MemberDirectory(shared: false, salt: salt))
        self.ring = RingTracker(selfID: id, perSide: max(1, config.ringSize / 2))
        self.queue = GossipQueue(capacity: config.gossipQueueCapacity, salt: ~salt)
        self.seeds = seeds.filter { $0 != address }
        self.nextGossip = now + config.gossipInterval
        self.nextProbe = now + config.probeInterval
        self.nextReclaim = now + 10_000
        self.nextReconnect = now + config.reconnectInterval
        table[id] = Member(
            id: id, address: address, state: .alive, incarnation: incarnation, stateChangedAt: now, lastHeard: now)
        addToDigest(id, incarnation)
        queue.enqueue(.member(selfUpdate))
        table.setStatus(ownStatus)
        if !self.seeds.isEmpty { startJoin(now: now) }
    }

    // MARK: getters

    /// Every member this node knows, itself included, in id order.
    public var members: [Member] { table.values.map { $0.id }.sortedIDs().map { table[$0]! } }
    public func member(_ id: NodeID) -> Member? { table[id] }
    /// Members other than self that are alive or suspect.
    public var presentCount: Int { present.count }
    public var ringNeighbours: [NodeID] {
        if ring.needsRescan { ring.rescan(present) }
        return ring.neighbours
    }
    /// The members this node probes in turn: its ring neighbours, with suspects passed over for the members
    /// beyond them (`RingTracker.watched`). `except`: a member counted as not suspect.
    func watchedNeighbours(except: NodeID? = nil) -> [NodeID] {
        if ring.needsRescan { ring.rescan(present) }
        return ring.watched { $0 != except && table.stateAndIncarnation($0)?.state == .suspect }
    }
    /// Members in each state, self included.
    public func count(_ state: MemberState) -> Int { table.count(state) }
    /// True once a leave has been announced and its gossip rounds are done.
    public var leaveComplete: Bool { isLeaving && leaveRoundsLeft == 0 }

    var selfUpdate: MemberUpdate {
        MemberUpdate(
            state: isLeaving ? .left : .alive, id: id, incarnation: incarnation, address: address, reporter: id)
    }

    // MARK: outputs

    public func pollTransmit() -> Transmit? { transmits.pop() }

    public func pollEvent() -> NodeEvent? { events.pop() }

    /// True while transmits wait to be drained (storage callbacks can add some after a drain).
    public var hasPendingTransmits: Bool { !transmits.isEmpty }

    /// Storage work for the driver (see `StorageRequest`).
    public func pollStorage() -> StorageRequest? { storage.pop() }

    /// The next moment `handleTimeout` has work to do.
    public func pollTimeout() -> UInt64 {
        var t = min(nextGossip, nextProbe, nextReclaim, nextReconnect)
        for p in probes.values { t = min(t, p.deadline) }
        for f in forwarded.values { t = min(t, f.deadline) }
        if let d = nextSuspicionDeadline() { t = min(t, d) }
        for s in pendingSyncs.values { t = min(t, s.startedAt + config.syncInterval * 2) }
        return min(t, releaseDeadline())
    }

    // MARK: sending

    /// The next sequence number for a frame on `transport` to `receiver` (nil: a stream opened to an address
    /// whose node is not known yet): datagrams and stream frames are numbered separately, and receivers keep a
    /// replay window for each (`FrameOpener`); stream frames are numbered per receiver (`StreamSequencer`).
    func nextSequence(_ transport: FrameTransport, to receiver: NodeID?) -> UInt64 {
        if transport == .datagram {
            sequence &+= 1
            return sequence
        }
        return streamSequence.next(to: receiver)
    }

    func seal(
        _ message: Message, on transport: FrameTransport, to receiver: NodeID?, messageClass: MessageClass = .control
    ) -> [UInt8] {
        let frame = sealer.seal(
            message.encode(), messageClass: messageClass, sequence: nextSequence(transport, to: receiver),
            nonce: rng.bytes(24))
        counters.packetsOut += 1
        counters.bytesOut += UInt64(frame.count)
        return frame
    }

    /// Sends a datagram with as many piggybacked changes as fit; changes about `to` first.
    func send(_ message: Message, to member: NodeID?, address: SocketAddress) {
        var m = message
        let budget =
            FrameLimits.datagramPayloadBudget - m.headerByteCount - m.items.reduce(0) { $0 + $1.encodedByteCount }
        m.items += queue.take(
            byteBudget: budget, itemsMax: Message.datagramItemsMax - m.items.count,
            limit: config.retransmitLimit(memberCount: present.count + 1), priority: member)
        transmits.append(.datagram(to: address, bytes: seal(m, on: .datagram, to: member)))
    }

    /// Senders whose replay windows are kept (see `ReplayTable`): the ring neighbours and recent gossip partners
    /// of a node in a fleet of any size fit, at 56 bytes each.
    static let replaySendersMax = 1024

    /// Peers in a row holding our exact view after which queued member news counts as spread.
    static let matchesBeforeQuiet = 3

    /// Pulls in a row that skip the backoff because two peers agreed on a view we lack (see `noteDigest`).
    static let agreedPullsMax = 3

    /// Members a joining node is introduced to (see `introduction(for:)`).
    static let introductionSize = 32

    /// Members a pull must add to the view for the next pull to list fingerprints (see `pullWithFingerprints`).
    public static let fingerprintPullGain = 32

    func addToDigest(_ member: NodeID, _ incarnation: UInt64) {
        let t = Node.digestTerm(member, incarnation)
        let b = Message.finestBucket(of: member)
        digest = digest &+ t
        fineDigests[b] = fineDigests[b] &+ t
        fineCounts[b] &+= 1
    }

    func removeFromDigest(_ member: NodeID, _ incarnation: UInt64) {
        let t = Node.digestTerm(member, incarnation)
        let b = Message.finestBucket(of: member)
        digest = digest &- t
        fineDigests[b] = fineDigests[b] &- t
        fineCounts[b] &-= 1
    }

    /// Bucket digests and member counts at `buckets` ranges (`Message.bucketCount`, `fineBucketCount` or
    /// `finestBucketCount`).
    func bucketSummary(_ buckets: Int) -> (digests: [UInt64], counts: [UInt16]) {
        if buckets == Message.finestBucketCount { return (fineDigests, fineCounts) }
        let group = Message.finestBucketCount / buckets
        var digests = [UInt64](repeating: 0, count: buckets)
        var counts = [UInt16](repeating: 0, count: buckets)
        for f in 0..<Message.finestBucketCount {
            digests[f / group] = digests[f / group] &+ fineDigests[f]
            counts[f / group] &+= fineCounts[f]
        }
        return (digests, counts)
    }

    /// The fingerprints of the present members (self included) for a pull naming `counts.count` ranges with these
    /// counts (from `bucketSummary`): range by range, in slot order within a range. Empty if the table and the
    /// counts disagree, which they never should (the pull then goes without).
    func memberFingerprints(counts: [UInt16]) -> [UInt16] {
        let n = counts.count
        // Where each range's next fingerprint goes, and where the range ends.
        var next: [Int] = []
        var end: [Int] = []
        next.reserveCapacity(n)
        end.reserveCapacity(n)
        var total = 0
        for c in counts {
            next.append(total)
            total += Int(c)
            end.append(total)
        }
        var out = [UInt16](repeating: 0, count: total)
        let shift = UInt64(64 - n.trailingZeroBitCount)
        // One pass over the rows in slot order, which reads memory in order; each fingerprint goes to its range.
        for s in 0..<table.slotLimit {
            guard let incarnation = table.presentIncarnation(at: s) else { continue }
            let member = table.id(at: s)
            let b = Int(member.rawValue >> shift)
            guard next[b] < end[b] else { return [] }
            out[next[b]] = Node.fingerprint(member, incarnation, suspect: table.isSuspect(at: s))
            next[b] += 1
        }
        return next == end ? out : []
    }

    /// What a pull lists of each member it holds: the low 16 bits of the member's digest term, inverted for a
    /// suspect. Suspicion is not in the digest; this way a reply that covers the member's range also carries a
    /// suspicion the requester has not heard of, as whole buckets did.
    static func fingerprint(_ member: NodeID, _ incarnation: UInt64, suspect: Bool) -> UInt16 {
        let f = UInt16(truncatingIfNeeded: digestTerm(member, incarnation))
        return suspect ? ~f : f
    }

    /// A member's view of more than this many members pulls by fine buckets, and of more than
    /// `finestBucketsFrom` by the finest: the request grows (10 bytes a range, 40 KiB for the finest) while the
    /// reply sheds the members the requester already holds in a differing range.
    static let fineBucketsFrom = 2048
    static let finestBucketsFrom = 8192

    /// How many id ranges a pull from a view of `present` members names (0 for a joiner, which names none).
    static func pullBuckets(present: Int) -> Int {
        if present == 0 { return 0 }
        if present >= finestBucketsFrom { return Message.finestBucketCount }
        return present >= fineBucketsFrom ? Message.fineBucketCount : Message.bucketCount
    }

    /// One member's share of the view digest (the digest is the wrapping sum over present members and self).
    /// Public so that a simulator can compute the digest of the true live set.
    public static func digestTerm(_ id: NodeID, _ incarnation: UInt64) -> UInt64 {
        SplitMix64.mix(id.rawValue ^ (incarnation &* 0x9e37_79b9_7f4a_7c15))
    }
}

/// A FIFO the driver drains: appends at the back, pops from the front without shifting, and reuses its storage
/// once empty.
struct OutputQueue<Element> {
    private var items: [Element] = []
    private var head = 0

    mutating func append(_ item: Element) { items.append(item) }

    var isEmpty: Bool { head >= items.count }

    mutating func pop() -> Element? {
        guard head < items.count else { return nil }
        let item = items[head]
        head += 1
        if head == items.count {
            // Small storage is reused; a burst's (a sync's thousand events) is given back.
            if items.capacity > 64 { items = [] } else { items.removeAll(keepingCapacity: true) }
            head = 0
        }
        return item
    }
}
