/// Everything that can go wrong in EquicastCrypto. Each case names what was wrong, so a message built from it
/// tells an operator which input to fix.
public enum CryptoError: Error, Equatable, Sendable, CustomStringConvertible {
    /// libsodium could not be initialised (no usable random source).
    case libraryUnavailable
    /// A key, nonce or signature had the wrong number of bytes.
    case wrongLength(what: String, expected: Int, found: Int)
    /// An AEAD tag or keyed MAC did not match: the bytes were altered or sealed under another key.
    case authenticationFailed
    /// An Ed25519 signature did not verify against the given public key.
    case badSignature
    /// Key text was neither hex nor base64 of the right length.
    case malformedKeyText(String)
    /// An output buffer was too small or an input too large for the primitive.
    case sizeLimit(what: String, limit: Int)

    public var description: String {
        switch self {
        case .libraryUnavailable:
            return "libsodium failed to initialise (is there a working random source?)"
        case .wrongLength(let what, let expected, let found):
            return "\(what) must be \(expected) bytes, found \(found)"
        case .authenticationFailed:
            return "authentication failed: the data was altered or sealed under a different key"
        case .badSignature:
            return "signature does not verify against the public key"
        case .malformedKeyText(let why):
            return "malformed key text: \(why)"
        case .sizeLimit(let what, let limit):
            return "\(what) exceeds its limit of \(limit) bytes"
        }
    }
}
