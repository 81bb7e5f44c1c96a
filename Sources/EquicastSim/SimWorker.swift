import EquicastCore

#if canImport(Glibc)
    import Glibc
#endif

/// What a node did during a window that the simulator must carry out afterwards, in a fixed order: the network
/// model, the event agenda and the run's tallies are the simulator's alone.
struct SimOutput {
    enum Kind {
        case datagram(to: Int32, bytes: [UInt8])
        case streamOpen(to: Int32, stream: UInt64, bytes: [UInt8])
        /// `last`: the reply's last frame (a chunk's pieces come as several).
        case streamReply(connection: UInt64, bytes: [UInt8], last: Bool)
        /// A connection reached a node that is down.
        case refuse(connection: UInt64)
        /// The node's next timer, due after the window.
        case timer(generation: UInt32, at: UInt64)
        /// rollout: the node verified the release.
        case verified
        case violation(String)
    }

    let time: UInt64
    let node: Int32
    let kind: Kind
}

/// Runs nodes for the simulator. Between two moments no message can cross the network faster than its least
/// delay, so within such a window the nodes cannot affect one another: the simulator groups the window's events
/// by node, the workers claim groups one at a time and run them on their own threads, and their outputs are then
/// applied in (time, node) order. A run is the same whatever the number of workers, and whichever claims what.
///
/// A worker touches only the nodes of the groups it claimed and their slots; everything else it reads (options,
/// the release, other slots' up flags, the shared member directory) changes only between windows. Every id a
/// node can hear was interned in the directory when its node started or, made up by an adversary, when it was made
/// (both between windows), so the workers only look ids up.
final class SimWorker {
    unowned let sim: Simulator
    let slots: UnsafeMutableBufferPointer<Simulator.Slot>
    /// The moment being simulated on this worker.
    private(set) var now: UInt64 = 0
    /// Events due before this stay on the worker; later ones go back to the simulator.
    var windowEnd: UInt64 = 0
    /// This window's events for this worker's nodes.
    var agenda = EventQueue<Simulator.Event>()
    var outputs: [SimOutput] = []
    /// Change of the sum of live nodes' digest terms (their incarnations changed).
    var truthDelta: UInt64 = 0
    var eventsHandled: UInt64 = 0
    var streamsOpened: UInt64 = 0
    /// Verdicts "failed" about down nodes given in this window, and the moment of the last one so far (µs).
    var failedVerdicts = 0
    var lastFailedVerdict: UInt64 = 0
    /// The latest moment handled.
    var lastTime: UInt64 = 0

    init(sim: Simulator, slots: UnsafeMutableBufferPointer<Simulator.Slot>) {
        self.sim = sim
        self.slots = slots
    }

    func reset(windowEnd: UInt64) {
        self.windowEnd = windowEnd
        outputs.removeAll(keepingCapacity: true)
        truthDelta = 0
        eventsHandled = 0
        streamsOpened = 0
        failedVerdicts = 0
    }

    /// Sets the moment for work the simulator does itself between windows (starts, faults, the hand-over).
    func at(_ time: UInt64) {
        now = time
        lastTime = max(lastTime, time)
    }

    /// Claims groups of the window's events (each one node's) and runs each, until none is left.
    func runGroups() {
        while let group = sim.claimGroup() {
            for k in group {
                let e = sim.windowEvents[k]
                agenda.push(e.event, at: e.time)
            }
            runAgenda()
        }
    }

    /// Handles the agenda in time order. More than `Simulator.sameInstantMax` events at one instant means a node
    /// re-arms its timer without ever advancing it: a violation, and the window stops.
    func runAgenda() {
        var sameInstant = 0
        while let (time, event) = agenda.pop() {
            sameInstant = time == now ? sameInstant + 1 : 0
            at(time)
            eventsHandled += 1
            handle(event)
            if sameInstant > Simulator.sameInstantMax {
                violate(
                    node: 0,
                    "time stands still: \(sameInstant) events at one instant, the last \(sim.describe(event))")
                while agenda.pop() != nil {}
            }
        }
    }

