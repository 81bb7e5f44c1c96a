import EquicastCrypto
import Testing

@Suite struct KeyTextTests {
    static let key: [UInt8] = (0..<32).map { UInt8($0) }
    static let hexKey = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

    static let validTexts: [String] = [
        hexKey,
        hexKey + "\n",
        "  " + hexKey + "\r\n",
        hexKey.uppercased(),
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
    ]

    @Test(arguments: validTexts)
    func acceptsHexAndBase64(text: String) throws {
        #expect(try KeyText.decode(Array(text.utf8), byteCount: 32) == KeyTextTests.key)
    }

    static let malformed: [(String, CryptoError)] = [
        ("", CryptoError.malformedKeyText("the file is empty")),
        ("\n\n", .malformedKeyText("the file is empty")),
        (String(hexKey.dropLast(2)), .malformedKeyText("hex key has 62 digits; a 32-byte key needs 64")),
        (hexKey + "00", .malformedKeyText("hex key has 66 digits; a 32-byte key needs 64")),
        ("_z" + String(hexKey.dropFirst(2)), .malformedKeyText("character 1 is neither hex nor base64")),
        ("zz" + String(hexKey.dropFirst(2)), .wrongLength(what: "key", expected: 32, found: 48)),
        (
            String(hexKey.prefix(10)) + " " + String(hexKey.dropFirst(10)),
            .malformedKeyText("unexpected whitespace at character 11; expected one key on one line")
        ),
        ("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gIQ==", .wrongLength(what: "key", expected: 32, found: 34)),
        ("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd", .wrongLength(what: "key", expected: 32, found: 30)),
        ("AAEC$wQF", .malformedKeyText("character 5 is neither hex nor base64")),
        (String(repeating: "a", count: 600), .malformedKeyText("longer than 512 bytes; a key file holds a single key")),
    ]

    @Test(arguments: malformed)
    func refusesMalformedText(text: String, error: CryptoError) {
        #expect(throws: error) { try KeyText.decode(Array(text.utf8), byteCount: 32) }
    }

    @Test func encodesLowercaseHexWithNewline() {
        #expect(String(decoding: KeyText.encodeHex(KeyTextTests.key), as: UTF8.self) == KeyTextTests.hexKey + "\n")
    }
}
