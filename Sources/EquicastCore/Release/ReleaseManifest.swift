import EquicastCrypto

/// One chunk of a release image (see docs/release-format.md, "Manifest").
public struct ChunkEntry: Equatable, Sendable {
    /// BLAKE2b-256 of the compressed bytes: how peers name, request and verify the chunk.
    public var id: Digest256
    /// BLAKE2b-256 of the uncompressed bytes: how a device finds the chunk in its installed image.
    public var contentHash: Digest256
    /// Where the chunk's bytes start in the image.
    public var offset: UInt64
    public var size: UInt32
    public var compressedSize: UInt32

    public init(id: Digest256, contentHash: Digest256, offset: UInt64, size: UInt32, compressedSize: UInt32) {
        self.id = id
        self.contentHash = contentHash
        self.offset = offset
        self.size = size
        self.compressedSize = compressedSize
    }

    static let encodedByteCount = 32 + 32 + 8 + 4 + 4
}

/// How the fleet rolls a release out (used by the rollout issue): cumulative wave sizes, the failure share that
/// pauses the rollout, how long a health check may take, and whether this release may replace a newer one.
public struct RolloutPolicy: Equatable, Sendable {
    /// Cumulative percentages of eligible nodes per wave, strictly increasing, the last 100 (e.g. 5, 25, 100).
    public var wavePercents: [UInt8]
    /// Failures above this percentage of a wave pause the rollout fleet-wide.
    public var maxFailurePercent: UInt8
    public var healthTimeoutSeconds: UInt32
    /// A signed permission to install over a higher version (a deliberate rollback release).
    public var allowDowngrade: Bool

    public init(
        wavePercents: [UInt8] = [5, 25, 100], maxFailurePercent: UInt8 = 10, healthTimeoutSeconds: UInt32 = 300,
        allowDowngrade: Bool = false
    ) {
        self.wavePercents = wavePercents
        self.maxFailurePercent = maxFailurePercent
        self.healthTimeoutSeconds = healthTimeoutSeconds
        self.allowDowngrade = allowDowngrade
    }

    public static let wavesMax = 8
}

/// Why a manifest, or the release it describes, was refused. Each refusal says what was wrong.
public enum ReleaseError: Error, Equatable, CustomStringConvertible {
    /// Shorter than the smallest manifest, or a field runs past the end.
    case truncated(field: String)
    case badMagic
    case unsupportedFormat(UInt8)
    /// Signed by a key this device does not trust (or the signer field was altered).
    case untrustedSigner(keyHex: String)
    /// The signature does not match the manifest: it was altered after signing.
    case badSignature
    /// A signed field holds a value the format does not allow.
    case invalidField(field: String, reason: String)
    case trailingBytes(count: Int)
    /// For another product (hardware compatibility string).
    case wrongProduct(expected: String, found: String)
    /// Not newer than what the device runs, and the release does not allow downgrades.
    case notNewer(installed: UInt64, offered: UInt64)
    /// A chunk's bytes do not match the manifest.
    case badChunk(index: Int, reason: String)

    public var description: String {
        switch self {
        case .truncated(let field): return "truncated in \(field)"
        case .badMagic: return "not an Equicast release manifest (bad magic)"
        case .unsupportedFormat(let v): return "manifest format \(v) is not supported (this build reads 2)"
        case .untrustedSigner(let key): return "manifest signed by an untrusted key \(key)"
        case .badSignature: return "manifest signature does not verify: the manifest was altered"
        case .invalidField(let field, let reason): return "manifest field \(field): \(reason)"
        case .trailingBytes(let n): return "manifest has \(n) unexpected trailing bytes"
        case .wrongProduct(let expected, let found):
            return "release is for product '\(found)', this device is '\(expected)'"
        case .badChunk(let index, let reason): return "chunk \(index) \(reason)"
        case .notNewer(let installed, let offered):
            return "release version \(offered) is not newer than the installed \(installed) (downgrade not allowed)"
        }
    }
}

