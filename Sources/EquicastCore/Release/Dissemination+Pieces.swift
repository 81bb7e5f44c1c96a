import EquicastCrypto

/// Chunks travel as pieces (16 KiB, each with its hash in the signed manifest): serving them from a stored chunk
/// or from one still arriving, and receiving them. docs/protocol.md, "Passing chunks on as they arrive".
extension Dissemination {
    /// The chunk a `readChunk` asked for, or nil when it could not be read (see `Node.serveChunk`).
    mutating func serveChunk(
        connection: UInt64, requester: NodeID, release: Digest256, index: Int, from: Int, bytes: [UInt8]?,
        ctx: inout NodeContext
    ) {
        if let t = transfer, t.id == release, index >= 0, index < t.chunkCount {
            if let b = bytes, t.matches(b, index: index) {
                if from >= 0 && from < t.pieceCount(index) {
                    sendPieces(of: b, index: index, from: from, connection: connection, to: requester, ctx: &ctx)
                    return
                }
            } else if t.have.contains(index) {
                let chunk = t.signed.manifest.chunks[index].id
                transfer!.drop(index)
                ctx.storage.append(.discardChunk(release: release, index: index, chunk: chunk))
            }
        }
        endChunkReply(release, index: index, connection: connection, to: requester, ctx: &ctx)
    }

    /// Pieces `from`... of chunk `index`, cut from `bytes` (the whole chunk, or its pieces so far: as many as it
    /// holds), each as a frame on an accepted connection.
    @inline(never)
    func sendPieces(
        of bytes: [UInt8], index: Int, from: Int, connection: UInt64, to requester: NodeID, ctx: inout NodeContext
    ) {
        guard let t = transfer else { return }
        var piece = from
        while piece < t.pieceCount(index) && piece * t.pieceSize < bytes.count {
            sendPiece(
                Array(bytes[t.range(ofPiece: piece, in: index)]), index: index, piece: piece, connection: connection,
                to: requester, ctx: &ctx)
            piece += 1
        }
    }

    /// The reply that ends a chunk request with no (more) pieces from this node: the requester asks elsewhere.
    @inline(never)
    func endChunkReply(
        _ release: Digest256, index: Int, connection: UInt64, to requester: NodeID, ctx: inout NodeContext
    ) {
        ctx.reply(
            TransferMessage(type: .chunkReply, releaseID: release, index: UInt16(clamping: index)),
            connection: connection, to: requester)
    }

    /// A request for chunk partial `k` (still arriving here), from piece `from`: what has arrived goes now, the
    /// rest as it comes. Unless no fetch of it is in flight, or it comes from the requester itself (which would
    /// wait on us): then what is here and an end.
    @inline(never)
    mutating func answerFromPartial(
        _ k: Int, from: Int, connection: UInt64, requester: NodeID, ctx: inout NodeContext
    ) {
        guard let t = transfer else { return }
        let p = t.partials[k]
        sendPieces(of: p.bytes, index: p.index, from: from, connection: connection, to: requester, ctx: &ctx)
        let feeder = chunkFetches.first { $0.stream == p.stream }?.peer
        if feeder == nil || feeder == requester {
            endChunkReply(t.id, index: p.index, connection: connection, to: requester, ctx: &ctx)
        } else {
            let next = max(from, p.pieces)
            transfer!.wait(forPartial: k, .init(connection: connection, requester: requester, next: next))
        }
    }

    /// One verified piece of chunk `index`, as a frame on an accepted connection.
    @inline(never)
    func sendPiece(
        _ bytes: [UInt8], index: Int, piece: Int, connection: UInt64, to requester: NodeID, ctx: inout NodeContext
    ) {
        guard let t = transfer else { return }
        var m = TransferMessage(
            type: .chunkPiece, releaseID: t.id, index: UInt16(index), piece: UInt16(piece), payload: bytes)
        #if EQUICAST_FAULT_INJECTION
            if settings.faultServeCorruptChunks && !bytes.isEmpty { m.payload[bytes.count / 2] ^= 0x01 }
        #endif
        ctx.counters.bytesServed += UInt64(bytes.count)
        let frame = ctx.seal(m, on: .stream, to: requester)
        if piece + 1 == t.pieceCount(index) {
            ctx.transmits.append(.streamReply(connection: connection, bytes: frame))
        } else {
            ctx.transmits.append(.streamPart(connection: connection, bytes: frame))
        }
    }

