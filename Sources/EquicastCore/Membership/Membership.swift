/// The membership part of a node: it owns the member table and the view digests, suspicion, probes, the gossip
/// queue that piggybacks news on every datagram, pulls (syncs) and joins, and leaving. SWIM with Lifeguard's
/// suspicion, rendezvous-chosen gossip targets and ring neighbours (docs/protocol.md). Its timers are the
/// membership entries of the node's `TimerTable`; it talks to the rest of the node through `NodeContext` and the
/// methods the shell calls.
struct Membership {
    let id: NodeID
    let identity: NodeIdentity
    let address: SocketAddress
    let config: MembershipConfig
    /// Suspicion timeouts by confirmation count (0 ... `Suspicion.confirmersMax - 1`), fixed by the config.
    let suspicionTimeouts: [UInt64]
    var incarnation: UInt64
    /// This node's signature of its own record as it stands (alive at `incarnation`, or left).
    var ownProof: MemberProof
    var isLeaving = false
    var leaveRoundsLeft = 0

    // Members: a table, a list for O(1) random picks, and the incrementally kept ring and digests.
    var table: MemberTable
    var present: [NodeID] = []  // alive and suspect members, self excluded
    /// The ring neighbours among the present members that have answered a probe from this node: the members
    /// this node watches and gossips to every round. A member learned from others takes a place here only
    /// once it has answered, so members that exist only in someone's claims (a fleet-key holder announcing a
    /// thousand made-up ids) cannot crowd out the real neighbours whose failures this node must detect.
    var ring: RingTracker
    /// The same over every present member: the nearest that have not answered yet are probed first
    /// (`probeRingCandidates`), and take their place in `ring` when they answer.
    var candidates: RingTracker
    /// The view digest: the wrapping sum of `digestTerm` over self and the present members.
    var digest: UInt64 = 0
    /// The same sum per finest id range (the top 12 bits of the id), and the present members in each: a pull
    /// names these (or their sums over 4 or 16 neighbouring ranges) and receives only the ranges whose sums
    /// differ.
    var fineDigests = [UInt64](repeating: 0, count: Message.finestBucketCount)
    var fineCounts = [UInt16](repeating: 0, count: Message.finestBucketCount)
    var suspicions: [NodeID: Suspicion] = [:] {
        didSet { earliestSuspicionDeadline = nil }
    }
    /// The soonest suspicion deadline, recomputed only after `suspicions` changes: a wave of failures holds
    /// hundreds of suspicions, and the timer is read after every input.
    var earliestSuspicionDeadline: UInt64?

    var queue: GossipQueue
    var seenEvents: [NodeID: UInt64] = [:]  // highest event id delivered per origin
    var nextEventID: UInt64 = 1

    // Pulls.
    var nextSyncAllowed: UInt64 = 0
    /// Wait after the next mismatch sync: doubles from GossipInterval to SyncInterval while mismatches keep
    /// coming, back to the start after a quiet 2 * SyncInterval.
    var syncBackoff: UInt64 = 0
    /// Whether the next pull lists member fingerprints: true while pulls keep bringing members this node lacked
    /// (a join, a healed partition), when the reply would otherwise repeat most of what it holds. A pull after a
    /// small change or during a wave of failures goes without: 2 bytes per member held would be most of it.
    var pullWithFingerprints = true
    var lastMismatchSync: UInt64 = 0
    var pendingSyncs: [UInt64: PendingSync] = [:] {
        didSet { syncTimerStale = true }
    }
    var syncTimerStale = false
    var seeds: [SocketAddress]
    var mismatchPeer: NodeID?
    /// Distinct peers in a row whose digest matched ours, and the last of them.
    var matchingPeers = 0
    var lastMatchingPeer: NodeID?
    /// The last differing digest heard and from whom; pulls made because two peers agreed on it, since our
    /// digest last matched a peer's.
    var lastForeignDigest: UInt64 = 0
    var lastForeignPeer: NodeID?
    var agreedPulls = 0