/// What a release says: which devices may install it, which image, cut into which chunks, rolled out how.
public struct ReleaseManifest: Equatable, Sendable {
    public static let magic: [UInt8] = [0x45, 0x51, 0x52, 0x4d]  // "EQRM"
    public static let formatVersion: UInt8 = 2
    public static let productByteCountMax = 64
    /// Most chunks and most pieces: a manifest (80 bytes per chunk, 16 per piece) stays within one stream
    /// frame.
    public static let chunksMax = 5000
    public static let piecesMax = 6144
    /// The piece size `ReleaseBuilder` starts from (it doubles it while the image would need more than
    /// `piecesMax` pieces), and the bounds a manifest's piece size must keep (powers of two).
    public static let pieceSizeDefault: UInt32 = 16 << 10
    public static let pieceSizeMin: UInt32 = 4 << 10
    public static let pieceSizeMax: UInt32 = 256 << 10
    /// Bytes of a piece hash: BLAKE2b with a 128-bit output.
    public static let pieceHashByteCount = 16
    /// Magic, format version and total length.
    static let headerByteCount = 4 + 1 + 4
    /// Signer key and signature, at the end.
    static let trailerByteCount = Ed25519.publicKeyByteCount + Ed25519.signatureByteCount

    public var product: String
    public var version: UInt64
    /// Seconds since 1970 (informational: devices never compare clocks).
    public var createdAt: UInt64
    public var imageSize: UInt64
    public var imageHash: Digest256
    public var policy: RolloutPolicy
    /// Each chunk's compressed bytes are cut into pieces of this size (the last one shorter), each verified on
    /// its own, so that a peer can pass a piece on before the rest of its chunk has arrived.
    public var pieceSize: UInt32
    public var chunks: [ChunkEntry]
    /// BLAKE2b-128 of every piece, chunk after chunk, 16 bytes each.
    public var pieceHashes: [UInt8]

    public init(
        product: String, version: UInt64, createdAt: UInt64, imageSize: UInt64, imageHash: Digest256,
        policy: RolloutPolicy, pieceSize: UInt32, chunks: [ChunkEntry], pieceHashes: [UInt8]
    ) {
        self.product = product
        self.version = version
        self.createdAt = createdAt
        self.imageSize = imageSize
        self.imageHash = imageHash
        self.policy = policy
        self.pieceSize = pieceSize
        self.chunks = chunks
        self.pieceHashes = pieceHashes
    }

    /// Pieces of a chunk of `compressedSize` bytes (0 for an empty chunk, which `validate` refuses).
    public static func pieceCount(compressedSize: UInt32, pieceSize: UInt32) -> Int {
        pieceSize == 0 ? 0 : Int((UInt64(compressedSize) + UInt64(pieceSize) - 1) / UInt64(pieceSize))
    }

    /// Pieces of the whole release.
    public var pieceCount: Int {
        var n = 0
        for c in chunks { n += ReleaseManifest.pieceCount(compressedSize: c.compressedSize, pieceSize: pieceSize) }
        return n
    }

    /// The piece hash of each piece of `bytes` (one chunk's compressed bytes), appended to `hashes`.
    public static func appendPieceHashes(of bytes: UnsafeRawBufferPointer, pieceSize: Int, to hashes: inout [UInt8]) {
        var start = 0
        while start < bytes.count {
            let end = min(bytes.count, start + pieceSize)
            hashes += BLAKE2b.hash(
                UnsafeRawBufferPointer(rebasing: bytes[start..<end]), outputByteCount: pieceHashByteCount)
            start = end
        }
    }

