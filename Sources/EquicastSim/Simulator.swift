import EquicastCore
import EquicastCrypto
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A discrete-event simulation of a fleet of real `Node`s: the simulator owns the clock (microsecond ticks),
/// the network and every random choice, all derived from `options.seed`, so a run replays exactly.
public final class Simulator {
    public let options: SimOptions
    public internal(set) var samples: [SimSample] = []
    public internal(set) var violations: [SimViolation] = []
    /// Simulated time, microseconds.
    public private(set) var now: UInt64 = 0
    /// Events handled so far (for speed figures).
    public private(set) var eventsHandled: UInt64 = 0

    static let port: UInt16 = 7946

    enum Event {
        case start(Int32)
        case timer(Int32, generation: UInt32)
        case datagram(to: Int32, from: Int32, bytes: [UInt8])
        case streamRequest(to: Int32, from: Int32, connection: UInt64, bytes: [UInt8])
        case streamReply(to: Int32, generation: UInt32, stream: UInt64, bytes: [UInt8])
        case streamFailed(to: Int32, generation: UInt32, stream: UInt64)
        case fault(Fault)
        case sample

        /// Starts, faults and samples: the simulator's own events, handled between windows.
        var isSimulatorEvent: Bool {
            switch self {
            case .start, .fault, .sample: return true
            case .timer, .datagram, .streamRequest, .streamReply, .streamFailed: return false
            }
        }

        /// The node a node event is for (0 for the simulator's own).
        var node: Int32 {
            switch self {
            case .timer(let i, _), .datagram(let i, _, _), .streamRequest(let i, _, _, _), .streamReply(let i, _, _, _),
                .streamFailed(let i, _, _):
                return i
            case .start, .fault, .sample: return 0
            }
        }
    }

    enum Fault {
        case crash(Int32)
        case restart(Int32, keepState: Bool)
        case leave(Int32)
        case rolloutStart
        case partition(oneWay: Bool)
        case heal
        case attack
        case endFaultPhase
    }

    struct Slot {
        var node: Node?
        var id: NodeID
        var bootCount: UInt64
        var up = false
        var generation: UInt32 = 0
        var timerAt: UInt64 = .max
        /// Clock rate relative to true time, in parts per million off 1.
        var driftPPM: Int = 0
        /// Extra delay before this node handles anything (µs).
        var slowness: UInt64 = 0
        /// Highest own incarnation seen, across restarts with state.
        var incarnationSeen: UInt64 = 0
        /// rollout: the chunks this node stores (its disk), and when it verified the whole release (µs).
        var stored: ChunkBitfield?
        var verifiedAt: UInt64?
    }

    /// One per node, allocated once: workers on other threads update their own nodes' slots in place.
    let slots: UnsafeMutableBufferPointer<Slot>
    var queue = EventQueue<Event>()
    /// Worker 0 also runs the nodes the simulator calls into between windows.
    var workers: [SimWorker] = []
    /// The current window's node events, grouped by node (each group in time order), and where each group
    /// starts (then the end): workers claim whole groups, so a node runs on one thread within a window and the
    /// threads share the work however unevenly it falls on the nodes.
    private(set) var windowEvents: [(time: UInt64, event: Event)] = []
    private(set) var groupStarts: [Int] = []
    /// The next group to claim.
    let nextGroup = Atomic<Int>(0)
    /// Threads the node work of a window is spread over (the results do not depend on it).
    public let threadCount: Int
    var rng: DeterministicRandom
    let keyring: FleetKeyring
    var slotOfID: [NodeID: Int32] = [:]
    /// Member ids and addresses, stored once for every node's table.
    let directory: MemberDirectory
    /// rollout: the release and its progress; live nodes that have verified it.
    var rollout: SimRollout?
    var verifiedLive = 0
    var faultPhaseOver = false
    var convergedAt: UInt64?
    /// A crash run: nodes crashed by the fault, verdicts "failed" about them by live nodes so far, and the moment
    /// (µs) every survivor had marked every one of them failed, exact rather than at a sample.
    var crashVictims = 0
    var failedVerdicts = 0
    public internal(set) var crashDetectedAt: UInt64?
    var sampleSyncs: UInt64 = 0
    /// Truth: the sum of digest terms over live nodes, kept as nodes start, stop and change incarnation.
    var truthDigest: UInt64 = 0
    var liveCount = 0
    /// The links, connections and partitions between the nodes (SimNetwork.swift).
    var network: SimNetwork
    /// Totals over the run.
    public var datagramsSent: UInt64 { network.datagramsSent }
    public var datagramsLost: UInt64 { network.datagramsLost }
    /// Datagrams dropped because a link's queue was full (included in `datagramsLost`).
    public var congestionDrops: UInt64 { network.congestionDrops }
    public var bytesSent: UInt64 { network.bytesSent }
    public private(set) var syncsStarted: UInt64 = 0
    /// Member records received and applied by nodes that have stopped (see `recordCounts`).
    var stoppedRecords = SimRecordCounts()
    /// adversary: the hostile nodes, what they sent by kind, honest datagrams kept for replaying, and the
    /// streams they opened (Simulator+Adversaries.swift).
    var adversarySlots: [Int] = []
    var isAdversary: [Bool] = []
    public internal(set) var hostileSent: [UInt64] = []
    var capturedDatagrams: [[UInt8]] = []
    var hostileStreams: UInt64 = 0
    var adversaryVictims: [Int] = []
    /// adversary: the members the adversaries made up, `Simulator.madeUpPerAdversary` each, in their order.
    var madeUp: [(id: NodeID, address: SocketAddress)] = []
    public internal(set) var madeUpMembersAtEnd: Double?