    // Rounds and probes.
    var round: UInt64 = 0
    var probePeriod: UInt64 = 0
    /// Ring neighbours probed since they became neighbours (see `startPeriodicProbe`).
    var ringProbed: [NodeID] = []
    var probes: [UInt32: Probe] = [:] {
        didSet { probeTimerStale = true }
    }
    var forwarded: [UInt32: ForwardedProbe] = [:] {
        didSet { probeTimerStale = true }
    }
    var probeTimerStale = false
    var nextProbeID: UInt32 = 1

    struct Probe {
        let target: NodeID
        var indirect: Bool
        var deadline: UInt64
    }

    struct ForwardedProbe {
        let requester: SocketAddress
        let requesterProbeID: UInt32
        let deadline: UInt64
    }

    /// Members that gossip introduced (news of members not known before) in the current one-second window, by
    /// sender and in all (see `mayIntroduce`).
    struct Introductions {
        var windowEnds: UInt64 = 0
        var bySender: [NodeID: UInt64] = [:]
        var total: UInt64 = 0
    }
    var introductions = Introductions()

    struct PendingSync {
        let peer: SocketAddress
        let startedAt: UInt64
    }

    /// How often failed and departed members are looked at for forgetting (ms).
    static let reclaimInterval: UInt64 = 10_000

    /// Senders whose replay windows are kept (see `ReplayTable`): the ring neighbours and recent gossip partners
    /// of a node in a fleet of any size fit, at 56 bytes each.
    static let replaySendersMax = 1024

    /// Peers in a row holding our exact view after which queued member news counts as spread.
    static let matchesBeforeQuiet = 3

    /// Pulls in a row that skip the backoff because two peers agreed on a view we lack (see `noteDigest`).
    static let agreedPullsMax = 3

    /// Members a joining node is introduced to (see `introduction(for:)`). Each is a signed record of about 140
    /// bytes, and every joiner of a mass join asks the same seed: at 32 the seed's uplink (10 Mbit/s in the
    /// simulator's clean runs) took 3.6 s to introduce 1,000 joiners; at 4 it takes 0.45 s, and the joiner
    /// pulls the rest of the view from the members it was introduced to.
    static let introductionSize = 4

    /// Gossip datagrams a round may send one target while news is waiting that has not gone out at all. One
    /// datagram holds 8 signed member records; during a mass join one per target leaves news queued for rounds.
    static let gossipDatagramsPerTargetMax = 4

    /// New members gossip may introduce a second, from one sender and from all, and the senders counted
    /// (`mayIntroduce`). A sender whose ring neighbours and fanout include this node sends it at most about 160
    /// records a second during a mass join; pulls bring what these leave out.
    static let introductionsPerSenderMax: UInt64 = 128
    static let introductionsMax: UInt64 = 1024
    static let introducersMax = 256

    /// Members a pull must add to the view for the next pull to list fingerprints (see `pullWithFingerprints`).
    static let fingerprintPullGain = 32

    /// Gossip rounds a leaving node keeps sending its announcement: enough for it to reach its retransmit limit
    /// through every target.
    static let leaveRounds = 3