    /// Checks the rules a signed manifest must also satisfy; nil when valid.
    public func validate() -> ReleaseError? {
        let p = Array(product.utf8)
        if p.isEmpty || p.count > ReleaseManifest.productByteCountMax
            || !p.allSatisfy({
                ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7a) || $0 == 0x2d
                    || $0 == 0x2e || $0 == 0x5f
            })
        {
            return .invalidField(field: "product", reason: "1-64 characters of A-Z a-z 0-9 . - _")
        }
        let waves = policy.wavePercents
        if waves.isEmpty || waves.count > RolloutPolicy.wavesMax || waves.last != 100
            || zip(waves, waves.dropFirst()).contains(where: { $0 >= $1 }) || waves[0] == 0
        {
            return .invalidField(field: "waves", reason: "1-8 increasing percentages ending at 100")
        }
        if policy.maxFailurePercent > 100 { return .invalidField(field: "max failure", reason: "above 100%") }
        if chunks.isEmpty || chunks.count > ReleaseManifest.chunksMax {
            return .invalidField(field: "chunk count", reason: "must be 1-\(ReleaseManifest.chunksMax)")
        }
        var offset: UInt64 = 0
        for (i, c) in chunks.enumerated() {
            if c.offset != offset {
                return .invalidField(field: "chunk \(i) offset", reason: "chunks must follow each other from 0")
            }
            if c.size == 0 || Int(c.size) > ContentDefinedChunker.release.maximumSize {
                return .invalidField(field: "chunk \(i) size", reason: "must be 1-262144 bytes")
            }
            if c.compressedSize == 0 || UInt64(c.compressedSize) > UInt64(c.size) + UInt64(c.size) / 1000 + 64 {
                return .invalidField(field: "chunk \(i) compressed size", reason: "larger than zlib can produce")
            }
            offset += UInt64(c.size)
        }
        if offset != imageSize { return .invalidField(field: "image size", reason: "differs from the chunks' sum") }
        if pieceSize < ReleaseManifest.pieceSizeMin || pieceSize > ReleaseManifest.pieceSizeMax
            || pieceSize & (pieceSize - 1) != 0
        {
            return .invalidField(field: "piece size", reason: "must be a power of two from 4096 to 262144")
        }
        let pieces = pieceCount
        if pieces > ReleaseManifest.piecesMax {
            return .invalidField(
                field: "piece size", reason: "\(pieces) pieces, more than \(ReleaseManifest.piecesMax)")
        }
        if pieceHashes.count != pieces * ReleaseManifest.pieceHashByteCount {
            return .invalidField(field: "piece hashes", reason: "\(pieces) pieces need \(pieces * 16) bytes")
        }
        return nil
    }

    /// The manifest's bytes up to (not including) the signer key and signature.
    func encodeBody() -> [UInt8] {
        var w = ByteWriter(capacity: 200 + chunks.count * ChunkEntry.encodedByteCount + pieceHashes.count)
        w.write(ReleaseManifest.magic)
        w.write(ReleaseManifest.formatVersion)
        w.write(UInt32(0))  // total length, patched below
        let p = Array(product.utf8)
        w.write(UInt8(p.count))
        w.write(p)
        w.write(version)
        w.write(createdAt)
        w.write(imageSize)
        w.write(imageHash.bytes)
        w.write(UInt8(policy.wavePercents.count))
        w.write(policy.wavePercents)
        w.write(policy.maxFailurePercent)
        w.write(policy.healthTimeoutSeconds)
        w.write(UInt8(policy.allowDowngrade ? 1 : 0))
        w.write(pieceSize)
        w.write(UInt32(chunks.count))
        for c in chunks {
            w.write(c.id.bytes)
            w.write(c.contentHash.bytes)
            w.write(c.offset)
            w.write(c.size)
            w.write(c.compressedSize)
        }
        w.write(pieceHashes)
        w.patch(UInt32(w.count + ReleaseManifest.trailerByteCount), at: 5)
        return w.bytes
    }

    /// Signs the manifest: body, then the signer's public key, then the Ed25519 signature over both.
    public func signed(by key: Ed25519.SigningKey) throws(ReleaseError) -> SignedManifest {
        if let problem = validate() { throw problem }
        var bytes = encodeBody()
        bytes += key.publicKey.bytes
        bytes += key.sign(bytes)
        return SignedManifest(bytes: bytes, manifest: self, signer: key.publicKey)
    }
}

/// A manifest as signed bytes, with what they say. Built only by signing or by `open`, which verifies first.
public struct SignedManifest: Equatable, Sendable {
    public let bytes: [UInt8]
    public let manifest: ReleaseManifest
    public let signer: Ed25519.PublicKey

    /// The release's identity: BLAKE2b-256 of the whole signed manifest.
    public var releaseID: Digest256 { Digest256(hashing: bytes) }

