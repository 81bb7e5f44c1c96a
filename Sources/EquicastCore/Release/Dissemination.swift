import EquicastCrypto

/// The dissemination part of a node: it owns the release this node holds and spreads (`ReleaseTransfer`), the
/// manifest and chunk requests in flight, Trickle re-advertisement, and the node's update status as the fleet
/// sees it. Announcement by gossip and Trickle, manifest fetch and verification, bitfield exchange, rarest-first
/// pulls from several peers, piece-by-piece relaying and serving. Wire layouts are in docs/protocol.md, the
/// manifest and chunks in docs/release-format.md. It never writes `Membership`'s fields: it calls its
/// methods and reads a few of its properties.
///
/// Its methods that are called from several places and run once per message or chunk are `@inline(never)`:
/// inlined into each caller, they made the stripped aarch64 agent 15 KB larger than one copy of each does.
struct Dissemination {
    let id: NodeID
    let settings: ReleaseSettings
    let productTag: UInt64
    var installedVersion: UInt64
    var updateState: UpdateState
    var transfer: ReleaseTransfer?
    /// Releases refused or failed here: never fetched again.
    var rejectedReleases: [Digest256]
    /// Peers that served a manifest other than the one they announced; their announcements are ignored.
    var avoidedSources: [NodeID] = []
    var manifestFetch: ManifestFetch? {
        didSet { requestTimerStale = true }
    }
    /// Chunk requests in flight (at most `chunkRequestsMax`, so a list).
    var chunkFetches: [ChunkFetch] = [] {
        didSet { requestTimerStale = true }
    }
    var requestTimerStale = false
    var trickle: Trickle
    var statusSequence: UInt64
    /// The status last published, signed: what advertisements carry.
    var signedStatus: NodeStatus?
    var nextHaves: UInt64 = 0
    var nextDiscovery: UInt64 = 0
    /// The last 1/`progressSteps` of the download gossiped.
    var publishedStep = -1
    /// When a download stopped by a storage failure tries again (0: not stopped).
    var storageRetryAt: UInt64 = 0

    /// Offsets added to the gossip round for the rendezvous picks of Trickle advertisements and of discovery,
    /// so that neither picks the same members as this round's gossip.
    static let advertRoundOffset: UInt64 = 7
    static let discoveryRoundOffset: UInt64 = 13
    /// Gossip intervals between two discovery rounds (asking more members for a release nobody known holds).
    static let discoveryIntervals: UInt64 = 5

    init(id: NodeID, bootCount: UInt64, settings: ReleaseSettings, now: UInt64, rng: inout DeterministicRandom) {
        self.id = id
        self.settings = settings
        self.productTag = ReleaseAdvert.productTag(settings.product)
        self.installedVersion = settings.installedVersion
        self.updateState = settings.updateState
        self.rejectedReleases = settings.rejectedReleases
        self.statusSequence = bootCount << 32
        self.trickle = Trickle(
            minimum: settings.trickleMinimum, maximum: settings.trickleMaximum, redundancy: settings.trickleRedundancy,
            now: now, rng: &rng)
    }

    // MARK: getters

    var ownStatus: NodeStatus {
        let target = transfer.flatMap { $0.installable ? $0 : nil }
        return NodeStatus(
            node: id, productTag: productTag, sequence: statusSequence, installedVersion: installedVersion,
            targetVersion: target?.version ?? 0, state: updateState, chunksHave: UInt16(target?.have.setCount ?? 0),
            chunksTotal: UInt16(target?.chunkCount ?? 0))
    }

    /// Peers to tell that our bitfield changed: those we exchange with that still miss chunks.
    var havesPending: Bool {
        guard let t = transfer, t.opened else { return false }
        for p in t.peers.all where !p.toldCurrent && !p.banned && !p.haves.isComplete { return true }
        return false
    }

    // MARK: timers

    /// Brings the dissemination deadlines up to date.
    mutating func rearmTimers(_ timers: inout TimerTable) {
        timers[.trickle] = trickle.deadline
        timers[.storageRetry] = storageRetryAt != 0 ? storageRetryAt : .max
        if requestTimerStale {
            requestTimerStale = false
            var t = UInt64.max
            if let f = manifestFetch { t = min(t, f.startedAt + settings.requestTimeout) }
            for f in chunkFetches { t = min(t, f.startedAt + settings.requestTimeout) }
            timers[.requestTimeout] = t
        }
        timers[.haves] = havesPending ? nextHaves : .max
        // Discovery while a download has nobody to fetch from.
        if let t = transfer, t.opened, !t.isComplete, chunkFetches.isEmpty {
            timers[.discovery] = nextDiscovery
        } else {
            timers[.discovery] = .max
        }
    }

    // MARK: the update status

    @inline(never)
    mutating func publishStatus(now: UInt64, members: inout Membership, ctx: inout NodeContext) {
        statusSequence &+= 1
        signStatus(members: &members, ctx: &ctx)
        members.enqueueNews(.status(signedStatus!), now: now, timers: &ctx.timers)
    }

    /// Signs the status as it stands and keeps it as this node's entry in the fleet's statuses.
    @inline(never)
    mutating func signStatus(members: inout Membership, ctx: inout NodeContext) {
        var st = ownStatus
        st.signature = ctx.identity.sign(Statement.status(st))
        signedStatus = st
        members.setStatus(st)
    }

    /// A peer that served a manifest other than the one it announced: its announcements are ignored from now
    /// on (the last `rejectedReleasesMax` such peers).
    mutating func avoid(_ peer: NodeID) {
        if avoidedSources.contains(peer) { return }
        if avoidedSources.count >= ReleaseSettings.rejectedReleasesMax { avoidedSources.removeFirst() }
        avoidedSources.append(peer)
    }

    mutating func reject(_ release: Digest256) {
        if rejectedReleases.contains(release) { return }
        if rejectedReleases.count >= ReleaseSettings.rejectedReleasesMax { rejectedReleases.removeFirst() }
        rejectedReleases.append(release)
    }

    /// The driver moved the update on (verifying, staged, installing, health check, committed, failed, rolled
    /// back) or installed a new version. Failed and rolled-back releases are never fetched again, unless
    /// `rejecting` is false (the failure `chunkStoreFailed` reported, which is tried again).
    mutating func reportUpdate(
        _ state: UpdateState, installedVersion version: UInt64?, rejecting: Bool, now: UInt64,
        members: inout Membership, ctx: inout NodeContext
    ) {
        if let v = version { installedVersion = v }
        if rejecting, state == .failed || state == .rolledBack, let t = transfer { reject(t.id) }
        guard state != updateState || version != nil else { return }
        updateState = state
        publishStatus(now: now, members: &members, ctx: &ctx)
        // The end of an update is what operators wait for: advertise it again soon (Trickle from its minimum)
        // in case the gossip of it missed some nodes; statuses are not part of the membership pulls.
        if state.isFinal { trickle.hearInconsistent(now: now, rng: &ctx.rng) }
    }
}