    /// - Parameter threads: how many threads run nodes (1 runs everything on the caller's); a run's results
    ///   are the same for any number.
    public init(options: SimOptions, threads: Int = 1) {
        self.options = options
        self.threadCount = max(1, threads)
        rng = DeterministicRandom(seed: options.seed)
        directory = MemberDirectory(shared: true, salt: options.seed)
        var keySource = DeterministicRandom(seed: options.seed ^ 0xf1ee7)
        keyring = try! FleetKeyring(primary: FleetKey(master: try! SymmetricKey(bytes: keySource.bytes(32))))
        if options.scenario == .rollout { rollout = SimRollout(seed: options.seed, byteCount: options.releaseBytes) }
        self.slots = .allocate(capacity: options.nodeCount)  // initialized below, once every slot is drawn
        network = SimNetwork(model: options.network, slots: self.slots)
        var slots: [Slot] = []
        slots.reserveCapacity(options.nodeCount)
        queue.reserve(options.nodeCount * 8)
        for i in 0..<options.nodeCount {
            var slot = Slot(id: NodeID(rawValue: rng.next()), bootCount: 0)
            if options.clockDriftPPM > 0 {
                slot.driftPPM = rng.below(2 * options.clockDriftPPM + 1) - options.clockDriftPPM
            }
            if options.slowFraction > 0 && rng.unit() < options.slowFraction {
                slot.slowness = options.slowDelay * 1000
            }
            slots.append(slot)
            slotOfID[slot.id] = Int32(i)
            let at = i == 0 ? 0 : UInt64(rng.below(Int(options.joinSpread) + 1)) * 1000
            queue.push(.start(Int32(i)), at: at)
        }
        _ = self.slots.initialize(from: slots)
        workers = (0..<threadCount).map { _ in SimWorker(sim: self, slots: self.slots) }
        scheduleFaults()
        queue.push(.sample, at: 0)
    }

    deinit {
        slots.deinitialize()
        slots.deallocate()
    }

    // MARK: running

    /// Runs the fault phase, then the liveness phase; returns how the run ended.
    ///
    /// Node events run in windows as long as the network's least delay: nothing a node sends in a window
    /// arrives before it ends, so the window's nodes run independently, on `threadCount` threads, and their
    /// sends then enter the network model in (time, node) order. Starts, faults and samples run between windows.
    public func run() -> SimOutcome {
        let end = (options.faultPhase + options.livenessBound) * 1000
        // The least delay any message can have (`SimNetwork.delay` caps at delayMax, should a caller set it lower).
        let lookahead = max(1, min(options.network.delayMin, options.network.delayMax))
        let threads = threadCount > 1 ? SimThreads(workers: workers) : nil
        defer { threads?.stop() }
        while let next = queue.nextTime, next <= end {
            if let serial = queue.peek, serial.isSimulatorEvent {
                _ = queue.pop()
                now = next
                eventsHandled += 1
                workers[0].reset(windowEnd: now)
                workers[0].at(now)
                handle(serial)
                applyOutputs()
                if !violations.isEmpty { return .safety }
                if faultPhaseOver && convergedAt != nil && rolloutSettled { return .passed }
                continue
            }
            let windowEnd = min(next + lookahead, end + 1)
            for w in workers { w.reset(windowEnd: windowEnd) }
            groupWindow(before: windowEnd)
            nextGroup.store(0, ordering: .relaxed)
            if let threads, windowEvents.count >= parallelEventsMin {
                threads.runWindow()
            } else {
                workers[0].runGroups()
            }
            applyOutputs()
            if !violations.isEmpty { return .safety }
            if faultPhaseOver && convergedAt != nil && rolloutSettled { return .passed }
        }
        return convergedAt != nil && rolloutSettled ? .passed : .liveness
    }

