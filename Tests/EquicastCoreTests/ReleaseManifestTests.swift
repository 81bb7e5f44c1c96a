import EquicastCore
import EquicastCrypto
import Testing

@Suite struct ReleaseManifestTests {
    static let key = try! Ed25519.SigningKey(seed: [UInt8](repeating: 3, count: 32))
    static let otherKey = try! Ed25519.SigningKey(seed: [UInt8](repeating: 4, count: 32))

    static func digest(_ n: UInt8) -> Digest256 { Digest256(hashing: [n]) }

    static func sample(version: UInt64 = 7, product: String = "acme-gw.imx8") -> ReleaseManifest {
        let sizes: [UInt32] = [70_000, 65_536, 20_001]
        var chunks: [ChunkEntry] = []
        var offset: UInt64 = 0
        for (i, size) in sizes.enumerated() {
            chunks.append(
                ChunkEntry(
                    id: digest(UInt8(i)), contentHash: digest(UInt8(100 + i)), offset: offset, size: size,
                    compressedSize: size / 2))
            offset += UInt64(size)
        }
        // 35,000, 32,768 and 10,000 compressed bytes: 3 + 2 + 1 pieces of 16 KiB.
        return ReleaseManifest(
            product: product, version: version, createdAt: 1_790_000_000, imageSize: offset, imageHash: digest(9),
            policy: RolloutPolicy(), pieceSize: 16_384, chunks: chunks,
            pieceHashes: (0..<96).map { UInt8($0) })
    }

    @Test func signedManifestOpensToTheSameContent() throws {
        let signed = try ReleaseManifestTests.sample().signed(by: ReleaseManifestTests.key)
        let opened = try SignedManifest.open(
            signed.bytes, trustedKeys: [ReleaseManifestTests.otherKey.publicKey, ReleaseManifestTests.key.publicKey])
        #expect(opened == signed)
        #expect(opened.manifest == ReleaseManifestTests.sample())
        #expect(opened.releaseID == Digest256(hashing: signed.bytes))
        #expect(signed.bytes.count == 9 + 1 + 12 + 8 * 3 + 32 + 1 + 3 + 1 + 4 + 1 + 4 + 4 + 3 * 80 + 6 * 16 + 32 + 64)
        #expect(opened.manifest.pieceCount == 6)
    }

    /// Every single-bit flip anywhere in a signed manifest is refused, and by the check that owns that byte:
    /// magic, format, length, signer key; anywhere else (every field of the body, the signature) the signature.
    @Test func everyFlippedBitIsRefusedWithItsOwnError() throws {
        let signed = try ReleaseManifestTests.sample().signed(by: ReleaseManifestTests.key)
        let keyStart = signed.bytes.count - 96
        for i in signed.bytes.indices {
            for bit in [0, 7] as [UInt8] {
                var bytes = signed.bytes
                bytes[i] ^= 1 << bit
                let expected: String
                switch i {
                case 0..<4: expected = "badMagic"
                case 4: expected = "unsupportedFormat"
                case 5..<9: expected = "length"
                case keyStart..<(keyStart + 32): expected = "untrustedSigner"
                default: expected = "badSignature"
                }
                do {
                    _ = try SignedManifest.open(bytes, trustedKeys: [ReleaseManifestTests.key.publicKey])
                    Issue.record("flip of bit \(bit) in byte \(i) was accepted")
                } catch {
                    let got: String
                    switch error {
                    case .badMagic: got = "badMagic"
                    case .unsupportedFormat: got = "unsupportedFormat"
                    case .truncated, .trailingBytes, .invalidField(field: "length", reason: _): got = "length"
                    case .untrustedSigner: got = "untrustedSigner"
                    case .badSignature: got = "badSignature"
                    default: got = "\(error)"
                    }
                    #expect(got == expected, "byte \(i) bit \(bit): \(error)")
                }
            }
        }
    }

