import EquicastCompression
import EquicastCore
import EquicastCrypto
import EquicastPosix

/// Release files under the state directory (every one written atomically):
///
///     releases/chunks/<chunk id>    compressed chunks, named by the hex BLAKE2b-256 of their bytes; chunks of
///                                   the installed release stay, so the next release fetches only what changed
///     releases/held.manifest        the signed manifest of the release this node holds and spreads
///     releases/installed.manifest   the manifest of the installed release
///     releases/image.partial        the held release's image while its chunks arrive (`ImageBuilder`)
///     releases/image                the held release's image, assembled and verified (staged)
///     releases/update               the update record (`UpdateRecord`)
final class ReleaseStore {
    let root: String
    let chunks: String
    /// Bytes left free on the state directory's file system: a chunk that would eat into them is refused as
    /// a full disk, so the agent never fills the device's storage to the last byte.
    static let reserveBytes: UInt64 = 1 << 20

    init(stateDirectory: String) throws(PosixError) {
        root = stateDirectory + "/releases"
        chunks = root + "/chunks"
        try FileSystem.makeDirectory(root)
        try FileSystem.makeDirectory(chunks)
    }

    var heldManifestPath: String { root + "/held.manifest" }
    var installedManifestPath: String { root + "/installed.manifest" }
    var imagePath: String { root + "/image" }
    var partialImagePath: String { root + "/image.partial" }
    var recordPath: String { root + "/update" }

    func chunkPath(_ id: Digest256) -> String { chunks + "/" + id.hex }

    /// Chunks of `manifest` already stored and intact (each is hashed: a damaged one counts as missing).
    func present(_ manifest: ReleaseManifest) -> ChunkBitfield {
        var b = ChunkBitfield(count: manifest.chunks.count)
        for (i, c) in manifest.chunks.enumerated() {
            if let bytes = read(c.id, size: Int(c.compressedSize)), Digest256(hashing: bytes) == c.id { b.insert(i) }
        }
        return b
    }

    func read(_ id: Digest256, size: Int) -> [UInt8]? {
        guard let bytes = try? FileSystem.readFile(chunkPath(id), limit: size), bytes.count == size else { return nil }
        return bytes
    }

    func store(_ id: Digest256, _ bytes: [UInt8]) throws(PosixError) {
        let free = try FileSystem.freeBytes(root)
        let needed = UInt64(bytes.count) + ReleaseStore.reserveBytes
        if free < needed { throw .noSpace(path: chunks, needed: needed, available: free) }
        try FileSystem.writeFileAtomically(chunkPath(id), bytes, mode: 0o600)
    }

    func discard(_ id: Digest256) { try? FileSystem.remove(chunkPath(id)) }

    func loadManifest(_ path: String) -> [UInt8]? {
        try? FileSystem.readFile(path, limit: FrameLimits.streamPayloadBudget)
    }

    /// Starts building the image of `manifest` in `releases/image.partial` (truncating any earlier one).
    func openImage(_ manifest: ReleaseManifest, release: Digest256) throws(PosixError) -> ImageBuilder {
        ImageBuilder(manifest: manifest, release: release, file: try PositionedFile(creating: partialImagePath))
    }

    /// Inflates every chunk in order into `releases/image`, checking each chunk's id and content hash and the
    /// whole image's size and hash. The diagnosing path: images are normally built by `ImageBuilder` as chunks
    /// arrive, and this runs when that did not verify (it names the chunk that is wrong), or when it could not be
    /// built so (a full disk). Memory stays at one chunk whatever the image size. On any failure the partial
    /// image is removed and the error says which chunk or which check.
    func assemble(_ manifest: ReleaseManifest) throws(AssemblyError) {
        let writer: AtomicFileWriter
        do throws(PosixError) {
            let free = try FileSystem.freeBytes(root)
            let needed = manifest.imageSize + ReleaseStore.reserveBytes
            if free < needed { throw PosixError.noSpace(path: imagePath, needed: needed, available: free) }
            writer = try AtomicFileWriter(path: imagePath, mode: 0o600)
        } catch {
            throw .storage(error)
        }
        let image = BLAKE2bStream()
        var total: UInt64 = 0
        for (i, c) in manifest.chunks.enumerated() {
            guard let z = read(c.id, size: Int(c.compressedSize)), Digest256(hashing: z) == c.id else {
                throw .chunk(index: i, reason: "missing or damaged in the chunk store")
            }
            let plain: [UInt8]
            do throws(CompressionError) {
                plain = try Zlib.inflate(z, limits: InflateLimits(outputByteCountMax: Int(c.size), ratioMax: nil))
            } catch {
                throw .chunk(index: i, reason: "does not inflate: \(error)")
            }
            guard plain.count == Int(c.size), Digest256(hashing: plain) == c.contentHash else {
                throw .chunk(index: i, reason: "inflates to bytes that do not match its content hash")
            }
            plain.withUnsafeBytes { image.update($0) }
            total += UInt64(plain.count)
            do throws(PosixError) { try writer.write(plain) } catch { throw .storage(error) }
        }
        guard total == manifest.imageSize else {
            throw .image(reason: "is \(total) bytes, the manifest says \(manifest.imageSize)")
        }
        guard image.finish() == manifest.imageHash else {
            throw .image(reason: "does not match the manifest's image hash")
        }
        do throws(PosixError) { try writer.commit() } catch { throw .storage(error) }
    }

