import EquicastCore

#if canImport(Glibc)
    import Glibc
#endif

/// The simulated network between the nodes: each node's uplink and downlink, one-way delays drawn from the
/// model, loss, duplication, queues that overflow, partitions, and the TCP connections that carry a request's
/// reply back. It owns the links, the connections and the traffic tallies; the simulator's random generator and
/// agenda come in with each call, so one seed still drives every draw in one order.
struct SimNetwork {
    /// One node's links. Datagrams and streams queue separately, as under Linux's default fq_codel: sparse
    /// datagram flows are not stuck behind a bulk TCP transfer.
    struct Link {
        /// When each direction finishes what it has queued (µs).
        var uplinkFreeAt: UInt64 = 0
        var downlinkFreeAt: UInt64 = 0
        var streamUplinkFreeAt: UInt64 = 0
        var streamDownlinkFreeAt: UInt64 = 0
        /// Partition side: 1 for the cut-off group while a partition is on.
        var side: UInt8 = 0
    }

    /// A request in flight on a connection: who asked, in which life (`Slot.generation`), on which stream.
    struct Connection {
        let requester: Int32
        let generation: UInt32
        let stream: UInt64
    }

    let model: NetworkModel
    /// The nodes' slots, for what the network reads of a node: whether it is up, its life, its slowness.
    let slots: UnsafeMutableBufferPointer<Simulator.Slot>
    var links: [Link]
    var connections: [UInt64: Connection] = [:]
    var nextConnection: UInt64 = 1
    var partitionOn = false
    var partitionOneWay = false
    /// Totals over the run, and since the last sample.
    var datagramsSent: UInt64 = 0
    var datagramsLost: UInt64 = 0
    /// Datagrams dropped because a link's queue was full (included in `datagramsLost`).
    var congestionDrops: UInt64 = 0
    var bytesSent: UInt64 = 0
    var sampleDatagrams: UInt64 = 0
    var sampleBytes: UInt64 = 0

    static let headerBytes = 28  // IPv4 + UDP, counted against link rates

    /// A datagram that would wait longer than this behind others on a link is dropped (a full router or
    /// socket buffer), µs.
    static let datagramQueueMax: UInt64 = 100_000

    init(model: NetworkModel, slots: UnsafeMutableBufferPointer<Simulator.Slot>) {
        self.model = model
        self.slots = slots
        self.links = Array(repeating: Link(), count: slots.count)
    }

    /// An id for a connection the network does not track (the operator's hand-over).
    mutating func untrackedConnection() -> UInt64 {
        nextConnection += 1
        return nextConnection - 1
    }

    func delay(_ rng: inout DeterministicRandom) -> UInt64 {
        let tailMean = Double(model.delayMean - model.delayMin)
        var extra = 0.0
        if tailMean > 0 {
            let u = max(rng.unit(), 1e-12)
            extra = -tailMean * log(u)
        }
        return min(model.delayMin + UInt64(extra), model.delayMax)
    }

    func cut(_ from: Int, _ to: Int) -> Bool {
        guard partitionOn, links[from].side != links[to].side else { return false }
        return partitionOneWay ? links[from].side == 0 : true
    }

    /// Starts a partition: `cutOff` on one side, the rest on the other.
    mutating func partition(_ cutOff: [Int], oneWay: Bool) {
        partitionOn = true
        partitionOneWay = oneWay
        for v in cutOff { links[v].side = 1 }
    }

    mutating func heal() {
        partitionOn = false
        for s in links.indices { links[s].side = 0 }
    }

    /// Serialises a datagram through the sender's uplink and the receiver's downlink; returns the arrival time,
    /// or nil when a link's queue is full.
    mutating func transferDatagram(
        from s: Int, to d: Int, byteCount: Int, now: UInt64, rng: inout DeterministicRandom
    ) -> UInt64? {
        let bits = UInt64(byteCount + SimNetwork.headerBytes) * 8
        let upTime = bits * 1_000_000 / model.uploadBitsPerSecond
        let downTime = bits * 1_000_000 / model.downloadBitsPerSecond
        let start = max(now, links[s].uplinkFreeAt)
        if start - now > SimNetwork.datagramQueueMax { return nil }
        links[s].uplinkFreeAt = start + upTime
        let reached = start + upTime + delay(&rng)
        let arrivalStart = max(reached, links[d].downlinkFreeAt)
        if arrivalStart - reached > SimNetwork.datagramQueueMax { return nil }
        links[d].downlinkFreeAt = arrivalStart + downTime
        return arrivalStart + downTime + slots[d].slowness
    }