    /// Verifies and decodes a signed manifest: the signer must be one of `trustedKeys` and the signature must
    /// hold before a single field is parsed, so a forged manifest costs one signature check and nothing else.
    public static func open(_ bytes: [UInt8], trustedKeys: [Ed25519.PublicKey]) throws(ReleaseError) -> SignedManifest {
        try checkFraming(bytes)
        let signatureStart = bytes.count - Ed25519.signatureByteCount
        let keyStart = signatureStart - Ed25519.publicKeyByteCount
        let keyBytes = Array(bytes[keyStart..<signatureStart])
        guard let signer = trustedKeys.first(where: { $0.bytes == keyBytes }) else {
            throw .untrustedSigner(keyHex: hexString(keyBytes))
        }
        let signature = Array(bytes[signatureStart...])
        let valid = bytes.withUnsafeBytes { all in
            signer.isValidSignature(signature, for: UnsafeRawBufferPointer(rebasing: all[0..<signatureStart]))
        }
        if !valid { throw .badSignature }
        let manifest = try decodeBody(Array(bytes[0..<keyStart]))
        if let problem = manifest.validate() { throw problem }
        return SignedManifest(bytes: bytes, manifest: manifest, signer: signer)
    }

    /// The public key a manifest names as its signer (not verified: `open` does that).
    public static func signer(of bytes: [UInt8]) throws(ReleaseError) -> Ed25519.PublicKey {
        try checkFraming(bytes)
        let signatureStart = bytes.count - Ed25519.signatureByteCount
        return try! Ed25519.PublicKey(
            bytes: Array(bytes[(signatureStart - Ed25519.publicKeyByteCount)..<signatureStart]))
    }

    /// Magic, format and declared length against the bytes received.
    static func checkFraming(_ bytes: [UInt8]) throws(ReleaseError) {
        let minimum = ReleaseManifest.headerByteCount + ReleaseManifest.trailerByteCount
        if bytes.count >= 4 && Array(bytes[0..<4]) != ReleaseManifest.magic { throw .badMagic }
        if bytes.count >= 5 && bytes[4] != ReleaseManifest.formatVersion { throw .unsupportedFormat(bytes[4]) }
        if bytes.count < minimum { throw .truncated(field: "manifest (\(bytes.count) of at least \(minimum) bytes)") }
        let declared = Int(bytes[5]) << 24 | Int(bytes[6]) << 16 | Int(bytes[7]) << 8 | Int(bytes[8])
        if declared < minimum { throw .invalidField(field: "length", reason: "\(declared) is below \(minimum)") }
        if bytes.count < declared { throw .truncated(field: "manifest (\(bytes.count) of \(declared) bytes)") }
        if bytes.count > declared { throw .trailingBytes(count: bytes.count - declared) }
    }

    /// Decodes a manifest without verifying its signature, for display only (`equicast release inspect`): nothing
    /// decoded this way may be acted on.
    public static func inspect(_ bytes: [UInt8]) throws(ReleaseError) -> ReleaseManifest {
        try checkFraming(bytes)
        let manifest = try decodeBody(Array(bytes[0..<(bytes.count - ReleaseManifest.trailerByteCount)]))
        if let problem = manifest.validate() { throw problem }
        return manifest
    }

