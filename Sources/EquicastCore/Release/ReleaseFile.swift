import EquicastCompression
import EquicastCrypto

/// Cuts, compresses, hashes and signs a firmware image into a release (docs/release-format.md).
public enum ReleaseBuilder {
    /// The signed manifest and each chunk's compressed bytes, in image order.
    public static func build(
        image: [UInt8], product: String, version: UInt64, createdAt: UInt64, policy: RolloutPolicy,
        key: Ed25519.SigningKey
    ) throws(ReleaseError) -> (manifest: SignedManifest, chunks: [[UInt8]]) {
        if image.isEmpty { throw .invalidField(field: "image", reason: "is empty") }
        var entries: [ChunkEntry] = []
        var compressed: [[UInt8]] = []
        image.withUnsafeBytes { all in
            for range in ContentDefinedChunker.release.chunks(all) {
                let bytes = UnsafeRawBufferPointer(rebasing: all[range])
                let z = Zlib.deflate(bytes, level: 9)
                entries.append(
                    ChunkEntry(
                        id: Digest256(hashing: z), contentHash: Digest256(hashing: bytes),
                        offset: UInt64(range.lowerBound),
                        size: UInt32(range.count), compressedSize: UInt32(z.count)))
                compressed.append(z)
            }
        }
        if entries.count > ReleaseManifest.chunksMax {
            throw .invalidField(
                field: "image", reason: "needs \(entries.count) chunks, more than \(ReleaseManifest.chunksMax)")
        }
        // The smallest piece size that keeps the piece count within bounds (5,000 chunks of at most 256 KiB
        // always fit at 256 KiB).
        var pieceSize = ReleaseManifest.pieceSizeDefault
        func pieces(_ size: UInt32) -> Int {
            var n = 0
            for e in entries { n += ReleaseManifest.pieceCount(compressedSize: e.compressedSize, pieceSize: size) }
            return n
        }
        while pieces(pieceSize) > ReleaseManifest.piecesMax && pieceSize < ReleaseManifest.pieceSizeMax {
            pieceSize *= 2
        }
        var pieceHashes: [UInt8] = []
        for z in compressed {
            z.withUnsafeBytes {
                ReleaseManifest.appendPieceHashes(of: $0, pieceSize: Int(pieceSize), to: &pieceHashes)
            }
        }
        let manifest = ReleaseManifest(
            product: product, version: version, createdAt: createdAt, imageSize: UInt64(image.count),
            imageHash: Digest256(hashing: image), policy: policy, pieceSize: pieceSize, chunks: entries,
            pieceHashes: pieceHashes)
        return (try manifest.signed(by: key), compressed)
    }
}

/// The `.eqr` release file: what an operator hands to the first node. Magic `EQRF`, format 1, the signed
/// manifest's length (4 bytes) and bytes, then every chunk's compressed bytes in manifest order.
public enum ReleaseFile {
    public static let magic: [UInt8] = [0x45, 0x51, 0x52, 0x46]  // "EQRF"
    public static let formatVersion: UInt8 = 1
    static let headerByteCount = 4 + 1 + 4

    public static func encode(_ manifest: SignedManifest, chunks: [[UInt8]]) -> [UInt8] {
        var w = ByteWriter(capacity: headerByteCount + manifest.bytes.count + chunks.reduce(0) { $0 + $1.count })
        w.write(magic)
        w.write(formatVersion)
        w.write(UInt32(manifest.bytes.count))
        w.write(manifest.bytes)
        for c in chunks { w.write(c) }
        return w.bytes
    }

    /// The manifest's bytes and where each chunk lies in `bytes`, checking only the container's structure:
    /// the manifest is not verified here (see `open`, or `SignedManifest.open`).
    public static func split(_ bytes: [UInt8]) throws(ReleaseError) -> (
        manifest: [UInt8], body: ReleaseManifest, chunks: [Range<Int>]
    ) {
        if bytes.count < headerByteCount { throw .truncated(field: "release file header") }
        if Array(bytes[0..<4]) != magic {
            throw .invalidField(field: "release file", reason: "not an .eqr file (bad magic)")
        }
        if bytes[4] != formatVersion { throw .unsupportedFormat(bytes[4]) }
        let length = Int(bytes[5]) << 24 | Int(bytes[6]) << 16 | Int(bytes[7]) << 8 | Int(bytes[8])
        if bytes.count < headerByteCount + length {
            throw .truncated(field: "the manifest (\(bytes.count - headerByteCount) of \(length) bytes)")
        }
        let manifestBytes = Array(bytes[headerByteCount..<(headerByteCount + length)])
        let body = try SignedManifest.inspect(manifestBytes)
        var ranges: [Range<Int>] = []
        var at = headerByteCount + length
        for (i, c) in body.chunks.enumerated() {
            let end = at + Int(c.compressedSize)
            if end > bytes.count { throw .truncated(field: "chunk \(i) (the file ends at byte \(bytes.count))") }
            ranges.append(at..<end)
            at = end
        }
        if at != bytes.count { throw .trailingBytes(count: bytes.count - at) }
        return (manifestBytes, body, ranges)
    }

    /// Verifies a whole release file: the manifest against `trustedKeys`, every chunk against its id, its piece
    /// hashes and (once inflated) its content hash, and the assembled image against the image hash. Returns the manifest.
    public static func verify(_ bytes: [UInt8], trustedKeys: [Ed25519.PublicKey]) throws(ReleaseError) -> SignedManifest
    {
        let parts = try split(bytes)
        let signed = try SignedManifest.open(parts.manifest, trustedKeys: trustedKeys)
        var image: [UInt8] = []
        image.reserveCapacity(Int(signed.manifest.imageSize))
        var hashes: [UInt8] = []
        hashes.reserveCapacity(signed.manifest.pieceHashes.count)
        for (i, (entry, range)) in zip(signed.manifest.chunks, parts.chunks).enumerated() {
            let z = Array(bytes[range])
            if Digest256(hashing: z) != entry.id { throw .badChunk(index: i, reason: "does not hash to its id") }
            let at = hashes.count
            z.withUnsafeBytes {
                ReleaseManifest.appendPieceHashes(of: $0, pieceSize: Int(signed.manifest.pieceSize), to: &hashes)
            }
            if hashes[at...] != signed.manifest.pieceHashes[at..<hashes.count] {
                throw .badChunk(index: i, reason: "its pieces do not match their hashes")
            }
            let limits = InflateLimits(outputByteCountMax: Int(entry.size), ratioMax: nil)
            guard let plain = try? Zlib.inflate(z, limits: limits), plain.count == Int(entry.size) else {
                throw .badChunk(index: i, reason: "does not inflate to its size")
            }
            if Digest256(hashing: plain) != entry.contentHash {
                throw .badChunk(index: i, reason: "content does not match its content hash")
            }
            image += plain
        }
        if Digest256(hashing: image) != signed.manifest.imageHash {
            throw .invalidField(field: "image hash", reason: "the assembled image does not match")
        }
        return signed
    }
}
