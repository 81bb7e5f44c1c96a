import EquicastCrypto

/// Taking on a release: manifests verified and held, the driver's report of what is stored, chunks verified and
/// stored, and the download's progress.
extension Dissemination {
    /// Verifies a manifest (signature by a trusted key, then for a fetched one: the announced id, the product
    /// and the version) and, when it is newer than what this node holds, makes it the held release. A pushed
    /// release is held even when this node cannot install it (it spreads it to those that can). `withhold` (an
    /// operator's push): the release is announced only once every chunk is here. Returns why a manifest was
    /// refused.
    @inline(never)
    mutating func acceptManifest(
        _ bytes: [UInt8], announced: ReleaseAdvert?, pushed: Bool, withhold: Bool = false, source: NodeID?,
        now: UInt64, members: inout Membership, ctx: inout NodeContext
    ) -> ReleaseError? {
        // Not the manifest announced: the peer that served it lied, not the release (another holder serves the
        // same bytes, since the id is their hash). The release stays fetchable; the caller avoids the peer.
        if let a = announced, Digest256(hashing: bytes) != a.releaseID {
            ctx.counters.manifestsRefused += 1
            return .invalidField(field: "release id", reason: "the manifest is not the one announced")
        }
        let signed: SignedManifest
        do throws(ReleaseError) {
            signed = try SignedManifest.open(bytes, trustedKeys: settings.trustedKeys)
        } catch {
            ctx.counters.manifestsRefused += 1
            if let a = announced { reject(a.releaseID) }
            return error
        }
        if let t = transfer, t.id == signed.releaseID { return nil }
        var installable = !rejectedReleases.contains(signed.releaseID)
        do throws(ReleaseError) {
            try signed.checkEligible(
                product: settings.product, installedVersion: installedVersion == 0 ? nil : installedVersion)
        } catch {
            if !pushed {
                ctx.counters.manifestsRefused += 1
                reject(signed.releaseID)
                return error
            }
            installable = false
            ctx.events.append(.releaseRefused(error, from: ctx.address))
        }
        if let t = transfer, t.version >= signed.manifest.version, t.installable || !installable {
            if pushed {
                return .notNewer(installed: t.version, offered: signed.manifest.version)
            }
            return nil
        }
        ctx.counters.manifestsAccepted += 1
        chunkFetches = []
        storageRetryAt = 0
        let t = ReleaseTransfer(signed: signed, installable: installable, source: source, withheld: withhold)
        transfer = t
        publishedStep = -1
        ctx.storage.append(.openRelease(signed))
        ctx.events.append(.releaseAccepted(t.advert, installable: installable))
        if installable {
            updateState = .downloading
            publishStatus(now: now, members: &members, ctx: &ctx)
        }
        if !withhold { announceRelease(skipping: source, now: now, members: &members, ctx: &ctx) }
        return nil
    }

    /// Spreads the news of the held release: gossip, Trickle from its minimum, and the neighbourhood at once.
    mutating func announceRelease(
        skipping source: NodeID?, now: UInt64, members: inout Membership, ctx: inout NodeContext
    ) {
        guard let t = transfer else { return }
        members.enqueueNews(.release(t.advert), now: now, timers: &ctx.timers)
        trickle.hearInconsistent(now: now, rng: &ctx.rng)
        announceNow(skipping: source, members: &members, ctx: &ctx)
    }

    /// A withheld (pushed) release that is now complete is announced, and its neighbourhood asked what it holds.
    mutating func publishIfComplete(now: UInt64, members: inout Membership, ctx: inout NodeContext) {
        guard transfer != nil, transfer!.withheld, transfer!.have.isComplete else { return }
        transfer!.publish()
        announceRelease(skipping: nil, now: now, members: &members, ctx: &ctx)
    }

    /// Restores the release this node held before a restart, from the manifest the driver kept (see
    /// `Node.restoreRelease`).
    mutating func restoreRelease(
        _ bytes: [UInt8], now: UInt64, members: inout Membership, ctx: inout NodeContext
    ) -> ReleaseError? {
        let saved = updateState
        let error = acceptManifest(
            bytes, announced: nil, pushed: true, source: nil, now: now, members: &members, ctx: &ctx)
        // A download that had stopped on a full disk (failed, the release not rejected) starts again: a restart
        // is as good a moment to try as any.
        if error == nil, saved != .idle, saved != .announced, saved != .failed || !(transfer?.installable ?? false) {
            updateState = saved
            publishStatus(now: now, members: &members, ctx: &ctx)
        }
        return error
    }