    @Test func wrongKeyTruncationAndExtraBytesAreRefused() throws {
        let signed = try ReleaseManifestTests.sample().signed(by: ReleaseManifestTests.otherKey)
        let trusted = [ReleaseManifestTests.key.publicKey]
        #expect(
            throws: ReleaseError.untrustedSigner(
                keyHex: ReleaseManifestTests.otherKey.publicKey.bytes.map {
                    String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16)
                }.joined())
        ) {
            try SignedManifest.open(signed.bytes, trustedKeys: trusted)
        }
        let good = try ReleaseManifestTests.sample().signed(by: ReleaseManifestTests.key)
        for cut in [0, 3, 8, 50, good.bytes.count - 1] {
            #expect(throws: ReleaseError.self, "cut at \(cut)") {
                try SignedManifest.open(Array(good.bytes.prefix(cut)), trustedKeys: trusted)
            }
        }
        #expect(
            throws: ReleaseError.truncated(field: "manifest (\(good.bytes.count - 1) of \(good.bytes.count) bytes)")
        ) {
            try SignedManifest.open(Array(good.bytes.dropLast()), trustedKeys: trusted)
        }
        #expect(throws: ReleaseError.trailingBytes(count: 1)) {
            try SignedManifest.open(good.bytes + [0], trustedKeys: trusted)
        }
        #expect(throws: ReleaseError.badMagic) {
            try SignedManifest.open(Array("not a manifest".utf8), trustedKeys: trusted)
        }
    }

    @Test func eligibilityRefusesOtherProductsAndOlderVersions() throws {
        let signed = try ReleaseManifestTests.sample(version: 7).signed(by: ReleaseManifestTests.key)
        try signed.checkEligible(product: "acme-gw.imx8", installedVersion: nil)
        try signed.checkEligible(product: "acme-gw.imx8", installedVersion: 6)
        #expect(throws: ReleaseError.wrongProduct(expected: "acme-cam", found: "acme-gw.imx8")) {
            try signed.checkEligible(product: "acme-cam", installedVersion: 6)
        }
        #expect(throws: ReleaseError.notNewer(installed: 7, offered: 7)) {
            try signed.checkEligible(product: "acme-gw.imx8", installedVersion: 7)
        }
        #expect(throws: ReleaseError.notNewer(installed: 9, offered: 7)) {
            try signed.checkEligible(product: "acme-gw.imx8", installedVersion: 9)
        }
        var rollback = ReleaseManifestTests.sample(version: 5)
        rollback.policy.allowDowngrade = true
        try rollback.signed(by: ReleaseManifestTests.key).checkEligible(product: "acme-gw.imx8", installedVersion: 9)
    }

    @Test func invalidManifestsCannotBeSigned() {
        var gap = ReleaseManifestTests.sample()
        gap.chunks[1].offset += 1
        var waves = ReleaseManifestTests.sample()
        waves.policy.wavePercents = [50, 25, 100]
        var size = ReleaseManifestTests.sample()
        size.imageSize += 1
        var huge = ReleaseManifestTests.sample()
        huge.chunks[2].size = 300_000
        var oddPieces = ReleaseManifestTests.sample()
        oddPieces.pieceSize = 20_000
        var fewHashes = ReleaseManifestTests.sample()
        fewHashes.pieceHashes.removeLast(16)
        let cases: [(ReleaseManifest, String)] = [
            (ReleaseManifestTests.sample(product: "bad product!"), "product"), (gap, "chunk 1 offset"),
            (waves, "waves"), (size, "image size"), (huge, "chunk 2 size"), (oddPieces, "piece size"),
            (fewHashes, "piece hashes"),
        ]
        for (manifest, field) in cases {
            do {
                _ = try manifest.signed(by: ReleaseManifestTests.key)
                Issue.record("\(field): signed")
            } catch {
                guard case .invalidField(let f, _) = error else {
                    Issue.record("\(field): \(error)")
                    continue
                }
                #expect(f == field)
            }
        }
    }
}