    /// A stream's bytes through both links (reliable; it waits rather than drops). Returns the arrival time.
    mutating func transferStream(
        from s: Int, to d: Int, byteCount: Int, now: UInt64, rng: inout DeterministicRandom
    ) -> UInt64 {
        let bits = UInt64(byteCount + 40 * (byteCount / 1448 + 1)) * 8  // TCP/IP headers per segment
        let upTime = bits * 1_000_000 / model.uploadBitsPerSecond
        let downTime = bits * 1_000_000 / model.downloadBitsPerSecond
        let departed = max(now, links[s].streamUplinkFreeAt) + upTime
        links[s].streamUplinkFreeAt = departed
        let reached = departed + delay(&rng)
        let arrived = max(reached, links[d].streamDownlinkFreeAt) + downTime
        links[d].streamDownlinkFreeAt = arrived
        return arrived + slots[d].slowness
    }

    mutating func sendDatagram(
        from s: Int, to d: Int, bytes: [UInt8], now: UInt64, rng: inout DeterministicRandom,
        queue: inout EventQueue<Simulator.Event>
    ) {
        datagramsSent += 1
        sampleDatagrams += 1
        bytesSent += UInt64(bytes.count + SimNetwork.headerBytes)
        sampleBytes += UInt64(bytes.count + SimNetwork.headerBytes)
        if cut(s, d) || rng.unit() < model.lossProbability {
            datagramsLost += 1
            return
        }
        guard let at = transferDatagram(from: s, to: d, byteCount: bytes.count, now: now, rng: &rng) else {
            datagramsLost += 1
            congestionDrops += 1
            return
        }
        queue.push(.datagram(to: Int32(d), from: Int32(s), bytes: bytes), at: at)
        if model.duplicateProbability > 0 && rng.unit() < model.duplicateProbability {
            queue.push(.datagram(to: Int32(d), from: Int32(s), bytes: bytes), at: at + delay(&rng))
        }
    }

    mutating func openStream(
        from s: Int, to d: Int, stream: UInt64, bytes: [UInt8], now: UInt64, rng: inout DeterministicRandom,
        queue: inout EventQueue<Simulator.Event>
    ) {
        let generation = slots[s].generation
        bytesSent += UInt64(bytes.count)
        sampleBytes += UInt64(bytes.count)
        if !slots[d].up {
            // Connection refused after one round trip.
            queue.push(
                .streamFailed(to: Int32(s), generation: generation, stream: stream), at: now + 2 * delay(&rng))
            return
        }
        if cut(s, d) { return }  // SYNs vanish; the node's own sync timeout gives up
        let connection = nextConnection
        nextConnection += 1
        connections[connection] = Connection(requester: Int32(s), generation: generation, stream: stream)
        // One round trip for the handshake, then the request.
        let at = transferStream(from: s, to: d, byteCount: bytes.count, now: now, rng: &rng) + 2 * model.delayMin
        queue.push(.streamRequest(to: Int32(d), from: Int32(s), connection: connection, bytes: bytes), at: at)
    }

    /// A reply frame; the connection is forgotten after the reply's last frame.
    mutating func replyStream(
        from s: Int, connection: UInt64, bytes: [UInt8], last: Bool, now: UInt64, rng: inout DeterministicRandom,
        queue: inout EventQueue<Simulator.Event>
    ) {
        guard let c = last ? connections.removeValue(forKey: connection) : connections[connection] else { return }
        bytesSent += UInt64(bytes.count)
        sampleBytes += UInt64(bytes.count)
        let r = Int(c.requester)
        if cut(s, r) { return }
        let at = transferStream(from: s, to: r, byteCount: bytes.count, now: now, rng: &rng)
        queue.push(.streamReply(to: c.requester, generation: c.generation, stream: c.stream, bytes: bytes), at: at)
    }

    mutating func failConnection(
        _ connection: UInt64, now: UInt64, rng: inout DeterministicRandom, queue: inout EventQueue<Simulator.Event>
    ) {
        guard let c = connections.removeValue(forKey: connection) else { return }
        queue.push(.streamFailed(to: c.requester, generation: c.generation, stream: c.stream), at: now + delay(&rng))
    }
}

extension DeterministicRandom {
    /// A uniform draw in [0, 1).
    mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }
}