    /// The driver stored the manifest of the release this node now holds and found `present` chunks already
    /// stored. Pulls start now.
    mutating func releaseOpened(
        _ release: Digest256, present: ChunkBitfield, now: UInt64, members: inout Membership, ctx: inout NodeContext
    ) {
        guard transfer != nil, transfer!.id == release, !transfer!.opened, present.count == transfer!.chunkCount
        else { return }
        let source = transfer!.source
        transfer!.open(present: present)
        publishIfComplete(now: now, members: &members, ctx: &ctx)
        // Ask the neighbourhood what it holds: ring neighbours, this round's fanout, and whoever announced it.
        var targets = releaseNeighbourhood(&members)
        if let s = source, !targets.contains(s) { targets.append(s) }
        for m in targets { sendHaves(to: m, wantsReply: true, members: &members, ctx: &ctx) }
        downloadProgressed(now: now, members: &members, ctx: &ctx)
        schedulePulls(now: now, members: &members, ctx: &ctx)
    }

    /// The driver could not store a chunk (full disk, I/O error): the node no longer claims it, stops
    /// downloading (fetching chunks it cannot keep would only load its peers) and reports the update failed,
    /// without rejecting the release; after `storageRetryInterval` it tries again (`releaseResumed`).
    mutating func chunkStoreFailed(
        release: Digest256, index: Int, now: UInt64, members: inout Membership, ctx: inout NodeContext
    ) {
        guard let t = transfer, t.id == release, index >= 0, index < t.chunkCount else { return }
        let installable = t.installable
        transfer!.drop(index)
        guard installable, storageRetryAt == 0 else { return }
        storageRetryAt = now + max(1, settings.storageRetryInterval)
        // Replies to requests in flight are dropped unread, and so are the chunks under way (no longer offered,
        // their waiting requests ended so they go elsewhere): the retry fetches them afresh.
        let dropped = transfer!.abandonUnderWay(chunkFetches)
        chunkFetches = []
        for p in dropped { endWaiters(p, ctx: &ctx) }
        if updateState == .downloading {
            updateState = .failed
            publishStatus(now: now, members: &members, ctx: &ctx)
        }
    }

    /// A chunk verified against its id (its pieces all arrived, or it was pushed): stored, offered, and passed
    /// on to the requests that waited for its pieces.
    mutating func chunkVerified(
        _ index: Int, bytes: [UInt8], now: UInt64, members: inout Membership, ctx: inout NodeContext
    ) {
        // (No copy of `transfer` is kept alive while it changes: it would copy its bookkeeping.)
        guard transfer != nil, !transfer!.have.contains(index) else { return }
        let release = transfer!.id
        let chunk = transfer!.signed.manifest.chunks[index].id
        let waiting = transfer!.hold(index)
        ctx.counters.chunksVerified += 1
        ctx.storage.append(.storeChunk(release: release, index: index, chunk: chunk, bytes: bytes))
        for w in waiting {
            sendPieces(of: bytes, index: index, from: w.next, connection: w.connection, to: w.requester, ctx: &ctx)
        }
        publishIfComplete(now: now, members: &members, ctx: &ctx)
        downloadProgressed(now: now, members: &members, ctx: &ctx)
    }

    /// Gossips progress at every 1/progressSteps of the chunks; a complete installable release goes to the
    /// driver to assemble and install.
    @inline(never)
    mutating func downloadProgressed(now: UInt64, members: inout Membership, ctx: inout NodeContext) {
        guard let t = transfer, t.installable, t.opened, updateState == .downloading else { return }
        let steps = max(1, settings.progressSteps)
        let step = t.have.setCount * steps / max(1, t.chunkCount)
        if t.isComplete {
            updateState = .verifying
            publishStatus(now: now, members: &members, ctx: &ctx)
            ctx.events.append(.releaseDownloaded(t.id))
        } else if step > publishedStep {
            publishedStep = step
            publishStatus(now: now, members: &members, ctx: &ctx)
        }
    }
}