    /// A peer answered a chunk request with bytes no honest peer sends, in any form: a piece that does not match
    /// its hash, a piece out of step or of another release, a chunk reply that carries bytes, a message that does
    /// not decode or does not answer the request. It is never asked again for this release, the driver is told
    /// (an integrity violation), and the request's slot goes to another peer at once.
    @inline(never)
    mutating func answeredWrongly(_ sid: UInt64, now: UInt64, members: inout Membership, ctx: inout NodeContext) {
        if let fk = chunkFetchIndex(sid), transfer != nil {
            let f = chunkFetches[fk]
            ctx.counters.badChunks += 1
            transfer!.ban(f.peer)
            ctx.events.append(
                .integrityViolation(peer: f.peer, address: f.address, release: transfer!.id, chunk: f.index))
        }
        requestFailed(sid, now: now, members: &members, ctx: &ctx)
    }

    /// Whether a chunk request this node opened (stream `sid`) still expects pieces.
    func awaitsMoreFrames(stream sid: UInt64) -> Bool { chunkFetches.contains { $0.stream == sid } }

    /// Whether a request on accepted connection `connection` is answered later, as the pieces arrive here.
    func answersLater(connection: UInt64) -> Bool {
        guard let t = transfer else { return false }
        for p in t.partials { for w in p.waiting where w.connection == connection { return true } }
        return false
    }

    /// A piece of a chunk this node asked for. It is checked against its hash in the signed manifest, kept,
    /// and passed on at once to the requesters waiting for it; once the chunk is whole it is checked against its
    /// id and stored. A piece that does not match bans the peer that sent it, and the chunk is fetched
    /// elsewhere from that piece on.
    mutating func pieceArrived(
        _ m: TransferMessage, stream sid: UInt64, from: SocketAddress, now: UInt64, members: inout Membership,
        ctx: inout NodeContext
    ) {
        guard let fk = chunkFetchIndex(sid), transfer != nil else { return }
        var f = chunkFetches[fk]
        let index = Int(m.index)
        let piece = Int(m.piece)
        // (No copy of `transfer` is kept alive while it changes: every piece would copy its chunk.) The pieces of
        // one chunk, in order from the one asked for. A reply's first piece may name another chunk than the one
        // asked for: a seeding origin chooses what it sends (`chunkToServe`).
        guard m.releaseID == transfer!.id, index < transfer!.chunkCount, piece == f.next,
            piece < transfer!.pieceCount(index), index == f.index || piece == 0
        else {
            ctx.counters.decodeErrors += 1
            answeredWrongly(sid, now: now, members: &members, ctx: &ctx)
            return
        }
        guard transfer!.pieceMatches(m.payload, index: index, piece: piece) else {
            answeredWrongly(sid, now: now, members: &members, ctx: &ctx)
            return
        }
        if index != f.index {
            transfer!.redirectRequest(from: f.index, to: index)
            f.index = index
        }
        f.next += 1
        chunkFetches[fk] = f
        ctx.counters.bytesDownloaded += UInt64(m.payload.count)
        let last = piece + 1 == transfer!.pieceCount(index)
        let fetches = chunkFetches
        let (feeds, waiters) = transfer!.keepPiece(
            m.payload, index: index, piece: piece, stream: sid, partialsMax: settings.chunkRequestsMax + 8,
            isInFlight: { owner in fetches.contains { $0.stream == owner } })
        for w in waiters {
            sendPiece(m.payload, index: index, piece: piece, connection: w.connection, to: w.requester, ctx: &ctx)
        }
        guard last else { return }
        _ = takeChunkFetch(sid)
        transfer!.fetchSucceeded(index, from: f.peer)
        if feeds, let p = transfer!.takePartial(index) {
            if transfer!.matches(p.bytes, index: index) {
                chunkVerified(index, bytes: p.bytes, now: now, members: &members, ctx: &ctx)
            } else {
                // Every piece matched its hash and the whole does not match its id: the release itself is
                // inconsistent (its signer listed piece hashes of other bytes). Nothing here is stored.
                ctx.counters.badChunks += 1
                transfer!.refuseAssembled(index)
                endWaiters(p, ctx: &ctx)
            }
        }
        schedulePulls(now: now, members: &members, ctx: &ctx)
    }

    /// Ends the requests waiting for a chunk's pieces that will not come from here: the requesters ask others.
    func endWaiters(_ p: ReleaseTransfer.Partial, ctx: inout NodeContext) {
        guard let t = transfer else { return }
        for w in p.waiting { endChunkReply(t.id, index: p.index, connection: w.connection, to: w.requester, ctx: &ctx) }
    }
}
