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

    /// Inflates every chunk in order into `releases/image`, checking each chunk's id and content hash and the
    /// whole image's size and hash. Memory stays at one chunk whatever the image size. On any failure the
    /// partial image is removed and the error says which chunk or which check.
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