    /// After an install: chunks of the previously installed release that the new one does not use are deleted.
    func collectGarbage(installed: ReleaseManifest, previous: ReleaseManifest?) {
        guard let previous else { return }
        // The first 64 bits of each id kept, sorted: a chunk whose prefix matches is kept (a collision only
        // leaves a file behind), and no Set of digests is compiled into the device binary.
        var keep = installed.chunks.map { $0.id.words.0 }
        keep.sort()
        for c in previous.chunks {
            let w = c.id.words.0
            var lo = 0
            var hi = keep.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if keep[mid] < w { lo = mid + 1 } else { hi = mid }
            }
            if lo == keep.count || keep[lo] != w { discard(c.id) }
        }
    }

    func loadRecord() -> UpdateRecord? {
        guard let bytes = try? FileSystem.readFile(recordPath, limit: 4096) else { return nil }
        return UpdateRecord(text: String(decoding: bytes, as: UTF8.self))
    }

    func save(_ record: UpdateRecord) throws(PosixError) {
        try FileSystem.writeFileAtomically(recordPath, Array(record.text.utf8), mode: 0o600)
    }
}

/// The held release's image, built while its chunks arrive so that little is left to do once the last one is
/// verified, and the agent's loop never stops for long (a device assembling a large image in one go would miss
/// its membership probes). Each chunk is inflated and written at its offset as it is stored (`write`); chunks
/// found already stored (reused from the installed image, or kept across a restart) are written a few per loop
/// turn (`advance`). The image is read back and hashed in order as far as it is written without a gap, as
/// chunks are written (the first source sends chunks in index order, so a good part of the image is usually
/// hashed before the last chunk comes in); once every chunk is written, the rest is read back and hashed a slice
/// per turn, and the image is put in place as `releases/image` if the hash is the manifest's.
///
/// Chunk ids were verified when stored; the per-chunk content hashes are not checked here (the image hash
/// covers every byte). When the image does not verify, `ReleaseStore.assemble` builds it again from the chunk
/// store, checking each chunk, and names the one that is wrong.
final class ImageBuilder {
    let manifest: ReleaseManifest
    let release: Digest256
    private let file: PositionedFile
    private(set) var written: ChunkBitfield
    /// Where `advance` looks next for a stored chunk not yet written.
    private var cursor = 0
    private let hash = BLAKE2bStream()
    /// The image's first `hashed` bytes are read back and hashed; they end inside chunk `hashChunk` (or at its
    /// start).
    private(set) var hashed: UInt64 = 0
    private var hashChunk = 0
    /// Set when a chunk could not be inflated to its size: the image will not verify, and the diagnosing
    /// assembly is left to say why.
    private(set) var broken = false

    /// What one loop turn (or one chunk written) writes from the chunk store or reads back to hash (about), and
    /// the read-back buffer's size (kept while the image is built, so the agent's memory does not grow with the
    /// image).
    static let sliceByteCount = 512 << 10
    static let readBackByteCount = 128 << 10
    private var readBack: [UInt8] = []

    init(manifest: ReleaseManifest, release: Digest256, file: PositionedFile) {
        self.manifest = manifest
        self.release = release
        self.file = file
        written = ChunkBitfield(count: manifest.chunks.count)
    }

    /// Writes chunk `index` from its compressed bytes (already verified against its id). A full disk throws;
    /// a chunk that does not inflate to its size marks the image broken.
    func write(_ index: Int, compressed: [UInt8], store: ReleaseStore) throws(PosixError) {
        guard index >= 0, index < manifest.chunks.count, !written.contains(index), !broken else { return }
        let c = manifest.chunks[index]
        guard
            let plain = try? Zlib.inflate(
                compressed, limits: InflateLimits(outputByteCountMax: Int(c.size), ratioMax: nil)),
            plain.count == Int(c.size)
        else {
            broken = true
            return
        }
        let free = try FileSystem.freeBytes(store.root)
        let needed = UInt64(plain.count) + ReleaseStore.reserveBytes
        if free < needed { throw .noSpace(path: file.path, needed: needed, available: free) }
        try file.write(plain, at: c.offset)
        written.insert(index)
        try hashWritten(limit: ImageBuilder.sliceByteCount)
    }

