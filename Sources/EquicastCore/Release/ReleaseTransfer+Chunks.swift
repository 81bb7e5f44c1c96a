import EquicastCrypto

/// How the transfer's bookkeeping changes as chunks are found, stored, lost, requested and received piece by
/// piece. `Dissemination` calls these and sends what they return.
extension ReleaseTransfer {
    /// The driver found these chunks already stored: they are held and offered, and pulls may start.
    mutating func open(present: ChunkBitfield) {
        for i in 0..<present.count where present.contains(i) {
            have.insert(i)
            offered.insert(i)
        }
        opened = true
    }

    /// Chunk `index` is no longer held (it could not be stored, or read back damaged).
    mutating func drop(_ index: Int) {
        have.remove(index)
        offered.remove(index)
    }

    /// Peers are to hear of chunk `index` (held, or its first piece here).
    mutating func offer(_ index: Int) {
        guard !offered.contains(index) else { return }
        offered.insert(index)
        peers.markUntold(lacking: index)
    }

    /// Chunk `index` is verified and held now. Returns the requests that waited for its pieces while it was
    /// arriving piece by piece (it was made whole another way: pushed), to be answered from the whole chunk.
    mutating func hold(_ index: Int) -> [Partial.Waiter] {
        have.insert(index)
        var waiting: [Partial.Waiter] = []
        if let k = partialAt(index) { waiting = partials.remove(at: k).waiting }
        offer(index)
        return waiting
    }

    /// The download stops (storage failed): the requests `fetches` are dropped, and so are the chunks under
    /// way, no longer offered. Returns the partials dropped, whose waiting requests are to be ended.
    mutating func abandonUnderWay(_ fetches: [ChunkFetch]) -> [Partial] {
        for f in fetches { finished(f.index, from: f.peer) }
        let dropped = partials
        for p in dropped { offered.remove(p.index) }
        partials = []
        return dropped
    }

    /// The operator's hand-over makes this node the first source (see `seeding`), until it has served every
    /// chunk once.
    /// The withheld release may now be announced.
    mutating func publish() { withheld = false }

    mutating func startSeeding() {
        if !served.isComplete { seeding = true }
    }

    /// This node told `peer` its bitfield as it is now.
    mutating func markTold(_ peer: NodeID) {
        if peers[peer] != nil { peers[peer]!.toldCurrent = true }
    }

    /// `peer` served bytes that do not match: never asked again for this release.
    mutating func ban(_ peer: NodeID) { peers[peer]?.banned = true }

    /// A request for chunk `index` on `stream` ended without its pieces: its slot is free and the partial it fed
    /// (if any) may be resumed by another request.
    mutating func fetchEnded(_ index: Int, from peer: NodeID, stream: UInt64) {
        finished(index, from: peer)
        if let k = partialAt(index), partials[k].stream == stream { partials[k].stream = nil }
    }

    /// A request failed (no connection, broken, timed out): as `fetchEnded`, and a peer that failed three times
    /// in a row is forgotten.
    mutating func fetchFailed(_ index: Int, from peer: NodeID, stream: UInt64) {
        fetchEnded(index, from: peer, stream: stream)
        if let p = peers[peer] {
            if p.failures + 1 >= 3 {
                peers[peer] = nil
            } else {
                peers[peer]!.failures = p.failures + 1
            }
        }
    }

    /// `peer` answered that it has no (more) pieces of chunk `index` for us: it works, but lacks the chunk.
    mutating func peerLacks(_ index: Int, peer: NodeID) {
        peers[peer]?.failures = 0
        if peers[peer] != nil { peers[peer]!.haves.remove(index) }
    }

    /// A request's last piece arrived: its slot is free and the peer works.
    mutating func fetchSucceeded(_ index: Int, from peer: NodeID) {
        finished(index, from: peer)
        peers[peer]?.failures = 0
    }

    /// A request for `from` was answered with chunk `to` (a seeding origin chooses what it sends).
    mutating func redirectRequest(from: Int, to: Int) {
        requested.remove(from)
        requested.insert(to)
    }

    /// A request waits for the pieces of partial `k` as they arrive.
    mutating func wait(forPartial k: Int, _ waiter: Partial.Waiter) { partials[k].waiting.append(waiter) }

    /// Keeps piece `piece` of chunk `index` (checked against its hash), which arrived on fetch `stream`, when it
    /// extends the chunk's partial: piece 0 of a chunk not held starts one when there is room (see
    /// `makeRoomForPartial`). A partial is fed by one fetch at a time; one whose fetch is no longer in flight
    /// (`isInFlight`) is free. Returns whether the piece fed the partial, and the requests waiting for exactly
    /// this piece (each now waits for the next), which are to get it.
    mutating func keepPiece(
        _ bytes: [UInt8], index: Int, piece: Int, stream sid: UInt64, partialsMax: Int,
        isInFlight: (UInt64) -> Bool
    ) -> (feeds: Bool, waiters: [Partial.Waiter]) {
        var k = partialAt(index)
        if k == nil && piece == 0 && !have.contains(index) && makeRoomForPartial(partialsMax) {
            partials.append(Partial(index: index))
            k = partials.count - 1
        }
        guard let k else { return (false, []) }
        if let owner = partials[k].stream, owner != sid, !isInFlight(owner) { partials[k].stream = nil }
        guard partials[k].pieces == piece, (partials[k].stream ?? sid) == sid else { return (false, []) }
        partials[k].stream = sid
        partials[k].bytes += bytes
        partials[k].pieces += 1
        offer(index)
        var due: [Partial.Waiter] = []
        for w in partials[k].waiting.indices where partials[k].waiting[w].next == piece {
            due.append(partials[k].waiting[w])
            partials[k].waiting[w].next += 1
        }
        return (true, due)
    }

    /// Chunk `index`'s partial, taken out once its last piece is in; nil when it has none.
    mutating func takePartial(_ index: Int) -> Partial? {
        guard let k = partialAt(index) else { return nil }
        return partials.remove(at: k)
    }

    /// A partial whose pieces all matched their hashes but whose whole does not match the chunk's id: the
    /// release itself is inconsistent. It is not offered any more.
    mutating func refuseAssembled(_ index: Int) { offered.remove(index) }

    /// Chunks held in part, in memory: one per request in flight, and a few whose fetch broke off (they are
    /// asked for again first), `partialsMax` in all. Beyond it the oldest idle one (no fetch, nobody waiting) is
    /// dropped; with none idle, a new chunk's pieces are passed through unkept. Bounds a download's memory, as
    /// the replies in flight did when a chunk came in one frame.
    mutating func makeRoomForPartial(_ partialsMax: Int) -> Bool {
        if partials.count < partialsMax { return true }
        guard let k = partials.firstIndex(where: { $0.stream == nil && $0.waiting.isEmpty }) else { return false }
        let dropped = partials.remove(at: k)
        offered.remove(dropped.index)
        return true
    }
}