    /// Takes the node events due before `windowEnd` off the agenda into `windowEvents`, grouped by node.
    private func groupWindow(before windowEnd: UInt64) {
        var popped: [(time: UInt64, event: Event)] = []
        var keys: [UInt64] = []  // node << 32 | the event's place in `popped`: sorting them groups by node
        while let t = queue.nextTime, t < windowEnd, let e = queue.peek, !e.isSimulatorEvent {
            _ = queue.pop()
            keys.append(UInt64(UInt32(bitPattern: e.node)) << 32 | UInt64(popped.count))
            popped.append((t, e))
        }
        keys.sort()
        windowEvents.removeAll(keepingCapacity: true)
        groupStarts.removeAll(keepingCapacity: true)
        for (k, key) in keys.enumerated() {
            if k == 0 || key >> 32 != keys[k - 1] >> 32 { groupStarts.append(k) }
            windowEvents.append(popped[Int(key & 0xffff_ffff)])
        }
        groupStarts.append(keys.count)
    }

    /// The next unclaimed group of this window's events, if any.
    func claimGroup() -> Range<Int>? {
        let g = nextGroup.add(1, ordering: .relaxed).oldValue
        return g + 1 < groupStarts.count ? groupStarts[g]..<groupStarts[g + 1] : nil
    }

    /// Windows with fewer events run on one thread: waking the others would cost more than it saves.
    var parallelEventsMin = 32

    /// Carries out what the workers' nodes did, in (time, node) order, into the network and the agenda.
    func applyOutputs() {
        var order: [(time: UInt64, node: Int32, worker: Int, index: Int)] = []
        for (w, worker) in workers.enumerated() {
            eventsHandled += worker.eventsHandled
            syncsStarted += worker.streamsOpened
            sampleSyncs += worker.streamsOpened
            truthDigest = truthDigest &+ worker.truthDelta
            failedVerdicts += worker.failedVerdicts
            for (i, o) in worker.outputs.enumerated() { order.append((o.time, o.node, w, i)) }
        }
        order.sort { ($0.time, $0.node, $0.worker, $0.index) < ($1.time, $1.node, $1.worker, $1.index) }
        let latest = workers.reduce(now) { max($0, $1.lastTime) }
        for k in order {
            let o = workers[k.worker].outputs[k.index]
            now = o.time
            let s = Int(o.node)
            switch o.kind {
            case .datagram(let to, let bytes):
                if !adversarySlots.isEmpty && !isAdversary[s] { noteForReplay(bytes) }
                network.sendDatagram(from: s, to: Int(to), bytes: bytes, now: now, rng: &rng, queue: &queue)
            case .streamOpen(let to, let stream, let bytes):
                network.openStream(
                    from: s, to: Int(to), stream: stream, bytes: bytes, now: now, rng: &rng, queue: &queue)
            case .streamReply(let connection, let bytes, let last):
                network.replyStream(
                    from: s, connection: connection, bytes: bytes, last: last, now: now, rng: &rng, queue: &queue)
            case .refuse(let connection):
                network.failConnection(connection, now: now, rng: &rng, queue: &queue)
            case .timer(let generation, let at):
                queue.push(.timer(o.node, generation: generation), at: at)
            case .verified:
                verifiedLive += 1
                if var r = rollout, let start = r.startedAt {
                    r.verifiedAfter.append((now - start) / 1000)
                    rollout = r
                }
            case .violation(let what):
                violate(what)
            }
        }
        if crashDetectedAt == nil && failedVerdicts > 0 && failedVerdicts == crashVictims * liveCount {
            let detected = workers.reduce(0) { max($0, $1.lastFailedVerdict) }  // crash runs
            crashDetectedAt = detected
        }
        for w in workers { w.reset(windowEnd: w.windowEnd) }
        now = latest
    }

    /// True unless this is a rollout that some live node has not verified yet.
    var rolloutSettled: Bool {
        guard let r = rollout else { return true }
        return r.startedAt != nil && verifiedLive == liveCount
    }