    /// Reads back and hashes, from where the hash stands, about `limit` bytes (at most one read-back buffer
    /// more) of the image as far as its chunks are written.
    private func hashWritten(limit: Int) throws(PosixError) {
        var done = 0
        while done < limit && hashChunk < manifest.chunks.count && written.contains(hashChunk) && !broken {
            let c = manifest.chunks[hashChunk]
            let end = c.offset + UInt64(c.size)
            if readBack.isEmpty { readBack = [UInt8](repeating: 0, count: ImageBuilder.readBackByteCount) }
            let slice = Int(min(UInt64(readBack.count), end - hashed))
            let n = try file.read(into: &readBack, at: hashed)
            guard n >= slice else {
                broken = true  // shorter than the chunks written: the diagnosing assembly says more
                break
            }
            readBack.withUnsafeBytes { hash.update(UnsafeRawBufferPointer(rebasing: $0[0..<slice])) }
            hashed += UInt64(slice)
            done += slice
            if hashed == end { hashChunk += 1 }
        }
    }

    /// One loop turn's share of the work: writes about one slice of the stored chunks (`stored`) not yet
    /// written; once every chunk is written and `finishing`, hashes the next slice of the image. Returns true
    /// while there is more to do; `verified` is set once the image is complete and matches the manifest (it is
    /// then in place at `releases/image`).
    func advance(stored: ChunkBitfield, finishing: Bool, store: ReleaseStore) throws(PosixError) -> Bool {
        guard !broken, !verified else { return false }
        let count = manifest.chunks.count
        var moved = 0
        var scanned = 0
        while scanned < count && moved < ImageBuilder.sliceByteCount {
            let i = cursor
            cursor = (cursor + 1) % count
            scanned += 1
            guard stored.contains(i), !written.contains(i) else { continue }
            let c = manifest.chunks[i]
            // Not (or no longer) stored intact: it is written when it is stored again.
            guard let z = store.read(c.id, size: Int(c.compressedSize)), Digest256(hashing: z) == c.id else {
                continue
            }
            try write(i, compressed: z, store: store)
            moved += Int(c.size)
        }
        if moved >= ImageBuilder.sliceByteCount { return true }
        guard finishing, written.isComplete, !broken else { return false }
        try hashWritten(limit: ImageBuilder.readBackByteCount)
        if broken { return false }
        if hashed < manifest.imageSize { return true }
        guard hash.finish() == manifest.imageHash else {
            broken = true
            return false
        }
        try file.commit(to: store.imagePath)
        verified = true
        return false
    }

    private(set) var verified = false
}

/// Why an image could not be assembled.
enum AssemblyError: Error, CustomStringConvertible {
    case chunk(index: Int, reason: String)
    case image(reason: String)
    case storage(PosixError)

    var description: String {
        switch self {
        case .chunk(let i, let reason): return "chunk \(i) \(reason)"
        case .image(let reason): return "the assembled image \(reason)"
        case .storage(let e): return "\(e)"
        }
    }
}

/// What survives a restart of the update: the installed version, where the update stands, for which release,
/// and the releases that failed here. Text, one `key=value` per line.
struct UpdateRecord: Equatable {
    var installedVersion: UInt64 = 0
    var state: UpdateState = .idle
    var release: Digest256?
    var rejected: [Digest256] = []

    init() {}

    init?(text: String) {
        guard let lines = keyValueLines(text) else { return nil }
        for (key, value) in lines {
            switch key {
            case "installed":
                guard let v = UInt64(value) else { return nil }
                installedVersion = v
            case "state":
                guard let s = UpdateState.allCases.first(where: { $0.name.sameBytes(value) }) else { return nil }
                state = s
            case "release":
                guard let d = digest(value) else { return nil }
                release = d
            case "rejected":
                for part in value.splitBytes(0x2c, omittingEmpty: true) {
                    guard let d = digest(part) else { return nil }
                    rejected.append(d)
                }
            default:
                return nil
            }
        }
    }

    var text: String {
        var t = "installed=\(installedVersion)\nstate=\(state.name)\n"
        if let r = release { t += "release=\(r.hex)\n" }
        if !rejected.isEmpty { t += "rejected=" + rejected.map { $0.hex }.joined(separator: ",") + "\n" }
        return t
    }
}

/// A digest from its 64 hex digits; nil for anything else.
func digest(_ hex: String) -> Digest256? {
    guard hex.utf8.count == 64, let bytes = bytesFromHex(hex) else { return nil }
    return Digest256(bytes: bytes)
}
