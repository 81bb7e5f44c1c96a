import EquicastCrypto

/// One release a node holds and spreads: its verified manifest, the chunks it has verified, what its peers hold,
/// the chunks requested and those arriving piece by piece. Pure bookkeeping, changed only through its methods
/// (here and in ReleaseTransfer+Chunks.swift); `Dissemination` does the talking.
struct ReleaseTransfer {
    struct Peer {
        let id: NodeID
        var address: SocketAddress
        var haves: ChunkBitfield
        var inFlight = 0
        /// Timeouts and failed connections in a row; a peer that keeps failing is forgotten.
        var failures = 0
        /// Served a chunk that did not match its id: never asked again for this release.
        var banned = false
        /// Whether it has our bitfield as it is now (see `markUntold`).
        var toldCurrent = false
        var heardAt: UInt64
    }

    /// The peers whose bitfields are kept, in id order (the simulator needs a deterministic order), looked up
    /// by a scan: there are at most `peersMax`, and a dictionary would cost its own specialized code on
    /// the device.
    struct Peers {
        private(set) var all: [Peer] = []

        var count: Int { all.count }

        subscript(id: NodeID) -> Peer? {
            get {
                for p in all where p.id == id { return p }
                return nil
            }
            set {
                var at = 0
                while at < all.count && all[at].id < id { at += 1 }
                let present = at < all.count && all[at].id == id
                switch (newValue, present) {
                case (let p?, true): all[at] = p
                case (let p?, false): all.insert(p, at: at)
                case (nil, true): all.remove(at: at)
                case (nil, false): break
                }
            }
        }

        /// We now hold chunk `index`: the peers that lack it, as far as we know, are to be told our bitfield
        /// again. One that holds it has no use for the news (it never asks anyone for that chunk, and rarity
        /// only matters for chunks it lacks). In bench/rollout.py at N = 16 this cut the bitfields a host
        /// receives by a third (1,261 to 858 datagrams, 207 to 141 KB a host, mean of 3 trials).
        mutating func markUntold(lacking index: Int) {
            for i in all.indices where !all[i].haves.contains(index) { all[i].toldCurrent = false }
        }
    }

    /// A chunk arriving piece by piece: its verified pieces so far (from its start, in order), the fetch
    /// they come from, and the requesters its pieces are passed on to as they arrive.
    struct Partial {
        /// A request for this chunk answered piece by piece: on which connection, and the piece it gets next.
        struct Waiter {
            let connection: UInt64
            let requester: NodeID
            var next: Int
        }
        let index: Int
        var bytes: [UInt8] = []
        var pieces = 0
        /// The fetch stream its pieces come from; nil while none is in flight (a new request resumes at
        /// `pieces`).
        var stream: UInt64?
        var waiting: [Waiter] = []
    }

    let signed: SignedManifest
    let advert: ReleaseAdvert
    /// False when this node holds the release only to spread it (another product, or not newer than what it
    /// runs): it fetches and serves chunks but never installs.
    let installable: Bool
    var have: ChunkBitfield
    /// What peers are told we hold: the chunks held, and those of which at least one piece has arrived.
    var offered: ChunkBitfield
    var partials: [Partial] = []
    /// Each chunk's first piece in the manifest's piece list, and one past the last chunk's last.
    let firstPiece: [Int]
    let pieceSize: Int
    /// The driver has reported which chunks it already stores (`Node.releaseOpened`); no pulls before that.
    var opened = false
    /// The member whose announcement led us to it (it holds the manifest and probably chunks).
    let source: NodeID?
    var requested: ChunkBitfield
    /// Set on a node an operator pushed the release to, the first source: until it has served every chunk once,
    /// a request gets the next chunk in image order it has not served (`chunkToServe`), so its upload, which
    /// bounds the whole rollout, carries each chunk once before it carries any twice (BitTorrent's
    /// super-seeding). Requesters pick rarest first, but they cannot see each other's requests in flight.
    var seeding = false
    /// The chunks this node has served at least once (kept only while seeding).
    var served: ChunkBitfield
    private var seedCursor = 0
    var peers = Peers()