    /// - Parameter salt: from the node's random generator; seeds the private member directory's hash (when no
    ///   shared `directory` is given) and, inverted, the gossip queue's.
    @inline(__always)
    init(
        identity: NodeIdentity, address: SocketAddress, bootCount: UInt64, config: MembershipConfig,
        seeds: [SocketAddress], directory: MemberDirectory?, salt: UInt64, now: UInt64, timers: inout TimerTable
    ) {
        self.id = identity.id
        self.identity = identity
        self.address = address
        self.config = config
        self.suspicionTimeouts = (0..<Suspicion.confirmersMax).map {
            SuspicionTimeout.milliseconds(
                confirmations: $0, expected: max(1, config.ringSize - 1), minimum: config.suspicionTimeoutMin,
                maximum: config.suspicionTimeoutMax)
        }
        self.incarnation = bootCount << 32
        self.ownProof = MemberProof(key: identity.publicKey, signature: [])
        self.table = MemberTable(
            directory: directory ?? MemberDirectory(shared: false, salt: salt), scheme: identity.scheme)
        self.ring = RingTracker(selfID: id, perSide: max(1, config.ringSize / 2))
        self.candidates = ring
        self.queue = GossipQueue(capacity: config.gossipQueueCapacity, salt: ~salt)
        self.seeds = seeds.filter { $0 != address }
        timers[.gossip] = now + config.gossipInterval
        timers[.probe] = now + config.probeInterval
        timers[.reclaim] = now + Membership.reclaimInterval
        timers[.reconnect] = now + config.reconnectInterval
        table[id] = Member(
            id: id, address: address, state: .alive, incarnation: incarnation, stateChangedAt: now, lastHeard: now)
        signOwnRecord()
        addToDigest(id, incarnation)
        queue.enqueue(.member(selfUpdate))
    }

    // MARK: getters

    func member(_ id: NodeID) -> Member? { table[id] }
    /// Members other than self that are alive or suspect.
    var presentCount: Int { present.count }
    var ringNeighbours: [NodeID] {
        mutating get {
            rescanRing()
            return ring.neighbours
        }
    }
    /// The members this node probes in turn: its ring neighbours, with suspects passed over for the members
    /// beyond them (`RingTracker.watched`). `except`: a member counted as not suspect.
    mutating func watchedNeighbours(except: NodeID? = nil) -> [NodeID] {
        rescanRing()
        return ring.watched { $0 != except && table.stateAndIncarnation($0)?.state == .suspect }
    }
    private mutating func rescanRing() {
        if ring.needsRescan { ring.rescan(present.filter { table.hasAnswered($0) }) }
    }
    /// True once a leave has been announced and its gossip rounds are done.
    var leaveComplete: Bool { isLeaving && leaveRoundsLeft == 0 }

    var selfUpdate: MemberUpdate {
        MemberUpdate(
            state: isLeaving ? .left : .alive, id: id, incarnation: incarnation, address: address, reporter: id,
            proof: ownProof)
    }

    /// Signs this node's record as it now stands (at start, after a refutation, or when leaving).
    @inline(never)
    mutating func signOwnRecord() {
        ownProof.signature = identity.sign(
            Statement.member(id: id, incarnation: incarnation, address: address, left: isLeaving))
        table.setProof(id, ownProof)
    }

    /// `config.fanout` members chosen by rendezvous hash for round `r` (empty when alone).
    func fanoutPeers(round r: UInt64) -> [NodeID] {
        guard !present.isEmpty else { return [] }
        return PeerSelection.rendezvousTargets(
            selfID: id, round: r, viewDigest: digest, memberCount: present.count, count: config.fanout,
            excluding: nil
        ).map { present[$0] }
    }

    // MARK: update statuses (kept in the member table's rows)

    func status(of node: NodeID) -> NodeStatus? { table.status(node) }
    var statusCount: Int { table.statusCount }
    /// Every status held, in id order.
    var statuses: [NodeStatus] { table.statuses.map { $0.node }.sortedIDs().map { table.status($0)! } }
    mutating func setStatus(_ st: NodeStatus) { table.setStatus(st) }

    // MARK: timers

    /// Brings the membership deadlines that depend on collections up to date after they changed.
    mutating func rearmTimers(_ timers: inout TimerTable) {
        if probeTimerStale {
            probeTimerStale = false
            var t = UInt64.max
            for p in probes.values { t = min(t, p.deadline) }
            timers[.probeTimeout] = t
            t = .max
            for f in forwarded.values { t = min(t, f.deadline) }
            timers[.forwardTimeout] = t
        }
        if syncTimerStale {
            syncTimerStale = false
            var t = UInt64.max
            for s in pendingSyncs.values { t = min(t, s.startedAt + config.syncInterval * 2) }
            timers[.syncTimeout] = t
        }
        timers[.suspicion] = nextSuspicionDeadline() ?? .max
    }

