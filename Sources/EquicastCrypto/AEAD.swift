import CSodium

/// XChaCha20-Poly1305 (IETF construction) from libsodium: the cipher that seals every Equicast frame in the Lite
/// profile. The 192-bit nonce is large enough to draw at random for every message without a realistic chance of
/// repeating, which is why it was chosen over ChaCha20-Poly1305's 96-bit nonce.
public enum XChaCha20Poly1305 {
    /// Nonce length in bytes (192 bits).
    public static let nonceByteCount = 24
    /// Authentication tag appended to every ciphertext.
    public static let tagByteCount = 16

    /// Seals `plaintext`, binding `additionalData` (sent in the clear, e.g. a frame header) to it, and appends
    /// ciphertext followed by the tag to `output`.
    public static func seal(
        _ plaintext: UnsafeRawBufferPointer, additionalData: UnsafeRawBufferPointer,
        nonce: UnsafeRawBufferPointer, key: SymmetricKey, appendingTo output: inout [UInt8]
    ) throws(CryptoError) {
        guard nonce.count == nonceByteCount else {
            throw .wrongLength(what: "XChaCha20-Poly1305 nonce", expected: nonceByteCount, found: nonce.count)
        }
        Sodium.ensureInitialized()
        let start = output.count
        let sealedCount = plaintext.count + tagByteCount
        // The ciphertext is written straight into fresh storage after a copy of `output`'s bytes (a frame
        // header): no zero-filling of what the cipher overwrites anyway.
        let result = [UInt8](unsafeUninitializedCapacity: start + sealedCount) { out, count in
            output.withUnsafeBufferPointer { old in
                if start > 0 { out.baseAddress!.initialize(from: old.baseAddress!, count: start) }
            }
            withNonNullBytes(plaintext) { m, mlen in
                withNonNullBytes(additionalData) { ad, adlen in
                    key.withUnsafeKey { k in
                        var written: UInt64 = 0
                        _ = crypto_aead_xchacha20poly1305_ietf_encrypt(
                            out.baseAddress! + start, &written, m, UInt64(mlen), ad, UInt64(adlen), nil,
                            nonce.baseAddress!.assumingMemoryBound(to: UInt8.self), k)
                    }
                }
            }
            count = start + sealedCount
        }
        output = result
    }

    /// Opens `sealed` (ciphertext followed by tag) and appends the plaintext to `output`; nothing is appended when
    /// authentication fails.
    public static func open(
        _ sealed: UnsafeRawBufferPointer, additionalData: UnsafeRawBufferPointer,
        nonce: UnsafeRawBufferPointer, key: SymmetricKey, appendingTo output: inout [UInt8]
    ) throws(CryptoError) {
        guard nonce.count == nonceByteCount else {
            throw .wrongLength(what: "XChaCha20-Poly1305 nonce", expected: nonceByteCount, found: nonce.count)
        }
        guard sealed.count >= tagByteCount else { throw .authenticationFailed }
        Sodium.ensureInitialized()
        let start = output.count
        let plainCount = sealed.count - tagByteCount
        var opened = true
        // Decrypted straight into fresh storage after a copy of `output`'s bytes; one spare byte keeps the
        // destination pointer valid when the plaintext is empty.
        let result = [UInt8](unsafeUninitializedCapacity: start + plainCount + 1) { out, count in
            output.withUnsafeBufferPointer { old in
                if start > 0 { out.baseAddress!.initialize(from: old.baseAddress!, count: start) }
            }
            let status = withNonNullBytes(additionalData) { ad, adlen in
                key.withUnsafeKey { k in
                    var written: UInt64 = 0
                    return crypto_aead_xchacha20poly1305_ietf_decrypt(
                        out.baseAddress! + start, &written, nil,
                        sealed.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(sealed.count),
                        ad, UInt64(adlen), nonce.baseAddress!.assumingMemoryBound(to: UInt8.self), k)
                }
            }
            opened = status == 0
            count = opened ? start + plainCount : start
        }
        guard opened else { throw .authenticationFailed }
        output = result
    }

    /// Convenience form for whole arrays: returns ciphertext followed by tag.
    public static func seal(
        _ plaintext: [UInt8], additionalData: [UInt8] = [], nonce: [UInt8], key: SymmetricKey
    ) throws(CryptoError) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(plaintext.count + tagByteCount)
        var failure: CryptoError?
        plaintext.withUnsafeBytes { p in
            additionalData.withUnsafeBytes { a in
                nonce.withUnsafeBytes { n in
                    do throws(CryptoError) {
                        try seal(p, additionalData: a, nonce: n, key: key, appendingTo: &out)
                    } catch { failure = error }
                }
            }
        }
        if let failure { throw failure }
        return out
    }

    /// Convenience form for whole arrays: returns the plaintext or throws `authenticationFailed`.
    public static func open(
        _ sealed: [UInt8], additionalData: [UInt8] = [], nonce: [UInt8], key: SymmetricKey
    ) throws(CryptoError) -> [UInt8] {
        var out: [UInt8] = []
        var failure: CryptoError?
        sealed.withUnsafeBytes { s in
            additionalData.withUnsafeBytes { a in
                nonce.withUnsafeBytes { n in
                    do throws(CryptoError) {
                        try open(s, additionalData: a, nonce: n, key: key, appendingTo: &out)
                    } catch { failure = error }
                }
            }
        }
        if let failure { throw failure }
        return out
    }
}