    /// Peers whose bitfields are kept; beyond it the least recently heard is forgotten.
    static let peersMax = 32

    /// A release an operator pushed is kept to itself until every chunk is here (`publish`): announced earlier,
    /// the fleet would drop what it had staged for a release that a broken push may never complete.
    var withheld = false

    init(signed: SignedManifest, installable: Bool, source: NodeID? = nil, withheld: Bool = false) {
        self.signed = signed
        self.withheld = withheld
        self.source = source
        self.advert = ReleaseAdvert(signed)
        self.installable = installable
        self.have = ChunkBitfield(count: signed.manifest.chunks.count)
        self.offered = ChunkBitfield(count: signed.manifest.chunks.count)
        var first: [Int] = []
        first.reserveCapacity(signed.manifest.chunks.count + 1)
        var n = 0
        for c in signed.manifest.chunks {
            first.append(n)
            n += ReleaseManifest.pieceCount(compressedSize: c.compressedSize, pieceSize: signed.manifest.pieceSize)
        }
        first.append(n)
        self.firstPiece = first
        self.pieceSize = Int(signed.manifest.pieceSize)
        self.requested = ChunkBitfield(count: signed.manifest.chunks.count)
        self.served = ChunkBitfield(count: signed.manifest.chunks.count)
    }

    func pieceCount(_ index: Int) -> Int { firstPiece[index + 1] - firstPiece[index] }

    /// Where piece `piece` of chunk `index` lies in the chunk's compressed bytes.
    func range(ofPiece piece: Int, in index: Int) -> Range<Int> {
        let start = piece * pieceSize
        return start..<min(start + pieceSize, Int(signed.manifest.chunks[index].compressedSize))
    }

    /// True when `bytes` is piece `piece` of chunk `index` as the manifest's piece hashes name it.
    func pieceMatches(_ bytes: [UInt8], index: Int, piece: Int) -> Bool {
        guard index >= 0 && index < chunkCount && piece >= 0 && piece < pieceCount(index),
            bytes.count == range(ofPiece: piece, in: index).count
        else { return false }
        let n = ReleaseManifest.pieceHashByteCount
        let at = (firstPiece[index] + piece) * n
        return BLAKE2b.hash(bytes, outputByteCount: n)[...] == signed.manifest.pieceHashes[at..<at + n]
    }

    func partialAt(_ index: Int) -> Int? { partials.firstIndex { $0.index == index } }

    var id: Digest256 { advert.releaseID }
    var version: UInt64 { advert.version }
    var chunkCount: Int { have.count }
    var isComplete: Bool { have.isComplete }

    /// Records a peer's bitfield; returns false when it does not fit this release.
    mutating func noteHaves(_ haves: ChunkBitfield, of peer: NodeID, address: SocketAddress, now: UInt64) -> Bool {
        guard haves.count == chunkCount else { return false }
        if var p = peers[peer] {
            p.haves = haves
            p.address = address
            p.heardAt = now
            peers[peer] = p
            return true
        }
        if peers.count >= ReleaseTransfer.peersMax {
            // Forget the least recently heard peer with nothing in flight.
            var victim: NodeID?
            var oldest = UInt64.max
            for p in peers.all where p.inFlight == 0 && p.heardAt < oldest {
                oldest = p.heardAt
                victim = p.id
            }
            guard let v = victim else { return false }
            peers[v] = nil
        }
        peers[peer] = Peer(id: peer, address: address, haves: haves, heardAt: now)
        return true
    }