    static func decodeBody(_ body: [UInt8]) throws(ReleaseError) -> ReleaseManifest {
        var r = ManifestReader(body)
        _ = try r.bytes(ReleaseManifest.headerByteCount, "magic, format and length")
        let productLength = Int(try r.u8("product length"))
        let product = try r.bytes(productLength, "product")
        let version = try r.u64("version")
        let created = try r.u64("creation time")
        let imageSize = try r.u64("image size")
        let imageHash = try r.digest("image hash")
        let waveCount = Int(try r.u8("wave count"))
        if waveCount > RolloutPolicy.wavesMax { throw .invalidField(field: "wave count", reason: "at most 8") }
        let waves = try r.bytes(waveCount, "waves")
        let maxFailure = try r.u8("max failure")
        let healthTimeout = try r.u32("health timeout")
        let flags = try r.u8("flags")
        if flags & ~1 != 0 { throw .invalidField(field: "flags", reason: "unknown bits set") }
        let pieceSize = try r.u32("piece size")
        if pieceSize < ReleaseManifest.pieceSizeMin || pieceSize > ReleaseManifest.pieceSizeMax
            || pieceSize & (pieceSize - 1) != 0
        {
            throw .invalidField(field: "piece size", reason: "must be a power of two from 4096 to 262144")
        }
        let chunkCount = Int(try r.u32("chunk count"))
        if chunkCount == 0 || chunkCount > ReleaseManifest.chunksMax {
            throw .invalidField(field: "chunk count", reason: "must be 1-\(ReleaseManifest.chunksMax)")
        }
        let listBytes = chunkCount * ChunkEntry.encodedByteCount
        if r.remaining < listBytes { throw .truncated(field: "chunk list") }
        var chunks: [ChunkEntry] = []
        chunks.reserveCapacity(chunkCount)
        var pieces = 0
        for _ in 0..<chunkCount {
            let id = try r.digest("chunk id")
            let content = try r.digest("chunk content hash")
            let offset = try r.u64("chunk offset")
            let size = try r.u32("chunk size")
            let compressed = try r.u32("chunk compressed size")
            chunks.append(
                ChunkEntry(id: id, contentHash: content, offset: offset, size: size, compressedSize: compressed))
            pieces += ReleaseManifest.pieceCount(compressedSize: compressed, pieceSize: pieceSize)
        }
        if pieces > ReleaseManifest.piecesMax {
            throw .invalidField(field: "piece size", reason: "\(pieces) pieces, more than \(ReleaseManifest.piecesMax)")
        }
        let hashBytes = pieces * ReleaseManifest.pieceHashByteCount
        if r.remaining < hashBytes { throw .truncated(field: "piece hashes") }
        if r.remaining > hashBytes { throw .trailingBytes(count: r.remaining - hashBytes) }
        let pieceHashes = try r.bytes(hashBytes, "piece hashes")
        return ReleaseManifest(
            product: String(decoding: product, as: UTF8.self), version: version, createdAt: created,
            imageSize: imageSize, imageHash: imageHash,
            policy: RolloutPolicy(
                wavePercents: waves, maxFailurePercent: maxFailure, healthTimeoutSeconds: healthTimeout,
                allowDowngrade: flags & 1 != 0),
            pieceSize: pieceSize, chunks: chunks, pieceHashes: pieceHashes)
    }

    /// May a device of `product` running `installedVersion` (nil: none recorded) install this release?
    public func checkEligible(product: String, installedVersion: UInt64?) throws(ReleaseError) {
        if !manifest.product.sameBytes(product) { throw .wrongProduct(expected: product, found: manifest.product) }
        if let installed = installedVersion, manifest.version <= installed, !manifest.policy.allowDowngrade {
            throw .notNewer(installed: installed, offered: manifest.version)
        }
    }
}

/// A ByteReader whose running out of bytes is a truncated manifest.
struct ManifestReader {
    private var r: ByteReader

    init(_ bytes: [UInt8]) { r = ByteReader(bytes) }

    var remaining: Int { r.remaining }

    mutating func u8(_ field: String) throws(ReleaseError) -> UInt8 {
        do { return try r.readUInt8(field) } catch { throw .truncated(field: field) }
    }

    mutating func u32(_ field: String) throws(ReleaseError) -> UInt32 {
        do { return try r.readUInt32(field) } catch { throw .truncated(field: field) }
    }

    mutating func u64(_ field: String) throws(ReleaseError) -> UInt64 {
        do { return try r.readUInt64(field) } catch { throw .truncated(field: field) }
    }

    mutating func bytes(_ count: Int, _ field: String) throws(ReleaseError) -> [UInt8] {
        do { return try r.readBytes(count, field) } catch { throw .truncated(field: field) }
    }

    mutating func digest(_ field: String) throws(ReleaseError) -> Digest256 {
        Digest256(bytes: try bytes(BLAKE2b.digestByteCount, field))!
    }
}

extension Digest256 {
    /// Sixty-four lowercase hex digits, the form used in logs, file names and the CLI.
    public var hex: String { hexString(bytes) }
    /// The first sixteen hex digits: enough to tell releases apart in a log line.
    public var shortHex: String { hexString(Array(bytes[0..<8])) }
}
