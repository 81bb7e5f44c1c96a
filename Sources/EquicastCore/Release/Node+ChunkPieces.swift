import EquicastCrypto

/// Chunks travel as pieces (16 KiB, each with its hash in the signed manifest): serving them from a stored chunk
/// or from one still arriving, and receiving them. docs/protocol.md, "Passing chunks on as they arrive".
extension Node {
    /// The chunk a `readChunk` asked for, or nil when it could not be read. It is checked against its id before
    /// it is served, piece by piece from piece `from`: a chunk damaged on disk is dropped (and fetched again),
    /// never passed on.
    public func serveChunk(
        connection: UInt64, requester: NodeID, release: Digest256, index: Int, from: Int, bytes: [UInt8]?,
        now: UInt64
    ) {
        if let t = transfer, t.id == release, index >= 0, index < t.chunkCount {
            if let b = bytes, t.matches(b, index: index) {
                if from >= 0 && from < t.pieceCount(index) {
                    sendPieces(of: b, index: index, from: from, connection: connection, to: requester)
                    return
                }
            } else if t.have.contains(index) {
                transfer!.have.remove(index)
                transfer!.offered.remove(index)
                storage.append(.discardChunk(release: release, index: index))
            }
        }
        endChunkReply(release, index: index, connection: connection, to: requester)
    }

    /// Pieces `from`... of chunk `index`, cut from `bytes` (the whole chunk, or its pieces so far: as many as it
    /// holds), each as a frame on an accepted connection.
    func sendPieces(of bytes: [UInt8], index: Int, from: Int, connection: UInt64, to requester: NodeID) {
        guard let t = transfer else { return }
        var piece = from
        while piece < t.pieceCount(index) && piece * t.pieceSize < bytes.count {
            sendPiece(
                Array(bytes[t.range(ofPiece: piece, in: index)]), index: index, piece: piece,
                connection: connection, to: requester)
            piece += 1
        }
    }

    /// The reply that ends a chunk request with no (more) pieces from this node: the requester asks elsewhere.
    func endChunkReply(_ release: Digest256, index: Int, connection: UInt64, to requester: NodeID) {
        let reply = TransferMessage(type: .chunkReply, releaseID: release, index: UInt16(clamping: index))
        transmits.append(
            .streamReply(connection: connection, bytes: sealTransfer(reply, on: .stream, to: requester)))
    }

    /// A request for chunk partial `k` (still arriving here), from piece `from`: what has arrived goes now, the
    /// rest as it comes. Unless no fetch of it is in flight, or it comes from the requester itself (which would
    /// wait on us): then what is here and an end.
    func answerFromPartial(_ k: Int, from: Int, connection: UInt64, requester: NodeID) {
        guard let t = transfer else { return }
        let p = t.partials[k]
        sendPieces(of: p.bytes, index: p.index, from: from, connection: connection, to: requester)
        let feeder = chunkFetches.first { $0.stream == p.stream }?.peer
        if feeder == nil || feeder == requester {
            endChunkReply(t.id, index: p.index, connection: connection, to: requester)
        } else {
            let next = max(from, p.pieces)
            transfer!.partials[k].waiting.append(.init(connection: connection, requester: requester, next: next))
        }
    }

    /// One verified piece of chunk `index`, as a frame on an accepted connection.
    func sendPiece(_ bytes: [UInt8], index: Int, piece: Int, connection: UInt64, to requester: NodeID) {
        guard let t = transfer else { return }
        var m = TransferMessage(
            type: .chunkPiece, releaseID: t.id, index: UInt16(index), piece: UInt16(piece), payload: bytes)
        #if EQUICAST_FAULT_INJECTION
            if releaseSettings.faultServeCorruptChunks && !bytes.isEmpty { m.payload[bytes.count / 2] ^= 0x01 }
        #endif
        transfer!.bytesServed += UInt64(bytes.count)
        counters.bytesServed += UInt64(bytes.count)
        let frame = sealTransfer(m, on: .stream, to: requester)
        if piece + 1 == t.pieceCount(index) {
            transmits.append(.streamReply(connection: connection, bytes: frame))
        } else {
            transmits.append(.streamPart(connection: connection, bytes: frame))
        }
    }

    /// Whether a chunk request this node opened (stream `sid`) still expects pieces.
    public func awaitsMoreFrames(stream sid: UInt64) -> Bool { chunkFetches.contains { $0.stream == sid } }

    /// Whether a request on accepted connection `connection` is answered later, as the pieces arrive here.
    public func answersLater(connection: UInt64) -> Bool {
        guard let t = transfer else { return false }
        for p in t.partials { for w in p.waiting where w.connection == connection { return true } }
        return false
    }