    /// Chooses chunk requests: rarest first among the chunks missing and not requested (rarity counted over the
    /// peers' bitfields), random among equally rare, each from a random peer that holds it and has a free
    /// request slot, preferring peers that are still downloading over those that hold everything. Returns (peer, chunk index) pairs; the caller sends them and calls `started`.
    func choose(perPeer: Int, total: Int, inFlightNow: Int, rng: inout DeterministicRandom) -> [(NodeID, Int)] {
        guard opened, inFlightNow < total else { return [] }
        var usable: [Peer] = []
        for p in peers.all where !p.banned && p.inFlight < perPeer && !p.haves.isEmpty { usable.append(p) }
        guard !usable.isEmpty else { return [] }
        // Wanted chunks by rarity, random among equals: rarity (< 64), 16 random bits and the index (< 65,536)
        // packed into one sortable word.
        var candidates: [UInt64] = []
        for i in 0..<chunkCount where !have.contains(i) && !requested.contains(i) {
            var n: UInt64 = 0
            for p in usable where p.haves.contains(i) { n += 1 }
            // A chunk partly here (its fetch broke off) goes first: its pieces are paid for and held in memory.
            if n > 0 {
                candidates.append((partialAt(i) == nil ? n : 0) << 32 | (rng.next() & 0xffff) << 16 | UInt64(i))
            }
        }
        candidates.sort()
        // A peer holding everything gets one request from us, not `perPeer`: every node downloading asks it,
        // and the fewer share its uplink, the sooner each chunk it sends can be passed on.
        var slots: [Int] = usable.map { ($0.haves.isComplete ? 1 : perPeer) - $0.inFlight }
        var out: [(NodeID, Int)] = []
        var budget = total - inFlightNow
        for word in candidates where budget > 0 {
            let index = Int(word & 0xffff)
            // Peers still downloading first: what they serve is upload capacity a star would leave unused, and
            // it spares the nodes holding everything (the origin above all) for the chunks only they have.
            var holders: [Int] = []
            var seeds: [Int] = []
            for (k, u) in usable.enumerated() where slots[k] > 0 && u.haves.contains(index) {
                if u.haves.isComplete { seeds.append(k) } else { holders.append(k) }
            }
            if holders.isEmpty { holders = seeds }
            guard !holders.isEmpty else { continue }
            let k = holders[rng.below(holders.count)]
            slots[k] -= 1
            budget -= 1
            out.append((usable[k].id, index))
        }
        return out
    }

    /// The chunk to answer a request for `index` (held) with: `index` itself, unless this node is seeding. Then
    /// the next chunk in index order it has never served (skipping any the requester's last bitfield shows), so
    /// concurrent requesters that picked the same chunk still each take something new from the first source,
    /// and the first source sends the image from its start: its end is what the fleet gets last, and a node,
    /// which hashes its image from the start as chunks arrive, has little left to hash after the last one
    /// (bench/rollout.py, N = 16: the last host installed 0.05-0.08 s after the last host had every chunk,
    /// against 0.13-0.20 s when only repeated requests were redirected).
    mutating func chunkToServe(requested index: Int, by peer: NodeID) -> Int {
        guard seeding else { return index }
        var serving = index
        let known = peers[peer]?.haves
        for step in 0..<chunkCount {
            let k = (seedCursor + step) % chunkCount
            guard have.contains(k), !served.contains(k), !(known?.contains(k) ?? false) else { continue }
            serving = k
            seedCursor = (k + 1) % chunkCount
            break
        }
        served.insert(serving)
        if served.isComplete { seeding = false }
        return serving
    }

    mutating func started(_ index: Int, from peer: NodeID) {
        requested.insert(index)
        peers[peer]?.inFlight += 1
    }

    /// A request ended (reply, failure or timeout): frees its slot.
    mutating func finished(_ index: Int, from peer: NodeID) {
        if index < chunkCount { requested.remove(index) }
        if let p = peers[peer], p.inFlight > 0 { peers[peer]!.inFlight = p.inFlight - 1 }
    }

    /// True when `bytes` is chunk `index` as the manifest names it.
    func matches(_ bytes: [UInt8], index: Int) -> Bool {
        guard index >= 0 && index < chunkCount else { return false }
        let entry = signed.manifest.chunks[index]
        return bytes.count == Int(entry.compressedSize) && Digest256(hashing: bytes) == entry.id
    }
}
