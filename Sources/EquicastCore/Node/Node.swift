import EquicastCrypto

/// An Equicast node: a deterministic state machine (see STYLE.md on quinn-proto) and a thin shell over the parts
/// that own its state. It never reads a clock, a socket or an OS random source: `now` (milliseconds, monotonic)
/// comes with every input and randomness from the seeded generator it was given.
///
/// Parts: `Membership` (the member table, failure detection, gossip and pulls) and `Dissemination` (the release
/// this node holds and spreads, and its update status). Each owns its state and changes it only in its own
/// methods; they share `NodeContext` (randomness, frame sealing, counters, the timer table and the output
/// queues), and the shell routes inputs to them. docs/architecture.md says where each behaviour lives.
///
/// Four kinds of method:
/// - getters (`members`, `digest`, `heldRelease`, ...), which change nothing;
/// - inputs: `handleDatagram`, `handleStreamFrame`, `handleStreamFailed`, `handleTimeout`, and the driver's
///   answers to storage requests (`releaseOpened`, `serveChunk`, `chunkStoreFailed`);
/// - commands: `handleCommand`, `restoreRelease`, `reportUpdate`;
/// - outputs, which the driver drains after every input or command in one order, the one `drain(into:)`
///   follows: storage requests (`pollStorage`), then transmits (`pollTransmit`), then events (`pollEvent`), again
///   until all three are empty; then it sleeps until `pollTimeout()`. Storage comes first because carrying it
///   out answers the node (a chunk read is served as pieces), whose transmits then leave in the same pass; events
///   come last because a driver acting on one (installing a release) feeds the node again.
public final class Node {
    var context: NodeContext
    var membership: Membership
    var dissemination: Dissemination
    var opener: FrameOpener
    public let config: MembershipConfig

    /// - Parameters:
    ///   - identity: the node's key pair; its id follows from it.
    ///   - bootCount: how many times this node has started (persisted by the driver). It seeds the incarnation
    ///     and the frame sequence base, so a restarted node outranks its previous life everywhere.
    ///   - randomSeed: seeds every random choice and the frame nonces; the daemon draws it from the OS CSPRNG.
    ///   - directory: where member ids and addresses are interned; nil for a private one (a daemon). A simulator
    ///     passes one shared directory to all its nodes.
    public init(
        identity: NodeIdentity, address: SocketAddress, bootCount: UInt64, keyring: FleetKeyring,
        encryptionEnabled: Bool,
        config: MembershipConfig, seeds: [SocketAddress], randomSeed: [UInt8], now: UInt64,
        directory: MemberDirectory? = nil, release: ReleaseSettings = ReleaseSettings()
    ) {
        self.config = config
        let id = identity.id
        var random = DeterministicRandom(seedBytes: randomSeed)
        let salt = random.next()
        dissemination = Dissemination(id: id, bootCount: bootCount, settings: release, now: now, rng: &random)
        context = NodeContext(
            identity: identity, address: address, bootCount: bootCount, rng: random,
            sealer: FrameSealer(sender: id, keyring: keyring, encryptionEnabled: encryptionEnabled))
        opener = FrameOpener(
            keyring: keyring, requireEncryption: encryptionEnabled,
            senderCapacity: min(config.membersMax, Membership.replaySendersMax))
        membership = Membership(
            identity: identity, address: address, bootCount: bootCount, config: config, seeds: seeds,
            directory: directory,
            salt: salt, now: now, timers: &context.timers)
        dissemination.signStatus(members: &membership, ctx: &context)
        membership.startJoin(now: now, ctx: &context)
    }

    // MARK: getters

    public var id: NodeID { context.id }
    public var address: SocketAddress { context.address }
    public var incarnation: UInt64 { membership.incarnation }
    public var counters: NodeCounters { context.counters }
    public var isLeaving: Bool { membership.isLeaving }
    /// The view digest: the wrapping sum of `digestTerm` over self and the present members.
    public var digest: UInt64 { membership.digest }
    /// Every member this node knows, itself included, in id order.
    public var members: [Member] {
        // Read through the class (`self` captured), not by a getter of `Membership`'s: calling one from another
        // module copies the whole part (seen in the aarch64 build: 1.7 KB of copying code).
        membership.table.values.map { $0.id }.sortedIDs().map { membership.table[$0]! }
    }
    public func member(_ id: NodeID) -> Member? { membership.member(id) }
    /// Members other than self that are alive or suspect.
    public var presentCount: Int { membership.presentCount }
    public var ringNeighbours: [NodeID] { membership.ringNeighbours }
    /// Members in each state, self included.
    public func count(_ state: MemberState) -> Int { membership.table.count(state) }
    /// True once a leave has been announced and its gossip rounds are done.
    public var leaveComplete: Bool { membership.leaveComplete }

