import EquicastCrypto

/// Transfer messages (the data class of frames), by type: what each one asks or answers.
extension Dissemination {
    mutating func handleFrame(
        _ frame: OpenedFrame, stream: StreamOrigin?, from: SocketAddress, now: UInt64, members: inout Membership,
        ctx: inout NodeContext
    ) {
        let sender = frame.header.sender
        let m: TransferMessage
        do throws(WireError) {
            m = try TransferMessage.decode(frame.payload)
        } catch {
            ctx.counters.decodeErrors += 1
            ctx.events.append(.refused(error, from: from))
            if case .outgoing(let sid)? = stream { answeredWrongly(sid, now: now, members: &members, ctx: &ctx) }
            return
        }
        switch (m.type, stream) {
        case (.haves, nil):
            heardHaves(m, from: sender, address: from, now: now, members: &members, ctx: &ctx)
        case (.manifestRequest, .accepted(let c)):
            var reply = TransferMessage(type: .manifestReply, releaseID: m.releaseID)
            if let t = transfer, t.id == m.releaseID { reply.payload = t.signed.bytes }
            ctx.reply(reply, connection: c, to: sender)
        case (.chunkRequest, .accepted(let c)):
            chunkRequested(m, connection: c, from: sender, ctx: &ctx)
        case (.manifestReply, .outgoing(let sid)):
            guard let f = manifestFetch, f.stream == sid else { return }
            manifestFetch = nil
            guard !m.payload.isEmpty, m.releaseID == f.advert.releaseID else { return }
            if let error = acceptManifest(
                m.payload, announced: f.advert, pushed: false, source: f.peer, now: now, members: &members, ctx: &ctx)
            {
                if !rejectedReleases.contains(f.advert.releaseID) { avoid(f.peer) }
                ctx.events.append(.releaseRefused(error, from: from))
                if updateState == .announced { updateState = installedVersion > 0 ? .committed : .idle }
            }
        case (.chunkPiece, .outgoing(let sid)):
            pieceArrived(m, stream: sid, from: from, now: now, members: &members, ctx: &ctx)
        case (.chunkReply, .outgoing(let sid)):
            chunkReplyArrived(m, stream: sid, now: now, members: &members, ctx: &ctx)
        case (.push, .accepted(let c)):
            var reply = TransferMessage(type: .pushReply)
            if let error = acceptManifest(
                m.payload, announced: nil, pushed: true, withhold: true, source: nil, now: now, members: &members,
                ctx: &ctx)
            {
                ctx.events.append(.releaseRefused(error, from: from))
                reply.pushResult = .refused
                reply.reason = error.description
            } else {
                // The operator's hand-over makes this node the first source (a push of the release it already
                // holds too: the operator chose it to seed).
                if transfer != nil { transfer!.startSeeding() }
                reply.haves = transfer?.have
            }
            ctx.reply(reply, connection: c, to: sender)
        case (.pushChunk, .accepted(let c)):
            chunkPushed(m, connection: c, from: sender, now: now, members: &members, ctx: &ctx)
        case (.statusRequest, .accepted(let c)):
            var statuses = [ownStatus]
            for st in members.statuses where st.node != id { statuses.append(st) }
            let reply = TransferMessage(
                type: .statusReply, statuses: Array(statuses.prefix(TransferMessage.statusesMax)),
                advert: transfer?.advert)
            ctx.reply(reply, connection: c, to: sender)
        default:
            ctx.counters.decodeErrors += 1
            if case .outgoing(let sid)? = stream { answeredWrongly(sid, now: now, members: &members, ctx: &ctx) }
        }
    }

    /// A peer's bitfield: kept, answered when it asks or has not heard ours as it is, and pulls follow.
    mutating func heardHaves(
        _ m: TransferMessage, from sender: NodeID, address from: SocketAddress, now: UInt64,
        members: inout Membership, ctx: inout NodeContext
    ) {
        guard let h = m.haves, transfer != nil, transfer!.id == m.releaseID, sender != id else { return }
        // The datagram's source is where the peer can be reached; a member we know gets its table address.
        let address = members.member(sender)?.address ?? from
        guard transfer!.noteHaves(h, of: sender, address: address, now: now) else { return }
        if m.wantsReply || !(transfer!.peers[sender]?.toldCurrent ?? true) {
            sendHaves(to: sender, address: address, wantsReply: false, members: &members, ctx: &ctx)
        }
        schedulePulls(now: now, members: &members, ctx: &ctx)
    }

    /// A request for a chunk's pieces from `piece` on: served from the store (`readChunk`), from the pieces
    /// arriving here, or ended at once (the requester asks elsewhere).
    mutating func chunkRequested(
        _ m: TransferMessage, connection c: UInt64, from sender: NodeID, ctx: inout NodeContext
    ) {
        let index = Int(m.index)
        let from = Int(m.piece)
        if transfer != nil, transfer!.id == m.releaseID, transfer!.have.contains(index) {
            let serving = from == 0 ? transfer!.chunkToServe(requested: index, by: sender) : index
            ctx.storage.append(
                .readChunk(
                    connection: c, requester: sender, release: transfer!.id, index: serving,
                    chunk: transfer!.signed.manifest.chunks[serving], from: from))
        } else if let t = transfer, t.id == m.releaseID, index < t.chunkCount, let k = t.partialAt(index),
            from < t.pieceCount(index)
        {
            answerFromPartial(k, from: from, connection: c, requester: sender, ctx: &ctx)
        } else {
            endChunkReply(m.releaseID, index: index, connection: c, to: sender, ctx: &ctx)
        }
    }

    /// The end of a chunk request without (more) pieces. No chunk bytes travel in a chunk reply: it says the
    /// peer has no (more) pieces of the chunk for us (not held, damaged on its disk, or arriving there from us).
    /// Ask elsewhere, resuming the partial.
    mutating func chunkReplyArrived(
        _ m: TransferMessage, stream sid: UInt64, now: UInt64, members: inout Membership, ctx: inout NodeContext
    ) {
        guard m.releaseID == transfer?.id, m.payload.isEmpty else {
            answeredWrongly(sid, now: now, members: &members, ctx: &ctx)
            return
        }
        guard let f = takeChunkFetch(sid) else { return }
        transfer!.fetchEnded(f.index, from: f.peer, stream: sid)
        transfer!.peerLacks(f.index, peer: f.peer)
        schedulePulls(now: now, members: &members, ctx: &ctx)
    }

    /// A chunk an operator pushed, after the manifest: checked against its id and kept.
    mutating func chunkPushed(
        _ m: TransferMessage, connection c: UInt64, from sender: NodeID, now: UInt64, members: inout Membership,
        ctx: inout NodeContext
    ) {
        var reply = TransferMessage(type: .pushReply)
        let index = Int(m.index)
        if let t = transfer, t.id == m.releaseID, index < t.chunkCount {
            if t.matches(m.payload, index: index) {
                if !t.have.contains(index) {
                    chunkVerified(index, bytes: m.payload, now: now, members: &members, ctx: &ctx)
                }
            } else {
                ctx.counters.badChunks += 1
                reply.pushResult = .refused
                reply.reason = ReleaseError.badChunk(index: index, reason: "does not match its id").description
            }
            reply.haves = transfer!.have
        } else {
            reply.pushResult = .refused
            reply.reason = "no pushed manifest for this release on this node"
        }
        ctx.reply(reply, connection: c, to: sender)
    }
}
