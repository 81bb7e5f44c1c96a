import EquicastCore
import EquicastCrypto
import Foundation
import Testing

@testable import EquicastAgent

/// The image is built while chunks arrive: in any order, with chunks already stored picked up a slice per loop
/// turn, read back and hashed from its start as far as it is written, the rest a slice per turn once every chunk
/// is in, then verified and put in place. A chunk missing from the store leaves it unverified, and the
/// diagnosing assembly names that chunk.
@Suite struct ImageBuilderTests {
    static let key = try! Ed25519.SigningKey(seed: [UInt8](repeating: 9, count: 32))

    /// A release of `size` pseudo-random bytes (several chunks), in a fresh state directory.
    static func fixture(size: Int) throws -> (ReleaseStore, SignedManifest, [[UInt8]], [UInt8], String) {
        var rng = DeterministicRandom(seed: 77)
        let image = rng.bytes(size)
        let built = try ReleaseBuilder.build(
            image: image, product: "acme-gw", version: 2, createdAt: 1, policy: RolloutPolicy(), key: key)
        let dir = NSTemporaryDirectory() + "image-builder-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return (try ReleaseStore(stateDirectory: dir), built.manifest, built.chunks, image, dir)
    }

    /// Runs `advance` until it has nothing more to do now; returns the number of turns it took.
    static func drain(_ b: ImageBuilder, stored: ChunkBitfield, finishing: Bool, store: ReleaseStore) throws -> Int {
        var turns = 0
        while try b.advance(stored: stored, finishing: finishing, store: store) { turns += 1 }
        return turns + 1
    }

    @Test func builtOutOfOrderTheImageMatchesAndIsPutInPlace() throws {
        let (store, signed, chunks, image, dir) = try ImageBuilderTests.fixture(size: 3 << 20)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let m = signed.manifest
        #expect(m.chunks.count > 20)
        // The first five chunks are stored before the release is opened (reused, or kept across a restart).
        var stored = ChunkBitfield(count: m.chunks.count)
        for i in 0..<5 {
            try store.store(m.chunks[i].id, chunks[i])
            stored.insert(i)
        }
        let builder = try store.openImage(m, release: signed.releaseID)
        #expect(FileManager.default.fileExists(atPath: store.partialImagePath))
        // The rest arrive last to first and are written as they are stored.
        for i in (5..<m.chunks.count).reversed() {
            try store.store(m.chunks[i].id, chunks[i])
            stored.insert(i)
            try builder.write(i, compressed: chunks[i], store: store)
        }
        #expect(builder.written.setCount == m.chunks.count - 5)
        // Nothing is hashed while chunk 0 is missing.
        #expect(builder.hashed == 0)
        // Not finishing: the stored chunks are written, and the image hashed from its start as far as each chunk
        // written allows (a slice per chunk), but not verified and not put in place.
        _ = try ImageBuilderTests.drain(builder, stored: stored, finishing: false, store: store)
        #expect(builder.written.isComplete)
        #expect(builder.hashed > 0 && builder.hashed < m.imageSize)
        #expect(!builder.verified)
        #expect(!FileManager.default.fileExists(atPath: store.imagePath))
        // Finishing: the rest is read back at least a slice (128 KiB) per turn, verified, renamed into place.
        let rest = Int(m.imageSize - builder.hashed)
        let turns = try ImageBuilderTests.drain(builder, stored: stored, finishing: true, store: store)
        #expect(turns <= rest / ImageBuilder.readBackByteCount + 1)
        #expect(builder.verified)
        #expect(!builder.broken)
        #expect(try Data(contentsOf: URL(fileURLWithPath: store.imagePath)) == Data(image))
        #expect(!FileManager.default.fileExists(atPath: store.partialImagePath))
    }

    @Test func chunksArrivingInOrderAreHashedAsTheyArriveLeavingOneTurnAtTheEnd() throws {
        let (store, signed, chunks, image, dir) = try ImageBuilderTests.fixture(size: 2 << 20)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let m = signed.manifest
        let builder = try store.openImage(m, release: signed.releaseID)
        var stored = ChunkBitfield(count: m.chunks.count)
        for i in 0..<m.chunks.count {
            try store.store(m.chunks[i].id, chunks[i])
            stored.insert(i)
            try builder.write(i, compressed: chunks[i], store: store)
            #expect(builder.hashed == m.chunks[i].offset + UInt64(m.chunks[i].size))
        }
        #expect(!builder.verified)
        let turns = try ImageBuilderTests.drain(builder, stored: stored, finishing: true, store: store)
        #expect(turns == 1)
        #expect(builder.verified)
        #expect(try Data(contentsOf: URL(fileURLWithPath: store.imagePath)) == Data(image))
    }

    @Test func aChunkMissingFromTheStoreLeavesTheImageUnverifiedAndAssemblyNamesIt() throws {
        let (store, signed, chunks, _, dir) = try ImageBuilderTests.fixture(size: 1 << 20)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let m = signed.manifest
        for (i, c) in m.chunks.enumerated() { try store.store(c.id, chunks[i]) }
        // Chunk 3's file is damaged on disk after it was stored: it no longer hashes to its id.
        var damaged = chunks[3]
        damaged[damaged.count / 2] ^= 0x10
        try Data(damaged).write(to: URL(fileURLWithPath: store.chunkPath(m.chunks[3].id)))
        let builder = try store.openImage(m, release: signed.releaseID)
        _ = try ImageBuilderTests.drain(
            builder, stored: ChunkBitfield.full(count: m.chunks.count), finishing: true, store: store)
        #expect(!builder.verified)
        #expect(!builder.written.contains(3))
        #expect(builder.written.setCount == m.chunks.count - 1)
        #expect(!FileManager.default.fileExists(atPath: store.imagePath))
        let error = #expect(throws: AssemblyError.self) { try store.assemble(m) }
        #expect(error.map { "\($0)" } == "chunk 3 missing or damaged in the chunk store")
    }

    @Test func droppingTheBuilderRemovesThePartialImage() throws {
        let (store, signed, chunks, _, dir) = try ImageBuilderTests.fixture(size: 256 << 10)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var builder: ImageBuilder? = try store.openImage(signed.manifest, release: signed.releaseID)
        try builder?.write(0, compressed: chunks[0], store: store)
        #expect(FileManager.default.fileExists(atPath: store.partialImagePath))
        builder = nil
        #expect(!FileManager.default.fileExists(atPath: store.partialImagePath))
    }
}
