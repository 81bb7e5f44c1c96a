import EquicastCore
import EquicastCrypto
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// How a run ended. The raw values are the process exit codes of `equicast sim`.
public enum SimOutcome: Int32, Sendable {
    case passed = 0
    /// An invariant broke (see `SimViolation`).
    case safety = 3
    /// The fleet did not converge within the bound after the faults stopped.
    case liveness = 4
    /// The code under test trapped (reported by the CLI's signal handler).
    case crash = 5
}

/// A broken invariant, with the simulated time it was seen.
public struct SimViolation: Equatable, Sendable, CustomStringConvertible {
    public let atMilliseconds: UInt64
    public let what: String
    public var description: String { "at \(atMilliseconds) ms: \(what)" }
}

/// Member records moved by gossip and by syncs, and how many changed a view.
public struct SimRecordCounts: Equatable, Sendable {
    public var gossipReceived: UInt64 = 0
    public var gossipApplied: UInt64 = 0
    public var syncReceived: UInt64 = 0
    public var syncApplied: UInt64 = 0

    mutating func add(_ c: NodeCounters) {
        gossipReceived += c.gossipRecordsReceived
        gossipApplied += c.gossipRecordsApplied
        syncReceived += c.syncRecordsReceived
        syncApplied += c.syncRecordsApplied
    }
}

/// One sample of the fleet, taken every gossip interval.
public struct SimSample: Equatable, Sendable {
    public let milliseconds: UInt64
    /// Live nodes whose view is exactly the live set, as a fraction of the live nodes.
    public let convergedFraction: Double
    public let liveNodes: Int
    /// Datagrams and bytes (IP and UDP headers included) sent by all nodes since the previous sample.
    public let datagrams: UInt64
    public let bytes: UInt64
    /// Syncs (pulls and joins) started since the previous sample.
    public let syncs: UInt64
    /// rollout: live nodes that have verified the release, as a fraction of the live nodes.
    public let verifiedFraction: Double
}

/// A discrete-event simulation of a fleet of real `Node`s: the simulator owns the clock (microsecond ticks),
/// the network and every random choice, all derived from `options.seed`, so a run replays exactly.
public final class Simulator {
    public let options: SimOptions
    public private(set) var samples: [SimSample] = []
    public private(set) var violations: [SimViolation] = []
    /// Simulated time, microseconds.
    public private(set) var now: UInt64 = 0
    /// Events handled so far (for speed figures).
    public private(set) var eventsHandled: UInt64 = 0