    /// The release this node holds and spreads, if any.
    public var heldRelease: ReleaseAdvert? { dissemination.transfer?.advert }
    public var heldManifest: SignedManifest? { dissemination.transfer?.signed }
    /// Whether this node will install the release it holds.
    public var heldReleaseInstallable: Bool { dissemination.transfer?.installable ?? false }
    /// Chunks of the held release verified here.
    public var releaseHaves: ChunkBitfield? { dissemination.transfer?.have }
    public var installedVersion: UInt64 { dissemination.installedVersion }
    public var updateState: UpdateState { dissemination.updateState }
    /// What this node knows of every node's firmware, itself included, in id order.
    public var fleetStatuses: [NodeStatus] {
        membership.table.statuses.map { $0.node }.sortedIDs().map { membership.table.status($0)! }
    }

    /// Members a pull must add to the view for the next pull to list fingerprints.
    public static let fingerprintPullGain = Membership.fingerprintPullGain

    /// One member's share of the view digest (the digest is the wrapping sum over present members and self).
    /// Public so that a simulator can compute the digest of the true live set.
    public static func digestTerm(_ id: NodeID, _ incarnation: UInt64) -> UInt64 {
        Membership.digestTerm(id, incarnation)
    }

    // MARK: outputs

    /// Storage work for the driver (see `StorageRequest`).
    public func pollStorage() -> StorageRequest? { context.storage.pop() }

    public func pollTransmit() -> Transmit? { context.transmits.pop() }

    public func pollEvent() -> NodeEvent? { context.events.pop() }

    /// True while any output waits to be drained.
    public var hasPendingOutputs: Bool {
        !context.storage.isEmpty || !context.transmits.isEmpty || !context.events.isEmpty
    }

    /// The next moment `handleTimeout` has work to do: the earliest entry of the timer table.
    public func pollTimeout() -> UInt64 {
        membership.rearmTimers(&context.timers)
        dissemination.rearmTimers(&context.timers)
        return context.timers.next
    }

    // MARK: inputs

    public func handleDatagram(_ bytes: [UInt8], from: SocketAddress, now: UInt64) {
        context.counters.packetsIn += 1
        context.counters.bytesIn += UInt64(bytes.count)
        guard let frame = openFrame(bytes, transport: .datagram, from: from) else { return }
        if frame.header.messageClass == .data {
            membership.heard(frame.header.sender, now: now)
            dissemination.handleFrame(
                frame, stream: nil, from: from, now: now, members: &membership, ctx: &context)
            return
        }
        guard let (sender, message) = decodeMessage(frame, transport: .datagram, from: from) else { return }
        membership.heard(sender, now: now)
        if membership.isLeaving && message.type != .ack { return }
        for item in message.items { absorb(item, from: sender, now: now) }
        membership.handleDatagramMessage(message, from: sender, address: from, now: now, ctx: &context)
    }

    public func handleStreamFrame(_ bytes: [UInt8], stream: StreamOrigin, now: UInt64) {
        context.counters.packetsIn += 1
        context.counters.bytesIn += UInt64(bytes.count)
        let from: SocketAddress
        switch stream {
        case .outgoing(let sid):
            from = membership.syncPeer(sid) ?? dissemination.peerAddress(stream: sid) ?? context.address
        case .accepted: from = context.address
        }
        guard let frame = openFrame(bytes, transport: .stream, from: from) else {
            if case .outgoing(let sid) = stream { streamEnded(sid, now: now) }
            return
        }
        if frame.header.messageClass == .data {
            membership.heard(frame.header.sender, now: now)
            dissemination.handleFrame(
                frame, stream: stream, from: from, now: now, members: &membership, ctx: &context)
            return
        }
        guard let (sender, message) = decodeMessage(frame, transport: .stream, from: from) else {
            if case .outgoing(let sid) = stream { streamEnded(sid, now: now) }
            return
        }
        membership.heard(sender, now: now)
        membership.handleStreamMessage(message, stream: stream, from: sender, now: now, ctx: &context)
    }