    // MARK: sending

    /// Sends a datagram with as many piggybacked changes as fit; changes about `to` first. `unsentOnly`: only
    /// changes not sent before (a further datagram to the same member in one gossip round). `bare`: none.
    mutating func send(
        _ message: Message, to member: NodeID?, address: SocketAddress, unsentOnly: Bool = false, bare: Bool = false,
        ctx: inout NodeContext
    ) {
        var m = message
        let budget =
            FrameLimits.datagramPayloadBudget - m.headerByteCount - m.items.reduce(0) { $0 + $1.encodedByteCount }
        if !bare {
            m.items += queue.take(
                byteBudget: budget, itemsMax: Message.datagramItemsMax - m.items.count,
                limit: config.retransmitLimit(memberCount: present.count + 1), priority: unsentOnly ? nil : member,
                unsentOnly: unsentOnly)
        }
        ctx.transmits.append(.datagram(to: address, bytes: ctx.seal(m, on: .datagram, to: member)))
    }

    /// Queues a change for gossip and brings the next round forward, so news travels at network speed rather
    /// than at the gossip interval; rounds still come at most four times per interval.
    mutating func enqueueNews(_ item: GossipItem, now: UInt64, timers: inout TimerTable) {
        queue.enqueue(item)
        timers.bringForward(.gossip, to: now + config.gossipInterval / 4)
    }

    // MARK: leaving and broadcasts

    /// Announces departure: no more probes; the announcement goes out for `leaveRounds` gossip rounds.
    mutating func leave(now: UInt64, ctx: inout NodeContext) {
        guard !isLeaving else { return }
        isLeaving = true
        probes.removeAll()
        table[id]!.state = .left
        signOwnRecord()
        queue.enqueue(.member(selfUpdate))
        leaveRoundsLeft = Membership.leaveRounds
        ctx.timers[.gossip] = now
    }

    mutating func broadcast(_ payload: [UInt8], now: UInt64, ctx: inout NodeContext) {
        let event = GossipEvent(
            origin: id, id: nextEventID, payload: Array(payload.prefix(GossipEvent.payloadByteCountMax)))
        nextEventID += 1
        seenEvents[id] = event.id
        enqueueNews(.event(event), now: now, timers: &ctx.timers)
    }

    mutating func join(_ addresses: [SocketAddress], now: UInt64, ctx: inout NodeContext) {
        seeds = addresses.filter { $0 != address }
        startJoin(now: now, ctx: &ctx)
    }

    // MARK: the view digest

    mutating func addToDigest(_ member: NodeID, _ incarnation: UInt64) {
        let t = Membership.digestTerm(member, incarnation)
        let b = Message.finestBucket(of: member)
        digest = digest &+ t
        fineDigests[b] = fineDigests[b] &+ t
        fineCounts[b] &+= 1
    }

    mutating func removeFromDigest(_ member: NodeID, _ incarnation: UInt64) {
        let t = Membership.digestTerm(member, incarnation)
        let b = Message.finestBucket(of: member)
        digest = digest &- t
        fineDigests[b] = fineDigests[b] &- t
        fineCounts[b] &-= 1
    }

    /// This node's own incarnation rises to `value` (a refutation).
    mutating func setIncarnation(_ value: UInt64) {
        removeFromDigest(id, incarnation)
        incarnation = value
        addToDigest(id, incarnation)
        table[id]!.incarnation = incarnation
        signOwnRecord()
    }

    /// One member's share of the view digest (the digest is the wrapping sum over present members and self).
    static func digestTerm(_ id: NodeID, _ incarnation: UInt64) -> UInt64 {
        SplitMix64.mix(id.rawValue ^ (incarnation &* 0x9e37_79b9_7f4a_7c15))
    }
}