    func handle(_ event: Simulator.Event) {
        switch event {
        case .timer(let i, let generation):
            let s = Int(i)
            guard slots[s].up, slots[s].generation == generation, slots[s].timerAt == now, let node = slots[s].node
            else { return }
            slots[s].timerAt = .max
            node.handleTimeout(now: nodeClock(s))
            flush(s)
        case .datagram(let to, let from, let bytes):
            let s = Int(to)
            guard slots[s].up, let node = slots[s].node else { return }
            node.handleDatagram(bytes, from: Simulator.address(Int(from)), now: nodeClock(s))
            flush(s)
        case .streamRequest(let to, _, let connection, let bytes):
            let s = Int(to)
            guard slots[s].up, let node = slots[s].node else {
                outputs.append(SimOutput(time: now, node: to, kind: .refuse(connection: connection)))
                return
            }
            node.handleStreamFrame(bytes, stream: .accepted(connection), now: nodeClock(s))
            flush(s)
        case .streamReply(let to, let generation, let stream, let bytes):
            let s = Int(to)
            guard slots[s].up, slots[s].generation == generation, let node = slots[s].node else { return }
            node.handleStreamFrame(bytes, stream: .outgoing(stream), now: nodeClock(s))
            flush(s)
        case .streamFailed(let to, let generation, let stream):
            let s = Int(to)
            guard slots[s].up, slots[s].generation == generation, let node = slots[s].node else { return }
            node.handleStreamFailed(id: stream, now: nodeClock(s))
            flush(s)
        case .start, .fault, .sample:
            preconditionFailure("the simulator handles \(sim.describe(event)) itself")
        }
    }

    // MARK: clocks

    /// The node's own clock in ms: true time scaled by its drift, with an offset so clocks disagree.
    func nodeClock(_ s: Int) -> UInt64 {
        let drift = slots[s].driftPPM
        let scaled = drift == 0 ? now : UInt64(Double(now) * (1 + Double(drift) / 1_000_000))
        return scaled / 1000 + 1_000_000
    }

    /// Simulated µs at which node `s`'s clock reads `ms`.
    func trueTime(_ s: Int, nodeMilliseconds ms: UInt64) -> UInt64 {
        let current = nodeClock(s)
        let delta = ms > current ? (ms - current) * 1000 : 0
        let drift = slots[s].driftPPM
        let scaled = drift == 0 ? delta : UInt64(Double(delta) / (1 + Double(drift) / 1_000_000))
        return now + scaled
    }

    // MARK: node outputs

    /// Drains a node's outputs (in the node's drain order, through `SimNodeDriver`) and re-arms its timer.
    func flush(_ s: Int) {
        guard let node = slots[s].node else { return }
        let incarnationBefore = slots[s].incarnationSeen
        var driver = SimNodeDriver(worker: self, slot: s)
        node.drain(into: &driver)
        if node.incarnation != incarnationBefore {
            truthDelta =
                truthDelta &- Node.digestTerm(node.id, incarnationBefore)
                &+ Node.digestTerm(node.id, node.incarnation)
            checkIncarnation(s, node)
        }
        checkSelfView(s, node)
        let deadline = trueTime(s, nodeMilliseconds: node.pollTimeout()) + slots[s].slowness
        if deadline < slots[s].timerAt {
            slots[s].timerAt = deadline
            if deadline < windowEnd {
                agenda.push(.timer(Int32(s), generation: slots[s].generation), at: deadline)
            } else {
                outputs.append(
                    SimOutput(
                        time: now, node: Int32(s), kind: .timer(generation: slots[s].generation, at: deadline)))
            }
        }
    }

    /// One transmit of node `s`, as an output for the simulator's network model.
    func send(_ s: Int, _ t: Transmit) {
        switch t {
        case .datagram(let to, let bytes):
            guard let d = Simulator.slot(of: to), d < slots.count else { return }
            outputs.append(SimOutput(time: now, node: Int32(s), kind: .datagram(to: Int32(d), bytes: bytes)))
        case .streamOpen(let stream, let to, let bytes):
            streamsOpened += 1
            guard let d = Simulator.slot(of: to), d < slots.count else {
                // No such host: the connection fails at once, on this node.
                let failure = Simulator.Event.streamFailed(
                    to: Int32(s), generation: slots[s].generation, stream: stream)
                if now < windowEnd {
                    agenda.push(failure, at: now)
                } else {
                    sim.queue.push(failure, at: now)  // between windows: the simulator's own agenda
                }
                return
            }
            outputs.append(
                SimOutput(time: now, node: Int32(s), kind: .streamOpen(to: Int32(d), stream: stream, bytes: bytes)))
        case .streamReply(let connection, let bytes):
            outputs.append(
                SimOutput(
                    time: now, node: Int32(s), kind: .streamReply(connection: connection, bytes: bytes, last: true)))
        case .streamPart(let connection, let bytes):
            outputs.append(
                SimOutput(
                    time: now, node: Int32(s), kind: .streamReply(connection: connection, bytes: bytes, last: false)))
        }
    }