    /// The driver could not connect, send or read for a stream this node opened.
    public func handleStreamFailed(id sid: UInt64, now: UInt64) {
        streamEnded(sid, now: now)
    }

    /// Runs every timer that is due, in the table's order: membership's before the release work's, reconnecting
    /// and reclaiming after them. A spurious wake-up (nothing due) changes nothing.
    public func handleTimeout(now: UInt64) {
        membership.handleTimersBeforeRelease(now: now, ctx: &context)
        dissemination.handleTimers(now: now, members: &membership, ctx: &context)
        for forgotten in membership.handleTimersAfterRelease(now: now, ctx: &context) {
            opener.forget(sender: forgotten)
        }
    }

    public func handleCommand(_ command: NodeCommand, now: UInt64) {
        switch command {
        case .leave: membership.leave(now: now, ctx: &context)
        case .broadcast(let payload): membership.broadcast(payload, now: now, ctx: &context)
        case .join(let addresses): membership.join(addresses, now: now, ctx: &context)
        }
    }

    // MARK: routing

    /// A stream this node opened ended without a usable reply: a pull, or a transfer request.
    func streamEnded(_ sid: UInt64, now: UInt64) {
        if !membership.syncEnded(sid, ctx: &context) {
            dissemination.requestFailed(sid, now: now, members: &membership, ctx: &context)
        }
    }

    /// A gossiped item goes to the part that owns what it is about.
    @inline(never)
    func absorb(_ item: GossipItem, from sender: NodeID, now: UInt64) {
        switch item {
        case .member, .event:
            membership.absorb(item, from: sender, now: now, ctx: &context)
        case .release(let a):
            dissemination.heardAdvert(a, from: sender, now: now, members: &membership, ctx: &context)
        case .status(let st):
            dissemination.heardStatus(st, from: sender, now: now, members: &membership, ctx: &context)
        }
    }

    func openFrame(_ bytes: [UInt8], transport: FrameTransport, from: SocketAddress) -> OpenedFrame? {
        // The sender's boot epoch as its signed incarnation shows it: a frame numbered beyond it (a restart not
        // yet heard of, or a forgery) is taken but moves no replay window. Read from the header's sender field
        // (bytes 8-15) before the frame is opened; a short frame is refused by `open`.
        var epoch: UInt64?
        if bytes.count >= 16 {
            var sender: UInt64 = 0
            for i in 8..<16 { sender = sender << 8 | UInt64(bytes[i]) }
            epoch = membership.table.stateAndIncarnation(NodeID(rawValue: sender)).map { $0.incarnation >> 32 }
        }
        do throws(WireError) {
            return try opener.open(bytes, transport: transport, epochLimit: epoch)
        } catch {
            handleRefusedFrame(error, from: from)
            return nil
        }
    }

    /// A frame the driver refused before handing it over (a stream header naming a key this node does not
    /// hold, a body over the limit): counted like one the node refused itself.
    public func handleRefusedFrame(_ error: WireError, from: SocketAddress) {
        switch error {
        case .unknownKeyID, .authenticationFailed, .encryptionRequired: context.counters.authenticationFailures += 1
        case .replayed, .staleSequence: context.counters.replaysRejected += 1
        default: context.counters.decodeErrors += 1
        }
        context.events.append(.refused(error, from: from))
    }

    func decodeMessage(_ frame: OpenedFrame, transport: FrameTransport, from: SocketAddress) -> (NodeID, Message)? {
        let itemsMax = transport == .datagram ? Message.datagramItemsMax : config.membersMax + 1
        do throws(WireError) {
            let message = try Message.decode(frame.payload, itemsMax: itemsMax)
            if transport == .datagram && (message.type == .syncRequest || message.type == .syncResponse) {
                throw .unknownMessageType(message.type.rawValue)
            }
            return (frame.header.sender, message)
        } catch {
            context.counters.decodeErrors += 1
            context.events.append(.refused(error, from: from))
            return nil
        }
    }
}
