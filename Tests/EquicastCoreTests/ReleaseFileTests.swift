import EquicastCore
import EquicastCrypto
import Testing

@Suite struct ReleaseFileTests {
    static let key = try! Ed25519.SigningKey(seed: [UInt8](repeating: 5, count: 32))

    static func build(_ image: [UInt8], version: UInt64) throws -> (SignedManifest, [UInt8]) {
        let built = try ReleaseBuilder.build(
            image: image, product: "acme-gw", version: version, createdAt: 1, policy: RolloutPolicy(),
            key: ReleaseFileTests.key)
        return (built.manifest, ReleaseFile.encode(built.manifest, chunks: built.chunks))
    }

    @Test func builtReleaseVerifiesAndTamperingIsFound() throws {
        let image = ContentDefinedChunkerTests.firmwareLike(count: 2 << 20, seed: 4)
        let (manifest, file) = try ReleaseFileTests.build(image, version: 3)
        let verified = try ReleaseFile.verify(file, trustedKeys: [ReleaseFileTests.key.publicKey])
        #expect(verified == manifest)
        #expect(manifest.manifest.imageSize == UInt64(image.count))
        #expect(manifest.manifest.chunks.count > 10)
        // A flipped byte in the last chunk, a truncated file, an extra byte: each refused with its reason.
        var flipped = file
        flipped[file.count - 10] ^= 0x40
        let last = manifest.manifest.chunks.count - 1
        #expect(throws: ReleaseError.badChunk(index: last, reason: "does not hash to its id")) {
            try ReleaseFile.verify(flipped, trustedKeys: [ReleaseFileTests.key.publicKey])
        }
        #expect(throws: ReleaseError.self) {
            try ReleaseFile.verify(Array(file.dropLast(5)), trustedKeys: [ReleaseFileTests.key.publicKey])
        }
        #expect(throws: ReleaseError.trailingBytes(count: 1)) {
            try ReleaseFile.verify(file + [0], trustedKeys: [ReleaseFileTests.key.publicKey])
        }
    }

    /// Piece hashes that do not describe the chunks (a release signed with a broken list) fail verification at the
    /// first chunk they are wrong for, though the signature and every chunk id are good; each piece of a built
    /// release hashes to its entry.
    @Test func pieceHashesAreCheckedChunkByChunk() throws {
        let image = ContentDefinedChunkerTests.firmwareLike(count: 1 << 20, seed: 6)
        let built = try ReleaseBuilder.build(
            image: image, product: "acme-gw", version: 3, createdAt: 1, policy: RolloutPolicy(),
            key: ReleaseFileTests.key)
        let m = built.manifest.manifest
        #expect(m.pieceSize == 16_384)
        #expect(m.pieceHashes.count == m.pieceCount * 16)
        var wrong = m
        let chunk = 3
        var first = 0
        for c in m.chunks[0..<chunk] {
            first += ReleaseManifest.pieceCount(compressedSize: c.compressedSize, pieceSize: m.pieceSize)
        }
        wrong.pieceHashes[first * 16] ^= 0x01
        let file = ReleaseFile.encode(try wrong.signed(by: ReleaseFileTests.key), chunks: built.chunks)
        #expect(throws: ReleaseError.badChunk(index: chunk, reason: "its pieces do not match their hashes")) {
            try ReleaseFile.verify(file, trustedKeys: [ReleaseFileTests.key.publicKey])
        }
    }

    /// A v2 with a few small edits (one an insertion) shares almost every chunk id with v1: an update moves only
    /// what changed.
    @Test func smallChangeSharesMostChunks() throws {
        let v1 = ContentDefinedChunkerTests.firmwareLike(count: 4 << 20, seed: 8)
        var v2 = v1
        v2.replaceSubrange(1_000_000..<1_010_000, with: [UInt8](repeating: 0x5a, count: 10_000))
        v2.insert(contentsOf: [UInt8](repeating: 0xa5, count: 3_000), at: 3_000_000)
        let a = try ReleaseFileTests.build(v1, version: 1).0.manifest.chunks
        let b = try ReleaseFileTests.build(v2, version: 2).0.manifest.chunks
        let old = Set(a.map(\.id))
        let fresh = b.filter { !old.contains($0.id) }
        #expect(fresh.count <= 6, "\(fresh.count) of \(b.count) chunks new")
        let freshBytes = fresh.reduce(0) { $0 + Int($1.compressedSize) }
        let allBytes = b.reduce(0) { $0 + Int($1.compressedSize) }
        #expect(freshBytes * 10 < allBytes, "\(freshBytes) of \(allBytes) compressed bytes to transfer")
    }
}