    /// More events than this at one instant means some node re-arms its timer without ever advancing it.
    static let sameInstantMax = 200_000

    func describe(_ e: Event) -> String {
        switch e {
        case .start(let i): return "start of node \(i)"
        case .timer(let i, _): return "timer of node \(i)"
        case .datagram(let to, let from, _): return "datagram \(from) -> \(to)"
        case .streamRequest(let to, let from, _, _): return "stream request \(from) -> \(to)"
        case .streamReply(let to, _, _, _): return "stream reply to \(to)"
        case .streamFailed(let to, _, _): return "stream failure at \(to)"
        case .fault: return "fault"
        case .sample: return "sample"
        }
    }

    /// When every live node's view first equalled the live set after the fault phase, in simulated ms.
    public var livenessConvergedAt: UInt64? { convergedAt }

    /// Handles an event of the simulator's own (a start, a fault, a sample) between windows.
    func handle(_ event: Event) {
        switch event {
        case .start(let i):
            startNode(Int(i), keepState: false)
        case .fault(let f):
            apply(f)
        case .sample:
            takeSample()
            queue.push(.sample, at: now + options.membership.gossipInterval * 1000)
        case .timer, .datagram, .streamRequest, .streamReply, .streamFailed:
            preconditionFailure("node events run on workers")
        }
    }

    // MARK: nodes

    static func address(_ i: Int) -> SocketAddress {
        SocketAddress(ipv4: 10, UInt8((i >> 16) & 0xff), UInt8((i >> 8) & 0xff), UInt8(i & 0xff), port: port)
    }

    static func slot(of a: SocketAddress) -> Int? {
        let b = a.bytes
        guard b.count == 4, b[0] == 10, a.port == port else { return nil }
        return Int(b[1]) << 16 | Int(b[2]) << 8 | Int(b[3])
    }

    /// Node `s`'s clock now, between windows (see `SimWorker.nodeClock`).
    func nodeClock(_ s: Int) -> UInt64 { workers[0].nodeClock(s) }

    /// Drains node `s`'s outputs between windows; `applyOutputs` then carries them out.
    func flush(_ s: Int) { workers[0].flush(s) }

    func startNode(_ s: Int, keepState: Bool) {
        if !keepState {
            slotOfID[slots[s].id] = nil
            slots[s].id = NodeID(rawValue: rng.next())
            slotOfID[slots[s].id] = Int32(s)
            slots[s].bootCount = 0
            slots[s].incarnationSeen = 0
            slots[s].stored = nil
            slots[s].verifiedAt = nil
        }
        slots[s].bootCount += 1
        slots[s].generation &+= 1
        slots[s].up = true
        slots[s].timerAt = .max
        let seeds = s == 0 && slots[0].bootCount == 1 ? [] : [Simulator.address(s == 0 ? 1 : 0)]
        let node = Node(
            identity: NodeIdentity(simulated: slots[s].id), address: Simulator.address(s),
            bootCount: slots[s].bootCount, keyring: keyring,
            encryptionEnabled: options.encryptionEnabled, config: options.membership, seeds: seeds,
            randomSeed: rng.bytes(32), now: nodeClock(s), directory: directory,
            release: rollout?.settings ?? ReleaseSettings())
        slots[s].node = node
        liveCount += 1
        if slots[s].verifiedAt != nil { verifiedLive += 1 }
        if let r = rollout, slots[s].stored != nil {
            // Restarted with its disk: the agent restores the release it held (Daemon.restoreReleases).
            _ = node.restoreRelease(r.signed.bytes, now: nodeClock(s))
        }
        truthDigest = truthDigest &+ Node.digestTerm(node.id, node.incarnation)
        workers[0].checkIncarnation(s, node)
        flush(s)
    }

    func stopNode(_ s: Int) {
        guard slots[s].up, let node = slots[s].node else { return }
        truthDigest = truthDigest &- Node.digestTerm(node.id, node.incarnation)
        stoppedRecords.add(node.counters)
        liveCount -= 1
        if slots[s].verifiedAt != nil { verifiedLive -= 1 }
        slots[s].up = false
        slots[s].node = nil
        slots[s].timerAt = .max
    }

    /// Slot `s`'s node while it is up, for tests and reports.
    public func node(_ s: Int) -> Node? { slots[s].up ? slots[s].node : nil }
    public var slotCount: Int { slots.count }
}