    static let port: UInt16 = 7946
    static let headerBytes = 28  // IPv4 + UDP, counted against link rates

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
        case endFaultPhase
    }

    struct Slot {
        var node: Node?
        var id: NodeID
        var bootCount: UInt64
        var up = false
        var generation: UInt32 = 0
        var timerAt: UInt64 = .max
        /// When each link finishes what it has queued (µs). Datagrams and streams queue separately, as under
        /// Linux's default fq_codel: sparse datagram flows are not stuck behind a bulk TCP transfer.
        var uplinkFreeAt: UInt64 = 0
        var downlinkFreeAt: UInt64 = 0
        var streamUplinkFreeAt: UInt64 = 0
        var streamDownlinkFreeAt: UInt64 = 0
        /// Clock rate relative to true time, in parts per million off 1.
        var driftPPM: Int = 0
        /// Extra delay before this node handles anything (µs).
        var slowness: UInt64 = 0
        /// Partition side: 1 for the cut-off group while a partition is on.
        var side: UInt8 = 0
        /// Highest own incarnation seen, across restarts with state.
        var incarnationSeen: UInt64 = 0
        /// rollout: the chunks this node stores (its disk), and when it verified the whole release (µs).
        var stored: ChunkBitfield?
        var verifiedAt: UInt64?
    }

    struct Connection {
        let requester: Int32
        let generation: UInt32
        let stream: UInt64
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
    var connections: [UInt64: Connection] = [:]
    var slotOfID: [NodeID: Int32] = [:]
    /// Member ids and addresses, stored once for every node's table.
    let directory: MemberDirectory
    var nextConnection: UInt64 = 1
    /// rollout: the release and its progress; live nodes that have verified it.
    var rollout: SimRollout?
    var verifiedLive = 0
    var partitionOn = false
    var partitionOneWay = false
    var faultPhaseOver = false
    var convergedAt: UInt64?
    /// A crash run: nodes crashed by the fault, verdicts "failed" about them by live nodes so far, and the moment
    /// (µs) every survivor had marked every one of them failed, exact rather than at a sample.
    var crashVictims = 0
    var failedVerdicts = 0
    public private(set) var crashDetectedAt: UInt64?
    var sampleDatagrams: UInt64 = 0
    var sampleBytes: UInt64 = 0
    var sampleSyncs: UInt64 = 0
    /// Truth: the sum of digest terms over live nodes, kept as nodes start, stop and change incarnation.
    var truthDigest: UInt64 = 0
    var liveCount = 0
    /// Totals over the run.
    public private(set) var datagramsSent: UInt64 = 0
    public private(set) var datagramsLost: UInt64 = 0
    /// Datagrams dropped because a link's queue was full (included in `datagramsLost`).
    public private(set) var congestionDrops: UInt64 = 0
    public private(set) var bytesSent: UInt64 = 0
    public private(set) var syncsStarted: UInt64 = 0
    /// Member records received and applied by nodes that have stopped (see `recordCounts`).
    var stoppedRecords = SimRecordCounts()

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
        var slots: [Slot] = []
        slots.reserveCapacity(options.nodeCount)
        queue.reserve(options.nodeCount * 8)
        for i in 0..<options.nodeCount {
            var slot = Slot(id: NodeID(rawValue: rng.next()), bootCount: 0)
            if options.clockDriftPPM > 0 {
                slot.driftPPM = rng.below(2 * options.clockDriftPPM + 1) - options.clockDriftPPM
            }
            if options.slowFraction > 0 && unit() < options.slowFraction {
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
        // The least delay any message can have (`delay()` caps at delayMax, should a caller set it lower).
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
                sendDatagram(from: s, to: Int(to), bytes: bytes)
            case .streamOpen(let to, let stream, let bytes):
                openStream(from: s, to: Int(to), stream: stream, bytes: bytes)
            case .streamReply(let connection, let bytes, let last):
                replyStream(from: s, connection: connection, bytes: bytes, last: last)
            case .refuse(let connection):
                failConnection(connection)
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
            crashDetectedAt = workers.reduce(0) { max($0, $1.lastFailedVerdict) }
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
            id: slots[s].id, address: Simulator.address(s), bootCount: slots[s].bootCount, keyring: keyring,
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

    func violate(_ what: String) {
        violations.append(SimViolation(atMilliseconds: now / 1000, what: what))
    }

    // MARK: network

    func unit() -> Double { Double(rng.next() >> 11) / Double(1 << 53) }

    func delay() -> UInt64 {
        let n = options.network
        let tailMean = Double(n.delayMean - n.delayMin)
        var extra = 0.0
        if tailMean > 0 {
            let u = max(unit(), 1e-12)
            extra = -tailMean * log(u)
        }
        return min(n.delayMin + UInt64(extra), n.delayMax)
    }

    func cut(_ from: Int, _ to: Int) -> Bool {
        guard partitionOn, slots[from].side != slots[to].side else { return false }
        return partitionOneWay ? slots[from].side == 0 : true
    }

    /// A datagram that would wait longer than this behind others on a link is dropped (a full router or
    /// socket buffer), µs.
    static let datagramQueueMax: UInt64 = 100_000

    /// Serialises a datagram through the sender's uplink and the receiver's downlink; returns the arrival time,
    /// or nil when a link's queue is full.
    func transferDatagram(from s: Int, to d: Int, byteCount: Int) -> UInt64? {
        let bits = UInt64(byteCount + Simulator.headerBytes) * 8
        let upTime = bits * 1_000_000 / options.network.uploadBitsPerSecond
        let downTime = bits * 1_000_000 / options.network.downloadBitsPerSecond
        let start = max(now, slots[s].uplinkFreeAt)
        if start - now > Simulator.datagramQueueMax { return nil }
        slots[s].uplinkFreeAt = start + upTime
        let reached = start + upTime + delay()
        let arrivalStart = max(reached, slots[d].downlinkFreeAt)
        if arrivalStart - reached > Simulator.datagramQueueMax { return nil }
        slots[d].downlinkFreeAt = arrivalStart + downTime
        return arrivalStart + downTime + slots[d].slowness
    }

    /// A stream's bytes through both links (reliable; it waits rather than drops). Returns the arrival time.
    func transferStream(from s: Int, to d: Int, byteCount: Int) -> UInt64 {
        let bits = UInt64(byteCount + 40 * (byteCount / 1448 + 1)) * 8  // TCP/IP headers per segment
        let upTime = bits * 1_000_000 / options.network.uploadBitsPerSecond
        let downTime = bits * 1_000_000 / options.network.downloadBitsPerSecond
        let departed = max(now, slots[s].streamUplinkFreeAt) + upTime
        slots[s].streamUplinkFreeAt = departed
        let reached = departed + delay()
        let arrived = max(reached, slots[d].streamDownlinkFreeAt) + downTime
        slots[d].streamDownlinkFreeAt = arrived
        return arrived + slots[d].slowness
    }

    func sendDatagram(from s: Int, to d: Int, bytes: [UInt8]) {
        datagramsSent += 1
        sampleDatagrams += 1
        bytesSent += UInt64(bytes.count + Simulator.headerBytes)
        sampleBytes += UInt64(bytes.count + Simulator.headerBytes)
        if cut(s, d) || unit() < options.network.lossProbability {
            datagramsLost += 1
            return
        }
        guard let at = transferDatagram(from: s, to: d, byteCount: bytes.count) else {
            datagramsLost += 1
            congestionDrops += 1
            return
        }
        queue.push(.datagram(to: Int32(d), from: Int32(s), bytes: bytes), at: at)
        if options.network.duplicateProbability > 0 && unit() < options.network.duplicateProbability {
            queue.push(.datagram(to: Int32(d), from: Int32(s), bytes: bytes), at: at + delay())
        }
    }

    func openStream(from s: Int, to d: Int, stream: UInt64, bytes: [UInt8]) {
        let generation = slots[s].generation
        bytesSent += UInt64(bytes.count)
        sampleBytes += UInt64(bytes.count)
        if !slots[d].up {
            // Connection refused after one round trip.
            queue.push(.streamFailed(to: Int32(s), generation: generation, stream: stream), at: now + 2 * delay())
            return
        }
        if cut(s, d) { return }  // SYNs vanish; the node's own sync timeout gives up
        let connection = nextConnection
        nextConnection += 1
        connections[connection] = Connection(requester: Int32(s), generation: generation, stream: stream)
        // One round trip for the handshake, then the request.
        let at = transferStream(from: s, to: d, byteCount: bytes.count) + 2 * options.network.delayMin
        queue.push(.streamRequest(to: Int32(d), from: Int32(s), connection: connection, bytes: bytes), at: at)
    }

    /// A reply frame; the connection is forgotten after the reply's last frame.
    func replyStream(from s: Int, connection: UInt64, bytes: [UInt8], last: Bool) {
        guard let c = last ? connections.removeValue(forKey: connection) : connections[connection] else { return }
        bytesSent += UInt64(bytes.count)
        sampleBytes += UInt64(bytes.count)
        let r = Int(c.requester)
        if cut(s, r) { return }
        let at = transferStream(from: s, to: r, byteCount: bytes.count)
        queue.push(.streamReply(to: c.requester, generation: c.generation, stream: c.stream, bytes: bytes), at: at)
    }

    func failConnection(_ connection: UInt64) {
        guard let c = connections.removeValue(forKey: connection) else { return }
        queue.push(.streamFailed(to: c.requester, generation: c.generation, stream: c.stream), at: now + delay())
    }

    // MARK: faults

    func scheduleFaults() {
        let o = options
        let ms: (UInt64) -> UInt64 = { $0 * 1000 }
        switch o.scenario {
        case .join:
            break
        case .rollout:
            queue.push(.fault(.rolloutStart), at: ms(o.rolloutAt))
        case .crash:
            let victims = pickNodes(fraction: o.crashFraction)
            crashVictims = victims.count
            for v in victims { queue.push(.fault(.crash(Int32(v))), at: ms(o.crashAt)) }
        case .partition:
            queue.push(.fault(.partition(oneWay: o.partitionOneWay)), at: ms(o.partitionAt))
            queue.push(.fault(.heal), at: ms(o.partitionHealAt))
        case .churn:
            // Poisson arrivals of churn events after the join settles.
            var t = 5_000.0
            let end = Double(o.faultPhase) - 1_000
            while o.churnRate > 0 {
                t += -1000 * log(max(unit(), 1e-12)) / o.churnRate
                if t >= end { break }
                let victim = 1 + rng.below(max(1, o.nodeCount - 1))
                let at = ms(UInt64(t))
                switch rng.below(4) {
                case 0:
                    queue.push(.fault(.crash(Int32(victim))), at: at)
                    queue.push(
                        .fault(.restart(Int32(victim), keepState: true)), at: at + ms(UInt64(500 + rng.below(8_000))))
                case 1:
                    queue.push(.fault(.crash(Int32(victim))), at: at)
                    queue.push(
                        .fault(.restart(Int32(victim), keepState: false)), at: at + ms(UInt64(500 + rng.below(8_000))))
                case 2:
                    queue.push(.fault(.leave(Int32(victim))), at: at)
                    queue.push(
                        .fault(.restart(Int32(victim), keepState: true)), at: at + ms(UInt64(3_000 + rng.below(8_000))))
                default:
                    queue.push(.fault(.crash(Int32(victim))), at: at)  // stays down until the fault phase ends
                }
            }
        }
        queue.push(.fault(.endFaultPhase), at: ms(o.faultPhase))
    }

    /// A random subset of nodes other than node 0 (the seed), `fraction` of the fleet.
    func pickNodes(fraction: Double) -> [Int] {
        let count = min(options.nodeCount - 1, Int((Double(options.nodeCount) * fraction).rounded()))
        var candidates = Array(1..<options.nodeCount)
        for i in 0..<count {
            let j = i + rng.below(candidates.count - i)
            candidates.swapAt(i, j)
        }
        return Array(candidates.prefix(count))
    }

    func apply(_ f: Fault) {
        switch f {
        case .crash(let i):
            stopNode(Int(i))
        case .restart(let i, let keepState):
            let s = Int(i)
            if slots[s].up {
                // A leaving node exits once its announcement is out; a restart replaces it.
                stopNode(s)
            }
            startNode(s, keepState: keepState)
        case .leave(let i):
            let s = Int(i)
            guard slots[s].up, let node = slots[s].node else { return }
            node.handleCommand(.leave, now: nodeClock(s))
            flush(s)
            // The process exits after its leave rounds; a sim node stops answering a little later.
            queue.push(.fault(.crash(i)), at: now + 3 * options.membership.gossipInterval * 1000)
        case .rolloutStart:
            startRollout()
        case .partition(let oneWay):
            partitionOn = true
            partitionOneWay = oneWay
            for v in pickNodes(fraction: options.partitionFraction) { slots[v].side = 1 }
        case .heal:
            partitionOn = false
            for s in slots.indices { slots[s].side = 0 }
        case .endFaultPhase:
            faultPhaseOver = true
            partitionOn = false
            // Liveness: crashed nodes of a churn run come back with their state; a crash run's victims stay
            // down (the survivors must agree they are gone).
            if options.scenario == .churn {
                for s in slots.indices where !slots[s].up { startNode(s, keepState: true) }
            }
            checkConvergence()
        }
    }

    // MARK: measuring

    /// Live nodes whose view is exactly the live set (their digest equals the truth).
    public var convergedCount: Int {
        var n = 0
        for s in slots where s.up && s.node!.digest == truthDigest { n += 1 }
        return n
    }

    func checkConvergence() {
        if faultPhaseOver && convergedAt == nil && convergedCount == liveCount { convergedAt = now / 1000 }
    }

    func takeSample() {
        let converged = convergedCount
        samples.append(
            SimSample(
                milliseconds: now / 1000, convergedFraction: liveCount == 0 ? 1 : Double(converged) / Double(liveCount),
                liveNodes: liveCount, datagrams: sampleDatagrams, bytes: sampleBytes, syncs: sampleSyncs,
                verifiedFraction: liveCount == 0 ? 0 : Double(verifiedLive) / Double(liveCount)))
        sampleDatagrams = 0
        sampleBytes = 0
        sampleSyncs = 0
        if faultPhaseOver && convergedAt == nil && converged == liveCount { convergedAt = now / 1000 }
    }

    /// The first sample time at or after `from` (ms) when every live node had the full view; nil if never.
    public func firstFullConvergence(after from: UInt64) -> UInt64? {
        samples.first { $0.milliseconds >= from && $0.convergedFraction == 1 }?.milliseconds
    }

    /// Member records received and applied over the run, by every node that ran.
    public var recordCounts: SimRecordCounts {
        var total = stoppedRecords
        for s in slots where s.up { total.add(s.node!.counters) }
        return total
    }

    /// Slot `s`'s node while it is up, for tests and reports.
    public func node(_ s: Int) -> Node? { slots[s].up ? slots[s].node : nil }
    public var slotCount: Int { slots.count }
}
