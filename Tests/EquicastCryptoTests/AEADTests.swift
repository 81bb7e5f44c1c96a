import EquicastCrypto
import Testing

@Suite struct AEADTests {
    let key = try! SymmetricKey(bytes: (0..<32).map { UInt8($0) })
    let nonce: [UInt8] = (0..<24).map { UInt8(100 + $0) }

    @Test(arguments: [0, 1, 15, 16, 17, 1000, 65536])
    func roundTripsAnyLength(length: Int) throws {
        let plain = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let ad: [UInt8] = [1, 2, 3]
        let sealed = try XChaCha20Poly1305.seal(plain, additionalData: ad, nonce: nonce, key: key)
        #expect(sealed.count == length + XChaCha20Poly1305.tagByteCount)
        #expect(try XChaCha20Poly1305.open(sealed, additionalData: ad, nonce: nonce, key: key) == plain)
    }

    /// Each alteration must be refused with `authenticationFailed`.
    @Test(arguments: ["ciphertext", "tag", "additional data", "nonce", "key", "truncated", "empty"])
    func refusesAlteredInput(what: String) throws {
        let plain: [UInt8] = Array("firmware manifest".utf8)
        let ad: [UInt8] = [9, 9, 9]
        var sealed = try XChaCha20Poly1305.seal(plain, additionalData: ad, nonce: nonce, key: key)
        var openAD = ad
        var openNonce = nonce
        var openKey = key
        switch what {
        case "ciphertext": sealed[0] ^= 0x01
        case "tag": sealed[sealed.count - 1] ^= 0x80
        case "additional data": openAD[2] = 8
        case "nonce": openNonce[23] ^= 0xff
        case "key": openKey = SymmetricKey.generate()
        case "truncated": sealed.removeLast()
        default: sealed = []
        }
        #expect(throws: CryptoError.authenticationFailed) {
            try XChaCha20Poly1305.open(sealed, additionalData: openAD, nonce: openNonce, key: openKey)
        }
    }

    @Test func refusesWrongNonceLength() {
        #expect(throws: CryptoError.wrongLength(what: "XChaCha20-Poly1305 nonce", expected: 24, found: 12)) {
            try XChaCha20Poly1305.seal([1], nonce: Array(nonce[0..<12]), key: key)
        }
    }

    @Test func keyRefusesWrongLength() {
        #expect(throws: CryptoError.wrongLength(what: "symmetric key", expected: 32, found: 31)) {
            try SymmetricKey(bytes: [UInt8](repeating: 1, count: 31))
        }
    }
}

@Suite struct BLAKE2bTests {
    /// BLAKE2b-256 vectors computed with Python's hashlib (see Tests/vectors/make_vectors.py).
    @Test(arguments: [
        ("", "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8"),
        ("abc", "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319"),
    ])
    func knownAnswers(input: String, expected: String) {
        #expect(hex(BLAKE2b.hash(Array(input.utf8))) == expected)
    }

    @Test(arguments: [1, 7, 64, 127, 128, 129, 4096, 100_000])
    func streamingMatchesOneShot(pieceSize: Int) {
        let data = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 5) }
        let hasher = BLAKE2bHasher()
        var i = 0
        while i < data.count {
            let end = min(data.count, i + pieceSize)
            hasher.update(Array(data[i..<end]))
            i = end
        }
        #expect(hasher.finalize() == BLAKE2b.hash(data))
    }

    @Test func keyedStreamingMatchesOneShotMAC() {
        let key = SymmetricKey.generate()
        let data: [UInt8] = Array("member list digest".utf8)
        let hasher = BLAKE2bHasher(outputByteCount: 16, key: key)
        hasher.update(data)
        #expect(hasher.finalize() == BLAKE2b.mac(data, key: key))
    }

    @Test func macDependsOnKey() {
        let data: [UInt8] = [1, 2, 3]
        #expect(BLAKE2b.mac(data, key: SymmetricKey.generate()) != BLAKE2b.mac(data, key: SymmetricKey.generate()))
        #expect(BLAKE2b.mac(data, key: SymmetricKey.generate()).count == 16)
    }
}

@Suite struct KeyDerivationTests {
    let master = try! SymmetricKey(bytes: (0..<32).map { UInt8($0) })

    @Test func deterministicAndSeparated() {
        let a = master.deriveSubkey(id: 1, context: "EQCFRAME").exportBytes()
        #expect(a == master.deriveSubkey(id: 1, context: "EQCFRAME").exportBytes())
        #expect(a != master.deriveSubkey(id: 2, context: "EQCFRAME").exportBytes())
        #expect(a != master.deriveSubkey(id: 1, context: "EQCKEYID").exportBytes())
        #expect(hex(a) == "732dbfc590b6c97c3f4ab5c52c7b05da1a152615514edf21cd88b5d93b8b3ba3")
    }
}

@Suite struct ConstantTimeTests {
    @Test(arguments: [
        ([UInt8](), [UInt8](), true),
        ([1, 2, 3], [1, 2, 3], true),
        ([1, 2, 3], [1, 2, 4], false),
        ([1, 2, 3], [1, 2], false),
        ([0], [UInt8](), false),
    ])
    func compares(a: [UInt8], b: [UInt8], equal: Bool) {
        #expect(constantTimeEqual(a, b) == equal)
    }
}

func hex(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef")
    return String(bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] })
}

@Suite struct Digest256Tests {
    @Test(arguments: [0, 1, 1024, 70000])
    func matchesArrayDigest(length: Int) {
        let data = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 3) }
        let digest = Digest256(hashing: data)
        #expect(digest.bytes == BLAKE2b.hash(data))
        #expect(Digest256(bytes: digest.bytes) == digest)
    }

    @Test func hashableAndOrdered() {
        let a = Digest256(hashing: [1]), b = Digest256(hashing: [2])
        #expect(Set([a, b, a]).count == 2)
        #expect((a < b) != (b < a))
        #expect(Digest256(bytes: [1, 2, 3]) == nil)
    }
}