    /// A piece of a chunk this node asked for. It is checked against its hash in the signed manifest, kept,
    /// and passed on at once to the requesters waiting for it; once the chunk is whole it is checked against its
    /// id and stored. A piece that does not match bans the peer that sent it, and the chunk is fetched
    /// elsewhere from that piece on.
    func chunkPieceArrived(_ m: TransferMessage, stream sid: UInt64, from: SocketAddress, now: UInt64) {
        guard let fk = chunkFetches.firstIndex(where: { $0.stream == sid }), let t = transfer else { return }
        var f = chunkFetches[fk]
        let index = Int(m.index)
        let piece = Int(m.piece)
        // (`t` is not used once `transfer` changes: a copy alive then would make every piece copy its chunk.)
        // The pieces of one chunk, in order from the one asked for. A reply's first piece may name another chunk
        // than the one asked for: a seeding origin chooses what it sends (`chunkToServe`).
        guard m.releaseID == t.id, index < t.chunkCount, piece == f.next, piece < t.pieceCount(index),
            index == f.index || piece == 0
        else {
            counters.decodeErrors += 1
            events.append(.refused(.invalidValue(field: "chunk piece", value: UInt64(piece)), from: from))
            transferStreamFailed(sid, now: now)
            return
        }
        guard t.pieceMatches(m.payload, index: index, piece: piece) else {
            counters.badChunks += 1
            transfer!.peers[f.peer]?.banned = true
            events.append(.integrityViolation(peer: f.peer, address: f.address, release: transfer!.id, chunk: index))
            transferStreamFailed(sid, now: now)
            schedulePulls(now: now)
            return
        }
        if index != f.index {
            transfer!.requested.remove(f.index)
            transfer!.requested.insert(index)
            f.index = index
        }
        f.next += 1
        chunkFetches[fk] = f
        counters.bytesDownloaded += UInt64(m.payload.count)
        transfer!.bytesDownloaded += UInt64(m.payload.count)
        let last = piece + 1 == transfer!.pieceCount(index)
        // Kept when it extends the chunk's partial (a chunk already held, or fed by another fetch, is not).
        var k = transfer!.partialAt(index)
        if k == nil && piece == 0 && !transfer!.have.contains(index) && makeRoomForPartial() {
            transfer!.partials.append(ReleaseTransfer.Partial(index: index))
            k = transfer!.partials.count - 1
        }
        var feeds = false
        // A partial is fed by one fetch at a time; one whose fetch is no longer in flight is free.
        if let k, let owner = transfer!.partials[k].stream, owner != sid,
            !chunkFetches.contains(where: { $0.stream == owner })
        {
            transfer!.partials[k].stream = nil
        }
        if let k, transfer!.partials[k].pieces == piece, (transfer!.partials[k].stream ?? sid) == sid {
            feeds = true
            transfer!.partials[k].stream = sid
            transfer!.partials[k].bytes += m.payload
            transfer!.partials[k].pieces += 1
            if !transfer!.offered.contains(index) {
                transfer!.offered.insert(index)
                transfer!.peers.markUntold(lacking: index)
            }
            var waiting = transfer!.partials[k].waiting
            for w in waiting.indices where waiting[w].next == piece {
                sendPiece(
                    m.payload, index: index, piece: piece, connection: waiting[w].connection,
                    to: waiting[w].requester)
                waiting[w].next += 1
            }
            transfer!.partials[k].waiting = waiting
        }
        guard last else { return }
        _ = takeChunkFetch(sid)
        transfer!.finished(index, from: f.peer)
        transfer!.peers[f.peer]?.failures = 0
        if feeds, let k = transfer!.partialAt(index) {
            let p = transfer!.partials.remove(at: k)
            if transfer!.matches(p.bytes, index: index) {
                chunkVerified(index, bytes: p.bytes, now: now)
            } else {
                // Every piece matched its hash and the whole does not match its id: the release itself is
                // inconsistent (its signer listed piece hashes of other bytes). Nothing here is stored.
                counters.badChunks += 1
                transfer!.offered.remove(index)
                endWaiters(p)
            }
        }
        schedulePulls(now: now)
    }

    /// Chunks held in part, in memory: one per request in flight, and a few whose fetch broke off (they are
    /// asked for again first). Beyond it the oldest idle one (no fetch, nobody waiting) is dropped; with none
    /// idle, a new chunk's pieces are passed through unkept. Bounds a download's memory, as the replies in
    /// flight did when a chunk came in one frame.
    func makeRoomForPartial() -> Bool {
        guard let t = transfer else { return false }
        if t.partials.count < releaseSettings.chunkRequestsMax + 8 { return true }
        guard let k = t.partials.firstIndex(where: { $0.stream == nil && $0.waiting.isEmpty }) else { return false }
        let dropped = transfer!.partials.remove(at: k)
        transfer!.offered.remove(dropped.index)
        return true
    }

    /// Ends the requests waiting for a chunk's pieces that will not come from here: the requesters ask others.
    func endWaiters(_ p: ReleaseTransfer.Partial) {
        guard let t = transfer else { return }
        for w in p.waiting { endChunkReply(t.id, index: p.index, connection: w.connection, to: w.requester) }
    }
}