    /// Carries out one of node `s`'s storage requests against its chunk bits.
    func carryOut(_ s: Int, _ node: Node, _ request: StorageRequest) {
        guard let r = sim.rollout else { return }
        switch request {
        case .openRelease(let signed):
            if slots[s].stored == nil || slots[s].stored!.count != r.chunks.count {
                slots[s].stored = ChunkBitfield(count: r.chunks.count)
            }
            node.releaseOpened(signed.releaseID, present: slots[s].stored!, now: nodeClock(s))
        case .storeChunk(_, let index, _, _):
            slots[s].stored?.insert(index)
        case .readChunk(let connection, let requester, let release, let index, _, let from):
            let bytes = slots[s].stored?.contains(index) == true ? r.chunks[index] : nil
            node.serveChunk(
                connection: connection, requester: requester, release: release, index: index, from: from,
                bytes: bytes, now: nodeClock(s))
        case .discardChunk(_, let index, _):
            slots[s].stored?.remove(index)
        }
    }

    /// A node verified the whole release: it "installs" at once and reports the update committed.
    func rolloutEvent(_ s: Int, _ node: Node, _ e: NodeEvent) {
        guard case .releaseDownloaded(let id) = e, let r = sim.rollout, id == r.id, r.startedAt != nil,
            slots[s].verifiedAt == nil
        else { return }
        slots[s].verifiedAt = now
        outputs.append(SimOutput(time: now, node: Int32(s), kind: .verified))
        node.reportUpdate(.committed, installedVersion: r.version, now: nodeClock(s))
    }
}

/// The simulator's driver of one node: its outputs go to the worker's network outputs, its storage to the
/// slot's chunk bits, its events to the checks and the rollout's tally.
struct SimNodeDriver: NodeDriver {
    let worker: SimWorker
    let slot: Int

    func carryOut(_ request: StorageRequest, for node: Node) { worker.carryOut(slot, node, request) }
    func send(_ transmit: Transmit, from node: Node) { worker.send(slot, transmit) }
    func handle(_ event: NodeEvent, of node: Node) {
        worker.observe(slot, event)
        worker.rolloutEvent(slot, node, event)
    }
}

/// Helper threads that run workers 1... of each window while the calling thread runs worker 0.
final class SimThreads {
    private let workers: [SimWorker]
    private var handles: [pthread_t] = []
    private let go: UnsafeMutablePointer<sem_t>
    private let done: UnsafeMutablePointer<sem_t>
    private var stopping = false

    private final class Context {
        let threads: SimThreads
        let index: Int
        init(_ threads: SimThreads, _ index: Int) {
            self.threads = threads
            self.index = index
        }
    }

    init(workers: [SimWorker]) {
        self.workers = workers
        go = .allocate(capacity: workers.count)
        done = .allocate(capacity: 1)
        sem_init(done, 0, 0)
        for i in 0..<workers.count { sem_init(go + i, 0, 0) }
        for i in 1..<workers.count {
            var handle = pthread_t()
            let context = Unmanaged.passRetained(Context(self, i)).toOpaque()
            let rc = pthread_create(
                &handle, nil,
                { raw in
                    let c = Unmanaged<Context>.fromOpaque(raw!).takeRetainedValue()
                    c.threads.serve(c.index)
                    return nil
                }, context)
            precondition(rc == 0, "pthread_create failed: \(rc)")
            handles.append(handle)
        }
    }

    private func serve(_ i: Int) {
        while true {
            sem_wait(go + i)
            if stopping { return }
            workers[i].runGroups()
            sem_post(done)
        }
    }

    /// Runs the window's groups on every worker, worker 0 on this thread; returns when all are done.
    func runWindow() {
        for i in 1..<workers.count { sem_post(go + i) }
        workers[0].runGroups()
        for _ in 1..<workers.count { sem_wait(done) }
    }

    /// Stops and joins the helper threads.
    func stop() {
        stopping = true
        for i in 1..<workers.count { sem_post(go + i) }
        for h in handles { pthread_join(h, nil) }
        handles = []
        for i in 0..<workers.count { sem_destroy(go + i) }
        sem_destroy(done)
        go.deallocate()
        done.deallocate()
    }
}
